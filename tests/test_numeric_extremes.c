/* test_numeric_extremes.c — the model's losses and gradients stay finite on the
 * extremes real data and a diverging run produce, in the program's float32 build:
 * counts far above 2^24, decoder outputs (loc) of ±1e4, log_theta and log_std of
 * ±50, decoder scales of ±50, encoder inputs of ±1e4, all-zero cells, a
 * minibatch of one row (BatchNorm over one row), a modality with no observed
 * cell in the minibatch, a batch with a single cell. The likelihoods are also
 * checked alone against values worked out by hand at the extremes. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "clue/checkpoint.h"
#include "clue/likelihood.h"
#include "clue/model.h"
#include "clue/train.h"
#include "clue/rng.h"
#include "testutil.h"
#include "tu_model.h"

#define NCELL 8
#define BMAX 6

typedef struct fixture {
  clue_model *m;
  clue_work *w;
  clue_minibatch *mb;
  clue_csr *target[3];
  clue_comm comm;
} fixture;

static const clue_likelihood LIK[3] = {CLUE_LIK_NB, CLUE_LIK_BERNOULLI, CLUE_LIK_NORMAL};
static const int ENC_IN[3] = {5, 4, 6}, N_FEAT[3] = {7, 6, 5};

/* Targets of NCELL cells: cell i has `value` in every feature, except cells
 * 0 and 1 (all zeros) for counts. */
static clue_csr *targets(clue_likelihood lik, int F, double value) {
  clue_err err;
  clue_csr *t = clue_csr_new(NCELL, F, (int64_t)NCELL * F, &err);
  int64_t at = 0;
  for (int i = 0; i < NCELL; i++) {
    for (int f = 0; f < F && (lik == CLUE_LIK_NORMAL || i >= 2); f++) {
      t->indices[at] = f;
      t->data[at++] = lik == CLUE_LIK_BERNOULLI ? 1.0f : (float)(value * (1 + f % 3));
    }
    t->indptr[i + 1] = at;
  }
  return t;
}

/* A minibatch of B positions; `has(i, k)` tells which are observed. Batches:
 * position i is in batch i % 2, except that batch 1 has one cell when B > 2. */
static void fill(fixture *fx, int B, int (*has)(int i, int k), double enc_value) {
  clue_minibatch *mb = fx->mb;
  mb->B = B;
  memset(mb->n_obs, 0, sizeof mb->n_obs);
  memset(mb->n_pair, 0, sizeof mb->n_pair);
  clue_rng r = clue_rng_stream(7, CLUE_RNG_TEST, 2, 0);
  for (int k = 0; k < 3; k++) {
    clue_mod_rows *rows = &mb->mod[k];
    rows->n = B;
    rows->target = fx->target[k];
    for (int i = 0; i < B; i++) {
      rows->pos[i] = i;
      rows->trow[i] = has(i, k) ? i : NCELL - 1 - (i % 2);
      rows->batch[i] = i == 1 ? 1 : 0;
      for (int c = 0; c < ENC_IN[k]; c++)
        rows->enc_in[i * ENC_IN[k] + c] =
            (real)(enc_value != 0 ? enc_value * (c % 2 ? 1 : -1) : clue_rng_normal(&r));
    }
  }
  mb->n_joint = B;
  for (int i = 0; i < B; i++) {
    mb->joint_pos[i] = i;
    mb->joint_batch[i] = i == 1 ? 1 : 0;
    for (int k = 0; k < 3; k++) {
      mb->joint_row[i * CLUE_K + k] = has(i, k) ? i : -1;
      mb->n_obs[k] += has(i, k) != 0;
      for (int j = 0; j < 3; j++) mb->n_pair[k][j] += has(i, k) && has(i, j);
    }
  }
}

