/* model_internal.h — the step workspace shared by the files of src/model/. */
#ifndef CLUE_MODEL_INTERNAL_H
#define CLUE_MODEL_INTERNAL_H

#include "clue/model.h"
#include "clue/shm.h"

/* Rows of one application of a decoder (self, joint cross or real cross),
 * placed by the caller; applications of the same decoder run together. */
typedef struct dec_app {
  nn_mlp_cache cache;
  real *z;        /* (B × d) decoder input */
  real *dz;       /* (B × d) gradient of the input */
  real *lib;      /* (B) library sizes */
  real *dlib;     /* (B) */
  int32_t *batch; /* (B) */
  int64_t *trow;  /* (B) target rows */
  int *src;       /* (B) where the row came from (caller's bookkeeping) */
  uint64_t *key;  /* (B) row keys */
  int n;                  /* rows here */
  int64_t n_global;       /* rows over all ranks (BatchNorm) */
  int id;                 /* APP_* id: its dropout stream */
  real coef;              /* gradient scale (loss weight / count) */
  const clue_csr *target; /* counts; rows trow */
  double nll;             /* out: Σ NLL of the rows */
} dec_app;

/* Applications of one decoder run together: self + joint cross. */
#define DEC_APPS 2

/* Buffers of one decoder. The stack (with its BatchNorm statistics) runs per
 * application; the output layer runs once over the applications' rows stacked,
 * so its weights are read once per pass instead of once per application. */
typedef struct dec_work {
  nn_lik_terms terms;
  int terms_f0, terms_f1; /* the features whose terms are current in this pass */
  dec_app app[DEC_APPS];
  real *h;    /* (DEC_APPS·B × stack out) stack outputs, stacked */
  real *dh;   /* (DEC_APPS·B × stack out) */
  real *loc;  /* (DEC_APPS·B × F) */
  real *dloc; /* (DEC_APPS·B × F) */
} dec_work;

/* The decoders' output layers split by features over the ranks of one node
 * (clue_work_split_outputs): each rank runs the layer for all ranks' rows and
 * its own features [feat_begin(q), feat_begin(q + 1)), so its GEMMs have all the
 * rows and read only its slice of the weights; the rows move between ranks
 * through the node-shared slots. A slot holds a header (this rank's row count),
 * region A (stack outputs, then input-gradient partial sums: cap_rows × max
 * stack width) and region B (output-layer values of every rank's rows for this
 * rank's features, then this rank's rows' dloc for every feature: cap_rows ×
 * max slice or cap_own × max F, whichever is larger), then region C (see
 * local below). A run with more rows
 * than cap_rows in all or cap_own on a rank cannot be split; as every rank reads
 * only its own rows of the split layers' weights, it cannot run whole either,
 * and gives NaN losses (clue train never makes one). */
/* Features per tile of a split layer's weight gradient (decode.c). */
#define CLUE_TILE 512

/* Several nodes, each splitting its layers over its P ranks alike (the hybrid
 * layout, clue_work_set_nodes): rank r of every node holds the same slice, and
 * `across` links those ranks (one per node). n = 1: one node. */
typedef struct split_nodes {
  int n;
  clue_comm across;
} split_nodes;

