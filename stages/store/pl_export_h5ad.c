// AnnData .h5ad writer with plain HDF5 C calls (anndata on-disk spec: encoding-type / encoding-version attributes).
//
// Layout written (anndata 0.8 reads it; spec "anndata" 0.1.0):
//   /            encoding-type "anndata", encoding-version "0.1.0"
//   /X           (n, d) float32, "array" 0.2.0
//   /obs         "dataframe" 0.2.0, _index "_index", column-order [id, dataset, label, split, group, extras...]
//   /obs/_index  unique observation names ("string-array"); /obs/<col> string arrays or float32 "array"s
//   /var         "dataframe" 0.2.0, _index = "e0".."e{d-1}", empty column-order
//   /obsm /varm /obsp /varp /layers: empty "dict" 0.1.0; /uns: protloc_store, protloc_level and
//   protloc_store_attrs (every string root attribute of the store: model, options, version, creation time)
// Strings are variable-length UTF-8 (serial HDF5, so no parallel restriction applies here).
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_export.h"
#include "pl_fs.h"
#include "pl_h5.h"

static hid_t h5ad_vlen_str(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static PlStatus h5ad_attr_str(hid_t obj, const char *name, const char *value) {
    hid_t t = h5ad_vlen_str(), s = H5Screate(H5S_SCALAR);
    hid_t a = t >= 0 && s >= 0 ? H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    herr_t w = a >= 0 ? H5Awrite(a, t, &value) : -1;
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return w < 0 ? PL_H5_FAIL("cannot write attribute %s", name) : PL_OK;
}

// Attribute holding an array of strings (count may be 0: then an empty float64 array, as anndata writes it).
static PlStatus h5ad_attr_str_array(hid_t obj, const char *name, const char *const *values, size_t count) {
    hsize_t dims[1] = {count};
    hid_t t = count ? h5ad_vlen_str() : H5Tcopy(H5T_IEEE_F64LE);
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t a = t >= 0 && s >= 0 ? H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    herr_t w = a >= 0 ? (count ? H5Awrite(a, t, values) : 0) : -1;
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return w < 0 ? PL_H5_FAIL("cannot write attribute %s", name) : PL_OK;
}

static PlStatus h5ad_encoding(hid_t obj, const char *type, const char *version) {
    PL_TRY(h5ad_attr_str(obj, "encoding-type", type));
    return h5ad_attr_str(obj, "encoding-version", version);
}

static PlStatus h5ad_group(hid_t parent, const char *name, const char *type, const char *version, hid_t *out) {
    hid_t g = H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return PL_H5_FAIL("cannot create group %s", name);
    PlStatus st = h5ad_encoding(g, type, version);
    if (st != PL_OK || !out) H5Gclose(g);
    else *out = g;
    return st;
}

static PlStatus h5ad_string_array(hid_t parent, const char *name, const char *const *values, size_t count) {
    hsize_t dims[1] = {count};
    hid_t t = h5ad_vlen_str(), s = H5Screate_simple(1, dims, NULL);
    hid_t d = t >= 0 && s >= 0 ? H5Dcreate2(parent, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                               : H5I_INVALID_HID;
    herr_t w = d >= 0 ? (count ? H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) : 0) : -1;
    PlStatus st = w < 0 ? PL_H5_FAIL("cannot write string array %s", name) : PL_OK;
    if (st == PL_OK) st = h5ad_encoding(d, "string-array", "0.2.0");
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return st;
}

// Dense float32 array (rank 1 or 2).
static PlStatus h5ad_f32(hid_t parent, const char *name, int rank, const hsize_t *dims, const float *data) {
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = s >= 0 ? H5Dcreate2(parent, name, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                     : H5I_INVALID_HID;
    hsize_t total = dims[0] * (rank == 2 ? dims[1] : 1);
    herr_t w = d >= 0 ? (total ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0) : -1;
    PlStatus st = w < 0 ? PL_H5_FAIL("cannot write array %s", name) : PL_OK;
    if (st == PL_OK) st = h5ad_encoding(d, "array", "0.2.0");
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Sclose(s);
    return st;
}

static PlStatus h5ad_string_scalar(hid_t parent, const char *name, const char *value) {
    hid_t t = h5ad_vlen_str(), s = H5Screate(H5S_SCALAR);
    hid_t d = t >= 0 && s >= 0 ? H5Dcreate2(parent, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                               : H5I_INVALID_HID;
    herr_t w = d >= 0 ? H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) : -1;
    PlStatus st = w < 0 ? PL_H5_FAIL("cannot write %s", name) : PL_OK;
    if (st == PL_OK) st = h5ad_encoding(d, "string", "0.2.0");
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return st;
}

static PlStatus h5ad_write_obs(hid_t file, const PlStoreTable *t) {
    size_t n = (size_t)t->n;
    const char **col = pl_calloc(n ? n : 1, sizeof *col);
    char **names = pl_calloc(n ? n : 1, sizeof *names);
    int64_t *ord = pl_export_ordinals(t);
    hid_t g = H5I_INVALID_HID;
    PlStatus st = !col || !names || !ord ? PL_ERR_NOMEM : PL_OK;
    for (size_t r = 0; r < n && st == PL_OK; r++) {
        names[r] = pl_export_obs_name(t, (int64_t)r, ord[r]);
        if (!names[r]) st = PL_ERR_NOMEM;
    }
    if (st == PL_OK) st = h5ad_group(file, "obs", "dataframe", "0.2.0", &g);
    if (st == PL_OK) st = h5ad_attr_str(g, "_index", "_index");
    const char *order[PL_STORE_N_META + PL_STORE_MAX_EXTRA];
    size_t n_order = 0;
    for (int k = 0; k < PL_STORE_N_META; k++) order[n_order++] = pl_store_meta_names[k];
    for (int e = 0; e < t->n_extra; e++) order[n_order++] = t->extra_names[e];
    if (st == PL_OK) st = h5ad_attr_str_array(g, "column-order", order, n_order);
    if (st == PL_OK) st = h5ad_string_array(g, "_index", (const char *const *)names, n);
    for (int k = 0; k < PL_STORE_N_META && st == PL_OK; k++) {
        for (size_t r = 0; r < n; r++) col[r] = k == 2 ? pl_store_table_label(t, (int64_t)r) : t->meta[k][t->item[r]];
        st = h5ad_string_array(g, pl_store_meta_names[k], col, n);
    }
    for (int e = 0; e < t->n_extra && st == PL_OK; e++) {
        hsize_t dims[1] = {n};
        st = h5ad_f32(g, t->extra_names[e], 1, dims, t->extra[e]);
    }
    if (g >= 0) H5Gclose(g);
    if (names)
        for (size_t r = 0; r < n; r++) free(names[r]);
    free(names);
    free(col);
    free(ord);
    return st;
}

static PlStatus h5ad_write_var(hid_t file, const PlStoreTable *t) {
    size_t d = (size_t)t->d;
    char **names = pl_calloc(d ? d : 1, sizeof *names);
    PlStatus st = names ? PL_OK : PL_ERR_NOMEM;
    for (size_t j = 0; j < d && st == PL_OK; j++) {
        names[j] = pl_malloc(24);
        if (!names[j]) st = PL_ERR_NOMEM;
        else snprintf(names[j], 24, "e%zu", j);
    }
    hid_t g = H5I_INVALID_HID;
    if (st == PL_OK) st = h5ad_group(file, "var", "dataframe", "0.2.0", &g);
    if (st == PL_OK) st = h5ad_attr_str(g, "_index", "_index");
    if (st == PL_OK) st = h5ad_attr_str_array(g, "column-order", NULL, 0);
    if (st == PL_OK) st = h5ad_string_array(g, "_index", (const char *const *)names, d);
    if (g >= 0) H5Gclose(g);
    if (names)
        for (size_t j = 0; j < d; j++) free(names[j]);
    free(names);
    return st;
}

static PlStatus h5ad_write_all(hid_t file, const PlStoreTable *t) {
    PL_TRY(h5ad_encoding(file, "anndata", "0.1.0"));
    hsize_t dims[2] = {(hsize_t)t->n, (hsize_t)t->d};
    PL_TRY(h5ad_f32(file, "X", 2, dims, t->x));
    PL_TRY(h5ad_write_obs(file, t));
    PL_TRY(h5ad_write_var(file, t));
    static const char *const empty[] = {"obsm", "varm", "obsp", "varp", "layers"};
    for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) PL_TRY(h5ad_group(file, empty[i], "dict", "0.1.0", NULL));
    hid_t uns = H5I_INVALID_HID;
    PL_TRY(h5ad_group(file, "uns", "dict", "0.1.0", &uns));
    PlStatus st = h5ad_string_scalar(uns, "protloc_store", t->store_path);
    if (st == PL_OK) st = h5ad_string_scalar(uns, "protloc_level", pl_store_level_name(t->level));
    hid_t prov = H5I_INVALID_HID;
    if (st == PL_OK && t->n_attrs > 0) st = h5ad_group(uns, "protloc_store_attrs", "dict", "0.1.0", &prov);
    for (int i = 0; i < t->n_attrs && st == PL_OK; i++) st = h5ad_string_scalar(prov, t->attr_names[i], t->attr_values[i]);
    if (prov >= 0) H5Gclose(prov);
    H5Gclose(uns);
    return st;
}

PlStatus pl_export_write_h5ad(const PlStoreTable *t, const char *path) {
    pl_h5_quiet();
    char *tmp = pl_temp_path_for(path);
    if (!tmp) return PL_ERR_NOMEM;
    hid_t file = H5Fcreate(tmp, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {   // a create can fail after making the file (no space for the superblock): remove it
        PlStatus st = PL_H5_WRITE_FAIL(tmp, "cannot create %s", tmp);
        unlink(tmp);
        free(tmp);
        return st;
    }
    PlStatus st = h5ad_write_all(file, t);
    if (st == PL_OK) st = pl_h5_close_file(file, tmp);
    else pl_h5_discard_file(file);
    if (st == PL_OK) st = pl_file_commit_rename(tmp, path);
    if (st != PL_OK) {
        unlink(tmp);
        pl_error_wrap("writing %s", path);
    }
    free(tmp);
    return st == PL_OK ? PL_OK : pl_error_code();
}
