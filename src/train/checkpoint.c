/* checkpoint.c — saving and loading the complete state of a run in HDF5. */
#include "clue/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clue/crc32.h"

/* ---- small HDF5 helpers (status: 0 ok, negative on failure) ---- */

static int put_attr_i64(hid_t obj, const char *name, int64_t v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return rc < 0 ? -1 : 0;
}

static int put_attr_f64(hid_t obj, const char *name, double v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return rc < 0 ? -1 : 0;
}

static int get_attr_i64(hid_t obj, const char *name, int64_t *v) {
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_INT64, v);
  if (a >= 0) H5Aclose(a);
  return rc < 0 ? -1 : 0;
}

static int get_attr_f64(hid_t obj, const char *name, double *v) {
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_DOUBLE, v);
  if (a >= 0) H5Aclose(a);
  return rc < 0 ? -1 : 0;
}

static hid_t make_group(hid_t parent, const char *name) {
  return H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

/* Writes a 1-D dataset of n elements of `type` with a crc32 attribute. */
static int put_array(hid_t g, const char *name, hid_t type, const void *data, int64_t n,
                     size_t elem) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t sp = H5Screate_simple(1, dims, NULL);
  hid_t ds = H5Dcreate2(g, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int rc = -1;
  if (ds >= 0 && (n == 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0))
    rc = put_attr_i64(ds, "crc32", (int64_t)clue_crc32(0, data, (size_t)n * elem));
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  return rc;
}

/* Reads a 1-D dataset of exactly n elements and verifies its checksum. */
static int get_array(hid_t g, const char *name, hid_t type, void *data, int64_t n,
                     size_t elem, const char *path, clue_err *err) {
  if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: dataset %s is missing", path, name);
  hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
  if (ds < 0) return clue_fail(err, CLUE_EFORMAT, "%s: cannot open dataset %s", path, name);
  hid_t sp = H5Dget_space(ds);
  hssize_t have = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  int rc = CLUE_OK;
  int64_t crc = -1;
  if (have != n)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: dataset %s has %lld values, expected %lld", path,
                   name, (long long)have, (long long)n);
  else if (n > 0 && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: cannot read dataset %s (file damaged?)", path,
                   name);
  else if (get_attr_i64(ds, "crc32", &crc) < 0)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: dataset %s has no checksum", path, name);
  else if ((uint32_t)crc != clue_crc32(0, data, (size_t)n * elem))
    rc = clue_fail(err, CLUE_EFORMAT,
                   "%s: dataset %s is corrupted (checksum mismatch)", path, name);
  H5Dclose(ds);
  return rc;
}

static int put_string(hid_t g, const char *name, const char *text) {
  return put_array(g, name, H5T_NATIVE_CHAR, text, (int64_t)strlen(text) + 1, 1);
}

static int get_string(hid_t g, const char *name, char **text, const char *path,
                      clue_err *err) {
  if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: dataset %s is missing", path, name);
  hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
  hid_t sp = H5Dget_space(ds);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  H5Dclose(ds);
  if (n < 1) return clue_fail(err, CLUE_EFORMAT, "%s: dataset %s is empty", path, name);
  *text = clue_malloc((size_t)n, err);
  if (!*text) return CLUE_ENOMEM;
  int rc = get_array(g, name, H5T_NATIVE_CHAR, *text, n, 1, path, err);
  if (rc == CLUE_OK && (*text)[n - 1] != '\0')
    rc = clue_fail(err, CLUE_EFORMAT, "%s: string %s is not terminated", path, name);
  if (rc) {
    free(*text);
    *text = NULL;
  }
  return rc;
}

/* ---- arenas ---- */

/* One float32 dataset per tensor of values `vals` (an arena-shaped buffer). */
static int put_arena(hid_t parent, const char *name, const clue_arena *a, const real *vals) {
  hid_t g = make_group(parent, name);
  if (g < 0) return -1;
  int rc = 0;
  for (int t = 0; t < a->n_tensors && rc == 0; t++) {
    int64_t n = clue_arena_size(a, t);
    float *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof *buf);
    if (!buf) {
      rc = -1;
      break;
    }
    for (int64_t i = 0; i < n; i++) buf[i] = (float)vals[a->t[t].offset + i];
    rc = put_array(g, a->t[t].name, H5T_NATIVE_FLOAT, buf, n, sizeof *buf);
    free(buf);
  }
  H5Gclose(g);
  return rc;
}

static int get_arena(hid_t parent, const char *name, const clue_arena *a, real *vals,
                     const char *path, clue_err *err) {
  if (H5Lexists(parent, name, H5P_DEFAULT) <= 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: group %s is missing", path, name);
  hid_t g = H5Gopen2(parent, name, H5P_DEFAULT);
  int rc = CLUE_OK;
  for (int t = 0; t < a->n_tensors && rc == CLUE_OK; t++) {
    int64_t n = clue_arena_size(a, t);
    float *buf = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *buf, err);
    if (!buf) {
      rc = CLUE_ENOMEM;
      break;
    }
    rc = get_array(g, a->t[t].name, H5T_NATIVE_FLOAT, buf, n, sizeof *buf, path, err);
    for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
      if (!isfinite(buf[i]))
        rc = clue_fail(err, CLUE_EFORMAT, "%s: dataset %s holds %g at %lld (NaN/Inf)", path,
                       a->t[t].name, (double)buf[i], (long long)i);
      vals[a->t[t].offset + i] = (real)buf[i];
    }
    free(buf);
  }
  H5Gclose(g);
  if (rc) clue_err_prefix(err, "in %s", name);
  return rc;
}

