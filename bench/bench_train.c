/* bench_train.c — speed of a CLUE training step (discriminator step + generator
 * step, with gradient allreduce and RMSprop, exactly clue_train_step) at the
 * competition shapes on synthetic data, against this machine's sgemm rate at the
 * step's own GEMM shapes measured in the same run. Also times dataset loading.
 * Not a test; bench/run.sh runs the whole suite.
 *
 *   OPENBLAS_NUM_THREADS=1 mpirun -np P bench_train [--shape multiome|cite|large]...
 *       [--steps N] [--warmup N] [--batch B] [--weak] [--batches NB] [--pool N]
 *       [--json FILE] [--md FILE] [--label TEXT] [--no-replay] [--mpi-allreduce]
 *       [--no-split] [--no-enc-split] [--tile F] [--per-rank] [--interleave [--turn K]]
 *   mpirun -np P bench_train --load CONFIG [--json FILE] [--md FILE]
 *   mpirun -np P bench_train --allreduce MB
 *
 * The step's data bypass preprocessing: encoder inputs are N(0, 1) vectors of
 * width 100 and the decoder targets are simulated counts of the decoded features
 * (sim.h: negative binomial RNA at 10 % nonzeros, binary ATAC at 3 %, ADT at
 * 90 %), every cell paired. Strong scaling (default) splits the global batch B
 * over the P ranks; --weak gives every rank B rows (global batch P·B). On one
 * node the decoders' output layers are split by features over the ranks and the
 * encoders given each to one rank, as in clue train (clue_work_split_outputs,
 * clue_work_split_encoders); --no-split keeps every layer on every rank,
 * --no-enc-split every encoder (the output layers still split);
 * --tile F sets the features per tile of their weight gradients (default 512;
 * a width past every slice means one tile per rank: no rank takes another's).
 * --per-rank also prints each rank's split of the step. --interleave alternates
 * single steps of one rank alone (rank 0; the others asleep) and of all ranks,
 * and prints the median speed-up of those pairs (drift over seconds cancels);
 * --turn K runs K steps per turn and times the mean of all but the first (each
 * turn's first step finds the caches full of the other rig's data).
 *
 * Figures: median wall seconds per step (slowest rank), cells/s (global rows of
 * the minibatch per second), GEMM flops of the step counted from the shapes
 * (forward, weight gradient, and input gradient where one is needed; checked
 * against the flops the layers actually ran), the "sgemm bound" = time of the
 * step's GEMM calls (same shapes and transposes, as often as the step calls them)
 * replayed alone back to back right after each timed step, all ranks at once
 * (median; paired with the steps so that a drifting machine speed cancels in the
 * ratio), the split of the step into sections (prof.h, mean over steps and
 * ranks), bytes summed over ranks, bytes each rank sends to other nodes' ranks per
 * step (the layout of clue train, layout.h: nodes emulated with
 * CLUE_RANKS_PER_NODE on one machine), peak RSS. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "clue/blas_core.h"
#include "clue/dataset.h"
#include "clue/gradsum.h"
#include "clue/layout.h"
#include "clue/model.h"
#include "clue/optim.h"
#include "clue/prof.h"
#include "clue/rng.h"
#include "clue/sim.h"
#include "clue/train.h"

#define MAX_SHAPES 8
#define MAX_GEMMS 64

typedef struct bench_args {
  char shapes[MAX_SHAPES][32];
  int n_shapes;
  int steps, warmup, B, n_batches, pool;
  int turn; /* --interleave: steps per turn of a rig (the first not timed when > 1) */
  bool weak, replay, mpi_allreduce, split, enc_split, per_rank, interleave;
  int tile; /* 0: the default */
  const char *json, *md, *label, *load;
  double allreduce_mb; /* > 0: time an allreduce of this many MB of floats */
} bench_args;

/* ---- shapes ---- */

typedef struct shape {
  const char *name;
  clue_model_spec spec;
  clue_loss_weights lw;
  int sim_mod[CLUE_K];       /* simulator modality of each model modality */
  double ref_lo, ref_hi;     /* PyTorch reference s/step (0: none) */
} shape;

static void spec_common(clue_model_spec *s, int nb) {
  memset(s, 0, sizeof *s);
  s->n_mod = 2;
  s->n_batches = nb;
  s->dropout = 0.2;
  s->normalize_u = true;
}

static void set_mod(shape *sh, int k, const char *name, clue_likelihood lik, int F, int sim) {
  snprintf(sh->spec.names[k], sizeof sh->spec.names[k], "%s", name);
  sh->spec.lik[k] = lik;
  sh->spec.enc_in[k] = 100;
  sh->spec.n_feat[k] = F;
  sh->sim_mod[k] = sim;
}

/* Multiome / CITE hyper-parameters and loss weights of configs/{multiome,cite}.yaml. */
static int shape_get(const char *name, int nb, shape *sh) {
  memset(sh, 0, sizeof *sh);
  spec_common(&sh->spec, nb);
  clue_loss_weights *w = &sh->lw;
  w->mod_weight[0] = w->mod_weight[1] = 1;
  bool multiome = !strcmp(name, "multiome") || !strcmp(name, "large");
  if (multiome) {
    sh->spec.latent_dim = 50;
    sh->spec.encoder = (clue_mlp_config){2, 512};
    sh->spec.decoder = (clue_mlp_config){1, 256};
    sh->spec.discriminator = (clue_mlp_config){1, 256};
    *w = (clue_loss_weights){.data = 1, .kl = 0.3, .align = 0.02, .cross = 1, .cos = 0.02,
                             .mod_weight = {1, 1}};
    bool large = !strcmp(name, "large");
    set_mod(sh, 0, "rna", CLUE_LIK_NB, large ? 20000 : 10000, SIM_RNA);
    set_mod(sh, 1, "atac", CLUE_LIK_BERNOULLI, large ? 100000 : 30000, SIM_ATAC);
    sh->ref_lo = large ? 6.4 : 1.3;
    sh->ref_hi = large ? 7.7 : 1.5;
  } else if (!strcmp(name, "cite")) {
    sh->spec.latent_dim = 20;
    sh->spec.encoder = (clue_mlp_config){2, 512};
    sh->spec.decoder = (clue_mlp_config){1, 128};
    sh->spec.discriminator = (clue_mlp_config){2, 128};
    *w = (clue_loss_weights){.data = 1, .kl = 1, .align = 2, .cross = 2, .cos = 1,
                             .mod_weight = {1, 1}};
    set_mod(sh, 0, "rna", CLUE_LIK_NB, 5000, SIM_RNA);
    set_mod(sh, 1, "adt", CLUE_LIK_NB, 134, SIM_ADT);
  } else {
    return -1;
  }
  sh->name = name;
  return 0;
}

/* shape_get, saying so on rank 0 when there is no shape called name (then -1). */
static int shape_lookup(const bench_args *a, const char *name, const clue_comm *c, shape *sh) {
  if (!shape_get(name, a->n_batches, sh)) return 0;
  if (c->rank == 0) fprintf(stderr, "bench_train: unknown shape %s\n", name);
  return -1;
}

/* ---- the GEMMs of a step, from the shapes ---- */

typedef struct gemm_shape {
  bool ta, tb;
  int m, n, k;
  int count;
  double seconds; /* one call, replayed */
} gemm_shape;