static int has_all(int i, int k) { return (void)i, (void)k, 1; }
static int has_no_adt(int i, int k) { return (void)i, k != 2; }            /* no adt cell */
static int has_mixed(int i, int k) { return (i + k) % 3 != 0 || k == 0; }

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  clue_err err;
  clue_model_spec s;
  const char *names[3] = {"rna", "atac", "adt"};
  tu_model_spec(&s, 3, names, LIK, ENC_IN, N_FEAT, (clue_mlp_config){2, 8},
                (clue_mlp_config){1, 6}, (clue_mlp_config){2, 5});
  TU_OK(clue_model_new(&s, 11, &fx->m, &err), &err);
  TU_OK(clue_work_new(fx->m, BMAX, &fx->w, &err), &err);
  TU_OK(clue_minibatch_new(3, ENC_IN, BMAX, &fx->mb, &err), &err);
  for (int k = 0; k < 3; k++) fx->target[k] = targets(LIK[k], N_FEAT[k], 3);
  fx->comm = clue_comm_self();
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  for (int k = 0; k < 3; k++) clue_csr_free(fx->target[k]);
  clue_minibatch_free(fx->mb);
  clue_work_free(fx->w);
  clue_model_free(fx->m);
  free(fx);
  return 0;
}

/* Sets every value of tensor `name` of the generator arena. */
static void set_tensor(fixture *fx, const char *name, real v) {
  int i = clue_arena_find(&fx->m->gen, name);
  assert_true(i >= 0);
  real *p = clue_arena_w(&fx->m->gen, i);
  for (int64_t e = 0; e < clue_arena_size(&fx->m->gen, i); e++) p[e] = v;
}

static void retarget(fixture *fx, double value) {
  for (int k = 0; k < 3; k++) {
    clue_csr_free(fx->target[k]);
    fx->target[k] = targets(LIK[k], N_FEAT[k], value);
    fx->mb->mod[k].target = fx->target[k];
  }
}

/* Asserts that every gradient of arena a is finite, naming the first that is not. */
static void assert_finite_grads(const clue_arena *a, const char *what) {
  for (int t = 0; t < a->n_tensors; t++)
    for (int64_t e = 0; e < clue_arena_size(a, t); e++) {
      real g = clue_arena_g(a, t)[e];
      if (!isfinite(g)) {
        print_error("%s: gradient of %s[%lld] is %g\n", what, a->t[t].name, (long long)e,
                    (double)g);
        fail();
      }
    }
}

/* One discriminator and one generator step (train), one generator pass (eval)
 * and an embedding: every loss and every gradient finite. */
static void assert_finite_steps(fixture *fx, const char *what) {
  clue_loss_weights lw;
  memset(&lw, 0, sizeof lw);
  lw.data = lw.kl = 1;
  lw.align = lw.cross = lw.real_cross = lw.cos = 0.5;
  for (int k = 0; k < CLUE_K; k++) lw.mod_weight[k] = 1;
  clue_pass p = {.seed = 3, .pass = 1, .disc_noise = 0.5, .train = true};
  clue_losses l;
  clue_err err;
  int rc = clue_model_d_step(fx->m, fx->w, fx->mb, &lw, &p, &fx->comm, &l, &err);
  if (rc) print_error("%s: discriminator step: %s\n", what, err.msg);
  assert_int_equal(rc, CLUE_OK);
  assert_finite_grads(&fx->m->disc, what);
  p.pass = 2;
  rc = clue_model_g_step(fx->m, fx->w, fx->mb, &lw, &p, &fx->comm, &l, &err);
  if (rc) print_error("%s: generator step: %s\n", what, err.msg);
  assert_int_equal(rc, CLUE_OK);
  assert_true(isfinite(l.gen) && isfinite(l.dsc));
  assert_finite_grads(&fx->m->gen, what);
  assert_finite_grads(&fx->m->disc, what);
  p.train = false;
  rc = clue_model_g_step(fx->m, fx->w, fx->mb, &lw, &p, &fx->comm, &l, &err);
  if (rc) print_error("%s: eval pass: %s\n", what, err.msg);
  assert_int_equal(rc, CLUE_OK);
  float out[BMAX * 9];
  TU_OK(clue_model_embed(fx->m, fx->w, 0, fx->mb->mod[0].enc_in, fx->mb->B, out, &err), &err);
  for (int i = 0; i < fx->mb->B * 9; i++) assert_true(isfinite(out[i]));
}

static void test_ordinary(void **state) {
  fill(*state, BMAX, has_all, 0);
  assert_finite_steps(*state, "ordinary");
}

