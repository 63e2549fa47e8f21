/* cmd_info.c — `clue info FILE`: what a user wants to know about an .h5ad or
 * .h5mu before training on it: shape, how X and each layer are stored,
 * nonzeros and density, whether X looks like raw counts, the obs columns with
 * their categories and counts, samples of the obs and var names, obsm arrays;
 * for an .h5mu each modality and how its cells pair across modalities.
 *
 * Every rank runs the same reads (the collective ones need it); rank 0
 * prints. Structure errors found on the way (indptr, indices, shapes) end the
 * command with a one-line message and exit status 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/cli.h"
#include "clue/dataset.h"
#include "clue/h5ad.h"

/* Stored values checked for "raw counts" per matrix (the first rows). */
#define INFO_SCAN_VALUES ((int64_t)10 * 1000 * 1000)

typedef struct info_opts {
  const char *path;
  int max_cat; /* categories shown per column; 0 = all */
} info_opts;

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue info [options] FILE\n"
          "\n"
          "Describes an AnnData (.h5ad) or MuData (.h5mu) file: shape; how X and each\n"
          "layer are stored (csr/csc/dense, dtype, indptr and index widths); nonzeros,\n"
          "density and nonzeros per cell; whether X looks like raw counts (non-negative\n"
          "integers; checked on the first 10 million stored values); obs columns with\n"
          "their kind and category counts; obs and var name samples; obsm arrays. For\n"
          "an .h5mu: every modality, and how many cells are in all modalities or only\n"
          "in some (from obsmap, else by obs names).\n"
          "\n"
          "options:\n"
          "  --categories N   show at most N categories per obs column, the most\n"
          "                   frequent first when there are more (default 10; 0 = all)\n"
          "  -h, --help       show this help\n"
          "\n"
          "Exit status: 0 on success, 1 when the file cannot be read (the message names\n"
          "the file, the object and the problem), 2 on a bad command line.\n");
}

/* 1234567 → "1,234,567". */
static const char *fmt_int(int64_t v, char *buf, size_t size) {
  char raw[32];
  snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
  size_t len = strlen(raw), at = 0;
  if (v < 0 && at + 1 < size) buf[at++] = '-';
  for (size_t i = 0; i < len && at + 2 < size; i++) {
    buf[at++] = raw[i];
    if ((len - i - 1) % 3 == 0 && i + 1 < len) buf[at++] = ',';
  }
  buf[at] = '\0';
  return buf;
}

/* ---- matrices ---- */

typedef struct value_scan {
  double min, max;
  int64_t scanned; /* stored values in the rows read */
  int64_t nonzero, negative, nonint, nonfinite;
} value_scan;

/* Collective. Reads the first rows of the matrix (up to INFO_SCAN_VALUES
 * stored values, split over the ranks) and summarises their values. */