typedef struct gemm_list {
  int n;
  gemm_shape g[MAX_GEMMS];
} gemm_list;

static void gemm_add(gemm_list *l, bool ta, bool tb, int m, int n, int k) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  for (int i = 0; i < l->n; i++) {
    gemm_shape *g = &l->g[i];
    if (g->ta == ta && g->tb == tb && g->m == m && g->n == n && g->k == k) {
      g->count++;
      return;
    }
  }
  if (l->n < MAX_GEMMS) l->g[l->n++] = (gemm_shape){ta, tb, m, n, k, 1, 0};
}

/* A linear layer in → out on `rows` rows: forward, and with bwd its weight
 * gradient and (with dx) its input gradient. */
static void gemm_linear(gemm_list *l, int rows, int in, int out, bool bwd, bool dx) {
  gemm_add(l, false, true, rows, out, in);
  if (!bwd) return;
  gemm_add(l, true, false, out, in, rows);
  if (dx) gemm_add(l, false, false, rows, in, out);
}

/* A stack (nn_mlp): depth layers of width, one-hot columns at the input (and
 * after every layer when every); dx0: the input gradient is needed. */
static void gemm_mlp(gemm_list *l, int rows, int in, int width, int depth, int onehot,
                     bool every, bool bwd, bool dx0) {
  for (int i = 0; i < depth; i++) {
    int in_i = (i == 0 ? in : width) + ((i == 0 || every) ? onehot : 0);
    gemm_linear(l, rows, in_i, width, bwd, i > 0 || dx0);
  }
}

static int stack_out(int in, int width, int depth, int onehot, bool every) {
  if (depth == 0) return in + onehot;
  return width + (every ? onehot : 0);
}

/* Every GEMM of one step with n local rows per modality (all cells paired); with
 * split (clue_work_split_outputs), the output layers run on all B_all rows for
 * this rank's slice of features; with the encoders split (w:
 * clue_work_split_encoders), this rank's encoders run on all B_all rows and the
 * others not here. */
static void step_gemms(const shape *sh, int n, bool split, int B_all, const clue_comm *cm,
                       const clue_work *w, gemm_list *l) {
  const clue_model_spec *s = &sh->spec;
  int K = s->n_mod, d = s->latent_dim, nb = s->n_batches;
  int nbd = nb > 1 ? nb : 0;
  memset(l, 0, sizeof *l);
  for (int pass = 0; pass < 2; pass++) { /* 0: discriminator step, 1: generator step */
    bool g = pass == 1;
    for (int k = 0; k < K; k++)
      for (int j = 0; j < K; j++) {
        int q = clue_work_encoder_owner(w, k, j), rows = q < 0 ? n : B_all;
        if (q >= 0 && q != cm->rank) continue;
        gemm_mlp(l, rows, s->enc_in[k], s->encoder.width, s->encoder.depth, 0, false, g, false);
        int h = stack_out(s->enc_in[k], s->encoder.width, s->encoder.depth, 0, false);
        gemm_linear(l, rows, h, d, g, true);
        gemm_linear(l, rows, h, d, g, true);
      }
    const clue_mlp_config *dc = &s->discriminator;
    gemm_mlp(l, K * n, K * d, dc->width, dc->depth, nbd, false, true, g);
    gemm_linear(l, K * n, stack_out(K * d, dc->width, dc->depth, nbd, false), K, true, true);
    if (!g) continue;
    /* Self + joint cross (every cell paired): the stack per application, the
     * output layer once over both applications' rows. */
    int apps = 1 + (sh->lw.cross != 0);
    for (int k = 0; k < K; k++) {
      const clue_mlp_config *c = &s->decoder;
      for (int a = 0; a < apps; a++) gemm_mlp(l, n, d, c->width, c->depth, nb, true, true, true);
      int hw = stack_out(d, c->width, c->depth, nb, true), F = s->n_feat[k];
      if (split)
        gemm_linear(l, apps * B_all, hw,
                    clue_out_slice_begin(F, cm->size, cm->rank + 1) -
                        clue_out_slice_begin(F, cm->size, cm->rank),
                    true, true);
      else
        gemm_linear(l, apps * n, hw, F, true, true);
    }
  }
}

static double gemm_flops(const gemm_list *l) {
  double f = 0;
  for (int i = 0; i < l->n; i++)
    f += 2.0 * l->g[i].m * (double)l->g[i].n * l->g[i].k * l->g[i].count;
  return f;
}

static void gemm_call(const gemm_shape *g, const float *A, const float *B, float *C) {
  int lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
  cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
              g->tb ? CblasTrans : CblasNoTrans, g->m, g->n, g->k, 1.0f, A, lda, B, ldb,
              1.0f, C, g->n);
}

/* Times each distinct GEMM alone (all ranks at once); returns the time of the
 * step's GEMMs back to back (the slowest rank's). */
static double gemm_replay(const clue_comm *c, gemm_list *l) {
  double total = 0;
  for (int i = 0; i < l->n; i++) {
    gemm_shape *g = &l->g[i];
    size_t a = (size_t)g->m * g->k, b = (size_t)g->k * g->n, cc = (size_t)g->m * g->n;
    float *A = malloc(a * sizeof *A), *B = malloc(b * sizeof *B), *C = calloc(cc, sizeof *C);
    for (size_t q = 0; q < a; q++) A[q] = (float)(q % 13) * 0.01f;
    for (size_t q = 0; q < b; q++) B[q] = (float)(q % 7) * 0.01f;
    gemm_call(g, A, B, C);
    clue_comm_barrier(c);
    int reps = 0;
    double t0 = MPI_Wtime(), t = 0;
    while (t < 0.15 || reps < 3) {
      gemm_call(g, A, B, C);
      reps++;
      t = MPI_Wtime() - t0;
    }
    g->seconds = t / reps;
    clue_comm_max_double(c, &g->seconds, 1);
    total += g->seconds * g->count;
    free(A);
    free(B);
    free(C);
  }
  return total;
}

/* Buffers big enough for every GEMM of a list. */
typedef struct replay_bufs {
  float *A, *B, *C;
} replay_bufs;

static int replay_bufs_new(const gemm_list *l, replay_bufs *rb) {
  size_t a = 1, b = 1, c = 1;
  for (int i = 0; i < l->n; i++) {
    const gemm_shape *g = &l->g[i];
    if ((size_t)g->m * g->k > a) a = (size_t)g->m * g->k;
    if ((size_t)g->k * g->n > b) b = (size_t)g->k * g->n;
    if ((size_t)g->m * g->n > c) c = (size_t)g->m * g->n;
  }
  rb->A = malloc(a * sizeof(float));
  rb->B = malloc(b * sizeof(float));
  rb->C = calloc(c, sizeof(float));
  if (!rb->A || !rb->B || !rb->C) return -1;
  for (size_t q = 0; q < a; q++) rb->A[q] = (float)(q % 13) * 0.01f;
  for (size_t q = 0; q < b; q++) rb->B[q] = (float)(q % 7) * 0.01f;
  return 0;
}

static void replay_bufs_free(replay_bufs *rb) {
  free(rb->A);
  free(rb->B);
  free(rb->C);
}

/* Seconds of one pass over the step's GEMMs (each as often as the step calls
 * it), all ranks at once; the slowest rank's. */
