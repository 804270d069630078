// Reading one store level into a PlStoreTable (see pl_store_table.h): items, embeddings, row links, extras, attributes.
#include "pl_store_table.h"

#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_h5.h"
#include "pl_store.h"

const char *const pl_store_meta_names[PL_STORE_N_META] = {"id", "dataset", "label", "split", "group"};

static const char *const store_level_names[PL_STORE_N_LEVELS] = {"fov", "tiles", "cells"};

PlStatus pl_store_level_parse(const char *text, PlStoreLevel *level) {
    for (int i = 0; i < PL_STORE_N_LEVELS; i++)
        if (!strcmp(text, store_level_names[i])) {
            *level = (PlStoreLevel)i;
            return PL_OK;
        }
    return PL_FAIL(PL_ERR_ARG, "level must be fov, tiles or cells, not '%s'", text);
}

const char *pl_store_level_name(PlStoreLevel level) {
    return level >= PL_STORE_FOV && level <= PL_STORE_CELLS ? store_level_names[level] : "?";
}

const char *pl_store_table_label(const PlStoreTable *t, int64_t r) {
    return t->row_label ? t->row_label[r] : t->meta[2][t->item[r]];
}

// /items/<name> for every meta column: id and label required, the others "" when absent.
static PlStatus table_load_items(hid_t f, const char *store, PlStoreTable *t) {
    for (int k = 0; k < PL_STORE_N_META; k++) {
        char name[32];
        snprintf(name, sizeof name, "/items/%s", pl_store_meta_names[k]);
        if (!pl_store_has(f, name)) {
            if (k == 0 || k == 2) return PL_FAIL(PL_ERR_FORMAT, "%s: dataset %s missing (not a protloc store?)", store, name);
            continue;
        }
        int64_t n = 0;
        PL_TRY(pl_store_read_strings(f, name, &n, &t->meta[k]));
        if (k == 0) {
            t->n_items = n;
        } else if (n != t->n_items) {
            pl_store_free_strings(t->meta[k], n);
            t->meta[k] = NULL;
            return PL_FAIL(PL_ERR_FORMAT, "%s: %s has %" PRId64 " entries, /items/id has %" PRId64, store, name, n,
                           t->n_items);
        }
    }
    for (int k = 0; k < PL_STORE_N_META; k++) {
        if (t->meta[k]) continue;
        t->meta[k] = pl_calloc((size_t)t->n_items + 1, sizeof(char *));
        if (!t->meta[k]) return PL_ERR_NOMEM;
        for (int64_t i = 0; i < t->n_items; i++)
            if (!(t->meta[k][i] = pl_strdup(""))) return PL_ERR_NOMEM;
    }
    return PL_OK;
}

// A 1-D dataset /<level>/<col> of `rows` rows read as float (optional: *present = 0 when absent).
static PlStatus table_load_column(hid_t f, const char *store, const char *name, int64_t rows, float **out,
                                  int *present) {
    *out = NULL;
    *present = pl_store_has(f, name);
    if (!*present) return PL_OK;
    int64_t er = 0, ec = 0;
    PL_TRY(pl_store_shape(f, name, &er, &ec));
    if (er != rows || ec != 0)
        return PL_FAIL(PL_ERR_FORMAT, "%s: %s has shape (%" PRId64 ", %" PRId64 "), want (%" PRId64 ")", store, name,
                       er, ec, rows);
    *out = pl_malloc((size_t)(rows ? rows : 1) * sizeof **out);
    if (!*out) return PL_ERR_NOMEM;
    return pl_store_read_f32(f, name, 0, rows, *out);
}

