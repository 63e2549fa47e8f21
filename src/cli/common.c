/* common.c — helpers shared by the commands: error reporting, config loading,
 * rank-0 printing, folders and atomic file writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clue/cli.h"
#include "clue/strbuf.h"

int cli_report(const clue_comm *comm, const char *command, int code,
               const clue_err *err) {
  if (code != CLUE_OK && comm->rank == 0) {
    const char *msg = (err && err->msg[0]) ? err->msg : clue_strerror(code);
    fprintf(stderr, "clue %s: error: %s\n", command, msg);
    fflush(stderr);
  }
  return clue_exit_status(code);
}

int cli_load_config(const clue_comm *comm, const char *config_path,
                    char *const *sets, int n_sets, clue_config *cfg, clue_err *err) {
  int rc = CLUE_OK;
  if (comm->rank == 0) {
    clue_config_defaults(cfg);
    if (config_path) rc = clue_config_load(config_path, cfg, err);
    for (int i = 0; rc == CLUE_OK && i < n_sets; i++) {
      rc = clue_config_set(cfg, sets[i], err);
      if (rc) clue_err_prefix(err, "--set %s", sets[i]);
    }
    if (rc == CLUE_OK) rc = clue_config_validate(cfg, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc) return rc;
  clue_config_bcast(comm, cfg);
  return CLUE_OK;
}

int cli_usage_error(const clue_comm *comm, const char *command, void (*usage)(FILE *),
                    const char *msg) {
  if (comm->rank == 0) {
    fprintf(stderr, "clue %s: error: %s\n\n", command, msg);
    usage(stderr);
  }
  return 2;
}

bool cli_int_arg(const char *opt, const char *v, long lo, long hi, long *out, char *msg,
                 size_t size) {
  char *end;
  long x = strtol(v, &end, 10);
  if (*end || !*v || x < lo || x > hi) {
    snprintf(msg, size, "%s %s: expected an integer in %ld..%ld", opt, v, lo, hi);
    return false;
  }
  *out = x;
  return true;
}

void cli_print(const clue_comm *comm, const char *fmt, ...) {
  if (comm->rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

bool cli_stderr_is_tty(void) { return isatty(STDERR_FILENO) != 0; }

int cli_mkdir_p(const char *path, clue_err *err) {
  char buf[CLUE_PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return clue_fail(err, CLUE_EINVAL, "path too long: %s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return clue_fail(err, CLUE_EIO, "cannot create folder %s: %s", buf,
                       strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return clue_fail(err, CLUE_EIO, "cannot create folder %s: %s", buf, strerror(errno));
  struct stat st;
  if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
    return clue_fail(err, CLUE_EIO, "%s exists and is not a folder", buf);
  return CLUE_OK;
}

int cli_write_file_atomic(const char *path, const char *text, clue_err *err) {
  return clue_write_file_atomic(path, text, strlen(text), err);
}

int cli_writer_finish(h5ad_writer *w, const char *command, int argc, char **argv, int rc,
                      clue_err *err) {
  char cmd[2048];
  int at = snprintf(cmd, sizeof cmd, "clue %s", command);
  for (int i = 1; i < argc && at < (int)sizeof cmd - 2; i++)
    at += snprintf(cmd + at, sizeof cmd - (size_t)at, " %s", argv[i]);
  if (rc == CLUE_OK) rc = h5ad_writer_uns_string(w, "clue_command", cmd, err);
  if (rc == CLUE_OK) rc = h5ad_writer_uns_string(w, "clue_version", CLUE_VERSION, err);
  if (rc == CLUE_OK)
    rc = h5ad_writer_commit(w, err);
  else if (w)
    h5ad_writer_abort(w);
  return rc;
}

void cli_output_path(const char *out, int n_inputs, const char *label, char *path, size_t size) {
  if (n_inputs == 1)
    snprintf(path, size, "%s", out);
  else
    snprintf(path, size, "%s/%s.h5ad", out, label);
}