static double gemm_replay_once(const clue_comm *c, const gemm_list *l, const replay_bufs *rb) {
  clue_comm_barrier(c);
  double t0 = MPI_Wtime();
  for (int i = 0; i < l->n; i++)
    for (int k = 0; k < l->g[i].count; k++) gemm_call(&l->g[i], rb->A, rb->B, rb->C);
  double t = MPI_Wtime() - t0;
  clue_comm_max_double(c, &t, 1);
  return t;
}

/* sgemm GFLOP/s at m × n × k (NoTrans, Trans), all ranks at once (summed). */
static double sgemm_rate(const clue_comm *c, int m, int n, int k) {
  gemm_list l = {0};
  gemm_add(&l, false, true, m, n, k);
  double t = gemm_replay(c, &l);
  double rate = 2.0 * m * (double)n * k / t / 1e9;
  clue_comm_sum_double(c, &rate, 1);
  return rate;
}

/* ---- data ---- */

typedef struct bench_data {
  int pool;                  /* cells of this rank */
  int32_t *batch;            /* (pool) */
  float *enc[CLUE_K];        /* (pool × 100) */
  clue_csr *target[CLUE_K];  /* (pool × F_k) */
  double density[CLUE_K];    /* nonzero fraction of the targets */
} bench_data;

static int data_new(const shape *sh, int pool, const clue_comm *c, bench_data *bd,
                    clue_err *err) {
  memset(bd, 0, sizeof *bd);
  sim_options o;
  sim_options_defaults(&o);
  o.n_cells = (int64_t)pool * c->size;
  for (int m = 0; m < SIM_N_MOD; m++) o.n_features[m] = 0;
  for (int k = 0; k < sh->spec.n_mod; k++) o.n_features[sh->sim_mod[k]] = sh->spec.n_feat[k];
  o.density[SIM_RNA] = 0.10;
  o.density[SIM_ATAC] = 0.03;
  o.density[SIM_ADT] = 0.9;
  o.atac_binary = true;
  o.paired = 1;
  o.n_batches = sh->spec.n_batches;
  o.seed = 7;
  int rc = sim_options_check(&o, err);
  sim_model *sm = NULL;
  if (!rc) rc = sim_model_new(&o, &sm, err);
  if (rc) return rc;
  int64_t begin = (int64_t)pool * c->rank;
  bd->pool = pool;
  bd->batch = malloc(sizeof *bd->batch * (size_t)pool);
  for (int i = 0; i < pool; i++) {
    sim_cell cell;
    sim_cell_get(sm, begin + i, &cell);
    bd->batch[i] = cell.batch;
  }
  for (int k = 0; k < sh->spec.n_mod && !rc; k++) {
    rc = sim_generate(sm, sh->sim_mod[k], begin, begin + pool, &bd->target[k], NULL, err);
    if (rc) break;
    bd->density[k] = (double)clue_csr_nnz(bd->target[k]) / ((double)pool * sh->spec.n_feat[k]);
    int R = sh->spec.enc_in[k];
    bd->enc[k] = malloc(sizeof(float) * (size_t)pool * R);
    for (int i = 0; i < pool; i++) {
      clue_rng r = clue_rng_stream(11, CLUE_RNG_TEST, (uint64_t)k, (uint64_t)(begin + i));
      for (int q = 0; q < R; q++) bd->enc[k][(int64_t)i * R + q] = (float)clue_rng_normal(&r);
    }
  }
  sim_model_free(sm);
  return rc;
}

static void data_free(bench_data *bd) {
  free(bd->batch);
  for (int k = 0; k < CLUE_K; k++) {
    free(bd->enc[k]);
    clue_csr_free(bd->target[k]);
  }
}

/* This rank's n rows of minibatch `step` (global batch B, positions from pos0):
 * every row paired, cells taken from the pool in turn. */
static void fill(const shape *sh, const bench_data *bd, int step, int n, int B, int pos0,
                 clue_minibatch *mb) {
  int K = sh->spec.n_mod;
  mb->B = B;
  mb->n_joint = n;
  for (int k = 0; k < K; k++) {
    mb->n_obs[k] = B;
    for (int j = 0; j < K; j++) mb->n_pair[k][j] = B;
    mb->mod[k].n = n;
    mb->mod[k].target = bd->target[k];
  }
  for (int i = 0; i < n; i++) {
    int cell = (int)(((int64_t)step * n + i) % bd->pool);
    mb->joint_pos[i] = pos0 + i;
    mb->joint_batch[i] = bd->batch[cell];
    for (int k = 0; k < K; k++) {
      clue_mod_rows *r = &mb->mod[k];
      int R = sh->spec.enc_in[k];
      r->pos[i] = pos0 + i;
      r->trow[i] = cell;
      r->batch[i] = bd->batch[cell];
      for (int q = 0; q < R; q++) r->enc_in[(int64_t)i * R + q] = (real)bd->enc[k][(int64_t)cell * R + q];
      mb->joint_row[i * CLUE_K + k] = i;
    }
  }
}

/* ---- one shape ---- */

typedef struct result {
  double med, p10, p90;       /* s/step */
  double sec[CLUE_PROF_N];    /* mean s/step per section (slowest rank's step) */
  double calls[CLUE_PROF_N];  /* mean entries per step and section (this rank) */
  double flops, flops_run;    /* from the shapes; as counted by the layers */
  double bound;               /* sgemm replay of the step's GEMMs (s) */
  double rate2048;            /* sgemm GFLOP/s at 2048³, all ranks */
  double allreduce_bytes, coll_bytes;
  double rss_mib;
  double params, density[CLUE_K];
  double loss_first, loss_last;
  bool shared_sum;            /* gradients summed through shared memory */
  double across_bytes;        /* per step and rank, sent to other nodes' ranks */
  char layout[320];           /* clue_layout_describe */
} result;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double peak_mib(const clue_comm *c) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double m = (double)ru.ru_maxrss / 1024.0;
  clue_comm_max_double(c, &m, 1);
  return m;
}

/* Collective. Rank 0 prints every rank's split of the step (mean seconds per
 * step and section, and in brackets the section's entries per step), one line
 * per rank: waiting at a collective shows up on the rank that was ahead. */
/* taken: tiles of other ranks' weight gradients this rank ran per step. */
static void print_rank_split(const clue_comm *c, const result *r, double taken) {
  enum { N = 2 * CLUE_PROF_N + 1 };
  double mine[N];
  memcpy(mine, r->sec, sizeof r->sec);
  memcpy(mine + CLUE_PROF_N, r->calls, sizeof r->calls);
  mine[N - 1] = taken;
  double *all = c->rank == 0 ? calloc((size_t)c->size * N, sizeof *all) : NULL;
  MPI_Gather(mine, N, MPI_DOUBLE, all, N, MPI_DOUBLE, 0, c->comm);
  if (c->rank != 0) return;
  for (int q = 0; all && q < c->size; q++) {
    const double *sec = all + q * N, *calls = sec + CLUE_PROF_N;
    printf("rank %d split:", q);
    for (int i = 0; i < CLUE_PROF_N; i++)
      if (sec[i] > 0) printf(" %s %.4f (%.0f)", clue_prof_label(i), sec[i], calls[i]);
    printf("; tiles of other ranks %.1f\n", sec[N - 1]);
  }
  free(all);
}

