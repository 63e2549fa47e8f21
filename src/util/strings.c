/* strings.c — owned string arrays and a string hash table. */
#include "clue/strings.h"

#include <stdlib.h>
#include <string.h>

clue_strings *clue_strings_new(int64_t n, clue_err *err) {
  clue_strings *a = clue_calloc(1, sizeof *a, err);
  if (!a) return NULL;
  a->n = n;
  a->s = clue_calloc((size_t)(n > 0 ? n : 1), sizeof *a->s, err);
  a->pool = clue_calloc(1, 1, err);
  if (!a->s || !a->pool) {
    clue_strings_free(a);
    return NULL;
  }
  for (int64_t i = 0; i < n; i++) a->s[i] = a->pool;
  return a;
}

clue_strings *clue_strings_from(const char *const *s, int64_t n, clue_err *err) {
  clue_strings *a = clue_calloc(1, sizeof *a, err);
  if (!a) return NULL;
  size_t total = 1;
  for (int64_t i = 0; i < n; i++) total += strlen(s[i]) + 1;
  a->n = n;
  a->s = clue_calloc((size_t)(n > 0 ? n : 1), sizeof *a->s, err);
  a->pool = clue_malloc(total, err);
  if (!a->s || !a->pool) {
    clue_strings_free(a);
    return NULL;
  }
  char *p = a->pool;
  for (int64_t i = 0; i < n; i++) {
    size_t len = strlen(s[i]);
    memcpy(p, s[i], len + 1);
    a->s[i] = p;
    p += len + 1;
  }
  *p = '\0';
  return a;
}

void clue_strings_free(clue_strings *a) {
  if (!a) return;
  free(a->s);
  free(a->pool);
  free(a);
}

uint64_t clue_hash_string(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  return h;
}

struct clue_strmap {
  int64_t cap; /* power of two */
  int64_t count;
  const char **keys; /* (cap), NULL = empty slot */
  int64_t *values;   /* (cap) */
};

clue_strmap *clue_strmap_new(int64_t expected, clue_err *err) {
  clue_strmap *m = clue_calloc(1, sizeof *m, err);
  if (!m) return NULL;
  m->cap = 16;
  while (m->cap < 2 * expected + 16) m->cap *= 2;
  m->keys = clue_calloc((size_t)m->cap, sizeof *m->keys, err);
  m->values = clue_calloc((size_t)m->cap, sizeof *m->values, err);
  if (!m->keys || !m->values) {
    clue_strmap_free(m);
    return NULL;
  }
  return m;
}

void clue_strmap_free(clue_strmap *m) {
  if (!m) return;
  free(m->keys);
  free(m->values);
  free(m);
}

static int strmap_grow(clue_strmap *m, clue_err *err) {
  int64_t cap = m->cap * 2;
  const char **keys = clue_calloc((size_t)cap, sizeof *keys, err);
  int64_t *values = clue_calloc((size_t)cap, sizeof *values, err);
  if (!keys || !values) {
    free(keys);
    free(values);
    return CLUE_ENOMEM;
  }
  for (int64_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    int64_t j = (int64_t)(clue_hash_string(m->keys[i]) & (uint64_t)(cap - 1));
    while (keys[j]) j = (j + 1) & (cap - 1);
    keys[j] = m->keys[i];
    values[j] = m->values[i];
  }
  free(m->keys);
  free(m->values);
  m->keys = keys;
  m->values = values;
  m->cap = cap;
  return CLUE_OK;
}

int clue_strmap_put(clue_strmap *m, const char *key, int64_t value, int64_t *existing,
                    clue_err *err) {
  if (2 * (m->count + 1) > m->cap) {
    int rc = strmap_grow(m, err);
    if (rc) return rc;
  }
  int64_t j = (int64_t)(clue_hash_string(key) & (uint64_t)(m->cap - 1));
  while (m->keys[j]) {
    if (strcmp(m->keys[j], key) == 0) {
      if (existing) *existing = m->values[j];
      return 0;
    }
    j = (j + 1) & (m->cap - 1);
  }
  m->keys[j] = key;
  m->values[j] = value;
  m->count++;
  return 1;
}

int64_t clue_strmap_get(const clue_strmap *m, const char *key) {
  int64_t j = (int64_t)(clue_hash_string(key) & (uint64_t)(m->cap - 1));
  while (m->keys[j]) {
    if (strcmp(m->keys[j], key) == 0) return m->values[j];
    j = (j + 1) & (m->cap - 1);
  }
  return -1;
}