static void test_huge_counts(void **state) {
  fixture *fx = *state;
  retarget(fx, 3e7); /* > 2^24: not exactly representable in float32 */
  fill(fx, BMAX, has_mixed, 0);
  assert_finite_steps(fx, "counts 3e7");
  retarget(fx, 1e12);
  assert_finite_steps(fx, "counts 1e12");
}

static void test_extreme_dispersion(void **state) {
  fixture *fx = *state;
  fill(fx, BMAX, has_all, 0);
  const real v[] = {50, -50, 90, -90};
  for (int i = 0; i < 4; i++) {
    char what[64];
    set_tensor(fx, "dec.rna.log_theta", v[i]);
    set_tensor(fx, "dec.adt.log_std", v[i]);
    snprintf(what, sizeof what, "log_theta = log_std = %g", (double)v[i]);
    assert_finite_steps(fx, what);
  }
  retarget(fx, 1e9); /* huge counts and residuals with std at its floor */
  set_tensor(fx, "dec.rna.log_theta", 50);
  set_tensor(fx, "dec.adt.log_std", -50);
  assert_finite_steps(fx, "counts 1e9, log_theta 50, log_std -50");
}

static void test_extreme_loc(void **state) {
  fixture *fx = *state;
  fill(fx, BMAX, has_all, 0);
  const real v[] = {1e4, -1e4};
  const char *mods[] = {"rna", "atac", "adt"};
  for (int i = 0; i < 2; i++) {
    char name[64], what[64];
    for (int k = 0; k < 3; k++) {
      snprintf(name, sizeof name, "dec.%s.loc.bias", mods[k]);
      set_tensor(fx, name, v[i]);
      snprintf(name, sizeof name, "dec.%s.scale_lin", mods[k]);
      set_tensor(fx, name, 50);
    }
    snprintf(what, sizeof what, "loc %g, scale 50", (double)v[i]);
    assert_finite_steps(fx, what);
    for (int k = 0; k < 3; k++) {
      snprintf(name, sizeof name, "dec.%s.scale_lin", mods[k]);
      set_tensor(fx, name, -50);
    }
    snprintf(what, sizeof what, "loc %g, scale -50", (double)v[i]);
    assert_finite_steps(fx, what);
  }
}

static void test_extreme_inputs(void **state) {
  fixture *fx = *state;
  fill(fx, BMAX, has_all, 1e4);
  assert_finite_steps(fx, "encoder inputs 1e4");
  fill(fx, BMAX, has_all, 1e30);
  assert_finite_steps(fx, "encoder inputs 1e30");
}

static void test_small_minibatches(void **state) {
  fixture *fx = *state;
  fill(fx, 1, has_all, 0); /* BatchNorm over one row, a batch with no cell */
  assert_finite_steps(fx, "one row");
  fill(fx, 2, has_all, 0); /* each batch one cell */
  assert_finite_steps(fx, "two rows");
  fill(fx, BMAX, has_no_adt, 0); /* no observed adt cell: fillers only */
  assert_finite_steps(fx, "no adt cell");
  fill(fx, 1, has_no_adt, 0);
  assert_finite_steps(fx, "one row, no adt cell");
}

static void test_zero_cells(void **state) {
  fixture *fx = *state;
  retarget(fx, 0); /* every count zero; normal targets all 0 */
  fill(fx, BMAX, has_all, 0);
  assert_finite_steps(fx, "all-zero cells");
}

