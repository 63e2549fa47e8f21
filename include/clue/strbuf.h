/* strbuf.h — a growable text buffer for building documents (HTML, SVG, JSON)
 * piece by piece. Appends never fail visibly: when memory runs out the buffer
 * remembers it (ok = false) and ignores further appends, so a writer checks
 * once at the end. */
#ifndef CLUE_STRBUF_H
#define CLUE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "clue/error.h"

typedef struct clue_strbuf {
  char *s;     /* NUL-terminated text (NULL until the first append) */
  size_t n;    /* length */
  size_t cap;  /* allocated bytes */
  bool failed; /* an append ran out of memory */
} clue_strbuf;

/* Appends formatted text. */
void clue_sb_printf(clue_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends n bytes of s. */
void clue_sb_append(clue_strbuf *b, const char *s, size_t n);

/* Appends s with &, <, >, " and ' written as HTML entities (safe in text and
 * in quoted attributes). */
void clue_sb_html(clue_strbuf *b, const char *s);

/* Appends s as a JSON string, quotes included (control characters escaped). */
void clue_sb_json_string(clue_strbuf *b, const char *s);

/* Appends a number as JSON: %.10g, or null when not finite. */
void clue_sb_json_number(clue_strbuf *b, double v);

/* Appends the standard base64 encoding of n bytes. */
void clue_sb_base64(clue_strbuf *b, const unsigned char *data, size_t n);

/* The text (never NULL: "" when empty). */
const char *clue_sb_text(const clue_strbuf *b);

/* Writes len bytes of text to path through a temporary file (path.tmp.PID,
 * synced) renamed into place; fails naming the file. */
int clue_write_file_atomic(const char *path, const char *text, size_t len, clue_err *err);

/* The whole of the file at path in a new NUL-terminated buffer (free with
 * free()), its length in *len; NULL when it cannot be read or memory runs out. */
char *clue_read_file(const char *path, size_t *len);

/* Frees the text and resets the buffer. */
void clue_sb_free(clue_strbuf *b);

#endif