typedef struct out_split {
  clue_shm *shm;      /* NULL: not split */
  int P, r;
  split_nodes nodes;
  int64_t cap_rows;   /* rows of one decoder run over all ranks, at most */
  int64_t cap_own;    /* rows of one decoder run on one rank, at most */
  uint64_t done;      /* the arrival (clue_shm_arrive) after which every rank is
                         done reading the slots in the last run: wait for it
                         before writing this rank's slot again */
  uint64_t h_read;    /* the arrival after which every rank has read the stack
                         outputs in region A (which the backward then overwrites) */
  int64_t a_off, b_off, c_off, d_off; /* byte offsets of regions A-D in a slot */
  real *h_all;        /* (cap_rows × max stack width) every rank's stack outputs */
  real *dloc_s;       /* (cap_rows × max slice) dloc of every rank's rows, this
                         rank's features; NB local: gm (likelihood.h) */
  double *row_scale;  /* (cap_rows) NB local: each row's exp(m − M) / S */
  double *row_sl;     /* (cap_rows) NB local: each row's Σ p·gm over all ranks */
  int64_t *row0;      /* (P + 1) first row of each rank in the current run */
  int64_t *ident;     /* (cap_rows) 0, 1, 2, ...: target rows of exchanged CSRs */
  int64_t *nnz;       /* (P) scratch: targets per rank */
  int *fb;            /* (P + 1) scratch: the slice bounds of one decoder */
  int64_t *cut;       /* (P + 1) scratch: where a row's targets pass to the next rank */
  int64_t **blk_ip;   /* (P) scratch: the blocks of put_targets */
  int32_t **blk_idx;  /* (P) */
  float **blk_val;    /* (P) */
  /* local[k]: decoder k's likelihood runs on this rank's features of every
   * rank's rows, so that only the rows' sparse targets move, not their
   * output-layer values; dw->loc and dw->dloc then hold cap_rows × slice.
   * Region B carries the targets (see put_targets); region C (3 × cap_rows
   * doubles) the per-row statistics that NB's softmax needs from every rank's
   * features (lik_local_nb). */
  /* Region D (cap_rows × max slice reals) holds this rank's dloc (R × slice)
   * in a local likelihood, so that other ranks can run tiles of its weight
   * gradient: g_of[q] (NULL: no sharing) is rank q's gradient buffer, its tile
   * count (the next tile to run) an atomic in the head of its slot. */
  real **g_of;
  /* The per-(feature, batch) tensors are split by columns over the ranks'
   * updates (set only with g_of): a likelihood on whole rows writes every
   * column of their gradients, which the update must then sum. */
  bool cols_split;
  int tile;           /* features per tile (CLUE_TILE; tests may set others) */
  int tile_delay_us;
  int64_t taken;
  bool local[CLUE_K];
  bool local_ok[CLUE_K]; /* local[k] is possible (room for cap_rows × slice) */
} out_split;

/* The encoders split over the ranks of one node (clue_work_split_encoders):
 * encoder e = k·K + j runs on rank e mod P alone, on every rank's rows of
 * modality k, gathered in rank order. A slot holds a header (this rank's rows
 * per modality, K int64), then per modality k its rows' encoder inputs (cap_own
 * × enc_in[k] reals) and row keys (cap_own), per encoder its outputs for all the
 * rows (cap_all × 2d reals: each row's mean, then its std before the softplus)
 * and its BatchNorm running statistics after a training pass (written by its
 * owner), and per modality its rows' gradients of the means and of the stds
 * before the softplus (cap_own × 2·K·d reals). Each pass: two barriers forward
 * (inputs written; outputs written), one backward (gradients written). */
#define CLUE_MAX_RANKS_SPLIT (CLUE_K * CLUE_K) /* ranks that can share the encoders */

typedef struct enc_split {
  clue_shm *shm; /* NULL: every rank runs every encoder on its own rows */
  int P, r;
  split_nodes nodes; /* the nodes whose ranks of the same index share a slice */
  int64_t cap_own, cap_all; /* rows of a modality on one rank, over all ranks */
  int64_t in_off[CLUE_K], key_off[CLUE_K], grad_off[CLUE_K]; /* byte offsets */
  int64_t out_off[CLUE_K * CLUE_K], run_off[CLUE_K * CLUE_K];
  int64_t row0[CLUE_K][CLUE_MAX_RANKS_SPLIT + 1]; /* first gathered row of each rank */
  bool failed;       /* the last forward had more rows than the caps: NaN outputs */
  real *x_all;       /* (cap_all × max enc_in) gathered inputs of one modality */
  uint64_t *key_all; /* (cap_all) their row keys */
} enc_split;