static PlStatus table_load_level(hid_t f, const char *store, PlStoreTable *t) {
    const char *lv = pl_store_level_name(t->level);
    char name[64];
    snprintf(name, sizeof name, "/%s/embedding", lv);
    if (!pl_store_has(f, name)) {
        char group[16];
        snprintf(group, sizeof group, "/%s", lv);
        if (!pl_store_has(f, group))
            return PL_FAIL(PL_ERR_FORMAT, "%s has no /%s level (no %s; was it made with --level %s?)", store, lv, name,
                           lv);
        return PL_FAIL(PL_ERR_FORMAT, "%s: /%s has no embedding dataset (%s)", store, lv, name);
    }
    int64_t rows = 0, cols = 0;
    PL_TRY(pl_store_shape(f, name, &rows, &cols));
    if (cols <= 0 || cols > 1000000)
        return PL_FAIL(PL_ERR_FORMAT, "%s: %s has %" PRId64 " columns; want (N, D) with 1 <= D <= 1000000", store, name,
                       cols);
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
    } else if (t->level == PL_STORE_FOV && rows == t->n_items) {
        for (int64_t r = 0; r < rows; r++) t->item[r] = r;
    } else if (t->level == PL_STORE_FOV) {
        return PL_FAIL(PL_ERR_FORMAT, "%s: /fov/embedding has %" PRId64 " rows but /items has %" PRId64, store, rows,
                       t->n_items);
    } else {
        return PL_FAIL(PL_ERR_FORMAT, "%s: %s missing (needed to link /%s rows to /items)", store, name, lv);
    }
    for (int64_t r = 0; r < rows; r++)
        if (t->item[r] < 0 || t->item[r] >= t->n_items)
            return PL_FAIL(PL_ERR_FORMAT, "%s: /%s/item[%" PRId64 "] = %" PRId64 " is not a row of /items (%" PRId64
                           " items)", store, lv, r, t->item[r], t->n_items);
    static const char *const tile_cols[] = {"y", "x"};
    static const char *const cell_cols[] = {"cy", "cx", "area", "mask_label"};
    const char *const *extra = t->level == PL_STORE_TILES ? tile_cols : cell_cols;
    int n_extra = t->level == PL_STORE_TILES ? 2 : t->level == PL_STORE_CELLS ? 4 : 0;
    for (int k = 0; k < n_extra; k++) {
        snprintf(name, sizeof name, "/%s/%s", lv, extra[k]);
        int present = 0;
        float *v = NULL;
        PlStatus st = table_load_column(f, store, name, rows, &v, &present);
        if (present) {   // the table owns v from here, also on a failed read
            t->extra[t->n_extra] = v;
            t->extra_names[t->n_extra++] = extra[k];
        }
        PL_TRY(st);
    }
    if (t->level == PL_STORE_CELLS && pl_store_has(f, "/cells/label")) {
        int64_t n = 0;
        PL_TRY(pl_store_read_strings(f, "/cells/label", &n, &t->row_label));
        if (n != rows) {
            pl_store_free_strings(t->row_label, n);
            t->row_label = NULL;
            return PL_FAIL(PL_ERR_FORMAT, "%s: /cells/label has %" PRId64 " entries, /cells/embedding %" PRId64 " rows",
                           store, n, rows);
        }
    }
    return PL_OK;
}

// H5Aiterate2 callback: keep every string root attribute (provenance: model, options, version, time).
static herr_t table_collect_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    PlStoreTable *t = data;
    (void)loc;
    (void)info;
    if (t->n_attrs >= PL_STORE_MAX_ATTRS) return 0;
    char *value = NULL;
    int present = 0;
    if (pl_store_read_attr_string(loc, name, &value, &present) != PL_OK || !present) {
        pl_error_clear();   // non-string or unreadable attributes are not provenance text: skipped
        return 0;
    }
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

PlStatus pl_store_table_load(const char *store, PlStoreLevel level, PlStoreTable *t) {
    memset(t, 0, sizeof *t);
    t->level = level;
    t->store_path = pl_strdup(store);
    if (!t->store_path) return PL_ERR_NOMEM;
    hid_t f;
    PlStatus st = pl_store_open_read(store, &f);
    if (st != PL_OK) {
        pl_store_table_free(t);
        return st;
    }
    st = table_load_items(f, store, t);
    if (st == PL_OK) st = table_load_level(f, store, t);
    if (st == PL_OK && H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, NULL, table_collect_attr, t) < 0)
        st = t->n_attrs < 0 ? PL_FAIL(PL_ERR_NOMEM, "out of memory") : PL_H5_FAIL("cannot list the root attributes of %s", store);
    pl_store_close_read(f);
    if (st != PL_OK) {
        if (t->n_attrs < 0) t->n_attrs = 0;
        pl_store_table_free(t);
    }
    return st;
}

void pl_store_table_free(PlStoreTable *t) {
    if (!t) return;
    for (int k = 0; k < PL_STORE_N_META; k++) pl_store_free_strings(t->meta[k], t->n_items);
    for (int e = 0; e < t->n_extra; e++) free(t->extra[e]);
    pl_store_free_strings(t->row_label, t->n);
    free(t->x);
    free(t->item);
    free(t->store_path);
    for (int i = 0; i < t->n_attrs; i++) {
        free(t->attr_names[i]);
        free(t->attr_values[i]);
    }
    memset(t, 0, sizeof *t);
}
