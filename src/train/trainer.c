/* trainer.c — the training loop of `clue train`.
 *
 * One step: (1) discriminator step: encoders forward, discriminator loss,
 * allreduce of the discriminator gradients, RMSprop; (2) generator step: a fresh
 * forward, every loss term, allreduce of the generator gradients, RMSprop.
 * After each epoch: validation losses (eval mode), then — past the alignment
 * burn-in — early stopping, learning-rate reduction on plateau and keep-best. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clue/blas_core.h"
#include "clue/gradsum.h"
#include "clue/layout.h"
#include "clue/prof.h"
#include "clue/run_record.h"
#include "clue/pseudo.h"
#include "clue/train.h"

typedef struct trainer {
  const clue_config *cfg;
  const clue_comm *comm;
  const clue_train_opts *opts;
  clue_dataset *d;
  clue_plan *plan;
  clue_inputs in;
  clue_ckpt ck; /* model, preprocessing, optimisers, best weights, state */
  clue_work *work;
  clue_minibatch *mb;
  clue_loss_weights lw;
  clue_schedule sch;
  char ckpt_path[CLUE_PATH_MAX + 32];
  char log_path[CLUE_PATH_MAX + 32];
  double last_checkpoint; /* time of the last checkpoint written */
  double last_print;      /* time of the last epoch line printed */
  int64_t ckpt_step;      /* step of the checkpoint on disk (−1: none yet) */
  real *buf_backup;       /* (model->buf.n) train.on_nan=skip: BatchNorm statistics
                             before the step, restored when the step is dropped */
  clue_gradsum *gsum;     /* gradient sums over the ranks */
  clue_pseudo *pseudo;    /* train.pseudo: partners of this rank's cells, or NULL */
  clue_run_record rec;    /* RUN/run.json (rank 0 writes it) */
  bool has_rec;           /* rec is filled in */
  char end_reason[64];    /* why training finished */
  clue_layout lay;        /* how the ranks share the layers (layout.h) */
} trainer;

/* printf on rank 0 (stdout, flushed). */
static void say(const trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const trainer *t, const char *fmt, ...) {
  if (t->comm->rank != 0 || t->opts->quiet) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

/* Live progress within an epoch only when a person is watching. */
static bool show_progress(const trainer *t) {
  return t->comm->rank == 0 && !t->opts->quiet && isatty(STDERR_FILENO);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Adds each loss of b into a (losses are plain doubles). */
static void losses_add(clue_losses *a, const clue_losses *b, double scale) {
  double *x = (double *)a;
  const double *y = (const double *)b;
  for (size_t i = 0; i < sizeof *a / sizeof(double); i++) x[i] += scale * y[i];
}

/* ---- set-up ---- */

static int model_spec_from(const clue_config *cfg, clue_prep *const *prep, int n_batches,
                           clue_model_spec *s) {
  memset(s, 0, sizeof *s);
  s->n_mod = cfg->n_mod;
  for (int k = 0; k < cfg->n_mod; k++) {
    snprintf(s->names[k], sizeof s->names[k], "%s", cfg->mod[k].name);
    s->lik[k] = cfg->mod[k].likelihood;
    s->enc_in[k] = prep[k]->n_components;
    s->n_feat[k] = (int)prep[k]->n_decoded;
  }
  s->latent_dim = cfg->latent_dim;
  s->n_batches = n_batches;
  s->encoder = cfg->encoder;
  s->decoder = cfg->decoder;
  s->discriminator = cfg->discriminator;
  s->dropout = cfg->dropout;
  s->normalize_u = cfg->normalize_u;
  return CLUE_OK;
}

/* A fresh run: preprocessing fitted, model initialised, optimisers zeroed. */
static int setup_fresh(trainer *t, clue_err *err) {
  const clue_config *cfg = t->cfg;
  clue_ckpt *ck = &t->ck;
  ck->n_mod = cfg->n_mod;
  int rc = clue_fit_preps(cfg, t->d, t->comm, !t->opts->quiet, ck->prep, err);
  if (rc) return rc;
  clue_model_spec spec;
  model_spec_from(cfg, ck->prep, t->d->n_batches, &spec);
  if ((rc = clue_model_new(&spec, cfg->seed, &ck->model, err))) return rc;
  ck->batch_names = clue_strings_from((const char *const *)t->d->batch_names->s,
                                      t->d->batch_names->n, err);
  if (!ck->batch_names) return CLUE_ENOMEM;
  ck->has_optim = true;
  rc = clue_optim_init(&ck->opt_gen, cfg->optimizer, cfg->lr, ck->model->gen.n, err);
  if (!rc) rc = clue_optim_init(&ck->opt_disc, cfg->optimizer, cfg->lr, ck->model->disc.n, err);
  if (rc) return rc;
  ck->state.lr = cfg->lr;
  ck->state.best_loss = INFINITY;
  ck->state.plateau_best = INFINITY;
  return CLUE_OK;
}

/* Continues from the run folder's checkpoint (same data, any number of ranks). */
static int setup_resume(trainer *t, clue_err *err) {
  int rc = clue_ckpt_load(t->ckpt_path, &t->ck, err);
  if (rc) return rc;
  clue_ckpt *ck = &t->ck;
  if (ck->n_mod != t->cfg->n_mod || ck->model->spec.n_batches != t->d->n_batches)
    return clue_fail(err, CLUE_EINVAL,
                     "%s was trained on %d modalities and %d batches; this config has %d "
                     "and the data %d: use another output.dir or drop --resume",
                     t->ckpt_path, ck->n_mod, ck->model->spec.n_batches, t->cfg->n_mod,
                     t->d->n_batches);
  if (!ck->has_optim)
    return clue_fail(err, CLUE_EFORMAT, "%s has no optimiser state to resume from",
                     t->ckpt_path);
  return CLUE_OK;
}

/* Rank 0: drops log lines of epochs after the checkpoint (logged by a run that was
 * killed before its next checkpoint), so the resumed log reads as one run. */
static void truncate_log(const trainer *t, int64_t last_epoch) {
  if (t->comm->rank != 0) return;
  FILE *in = fopen(t->log_path, "r");
  if (!in) return;
  char tmp[CLUE_PATH_MAX + 48];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", t->log_path, (long)getpid());
  FILE *out = fopen(tmp, "w");
  if (!out) {
    fclose(in);
    return;
  }
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, in) > 0) {
    long long e = 0;
    if (sscanf(line, "{\"epoch\": %lld", &e) == 1 && e > last_epoch) continue;
    fputs(line, out);
  }
  free(line);
  fclose(in);
  if (fclose(out) == 0) rename(tmp, t->log_path);
  else remove(tmp);
}

