/* step.c — the discriminator step, the generator step (also used, in eval mode,
 * for validation losses) and embedding. The order of collective calls
 * (BatchNorm reductions, the loss reduction) is the same on every rank: it
 * depends only on global counts. */
#include <math.h>
#include <string.h>

#include "clue/prof.h"
#include "clue/rng.h"
#include "model_internal.h"

real l2_normalize(const real *x, int n, real *y) {
  double ss = 0;
  for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
  real norm = (real)sqrt(ss);
  real div = norm > (real)1e-12 ? norm : (real)1e-12;
  for (int i = 0; i < n; i++) y[i] = x[i] / div;
  return norm;
}

void l2_normalize_backward(const real *y, real norm, const real *dy, int n, real *dx) {
  /* y = x / max(‖x‖, ε): dx = (dy − y·(y·dy)) / ‖x‖ when ‖x‖ > ε, else dy / ε. */
  if (!(norm > (real)1e-12)) {
    for (int i = 0; i < n; i++) dx[i] = dy[i] / (real)1e-12;
    return;
  }
  double dot = 0;
  for (int i = 0; i < n; i++) dot += (double)y[i] * dy[i];
  for (int i = 0; i < n; i++) dx[i] = (dy[i] - y[i] * (real)dot) / norm;
}

/* ---- discriminator over the K·B rows of posterior means ---- */

/* Fills the discriminator input from the encoders' means (+ annealed noise). */
static int dsc_gather(clue_work *w, const clue_minibatch *mb, const clue_pass *p) {
  int K = w->K, Kd = w->Kd, r = 0;
  for (int k = 0; k < K; k++) {
    const clue_mod_rows *rows = &mb->mod[k];
    for (int i = 0; i < rows->n; i++, r++) {
      real *x = w->dsc_in + (int64_t)r * Kd;
      memcpy(x, w->mean[k] + (int64_t)i * Kd, (size_t)Kd * sizeof(real));
      w->dsc_batch[r] = rows->batch[i];
      w->dsc_label[r] = k;
      w->dsc_key[r] = w->key[k][i];
      if (p->disc_noise > 0) {
        clue_rng g = clue_rng_stream(p->seed, CLUE_RNG_DISC_NOISE, p->pass, w->key[k][i]);
        for (int c = 0; c < Kd; c++) x[c] += (real)(p->disc_noise * clue_rng_normal(&g));
      }
    }
  }
  return r;
}

/* Σ cross-entropy of the n rows; with grad, dlogits = coef·(softmax − onehot). */
static double dsc_loss(clue_model *m, clue_work *w, int n, int64_t n_global,
                       const clue_pass *p, real coef, bool grad, bool input_grad,
                       const clue_comm *comm) {
  int K = w->K;
  nn_mode mode = {.train = p->train, .comm = comm};
  mode.rng.seed = p->seed;
  mode.rng.pass = app_pass(p->pass, APP_DISC);
  mode.rng.row_key = w->dsc_key;
  real *h = nn_mlp_forward(&m->disc, &m->buf, &m->dsc, w->dsc_in, w->dsc_batch, n,
                           n_global, &mode, &w->dsc_cache);
  nn_linear_forward(&m->disc, &m->dsc_pred, h, n, w->logits);
  double total = 0;
  for (int r = 0; r < n; r++) {
    const real *lg = w->logits + (int64_t)r * K;
    real mx = lg[0];
    for (int j = 1; j < K; j++) mx = lg[j] > mx ? lg[j] : mx;
    double z = 0;
    for (int j = 0; j < K; j++) z += exp((double)(lg[j] - mx));
    double lse = mx + log(z);
    total += lse - lg[w->dsc_label[r]];
    if (grad) {
      real *dl = w->dlogits + (int64_t)r * K;
      for (int j = 0; j < K; j++)
        dl[j] = coef * (real)(exp((double)lg[j] - lse) - (j == w->dsc_label[r]));
    }
  }
  if (!grad) return total;
  int hw = nn_mlp_out_width(&m->dsc);
  memset(w->dsc_dh, 0, (size_t)n * hw * sizeof(real));
  nn_linear_backward(&m->disc, &m->dsc_pred, h, w->dlogits, n, w->dsc_dh);
  if (input_grad) memset(w->dsc_din, 0, (size_t)n * w->Kd * sizeof(real));
  nn_mlp_backward(&m->disc, &m->dsc, &w->dsc_cache, w->dsc_dh, n, n_global,
                  input_grad ? w->dsc_din : NULL, &mode);
  return total;
}

