/* h5ad_write_file.c — the output file under construction: a temporary name
 * beside the target, opened in serial mode (rank 0, sec2 driver) or parallel
 * mode (every rank, MPI-IO driver), and renamed over the target on commit after
 * it has been flushed, closed and fsynced. Outputs never replace inputs: the
 * target is compared with the protected paths by device and inode. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5ad_write_internal.h"

typedef struct walk_state {
  char desc[320];
  bool found;
} walk_state;

static herr_t walk_innermost(unsigned n, const H5E_error2_t *e, void *data) {
  (void)n;
  walk_state *w = data;
  if (!w->found && e->desc && e->desc[0]) {
    snprintf(w->desc, sizeof w->desc, "%s", e->desc);
    w->found = true;
  }
  return 0;
}

int h5w_fail(clue_err *err, int code, const char *fmt, ...) {
  walk_state w = {.found = false};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_innermost, &w);
  H5Eclear2(H5E_DEFAULT);
  char msg[CLUE_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* HDF5's I/O failures read "file write failed: time = ...\n, filename = ...,
   * error message = 'No space left on device', ...": keep the start and the
   * system's words, on one line */
  char *em = strstr(w.desc, "error message = '"), *colon = strchr(w.desc, ':');
  if (em && colon && colon < em) {
    em += strlen("error message = '");
    char *q = strchr(em, '\'');
    if (q) *q = '\0';
    memmove(colon + 2, em, strlen(em) + 1);
    colon[1] = ' ';
  }
  for (char *c = w.desc; *c; c++)
    if ((unsigned char)*c < 0x20) *c = ' ';
  if (w.found) return clue_fail(err, code, "%s (HDF5: %s)", msg, w.desc);
  return clue_fail(err, code, "%s", msg);
}

/* Rank 0: the target must not be a folder nor any of the protected inputs. */
static int check_target(const char *path, const char *const *protect, clue_err *err) {
  if (!path || !path[0]) return clue_fail(err, CLUE_EINVAL, "empty output path");
  if (strlen(path) >= CLUE_PATH_MAX)
    return clue_fail(err, CLUE_EINVAL, "output path too long: %s", path);
  struct stat st;
  if (stat(path, &st) != 0) return CLUE_OK; /* does not exist yet */
  if (S_ISDIR(st.st_mode))
    return clue_fail(err, CLUE_EINVAL, "cannot write %s: it is a folder", path);
  for (int i = 0; protect && protect[i]; i++) {
    struct stat in;
    if (stat(protect[i], &in) == 0 && in.st_dev == st.st_dev && in.st_ino == st.st_ino)
      return clue_fail(err, CLUE_EINVAL,
                       "refusing to write %s: it is the input file %s (choose another "
                       "output name)",
                       path, protect[i]);
  }
  return CLUE_OK;
}

/* Rank 0: creates the temporary file and opens it with the sec2 driver. */
static int create_tmp(h5w_file *f, hsize_t userblock, clue_err *err) {
  /* A plain open() first, so that a missing folder or a permission problem is
   * reported with the system's own words. */
  int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return clue_fail(err, CLUE_EIO, "cannot create %s: %s", f->tmp, strerror(errno));
  close(fd);
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (userblock) H5Pset_userblock(fcpl, userblock);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_sec2(fapl);
  f->fid = H5Fcreate(f->tmp, H5F_ACC_TRUNC, fcpl, fapl);
  int rc = f->fid < 0 ? h5w_fail(err, CLUE_EIO, "cannot create HDF5 file %s", f->tmp)
                      : CLUE_OK;
  H5Pclose(fcpl);
  H5Pclose(fapl);
  if (rc) unlink(f->tmp);
  return rc;
}

int h5w_file_create(const char *path, hsize_t userblock, const char *const *protect,
                    const clue_comm *comm, h5w_file **out, clue_err *err) {
  *out = NULL;
  h5w_file *f = clue_calloc(1, sizeof *f, err);
  int rc = f ? CLUE_OK : CLUE_ENOMEM;
  if (clue_comm_agree(comm, rc, err)) {
    free(f);
    return err->code;
  }
  f->comm = *comm;
  f->fid = -1;
  f->mode = H5W_CLOSED;
  long pid = (long)getpid();
  clue_comm_bcast(comm, &pid, sizeof pid, 0);
  snprintf(f->path, sizeof f->path, "%s", path ? path : "");
  snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", f->path, pid);
  if (comm->rank == 0) {
    rc = check_target(path, protect, err);
    if (rc == CLUE_OK) rc = create_tmp(f, userblock, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc) {
    if (comm->rank == 0 && f->fid >= 0) {
      H5Fclose(f->fid);
      unlink(f->tmp);
    }
    free(f);
    return rc;
  }
  f->mode = H5W_SERIAL;
  *out = f;
  return CLUE_OK;
}

/* Set when H5Fclose failed: process-wide, like the HDF5 state it mirrors. */
static bool close_failed;

bool h5ad_writer_close_failed(void) { return close_failed; }

/* Closes whatever handle this rank holds (collective in parallel mode). A failed
 * H5Fclose (disk full) is remembered: see h5ad_writer_close_failed. */
static int close_handle(h5w_file *f, bool flush, clue_err *err) {
  int rc = CLUE_OK;
  if (f->fid >= 0) {
    if (flush && H5Fflush(f->fid, H5F_SCOPE_GLOBAL) < 0)
      rc = h5w_fail(err, CLUE_EIO, "cannot flush %s (disk full?)", f->tmp);
    if (H5Fclose(f->fid) < 0) {
      close_failed = true;
      if (rc == CLUE_OK) rc = h5w_fail(err, CLUE_EIO, "cannot close %s (disk full?)", f->tmp);
    }
    f->fid = -1;
  }
  f->mode = H5W_CLOSED;
  return rc;
}

int h5w_serial(h5w_file *f, clue_err *err) {
  if (f->mode == H5W_SERIAL) return CLUE_OK;
  int rc = close_handle(f, false, err);
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc) return rc;
  if (f->comm.rank == 0) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_sec2(fapl);
    f->fid = H5Fopen(f->tmp, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f->fid < 0) rc = h5w_fail(err, CLUE_EIO, "cannot reopen %s", f->tmp);
  }
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc) {
    close_handle(f, false, NULL);
    return rc;
  }
  f->mode = H5W_SERIAL;
  return CLUE_OK;
}