/* Rank 0: removes checkpoint temporaries left by a killed run. */
static void remove_stale_temporaries(const trainer *t) {
  if (t->comm->rank != 0) return;
  char pattern[CLUE_PATH_MAX + 48];
  snprintf(pattern, sizeof pattern, "%s.tmp.", t->ckpt_path);
  char dir[CLUE_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", t->cfg->out_dir);
  DIR *d = opendir(dir);
  if (!d) return;
  const char *base = strrchr(pattern, '/') ? strrchr(pattern, '/') + 1 : pattern;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, base, strlen(base)) != 0) continue;
    char path[2 * CLUE_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    remove(path);
  }
  closedir(d);
}

/* Collective. Training cells that miss a modality (0: fully paired data,
 * where pseudo-partners have nothing to do). */
static int64_t missing_modalities(const trainer *t) {
  const clue_dataset *d = t->d;
  int64_t n = 0;
  for (int64_t c = d->local_begin; c < d->local_end; c++) {
    if (!clue_plan_is_train(t->plan, c)) continue;
    for (int k = 0; k < d->n_mod; k++)
      if (d->local_row[(c - d->local_begin) * d->n_mod + k] < 0) {
        n++;
        break;
      }
  }
  clue_comm_sum_int64(t->comm, &n, 1);
  return n;
}

static int setup(trainer *t, clue_err *err) {
  const clue_config *cfg = t->cfg;
  int rc = clue_dataset_load(cfg, CLUE_CELLS_TRAIN, t->comm, &t->d, err);
  if (rc) return rc;
  snprintf(t->ckpt_path, sizeof t->ckpt_path, "%s/checkpoint.h5", cfg->out_dir);
  snprintf(t->log_path, sizeof t->log_path, "%s/log.jsonl", cfg->out_dir);
  struct stat st;
  bool exists = stat(t->ckpt_path, &st) == 0;
  bool resume = t->opts->resume && exists;
  if (t->opts->resume && !resume)
    say(t, "no checkpoint in %s: starting a new run\n", cfg->out_dir);
  if (exists && !t->opts->resume && !t->opts->overwrite)
    rc = clue_fail(err, CLUE_EINVAL,
                   "%s already holds a run (checkpoint.h5): add --resume to continue it, "
                   "--overwrite to start again, or choose another output.dir",
                   cfg->out_dir);
  else
    rc = resume ? setup_resume(t, err) : setup_fresh(t, err);
  if (rc == CLUE_OK && !resume && t->comm->rank == 0) remove(t->log_path);
  if (rc == CLUE_OK && resume) truncate_log(t, t->ck.state.epoch);
  remove_stale_temporaries(t);
  rc = clue_comm_agree(t->comm, rc, err);
  if (rc) return rc;
  if ((rc = clue_inputs_build(t->ck.prep, t->d, &t->in, err))) return rc;
  rc = clue_plan_new(t->d, &t->in, cfg->batch_size, cfg->val_split, cfg->seed, t->comm,
                     &t->plan, err);
  if (!rc) rc = clue_plan_mix(t->plan, t->d, cfg->paired_fraction, t->comm, err);
  if (!rc && cfg->pseudo.method != CLUE_PSEUDO_OFF && missing_modalities(t) > 0) {
    rc = clue_pseudo_new(t->d, &t->pseudo, err);
    if (!rc && resume && t->ck.has_pseudo)
      rc = clue_pseudo_set(t->pseudo, t->ck.pseudo, t->ck.n_pseudo, t->d->n_cells,
                           t->ck.pseudo_step, t->ckpt_path, err);
    rc = clue_comm_agree(t->comm, rc, err);
  }
  for (int k = 0; !rc && k < cfg->n_mod; k++)
    if (t->plan->n_pool[k] == 0)
      rc = clue_fail(err, CLUE_EDATA, "no training cell has modality %s", cfg->mod[k].name);
  if (rc) return rc;
  int B = cfg->batch_size;
  rc = clue_work_new(t->ck.model, B, &t->work, err);
  if (!rc) rc = clue_minibatch_new(cfg->n_mod, t->in.enc_in, B, &t->mb, err);
  rc = clue_comm_agree(t->comm, rc, err);
  if (!rc) rc = clue_layout_new(t->comm, &t->lay, err);
  if (!rc) rc = clue_layout_split_work(&t->lay, t->work, t->ck.model, B, true, true, err);
  if (rc) return rc;
  clue_loss_weights_from_config(cfg, &t->lw);
  if (t->plan->B_group[0] > 0) /* mixed minibatches: epochs of the plan's length */
    clue_schedule_resolve_bpe(cfg, (double)clue_plan_steps_per_epoch(t->plan), &t->sch);
  else
    clue_schedule_resolve(cfg, t->d->n_cells, &t->sch);
  if (!t->ck.has_best && (rc = clue_snapshot_alloc(&t->ck.best, t->ck.model, err))) return rc;
  t->ckpt_step = resume ? t->ck.state.step : -1;
  if (cfg->on_nan == CLUE_NAN_SKIP &&
      !(t->buf_backup = clue_malloc((size_t)(t->ck.model->buf.n + 1) * sizeof(real), err)))
    return CLUE_ENOMEM;
  return CLUE_OK;
}

/* ---- steps ---- */

/* In-place sum over ranks of a buffer of the network's float type, through gs
 * when given. */
