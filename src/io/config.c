/* config.c — the run configuration: defaults, YAML loading (libyaml), `--set`
 * overrides, validation, YAML writing, comparison and broadcast.
 *
 * Loading takes two passes. First libyaml's event parser builds a small tree of
 * nodes (scalars, mappings, lists) that remember their line. Aliases, tags, a
 * second document and nesting deeper than CFG_MAX_DEPTH are refused while
 * building, so no input can make the tree deep or the walk long. Then the tree
 * is walked against the schema: one table (cfg_keys) lists every key with its
 * type, its place in the struct, its allowed range and a one-line meaning, and a
 * second table (mod_keys) does the same for the keys of one modality. The same
 * tables drive writing, comparing and range checks, so no key can be read but
 * not written. `--set a.b=v` parses v as YAML, wraps it in mappings a → b → v
 * and takes the same walk. Every change is made on a copy that replaces the
 * caller's config only when the whole text was accepted. */
#include "clue/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define CFG_MAX_DEPTH 32        /* nesting levels accepted in a document */
#define CFG_MAX_NODES 100000    /* YAML nodes accepted in a document */
#define CFG_MAX_FILE (1 << 20)  /* bytes accepted in a config file */
#define CFG_MAX_KEY 256         /* characters of a full key path */
#define CFG_MAX_PARTS 16        /* components of a --set key path */

_Static_assert(sizeof(clue_likelihood) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(clue_cells) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(clue_on_nan) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(clue_calibration) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(clue_pseudo_method) == sizeof(int), "enums are stored as int");

/* ======================================================================== */
/* Enum names                                                               */
/* ======================================================================== */

static const char *const lik_names[] = {"nb", "bernoulli", "normal", NULL};
static const char *const prep_names[] = {"pca", "lsi", "none", NULL};
static const char *const norm_names[] = {"log1p", "clr", "none", NULL};
static const char *const opt_names[] = {"rmsprop", "adam", NULL};
static const char *const cells_names[] = {"all", "train", "test", NULL};
static const char *const on_nan_names[] = {"stop", "skip", NULL};
static const char *const calib_names[] = {"all", "validation", "off", NULL};
static const char *const pseudo_names[] = {"off", "mnn", "bridge", NULL};

static int names_count(const char *const *names) {
  int n = 0;
  while (names[n]) n++;
  return n;
}

static const char *enum_name(const char *const *names, int v) {
  return (v >= 0 && v < names_count(names)) ? names[v] : "?";
}

const char *clue_likelihood_name(clue_likelihood v) { return enum_name(lik_names, (int)v); }
const char *clue_preprocess_name(clue_preprocess v) { return enum_name(prep_names, (int)v); }
const char *clue_normalize_name(clue_normalize v) { return enum_name(norm_names, (int)v); }
const char *clue_optimizer_name(clue_optimizer v) { return enum_name(opt_names, (int)v); }
const char *clue_cells_name(clue_cells v) { return enum_name(cells_names, (int)v); }
const char *clue_on_nan_name(clue_on_nan v) { return enum_name(on_nan_names, (int)v); }
const char *clue_calibration_name(clue_calibration v) { return enum_name(calib_names, (int)v); }
const char *clue_pseudo_method_name(clue_pseudo_method v) {
  return enum_name(pseudo_names, (int)v);
}

/* ======================================================================== */
/* The schema                                                               */
/* ======================================================================== */

typedef enum {
  K_INT,      /* int, optionally "auto" (CLUE_AUTO) */
  K_I64,      /* int64_t */
  K_U64,      /* uint64_t */
  K_REAL,     /* double, finite */
  K_BOOL,     /* bool: true | false */
  K_NAME,     /* char[size]: free text without control characters */
  K_PATH,     /* char[size]: a path, resolved against the base folder */
  K_ENUM,     /* int: index into names */
  K_FEATURES, /* int: auto (CLUE_AUTO) | all (0) | N ≥ 1 */
  K_MODS      /* data.modalities: handled by walk_modalities */
} key_type;

enum { F_AUTO = 1, F_LO_OPEN = 2, F_HI_OPEN = 4 };

typedef struct key_def {
  const char *path;         /* "model.encoder.width"; for mod_keys just "file" */
  key_type type;
  size_t off;               /* offset in clue_config or clue_modality_config */
  size_t size;              /* bytes of the field */
  double lo, hi;            /* allowed range of numbers (hi = HUGE_VAL: none) */
  int flags;                /* F_* */
  const char *const *names; /* K_ENUM: allowed values, NULL-terminated */
  const char *help;         /* one line, written as a comment by to_yaml */
} key_def;

#define CF(f) offsetof(clue_config, f), sizeof(((clue_config *)0)->f)
#define MF(f) offsetof(clue_modality_config, f), sizeof(((clue_modality_config *)0)->f)
#define NONE 0, 0
#define BIG HUGE_VAL
#define EPOCHS 1e6

static const key_def cfg_keys[] = {
    {"version", K_INT, CF(version), 1, 1, 0, NULL, "config schema version"},
    {"data.modalities", K_MODS, 0, 0, NONE, 0, NULL, "one entry per modality"},
    {"data.file", K_PATH, CF(h5mu_file), NONE, 0, NULL,
     "one .h5mu with every modality (instead of per-modality files)"},
    {"data.batch_key", K_NAME, CF(batch_key), NONE, 0, NULL, "obs column of batches (empty: none)"},
    {"data.split_key", K_NAME, CF(split_key), NONE, 0, NULL,
     "obs column splitting train/test (empty: all cells train)"},
    {"data.test_value", K_NAME, CF(test_value), NONE, 0, NULL,
     "cells whose split_key equals this are held out"},
    {"data.allow_unpaired", K_BOOL, CF(allow_unpaired), NONE, 0, NULL,
     "accept modalities that share no cell"},
    {"model.latent_dim", K_INT, CF(latent_dim), 1, 4096, 0, NULL, "d, latent dimensions per block"},
    {"model.encoder.depth", K_INT, CF(encoder.depth), 1, 16, 0, NULL, "hidden layers"},
    {"model.encoder.width", K_INT, CF(encoder.width), 1, 65536, 0, NULL, "units per hidden layer"},
    {"model.decoder.depth", K_INT, CF(decoder.depth), 1, 16, 0, NULL, "hidden layers"},
    {"model.decoder.width", K_INT, CF(decoder.width), 1, 65536, 0, NULL, "units per hidden layer"},
    {"model.discriminator.depth", K_INT, CF(discriminator.depth), 1, 16, 0, NULL, "hidden layers"},
    {"model.discriminator.width", K_INT, CF(discriminator.width), 1, 65536, 0, NULL,
     "units per hidden layer"},
    {"model.dropout", K_REAL, CF(dropout), 0, 1, F_HI_OPEN, NULL, "dropout probability"},
    {"model.normalize_u", K_BOOL, CF(normalize_u), NONE, 0, NULL,
     "L2-normalise sampled embeddings"},
    {"loss.data", K_REAL, CF(lam_data), 0, BIG, 0, NULL, "weight of the self ELBO terms"},
    {"loss.kl", K_REAL, CF(lam_kl), 0, BIG, 0, NULL, "weight of KL inside the ELBO"},
    {"loss.align", K_REAL, CF(lam_align), 0, BIG, 0, NULL, "weight of the adversarial term"},
    {"loss.cross", K_REAL, CF(lam_cross), 0, BIG, 0, NULL, "weight of the joint cross term"},
    {"loss.real_cross", K_REAL, CF(lam_real_cross), 0, BIG, 0, NULL,
     "weight of pairwise cross terms"},
    {"loss.cos", K_REAL, CF(lam_cos), 0, BIG, 0, NULL, "weight of the cosine alignment"},
    {"train.batch_size", K_INT, CF(batch_size), 1, 1 << 20, 0, NULL, "cells per minibatch"},
    {"train.lr", K_REAL, CF(lr), 0, BIG, F_LO_OPEN, NULL, "learning rate"},
    {"train.lr_warmup", K_I64, CF(lr_warmup), 0, BIG, 0, NULL,
     "steps over which the learning rate grows linearly to train.lr (0: none)"},
    {"train.optimizer", K_ENUM, CF(optimizer), NONE, 0, opt_names, "optimiser"},
    {"train.max_epochs", K_INT, CF(max_epochs), 1, EPOCHS, F_AUTO, NULL,
     "auto: max(ceil(72/lr/bpe), 72)"},
    {"train.max_steps", K_I64, CF(max_steps), 0, BIG, 0, NULL,
     "stop after this many steps (0: no limit)"},
    {"train.align_burnin", K_INT, CF(align_burnin), 0, EPOCHS, F_AUTO, NULL,
     "auto: max(ceil(12/lr/bpe), 12)"},
    {"train.patience", K_INT, CF(patience), 1, EPOCHS, F_AUTO, NULL,
     "auto: max(ceil(9/lr/bpe), 9)"},
    {"train.reduce_lr_patience", K_INT, CF(reduce_lr_patience), 1, EPOCHS, F_AUTO, NULL,
     "auto: max(ceil(3/lr/bpe), 3)"},
    {"train.val_split", K_REAL, CF(val_split), 0, 1, F_HI_OPEN, NULL,
     "fraction of cells held out for validation"},
    {"train.paired_fraction", K_REAL, CF(paired_fraction), 0, 1, 0, NULL,
     "share of each minibatch from cells in 2+ modalities, when others exist (0: off)"},
    {"train.pseudo.method", K_ENUM, CF(pseudo.method), NONE, 0, pseudo_names,
     "partners for cells missing a modality: off, mnn (mutual nearest neighbours), bridge"},
    {"train.pseudo.k", K_INT, CF(pseudo.k), 1, 1000, 0, NULL, "neighbours searched"},
    {"train.pseudo.weight", K_REAL, CF(pseudo.weight), 0, 1, 0, NULL,
     "chance a cell is paired with its partner in a minibatch (after the ramp)"},
    {"train.pseudo.start", K_I64, CF(pseudo.start), 0, BIG, 0, NULL, "step of the first pairing"},
    {"train.pseudo.every", K_INT, CF(pseudo.every), 1, INT32_MAX, F_AUTO, NULL,
     "steps between pairings; auto: max(200, ceil(steps per epoch / 4))"},
    {"train.pseudo.ramp", K_I64, CF(pseudo.ramp), 0, BIG, 0, NULL,
     "steps over which the chance grows to weight"},
    {"train.pseudo.max_cells", K_I64, CF(pseudo.max_cells), 1, BIG, 0, NULL,
     "cells searched per set and pairing (a random draw when more)"},
    {"train.seed", K_U64, CF(seed), 0, BIG, 0, NULL, "random seed"},
    {"train.checkpoint_every", K_INT, CF(checkpoint_every), 1, EPOCHS, 0, NULL,
     "epochs between checkpoints"},
    {"train.checkpoint_seconds", K_REAL, CF(checkpoint_seconds), 0, BIG, 0, NULL,
     "minimum seconds between periodic checkpoints (0: every checkpoint_every epochs)"},
    {"train.early_stopping", K_BOOL, CF(early_stopping), NONE, 0, NULL,
     "stop when validation loss stalls"},
    {"train.on_nan", K_ENUM, CF(on_nan), NONE, 0, on_nan_names,
     "NaN/Inf loss or gradient: stop, or skip the step and halve the learning rate"},
    {"train.reference_cells", K_I64, CF(reference_cells), 0, BIG, 0, NULL,
     "cells measured in 2+ modalities kept in the checkpoint for clue predict (0: none)"},
    {"train.calibration", K_ENUM, CF(calibration), NONE, 0, calib_names,
     "cells measured in both modalities that calibrate clue predict: all, validation, off"},
    {"embed.cells", K_ENUM, CF(embed_cells), NONE, 0, cells_names, "cells to embed"},
    {"output.dir", K_PATH, CF(out_dir), NONE, 0, NULL, "run folder"},
};

