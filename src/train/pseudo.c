/* pseudo.c — partners for training cells that miss a modality: mutual nearest
 * neighbours across modalities, or the nearest paired cell, in the model's
 * current embedding (see pseudo.h). */
#include "clue/pseudo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/knn.h"
#include "clue/rng.h"

int clue_pseudo_new(const clue_dataset *d, clue_pseudo **out, clue_err *err) {
  *out = NULL;
  clue_pseudo *ps = clue_calloc(1, sizeof *ps, err);
  if (!ps) return CLUE_ENOMEM;
  ps->n_mod = d->n_mod;
  ps->local_begin = d->local_begin;
  ps->n_local = d->local_end - d->local_begin;
  ps->step = -1;
  ps->partner = clue_malloc((size_t)(ps->n_local * d->n_mod + 1) * sizeof *ps->partner, err);
  if (!ps->partner) {
    free(ps);
    return CLUE_ENOMEM;
  }
  for (int64_t i = 0; i < ps->n_local * d->n_mod; i++) ps->partner[i] = -1;
  *out = ps;
  return CLUE_OK;
}

void clue_pseudo_free(clue_pseudo *ps) {
  if (!ps) return;
  free(ps->partner);
  free(ps);
}

double clue_pseudo_weight(const clue_pseudo_config *cfg, int64_t first_step, int64_t step) {
  if (cfg->method == CLUE_PSEUDO_OFF || first_step < 0 || step < first_step) return 0;
  if (cfg->ramp <= 0) return cfg->weight;
  double f = (double)(step - first_step) / (double)cfg->ramp;
  return cfg->weight * (f < 1 ? f : 1);
}

/* ---- asking the ranks that hold cells ---- */

/* Answers one request of `width` values with `rwidth` values. */
typedef void (*answer_fn)(void *ctx, const int64_t *req, int64_t *reply);

/* Collective. Request i (width values at req + i·width) goes to rank dest[i];
 * that rank's answer lands at reply + i·rwidth. */
static int ask(const clue_comm *comm, const int *dest, const int64_t *req, int64_t n,
               int width, int rwidth, answer_fn answer, void *ctx, int64_t *reply,
               clue_err *err) {
  int P = comm->size;
  int64_t *count = clue_calloc((size_t)P + 1, sizeof *count, err);
  int64_t *order = clue_malloc((size_t)(n + 1) * sizeof *order, err);
  int64_t *send = clue_malloc((size_t)(n * width + 1) * sizeof *send, err);
  int64_t *sbytes = clue_calloc((size_t)P, sizeof *sbytes, err);
  int64_t *rbytes = clue_calloc((size_t)P, sizeof *rbytes, err);
  char **at = clue_calloc((size_t)P, sizeof *at, err);
  void *recv = NULL, *back = NULL;
  int64_t *ans = NULL;
  int rc = count && order && send && sbytes && rbytes && at ? CLUE_OK : CLUE_ENOMEM;
  if ((rc = clue_comm_agree(comm, rc, err))) goto done;
  for (int64_t i = 0; i < n; i++) count[dest[i] + 1]++;
  for (int r = 0; r < P; r++) count[r + 1] += count[r];
  for (int r = 0; r < P; r++) {
    at[r] = (char *)(send + count[r] * width);
    sbytes[r] = (count[r + 1] - count[r]) * width * (int64_t)sizeof *send;
  }
  for (int64_t i = 0; i < n; i++) { /* stable: requests keep their order per rank */
    int64_t slot = count[dest[i]]++;
    order[slot] = i;
    memcpy(send + slot * width, req + i * width, (size_t)width * sizeof *send);
  }
  if ((rc = clue_comm_exchange(comm, at, sbytes, &recv, rbytes, err))) goto done;
  int64_t n_in = 0;
  for (int r = 0; r < P; r++) n_in += rbytes[r] / (int64_t)(width * sizeof *send);
  ans = clue_malloc((size_t)(n_in * rwidth + 1) * sizeof *ans, err);
  if ((rc = clue_comm_agree(comm, ans ? CLUE_OK : CLUE_ENOMEM, err))) goto done;
  for (int64_t i = 0; i < n_in; i++)
    answer(ctx, (const int64_t *)recv + i * width, ans + i * rwidth);
  for (int r = 0, i = 0; r < P; r++) { /* the answers go back to where they came from */
    int64_t m = rbytes[r] / (int64_t)(width * sizeof *send);
    at[r] = (char *)(ans + (int64_t)i * rwidth);
    rbytes[r] = m * rwidth * (int64_t)sizeof *ans;
    i += (int)m;
  }
  if ((rc = clue_comm_exchange(comm, at, rbytes, &back, sbytes, err))) goto done;
  for (int64_t slot = 0; slot < n; slot++)
    memcpy(reply + order[slot] * rwidth, (const int64_t *)back + slot * rwidth,
           (size_t)rwidth * sizeof *reply);
done:
  free(count), free(order), free(send), free(sbytes), free(rbytes), free(at);
  free(recv), free(back), free(ans);
  return rc;
}

