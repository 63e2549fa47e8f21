/* umap.h — UMAP (McInnes, Healy & Melville 2018, arXiv:1802.03426): a 2-D layout
 * of a row-distributed point set that keeps each point's nearest neighbours near.
 * Written from the paper's algorithm; the choices the paper leaves open follow
 * the reference implementation's published defaults, so that the layouts are
 * comparable with umap-learn's.
 *
 * The pipeline (clue_umap):
 *  1. kNN. The exact distributed scan of knn.h (Euclidean, the set against
 *     itself, the point excluded): n_neighbors − 1 neighbours per point, so that
 *     with the point itself (distance 0) each has n_neighbors, as in umap-learn.
 *     The lists are then gathered on every rank; everything after runs on every
 *     rank identically, single-threaded, so every rank returns the same layout
 *     and the layout does not depend on the number of ranks.
 *  2. Fuzzy simplicial set. Per point rho (distance to the nearest neighbour at
 *     a positive distance) and sigma (binary search: Σ_j exp(−max(0, d_j − rho)
 *     / sigma) = log2(n_neighbors) over the n_neighbors − 1 neighbours);
 *     membership w_ij = exp(−max(0, d_ij − rho_i) / sigma_i); symmetrised by the
 *     fuzzy union W + Wᵀ − W∘Wᵀ (sparse, CSR).
 *  3. The curve 1 / (1 + a d^(2b)) fitted by Levenberg–Marquardt least squares
 *     to 1 for d < min_dist, exp(−(d − min_dist) / spread) otherwise, on 300
 *     points over [0, 3·spread] (min_dist 0.1, spread 1: a ≈ 1.577, b ≈ 0.895).
 *  4. Initialisation: SPECTRAL. The two leading non-trivial eigenvectors of the
 *     normalised graph D^−½ W D^−½ (subspace iteration from a deterministic
 *     start, with Rayleigh–Ritz). A graph of several connected components gets
 *     one spectral layout per component (components of fewer than 8 points: a
 *     deterministic uniform scatter), placed at the 2-D principal-component
 *     projection of the components' centroids in the input space, each within
 *     half the distance to the nearest other component (on a spiral instead
 *     when both the components and the columns exceed 1024). The result is scaled
 *     so that its largest coordinate is 10, given N(0, 10⁻⁴) deterministic
 *     noise, and each coordinate then mapped onto [0, 10] (as umap-learn does).
 *  5. Layout: stochastic gradient descent with negative sampling. Edges with a
 *     weight below max/n_epochs are dropped; edge e is sampled every
 *     max_w / w_e epochs (both directions of each edge of the symmetric graph,
 *     each moving both ends); each sample draws negative_sample_rate points at
 *     random for repulsion. Attractive gradient −2ab d^(2(b−1)) / (1 + a d^(2b)),
 *     repulsive 2b / ((0.001 + d²)(1 + a d^(2b))), each coordinate clipped to
 *     ±4, learning rate decaying linearly from learning_rate to 0. Random
 *     numbers come from clue_rng_stream(seed, CLUE_RNG_UMAP, epoch, edge): the
 *     same seed gives the same layout, bit for bit.
 *
 * Memory on every rank: the gathered kNN lists and graph, O(n · n_neighbors),
 * plus the n × 2 layout; and, only when the graph has several components, the
 * whole input (n × dim floats) for the component centroids. */
#ifndef CLUE_UMAP_H
#define CLUE_UMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/error.h"
#include "clue/knn.h"

typedef struct clue_umap_opts {
  int n_neighbors;          /* neighbours of a point counting itself (default 15; ≥ 2) */
  double min_dist;          /* closest spacing of the layout (default 0.1; ≥ 0) */
  double spread;            /* scale of the layout (default 1; > 0, ≥ min_dist) */
  int n_epochs;             /* 0 = 500 for ≤ 10,000 points, else 200 */
  int negative_sample_rate; /* negative samples per positive one (default 5) */
  double learning_rate;     /* initial SGD step (default 1) */
  uint64_t seed;            /* random numbers of the initial noise and the SGD */
  bool progress;            /* rank 0 prints a line to stderr every few seconds */
} clue_umap_opts;

