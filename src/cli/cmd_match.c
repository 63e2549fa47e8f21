/* cmd_match.c — TEMPORARY scaffold until the command is written (this session). */
#include "clue/cli.h"

int cli_match(int argc, char **argv, const clue_comm *comm) {
  (void)argc;
  (void)argv;
  clue_err err;
  clue_fail(&err, CLUE_EUSAGE, "the match command is not built yet");
  return cli_report(comm, "match", err.code, &err);
}
