// `protloc export` library part: read a store level into a PlExportTable; .npy + meta and TSV writers.
#include "pl_export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"
#include "pl_h5.h"
#include "pl_npy.h"
#include "pl_store.h"

const char *const pl_export_meta_names[PL_EXPORT_N_META] = {"id", "dataset", "label", "split", "group"};

static const char *const export_level_names[] = {"fov", "tiles", "cells"};

PlStatus pl_export_level_parse(const char *text, PlExportLevel *level) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(text, export_level_names[i])) {
            *level = (PlExportLevel)i;
            return PL_OK;
        }
    return PL_FAIL(PL_ERR_ARG, "level must be fov, tiles or cells, not '%s'", text);
}

const char *pl_export_level_name(PlExportLevel level) {
    return level >= PL_EXPORT_FOV && level <= PL_EXPORT_CELLS ? export_level_names[level] : "?";
}

static PlStatus export_load_level(hid_t f, const char *store, PlExportTable *t) {
    const char *lv = pl_export_level_name(t->level);
    char name[64];
    snprintf(name, sizeof name, "/%s/embedding", lv);
    if (!pl_store_has(f, name)) {
        if (!pl_store_has(f, t->level == PL_EXPORT_FOV ? "/fov" : t->level == PL_EXPORT_TILES ? "/tiles" : "/cells"))
            return PL_FAIL(PL_ERR_FORMAT, "%s has no /%s level (was it made with --level %s?)", store, lv, lv);
        return PL_FAIL(PL_ERR_FORMAT, "%s: /%s has no embedding dataset", store, lv);
    }
    int64_t rows = 0, cols = 0;
    PL_TRY(pl_store_shape(f, name, &rows, &cols));
    if (cols <= 0) return PL_FAIL(PL_ERR_FORMAT, "%s: %s is 1-D; want (N, D)", store, name);
    t->n = rows;
    t->d = cols;
    size_t bytes;
    if (pl_mul_overflows((size_t)rows, (size_t)cols * sizeof(float), &bytes)) return PL_ERR_LIMIT;
    t->x = pl_malloc(bytes ? bytes : 1);
    t->item = pl_malloc((size_t)(rows ? rows : 1) * sizeof *t->item);
    if (!t->x || !t->item) return PL_ERR_NOMEM;
    PL_TRY(pl_store_read_f32(f, name, 0, rows, t->x));
    snprintf(name, sizeof name, "/%s/item", lv);
    if (pl_store_has(f, name)) {
        int64_t ir = 0, ic = 0;
        PL_TRY(pl_store_shape(f, name, &ir, &ic));
        if (ir != rows || ic != 0)
            return PL_FAIL(PL_ERR_FORMAT, "%s: %s has %" PRId64 " rows, /%s/embedding has %" PRId64, store, name, ir,
                           lv, rows);
        PL_TRY(pl_store_read_i64(f, name, 0, rows, t->item));
    } else if (t->level == PL_EXPORT_FOV && rows == t->n_items) {
        for (int64_t r = 0; r < rows; r++) t->item[r] = r;
    } else {
        return PL_FAIL(PL_ERR_FORMAT, "%s: %s missing (needed to link /%s rows to /items)", store, name, lv);
    }
    for (int64_t r = 0; r < rows; r++)
        if (t->item[r] < 0 || t->item[r] >= t->n_items)
            return PL_FAIL(PL_ERR_FORMAT, "%s: /%s/item[%" PRId64 "] = %" PRId64 " is not a row of /items (%" PRId64
                           " items)", store, lv, r, t->item[r], t->n_items);
    static const char *const tile_cols[] = {"y", "x"};
    static const char *const cell_cols[] = {"cy", "cx", "area"};
    const char *const *extra = t->level == PL_EXPORT_TILES ? tile_cols : cell_cols;
    int n_extra = t->level == PL_EXPORT_TILES ? 2 : t->level == PL_EXPORT_CELLS ? 3 : 0;
    for (int k = 0; k < n_extra; k++) {
        snprintf(name, sizeof name, "/%s/%s", lv, extra[k]);
        if (!pl_store_has(f, name)) continue;   // optional: export what is there
        int64_t er = 0, ec = 0;
        PL_TRY(pl_store_shape(f, name, &er, &ec));
        if (er != rows || ec != 0)
            return PL_FAIL(PL_ERR_FORMAT, "%s: %s has shape (%" PRId64 ", %" PRId64 "), want (%" PRId64 ")", store,
                           name, er, ec, rows);
        float *v = pl_malloc((size_t)(rows ? rows : 1) * sizeof *v);
        if (!v) return PL_ERR_NOMEM;
        t->extra[t->n_extra] = v;
        t->extra_names[t->n_extra] = extra[k];
        t->n_extra++;
        PL_TRY(pl_store_read_f32(f, name, 0, rows, v));
    }
    return PL_OK;
}