static int scan_values(h5ad_file *f, const char *layer, const int64_t *row_nnz,
                       int64_t n_rows, const clue_comm *comm, value_scan *vs,
                       clue_err *err) {
  int64_t rows = 0, total = 0;
  while (rows < n_rows && (rows == 0 || total + row_nnz[rows] <= INFO_SCAN_VALUES))
    total += row_nnz[rows++];
  int64_t *b = malloc((size_t)comm->size * sizeof *b);
  int64_t *e = malloc((size_t)comm->size * sizeof *e);
  int64_t *list = NULL;
  int rc = (b && e) ? CLUE_OK : clue_fail(err, CLUE_ENOMEM, "out of memory");
  if (rc == CLUE_OK) {
    clue_partition_weighted(rows, row_nnz, comm->size, b, e);
    list = malloc((size_t)(e[comm->rank] - b[comm->rank] + 1) * sizeof *list);
    if (!list) rc = clue_fail(err, CLUE_ENOMEM, "out of memory");
  }
  rc = clue_comm_agree(comm, rc, err);
  clue_csr *x = NULL;
  if (rc == CLUE_OK) {
    int64_t n = e[comm->rank] - b[comm->rank];
    for (int64_t i = 0; i < n; i++) list[i] = b[comm->rank] + i;
    rc = h5ad_read_rows(f, layer, list, n, &x, err);
  }
  double mm[2] = {-INFINITY, -INFINITY}; /* −min, max */
  int64_t cnt[5] = {0, 0, 0, 0, 0};
  for (int64_t j = 0; rc == CLUE_OK && j < clue_csr_nnz(x); j++) {
    double v = x->data[j];
    cnt[0]++;
    if (!isfinite(v)) {
      cnt[3]++;
      continue;
    }
    cnt[1] += v < 0;
    cnt[2] += v != floor(v);
    if (-v > mm[0]) mm[0] = -v;
    if (v > mm[1]) mm[1] = v;
  }
  if (rc == CLUE_OK) {
    clue_comm_max_double(comm, mm, 2);
    clue_comm_sum_int64(comm, cnt, 5);
    vs->min = -mm[0];
    vs->max = mm[1];
    vs->nonzero = cnt[0];
    vs->negative = cnt[1];
    vs->nonint = cnt[2];
    vs->nonfinite = cnt[3];
    vs->scanned = total;
  }
  clue_csr_free(x);
  free(b);
  free(e);
  free(list);
  return rc;
}

static const char *kind_name(h5ad_matrix_kind k) {
  return k == H5AD_CSR ? "csr_matrix" : k == H5AD_CSC ? "csc_matrix" : "dense array";
}

static int cmp_int64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Prints the per-cell nonzero summary (min / median / max). */
static void print_row_stats(const clue_comm *comm, const int64_t *row_nnz, int64_t n) {
  int64_t *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
  if (!s || n == 0) {
    free(s);
    return;
  }
  memcpy(s, row_nnz, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_int64);
  char a[32], b[32], c[32];
  cli_print(comm, "            stored values per cell: min %s, median %s, max %s\n",
            fmt_int(s[0], a, sizeof a), fmt_int(s[n / 2], b, sizeof b),
            fmt_int(s[n - 1], c, sizeof c));
  free(s);
}

static void print_scan(const clue_comm *comm, const value_scan *vs, int64_t nnz,
                       bool dense) {
  char a[32], b[32], why[160] = "";
  if (dense && vs->scanned > 0)
    cli_print(comm, "            nonzeros: %s of %s values read (%.2f%%)\n",
              fmt_int(vs->nonzero, a, sizeof a), fmt_int(vs->scanned, b, sizeof b),
              100.0 * (double)vs->nonzero / (double)vs->scanned);
  if (vs->nonzero == 0) {
    cli_print(comm, "            values: all zero\n");
    return;
  }
  if (vs->negative)
    snprintf(why + strlen(why), sizeof why - strlen(why), ", %s negative",
             fmt_int(vs->negative, a, sizeof a));
  if (vs->nonint)
    snprintf(why + strlen(why), sizeof why - strlen(why), ", %s non-integer",
             fmt_int(vs->nonint, a, sizeof a));
  if (vs->nonfinite)
    snprintf(why + strlen(why), sizeof why - strlen(why), ", %s NaN/Inf",
             fmt_int(vs->nonfinite, a, sizeof a));
  char checked[96] = "";
  if (vs->scanned < nnz)
    snprintf(checked, sizeof checked, " [first %s of %s values checked]",
             fmt_int(vs->scanned, a, sizeof a), fmt_int(nnz, b, sizeof b));
  if (why[0])
    cli_print(comm, "            values: min %g, max %g; raw counts: no (%s)%s\n",
              vs->min, vs->max, why + 2, checked);
  else
    cli_print(comm,
              "            values: min %g, max %g; raw counts: yes (non-negative "
              "integers)%s\n",
              vs->min, vs->max, checked);
}

