// `protloc run` reprocessing: copy unchanged items of an existing store into rank 0's journal as finished records.
//
// An item is reused when the old store was made with the same settings key (model sha256 + card + preprocessing
// options) and holds the item's id with the same input digest. Its FOV row and its tile / cell rows (found
// through /tiles/item and /cells/item, which are sorted by item row) become one journal record, so the store
// writer treats reused and freshly computed items alike.
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pl_log.h"
#include "pl_run_priv.h"
#include "pl_store.h"

typedef struct ReuseRanges { int64_t *start, *count; } ReuseRanges;

// For a sorted /X/item dataset: first row and row count of each old item row.
static PlStatus reuse_ranges(hid_t f, const char *name, int64_t n_old, ReuseRanges *r) {
    r->start = calloc((size_t)(n_old > 0 ? n_old : 1), sizeof *r->start);
    r->count = calloc((size_t)(n_old > 0 ? n_old : 1), sizeof *r->count);
    if (!r->start || !r->count) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    if (!pl_store_has(f, name)) return PL_OK;
    int64_t rows = 0, cols = 0;
    PL_TRY(pl_store_shape(f, name, &rows, &cols));
    int64_t *item = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *item);
    if (!item) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    PlStatus st = pl_store_read_i64(f, name, 0, rows, item);
    for (int64_t i = 0; i < rows && st == PL_OK; i++) {
        int64_t it = item[i];
        if (it < 0 || it >= n_old || (i > 0 && it < item[i - 1])) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s: row %lld names item %lld (rows must be sorted, < %lld)", name,
                         (long long)i, (long long)it, (long long)n_old);
            break;
        }
        if (r->count[it] == 0) r->start[it] = i;
        r->count[it]++;
    }
    free(item);
    return st;
}

static void reuse_ranges_free(ReuseRanges *r) {
    free(r->start);
    free(r->count);
}