int clue_model_d_step(clue_model *m, clue_work *w, const clue_minibatch *mb,
                      const clue_loss_weights *lw, const clue_pass *p,
                      const clue_comm *comm, clue_losses *losses, clue_err *err) {
  int K = w->K;
  clue_arena_zero_grad(&m->disc);
  enc_forward_all(m, w, mb, p, comm);
  int n = dsc_gather(w, mb, p);
  real coef = (real)(lw->align / ((double)K * mb->B));
  double sum = dsc_loss(m, w, n, (int64_t)K * mb->B, p, coef, p->train, false, comm);
  clue_prof_push(CLUE_PROF_COLL);
  clue_comm_sum_double(comm, &sum, 1);
  clue_prof_pop();
  memset(losses, 0, sizeof *losses);
  losses->dsc = sum / ((double)K * mb->B);
  if (!isfinite(losses->dsc))
    return clue_fail(err, CLUE_ENUMERIC, "discriminator loss is %g", losses->dsc);
  return CLUE_OK;
}

/* ---- generator step ---- */

/* Local sums of a generator pass, reduced over ranks in one call. */
typedef struct gen_sums {
  double nll[CLUE_K], kl[CLUE_K], cross[CLUE_K], cos[CLUE_K];
  double real[CLUE_K][CLUE_K]; /* [src][tgt] */
  double dsc;
} gen_sums;

static void add_block(real *dst, int dst_stride, const real *src, int n, int d, int block) {
  for (int i = 0; i < n; i++) {
    real *o = dst + (int64_t)i * dst_stride + block * d;
    const real *x = src + (int64_t)i * d;
    for (int c = 0; c < d; c++) o[c] += x[c];
  }
}

/* Joint sample of the local joint rows: mean of the observed samples, normalised. */
static void gen_joint_sample(const clue_model *m, clue_work *w, const clue_minibatch *mb) {
  int K = w->K, Kd = w->Kd;
  for (int r = 0; r < mb->n_joint; r++) {
    real *sb = w->sbar + (int64_t)r * Kd;
    memset(sb, 0, (size_t)Kd * sizeof(real));
    int cnt = 0;
    for (int k = 0; k < K; k++) {
      int ik = mb->joint_row[r * CLUE_K + k];
      if (ik < 0) continue;
      cnt++;
      const real *x = w->shat[k] + (int64_t)ik * Kd;
      for (int c = 0; c < Kd; c++) sb[c] += x[c];
    }
    for (int c = 0; c < Kd; c++) sb[c] /= (real)cnt;
    real *sh = w->sbar_hat + (int64_t)r * Kd;
    if (m->spec.normalize_u)
      w->sbar_norm[r] = l2_normalize(sb, Kd, sh);
    else {
      memcpy(sh, sb, (size_t)Kd * sizeof(real));
      w->sbar_norm[r] = 1;
    }
  }
  memset(w->dsbar_hat, 0, (size_t)mb->n_joint * Kd * sizeof(real));
}

/* Row n of application a: decoder input z (d values), batch, library size,
 * target row, row key, and where the row came from. */
static void put_row(dec_app *a, int n, int d, const real *z, int32_t batch, real lib,
                    int64_t trow, uint64_t key, int src) {
  memcpy(a->z + (int64_t)n * d, z, (size_t)d * sizeof(real));
  a->batch[n] = batch;
  a->lib[n] = lib;
  a->trow[n] = trow;
  a->key[n] = key;
  a->src[n] = src;
}

/* Self application of decoder k: all B rows (fillers included), block k of
 * each row's own sample. */
