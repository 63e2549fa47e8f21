/* comm.c — thin wrappers over MPI collectives, and error agreement. */
#include "clue/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

static clue_comm comm_view(MPI_Comm mc) {
  clue_comm c = {.comm = mc, .rank = 0, .size = 1};
  MPI_Comm_rank(mc, &c.rank);
  MPI_Comm_size(mc, &c.size);
  return c;
}

clue_comm clue_comm_world(void) { return comm_view(MPI_COMM_WORLD); }

clue_comm clue_comm_self(void) { return comm_view(MPI_COMM_SELF); }

int clue_ranks_per_node_emulated(void) {
  const char *v = getenv("CLUE_RANKS_PER_NODE");
  char *end;
  long n = v ? strtol(v, &end, 10) : 0;
  return v && *v && !*end && n > 0 && n < 1 << 20 ? (int)n : 0;
}

void clue_comm_node(const clue_comm *c, MPI_Comm *node) {
  MPI_Comm shared;
  MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &shared);
  int per = clue_ranks_per_node_emulated();
  if (!per) {
    *node = shared;
    return;
  }
  MPI_Comm_split(shared, c->rank / per, c->rank, node);
  MPI_Comm_free(&shared);
}

typedef struct err_packet {
  int code;
  char msg[CLUE_ERR_MSG_MAX];
} err_packet;

/* Collective. Rank `root`'s status and message, on every rank. */
static err_packet bcast_error(const clue_comm *c, int root, int status, const clue_err *err) {
  err_packet packet;
  memset(&packet, 0, sizeof packet);
  if (c->rank == root) {
    packet.code = status;
    if (err) memcpy(packet.msg, err->msg, sizeof packet.msg);
    packet.msg[CLUE_ERR_MSG_MAX - 1] = '\0';
  }
  MPI_Bcast(&packet, (int)sizeof packet, MPI_BYTE, root, c->comm);
  return packet;
}

int clue_comm_agree(const clue_comm *c, int status, clue_err *err) {
  /* Find the lowest failing rank: failing ranks contribute their rank. */
  int mine = status != CLUE_OK ? c->rank : c->size;
  int first = c->size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->comm);
  if (first == c->size) return CLUE_OK;
  err_packet packet = bcast_error(c, first, status, err);
  if (err) {
    /* a message agreed before already names its rank: do not name it twice */
    int named = -1, at = 0;
    bool prefixed = sscanf(packet.msg, "rank %d: %n", &named, &at) == 1 && at > 0;
    if (c->size > 1 && !prefixed)
      clue_fail(err, packet.code, "rank %d: %s", first, packet.msg);
    else
      clue_fail(err, packet.code, "%s", packet.msg);
  }
  return packet.code;
}

int clue_comm_agree_first(const clue_comm *c, int64_t key, int status, clue_err *err) {
  int64_t best = status != CLUE_OK ? key : INT64_MAX;
  MPI_Allreduce(MPI_IN_PLACE, &best, 1, MPI_INT64_T, MPI_MIN, c->comm);
  int mine = status != CLUE_OK && key == best ? c->rank : c->size, first = c->size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->comm);
  if (first == c->size) return CLUE_OK;
  err_packet packet = bcast_error(c, first, status, err);
  if (err) clue_fail(err, packet.code, "%s", packet.msg);
  return packet.code;
}

/* Bytes per message of clue_comm_exchange (MPI counts are int). */
#define EXCHANGE_PIECE ((int64_t)1 << 30)

static int64_t pieces(int64_t bytes) { return (bytes + EXCHANGE_PIECE - 1) / EXCHANGE_PIECE; }

/* Posts the messages of `bytes` bytes at p to or from rank r, in pieces. */
static void post_pieces(const clue_comm *c, char *p, int64_t bytes, int r, bool send,
                        MPI_Request *req, int *n_req) {
  for (int64_t off = 0; off < bytes; off += EXCHANGE_PIECE) {
    int m = (int)(bytes - off < EXCHANGE_PIECE ? bytes - off : EXCHANGE_PIECE);
    if (send)
      MPI_Isend(p + off, m, MPI_BYTE, r, 77, c->comm, &req[(*n_req)++]);
    else
      MPI_Irecv(p + off, m, MPI_BYTE, r, 77, c->comm, &req[(*n_req)++]);
  }
}