PlStatus run_reuse_old_store(const RunContext *ctx, const unsigned char *done, unsigned char *reused,
                             PlJournalWriter *journal, PlRunSummary *sum) {
    const PlManifest *m = &ctx->manifest;
    const PlRunOptions *o = ctx->opt;
    struct stat sb;
    if (stat(o->out, &sb) != 0) {
        sum->added = (long)m->count;
        return PL_OK;
    }
    hid_t f;
    PlStatus st = pl_store_open_read(o->out, &f);
    if (st != PL_OK) {
        pl_log_warn("existing store %s cannot be read (%s): recomputing everything", o->out, pl_error_message());
        sum->added = (long)m->count;
        return PL_OK;
    }
    char *key = NULL;
    int present = 0;
    int64_t n_old = 0;
    char **ids = NULL, **digests = NULL;
    int64_t n_dg = 0;
    st = pl_store_read_attr_string(f, "settings_key", &key, &present);
    if (st == PL_OK) st = pl_store_read_strings(f, "/items/id", &n_old, &ids);
    if (st == PL_OK) st = pl_store_read_strings(f, "/items/digest", &n_dg, &digests);
    if (st == PL_OK && n_dg != n_old) st = PL_FAIL(PL_ERR_FORMAT, "%s: /items/id and /items/digest differ in length", o->out);
    if (st != PL_OK) {
        pl_log_warn("existing store %s is not a protloc store (%s): recomputing everything", o->out, pl_error_message());
        free(key);
        pl_store_free_strings(ids, n_old);
        pl_store_free_strings(digests, n_dg);
        pl_store_close_read(f);
        sum->added = (long)m->count;
        return PL_OK;
    }
    int same_settings = present && !strcmp(key, ctx->settings_key);
    if (!same_settings) pl_log_info("model or preprocessing settings changed since %s was written: recomputing all", o->out);
    free(key);
    // old id → old row (linear probing over a power-of-two table)
    size_t cap = 16;
    while (cap < (size_t)n_old * 2 + 1) cap *= 2;
    long *slot = malloc(cap * sizeof *slot);
    unsigned char *seen = calloc((size_t)(n_old > 0 ? n_old : 1), 1);
    ReuseRanges tiles = {0}, cells = {0};
    if (!slot || !seen) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; slot && i < cap; i++) slot[i] = -1;
    for (int64_t i = 0; i < n_old && st == PL_OK; i++) {
        unsigned long h = 1469598103934665603UL;
        for (const char *s = ids[i]; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211UL;
        size_t k = h & (cap - 1);
        while (slot[k] >= 0) k = (k + 1) & (cap - 1);
        slot[k] = (long)i;
    }
    int want_fov = (o->levels & PL_LEVEL_FOV) != 0;
    if (st == PL_OK && same_settings && (o->levels & PL_LEVEL_TILES)) st = reuse_ranges(f, "/tiles/item", n_old, &tiles);
    if (st == PL_OK && same_settings && (o->levels & PL_LEVEL_CELLS)) st = reuse_ranges(f, "/cells/item", n_old, &cells);
    size_t D = (size_t)ctx->dim;
    float *fov = malloc(D * sizeof *fov);
    float *emb = NULL;
    int32_t *yx = NULL, *tmp32 = NULL;
    float *cyx = NULL, *tmpf = NULL;
    int64_t *area = NULL;
    size_t emb_cap = 0, meta_cap = 0;
    if (!fov) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->count && st == PL_OK; i++) {
        const PlManifestItem *it = &m->items[i];
        unsigned long h = 1469598103934665603UL;
        for (const char *s = it->id; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211UL;
        long old = -1;
        for (size_t k = h & (cap - 1); slot[k] >= 0; k = (k + 1) & (cap - 1))
            if (!strcmp(ids[slot[k]], it->id)) { old = slot[k]; break; }
        if (old < 0) { sum->added++; continue; }
        seen[old] = 1;
        if (done[i]) continue;   // the journal already holds it (resumed run)
        if (!same_settings || strcmp(digests[old], ctx->digests[i]) != 0) { sum->changed++; continue; }
        PlJournalRecord rec;
        memset(&rec, 0, sizeof rec);
        rec.id = it->id;
        rec.digest = ctx->digests[i];
        rec.dim = ctx->dim;
        if (want_fov) {
            st = pl_store_read_f32(f, "/fov/embedding", old, 1, fov);
            rec.has_fov = 1;
            rec.fov = fov;
        }
        int64_t nt = tiles.count ? tiles.count[old] : 0, nc = cells.count ? cells.count[old] : 0;
        size_t need = (size_t)(nt > nc ? nt : nc);
        if (st == PL_OK && need * D > emb_cap) {
            float *q = realloc(emb, need * D * sizeof *q);
            if (!q) { st = PL_FAIL(PL_ERR_NOMEM, "out of memory"); break; }
            emb = q;
            emb_cap = need * D;
        }
        if (st == PL_OK && need > meta_cap) {
            int32_t *a = realloc(yx, need * 2 * sizeof *a);
            if (a) yx = a;
            int32_t *b = a ? realloc(tmp32, need * sizeof *b) : NULL;
            if (b) tmp32 = b;
            float *c = b ? realloc(cyx, need * 2 * sizeof *c) : NULL;
            if (c) cyx = c;
            float *d = c ? realloc(tmpf, need * sizeof *d) : NULL;
            if (d) tmpf = d;
            int64_t *e = d ? realloc(area, need * sizeof *e) : NULL;
            if (e) area = e;
            if (!e) { st = PL_FAIL(PL_ERR_NOMEM, "out of memory"); break; }
            meta_cap = need;
        }
        if (st == PL_OK && nt > 0) {   // tiles first, appended; cells read after the tile record part is built
            st = pl_store_read_i32(f, "/tiles/y", tiles.start[old], nt, tmp32);
            for (int64_t j = 0; st == PL_OK && j < nt; j++) yx[2 * j] = tmp32[j];
            if (st == PL_OK) st = pl_store_read_i32(f, "/tiles/x", tiles.start[old], nt, tmp32);
            for (int64_t j = 0; st == PL_OK && j < nt; j++) yx[2 * j + 1] = tmp32[j];
        }
        // tiles and cells both need embedding buffers; use separate halves when both levels are on
        float *temb = emb, *cemb = emb;
        float *both = NULL;
        if (st == PL_OK && nt > 0 && nc > 0) {
            both = malloc((size_t)nc * D * sizeof *both);
            if (!both) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
            cemb = both;
        }
        if (st == PL_OK && nt > 0) st = pl_store_read_f32(f, "/tiles/embedding", tiles.start[old], nt, temb);
        if (st == PL_OK && nc > 0) {
            st = pl_store_read_f32(f, "/cells/cy", cells.start[old], nc, tmpf);
            for (int64_t j = 0; st == PL_OK && j < nc; j++) cyx[2 * j] = tmpf[j];
            if (st == PL_OK) st = pl_store_read_f32(f, "/cells/cx", cells.start[old], nc, tmpf);
            for (int64_t j = 0; st == PL_OK && j < nc; j++) cyx[2 * j + 1] = tmpf[j];
            if (st == PL_OK) st = pl_store_read_i64(f, "/cells/area", cells.start[old], nc, area);
            if (st == PL_OK) st = pl_store_read_f32(f, "/cells/embedding", cells.start[old], nc, cemb);
        }
        if (st == PL_OK) {
            rec.n_tiles = (int)nt;
            rec.tile_yx = yx;
            rec.tile_emb = temb;
            rec.n_cells = (int)nc;
            rec.cell_cyx = cyx;
            rec.cell_area = area;
            rec.cell_emb = cemb;
            st = pl_journal_append(journal, &rec);
        }
        free(both);
        if (st == PL_OK) {
            reused[i] = 1;
            sum->reused++;
        }
    }
    for (int64_t i = 0; i < n_old && st == PL_OK; i++)
        if (!seen[i]) sum->removed++;
    if (st != PL_OK) pl_error_wrap("reusing rows of %s", o->out);
    free(fov); free(emb); free(yx); free(tmp32); free(cyx); free(tmpf); free(area);
    reuse_ranges_free(&tiles);
    reuse_ranges_free(&cells);
    free(slot);
    free(seen);
    pl_store_free_strings(ids, n_old);
    pl_store_free_strings(digests, n_dg);
    pl_store_close_read(f);
    return st;
}
