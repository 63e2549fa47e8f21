/* fuzz_reader.h — what the .h5ad/.h5mu fuzz harnesses share: MPI set-up once
 * per process, and one pass of every reader entry point over a file. */
#ifndef CLUE_FUZZ_READER_H
#define CLUE_FUZZ_READER_H

#include <stddef.h>
#include <stdint.h>

/* Initialises MPI (a singleton rank) and silences HDF5; call from
 * LLVMFuzzerInitialize. */
void fuzz_reader_init(void);

/* A per-process scratch path in /dev/shm (or TMPDIR) ending in `suffix`. */
const char *fuzz_reader_scratch(const char *suffix);

/* Runs the reader over the file at path: h5ad_open (root or each mod/<name>
 * of an .h5mu), matrix info of X and every layer, row nonzeros, rows (all and
 * every other), obs/var names, every obs column, every obsm array, and
 * clue_dataset_load on a config whose modalities point at the file. Aborts
 * only through a sanitizer or when a result breaks a documented promise. */
void fuzz_reader_run(const char *path);

#endif
