// `protloc run` finalisation: the store plan (which journal record holds each item), the failure report, and the
// HDF5 store written from the journals in bounded rounds.
//
// Rank 0 scans the journal folder and picks, for every manifest item, its newest record with the current digest;
// the per-item table is broadcast. Successful items become /items rows in manifest order, split into contiguous
// blocks, one per rank. Each rank reads its records a chunk at a time (at most RUN_STORE_CHUNK_BYTES of
// embeddings) and every rank writes one chunk per round into the numeric datasets (collective writes; a rank
// whose chunks are done writes empty selections), so no rank ever holds its whole block. The parallel file is then
// closed and rank 0 adds the string datasets (variable-length UTF-8, also in chunks) and the attributes through
// a serial writer. Memory: O(items) for the plan, plus one chunk.
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "pl_cli.h"
#include "pl_failures.h"
#include "pl_fs.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_run_priv.h"
#include "pl_store.h"

#define RUN_STORE_CHUNK_BYTES ((size_t)32 << 20)   // embeddings read per round and rank
#define RUN_STORE_STRING_ROWS 65536                 // strings written per call by rank 0

enum { F_FILE, F_OFFSET, F_LENGTH, F_TILES, F_CELLS, F_FAILED, F_FOV, F_N };

// Rank 0: the chosen record of every item; an item without one is an internal error. A record written by this run
// wins over older ones (a failure retried now, or the same embeddings resumed), then a success over a failure,
// then the later record of one file.
static PlStatus store_plan_scan(const RunContext *ctx, RunStorePlan *plan) {
    const PlManifest *m = &ctx->manifest;
    PlJournalIndex idx;
    PL_TRY(pl_journal_scan(ctx->journal_dir, &idx));
    PlStatus st = PL_OK;
    unsigned char *rank_of = pl_calloc(m->count ? m->count : 1, 1);   // priority of each item's chosen record
    if (!rank_of) {
        pl_journal_index_free(&idx);
        return PL_ERR_NOMEM;
    }
    for (size_t i = 0; i < m->count; i++) plan->table[i * F_N + F_FILE] = -1;
    for (size_t e = 0; e < idx.count; e++) {
        const PlJournalEntry *en = &idx.entries[e];
        long item = pl_manifest_find(m, en->id);
        if (item < 0 || strcmp(en->digest, ctx->digests[item]) != 0) continue;
        if (!en->failed && en->dim != ctx->dim) continue;
        int fr = idx.file_rank[en->file];
        int fresh = fr >= 0 && fr < ctx->size && ctx->journal_start && en->offset >= ctx->journal_start[fr];
        unsigned char prio = (unsigned char)(1 + 2 * fresh + !en->failed);
        if (prio < rank_of[item]) continue;
        rank_of[item] = prio;
        int64_t *t = plan->table + (size_t)item * F_N;
        t[F_FILE] = en->file;
        t[F_OFFSET] = en->offset;
        t[F_LENGTH] = en->length;
        t[F_TILES] = en->n_tiles;
        t[F_CELLS] = en->n_cells;
        t[F_FAILED] = en->failed;
        t[F_FOV] = en->has_fov;
    }
    for (size_t i = 0; i < m->count && st == PL_OK; i++)
        if (plan->table[i * F_N + F_FILE] < 0)
            st = PL_FAIL(PL_ERR_INTERNAL, "item '%s' (line %d) has no journal record after the run", m->items[i].id,
                         m->items[i].line);
    free(rank_of);
    plan->n_files = idx.n_files;
    if (st == PL_OK && idx.n_files > 0) {
        plan->file_rank = pl_malloc((size_t)idx.n_files * sizeof *plan->file_rank);
        if (!plan->file_rank) st = PL_ERR_NOMEM;
        else memcpy(plan->file_rank, idx.file_rank, (size_t)idx.n_files * sizeof *plan->file_rank);
    }
    pl_journal_index_free(&idx);
    return st;
}

