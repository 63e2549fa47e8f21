/* json.h — a small reader of JSON text (RFC 8259) into a tree, for the files
 * clue itself writes (log.jsonl lines, run.json, clue eval --json). Numbers are
 * doubles; strings are UTF-8 with escapes decoded (\u escapes outside the
 * Basic Latin range become '?'); objects keep their keys in file order. */
#ifndef CLUE_JSON_H
#define CLUE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "clue/error.h"

typedef enum {
  CLUE_JSON_NULL,
  CLUE_JSON_BOOL,
  CLUE_JSON_NUMBER,
  CLUE_JSON_STRING,
  CLUE_JSON_ARRAY,
  CLUE_JSON_OBJECT
} clue_json_type;

typedef struct clue_json {
  clue_json_type type;
  bool boolean;
  double number;
  char *string;              /* STRING */
  int n;                     /* ARRAY / OBJECT: items */
  char **keys;               /* OBJECT: (n) */
  struct clue_json **items;  /* ARRAY / OBJECT: (n) */
} clue_json;

/* Parses one JSON value from text[0..len) (trailing white space allowed).
 * Fails with CLUE_EFORMAT "at byte B: what" on malformed or truncated text,
 * CLUE_ENOMEM when memory runs out. Nesting deeper than 64 levels is refused. */
int clue_json_parse(const char *text, size_t len, clue_json **out, clue_err *err);

/* Frees a tree (NULL allowed). */
void clue_json_free(clue_json *v);

/* The value of key in an object; NULL when v is not an object or lacks it. */
const clue_json *clue_json_get(const clue_json *v, const char *key);

/* The number at key (or of v itself when key is NULL); `fallback` when
 * absent or not a number. */
double clue_json_num(const clue_json *v, const char *key, double fallback);

/* The string at key (or v itself when key is NULL); NULL when absent or not a string. */
const char *clue_json_str(const clue_json *v, const char *key);

#endif
