// HDF5 store: collective parallel writers (MPI-IO) and serial readers for the protloc layout (pl_store.h).
#include "pl_store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_fs.h"
#include "pl_h5.h"

// An empty writer for `comm` (MPI_COMM_NULL: serial) and a new file-access property list (closed by the caller).
static hid_t store_writer_init(PlStoreWriter *w, MPI_Comm comm) {
    memset(w, 0, sizeof *w);
    w->file = H5I_INVALID_HID;
    w->dxpl = H5I_INVALID_HID;
    w->comm = comm;
    pl_h5_quiet();
    return H5Pcreate(H5P_FILE_ACCESS);
}

PlStatus pl_store_create(PlStoreWriter *w, const char *path, MPI_Comm comm) {
    hid_t fapl = store_writer_init(w, comm);
    if (fapl < 0) return PL_H5_FAIL("%s: H5Pcreate", path);
    if (H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        return PL_H5_FAIL("%s: MPI-IO file access", path);
    }
    w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (w->file < 0) return PL_H5_WRITE_FAIL(path, "cannot create store %s", path);
    w->dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (w->dxpl < 0 || H5Pset_dxpl_mpio(w->dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
        PlStatus st = PL_H5_FAIL("%s: collective transfer property", path);
        pl_store_discard(w);
        return st;
    }
    w->path = pl_strdup(path);
    return w->path ? PL_OK : PL_ERR_NOMEM;
}

PlStatus pl_store_open_serial(PlStoreWriter *w, const char *path) {
    hid_t fapl = store_writer_init(w, MPI_COMM_NULL);
    int fd;   // an existing file: a FIFO or device there is an error, never a hang inside HDF5's open
    PlStatus reg = pl_open_regular(path, &fd);
    if (reg != PL_OK) {
        if (fapl >= 0) H5Pclose(fapl);
        return reg;
    }
    close(fd);
    if (fapl < 0 || H5Pset_fapl_sec2(fapl) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return PL_H5_FAIL("%s: serial file access", path);
    }
    w->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (w->file < 0) return PL_H5_WRITE_FAIL(path, "cannot open store %s for writing", path);
    w->dxpl = H5Pcreate(H5P_DATASET_XFER);
    w->path = pl_strdup(path);
    if (w->dxpl < 0 || !w->path) {
        PlStatus st = w->path ? PL_H5_FAIL("%s: transfer property", path) : PL_ERR_NOMEM;
        pl_store_discard(w);
        return st;
    }
    return PL_OK;
}

// File and memory types of a PlStoreType; the string type is a new handle the caller closes (else -1).
static PlStatus store_types(PlStoreType type, hid_t *file_type, hid_t *mem_type, hid_t *owned) {
    *owned = H5I_INVALID_HID;
    switch (type) {
    case PL_STORE_F32: *file_type = H5T_IEEE_F32LE; *mem_type = H5T_NATIVE_FLOAT; return PL_OK;
    case PL_STORE_I64: *file_type = H5T_STD_I64LE; *mem_type = H5T_NATIVE_INT64; return PL_OK;
    case PL_STORE_I32: *file_type = H5T_STD_I32LE; *mem_type = H5T_NATIVE_INT32; return PL_OK;
    case PL_STORE_STRING: {
        hid_t t = H5Tcopy(H5T_C_S1);
        if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
            if (t >= 0) H5Tclose(t);
            return PL_H5_FAIL("variable-length string type");
        }
        *file_type = *mem_type = *owned = t;
        return PL_OK;
    }
    }
    return PL_FAIL(PL_ERR_INTERNAL, "unknown store type %d", (int)type);
}

