// HDF5 error handling: automatic error printing off; the HDF5 error stack is folded into protloc's message.
#ifndef PL_H5_H
#define PL_H5_H

#include <hdf5.h>
#include "pl_error.h"

// Turn HDF5's automatic error printing off (call once per process before any HDF5 call; idempotent).
void pl_h5_quiet(void);
// Record "<context>: <innermost HDF5 error descriptions>" and return PL_ERR_HDF5.
#define PL_H5_FAIL(...) pl_h5_fail(__FILE__, __LINE__, __VA_ARGS__)
PlStatus pl_h5_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