int clue_comm_exchange(const clue_comm *c, char *const *send, const int64_t *send_bytes,
                       void **recv, int64_t *recv_bytes, clue_err *err) {
  *recv = NULL;
  MPI_Alltoall(send_bytes, 1, MPI_INT64_T, recv_bytes, 1, MPI_INT64_T, c->comm);
  int64_t total = 0, n_msg = 0;
  for (int r = 0; r < c->size; r++) {
    total += recv_bytes[r];
    if (r != c->rank) n_msg += pieces(recv_bytes[r]) + pieces(send_bytes[r]);
  }
  char *in = clue_malloc((size_t)total + 1, err);
  MPI_Request *req = clue_malloc((size_t)n_msg * sizeof *req + 1, err);
  int rc = clue_comm_agree(c, (in && req) ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) {
    int n_req = 0;
    int64_t at_in = 0;
    for (int r = 0; r < c->size; r++) {
      if (r == c->rank && send_bytes[r] > 0)
        memcpy(in + at_in, send[r], (size_t)send_bytes[r]);
      else if (r != c->rank) {
        post_pieces(c, in + at_in, recv_bytes[r], r, false, req, &n_req);
        post_pieces(c, send[r], send_bytes[r], r, true, req, &n_req);
      }
      at_in += recv_bytes[r];
    }
    MPI_Waitall(n_req, req, MPI_STATUSES_IGNORE);
  }
  free(req);
  if (rc) {
    free(in);
    return rc;
  }
  *recv = in;
  return CLUE_OK;
}

/* MPI counts are int: reduce large buffers in chunks. */
#define COMM_CHUNK ((size_t)1 << 28)

static void sum_chunks(const clue_comm *c, void *buf, size_t n, size_t elem,
                       MPI_Datatype type, MPI_Op op) {
  if (c->size == 1) return;
  char *p = buf;
  while (n > 0) {
    size_t m = n < COMM_CHUNK ? n : COMM_CHUNK;
    MPI_Allreduce(MPI_IN_PLACE, p, (int)m, type, op, c->comm);
    p += m * elem;
    n -= m;
  }
}

void clue_comm_sum_double(const clue_comm *c, double *buf, size_t n) {
  sum_chunks(c, buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM);
}

void clue_comm_sum_float(const clue_comm *c, float *buf, size_t n) {
  sum_chunks(c, buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM);
}

void clue_comm_sum_int64(const clue_comm *c, int64_t *buf, size_t n) {
  sum_chunks(c, buf, n, sizeof *buf, MPI_INT64_T, MPI_SUM);
}

void clue_comm_max_int64(const clue_comm *c, int64_t *buf, size_t n) {
  sum_chunks(c, buf, n, sizeof *buf, MPI_INT64_T, MPI_MAX);
}

void clue_comm_min_int64(const clue_comm *c, int64_t *buf, size_t n) {
  sum_chunks(c, buf, n, sizeof *buf, MPI_INT64_T, MPI_MIN);
}

void clue_comm_max_double(const clue_comm *c, double *buf, size_t n) {
  sum_chunks(c, buf, n, sizeof *buf, MPI_DOUBLE, MPI_MAX);
}

void clue_comm_bcast(const clue_comm *c, void *buf, size_t n, int root) {
  if (c->size == 1) return;
  char *p = buf;
  while (n > 0) {
    size_t m = n < COMM_CHUNK ? n : COMM_CHUNK;
    MPI_Bcast(p, (int)m, MPI_BYTE, root, c->comm);
    p += m;
    n -= m;
  }
}

int clue_comm_bcast_string(const clue_comm *c, char **s, int root, clue_err *err) {
  int64_t len = (c->rank == root && *s) ? (int64_t)strlen(*s) : -1;
  clue_comm_bcast(c, &len, sizeof len, root);
  if (len < 0) {
    if (c->rank != root) {
      free(*s);
      *s = NULL;
    }
    return CLUE_OK;
  }
  int status = CLUE_OK;
  if (c->rank != root) {
    free(*s);
    *s = clue_malloc((size_t)len + 1, err);
    if (!*s) status = CLUE_ENOMEM;
  }
  status = clue_comm_agree(c, status, err);
  if (status != CLUE_OK) return status;
  clue_comm_bcast(c, *s, (size_t)len + 1, root);
  return CLUE_OK;
}

void clue_comm_barrier(const clue_comm *c) { MPI_Barrier(c->comm); }

void clue_partition_weighted(int64_t n, const int64_t *w, int size, int64_t *begin,
                             int64_t *end) {
  /* Greedy prefix split: range r ends at the first index whose prefix weight
   * reaches (r+1)/size of the total. Each item weighs at least 1 so that empty
   * rows still spread over the ranks. */
  double total = 0;
  for (int64_t i = 0; i < n; i++) total += (double)(w ? w[i] : 0) + 1.0;
  int64_t i = 0;
  double acc = 0;
  for (int r = 0; r < size; r++) {
    begin[r] = i;
    double goal = total * (double)(r + 1) / (double)size;
    while (i < n && (r == size - 1 || acc + 0.5 * ((double)(w ? w[i] : 0) + 1.0) < goal)) {
      acc += (double)(w ? w[i] : 0) + 1.0;
      i++;
    }
    end[r] = i;
  }
}

int clue_range_owner(const int64_t *begin, int size, int64_t x) {
  int lo = 0, hi = size; /* owner in [lo, hi) */
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (begin[mid] <= x)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}
