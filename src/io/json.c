/* json.c — recursive-descent JSON reader (see json.h). */
#include "clue/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH_MAX 64

typedef struct reader {
  const char *s;
  size_t n, at;
  clue_err *err;
} reader;

static int fail_at(reader *r, const char *what) {
  return clue_fail(r->err, CLUE_EFORMAT, "at byte %zu: %s", r->at, what);
}

static void skip_space(reader *r) {
  while (r->at < r->n && strchr(" \t\r\n", r->s[r->at]) && r->s[r->at]) r->at++;
}

static clue_json *node_new(clue_json_type t) {
  clue_json *v = calloc(1, sizeof *v);
  if (v) v->type = t;
  return v;
}

/* Appends item (and key for objects) to container v. */
static int push(clue_json *v, char *key, clue_json *item) {
  char **k = v->type == CLUE_JSON_OBJECT ? realloc(v->keys, (size_t)(v->n + 1) * sizeof *k) : NULL;
  if (v->type == CLUE_JSON_OBJECT) {
    if (!k) return CLUE_ENOMEM;
    v->keys = k;
  }
  clue_json **it = realloc(v->items, (size_t)(v->n + 1) * sizeof *it);
  if (!it) return CLUE_ENOMEM;
  v->items = it;
  if (v->type == CLUE_JSON_OBJECT) v->keys[v->n] = key;
  v->items[v->n++] = item;
  return CLUE_OK;
}

static int hex4(reader *r, unsigned *u) {
  *u = 0;
  for (int i = 0; i < 4; i++, r->at++) {
    if (r->at >= r->n) return fail_at(r, "truncated \\u escape");
    char c = r->s[r->at];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return fail_at(r, "bad \\u escape");
    *u = *u * 16 + (unsigned)d;
  }
  return CLUE_OK;
}

/* A string at r->at (the opening quote) into a new NUL-terminated copy. */
static int read_string(reader *r, char **out) {
  r->at++;
  char *s = malloc(r->n - r->at + 1);
  if (!s) return clue_fail(r->err, CLUE_ENOMEM, "out of memory");
  size_t o = 0;
  while (r->at < r->n && r->s[r->at] != '"') {
    char c = r->s[r->at++];
    if ((unsigned char)c < 0x20) return free(s), fail_at(r, "control character in a string");
    if (c != '\\') {
      s[o++] = c;
      continue;
    }
    if (r->at >= r->n) break;
    char e = r->s[r->at++];
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *p = strchr(from, e);
    if (e && p) {
      s[o++] = to[p - from];
    } else if (e == 'u') {
      unsigned u;
      int rc = hex4(r, &u);
      if (rc) return free(s), rc;
      s[o++] = u < 0x80 ? (char)u : '?';
    } else {
      return free(s), fail_at(r, "bad escape in a string");
    }
  }
  if (r->at >= r->n) return free(s), fail_at(r, "unterminated string");
  r->at++;
  s[o] = '\0';
  *out = s;
  return CLUE_OK;
}

static int read_value(reader *r, int depth, clue_json **out);