static int put_optim(hid_t parent, const char *name, const clue_optim *o,
                     const clue_arena *a) {
  hid_t g = make_group(parent, name);
  if (g < 0) return -1;
  int rc = put_attr_i64(g, "kind", o->kind) | put_attr_i64(g, "t", o->t) |
           put_attr_f64(g, "lr", o->lr);
  if (!rc) rc = put_arena(g, "v", a, o->v);
  if (!rc && o->m) rc = put_arena(g, "m", a, o->m);
  H5Gclose(g);
  return rc;
}

static int get_optim(hid_t parent, const char *name, clue_optim *o, const clue_arena *a,
                     const char *path, clue_err *err) {
  hid_t g = H5Gopen2(parent, name, H5P_DEFAULT);
  if (g < 0) return clue_fail(err, CLUE_EFORMAT, "%s: optimiser %s is missing", path, name);
  int64_t kind = 0, t = 0;
  double lr = 0;
  int rc = CLUE_OK;
  if (get_attr_i64(g, "kind", &kind) || get_attr_i64(g, "t", &t) || get_attr_f64(g, "lr", &lr) ||
      (kind != CLUE_OPT_RMSPROP && kind != CLUE_OPT_ADAM))
    rc = clue_fail(err, CLUE_EFORMAT, "%s: optimiser %s has bad attributes", path, name);
  if (!rc) rc = clue_optim_init(o, (clue_optimizer)kind, lr, a->n, err);
  if (!rc) {
    o->t = t;
    rc = get_arena(g, "v", a, o->v, path, err);
  }
  if (!rc && o->m) rc = get_arena(g, "m", a, o->m, path, err);
  H5Gclose(g);
  return rc;
}

/* ---- the model spec ---- */

static int put_spec(hid_t file, const clue_model_spec *s) {
  hid_t g = make_group(file, "spec");
  if (g < 0) return -1;
  int rc = put_attr_i64(g, "n_mod", s->n_mod) | put_attr_i64(g, "latent_dim", s->latent_dim) |
           put_attr_i64(g, "n_batches", s->n_batches) |
           put_attr_i64(g, "encoder_depth", s->encoder.depth) |
           put_attr_i64(g, "encoder_width", s->encoder.width) |
           put_attr_i64(g, "decoder_depth", s->decoder.depth) |
           put_attr_i64(g, "decoder_width", s->decoder.width) |
           put_attr_i64(g, "discriminator_depth", s->discriminator.depth) |
           put_attr_i64(g, "discriminator_width", s->discriminator.width) |
           put_attr_f64(g, "dropout", s->dropout) |
           put_attr_i64(g, "normalize_u", s->normalize_u);
  int64_t lik[CLUE_K], in[CLUE_K], feat[CLUE_K];
  char names[CLUE_K * CLUE_NAME_MAX];
  memset(names, 0, sizeof names);
  for (int k = 0; k < s->n_mod; k++) {
    lik[k] = s->lik[k];
    in[k] = s->enc_in[k];
    feat[k] = s->n_feat[k];
    memcpy(names + k * CLUE_NAME_MAX, s->names[k], CLUE_NAME_MAX);
  }
  if (!rc) rc = put_array(g, "likelihood", H5T_NATIVE_INT64, lik, s->n_mod, 8);
  if (!rc) rc = put_array(g, "enc_in", H5T_NATIVE_INT64, in, s->n_mod, 8);
  if (!rc) rc = put_array(g, "n_feat", H5T_NATIVE_INT64, feat, s->n_mod, 8);
  if (!rc)
    rc = put_array(g, "names", H5T_NATIVE_CHAR, names, (int64_t)s->n_mod * CLUE_NAME_MAX, 1);
  H5Gclose(g);
  return rc;
}

