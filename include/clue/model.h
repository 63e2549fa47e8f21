/* model.h — the CLUE network: a K×K matrix of element encoders, library-size
 * layers, one decoder per modality with per-(feature, batch) likelihood
 * parameters, and the modality discriminator; the losses of the method note and
 * their gradients for one minibatch.
 *
 * Parameters live in three arenas: `gen` (encoders, library layers, decoders:
 * the generator optimiser), `disc` (discriminator) and `buf` (BatchNorm running
 * statistics, not optimised). Every loss is computed as local sums scaled by
 * global row counts, so gradients summed over ranks equal the one-rank gradients.
 *
 * Tensor names (checkpoints): enc.<src>.<blk>.l<i>.{weight,bias}, .bn<i>.*,
 * enc.<src>.<blk>.{loc,std}.*, lib.<src>.*, dec.<mod>.l<i>.*, dec.<mod>.loc.*,
 * dec.<mod>.{scale_lin,bias,log_theta|log_std} (n_batches × F), dsc.l<i>.*,
 * dsc.pred.*. */
#ifndef CLUE_MODEL_H
#define CLUE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/arena.h"
#include "clue/comm.h"
#include "clue/config.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/likelihood.h"
#include "clue/nn.h"

#define CLUE_K CLUE_MAX_MOD

/* Everything that fixes the network's shape (saved with the model). */
typedef struct clue_model_spec {
  int n_mod;
  char names[CLUE_K][CLUE_NAME_MAX];
  clue_likelihood lik[CLUE_K];
  int enc_in[CLUE_K];   /* R_k: encoder input width */
  int n_feat[CLUE_K];   /* F_k: decoded features */
  int latent_dim;       /* d per block */
  int n_batches;        /* ≥ 1 */
  clue_mlp_config encoder, decoder, discriminator;
  double dropout;
  bool normalize_u;
} clue_model_spec;

typedef struct clue_model {
  clue_model_spec spec;
  clue_arena gen, disc, buf;
  nn_mlp enc[CLUE_K][CLUE_K]; /* [source][block] */
  nn_linear enc_loc[CLUE_K][CLUE_K], enc_std[CLUE_K][CLUE_K];
  nn_linear lib[CLUE_K];      /* F_k → K library sizes */
  nn_mlp dec[CLUE_K];
  nn_linear dec_loc[CLUE_K];
  int dec_scale[CLUE_K], dec_bias[CLUE_K], dec_disp[CLUE_K]; /* gen arena indices */
  nn_mlp dsc;
  nn_linear dsc_pred;
  /* True when gen's gradients of the split output layers (clue_work_split_outputs)
   * are zero outside this rank's rows: a step through such a work then zeroes
   * only this rank's rows. Whatever else writes those rows must clear it. */
  bool split_grad_clean;
  /* True when every gradient of gen is zero (the trainer's update zeroed them
   * as it read them): the next generator step then zeroes none. Whatever else
   * writes them must clear it. */
  bool gen_grad_zero;
  /* Set by a generator step whose decoder wrote gradients of other ranks'
   * columns of the per-(feature, batch) tensors (a likelihood on whole rows of
   * split output layers: their columns split by clue_train_split_grads are then
   * summed by the update); the trainer clears it before the step. */
  bool split_cols_dirty;
} clue_model;

/* Builds the network and initialises it (PyTorch defaults) from seed. */
int clue_model_new(const clue_model_spec *spec, uint64_t seed, clue_model **out,
                   clue_err *err);
void clue_model_free(clue_model *m);

/* Loss weights and schedule state for a step. */
typedef struct clue_loss_weights {
  double data, kl, align, cross, real_cross, cos;
  double mod_weight[CLUE_K]; /* normalised to mean 1 */
} clue_loss_weights;

/* Fills w from the config (modality weights normalised to mean 1). */
void clue_loss_weights_from_config(const clue_config *cfg, clue_loss_weights *w);

/* The rows of one modality that this rank holds in a minibatch. */
typedef struct clue_mod_rows {
  int n;                  /* local rows */
  int *pos;               /* (n) position in the global minibatch, in [0, B) */
  real *enc_in;           /* (n × R_k) encoder input, filled by the caller */
  const clue_csr *target; /* decoder targets of the modality (rows indexed by trow) */
  int64_t *trow;          /* (n) row of each local row in target */
  int32_t *batch;         /* (n) batch of the row's cell */
} clue_mod_rows;

/* A minibatch as seen by one rank. Capacity B rows per modality. */
typedef struct clue_minibatch {
  int B;                          /* global rows */
  int64_t n_obs[CLUE_K];          /* global rows where modality k is observed */
  int64_t n_pair[CLUE_K][CLUE_K]; /* global rows where both are observed */
  clue_mod_rows mod[CLUE_K];
  int n_joint;                    /* local positions whose joint sample is computed here */
  int *joint_pos;                 /* (n_joint) */
  int *joint_row;                 /* (n_joint × K) row in mod[k] when observed, else −1 */
  int32_t *joint_batch;           /* (n_joint) */
} clue_minibatch;