/* Collective. One line block for X or a layer. */
static int describe_matrix(h5ad_file *f, const char *layer, const char *label,
                           const clue_comm *comm, clue_err *err) {
  h5ad_matrix_info in;
  int rc = clue_comm_agree(comm, h5ad_matrix_info_get(f, layer, &in, err), err);
  if (rc) return rc;
  char a[32], b[32], c[32];
  cli_print(comm, "%-11s %s, %s", label, kind_name(in.kind), in.dtype);
  if (in.kind != H5AD_DENSE)
    cli_print(comm, ", indptr int%d, indices %s", 8 * in.indptr_bytes, in.index_dtype);
  double cells = (double)in.n_rows * (double)in.n_cols;
  cli_print(comm, "; %s × %s; %s stored values (%.2f%% of the matrix)\n",
            fmt_int(in.n_rows, a, 32), fmt_int(in.n_cols, b, 32), fmt_int(in.nnz, c, 32),
            cells > 0 ? 100.0 * (double)in.nnz / cells : 0.0);
  int64_t *row_nnz = NULL;
  rc = h5ad_read_row_nnz(f, layer, &row_nnz, err);
  if (rc) return rc;
  if (in.kind != H5AD_DENSE) print_row_stats(comm, row_nnz, in.n_rows);
  value_scan vs = {0};
  rc = scan_values(f, layer, row_nnz, in.n_rows, comm, &vs, err);
  if (rc == CLUE_OK) print_scan(comm, &vs, in.nnz, in.kind == H5AD_DENSE);
  free(row_nnz);
  return rc;
}

/* ---- obs columns ---- */

typedef struct label_count {
  const char *label;
  int64_t count;
  int64_t order;
} label_count;

static int cmp_count_desc(const void *a, const void *b) {
  const label_count *x = a, *y = b;
  if (x->count != y->count) return x->count < y->count ? 1 : -1;
  return (x->order > y->order) - (x->order < y->order);
}

/* Prints "a (12), b (3), … (+N more)"; all when n <= max_cat (or max_cat 0),
 * else the most frequent max_cat. */
static void print_label_counts(const clue_comm *comm, label_count *lc, int64_t n,
                               int64_t missing, int max_cat) {
  bool cut = max_cat > 0 && n > max_cat;
  if (cut) qsort(lc, (size_t)n, sizeof *lc, cmp_count_desc);
  int64_t shown = cut ? max_cat : n;
  char a[32];
  for (int64_t i = 0; i < shown; i++)
    cli_print(comm, "%s%s (%s)", i ? ", " : "", lc[i].label,
              fmt_int(lc[i].count, a, sizeof a));
  if (cut) cli_print(comm, ", ... (+%lld more)", (long long)(n - shown));
  if (missing) cli_print(comm, "%smissing (%s)", n ? ", " : "", fmt_int(missing, a, 32));
  cli_print(comm, "\n");
}

static void describe_categorical(const clue_comm *comm, const h5ad_column *c,
                                 int max_cat) {
  int64_t nc = c->categories->n, missing = 0;
  label_count *lc = calloc((size_t)(nc > 0 ? nc : 1), sizeof *lc);
  if (!lc) return;
  for (int64_t j = 0; j < nc; j++) {
    lc[j].label = c->categories->s[j];
    lc[j].order = j;
  }
  for (int64_t i = 0; i < c->n; i++) {
    if (c->codes[i] >= 0)
      lc[c->codes[i]].count++;
    else
      missing++;
  }
  cli_print(comm, "categorical%s, %lld categories: ", c->ordered ? " (ordered)" : "",
            (long long)nc);
  print_label_counts(comm, lc, nc, missing, max_cat);
  free(lc);
}

