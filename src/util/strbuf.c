/* strbuf.c — growable text buffer (see strbuf.h). */
#include "clue/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clue/config.h"

/* Room for n more bytes and the terminator; false (and failed) when out of memory. */
static bool reserve(clue_strbuf *b, size_t n) {
  if (b->failed) return false;
  if (b->n + n + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + n + 1) cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->failed = true;
    return false;
  }
  b->s = s;
  b->cap = cap;
  return true;
}

void clue_sb_append(clue_strbuf *b, const char *s, size_t n) {
  if (!reserve(b, n)) return;
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

void clue_sb_printf(clue_strbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list aq;
  va_copy(aq, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n >= 0 && reserve(b, (size_t)n)) {
    vsnprintf(b->s + b->n, (size_t)n + 1, fmt, aq);
    b->n += (size_t)n;
  }
  va_end(aq);
}

void clue_sb_html(clue_strbuf *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '&': clue_sb_append(b, "&amp;", 5); break;
      case '<': clue_sb_append(b, "&lt;", 4); break;
      case '>': clue_sb_append(b, "&gt;", 4); break;
      case '"': clue_sb_append(b, "&quot;", 6); break;
      case '\'': clue_sb_append(b, "&#39;", 5); break;
      default: clue_sb_append(b, s, 1);
    }
  }
}

void clue_sb_json_string(clue_strbuf *b, const char *s) {
  clue_sb_append(b, "\"", 1);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      clue_sb_append(b, e, 2);
    } else if (c < 0x20) {
      clue_sb_printf(b, "\\u%04x", c);
    } else {
      clue_sb_append(b, s, 1);
    }
  }
  clue_sb_append(b, "\"", 1);
}

void clue_sb_json_number(clue_strbuf *b, double v) {
  if (isfinite(v))
    clue_sb_printf(b, "%.10g", v);
  else
    clue_sb_append(b, "null", 4);
}

void clue_sb_base64(clue_strbuf *b, const unsigned char *d, size_t n) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (!reserve(b, (n + 2) / 3 * 4)) return;
  char *o = b->s + b->n;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
    *o++ = A[v >> 18], *o++ = A[v >> 12 & 63], *o++ = A[v >> 6 & 63], *o++ = A[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0);
    *o++ = A[v >> 18], *o++ = A[v >> 12 & 63];
    *o++ = i + 1 < n ? A[v >> 6 & 63] : '=';
    *o++ = '=';
  }
  b->n = (size_t)(o - b->s);
  b->s[b->n] = '\0';
}

const char *clue_sb_text(const clue_strbuf *b) { return b->s ? b->s : ""; }

void clue_sb_free(clue_strbuf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

int clue_write_file_atomic(const char *path, const char *text, size_t len, clue_err *err) {
  char tmp[CLUE_PATH_MAX + 32];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return clue_fail(err, CLUE_EIO, "cannot create %s: %s", tmp, strerror(errno));
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, text + done, len - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      unlink(tmp);
      return clue_fail(err, CLUE_EIO, "cannot write %s: %s", tmp, strerror(e));
    }
    done += (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    int e = errno;
    unlink(tmp);
    return clue_fail(err, CLUE_EIO, "cannot write %s: %s", tmp, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return clue_fail(err, CLUE_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
  }
  return CLUE_OK;
}

char *clue_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  clue_strbuf b = {0};
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) clue_sb_append(&b, buf, n);
  bool bad = ferror(f) || b.failed;
  fclose(f);
  *len = b.n;
  if (bad) return clue_sb_free(&b), NULL;
  return b.s ? b.s : strdup("");
}