static const key_def mod_keys[] = {
    {"file", K_PATH, MF(file), NONE, 0, NULL, ".h5ad file (empty with data.file)"},
    {"layer", K_NAME, MF(layer), NONE, 0, NULL, "raw counts: X or a layer name"},
    {"likelihood", K_ENUM, MF(likelihood), NONE, 0, lik_names, "decoder distribution"},
    {"preprocess", K_ENUM, MF(preprocess), NONE, 0, prep_names, "encoder input"},
    {"normalize", K_ENUM, MF(normalize), NONE, 0, norm_names, "per-cell transform before pca"},
    {"features", K_FEATURES, MF(features), 1, INT32_MAX, F_AUTO, NULL,
     "decoded features: auto, all or top N"},
    {"n_components", K_INT, MF(n_components), 1, 10000, 0, NULL, "encoder input width"},
    {"weight", K_REAL, MF(weight), 0, BIG, 0, NULL, "weight of this modality's ELBO"},
};

#define N_CFG_KEYS (sizeof cfg_keys / sizeof cfg_keys[0])
#define N_MOD_KEYS (sizeof mod_keys / sizeof mod_keys[0])

/* ======================================================================== */
/* Defaults, names of modalities, lookup                                    */
/* ======================================================================== */

/* Copies s into a fixed buffer, zero-filling the rest (so configs compare and
 * broadcast as bytes). */
static void set_text(char *dst, size_t cap, const char *s) {
  memset(dst, 0, cap);
  size_t n = strnlen(s, cap - 1);
  memcpy(dst, s, n);
}

static void mod_defaults(clue_modality_config *m, const char *name) {
  memset(m, 0, sizeof *m);
  set_text(m->name, sizeof m->name, name);
  set_text(m->layer, sizeof m->layer, "X");
  m->likelihood = CLUE_LIK_NB;
  m->preprocess = CLUE_PREP_PCA;
  m->normalize = CLUE_NORM_LOG1P;
  m->features = CLUE_AUTO;
  m->n_components = 100;
  m->weight = 1.0;
}

void clue_config_defaults(clue_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->version = 1;
  set_text(cfg->test_value, sizeof cfg->test_value, "test");
  cfg->latent_dim = 50;
  cfg->encoder = (clue_mlp_config){2, 256};
  cfg->decoder = (clue_mlp_config){2, 256};
  cfg->discriminator = (clue_mlp_config){2, 256};
  cfg->dropout = 0.2;
  cfg->normalize_u = true;
  cfg->lam_data = 1.0;
  cfg->lam_kl = 1.0;
  cfg->lam_align = 0.02;
  cfg->lam_cross = 0.02;
  cfg->lam_real_cross = 0.0;
  cfg->lam_cos = 0.02;
  cfg->batch_size = 128;
  cfg->lr = 2e-3;
  cfg->optimizer = CLUE_OPT_RMSPROP;
  cfg->max_epochs = CLUE_AUTO;
  cfg->max_steps = 0;
  cfg->lr_warmup = 0;
  cfg->align_burnin = CLUE_AUTO;
  cfg->patience = CLUE_AUTO;
  cfg->reduce_lr_patience = CLUE_AUTO;
  cfg->val_split = 0.1;
  cfg->paired_fraction = 0.5;
  cfg->pseudo = (clue_pseudo_config){.method = CLUE_PSEUDO_MNN, .k = 5, .weight = 0.5,
                                     .start = 200, .every = CLUE_AUTO, .ramp = 200,
                                     .max_cells = 50000};
  cfg->seed = 0;
  cfg->checkpoint_every = 1;
  cfg->checkpoint_seconds = 60;
  cfg->early_stopping = true;
  cfg->on_nan = CLUE_NAN_STOP;
  cfg->calibration = CLUE_CALIB_VALIDATION;
  cfg->reference_cells = 10000;
  cfg->embed_cells = CLUE_CELLS_ALL;
  set_text(cfg->out_dir, sizeof cfg->out_dir, "runs/clue");
}

int clue_config_find_modality(const clue_config *cfg, const char *name) {
  for (int i = 0; i < cfg->n_mod && i < CLUE_MAX_MOD; i++)
    if (strncmp(cfg->mod[i].name, name, CLUE_NAME_MAX) == 0) return i;
  return -1;
}

/* True for a usable modality name: 1..CLUE_NAME_MAX-1 of [A-Za-z0-9_-]. */
static bool mod_name_ok(const char *s, size_t len) {
  if (len == 0 || len >= CLUE_NAME_MAX) return false;
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return false;
  return true;
}

static const key_def *find_key(const key_def *table, size_t n, const char *path) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(table[i].path, path) == 0) return &table[i];
  return NULL;
}

/* True when some key of cfg_keys lies under `path` (e.g. "model.encoder"). */
static bool is_section(const char *path) {
  size_t len = strlen(path);
  for (size_t i = 0; i < N_CFG_KEYS; i++)
    if (strncmp(cfg_keys[i].path, path, len) == 0 && cfg_keys[i].path[len] == '.') return true;
  return false;
}

/* ======================================================================== */
/* The YAML tree                                                            */
/* ======================================================================== */

