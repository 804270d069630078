// The HDF5 embedding store (layout: docs/formats.md): collective parallel writers and simple serial readers.
//
// Writers (PlStoreWriter): pl_store_create makes a parallel writer, collective over an MPI communicator
// (H5Pset_fapl_mpio): every rank calls every function in the same order with the same dataset names and totals;
// each rank passes its own rows (row0, n) — n may be 0, the call is still collective. Datasets can be written in
// many such rounds (pl_store_dataset_*), so a writer never needs all rows in memory. Parallel HDF5 cannot write
// variable-length data, so strings are added afterwards by one process through a serial writer
// (pl_store_open_serial): variable-length UTF-8, where one long value costs only itself. Readers accept fixed-
// (older stores) and variable-length strings.
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
    hid_t dxpl;        // transfer properties (collective for a parallel writer)
    MPI_Comm comm;     // MPI_COMM_NULL for a serial writer
    char *path;
} PlStoreWriter;

typedef enum PlStoreType { PL_STORE_F32, PL_STORE_I64, PL_STORE_I32, PL_STORE_STRING } PlStoreType;

// An open dataset being written in rounds. Ownership: the writer's file; close it before pl_store_close.
typedef struct PlStoreDataset {
    hid_t dset;
    PlStoreType type;
    int64_t total, cols;
    char name[128];
} PlStoreDataset;

// Create (truncate) `path` collectively over `comm`.
PlStatus pl_store_create(PlStoreWriter *w, const char *path, MPI_Comm comm);
// Open an existing store for additions by this process alone (the sec2 driver: string datasets, attributes).
PlStatus pl_store_open_serial(PlStoreWriter *w, const char *path);
// Create dataset `name` of shape (total) when cols == 0, else (total, cols) (collective for a parallel writer).
// PL_STORE_STRING is variable-length UTF-8 and needs a serial writer.
PlStatus pl_store_dataset_create(PlStoreWriter *w, const char *name, PlStoreType type, int64_t total, int64_t cols,
                                 PlStoreDataset *d);
// Write rows [row0, row0 + n) (collective for a parallel writer; n may be 0). Strings: data is const char *const *.
PlStatus pl_store_dataset_write(PlStoreWriter *w, PlStoreDataset *d, int64_t row0, int64_t n, const void *data);
PlStatus pl_store_dataset_close(PlStoreWriter *w, PlStoreDataset *d);
// One-shot: dataset `name` ("/items/id") of `total` variable-length strings; rows [row0, row0 + n). Serial writer.
PlStatus pl_store_write_strings(PlStoreWriter *w, const char *name, int64_t total, int64_t row0, int64_t n,
                                const char *const *values);
// One-shot numeric dataset of shape (total) when cols == 0, else (total, cols); rows [row0, row0 + n).
PlStatus pl_store_write_f32(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const float *data);
PlStatus pl_store_write_i64(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const int64_t *data);
PlStatus pl_store_write_i32(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const int32_t *data);
// A root attribute (with a parallel writer: collective, every rank passes the same value). A string of any length:
// up to 16 KiB a fixed-length string, longer a variable-length one (the 64 KiB object-header limit).
PlStatus pl_store_attr_string(PlStoreWriter *w, const char *name, const char *value);
PlStatus pl_store_attr_i64(PlStoreWriter *w, const char *name, int64_t value);
// Close (collective for a parallel writer); safe on a zeroed writer (file <= 0).
PlStatus pl_store_close(PlStoreWriter *w);
// Close after an earlier error, keeping that error's message.
void pl_store_discard(PlStoreWriter *w);

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
