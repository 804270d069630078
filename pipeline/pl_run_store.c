// `protloc run` finalisation: map manifest items to journal records, then write the HDF5 store collectively.
//
// Rank 0 scans the journal folder and picks, for every manifest item, its newest record with the current
// digest; the per-item table is broadcast. Successful items become /items rows in manifest order; the rows
// are split into contiguous blocks, one per rank; each rank decodes its own records and writes its block of
// every dataset (collective writes; ranks with no rows take part with empty selections). Failures are
// written by rank 0.
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_run_priv.h"
#include "pl_store.h"

enum { F_FILE, F_OFFSET, F_LENGTH, F_TILES, F_CELLS, F_FAILED, F_FOV, F_N };

// Rank 0: table (items, F_N) of the record chosen for each item; file ranks of the journal files.
static PlStatus store_plan(const RunContext *ctx, int64_t *table, int *n_files, int **file_rank) {
    const PlManifest *m = &ctx->manifest;
    PlJournalIndex idx;
    PL_TRY(pl_journal_scan(ctx->journal_dir, &idx));
    PlStatus st = PL_OK;
    for (size_t i = 0; i < m->count; i++) table[i * F_N + F_FILE] = -1;
    for (size_t e = 0; e < idx.count && st == PL_OK; e++) {   // later records win
        const PlJournalEntry *en = &idx.entries[e];
        long item = pl_manifest_find(m, en->id);
        if (item < 0 || strcmp(en->digest, ctx->digests[item]) != 0) continue;
        if (!en->failed && en->dim != ctx->dim) continue;
        int64_t *t = table + (size_t)item * F_N;
        t[F_FILE] = en->file;
        t[F_OFFSET] = en->offset;
        t[F_LENGTH] = en->length;
        t[F_TILES] = en->n_tiles;
        t[F_CELLS] = en->n_cells;
        t[F_FAILED] = en->failed;
        t[F_FOV] = en->has_fov;
    }
    for (size_t i = 0; i < m->count && st == PL_OK; i++)
        if (table[i * F_N + F_FILE] < 0)
            st = PL_FAIL(PL_ERR_INTERNAL, "item '%s' (line %d) has no journal record after the run", m->items[i].id,
                         m->items[i].line);
    *n_files = idx.n_files;
    *file_rank = NULL;
    if (st == PL_OK && idx.n_files > 0) {
        *file_rank = malloc((size_t)idx.n_files * sizeof **file_rank);
        if (!*file_rank) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
        else memcpy(*file_rank, idx.file_rank, (size_t)idx.n_files * sizeof **file_rank);
    }
    pl_journal_index_free(&idx);
    return st;
}

// A PlJournalIndex view with only the file list (entries are built per read).
static PlStatus store_read_record(const RunContext *ctx, PlJournalIndex *view, const int64_t *t, const char *id,
                                  PlJournalItem *item) {
    PlJournalEntry en = {0};
    en.id = (char *)id;
    en.file = (int)t[F_FILE];
    en.offset = t[F_OFFSET];
    en.length = (uint32_t)t[F_LENGTH];
    view->entries = &en;
    view->count = 1;
    PlStatus st = pl_journal_read(view, 0, item);
    view->entries = NULL;
    view->count = 0;
    if (st == PL_OK && strcmp(item->id, id) != 0)
        st = PL_FAIL(PL_ERR_INTERNAL, "journal record for '%s' holds '%s'", id, item->id);
    if (st == PL_OK && !item->failed && (item->dim != ctx->dim || item->n_tiles != t[F_TILES] ||
                                         item->n_cells != t[F_CELLS]))
        st = PL_FAIL(PL_ERR_FORMAT, "journal record for '%s' does not match its index entry", id);
    return st;
}

