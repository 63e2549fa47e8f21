/* unpaired.c — the measures of unpaired.h: silhouettes (silhouette.h), the
 * connectivity of each label's kNN graph, and leave-modality-out transfer. */
#include "clue/unpaired.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "clue/knn.h"
#include "clue/labels.h"
#include "clue/matching.h"
#include "clue/silhouette.h"

/* ---- silhouettes ---- */

/* Collective. The silhouette of every local row for groups `group` within
 * scopes `scope` (NULL: one), and the global counts (n_scopes × n_groups). */
static int widths(const unpaired_input *in, const int32_t *scope, int n_scopes,
                  const int32_t *group, int n_groups, double *s, int64_t **counts,
                  const clue_comm *comm, clue_err *err) {
  int64_t *id = clue_malloc((size_t)(in->n + 1) * sizeof *id, err);
  double *sums = clue_malloc((size_t)(in->n * n_groups + 1) * sizeof *sums, err);
  *counts = clue_malloc((size_t)n_scopes * n_groups * sizeof **counts + 1, err);
  int rc = clue_comm_agree(comm, id && sums && *counts ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < in->n; i++) id[i] = in->begin + i;
    sil_points p = {.n = in->n, .dim = in->dim, .x = in->x, .id = id, .scope = scope,
                    .group = group, .n_scopes = n_scopes, .n_groups = n_groups};
    rc = sil_distance_sums(&p, comm, sums, *counts, err);
    if (rc == CLUE_OK) sil_widths(&p, sums, *counts, s);
  }
  free(id);
  free(sums);
  return rc;
}

/* Collective. (mean silhouette of the labels + 1) / 2. */
static int asw_label(const unpaired_input *in, double *s, const clue_comm *comm, double *out,
                     clue_err *err) {
  int64_t *counts = NULL;
  int rc = widths(in, NULL, 1, in->label, in->n_labels, s, &counts, comm, err);
  free(counts);
  if (rc) return rc;
  double acc[2] = {0, 0};
  for (int64_t i = 0; i < in->n; i++)
    if (!isnan(s[i])) acc[0] += s[i], acc[1]++;
  clue_comm_sum_double(comm, acc, 2);
  *out = acc[1] > 0 ? (acc[0] / acc[1] + 1) / 2 : NAN;
  return CLUE_OK;
}

/* Collective. scib's silhouette_batch for the groups `group` (batches or
 * modalities) within the labels. */
static int asw_within(const unpaired_input *in, const int32_t *group, int n_groups, double *s,
                      const clue_comm *comm, double *out, clue_err *err) {
  int L = in->n_labels;
  int32_t *g = clue_malloc((size_t)(in->n + 1) * sizeof *g, err);
  double *acc = clue_calloc((size_t)2 * L + 1, sizeof *acc, err);
  int rc = clue_comm_agree(comm, g && acc ? CLUE_OK : CLUE_ENOMEM, err);
  for (int64_t i = 0; rc == CLUE_OK && i < in->n; i++) g[i] = in->label[i] >= 0 ? group[i] : -1;
  int64_t *counts = NULL;
  if (rc == CLUE_OK) {
    int32_t *scope = clue_malloc((size_t)(in->n + 1) * sizeof *scope, err);
    rc = clue_comm_agree(comm, scope ? CLUE_OK : CLUE_ENOMEM, err);
    for (int64_t i = 0; rc == CLUE_OK && i < in->n; i++)
      scope[i] = in->label[i] >= 0 ? in->label[i] : 0;
    if (rc == CLUE_OK) rc = widths(in, scope, L, g, n_groups, s, &counts, comm, err);
    free(scope);
  }
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < in->n; i++) {
      int l = in->label[i];
      if (l < 0 || isnan(s[i])) continue;
      int64_t cells = 0, present = 0;
      for (int q = 0; q < n_groups; q++)
        cells += counts[(int64_t)l * n_groups + q], present += counts[(int64_t)l * n_groups + q] > 0;
      if (present < 2 || present == cells) continue;
      acc[2 * l] += 1 - fabs(s[i]);
      acc[2 * l + 1]++;
    }
    clue_comm_sum_double(comm, acc, (size_t)2 * L);
    double sum = 0;
    int used = 0;
    for (int l = 0; l < L; l++)
      if (acc[2 * l + 1] > 0) sum += acc[2 * l] / acc[2 * l + 1], used++;
    *out = used ? sum / used : NAN;
  }
  free(counts);
  free(g);
  free(acc);
  return rc;
}

/* ---- graph connectivity ---- */