PlStatus pl_store_dataset_create(PlStoreWriter *w, const char *name, PlStoreType type, int64_t total, int64_t cols,
                                 PlStoreDataset *d) {
    memset(d, 0, sizeof *d);
    d->dset = H5I_INVALID_HID;
    if (type == PL_STORE_STRING && w->comm != MPI_COMM_NULL)
        return PL_FAIL(PL_ERR_INTERNAL, "%s: variable-length strings need the serial writer (pl_store_open_serial)", name);
    if (strlen(name) >= sizeof d->name) return PL_FAIL(PL_ERR_INTERNAL, "dataset name %s too long", name);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->type = type;
    d->total = total;
    d->cols = cols;
    hid_t file_type = H5I_INVALID_HID, mem_type = H5I_INVALID_HID, owned = H5I_INVALID_HID;
    PL_TRY(store_types(type, &file_type, &mem_type, &owned));
    PlStatus st = PL_OK;
    hsize_t dims[2] = {(hsize_t)total, (hsize_t)(cols > 0 ? cols : 1)};
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t space = H5Screate_simple(cols > 0 ? 2 : 1, dims, NULL);
    if (lcpl < 0 || space < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0)
        st = PL_H5_FAIL("%s: dataspace for %s", w->path, name);
    if (st == PL_OK) {
        d->dset = H5Dcreate2(w->file, name, file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (d->dset < 0) st = PL_H5_WRITE_FAIL(w->path, "%s: cannot create dataset %s", w->path, name);
    }
    if (space >= 0) H5Sclose(space);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (owned >= 0) H5Tclose(owned);
    return st;
}

PlStatus pl_store_dataset_write(PlStoreWriter *w, PlStoreDataset *d, int64_t row0, int64_t n, const void *data) {
    if (d->total == 0) return PL_OK;
    if (row0 < 0 || n < 0 || row0 + n > d->total)
        return PL_FAIL(PL_ERR_INTERNAL, "%s: rows %lld..%lld outside its %lld rows", d->name, (long long)row0,
                       (long long)(row0 + n), (long long)d->total);
    hid_t file_type = H5I_INVALID_HID, mem_type = H5I_INVALID_HID, owned = H5I_INVALID_HID;
    PL_TRY(store_types(d->type, &file_type, &mem_type, &owned));
    int rank = d->cols > 0 ? 2 : 1;
    hsize_t cols = (hsize_t)(d->cols > 0 ? d->cols : 1);
    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)n, cols}, mdims[2] = {(hsize_t)(n > 0 ? n : 1), cols};
    hid_t space = H5Dget_space(d->dset), mspace = H5Screate_simple(rank, mdims, NULL);
    PlStatus st = PL_OK;
    herr_t e1 = -1, e2 = 0;
    if (space >= 0 && mspace >= 0) {
        if (n > 0) e1 = H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        else e1 = H5Sselect_none(space), e2 = H5Sselect_none(mspace);
    }
    if (e1 < 0 || e2 < 0) st = PL_H5_FAIL("%s: selecting rows of %s", w->path, d->name);
    if (st == PL_OK && H5Dwrite(d->dset, mem_type, mspace, space, w->dxpl, n > 0 ? data : NULL) < 0) {
        st = PL_H5_WRITE_FAIL(w->path, "%s: cannot write %s rows %lld..%lld", w->path, d->name, (long long)row0,
                              (long long)(row0 + n));
    }
    if (mspace >= 0) H5Sclose(mspace);
    if (space >= 0) H5Sclose(space);
    if (owned >= 0) H5Tclose(owned);
    return st;
}

PlStatus pl_store_dataset_close(PlStoreWriter *w, PlStoreDataset *d) {
    PlStatus st = PL_OK;
    if (d->dset > 0 && H5Dclose(d->dset) < 0)   // closing flushes: a full or read-only file system shows here
        st = PL_H5_WRITE_FAIL(w->path, "%s: cannot finish %s", w->path, d->name);
    d->dset = H5I_INVALID_HID;
    return st;
}

// One-shot: create, write this process's rows, close.
static PlStatus store_write(PlStoreWriter *w, const char *name, PlStoreType type, int64_t total, int64_t cols,
                           int64_t row0, int64_t n, const void *data) {
    PlStoreDataset d;
    PL_TRY(pl_store_dataset_create(w, name, type, total, cols, &d));
    PlStatus st = pl_store_dataset_write(w, &d, row0, n, data);
    PlStatus cs = pl_store_dataset_close(w, &d);
    return st != PL_OK ? st : cs;
}

PlStatus pl_store_write_strings(PlStoreWriter *w, const char *name, int64_t total, int64_t row0, int64_t n,
                                const char *const *values) {
    return store_write(w, name, PL_STORE_STRING, total, 0, row0, n, values);
}

PlStatus pl_store_write_f32(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const float *data) {
    return store_write(w, name, PL_STORE_F32, total, cols, row0, n, data);
}

PlStatus pl_store_write_i64(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const int64_t *data) {
    return store_write(w, name, PL_STORE_I64, total, cols, row0, n, data);
}

PlStatus pl_store_write_i32(PlStoreWriter *w, const char *name, int64_t total, int64_t cols, int64_t row0, int64_t n,
                            const int32_t *data) {
    return store_write(w, name, PL_STORE_I32, total, cols, row0, n, data);
}