static void describe_strings(const clue_comm *comm, const h5ad_column *c, int max_cat) {
  clue_err e;
  clue_strmap *m = clue_strmap_new(c->n, &e);
  label_count *lc = calloc((size_t)(c->n > 0 ? c->n : 1), sizeof *lc);
  int64_t n = 0, missing = 0;
  for (int64_t i = 0; m && lc && i < c->n; i++) {
    const char *s = c->strings->s[i];
    if (!s[0]) {
      missing++;
      continue;
    }
    int64_t at = clue_strmap_get(m, s);
    if (at < 0) {
      at = n++;
      lc[at].label = s;
      lc[at].order = at;
      clue_strmap_put(m, s, at, NULL, &e);
    }
    lc[at].count++;
  }
  cli_print(comm, "string, %lld distinct: ", (long long)n);
  print_label_counts(comm, lc, n, missing, max_cat);
  clue_strmap_free(m);
  free(lc);
}

static void describe_numbers(const clue_comm *comm, const h5ad_column *c) {
  int64_t missing = 0, n = 0, ones = 0;
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  bool integral = true;
  for (int64_t i = 0; i < c->n; i++) {
    double v = c->values[i];
    if (isnan(v)) {
      missing++;
      continue;
    }
    n++;
    ones += v != 0;
    sum += v;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    integral = integral && v == floor(v);
  }
  char a[32], b[32];
  if (c->kind == H5AD_COL_BOOL)
    cli_print(comm, "bool: True (%s), False (%s)", fmt_int(ones, a, 32),
              fmt_int(n - ones, b, 32));
  else if (n > 0)
    cli_print(comm, "numeric%s: min %g, max %g, mean %g", integral ? " (integer)" : "",
              lo, hi, sum / (double)n);
  else
    cli_print(comm, "numeric: no values");
  if (missing) cli_print(comm, ", missing (%s)", fmt_int(missing, a, 32));
  cli_print(comm, "\n");
}

/* Not collective. Describes every obs column of f. */
static int describe_obs(h5ad_file *f, int max_cat, const clue_comm *comm, clue_err *err) {
  clue_strings *cols = NULL;
  int rc = h5ad_obs_column_names(f, &cols, err);
  if (rc) return rc;
  int width = 4;
  for (int64_t i = 0; i < cols->n; i++)
    if ((int)strlen(cols->s[i]) > width) width = (int)strlen(cols->s[i]);
  if (width > 24) width = 24;
  cli_print(comm, "obs         %lld column%s\n", (long long)cols->n,
            cols->n == 1 ? "" : "s");
  for (int64_t i = 0; rc == CLUE_OK && i < cols->n; i++) {
    h5ad_column *c = NULL;
    rc = h5ad_read_obs_column(f, cols->s[i], &c, err);
    if (rc) break;
    cli_print(comm, "  %-*s  ", width, c->name);
    if (c->kind == H5AD_COL_CATEGORICAL)
      describe_categorical(comm, c, max_cat);
    else if (c->kind == H5AD_COL_STRING)
      describe_strings(comm, c, max_cat);
    else if (c->kind == H5AD_COL_OTHER)
      cli_print(comm, "not read by clue (encoding-type '%s')\n", c->encoding);
    else
      describe_numbers(comm, c);
    h5ad_column_free(c);
  }
  clue_strings_free(cols);
  return rc;
}

/* "a, b, c, ... (N)" */
static void print_sample(const clue_comm *comm, const char *label, const clue_strings *s,
                         int64_t show) {
  char a[32];
  cli_print(comm, "%-11s ", label);
  for (int64_t i = 0; i < s->n && i < show; i++)
    cli_print(comm, "%s%s", i ? ", " : "", s->s[i]);
  cli_print(comm, "%s(%s)\n",
            s->n > show ? ", ... "
            : s->n      ? " "
                        : "",
            fmt_int(s->n, a, sizeof a));
}

