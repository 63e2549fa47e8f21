/* h5ad_attr.c — reading the small things of an AnnData file: string, integer
 * and boolean attributes (as h5py writes them: variable-length UTF-8 strings,
 * numpy integer arrays, numpy bools as HDF5 enums), link existence, group
 * listings, and opening a file read-only for non-collective queries. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5ad_internal.h"

bool h5ad__exists(hid_t loc, const char *name) {
  char part[CLUE_PATH_MAX];
  size_t len = strlen(name);
  if (len == 0 || len >= sizeof part) return false;
  for (size_t i = 1; i <= len; i++) {
    if (name[i] != '/' && name[i] != '\0') continue;
    memcpy(part, name, i);
    part[i] = '\0';
    if (H5Lexists(loc, part, H5P_DEFAULT) <= 0) return false;
    if (H5Oexists_by_name(loc, part, H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

/* Opens attribute `name` of obj; 0 when absent, 1 when opened, <0 on error. */
static int attr_open(hid_t obj, const char *name, hid_t *attr, hid_t *type,
                     hid_t *space) {
  htri_t ex = H5Aexists(obj, name);
  if (ex == 0) return 0;
  if (ex < 0) return CLUE_EFORMAT;
  *attr = H5Aopen(obj, name, H5P_DEFAULT);
  if (*attr < 0) return CLUE_EFORMAT;
  *type = H5Aget_type(*attr);
  *space = H5Aget_space(*attr);
  if (*type < 0 || *space < 0) {
    if (*type >= 0) H5Tclose(*type);
    if (*space >= 0) H5Sclose(*space);
    H5Aclose(*attr);
    return CLUE_EFORMAT;
  }
  return 1;
}

static void attr_close(hid_t attr, hid_t type, hid_t space) {
  H5Sclose(space);
  H5Tclose(type);
  H5Aclose(attr);
}

int h5ad__attr_string(hid_t obj, const char *name, char *buf, size_t size) {
  hid_t a, t, s;
  buf[0] = '\0';
  int rc = attr_open(obj, name, &a, &t, &s);
  if (rc <= 0) return rc;
  rc = CLUE_EFORMAT;
  if (H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(s) == 1) {
    hid_t mt = h5ad__string_mem_type(t);
    if (H5Tis_variable_str(t) > 0) {
      char *p = NULL;
      if (H5Aread(a, mt, &p) >= 0 && p) {
        snprintf(buf, size, "%s", p);
        H5free_memory(p);
        rc = 1;
      }
    } else {
      size_t len = H5Tget_size(t);
      char *tmp = calloc(len + 1, 1);
      if (tmp && H5Aread(a, mt, tmp) >= 0) {
        h5ad__copy_fixed(buf, size, tmp, len);
        rc = 1;
      }
      free(tmp);
    }
    H5Tclose(mt);
  }
  attr_close(a, t, s);
  return rc;
}

/* Reads the n strings of attribute a (type t) into *out. */
static int attr_read_strings(hid_t a, hid_t t, int64_t n, clue_strings **out,
                             const char *what, clue_err *err) {
  hid_t mt = h5ad__string_mem_type(t);
  int rc = CLUE_OK;
  if (H5Tis_variable_str(t) > 0) {
    char **v = clue_calloc((size_t)n, sizeof *v, err);
    if (!v)
      rc = CLUE_ENOMEM;
    else if (H5Aread(a, mt, v) < 0)
      rc = clue_fail(err, CLUE_EFORMAT, "%s: cannot read the strings", what);
    else {
      *out = h5ad__strings_from_vlen(v, n, err);
      if (!*out) rc = CLUE_ENOMEM;
    }
    free(v);
  } else {
    size_t len = H5Tget_size(t);
    char *raw = clue_calloc((size_t)n, len, err);
    if (!raw)
      rc = CLUE_ENOMEM;
    else if (H5Aread(a, mt, raw) < 0)
      rc = clue_fail(err, CLUE_EFORMAT, "%s: cannot read the strings", what);
    else {
      *out = h5ad__strings_from_fixed(raw, n, len, err);
      if (!*out) rc = CLUE_ENOMEM;
    }
    free(raw);
  }
  H5Tclose(mt);
  return rc;
}