static void sum_real(const clue_comm *c, clue_gradsum *gs, real *buf, int64_t n) {
  clue_prof_push(CLUE_PROF_ALLREDUCE);
  clue_prof_bytes(true, c->size > 1 ? (double)n * sizeof(real) : 0);
  if (gs)
    clue_gradsum_sum(gs, buf, n);
  else
    clue_sum_real_mpi(c, buf, n);
  clue_prof_pop();
}

static void set_lr(trainer *t, double lr) {
  t->ck.state.lr = lr;
  t->ck.opt_gen.lr = lr;
  t->ck.opt_disc.lr = lr;
}

static double disc_noise(const trainer *t, int64_t epoch) {
  if (t->sch.align_burnin <= 0) return 0;
  double a = 1 - (double)(epoch - 1) / (double)t->sch.align_burnin;
  return a > 0 ? a : 0;
}

/* Gradients beyond this are treated like NaN: their square, which RMSprop and
 * Adam keep, would overflow float32 and freeze the weight for good. */
#define GRAD_MAX 9.2e18 /* 2^63 */

/* Collective. Fails naming the first tensor whose reduced gradient holds a NaN,
 * an infinity or a value beyond GRAD_MAX in this rank's parts [b[i], e[i]) of
 * the check; every rank agrees (one int allreduce), so all stop alike. */
static int check_grads(const clue_arena *a, const int64_t *b, const int64_t *e, int parts,
                       const char *which, const clue_comm *comm, clue_err *err) {
  int64_t at = 0;
  int t = -1;
  for (int i = 0; i < parts && t < 0; i++)
    t = clue_arena_find_nonfinite_range(a, a->g, GRAD_MAX, b[i], e[i], &at);
  int bad = t >= 0;
  if (comm->size > 1) MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm->comm);
  if (!bad) return CLUE_OK;
  if (t < 0)
    return clue_fail(err, CLUE_ENUMERIC, "a %s gradient is NaN, infinite or beyond 2^63 on "
                     "another rank", which);
  return clue_fail(err, CLUE_ENUMERIC, "gradient of %s[%lld] is %g after the allreduce (%s step)",
                   a->t[t].name, (long long)at, (double)clue_arena_g(a, t)[at], which);
}

/* Collective. Sums the gradients of `a` over the ranks, checks them and updates
 * the weights. Through the node's window with attached gradients the update is
 * sharded: each rank sums, checks and updates its parts of the one copy of the
 * weights that every rank reads, then waits for the others (bitwise the
 * weights of the unsharded update; the optimiser state is current on each rank
 * for its parts only: see clue_train_gather_state);
 * sum_cols: the tensors split by columns need their sum this time
 * (clue_model.split_cols_dirty). The gradients read are zero afterwards: all of
 * them (*sharded false), or all but the rows of split tensors of other ranks,
 * which a sharded update leaves as they are (*sharded true; zero on a split
 * step: clue_model.split_grad_clean; other ranks' columns are zero unless
 * summed, and then zeroed as read). */
static int update(clue_arena *a, clue_optim *o, const char *which, clue_gradsum *gs,
                  const clue_comm *comm, bool sum_cols, bool *sharded, clue_err *err) {
  int64_t whole_b[1] = {0}, whole_e[1] = {a->n};
  const int64_t *b = whole_b, *e = whole_e;
  clue_prof_push(CLUE_PROF_ALLREDUCE);
  int parts = gs ? clue_gradsum_sum_parts(gs, a->g, a->n, sum_cols, &b, &e) : 0;
  if (parts)
    clue_prof_bytes(true, (double)clue_gradsum_summed(gs, a->g, a->n, sum_cols) * sizeof(real));
  clue_prof_pop();
  *sharded = parts > 0;
  if (!parts) {
    sum_real(comm, gs, a->g, a->n);
    parts = 1;
  }
  int rc = check_grads(a, b, e, parts, which, comm, err);
  if (rc) return rc;
  clue_optim_step_ranges(o, a, b, e, parts, true);
  if (*sharded) {
    clue_prof_push(CLUE_PROF_ALLREDUCE);
    clue_gradsum_share(gs);
    clue_prof_pop();
  }
  return CLUE_OK;
}

/* Rank q's copy of gen's gradients in the window, for every q; false (on every
 * rank: attached alike) when they are not there. */
static bool peers_of(clue_gradsum *gs, clue_model *m, int P, real **g_of) {
  for (int q = 0; q < P; q++)
    if (!(g_of[q] = clue_gradsum_peer(gs, m->gen.g, q))) return false;
  return true;
}

/* The encoders that one rank runs (clue_work_split_encoders): each one's
 * tensors, contiguous in gen (registered one after the other), owned there. */
static int own_encoders(clue_gradsum *gs, clue_model *m, clue_work *w, clue_err *err) {
  const clue_arena *a = &m->gen;
  for (int k = 0; k < m->spec.n_mod; k++)
    for (int j = 0; j < m->spec.n_mod; j++) {
      int q = clue_work_encoder_owner(w, k, j);
      if (q < 0) return CLUE_OK;
      const nn_mlp *enc = &m->enc[k][j];
      int64_t first = a->t[enc->depth > 0 ? enc->lin[0].w : m->enc_loc[k][j].w].offset;
      const clue_tensor *last = &a->t[m->enc_std[k][j].b];
      int rc = clue_gradsum_own(gs, a, first, last->offset + last->rows * last->cols - first, q,
                                err);
      if (rc) return rc;
    }
  return CLUE_OK;
}