static int get_spec(hid_t file, clue_model_spec *s, const char *path, clue_err *err) {
  memset(s, 0, sizeof *s);
  if (H5Lexists(file, "spec", H5P_DEFAULT) <= 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: group spec is missing", path);
  hid_t g = H5Gopen2(file, "spec", H5P_DEFAULT);
  int64_t v[11];
  const char *keys[] = {"n_mod", "latent_dim", "n_batches", "encoder_depth", "encoder_width",
                        "decoder_depth", "decoder_width", "discriminator_depth",
                        "discriminator_width", "normalize_u"};
  int rc = CLUE_OK;
  for (int i = 0; i < 10 && !rc; i++)
    if (get_attr_i64(g, keys[i], &v[i]))
      rc = clue_fail(err, CLUE_EFORMAT, "%s: spec attribute %s is missing", path, keys[i]);
  if (!rc && get_attr_f64(g, "dropout", &s->dropout))
    rc = clue_fail(err, CLUE_EFORMAT, "%s: spec attribute dropout is missing", path);
  if (!rc && (v[0] < 2 || v[0] > CLUE_K))
    rc = clue_fail(err, CLUE_EFORMAT, "%s: spec has %lld modalities", path, (long long)v[0]);
  if (!rc) {
    s->n_mod = (int)v[0];
    s->latent_dim = (int)v[1];
    s->n_batches = (int)v[2];
    s->encoder = (clue_mlp_config){(int)v[3], (int)v[4]};
    s->decoder = (clue_mlp_config){(int)v[5], (int)v[6]};
    s->discriminator = (clue_mlp_config){(int)v[7], (int)v[8]};
    s->normalize_u = v[9] != 0;
    int64_t lik[CLUE_K], in[CLUE_K], feat[CLUE_K];
    char names[CLUE_K * CLUE_NAME_MAX];
    rc = get_array(g, "likelihood", H5T_NATIVE_INT64, lik, s->n_mod, 8, path, err);
    if (!rc) rc = get_array(g, "enc_in", H5T_NATIVE_INT64, in, s->n_mod, 8, path, err);
    if (!rc) rc = get_array(g, "n_feat", H5T_NATIVE_INT64, feat, s->n_mod, 8, path, err);
    if (!rc)
      rc = get_array(g, "names", H5T_NATIVE_CHAR, names, (int64_t)s->n_mod * CLUE_NAME_MAX, 1,
                     path, err);
    for (int k = 0; !rc && k < s->n_mod; k++) {
      s->lik[k] = (clue_likelihood)lik[k];
      s->enc_in[k] = (int)in[k];
      s->n_feat[k] = (int)feat[k];
      memcpy(s->names[k], names + k * CLUE_NAME_MAX, CLUE_NAME_MAX);
      s->names[k][CLUE_NAME_MAX - 1] = '\0';
    }
  }
  H5Gclose(g);
  return rc;
}

/* ---- batches and state ---- */

static int put_strings(hid_t parent, const char *name, const clue_strings *s) {
  size_t total = 1;
  for (int64_t i = 0; i < s->n; i++) total += strlen(s->s[i]) + 1;
  char *buf = calloc(total, 1);
  if (!buf) return -1;
  size_t at = 0;
  for (int64_t i = 0; i < s->n; i++) {
    size_t len = strlen(s->s[i]);
    memcpy(buf + at, s->s[i], len + 1);
    at += len + 1;
  }
  int rc = put_array(parent, name, H5T_NATIVE_CHAR, buf, (int64_t)total, 1);
  if (!rc) {
    hid_t ds = H5Dopen2(parent, name, H5P_DEFAULT);
    rc = put_attr_i64(ds, "count", s->n);
    H5Dclose(ds);
  }
  free(buf);
  return rc;
}

static int get_strings(hid_t parent, const char *name, clue_strings **out, const char *path,
                       clue_err *err) {
  char *buf = NULL;
  int rc = get_string(parent, name, &buf, path, err);
  if (rc) return rc;
  hid_t ds = H5Dopen2(parent, name, H5P_DEFAULT);
  hid_t sp = H5Dget_space(ds);
  int64_t total = H5Sget_simple_extent_npoints(sp), count = -1;
  H5Sclose(sp);
  get_attr_i64(ds, "count", &count);
  H5Dclose(ds);
  const char **items = calloc((size_t)(count > 0 ? count : 1), sizeof *items);
  int64_t at = 0;
  for (int64_t i = 0; items && i < count; i++) {
    if (at >= total) {
      count = -1;
      break;
    }
    items[i] = buf + at;
    at += (int64_t)strlen(buf + at) + 1;
  }
  if (!items || count < 0) {
    free(items);
    free(buf);
    return clue_fail(err, CLUE_EFORMAT, "%s: string list %s is damaged", path, name);
  }
  *out = clue_strings_from(items, count, err);
  free(items);
  free(buf);
  return *out ? CLUE_OK : CLUE_ENOMEM;
}

static int put_state(hid_t file, const clue_train_state *st) {
  hid_t g = make_group(file, "state");
  if (g < 0) return -1;
  int rc = put_attr_i64(g, "epoch", st->epoch) | put_attr_i64(g, "step", st->step) |
           put_attr_f64(g, "lr", st->lr) | put_attr_f64(g, "best_loss", st->best_loss) |
           put_attr_i64(g, "best_epoch", st->best_epoch) |
           put_attr_i64(g, "bad_epochs", st->bad_epochs) |
           put_attr_f64(g, "plateau_best", st->plateau_best) |
           put_attr_i64(g, "plateau_bad", st->plateau_bad) |
           put_attr_i64(g, "finished", st->finished) |
           put_attr_i64(g, "partial_steps", st->partial_steps) |
           put_attr_f64(g, "seconds", st->seconds);
  if (!rc)
    rc = put_array(g, "partial", H5T_NATIVE_DOUBLE, &st->partial,
                   (int64_t)(sizeof st->partial / sizeof(double)), sizeof(double));
  H5Gclose(g);
  return rc;
}

static int get_state(hid_t file, clue_train_state *st, const char *path, clue_err *err) {
  hid_t g = H5Gopen2(file, "state", H5P_DEFAULT);
  if (g < 0) return clue_fail(err, CLUE_EFORMAT, "%s: group state is missing", path);
  int64_t fin = 0;
  int bad = get_attr_i64(g, "epoch", &st->epoch) | get_attr_i64(g, "step", &st->step) |
            get_attr_f64(g, "lr", &st->lr) | get_attr_f64(g, "best_loss", &st->best_loss) |
            get_attr_i64(g, "best_epoch", &st->best_epoch) |
            get_attr_i64(g, "bad_epochs", &st->bad_epochs) |
            get_attr_f64(g, "plateau_best", &st->plateau_best) |
            get_attr_i64(g, "plateau_bad", &st->plateau_bad) |
            get_attr_i64(g, "finished", &fin) |
            get_attr_i64(g, "partial_steps", &st->partial_steps) |
            get_attr_f64(g, "seconds", &st->seconds);
  st->finished = fin != 0;
  int rc = bad ? clue_fail(err, CLUE_EFORMAT, "%s: state attributes are incomplete", path)
               : get_array(g, "partial", H5T_NATIVE_DOUBLE, &st->partial,
                           (int64_t)(sizeof st->partial / sizeof(double)), sizeof(double),
                           path, err);
  H5Gclose(g);
  return rc;
}

/* ---- save ---- */

/* /calib/<from>/<to>: a, b, lo, hi (the target's decoded features), attributes
 * cells and library. */
static int put_calib(hid_t g, const char *name, const clue_calib *k) {
  hid_t t = make_group(g, name);
  if (t < 0) return -1;
  int64_t n = k->n_feat;
  int rc = put_attr_i64(t, "cells", k->n_cells) | put_attr_f64(t, "library", k->library) |
           put_attr_i64(t, "validation", k->validation) |
           put_array(t, "a", H5T_NATIVE_DOUBLE, k->a, n, sizeof(double)) |
           put_array(t, "b", H5T_NATIVE_DOUBLE, k->b, n, sizeof(double)) |
           put_array(t, "lo", H5T_NATIVE_DOUBLE, k->lo, n, sizeof(double)) |
           put_array(t, "hi", H5T_NATIVE_DOUBLE, k->hi, n, sizeof(double));
  H5Gclose(t);
  return rc;
}

static int put_calibs(hid_t f, const clue_ckpt *c) {
  bool any = false;
  for (int i = 0; i < c->n_mod; i++)
    for (int j = 0; j < c->n_mod; j++) any |= c->calib[i][j] != NULL;
  if (!any) return 0;
  hid_t g = make_group(f, "calib");
  int rc = g < 0 ? -1 : 0;
  for (int i = 0; i < c->n_mod && !rc; i++) {
    hid_t from = make_group(g, c->model->spec.names[i]);
    rc = from < 0 ? -1 : 0;
    for (int j = 0; j < c->n_mod && !rc; j++)
      if (c->calib[i][j]) rc = put_calib(from, c->model->spec.names[j], c->calib[i][j]);
    if (from >= 0) H5Gclose(from);
  }
  if (g >= 0) H5Gclose(g);
  return rc;
}

/* /refcells: attributes n, dim; names, present (n × K); blend (K × K × 4:
 * w_embedding, w_input, n_cells, validation of clue_blend [from][to]);
 * <mod>/emb (n × dim), <mod>/input (n × R), <mod>/indptr, indices, data (the
 * targets, n × F). */
static int put_refcells(hid_t f, const clue_ckpt *c) {
  const clue_refcells *r = c->refcells;
  if (!r) return 0;
  hid_t g = make_group(f, "refcells");
  if (g < 0) return -1;
  int rc = put_attr_i64(g, "n", r->n) | put_attr_i64(g, "dim", r->dim) |
           put_strings(g, "names", r->names) |
           put_array(g, "present", H5T_NATIVE_UINT8, r->present, r->n * r->n_mod, 1);
  double blend[CLUE_MAX_MOD * CLUE_MAX_MOD * 4];
  for (int i = 0; i < r->n_mod; i++)
    for (int j = 0; j < r->n_mod; j++) {
      const clue_blend *b = &r->blend[i][j];
      double *o = blend + (i * r->n_mod + j) * 4;
      o[0] = b->w_embedding, o[1] = b->w_input, o[2] = (double)b->n_cells, o[3] = b->validation;
    }
  if (!rc) rc = put_array(g, "blend", H5T_NATIVE_DOUBLE, blend, r->n_mod * r->n_mod * 4,
                          sizeof(double));
  for (int k = 0; k < r->n_mod && !rc; k++) {
    hid_t m = make_group(g, c->model->spec.names[k]);
    const clue_csr *t = r->target[k];
    int64_t nnz = clue_csr_nnz(t);
    rc = m < 0 ? -1
               : put_array(m, "emb", H5T_NATIVE_FLOAT, r->emb[k], r->n * r->dim, sizeof(float)) |
                     (r->input[k] ? put_array(m, "input", H5T_NATIVE_FLOAT, r->input[k],
                                              r->n * r->in_dim[k], sizeof(float))
                                  : 0) |
                     put_array(m, "indptr", H5T_NATIVE_INT64, t->indptr, r->n + 1,
                               sizeof(int64_t)) |
                     put_array(m, "indices", H5T_NATIVE_INT32, t->indices, nnz,
                               sizeof(int32_t)) |
                     put_array(m, "data", H5T_NATIVE_FLOAT, t->data, nnz, sizeof(float));
    if (m >= 0) H5Gclose(m);
  }
  H5Gclose(g);
  return rc;
}

static int write_all(hid_t f, const clue_ckpt *c) {
  int rc = put_attr_i64(f, "format_version", CLUE_CKPT_FORMAT_VERSION);
  if (!rc) rc = put_string(f, "config", c->config_yaml ? c->config_yaml : "");
  if (!rc) rc = put_spec(f, &c->model->spec);
  if (!rc) rc = put_strings(f, "batches", c->batch_names);
  if (!rc) rc = put_state(f, &c->state);
  hid_t g = rc ? -1 : make_group(f, "prep");
  if (g < 0) return -1;
  for (int k = 0; k < c->n_mod && !rc; k++) {
    hid_t pg = make_group(g, c->model->spec.names[k]);
    clue_err e;
    rc = pg < 0 ? -1 : clue_prep_save(c->prep[k], pg, &e);
    if (pg >= 0) H5Gclose(pg);
  }
  H5Gclose(g);
  const clue_model *m = c->model;
  hid_t p = rc ? -1 : make_group(f, "params");
  if (p < 0) return -1;
  rc = put_arena(p, "gen", &m->gen, m->gen.w) | put_arena(p, "disc", &m->disc, m->disc.w) |
       put_arena(p, "buf", &m->buf, m->buf.w);
  H5Gclose(p);
  if (!rc && c->has_best) {
    hid_t b = make_group(f, "best");
    rc = b < 0 ? -1
               : put_arena(b, "gen", &m->gen, c->best.gen) |
                     put_arena(b, "disc", &m->disc, c->best.disc) |
                     put_arena(b, "buf", &m->buf, c->best.buf);
    if (b >= 0) H5Gclose(b);
  }
  if (!rc && c->has_pseudo) {
    hid_t g2 = make_group(f, "pseudo");
    rc = g2 < 0 ? -1
                : put_attr_i64(g2, "step", c->pseudo_step) |
                      put_array(g2, "pairs", H5T_NATIVE_INT64, c->pseudo, 3 * c->n_pseudo,
                                sizeof(int64_t));
    if (g2 >= 0) H5Gclose(g2);
  }
  if (!rc) rc = put_calibs(f, c);
  if (!rc) rc = put_refcells(f, c);
  if (!rc && c->has_optim) {
    hid_t o = make_group(f, "optim");
    rc = o < 0 ? -1
               : put_optim(o, "gen", &c->opt_gen, &m->gen) |
                     put_optim(o, "disc", &c->opt_disc, &m->disc);
    if (o >= 0) H5Gclose(o);
  }
  return rc;
}

/* fsync a file or folder by path. */
static int sync_path(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* Fails naming the first tensor of an arena-shaped buffer that is not finite. */
static int check_finite(const clue_arena *a, const real *vals, const char *what,
                        const char *path, clue_err *err) {
  int64_t at = 0;
  int t = vals ? clue_arena_find_nonfinite(a, vals, HUGE_VAL, &at) : -1;
  if (t < 0) return CLUE_OK;
  return clue_fail(err, CLUE_ENUMERIC,
                   "refusing to write checkpoint %s: %s %s[%lld] is %g; the previous "
                   "checkpoint is unchanged",
                   path, what, a->t[t].name, (long long)at, (double)vals[a->t[t].offset + at]);
}

/* A checkpoint never holds a NaN or an infinity: the weights, BatchNorm
 * statistics, best weights and optimiser state are checked before writing. */
static int check_all_finite(const clue_ckpt *c, const char *path, clue_err *err) {
  const clue_model *m = c->model;
  int rc = check_finite(&m->gen, m->gen.w, "parameter", path, err);
  if (!rc) rc = check_finite(&m->disc, m->disc.w, "parameter", path, err);
  if (!rc) rc = check_finite(&m->buf, m->buf.w, "BatchNorm statistic", path, err);
  if (!rc && c->has_best) rc = check_finite(&m->gen, c->best.gen, "best parameter", path, err);
  if (!rc && c->has_best) rc = check_finite(&m->disc, c->best.disc, "best parameter", path, err);
  if (!rc && c->has_best) rc = check_finite(&m->buf, c->best.buf, "best statistic", path, err);
  if (!rc && c->has_optim) {
    rc = check_finite(&m->gen, c->opt_gen.v, "optimiser state of", path, err);
    if (!rc) rc = check_finite(&m->gen, c->opt_gen.m, "optimiser state of", path, err);
    if (!rc) rc = check_finite(&m->disc, c->opt_disc.v, "optimiser state of", path, err);
    if (!rc) rc = check_finite(&m->disc, c->opt_disc.m, "optimiser state of", path, err);
  }
  return rc;
}

/* The whole checkpoint as an HDF5 file image in memory (HDF5's core driver, no
 * backing store): HDF5 never touches the disk, so a full or failing disk is met
 * by our own write() below, never inside HDF5 (whose file close fails badly on
 * a full disk). *image is malloc'd. */
static int build_image(const char *path, const clue_ckpt *c, void **image, size_t *size,
                       clue_err *err) {
  *image = NULL;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, (size_t)1 << 22, 0);
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_userblock(fcpl, CLUE_CKPT_HEADER_BYTES); /* room for our header */
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
  H5Pclose(fcpl);
  H5Pclose(fapl);
  if (f < 0) return clue_fail(err, CLUE_ENOMEM, "cannot build checkpoint %s in memory", path);
  int rc = write_all(f, c);
  ssize_t n = rc == 0 && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
  void *buf = n > 0 ? malloc((size_t)n) : NULL;
  if (buf && H5Fget_file_image(f, buf, (size_t)n) != n) {
    free(buf);
    buf = NULL;
  }
  H5Fclose(f);
  if (!buf)
    return clue_fail(err, CLUE_ENOMEM, "cannot build checkpoint %s in memory (out of memory?)",
                     path);
  *image = buf;
  *size = (size_t)n;
  return CLUE_OK;
}

/* Writes size bytes to fd; 0 or the errno of the failure. */
static int write_bytes(int fd, const void *data, size_t size) {
  const char *p = data;
  size_t left = size;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : ENOSPC;
    p += w;
    left -= (size_t)w;
  }
  return 0;
}

