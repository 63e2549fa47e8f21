/* error.h — status codes and error messages shared by every module.
 *
 * Every fallible function returns 0 (CLUE_OK) or a negative code from the table
 * below and, on failure, fills a clue_err with one line that names the file, the
 * object and what is wrong. Only main() decides to exit. */
#ifndef CLUE_ERROR_H
#define CLUE_ERROR_H

#include <stddef.h>

/* X(name, value, description) */
#define CLUE_ERROR_TABLE(X)                                              \
  X(CLUE_OK, 0, "success")                                               \
  X(CLUE_EIO, -1, "input/output error")                                  \
  X(CLUE_EFORMAT, -2, "file does not follow the expected format")        \
  X(CLUE_ECONFIG, -3, "invalid configuration")                           \
  X(CLUE_EINVAL, -4, "invalid argument")                                 \
  X(CLUE_ENOMEM, -5, "out of memory")                                    \
  X(CLUE_EMPI, -6, "MPI failure")                                        \
  X(CLUE_ENUMERIC, -7, "numerical failure (NaN or Inf)")                 \
  X(CLUE_EDATA, -8, "invalid data values")                               \
  X(CLUE_EINTERRUPTED, -9, "stopped by a signal after a checkpoint")     \
  X(CLUE_EUSAGE, -10, "invalid command line")

enum {
#define CLUE_ERR_ENUM(name, value, text) name = value,
  CLUE_ERROR_TABLE(CLUE_ERR_ENUM)
#undef CLUE_ERR_ENUM
};

#define CLUE_ERR_MSG_MAX 1024

/* An error: the code and a one-line, human-readable message. */
typedef struct clue_err {
  int code;
  char msg[CLUE_ERR_MSG_MAX];
} clue_err;

/* Sets err (when not NULL) to code and the formatted message; returns code. */
int clue_fail(clue_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets err to CLUE_OK with an empty message. */
void clue_err_clear(clue_err *err);

/* Prefixes the message already in err with the formatted text and ": ";
 * returns err->code. Used to add context ("reading rna.h5ad: ...") on the way up. */
int clue_err_prefix(clue_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The fixed description of a code ("input/output error"); never NULL. */
const char *clue_strerror(int code);

/* Process exit status for a code: 0 for CLUE_OK, 2 for usage/config errors,
 * 75 (EX_TEMPFAIL, "requeue me") for CLUE_EINTERRUPTED, 3 for CLUE_ENUMERIC
 * (training diverged: NaN/Inf), 1 otherwise. */
int clue_exit_status(int code);

/* Checked allocation helpers: a request of 0 bytes still returns a valid,
 * freeable pointer; NULL means memory is exhausted and err holds CLUE_ENOMEM. */
void *clue_malloc(size_t bytes, clue_err *err);
void *clue_calloc(size_t count, size_t size, clue_err *err);

#endif