enum { NODE_SCALAR, NODE_MAP, NODE_SEQ };

typedef struct cfg_node {
  int kind;               /* NODE_* */
  int line;               /* 1-based; 0 for nodes made from a --set key */
  bool plain;             /* scalar written without quotes (a number, bool, null...) */
  char *text;             /* scalar text, NUL-terminated; NULL for collections */
  size_t len;             /* bytes of text (a quoted "\0" makes len > strlen) */
  int n, cap;             /* children */
  struct cfg_node **kid;  /* (n): mapping = key, value, key, value...; list = items */
} cfg_node;

static void node_free(cfg_node *n) {
  if (!n) return;
  for (int i = 0; i < n->n; i++) node_free(n->kid[i]);
  free(n->kid);
  free(n->text);
  free(n);
}

static cfg_node *node_new(int kind, int line, clue_err *err) {
  cfg_node *n = clue_calloc(1, sizeof *n, err);
  if (n) {
    n->kind = kind;
    n->line = line;
  }
  return n;
}

static cfg_node *node_scalar(const char *text, size_t len, bool plain, int line,
                             clue_err *err) {
  cfg_node *n = node_new(NODE_SCALAR, line, err);
  if (!n) return NULL;
  n->text = clue_malloc(len + 1, err);
  if (!n->text) {
    free(n);
    return NULL;
  }
  memcpy(n->text, text, len);
  n->text[len] = '\0';
  n->len = len;
  n->plain = plain;
  return n;
}

/* Appends kid to parent; on failure kid is still the caller's. */
static int node_add(cfg_node *parent, cfg_node *kid, clue_err *err) {
  if (parent->n == parent->cap) {
    int cap = parent->cap ? 2 * parent->cap : 8;
    cfg_node **k = realloc(parent->kid, (size_t)cap * sizeof *k);
    if (!k) return clue_fail(err, CLUE_ENOMEM, "out of memory reading the config");
    parent->kid = k;
    parent->cap = cap;
  }
  parent->kid[parent->n++] = kid;
  return CLUE_OK;
}

static const char *node_kind_name(const cfg_node *n) {
  if (n->kind == NODE_MAP) return "a mapping";
  if (n->kind == NODE_SEQ) return "a list";
  return "a single value";
}

/* True for YAML null: an empty plain value, ~ or null. */
static bool node_is_null(const cfg_node *n) {
  if (!n) return true;
  if (n->kind != NODE_SCALAR || !n->plain) return false;
  const char *t = n->text;
  return n->len == 0 || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") ||
         !strcmp(t, "NULL");
}

/* ---- building the tree from libyaml events ---- */

typedef struct builder {
  const char *what;         /* the text's name for messages; NULL for a --set value */
  const unsigned char *src; /* the text, to place reader errors */
  size_t src_len;
  cfg_node *root;
  cfg_node *stack[CFG_MAX_DEPTH]; /* open collections */
  int depth;
  long n_nodes;
  int n_docs;
  clue_err *err;
} builder;