/* Writes the header and then the HDF5 image to a new file at tmp and flushes it
 * to disk. Returns 0, or the errno of the failure (the partial file is then
 * removed). */
static int write_file(const char *tmp, const void *image, size_t size) {
  char head[CLUE_CKPT_HEADER_BYTES];
  if (clue_ckpt_header_format(head, size, clue_crc32(0, image, size)) != 0) return EINVAL;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno ? errno : EIO;
  int e = write_bytes(fd, head, sizeof head);
  if (!e) e = write_bytes(fd, image, size);
  if (!e && fsync(fd) != 0) e = errno;
  if (close(fd) != 0 && !e) e = errno;
  if (e) unlink(tmp);
  return e;
}

int clue_ckpt_save(const char *path, const clue_ckpt *c, clue_err *err) {
  int bad = check_all_finite(c, path, err);
  if (bad) return bad;
  void *image = NULL;
  size_t size = 0;
  int rc = build_image(path, c, &image, &size, err);
  if (rc) return rc;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int e = write_file(tmp, image, size);
  free(image);
  if (e == ENOSPC || e == EDQUOT)
    return clue_fail(err, CLUE_EIO,
                     "cannot write checkpoint %s (disk full?): %s; the previous checkpoint is "
                     "unchanged",
                     path, strerror(e));
  if (e)
    return clue_fail(err, CLUE_EIO,
                     "cannot create checkpoint %s: %s (folder missing or not writable?); the "
                     "previous checkpoint is unchanged",
                     tmp, strerror(e));
  if (rename(tmp, path) != 0) {
    e = errno;
    unlink(tmp);
    return clue_fail(err, CLUE_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
  }
  char dir[4200];
  snprintf(dir, sizeof dir, "%s", path);
  sync_path(dirname(dir));
  return CLUE_OK;
}

/* ---- load ---- */

/* /pseudo: the pseudo-partners of a run with train.pseudo. */
static int get_pseudo(hid_t f, clue_ckpt *c, const char *path, clue_err *err) {
  hid_t g = H5Gopen2(f, "pseudo", H5P_DEFAULT);
  if (g < 0) return clue_fail(err, CLUE_EFORMAT, "%s: cannot open group pseudo", path);
  int rc = CLUE_OK;
  hssize_t n = -1;
  if (get_attr_i64(g, "step", &c->pseudo_step) < 0)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: pseudo has no step attribute", path);
  if (!rc && H5Lexists(g, "pairs", H5P_DEFAULT) > 0) {
    hid_t ds = H5Dopen2(g, "pairs", H5P_DEFAULT);
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
    n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
  }
  if (!rc && (n < 0 || n % 3 != 0))
    rc = clue_fail(err, CLUE_EFORMAT, "%s: dataset pseudo/pairs is missing or not triples",
                   path);
  if (!rc && !(c->pseudo = clue_malloc((size_t)n * sizeof(int64_t) + 1, err))) rc = CLUE_ENOMEM;
  if (!rc) rc = get_array(g, "pairs", H5T_NATIVE_INT64, c->pseudo, n, sizeof(int64_t), path, err);
  H5Gclose(g);
  c->n_pseudo = n / 3;
  c->has_pseudo = rc == CLUE_OK;
  return rc;
}

/* /calib/<from>/<to> of a checkpoint that has it. */
static int get_calib(hid_t g, const char *from, const char *to, int64_t n, clue_calib **out,
                     const char *path, clue_err *err) {
  char where[CLUE_PATH_MAX + 2 * CLUE_NAME_MAX + 16];
  snprintf(where, sizeof where, "%s: calib/%s/%s", path, from, to);
  hid_t t = H5Gopen2(g, to, H5P_DEFAULT);
  if (t < 0) return clue_fail(err, CLUE_EFORMAT, "%s: cannot open the group", where);
  clue_calib *k = clue_calib_new(n, err);
  int rc = k ? CLUE_OK : CLUE_ENOMEM;
  int64_t validation = 0; /* absent: fitted on all cells (the first checkpoints with calib) */
  if (!rc && (get_attr_i64(t, "cells", &k->n_cells) < 0 ||
              get_attr_f64(t, "library", &k->library) < 0))
    rc = clue_fail(err, CLUE_EFORMAT, "%s: no cells or library attribute", where);
  if (!rc && H5Aexists(t, "validation") > 0 && get_attr_i64(t, "validation", &validation) < 0)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: unreadable validation attribute", where);
  if (!rc) k->validation = validation != 0;
  const char *names[4] = {"a", "b", "lo", "hi"};
  for (int i = 0; i < 4 && !rc; i++)
    rc = get_array(t, names[i], H5T_NATIVE_DOUBLE, k->a + i * n, n, sizeof(double), where, err);
  H5Gclose(t);
  if (rc) {
    clue_calib_free(k);
    return rc;
  }
  *out = k;
  return CLUE_OK;
}

static int get_calibs(hid_t f, clue_ckpt *c, const char *path, clue_err *err) {
  if (H5Lexists(f, "calib", H5P_DEFAULT) <= 0) return CLUE_OK;
  const clue_model_spec *s = &c->model->spec;
  hid_t g = H5Gopen2(f, "calib", H5P_DEFAULT);
  int rc = g < 0 ? clue_fail(err, CLUE_EFORMAT, "%s: cannot open group calib", path) : CLUE_OK;
  for (int i = 0; i < s->n_mod && !rc; i++) {
    if (H5Lexists(g, s->names[i], H5P_DEFAULT) <= 0) continue;
    hid_t from = H5Gopen2(g, s->names[i], H5P_DEFAULT);
    for (int j = 0; j < s->n_mod && !rc; j++)
      if (j != i && H5Lexists(from, s->names[j], H5P_DEFAULT) > 0)
        rc = get_calib(from, s->names[i], s->names[j], s->n_feat[j], &c->calib[i][j], path, err);
    H5Gclose(from);
  }
  if (g >= 0) H5Gclose(g);
  return rc;
}

/* One modality's part of /refcells into r (its n, n_mod and dim set). */
static int get_refcells_mod(hid_t g, const clue_model_spec *s, int k, clue_refcells *r,
                            const char *path, clue_err *err) {
  char where[CLUE_PATH_MAX + CLUE_NAME_MAX + 16];
  snprintf(where, sizeof where, "%s: refcells/%s", path, s->names[k]);
  hid_t m = H5Gopen2(g, s->names[k], H5P_DEFAULT);
  if (m < 0) return clue_fail(err, CLUE_EFORMAT, "%s: the group is missing", where);
  int64_t nnz = -1;
  hid_t ds = H5Lexists(m, "indices", H5P_DEFAULT) > 0 ? H5Dopen2(m, "indices", H5P_DEFAULT) : -1;
  if (ds >= 0) {
    hid_t sp = H5Dget_space(ds);
    nnz = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp), H5Dclose(ds);
  }
  int rc = nnz < 0 ? clue_fail(err, CLUE_EFORMAT, "%s: dataset indices is missing", where)
                   : CLUE_OK;
  if (!rc && (!(r->emb[k] = clue_malloc((size_t)(r->n * r->dim + 1) * sizeof(float), err)) ||
              !(r->target[k] = clue_csr_new(r->n, s->n_feat[k], nnz, err))))
    rc = CLUE_ENOMEM;
  if (!rc) rc = get_array(m, "emb", H5T_NATIVE_FLOAT, r->emb[k], r->n * r->dim, sizeof(float),
                          where, err);
  r->in_dim[k] = s->enc_in[k];
  if (!rc && H5Lexists(m, "input", H5P_DEFAULT) > 0) { /* older checkpoints have none */
    if (!(r->input[k] = clue_malloc((size_t)(r->n * s->enc_in[k] + 1) * sizeof(float), err)))
      rc = CLUE_ENOMEM;
    if (!rc) rc = get_array(m, "input", H5T_NATIVE_FLOAT, r->input[k], r->n * s->enc_in[k],
                            sizeof(float), where, err);
  }
  if (!rc) rc = get_array(m, "indptr", H5T_NATIVE_INT64, r->target[k]->indptr, r->n + 1,
                          sizeof(int64_t), where, err);
  if (!rc) rc = get_array(m, "indices", H5T_NATIVE_INT32, r->target[k]->indices, nnz,
                          sizeof(int32_t), where, err);
  if (!rc) rc = get_array(m, "data", H5T_NATIVE_FLOAT, r->target[k]->data, nnz, sizeof(float),
                          where, err);
  if (!rc && (r->target[k]->indptr[r->n] != nnz ||
              clue_csr_validate(r->target[k], where, err)))
    rc = clue_fail(err, CLUE_EFORMAT, "%s: the targets are not a valid sparse matrix", where);
  H5Gclose(m);
  return rc;
}

