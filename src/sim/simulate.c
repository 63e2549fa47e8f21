/* simulate.c — the latent-factor model of `clue simulate`: options and presets,
 * the global parameters (drawn from streams keyed by feature, type or batch),
 * the calibration of library sizes to a target density, and the counts of a
 * block of cells (drawn from streams keyed by the cell's global index). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/rng.h"
#include "clue/sim.h"

/* Streams (the `step` of clue_rng_stream, purpose CLUE_RNG_SIMULATE). */
enum {
  ST_CELL = 1,      /* row = cell: type, batch, split, modalities */
  ST_LATENT = 2,    /* row = cell: z */
  ST_TYPES = 3,     /* row = type: centre and weight */
  ST_FEATURE = 10,  /* + mod, row = feature: baseline, loadings, batch shifts */
  ST_BATCH = 20,    /* + mod, row = batch: library shift */
  ST_COUNTS = 30,   /* + mod, row = cell: library size and counts */
  ST_PILOT = 1000   /* added to the cell steps for the calibration cells */
};

#define WITHIN_SD 0.5     /* latent noise around a type's centre */
#define LIB_SD 0.5        /* log-normal spread of library sizes */
#define BATCH_LIB_SD 0.2  /* per-batch shift of log library size */
#define NB_INVERT_MAX 10.0 /* NB by CDF inversion up to this mean, else Gamma–Poisson */

/* Per modality: NB dispersion (integer), spread of baselines, latent signal sd. */
static const int THETA[SIM_N_MOD] = {2, 1, 4};
static const double BASE_SD[SIM_N_MOD] = {1.2, 0.8, 0.8};
static const double SIGNAL_SD[SIM_N_MOD] = {1.0, 1.0, 1.2};
static const char *const MOD_NAME[SIM_N_MOD] = {"rna", "atac", "adt"};
static const char *const FEATURE_KIND[SIM_N_MOD] = {"genes", "peaks", "proteins"};

const char *sim_modality_name(int mod) {
  return mod >= 0 && mod < SIM_N_MOD ? MOD_NAME[mod] : "?";
}

const char *sim_feature_kind(int mod) {
  return mod >= 0 && mod < SIM_N_MOD ? FEATURE_KIND[mod] : "features";
}

typedef struct preset {
  const char *name;
  int64_t cells, rna, atac, adt;
  int batches, types;
} preset;

/* Shapes of the shared data sets (see shared/README.md). */
static const preset PRESETS[] = {
    {"bmmc_cite_600", 600, 1000, 0, 134, 2, 10},
    {"bmmc_multiome_500", 500, 600, 600, 0, 2, 10},
    {"pbmc1k_cite_747", 747, 630, 0, 17, 1, 8},
    {"cd8_cite_1774", 1774, 11757, 0, 5, 1, 4},
    {"eccite_pbmc_500", 500, 19521, 0, 49, 1, 8},
};
#define N_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

const char *sim_preset_names(void) {
  return "bmmc_cite_600, bmmc_multiome_500, pbmc1k_cite_747, cd8_cite_1774, "
         "eccite_pbmc_500";
}

int sim_options_like(sim_options *o, const char *name, clue_err *err) {
  for (size_t i = 0; i < N_PRESETS; i++) {
    const preset *p = &PRESETS[i];
    if (strcmp(p->name, name) != 0) continue;
    snprintf(o->like, sizeof o->like, "%s", p->name);
    o->n_cells = p->cells;
    o->n_features[SIM_RNA] = p->rna;
    o->n_features[SIM_ATAC] = p->atac;
    o->n_features[SIM_ADT] = p->adt;
    o->n_batches = p->batches;
    o->n_types = p->types;
    return CLUE_OK;
  }
  return clue_fail(err, CLUE_EINVAL, "unknown data set '%s' (known: %s)", name,
                   sim_preset_names());
}

void sim_options_defaults(sim_options *o) {
  memset(o, 0, sizeof *o);
  o->density[SIM_RNA] = 0.10;
  o->density[SIM_ATAC] = 0.03;
  o->density[SIM_ADT] = 0.90;
  o->paired = 1.0;
  o->latent_dim = 10;
  o->test_fraction = 0.2;
  o->batch_effect = 0.3;
  o->seed = 0;
  sim_options_like(o, "bmmc_cite_600", NULL);
}