/* Warns about duplicated names (clue refuses duplicated obs names). */
static void print_duplicates(const clue_comm *comm, const clue_strings *s,
                             const char *what) {
  clue_err e;
  clue_strmap *m = clue_strmap_new(s->n, &e);
  int64_t dups = 0, first = -1;
  for (int64_t i = 0; m && i < s->n; i++)
    if (clue_strmap_put(m, s->s[i], i, NULL, &e) == 0) {
      dups++;
      if (first < 0) first = i;
    }
  clue_strmap_free(m);
  if (dups)
    cli_print(
        comm,
        "            WARNING: %lld duplicated %s names (first: '%s' at row %lld)%s\n",
        (long long)dups, what, s->s[first], (long long)first,
        what[0] == 'o' ? "; clue needs unique obs names" : "");
}

/* Not collective. Obs and var name samples. */
static int describe_names(h5ad_file *f, const clue_comm *comm, clue_err *err) {
  clue_strings *obs = NULL, *var = NULL;
  int rc = h5ad_read_obs_names(f, &obs, err);
  if (rc == CLUE_OK) rc = h5ad_read_var_names(f, &var, err);
  if (rc == CLUE_OK) {
    print_sample(comm, "obs names", obs, 3);
    print_duplicates(comm, obs, "obs");
    print_sample(comm, "var names", var, 5);
    print_duplicates(comm, var, "var");
  }
  clue_strings_free(obs);
  clue_strings_free(var);
  return rc;
}

/* Collective. obsm keys and shapes. */
static int describe_obsm(h5ad_file *f, const clue_comm *comm, clue_err *err) {
  clue_strings *keys = NULL;
  int rc = clue_comm_agree(comm, h5ad_obsm_names(f, &keys, err), err);
  if (rc) return rc;
  cli_print(comm, "obsm        %s", keys->n ? "" : "none");
  for (int64_t i = 0; rc == CLUE_OK && i < keys->n; i++) {
    float *none = NULL;
    int64_t cols = 0;
    if (h5ad_read_obsm_rows(f, keys->s[i], 0, 0, &none, &cols, err) == CLUE_OK)
      cli_print(comm, "%s%s (%lld × %lld)", i ? ", " : "", keys->s[i],
                (long long)h5ad_n_obs(f), (long long)cols);
    else
      cli_print(comm, "%s%s (not a dense array)", i ? ", " : "", keys->s[i]);
    free(none);
  }
  cli_print(comm, "\n");
  clue_strings_free(keys);
  return rc;
}

/* Collective. Everything about one AnnData object. */
static int describe_anndata(h5ad_file *f, const info_opts *o, const clue_comm *comm,
                            clue_err *err) {
  char a[32], b[32];
  cli_print(comm, "shape       %s cells × %s features\n", fmt_int(h5ad_n_obs(f), a, 32),
            fmt_int(h5ad_n_vars(f), b, 32));
  int rc = describe_matrix(f, NULL, "X", comm, err);
  clue_strings *layers = NULL;
  if (rc == CLUE_OK) rc = clue_comm_agree(comm, h5ad_layer_names(f, &layers, err), err);
  if (rc == CLUE_OK && layers->n == 0) cli_print(comm, "layers      none\n");
  for (int64_t i = 0; rc == CLUE_OK && i < layers->n; i++) {
    char label[CLUE_NAME_MAX + 16];
    snprintf(label, sizeof label, "layers/%s", layers->s[i]);
    rc = describe_matrix(f, layers->s[i], label, comm, err);
  }
  clue_strings_free(layers);
  if (rc == CLUE_OK)
    rc = clue_comm_agree(comm, describe_obs(f, o->max_cat, comm, err), err);
  if (rc == CLUE_OK) rc = clue_comm_agree(comm, describe_names(f, comm, err), err);
  if (rc == CLUE_OK) rc = describe_obsm(f, comm, err);
  return rc;
}

/* ---- MuData ---- */