int clue_train_split_grads(clue_gradsum *gs, clue_model *m, clue_work *w, clue_err *err) {
  int rc0 = own_encoders(gs, m, w, err);
  if (rc0 || !clue_work_outputs_split(w)) return rc0;
  int P = clue_work_split_ranks(w), rc = CLUE_OK;
  real **g_of = clue_calloc((size_t)P, sizeof *g_of, err);
  if (!g_of) return CLUE_ENOMEM;
  bool all = peers_of(gs, m, P, g_of);
  for (int k = 0; k < m->spec.n_mod && !rc; k++) {
    rc = clue_gradsum_split_rows(gs, &m->gen, m->dec_loc[k].w, err);
    if (!rc) rc = clue_gradsum_split_rows(gs, &m->gen, m->dec_loc[k].b, err);
    /* the per-(feature, batch) tensors by columns: a run that writes other
     * ranks' columns sets split_cols_dirty */
    int cols[3] = {m->dec_scale[k], m->dec_bias[k], m->dec_disp[k]};
    for (int i = 0; i < 3 && all && !rc; i++) rc = clue_gradsum_split_cols(gs, &m->gen, cols[i], err);
  }
  if (!rc) rc = clue_work_share_tiles(w, all ? g_of : NULL, all, err);
  free(g_of);
  return rc;
}

void clue_train_gather_state(clue_gradsum *gs, clue_model *m, clue_optim *opt_disc,
                             clue_optim *opt_gen) {
  if (!clue_gradsum_shared(gs)) return;
  clue_optim *o[2] = {opt_disc, opt_gen};
  const clue_arena *a[2] = {&m->disc, &m->gen};
  for (int i = 0; i < 2; i++) {
    clue_gradsum_gather(gs, a[i]->g, o[i]->v, a[i]->n);
    if (o[i]->m) clue_gradsum_gather(gs, a[i]->g, o[i]->m, a[i]->n);
  }
}

int clue_train_step(clue_model *m, clue_work *w, const clue_minibatch *mb,
                    const clue_loss_weights *lw, const clue_pass *p, clue_optim *opt_disc,
                    clue_optim *opt_gen, const clue_comm *comm, clue_losses *out,
                    clue_err *err) {
  return clue_train_step_gs(m, w, mb, lw, p, opt_disc, opt_gen, NULL, comm, out, err);
}

int clue_train_step_gs(clue_model *m, clue_work *w, const clue_minibatch *mb,
                       const clue_loss_weights *lw, const clue_pass *p, clue_optim *opt_disc,
                       clue_optim *opt_gen, clue_gradsum *gs, const clue_comm *comm,
                       clue_losses *out, clue_err *err) {
  clue_pass q = *p;
  clue_losses dl;
  bool sharded;
  int rc = clue_model_d_step(m, w, mb, lw, &q, comm, &dl, err);
  if (rc) return rc;
  if ((rc = update(&m->disc, opt_disc, "discriminator", gs, comm, false, &sharded, err)))
    return rc;
  q.pass = p->pass + 1;
  m->split_cols_dirty = false;
  rc = clue_model_g_step(m, w, mb, lw, &q, comm, out, err);
  /* a sum over every row of the split layers leaves other ranks' rows in them */
  if (!gs || clue_gradsum_summed(gs, m->gen.g, m->gen.n, true) == m->gen.n)
    m->split_grad_clean = false;
  if (rc) return rc;
  rc = update(&m->gen, opt_gen, "generator", gs, comm, m->split_cols_dirty, &sharded, err);
  if (rc) return rc;
  m->gen_grad_zero = !sharded || m->split_grad_clean;
  return CLUE_OK;
}

/* One discriminator step and one generator step on minibatch `step` of `epoch`. */
static int train_step(trainer *t, int64_t epoch, int64_t step, clue_losses *out,
                      clue_err *err) {
  clue_prof_push(CLUE_PROF_IO);
  clue_plan_fill(t->plan, t->d, &t->in, epoch, step, 0, t->comm, t->mb);
  clue_prof_pop();
  uint64_t gstep = (uint64_t)t->ck.state.step;
  clue_pass p = {.seed = t->cfg->seed, .pass = 2 * gstep, .disc_noise = disc_noise(t, epoch),
                 .train = true};
  clue_model *m = t->ck.model;
  if (t->buf_backup) memcpy(t->buf_backup, m->buf.w, (size_t)m->buf.n * sizeof(real));
  double warm = (int64_t)gstep < t->cfg->lr_warmup ? (double)(gstep + 1) / t->cfg->lr_warmup : 1;
  t->ck.opt_gen.lr = t->ck.opt_disc.lr = t->ck.state.lr * warm;
  int rc = clue_train_step_gs(m, t->work, t->mb, &t->lw, &p, &t->ck.opt_disc,
                              &t->ck.opt_gen, t->gsum, t->comm, out, err);
  if (rc) return rc;
  t->ck.state.step++;
  return CLUE_OK;
}

/* train.on_nan=skip: the step's update was not applied (clue_train_step checks
 * before each optimiser step); restores the BatchNorm statistics it touched,
 * counts the step, halves the learning rate and says so on stderr. The epoch's
 * mean training losses stay the mean of the steps that were applied. */
static void skip_step(trainer *t, int64_t epoch, const clue_err *why) {
  clue_train_state *st = &t->ck.state;
  clue_model *m = t->ck.model;
  memcpy(m->buf.w, t->buf_backup, (size_t)m->buf.n * sizeof(real));
  st->step++;
  if (st->partial_steps > 0) losses_add(&st->partial, &st->partial, 1.0 / st->partial_steps);
  st->partial_steps++;
  set_lr(t, st->lr * 0.5);
  if (t->comm->rank == 0)
    fprintf(stderr, "clue train: warning: epoch %lld, step %lld: %s; step skipped "
                    "(train.on_nan=skip), learning rate halved to %.3g\n",
            (long long)epoch, (long long)st->step, why->msg, st->lr);
}

/* Mean losses over the validation minibatches (eval mode). */
static int validate(trainer *t, int64_t epoch, clue_losses *out, clue_err *err) {
  memset(out, 0, sizeof *out);
  int64_t nb = clue_plan_val_batches(t->plan);
  for (int64_t b = 0; b < nb; b++) {
    clue_plan_fill(t->plan, t->d, &t->in, epoch, b, 1, t->comm, t->mb);
    clue_pass p = {.seed = t->cfg->seed,
                   .pass = ((uint64_t)1 << 40) + (uint64_t)epoch * ((uint64_t)1 << 20) + (uint64_t)b,
                   .disc_noise = disc_noise(t, epoch),
                   .train = false};
    clue_losses l;
    int rc = clue_model_g_step(t->ck.model, t->work, t->mb, &t->lw, &p, t->comm, &l, err);
    if (rc) return clue_err_prefix(err, "validation");
    losses_add(out, &l, 1.0 / (double)nb);
  }
  return CLUE_OK;
}

