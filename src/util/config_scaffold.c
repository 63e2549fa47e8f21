/* config_scaffold.c — TEMPORARY: replaced by src/io/config.c this session. */
#include <string.h>
#include <stdlib.h>
#include "clue/config.h"
void clue_config_defaults(clue_config *cfg) { memset(cfg, 0, sizeof *cfg); }
int clue_config_load(const char *path, clue_config *cfg, clue_err *err) { (void)cfg; return clue_fail(err, CLUE_ECONFIG, "%s: config loading is not built yet", path); }
int clue_config_set(clue_config *cfg, const char *a, clue_err *err) { (void)cfg; return clue_fail(err, CLUE_ECONFIG, "%s: not built yet", a); }
int clue_config_validate(const clue_config *cfg, clue_err *err) { (void)cfg; (void)err; return 0; }
void clue_config_bcast(const clue_comm *comm, clue_config *cfg) { clue_comm_bcast(comm, cfg, sizeof *cfg, 0); }