// H5Aiterate2 callback: keep every string root attribute (provenance: model, options, version, time).
static herr_t export_collect_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    PlExportTable *t = data;
    (void)info;
    if (t->n_attrs >= PL_EXPORT_MAX_ATTRS) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a), mt = H5I_INVALID_HID;
    char *value = NULL;
    if (ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING && H5Sget_simple_extent_npoints(sp) == 1 &&
        (mt = H5Tcopy(H5T_C_S1)) >= 0 && H5Tset_cset(mt, H5Tget_cset(ft)) >= 0) {
        if (H5Tis_variable_str(ft) > 0) {
            char *v = NULL;
            if (H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, &v) >= 0 && v) {
                value = strdup(v);
                H5free_memory(v);
            }
        } else {
            size_t w = H5Tget_size(ft);
            char *buf = calloc(1, w + 1);
            if (buf && H5Tset_size(mt, w) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLPAD) >= 0 && H5Aread(a, mt, buf) >= 0)
                value = strndup(buf, w);
            free(buf);
        }
    }
    H5Eclear2(H5E_DEFAULT);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    if (!value) return 0;   // non-string or unreadable attributes are not provenance text: skipped
    char *key = strdup(name);
    if (!key) {
        free(value);
        t->n_attrs = -1;
        return -1;
    }
    t->attr_names[t->n_attrs] = key;
    t->attr_values[t->n_attrs] = value;
    t->n_attrs++;
    return 0;
}

PlStatus pl_export_load(const char *store, PlExportLevel level, PlExportTable *t) {
    memset(t, 0, sizeof *t);
    t->level = level;
    t->store_path = pl_strdup(store);
    if (!t->store_path) return PL_ERR_NOMEM;
    hid_t f;
    PL_TRY(pl_store_open_read(store, &f));
    PlStatus st = PL_OK;
    for (int k = 0; k < PL_EXPORT_N_META && st == PL_OK; k++) {
        char name[32];
        snprintf(name, sizeof name, "/items/%s", pl_export_meta_names[k]);
        int64_t n = 0;
        if (!pl_store_has(f, name)) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s: dataset %s missing (not a protloc store?)", store, name);
            break;
        }
        st = pl_store_read_strings(f, name, &n, &t->meta[k]);
        if (st == PL_OK && k == 0) t->n_items = n;
        else if (st == PL_OK && n != t->n_items) {
            pl_store_free_strings(t->meta[k], n);
            t->meta[k] = NULL;
            st = PL_FAIL(PL_ERR_FORMAT, "%s: %s has %" PRId64 " entries, /items/id has %" PRId64, store, name, n,
                         t->n_items);
        }
    }
    if (st == PL_OK) st = export_load_level(f, store, t);
    if (st == PL_OK && H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, NULL, export_collect_attr, t) < 0)
        st = t->n_attrs < 0 ? PL_ERR_NOMEM : PL_H5_FAIL("cannot list the root attributes of %s", store);
    pl_store_close_read(f);
    if (st != PL_OK) {
        pl_error_wrap("exporting %s", store);
        PlStatus code = pl_error_code();
        pl_export_free(t);
        return code;
    }
    return PL_OK;
}

