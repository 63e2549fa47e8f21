/* test_grad_model.c — every loss term of the CLUE model against central finite
 * differences, in the float64 build of the network code.
 * CLUE_TEST_REAL64
 *
 * A small K = 3 model (NB, Bernoulli and Normal decoders, two batches) on a
 * minibatch with filler rows (modalities missing for some positions), joint rows
 * and batch covariates. For each loss term alone, and for all together, the
 * analytic gradient of every tensor (a sample of entries per tensor) must match
 * (L(θ + h) − L(θ − h)) / 2h to a relative tolerance of 1e-5 (absolute 1e-7, the round-off of a difference quotient of an O(10) loss with h = 1e-6). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/model.h"
#include "clue/rng.h"
#include "testutil.h"
#include "tu_model.h"

#define NCELL 10
#define B 6

typedef struct fixture {
  clue_model *m;
  clue_work *w;
  clue_minibatch *mb;
  clue_csr *target[3];
  clue_comm comm;
} fixture;

/* Observed pattern of the B positions: has[i][k]. Position 2 lacks modality 1,
 * position 4 lacks modality 0 and 2, position 5 lacks modality 2. */
static const int HAS[B][3] = {{1, 1, 1}, {1, 1, 1}, {1, 0, 1}, {1, 1, 1}, {0, 1, 0},
                              {1, 1, 0}};

static void fill_minibatch(fixture *fx) {
  clue_minibatch *mb = fx->mb;
  const clue_model_spec *s = &fx->m->spec;
  clue_rng r = clue_rng_stream(7, CLUE_RNG_TEST, 2, 0);
  memset(mb->n_obs, 0, sizeof mb->n_obs);
  memset(mb->n_pair, 0, sizeof mb->n_pair);
  for (int k = 0; k < 3; k++) {
    clue_mod_rows *rows = &mb->mod[k];
    rows->n = B;
    rows->target = fx->target[k];
    for (int i = 0; i < B; i++) {
      rows->pos[i] = i;
      /* observed rows use cell i; fillers use another cell */
      rows->trow[i] = HAS[i][k] ? i : (int64_t)(B + (i + k) % (NCELL - B));
      rows->batch[i] = (int32_t)((rows->trow[i] + k) % 2);
      for (int c = 0; c < s->enc_in[k]; c++)
        rows->enc_in[i * s->enc_in[k] + c] = (real)clue_rng_normal(&r);
    }
  }
  mb->n_joint = B;
  for (int i = 0; i < B; i++) {
    mb->joint_pos[i] = i;
    mb->joint_batch[i] = (int32_t)(i % 2);
    for (int k = 0; k < 3; k++) {
      mb->joint_row[i * CLUE_K + k] = HAS[i][k] ? i : -1;
      mb->n_obs[k] += HAS[i][k];
      for (int j = 0; j < 3; j++) mb->n_pair[k][j] += HAS[i][k] && HAS[i][j];
    }
    /* a joint row's batch is its cell's batch in every observed modality */
    for (int k = 0; k < 3; k++)
      if (HAS[i][k]) mb->mod[k].batch[i] = mb->joint_batch[i];
  }
}

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  clue_err err;
  clue_model_spec s;
  const char *names[3] = {"rna", "atac", "adt"};
  clue_likelihood lik[3] = {CLUE_LIK_NB, CLUE_LIK_BERNOULLI, CLUE_LIK_NORMAL};
  int enc_in[3] = {5, 4, 6}, n_feat[3] = {7, 6, 5};
  tu_model_spec(&s, 3, names, lik, enc_in, n_feat, (clue_mlp_config){2, 8},
                (clue_mlp_config){2, 6}, (clue_mlp_config){2, 5});
  TU_OK(clue_model_new(&s, 11, &fx->m, &err), &err);
  /* Move the per-(feature, batch) parameters away from 0 so their gradients are
   * exercised in general position. */
  clue_rng r = clue_rng_stream(3, CLUE_RNG_TEST, 3, 0);
  for (int k = 0; k < 3; k++) {
    int idx[3] = {fx->m->dec_scale[k], fx->m->dec_bias[k], fx->m->dec_disp[k]};
    for (int q = 0; q < 3; q++) {
      real *p = clue_arena_w(&fx->m->gen, idx[q]);
      for (int64_t i = 0; i < clue_arena_size(&fx->m->gen, idx[q]); i++)
        p[i] = (real)(0.3 * clue_rng_normal(&r));
    }
    /* library layer biases positive so that the ReLU is active */
    real *lb = clue_arena_w(&fx->m->gen, fx->m->lib[k].b);
    for (int j = 0; j < 3; j++) lb[j] = (real)(2.0 + j);
  }
  TU_OK(clue_work_new(fx->m, B, &fx->w, &err), &err);
  TU_OK(clue_minibatch_new(3, enc_in, B, &fx->mb, &err), &err);
  for (int k = 0; k < 3; k++) fx->target[k] = tu_random_targets(lik[k], NCELL, n_feat[k], 5 + k, 12);
  fx->comm = clue_comm_self();
  fill_minibatch(fx);
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

static const clue_pass PASS = {.seed = 42, .pass = 9, .disc_noise = 0.3, .train = true};

static double gen_loss(fixture *fx, const clue_loss_weights *lw) {
  clue_err err;
  clue_losses l;
  clue_pass p = PASS;
  TU_OK(clue_model_g_step(fx->m, fx->w, fx->mb, lw, &p, &fx->comm, &l, &err), &err);
  return l.gen;
}

