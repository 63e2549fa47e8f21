/* cmd_info.c — TEMPORARY scaffold until the command is written (this session). */
#include "clue/cli.h"

int cli_info(int argc, char **argv, const clue_comm *comm) {
  (void)argc;
  (void)argv;
  clue_err err;
  clue_fail(&err, CLUE_EUSAGE, "the info command is not built yet");
  return cli_report(comm, "info", err.code, &err);
}