/* ---- one set of cells, embedded ---- */

/* This rank's training cells observed in `from` and (with_other true) also
 * observed in `other`, or (false) not, embedded from `from`, L2-normalised. */
typedef struct cell_set {
  int64_t n;          /* local cells */
  int64_t *cell;      /* (n) global cells, ascending */
  float *x;           /* (n × dim) */
  int64_t *begin;     /* (P + 1) every rank's first row in the set's global order */
} cell_set;

static void cell_set_free(cell_set *s) {
  free(s->cell);
  free(s->x);
  free(s->begin);
  memset(s, 0, sizeof *s);
}

static int64_t row_of(const clue_dataset *d, int64_t c, int k) {
  return d->local_row[(c - d->local_begin) * d->n_mod + k];
}

/* Which cells a set takes: observed in `from`, and in `other` or not. */
typedef struct set_rule {
  int from, other;
  bool with_other;
  int64_t max_cells; /* above this many, a keyed draw of about max_cells */
  uint64_t seed, draw; /* key of the draw (seed, step of the pairing) */
} set_rule;

/* Collective. This rank's cells of the rule into s->cell (ascending), s->n. */
static void select_cells(const clue_dataset *d, const clue_plan *p, const set_rule *q,
                         const clue_comm *comm, cell_set *s) {
  int64_t n = 0;
  for (int64_t c = d->local_begin; c < d->local_end; c++)
    if (clue_plan_is_train(p, c) && row_of(d, c, q->from) >= 0 &&
        (row_of(d, c, q->other) >= 0) == q->with_other)
      s->cell[n++] = c;
  int64_t total = n;
  clue_comm_sum_int64(comm, &total, 1);
  if (total > q->max_cells) { /* the same draw on any number of ranks */
    double keep = (double)q->max_cells / (double)total;
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
      clue_rng r = clue_rng_stream(q->seed, CLUE_RNG_PSEUDO, q->draw, (uint64_t)s->cell[i]);
      if (clue_rng_uniform(&r) < keep) s->cell[kept++] = s->cell[i];
    }
    n = kept;
  }
  s->n = n;
}

