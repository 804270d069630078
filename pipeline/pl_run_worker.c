// `protloc run` per-rank worker: a reader thread prepares items ahead while the main thread embeds and journals.
//
// Slots cycle FREE → QUEUED (main drew a task from the scheduler) → PREPARING (reader thread) → READY →
// EMBEDDING (main: ViT forward, journal append) → FREE. Only the main thread calls MPI (FUNNELED).
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_log.h"
#include "pl_run_priv.h"

#define WORKER_MAX_SLOTS 8
#define WORKER_VIT_CACHE 4

enum { SLOT_FREE, SLOT_QUEUED, SLOT_PREPARING, SLOT_READY, SLOT_EMBEDDING };

typedef struct WorkerSlot {
    int state;
    long seq;
    RunPrepared prep;
} WorkerSlot;

typedef struct Worker {
    const RunContext *ctx;
    WorkerSlot slots[WORKER_MAX_SLOTS];
    int n_slots;
    int quit;
    PlSegmenter *segmenter;   // the reader thread's, reused for every item (one per rank)
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double t_prep;   // summed by the reader thread (read under mu)
} Worker;

typedef struct VitEntry {
    PlVit *vit;
    int h, w, max_batch;
    long last_used;
} VitEntry;

static void *worker_reader(void *arg) {
    Worker *wk = arg;
    pthread_mutex_lock(&wk->mu);
    for (;;) {
        int pick = -1;
        for (int i = 0; i < wk->n_slots; i++)
            if (wk->slots[i].state == SLOT_QUEUED && (pick < 0 || wk->slots[i].seq < wk->slots[pick].seq)) pick = i;
        if (pick < 0) {
            if (wk->quit) break;
            pthread_cond_wait(&wk->cv, &wk->mu);
            continue;
        }
        WorkerSlot *s = &wk->slots[pick];
        s->state = SLOT_PREPARING;
        pthread_mutex_unlock(&wk->mu);
        run_prepare_item(wk->ctx, s->prep.item, &wk->segmenter, &s->prep);
        pthread_mutex_lock(&wk->mu);
        wk->t_prep += s->prep.seconds;
        s->state = SLOT_READY;
        pthread_cond_broadcast(&wk->cv);
    }
    pthread_mutex_unlock(&wk->mu);
    return NULL;
}

// A PlVit for up to max_batch inputs of (h, w), created on first use; the least recently used one is replaced.
static PlStatus worker_vit(const RunContext *ctx, VitEntry *cache, long tick, int h, int w, int max_batch, PlVit **out) {
    int lru = 0;
    for (int i = 0; i < WORKER_VIT_CACHE; i++) {
        if (cache[i].vit && cache[i].h == h && cache[i].w == w && cache[i].max_batch == max_batch) {
            cache[i].last_used = tick;
            *out = cache[i].vit;
            return PL_OK;
        }
        if (!cache[i].vit || (cache[lru].vit && cache[i].last_used < cache[lru].last_used)) lru = i;
    }
    if (cache[lru].vit) pl_vit_destroy(cache[lru].vit);
    memset(&cache[lru], 0, sizeof cache[lru]);
    PlVitOptions vo = {0};
    vo.max_batch = max_batch;
    vo.height = h;
    vo.width = w;
    vo.pool = ctx->opt->pool;
    vo.last_n = ctx->card.last_n;
    vo.avgpool = ctx->card.avgpool;
    vo.kernels = ctx->opt->kernels;
    vo.precision = ctx->opt->precision;
    vo.linears = ctx->linears;
    PL_TRY(pl_vit_create(&ctx->weights, &ctx->vit_cfg, &vo, &cache[lru].vit));
    cache[lru].h = h;
    cache[lru].w = w;
    cache[lru].max_batch = max_batch;
    cache[lru].last_used = tick;
    *out = cache[lru].vit;
    return PL_OK;
}

// Embed every input of `b` into out (rows, dim) in chunks of `rows_per_forward` rows (the FOV level: one item
// of R views; tiles and cells: --batch rows), so activations are sized for the batch actually used.
static PlStatus worker_embed(const RunContext *ctx, VitEntry *cache, long tick, const RunBatch *b, int rows_per_forward,
                             float **out, size_t *cap) {
    PL_TRY(pl_grow((void **)out, cap, (size_t)b->rows * (size_t)ctx->dim, sizeof **out));
    int max = rows_per_forward * ctx->R;
    PlVit *vit = NULL;
    PL_TRY(worker_vit(ctx, cache, tick, b->h, b->w, max, &vit));
    long inputs = (long)b->rows * ctx->R;
    size_t in_size = (size_t)ctx->C * (size_t)b->h * (size_t)b->w;
    for (long i = 0; i < inputs; i += max) {
        int n = (int)(inputs - i < max ? inputs - i : max);
        PL_TRY(pl_vit_forward(vit, b->x + (size_t)i * in_size, n, *out + (size_t)i * (size_t)ctx->vit_dim));
    }
    return PL_OK;
}