static void place_self(const clue_model *m, clue_work *w, const clue_minibatch *mb,
                       const clue_loss_weights *lw, int k, dec_app *a) {
  const clue_mod_rows *rows = &mb->mod[k];
  int K = w->K, d = w->d, Kd = w->Kd;
  for (int i = 0; i < rows->n; i++)
    put_row(a, i, d, w->shat[k] + (int64_t)i * Kd + k * d, rows->batch[i],
            w->lib[k][(int64_t)i * K + k], rows->trow[i], w->key[k][i], i);
  a->n = rows->n;
  a->n_global = mb->B;
  a->id = APP_SELF(k);
  a->coef = (real)(lw->data * lw->mod_weight[k] / ((double)mb->B * m->spec.n_feat[k]));
  a->target = rows->target;
}

static void take_self(clue_work *w, int k, const dec_app *a) {
  int K = w->K;
  add_block(w->dshat[k], w->Kd, a->dz, a->n, w->d, k);
  for (int i = 0; i < a->n; i++) w->dlib[k][(int64_t)i * K + k] += a->dlib[i];
}

/* Joint-cross application of decoder k: the joint rows with modality k
 * observed, block k of their joint sample, decoded with the batch of the row
 * of modality k (a pseudo-partner's may differ from the cell's). */
static void place_joint_cross(const clue_model *m, clue_work *w, const clue_minibatch *mb,
                              const clue_loss_weights *lw, int k, dec_app *a) {
  int K = w->K, d = w->d, Kd = w->Kd, n = 0;
  for (int r = 0; r < mb->n_joint; r++) {
    int ik = mb->joint_row[r * CLUE_K + k];
    if (ik < 0) continue;
    put_row(a, n++, d, w->sbar_hat + (int64_t)r * Kd + k * d, mb->mod[k].batch[ik],
            w->lib[k][(int64_t)ik * K + k], mb->mod[k].trow[ik], w->key[k][ik], r);
  }
  a->n = n;
  a->n_global = mb->n_obs[k];
  a->id = APP_CROSS(K, k);
  a->coef = (real)(lw->cross * lw->mod_weight[k] /
                   ((double)mb->n_obs[k] * m->spec.n_feat[k]));
  a->target = mb->mod[k].target;
}

static void take_joint_cross(clue_work *w, const clue_minibatch *mb, int k,
                             const dec_app *a) {
  int K = w->K, Kd = w->Kd;
  for (int q = 0; q < a->n; q++) {
    int r = a->src[q];
    int ik = mb->joint_row[r * CLUE_K + k];
    add_block(w->dsbar_hat + (int64_t)r * Kd, Kd, a->dz + (int64_t)q * w->d, 1, w->d, k);
    w->dlib[k][(int64_t)ik * K + k] += a->dlib[q];
  }
}

/* Each decoder on its self rows (all B rows, fillers included) and, run
 * together, its joint-cross rows (decoded from the joint sample); KL of every
 * modality. */
static void gen_decode(clue_model *m, clue_work *w, const clue_minibatch *mb,
                       const clue_loss_weights *lw, const clue_pass *p, bool grad,
                       const clue_comm *comm, gen_sums *s) {
  for (int k = 0; k < w->K; k++) {
    dec_work *dw = &w->dec[k];
    bool cross = mb->n_obs[k] > 0 && lw->cross != 0;
    place_self(m, w, mb, lw, k, &dw->app[0]);
    if (cross) place_joint_cross(m, w, mb, lw, k, &dw->app[1]);
    dec_run(m, w, k, cross ? 2 : 1, p, grad, comm);
    s->nll[k] = dw->app[0].nll;
    if (cross) s->cross[k] = dw->app[1].nll;
    if (grad) {
      take_self(w, k, &dw->app[0]);
      if (cross) take_joint_cross(w, mb, k, &dw->app[1]);
    }
    double scale = lw->data * lw->mod_weight[k] / ((double)mb->B * m->spec.n_feat[k]);
    s->kl[k] = enc_kl(m, w, k, mb->mod[k].n, (real)(scale * lw->kl), grad);
  }
}

