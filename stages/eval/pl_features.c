// Loading evaluation inputs: HDF5 store levels (fov/tiles/cells) and .npy + TSV metadata pairs.
#include "pl_features.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"
#include "pl_h5.h"
#include "pl_npy.h"

PlStatus pl_features_parse_level(const char *s, PlFeatureLevel *level) {
    if (strcmp(s, "fov") == 0) *level = PL_LEVEL_FOV;
    else if (strcmp(s, "tiles") == 0) *level = PL_LEVEL_TILES;
    else if (strcmp(s, "cells") == 0) *level = PL_LEVEL_CELLS;
    else return PL_FAIL(PL_ERR_ARG, "unknown level '%s' (expected fov, tiles or cells)", s);
    return PL_OK;
}

static void features_free_strings(char **v, int64_t n) {
    if (!v) return;
    for (int64_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void pl_features_free(PlFeatureSet *fs) {
    free(fs->x);
    features_free_strings(fs->id, fs->n);
    features_free_strings(fs->label, fs->n);
    features_free_strings(fs->split, fs->n);
    features_free_strings(fs->group, fs->n);
    free(fs->item);
    memset(fs, 0, sizeof *fs);
}

static PlStatus features_alloc_meta(PlFeatureSet *fs, int64_t n) {
    fs->id = pl_calloc((size_t)n + 1, sizeof(char *));
    fs->label = pl_calloc((size_t)n + 1, sizeof(char *));
    fs->split = pl_calloc((size_t)n + 1, sizeof(char *));
    fs->group = pl_calloc((size_t)n + 1, sizeof(char *));
    fs->item = pl_calloc((size_t)n + 1, sizeof(int64_t));
    if (!fs->id || !fs->label || !fs->split || !fs->group || !fs->item) return PL_ERR_NOMEM;
    return PL_OK;
}

// ---------------------------------------------------------------- HDF5 store

// Read a 1-D string dataset (fixed- or variable-length) into n malloc'd strings.
static PlStatus features_h5_strings(hid_t file, const char *path, const char *name, int64_t *n_out, char ***out) {
    *out = NULL;
    PlStatus st = PL_OK;
    hid_t ds = -1, ft = -1, sp = -1, mt = -1;
    char **v = NULL;
    char *buf = NULL;
    int64_t n = 0;
    ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) { st = PL_H5_FAIL("%s: cannot open dataset %s", path, name); goto done; }
    ft = H5Dget_type(ds);
    sp = H5Dget_space(ds);
    if (ft < 0 || sp < 0) { st = PL_H5_FAIL("%s: %s: cannot read type/shape", path, name); goto done; }
    if (H5Tget_class(ft) != H5T_STRING) { st = PL_FAIL(PL_ERR_FORMAT, "%s: %s is not a string dataset", path, name); goto done; }
    if (H5Sget_simple_extent_ndims(sp) != 1) { st = PL_FAIL(PL_ERR_FORMAT, "%s: %s must be 1-D", path, name); goto done; }
    hsize_t dims[1];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    n = (int64_t)dims[0];
    v = pl_calloc((size_t)n + 1, sizeof(char *));
    if (!v) { st = PL_ERR_NOMEM; goto done; }
    htri_t vl = H5Tis_variable_str(ft);
    if (vl > 0) {
        mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char **raw = pl_calloc((size_t)n + 1, sizeof(char *));
        if (!raw) { st = PL_ERR_NOMEM; goto done; }
        if (n > 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
            free(raw);
            st = PL_H5_FAIL("%s: cannot read %s", path, name);
            goto done;
        }
        for (int64_t i = 0; i < n && st == PL_OK; i++) {
            v[i] = pl_strdup(raw[i] ? raw[i] : "");
            if (!v[i]) st = PL_ERR_NOMEM;
        }
        if (n > 0) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
        free(raw);
    } else {
        size_t sz = H5Tget_size(ft);
        if (sz == 0 || sz > 65536) { st = PL_FAIL(PL_ERR_FORMAT, "%s: %s has string size %zu", path, name, sz); goto done; }
        mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz);
        H5Tset_strpad(mt, H5T_STR_NULLPAD);
        H5Tset_cset(mt, H5Tget_cset(ft));
        buf = pl_malloc((size_t)n * sz + 1);
        if (!buf) { st = PL_ERR_NOMEM; goto done; }
        if (n > 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            st = PL_H5_FAIL("%s: cannot read %s", path, name);
            goto done;
        }
        for (int64_t i = 0; i < n && st == PL_OK; i++) {
            const char *s = buf + (size_t)i * sz;
            size_t len = strnlen(s, sz);
            v[i] = pl_malloc(len + 1);
            if (!v[i]) { st = PL_ERR_NOMEM; break; }
            memcpy(v[i], s, len);
            v[i][len] = 0;
        }
    }
done:
    free(buf);
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    if (ds >= 0) H5Dclose(ds);
    if (st != PL_OK) {
        features_free_strings(v, n);
        return st;
    }
    *out = v;
    *n_out = n;
    return PL_OK;
}