typedef struct clue_umap_stats {
  double a, b;           /* the fitted curve */
  int n_epochs;          /* epochs run */
  int64_t n_edges;       /* nonzero entries of the symmetric graph (both directions) */
  int64_t n_sampled;     /* of them, kept for the SGD */
  int64_t n_components;  /* connected components of the graph */
  double t_knn, t_graph, t_init, t_layout; /* seconds of each stage */
} clue_umap_stats;

/* A symmetric sparse graph on n points (CSR; rows' columns ascending). */
typedef struct clue_umap_graph {
  int64_t n;
  int64_t *indptr;  /* (n + 1) */
  int64_t *indices; /* (indptr[n]) */
  double *w;        /* (indptr[n]) weights in (0, 1] */
} clue_umap_graph;

/* Fills the defaults listed in clue_umap_opts. */
void clue_umap_opts_default(clue_umap_opts *o);

/* Fails with CLUE_EINVAL, naming the option, when o is out of range. */
int clue_umap_check_opts(const clue_umap_opts *o, clue_err *err);

/* The a, b of step 3 for (spread, min_dist); fails with CLUE_EINVAL when
 * spread ≤ 0 or min_dist < 0, with CLUE_ENUMERIC when the fit does not converge. */
int clue_umap_fit_ab(double spread, double min_dist, double *a, double *b, clue_err *err);

/* Step 2's rho and sigma for each of n points: d (n × k) the distances to its k
 * neighbours, ascending, without the point itself; `target` the wanted sum
 * (log2(n_neighbors)). Binary search (64 halvings or |sum − target| < 1e-5);
 * sigma is then at least 1e-3 × the mean distance of the point (its k
 * neighbours and itself at 0) — or, when all its distances are 0, of all
 * points. */
void clue_umap_smooth_knn(const double *d, int64_t n, int k, double target, double *rho,
                          double *sigma);

/* Step 2's memberships: w (n × k) from d, rho and sigma (1 where d ≤ rho). */
void clue_umap_memberships(const double *d, int64_t n, int k, const double *rho,
                           const double *sigma, double *w);

/* The fuzzy union of the directed graph i → idx[i·k + j] with weight w[i·k + j]
 * (n × k; idx −1 = no edge; at most one edge per ordered pair; no self-loops):
 * entry (i, j) of the result is a + b − a·b with a = w(i→j), b = w(j→i) (0 when
 * absent); zero weights are left out. *out is allocated (free with
 * clue_umap_graph_free). */
int clue_umap_fuzzy_union(const int64_t *idx, const double *w, int64_t n, int k,
                          clue_umap_graph **out, clue_err *err);

/* Frees a graph (NULL allowed). */
void clue_umap_graph_free(clue_umap_graph *g);

/* Connected components of g: comp[i] in [0, *n_comp), numbered in order of their
 * smallest point. */
int clue_umap_components(const clue_umap_graph *g, int64_t *comp, int64_t *n_comp,
                         clue_err *err);

/* Step 4: the initial layout y (n × 2) of graph g. x (n × dim, the whole input)
 * is used only when g has several components (it may then not be NULL). */
int clue_umap_init_spectral(const clue_umap_graph *g, const float *x, int64_t dim,
                            uint64_t seed, float *y, int64_t *n_comp, clue_err *err);

/* Step 5: moves y (g->n × 2, the initial layout) by n_epochs of SGD with the
 * curve (a, b); fills stats->n_sampled. */
int clue_umap_optimize(const clue_umap_graph *g, double a, double b,
                       const clue_umap_opts *o, int n_epochs, float *y,
                       clue_umap_stats *stats, clue_err *err);

/* Collective. The UMAP layout of the point set whose block this rank holds
 * (pts: this rank's rows; group ignored): out (pts->n_total × 2, row-major) is
 * filled on every rank, identically and independently of the number of ranks.
 * Fails on every rank when an option is out of range, a value is not finite,
 * the set has fewer than n_neighbors + 1 points, or memory runs out. stats may
 * be NULL. */
int clue_umap(const knn_points *pts, const clue_umap_opts *o, const clue_comm *comm,
              float *out, clue_umap_stats *stats, clue_err *err);

#endif
