/* h5ad_read.c — reading AnnData objects (scaffold: only the error silencer yet). */
#include <hdf5.h>

#include "clue/h5ad.h"

void h5ad_quiet_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
