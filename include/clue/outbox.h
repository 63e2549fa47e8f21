/* outbox.h — records of any size addressed to ranks, collected per destination
 * and delivered in one clue_comm_exchange. Records are read back with a cursor;
 * fields are copied with memcpy, so no alignment is assumed. */
#ifndef CLUE_OUTBOX_H
#define CLUE_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/error.h"

typedef struct clue_outbox {
  int size;      /* number of destination ranks */
  char **buf;    /* (size) bytes addressed to each rank */
  int64_t *len;  /* (size) */
  int64_t *cap;  /* (size) */
  int failed;    /* an append ran out of memory */
} clue_outbox;

/* An empty outbox for the ranks of comm. */
int clue_outbox_init(clue_outbox *o, const clue_comm *comm, clue_err *err);

/* Appends n bytes to the record being written for rank dest. Out of memory is
 * remembered and reported by clue_outbox_deliver. */
void clue_outbox_put(clue_outbox *o, int dest, const void *data, size_t n);

/* Collective. Delivers every rank's records: *in (malloc'd) holds what was
 * addressed to this rank, by source rank in rank order, *in_len bytes in all;
 * from (NULL, or comm->size entries) receives the bytes from each rank. Empties
 * the outbox and frees its buffers (it may be filled again). Fails on every rank when one ran out of
 * memory. */
int clue_outbox_deliver(clue_outbox *o, const clue_comm *comm, char **in, int64_t *in_len,
                        int64_t *from, clue_err *err);

void clue_outbox_free(clue_outbox *o);

/* Answers one request (req, of the size given to clue_outbox_ask) from rank
 * asker: appends the answer, of any length, to answers for that rank. */
typedef void (*clue_answer_fn)(void *ctx, const char *req, clue_outbox *answers, int asker);

/* Collective. One round of questions and answers: questions holds requests of
 * req_bytes each, addressed to the ranks that hold what they ask about; every
 * rank answers what it received with answer(ctx, ...). *answers (malloc'd)
 * receives the answers to this rank's requests by answering rank, in rank
 * order, each rank's answers in the order asked; start (comm->size entries)
 * receives the offset of each rank's answers. Empties questions. */
int clue_outbox_ask(clue_outbox *questions, size_t req_bytes, clue_answer_fn answer,
                    void *ctx, const clue_comm *comm, char **answers, int64_t *start,
                    clue_err *err);

/* Reads n bytes at *at from a delivered buffer and advances *at. */
static inline void clue_inbox_take(const char *in, int64_t *at, void *out, size_t n) {
  for (size_t i = 0; i < n; i++) ((char *)out)[i] = in[*at + (int64_t)i];
  *at += (int64_t)n;
}

#endif
