/* test_pseudo.c — pseudo-partners (pseudo.h) on 1 to 3 ranks for cells of the
 * pairing fixture (RNA only, paired, ADT only): the partners found by
 * clue_pseudo_refresh equal a brute-force float64 search over every training
 * cell, done here from the definitions (mutual k nearest neighbours by cosine
 * distance between the cells missing each modality; the nearest paired cell),
 * on any number of ranks; a draw of at most max_cells cells is the same on any
 * number of ranks; the triples gathered for a checkpoint come back unchanged
 * through clue_pseudo_set, which refuses triples that do not fit the data; the
 * ramp of the chance of taking a partner.
 *
 * CLUE_TEST_NP: 1 2 3
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/pseudo.h"
#include "testutil.h"
#include "tu_h5ad.h"
#include "tu_model.h"

#define R_IN 6  /* encoder input width */
#define SEED 5

/* The encoder input of cell c in modality k: a fixed function of (c, k). */
static float input_of(int64_t c, int k, int j) {
  return (float)sin(0.7 * (double)c + 1.3 * j + 2.1 * k) + (float)(c % 3) * 0.25f;
}

static clue_inputs make_inputs(const clue_dataset *d) {
  clue_inputs in = {0};
  in.n_mod = 2;
  for (int k = 0; k < 2; k++) {
    in.enc_in[k] = R_IN;
    in.enc[k] = calloc((size_t)(d->mod[k].x->n_rows + 1) * R_IN, sizeof(float));
    in.target[k] = d->mod[k].x;
    for (int64_t c = d->local_begin; c < d->local_end; c++) {
      int64_t row = d->local_row[(c - d->local_begin) * 2 + k];
      for (int j = 0; row >= 0 && j < R_IN; j++) in.enc[k][row * R_IN + j] = input_of(c, k, j);
    }
  }
  return in;
}

static clue_model *make_model(const clue_dataset *d) {
  const char *names[2] = {"rna", "adt"};
  clue_likelihood lik[2] = {CLUE_LIK_NB, CLUE_LIK_NB};
  int enc_in[2] = {R_IN, R_IN};
  int n_feat[2] = {(int)d->mod[0].n_features, (int)d->mod[1].n_features};
  clue_model_spec spec;
  tu_model_spec(&spec, 2, names, lik, enc_in, n_feat, (clue_mlp_config){1, 8},
                (clue_mlp_config){1, 4}, (clue_mlp_config){1, 4});
  clue_model *m = NULL;
  clue_err err;
  TU_OK(clue_model_new(&spec, SEED, &m, &err), &err);
  return m;
}

/* (cell, modality, partner) triples on rank 0 after a refresh with cfg. */
static int64_t *partners(const clue_pseudo_config *cfg, const clue_comm *comm, int64_t *n) {
  clue_config c = tu_pair_config();
  clue_err err;
  clue_dataset *d = NULL;
  TU_OK(clue_dataset_load(&c, CLUE_CELLS_ALL, comm, &d, &err), &err);
  clue_inputs in = make_inputs(d);
  clue_plan *p = NULL;
  TU_OK(clue_plan_new(d, &in, 8, 0.2, SEED, comm, &p, &err), &err);
  clue_model *m = make_model(d);
  clue_work *w = NULL;
  TU_OK(clue_work_new(m, 8, &w, &err), &err);
  clue_pseudo *ps = NULL;
  TU_OK(clue_pseudo_new(d, &ps, &err), &err);
  TU_OK(clue_pseudo_refresh(ps, cfg, m, w, d, &in, p, 42, comm, &err), &err);
  assert_int_equal(ps->step, 42);
  int64_t *t = NULL;
  TU_OK(clue_pseudo_gather(ps, comm, &t, n, &err), &err);
  if (comm->rank == 0) assert_int_equal(*n, ps->n_pairs);
  clue_pseudo_free(ps);
  clue_work_free(w);
  clue_model_free(m);
  clue_plan_free(p);
  for (int k = 0; k < 2; k++) free(in.enc[k]);
  clue_dataset_free(d);
  return t;
}

/* ---- the brute-force reference, one process ---- */

typedef struct reference {
  clue_dataset *d;
  clue_plan *p;
  float *u[2]; /* (n_cells × Kd) unit embedding of each cell from modality k, normalised
                  in float as the search does */
  int Kd;
} reference;

