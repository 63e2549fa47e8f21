/* error.c — the error table, messages and checked allocation. */
#include "clue/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int clue_fail(clue_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void clue_err_clear(clue_err *err) {
  if (!err) return;
  err->code = CLUE_OK;
  err->msg[0] = '\0';
}

int clue_err_prefix(clue_err *err, const char *fmt, ...) {
  if (!err) return CLUE_EINVAL;
  char head[CLUE_ERR_MSG_MAX];
  char old[CLUE_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(head, sizeof head, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
  return err->code;
}

const char *clue_strerror(int code) {
  switch (code) {
#define CLUE_ERR_CASE(name, value, text) \
  case value:                            \
    return text;
    CLUE_ERROR_TABLE(CLUE_ERR_CASE)
#undef CLUE_ERR_CASE
  }
  return "unknown error";
}

int clue_exit_status(int code) {
  if (code == CLUE_OK) return 0;
  if (code == CLUE_EUSAGE || code == CLUE_ECONFIG) return 2;
  if (code == CLUE_EINTERRUPTED) return 75;
  if (code == CLUE_ENUMERIC) return 3;
  return 1;
}

void *clue_malloc(size_t bytes, clue_err *err) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) clue_fail(err, CLUE_ENOMEM, "out of memory allocating %zu bytes", bytes);
  return p;
}

void *clue_calloc(size_t count, size_t size, clue_err *err) {
  if (count == 0 || size == 0) count = size = 1;
  void *p = calloc(count, size);
  if (!p)
    clue_fail(err, CLUE_ENOMEM, "out of memory allocating %zu x %zu bytes", count,
              size);
  return p;
}