/* Collective. Fills s (see cell_set) with the cells of rule q. */
static int embed_set(const clue_model *m, clue_work *w, const clue_dataset *d,
                     const clue_inputs *in, const clue_plan *p, const set_rule *q,
                     const clue_comm *comm, cell_set *s, clue_err *err) {
  memset(s, 0, sizeof *s);
  int64_t n_local = d->local_end - d->local_begin;
  int from = q->from, R = in->enc_in[from], Kd = m->spec.n_mod * m->spec.latent_dim;
  s->cell = clue_malloc((size_t)(n_local + 1) * sizeof *s->cell, err);
  s->begin = clue_calloc((size_t)comm->size + 1, sizeof *s->begin, err);
  int rc = clue_comm_agree(comm, s->cell && s->begin ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) return rc;
  select_cells(d, p, q, comm, s);
  int64_t n = s->n;
  real *x = clue_malloc((size_t)(n * R + 1) * sizeof *x, err);
  s->x = clue_malloc((size_t)(n * Kd + 1) * sizeof *s->x, err);
  if (!x || !s->x) rc = CLUE_ENOMEM;
  for (int64_t i = 0; !rc && i < n; i++) {
    const float *src = in->enc[from] + row_of(d, s->cell[i], from) * R;
    for (int j = 0; j < R; j++) x[i * R + j] = (real)src[j];
  }
  if (!rc) rc = clue_model_embed(m, w, from, x, n, s->x, err);
  free(x);
  for (int64_t i = 0; !rc && i < n; i++) { /* cosine geometry, as snn matching */
    float *v = s->x + i * Kd;
    double ss = 0;
    for (int j = 0; j < Kd; j++) ss += (double)v[j] * v[j];
    float inv = (float)(ss > 1e-24 ? 1 / sqrt(ss) : 0);
    for (int j = 0; j < Kd; j++) v[j] *= inv;
  }
  if ((rc = clue_comm_agree(comm, rc, err))) return rc;
  MPI_Allgather(&s->n, 1, MPI_INT64_T, s->begin + 1, 1, MPI_INT64_T, comm->comm);
  for (int r = 0; r < comm->size; r++) s->begin[r + 1] += s->begin[r];
  return CLUE_OK;
}

static knn_points points_of(const cell_set *s, int dim, int rank, int size) {
  return (knn_points){.n_total = s->begin[size], .begin = s->begin[rank], .n = s->n,
                      .dim = dim, .x = s->x, .group = NULL};
}

/* ---- the search ---- */

typedef struct pair_ctx {
  const cell_set *ref;
  const knn_result *res; /* col_idx: the query rows nearest each local reference row */
  int k;
  bool mutual;           /* mnn: a pair counts only when the query is in col_idx */
  int64_t *best_pos;     /* (ref->n) mnn: position in col_idx of the best mutual query */
  int64_t *best_cell;    /* (ref->n) its cell */
} pair_ctx;

/* Request (reference row local to this rank, global query row, query cell) →
 * (reference cell, mutual). */
static void answer_pair(void *ctx, const int64_t *req, int64_t *reply) {
  pair_ctx *c = ctx;
  int64_t j = req[0], q = req[1];
  reply[0] = c->ref->cell[j];
  reply[1] = !c->mutual;
  if (!c->mutual) return;
  for (int t = 0; t < c->k; t++)
    if (c->res->col_idx[j * c->k + t] == q) {
      reply[1] = 1;
      if (t < c->best_pos[j]) c->best_pos[j] = t, c->best_cell[j] = req[2];
      break;
    }
}

/* Collective. Partners between cells of `query` (missing modality `give_q`) and
 * `ref` (for mnn: missing modality `give_r`; −1: the reference cells get none). */