static PlStatus store_attr(PlStoreWriter *w, const char *name, hid_t type, const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(w->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    PlStatus st = PL_OK;
    if (attr < 0 || H5Awrite(attr, type, value) < 0)
        st = PL_H5_WRITE_FAIL(w->path, "%s: cannot write attribute %s", w->path, name);
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return st;
}

// Longest string kept as a fixed-length attribute. An attribute lives in the root object header, whose messages
// are limited to 64 KiB in the store's (earliest) file format; a longer value (a model card with a long
// description) is written as a variable-length string, whose bytes live in the file's global heap, so any size fits.
// Readers take either form (pl_store_read_attr_string, h5py).
#define STORE_ATTR_FIXED_MAX (16u << 10)

PlStatus pl_store_attr_string(PlStoreWriter *w, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    size_t len = strlen(value);
    int variable = len > STORE_ATTR_FIXED_MAX;
    if (type < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0 ||
        (variable ? H5Tset_size(type, H5T_VARIABLE) < 0
                  : H5Tset_size(type, len ? len : 1) < 0 || H5Tset_strpad(type, H5T_STR_NULLPAD) < 0)) {
        if (type >= 0) H5Tclose(type);
        return PL_H5_FAIL("%s: string type for attribute %s", w->path, name);
    }
    char zero = '\0';
    const void *data = variable ? (const void *)&value : len ? (const void *)value : &zero;
    PlStatus st = store_attr(w, name, type, data);
    H5Tclose(type);
    return st;
}

PlStatus pl_store_attr_i64(PlStoreWriter *w, const char *name, int64_t value) {
    return store_attr(w, name, H5T_NATIVE_INT64, &value);
}

PlStatus pl_store_close(PlStoreWriter *w) {
    PlStatus st = PL_OK;
    if (w->dxpl > 0) H5Pclose(w->dxpl);
    if (w->file > 0) st = pl_h5_close_file(w->file, w->path ? w->path : "?");
    free(w->path);
    memset(w, 0, sizeof *w);
    return st;
}

void pl_store_discard(PlStoreWriter *w) {
    if (w->dxpl > 0) H5Pclose(w->dxpl);
    if (w->file > 0) pl_h5_discard_file(w->file);
    free(w->path);
    memset(w, 0, sizeof *w);
}

// ---- serial readers ----

PlStatus pl_store_open_read(const char *path, hid_t *file) {
    *file = H5I_INVALID_HID;
    int fd;   // a FIFO or device is an error, never a hang inside HDF5's open
    PL_TRY(pl_open_regular(path, &fd));
    close(fd);
    pl_h5_quiet();
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return PL_H5_FAIL("cannot open store %s", path);
    return PL_OK;
}

void pl_store_close_read(hid_t file) {
    if (file > 0) H5Fclose(file);
}

int pl_store_has(hid_t file, const char *name) {
    // check each path component so that missing groups do not raise errors
    char buf[512];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) return 0;
            if (c == '\0') return 1;
            *p = c;
        }
    }
}

PlStatus pl_store_shape(hid_t file, const char *name, int64_t *rows, int64_t *cols) {
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return PL_H5_FAIL("cannot open dataset %s", name);
    hid_t s = H5Dget_space(d);
    int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    hsize_t dims[2] = {0, 0};
    PlStatus st = PL_OK;
    if (nd < 1 || nd > 2 || H5Sget_simple_extent_dims(s, dims, NULL) < 0)
        st = nd > 2 ? PL_FAIL(PL_ERR_FORMAT, "dataset %s has %d dimensions (want 1 or 2)", name, nd)
                    : PL_H5_FAIL("cannot read the shape of %s", name);
    *rows = (int64_t)dims[0];
    *cols = nd == 2 ? (int64_t)dims[1] : 0;
    if (s >= 0) H5Sclose(s);
    H5Dclose(d);
    return st;
}

static PlStatus store_read_rows(hid_t file, const char *name, hid_t mem_type, int64_t row0, int64_t n, void *out) {
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return PL_H5_FAIL("cannot open dataset %s", name);
    hid_t s = H5Dget_space(d);
    int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    hsize_t dims[2] = {0, 1};
    PlStatus st = PL_OK;
    hid_t ms = H5I_INVALID_HID;
    if (nd < 1 || nd > 2 || H5Sget_simple_extent_dims(s, dims, NULL) < 0) {
        st = PL_FAIL(PL_ERR_FORMAT, "dataset %s: want 1 or 2 dimensions", name);
    } else if (row0 < 0 || n < 0 || (hsize_t)(row0 + n) > dims[0]) {
        st = PL_FAIL(PL_ERR_FORMAT, "dataset %s: rows %lld..%lld outside its %llu rows", name, (long long)row0,
                     (long long)(row0 + n), (unsigned long long)dims[0]);
    } else if (n > 0) {
        hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)n, nd == 2 ? dims[1] : 1};
        ms = H5Screate_simple(nd, count, NULL);
        if (ms < 0 || H5Sselect_hyperslab(s, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(d, mem_type, ms, s, H5P_DEFAULT, out) < 0)
            st = PL_H5_FAIL("cannot read rows %lld..%lld of %s", (long long)row0, (long long)(row0 + n), name);
    }
    if (ms >= 0) H5Sclose(ms);
    if (s >= 0) H5Sclose(s);
    H5Dclose(d);
    return st;
}