/* Real cross: decode target modality t from source s's own sample, rows with both. */
static void gen_real_cross(clue_model *m, clue_work *w, const clue_minibatch *mb,
                           const clue_loss_weights *lw, const clue_pass *p, bool grad,
                           const clue_comm *comm, gen_sums *s) {
  int K = w->K, d = w->d, Kd = w->Kd;
  if (lw->real_cross == 0) return;
  for (int t = 0; t < K; t++)
    for (int src = 0; src < K; src++) {
      if (src == t || mb->n_pair[src][t] == 0) continue;
      dec_app *a = &w->dec[t].app[0];
      int n = 0;
      for (int r = 0; r < mb->n_joint; r++) {
        int is = mb->joint_row[r * CLUE_K + src], it = mb->joint_row[r * CLUE_K + t];
        if (is < 0 || it < 0) continue;
        put_row(a, n++, d, w->shat[src] + (int64_t)is * Kd + t * d, mb->mod[t].batch[it],
                w->lib[src][(int64_t)is * K + t], mb->mod[t].trow[it], w->key[t][it], is);
      }
      a->n = n;
      a->n_global = mb->n_pair[src][t];
      a->id = APP_REAL(K, src, t);
      a->coef = (real)(lw->real_cross * lw->mod_weight[t] /
                       ((double)mb->n_pair[src][t] * m->spec.n_feat[t]));
      a->target = mb->mod[t].target;
      dec_run(m, w, t, 1, p, grad, comm);
      s->real[src][t] = a->nll;
      if (!grad) continue;
      for (int q = 0; q < n; q++) {
        int is = a->src[q];
        add_block(w->dshat[src] + (int64_t)is * Kd, Kd, a->dz + (int64_t)q * d, 1, d, t);
        w->dlib[src][(int64_t)is * K + t] += a->dlib[q];
      }
    }
}

/* Cosine alignment of each observed sample with the joint sample, then the
 * gradient of the joint sample back to the modality samples. */
static void gen_cosine(const clue_model *m, clue_work *w, const clue_minibatch *mb,
                       const clue_loss_weights *lw, bool grad, gen_sums *s) {
  int K = w->K, Kd = w->Kd;
  for (int r = 0; r < mb->n_joint; r++) {
    const real *b = w->sbar_hat + (int64_t)r * Kd;
    real *db = w->dsbar_hat + (int64_t)r * Kd;
    double nb = 0;
    for (int c = 0; c < Kd; c++) nb += (double)b[c] * b[c];
    nb = sqrt(nb);
    for (int k = 0; k < K; k++) {
      int ik = mb->joint_row[r * CLUE_K + k];
      if (ik < 0) continue;
      const real *a = w->shat[k] + (int64_t)ik * Kd;
      double na = 0, ab = 0;
      for (int c = 0; c < Kd; c++) {
        na += (double)a[c] * a[c];
        ab += (double)a[c] * b[c];
      }
      na = sqrt(na);
      double ea = na > 1e-8 ? na : 1e-8, eb = nb > 1e-8 ? nb : 1e-8;
      double cs = ab / (ea * eb);
      s->cos[k] += 1 - cs;
      if (!grad || lw->cos == 0) continue;
      double coef = lw->cos / (double)mb->n_obs[k];
      real *da = w->dshat[k] + (int64_t)ik * Kd;
      for (int c = 0; c < Kd; c++) {
        double ga = b[c] / (ea * eb) - (na > 1e-8 ? cs * a[c] / (na * na) : 0);
        double gb = a[c] / (ea * eb) - (nb > 1e-8 ? cs * b[c] / (nb * nb) : 0);
        da[c] -= (real)(coef * ga);
        db[c] -= (real)(coef * gb);
      }
    }
  }
  if (!grad) return;
  for (int r = 0; r < mb->n_joint; r++) {
    real *db = w->dsbar_hat + (int64_t)r * Kd;
    if (m->spec.normalize_u)
      l2_normalize_backward(w->sbar_hat + (int64_t)r * Kd, w->sbar_norm[r], db, Kd, db);
    int cnt = 0;
    for (int k = 0; k < K; k++) cnt += mb->joint_row[r * CLUE_K + k] >= 0;
    for (int k = 0; k < K; k++) {
      int ik = mb->joint_row[r * CLUE_K + k];
      if (ik < 0) continue;
      real *da = w->dshat[k] + (int64_t)ik * Kd;
      for (int c = 0; c < Kd; c++) da[c] += db[c] / (real)cnt;
    }
  }
}