/* /refcells/blend into r->blend; weights outside [0, 1] or with a sum above 1,
 * or an input weight without inputs, are a damaged file. */
static int get_blend(hid_t g, const clue_model_spec *s, clue_refcells *r, const char *path,
                     clue_err *err) {
  int K = r->n_mod;
  double v[CLUE_MAX_MOD * CLUE_MAX_MOD * 4];
  int rc = get_array(g, "blend", H5T_NATIVE_DOUBLE, v, K * K * 4, sizeof(double), path, err);
  for (int i = 0; i < K && !rc; i++)
    for (int j = 0; j < K && !rc; j++) {
      const double *o = v + (i * K + j) * 4;
      bool ok = o[0] >= 0 && o[1] >= 0 && o[0] + o[1] <= 1 + 1e-9 && o[2] >= 0 &&
                (o[1] == 0 || r->input[i]);
      if (!ok)
        return clue_fail(err, CLUE_EFORMAT, "%s: refcells/blend: bad weights for %s -> %s",
                         path, s->names[i], s->names[j]);
      r->blend[i][j] = (clue_blend){o[0], o[1], (int64_t)o[2], o[3] != 0};
    }
  return rc;
}

static int get_refcells(hid_t f, clue_ckpt *c, const char *path, clue_err *err) {
  if (H5Lexists(f, "refcells", H5P_DEFAULT) <= 0) return CLUE_OK;
  const clue_model_spec *s = &c->model->spec;
  hid_t g = H5Gopen2(f, "refcells", H5P_DEFAULT);
  if (g < 0) return clue_fail(err, CLUE_EFORMAT, "%s: cannot open group refcells", path);
  clue_refcells *r = clue_calloc(1, sizeof *r, err);
  int rc = r ? CLUE_OK : CLUE_ENOMEM;
  int64_t dim = -1;
  if (!rc && (get_attr_i64(g, "n", &r->n) < 0 || get_attr_i64(g, "dim", &dim) < 0 || r->n < 0 ||
              dim != (int64_t)s->n_mod * s->latent_dim))
    rc = clue_fail(err, CLUE_EFORMAT, "%s: refcells: bad n or dim attribute", path);
  if (!rc) {
    r->n_mod = s->n_mod, r->dim = (int)dim;
    rc = get_strings(g, "names", &r->names, path, err);
  }
  if (!rc && r->names->n != r->n)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: refcells: %lld names for %lld cells", path,
                   (long long)r->names->n, (long long)r->n);
  if (!rc && !(r->present = clue_malloc((size_t)(r->n * r->n_mod + 1), err))) rc = CLUE_ENOMEM;
  if (!rc) rc = get_array(g, "present", H5T_NATIVE_UINT8, r->present, r->n * r->n_mod, 1,
                          path, err);
  for (int k = 0; k < s->n_mod && !rc; k++) rc = get_refcells_mod(g, s, k, r, path, err);
  if (!rc && H5Lexists(g, "blend", H5P_DEFAULT) > 0) rc = get_blend(g, s, r, path, err);
  H5Gclose(g);
  if (rc) {
    clue_refcells_free(r);
    return rc;
  }
  c->refcells = r;
  return CLUE_OK;
}