/* Runs warm-up + timed steps; after each timed step (with a->replay) the step's
 * GEMMs alone, so that the step and its sgemm bound are sampled side by side on a
 * machine whose speed drifts. Fills the timing part of r. */
static int time_steps(const bench_args *a, const shape *sh, const bench_data *bd,
                      clue_model *m, clue_work *w, clue_minibatch *mb, int n, int B,
                      int pos0, const gemm_list *gl, const clue_comm *c,
                      const clue_layout *lay, result *r, clue_err *err) {
  clue_optim od, og;
  int rc = clue_optim_init(&od, CLUE_OPT_RMSPROP, 2e-3, m->disc.n, err);
  if (!rc) rc = clue_optim_init(&og, CLUE_OPT_RMSPROP, 2e-3, m->gen.n, err);
  if (rc) return rc;
  clue_gradsum *gs = NULL;
  clue_arena *arenas[2] = {&m->gen, &m->disc}; /* as clue train does */
  if ((rc = clue_layout_gradsum_new(lay, m->gen.n + m->disc.n, !a->mpi_allreduce, &gs, err)) ||
      (rc = clue_gradsum_attach(gs, arenas, 2, err)) ||
      (rc = clue_train_split_grads(gs, m, w, err)))
    return rc;
  r->shared_sum = clue_gradsum_shared(gs);
  int64_t taken0 = clue_work_tiles_taken(w);
  double across0 = 0;
  double *times = calloc((size_t)a->steps + 1, sizeof *times);
  double *bounds = calloc((size_t)a->steps + 1, sizeof *bounds);
  replay_bufs rb = {0};
  clue_prof_enable(true);
  for (int s = 0; s < a->warmup + a->steps && !rc; s++) {
    if (s == a->warmup) across0 = clue_gradsum_across_bytes(gs);
    clue_comm_barrier(c);
    clue_prof_reset();
    double t0 = MPI_Wtime();
    clue_prof_push(CLUE_PROF_IO);
    fill(sh, bd, s, n, B, pos0, mb);
    clue_prof_pop();
    clue_pass p = {.seed = 1, .pass = 2 * (uint64_t)s, .disc_noise = 0.5, .train = true};
    clue_losses l;
    rc = clue_train_step_gs(m, w, mb, &sh->lw, &p, &od, &og, gs, c, &l, err);
    double dt = MPI_Wtime() - t0;
    clue_prof pr;
    clue_prof_read(&pr);
    clue_comm_max_double(c, &dt, 1);
    if (s == 0) r->loss_first = l.gen;
    r->loss_last = l.gen;
    if (s < a->warmup) continue;
    if (s == a->warmup) {
      r->rss_mib = peak_mib(c); /* before the replay's buffers */
      if (a->replay && replay_bufs_new(gl, &rb)) rc = clue_fail(err, CLUE_ENOMEM, "replay buffers");
    }
    times[s - a->warmup] = dt;
    if (a->replay && !rc) bounds[s - a->warmup] = gemm_replay_once(c, gl, &rb);
    /* sections of the slowest rank are not separable: take this rank's, averaged
     * over ranks below */
    for (int q = 0; q < CLUE_PROF_N; q++) {
      r->sec[q] += pr.seconds[q] / a->steps;
      r->calls[q] += (double)pr.calls[q] / a->steps;
    }
    r->flops_run = pr.gemm_flops;
    r->allreduce_bytes = pr.allreduce_bytes;
    r->coll_bytes = pr.coll_bytes;
  }
  r->across_bytes = lay->hybrid ? (clue_gradsum_across_bytes(gs) - across0) / a->steps
                    : lay->nodes > 1 ? r->allreduce_bytes : 0;
  clue_prof_enable(false);
  rc = clue_comm_agree(c, rc, err);
  if (!rc) {
    qsort(times, (size_t)a->steps, sizeof *times, cmp_double);
    r->med = times[a->steps / 2];
    r->p10 = times[a->steps / 10];
    r->p90 = times[(a->steps * 9) / 10 < a->steps ? (a->steps * 9) / 10 : a->steps - 1];
    qsort(bounds, (size_t)a->steps, sizeof *bounds, cmp_double);
    r->bound = a->replay ? bounds[a->steps / 2] : 0;
    if (a->per_rank)
      print_rank_split(c, r, (double)(clue_work_tiles_taken(w) - taken0) / (a->steps + a->warmup));
    clue_comm_sum_double(c, r->sec, CLUE_PROF_N);
    for (int q = 0; q < CLUE_PROF_N; q++) r->sec[q] /= c->size;
    clue_comm_sum_double(c, &r->flops_run, 1);
  }
  free(times);
  free(bounds);
  replay_bufs_free(&rb);
  clue_gradsum_free(gs);
  clue_optim_release(&od);
  clue_optim_release(&og);
  return rc;
}

static void print_result(const bench_args *a, const shape *sh, const clue_comm *c, int B,
                         const result *r) {
  if (c->rank != 0) return;
  int threads = openblas_get_num_threads();
  double gf = r->flops / 1e9;
  double tot = 0;
  for (int q = 0; q < CLUE_PROF_N; q++) tot += r->sec[q];
  printf("\n== %s  ranks %d  OpenBLAS threads %d  %s scaling  global batch %d (%d/rank)"
         "  batches %d ==\n", sh->name, c->size, threads, a->weak ? "weak" : "strong", B,
         B / c->size, sh->spec.n_batches);
  char blas[CLUE_BLAS_LINE_MAX];
  printf("BLAS: %s\n", clue_blas_describe(blas, sizeof blas));
  printf("features: %s %d (%.1f %% nonzero), %s %d (%.1f %% nonzero); %.1f M parameters\n",
         sh->spec.names[0], sh->spec.n_feat[0], 100 * r->density[0], sh->spec.names[1],
         sh->spec.n_feat[1], 100 * r->density[1], r->params / 1e6);
  printf("step: median %.4f s (p10 %.4f, p90 %.4f)  %.0f cells/s\n", r->med, r->p10, r->p90,
         B / r->med);
  printf("GEMM: %.2f GFLOP/step from the shapes (%.2f counted by the layers)  -> %.1f GFLOP/s\n",
         gf, r->flops_run / 1e9, gf / r->med);
  if (r->bound > 0)
    printf("sgemm: step's GEMMs alone %.4f s (%.1f GFLOP/s all ranks); 2048^3 %.1f GFLOP/s"
           "  => step = %.2f x sgemm bound, %.1f %% of the sgemm rate\n",
           r->bound, gf / r->bound, r->rate2048, r->med / r->bound, 100 * r->bound / r->med);
  printf("split (mean per step, mean over ranks):");
  for (int q = 0; q < CLUE_PROF_N; q++)
    if (r->sec[q] > 0) printf(" %s %.4f s (%.1f %%)", clue_prof_label(q), r->sec[q],
                              100 * r->sec[q] / tot);
  printf("\noutside sgemm: %.1f %% of the step\n", 100 * (1 - r->sec[CLUE_PROF_GEMM] / tot));
  printf("allreduce: %.2f MB gradients/step/rank (%s), %.1f kB small collectives/step/rank\n",
         r->allreduce_bytes / 1e6, r->shared_sum ? "node shared memory" : "MPI_Allreduce",
         r->coll_bytes / 1e3);
  printf("layout:%s; to other nodes %.2f MB/step/rank\n", r->layout[0] ? r->layout : " one rank",
         r->across_bytes / 1e6);
  printf("peak RSS/rank %.0f MiB;  generator loss %.4f (first step) -> %.4f (last)\n",
         r->rss_mib, r->loss_first, r->loss_last);
  if (sh->ref_lo > 0)
    printf("vs PyTorch reference %.1f-%.1f s/step: %.1f-%.1f x faster\n", sh->ref_lo,
           sh->ref_hi, sh->ref_lo / r->med, sh->ref_hi / r->med);
  fflush(stdout);
}

