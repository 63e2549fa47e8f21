/* strings.h — an owned array of C strings (obs names, feature names, categories)
 * and a string → index hash table used to pair cells across modalities. */
#ifndef CLUE_STRINGS_H
#define CLUE_STRINGS_H

#include <stdint.h>

#include "clue/error.h"

/* n strings; s[i] points into memory owned by the array. */
typedef struct clue_strings {
  int64_t n;
  char **s; /* (n) */
  char *pool; /* all characters, NUL-separated; may be NULL when n == 0 */
} clue_strings;

/* An empty array of n strings, each "" (n may be 0). */
clue_strings *clue_strings_new(int64_t n, clue_err *err);

/* A copy of the n given strings. */
clue_strings *clue_strings_from(const char *const *s, int64_t n, clue_err *err);

/* Frees the array and its text (NULL is allowed). */
void clue_strings_free(clue_strings *a);

/* Open-addressing hash table from strings to int64 values. Keys are not
 * copied: they must outlive the table. */
typedef struct clue_strmap clue_strmap;

/* A table sized for about `expected` keys. */
clue_strmap *clue_strmap_new(int64_t expected, clue_err *err);
void clue_strmap_free(clue_strmap *m);

/* Inserts key → value. Returns 1 if inserted, 0 if the key was already present
 * (the stored value is left unchanged and written to *existing when not NULL),
 * or a negative error code. */
int clue_strmap_put(clue_strmap *m, const char *key, int64_t value, int64_t *existing,
                    clue_err *err);

/* The value of key, or -1 when absent. */
int64_t clue_strmap_get(const clue_strmap *m, const char *key);

/* 64-bit FNV-1a hash of a string. */
uint64_t clue_hash_string(const char *s);

#endif