static int match_sets(clue_pseudo *ps, const cell_set *query, const cell_set *ref, int k,
                      int give_q, int give_r, int dim, const clue_comm *comm, clue_err *err) {
  bool mutual = give_r >= 0;
  knn_points q = points_of(query, dim, comm->rank, comm->size);
  knn_points r = points_of(ref, dim, comm->rank, comm->size);
  knn_opts o = {.k_row = k, .k_col = mutual ? k : 0};
  knn_result *res = NULL;
  int rc = knn_scan(&q, &r, &o, comm, &res, err);
  if (rc) return rc;
  int64_t n = query->n * k, m = 0;
  int64_t *req = clue_malloc((size_t)(3 * n + 1) * sizeof *req, err);
  int64_t *rep = clue_malloc((size_t)(2 * n + 1) * sizeof *rep, err);
  int *dest = clue_malloc((size_t)(n + 1) * sizeof *dest, err);
  pair_ctx ctx = {.ref = ref, .res = res, .k = k, .mutual = mutual};
  ctx.best_pos = clue_malloc((size_t)(ref->n + 1) * sizeof *ctx.best_pos, err);
  ctx.best_cell = clue_malloc((size_t)(ref->n + 1) * sizeof *ctx.best_cell, err);
  rc = req && rep && dest && ctx.best_pos && ctx.best_cell ? CLUE_OK : CLUE_ENOMEM;
  if (!rc) {
    for (int64_t j = 0; j < ref->n; j++) ctx.best_pos[j] = k, ctx.best_cell[j] = -1;
    for (int64_t i = 0; i < query->n; i++)
      for (int t = 0; t < k; t++) {
        int64_t j = res->row_idx[i * k + t];
        if (j < 0) continue;
        dest[m] = clue_range_owner(ref->begin, comm->size, j);
        req[3 * m] = j - ref->begin[dest[m]];
        req[3 * m + 1] = query->begin[comm->rank] + i;
        req[3 * m + 2] = query->cell[i];
        m++;
      }
  }
  if ((rc = clue_comm_agree(comm, rc, err)) == CLUE_OK)
    rc = ask(comm, dest, req, m, 3, 2, answer_pair, &ctx, rep, err);
  if (!rc) {
    int K = ps->n_mod;
    for (int64_t a = 0, i = -1, last = -1; a < m; a++) { /* first mutual candidate */
      int64_t cell = req[3 * a + 2];
      if (cell != last) last = cell, i = cell - ps->local_begin;
      if (rep[2 * a + 1] && ps->partner[i * K + give_q] < 0)
        ps->partner[i * K + give_q] = rep[2 * a];
    }
    for (int64_t j = 0; mutual && j < ref->n; j++)
      if (ctx.best_cell[j] >= 0)
        ps->partner[(ref->cell[j] - ps->local_begin) * K + give_r] = ctx.best_cell[j];
  }
  free(req), free(rep), free(dest), free(ctx.best_pos), free(ctx.best_cell);
  knn_result_free(res);
  return rc;
}

int clue_pseudo_refresh(clue_pseudo *ps, const clue_pseudo_config *cfg, const clue_model *m,
                        clue_work *w, const clue_dataset *d, const clue_inputs *in,
                        const clue_plan *p, int64_t step, const clue_comm *comm,
                        clue_err *err) {
  int K = ps->n_mod, dim = K * m->spec.latent_dim, rc = CLUE_OK;
  for (int64_t i = 0; i < ps->n_local * K; i++) ps->partner[i] = -1;
  bool mnn = cfg->method == CLUE_PSEUDO_MNN;
  for (int a = 0; a < K && !rc; a++)
    for (int b = mnn ? a + 1 : 0; b < K && !rc; b++) {
      if (a == b) continue;
      cell_set q, r;
      set_rule rq = {.from = a, .other = b, .with_other = false, .max_cells = cfg->max_cells,
                     .seed = p->seed, .draw = (uint64_t)step};
      set_rule rr = {.from = mnn ? b : a, .other = mnn ? a : b, .with_other = !mnn,
                     .max_cells = cfg->max_cells, .seed = p->seed, .draw = (uint64_t)step};
      rc = embed_set(m, w, d, in, p, &rq, comm, &q, err);
      if (!rc) rc = embed_set(m, w, d, in, p, &rr, comm, &r, err);
      if (!rc && q.begin[comm->size] > 0 && r.begin[comm->size] > 0)
        rc = match_sets(ps, &q, &r, cfg->k, b, mnn ? a : -1, dim, comm, err);
      cell_set_free(&q);
      cell_set_free(&r);
    }
  if (rc) return rc;
  int64_t count[2] = {0, 0};
  for (int64_t c = d->local_begin; c < d->local_end; c++) {
    if (!clue_plan_is_train(p, c)) continue;
    int64_t i = c - d->local_begin;
    for (int k = 0; k < K; k++) {
      if (row_of(d, c, k) >= 0) continue;
      count[0] += ps->partner[i * K + k] >= 0;
      count[1]++;
    }
  }
  clue_comm_sum_int64(comm, count, 2);
  ps->n_pairs = count[0];
  ps->n_wanting = count[1];
  ps->step = step;
  return CLUE_OK;
}