// Read a 2-D float dataset (converted to float32) or a 1-D int64 one.
static PlStatus features_h5_read(hid_t file, const char *path, const char *name, int rank_want, hid_t memtype,
                                 hsize_t *dims, void **out) {
    *out = NULL;
    PlStatus st = PL_OK;
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return PL_H5_FAIL("%s: cannot open dataset %s", path, name);
    hid_t sp = H5Dget_space(ds);
    if (sp < 0) { H5Dclose(ds); return PL_H5_FAIL("%s: %s: no dataspace", path, name); }
    if (H5Sget_simple_extent_ndims(sp) != rank_want) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: %s must have %d dimensions", path, name, rank_want);
    } else {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        size_t n = (size_t)dims[0] * (rank_want == 2 ? (size_t)dims[1] : 1);
        *out = pl_malloc(n * H5Tget_size(memtype) + 1);
        if (!*out) st = PL_ERR_NOMEM;
        else if (n > 0 && H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
            st = PL_H5_FAIL("%s: cannot read %s", path, name);
    }
    H5Sclose(sp);
    H5Dclose(ds);
    if (st != PL_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

PlStatus pl_features_read_store(const char *path, PlFeatureLevel level, PlFeatureSet *fs) {
    memset(fs, 0, sizeof *fs);
    pl_h5_quiet();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return PL_H5_FAIL("%s: cannot open HDF5 store", path);
    static const char *cols[4] = {"/items/id", "/items/label", "/items/split", "/items/group"};
    char **meta[4] = {0};
    int64_t n_items = -1;
    PlStatus st = PL_OK;
    float *emb = NULL;
    int64_t *rowitem = NULL;
    for (int c = 0; c < 4 && st == PL_OK; c++) {
        int64_t n = 0;
        if (c >= 2 && H5Lexists(file, cols[c], H5P_DEFAULT) <= 0) continue;   // split/group optional
        st = features_h5_strings(file, path, cols[c], &n, &meta[c]);
        if (st == PL_OK && n_items >= 0 && n != n_items)
            st = PL_FAIL(PL_ERR_FORMAT, "%s: %s has %lld rows, /items/id has %lld", path, cols[c], (long long)n,
                         (long long)n_items);
        if (st == PL_OK) n_items = n;
    }
    static const char *emb_name[3] = {"/fov/embedding", "/tiles/embedding", "/cells/embedding"};
    static const char *item_name[3] = {NULL, "/tiles/item", "/cells/item"};
    hsize_t d2[2] = {0, 0}, d1[1] = {0};
    if (st == PL_OK && H5Lexists(file, emb_name[level], H5P_DEFAULT) <= 0)
        st = PL_FAIL(PL_ERR_FORMAT, "%s: no %s (was the store embedded at this level?)", path, emb_name[level]);
    if (st == PL_OK) st = features_h5_read(file, path, emb_name[level], 2, H5T_NATIVE_FLOAT, d2, (void **)&emb);
    if (st == PL_OK && level == PL_LEVEL_FOV && (int64_t)d2[0] != n_items)
        st = PL_FAIL(PL_ERR_FORMAT, "%s: /fov/embedding has %llu rows but /items has %lld", path,
                     (unsigned long long)d2[0], (long long)n_items);
    if (st == PL_OK && level != PL_LEVEL_FOV) {
        st = features_h5_read(file, path, item_name[level], 1, H5T_NATIVE_INT64, d1, (void **)&rowitem);
        if (st == PL_OK && d1[0] != d2[0])
            st = PL_FAIL(PL_ERR_FORMAT, "%s: %s has %llu rows but %s has %llu", path, item_name[level],
                         (unsigned long long)d1[0], emb_name[level], (unsigned long long)d2[0]);
        for (hsize_t i = 0; st == PL_OK && i < d1[0]; i++)
            if (rowitem[i] < 0 || rowitem[i] >= n_items)
                st = PL_FAIL(PL_ERR_FORMAT, "%s: %s[%llu] = %lld is not a row of /items (%lld rows)", path,
                             item_name[level], (unsigned long long)i, (long long)rowitem[i], (long long)n_items);
    }
    if (st == PL_OK && (d2[1] < 1 || d2[1] > 1000000))
        st = PL_FAIL(PL_ERR_FORMAT, "%s: %s has %llu columns", path, emb_name[level], (unsigned long long)d2[1]);
    if (st == PL_OK) {
        int64_t rows = (int64_t)d2[0];
        int dim = (int)d2[1];
        st = features_alloc_meta(fs, rows);
        fs->dim = dim;
        fs->x = emb;
        emb = NULL;
        int64_t kept = 0;
        static const char *suffix[3] = {"", "tile", "cell"};
        for (int64_t r = 0; r < rows && st == PL_OK; r++) {
            const float *src = fs->x + (size_t)r * dim;
            int finite = 1;
            for (int d = 0; d < dim; d++) finite &= isfinite(src[d]) != 0;
            if (!finite) {
                fs->n_skipped++;
                continue;
            }
            int64_t it = level == PL_LEVEL_FOV ? r : rowitem[r];
            if (kept != r) memmove(fs->x + (size_t)kept * dim, src, (size_t)dim * sizeof(float));
            char idbuf[4096];
            if (level == PL_LEVEL_FOV) snprintf(idbuf, sizeof idbuf, "%s", meta[0][it]);
            else snprintf(idbuf, sizeof idbuf, "%s/%s%lld", meta[0][it], suffix[level], (long long)r);
            fs->id[kept] = pl_strdup(idbuf);
            fs->label[kept] = pl_strdup(meta[1][it]);
            fs->split[kept] = pl_strdup(meta[2] ? meta[2][it] : "");
            fs->group[kept] = pl_strdup(meta[3] ? meta[3][it] : "");
            fs->item[kept] = it;
            fs->n = kept + 1;   // so pl_features_free releases what exists
            if (!fs->id[kept] || !fs->label[kept] || !fs->split[kept] || !fs->group[kept]) st = PL_ERR_NOMEM;
            kept++;
        }
        fs->n = kept;
    }
    free(emb);
    free(rowitem);
    for (int c = 0; c < 4; c++) features_free_strings(meta[c], n_items < 0 ? 0 : n_items);
    H5Fclose(file);
    if (st != PL_OK) pl_features_free(fs);
    return st;
}

// ---------------------------------------------------------------- .npy + TSV

// Split a line at tabs in place (no quoting in protloc TSVs); returns field count.
static int features_split_tabs(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < max) fields[n] = p;
        n++;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

PlStatus pl_features_read_npy_tsv(const char *npy_path, const char *tsv_path, PlFeatureSet *fs) {
    memset(fs, 0, sizeof *fs);
    PlNpyArray a;
    PL_TRY(pl_npy_read_f32(npy_path, 2, &a));
    int64_t rows = a.shape[0];
    if (a.shape[1] < 1) {
        pl_npy_free(&a);
        return PL_FAIL(PL_ERR_FORMAT, "%s: features have no columns", npy_path);
    }
    char *text = NULL;
    size_t size = 0;
    PlStatus st = pl_file_read_all(tsv_path, (size_t)1 << 32, &text, &size);
    if (st != PL_OK) {
        pl_npy_free(&a);
        return st;
    }
    st = features_alloc_meta(fs, rows);
    fs->x = a.data;
    fs->dim = (int)a.shape[1];
    a.data = NULL;
    int col[4] = {-1, -1, -1, -1};
    static const char *names[4] = {"id", "label", "split", "group"};
    int header_seen = 0, ncols = 0;
    int64_t row = 0, lineno = 0;
    char *save = text;
    enum { MAXF = 256 };
    char *f[MAXF];
    while (st == PL_OK && save && *save) {
        char *line = save;
        char *nl = strchr(line, '\n');
        if (nl) { *nl = 0; save = nl + 1; } else save = NULL;
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (line[0] == '#' || (len == 0 && !header_seen)) continue;
        if (len == 0 && !save) break;
        int nf = features_split_tabs(line, f, MAXF);
        if (nf > MAXF) { st = PL_FAIL(PL_ERR_FORMAT, "%s:%lld: more than %d columns", tsv_path, (long long)lineno, MAXF); break; }
        if (!header_seen) {
            header_seen = 1;
            ncols = nf;
            for (int i = 0; i < nf; i++)
                for (int c = 0; c < 4; c++)
                    if (strcmp(f[i], names[c]) == 0) col[c] = i;
            if (col[0] < 0 || col[1] < 0)
                st = PL_FAIL(PL_ERR_FORMAT, "%s:%lld: header must name the columns 'id' and 'label' (and may name 'split', 'group')",
                             tsv_path, (long long)lineno);
            continue;
        }
        if (nf != ncols) { st = PL_FAIL(PL_ERR_FORMAT, "%s:%lld: %d fields, the header has %d", tsv_path, (long long)lineno, nf, ncols); break; }
        if (row >= rows) { st = PL_FAIL(PL_ERR_FORMAT, "%s:%lld: more data lines than the %lld rows of %s", tsv_path, (long long)lineno, (long long)rows, npy_path); break; }
        fs->id[row] = pl_strdup(f[col[0]]);
        fs->label[row] = pl_strdup(f[col[1]]);
        fs->split[row] = pl_strdup(col[2] >= 0 ? f[col[2]] : "");
        fs->group[row] = pl_strdup(col[3] >= 0 ? f[col[3]] : "");
        fs->item[row] = row;
        fs->n = row + 1;
        if (!fs->id[row] || !fs->label[row] || !fs->split[row] || !fs->group[row]) st = PL_ERR_NOMEM;
        row++;
    }
    if (st == PL_OK && !header_seen) st = PL_FAIL(PL_ERR_FORMAT, "%s: no header line", tsv_path);
    if (st == PL_OK && row != rows)
        st = PL_FAIL(PL_ERR_FORMAT, "%s: %lld data lines but %s has %lld rows", tsv_path, (long long)row, npy_path, (long long)rows);
    for (int64_t r = 0; st == PL_OK && r < rows; r++)
        for (int d = 0; d < fs->dim; d++)
            if (!isfinite(fs->x[(size_t)r * fs->dim + d])) {
                st = PL_FAIL(PL_ERR_NUMERIC, "%s: row %lld (id %s) column %d is not finite", npy_path, (long long)r, fs->id[r], d);
                break;
            }
    free(text);
    if (st != PL_OK) {
        fs->n = fs->n > 0 ? fs->n : 0;
        pl_features_free(fs);
    }
    return st;
}