int sim_options_check(const sim_options *o, clue_err *err) {
  int n_mod = 0;
  for (int m = 0; m < SIM_N_MOD; m++) {
    if (o->n_features[m] < 0 || o->n_features[m] > INT32_MAX)
      return clue_fail(err, CLUE_EINVAL, "--%s: %lld features is outside [0, 2^31)",
                       MOD_NAME[m], (long long)o->n_features[m]);
    if (o->n_features[m] == 0) continue;
    n_mod++;
    if (!(o->density[m] > 0 && o->density[m] < 1))
      return clue_fail(err, CLUE_EINVAL, "--%s-density: %g is not in (0, 1)", MOD_NAME[m],
                       o->density[m]);
  }
  if (n_mod < 2)
    return clue_fail(err, CLUE_EINVAL,
                     "at least two modalities are needed (--rna, --atac, --adt with a "
                     "number of features > 0); %d given", n_mod);
  if (o->n_cells < 1 || o->n_cells > (int64_t)UINT32_MAX)
    return clue_fail(err, CLUE_EINVAL, "--cells: %lld is outside [1, 2^32)",
                     (long long)o->n_cells);
  if (!(o->paired >= 0 && o->paired <= 1))
    return clue_fail(err, CLUE_EINVAL, "--paired: %g is not a fraction in [0, 1]", o->paired);
  if (!(o->test_fraction >= 0 && o->test_fraction <= 1))
    return clue_fail(err, CLUE_EINVAL, "--split: %g is not a fraction in [0, 1]",
                     o->test_fraction);
  if (o->n_batches < 1 || o->n_batches > 10000)
    return clue_fail(err, CLUE_EINVAL, "--batches: %d is outside [1, 10000]", o->n_batches);
  if (o->n_types < 1 || o->n_types > 10000)
    return clue_fail(err, CLUE_EINVAL, "--cell-types: %d is outside [1, 10000]", o->n_types);
  if (o->latent_dim < 1 || o->latent_dim > 1000)
    return clue_fail(err, CLUE_EINVAL, "--latent-dim: %d is outside [1, 1000]",
                     o->latent_dim);
  if (!(o->batch_effect >= 0 && o->batch_effect <= 10))
    return clue_fail(err, CLUE_EINVAL, "--batch-effect: %g is outside [0, 10]",
                     o->batch_effect);
  return CLUE_OK;
}

typedef struct sim_mod {
  int64_t n;       /* features; 0 = absent */
  double *load;    /* (latent_dim × n) loadings W, transposed */
  double *base;    /* (n_batches × n) baseline + batch shift */
  double *lib;     /* (n_batches) log library scale + batch shift */
} sim_mod;

struct sim_model {
  sim_options o;
  int n_active;           /* modalities present */
  int active[SIM_N_MOD];  /* their ids, in order */
  double *type_cdf;       /* (n_types) cumulative type probabilities */
  double *centre;         /* (n_types × latent_dim) */
  sim_mod mod[SIM_N_MOD];
};

static clue_rng stream(const sim_model *m, uint64_t step, uint64_t row) {
  return clue_rng_stream(m->o.seed, CLUE_RNG_SIMULATE, step, row);
}

/* Cell facts; `pilot` selects the calibration cells' streams. */
static void cell_facts(const sim_model *m, int64_t i, bool pilot, sim_cell *c) {
  clue_rng r = stream(m, ST_CELL + (pilot ? ST_PILOT : 0), (uint64_t)i);
  double u = clue_rng_uniform(&r);
  int t = 0;
  while (t < m->o.n_types - 1 && u >= m->type_cdf[t]) t++;
  c->type = t;
  c->batch = (int)clue_rng_below(&r, (uint64_t)m->o.n_batches);
  c->test = clue_rng_uniform(&r) < m->o.test_fraction;
  bool paired = clue_rng_uniform(&r) < m->o.paired;
  int only = (int)clue_rng_below(&r, (uint64_t)m->n_active);
  c->mods = 0;
  for (int k = 0; k < m->n_active; k++)
    if (paired || k == only) c->mods |= 1u << m->active[k];
}

