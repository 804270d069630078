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
// Flush and fsync the temporary file, so a full disk is reported now (before other outputs are committed); the
// file stays open and uncommitted. On failure the caller still aborts.
PlStatus pl_atomic_sync(PlAtomicFile *af);
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
// Open `path` read-only only when it is a regular file: a FIFO, device, socket or directory is an error naming the
// path and its kind, decided without blocking (O_NONBLOCK, then fstat) and without reading (so /dev/zero or a pipe
// can never hang a run). *fd is a blocking descriptor on success.
PlStatus pl_open_regular(const char *path, int *fd);
// The same as a stdio stream ("rb").
PlStatus pl_fopen_regular(const char *path, FILE **fp);
// Read a whole file into a malloc'd buffer (NUL-terminated for convenience). Caller frees *data.
PlStatus pl_file_read_all(const char *path, size_t max_size, char **data, size_t *size);
// 1 when `a` and `b` name the same file: the same inode when both exist, else the same resolved path (so a
// command can refuse to write over one of its inputs through another spelling, a link or "./").
int pl_same_file(const char *a, const char *b);
// The absolute path `path` names with symlinks, "." and ".." resolved, also when the file does not exist yet (the
// resolved folder + its name); malloc'd, or NULL when its folder does not exist. Caller frees.
char *pl_path_resolve(const char *path);
// Why writing under `path`'s directory may have failed, for an error message: "; the file system holding DIR is
// full (N KiB free)" or "; DIR is on a read-only file system", or "" when neither (statvfs of the directory).
void pl_fs_space_note(const char *path, char *note, size_t size);
// Record (PL_ERR_IO) a failed write of `path`: "<verb> <path>: <strerror(err)>" and the pl_fs_space_note; pass
// the failed call's errno saved before anything else runs (0: no errno known). Call it before the partial file is
// removed, so a full file system is still full when it is looked at. Every writer's error goes through it, e.g.
//     if (fwrite(buf, 1, n, fp) != n) { st = PL_FS_WRITE_FAIL("cannot write", temp_path, errno); ... }
#define PL_FS_WRITE_FAIL(verb, path, err) pl_fs_write_fail(__FILE__, __LINE__, (verb), (path), (err))
PlStatus pl_fs_write_fail(const char *file, int line, const char *verb, const char *path, int err);
// Output paths (docs/guide.md "Output paths"): a command creates the folder an option names as a folder (finetune
// --out DIR, synth --out DIR, --report-dir DIR), with its missing parents, and never the folder of a file an option
// names (that folder must exist). Both are checked after the options and before any input is read.
// pl_output_file_check: may an output file be written (replaced) at `path`? An existing `path` must be a regular file
// (a directory, FIFO, device or socket is refused, naming its kind), and its folder must exist (it is not created;
// writability is left to the write). `what` names the path in messages (e.g. "--out"). PL_ERR_ARG when refused.
PlStatus pl_output_file_check(const char *path, const char *what);
// pl_output_dir_check: an existing `path` must be a folder the command may write into; a missing one, the nearest
// existing folder above it (where it will be made). NULL path: PL_OK. PL_ERR_ARG (a file or device in the way) or
// PL_ERR_IO (not writable, read-only file system).
PlStatus pl_output_dir_check(const char *path, const char *what);
// Create a directory and its parents (like mkdir -p).
PlStatus pl_mkdir_p(const char *path);
// A unique temporary path next to `final_path` (malloc'd; caller frees).
char *pl_temp_path_for(const char *final_path);

#endif