static void write_json(const bench_args *a, const shape *sh, const clue_comm *c, int B,
                       const result *r) {
  if (c->rank != 0 || !a->json) return;
  FILE *f = fopen(a->json, "a");
  if (!f) return;
  fprintf(f, "{\"label\": \"%s\", \"shape\": \"%s\", \"ranks\": %d, \"threads\": %d, "
             "\"scaling\": \"%s\", \"global_batch\": %d, \"n_batches\": %d, "
             "\"features\": [%d, %d], \"density\": [%.4f, %.4f], \"params\": %.0f, "
             "\"step_s_median\": %.6f, \"step_s_p10\": %.6f, \"step_s_p90\": %.6f, "
             "\"cells_per_s\": %.1f, \"gemm_flops\": %.6g, \"gemm_flops_counted\": %.6g, "
             "\"gflops_per_s\": %.3f, \"sgemm_bound_s\": %.6f, \"sgemm_2048_gflops\": %.2f, "
             "\"fraction_of_sgemm\": %.4f, \"allreduce_bytes\": %.0f, \"coll_bytes\": %.0f, "
             "\"across_node_bytes\": %.0f, \"nodes_emulated\": %d, "
             "\"peak_rss_mib\": %.1f, \"loss_first\": %.6f, \"loss_last\": %.6f, "
             "\"gradient_sum\": \"%s\", \"blas_core\": \"%s\", \"sections_s\": {",
          a->label ? a->label : "", sh->name, c->size, openblas_get_num_threads(),
          a->weak ? "weak" : "strong", B, sh->spec.n_batches, sh->spec.n_feat[0],
          sh->spec.n_feat[1], r->density[0], r->density[1], r->params, r->med, r->p10,
          r->p90, B / r->med, r->flops, r->flops_run, r->flops / 1e9 / r->med, r->bound,
          r->rate2048, r->bound > 0 ? r->bound / r->med : 0, r->allreduce_bytes,
          r->coll_bytes, r->across_bytes, clue_ranks_per_node_emulated(), r->rss_mib, r->loss_first, r->loss_last,
          r->shared_sum ? "shared" : "mpi", openblas_get_corename());
  for (int q = 0; q < CLUE_PROF_N; q++)
    fprintf(f, "%s\"%s\": %.6f", q ? ", " : "", clue_prof_label(q), r->sec[q]);
  fprintf(f, "}}\n");
  fclose(f);
}

static void write_md(const bench_args *a, const shape *sh, const clue_comm *c, int B,
                     const result *r) {
  if (c->rank != 0 || !a->md) return;
  FILE *f = fopen(a->md, "a");
  if (!f) return;
  double tot = 0;
  for (int q = 0; q < CLUE_PROF_N; q++) tot += r->sec[q];
  double lik = r->sec[CLUE_PROF_LIK] + r->sec[CLUE_PROF_LIK_TERMS];
  double comm = r->sec[CLUE_PROF_ALLREDUCE] + r->sec[CLUE_PROF_COLL] + r->sec[CLUE_PROF_XCHG];
  double other = tot - r->sec[CLUE_PROF_GEMM] - lik - comm - r->sec[CLUE_PROF_IO];
  char ref[64] = "";
  if (sh->ref_lo > 0)
    snprintf(ref, sizeof ref, "%.1f–%.1f×", sh->ref_lo / r->med, sh->ref_hi / r->med);
  fprintf(f, "| %s | %s | %d×%d | %s | %d | %.3f | %.0f | %.1f | %.1f | %.3f | %.0f %% | "
             "%.0f / %.0f / %.0f / %.0f / %.0f | %.1f | %.0f | %s |\n",
          a->label ? a->label : "", sh->name, c->size, openblas_get_num_threads(),
          a->weak ? "weak" : "strong", B, r->med, B / r->med, r->flops / 1e9,
          r->flops / 1e9 / r->med, r->bound, r->bound > 0 ? 100 * r->bound / r->med : 0,
          100 * r->sec[CLUE_PROF_GEMM] / tot, 100 * lik / tot, 100 * other / tot,
          100 * comm / tot, 100 * r->sec[CLUE_PROF_IO] / tot, r->allreduce_bytes / 1e6,
          r->rss_mib, ref);
  fclose(f);
}

static int run_shape(const bench_args *a, const char *name, const clue_comm *c) {
  clue_err err;
  clue_err_clear(&err);
  shape sh;
  if (shape_lookup(a, name, c, &sh)) return 2;
  int B = a->weak ? a->B * c->size : a->B;
  int n = a->weak ? a->B : (int)(((int64_t)B * (c->rank + 1)) / c->size - ((int64_t)B * c->rank) / c->size);
  int pos0 = a->weak ? a->B * c->rank : (int)(((int64_t)B * c->rank) / c->size);
  bench_data bd;
  clue_model *m = NULL;
  clue_work *w = NULL;
  clue_minibatch *mb = NULL;
  int rc = data_new(&sh, a->pool > n ? a->pool : n, c, &bd, &err);
  if (!rc) rc = clue_model_new(&sh.spec, 3, &m, &err);
  if (!rc) rc = clue_work_new(m, B, &w, &err);
  if (!rc) rc = clue_minibatch_new(sh.spec.n_mod, sh.spec.enc_in, B, &mb, &err);
  rc = clue_comm_agree(c, rc, &err);
  clue_layout lay = {0};
  if (!rc) rc = clue_layout_new(c, &lay, &err);
  if (!rc) rc = clue_layout_split_work(&lay, w, m, B, a->split, a->split && a->enc_split, &err);
  if (!rc && a->tile > 0) clue_work_set_tiles(w, a->tile, 0);
  bool split = !rc && clue_work_outputs_split(w);
  result r;
  memset(&r, 0, sizeof r);
  gemm_list gl;
  step_gemms(&sh, n, split, B, c, w, &gl);
  if (!rc) {
    r.params = (double)m->gen.n + (double)m->disc.n;
    for (int k = 0; k < sh.spec.n_mod; k++) r.density[k] = bd.density[k];
    clue_layout_describe(&lay, clue_work_outputs_split(w), clue_work_encoder_owner(w, 0, 0) >= 0,
                         r.layout, sizeof r.layout);
    rc = time_steps(a, &sh, &bd, m, w, mb, n, B, pos0, &gl, c, &lay, &r, &err);
  }
  if (!rc) {
    r.flops = gemm_flops(&gl);
    clue_comm_sum_double(c, &r.flops, 1);
    if (a->replay) r.rate2048 = sgemm_rate(c, 2048, 2048, 2048);
    print_result(a, &sh, c, B, &r);
    write_json(a, &sh, c, B, &r);
    write_md(a, &sh, c, B, &r);
  } else if (c->rank == 0) {
    fprintf(stderr, "bench_train: %s: %s\n", name, err.msg);
  }
  clue_minibatch_free(mb);
  clue_work_free(w);
  clue_model_free(m);
  data_free(&bd);
  clue_layout_free(&lay);
  return rc ? 1 : 0;
}