/* Adversarial term: −λ_align · discriminator loss, through the posterior means. */
static void gen_adversarial(clue_model *m, clue_work *w, const clue_minibatch *mb,
                            const clue_loss_weights *lw, const clue_pass *p, bool grad,
                            const clue_comm *comm, gen_sums *s) {
  int K = w->K, Kd = w->Kd;
  int n = dsc_gather(w, mb, p);
  real coef = (real)(-lw->align / ((double)K * mb->B));
  s->dsc = dsc_loss(m, w, n, (int64_t)K * mb->B, p, coef, grad, grad, comm);
  if (!grad) return;
  int r = 0;
  for (int k = 0; k < K; k++)
    for (int i = 0; i < mb->mod[k].n; i++, r++) {
      real *dm = w->dmean[k] + (int64_t)i * Kd;
      const real *g = w->dsc_din + (int64_t)r * Kd;
      for (int c = 0; c < Kd; c++) dm[c] += g[c];
    }
}

static void gen_losses(const clue_model *m, const clue_minibatch *mb,
                       const clue_loss_weights *lw, const gen_sums *s, clue_losses *l) {
  int K = m->spec.n_mod;
  memset(l, 0, sizeof *l);
  double elbo_sum = 0;
  for (int k = 0; k < K; k++) {
    double F = m->spec.n_feat[k];
    l->nll[k] = s->nll[k] / (mb->B * F);
    l->kl[k] = s->kl[k] / (mb->B * F);
    l->elbo[k] = l->nll[k] + lw->kl * l->kl[k];
    elbo_sum += lw->mod_weight[k] * l->elbo[k];
    if (mb->n_obs[k] > 0) {
      l->joint_cross[k] = s->cross[k] / ((double)mb->n_obs[k] * F);
      l->cos[k] = s->cos[k] / (double)mb->n_obs[k];
    }
    for (int src = 0; src < K; src++)
      if (src != k && mb->n_pair[src][k] > 0)
        l->real_cross[k] += s->real[src][k] / ((double)mb->n_pair[src][k] * F);
    l->joint_cross_sum += lw->mod_weight[k] * l->joint_cross[k];
    l->real_cross_sum += lw->mod_weight[k] * l->real_cross[k];
    l->cos_sum += l->cos[k];
  }
  l->dsc = s->dsc / ((double)K * mb->B);
  l->gen = lw->data * elbo_sum + lw->cross * l->joint_cross_sum +
           lw->real_cross * l->real_cross_sum + lw->cos * l->cos_sum - lw->align * l->dsc;
}

/* Zeroes the generator's gradients before a step: none when they are known
 * zero (m->gen_grad_zero); through split output layers whose other rows are
 * known zero (m->split_grad_clean), all but the rows of other ranks, which this
 * rank's step never writes (at the Multiome shape on 2 ranks, 21 of the arena's
 * 56 MB). */
static void zero_gen_grad(clue_model *m, const clue_work *w, const clue_comm *comm) {
  const out_split *s = &w->split;
  clue_arena *a = &m->gen;
  bool split = out_split_active(s, comm); /* else whole layers write every row */
  if (m->gen_grad_zero) { /* as after clue_arena_zero_grad below */
    m->gen_grad_zero = false;
    m->split_grad_clean = split;
    return;
  }
  if (!split || !m->split_grad_clean) {
    clue_arena_zero_grad(a);
    m->split_grad_clean = split;
    return;
  }
  const clue_tensor *t[2 * CLUE_K];
  int n = 0;
  for (int k = 0; k < w->K; k++) {
    const clue_tensor *add[2] = {&a->t[m->dec_loc[k].w], &a->t[m->dec_loc[k].b]};
    for (int j = 0; j < 2; j++) { /* by offset */
      int i = n++;
      for (; i > 0 && t[i - 1]->offset > add[j]->offset; i--) t[i] = t[i - 1];
      t[i] = add[j];
    }
  }
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    int64_t f0 = feat_begin(t[i]->rows, s->P, s->r), f1 = feat_begin(t[i]->rows, s->P, s->r + 1);
    memset(a->g + at, 0, (size_t)(t[i]->offset - at) * sizeof(real));
    memset(a->g + t[i]->offset + f0 * t[i]->cols, 0,
           (size_t)((f1 - f0) * t[i]->cols) * sizeof(real));
    at = t[i]->offset + t[i]->rows * t[i]->cols;
  }
  memset(a->g + at, 0, (size_t)(a->n - at) * sizeof(real));
}