/* ---- logging ---- */

/* Appends `"key": {losses}` to buf (JSON). */
static void json_losses(char *buf, size_t size, const char *key, const clue_losses *l,
                        const clue_config *cfg) {
  size_t at = strlen(buf);
  at += (size_t)snprintf(buf + at, size - at,
                         "\"%s\": {\"gen\": %.10g, \"dsc\": %.10g, \"joint_cross\": %.10g, "
                         "\"real_cross\": %.10g, \"cos\": %.10g",
                         key, l->gen, l->dsc, l->joint_cross_sum, l->real_cross_sum,
                         l->cos_sum);
  for (int k = 0; k < cfg->n_mod && at < size; k++) {
    const char *n = cfg->mod[k].name;
    at += (size_t)snprintf(buf + at, size - at,
                           ", \"nll_%s\": %.10g, \"kl_%s\": %.10g, \"elbo_%s\": %.10g, "
                           "\"joint_cross_%s\": %.10g, \"real_cross_%s\": %.10g, \"cos_%s\": %.10g",
                           n, l->nll[k], n, l->kl[k], n, l->elbo[k], n, l->joint_cross[k], n,
                           l->real_cross[k], n, l->cos[k]);
  }
  if (at < size) snprintf(buf + at, size - at, "}");
}

/* The last epoch the run can reach: the schedule's, or fewer under train.max_steps. */
static int64_t last_epoch(const trainer *t) {
  int64_t last = t->sch.max_epochs, spe = clue_plan_steps_per_epoch(t->plan);
  if (t->cfg->max_steps > 0 && spe > 0) {
    int64_t by_steps = (t->cfg->max_steps + spe - 1) / spe;
    if (by_steps < last) last = by_steps;
  }
  return last;
}

static void log_epoch(trainer *t, int64_t epoch, const clue_losses *tr, const clue_losses *va,
                      bool has_val, double seconds, double cells_per_s, const char *note) {
  if (t->comm->rank != 0) return;
  const clue_config *cfg = t->cfg;
  /* short epochs: a line at most every PRINT_SECONDS, plus the first, the last and
   * those with an event other than a new best (log.jsonl has every epoch) */
  const double PRINT_SECONDS = 2.0;
  bool event = note[0] && strcmp(note, "best") != 0;
  bool show = epoch == 1 || t->ck.state.finished || event ||
              now_seconds() - t->last_print >= PRINT_SECONDS;
  if (!t->opts->quiet && show) {
    t->last_print = now_seconds();
    printf("epoch %lld/%lld  step %lld  train gen %.4f dsc %.4f", (long long)epoch,
           (long long)last_epoch(t), (long long)t->ck.state.step, tr->gen, tr->dsc);
    for (int k = 0; k < cfg->n_mod; k++) printf(" %s %.4f", cfg->mod[k].name, tr->nll[k]);
    if (has_val) printf(" | val gen %.4f", va->gen);
    /* time left if no early stop: remaining epochs at the mean epoch time */
    double per_epoch = t->ck.state.seconds / (double)(epoch > 0 ? epoch : 1);
    double eta = per_epoch * (double)(t->sch.max_epochs - epoch);
    if (t->cfg->max_steps > 0) {
      double per_step = t->ck.state.seconds / (double)(t->ck.state.step > 0 ? t->ck.state.step : 1);
      double by_steps = per_step * (double)(t->cfg->max_steps - t->ck.state.step);
      if (by_steps < eta) eta = by_steps;
    }
    if (eta < 0) eta = 0;
    printf(" | lr %.2g | %.0f cells/s | %.2f s | ETA %dh%02dm%s%s\n", t->ck.opt_gen.lr,
           cells_per_s, seconds, (int)(eta / 3600), (int)(eta / 60) % 60, note[0] ? " | " : "",
           note);
    fflush(stdout);
  }
  char line[16384];
  snprintf(line, sizeof line,
           "{\"epoch\": %lld, \"step\": %lld, \"lr\": %.10g, \"seconds\": %.4f, "
           "\"cells_per_s\": %.2f, \"ranks\": %d, \"event\": \"%s\", ",
           (long long)epoch, (long long)t->ck.state.step, t->ck.opt_gen.lr, seconds, cells_per_s,
           t->comm->size, note);
  if (t->pseudo) {
    size_t at = strlen(line);
    snprintf(line + at, sizeof line - at, "\"pseudo_pairs\": %lld, \"pseudo_weight\": %.4g, ",
             (long long)t->pseudo->n_pairs, t->plan->pseudo_w);
  }
  json_losses(line, sizeof line, "train", tr, cfg);
  if (has_val) {
    strncat(line, ", ", sizeof line - strlen(line) - 1);
    json_losses(line, sizeof line, "val", va, cfg);
  }
  strncat(line, "}\n", sizeof line - strlen(line) - 1);
  FILE *f = fopen(t->log_path, "a");
  if (f) {
    fputs(line, f);
    fclose(f);
  }
}

/* ---- schedule: early stopping, plateau, keep-best ---- */

/* Returns true when training should stop (patience exhausted). */
static bool after_epoch(trainer *t, int64_t epoch, double monitored, char *note,
                        size_t note_size) {
  clue_train_state *st = &t->ck.state;
  note[0] = '\0';
  if (epoch <= t->sch.align_burnin || !isfinite(monitored)) return false;
  if (monitored < st->best_loss) {
    st->best_loss = monitored;
    st->best_epoch = epoch;
    st->bad_epochs = 0;
    clue_snapshot_take(&t->ck.best, t->ck.model);
    t->ck.has_best = true;
    snprintf(note, note_size, "best");
  } else {
    st->bad_epochs++;
  }
  if (monitored < st->plateau_best * (1 - 1e-4)) {
    st->plateau_best = monitored;
    st->plateau_bad = 0;
  } else if (++st->plateau_bad > t->sch.reduce_lr_patience) {
    set_lr(t, st->lr * 0.1);
    st->plateau_bad = 0;
    snprintf(note, note_size, "lr reduced");
  }
  return t->cfg->early_stopping && st->bad_epochs >= t->sch.patience;
}