static int read_all(hid_t f, const char *path, clue_ckpt *c, clue_err *err) {
  int64_t version = 0;
  if (get_attr_i64(f, "format_version", &version))
    return clue_fail(err, CLUE_EFORMAT, "%s: not a clue checkpoint (no format_version)", path);
  if (version != CLUE_CKPT_FORMAT_VERSION)
    return clue_fail(err, CLUE_EFORMAT,
                     "%s: checkpoint format version %lld, this clue reads version %d", path,
                     (long long)version, CLUE_CKPT_FORMAT_VERSION);
  int rc = get_string(f, "config", &c->config_yaml, path, err);
  clue_model_spec spec;
  if (!rc) rc = get_spec(f, &spec, path, err);
  if (!rc) rc = clue_model_new(&spec, 0, &c->model, err);
  if (rc) return rc == CLUE_EINVAL ? clue_err_prefix(err, "%s", path) : rc;
  c->n_mod = spec.n_mod;
  if ((rc = get_strings(f, "batches", &c->batch_names, path, err))) return rc;
  if (c->batch_names->n != spec.n_batches)
    return clue_fail(err, CLUE_EFORMAT, "%s: %lld batch names for %d batches", path,
                     (long long)c->batch_names->n, spec.n_batches);
  if ((rc = get_state(f, &c->state, path, err))) return rc;
  hid_t g = H5Gopen2(f, "prep", H5P_DEFAULT);
  if (g < 0) return clue_fail(err, CLUE_EFORMAT, "%s: group prep is missing", path);
  for (int k = 0; k < spec.n_mod && !rc; k++) {
    hid_t pg = H5Gopen2(g, spec.names[k], H5P_DEFAULT);
    if (pg < 0) {
      rc = clue_fail(err, CLUE_EFORMAT, "%s: prep/%s is missing", path, spec.names[k]);
      break;
    }
    rc = clue_prep_load(pg, &c->prep[k], err);
    if (rc) clue_err_prefix(err, "%s: prep/%s", path, spec.names[k]);
    H5Gclose(pg);
  }
  H5Gclose(g);
  if (rc) return rc;
  clue_model *m = c->model;
  hid_t p = H5Gopen2(f, "params", H5P_DEFAULT);
  if (p < 0) return clue_fail(err, CLUE_EFORMAT, "%s: group params is missing", path);
  rc = get_arena(p, "gen", &m->gen, m->gen.w, path, err);
  if (!rc) rc = get_arena(p, "disc", &m->disc, m->disc.w, path, err);
  if (!rc) rc = get_arena(p, "buf", &m->buf, m->buf.w, path, err);
  H5Gclose(p);
  if (rc) return rc;
  if (H5Lexists(f, "best", H5P_DEFAULT) > 0) {
    if ((rc = clue_snapshot_alloc(&c->best, m, err))) return rc;
    c->has_best = true;
    hid_t b = H5Gopen2(f, "best", H5P_DEFAULT);
    rc = get_arena(b, "gen", &m->gen, c->best.gen, path, err);
    if (!rc) rc = get_arena(b, "disc", &m->disc, c->best.disc, path, err);
    if (!rc) rc = get_arena(b, "buf", &m->buf, c->best.buf, path, err);
    H5Gclose(b);
    if (rc) return rc;
  }
  if (H5Lexists(f, "pseudo", H5P_DEFAULT) > 0 && (rc = get_pseudo(f, c, path, err))) return rc;
  if ((rc = get_calibs(f, c, path, err))) return rc;
  if ((rc = get_refcells(f, c, path, err))) return rc;
  if (H5Lexists(f, "optim", H5P_DEFAULT) > 0) {
    c->has_optim = true;
    hid_t o = H5Gopen2(f, "optim", H5P_DEFAULT);
    rc = get_optim(o, "gen", &c->opt_gen, &m->gen, path, err);
    if (!rc) rc = get_optim(o, "disc", &c->opt_disc, &m->disc, path, err);
    H5Gclose(o);
  }
  return rc;
}