/* ---- one rank against all, step by step ---- */

/* What one training step needs: a model, its work and data on a communicator. */
typedef struct rig {
  clue_comm comm;
  int n, B, pos0;
  bench_data bd;
  clue_model *m;
  clue_work *w;
  clue_minibatch *mb;
  clue_gradsum *gs;
  clue_optim od, og;
} rig;

static void rig_free(rig *g) {
  clue_gradsum_free(g->gs);
  clue_optim_release(&g->od);
  clue_optim_release(&g->og);
  clue_minibatch_free(g->mb);
  clue_work_free(g->w);
  clue_model_free(g->m);
  data_free(&g->bd);
}

/* Collective over c: the rig of clue train on c (strong scaling: the global
 * batch a->B split over the ranks; split output layers as a->split says). */
static int rig_new(const bench_args *a, const shape *sh, const clue_comm *c, rig *g,
                   clue_err *err) {
  memset(g, 0, sizeof *g);
  g->comm = *c;
  g->B = a->B;
  g->n = (int)(((int64_t)a->B * (c->rank + 1)) / c->size - ((int64_t)a->B * c->rank) / c->size);
  g->pos0 = (int)(((int64_t)a->B * c->rank) / c->size);
  int rc = data_new(sh, a->pool > g->n ? a->pool : g->n, c, &g->bd, err);
  if (!rc) rc = clue_model_new(&sh->spec, 3, &g->m, err);
  if (!rc) rc = clue_work_new(g->m, g->B, &g->w, err);
  if (!rc) rc = clue_minibatch_new(sh->spec.n_mod, sh->spec.enc_in, g->B, &g->mb, err);
  if (!rc) rc = clue_optim_init(&g->od, CLUE_OPT_RMSPROP, 2e-3, g->m->disc.n, err);
  if (!rc) rc = clue_optim_init(&g->og, CLUE_OPT_RMSPROP, 2e-3, g->m->gen.n, err);
  rc = clue_comm_agree(c, rc, err);
  if (!rc && a->split) rc = clue_work_split_outputs(g->w, g->m, c, g->B, err);
  if (!rc && a->split && a->enc_split) rc = clue_work_split_encoders(g->w, g->m, c, g->B, err);
  clue_arena *arenas[2] = {&g->m->gen, &g->m->disc}; /* as clue train does */
  if (!rc) rc = clue_gradsum_new(c, g->m->gen.n + g->m->disc.n, true, &g->gs, err);
  if (!rc) rc = clue_gradsum_attach(g->gs, arenas, 2, err);
  if (!rc) rc = clue_train_split_grads(g->gs, g->m, g->w, err);
  return rc;
}

/* Collective over g->comm: step s of the rig; its wall time on the slowest rank. */
static double rig_step(const shape *sh, rig *g, int s, int *rc, clue_err *err) {
  clue_comm_barrier(&g->comm);
  double t0 = MPI_Wtime();
  fill(sh, &g->bd, s, g->n, g->B, g->pos0, g->mb);
  clue_pass p = {.seed = 1, .pass = 2 * (uint64_t)s, .disc_noise = 0.5, .train = true};
  clue_losses l;
  if (!*rc) *rc = clue_train_step_gs(g->m, g->w, g->mb, &sh->lw, &p, &g->od, &g->og, g->gs,
                                     &g->comm, &l, err);
  double dt = MPI_Wtime() - t0;
  clue_comm_max_double(&g->comm, &dt, 1);
  return dt;
}

/* A barrier at which the ranks sleep rather than spin: while rank 0 runs a
 * one-rank step, the other cores idle as they would with one rank alone. */
