/* model_internal.h — the step workspace shared by the files of src/model/. */
#ifndef CLUE_MODEL_INTERNAL_H
#define CLUE_MODEL_INTERNAL_H

#include "clue/model.h"

/* Buffers of one decoder, reused by its successive applications in a step
 * (each application runs forward, loss and backward before the next). */
typedef struct dec_work {
  nn_mlp_cache cache;
  nn_lik_terms terms;
  real *z;       /* (B × d) decoder input */
  real *dz;      /* (B × d) gradient of the input */
  real *loc;     /* (B × F) */
  real *dloc;    /* (B × F) */
  real *dh;      /* (B × hidden out) gradient of the stack output */
  real *lib;     /* (B) library sizes */
  real *dlib;    /* (B) */
  int32_t *batch; /* (B) */
  int64_t *trow;  /* (B) target rows */
  int *src;       /* (B) where the row came from (caller's bookkeeping) */
  uint64_t *key;  /* (B) row keys */
} dec_work;

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
};

/* Pass ids of the applications within one forward pass. */
#define APP_ENCODERS 0
#define APP_SELF(k) (1 + (k))
#define APP_CROSS(K, k) (1 + (K) + (k))
#define APP_REAL(K, s, t) (1 + 2 * (K) + (s) * (K) + (t))
#define APP_DISC 127
static inline uint64_t app_pass(uint64_t pass, int app) { return pass * 128 + (uint64_t)app; }

/* encode.c */
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

/* decode.c: one application of decoder k to n rows already placed in w->dec[k]
 * (z, batch, lib, trow, key); returns Σ NLL; with grad, fills dz and dlib scaled
 * by coef and accumulates parameter gradients. */
double dec_apply(clue_model *m, clue_work *w, int k, const clue_csr *target, int n,
                 int64_t n_global, const clue_pass *p, int app, real coef, bool grad,
                 const clue_comm *comm);

/* vector helpers (step.c) */
real l2_normalize(const real *x, int n, real *y);
void l2_normalize_backward(const real *y, real norm, const real *dy, int n, real *dx);

#endif