/* An array or object at r->at ('[' or '{'). */
static int read_container(reader *r, int depth, clue_json **out) {
  bool obj = r->s[r->at] == '{';
  char close = obj ? '}' : ']';
  clue_json *v = node_new(obj ? CLUE_JSON_OBJECT : CLUE_JSON_ARRAY);
  if (!v) return clue_fail(r->err, CLUE_ENOMEM, "out of memory");
  *out = v;
  r->at++;
  skip_space(r);
  if (r->at < r->n && r->s[r->at] == close) return r->at++, CLUE_OK;
  for (;;) {
    char *key = NULL;
    skip_space(r);
    if (obj) {
      if (r->at >= r->n || r->s[r->at] != '"') return fail_at(r, "expected a key");
      int rc = read_string(r, &key);
      if (rc) return rc;
      skip_space(r);
      if (r->at >= r->n || r->s[r->at] != ':') return free(key), fail_at(r, "expected ':'");
      r->at++;
    }
    clue_json *item = NULL;
    int rc = read_value(r, depth + 1, &item);
    if (!rc && push(v, key, item)) rc = clue_fail(r->err, CLUE_ENOMEM, "out of memory");
    if (rc) return free(key), clue_json_free(item), rc;
    skip_space(r);
    if (r->at < r->n && r->s[r->at] == ',') {
      r->at++;
      continue;
    }
    if (r->at < r->n && r->s[r->at] == close) return r->at++, CLUE_OK;
    return fail_at(r, obj ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int read_literal(reader *r, clue_json **out) {
  static const struct { const char *word; clue_json_type t; bool b; } lit[] = {
      {"null", CLUE_JSON_NULL, false}, {"true", CLUE_JSON_BOOL, true},
      {"false", CLUE_JSON_BOOL, false}};
  for (size_t i = 0; i < sizeof lit / sizeof lit[0]; i++) {
    size_t len = strlen(lit[i].word);
    if (r->n - r->at >= len && !memcmp(r->s + r->at, lit[i].word, len)) {
      r->at += len;
      if (!(*out = node_new(lit[i].t))) return clue_fail(r->err, CLUE_ENOMEM, "out of memory");
      (*out)->boolean = lit[i].b;
      return CLUE_OK;
    }
  }
  /* a number: the characters of one, checked by strtod on a bounded copy */
  size_t b = r->at;
  while (r->at < r->n && r->at - b < 63 && strchr("+-0123456789.eE", r->s[r->at]) && r->s[r->at])
    r->at++;
  char buf[64], *end;
  memcpy(buf, r->s + b, r->at - b);
  buf[r->at - b] = '\0';
  errno = 0;
  double x = strtod(buf, &end);
  if (r->at == b || *end) return r->at = b, fail_at(r, r->at >= r->n ? "truncated" : "bad value");
  if (!(*out = node_new(CLUE_JSON_NUMBER))) return clue_fail(r->err, CLUE_ENOMEM, "out of memory");
  (*out)->number = x;
  return CLUE_OK;
}

static int read_value(reader *r, int depth, clue_json **out) {
  *out = NULL;
  if (depth > JSON_DEPTH_MAX) return fail_at(r, "nested too deeply");
  skip_space(r);
  if (r->at >= r->n) return fail_at(r, "truncated");
  char c = r->s[r->at];
  if (c == '{' || c == '[') return read_container(r, depth, out);
  if (c == '"') {
    char *s;
    int rc = read_string(r, &s);
    if (rc) return rc;
    if (!(*out = node_new(CLUE_JSON_STRING))) return free(s), clue_fail(r->err, CLUE_ENOMEM, "out of memory");
    (*out)->string = s;
    return CLUE_OK;
  }
  return read_literal(r, out);
}

int clue_json_parse(const char *text, size_t len, clue_json **out, clue_err *err) {
  reader r = {.s = text, .n = len, .at = 0, .err = err};
  *out = NULL;
  clue_json *v = NULL;
  int rc = read_value(&r, 0, &v);
  if (!rc) {
    skip_space(&r);
    if (r.at < r.n) rc = fail_at(&r, "unexpected text after the value");
  }
  if (rc) return clue_json_free(v), rc;
  *out = v;
  return CLUE_OK;
}

void clue_json_free(clue_json *v) {
  if (!v) return;
  for (int i = 0; i < v->n; i++) {
    if (v->keys) free(v->keys[i]);
    clue_json_free(v->items[i]);
  }
  free(v->keys);
  free(v->items);
  free(v->string);
  free(v);
}

const clue_json *clue_json_get(const clue_json *v, const char *key) {
  if (!v || v->type != CLUE_JSON_OBJECT) return NULL;
  for (int i = 0; i < v->n; i++)
    if (!strcmp(v->keys[i], key)) return v->items[i];
  return NULL;
}

double clue_json_num(const clue_json *v, const char *key, double fallback) {
  const clue_json *x = key ? clue_json_get(v, key) : v;
  return x && x->type == CLUE_JSON_NUMBER ? x->number : fallback;
}

const char *clue_json_str(const clue_json *v, const char *key) {
  const clue_json *x = key ? clue_json_get(v, key) : v;
  return x && x->type == CLUE_JSON_STRING ? x->string : NULL;
}