/* Collective. The pseudo-partners into the checkpoint rank 0 writes. */
static int pseudo_to_ckpt(trainer *t, clue_err *err) {
  clue_ckpt *ck = &t->ck;
  if (!t->pseudo || t->pseudo->step < 0) return CLUE_OK;
  int64_t *triples = NULL, n = 0;
  int rc = clue_pseudo_gather(t->pseudo, t->comm, &triples, &n, err);
  if (rc) return rc;
  free(ck->pseudo);
  ck->pseudo = triples;
  ck->n_pseudo = n;
  ck->pseudo_step = t->pseudo->step;
  ck->has_pseudo = true;
  return CLUE_OK;
}

static int save_checkpoint(trainer *t, clue_err *err) {
  int rc = pseudo_to_ckpt(t, err);
  if (rc) return rc;
  t->last_checkpoint = now_seconds();
  clue_train_gather_state(t->gsum, t->ck.model, &t->ck.opt_disc, &t->ck.opt_gen);
  if (t->comm->rank == 0) rc = clue_ckpt_save(t->ckpt_path, &t->ck, err);
  rc = clue_comm_agree(t->comm, rc, err);
  if (rc == CLUE_OK) t->ckpt_step = t->ck.state.step;
  return rc;
}

/* A NaN/Inf stopped training (train.on_nan=stop): nothing is saved, so the
 * checkpoint on disk is the last good one; says where it is and what to try. */
static int numeric_stop(const trainer *t, clue_err *err) {
  char why[CLUE_ERR_MSG_MAX];
  snprintf(why, sizeof why, "%s", err->msg);
  if (t->ckpt_step < 0)
    return clue_fail(err, CLUE_ENUMERIC,
                     "%.600s; training stopped before its first checkpoint (try a smaller "
                     "train.lr, or --set train.on_nan=skip)", why);
  return clue_fail(err, CLUE_ENUMERIC,
                   "%.600s; training stopped: %.300s (step %lld) is the last good checkpoint, "
                   "unchanged (rerun with --resume and --set train.on_nan=skip)",
                   why, t->ckpt_path, (long long)t->ckpt_step);
}

/* ---- the loop ---- */

/* Collective. train.pseudo: pairs the cells anew when due, and gives the plan
 * the partners with this step's chance of taking them. */
static int pseudo_tick(trainer *t, clue_err *err) {
  const clue_pseudo_config *c = &t->cfg->pseudo;
  clue_pseudo *ps = t->pseudo;
  int64_t step = t->ck.state.step;
  if (!ps) return CLUE_OK;
  int64_t spe = clue_plan_steps_per_epoch(t->plan), quarter = (spe + 3) / 4;
  int64_t every = c->every != CLUE_AUTO ? c->every : quarter > 200 ? quarter : 200;
  if (step >= c->start && (ps->step < 0 || step - ps->step >= every)) {
    double t0 = now_seconds();
    int rc = clue_pseudo_refresh(ps, c, t->ck.model, t->work, t->d, &t->in, t->plan, step,
                                 t->comm, err);
    if (rc) return clue_err_prefix(err, "pseudo-pairs at step %lld", (long long)step);
    say(t, "step %lld: %lld of %lld missing modalities of training cells have a partner "
           "(%s, k = %d; %.2f s)\n", (long long)step, (long long)ps->n_pairs,
        (long long)ps->n_wanting, clue_pseudo_method_name(c->method), c->k, now_seconds() - t0);
  }
  clue_plan_set_pseudo(t->plan, ps->partner, clue_pseudo_weight(c, c->start, step));
  return CLUE_OK;
}

static bool out_of_steps(const trainer *t) {
  return t->cfg->max_steps > 0 && t->ck.state.step >= t->cfg->max_steps;
}

/* Runs the rest of the current epoch; returns CLUE_EINTERRUPTED on a stop signal. */
static int run_epoch(trainer *t, int64_t epoch, clue_err *err) {
  clue_train_state *st = &t->ck.state;
  int64_t spe = clue_plan_steps_per_epoch(t->plan);
  for (int64_t s = st->partial_steps; s < spe && !out_of_steps(t); s++) {
    int stop = clue_train_stop_requested();
    MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, t->comm->comm);
    if (stop) return CLUE_EINTERRUPTED;
    clue_losses l;
    int rc = pseudo_tick(t, err);
    if (rc) return rc;
    rc = train_step(t, epoch, s, &l, err);
    if (rc == CLUE_ENUMERIC && t->cfg->on_nan == CLUE_NAN_SKIP) {
      skip_step(t, epoch, err);
      continue;
    }
    if (rc) return clue_err_prefix(err, "epoch %lld, step %lld", (long long)epoch,
                                   (long long)st->step + 1);
    losses_add(&st->partial, &l, 1.0);
    st->partial_steps++;
    if (show_progress(t) && spe >= 20)
      fprintf(stderr, "\r  epoch %lld: step %lld/%lld", (long long)epoch, (long long)s + 1,
              (long long)spe);
  }
  if (show_progress(t) && spe >= 20) fprintf(stderr, "\r%60s\r", "");
  return CLUE_OK;
}