static void idle_barrier(const clue_comm *c) {
  MPI_Request rq;
  MPI_Ibarrier(c->comm, &rq);
  for (int done = 0;;) {
    MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
    if (done) return;
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
}

static double median_of(double *x, int n) {
  qsort(x, (size_t)n, sizeof *x, cmp_double);
  return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

/* Seconds of one sgemm of g on every rank of c at once (the slowest rank's). */
static double sgemm_once(const clue_comm *c, const gemm_shape *g, const replay_bufs *rb) {
  clue_comm_barrier(c);
  double t0 = MPI_Wtime();
  gemm_call(g, rb->A, rb->B, rb->C);
  double t = MPI_Wtime() - t0;
  clue_comm_max_double(c, &t, 1);
  return t;
}

/* The figures of an --interleave run (rank 0's). */
typedef struct interleave_result {
  int pairs, turn;
  double t1, tp;          /* median s/step: one rank, all ranks */
  double r_med, r10, r90; /* the pairs' speed-ups: median, p10, p90 */
  double g_med;           /* sgemm: P busy cores against one, median */
} interleave_result;

static void print_interleave(const char *name, const clue_comm *c, int B,
                             const interleave_result *r) {
  if (r->turn > 1)
    printf("\n== %s interleaved: 1 rank then %d ranks, turns of %d steps (the first of each "
           "not timed), %d pairs, global batch %d ==\n", name, c->size, r->turn, r->pairs, B);
  else
    printf("\n== %s interleaved: 1 rank then %d ranks, step by step, %d pairs, global batch "
           "%d ==\n", name, c->size, r->pairs, B);
  printf("1 rank: median %.4f s/step; %d ranks: median %.4f s/step\n", r->t1, c->size, r->tp);
  printf("speed-up per pair: median %.3fx (p10 %.3fx, p90 %.3fx)\n", r->r_med, r->r10, r->r90);
  printf("sgemm 1024^3 in the same pairs: %d cores at once do %.3fx the work of one alone "
         "(median); step speed-up / that: %.3f\n", c->size, r->g_med, r->r_med / r->g_med);
  fflush(stdout);
}

/* --json / --md of an --interleave run: one JSON line, one table row. */
static void write_interleave(const bench_args *a, const char *name, const clue_comm *c,
                             const interleave_result *r) {
  FILE *f = a->json ? fopen(a->json, "a") : NULL;
  if (f) {
    fprintf(f, "{\"label\": \"%s\", \"mode\": \"interleave\", \"shape\": \"%s\", "
               "\"ranks\": %d, \"global_batch\": %d, \"pairs\": %d, \"turn\": %d, "
               "\"step_s_1rank_median\": %.6f, \"step_s_median\": %.6f, "
               "\"speedup_median\": %.4f, \"speedup_p10\": %.4f, \"speedup_p90\": %.4f, "
               "\"sgemm_speedup_median\": %.4f, \"blas_core\": \"%s\"}\n",
            a->label ? a->label : "", name, c->size, a->B, r->pairs, r->turn, r->t1, r->tp,
            r->r_med, r->r10, r->r90, r->g_med, openblas_get_corename());
    fclose(f);
  }
  f = a->md ? fopen(a->md, "a") : NULL;
  if (f) {
    fprintf(f, "| %s | %s | %d | %d | %d | %.4f | %.4f | %.2f× (%.2f–%.2f) | %.2f× |\n",
            a->label ? a->label : "", name, c->size, r->pairs, r->turn, r->t1, r->tp, r->r_med,
            r->r10, r->r90, r->g_med);
    fclose(f);
  }
}

/* Collective over g->comm: a turn of k steps of the rig from step s0; the mean
 * wall time of all but its first step when k > 1 (slowest rank's). */
static double rig_turn(const shape *sh, rig *g, int s0, int k, int *rc, clue_err *err) {
  double first = rig_step(sh, g, s0, rc, err), sum = 0;
  for (int j = 1; j < k; j++) sum += rig_step(sh, g, s0 + j, rc, err);
  return k > 1 ? sum / (k - 1) : first;
}

/* --interleave: one step (--turn K: K steps) of a one-rank rig on rank 0 (the
 * others asleep), then of the P-rank rig, in turn, so that the machine's drift over
 * seconds cancels in each pair's ratio; then the same for one 1024³ sgemm per
 * rank (rank 0 alone, then every rank at once: what P busy cores give against
 * one, P·t_alone / t_all); prints the medians. */
static int run_interleave(const bench_args *a, const char *name, const clue_comm *c) {
  clue_err err;
  clue_err_clear(&err);
  shape sh;
  if (shape_lookup(a, name, c, &sh)) return 2;
  clue_comm self = {MPI_COMM_SELF, 0, 1};
  rig one, all; /* freed below even when made only in part, or not at all */
  memset(&one, 0, sizeof one);
  memset(&all, 0, sizeof all);
  int rc = c->rank == 0 ? rig_new(a, &sh, &self, &one, &err) : CLUE_OK;
  rc = clue_comm_agree(c, rc, &err);
  if (!rc) rc = rig_new(a, &sh, c, &all, &err);
  int n = a->steps;
  double *t1 = calloc((size_t)n, sizeof *t1), *tp = calloc((size_t)n, sizeof *tp);
  double *ratio = calloc((size_t)n, sizeof *ratio), *gratio = calloc((size_t)n, sizeof *gratio);
  gemm_list gl = {0};
  gemm_add(&gl, false, true, 1024, 1024, 1024);
  replay_bufs rb = {0};
  if (!rc && (!t1 || !tp || !ratio || !gratio || replay_bufs_new(&gl, &rb)))
    rc = clue_fail(&err, CLUE_ENOMEM, "out of memory");
  rc = clue_comm_agree(c, rc, &err);
  for (int s = 0; s < a->warmup + n && !rc; s++) {
    int k = a->turn;
    double d1 = c->rank == 0 ? rig_turn(&sh, &one, s * k, k, &rc, &err) : 0;
    idle_barrier(c);
    rc = clue_comm_agree(c, rc, &err);
    double dp = rig_turn(&sh, &all, s * k, k, &rc, &err);
    rc = clue_comm_agree(c, rc, &err);
    double g1 = c->rank == 0 ? sgemm_once(&self, &gl.g[0], &rb) : 0;
    idle_barrier(c);
    double gp = sgemm_once(c, &gl.g[0], &rb);
    if (s < a->warmup) continue;
    t1[s - a->warmup] = d1;
    tp[s - a->warmup] = dp;
    ratio[s - a->warmup] = d1 / dp;
    gratio[s - a->warmup] = c->size * g1 / gp;
  }
  if (!rc && c->rank == 0) {
    interleave_result r = {.pairs = n, .turn = a->turn};
    r.t1 = median_of(t1, n);
    r.tp = median_of(tp, n);
    r.r_med = median_of(ratio, n); /* sorts ratio */
    r.r10 = ratio[n / 10];
    r.r90 = ratio[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1];
    r.g_med = median_of(gratio, n);
    print_interleave(name, c, a->B, &r);
    write_interleave(a, name, c, &r);
  } else if (rc && c->rank == 0) {
    fprintf(stderr, "bench_train: %s: %s\n", name, err.msg);
  }
  free(t1);
  free(tp);
  free(ratio);
  free(gratio);
  replay_bufs_free(&rb);
  if (c->rank == 0) rig_free(&one);
  rig_free(&all);
  return rc ? 1 : 0;
}

/* ---- data loading ---- */

static int run_load(const bench_args *a, const clue_comm *c) {
  clue_err err;
  clue_err_clear(&err);
  clue_config cfg;
  clue_config_defaults(&cfg);
  int rc = clue_config_load(a->load, &cfg, &err);
  if (!rc) rc = clue_config_validate(&cfg, &err);
  rc = clue_comm_agree(c, rc, &err);
  if (rc) {
    if (c->rank == 0) fprintf(stderr, "bench_train: %s\n", err.msg);
    return 1;
  }
  clue_dataset *d = NULL;
  clue_comm_barrier(c);
  double t0 = MPI_Wtime();
  rc = clue_dataset_load(&cfg, CLUE_CELLS_TRAIN, c, &d, &err); /* as clue train */
  double t = MPI_Wtime() - t0;
  clue_comm_max_double(c, &t, 1);
  if (rc) {
    if (c->rank == 0) fprintf(stderr, "bench_train: %s\n", err.msg);
    return 1;
  }
  double local = (double)(d->local_end - d->local_begin), bytes = (double)d->bytes_read;
  double mn = local, mx = local, bsum = bytes;
  clue_comm_max_double(c, &mx, 1);
  mn = -mn;
  clue_comm_max_double(c, &mn, 1);
  mn = -mn;
  clue_comm_sum_double(c, &bsum, 1);
  /* Per-cell metadata a rank holds after loading: its own cells' names, file
   * rows, local rows and batch codes (nothing per cell of the whole data set;
   * the training plan adds its filler candidates, 8 bytes per local cell and
   * modality). Reported for the rank holding the most. */
  double names = 0;
  for (int64_t i = 0; i < d->local_names->n; i++)
    names += (double)strlen(d->local_names->s[i]) + 1 + sizeof(char *);
  double meta = local * (16.0 * d->n_mod + 4.0 + 8.0 * d->n_mod) + names;
  clue_comm_max_double(c, &meta, 1);
  clue_comm_max_double(c, &names, 1);
  double mib = peak_mib(c);
  double per_cell = meta / (mx > 0 ? mx : 1);
  if (c->rank == 0) {
    printf("\n== load %s on %d rank(s): %lld cells in %.2f s: %.0f cells/s in all, %.0f "
           "cells/s per rank; %.0f MB read (%.0f MB/s); cells per rank %.0f..%.0f\n"
           "per-cell metadata of the fullest rank (its own cells only; dataset + training "
           "plan): %.1f MB = %.0f bytes per local cell (cell names %.1f MB); peak RSS/rank "
           "%.0f MiB\n",
           a->load, c->size, (long long)d->n_cells, t, d->n_cells / t,
           d->n_cells / t / c->size, bsum / 1e6, bsum / 1e6 / t, mn, mx, meta / 1e6,
           per_cell, names / 1e6, mib);
    if (a->json) {
      FILE *f = fopen(a->json, "a");
      if (f) {
        fprintf(f, "{\"label\": \"%s\", \"load\": \"%s\", \"ranks\": %d, \"cells\": %lld, "
                   "\"seconds\": %.4f, \"cells_per_s\": %.1f, \"cells_per_s_per_rank\": %.1f, "
                   "\"bytes_read\": %.0f, \"metadata_bytes_per_rank\": %.0f, "
                   "\"metadata_bytes_per_local_cell\": %.0f, \"peak_rss_mib\": %.1f}\n",
                a->label ? a->label : "", a->load, c->size, (long long)d->n_cells, t,
                d->n_cells / t, d->n_cells / t / c->size, bsum, meta, per_cell, mib);
        fclose(f);
      }
    }
    if (a->md) {
      FILE *f = fopen(a->md, "a");
      if (f) {
        fprintf(f, "| %s | %d | %lld | %.2f | %.0f | %.0f | %.0f | %.0f | %.0f |\n",
                a->label ? a->label : "load", c->size, (long long)d->n_cells, t,
                d->n_cells / t, d->n_cells / t / c->size, bsum / 1e6 / t, per_cell, mib);
        fclose(f);
      }
    }
  }
  clue_dataset_free(d);
  return 0;
}

/* ---- allreduce alone ---- */

/* Median time of summing a float buffer of mb MB over the ranks, all ranks at once:
 * through MPI_Allreduce, through the node's shared memory (gradsum.h), and through
 * shared memory with the buffer living in the window (attached arena, as in
 * clue train). */
static int run_allreduce(const bench_args *a, const clue_comm *c) {
  int64_t n = (int64_t)(a->allreduce_mb * 1e6 / sizeof(real));
  real *own = malloc((size_t)n * sizeof *own + 1);
  if (!own) return 1;
  for (int mode = 0; mode < 3; mode++) {
    clue_err err;
    clue_gradsum *g = NULL;
    clue_arena ar = {0};
    if (clue_arena_add(&ar, "grad", n, 1, &err) < 0 || clue_arena_alloc(&ar, &err) ||
        clue_gradsum_new(c, ar.n, mode > 0, &g, &err)) {
      if (c->rank == 0) fprintf(stderr, "bench_train: %s\n", err.msg);
      return 1;
    }
    clue_arena *arp = &ar;
    if (mode == 2 && clue_gradsum_attach(g, &arp, 1, &err)) return 1;
    real *buf = mode == 2 ? ar.g : own;
    for (int64_t i = 0; i < n; i++) buf[i] = (real)(i % 3);
    enum { REPS = 9 };
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
      clue_comm_barrier(c);
      double t0 = MPI_Wtime();
      clue_gradsum_sum(g, buf, n);
      t[r] = MPI_Wtime() - t0;
      clue_comm_max_double(c, &t[r], 1);
    }
    qsort(t, REPS, sizeof t[0], cmp_double);
    const char *how = !clue_gradsum_shared(g) ? "MPI_Allreduce"
                      : mode == 2            ? "node shared memory, in place"
                                             : "node shared memory, copied in";
    if (c->rank == 0) {
      printf("\n== sum of %.1f MB of floats over %d rank(s), %s: median %.2f ms (min %.2f)\n",
             a->allreduce_mb, c->size, how, t[REPS / 2] * 1e3, t[0] * 1e3);
      FILE *f = a->json ? fopen(a->json, "a") : NULL;
      if (f) {
        fprintf(f, "{\"label\": \"%s\", \"sum_mb\": %.2f, \"ranks\": %d, \"how\": \"%s\", "
                   "\"median_s\": %.6f, \"min_s\": %.6f}\n",
                a->label ? a->label : "", a->allreduce_mb, c->size, how, t[REPS / 2], t[0]);
        fclose(f);
      }
      f = a->md ? fopen(a->md, "a") : NULL;
      if (f) {
        fprintf(f, "| %s | %d | %.1f | %s | %.1f | %.1f |\n", a->label ? a->label : "",
                c->size, a->allreduce_mb, how, t[REPS / 2] * 1e3, t[0] * 1e3);
        fclose(f);
      }
    }
    clue_gradsum_free(g);
    clue_arena_release(&ar);
  }
  free(own);
  return 0;
}

/* ---- main ---- */

static int parse(int argc, char **argv, bench_args *a) {
  memset(a, 0, sizeof *a);
  a->steps = 10;
  a->warmup = 2;
  a->B = 128;
  a->n_batches = 13; /* the competition data have 12–13 batches (sites × donors) */
  a->pool = 512;
  a->turn = 1;
  a->replay = true;
  a->split = true;
  a->enc_split = true;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--weak")) { a->weak = true; continue; }
    if (!strcmp(o, "--no-replay")) { a->replay = false; continue; }
    if (!strcmp(o, "--mpi-allreduce")) { a->mpi_allreduce = true; continue; }
    if (!strcmp(o, "--no-split")) { a->split = false; continue; }
    if (!strcmp(o, "--no-enc-split")) { a->enc_split = false; continue; }
    if (!strcmp(o, "--per-rank")) { a->per_rank = true; continue; }
    if (!strcmp(o, "--interleave")) { a->interleave = true; continue; }
    if (i + 1 >= argc) return -1;
    const char *v = argv[++i];
    if (!strcmp(o, "--shape") && a->n_shapes < MAX_SHAPES)
      snprintf(a->shapes[a->n_shapes++], sizeof a->shapes[0], "%s", v);
    else if (!strcmp(o, "--steps") && atoi(v) > 0) a->steps = atoi(v);
    else if (!strcmp(o, "--warmup") && atoi(v) >= 0) a->warmup = atoi(v);
    else if (!strcmp(o, "--batch") && atoi(v) > 0) a->B = atoi(v);
    else if (!strcmp(o, "--batches") && atoi(v) > 0) a->n_batches = atoi(v);
    else if (!strcmp(o, "--pool") && atoi(v) > 0) a->pool = atoi(v);
    else if (!strcmp(o, "--tile") && atoi(v) > 0) a->tile = atoi(v);
    else if (!strcmp(o, "--turn") && atoi(v) > 0) a->turn = atoi(v);
    else if (!strcmp(o, "--json")) a->json = v;
    else if (!strcmp(o, "--md")) a->md = v;
    else if (!strcmp(o, "--label")) a->label = v;
    else if (!strcmp(o, "--load")) a->load = v;
    else if (!strcmp(o, "--allreduce") && atof(v) > 0) a->allreduce_mb = atof(v);
    else return -1;
  }
  if (a->n_shapes == 0 && !a->load && a->allreduce_mb <= 0) {
    snprintf(a->shapes[0], sizeof a->shapes[0], "multiome");
    a->n_shapes = 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  clue_blas_fix_core(argv); /* the kernels clue itself runs with (blas_core.h) */
  MPI_Init(&argc, &argv);
  clue_comm c = clue_comm_world();
  bench_args a;
  if (parse(argc, argv, &a)) {
    if (c.rank == 0)
      fprintf(stderr, "usage: bench_train [--shape multiome|cite|large]... [--steps N] "
                      "[--warmup N] [--batch B] [--weak] [--batches NB] [--pool N] "
                      "[--json FILE] [--md FILE] [--label TEXT] [--no-replay] "
                      "[--mpi-allreduce] [--no-split] [--no-enc-split] [--tile F] [--per-rank] [--interleave [--turn K]] | "
                      "--load CONFIG | --allreduce MB\n");
    MPI_Finalize();
    return 2;
  }
  int status = 0;
  if (a.allreduce_mb > 0) status = run_allreduce(&a, &c);
  if (a.load && !status) status = run_load(&a, &c);
  for (int i = 0; i < a.n_shapes && !status; i++)
    status = a.interleave ? run_interleave(&a, a.shapes[i], &c) : run_shape(&a, a.shapes[i], &c);
  MPI_Finalize();
  return status;
}
