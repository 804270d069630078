// `protloc run` reprocessing: copy unchanged items of an existing store into rank 0's journal as finished records.
//
// An item is reused when the old store was made with the same settings key (model sha256 + card + preprocessing
// options) and holds the item's id with the same input digest. Its FOV row and its tile / cell rows (found
// through /tiles/item and /cells/item, which are sorted by item row) become one journal record, so the store
// writer treats reused and freshly computed items alike.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pl_log.h"
#include "pl_run_priv.h"
#include "pl_store.h"

typedef struct ReuseRanges { int64_t *start, *count; } ReuseRanges;

// For a sorted /X/item dataset: first row and row count of each old item row, read a chunk at a time so that
// memory does not grow with the old store's rows.
static PlStatus reuse_ranges(hid_t f, const char *name, int64_t n_old, ReuseRanges *r) {
    enum { CHUNK = 65536 };
    r->start = calloc((size_t)(n_old > 0 ? n_old : 1), sizeof *r->start);
    r->count = calloc((size_t)(n_old > 0 ? n_old : 1), sizeof *r->count);
    if (!r->start || !r->count) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    if (!pl_store_has(f, name)) return PL_OK;
    int64_t rows = 0, cols = 0;
    PL_TRY(pl_store_shape(f, name, &rows, &cols));
    int64_t *item = malloc(CHUNK * sizeof *item);
    if (!item) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    PlStatus st = PL_OK;
    int64_t prev = -1;
    for (int64_t c0 = 0; c0 < rows && st == PL_OK; c0 += CHUNK) {
        int64_t n = rows - c0 < CHUNK ? rows - c0 : CHUNK;
        st = pl_store_read_i64(f, name, c0, n, item);
        for (int64_t j = 0; j < n && st == PL_OK; j++) {
            int64_t i = c0 + j, it = item[j];
            if (it < 0 || it >= n_old || it < prev) {
                st = PL_FAIL(PL_ERR_FORMAT, "%s: row %lld names item %lld (rows must be sorted, < %lld)", name,
                             (long long)i, (long long)it, (long long)n_old);
                break;
            }
            if (r->count[it] == 0) r->start[it] = i;
            r->count[it]++;
            prev = it;
        }
    }
    free(item);
    return st;
}

static void reuse_ranges_free(ReuseRanges *r) {
    free(r->start);
    free(r->count);
}

// The rows of one old item, read into grow-only buffers (each with its own capacity) as a journal record.
typedef struct ReuseBuffers {
    float *fov, *tile_emb, *cell_emb, *cell_cyx, *tmpf;
    int32_t *tile_yx, *tmp32, *cell_label;
    int64_t *cell_area;
    size_t fov_cap, tile_emb_cap, cell_emb_cap, cell_cyx_cap, tmpf_cap, tile_yx_cap, tmp32_cap, cell_label_cap,
        cell_area_cap;
} ReuseBuffers;

static void reuse_buffers_free(ReuseBuffers *b) {
    free(b->fov); free(b->tile_emb); free(b->cell_emb); free(b->cell_cyx); free(b->tmpf);
    free(b->tile_yx); free(b->tmp32); free(b->cell_label); free(b->cell_area);
    memset(b, 0, sizeof *b);
}

// Interleave two columns of n values into (n, 2) pairs.
#define REUSE_PAIR(dst, col, n, k) for (int64_t j_ = 0; j_ < (n); j_++) (dst)[2 * j_ + (k)] = (col)[j_]

// Where a read record holds a NaN or an infinity (a store written before non-finite embeddings failed their item, or
// a damaged one), said into why; 0 when every value is finite. Such rows are never copied: the item is recomputed.
static int reuse_nonfinite(const PlJournalRecord *rec, size_t D, char *why, size_t size) {
    static const char *const names[3] = {"FOV", "tile", "cell"};
    const float *emb[3] = {rec->has_fov ? rec->fov : NULL, rec->tile_emb, rec->cell_emb};
    size_t rows[3] = {rec->has_fov ? 1 : 0, (size_t)rec->n_tiles, (size_t)rec->n_cells};
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < rows[l] * D; i++)
            if (!isfinite(emb[l][i])) {
                if (l == 0) snprintf(why, size, "its FOV embedding holds %g at column %zu", (double)emb[l][i], i % D);
                else snprintf(why, size, "its %s embedding row %zu holds %g at column %zu", names[l], i / D,
                              (double)emb[l][i], i % D);
                return 1;
            }
    for (size_t i = 0; i < 2 * (size_t)rec->n_cells; i++)
        if (!isfinite(rec->cell_cyx[i])) {
            snprintf(why, size, "its cell row %zu has a centre of %g", i / 2, (double)rec->cell_cyx[i]);
            return 1;
        }
    return 0;
}