static int train_loop(trainer *t, clue_err *err) {
  clue_train_state *st = &t->ck.state;
  while (!st->finished) {
    int64_t epoch = st->epoch + 1;
    double t0 = now_seconds();
    int64_t steps_before = st->partial_steps;
    int rc = run_epoch(t, epoch, err);
    st->seconds += now_seconds() - t0;
    if (rc == CLUE_EINTERRUPTED) {
      int src = save_checkpoint(t, err);
      if (src) return src;
      return clue_fail(err, CLUE_EINTERRUPTED,
                       "stop signal received: checkpoint written to %s at step %lld; "
                       "rerun with --resume to continue",
                       t->ckpt_path, (long long)st->step);
    }
    if (rc) return rc == CLUE_ENUMERIC ? numeric_stop(t, err) : rc;
    clue_losses tr = st->partial, va;
    if (st->partial_steps > 0) losses_add(&tr, &st->partial, 1.0 / st->partial_steps - 1.0);
    /* before validation refills the minibatch (its last block may be 1 row) */
    double cells = (double)(st->partial_steps - steps_before) * t->mb->B;
    bool has_val = t->plan->n_val > 0;
    if (has_val && (rc = validate(t, epoch, &va, err)))
      return rc == CLUE_ENUMERIC ? numeric_stop(t, err) : rc;
    double secs = now_seconds() - t0;
    st->epoch = epoch;
    st->partial_steps = 0;
    memset(&st->partial, 0, sizeof st->partial);
    char note[64];
    bool stop = after_epoch(t, epoch, has_val ? va.gen : tr.gen, note, sizeof note);
    if (stop) snprintf(note, sizeof note, "early stop");
    if (stop || epoch >= t->sch.max_epochs || out_of_steps(t)) {
      st->finished = true;
      snprintf(t->end_reason, sizeof t->end_reason, "%s",
               stop ? "early stop (validation loss)"
               : out_of_steps(t) ? "train.max_steps reached" : "max epochs reached");
    }
    log_epoch(t, epoch, &tr, &va, has_val, secs, secs > 0 ? cells / secs : 0, note);
    bool periodic = t->cfg->checkpoint_every > 0 && epoch % t->cfg->checkpoint_every == 0 &&
                    now_seconds() - t->last_checkpoint >= t->cfg->checkpoint_seconds;
    if (periodic && !st->finished && (rc = save_checkpoint(t, err))) return rc;
  }
  return CLUE_OK;
}

/* Collective. The best epoch's weights back into the model. While the sums
 * through the window hold them, the weights are one copy for every rank: rank
 * 0 writes them, between barriers; each rank its own BatchNorm statistics. */
static void restore_best(trainer *t) {
  clue_model *m = t->ck.model;
  if (t->comm->size == 1 || !clue_gradsum_shared(t->gsum)) {
    clue_snapshot_restore(&t->ck.best, m);
    return;
  }
  clue_comm_barrier(t->comm); /* nobody reads the weights any more */
  if (clue_gradsum_node_rank(t->gsum) == 0) /* one copy per node */
    clue_snapshot_restore(&t->ck.best, m);
  else
    memcpy(m->buf.w, t->ck.best.buf, (size_t)m->buf.n * sizeof(real));
  clue_comm_barrier(t->comm);
}

/* Collective. What `clue predict` needs besides the weights: the calibration
 * of the predictions between modalities (calib.h), the reference cells and the
 * blend's weights (refcells.h), from the run's cells measured in two or more
 * modalities. */
static int prediction_aids(trainer *t, clue_err *err) {
  double t0 = now_seconds();
  int rc = CLUE_OK;
  if (t->cfg->calibration != CLUE_CALIB_OFF) {
    const clue_plan *val = t->cfg->calibration == CLUE_CALIB_VALIDATION ? t->plan : NULL;
    rc = clue_train_calibrate(&t->ck, t->d, &t->in, val, t->cfg->seed, CLUE_CALIB_CELLS,
                              t->comm, err);
  }
  int64_t *own = NULL;
  if (rc == CLUE_OK && t->cfg->reference_cells > 0)
    rc = clue_train_refcells(&t->ck, t->d, &t->in, t->cfg->seed, t->cfg->reference_cells,
                             t->comm, &own, err);
  if (rc == CLUE_OK && t->ck.refcells) { /* on the calibration's cells (off: validation) */
    const clue_plan *val = t->cfg->calibration == CLUE_CALIB_ALL ? NULL : t->plan;
    rc = clue_train_blend(&t->ck, t->d, &t->in, val, own, t->cfg->seed, CLUE_CALIB_CELLS,
                          t->comm, err);
  }
  free(own);
  const clue_calib *most = NULL;
  for (int i = 0; i < t->d->n_mod; i++)
    for (int j = 0; j < t->d->n_mod; j++)
      if (t->ck.calib[i][j] && (!most || t->ck.calib[i][j]->n_cells > most->n_cells))
        most = t->ck.calib[i][j];
  if (rc == CLUE_OK && most)
    say(t, "predictions calibrated on %lld %scells measured in both modalities",
        (long long)most->n_cells, most->validation ? "validation " : "");
  if (rc == CLUE_OK && t->ck.refcells)
    say(t, "%s%lld reference cells kept for clue predict", most ? "; " : "",
        (long long)t->ck.refcells->n);
  if (rc == CLUE_OK && (most || t->ck.refcells)) say(t, " (%.1f s)\n", now_seconds() - t0);
  return rc;
}

static void teardown(trainer *t) {
  clue_gradsum_free(t->gsum);
  clue_pseudo_free(t->pseudo);
  free(t->buf_backup);
  clue_minibatch_free(t->mb);
  clue_work_free(t->work);
  clue_plan_free(t->plan);
  clue_inputs_release(&t->in);
  clue_ckpt_release(&t->ck);
  clue_dataset_free(t->d);
  clue_layout_free(&t->lay);
}

/* How the ranks share the layers, for the first line of a run and run.json. */
static void layout_note(const trainer *t, char *buf, size_t size) {
  clue_layout_describe(&t->lay, clue_work_outputs_split(t->work),
                       clue_work_encoder_owner(t->work, 0, 0) >= 0, buf, size);
}