/* ---- saving and loading ---- */

int clue_pseudo_gather(const clue_pseudo *ps, const clue_comm *comm, int64_t **triples,
                       int64_t *n, clue_err *err) {
  *triples = NULL;
  *n = 0;
  int K = ps->n_mod, P = comm->size;
  int64_t mine = 0;
  for (int64_t i = 0; i < ps->n_local * K; i++) mine += ps->partner[i] >= 0;
  int64_t *t = clue_malloc((size_t)(3 * mine + 1) * sizeof *t, err);
  int *counts = clue_calloc((size_t)P, sizeof *counts, err);
  int *disp = clue_calloc((size_t)P, sizeof *disp, err);
  int64_t total = mine;
  clue_comm_sum_int64(comm, &total, 1);
  int64_t *all = comm->rank == 0 ? clue_malloc((size_t)(3 * total + 1) * sizeof *all, err) : NULL;
  int rc = t && counts && disp && (comm->rank != 0 || all) ? CLUE_OK : CLUE_ENOMEM;
  if (!rc && 3 * total > INT32_MAX)
    rc = clue_fail(err, CLUE_EINVAL, "%lld pseudo-pairs: too many to gather for a checkpoint",
                   (long long)total);
  if ((rc = clue_comm_agree(comm, rc, err))) goto fail;
  int64_t at = 0;
  for (int64_t i = 0; i < ps->n_local; i++)
    for (int k = 0; k < K; k++)
      if (ps->partner[i * K + k] >= 0) {
        t[at++] = ps->local_begin + i;
        t[at++] = k;
        t[at++] = ps->partner[i * K + k];
      }
  int mine3 = (int)(3 * mine);
  MPI_Gather(&mine3, 1, MPI_INT, counts, 1, MPI_INT, 0, comm->comm);
  for (int r = 1; r < P; r++) disp[r] = disp[r - 1] + counts[r - 1];
  MPI_Gatherv(t, mine3, MPI_INT64_T, all, counts, disp, MPI_INT64_T, 0, comm->comm);
  free(t), free(counts), free(disp);
  *triples = all;
  *n = comm->rank == 0 ? total : 0;
  return CLUE_OK;
fail:
  free(t), free(counts), free(disp), free(all);
  return rc;
}

int clue_pseudo_set(clue_pseudo *ps, const int64_t *triples, int64_t n, int64_t n_cells,
                    int64_t step, const char *what, clue_err *err) {
  int K = ps->n_mod;
  for (int64_t i = 0; i < ps->n_local * K; i++) ps->partner[i] = -1;
  for (int64_t i = 0; i < n; i++) {
    int64_t c = triples[3 * i], k = triples[3 * i + 1], q = triples[3 * i + 2];
    if (c < 0 || c >= n_cells || k < 0 || k >= K || q < 0 || q >= n_cells || q == c)
      return clue_fail(err, CLUE_EFORMAT,
                       "%s: pseudo-pair %lld (cell %lld, modality %lld, partner %lld) does not "
                       "fit this data set of %lld cells and %d modalities",
                       what, (long long)i, (long long)c, (long long)k, (long long)q,
                       (long long)n_cells, K);
    if (c >= ps->local_begin && c < ps->local_begin + ps->n_local)
      ps->partner[(c - ps->local_begin) * K + k] = q;
  }
  ps->n_pairs = n;
  ps->step = step;
  return CLUE_OK;
}