void sim_cell_get(const sim_model *m, int64_t i, sim_cell *c) { cell_facts(m, i, false, c); }

static void cell_latent(const sim_model *m, int64_t i, bool pilot, const sim_cell *c,
                        double *z) {
  clue_rng r = stream(m, ST_LATENT + (pilot ? ST_PILOT : 0), (uint64_t)i);
  const double *mu = m->centre + (size_t)c->type * m->o.latent_dim;
  for (int d = 0; d < m->o.latent_dim; d++) z[d] = mu[d] + WITHIN_SD * clue_rng_normal(&r);
}

/* Feature probabilities p (n) of a cell: softmax(base[batch] + W z). The
 * loops run over features innermost (vectorised; each feature's sum is still
 * taken in the order d = 0, 1, ...). */
static void cell_softmax(const sim_model *m, const sim_mod *md, int batch, const double *z,
                         double *p) {
  int D = m->o.latent_dim;
  int64_t n = md->n;
  memcpy(p, md->base + (size_t)batch * n, (size_t)n * sizeof *p);
  for (int d = 0; d < D; d++) {
    const double *w = md->load + (size_t)d * n;
    double zd = z[d];
    for (int64_t f = 0; f < n; f++) p[f] += w[f] * zd;
  }
  double top = -INFINITY;
  for (int64_t f = 0; f < n; f++) top = p[f] > top ? p[f] : top;
  double sum = 0;
  for (int64_t f = 0; f < md->n; f++) {
    p[f] = exp(p[f] - top);
    sum += p[f];
  }
  for (int64_t f = 0; f < md->n; f++) p[f] /= sum;
}

/* (theta / (theta + mu))^theta: the NB probability of a zero. */
static double nb_zero(double mu, int theta) {
  double t = theta / (theta + mu), p = t;
  for (int k = 1; k < theta; k++) p *= t;
  return p;
}

/* One NB(mean mu, dispersion theta) count. */
static int64_t nb_draw(clue_rng *r, double mu, int theta) {
  if (!(mu > 0)) return 0;
  if (mu > NB_INVERT_MAX)
    return clue_rng_poisson(r, clue_rng_gamma(r, theta) * mu / theta);
  double q = mu / (mu + theta), p = nb_zero(mu, theta), cdf = p;
  double u = clue_rng_uniform(r);
  int64_t k = 0;
  while (u > cdf && k < 1000) {
    k++;
    p *= q * (double)(k - 1 + theta) / (double)k;
    cdf += p;
  }
  return k;
}

/* Global parameters of modality `mod` (all but the library scale). */
static int mod_params(sim_model *m, int mod, clue_err *err) {
  sim_mod *md = &m->mod[mod];
  int D = m->o.latent_dim, B = m->o.n_batches;
  md->n = m->o.n_features[mod];
  md->load = clue_malloc((size_t)md->n * D * sizeof *md->load, err);
  md->base = clue_malloc((size_t)md->n * B * sizeof *md->base, err);
  md->lib = clue_malloc((size_t)B * sizeof *md->lib, err);
  if (!md->load || !md->base || !md->lib) return CLUE_ENOMEM;
  /* z has variance ≈ 1 + WITHIN_SD² per dimension: scale W so that W z has sd SIGNAL_SD. */
  double w_sd = SIGNAL_SD[mod] / sqrt(D * (1.0 + WITHIN_SD * WITHIN_SD));
  for (int64_t f = 0; f < md->n; f++) {
    clue_rng r = stream(m, ST_FEATURE + mod, (uint64_t)f);
    double a = BASE_SD[mod] * clue_rng_normal(&r);
    for (int d = 0; d < D; d++) md->load[(size_t)d * md->n + f] = w_sd * clue_rng_normal(&r);
    for (int b = 0; b < B; b++)
      md->base[(size_t)b * md->n + f] = a + m->o.batch_effect * clue_rng_normal(&r);
  }
  for (int b = 0; b < B; b++) {
    clue_rng r = stream(m, ST_BATCH + mod, (uint64_t)b);
    md->lib[b] = BATCH_LIB_SD * clue_rng_normal(&r);
  }
  return CLUE_OK;
}

/* Expected fraction of nonzero entries for log library scale s, over the pilot
 * cells' probabilities p (n_pilot × n) and library factors lib (n_pilot). */