PlStatus pl_store_read_f32(hid_t file, const char *name, int64_t row0, int64_t n, float *out) {
    return store_read_rows(file, name, H5T_NATIVE_FLOAT, row0, n, out);
}
PlStatus pl_store_read_i64(hid_t file, const char *name, int64_t row0, int64_t n, int64_t *out) {
    return store_read_rows(file, name, H5T_NATIVE_INT64, row0, n, out);
}
PlStatus pl_store_read_i32(hid_t file, const char *name, int64_t row0, int64_t n, int32_t *out) {
    return store_read_rows(file, name, H5T_NATIVE_INT32, row0, n, out);
}

void pl_store_free_strings(char **values, int64_t n) {
    if (!values) return;
    for (int64_t i = 0; i < n; i++) free(values[i]);
    free(values);
}

PlStatus pl_store_read_strings(hid_t file, const char *name, int64_t *n, char ***values) {
    *n = 0;
    *values = NULL;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return PL_H5_FAIL("cannot open dataset %s", name);
    hid_t ft = H5Dget_type(d), s = H5Dget_space(d);
    PlStatus st = PL_OK;
    hid_t mt = H5I_INVALID_HID;
    char **out = NULL;
    hssize_t count = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    if (ft < 0 || count < 0 || H5Tget_class(ft) != H5T_STRING) {
        st = PL_FAIL(PL_ERR_FORMAT, "dataset %s is not a string dataset", name);
        goto done;
    }
    out = pl_calloc((size_t)count + 1, sizeof *out);
    if (!out) { st = PL_ERR_NOMEM; goto done; }
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));   // ASCII ↔ UTF-8 have no conversion path: read as stored
    if (H5Tis_variable_str(ft) > 0) {
        char **tmp = pl_calloc((size_t)count + 1, sizeof *tmp);
        if (!tmp) { st = PL_ERR_NOMEM; goto done; }
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || (count > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) < 0)) {
            st = PL_H5_FAIL("cannot read strings of %s", name);
            free(tmp);
            goto done;
        }
        for (hssize_t i = 0; i < count && st == PL_OK; i++)
            if (!(out[i] = pl_strdup(tmp[i] ? tmp[i] : ""))) st = PL_ERR_NOMEM;
        if (count > 0) H5Dvlen_reclaim(mt, s, H5P_DEFAULT, tmp);
        free(tmp);
    } else {
        size_t width = H5Tget_size(ft);
        char *buf = pl_malloc((size_t)count * width + 1);
        if (!buf) { st = PL_ERR_NOMEM; goto done; }
        if (H5Tset_size(mt, width) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0 ||
            (count > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)) {
            st = PL_H5_FAIL("cannot read strings of %s", name);
            free(buf);
            goto done;
        }
        for (hssize_t i = 0; i < count && st == PL_OK; i++)
            if (!(out[i] = strndup(buf + (size_t)i * width, width))) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
        free(buf);
    }
done:
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (s >= 0) H5Sclose(s);
    H5Dclose(d);
    if (st != PL_OK) {
        pl_store_free_strings(out, count > 0 ? count : 0);
        return st;
    }
    *n = (int64_t)count;
    *values = out;
    return PL_OK;
}

PlStatus pl_store_read_attr_string(hid_t file, const char *name, char **value, int *present) {
    *value = NULL;
    *present = 0;
    if (H5Aexists(file, name) <= 0) return PL_OK;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    if (a < 0) return PL_H5_FAIL("cannot open attribute %s", name);
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    PlStatus st = PL_OK;
    hid_t mt = H5Tcopy(H5T_C_S1);
    if (ft >= 0) H5Tset_cset(mt, H5Tget_cset(ft));
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
        st = PL_FAIL(PL_ERR_FORMAT, "attribute %s is not a string", name);
    } else if (sp < 0 || H5Sget_simple_extent_npoints(sp) != 1) {
        st = PL_FAIL(PL_ERR_FORMAT, "attribute %s is not a single string", name);
    } else if (H5Tis_variable_str(ft) > 0) {
        char *tmp = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &tmp) < 0) st = PL_H5_FAIL("cannot read attribute %s", name);
        else {
            *value = pl_strdup(tmp ? tmp : "");
            H5free_memory(tmp);
        }
    } else {
        size_t width = H5Tget_size(ft);
        char *buf = pl_calloc(width + 1, 1);
        if (!buf) st = PL_ERR_NOMEM;
        else if (H5Tset_size(mt, width) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0 || H5Aread(a, mt, buf) < 0) {
            st = PL_H5_FAIL("cannot read attribute %s", name);
            free(buf);
        } else {
            *value = buf;
        }
    }
    if (st == PL_OK && !*value) st = PL_ERR_NOMEM;
    if (st == PL_OK) *present = 1;
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return st;
}
