// NumPy .npy reader/writer for C-ordered little-endian arrays (format versions 1–3).
#ifndef PL_NPY_H
#define PL_NPY_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"

#define PL_NPY_MAX_DIMS 8

// An array read from or written to .npy. Ownership: `data` is malloc'd and owned by the struct.
typedef struct PlNpyArray {
    char descr[8];               // numpy dtype string, e.g. "<f4", "<f8", "<i8", "|u1"
    size_t itemsize;             // bytes per element
    int ndim;
    int64_t shape[PL_NPY_MAX_DIMS];
    void *data;                  // C order
} PlNpyArray;

// Read any supported dtype (<f4 <f8 <i4 <i8 <u2 |u1 |b1); rejects Fortran order, big-endian, object arrays.
PlStatus pl_npy_read(const char *path, PlNpyArray *out);
// Read and require dtype float32 ("<f4") and, when ndim_required > 0, exactly that many dimensions.
PlStatus pl_npy_read_f32(const char *path, int ndim_required, PlNpyArray *out);
// Write atomically (temp + fsync + rename).
PlStatus pl_npy_write(const char *path, const char *descr, int ndim, const int64_t *shape, const void *data);
PlStatus pl_npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data);
size_t pl_npy_count(const PlNpyArray *a);   // number of elements
void pl_npy_free(PlNpyArray *a);

#endif