static double expected_density(const double *p, const double *lib, int64_t n_pilot,
                               int64_t n, double s, int theta) {
  double total = 0, scale = exp(s);
  for (int64_t i = 0; i < n_pilot; i++) {
    double L = scale * lib[i];
    const double *pi = p + (size_t)i * n;
    for (int64_t f = 0; f < n; f++) total += 1.0 - nb_zero(L * pi[f], theta);
  }
  return total / ((double)n_pilot * (double)n);
}

/* Shifts md->lib by the log scale that gives the requested density on a sample
 * of pilot cells (their own streams, the same distribution as real cells). */
static int calibrate(sim_model *m, int mod, clue_err *err) {
  sim_mod *md = &m->mod[mod];
  int64_t n_pilot = ((int64_t)1 << 22) / (md->n > 0 ? md->n : 1);
  n_pilot = n_pilot < 64 ? 64 : n_pilot > 256 ? 256 : n_pilot;
  double *p = clue_malloc((size_t)n_pilot * md->n * sizeof *p, err);
  double *lib = clue_malloc((size_t)n_pilot * sizeof *lib, err);
  double *z = clue_malloc((size_t)m->o.latent_dim * sizeof *z, err);
  int rc = (p && lib && z) ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < n_pilot; i++) {
    sim_cell c;
    cell_facts(m, i, true, &c);
    cell_latent(m, i, true, &c, z);
    cell_softmax(m, md, c.batch, z, p + (size_t)i * md->n);
    clue_rng r = stream(m, ST_COUNTS + mod + ST_PILOT, (uint64_t)i);
    lib[i] = exp(md->lib[c.batch] + LIB_SD * clue_rng_normal(&r));
  }
  if (rc == CLUE_OK) {
    double lo = -20, hi = 40, target = m->o.density[mod];
    for (int it = 0; it < 24; it++) { /* the log scale to within 60 / 2^24 */
      double mid = 0.5 * (lo + hi);
      if (expected_density(p, lib, n_pilot, md->n, mid, THETA[mod]) < target)
        lo = mid;
      else
        hi = mid;
    }
    for (int b = 0; b < m->o.n_batches; b++) md->lib[b] += 0.5 * (lo + hi);
  }
  free(p);
  free(lib);
  free(z);
  return rc;
}

static int model_types(sim_model *m, clue_err *err) {
  int K = m->o.n_types, D = m->o.latent_dim;
  m->type_cdf = clue_malloc((size_t)K * sizeof *m->type_cdf, err);
  m->centre = clue_malloc((size_t)K * D * sizeof *m->centre, err);
  if (!m->type_cdf || !m->centre) return CLUE_ENOMEM;
  double total = 0;
  for (int t = 0; t < K; t++) {
    clue_rng r = stream(m, ST_TYPES, (uint64_t)t);
    for (int d = 0; d < D; d++) m->centre[(size_t)t * D + d] = clue_rng_normal(&r);
    total += m->type_cdf[t] = exp(0.5 * clue_rng_normal(&r)); /* unequal proportions */
  }
  double acc = 0;
  for (int t = 0; t < K; t++) {
    acc += m->type_cdf[t] / total;
    m->type_cdf[t] = acc;
  }
  m->type_cdf[K - 1] = 1.0;
  return CLUE_OK;
}

int sim_model_new(const sim_options *o, sim_model **out, clue_err *err) {
  *out = NULL;
  int rc = sim_options_check(o, err);
  if (rc) return rc;
  sim_model *m = clue_calloc(1, sizeof *m, err);
  if (!m) return err->code;
  m->o = *o;
  for (int mod = 0; mod < SIM_N_MOD; mod++)
    if (o->n_features[mod] > 0) m->active[m->n_active++] = mod;
  rc = model_types(m, err);
  for (int k = 0; rc == CLUE_OK && k < m->n_active; k++) {
    rc = mod_params(m, m->active[k], err);
    if (rc == CLUE_OK) rc = calibrate(m, m->active[k], err);
  }
  if (rc) {
    sim_model_free(m);
    return clue_fail(err, rc, "simulate: out of memory building the model");
  }
  *out = m;
  return CLUE_OK;
}