/* Allocates a minibatch for K modalities of encoder widths enc_in, capacity B. */
int clue_minibatch_new(int n_mod, const int *enc_in, int B, clue_minibatch **out,
                       clue_err *err);
void clue_minibatch_free(clue_minibatch *mb);

/* Loss values of a step (global means, identical on every rank). */
typedef struct clue_losses {
  double nll[CLUE_K];         /* self reconstruction NLL per modality (per feature) */
  double kl[CLUE_K];          /* KL per modality (divided by F_k) */
  double elbo[CLUE_K];        /* nll + λ_kl·kl */
  double joint_cross[CLUE_K]; /* joint cross NLL per modality */
  double real_cross[CLUE_K];  /* real cross NLL per target modality */
  double cos[CLUE_K];         /* 1 − mean cosine per modality */
  double joint_cross_sum, real_cross_sum, cos_sum;
  double dsc;                 /* discriminator cross-entropy (mean over K·B rows) */
  double gen;                 /* generator loss */
} clue_losses;

/* Randomness and schedule of one pass. */
typedef struct clue_pass {
  uint64_t seed;
  uint64_t pass;      /* unique per forward pass */
  double disc_noise;  /* std of the noise added to the discriminator input */
  bool train;         /* train mode (BatchNorm batch stats, dropout) */
} clue_pass;

typedef struct clue_work clue_work;

/* Buffers for steps with up to B rows per modality. */
int clue_work_new(const clue_model *m, int B, clue_work **out, clue_err *err);
void clue_work_free(clue_work *w);

/* Collective. When the ranks of comm share one node (a node-shared window can
 * be made), splits every decoder's output layer (stack output → F features, the
 * bulk of a step's flops) by features over the ranks: each rank then runs it on
 * every rank's rows for its slice of features, so its GEMMs have all the rows
 * of the step and read and write a 1/P share of the weights and their
 * gradients; rows cross between ranks through the window. rows_global bounds
 * the rows of one application of a decoder over all ranks (the global batch),
 * and ⌈rows_global / P⌉ those on one rank (a run beyond either gives NaN losses).
 * The results are those of the unsplit layer but for the order of
 * floating-point sums; the weight gradient of the layer is written only in this
 * rank's rows of it (the ranks' sum is the whole gradient; with
 * clue_work_share_tiles other ranks may write some of those rows). On one rank or
 * across nodes it does nothing. Afterwards clue_work_free is collective. */
int clue_work_split_outputs(clue_work *w, const clue_model *m, const clue_comm *comm,
                            int rows_global, clue_err *err);

/* Collective. When the ranks of comm share one node (a node-shared window can
 * be made) and their number P divides K·K (K modalities), gives each encoder
 * q(z_j | x_k) to one rank (encoder e = k·K + j to rank e mod P): it runs there
 * alone, on every rank's rows of modality k, so that its BatchNorm statistics
 * need no collective, its GEMMs have all the rows, and its gradient is whole on
 * its rank (clue_train_split_grads declares it so: not summed, updated there).
 * The rows' inputs, the encoders' outputs and their gradients cross through
 * the window: two barriers in a forward, one in a backward. rows_global bounds
 * the rows of a modality over all ranks and must not exceed the work's B
 * (else nothing is split), ⌈rows_global / P⌉ those on one rank (a pass beyond
 * either gives NaN losses). The results are those of encoders run on every rank
 * but for the order of floating-point sums (none when each rank holds the next
 * block of the minibatch's rows, as in clue train). Otherwise it does nothing.
 * Afterwards clue_work_free is collective. */
int clue_work_split_encoders(clue_work *w, const clue_model *m, const clue_comm *comm,
                             int rows_global, clue_err *err);

/* The hybrid layout of several nodes: after clue_work_split_outputs and
 * _split_encoders on the communicator of this rank's node (every node with the
 * same number of ranks), the steps run on the communicator of all `nodes`
 * nodes' ranks; each node splits the layers over its ranks for its own rows,
 * and `across` (rank r of every node, one per node; not owned, must outlive w)
 * carries the BatchNorm sums of the encoders a rank runs for its node. The
 * gradients of a slice are summed over `across` by clue_gradsum (set up alike). */
void clue_work_set_nodes(clue_work *w, int nodes, const clue_comm *across);

/* The rank that runs encoder q(z_j | x_k) (clue_work_split_encoders), or −1
 * when every rank runs every encoder. */
int clue_work_encoder_owner(const clue_work *w, int k, int j);