/* Collective. The facts of run.json that do not change during training. */
static void record_init(trainer *t) {
  const clue_dataset *d = t->d;
  clue_run_record *r = &t->rec;
  memset(r, 0, sizeof *r);
  int64_t all = 0;
  for (int64_t c = d->local_begin; c < d->local_end; c++) {
    int n = 0;
    for (int k = 0; k < d->n_mod; k++) n += d->local_row[(c - d->local_begin) * d->n_mod + k] >= 0;
    all += n == d->n_mod;
  }
  clue_comm_sum_int64(t->comm, &all, 1);
  r->ranks = t->comm->size;
  r->threads = t->opts->threads;
  clue_blas_describe(r->blas, sizeof r->blas);
  layout_note(t, r->layout, sizeof r->layout);
  r->cells = d->n_cells;
  r->cells_train = t->plan->n_train;
  r->cells_val = t->plan->n_val;
  r->cells_all_mods = all;
  for (int k = 0; k < d->n_mod; k++) {
    r->mod[k].cells = d->mod[k].n_cells;
    r->mod[k].features = d->mod[k].n_features;
    r->mod[k].decoded = t->ck.prep[k]->n_decoded;
    r->mod[k].components = t->ck.prep[k]->n_components;
  }
  r->steps_per_epoch = clue_plan_steps_per_epoch(t->plan);
  r->max_epochs = last_epoch(t);
  r->align_burnin = t->sch.align_burnin;
  r->patience = t->sch.patience;
  if (t->comm->rank == 0 && t->ckpt_step >= 0) { /* a resume: the earlier starts' record */
    clue_run_record_previous(t->cfg->out_dir, r);
    if (r->n_resumed == CLUE_RUN_RESUMES_MAX) /* keep the last ones */
      memmove(r->resumed_at, r->resumed_at + 1, (CLUE_RUN_RESUMES_MAX - 1) * sizeof *r->resumed_at);
    r->n_resumed -= r->n_resumed == CLUE_RUN_RESUMES_MAX;
    r->resumed_at[r->n_resumed++] = t->ck.state.epoch;
  }
  r->starts = t->ckpt_step >= 0 ? (r->starts > 0 ? r->starts : 1) + 1 : 1;
  t->has_rec = true;
}

/* Rank 0: run.json with the current state. A failure to write it is not
 * reported: the folder's checkpoint, written next, says what is wrong in the one
 * error line of the run (clue report then says run.json is missing). */
static void record_write(trainer *t, const char *status, const char *reason, double wall) {
  if (t->comm->rank != 0 || !t->has_rec) return;
  clue_run_record *r = &t->rec;
  const clue_train_state *st = &t->ck.state;
  r->status = status;
  snprintf(r->reason, sizeof r->reason, "%s", reason);
  r->epoch = st->epoch, r->step = st->step, r->best_epoch = st->best_epoch;
  r->seconds = st->seconds, r->lr = st->lr, r->wall_seconds = wall;
  clue_err e;
  (void)clue_run_record_write(t->cfg->out_dir, t->cfg, r, &e);
}

/* Rank 0: run.json at the end of this start, from the outcome rc. */
static void record_end(trainer *t, int rc, const clue_err *err, double wall) {
  if (rc == CLUE_OK)
    record_write(t, "finished", t->end_reason[0] ? t->end_reason : "finished", wall);
  else if (rc == CLUE_EINTERRUPTED)
    record_write(t, "stopped", "stop signal: checkpoint written; continue with --resume", wall);
  else
    record_write(t, "failed", err->msg, wall);
}

int clue_train_run(const clue_config *cfg, const clue_train_opts *opts,
                   const clue_comm *comm, clue_err *err) {
  trainer t;
  memset(&t, 0, sizeof t);
  t.cfg = cfg;
  t.comm = comm;
  t.opts = opts;
  double t_start = now_seconds();
  int rc = setup(&t, err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) {
    clue_model *m = t.ck.model;
    clue_arena *arenas[2] = {&m->gen, &m->disc};
    rc = clue_layout_gradsum_new(&t.lay, m->gen.n + m->disc.n, true, &t.gsum, err);
    if (rc == CLUE_OK) rc = clue_gradsum_attach(t.gsum, arenas, 2, err);
    if (rc == CLUE_OK) rc = clue_train_split_grads(t.gsum, m, t.work, err);
  }
  if (rc == CLUE_OK) {
    free(t.ck.config_yaml); /* the checkpoint records the config of this run */
    t.ck.config_yaml = clue_config_to_yaml(cfg);
    char layout[256];
    layout_note(&t, layout, sizeof layout);
    say(&t,
                "training on %lld cells (%lld for steps, %lld for validation) on %d rank%s%s: "
                "%lld steps/epoch, up to %lld epochs, alignment burn-in %lld, patience %lld\n",
                (long long)t.d->n_cells, (long long)t.plan->n_train, (long long)t.plan->n_val,
                comm->size, comm->size > 1 ? "s" : "",
                layout,
                (long long)clue_plan_steps_per_epoch(t.plan), (long long)last_epoch(&t),
                (long long)t.sch.align_burnin, (long long)t.sch.patience);
    if (comm->rank == 0 && cfg->batch_size > CLUE_BATCH_SAFE)
      fprintf(stderr,
              "clue train: warning: train.batch_size %d is above %d, the largest global batch "
              "that kept the embedding's quality in clue's measurements (docs/scaling.md)\n",
              cfg->batch_size, CLUE_BATCH_SAFE);
    clue_train_install_signals();
    t.last_checkpoint = now_seconds();
    record_init(&t);
    record_write(&t, "running", "", 0);
    rc = train_loop(&t, err);
  }
  if (rc == CLUE_OK) {
    if (t.ck.has_best) restore_best(&t);
    rc = prediction_aids(&t, err);
    if (rc == CLUE_OK) rc = save_checkpoint(&t, err);
    if (rc == CLUE_OK)
      say(&t, "done: %lld epochs, %lld steps, %.1f s; %s weights of epoch %lld in %s\n",
                (long long)t.ck.state.epoch, (long long)t.ck.state.step, t.ck.state.seconds,
                t.ck.has_best ? "best" : "final",
                (long long)(t.ck.has_best ? t.ck.state.best_epoch : t.ck.state.epoch),
                t.ckpt_path);
  }
  record_end(&t, rc, err, now_seconds() - t_start);
  teardown(&t);
  return rc;
}