void sim_model_free(sim_model *m) {
  if (!m) return;
  for (int mod = 0; mod < SIM_N_MOD; mod++) {
    free(m->mod[mod].load);
    free(m->mod[mod].base);
    free(m->mod[mod].lib);
  }
  free(m->type_cdf);
  free(m->centre);
  free(m);
}

/* Makes room for `need` values in c (capacity *cap). */
static int csr_reserve(clue_csr *c, int64_t need, int64_t *cap, clue_err *err) {
  if (need <= *cap) return CLUE_OK;
  int64_t n = *cap + *cap / 2 + 1024;
  if (n < need) n = need;
  int32_t *idx = realloc(c->indices, (size_t)n * sizeof *idx);
  if (idx) c->indices = idx;
  float *dat = realloc(c->data, (size_t)n * sizeof *dat);
  if (dat) c->data = dat;
  if (!idx || !dat) return clue_fail(err, CLUE_ENOMEM, "simulate: out of memory");
  *cap = n;
  return CLUE_OK;
}

/* Appends one cell's counts of modality mod as the next row of c. */
static int cell_counts(const sim_model *m, int mod, int64_t i, const sim_cell *cell,
                       const double *z, double *p, clue_csr *c, int64_t row, int64_t *cap,
                       clue_err *err) {
  const sim_mod *md = &m->mod[mod];
  cell_softmax(m, md, cell->batch, z, p);
  clue_rng r = stream(m, ST_COUNTS + mod, (uint64_t)i);
  double L = exp(md->lib[cell->batch] + LIB_SD * clue_rng_normal(&r));
  int64_t at = c->indptr[row];
  int rc = csr_reserve(c, at + md->n, cap, err);
  if (rc) return rc;
  bool binary = mod == SIM_ATAC && m->o.atac_binary;
  for (int64_t f = 0; f < md->n; f++) {
    int64_t k = nb_draw(&r, L * p[f], THETA[mod]);
    if (k == 0) continue;
    c->indices[at] = (int32_t)f;
    c->data[at++] = binary ? 1.0f : (float)k;
  }
  c->indptr[row + 1] = at;
  return CLUE_OK;
}

int sim_generate(const sim_model *m, int mod, int64_t begin, int64_t end,
                 clue_csr **counts, float **latent, clue_err *err) {
  *counts = NULL;
  if (latent) *latent = NULL;
  if (mod < 0 || mod >= SIM_N_MOD || m->mod[mod].n == 0 || begin < 0 || end < begin ||
      end > m->o.n_cells)
    return clue_fail(err, CLUE_EINVAL, "simulate: bad block [%lld, %lld) of modality %d",
                     (long long)begin, (long long)end, mod);
  const sim_mod *md = &m->mod[mod];
  int D = m->o.latent_dim;
  int64_t rows = 0;
  for (int64_t i = begin; i < end; i++) {
    sim_cell c;
    cell_facts(m, i, false, &c);
    rows += (c.mods >> mod) & 1u;
  }
  int64_t cap = (int64_t)((double)rows * md->n * m->o.density[mod] * 1.2) + 1024;
  clue_csr *out = clue_csr_new(rows, md->n, cap, err);
  double *p = clue_malloc((size_t)md->n * sizeof *p, err);
  double *z = clue_malloc((size_t)D * sizeof *z, err);
  float *zs = latent ? clue_malloc((size_t)(rows > 0 ? rows : 1) * D * sizeof *zs, err) : NULL;
  int rc = (out && p && z && (!latent || zs)) ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t i = begin, row = 0; rc == CLUE_OK && i < end; i++) {
    sim_cell c;
    cell_facts(m, i, false, &c);
    if (!((c.mods >> mod) & 1u)) continue;
    cell_latent(m, i, false, &c, z);
    if (zs)
      for (int d = 0; d < D; d++) zs[(size_t)row * D + d] = (float)z[d];
    rc = cell_counts(m, mod, i, &c, z, p, out, row, &cap, err);
    row++;
  }
  free(p);
  free(z);
  if (rc) {
    clue_csr_free(out);
    free(zs);
    return rc == CLUE_ENOMEM ? clue_fail(err, rc, "simulate: out of memory") : rc;
  }
  *counts = out;
  if (latent) *latent = zs;
  return CLUE_OK;
}