int clue_ckpt_load(const char *path, clue_ckpt *c, clue_err *err) {
  memset(c, 0, sizeof *c);
  if (access(path, R_OK) != 0)
    return clue_fail(err, CLUE_EIO, "cannot read checkpoint %s: %s", path, strerror(errno));
  bool has_header = false;
  int bad = clue_ckpt_verify_file(path, &has_header, err);
  if (bad) return bad;
  if (H5Fis_hdf5(path) <= 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: not an HDF5 file (truncated or not a checkpoint)",
                     path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return clue_fail(err, CLUE_EFORMAT, "%s: cannot open as HDF5 (damaged?)", path);
  int rc = read_all(f, path, c, err);
  H5Fclose(f);
  if (rc) clue_ckpt_release(c);
  return rc;
}

void clue_ckpt_release(clue_ckpt *c) {
  free(c->config_yaml);
  for (int k = 0; k < CLUE_K; k++) clue_prep_free(c->prep[k]);
  clue_strings_free(c->batch_names);
  if (c->has_optim) {
    clue_optim_release(&c->opt_gen);
    clue_optim_release(&c->opt_disc);
  }
  clue_snapshot_release(&c->best);
  free(c->pseudo);
  for (int i = 0; i < CLUE_K; i++)
    for (int j = 0; j < CLUE_K; j++) clue_calib_free(c->calib[i][j]);
  clue_refcells_free(c->refcells);
  clue_model_free(c->model);
  memset(c, 0, sizeof *c);
}

/* ---- snapshots ---- */

int clue_snapshot_alloc(clue_snapshot *s, const clue_model *m, clue_err *err) {
  s->gen = clue_malloc((size_t)(m->gen.n + 1) * sizeof(real), err);
  s->disc = clue_malloc((size_t)(m->disc.n + 1) * sizeof(real), err);
  s->buf = clue_malloc((size_t)(m->buf.n + 1) * sizeof(real), err);
  if (!s->gen || !s->disc || !s->buf) {
    clue_snapshot_release(s);
    return CLUE_ENOMEM;
  }
  return CLUE_OK;
}

void clue_snapshot_take(clue_snapshot *s, const clue_model *m) {
  memcpy(s->gen, m->gen.w, (size_t)m->gen.n * sizeof(real));
  memcpy(s->disc, m->disc.w, (size_t)m->disc.n * sizeof(real));
  memcpy(s->buf, m->buf.w, (size_t)m->buf.n * sizeof(real));
}

void clue_snapshot_restore(const clue_snapshot *s, clue_model *m) {
  memcpy(m->gen.w, s->gen, (size_t)m->gen.n * sizeof(real));
  memcpy(m->disc.w, s->disc, (size_t)m->disc.n * sizeof(real));
  memcpy(m->buf.w, s->buf, (size_t)m->buf.n * sizeof(real));
}

void clue_snapshot_release(clue_snapshot *s) {
  free(s->gen);
  free(s->disc);
  free(s->buf);
  s->gen = s->disc = s->buf = NULL;
}