int h5ad__attr_strings(hid_t obj, const char *name, clue_strings **out, const char *what,
                       clue_err *err) {
  hid_t a, t, s;
  *out = NULL;
  int rc = attr_open(obj, name, &a, &t, &s);
  if (rc == 0) return CLUE_OK;
  if (rc < 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: cannot read attribute '%s'", what, name);
  int64_t n = (int64_t)H5Sget_simple_extent_npoints(s);
  if (H5Tget_class(t) != H5T_STRING) {
    rc = n == 0 ? CLUE_OK
                : clue_fail(err, CLUE_EFORMAT, "%s: attribute '%s' should hold strings",
                            what, name);
    if (rc == CLUE_OK) {
      *out = clue_strings_new(0, err);
      if (!*out) rc = CLUE_ENOMEM;
    }
  } else {
    rc = attr_read_strings(a, t, n, out, what, err);
  }
  attr_close(a, t, s);
  return rc;
}

int h5ad__attr_int64s(hid_t obj, const char *name, int64_t *vals, int max, int *n) {
  hid_t a, t, s;
  *n = 0;
  int rc = attr_open(obj, name, &a, &t, &s);
  if (rc <= 0) return rc;
  int64_t npts = (int64_t)H5Sget_simple_extent_npoints(s);
  rc = CLUE_EFORMAT;
  if (H5Tget_class(t) == H5T_INTEGER && npts >= 0 && npts <= max) {
    int64_t tmp[16];
    if (npts <= 16 && H5Aread(a, H5T_NATIVE_INT64, tmp) >= 0) {
      memcpy(vals, tmp, (size_t)npts * sizeof *vals);
      *n = (int)npts;
      rc = 1;
    }
  }
  attr_close(a, t, s);
  return rc;
}

int h5ad__attr_bool(hid_t obj, const char *name, bool *value) {
  hid_t a, t, s;
  *value = false;
  int rc = attr_open(obj, name, &a, &t, &s);
  if (rc <= 0) return rc;
  rc = CLUE_EFORMAT;
  H5T_class_t cls = H5Tget_class(t);
  if ((cls == H5T_ENUM || cls == H5T_INTEGER) && H5Sget_simple_extent_npoints(s) == 1) {
    hid_t mt = H5Tget_native_type(t, H5T_DIR_ASCEND);
    size_t sz = H5Tget_size(mt);
    unsigned char raw[16] = {0};
    if (mt >= 0 && sz <= sizeof raw && H5Aread(a, mt, raw) >= 0) {
      bool any = false;
      for (size_t i = 0; i < sz; i++) any = any || raw[i] != 0;
      *value = any;
      rc = 1;
    }
    if (mt >= 0) H5Tclose(mt);
  }
  attr_close(a, t, s);
  return rc;
}

typedef struct name_list {
  char **v;
  int64_t n, cap;
  int failed;
} name_list;

static herr_t list_one(hid_t g, const char *name, const H5L_info_t *info, void *op) {
  (void)g;
  (void)info;
  name_list *l = op;
  if (l->n == l->cap) {
    int64_t cap = l->cap ? 2 * l->cap : 16;
    char **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) {
      l->failed = 1;
      return -1;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n] = strdup(name);
  if (!l->v[l->n]) {
    l->failed = 1;
    return -1;
  }
  l->n++;
  return 0;
}

int h5ad__list_group(hid_t loc, const char *name, clue_strings **out, const char *what,
                     clue_err *err) {
  *out = NULL;
  name_list l = {0};
  int rc = CLUE_OK;
  if (!strcmp(name, ".") || h5ad__exists(loc, name)) {
    hid_t g = H5Gopen2(loc, name, H5P_DEFAULT);
    if (g < 0)
      rc = clue_fail(err, CLUE_EFORMAT, "%s: %s is not a group", what, name);
    else {
      hsize_t idx = 0;
      if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, list_one, &l) < 0)
        rc = l.failed ? clue_fail(err, CLUE_ENOMEM, "out of memory listing %s", name)
                      : clue_fail(err, CLUE_EFORMAT, "%s: cannot list %s", what, name);
      H5Gclose(g);
    }
  }
  if (rc == CLUE_OK) {
    *out = clue_strings_from((const char *const *)l.v, l.n, err);
    if (!*out) rc = CLUE_ENOMEM;
  }
  for (int64_t i = 0; i < l.n; i++) free(l.v[i]);
  free(l.v);
  return rc;
}

int h5ad__open_plain(const char *path, hid_t *file, clue_err *err) {
  struct stat st;
  *file = -1;
  if (stat(path, &st) != 0)
    return clue_fail(err, CLUE_EIO, "cannot open %s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return clue_fail(err, CLUE_EIO, "cannot open %s: it is a folder, not a file", path);
  htri_t ok = H5Fis_hdf5(path);
  if (ok <= 0) {
    return clue_fail(err, CLUE_EFORMAT,
                     "%s is not an HDF5 file (expected an .h5ad or .h5mu written by "
                     "anndata/mudata)",
                     path);
  }
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_file_locking(fapl, 0, 1);
  *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (*file < 0)
    return clue_fail(err, CLUE_EIO, "cannot open %s as HDF5 (damaged file?)", path);
  return CLUE_OK;
}