static double dsc_loss(fixture *fx, const clue_loss_weights *lw) {
  clue_err err;
  clue_losses l;
  clue_pass p = PASS;
  TU_OK(clue_model_d_step(fx->m, fx->w, fx->mb, lw, &p, &fx->comm, &l, &err), &err);
  return lw->align * l.dsc;
}

/* Compares the analytic gradient of arena `a` with finite differences on up to
 * `per_tensor` entries of every tensor; returns the number of entries checked. */
static int check_arena(fixture *fx, clue_arena *a, const clue_loss_weights *lw,
                       double (*loss)(fixture *, const clue_loss_weights *),
                       int per_tensor, const char *what) {
  loss(fx, lw);
  double *g = malloc((size_t)a->n * sizeof *g);
  for (int64_t i = 0; i < a->n; i++) g[i] = a->g[i];
  int checked = 0, bad = 0;
  const double h = 1e-6;
  for (int t = 0; t < a->n_tensors; t++) {
    int64_t size = clue_arena_size(a, t);
    int64_t stride = size / per_tensor > 1 ? size / per_tensor : 1;
    for (int64_t e = 0; e < size; e += stride) {
      real *p = clue_arena_w(a, t) + e;
      real keep = *p;
      *p = keep + h;
      double up = loss(fx, lw);
      *p = keep - h;
      double down = loss(fx, lw);
      *p = keep;
      double fd = (up - down) / (2 * h);
      double an = g[a->t[t].offset + e];
      double tol = 1e-7 + 1e-5 * fmax(fabs(fd), fabs(an));
      checked++;
      if (fabs(fd - an) > tol) {
        if (bad < 10)
          print_error("%s: %s[%lld]: analytic %.10g, finite difference %.10g\n", what,
                      a->t[t].name, (long long)e, an, fd);
        bad++;
      }
    }
  }
  free(g);
  assert_int_equal(bad, 0);
  return checked;
}

static clue_loss_weights only(double data, double kl, double align, double cross,
                              double real_cross, double cos) {
  clue_loss_weights w;
  memset(&w, 0, sizeof w);
  w.data = data;
  w.kl = kl;
  w.align = align;
  w.cross = cross;
  w.real_cross = real_cross;
  w.cos = cos;
  for (int k = 0; k < CLUE_K; k++) w.mod_weight[k] = 1.0 + 0.25 * k;
  return w;
}

static void test_self_reconstruction(void **state) {
  clue_loss_weights w = only(1, 0, 0, 0, 0, 0);
  assert_true(check_arena(*state, &((fixture *)*state)->m->gen, &w, gen_loss, 6, "nll") > 100);
}

static void test_kl(void **state) {
  clue_loss_weights w = only(1, 1, 0, 0, 0, 0);
  check_arena(*state, &((fixture *)*state)->m->gen, &w, gen_loss, 6, "elbo");
}

static void test_joint_cross(void **state) {
  clue_loss_weights w = only(0, 0, 0, 1, 0, 0);
  check_arena(*state, &((fixture *)*state)->m->gen, &w, gen_loss, 6, "joint cross");
}

static void test_real_cross(void **state) {
  clue_loss_weights w = only(0, 0, 0, 0, 1, 0);
  check_arena(*state, &((fixture *)*state)->m->gen, &w, gen_loss, 6, "real cross");
}

static void test_cosine(void **state) {
  clue_loss_weights w = only(0, 0, 0, 0, 0, 1);
  check_arena(*state, &((fixture *)*state)->m->gen, &w, gen_loss, 6, "cosine");
}

static void test_adversarial_generator(void **state) {
  clue_loss_weights w = only(0, 0, 1, 0, 0, 0);
  check_arena(*state, &((fixture *)*state)->m->gen, &w, gen_loss, 6, "adversarial (G)");
}

static void test_discriminator(void **state) {
  clue_loss_weights w = only(0, 0, 0.7, 0, 0, 0);
  assert_true(check_arena(*state, &((fixture *)*state)->m->disc, &w, dsc_loss, 40, "D") > 30);
}

static void test_all_terms(void **state) {
  clue_loss_weights w = only(1, 0.3, 0.5, 2, 0.7, 1.5);
  check_arena(*state, &((fixture *)*state)->m->gen, &w, gen_loss, 4, "all");
}

static void test_no_normalisation(void **state) {
  fixture *fx = *state;
  fx->m->spec.normalize_u = false;
  clue_loss_weights w = only(1, 0.3, 0.5, 2, 0.7, 1.5);
  check_arena(fx, &fx->m->gen, &w, gen_loss, 3, "all, normalize_u off");
  fx->m->spec.normalize_u = true;
}

/* The step is a pure function of (parameters, minibatch, pass): twice the same. */
static void test_deterministic(void **state) {
  clue_loss_weights w = only(1, 0.3, 0.5, 2, 0.7, 1.5);
  double a = gen_loss(*state, &w), b = gen_loss(*state, &w);
  assert_true(a == b);
  assert_true(isfinite(a));
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_self_reconstruction, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kl, setup, teardown),
      cmocka_unit_test_setup_teardown(test_joint_cross, setup, teardown),
      cmocka_unit_test_setup_teardown(test_real_cross, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cosine, setup, teardown),
      cmocka_unit_test_setup_teardown(test_adversarial_generator, setup, teardown),
      cmocka_unit_test_setup_teardown(test_discriminator, setup, teardown),
      cmocka_unit_test_setup_teardown(test_all_terms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_normalisation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
  };
  return TU_RUN(tests);
}