static int64_t find(int64_t *parent, int64_t x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

/* Rank 0: the mean over labels of the largest piece's share. */
static double connectivity(const int32_t *label, const int64_t *nbr, int64_t n, int k, int L) {
  int64_t *parent = malloc((size_t)(n + 1) * sizeof *parent);
  int64_t *size = calloc((size_t)n + 1, sizeof *size);
  int64_t *best = calloc((size_t)L + 1, sizeof *best), *cells = calloc((size_t)L + 1, sizeof *cells);
  double out = NAN;
  if (parent && size && best && cells) {
    for (int64_t i = 0; i < n; i++) parent[i] = i;
    for (int64_t i = 0; i < n; i++)
      for (int q = 0; q < k; q++) {
        int64_t j = nbr[i * k + q];
        if (j < 0 || label[i] < 0 || label[j] != label[i]) continue;
        int64_t a = find(parent, i), b = find(parent, j);
        if (a != b) parent[a] = b;
      }
    for (int64_t i = 0; i < n; i++)
      if (label[i] >= 0) size[find(parent, i)]++, cells[label[i]]++;
    for (int64_t i = 0; i < n; i++)
      if (label[i] >= 0 && size[i] > best[label[i]]) best[label[i]] = size[i];
    double sum = 0;
    int used = 0;
    for (int l = 0; l < L; l++)
      if (cells[l] > 0) sum += (double)best[l] / (double)cells[l], used++;
    out = used ? sum / used : NAN;
  }
  free(parent), free(size), free(best), free(cells);
  return out;
}

/* Collective. Gathers counts[r] values of `size` bytes from each rank, in rank
 * order, to rank 0 (*all malloc'd there). */
static int gather(const void *mine, int64_t n, size_t size, const clue_comm *comm, void **all,
                  clue_err *err) {
  int P = comm->size, c = (int)((size_t)n * size);
  int *cnt = clue_calloc((size_t)P, sizeof *cnt, err), *disp = clue_calloc((size_t)P, sizeof *disp, err);
  int rc = clue_comm_agree(comm, cnt && disp ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) {
    MPI_Gather(&c, 1, MPI_INT, cnt, 1, MPI_INT, 0, comm->comm);
    int64_t total = 0;
    for (int r = 0; r < P; r++) disp[r] = (int)total, total += cnt[r];
    *all = comm->rank == 0 ? clue_malloc((size_t)total + 1, err) : NULL;
    if (comm->rank == 0 && !*all) rc = CLUE_ENOMEM;
    if (total > INT32_MAX) rc = clue_fail(err, CLUE_EINVAL, "too many cells to gather the kNN graph");
    rc = clue_comm_agree(comm, rc, err);
    if (rc == CLUE_OK)
      MPI_Gatherv(mine, c, MPI_BYTE, *all, cnt, disp, MPI_BYTE, 0, comm->comm);
  }
  free(cnt);
  free(disp);
  return rc;
}

static int graph_conn(const unpaired_input *in, const clue_comm *comm, double *out,
                      clue_err *err) {
  knn_points p = {in->n_total, in->begin, in->n, in->dim, in->x, NULL};
  knn_opts o = {.k_row = in->k, .exclude_self = true};
  knn_result *r = NULL;
  int rc = knn_scan(&p, &p, &o, comm, &r, err);
  int32_t *labels = NULL;
  int64_t *nbr = NULL;
  if (rc == CLUE_OK) rc = gather(in->label, in->n, sizeof *in->label, comm, (void **)&labels, err);
  if (rc == CLUE_OK)
    rc = gather(r->row_idx, in->n * in->k, sizeof *r->row_idx, comm, (void **)&nbr, err);
  double v = NAN;
  if (rc == CLUE_OK && comm->rank == 0) v = connectivity(labels, nbr, in->n_total, in->k, in->n_labels);
  clue_comm_bcast(comm, &v, sizeof v, 0);
  *out = v;
  knn_result_free(r);
  free(labels);
  free(nbr);
  return rc;
}

/* ---- leave-modality-out transfer ---- */

/* This rank's rows passing `keep`, normalised, as points of a set split over
 * the ranks in rank order; their labels in *lab. */
typedef struct subset {
  knn_points p;
  float *x;
  int32_t *lab;
} subset;

static int subset_make(const unpaired_input *in, int m, bool query, const clue_comm *comm,
                       subset *s, clue_err *err) {
  memset(s, 0, sizeof *s);
  int64_t n = 0, d = in->dim;
  float *raw = clue_malloc((size_t)(in->n * d + 1) * sizeof *raw, err);
  s->lab = clue_malloc((size_t)(in->n + 1) * sizeof *s->lab, err);
  int rc = clue_comm_agree(comm, raw && s->lab ? CLUE_OK : CLUE_ENOMEM, err);
  for (int64_t i = 0; rc == CLUE_OK && i < in->n; i++) {
    if (in->label[i] < 0 || (in->mod[i] == m) != query) continue;
    memcpy(raw + n * d, in->x + i * d, (size_t)d * sizeof *raw);
    s->lab[n++] = in->label[i];
  }
  if (rc == CLUE_OK) {
    s->x = match_normalize(raw, n, d, err);
    rc = clue_comm_agree(comm, s->x ? CLUE_OK : CLUE_ENOMEM, err);
  }
  free(raw);
  if (rc) return rc;
  int64_t total = n, before = 0;
  MPI_Exscan(&n, &before, 1, MPI_INT64_T, MPI_SUM, comm->comm);
  if (comm->rank == 0) before = 0;
  clue_comm_sum_int64(comm, &total, 1);
  s->p = (knn_points){total, before, n, d, s->x, NULL};
  return CLUE_OK;
}

static void subset_free(subset *s) {
  free(s->x);
  free(s->lab);
}

/* Collective. Every rank's labels of the reference subset, in order. */
static int all_labels(const subset *r, const clue_comm *comm, int32_t **out, clue_err *err) {
  int P = comm->size, c = (int)r->p.n;
  int *cnt = clue_calloc((size_t)P, sizeof *cnt, err), *disp = clue_calloc((size_t)P, sizeof *disp, err);
  *out = clue_malloc((size_t)(r->p.n_total + 1) * sizeof **out, err);
  int rc = clue_comm_agree(comm, cnt && disp && *out ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) {
    MPI_Allgather(&c, 1, MPI_INT, cnt, 1, MPI_INT, comm->comm);
    for (int q = 1; q < P; q++) disp[q] = disp[q - 1] + cnt[q - 1];
    MPI_Allgatherv(r->lab, c, MPI_INT32_T, *out, cnt, disp, MPI_INT32_T, comm->comm);
  }
  free(cnt);
  free(disp);
  return rc;
}

/* Collective. Adds modality m's votes to counts (3 · n_labels) and scores it. */
static int transfer_mod(const unpaired_input *in, int m, int64_t *all_counts,
                        unpaired_result *out, const clue_comm *comm, clue_err *err) {
  int L = in->n_labels, k = in->k;
  subset q, r;
  int rc = subset_make(in, m, true, comm, &q, err);
  if (rc == CLUE_OK) rc = subset_make(in, m, false, comm, &r, err);
  out->accuracy[m] = out->macro_f1[m] = NAN;
  out->scored[m] = 0;
  if (rc || q.p.n_total == 0 || r.p.n_total == 0) {
    subset_free(&q);
    subset_free(&r);
    return rc;
  }
  knn_opts o = {.k_row = k};
  knn_result *res = NULL;
  int32_t *rl = NULL, *pred = NULL, *lab = NULL;
  double *w = NULL, conf;
  int64_t *counts = clue_calloc((size_t)3 * L + 1, sizeof *counts, err);
  rc = knn_scan(&q.p, &r.p, &o, comm, &res, err);
  if (rc == CLUE_OK) rc = all_labels(&r, comm, &rl, err);
  if (rc == CLUE_OK) {
    pred = clue_malloc((size_t)(q.p.n + 1) * sizeof *pred, err);
    lab = clue_malloc((size_t)k * sizeof *lab + 1, err);
    w = clue_malloc((size_t)L * sizeof *w + 1, err);
    rc = clue_comm_agree(comm, pred && lab && w && counts ? CLUE_OK : CLUE_ENOMEM, err);
  }
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < q.p.n; i++) {
      for (int j = 0; j < k; j++) {
        int64_t idx = res->row_idx[i * k + j];
        lab[j] = idx < 0 ? -1 : rl[idx];
      }
      pred[i] = clue_vote(lab, res->row_d2 + i * k, k, L, w, &conf);
    }
    int64_t n = clue_label_count(q.lab, pred, q.p.n, L, counts);
    clue_comm_sum_int64(comm, counts, (size_t)3 * L);
    clue_comm_sum_int64(comm, &n, 1);
    for (int64_t c = 0; c < 3 * L; c++) all_counts[c] += counts[c];
    out->scored[m] = n;
    clue_label_scores(counts, L, n, &out->accuracy[m], &out->macro_f1[m]);
  }
  knn_result_free(res);
  free(rl), free(pred), free(lab), free(w), free(counts);
  subset_free(&q);
  subset_free(&r);
  return rc;
}

