// Crash-safe file output (write temp → fsync → rename → fsync directory, as Redis rdb.c) and small file helpers.
#ifndef PL_FS_H
#define PL_FS_H

#include <stddef.h>
#include <stdio.h>
#include "pl_error.h"

// An output file being written under a temporary name next to its final path.
// Ownership: the PlAtomicFile owns `fp` and both paths until commit/abort.
typedef struct PlAtomicFile {
    FILE *fp;
    char *final_path;
    char *temp_path;   // "<final>.tmp.<pid>.<n>"
} PlAtomicFile;

PlStatus pl_atomic_open(PlAtomicFile *af, const char *final_path);
// Flush, fsync, close, rename to the final path, fsync the directory. Frees af's memory.
PlStatus pl_atomic_commit(PlAtomicFile *af);
// Close and unlink the temp file; safe to call after a failed commit or on a zeroed struct.
void pl_atomic_abort(PlAtomicFile *af);

// Write a whole buffer atomically to `path`.
PlStatus pl_file_write_atomic(const char *path, const void *data, size_t size);
// Rename `temp_path` over `final_path` after fsyncing it, then fsync the directory (for files written by
// other libraries, e.g. HDF5).
PlStatus pl_file_commit_rename(const char *temp_path, const char *final_path);
// fsync the directory containing `path`.
PlStatus pl_fsync_parent_dir(const char *path);
// Read a whole file into a malloc'd buffer (NUL-terminated for convenience). Caller frees *data.
PlStatus pl_file_read_all(const char *path, size_t max_size, char **data, size_t *size);
// Create a directory and its parents (like mkdir -p).
PlStatus pl_mkdir_p(const char *path);
// A unique temporary path next to `final_path` (malloc'd; caller frees).
char *pl_temp_path_for(const char *final_path);

#endif