static reference reference_new(void) {
  reference r = {0};
  clue_config c = tu_pair_config();
  clue_comm self = clue_comm_self();
  clue_err err;
  TU_OK(clue_dataset_load(&c, CLUE_CELLS_ALL, &self, &r.d, &err), &err);
  clue_inputs in = make_inputs(r.d);
  TU_OK(clue_plan_new(r.d, &in, 8, 0.2, SEED, &self, &r.p, &err), &err);
  clue_model *m = make_model(r.d);
  clue_work *w = NULL;
  TU_OK(clue_work_new(m, 8, &w, &err), &err);
  r.Kd = 2 * m->spec.latent_dim;
  int64_t n = r.d->n_cells;
  real x[R_IN];
  float e[64];
  for (int k = 0; k < 2; k++) {
    r.u[k] = calloc((size_t)(n * r.Kd), sizeof(float));
    for (int64_t cell = 0; cell < n; cell++) {
      for (int j = 0; j < R_IN; j++) x[j] = (real)input_of(cell, k, j);
      TU_OK(clue_model_embed(m, w, k, x, 1, e, &err), &err);
      double ss = 0;
      for (int j = 0; j < r.Kd; j++) ss += (double)e[j] * e[j];
      float inv = (float)(1 / sqrt(ss));
      for (int j = 0; j < r.Kd; j++) r.u[k][cell * r.Kd + j] = e[j] * inv;
    }
  }
  clue_work_free(w);
  clue_model_free(m);
  for (int k = 0; k < 2; k++) free(in.enc[k]);
  return r;
}

static void reference_free(reference *r) {
  free(r->u[0]);
  free(r->u[1]);
  clue_plan_free(r->p);
  clue_dataset_free(r->d);
}

static bool has(const reference *r, int64_t c, int k) { return r->d->local_row[c * 2 + k] >= 0; }

/* Training cells observed in `from`, and in `other` (with) or not. */
static bool member(const reference *r, int64_t c, int from, int other, bool with) {
  return clue_plan_is_train(r->p, c) && has(r, c, from) && has(r, c, other) == with;
}

static double dist(const reference *r, int64_t a, int ka, int64_t b, int kb) {
  double s = 0;
  for (int j = 0; j < r->Kd; j++) {
    double t = (double)r->u[ka][a * r->Kd + j] - (double)r->u[kb][b * r->Kd + j];
    s += t * t;
  }
  return s;
}

/* Rank (0-based) of candidate b among the members of (from, other, with) by
 * distance to cell a (embedded from ka; candidates from kb), ties by index. */
static int rank_of(const reference *r, int64_t a, int ka, int64_t b, int kb, int from,
                   int other, bool with) {
  double db = dist(r, a, ka, b, kb);
  int before = 0;
  for (int64_t c = 0; c < r->d->n_cells; c++) {
    if (c == b || !member(r, c, from, other, with)) continue;
    double dc = dist(r, a, ka, c, kb);
    before += dc < db || (dc == db && c < b);
  }
  return before;
}

/* The expected partner of cell a for modality `give` (−1: none). */
static int64_t expected(const reference *r, const clue_pseudo_config *cfg, int64_t a, int give) {
  int own = 1 - give, k = cfg->k;
  if (!member(r, a, own, give, false)) return -1;
  bool mnn = cfg->method == CLUE_PSEUDO_MNN;
  int64_t best = -1;
  int best_rank = k;
  for (int64_t b = 0; b < r->d->n_cells; b++) {
    int rb;
    if (mnn) {
      if (!member(r, b, give, own, false)) continue;
      rb = rank_of(r, a, own, b, give, give, own, false);
      if (rb >= k || rank_of(r, b, give, a, own, own, give, false) >= k) continue;
    } else {
      if (!member(r, b, own, give, true)) continue;
      rb = rank_of(r, a, own, b, own, own, give, true);
    }
    if (rb < best_rank) best_rank = rb, best = b;
  }
  return mnn || best_rank == 0 ? best : -1;
}

static void check_against_reference(const clue_pseudo_config *cfg) {
  if (!tu_h5ad_fixtures()) skip();
  clue_comm world = tu_world();
  int64_t n = 0;
  int64_t *t = partners(cfg, &world, &n);
  if (world.rank == 0) {
    reference r = reference_new();
    int64_t at = 0, want = 0;
    for (int64_t c = 0; c < r.d->n_cells; c++)
      for (int k = 0; k < 2; k++) {
        int64_t q = expected(&r, cfg, c, k);
        if (q < 0) continue;
        want++;
        assert_true(at < n);
        assert_int_equal(t[3 * at], c);
        assert_int_equal(t[3 * at + 1], k);
        assert_int_equal(t[3 * at + 2], q);
        at++;
      }
    assert_int_equal(n, want);
    assert_true(n > 0);
    reference_free(&r);
  }
  free(t);
}

static void test_mnn_k1(void **state) {
  (void)state;
  clue_pseudo_config cfg = {.method = CLUE_PSEUDO_MNN, .k = 1, .max_cells = 1000};
  check_against_reference(&cfg);
}

static void test_mnn_k3(void **state) {
  (void)state;
  clue_pseudo_config cfg = {.method = CLUE_PSEUDO_MNN, .k = 3, .max_cells = 1000};
  check_against_reference(&cfg);
}

