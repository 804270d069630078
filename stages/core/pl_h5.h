// HDF5 error handling: automatic error printing off; the HDF5 error stack is folded into protloc's message.
#ifndef PL_H5_H
#define PL_H5_H

#include <hdf5.h>
#include "pl_error.h"

// The program's HDF5 lifetime (main only). HDF5 1.10 keeps a file whose H5Fclose failed (a full disk while
// flushing) in its id table in a state that crashes when the library is shut down, and it shuts down from an
// atexit handler. pl_h5_start (before any other HDF5 call) turns that handler off and printing off;
// pl_h5_stop (before MPI_Finalize) shuts the library down unless a file close failed, in which case the process
// leaves the broken file to the kernel instead of crashing at exit.
void pl_h5_start(void);
void pl_h5_stop(void);
// Close an HDF5 file (every file close in protloc goes through here). On failure the error names `path` and,
// when the cause is visible, a full or read-only file system; the library is then not shut down (pl_h5_stop).
PlStatus pl_h5_close_file(hid_t file, const char *path);
// Close a file after an earlier error, keeping that error's message (a close failure is only remembered). A parallel
// (MPI-IO) file is not closed at all: its collective close can hang inside HDF5 after a full disk; the handle is
// left to the kernel at exit (the caller removes the file) and the library is then not shut down.
void pl_h5_discard_file(hid_t file);
// Turn HDF5's automatic error printing off (call once per process before any HDF5 call; idempotent).
void pl_h5_quiet(void);
// Record "<context>: <innermost HDF5 error descriptions>" and return PL_ERR_HDF5.
#define PL_H5_FAIL(...) pl_h5_fail(__FILE__, __LINE__, __VA_ARGS__)
PlStatus pl_h5_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// The same for a failed write to `path`: the context is followed by why writing there may fail when that is
// visible (pl_fs_space_note: a full or read-only file system).
#define PL_H5_WRITE_FAIL(path, ...) pl_h5_write_fail(__FILE__, __LINE__, path, __VA_ARGS__)
PlStatus pl_h5_write_fail(const char *file, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