/* The likelihoods alone at the extremes, against hand-worked values. */
static void test_likelihood_values(void **state) {
  (void)state;
  clue_err err;
  nn_lik_terms t;
  /* NB, one feature: softplus(scale) = 1 (scale = log(e − 1)), bias 0, so the
   * softmax over one feature is 1 and mu = lib. With x = 0:
   * −log p = θ·log(1 + mu/θ) → mu as θ → ∞ (Poisson limit): for θ = e^50,
   * −log p = mu = 10 (to float precision). */
  TU_OK(nn_lik_terms_new(CLUE_LIK_NB, 1, 1, &t, &err), &err);
  real scale = (real)log(M_E - 1), disp = 50, loc = 0, bias = 0, lib = 10;
  nn_lik_terms_update(&t, &scale, &disp);
  clue_csr *z = clue_csr_new(1, 1, 1, &err); /* one zero row */
  int32_t b0 = 0;
  int64_t r0 = 0;
  real dloc, dlib = 0, ds = 0, db = 0, dd = 0;
  nn_lik_grad g = {.coef = 1, .dloc = &dloc, .dlib = &dlib, .dscale = &ds, .dbias = &db,
                   .ddisp = &dd};
  double v = nn_lik_nll(&t, &loc, &bias, 1, &b0, &lib, z, &r0, &g, NULL);
  TU_CLOSE(v, 10.0, 1e-4);
  TU_CLOSE(dlib, 1.0, 1e-4); /* d(mu)/d(lib) */
  assert_true(isfinite(dd) && isfinite(dloc) && isfinite(ds) && isfinite(db));
  /* θ = e^−50: −log p(0) = θ·log(1 + mu/θ) ≈ θ·(log mu − log θ) ≈ 0 */
  disp = -50;
  nn_lik_terms_update(&t, &scale, &disp);
  dlib = dd = 0;
  v = nn_lik_nll(&t, &loc, &bias, 1, &b0, &lib, z, &r0, &g, NULL);
  assert_true(isfinite(v) && v >= 0 && v < 1e-10);
  assert_true(isfinite(dd) && isfinite(dlib));
  /* a count of 1e9 with mu = lib = 1e9 and θ = 1: finite, and close to the value
   * of the geometric distribution: −log p = (x+1)·log(1 + mu) − x·log(mu) */
  disp = 0;
  lib = 1e9f;
  nn_lik_terms_update(&t, &scale, &disp);
  clue_csr *x = clue_csr_new(1, 1, 1, &err);
  x->indices[0] = 0;
  x->data[0] = 1e9f;
  x->indptr[1] = 1;
  v = nn_lik_nll(&t, &loc, &bias, 1, &b0, &lib, x, &r0, &g, NULL);
  double mu = 1e9, xv = 1e9;
  TU_CLOSE(v, (xv + 1) * log1p(mu) - xv * log(mu), 1e-4);
  nn_lik_terms_free(&t);
  /* Normal with std at its floor (log_std = −50): finite loss and gradients for
   * a residual of 1e4 */
  TU_OK(nn_lik_terms_new(CLUE_LIK_NORMAL, 1, 1, &t, &err), &err);
  disp = -50;
  loc = 0;
  nn_lik_terms_update(&t, &scale, &disp);
  x->data[0] = 1e4f;
  dd = ds = db = 0;
  v = nn_lik_nll(&t, &loc, &bias, 1, &b0, NULL, x, &r0, &g, NULL);
  assert_true(isfinite(v) && v > 0);
  assert_true(isfinite(dloc) && isfinite(dd) && isfinite(ds) && isfinite(db));
  nn_lik_terms_free(&t);
  /* Bernoulli with a logit of ±1e4: −log p(1 | +1e4) = 0, −log p(1 | −1e4) = 1e4 */
  TU_OK(nn_lik_terms_new(CLUE_LIK_BERNOULLI, 1, 1, &t, &err), &err);
  nn_lik_terms_update(&t, &scale, NULL);
  x->data[0] = 1;
  loc = 1e4f;
  v = nn_lik_nll(&t, &loc, &bias, 1, &b0, NULL, x, &r0, &g, NULL);
  TU_CLOSE(v, 0.0, 1e-6);
  loc = -1e4f;
  v = nn_lik_nll(&t, &loc, &bias, 1, &b0, NULL, x, &r0, &g, NULL);
  TU_CLOSE(v, 1e4, 1e-6);
  assert_true(isfinite(dloc));
  nn_lik_terms_free(&t);
  clue_csr_free(x);
  clue_csr_free(z);
}

/* A gradient that overflows float32 (normal targets of 1e30 with the std at its
 * floor) while the loss, summed in double, stays finite: clue_train_step refuses
 * to apply it, names the tensor, and leaves the generator's weights unchanged. */