static void test_bridge(void **state) {
  (void)state;
  clue_pseudo_config cfg = {.method = CLUE_PSEUDO_BRIDGE, .k = 2, .max_cells = 1000};
  check_against_reference(&cfg);
}

/* A draw of at most 4 cells per set: fewer pairs than the whole search, the
 * same on any number of ranks as on one. */
static void test_max_cells(void **state) {
  (void)state;
  if (!tu_h5ad_fixtures()) skip();
  clue_comm world = tu_world(), self = clue_comm_self();
  clue_pseudo_config all = {.method = CLUE_PSEUDO_BRIDGE, .k = 1, .max_cells = 1000};
  clue_pseudo_config few = all;
  few.max_cells = 4;
  int64_t n, n_all, n1;
  int64_t *t = partners(&few, &world, &n);
  int64_t *t_all = partners(&all, &world, &n_all);
  if (world.rank == 0) {
    int64_t *t1 = partners(&few, &self, &n1);
    assert_true(n > 0 && n < n_all);
    assert_int_equal(n, n1);
    assert_memory_equal(t, t1, (size_t)(3 * n) * sizeof *t);
    free(t1);
  }
  free(t);
  free(t_all);
}

/* Gathered triples set back (on every rank, as a resumed run does) give the
 * same triples; a triple out of range is refused with its place named. */
static void test_set_round_trip(void **state) {
  (void)state;
  if (!tu_h5ad_fixtures()) skip();
  clue_comm world = tu_world();
  clue_pseudo_config cfg = {.method = CLUE_PSEUDO_MNN, .k = 2, .max_cells = 1000};
  int64_t n = 0;
  int64_t *t = partners(&cfg, &world, &n);
  MPI_Bcast(&n, 1, MPI_INT64_T, 0, world.comm);
  if (world.rank != 0) t = malloc((size_t)(3 * n + 1) * sizeof *t);
  MPI_Bcast(t, (int)(3 * n), MPI_INT64_T, 0, world.comm);
  clue_config c = tu_pair_config();
  clue_err err;
  clue_dataset *d = NULL;
  TU_OK(clue_dataset_load(&c, CLUE_CELLS_ALL, &world, &d, &err), &err);
  clue_pseudo *ps = NULL;
  TU_OK(clue_pseudo_new(d, &ps, &err), &err);
  TU_OK(clue_pseudo_set(ps, t, n, d->n_cells, 7, "ckpt.h5", &err), &err);
  assert_int_equal(ps->step, 7);
  int64_t *back = NULL, m = 0;
  TU_OK(clue_pseudo_gather(ps, &world, &back, &m, &err), &err);
  if (world.rank == 0) {
    assert_int_equal(m, n);
    assert_memory_equal(back, t, (size_t)(3 * n) * sizeof *t);
  }
  int64_t bad[3] = {0, 1, d->n_cells}; /* partner beyond the cells */
  assert_int_equal(clue_pseudo_set(ps, bad, 1, d->n_cells, 7, "ckpt.h5", &err), CLUE_EFORMAT);
  assert_non_null(strstr(err.msg, "ckpt.h5: pseudo-pair 0"));
  bad[1] = 2, bad[2] = 1; /* modality beyond the data's */
  assert_int_equal(clue_pseudo_set(ps, bad, 1, d->n_cells, 7, "ckpt.h5", &err), CLUE_EFORMAT);
  free(back);
  free(t);
  clue_pseudo_free(ps);
  clue_dataset_free(d);
}

static void test_weight_ramp(void **state) {
  (void)state;
  clue_pseudo_config c = {.method = CLUE_PSEUDO_MNN, .weight = 0.6, .ramp = 100};
  assert_true(clue_pseudo_weight(&c, -1, 500) == 0);   /* no pairing yet */
  assert_true(clue_pseudo_weight(&c, 200, 199) == 0);  /* before it */
  assert_true(fabs(clue_pseudo_weight(&c, 200, 250) - 0.3) < 1e-12);
  assert_true(clue_pseudo_weight(&c, 200, 300) == 0.6);
  assert_true(clue_pseudo_weight(&c, 200, 9000) == 0.6);
  c.ramp = 0;
  assert_true(clue_pseudo_weight(&c, 200, 200) == 0.6);
  c.method = CLUE_PSEUDO_OFF;
  assert_true(clue_pseudo_weight(&c, 200, 300) == 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mnn_k1),     cmocka_unit_test(test_mnn_k3),
      cmocka_unit_test(test_bridge),     cmocka_unit_test(test_max_cells),
      cmocka_unit_test(test_set_round_trip), cmocka_unit_test(test_weight_ramp),
  };
  return TU_RUN(tests);
}