/* Prints how many cells are in which modalities (masks of modalities). */
static void print_masks(const clue_comm *comm, const clue_pairing *p,
                        const clue_strings *mods, int64_t n_none, const char *how) {
  int nm = p->n_mod;
  int64_t *count = calloc((size_t)1 << nm, sizeof *count);
  if (!count) return;
  for (int64_t c = 0; c < p->n_cells; c++) {
    unsigned mask = 0;
    for (int k = 0; k < nm; k++) mask |= (p->row[c * nm + k] >= 0 ? 1u : 0u) << k;
    count[mask]++;
  }
  unsigned all = (1u << nm) - 1;
  char a[32];
  cli_print(comm, "pairing     %s: %s cells in all %d modalities", how,
            fmt_int(count[all], a, 32), nm);
  for (unsigned mask = 1; mask < all; mask++) {
    if (!count[mask]) continue;
    cli_print(comm, "; %s", __builtin_popcount(mask) == 1 ? "only " : "");
    const char *sep = "";
    for (int k = 0; k < nm; k++)
      if (mask & (1u << k)) {
        cli_print(comm, "%s%s", sep, mods->s[k]);
        sep = "+";
      }
    cli_print(comm, "%s: %s", __builtin_popcount(mask) == 1 ? "" : " only",
              fmt_int(count[mask], a, 32));
  }
  if (n_none) cli_print(comm, "; in no modality: %s", fmt_int(n_none, a, 32));
  cli_print(comm, "\n");
  free(count);
}

/* Rank 0: pairs the modalities (obsmap, else names) and prints the summary. */
static int pairing_summary(const char *path, const clue_strings *mods, h5ad_file **files,
                           const clue_comm *comm, clue_err *err) {
  if (comm->rank != 0 || mods->n > 16) return CLUE_OK;
  int nm = (int)mods->n;
  clue_strings *g = NULL;
  int64_t **maps = calloc((size_t)nm, sizeof *maps), n = 0;
  clue_strings **names = calloc((size_t)nm, sizeof *names);
  clue_pairing *p = NULL;
  int rc = (maps && names) ? h5mu_read_obs_names(path, &g, err)
                           : clue_fail(err, CLUE_ENOMEM, "out of memory");
  bool all = true;
  for (int k = 0; rc == CLUE_OK && k < nm; k++) {
    rc = h5mu_read_obsmap(path, mods->s[k], &maps[k], &n, err);
    all = all && maps[k];
  }
  if (rc == CLUE_OK && all) {
    rc = clue_pairing_from_obsmap(g, maps, nm, &p, err);
    if (rc == CLUE_OK) print_masks(comm, p, mods, g->n - p->n_cells, "by obsmap");
  } else if (rc == CLUE_OK) {
    for (int k = 0; rc == CLUE_OK && k < nm; k++)
      rc = h5ad_read_obs_names(files[k], &names[k], err);
    clue_err e2;
    if (rc == CLUE_OK &&
        clue_pairing_from_names(names, nm, (const char *const *)mods->s, &p, &e2) == 0)
      print_masks(comm, p, mods, 0, "by obs names (no obsmap)");
    else if (rc == CLUE_OK)
      cli_print(comm, "pairing     cannot pair by obs names: %s\n", e2.msg);
  }
  for (int k = 0; k < nm; k++) {
    if (maps) free(maps[k]);
    if (names) clue_strings_free(names[k]);
  }
  free(maps);
  free(names);
  clue_pairing_free(p);
  clue_strings_free(g);
  return rc;
}

