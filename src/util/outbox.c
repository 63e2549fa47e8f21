/* outbox.c — per-destination byte buffers for clue_comm_exchange. */
#include "clue/outbox.h"

#include <stdlib.h>
#include <string.h>

int clue_outbox_init(clue_outbox *o, const clue_comm *comm, clue_err *err) {
  memset(o, 0, sizeof *o);
  o->size = comm->size;
  o->buf = clue_calloc((size_t)comm->size, sizeof *o->buf, err);
  o->len = clue_calloc((size_t)comm->size, sizeof *o->len, err);
  o->cap = clue_calloc((size_t)comm->size, sizeof *o->cap, err);
  int rc = (o->buf && o->len && o->cap) ? CLUE_OK : CLUE_ENOMEM;
  return clue_comm_agree(comm, rc, err);
}

void clue_outbox_put(clue_outbox *o, int dest, const void *data, size_t n) {
  if (o->failed) return;
  if (o->len[dest] + (int64_t)n > o->cap[dest]) {
    int64_t cap = o->cap[dest] ? 2 * o->cap[dest] : 4096;
    while (cap < o->len[dest] + (int64_t)n) cap *= 2;
    char *b = realloc(o->buf[dest], (size_t)cap);
    if (!b) {
      o->failed = 1;
      return;
    }
    o->buf[dest] = b;
    o->cap[dest] = cap;
  }
  memcpy(o->buf[dest] + o->len[dest], data, n);
  o->len[dest] += (int64_t)n;
}

/* Empties the outbox, freeing its buffers. */
static void outbox_clear(clue_outbox *o) {
  for (int r = 0; r < o->size; r++) {
    free(o->buf[r]);
    o->buf[r] = NULL;
    o->len[r] = o->cap[r] = 0;
  }
  o->failed = 0;
}

int clue_outbox_deliver(clue_outbox *o, const clue_comm *comm, char **in, int64_t *in_len,
                        int64_t *from, clue_err *err) {
  *in = NULL;
  *in_len = 0;
  int64_t *got = clue_malloc((size_t)o->size * sizeof *got, err);
  int rc = clue_comm_agree(comm, (got && !o->failed) ? CLUE_OK : CLUE_ENOMEM, err);
  void *recv = NULL;
  if (rc == CLUE_OK && o->size == 1) { /* to itself: the buffer changes hands */
    recv = o->buf[0] ? o->buf[0] : clue_malloc(1, err);
    o->buf[0] = NULL;
    got[0] = o->len[0];
    rc = recv ? CLUE_OK : CLUE_ENOMEM;
  } else if (rc == CLUE_OK) {
    rc = clue_comm_exchange(comm, o->buf, o->len, &recv, got, err);
  }
  if (rc == CLUE_OK) {
    *in = recv;
    for (int r = 0; r < o->size; r++) *in_len += got[r];
    if (from) memcpy(from, got, (size_t)o->size * sizeof *from);
  }
  outbox_clear(o);
  free(got);
  return rc;
}

void clue_outbox_free(clue_outbox *o) {
  if (o->buf)
    for (int r = 0; r < o->size; r++) free(o->buf[r]);
  free(o->buf);
  free(o->len);
  free(o->cap);
  memset(o, 0, sizeof *o);
}

/* Answers every request of `in` (from[r] bytes from rank r) into box. */
static void answer_all(const char *in, const int64_t *from, int size, size_t req_bytes,
                       clue_answer_fn answer, void *ctx, clue_outbox *box) {
  int64_t at = 0;
  for (int r = 0; r < size; r++)
    for (int64_t end = at + from[r]; at < end; at += (int64_t)req_bytes)
      answer(ctx, in + at, box, r);
}

int clue_outbox_ask(clue_outbox *questions, size_t req_bytes, clue_answer_fn answer,
                    void *ctx, const clue_comm *comm, char **answers, int64_t *start,
                    clue_err *err) {
  *answers = NULL;
  char *in = NULL;
  int64_t len = 0;
  int rc = clue_outbox_deliver(questions, comm, &in, &len, start, err);
  clue_outbox box;
  if (rc == CLUE_OK) rc = clue_outbox_init(&box, comm, err);
  if (rc) {
    free(in);
    return rc;
  }
  answer_all(in, start, comm->size, req_bytes, answer, ctx, &box);
  free(in);
  rc = clue_outbox_deliver(&box, comm, answers, &len, start, err);
  clue_outbox_free(&box);
  int64_t at = 0;
  for (int r = 0; rc == CLUE_OK && r < comm->size; r++) {
    int64_t n = start[r];
    start[r] = at;
    at += n;
  }
  return rc;
}
