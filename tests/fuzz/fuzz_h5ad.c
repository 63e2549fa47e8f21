/* fuzz_h5ad.c — libFuzzer harness: the fuzzer's bytes are written as a file
 * and read as an .h5ad/.h5mu by every reader entry point (fuzz_reader.c).
 * Seeds: real .h5ad files and the test fixtures (tests/fuzz/run.sh copies
 * them in; none is committed). Crashes inside libhdf5 itself on a corrupted
 * file are HDF5's (see tests/fuzz/README.md); clue's own code is instrumented. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_reader.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_reader_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_reader_scratch(".h5ad");
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  fuzz_reader_run(path);
  remove(path);
  return 0;
}