char *pl_export_obs_name(const PlExportTable *t, int64_t r, int64_t k) {
    const char *id = t->meta[0][t->item[r]];
    if (t->level == PL_EXPORT_FOV) return pl_strdup(id);
    size_t n = strlen(id) + 24;
    char *s = pl_malloc(n);
    if (s) snprintf(s, n, "%s/%" PRId64, id, k);
    return s;
}

int64_t *pl_export_ordinals(const PlExportTable *t) {
    int64_t *k = pl_calloc((size_t)(t->n ? t->n : 1), sizeof *k);
    int64_t *next = pl_calloc((size_t)(t->n_items ? t->n_items : 1), sizeof *next);
    if (!k || !next) { free(k); free(next); return NULL; }
    for (int64_t r = 0; r < t->n; r++) k[r] = next[t->item[r]]++;
    free(next);
    return k;
}

static void export_write_meta_row(FILE *fp, const PlExportTable *t, int64_t r) {
    int64_t it = t->item[r];
    for (int k = 0; k < PL_EXPORT_N_META; k++) fprintf(fp, "%s%s", k ? "\t" : "", t->meta[k][it]);
    for (int e = 0; e < t->n_extra; e++) fprintf(fp, "\t%.9g", t->extra[e][r]);
}

static void export_write_meta_header(FILE *fp, const PlExportTable *t) {
    for (int k = 0; k < PL_EXPORT_N_META; k++) fprintf(fp, "%s%s", k ? "\t" : "", pl_export_meta_names[k]);
    for (int e = 0; e < t->n_extra; e++) fprintf(fp, "\t%s", t->extra_names[e]);
}

PlStatus pl_export_write_npy(const PlExportTable *t, const char *path, const char *meta_path) {
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, meta_path));
    export_write_meta_header(af.fp, t);
    fputc('\n', af.fp);
    for (int64_t r = 0; r < t->n; r++) {
        export_write_meta_row(af.fp, t, r);
        fputc('\n', af.fp);
    }
    if (ferror(af.fp)) {
        pl_atomic_abort(&af);
        return PL_FAIL(PL_ERR_IO, "cannot write %s", meta_path);
    }
    int64_t shape[2] = {t->n, t->d};
    PlStatus st = pl_npy_write_f32(path, 2, shape, t->x);
    if (st != PL_OK) {
        pl_atomic_abort(&af);
        return st;
    }
    return pl_atomic_commit(&af);
}

PlStatus pl_export_write_tsv(const PlExportTable *t, const char *path) {
    int64_t *ord = pl_export_ordinals(t);
    if (!ord) return PL_ERR_NOMEM;
    PlAtomicFile af;
    PlStatus st = pl_atomic_open(&af, path);
    if (st != PL_OK) { free(ord); return st; }
    FILE *fp = af.fp;
    fprintf(fp, "obs\t");
    export_write_meta_header(fp, t);
    for (int64_t j = 0; j < t->d; j++) fprintf(fp, "\te%" PRId64, j);
    fputc('\n', fp);
    for (int64_t r = 0; r < t->n && !ferror(fp); r++) {
        char *obs = pl_export_obs_name(t, r, ord[r]);
        if (!obs) { st = PL_ERR_NOMEM; break; }
        fprintf(fp, "%s\t", obs);
        free(obs);
        export_write_meta_row(fp, t, r);
        const float *row = t->x + r * t->d;   // (d)
        for (int64_t j = 0; j < t->d; j++) fprintf(fp, "\t%.9g", row[j]);
        fputc('\n', fp);
    }
    free(ord);
    if (st == PL_OK && ferror(fp)) st = PL_FAIL(PL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    if (st != PL_OK) {
        pl_atomic_abort(&af);
        return st;
    }
    return pl_atomic_commit(&af);
}

void pl_export_free(PlExportTable *t) {
    if (!t) return;
    for (int k = 0; k < PL_EXPORT_N_META; k++) pl_store_free_strings(t->meta[k], t->n_items);
    for (int e = 0; e < t->n_extra; e++) free(t->extra[e]);
    free(t->x);
    free(t->item);
    free(t->store_path);
    for (int i = 0; i < t->n_attrs; i++) {
        free(t->attr_names[i]);
        free(t->attr_values[i]);
    }
    memset(t, 0, sizeof *t);
}