int h5w_parallel(h5w_file *f, clue_err *err) {
  if (f->mode == H5W_PARALLEL) return CLUE_OK;
  int rc = close_handle(f, false, err);
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc) return rc;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, f->comm.comm, MPI_INFO_NULL);
  f->fid = H5Fopen(f->tmp, H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  if (f->fid < 0) rc = h5w_fail(err, CLUE_EIO, "cannot open %s with MPI-IO", f->tmp);
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc) {
    /* H5Fopen is collective: it fails on every rank or on none in practice. */
    if (f->fid >= 0) close_handle(f, false, NULL);
    f->fid = -1;
    f->mode = H5W_CLOSED;
    return rc;
  }
  f->mode = H5W_PARALLEL;
  return CLUE_OK;
}

/* Rank 0: user block text, fsync, rename, fsync of the folder. */
static int finish_on_disk(const h5w_file *f, const char *userblock_text, clue_err *err) {
  int fd = open(f->tmp, O_WRONLY);
  if (fd < 0) return clue_fail(err, CLUE_EIO, "cannot open %s: %s", f->tmp, strerror(errno));
  if (userblock_text) {
    char block[512];
    memset(block, 0, sizeof block);
    snprintf(block, sizeof block, "%s", userblock_text);
    if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block) {
      int e = errno;
      close(fd);
      return clue_fail(err, CLUE_EIO, "cannot write the user block of %s: %s", f->tmp,
                       strerror(e));
    }
  }
  if (fsync(fd) != 0 || close(fd) != 0)
    return clue_fail(err, CLUE_EIO, "cannot sync %s: %s", f->tmp, strerror(errno));
  if (rename(f->tmp, f->path) != 0)
    return clue_fail(err, CLUE_EIO, "cannot rename %s to %s: %s", f->tmp, f->path,
                     strerror(errno));
  char dir[CLUE_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", f->path);
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    dir[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof dir, ".");
  int dfd = open(dir, O_RDONLY);
  if (dfd >= 0) {
    fsync(dfd); /* best effort: some file systems refuse fsync on folders */
    close(dfd);
  }
  return CLUE_OK;
}

/* Gives up a parallel-mode handle without HDF5's collective close: after a write
 * failed on some ranks, their metadata caches disagree and the collective
 * flush inside H5Fclose deadlocks (seen on a full disk). The handle is left
 * open; h5ad_writer_close_failed then tells main() not to shut HDF5 down. */
static void leave_open(h5w_file *f) {
  if (f->fid >= 0) close_failed = true;
  f->fid = -1;
  f->mode = H5W_CLOSED;
}

int h5w_file_commit(h5w_file *f, const char *userblock_text, clue_err *err) {
  int rc = CLUE_OK;
  if (f->mode == H5W_PARALLEL) { /* flush, agree, and only then close together */
    if (H5Fflush(f->fid, H5F_SCOPE_GLOBAL) < 0)
      rc = h5w_fail(err, CLUE_EIO, "cannot write %s (disk full?)", f->tmp);
    rc = clue_comm_agree(&f->comm, rc, err);
    if (rc) leave_open(f);
  }
  if (rc == CLUE_OK) rc = close_handle(f, false, err);
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc == CLUE_OK && f->comm.rank == 0) rc = finish_on_disk(f, userblock_text, err);
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc && f->comm.rank == 0) unlink(f->tmp);
  free(f);
  return rc;
}

void h5w_file_abort(h5w_file *f) {
  if (!f) return;
  if (f->mode == H5W_PARALLEL)
    leave_open(f);
  else
    close_handle(f, false, NULL);
  H5Eclear2(H5E_DEFAULT);
  if (f->comm.rank == 0) unlink(f->tmp);
  clue_comm_barrier(&f->comm);
  free(f);
}