/* First feature of rank q's slice of an output layer of F features split over
 * P ranks: [clue_out_slice_begin(F, P, q), clue_out_slice_begin(F, P, q + 1)),
 * whole blocks of 16 features (the last slices may be empty when F < 16·P). */
static inline int clue_out_slice_begin(int64_t F, int P, int q) {
  int64_t blocks = (F + 15) / 16, b = blocks * q / P * 16;
  return (int)(b < F ? b : F);
}

/* Whether clue_work_split_outputs split the output layers; over how many ranks
 * (0: not split). */
bool clue_work_outputs_split(const clue_work *w);
int clue_work_split_ranks(const clue_work *w);

/* Whether decoder k's split output layer also runs its likelihood on this
 * rank's features of every rank's rows, so that only the rows' sparse targets
 * cross between ranks (and, for NB, whose softmax spans every feature, two
 * numbers per row); otherwise the layer's values and gradients of each rank's
 * rows cross. A run whose targets do not fit in the node-shared slots (dense
 * targets) goes the other way, all ranks alike. */
bool clue_work_output_local(const clue_work *w, int k);

/* Lets decoder k's likelihood run locally where the split allows (on, the
 * default) or never (off: for tests and benchmarks). Call it alike on every
 * rank, between steps. */
void clue_work_set_output_local(clue_work *w, int k, bool on);

/* Lets the ranks of a split work share the weight-gradient GEMMs of the split
 * output layers: that GEMM runs in fixed tiles of 512 features (the same tiles,
 * so the same bits, whichever rank runs one); a rank done with its own tiles
 * takes tiles of a rank still busy and writes them into that rank's gradients.
 * g_of_rank[q]: where rank q's copy of m->gen's gradients lies in this process
 * (node-shared memory, such as clue_gradsum_attach gives); NULL: every rank runs
 * its own tiles only. cols_split (with g_of_rank only): the per-(feature,
 * batch) tensors are split by columns over the ranks' updates
 * (clue_train_split_grads); a decoder whose likelihood runs on whole rows then
 * sets clue_model.split_cols_dirty. Call it alike on every rank, between steps. */
int clue_work_share_tiles(clue_work *w, real *const *g_of_rank, bool cols_split,
                          clue_err *err);

/* For tests: tiles of `width` features (> 0; set alike on every rank: the
 * width changes the bits of the gradients), and this rank sleeping `delay_us`
 * microseconds before taking each of its own tiles, so that the other ranks
 * take some; and how many tiles of other ranks this rank has run since the work
 * was made. */
void clue_work_set_tiles(clue_work *w, int width, int delay_us);
int64_t clue_work_tiles_taken(const clue_work *w);

/* Collective. Discriminator step: encoders forward, discriminator loss × λ_align;
 * gradients in m->disc.g (local sums; the caller reduces and steps). Fills
 * losses->dsc. */
int clue_model_d_step(clue_model *m, clue_work *w, const clue_minibatch *mb,
                      const clue_loss_weights *lw, const clue_pass *p,
                      const clue_comm *comm, clue_losses *losses, clue_err *err);

/* Collective. Generator loss and, when p->train, its gradients in m->gen.g
 * (local sums). In eval mode (validation) only the losses are computed. */
int clue_model_g_step(clue_model *m, clue_work *w, const clue_minibatch *mb,
                      const clue_loss_weights *lw, const clue_pass *p,
                      const clue_comm *comm, clue_losses *losses, clue_err *err);

/* Not collective. Embedding of n rows of modality k (eval mode): the K·d
 * posterior means, out (n × K·d). x (n × R_k) is the encoder input. Works in
 * chunks of the work's capacity. */
int clue_model_embed(const clue_model *m, clue_work *w, int k, const real *x, int64_t n,
                     float *out, clue_err *err);

/* Not collective. The expected profile of modality k that the decoder gives
 * for n rows of block-k latent values z (n × d) and batch codes (eval mode:
 * BatchNorm running statistics, no dropout), out (n × F_k): NB the expected
 * share of each feature in the cell's counts (the softmax; rows sum to 1),
 * Bernoulli the probability of a nonzero value, Normal the mean (in the
 * decoder's standardised scale). Fails on a batch code outside the model's.
 * Works in chunks of the work's capacity; w must not be split over ranks. */
int clue_model_expected(const clue_model *m, clue_work *w, int k, const real *z,
                        const int32_t *batch, int64_t n, float *out, clue_err *err);

/* E[log1p(c·X)] for X negative binomial with mean mu ≥ 0 and dispersion
 * theta > 0 (variance mu + mu²/theta), c > 0: the sum over X = 0, 1, … of the
 * probabilities (found by their ratios) times log1p(c·X), until they add up to
 * 1 − 1e-9, or over 20,000 terms with the rest of the probability counted at
 * the last term (or mu, if larger). */
double clue_nb_log1p_mean(double mu, double theta, double c);

#endif