/* Collective. An .h5mu: global obs, each modality, the pairing. */
static int info_h5mu(const info_opts *o, const clue_comm *comm, clue_err *err) {
  clue_strings *mods = NULL;
  h5ad_file *global = NULL, *files[CLUE_MAX_MOD * 2] = {0};
  int rc = clue_comm_agree(comm, h5mu_mod_names(o->path, &mods, err), err);
  if (rc == CLUE_OK && mods->n > CLUE_MAX_MOD * 2)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: %lld modalities; clue info shows up to %d",
                   o->path, (long long)mods->n, CLUE_MAX_MOD * 2);
  if (rc == CLUE_OK) rc = h5ad_open(o->path, NULL, comm, &global, err);
  if (rc == CLUE_OK) {
    char a[32];
    cli_print(comm,
              "file        %s\nformat      MuData (.h5mu), %lld modalities:", o->path,
              (long long)mods->n);
    for (int64_t k = 0; k < mods->n; k++) cli_print(comm, " %s", mods->s[k]);
    cli_print(comm, "\ncells       %s (global obs)\n",
              fmt_int(h5ad_n_obs(global), a, 32));
    rc = clue_comm_agree(comm, describe_obs(global, o->max_cat, comm, err), err);
  }
  for (int64_t k = 0; rc == CLUE_OK && k < mods->n; k++) {
    char group[CLUE_NAME_MAX + 8];
    snprintf(group, sizeof group, "mod/%s", mods->s[k]);
    cli_print(comm, "\n== %s\n", group);
    rc = h5ad_open(o->path, group, comm, &files[k], err);
    if (rc == CLUE_OK) rc = describe_anndata(files[k], o, comm, err);
  }
  if (rc == CLUE_OK) {
    cli_print(comm, "\n");
    rc = clue_comm_agree(comm, pairing_summary(o->path, mods, files, comm, err), err);
  }
  for (int64_t k = 0; mods && k < mods->n; k++) h5ad_close(files[k]);
  h5ad_close(global);
  clue_strings_free(mods);
  return rc;
}

/* Collective. An .h5ad. */
static int info_h5ad(const info_opts *o, const clue_comm *comm, clue_err *err) {
  h5ad_file *f = NULL;
  int rc = h5ad_open(o->path, NULL, comm, &f, err);
  if (rc) return rc;
  cli_print(comm, "file        %s\nformat      AnnData (.h5ad)\n", o->path);
  rc = describe_anndata(f, o, comm, err);
  h5ad_close(f);
  return rc;
}

static int parse_args(int argc, char **argv, info_opts *o, bool *help, clue_err *err) {
  o->path = NULL;
  o->max_cat = 10;
  *help = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      *help = true;
    } else if (!strcmp(a, "--categories") || !strncmp(a, "--categories=", 13)) {
      const char *v = a[12] == '=' ? a + 13 : (i + 1 < argc ? argv[++i] : NULL);
      char *end = NULL;
      long n = v ? strtol(v, &end, 10) : -1;
      if (!v || !*v || *end || n < 0 || n > 1000000)
        return clue_fail(err, CLUE_EUSAGE,
                         "--categories needs a whole number >= 0 (0 = show all)");
      o->max_cat = (int)n;
    } else if (a[0] == '-' && a[1]) {
      return clue_fail(err, CLUE_EUSAGE, "unknown option '%s' (see clue info --help)", a);
    } else if (o->path) {
      return clue_fail(err, CLUE_EUSAGE, "one file at a time (got '%s' and '%s')",
                       o->path, a);
    } else {
      o->path = a;
    }
  }
  if (!*help && !o->path)
    return clue_fail(err, CLUE_EUSAGE, "no file given (usage: clue info FILE)");
  return CLUE_OK;
}

int cli_info(int argc, char **argv, const clue_comm *comm) {
  clue_err err;
  clue_err_clear(&err);
  info_opts o;
  bool help = false;
  int rc = parse_args(argc, argv, &o, &help, &err);
  if (rc == CLUE_OK && help) {
    if (comm->rank == 0) usage(stdout);
    return 0;
  }
  if (rc) return cli_report(comm, "info", rc, &err);
  int mu = comm->rank == 0 ? h5mu_is_mudata(o.path) : 0;
  clue_comm_bcast(comm, &mu, sizeof mu, 0);
  rc = mu ? info_h5mu(&o, comm, &err) : info_h5ad(&o, comm, &err);
  return cli_report(comm, "info", rc, &err);
}