int clue_model_g_step(clue_model *m, clue_work *w, const clue_minibatch *mb,
                      const clue_loss_weights *lw, const clue_pass *p,
                      const clue_comm *comm, clue_losses *losses, clue_err *err) {
  int K = w->K;
  bool grad = p->train;
  size_t BKd = (size_t)w->B * w->Kd;
  if (grad) {
    zero_gen_grad(m, w, comm);
    clue_arena_zero_grad(&m->disc);
  }
  enc_forward_all(m, w, mb, p, comm);
  for (int k = 0; k < K; k++) {
    w->dec[k].terms_f0 = w->dec[k].terms_f1 = 0; /* the weights moved: dec_run recomputes */
    enc_sample(m, w, k, &mb->mod[k], p);
    enc_library_forward(m, w, k, &mb->mod[k]);
    memset(w->dmean[k], 0, BKd * sizeof(real));
    memset(w->dstd[k], 0, BKd * sizeof(real));
    memset(w->dshat[k], 0, BKd * sizeof(real));
    memset(w->dlib[k], 0, (size_t)w->B * K * sizeof(real));
  }
  gen_sums s;
  memset(&s, 0, sizeof s);
  gen_joint_sample(m, w, mb);
  gen_decode(m, w, mb, lw, p, grad, comm, &s);
  gen_real_cross(m, w, mb, lw, p, grad, comm, &s);
  gen_cosine(m, w, mb, lw, grad, &s);
  gen_adversarial(m, w, mb, lw, p, grad, comm, &s);
  if (grad) {
    enc_backward_all(m, w, mb, p, comm);
    for (int k = 0; k < K; k++) enc_library_backward(m, w, k, &mb->mod[k]);
  }
  clue_prof_push(CLUE_PROF_COLL);
  clue_comm_sum_double(comm, (double *)&s, sizeof s / sizeof(double));
  clue_prof_pop();
  gen_losses(m, mb, lw, &s, losses);
  if (!isfinite(losses->gen)) {
    for (int k = 0; k < K; k++) {
      const char *name = m->spec.names[k];
      if (!isfinite(losses->nll[k]))
        return clue_fail(err, CLUE_ENUMERIC, "reconstruction loss of %s is %g", name,
                         losses->nll[k]);
      if (!isfinite(losses->kl[k]))
        return clue_fail(err, CLUE_ENUMERIC, "KL term of %s is %g", name, losses->kl[k]);
      if (!isfinite(losses->joint_cross[k]) || !isfinite(losses->real_cross[k]))
        return clue_fail(err, CLUE_ENUMERIC, "cross reconstruction loss of %s is not finite",
                         name);
      if (!isfinite(losses->cos[k]))
        return clue_fail(err, CLUE_ENUMERIC, "cosine term of %s is %g", name,
                         losses->cos[k]);
    }
    return clue_fail(err, CLUE_ENUMERIC, "generator loss is %g (discriminator loss %g)",
                     losses->gen, losses->dsc);
  }
  return CLUE_OK;
}

/* ---- embedding ---- */

int clue_model_embed(const clue_model *m, clue_work *w, int k, const real *x, int64_t n,
                     float *out, clue_err *err) {
  int Kd = w->Kd, R = m->spec.enc_in[k];
  clue_mod_rows rows;
  memset(&rows, 0, sizeof rows);
  rows.pos = w->dec[0].app[0].src; /* any int scratch of B entries */
  clue_pass p = {.seed = 0, .pass = 0, .disc_noise = 0, .train = false};
  clue_comm self = clue_comm_self();
  for (int64_t b = 0; b < n; b += w->B) {
    int c = (int)(n - b < w->B ? n - b : w->B);
    rows.n = c;
    rows.enc_in = (real *)(x + b * R);
    for (int i = 0; i < c; i++) rows.pos[i] = i;
    /* Eval mode touches no running statistics: the cast drops const only for the
     * shared forward code path. */
    enc_forward((clue_model *)m, w, k, &rows, c, &p, &self);
    for (int64_t i = 0; i < (int64_t)c * Kd; i++) out[b * Kd + i] = (float)w->mean[k][i];
  }
  (void)err;
  return CLUE_OK;
}