static void test_step_refuses_overflow(void **state) {
  fixture *fx = *state;
  clue_csr_free(fx->target[2]);
  fx->target[2] = targets(CLUE_LIK_NORMAL, N_FEAT[2], 1e30);
  fill(fx, BMAX, has_all, 0);
  set_tensor(fx, "dec.adt.log_std", -50);
  clue_err err;
  clue_optim od, og;
  TU_OK(clue_optim_init(&od, CLUE_OPT_RMSPROP, 1e-3, fx->m->disc.n, &err), &err);
  TU_OK(clue_optim_init(&og, CLUE_OPT_RMSPROP, 1e-3, fx->m->gen.n, &err), &err);
  size_t bytes = (size_t)fx->m->gen.n * sizeof(real);
  real *before = malloc(bytes);
  memcpy(before, fx->m->gen.w, bytes);
  clue_loss_weights lw;
  memset(&lw, 0, sizeof lw);
  lw.data = lw.kl = 1;
  for (int k = 0; k < CLUE_K; k++) lw.mod_weight[k] = 1;
  clue_pass p = {.seed = 3, .pass = 1, .train = true};
  clue_losses l;
  int rc = clue_train_step(fx->m, fx->w, fx->mb, &lw, &p, &od, &og, &fx->comm, &l, &err);
  assert_int_equal(rc, CLUE_ENUMERIC);
  assert_non_null(strstr(err.msg, "gradient of "));
  assert_non_null(strstr(err.msg, "after the allreduce"));
  assert_non_null(strstr(err.msg, "generator step"));
  assert_memory_equal(before, fx->m->gen.w, bytes);
  assert_int_equal(og.t, 0); /* the optimiser did not step */
  free(before);
  clue_optim_release(&od);
  clue_optim_release(&og);
}

/* clue_ckpt_save refuses a NaN weight before it touches the disk: the file
 * already at the path is left as it was and no temporary is left behind. */
static void test_checkpoint_refuses_nan(void **state) {
  fixture *fx = *state;
  const char *path = tu_path("nan_checkpoint.h5");
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("the previous checkpoint", f);
  fclose(f);
  clue_ckpt c;
  memset(&c, 0, sizeof c);
  c.model = fx->m;
  c.n_mod = 3;
  int t = clue_arena_find(&fx->m->gen, "dec.rna.bias");
  clue_arena_w(&fx->m->gen, t)[4] = NAN;
  clue_err err;
  assert_int_equal(clue_ckpt_save(path, &c, &err), CLUE_ENUMERIC);
  assert_non_null(strstr(err.msg, "dec.rna.bias[4] is nan"));
  assert_non_null(strstr(err.msg, "previous checkpoint is unchanged"));
  char buf[64] = "";
  f = fopen(path, "r");
  assert_non_null(fgets(buf, sizeof buf, f));
  fclose(f);
  assert_string_equal(buf, "the previous checkpoint");
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  assert_int_not_equal(access(tmp, F_OK), 0);
  /* an infinite optimiser state is refused too */
  clue_arena_w(&fx->m->gen, t)[4] = 0;
  TU_OK(clue_optim_init(&c.opt_gen, CLUE_OPT_ADAM, 1e-3, fx->m->gen.n, &err), &err);
  TU_OK(clue_optim_init(&c.opt_disc, CLUE_OPT_ADAM, 1e-3, fx->m->disc.n, &err), &err);
  c.has_optim = true;
  c.opt_disc.m[0] = -INFINITY;
  assert_int_equal(clue_ckpt_save(path, &c, &err), CLUE_ENUMERIC);
  assert_non_null(strstr(err.msg, "optimiser state of dsc."));
  clue_optim_release(&c.opt_gen);
  clue_optim_release(&c.opt_disc);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ordinary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_huge_counts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_extreme_dispersion, setup, teardown),
      cmocka_unit_test_setup_teardown(test_extreme_loc, setup, teardown),
      cmocka_unit_test_setup_teardown(test_extreme_inputs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_small_minibatches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_zero_cells, setup, teardown),
      cmocka_unit_test(test_likelihood_values),
      cmocka_unit_test_setup_teardown(test_step_refuses_overflow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_checkpoint_refuses_nan, setup, teardown),
  };
  return TU_RUN(tests);
}