static PlStatus reuse_item(hid_t f, long old, int want_fov, const ReuseRanges *tiles, const ReuseRanges *cells, size_t D,
                           ReuseBuffers *b, PlJournalRecord *rec) {
    int64_t nt = tiles->count ? tiles->count[old] : 0, nc = cells->count ? cells->count[old] : 0;
    size_t m = (size_t)(nt > nc ? nt : nc);
    PL_TRY(pl_grow((void **)&b->fov, &b->fov_cap, D, sizeof(float)));
    PL_TRY(pl_grow((void **)&b->tile_emb, &b->tile_emb_cap, (size_t)nt * D, sizeof(float)));
    PL_TRY(pl_grow((void **)&b->cell_emb, &b->cell_emb_cap, (size_t)nc * D, sizeof(float)));
    PL_TRY(pl_grow((void **)&b->tile_yx, &b->tile_yx_cap, (size_t)nt * 2, sizeof(int32_t)));
    PL_TRY(pl_grow((void **)&b->cell_cyx, &b->cell_cyx_cap, (size_t)nc * 2, sizeof(float)));
    PL_TRY(pl_grow((void **)&b->cell_area, &b->cell_area_cap, (size_t)nc, sizeof(int64_t)));
    PL_TRY(pl_grow((void **)&b->cell_label, &b->cell_label_cap, (size_t)nc, sizeof(int32_t)));
    PL_TRY(pl_grow((void **)&b->tmp32, &b->tmp32_cap, m, sizeof(int32_t)));
    PL_TRY(pl_grow((void **)&b->tmpf, &b->tmpf_cap, m, sizeof(float)));
    if (want_fov) {
        PL_TRY(pl_store_read_f32(f, "/fov/embedding", old, 1, b->fov));
        rec->has_fov = 1;
        rec->fov = b->fov;
    }
    if (nt > 0) {
        PL_TRY(pl_store_read_i32(f, "/tiles/y", tiles->start[old], nt, b->tmp32));
        REUSE_PAIR(b->tile_yx, b->tmp32, nt, 0);
        PL_TRY(pl_store_read_i32(f, "/tiles/x", tiles->start[old], nt, b->tmp32));
        REUSE_PAIR(b->tile_yx, b->tmp32, nt, 1);
        PL_TRY(pl_store_read_f32(f, "/tiles/embedding", tiles->start[old], nt, b->tile_emb));
    }
    if (nc > 0) {
        PL_TRY(pl_store_read_f32(f, "/cells/cy", cells->start[old], nc, b->tmpf));
        REUSE_PAIR(b->cell_cyx, b->tmpf, nc, 0);
        PL_TRY(pl_store_read_f32(f, "/cells/cx", cells->start[old], nc, b->tmpf));
        REUSE_PAIR(b->cell_cyx, b->tmpf, nc, 1);
        PL_TRY(pl_store_read_i64(f, "/cells/area", cells->start[old], nc, b->cell_area));
        PL_TRY(pl_store_read_i32(f, "/cells/mask_label", cells->start[old], nc, b->cell_label));
        PL_TRY(pl_store_read_f32(f, "/cells/embedding", cells->start[old], nc, b->cell_emb));
    }
    rec->n_tiles = (int)nt;
    rec->tile_yx = b->tile_yx;
    rec->tile_emb = b->tile_emb;
    rec->n_cells = (int)nc;
    rec->cell_cyx = b->cell_cyx;
    rec->cell_area = b->cell_area;
    rec->cell_label = b->cell_label;
    rec->cell_emb = b->cell_emb;
    return PL_OK;
}

PlStatus run_reuse_old_store(const RunContext *ctx, const unsigned char *done, unsigned char *reused,
                             unsigned char *had_row, PlJournalWriter *journal, PlRunSummary *sum) {
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
    // old row of each manifest item (through the manifest's id index)
    long *old_row = malloc((m->count ? m->count : 1) * sizeof *old_row);
    ReuseRanges tiles = {0}, cells = {0};
    if (!old_row) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; old_row && i < m->count; i++) old_row[i] = -1;
    for (int64_t j = 0; j < n_old && st == PL_OK; j++) {
        long i = pl_manifest_find(m, ids[j]);
        if (i >= 0) old_row[i] = (long)j, had_row[i] = 1;
        else sum->removed++;
    }
    if (same_settings && (o->levels & PL_RUN_CELLS) && !pl_store_has(f, "/cells/mask_label")) {
        pl_log_info("%s was written before cells carried their mask label: recomputing all", o->out);
        same_settings = 0;
    }
    int want_fov = (o->levels & PL_RUN_FOV) != 0;
    if (st == PL_OK && same_settings && (o->levels & PL_RUN_TILES)) st = reuse_ranges(f, "/tiles/item", n_old, &tiles);
    if (st == PL_OK && same_settings && (o->levels & PL_RUN_CELLS)) st = reuse_ranges(f, "/cells/item", n_old, &cells);
    ReuseBuffers buf;
    memset(&buf, 0, sizeof buf);
    for (size_t i = 0; i < m->count && st == PL_OK; i++) {
        const PlManifestItem *it = &m->items[i];
        long old = old_row[i];
        if (old < 0) { sum->added++; continue; }
        if (done[i]) continue;   // the journal already holds it (resumed run)
        if (!same_settings || strcmp(digests[old], ctx->digests[i]) != 0) { sum->changed++; continue; }
        PlJournalRecord rec;
        memset(&rec, 0, sizeof rec);
        rec.id = it->id;
        rec.digest = ctx->digests[i];
        rec.dim = ctx->dim;
        st = reuse_item(f, old, want_fov, &tiles, &cells, (size_t)ctx->dim, &buf, &rec);
        char why[160];
        if (st == PL_OK && reuse_nonfinite(&rec, (size_t)ctx->dim, why, sizeof why)) {
            pl_log_warn("item %s: not reusing its rows of %s (%s): computing it again", it->id, o->out, why);
            continue;
        }
        if (st == PL_OK) st = pl_journal_append(journal, &rec);
        if (st == PL_OK) {
            reused[i] = 1;
            sum->reused++;
        }
    }
    if (st != PL_OK) pl_error_wrap("reusing rows of %s", o->out);
    reuse_buffers_free(&buf);
    reuse_ranges_free(&tiles);
    reuse_ranges_free(&cells);
    free(old_row);
    pl_store_free_strings(ids, n_old);
    pl_store_free_strings(digests, n_dg);
    pl_store_close_read(f);
    return st;
}