// Non-finite embeddings are never stored: the item fails, naming the level and row.
static PlStatus worker_check_finite(const RunContext *ctx, const RunPrepared *p, const float *fov, const float *tiles,
                                    const float *cells) {
    static const char *const names[3] = {"FOV", "tile", "cell"};
    const float *emb[3] = {fov, tiles, cells};
    int rows[3] = {p->fov.rows, p->tiles.rows, p->cells.rows};
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < (size_t)rows[l] * (size_t)ctx->dim; i++)
            if (!isfinite(emb[l][i]))
                return PL_FAIL(PL_ERR_NUMERIC, "the %s embedding (row %zu) is not finite (%g at column %zu): check the "
                               "model card's normalisation and the weights", names[l], i / (size_t)ctx->dim,
                               (double)emb[l][i], i % (size_t)ctx->dim);
    return PL_OK;
}

PlStatus run_worker(const RunContext *ctx, const long *tasks, long n_tasks, PlJournalWriter *journal,
                    RunWorkerStats *stats) {
    memset(stats, 0, sizeof *stats);
    const PlRunOptions *o = ctx->opt;
    RunScheduler sched;
    PL_TRY(run_scheduler_create(&sched, n_tasks, MPI_COMM_WORLD));
    Worker *wk = calloc(1, sizeof *wk);
    if (!wk) {
        run_scheduler_free(&sched);
        return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    }
    wk->ctx = ctx;
    wk->n_slots = (o->prefetch > 0 ? o->prefetch : 2) + 1;
    if (wk->n_slots > WORKER_MAX_SLOTS) wk->n_slots = WORKER_MAX_SLOTS;
    pthread_mutex_init(&wk->mu, NULL);
    pthread_cond_init(&wk->cv, NULL);
    pthread_t reader;
    PlStatus st = PL_OK;
    if (pthread_create(&reader, NULL, worker_reader, wk) != 0) {
        st = PL_FAIL(PL_ERR_INTERNAL, "cannot start the reader thread");
        pthread_mutex_destroy(&wk->mu);
        pthread_cond_destroy(&wk->cv);
        free(wk);
        run_scheduler_free(&sched);
        return st;
    }
    VitEntry cache[WORKER_VIT_CACHE];
    memset(cache, 0, sizeof cache);
    float *e_fov = NULL, *e_tiles = NULL, *e_cells = NULL;
    size_t c_fov = 0, c_tiles = 0, c_cells = 0;
    RunProgress progress;
    if (ctx->rank == 0) run_progress_start(&progress, n_tasks, !o->no_progress);
    int exhausted = 0, inflight = 0;
    long seq = 0, tick = 0;
    double t_start = pl_clock_now();
    int stopping = 0;
    while (st == PL_OK) {
        // a stop request: hand out no more tasks (to any rank) and drop what is prepared but not yet embedded
        if (!stopping && o->stop_signal && *o->stop_signal) {
            stopping = exhausted = 1;
            st = run_scheduler_stop(&sched);
            if (st != PL_OK) break;
            pl_log_warn("stop requested (signal %d): finishing the item being embedded, then stopping", (int)*o->stop_signal);
            pthread_mutex_lock(&wk->mu);
            for (int i = 0; i < wk->n_slots; i++)
                if (wk->slots[i].state == SLOT_QUEUED) wk->slots[i].state = SLOT_FREE, inflight--;
            pthread_mutex_unlock(&wk->mu);
        }
        // keep every free slot queued with a task (the reader prepares them while we embed)
        pthread_mutex_lock(&wk->mu);
        for (int i = 0; i < wk->n_slots && !exhausted; i++) {
            if (wk->slots[i].state != SLOT_FREE) continue;
            pthread_mutex_unlock(&wk->mu);
            int64_t t = -1;
            st = run_scheduler_next(&sched, &t);
            pthread_mutex_lock(&wk->mu);
            if (st != PL_OK || t < 0) {
                exhausted = 1;
                break;
            }
            wk->slots[i].prep.item = tasks[t];
            wk->slots[i].seq = seq++;
            wk->slots[i].state = SLOT_QUEUED;
            inflight++;
            pthread_cond_broadcast(&wk->cv);
        }
        if (st != PL_OK || inflight == 0) {
            pthread_mutex_unlock(&wk->mu);
            break;
        }
        double tw = pl_clock_now();
        int pick = -1;
        for (;;) {
            for (int i = 0; i < wk->n_slots; i++)
                if (wk->slots[i].state == SLOT_READY && (pick < 0 || wk->slots[i].seq < wk->slots[pick].seq)) pick = i;
            if (pick >= 0) break;
            pthread_cond_wait(&wk->cv, &wk->mu);
        }
        WorkerSlot *s = &wk->slots[pick];
        if (stopping) {   // not journaled: a re-run computes it
            s->state = SLOT_FREE;
            inflight--;
            pthread_mutex_unlock(&wk->mu);
            continue;
        }
        s->state = SLOT_EMBEDDING;
        pthread_mutex_unlock(&wk->mu);
        stats->t_wait += pl_clock_now() - tw;

        RunPrepared *p = &s->prep;
        const PlManifestItem *it = &ctx->manifest.items[p->item];
        PlJournalRecord rec;
        memset(&rec, 0, sizeof rec);
        rec.id = it->id;
        rec.digest = ctx->digests[p->item];
        rec.dim = ctx->dim;
        double te = pl_clock_now();
        tick++;
        if (!p->failed) {
            PlStatus es = PL_OK;
            int batch = o->batch > 0 ? o->batch : 16;
            if (p->fov.rows) es = worker_embed(ctx, cache, tick, &p->fov, 1, &e_fov, &c_fov);
            if (es == PL_OK && p->tiles.rows) es = worker_embed(ctx, cache, tick, &p->tiles, batch, &e_tiles, &c_tiles);
            if (es == PL_OK && p->cells.rows) es = worker_embed(ctx, cache, tick, &p->cells, batch, &e_cells, &c_cells);
            if (es == PL_OK) es = worker_check_finite(ctx, p, e_fov, e_tiles, e_cells);
            if (es == PL_ERR_INTERNAL) {
                st = es;   // a bug, not the item's fault: stop the run
            } else if (es != PL_OK) {   // this item's inputs (its size, its values): the item fails, the run goes on
                p->failed = 1;
                snprintf(p->stage, sizeof p->stage, "embed");
                snprintf(p->message, sizeof p->message, "%s%s", pl_error_message(),
                         es == PL_ERR_NOMEM ? " (this item is too large for the memory left: --level tiles, --fov-size N "
                                              "or a lower --max-memory rejects such items before they are decoded)" : "");
            }
        }
        stats->t_embed += pl_clock_now() - te;
        if (st != PL_OK) break;
        if (p->failed) {
            rec.failed = 1;
            rec.fail_stage = p->stage;
            rec.fail_message = p->message;
            stats->failed++;
            pl_log_warn("item %s (line %d) failed at %s: %s", it->id, it->line, p->stage, p->message);
        } else {
            rec.has_fov = p->fov.rows > 0;
            rec.fov = e_fov;
            rec.n_tiles = p->tiles.rows;
            rec.tile_yx = p->tile_yx;
            rec.tile_emb = e_tiles;
            rec.n_cells = p->cells.rows;
            rec.cell_cyx = p->cell_cyx;
            rec.cell_area = p->cell_area;
            rec.cell_label = p->cell_label;
            rec.cell_emb = e_cells;
            stats->computed++;
        }
        double tj = pl_clock_now();
        st = pl_journal_append(journal, &rec);
        stats->t_journal += pl_clock_now() - tj;
        if (st == PL_OK && o->after_item) o->after_item(o->after_item_ctx, p->item);
        if (st == PL_OK) st = run_scheduler_done(&sched, 1);
        if (st == PL_OK && ctx->rank == 0) {
            int64_t handed = 0, done = 0;
            if (run_scheduler_progress(&sched, &handed, &done) == PL_OK) run_progress_update(&progress, (long)done, 0);
        }
        pthread_mutex_lock(&wk->mu);
        s->state = SLOT_FREE;
        inflight--;
        pthread_mutex_unlock(&wk->mu);
    }
    stats->t_busy = pl_clock_now() - t_start;
    pthread_mutex_lock(&wk->mu);
    wk->quit = 1;
    // drop queued-but-unprepared work (only on errors) so the reader can stop
    for (int i = 0; i < wk->n_slots; i++)
        if (wk->slots[i].state == SLOT_QUEUED) wk->slots[i].state = SLOT_FREE;
    pthread_cond_broadcast(&wk->cv);
    pthread_mutex_unlock(&wk->mu);
    pthread_join(reader, NULL);
    stats->t_prep = wk->t_prep;
    PlStatus js = pl_journal_sync(journal);
    if (st == PL_OK) st = js;
    if (ctx->rank == 0 && st == PL_OK) {
        int64_t handed = 0, done = 0;
        if (run_scheduler_progress(&sched, &handed, &done) == PL_OK) run_progress_finish(&progress, (long)done);
    }
    // collective: every rank gets here, also after an error (the caller then agrees on the failure)
    PlStatus fs = run_scheduler_free(&sched);
    if (st == PL_OK) st = fs;
    for (int i = 0; i < WORKER_VIT_CACHE; i++) pl_vit_destroy(cache[i].vit);
    for (int i = 0; i < wk->n_slots; i++) run_prepared_free(&wk->slots[i].prep);
    pl_segmenter_destroy(wk->segmenter);
    free(e_fov);
    free(e_tiles);
    free(e_cells);
    pthread_mutex_destroy(&wk->mu);
    pthread_cond_destroy(&wk->cv);
    free(wk);
    return st;
}
