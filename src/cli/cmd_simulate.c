/* cmd_simulate.c — TEMPORARY scaffold until the command is written (this session). */
#include "clue/cli.h"

int cli_simulate(int argc, char **argv, const clue_comm *comm) {
  (void)argc;
  (void)argv;
  clue_err err;
  clue_fail(&err, CLUE_EUSAGE, "the simulate command is not built yet");
  return cli_report(comm, "simulate", err.code, &err);
}