PlStatus run_store_plan(const RunContext *ctx, RunStorePlan *plan) {
    memset(plan, 0, sizeof *plan);
    long N = (long)ctx->manifest.count;
    plan->table = pl_calloc((size_t)(N > 0 ? N : 1) * F_N, sizeof *plan->table);
    PlStatus st = plan->table ? PL_OK : PL_ERR_NOMEM;
    if (st == PL_OK && ctx->rank == 0) st = store_plan_scan(ctx, plan);
    PL_TRY(pl_mpi_agree(st, "planning the store"));
    PL_MPI_TRY(MPI_Bcast(&plan->n_files, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (ctx->rank != 0 && plan->n_files > 0) {
        plan->file_rank = pl_malloc((size_t)plan->n_files * sizeof *plan->file_rank);
        if (!plan->file_rank) return PL_ERR_NOMEM;
    }
    if (plan->n_files > 0) PL_MPI_TRY(MPI_Bcast(plan->file_rank, plan->n_files, MPI_INT, 0, MPI_COMM_WORLD));
    if (N > 0) PL_MPI_TRY(MPI_Bcast(plan->table, (int)(N * F_N), MPI_INT64_T, 0, MPI_COMM_WORLD));
    for (long i = 0; i < N; i++) {
        const int64_t *t = plan->table + (size_t)i * F_N;
        if (t[F_FAILED]) {
            plan->n_fail++;
            if (ctx->had_row && ctx->had_row[i]) plan->regressions++;
            continue;
        }
        plan->n_ok++;
        plan->n_tiles += t[F_TILES];
        plan->n_cells += t[F_CELLS];
    }
    return PL_OK;
}

void run_store_plan_free(RunStorePlan *plan) {
    free(plan->table);
    free(plan->file_rank);
    memset(plan, 0, sizeof *plan);
}

// Read item `i`'s record through a one-entry view of the journal files.
static PlStatus store_read_record(const RunContext *ctx, const RunStorePlan *plan, char *const *files, long i,
                                  PlJournalItem *item) {
    const int64_t *t = plan->table + (size_t)i * F_N;
    const char *id = ctx->manifest.items[i].id;
    PlJournalEntry en = {.id = (char *)id, .file = (int)t[F_FILE], .offset = t[F_OFFSET], .length = (uint32_t)t[F_LENGTH]};
    PlJournalIndex view = {.n_files = plan->n_files, .files = (char **)files, .entries = &en, .count = 1};
    PL_TRY(pl_journal_read(&view, 0, item));
    if (strcmp(item->id, id) != 0) return PL_FAIL(PL_ERR_INTERNAL, "journal record for '%s' holds '%s'", id, item->id);
    if (!item->failed && (item->dim != ctx->dim || item->n_tiles != t[F_TILES] || item->n_cells != t[F_CELLS]))
        return PL_FAIL(PL_ERR_FORMAT, "journal record for '%s' does not match its index entry", id);
    return PL_OK;
}

// The journal file paths of the plan (caller frees with store_files_free).
static PlStatus store_files(const RunContext *ctx, const RunStorePlan *plan, char ***files) {
    *files = pl_calloc((size_t)(plan->n_files > 0 ? plan->n_files : 1), sizeof **files);
    if (!*files) return PL_ERR_NOMEM;
    for (int f = 0; f < plan->n_files; f++)
        if (!((*files)[f] = pl_journal_rank_path(ctx->journal_dir, plan->file_rank[f]))) return PL_ERR_NOMEM;
    return PL_OK;
}

static void store_files_free(const RunStorePlan *plan, char **files) {
    for (int f = 0; files && f < plan->n_files; f++) free(files[f]);
    free(files);
}

// ---- the numeric datasets, in rounds ----

enum { DS_FOV, DS_TEMB, DS_TITEM, DS_TY, DS_TX, DS_CEMB, DS_CITEM, DS_CY, DS_CX, DS_CAREA, DS_CMASK, DS_N };

// One chunk of this rank's rows, in grow-only buffers (each with its own capacity).
typedef struct StoreChunk {
    long first, end;            // manifest items [first, end) of this chunk (failed ones skipped)
    int64_t row0, tile0, cell0; // first /items, /tiles, /cells row of the chunk
    long rows;
    int64_t tiles, cells;
    float *fov, *temb, *cemb, *cy, *cx;
    int64_t *titem, *citem, *carea;
    int32_t *ty, *tx, *cmask;
    size_t fov_cap, temb_cap, cemb_cap, cy_cap, cx_cap, titem_cap, citem_cap, carea_cap, ty_cap, tx_cap, cmask_cap;
} StoreChunk;

static void store_chunk_free(StoreChunk *c) {
    free(c->fov); free(c->temb); free(c->cemb); free(c->cy); free(c->cx);
    free(c->titem); free(c->citem); free(c->carea); free(c->ty); free(c->tx); free(c->cmask);
    memset(c, 0, sizeof *c);
}

static PlStatus store_chunk_reserve(StoreChunk *c, size_t D) {
    size_t r = (size_t)c->rows, t = (size_t)c->tiles, n = (size_t)c->cells;
    PL_TRY(pl_grow((void **)&c->fov, &c->fov_cap, r * D, sizeof(float)));
    PL_TRY(pl_grow((void **)&c->temb, &c->temb_cap, t * D, sizeof(float)));
    PL_TRY(pl_grow((void **)&c->titem, &c->titem_cap, t, sizeof(int64_t)));
    PL_TRY(pl_grow((void **)&c->ty, &c->ty_cap, t, sizeof(int32_t)));
    PL_TRY(pl_grow((void **)&c->tx, &c->tx_cap, t, sizeof(int32_t)));
    PL_TRY(pl_grow((void **)&c->cemb, &c->cemb_cap, n * D, sizeof(float)));
    PL_TRY(pl_grow((void **)&c->citem, &c->citem_cap, n, sizeof(int64_t)));
    PL_TRY(pl_grow((void **)&c->cy, &c->cy_cap, n, sizeof(float)));
    PL_TRY(pl_grow((void **)&c->cx, &c->cx_cap, n, sizeof(float)));
    PL_TRY(pl_grow((void **)&c->carea, &c->carea_cap, n, sizeof(int64_t)));
    PL_TRY(pl_grow((void **)&c->cmask, &c->cmask_cap, n, sizeof(int32_t)));
    return PL_OK;
}

// Fill chunk c (its items, rows and offsets set) from the journal records.
static PlStatus store_chunk_read(const RunContext *ctx, const RunStorePlan *plan, char *const *files, StoreChunk *c,
                                 PlJournalItem *rec) {
    size_t D = (size_t)ctx->dim;
    PL_TRY(store_chunk_reserve(c, D));
    long r = 0;
    int64_t kt = 0, kc = 0;
    for (long i = c->first; i < c->end; i++) {
        if (plan->table[(size_t)i * F_N + F_FAILED]) continue;
        PL_TRY(store_read_record(ctx, plan, files, i, rec));
        if (ctx->opt->levels & PL_RUN_FOV) {
            if (!rec->has_fov) return PL_FAIL(PL_ERR_FORMAT, "journal record for '%s' lacks the FOV embedding", rec->id);
            memcpy(c->fov + (size_t)r * D, rec->fov, D * sizeof(float));
        }
        for (int j = 0; j < rec->n_tiles; j++, kt++) {
            c->titem[kt] = c->row0 + r;
            c->ty[kt] = rec->tile_yx[2 * j];
            c->tx[kt] = rec->tile_yx[2 * j + 1];
        }
        if (rec->n_tiles) memcpy(c->temb + (size_t)(kt - rec->n_tiles) * D, rec->tile_emb, (size_t)rec->n_tiles * D * sizeof(float));
        for (int j = 0; j < rec->n_cells; j++, kc++) {
            c->citem[kc] = c->row0 + r;
            c->cy[kc] = rec->cell_cyx[2 * j];
            c->cx[kc] = rec->cell_cyx[2 * j + 1];
            c->carea[kc] = rec->cell_area[j];
            c->cmask[kc] = rec->cell_label[j];
        }
        if (rec->n_cells) memcpy(c->cemb + (size_t)(kc - rec->n_cells) * D, rec->cell_emb, (size_t)rec->n_cells * D * sizeof(float));
        r++;
    }
    return PL_OK;
}

// Write chunk c (empty when c is NULL) into every numeric dataset: one collective round.
static PlStatus store_chunk_write(PlStoreWriter *w, PlStoreDataset *ds, const StoreChunk *c) {
    static const StoreChunk none;
    if (!c) c = &none;
    const void *data[DS_N] = {c->fov, c->temb, c->titem, c->ty, c->tx, c->cemb, c->citem, c->cy, c->cx, c->carea, c->cmask};
    const int64_t row0[DS_N] = {c->row0, c->tile0, c->tile0, c->tile0, c->tile0, c->cell0, c->cell0, c->cell0, c->cell0,
                                c->cell0, c->cell0};
    const int64_t n[DS_N] = {c->rows, c->tiles, c->tiles, c->tiles, c->tiles, c->cells, c->cells, c->cells, c->cells,
                             c->cells, c->cells};
    for (int k = 0; k < DS_N; k++)
        if (ds[k].dset > 0) PL_TRY(pl_store_dataset_write(w, &ds[k], row0[k], n[k], data[k]));
    return PL_OK;
}

// This rank's block of /items rows, cut into chunks of at most RUN_STORE_CHUNK_BYTES of embeddings: chunk
// boundaries as manifest item indices (chunk k = items [bound[k], bound[k + 1])) with their first rows; entry
// n_chunks holds the block's end, so chunk k has row0[k + 1] - row0[k] rows (tiles and cells alike).
typedef struct StoreBlock {
    long *bound;
    int64_t *row0, *tile0, *cell0;
    long n_chunks;
} StoreBlock;

static void store_block_free(StoreBlock *b) {
    free(b->bound); free(b->row0); free(b->tile0); free(b->cell0);
    memset(b, 0, sizeof *b);
}

static PlStatus store_block(const RunContext *ctx, const RunStorePlan *plan, StoreBlock *b) {
    memset(b, 0, sizeof *b);
    long N = (long)ctx->manifest.count;
    long r0 = plan->n_ok * ctx->rank / ctx->size, r1 = plan->n_ok * (ctx->rank + 1) / ctx->size;
    size_t cap = (size_t)(r1 - r0) + 2;
    b->bound = pl_malloc(cap * sizeof *b->bound);
    b->row0 = pl_malloc(cap * sizeof *b->row0);
    b->tile0 = pl_malloc(cap * sizeof *b->tile0);
    b->cell0 = pl_malloc(cap * sizeof *b->cell0);
    if (!b->bound || !b->row0 || !b->tile0 || !b->cell0) return PL_ERR_NOMEM;
    size_t row_bytes = (size_t)ctx->dim * sizeof(float), bytes = 0;
    long row = 0, i;
    int64_t tiles = 0, cells = 0;
    for (i = 0; i < N && row < r1; i++) {
        const int64_t *t = plan->table + (size_t)i * F_N;
        if (t[F_FAILED]) continue;
        if (row >= r0) {
            if (b->n_chunks == 0 || bytes >= RUN_STORE_CHUNK_BYTES) {   // chunk k starts here (and k - 1 ends)
                b->bound[b->n_chunks] = i;
                b->row0[b->n_chunks] = row;
                b->tile0[b->n_chunks] = tiles;
                b->cell0[b->n_chunks] = cells;
                b->n_chunks++;
                bytes = 0;
            }
            bytes += row_bytes * (size_t)(1 + t[F_TILES] + t[F_CELLS]);
        }
        row++;
        tiles += t[F_TILES];
        cells += t[F_CELLS];
    }
    b->bound[b->n_chunks] = i;   // the last chunk ends after the block's last row
    b->row0[b->n_chunks] = row;
    b->tile0[b->n_chunks] = tiles;
    b->cell0[b->n_chunks] = cells;
    return PL_OK;
}

static PlStatus store_create_datasets(const RunContext *ctx, const RunStorePlan *plan, PlStoreWriter *w,
                                      PlStoreDataset *ds) {
    for (int k = 0; k < DS_N; k++) ds[k].dset = H5I_INVALID_HID;
    int64_t D = ctx->dim, nt = plan->n_tiles, nc = plan->n_cells;
    int levels = ctx->opt->levels;
    if (levels & PL_RUN_FOV) PL_TRY(pl_store_dataset_create(w, "/fov/embedding", PL_STORE_F32, plan->n_ok, D, &ds[DS_FOV]));
    if (levels & PL_RUN_TILES) {
        PL_TRY(pl_store_dataset_create(w, "/tiles/embedding", PL_STORE_F32, nt, D, &ds[DS_TEMB]));
        PL_TRY(pl_store_dataset_create(w, "/tiles/item", PL_STORE_I64, nt, 0, &ds[DS_TITEM]));
        PL_TRY(pl_store_dataset_create(w, "/tiles/y", PL_STORE_I32, nt, 0, &ds[DS_TY]));
        PL_TRY(pl_store_dataset_create(w, "/tiles/x", PL_STORE_I32, nt, 0, &ds[DS_TX]));
    }
    if (levels & PL_RUN_CELLS) {
        PL_TRY(pl_store_dataset_create(w, "/cells/embedding", PL_STORE_F32, nc, D, &ds[DS_CEMB]));
        PL_TRY(pl_store_dataset_create(w, "/cells/item", PL_STORE_I64, nc, 0, &ds[DS_CITEM]));
        PL_TRY(pl_store_dataset_create(w, "/cells/cy", PL_STORE_F32, nc, 0, &ds[DS_CY]));
        PL_TRY(pl_store_dataset_create(w, "/cells/cx", PL_STORE_F32, nc, 0, &ds[DS_CX]));
        PL_TRY(pl_store_dataset_create(w, "/cells/area", PL_STORE_I64, nc, 0, &ds[DS_CAREA]));
        PL_TRY(pl_store_dataset_create(w, "/cells/mask_label", PL_STORE_I32, nc, 0, &ds[DS_CMASK]));
    }
    return PL_OK;
}

// Collective: the numeric datasets, one chunk per rank and round.
static PlStatus store_write_numeric(const RunContext *ctx, const RunStorePlan *plan, const char *temp_path) {
    StoreBlock b;
    StoreChunk c;
    memset(&c, 0, sizeof c);
    PlJournalItem rec;
    memset(&rec, 0, sizeof rec);
    char **files = NULL;
    PlStatus st = store_block(ctx, plan, &b);
    if (st == PL_OK) st = store_files(ctx, plan, &files);
    long rounds = 0;
    PlStatus ms = PL_MPI_CHECK(MPI_Allreduce(&b.n_chunks, &rounds, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD));
    if (ms != PL_OK) st = ms;
    st = pl_mpi_agree(st, "planning the store rows");
    if (st != PL_OK) {
        store_block_free(&b);
        store_files_free(plan, files);
        return st;
    }
    PlStoreWriter w;
    PlStoreDataset ds[DS_N];
    st = pl_mpi_agree(pl_store_create(&w, temp_path, MPI_COMM_WORLD), "creating the temporary store");
    if (st == PL_OK) st = pl_mpi_agree(store_create_datasets(ctx, plan, &w, ds), "creating the store's datasets");
    for (long k = 0; k < rounds && st == PL_OK; k++) {
        PlStatus rs = PL_OK;   // a read error still joins the round (with nothing), then every rank stops
        if (k < b.n_chunks) {
            c.first = b.bound[k], c.end = b.bound[k + 1];
            c.row0 = b.row0[k], c.tile0 = b.tile0[k], c.cell0 = b.cell0[k];
            c.rows = (long)(b.row0[k + 1] - c.row0), c.tiles = b.tile0[k + 1] - c.tile0, c.cells = b.cell0[k + 1] - c.cell0;
            rs = store_chunk_read(ctx, plan, files, &c, &rec);
        }
        st = pl_mpi_agree(rs, "reading the journal records");
        // every rank learns the round's write outcome (a full file system may hit one rank) before the next round
        if (st == PL_OK) st = pl_mpi_agree(store_chunk_write(&w, ds, k < b.n_chunks ? &c : NULL), "writing the store");
    }
    for (int k = 0; w.file > 0 && k < DS_N; k++) {
        PlStatus cs = pl_store_dataset_close(&w, &ds[k]);   // collective: a failure may leave another rank inside
        if (cs != PL_OK) pl_mpi_mark_desynced("a failed close of a dataset of the parallel store");
        if (st == PL_OK) st = cs;
    }
    st = pl_mpi_agree(st, "finishing the store's datasets");
    if (pl_mpi_desynced()) {
        // no further collective call: the job is aborted by main; only this process's memory is left
    } else if (st == PL_OK) {
        st = pl_store_close(&w);
    } else {
        pl_store_discard(&w);
    }
    store_chunk_free(&c);
    pl_journal_item_free(&rec);
    store_block_free(&b);
    store_files_free(plan, files);
    return st;
}

// ---- rank 0: strings and attributes ----

// The ok items (manifest indices) in store row order.
static long *store_ok_items(const RunContext *ctx, const RunStorePlan *plan) {
    long *ok = pl_malloc((size_t)(plan->n_ok > 0 ? plan->n_ok : 1) * sizeof *ok);
    if (!ok) return NULL;
    long r = 0;
    for (size_t i = 0; i < ctx->manifest.count; i++)
        if (!plan->table[i * F_N + F_FAILED]) ok[r++] = (long)i;
    return ok;
}

static PlStatus store_write_item_strings(const RunContext *ctx, const RunStorePlan *plan, PlStoreWriter *w,
                                         const long *ok) {
    static const char *const names[] = {"/items/id", "/items/dataset", "/items/label", "/items/split", "/items/group",
                                        "/items/digest"};
    const char **v = pl_malloc(RUN_STORE_STRING_ROWS * sizeof *v);
    if (!v) return PL_ERR_NOMEM;
    PlStatus st = PL_OK;
    for (int k = 0; k < 6 && st == PL_OK; k++) {
        PlStoreDataset d;
        st = pl_store_dataset_create(w, names[k], PL_STORE_STRING, plan->n_ok, 0, &d);
        for (long r0 = 0; r0 < plan->n_ok && st == PL_OK; r0 += RUN_STORE_STRING_ROWS) {
            long n = plan->n_ok - r0 < RUN_STORE_STRING_ROWS ? plan->n_ok - r0 : RUN_STORE_STRING_ROWS;
            for (long j = 0; j < n; j++) {
                const PlManifestItem *it = &ctx->manifest.items[ok[r0 + j]];
                const char *s[6] = {it->id, it->dataset, it->label, it->split, it->group, ctx->digests[ok[r0 + j]]};
                v[j] = s[k];
            }
            st = pl_store_dataset_write(w, &d, r0, n, v);
        }
        PlStatus cs = pl_store_dataset_close(w, &d);
        if (st == PL_OK) st = cs;
    }
    free(v);
    return st;
}

// /failures/{id,stage,message} from the failed items' journal records.
static PlStatus store_write_failures(const RunContext *ctx, const RunStorePlan *plan, PlStoreWriter *w, char **files) {
    static const char *const names[] = {"/failures/id", "/failures/stage", "/failures/message"};
    PlStoreDataset d[3];
    for (int k = 0; k < 3; k++) PL_TRY(pl_store_dataset_create(w, names[k], PL_STORE_STRING, plan->n_fail, 0, &d[k]));
    PlJournalItem rec;
    memset(&rec, 0, sizeof rec);
    PlStatus st = PL_OK;
    long row = 0;
    for (size_t i = 0; i < ctx->manifest.count && st == PL_OK; i++) {
        if (!plan->table[i * F_N + F_FAILED]) continue;
        st = store_read_record(ctx, plan, files, (long)i, &rec);
        const char *id = ctx->manifest.items[i].id, *stage = rec.fail_stage, *msg = rec.fail_message;
        for (int k = 0; k < 3 && st == PL_OK; k++) st = pl_store_dataset_write(w, &d[k], row, 1, k == 0 ? &id : k == 1 ? &stage : &msg);
        row++;
    }
    for (int k = 0; k < 3; k++) {
        PlStatus cs = pl_store_dataset_close(w, &d[k]);
        if (st == PL_OK) st = cs;
    }
    pl_journal_item_free(&rec);
    return st;
}

// /cells/label from the --cell-labels table, by (item, mask label) of each stored cell row.
static PlStatus store_write_cell_labels(const RunContext *ctx, const RunStorePlan *plan, PlStoreWriter *w,
                                        const long *ok) {
    PlStoreDataset d;
    PL_TRY(pl_store_dataset_create(w, "/cells/label", PL_STORE_STRING, plan->n_cells, 0, &d));
    int64_t *item = pl_malloc(RUN_STORE_STRING_ROWS * sizeof *item);
    int32_t *mask = pl_malloc(RUN_STORE_STRING_ROWS * sizeof *mask);
    const char **v = pl_malloc(RUN_STORE_STRING_ROWS * sizeof *v);
    PlStatus st = item && mask && v ? PL_OK : PL_ERR_NOMEM;
    long labelled = 0;
    for (int64_t r0 = 0; r0 < plan->n_cells && st == PL_OK; r0 += RUN_STORE_STRING_ROWS) {
        int64_t n = plan->n_cells - r0 < RUN_STORE_STRING_ROWS ? plan->n_cells - r0 : RUN_STORE_STRING_ROWS;
        st = pl_store_read_i64(w->file, "/cells/item", r0, n, item);
        if (st == PL_OK) st = pl_store_read_i32(w->file, "/cells/mask_label", r0, n, mask);
        for (int64_t j = 0; j < n && st == PL_OK; j++) {
            v[j] = run_cell_labels_find(&ctx->cell_labels, ok[item[j]], mask[j]);
            labelled += v[j][0] != '\0';
        }
        if (st == PL_OK) st = pl_store_dataset_write(w, &d, r0, n, v);
    }
    PlStatus cs = pl_store_dataset_close(w, &d);
    if (st == PL_OK) st = cs;
    if (st == PL_OK && (size_t)labelled < ctx->cell_labels.n)
        pl_log_warn("--cell-labels: %zu of the %zu labelled cells are not among the stored cells (filtered by size, "
                    "border, or their item failed)", ctx->cell_labels.n - (size_t)labelled, ctx->cell_labels.n);
    free(item);
    free(mask);
    free(v);
    return st;
}

static PlStatus store_write_attributes(const RunContext *ctx, PlStoreWriter *w) {
    int levels = ctx->opt->levels;
    char when[64], list[32] = "";
    if (levels & PL_RUN_FOV) strcat(list, "fov,");
    if (levels & PL_RUN_TILES) strcat(list, "tiles,");
    if (levels & PL_RUN_CELLS) strcat(list, "cells,");
    if (list[0]) list[strlen(list) - 1] = '\0';
    const char *attrs[][2] = {{"format", PL_STORE_FORMAT}, {"model_name", ctx->card.name},
                              {"model_sha256", ctx->weights_sha}, {"model_card", ctx->card.json},
                              {"run_options", ctx->options_json}, {"settings_key", ctx->settings_key},
                              {"software_version", pl_version_string()},
                              {"created", pl_clock_iso_utc(when, sizeof when)}, {"manifest", ctx->manifest.path},
                              {"levels", list}};
    for (size_t k = 0; k < sizeof attrs / sizeof attrs[0]; k++) PL_TRY(pl_store_attr_string(w, attrs[k][0], attrs[k][1]));
    PL_TRY(pl_store_attr_i64(w, "embedding_dim", ctx->dim));
    if (ctx->cell_labels.path) PL_TRY(pl_store_attr_string(w, "cell_labels", ctx->cell_labels.path));
    return PL_OK;
}

static PlStatus store_write_strings(const RunContext *ctx, const RunStorePlan *plan, const char *temp_path) {
    long *ok = store_ok_items(ctx, plan);
    char **files = NULL;
    PlStatus st = ok ? store_files(ctx, plan, &files) : PL_ERR_NOMEM;
    PlStoreWriter w;
    memset(&w, 0, sizeof w);
    if (st == PL_OK) st = pl_store_open_serial(&w, temp_path);
    if (st == PL_OK) st = store_write_item_strings(ctx, plan, &w, ok);
    if (st == PL_OK) st = store_write_failures(ctx, plan, &w, files);
    if (st == PL_OK && ctx->cell_labels.path && (ctx->opt->levels & PL_RUN_CELLS))
        st = store_write_cell_labels(ctx, plan, &w, ok);
    if (st == PL_OK) st = store_write_attributes(ctx, &w);
    if (st == PL_OK) st = pl_store_close(&w);
    else pl_store_discard(&w);
    store_files_free(plan, files);
    free(ok);
    return st;
}

// Rank 0: is there room for the store? Its size is bounded from the plan (rows x (dim floats + row indices), the
// items' strings, the card and options) plus HDF5's metadata. A full file system met inside HDF5's collective close
// can leave ranks waiting there (HDF5 1.10), so it is found here, where every rank can still agree.
static PlStatus store_space_check(const RunContext *ctx, const RunStorePlan *plan, const char *temp_path) {
    double rows = (double)plan->n_ok + (double)plan->n_tiles + (double)plan->n_cells;
    double need = rows * ((double)ctx->dim * 4 + 64) + (double)ctx->manifest.count * 1024 +
                  (double)(ctx->card.json ? strlen(ctx->card.json) : 0) +
                  (double)(ctx->options_json ? strlen(ctx->options_json) : 0) + 256.0 * 1024;
    char *copy = pl_strdup(temp_path);
    if (!copy) return PL_ERR_NOMEM;
    struct statvfs vfs;
    PlStatus st = PL_OK;
    if (statvfs(dirname(copy), &vfs) == 0) {   // where the file system cannot tell, the write itself will
        double avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
        if (avail < need)
            st = PL_FAIL(PL_ERR_IO, "not enough space for the store: the file system holding %s has %.0f KiB free, the "
                         "store needs about %.0f KiB; free space or choose another --out (the journal keeps the "
                         "finished items)", copy, avail / 1024, need / 1024);
    }
    free(copy);
    return st;
}

PlStatus run_write_store(const RunContext *ctx, const RunStorePlan *plan, const char *temp_path) {
    PL_TRY(pl_mpi_agree(ctx->rank == 0 ? store_space_check(ctx, plan, temp_path) : PL_OK, "checking the free space"));
    PL_TRY(pl_mpi_agree(store_write_numeric(ctx, plan, temp_path), "writing the store rows"));
    PlStatus st = PL_OK;
    if (ctx->rank == 0) st = store_write_strings(ctx, plan, temp_path);
    return st;
}

PlStatus run_write_failure_report(const RunContext *ctx, const RunStorePlan *plan, const char *path) {
    char **files = NULL;
    PL_TRY(store_files(ctx, plan, &files));
    PlJournalItem rec;
    memset(&rec, 0, sizeof rec);
    PlFailureList fl;
    PlStatus st = pl_failures_open(&fl, path);
    int opened = st == PL_OK;
    for (size_t i = 0; i < ctx->manifest.count && st == PL_OK; i++) {
        if (!plan->table[i * F_N + F_FAILED]) continue;
        st = store_read_record(ctx, plan, files, (long)i, &rec);
        if (st == PL_OK)
            st = pl_failures_add(&fl, ctx->manifest.items[i].id, ctx->manifest.items[i].line, rec.fail_stage,
                                 ctx->had_row && ctx->had_row[i], rec.fail_message);
    }
    if (st == PL_OK) st = pl_failures_commit(&fl);
    else if (opened) pl_failures_abort(&fl);
    pl_journal_item_free(&rec);
    store_files_free(plan, files);
    return st;
}
