// The HDF5 embedding store (layout: docs/formats.md): collective parallel writers and simple serial readers.
//
// Writers (PlStoreWriter) are collective over an MPI communicator (H5Pset_fapl_mpio): every rank calls every
// function in the same order with the same dataset names and totals; each rank passes its own rows
// (row0, n) — n may be 0, the call is still collective. Strings are written as fixed-length, null-padded
// UTF-8 (width = longest value over all ranks, agreed with MPI_Allreduce), because parallel HDF5 cannot
// write variable-length data. Readers accept fixed- and variable-length strings.
//
// Ownership: a PlStoreWriter owns its HDF5 file handle (pl_store_close). Reader functions return malloc'd
// arrays the caller frees (pl_store_free_strings for string arrays).
#ifndef PL_STORE_H
#define PL_STORE_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include "pl_error.h"

#define PL_STORE_FORMAT "protloc-store/1"

typedef struct PlStoreWriter {
    hid_t file;
    hid_t dxpl;        // collective transfer property list
    MPI_Comm comm;
    char *path;
} PlStoreWriter;

// Create (truncate) `path` collectively over `comm`.
PlStatus pl_store_create(PlStoreWriter *w, const char *path, MPI_Comm comm);
// Collective: dataset `name` ("/items/id") of `total` strings; this rank writes rows [row0, row0 + n).
PlStatus pl_store_write_strings(PlStoreWriter *w, const char *name, int64_t total, int64_t row0, int64_t n,
                                const char *const *values);
// Collective: numeric dataset of shape (total) when cols == 0, else (total, cols); rows [row0, row0 + n).
PlStatus pl_store_write_f32(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const float *data);
PlStatus pl_store_write_i64(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const int64_t *data);
PlStatus pl_store_write_i32(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const int32_t *data);
// Collective: a root attribute (every rank passes the same value).
PlStatus pl_store_attr_string(PlStoreWriter *w, const char *name, const char *value);
PlStatus pl_store_attr_i64(PlStoreWriter *w, const char *name, int64_t value);
// Collective close; safe on a zeroed writer (file <= 0).
PlStatus pl_store_close(PlStoreWriter *w);

// ---- serial readers (any HDF5 file; open with pl_store_open_read) ----
PlStatus pl_store_open_read(const char *path, hid_t *file);
int pl_store_has(hid_t file, const char *name);   // dataset or group exists
// Read a 1-D string dataset (fixed or variable length) into *values (count *n).
PlStatus pl_store_read_strings(hid_t file, const char *name, int64_t *n, char ***values);
void pl_store_free_strings(char **values, int64_t n);
// Shape of a dataset (rows, cols; cols = 0 for 1-D).
PlStatus pl_store_shape(hid_t file, const char *name, int64_t *rows, int64_t *cols);
// Read rows [row0, row0 + n) of a float32 / int64 / int32 dataset (1-D or 2-D) into `out`.
PlStatus pl_store_read_f32(hid_t file, const char *name, int64_t row0, int64_t n, float *out);
PlStatus pl_store_read_i64(hid_t file, const char *name, int64_t row0, int64_t n, int64_t *out);
PlStatus pl_store_read_i32(hid_t file, const char *name, int64_t row0, int64_t n, int32_t *out);
// Read a string root attribute (fixed or variable length). *present = 0 when absent.
PlStatus pl_store_read_attr_string(hid_t file, const char *name, char **value, int *present);
void pl_store_close_read(hid_t file);

#endif