static int build_fail(const builder *b, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int build_fail(const builder *b, size_t line, size_t col, const char *fmt, ...) {
  char msg[CLUE_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (b->what)
    return clue_fail(b->err, CLUE_ECONFIG, "%s:%zu:%zu: %s", b->what, line, col, msg);
  return clue_fail(b->err, CLUE_ECONFIG, "value, column %zu: %s", col, msg);
}

/* Turns libyaml's error into file:line:column: problem (context). */
static int build_syntax_error(const builder *b, const yaml_parser_t *p) {
  if (p->error == YAML_MEMORY_ERROR)
    return clue_fail(b->err, CLUE_ENOMEM, "out of memory parsing the config");
  const char *problem = p->problem ? p->problem : "malformed YAML";
  size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
  if (p->error == YAML_READER_ERROR) {
    line = 1;
    col = 1;
    for (size_t i = 0; i < p->problem_offset && i < b->src_len; i++) {
      if (b->src[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    if (p->problem_value != -1)
      return build_fail(b, line, col, "YAML syntax error: %s (byte 0x%02x); the file must be UTF-8 text",
                        problem, (unsigned)p->problem_value & 0xffu);
    return build_fail(b, line, col, "YAML syntax error: %s", problem);
  }
  size_t at = p->problem_mark.index;
  const char *hint = (at < b->src_len && b->src[at] == '\t')
                         ? "; a tab: YAML indents with spaces only" : "";
  if (p->context)
    return build_fail(b, line, col, "YAML syntax error: %s (%s at line %zu)%s", problem,
                      p->context, p->context_mark.line + 1, hint);
  return build_fail(b, line, col, "YAML syntax error: %s%s", problem, hint);
}

/* Adds a new node under the innermost open collection (or as the root). */
static int build_attach(builder *b, cfg_node *node, size_t line, size_t col) {
  if (b->depth == 0) {
    b->root = node;
    return CLUE_OK;
  }
  cfg_node *parent = b->stack[b->depth - 1];
  if (parent->kind == NODE_MAP && parent->n % 2 == 0 && node->kind != NODE_SCALAR) {
    const char *kind = node_kind_name(node);
    node_free(node);
    return build_fail(b, line, col, "a key must be a single value, not %s", kind);
  }
  int rc = node_add(parent, node, b->err);
  if (rc) node_free(node);
  return rc;
}

/* Handles a scalar or the start of a collection. */
static int build_node(builder *b, const yaml_event_t *ev, int kind, const yaml_char_t *tag) {
  size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;
  if (tag)
    return build_fail(b, line, col,
                      "YAML tags (%.60s) are not supported; quote a value to make it text",
                      (const char *)tag);
  if (++b->n_nodes > CFG_MAX_NODES)
    return build_fail(b, line, col, "more than %d YAML values; this is not a clue config",
                      CFG_MAX_NODES);
  if (kind != NODE_SCALAR && b->depth == CFG_MAX_DEPTH)
    return build_fail(b, line, col, "nested deeper than %d levels", CFG_MAX_DEPTH);
  cfg_node *node;
  if (kind == NODE_SCALAR)
    node = node_scalar((const char *)ev->data.scalar.value, ev->data.scalar.length,
                       ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, (int)line, b->err);
  else
    node = node_new(kind, (int)line, b->err);
  if (!node) return CLUE_ENOMEM;
  int rc = build_attach(b, node, line, col);
  if (rc == CLUE_OK && kind != NODE_SCALAR) b->stack[b->depth++] = node;
  return rc;
}

static int build_event(builder *b, const yaml_event_t *ev) {
  size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;
  switch (ev->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (++b->n_docs > 1)
      return build_fail(b, line, col, "a second YAML document ('---'); only one is allowed");
    return CLUE_OK;
  case YAML_ALIAS_EVENT:
    return build_fail(b, line, col,
                      "YAML aliases (*%.40s) are not supported; write the value out",
                      (const char *)ev->data.alias.anchor);
  case YAML_SCALAR_EVENT:
    return build_node(b, ev, NODE_SCALAR, ev->data.scalar.tag);
  case YAML_SEQUENCE_START_EVENT:
    return build_node(b, ev, NODE_SEQ, ev->data.sequence_start.tag);
  case YAML_MAPPING_START_EVENT:
    return build_node(b, ev, NODE_MAP, ev->data.mapping_start.tag);
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    if (b->depth > 0) b->depth--;
    return CLUE_OK;
  default:
    return CLUE_OK;
  }
}

/* Parses len bytes of YAML into a tree (*root = NULL for an empty document). */
static int yaml_to_tree(const char *text, size_t len, const char *what, cfg_node **root,
                        clue_err *err) {
  *root = NULL;
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return clue_fail(err, CLUE_ENOMEM, "out of memory starting the YAML parser");
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  builder b = {.what = what, .src = (const unsigned char *)text, .src_len = len, .err = err};
  int rc = CLUE_OK;
  bool done = false;
  while (rc == CLUE_OK && !done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      rc = build_syntax_error(&b, &p);
      break;
    }
    done = ev.type == YAML_STREAM_END_EVENT;
    rc = build_event(&b, &ev);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  if (rc) {
    node_free(b.root);
    return rc;
  }
  *root = b.root;
  return CLUE_OK;
}

/* ======================================================================== */
/* Paths                                                                    */
/* ======================================================================== */

/* Removes empty and "." components in place ("a/./b//c/" → "a/b/c"). ".." is
 * kept: folding it would be wrong across symbolic links. */
static void path_clean(char *p) {
  bool abs = p[0] == '/';
  char *out = p;
  const char *in = p;
  if (abs) *out++ = '/';
  while (*in) {
    while (*in == '/') in++;
    const char *end = strchr(in, '/');
    size_t n = end ? (size_t)(end - in) : strlen(in);
    if (n == 0) break;
    if (!(n == 1 && in[0] == '.')) {
      if (out > p && out[-1] != '/') *out++ = '/';
      memmove(out, in, n);
      out += n;
    }
    in += n;
  }
  if (out == p) *out++ = '.';
  *out = '\0';
}

/* out = rel when absolute or when base is empty, else base/rel, cleaned. */
static int path_join(char *out, size_t cap, const char *base, const char *rel) {
  if (rel[0] == '/' || base[0] == '\0' || rel[0] == '\0') {
    if (strlen(rel) >= cap) return CLUE_EINVAL;
    memset(out, 0, cap);
    memcpy(out, rel, strlen(rel));
    return CLUE_OK;
  }
  char buf[2 * CLUE_PATH_MAX + 2];
  snprintf(buf, sizeof buf, "%s/%s", base, rel);
  path_clean(buf);
  if (strlen(buf) >= cap) return CLUE_EINVAL;
  set_text(out, cap, buf);
  return CLUE_OK;
}

/* The absolute, cleaned form of a folder (relative to the current directory). */
static int path_absolute(const char *dir, char *out, size_t cap, clue_err *err) {
  char cwd[CLUE_PATH_MAX];
  if (dir[0] == '/') {
    cwd[0] = '\0';
  } else if (!getcwd(cwd, sizeof cwd)) {
    return clue_fail(err, CLUE_EIO, "cannot read the current folder: %s", strerror(errno));
  }
  char buf[2 * CLUE_PATH_MAX + 2];
  snprintf(buf, sizeof buf, "%s/%s", cwd, dir);
  path_clean(buf);
  if (strlen(buf) >= cap) return clue_fail(err, CLUE_EINVAL, "path too long: %s", buf);
  set_text(out, cap, buf);
  return CLUE_OK;
}

/* The absolute folder holding the file `path`. */
static int path_folder_of(const char *path, char *out, size_t cap, clue_err *err) {
  char dir[CLUE_PATH_MAX];
  if (strlen(path) >= sizeof dir) return clue_fail(err, CLUE_EINVAL, "path too long: %s", path);
  set_text(dir, sizeof dir, path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    set_text(dir, sizeof dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  return path_absolute(dir, out, cap, err);
}

/* ======================================================================== */
/* Scalars                                                                  */
/* ======================================================================== */

/* A scalar as shown in messages: at most 40 bytes, quotes kept, controls as '?'. */
static void show_value(const cfg_node *v, char *buf, size_t cap) {
  size_t o = 0;
  const char *q = v->plain ? "" : "\"";
  o += (size_t)snprintf(buf, cap, "%s", q);
  for (size_t i = 0; i < v->len && i < 40 && o + 8 < cap; i++) {
    unsigned char c = (unsigned char)v->text[i];
    buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (v->len > 40 && o + 8 < cap) o += (size_t)snprintf(buf + o, cap - o, "...");
  snprintf(buf + o, cap - o, "%s", q);
}

/* Reads an integer in plain decimal ("+12", "-3"). 0 = ok, 1 = not an integer,
 * 2 = does not fit in 64 bits. */
static int parse_i64(const char *s, int64_t *out) {
  const char *d = s + (*s == '+' || *s == '-');
  if (!*d) return 1;
  for (const char *c = d; *c; c++)
    if (!isdigit((unsigned char)*c)) return 1;
  errno = 0;
  long long v = strtoll(s, NULL, 10);
  if (errno == ERANGE) return 2;
  *out = (int64_t)v;
  return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
  const char *d = s + (*s == '+');
  if (!*d) return 1;
  if (*d == '-') return isdigit((unsigned char)d[1]) ? 2 : 1;
  for (const char *c = d; *c; c++)
    if (!isdigit((unsigned char)*c)) return 1;
  errno = 0;
  unsigned long long v = strtoull(d, NULL, 10);
  if (errno == ERANGE) return 2;
  *out = (uint64_t)v;
  return 0;
}

/* Reads a decimal number ("2e-3", "0.5", "1"): 0 = ok, 1 = not a number. */
static int parse_real(const char *s, double *out) {
  bool digit = false;
  for (const char *c = s; *c; c++) {
    if (isdigit((unsigned char)*c)) digit = true;
    else if (!strchr("+-.eE", *c)) return 1;
  }
  if (!digit) return 1;
  char *end;
  double v = strtod(s, &end);
  if (*end || end == s) return 1;
  *out = v;
  return 0;
}

/* A number for messages: integers without a fraction, others as %g. */
static void fmt_num(char *buf, size_t cap, double v) {
  if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, cap, "%.0f", v);
  else snprintf(buf, cap, "%g", v);
}

/* The allowed values of a key, for messages ("an integer from 1 to 16"). */
static void key_allowed(const key_def *d, char *buf, size_t cap) {
  char lo[32], hi[32];
  fmt_num(lo, sizeof lo, d->lo);
  fmt_num(hi, sizeof hi, d->hi);
  const char *num = d->type == K_REAL ? "a number" : "an integer";
  const char *pre = (d->flags & F_AUTO) ? "auto or " : "";
  switch (d->type) {
  case K_BOOL: snprintf(buf, cap, "true or false"); return;
  case K_NAME: snprintf(buf, cap, "text of at most %zu characters", d->size - 1); return;
  case K_PATH: snprintf(buf, cap, "a file path"); return;
  case K_FEATURES: snprintf(buf, cap, "auto, all or an integer >= 1"); return;
  case K_MODS: snprintf(buf, cap, "a mapping from modality names to settings"); return;
  case K_ENUM: {
    size_t o = (size_t)snprintf(buf, cap, "one of ");
    for (int i = 0; d->names[i] && o < cap; i++)
      o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", d->names[i]);
    return;
  }
  default: break;
  }
  if (d->lo == d->hi) snprintf(buf, cap, "%s", lo);
  else if (d->hi == BIG) snprintf(buf, cap, "%s%s %s %s", pre, num, (d->flags & F_LO_OPEN) ? ">" : ">=", lo);
  else if (d->type == K_REAL)
    snprintf(buf, cap, "%s%s in %c%s, %s%c", pre, num, (d->flags & F_LO_OPEN) ? '(' : '[', lo,
             hi, (d->flags & F_HI_OPEN) ? ')' : ']');
  else snprintf(buf, cap, "%s%s from %s to %s", pre, num, lo, hi);
}

/* True when v lies in the key's range (CLUE_AUTO counts when auto is allowed). */
static bool key_in_range(const key_def *d, double v) {
  if ((d->flags & F_AUTO) && v == CLUE_AUTO) return true;
  if (!isfinite(v)) return false;
  if ((d->flags & F_LO_OPEN) ? !(v > d->lo) : !(v >= d->lo)) return false;
  if (d->hi == BIG) return true;
  return (d->flags & F_HI_OPEN) ? v < d->hi : v <= d->hi;
}

/* ======================================================================== */
/* The walk: tree → config                                                  */
/* ======================================================================== */

typedef struct walker {
  const char *what;         /* the text's name (file); NULL for --set */
  char base[CLUE_PATH_MAX]; /* absolute folder for relative paths; "" = keep them */
  clue_err *err;
} walker;

static int walk_fail(const walker *w, const cfg_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fails with "<file>:<line>: <message>" (no place for --set). */
static int walk_fail(const walker *w, const cfg_node *n, const char *fmt, ...) {
  char msg[CLUE_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (w->what && n && n->line > 0)
    return clue_fail(w->err, CLUE_ECONFIG, "%s:%d: %s", w->what, n->line, msg);
  if (w->what) return clue_fail(w->err, CLUE_ECONFIG, "%s: %s", w->what, msg);
  return clue_fail(w->err, CLUE_ECONFIG, "%s", msg);
}

static int set_number(const walker *w, const key_def *d, const char *path, const cfg_node *v,
                      void *field, const char *allowed) {
  char shown[64];
  show_value(v, shown, sizeof shown);
  if ((d->flags & F_AUTO) && !strcmp(v->text, "auto")) {
    *(int *)field = CLUE_AUTO;
    return CLUE_OK;
  }
  if (!v->plain)
    return walk_fail(w, v, "%s: got the text %s; allowed: %s (write numbers without quotes)",
                     path, shown, allowed);
  int64_t i = 0;
  uint64_t u = 0;
  double x = 0;
  int bad = d->type == K_REAL ? parse_real(v->text, &x)
            : d->type == K_U64 ? parse_u64(v->text, &u)
                               : parse_i64(v->text, &i);
  if (bad == 1)
    return walk_fail(w, v, "%s: got %s, not %s; allowed: %s", path, shown,
                     d->type == K_REAL ? "a number" : "an integer", allowed);
  bool ok = bad == 0;
  if (ok && d->type == K_INT) ok = key_in_range(d, (double)i) && i != CLUE_AUTO;
  if (ok && d->type == K_I64) ok = i >= (int64_t)d->lo;
  if (ok && d->type == K_REAL) ok = key_in_range(d, x);
  if (!ok) return walk_fail(w, v, "%s: %s is out of range; allowed: %s", path, shown, allowed);
  if (d->type == K_INT) *(int *)field = (int)i;
  if (d->type == K_I64) *(int64_t *)field = i;
  if (d->type == K_U64) *(uint64_t *)field = u;
  if (d->type == K_REAL) *(double *)field = x;
  return CLUE_OK;
}

static int set_bool(const walker *w, const char *path, const cfg_node *v, bool *field) {
  const char *t = v->text;
  char shown[64];
  show_value(v, shown, sizeof shown);
  if (v->plain && (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE"))) {
    *field = true;
    return CLUE_OK;
  }
  if (v->plain && (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE"))) {
    *field = false;
    return CLUE_OK;
  }
  static const char *const yaml11[] = {"yes", "no", "on", "off", "y", "n"};
  for (size_t i = 0; i < sizeof yaml11 / sizeof yaml11[0]; i++)
    if (strcasecmp(t, yaml11[i]) == 0)
      return walk_fail(w, v, "%s: got %s; allowed: true or false (yes/no/on/off are not accepted)",
                       path, shown);
  return walk_fail(w, v, "%s: got %s; allowed: true or false%s", path, shown,
                   v->plain ? "" : " (without quotes)");
}

static int set_text_key(const walker *w, const key_def *d, const char *path, const cfg_node *v,
                        char *field) {
  for (size_t i = 0; i < v->len; i++) {
    unsigned char c = (unsigned char)v->text[i];
    if (c < 0x20 || c == 0x7f)
      return walk_fail(w, v, "%s: contains a control character (byte 0x%02x)", path, c);
  }
  if (d->type == K_NAME) {
    if (v->len >= d->size)
      return walk_fail(w, v, "%s: %zu characters is too long; allowed: text of at most %zu characters",
                       path, v->len, d->size - 1);
    set_text(field, d->size, v->text);
    return CLUE_OK;
  }
  if (path_join(field, d->size, w->base, v->text) != CLUE_OK)
    return walk_fail(w, v, "%s: the path is longer than %zu characters", path, d->size - 1);
  return CLUE_OK;
}

static int set_enum(const walker *w, const key_def *d, const char *path, const cfg_node *v,
                    void *field, const char *allowed) {
  for (int i = 0; d->names[i]; i++) {
    if (strcmp(v->text, d->names[i]) == 0) {
      *(int *)field = i;
      return CLUE_OK;
    }
  }
  char shown[64];
  show_value(v, shown, sizeof shown);
  return walk_fail(w, v, "%s: got %s; allowed: %s", path, shown, allowed);
}

static int set_features(const walker *w, const key_def *d, const char *path, const cfg_node *v,
                        int *field, const char *allowed) {
  if (!strcmp(v->text, "all")) {
    *field = 0;
    return CLUE_OK;
  }
  key_def as_int = *d;
  as_int.type = K_INT;
  return set_number(w, &as_int, path, v, field, allowed);
}

/* Sets the field of key d (inside `base`, a config or a modality) from v. */
static int key_set(const walker *w, const key_def *d, const char *path, const cfg_node *v,
                   void *base) {
  char allowed[160];
  key_allowed(d, allowed, sizeof allowed);
  void *field = (char *)base + d->off;
  if (v->kind != NODE_SCALAR)
    return walk_fail(w, v, "%s: got %s; allowed: %s", path, node_kind_name(v), allowed);
  if (strlen(v->text) != v->len)
    return walk_fail(w, v, "%s: the value contains a NUL character", path);
  if (node_is_null(v)) {
    if (d->type == K_NAME || d->type == K_PATH) {
      memset(field, 0, d->size);
      return CLUE_OK;
    }
    return walk_fail(w, v, "%s: no value given; allowed: %s", path, allowed);
  }
  switch (d->type) {
  case K_BOOL: return set_bool(w, path, v, field);
  case K_NAME:
  case K_PATH: return set_text_key(w, d, path, v, field);
  case K_ENUM: return set_enum(w, d, path, v, field, allowed);
  case K_FEATURES: return set_features(w, d, path, v, field, allowed);
  default: return set_number(w, d, path, v, field, allowed);
  }
}

/* ---- unknown keys: suggestions ---- */

/* Optimal-string-alignment distance (edits and swaps), ignoring case. */
static int edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 63 || m > 63) return 99;
  int d[64][64];
  for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    for (size_t j = 1; j <= m; j++) {
      int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      int best = d[i - 1][j - 1] + cost;
      if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[n][m];
}

/* The names allowed directly under `prefix` in table ("" = top level), as
 * "a, b, c", and the one closest to key (or "" when none is close). */
static void siblings(const key_def *table, size_t n, const char *prefix, const char *key,
                     char *list, size_t list_cap, char *best, size_t best_cap) {
  size_t plen = strlen(prefix), o = 0, klen = strlen(key);
  int best_d = (klen <= 3 ? 1 : klen <= 6 ? 2 : 3) + 1;
  const char *seen[64];
  size_t seen_len[64], n_seen = 0;
  list[0] = best[0] = '\0';
  for (size_t i = 0; i < n && n_seen < 64; i++) {
    const char *p = table[i].path;
    if (plen && (strncmp(p, prefix, plen) != 0 || p[plen] != '.')) continue;
    const char *rest = p + plen + (plen ? 1 : 0);
    size_t len = strcspn(rest, ".");
    bool dup = false;
    for (size_t j = 0; j < n_seen && !dup; j++)
      dup = seen_len[j] == len && strncmp(seen[j], rest, len) == 0;
    if (dup) continue;
    seen[n_seen] = rest;
    seen_len[n_seen++] = len;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)len, rest);
    if (o < list_cap) o += (size_t)snprintf(list + o, list_cap - o, "%s%s", o ? ", " : "", name);
    int dist = edit_distance(key, name);
    if (dist < best_d && dist < (int)klen) {
      best_d = dist;
      snprintf(best, best_cap, "%s", name);
    }
  }
}

/* Keys elsewhere in the schema whose last component is key ("model.dropout"
 * for train.dropout), as "a or b". */
static void elsewhere(const char *key, const char *path, bool in_modality, char *out,
                      size_t cap) {
  size_t o = 0;
  out[0] = '\0';
  for (size_t i = 0; i < N_CFG_KEYS && o < cap; i++) {
    const char *p = cfg_keys[i].path, *last = strrchr(p, '.');
    last = last ? last + 1 : p;
    if (strcmp(last, key) == 0 && strcmp(p, path) != 0)
      o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " or " : "", p);
  }
  if (o || in_modality) return;
  if (find_key(mod_keys, N_MOD_KEYS, key))
    snprintf(out, cap, "data.modalities.<name>.%s", key);
}

/* Fails on an unknown key k under `shown` (the path as the user sees it),
 * allowed names from table under table_prefix. */
static int unknown_key(const walker *w, const cfg_node *k, const cfg_node *v,
                       const key_def *table, size_t n, const char *table_prefix,
                       const char *shown) {
  char list[512], best[64], hint[256] = "", other[256];
  const char *key = k->text;
  siblings(table, n, table_prefix, key, list, sizeof list, best, sizeof best);
  elsewhere(key, shown, table == mod_keys, other, sizeof other);
  if (best[0]) snprintf(hint, sizeof hint, " (did you mean %s?)", best);
  else if (other[0]) snprintf(hint, sizeof hint, " (did you mean %s?)", other);
  else if (strchr(key, '.')) snprintf(hint, sizeof hint, " (write nested keys as mappings, not with dots)");
  else if (!strcmp(table_prefix, "data") && v->kind == NODE_MAP)
    snprintf(hint, sizeof hint, " (modalities go under data.modalities)");
  char keyshown[80];
  show_value(k, keyshown, sizeof keyshown);
  return walk_fail(w, k, "unknown key %s%s%s%s; allowed keys here: %s", shown, shown[0] ? "." : "",
                   keyshown, hint, list);
}

/* ---- mappings ---- */

/* Checks key i of mapping m: a NUL-free value that appeared only once. */
static int check_key(const walker *w, const cfg_node *m, int i, const char *prefix) {
  const cfg_node *k = m->kid[i];
  char shown[80];
  show_value(k, shown, sizeof shown);
  if (strlen(k->text) != k->len)
    return walk_fail(w, k, "key %s%s%s contains a NUL character", prefix, prefix[0] ? "." : "", shown);
  for (int j = 0; j < i; j += 2) {
    const cfg_node *o = m->kid[j];
    if (o->len == k->len && memcmp(o->text, k->text, k->len) == 0) {
      if (o->line > 0)
        return walk_fail(w, k, "duplicate key %s%s%s (first given at line %d)", prefix,
                         prefix[0] ? "." : "", shown, o->line);
      return walk_fail(w, k, "duplicate key %s%s%s", prefix, prefix[0] ? "." : "", shown);
    }
  }
  return CLUE_OK;
}

static int walk_modality(const walker *w, const cfg_node *m, clue_modality_config *mod) {
  char prefix[CFG_MAX_KEY];
  snprintf(prefix, sizeof prefix, "data.modalities.%s", mod->name);
  if (node_is_null(m)) return CLUE_OK;
  if (m->kind != NODE_MAP)
    return walk_fail(w, m, "%s: got %s; allowed: a mapping of modality settings (file, layer, ...)",
                     prefix, node_kind_name(m));
  for (int i = 0; i + 1 < m->n; i += 2) {
    int rc = check_key(w, m, i, prefix);
    if (rc) return rc;
    const cfg_node *k = m->kid[i], *v = m->kid[i + 1];
    const key_def *d = find_key(mod_keys, N_MOD_KEYS, k->text);
    if (!d) return unknown_key(w, k, v, mod_keys, N_MOD_KEYS, "", prefix);
    char path[CFG_MAX_KEY];
    snprintf(path, sizeof path, "%s.%s", prefix, k->text);
    rc = key_set(w, d, path, v, mod);
    if (rc) return rc;
  }
  return CLUE_OK;
}

/* Finds the modality `name` or appends it with its defaults. */
static int modality_slot(const walker *w, const cfg_node *k, clue_config *cfg, int *slot) {
  char shown[80];
  show_value(k, shown, sizeof shown);
  if (!mod_name_ok(k->text, k->len))
    return walk_fail(w, k,
                     "data.modalities: the name %s is not allowed; use 1 to %d letters, digits, "
                     "'_' or '-'", shown, CLUE_NAME_MAX - 1);
  int j = clue_config_find_modality(cfg, k->text);
  if (j < 0) {
    if (cfg->n_mod >= CLUE_MAX_MOD)
      return walk_fail(w, k, "data.modalities: too many modalities (%s would be number %d); "
                       "at most %d are supported", shown, cfg->n_mod + 1, CLUE_MAX_MOD);
    j = cfg->n_mod++;
    mod_defaults(&cfg->mod[j], k->text);
  }
  *slot = j;
  return CLUE_OK;
}

static int walk_modalities(const walker *w, const cfg_node *m, clue_config *cfg) {
  if (node_is_null(m)) return CLUE_OK;
  if (m->kind != NODE_MAP)
    return walk_fail(w, m, "data.modalities: got %s; allowed: a mapping from modality names to "
                     "their settings (e.g. rna: {file: rna.h5ad})", node_kind_name(m));
  for (int i = 0; i + 1 < m->n; i += 2) {
    int slot = 0;
    int rc = check_key(w, m, i, "data.modalities");
    if (rc == CLUE_OK) rc = modality_slot(w, m->kid[i], cfg, &slot);
    if (rc == CLUE_OK) rc = walk_modality(w, m->kid[i + 1], &cfg->mod[slot]);
    if (rc) return rc;
  }
  return CLUE_OK;
}

/* Walks the mapping m found at `prefix` ("" = the top level). */
static int walk_map(const walker *w, const cfg_node *m, const char *prefix, clue_config *cfg) {
  if (node_is_null(m)) return CLUE_OK;
  if (m->kind != NODE_MAP) {
    char shown[64] = "";
    if (m->kind == NODE_SCALAR) show_value(m, shown, sizeof shown);
    return walk_fail(w, m, "%s: got %s%s%s; allowed: a mapping of keys", prefix[0] ? prefix : "top level",
                     node_kind_name(m), shown[0] ? " " : "", shown);
  }
  for (int i = 0; i + 1 < m->n; i += 2) {
    int rc = check_key(w, m, i, prefix);
    if (rc) return rc;
    const cfg_node *k = m->kid[i], *v = m->kid[i + 1];
    char path[CFG_MAX_KEY];
    int len = snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", k->text);
    const key_def *d = (len < (int)sizeof path && !strchr(k->text, '.'))
                           ? find_key(cfg_keys, N_CFG_KEYS, path) : NULL;
    if (d && d->type == K_MODS) rc = walk_modalities(w, v, cfg);
    else if (d) rc = key_set(w, d, path, v, cfg);
    else if (len < (int)sizeof path && !strchr(k->text, '.') && is_section(path))
      rc = walk_map(w, v, path, cfg);
    else rc = unknown_key(w, k, v, cfg_keys, N_CFG_KEYS, prefix, prefix);
    if (rc) return rc;
  }
  return CLUE_OK;
}

/* Walks a whole document; `version` is read first so that a config written
 * for another schema fails on its version, not on some renamed key. */
static int walk_root(const walker *w, const cfg_node *root, clue_config *cfg) {
  if (node_is_null(root)) return CLUE_OK;
  if (root->kind == NODE_MAP) {
    for (int i = 0; i + 1 < root->n; i += 2) {
      if (!strcmp(root->kid[i]->text, "version")) {
        int rc = key_set(w, &cfg_keys[0], "version", root->kid[i + 1], cfg);
        if (rc) return rc;
        break;
      }
    }
  }
  return walk_map(w, root, "", cfg);
}

/* Applies tree (may be NULL) to a copy of cfg; the copy replaces cfg on success. */
static int apply_tree(const walker *w, const cfg_node *tree, clue_config *cfg) {
  clue_config *tmp = clue_malloc(sizeof *tmp, w->err);
  if (!tmp) return CLUE_ENOMEM;
  memcpy(tmp, cfg, sizeof *tmp);
  int rc = walk_root(w, tree, tmp);
  if (rc == CLUE_OK) memcpy(cfg, tmp, sizeof *cfg);
  free(tmp);
  return rc;
}

/* ======================================================================== */
/* Loading and --set                                                        */
/* ======================================================================== */

static int load_text(const char *text, size_t len, const char *base, const char *what,
                     clue_config *cfg, clue_err *err) {
  walker w = {.what = what, .err = err};
  set_text(w.base, sizeof w.base, base ? base : "");
  cfg_node *root = NULL;
  int rc = yaml_to_tree(text, len, what, &root, err);
  if (rc == CLUE_OK) rc = apply_tree(&w, root, cfg);
  node_free(root);
  return rc;
}

int clue_config_load_string(const char *yaml, const char *base_dir, const char *what,
                            clue_config *cfg, clue_err *err) {
  char base[CLUE_PATH_MAX] = "";
  if (base_dir && base_dir[0]) {
    int rc = path_absolute(base_dir, base, sizeof base, err);
    if (rc) return rc;
  }
  return load_text(yaml, strlen(yaml), base, what ? what : "<string>", cfg, err);
}

/* Reads a whole config file (at most CFG_MAX_FILE bytes). */
static int read_config_file(const char *path, char **text, size_t *len, clue_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return clue_fail(err, CLUE_EIO, "cannot open config %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return clue_fail(err, CLUE_EIO, "config %s is not a regular file", path);
  }
  char *buf = clue_malloc(CFG_MAX_FILE + 1, err);
  if (!buf) {
    fclose(f);
    return CLUE_ENOMEM;
  }
  size_t n = fread(buf, 1, CFG_MAX_FILE + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return clue_fail(err, CLUE_EIO, "cannot read config %s", path);
  }
  if (n > CFG_MAX_FILE) {
    free(buf);
    return clue_fail(err, CLUE_ECONFIG, "config %s is larger than %d bytes", path, CFG_MAX_FILE);
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return CLUE_OK;
}

int clue_config_load(const char *path, clue_config *cfg, clue_err *err) {
  if (strlen(path) >= sizeof cfg->path)
    return clue_fail(err, CLUE_EINVAL, "config path too long: %.80s...", path);
  char base[CLUE_PATH_MAX];
  int rc = path_folder_of(path, base, sizeof base, err);
  if (rc) return rc;
  char *text = NULL;
  size_t len = 0;
  rc = read_config_file(path, &text, &len, err);
  if (rc) return rc;
  rc = load_text(text, len, base, path, cfg, err);
  free(text);
  if (rc == CLUE_OK) set_text(cfg->path, sizeof cfg->path, path);
  return rc;
}

/* Splits "a.b.c" into parts; fails unless every part is 1-63 of [A-Za-z0-9_-]. */
static int split_key_path(const char *key, size_t len, char parts[][CLUE_NAME_MAX], int *n) {
  *n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && key[i] != '.') continue;
    if (*n == CFG_MAX_PARTS || !mod_name_ok(key + start, i - start)) return CLUE_EINVAL;
    snprintf(parts[*n], CLUE_NAME_MAX, "%.*s", (int)(i - start), key + start);
    (*n)++;
    start = i + 1;
  }
  return CLUE_OK;
}

/* Wraps value in mappings parts[0] → parts[1] → ... → value. Takes value
 * (freed on failure). */
static cfg_node *wrap_value(char parts[][CLUE_NAME_MAX], int n, cfg_node *value, clue_err *err) {
  cfg_node *inner = value;
  for (int i = n - 1; i >= 0; i--) {
    cfg_node *map = node_new(NODE_MAP, 0, err);
    cfg_node *key = node_scalar(parts[i], strlen(parts[i]), true, 0, err);
    int rc = (map && key) ? node_add(map, key, err) : CLUE_ENOMEM;
    if (rc) node_free(key);
    if (rc == CLUE_OK) rc = node_add(map, inner, err);
    if (rc) {
      node_free(map);
      node_free(inner);
      return NULL;
    }
    inner = map;
  }
  return inner;
}

int clue_config_set(clue_config *cfg, const char *assignment, clue_err *err) {
  const char *eq = strchr(assignment, '=');
  const char *k0 = assignment, *k1 = eq ? eq : assignment;
  while (k0 < k1 && isspace((unsigned char)*k0)) k0++;
  while (k1 > k0 && isspace((unsigned char)k1[-1])) k1--;
  char parts[CFG_MAX_PARTS][CLUE_NAME_MAX];
  int n = 0;
  if (!eq || split_key_path(k0, (size_t)(k1 - k0), parts, &n) != CLUE_OK) {
    char shown[201]; /* the assignment as typed, controls as '?' (one-line message) */
    size_t i = 0;
    for (; assignment[i] && i + 1 < sizeof shown; i++) {
      unsigned char c = (unsigned char)assignment[i];
      shown[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    shown[i] = '\0';
    return clue_fail(err, CLUE_ECONFIG,
                     "malformed override \"%s\"; write key.path=value, e.g. "
                     "model.latent_dim=20 or data.modalities.rna.file=rna.h5ad", shown);
  }
  walker w = {.what = NULL, .err = err};
  int rc = path_absolute(".", w.base, sizeof w.base, err);
  cfg_node *value = NULL;
  if (rc == CLUE_OK) rc = yaml_to_tree(eq + 1, strlen(eq + 1), NULL, &value, err);
  if (rc == CLUE_OK && !value) value = node_scalar("", 0, true, 0, err);
  if (rc == CLUE_OK && !value) rc = CLUE_ENOMEM;
  if (rc) {
    node_free(value);
    return rc;
  }
  cfg_node *tree = wrap_value(parts, n, value, err);
  if (!tree) return CLUE_ENOMEM;
  rc = apply_tree(&w, tree, cfg);
  node_free(tree);
  return rc;
}

/* ======================================================================== */
/* Validation                                                               */
/* ======================================================================== */

static int vfail(const clue_config *cfg, clue_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fails with "<config file>: <message>". */
static int vfail(const clue_config *cfg, clue_err *err, const char *fmt, ...) {
  char msg[CLUE_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (cfg->path[0] && memchr(cfg->path, '\0', sizeof cfg->path))
    return clue_fail(err, CLUE_ECONFIG, "%s: %s", cfg->path, msg);
  return clue_fail(err, CLUE_ECONFIG, "%s", msg);
}

/* Checks one key's stored value against its type and range. */
static int check_field(const clue_config *cfg, const key_def *d, const void *base,
                       const char *path, clue_err *err) {
  const char *field = (const char *)base + d->off;
  char allowed[160];
  key_allowed(d, allowed, sizeof allowed);
  bool ok = true;
  double v = 0;
  switch (d->type) {
  case K_INT: v = *(const int *)field; ok = key_in_range(d, v); break;
  case K_FEATURES: v = *(const int *)field; ok = v == 0 || key_in_range(d, v); break;
  case K_I64: v = (double)*(const int64_t *)field; ok = *(const int64_t *)field >= (int64_t)d->lo; break;
  case K_REAL: v = *(const double *)field; ok = key_in_range(d, v); break;
  case K_ENUM: v = *(const int *)field; ok = v >= 0 && v < names_count(d->names); break;
  case K_NAME:
  case K_PATH:
    ok = memchr(field, '\0', d->size) != NULL;
    for (const char *c = field; ok && *c; c++)
      ok = (unsigned char)*c >= 0x20 && *c != 0x7f;
    break;
  default: return CLUE_OK;
  }
  if (ok) return CLUE_OK;
  if (d->type == K_NAME || d->type == K_PATH)
    return vfail(cfg, err, "%s: not text (unterminated or with control characters)", path);
  char num[40];
  snprintf(num, sizeof num, "%.17g", v);
  return vfail(cfg, err, "%s: %s is out of range; allowed: %s", path, num, allowed);
}

static bool ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), m = strlen(tail);
  return n >= m && strcasecmp(s + n - m, tail) == 0;
}

/* The rules for one modality (see docs/config.md). */
static int validate_modality(const clue_config *cfg, const clue_modality_config *m,
                             clue_err *err) {
  const char *p = m->name;
  if (!memchr(m->name, '\0', sizeof m->name) || !mod_name_ok(m->name, strlen(m->name)))
    return vfail(cfg, err, "data.modalities: invalid modality name; use 1 to %d letters, "
                 "digits, '_' or '-'", CLUE_NAME_MAX - 1);
  for (size_t i = 0; i < N_MOD_KEYS; i++) {
    char path[CFG_MAX_KEY];
    snprintf(path, sizeof path, "data.modalities.%s.%s", p, mod_keys[i].path);
    int rc = check_field(cfg, &mod_keys[i], m, path, err);
    if (rc) return rc;
  }
  if (!cfg->h5mu_file[0] && !m->file[0])
    return vfail(cfg, err, "data.modalities.%s.file: missing; give each modality an .h5ad file, "
                 "or one .h5mu for all of them with data.file", p);
  if (cfg->h5mu_file[0] && m->file[0])
    return vfail(cfg, err, "data.modalities.%s.file and data.file are both set; use either "
                 "one .h5ad per modality or one .h5mu (data.file), not both", p);
  if (ends_with(m->file, ".h5mu"))
    return vfail(cfg, err, "data.modalities.%s.file: %s is a MuData file; name it with "
                 "data.file and leave the modalities' file empty", p, m->file);
  if (!m->layer[0])
    return vfail(cfg, err, "data.modalities.%s.layer: empty; allowed: X or the name of a layer", p);
  if (m->preprocess == CLUE_PREP_LSI && m->likelihood == CLUE_LIK_NORMAL)
    return vfail(cfg, err, "data.modalities.%s.preprocess: lsi needs counts; allowed with "
                 "likelihood nb or bernoulli, not normal", p);
  if (m->preprocess == CLUE_PREP_LSI && m->normalize != CLUE_NORM_LOG1P)
    return vfail(cfg, err, "data.modalities.%s.normalize: lsi does its own TF-IDF and log1p; "
                 "allowed with lsi: log1p (the default)", p);
  if (m->likelihood == CLUE_LIK_NORMAL && m->features > 0)
    return vfail(cfg, err, "data.modalities.%s.features: choosing the top %d features needs "
                 "counts; allowed with likelihood normal: auto or all", p, m->features);
  if (m->preprocess == CLUE_PREP_PCA && m->features > 0 && m->n_components >= m->features)
    return vfail(cfg, err, "data.modalities.%s.n_components: %d must be below features (%d) "
                 "for pca; allowed: 1 to %d", p, m->n_components, m->features, m->features - 1);
  return CLUE_OK;
}

static int validate_modalities(const clue_config *cfg, clue_err *err) {
  if (cfg->n_mod < 0 || cfg->n_mod > CLUE_MAX_MOD)
    return vfail(cfg, err, "data.modalities: %d modalities; allowed: 2 to %d", cfg->n_mod,
                 CLUE_MAX_MOD);
  if (cfg->n_mod < 2)
    return vfail(cfg, err, "data.modalities: %s; CLUE needs at least 2 (e.g. rna and adt, "
                 "each with a file)", cfg->n_mod ? "only 1 modality given" : "missing");
  for (int i = 0; i < cfg->n_mod; i++) {
    int rc = validate_modality(cfg, &cfg->mod[i], err);
    if (rc) return rc;
    for (int j = 0; j < i; j++)
      if (!strcmp(cfg->mod[i].name, cfg->mod[j].name))
        return vfail(cfg, err, "data.modalities: %s is given twice", cfg->mod[i].name);
  }
  if (cfg->h5mu_file[0] && ends_with(cfg->h5mu_file, ".h5ad"))
    return vfail(cfg, err, "data.file: %s is an AnnData file holding one modality; give each "
                 "modality its file under data.modalities.<name>.file instead", cfg->h5mu_file);
  return CLUE_OK;
}

/* Rules that tie keys of different sections together. */
static int validate_cross(const clue_config *cfg, clue_err *err) {
  if (cfg->split_key[0] && !cfg->test_value[0])
    return vfail(cfg, err, "data.test_value: empty while data.split_key is set; allowed: the "
                 "value of %s that marks held-out cells", cfg->split_key);
  if (cfg->lam_data == 0 && cfg->lam_cross == 0 && cfg->lam_real_cross == 0)
    return vfail(cfg, err, "loss: data, cross and real_cross are all 0, so nothing trains the "
                 "decoders; set at least one of them above 0");
  if (cfg->early_stopping && cfg->val_split == 0)
    return vfail(cfg, err, "train.early_stopping: needs validation cells; set train.val_split "
                 "above 0 or early_stopping: false");
  if (cfg->max_epochs != CLUE_AUTO && cfg->align_burnin != CLUE_AUTO &&
      cfg->align_burnin > cfg->max_epochs)
    return vfail(cfg, err, "train.align_burnin: %d exceeds train.max_epochs (%d); allowed: 0 to "
                 "%d or auto", cfg->align_burnin, cfg->max_epochs, cfg->max_epochs);
  if (!cfg->out_dir[0])
    return vfail(cfg, err, "output.dir: empty; allowed: a folder path");
  return CLUE_OK;
}

int clue_config_validate(const clue_config *cfg, clue_err *err) {
  for (size_t i = 0; i < N_CFG_KEYS; i++) {
    int rc = check_field(cfg, &cfg_keys[i], cfg, cfg_keys[i].path, err);
    if (rc) return rc;
  }
  int rc = validate_modalities(cfg, err);
  if (rc == CLUE_OK) rc = validate_cross(cfg, err);
  return rc;
}

/* ======================================================================== */
/* Writing, comparing, broadcasting                                         */
/* ======================================================================== */

/* True when s can be written without quotes and reads back as the same text. */
static bool plain_safe(const char *s) {
  static const char *const reserved[] = {"null", "Null", "NULL", "~"};
  if (!s[0] || !(isalnum((unsigned char)s[0]) || strchr("_/.", s[0]))) return false;
  for (const char *c = s; *c; c++)
    if (!isalnum((unsigned char)*c) && !strchr("_./+-", *c)) return false;
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (!strcmp(s, reserved[i])) return false;
  return true;
}

static void write_text(FILE *f, const char *s) {
  if (plain_safe(s)) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
    else if (*c < 0x20 || *c == 0x7f) fprintf(f, "\\x%02x", *c);
    else fputc(*c, f);
  }
  fputc('"', f);
}

/* The shortest of %.15g / %.17g that reads back as exactly v. */
static void write_real(FILE *f, double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.15g", v);
  if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
  fputs(buf, f);
}

static void write_value(FILE *f, const key_def *d, const void *base) {
  const char *field = (const char *)base + d->off;
  int i = (d->type == K_INT || d->type == K_ENUM || d->type == K_FEATURES) ? *(const int *)field : 0;
  switch (d->type) {
  case K_INT:
    if ((d->flags & F_AUTO) && i == CLUE_AUTO) fputs("auto", f);
    else fprintf(f, "%d", i);
    break;
  case K_FEATURES:
    if (i == CLUE_AUTO) fputs("auto", f);
    else if (i == 0) fputs("all", f);
    else fprintf(f, "%d", i);
    break;
  case K_I64: fprintf(f, "%lld", (long long)*(const int64_t *)field); break;
  case K_U64: fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)field); break;
  case K_REAL: write_real(f, *(const double *)field); break;
  case K_BOOL: fputs(*(const bool *)field ? "true" : "false", f); break;
  case K_ENUM: fputs(enum_name(d->names, i), f); break;
  case K_NAME:
  case K_PATH: write_text(f, field); break;
  case K_MODS: break;
  }
}

static void write_modalities(FILE *f, const clue_config *cfg, int indent) {
  if (cfg->n_mod <= 0) {
    fprintf(f, "%*smodalities: {}  # %s\n", indent, "", "one entry per modality");
    return;
  }
  fprintf(f, "%*smodalities:\n", indent, "");
  for (int m = 0; m < cfg->n_mod && m < CLUE_MAX_MOD; m++) {
    fprintf(f, "%*s", indent + 2, "");
    write_text(f, cfg->mod[m].name);
    fputs(":\n", f);
    for (size_t i = 0; i < N_MOD_KEYS; i++) {
      fprintf(f, "%*s%s: ", indent + 4, "", mod_keys[i].path);
      write_value(f, &mod_keys[i], &cfg->mod[m]);
      fprintf(f, "  # %s\n", mod_keys[i].help);
    }
  }
}

/* Writes the section headers between the previous key and `path`; returns the
 * indentation of path's last component. */
static int write_sections(FILE *f, const char *prev, const char *path) {
  int depth = 0;
  size_t common = 0; /* bytes of the shared section prefix, up to a '.' */
  for (size_t i = 0; prev[i] && prev[i] == path[i]; i++)
    if (path[i] == '.') common = i + 1;
  const char *c = path;
  for (const char *dot = strchr(c, '.'); dot; c = dot + 1, dot = strchr(c, '.'), depth++)
    if ((size_t)(c - path) >= common) fprintf(f, "%*s%.*s:\n", 2 * depth, "", (int)(dot - c), c);
  return 2 * depth;
}

char *clue_config_to_yaml(const clue_config *cfg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  fprintf(f, "# clue run configuration (clue %s). Relative paths are read relative to\n"
             "# the folder of this file; \"auto\" values are worked out when training.\n",
          CLUE_VERSION);
  const char *prev = "";
  for (size_t i = 0; i < N_CFG_KEYS; i++) {
    const key_def *d = &cfg_keys[i];
    int indent = write_sections(f, prev, d->path);
    prev = d->path;
    if (d->type == K_MODS) {
      write_modalities(f, cfg, indent);
      continue;
    }
    const char *leaf = strrchr(d->path, '.');
    fprintf(f, "%*s%s: ", indent, "", leaf ? leaf + 1 : d->path);
    write_value(f, d, cfg);
    fprintf(f, "  # %s\n", d->help);
  }
  if (fclose(f) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

static bool field_equal(const key_def *d, const void *a, const void *b) {
  const char *x = (const char *)a + d->off, *y = (const char *)b + d->off;
  if (d->type == K_NAME || d->type == K_PATH) return strncmp(x, y, d->size) == 0;
  if (d->type == K_BOOL) return *(const bool *)x == *(const bool *)y;
  if (d->type == K_MODS) return true;
  return memcmp(x, y, d->size) == 0;
}

bool clue_config_equal(const clue_config *a, const clue_config *b) {
  for (size_t i = 0; i < N_CFG_KEYS; i++)
    if (!field_equal(&cfg_keys[i], a, b)) return false;
  if (a->n_mod != b->n_mod) return false;
  for (int m = 0; m < a->n_mod && m < CLUE_MAX_MOD; m++) {
    if (strncmp(a->mod[m].name, b->mod[m].name, CLUE_NAME_MAX) != 0) return false;
    for (size_t i = 0; i < N_MOD_KEYS; i++)
      if (!field_equal(&mod_keys[i], &a->mod[m], &b->mod[m])) return false;
  }
  return true;
}

void clue_config_bcast(const clue_comm *comm, clue_config *cfg) {
  clue_comm_bcast(comm, cfg, sizeof *cfg, 0);
}