PlStatus run_write_store(const RunContext *ctx, const char *temp_path, PlRunSummary *summary) {
    const PlManifest *m = &ctx->manifest;
    const PlRunOptions *o = ctx->opt;
    long N = (long)m->count;
    int64_t *table = calloc((size_t)(N > 0 ? N : 1) * F_N, sizeof *table);
    if (!table) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    int n_files = 0, *file_rank = NULL;
    PlStatus st = PL_OK;
    if (ctx->rank == 0) st = store_plan(ctx, table, &n_files, &file_rank);
    int ok_flag = st == PL_OK, all_ok = 0;
    PL_MPI_TRY(MPI_Allreduce(&ok_flag, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (!all_ok) {
        free(table);
        free(file_rank);
        return st != PL_OK ? st : PL_FAIL(PL_ERR_INTERNAL, "rank 0 could not plan the store (see its log)");
    }
    PL_MPI_TRY(MPI_Bcast(&n_files, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (ctx->rank != 0) file_rank = malloc((size_t)(n_files > 0 ? n_files : 1) * sizeof *file_rank);
    if (!file_rank && n_files > 0) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    if (n_files > 0) PL_MPI_TRY(MPI_Bcast(file_rank, n_files, MPI_INT, 0, MPI_COMM_WORLD));
    if (N > 0) PL_MPI_TRY(MPI_Bcast(table, (int)(N * F_N), MPI_INT64_T, 0, MPI_COMM_WORLD));

    // rows: ok items in manifest order, tile / cell row offsets
    long n_ok = 0, n_fail = 0;
    int64_t n_tiles = 0, n_cells = 0;
    long *ok_items = malloc((size_t)(N > 0 ? N : 1) * sizeof *ok_items);
    int64_t *tile0 = malloc((size_t)(N > 0 ? N : 1) * sizeof *tile0);
    int64_t *cell0 = malloc((size_t)(N > 0 ? N : 1) * sizeof *cell0);
    PlJournalIndex view = {0};
    view.n_files = n_files;
    view.files = calloc((size_t)(n_files > 0 ? n_files : 1), sizeof *view.files);
    if (!ok_items || !tile0 || !cell0 || !view.files) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
    for (int f = 0; f < n_files && st == PL_OK; f++)
        if (!(view.files[f] = pl_journal_rank_path(ctx->journal_dir, file_rank[f]))) st = PL_ERR_NOMEM;
    for (long i = 0; i < N && st == PL_OK; i++) {
        const int64_t *t = table + (size_t)i * F_N;
        if (t[F_FAILED]) { n_fail++; continue; }
        tile0[n_ok] = n_tiles;
        cell0[n_ok] = n_cells;
        ok_items[n_ok++] = i;
        n_tiles += t[F_TILES];
        n_cells += t[F_CELLS];
    }
    // this rank's block of ok rows
    long r0 = n_ok * ctx->rank / ctx->size, r1 = n_ok * (ctx->rank + 1) / ctx->size, nr = r1 - r0;
    int64_t lt0 = nr > 0 ? tile0[r0] : 0, lc0 = nr > 0 ? cell0[r0] : 0, lnt = 0, lnc = 0;
    for (long r = r0; r < r1 && st == PL_OK; r++) {
        lnt += table[(size_t)ok_items[r] * F_N + F_TILES];
        lnc += table[(size_t)ok_items[r] * F_N + F_CELLS];
    }
    size_t D = (size_t)ctx->dim;
    int want_fov = (o->levels & PL_RUN_FOV) != 0, want_tiles = (o->levels & PL_RUN_TILES) != 0;
    int want_cells = (o->levels & PL_RUN_CELLS) != 0;
    float *fov = calloc((size_t)(nr > 0 ? nr : 1) * D, sizeof *fov);
    float *temb = calloc((size_t)(lnt > 0 ? lnt : 1) * D, sizeof *temb);
    int64_t *titem = calloc((size_t)(lnt > 0 ? lnt : 1), sizeof *titem);
    int32_t *ty = calloc((size_t)(lnt > 0 ? lnt : 1), sizeof *ty), *tx = calloc((size_t)(lnt > 0 ? lnt : 1), sizeof *tx);
    float *cemb = calloc((size_t)(lnc > 0 ? lnc : 1) * D, sizeof *cemb);
    int64_t *citem = calloc((size_t)(lnc > 0 ? lnc : 1), sizeof *citem);
    float *cy = calloc((size_t)(lnc > 0 ? lnc : 1), sizeof *cy), *cx = calloc((size_t)(lnc > 0 ? lnc : 1), sizeof *cx);
    int64_t *carea = calloc((size_t)(lnc > 0 ? lnc : 1), sizeof *carea);
    int32_t *cmask = calloc((size_t)(lnc > 0 ? lnc : 1), sizeof *cmask);
    const char **clabel = calloc((size_t)(lnc > 0 ? lnc : 1), sizeof *clabel);
    const char **s_id = calloc((size_t)(nr > 0 ? nr : 1), sizeof(char *)), **s_ds = calloc((size_t)(nr > 0 ? nr : 1), sizeof(char *));
    const char **s_lab = calloc((size_t)(nr > 0 ? nr : 1), sizeof(char *)), **s_sp = calloc((size_t)(nr > 0 ? nr : 1), sizeof(char *));
    const char **s_gr = calloc((size_t)(nr > 0 ? nr : 1), sizeof(char *)), **s_dg = calloc((size_t)(nr > 0 ? nr : 1), sizeof(char *));
    if (!fov || !temb || !titem || !ty || !tx || !cemb || !citem || !cy || !cx || !carea || !cmask || !clabel || !s_id ||
        !s_ds || !s_lab || !s_sp || !s_gr || !s_dg)
        st = PL_FAIL(PL_ERR_NOMEM, "out of memory for this rank's %ld store rows", nr);
    PlJournalItem rec;
    memset(&rec, 0, sizeof rec);
    int64_t kt = 0, kc = 0;
    for (long r = r0; r < r1 && st == PL_OK; r++) {
        long i = ok_items[r];
        const PlManifestItem *it = &m->items[i];
        const int64_t *t = table + (size_t)i * F_N;
        st = store_read_record(ctx, &view, t, it->id, &rec);
        if (st != PL_OK) break;
        long lr = r - r0;
        s_id[lr] = it->id; s_ds[lr] = it->dataset; s_lab[lr] = it->label; s_sp[lr] = it->split;
        s_gr[lr] = it->group; s_dg[lr] = ctx->digests[i];
        if (want_fov) {
            if (!rec.has_fov) { st = PL_FAIL(PL_ERR_FORMAT, "journal record for '%s' lacks the FOV embedding", it->id); break; }
            memcpy(fov + (size_t)lr * D, rec.fov, D * sizeof *fov);
        }
        for (int j = 0; j < rec.n_tiles; j++, kt++) {
            titem[kt] = r;
            ty[kt] = rec.tile_yx[2 * j];
            tx[kt] = rec.tile_yx[2 * j + 1];
        }
        if (rec.n_tiles) memcpy(temb + (size_t)(kt - rec.n_tiles) * D, rec.tile_emb, (size_t)rec.n_tiles * D * sizeof(float));
        for (int j = 0; j < rec.n_cells; j++, kc++) {
            citem[kc] = r;
            cy[kc] = rec.cell_cyx[2 * j];
            cx[kc] = rec.cell_cyx[2 * j + 1];
            carea[kc] = rec.cell_area[j];
            cmask[kc] = rec.cell_label[j];
            clabel[kc] = run_cell_labels_find(&ctx->cell_labels, i, rec.cell_label[j]);
        }
        if (rec.n_cells) memcpy(cemb + (size_t)(kc - rec.n_cells) * D, rec.cell_emb, (size_t)rec.n_cells * D * sizeof(float));
    }
    // failures (rank 0 reads and writes them)
    long nf_local = ctx->rank == 0 ? n_fail : 0;
    char **f_id = calloc((size_t)(nf_local > 0 ? nf_local : 1), sizeof(char *));
    char **f_stage = calloc((size_t)(nf_local > 0 ? nf_local : 1), sizeof(char *));
    char **f_msg = calloc((size_t)(nf_local > 0 ? nf_local : 1), sizeof(char *));
    if (!f_id || !f_stage || !f_msg) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
    long kf = 0;
    for (long i = 0; i < N && st == PL_OK && ctx->rank == 0; i++) {
        const int64_t *t = table + (size_t)i * F_N;
        if (!t[F_FAILED]) continue;
        st = store_read_record(ctx, &view, t, m->items[i].id, &rec);
        if (st != PL_OK) break;
        f_id[kf] = pl_strdup(m->items[i].id);
        f_stage[kf] = pl_strdup(rec.fail_stage);
        f_msg[kf] = pl_strdup(rec.fail_message);
        kf++;
        if (!f_id[kf - 1] || !f_stage[kf - 1] || !f_msg[kf - 1]) st = PL_ERR_NOMEM;
    }
    pl_journal_item_free(&rec);
    // agree before the collective part
    ok_flag = st == PL_OK;
    PlStatus mst = PL_MPI_CHECK(MPI_Allreduce(&ok_flag, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (mst != PL_OK) st = mst;
    else if (!all_ok && st == PL_OK) st = PL_FAIL(PL_ERR_IO, "another rank could not read its journal records");
    if (st == PL_OK) {
        PlStoreWriter w;
        st = pl_store_create(&w, temp_path, MPI_COMM_WORLD);
        if (st == PL_OK) st = pl_store_write_strings(&w, "/items/id", n_ok, r0, nr, s_id);
        if (st == PL_OK) st = pl_store_write_strings(&w, "/items/dataset", n_ok, r0, nr, s_ds);
        if (st == PL_OK) st = pl_store_write_strings(&w, "/items/label", n_ok, r0, nr, s_lab);
        if (st == PL_OK) st = pl_store_write_strings(&w, "/items/split", n_ok, r0, nr, s_sp);
        if (st == PL_OK) st = pl_store_write_strings(&w, "/items/group", n_ok, r0, nr, s_gr);
        if (st == PL_OK) st = pl_store_write_strings(&w, "/items/digest", n_ok, r0, nr, s_dg);
        if (st == PL_OK && want_fov) st = pl_store_write_f32(&w, "/fov/embedding", n_ok, (int64_t)D, r0, nr, fov);
        if (want_tiles) {
            if (st == PL_OK) st = pl_store_write_f32(&w, "/tiles/embedding", n_tiles, (int64_t)D, lt0, lnt, temb);
            if (st == PL_OK) st = pl_store_write_i64(&w, "/tiles/item", n_tiles, 0, lt0, lnt, titem);
            if (st == PL_OK) st = pl_store_write_i32(&w, "/tiles/y", n_tiles, 0, lt0, lnt, ty);
            if (st == PL_OK) st = pl_store_write_i32(&w, "/tiles/x", n_tiles, 0, lt0, lnt, tx);
        }
        if (want_cells) {
            if (st == PL_OK) st = pl_store_write_f32(&w, "/cells/embedding", n_cells, (int64_t)D, lc0, lnc, cemb);
            if (st == PL_OK) st = pl_store_write_i64(&w, "/cells/item", n_cells, 0, lc0, lnc, citem);
            if (st == PL_OK) st = pl_store_write_f32(&w, "/cells/cy", n_cells, 0, lc0, lnc, cy);
            if (st == PL_OK) st = pl_store_write_f32(&w, "/cells/cx", n_cells, 0, lc0, lnc, cx);
            if (st == PL_OK) st = pl_store_write_i64(&w, "/cells/area", n_cells, 0, lc0, lnc, carea);
            if (st == PL_OK) st = pl_store_write_i32(&w, "/cells/mask_label", n_cells, 0, lc0, lnc, cmask);
            if (st == PL_OK && ctx->cell_labels.path)
                st = pl_store_write_strings(&w, "/cells/label", n_cells, lc0, lnc, clabel);
        }
        if (st == PL_OK) st = pl_store_write_strings(&w, "/failures/id", n_fail, 0, nf_local, (const char *const *)f_id);
        if (st == PL_OK) st = pl_store_write_strings(&w, "/failures/stage", n_fail, 0, nf_local, (const char *const *)f_stage);
        if (st == PL_OK) st = pl_store_write_strings(&w, "/failures/message", n_fail, 0, nf_local, (const char *const *)f_msg);
        char when[64];
        char levels[32] = "";
        if (want_fov) strcat(levels, "fov,");
        if (want_tiles) strcat(levels, "tiles,");
        if (want_cells) strcat(levels, "cells,");
        if (levels[0]) levels[strlen(levels) - 1] = '\0';
        if (st == PL_OK) st = pl_store_attr_string(&w, "format", PL_STORE_FORMAT);
        if (st == PL_OK) st = pl_store_attr_string(&w, "model_name", ctx->card.name);
        if (st == PL_OK) st = pl_store_attr_string(&w, "model_sha256", ctx->weights_sha);
        if (st == PL_OK) st = pl_store_attr_string(&w, "model_card", ctx->card.json);
        if (st == PL_OK) st = pl_store_attr_string(&w, "run_options", ctx->options_json);
        if (st == PL_OK) st = pl_store_attr_string(&w, "settings_key", ctx->settings_key);
        if (st == PL_OK) st = pl_store_attr_string(&w, "software_version", pl_version_string());
        if (st == PL_OK) st = pl_store_attr_string(&w, "created", pl_clock_iso_utc(when, sizeof when));
        if (st == PL_OK) st = pl_store_attr_string(&w, "manifest", m->path);
        if (st == PL_OK) st = pl_store_attr_string(&w, "levels", levels);
        if (st == PL_OK) st = pl_store_attr_i64(&w, "embedding_dim", (int64_t)D);
        if (st == PL_OK && ctx->cell_labels.path) st = pl_store_attr_string(&w, "cell_labels", ctx->cell_labels.path);
        PlStatus cst = pl_store_close(&w);
        if (st == PL_OK) st = cst;
    }
    summary->tiles = (long)n_tiles;
    summary->cells = (long)n_cells;
    summary->failed = n_fail;
    for (long i = 0; i < kf; i++) { free(f_id[i]); free(f_stage[i]); free(f_msg[i]); }
    free(f_id); free(f_stage); free(f_msg);
    free(fov); free(temb); free(titem); free(ty); free(tx); free(cemb); free(citem); free(cy); free(cx); free(carea); free(cmask); free(clabel);
    free(s_id); free(s_ds); free(s_lab); free(s_sp); free(s_gr); free(s_dg);
    for (int f = 0; f < n_files && view.files; f++) free(view.files[f]);
    free(view.files);
    free(ok_items); free(tile0); free(cell0);
    free(table);
    free(file_rank);
    return st;
}