struct clue_work {
  int B, K, d, Kd;
  /* encoders, per source modality k */
  nn_mlp_cache enc_cache[CLUE_K][CLUE_K];
  real *mean[CLUE_K], *std[CLUE_K], *tstd[CLUE_K]; /* (B × Kd) */
  real *eps[CLUE_K], *shat[CLUE_K];                /* (B × Kd) */
  real *snorm[CLUE_K];                             /* (B) norm of the sample */
  real *dmean[CLUE_K], *dstd[CLUE_K], *dshat[CLUE_K]; /* (B × Kd) */
  real *lib[CLUE_K], *dlib[CLUE_K];                /* (B × K) after ReLU */
  uint64_t *key[CLUE_K];                           /* (B) row keys */
  real *head;    /* (B × d) head output scratch */
  real *dhead;   /* (B × d) */
  real *dh;      /* (B × max encoder hidden) */
  /* joint sample of the rows whose joint is computed here */
  real *sbar, *sbar_hat, *dsbar_hat; /* (B × Kd) */
  real *sbar_norm;                   /* (B) */
  /* decoders */
  dec_work dec[CLUE_K];
  /* discriminator over the K·B rows */
  nn_mlp_cache dsc_cache;
  real *dsc_in, *dsc_din;  /* (K·B × Kd) */
  real *logits, *dlogits;  /* (K·B × K) */
  real *dsc_dh;            /* (K·B × hidden) */
  int32_t *dsc_batch;      /* (K·B) */
  int *dsc_label;          /* (K·B) */
  uint64_t *dsc_key;       /* (K·B) */
  out_split split;
  enc_split esplit;
};

#define feat_begin clue_out_slice_begin

/* Whether a run through communicator comm splits the output layers (else they
 * run whole, every row on every rank). */
static inline bool out_split_active(const out_split *s, const clue_comm *comm) {
  return s->shm && comm && comm->size == s->P * s->nodes.n;
}

/* Pass ids of the applications within one forward pass. */
#define APP_ENCODERS 0
#define APP_SELF(k) (1 + (k))
#define APP_CROSS(K, k) (1 + (K) + (k))
#define APP_REAL(K, s, t) (1 + 2 * (K) + (s) * (K) + (t))
#define APP_DISC 127
static inline uint64_t app_pass(uint64_t pass, int app) { return pass * 128 + (uint64_t)app; }

/* encode.c */
/* Every modality's encoders on the minibatch's rows: each rank its own rows of
 * every encoder, or, split (enc_split), every rank's rows of its encoders. */
void enc_forward_all(clue_model *m, clue_work *w, const clue_minibatch *mb,
                     const clue_pass *p, const clue_comm *comm);
/* Their backward, from dmean, dstd and dshat of every modality. */
void enc_backward_all(clue_model *m, clue_work *w, const clue_minibatch *mb,
                      const clue_pass *p, const clue_comm *comm);
void enc_forward(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows,
                 int64_t n_global, const clue_pass *p, const clue_comm *comm);
void enc_sample(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows,
                const clue_pass *p);
void enc_library_forward(const clue_model *m, clue_work *w, int k,
                         const clue_mod_rows *rows);
double enc_kl(const clue_model *m, clue_work *w, int k, int n, real coef, bool grad);
void enc_backward(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows,
                  int64_t n_global, const clue_pass *p, const clue_comm *comm);
void enc_library_backward(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows);

/* decode.c: runs applications app[0 .. n_apps) of decoder k, placed in
 * w->dec[k].app (rows, n, n_global, id, coef, target); sets each one's nll to the
 * Σ NLL of its rows; with grad, fills each one's dz and dlib scaled by its coef
 * and accumulates parameter gradients. */
void dec_run(clue_model *m, clue_work *w, int k, int n_apps, const clue_pass *p, bool grad,
             const clue_comm *comm);

/* vector helpers (step.c) */
real l2_normalize(const real *x, int n, real *y);
void l2_normalize_backward(const real *y, real norm, const real *dy, int n, real *dx);

#endif
