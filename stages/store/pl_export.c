// `protloc export` library part: read a store level into a PlStoreTable; .npy + meta and TSV writers.
#include "pl_export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"
#include "pl_npy.h"
#include "pl_store.h"

char *pl_export_obs_name(const PlStoreTable *t, int64_t r, int64_t k) {
    const char *id = t->meta[0][t->item[r]];
    if (t->level == PL_STORE_FOV) return pl_strdup(id);
    size_t n = strlen(id) + 24;
    char *s = pl_malloc(n);
    if (s) snprintf(s, n, "%s/%" PRId64, id, k);
    return s;
}

int64_t *pl_export_ordinals(const PlStoreTable *t) {
    int64_t *k = pl_calloc((size_t)(t->n ? t->n : 1), sizeof *k);
    int64_t *next = pl_calloc((size_t)(t->n_items ? t->n_items : 1), sizeof *next);
    if (!k || !next) { free(k); free(next); return NULL; }
    for (int64_t r = 0; r < t->n; r++) k[r] = next[t->item[r]]++;
    free(next);
    return k;
}

static void export_write_meta_row(FILE *fp, const PlStoreTable *t, int64_t r) {
    int64_t it = t->item[r];
    for (int k = 0; k < PL_STORE_N_META; k++)   // column 2, label: a cell's own label when the store has them
        fprintf(fp, "%s%s", k ? "\t" : "", k == 2 ? pl_store_table_label(t, r) : t->meta[k][it]);
    for (int e = 0; e < t->n_extra; e++) fprintf(fp, "\t%.9g", t->extra[e][r]);
}

static void export_write_meta_header(FILE *fp, const PlStoreTable *t) {
    for (int k = 0; k < PL_STORE_N_META; k++) fprintf(fp, "%s%s", k ? "\t" : "", pl_store_meta_names[k]);
    for (int e = 0; e < t->n_extra; e++) fprintf(fp, "\t%s", t->extra_names[e]);
}

PlStatus pl_export_write_npy(const PlStoreTable *t, const char *path, const char *meta_path) {
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, meta_path));
    export_write_meta_header(af.fp, t);
    fputc('\n', af.fp);
    for (int64_t r = 0; r < t->n; r++) {
        export_write_meta_row(af.fp, t, r);
        fputc('\n', af.fp);
    }
    // the metadata reaches the disk before the matrix is committed, so a full disk never leaves one without the other
    PlStatus st = ferror(af.fp) ? PL_FAIL(PL_ERR_IO, "cannot write %s: %s", meta_path, strerror(errno))
                                : pl_atomic_sync(&af);
    if (st != PL_OK) {
        pl_atomic_abort(&af);
        return st;
    }
    int64_t shape[2] = {t->n, t->d};
    st = pl_npy_write_f32(path, 2, shape, t->x);
    if (st != PL_OK) {
        pl_atomic_abort(&af);
        return st;
    }
    return pl_atomic_commit(&af);
}

PlStatus pl_export_write_tsv(const PlStoreTable *t, const char *path) {
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