int unpaired_compute(const unpaired_input *in, const clue_comm *comm, unpaired_result *out,
                     clue_err *err) {
  memset(out, 0, sizeof *out);
  out->asw_batch = NAN;
  if (in->n_mods > UNPAIRED_MAX_MODS)
    return clue_fail(err, CLUE_EINVAL, "%d modalities: at most %d", in->n_mods,
                     UNPAIRED_MAX_MODS);
  double *s = clue_malloc((size_t)(in->n + 1) * sizeof *s, err);
  int64_t *counts = clue_calloc((size_t)3 * in->n_labels + 1, sizeof *counts, err);
  int rc = clue_comm_agree(comm, s && counts ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = asw_label(in, s, comm, &out->asw_label, err);
  if (rc == CLUE_OK && in->batch)
    rc = asw_within(in, in->batch, in->n_batches, s, comm, &out->asw_batch, err);
  if (rc == CLUE_OK) rc = asw_within(in, in->mod, in->n_mods, s, comm, &out->asw_modality, err);
  if (rc == CLUE_OK) rc = graph_conn(in, comm, &out->graph_conn, err);
  for (int m = 0; rc == CLUE_OK && m < in->n_mods; m++)
    rc = transfer_mod(in, m, counts, out, comm, err);
  if (rc == CLUE_OK) {
    for (int m = 0; m < in->n_mods; m++) out->scored_all += out->scored[m];
    clue_label_scores(counts, in->n_labels, out->scored_all, &out->accuracy_all,
                      &out->macro_f1_all);
  }
  free(s);
  free(counts);
  return rc;
}
