// `protloc run` orchestration: validate and plan (rank 0), digests, resume / reuse, embed, write the store.
#include "pl_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_fs.h"
#include "pl_item_digests.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_card_prep.h"
#include "pl_run_priv.h"

void pl_run_options_default(PlRunOptions *o) {
    memset(o, 0, sizeof *o);
    o->levels = PL_RUN_FOV;
    o->tile = PL_PREP_TILE_DEFAULT;
    o->cell_border = "shift";
    o->min_cell_area = PL_PREP_MIN_CELL_AREA_DEFAULT;
    o->batch = 16;
    o->prefetch = 2;
    o->max_failed = -1;
}

PlStatus pl_run_parse_levels(const char *text, int *levels) {
    *levels = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        PlStoreLevel level;
        PL_TRY(pl_store_level_parse(t, &level));
        *levels |= 1 << level;
    }
    if (!*levels) return PL_FAIL(PL_ERR_ARG, "no level given (fov, tiles, cells)");
    return PL_OK;
}

static PlStatus run_bcast_string(char *buf, int cap) {
    return PL_MPI_CHECK(MPI_Bcast(buf, cap, MPI_CHAR, 0, MPI_COMM_WORLD));
}

// The alignment strategy: --align, else the card's input mode ("natural" is map).
static const char *run_strategy_name(const RunContext *ctx) {
    const char *name = ctx->opt->align ? ctx->opt->align : pl_align_strategy_name((PlAlignStrategy)ctx->card.input_mode);
    return strcmp(name, "natural") == 0 ? "map" : name;
}

// The pl_prep configuration shared by every item: the card's alignment, normalisation and pixel size
// (pl_card_prep_config), and the geometry of each level.
static PlStatus run_prep_config(RunContext *ctx) {
    const PlRunOptions *o = ctx->opt;
    const PlModelCard *card = &ctx->card;
    PlAlignStrategy strategy;
    char slots[PL_CARD_MAX_SLOTS * 40];
    const char *fill = o->fill ? o->fill : card->fill;
    PlPrepConfig base;
    PL_TRY(pl_card_prep_config(card, ctx->C, run_strategy_name(ctx), o->fill, (uint64_t)o->seed, &base, &strategy, slots,
                               sizeof slots));
    PL_TRY(pl_card_check_fill(card, &base.align, o->fill, &ctx->manifest));   // once, not per item
    if (o->max_pixels > 0) base.limits.max_pixels = (uint64_t)o->max_pixels;   // --max-pixels, checked from headers
    PlCardLevels g;
    pl_card_levels_default(&g);
    g.patch = ctx->vit_cfg.patch;
    g.fov_size = o->fov_size;
    g.tile = o->tile;
    g.tile_stride = o->tile_stride;
    g.crop = o->crop;
    g.crop_um = o->crop_um;
    if (pl_cell_border_parse(o->cell_border ? o->cell_border : "shift", &g.cell_border) != PL_OK)
        return pl_error_wrap("--cell-border");
    g.min_cell_area = o->min_cell_area;
    PL_TRY(pl_card_prep_levels(&base, &g, ctx->prep));
    PL_TRY(pl_card_plane_roles(card, ctx->C, strategy, fill, &ctx->manifest, ctx->plane_role, &ctx->n_planes));
    ctx->R = strategy == PL_ALIGN_REPLICATE ? ctx->n_planes : 1;
    return PL_OK;
}

// Load the card, manifest (rank 0 also checks files) and weights; set up the slot → plane mapping.
static PlStatus run_load(RunContext *ctx) {
    const PlRunOptions *o = ctx->opt;
    PL_TRY(pl_modelcard_load(o->model, &ctx->card));
    const PlModelCard *card = &ctx->card;
    const char *roles[PL_CARD_MAX_ROLES];
    int n = pl_card_manifest_roles(card, roles);
    PlManifestOptions mo = {.root = o->root, .roles = roles, .n_roles = n, .allow_outside_root = o->allow_outside_root,
                            .check_files = 0, .max_errors = 20};
    PL_TRY(pl_manifest_load(o->manifest, &mo, &ctx->manifest));
    if (ctx->manifest.count == 0) return PL_FAIL(PL_ERR_EMPTY, "%s: the manifest lists no items", o->manifest);
    PlWeightsOptions wo = {.checkpoint_key = card->checkpoint_key};
    if (pl_weights_load(card->weights, &wo, &ctx->weights) != PL_OK)
        return pl_error_wrap("model card %s: weights", card->path);
    if (pl_vit_config_infer(&ctx->weights, card->heads, &ctx->vit_cfg) != PL_OK)
        return pl_error_wrap("model card %s: weights %s", card->path, card->weights);
    if (ctx->vit_cfg.in_chans != card->n_slots)
        return PL_FAIL(PL_ERR_FORMAT, "%s: the card lists %d input slots but the weights take %d channels", card->path,
                       card->n_slots, ctx->vit_cfg.in_chans);
    if (card->patch && card->patch != ctx->vit_cfg.patch)
        return PL_FAIL(PL_ERR_FORMAT, "%s: the card says patch %d but the weights have patch %d", card->path,
                       card->patch, ctx->vit_cfg.patch);
    PL_TRY(pl_card_check_depth(card, ctx->vit_cfg.depth));
    if (pl_vit_linears_create(&ctx->weights, &ctx->vit_cfg, o->kernels, o->precision, &ctx->linears) != PL_OK)
        return pl_error_wrap("model card %s", card->path);
    ctx->C = card->n_slots;
    ctx->nucleus_role = pl_manifest_role_index(&ctx->manifest, "nucleus");
    PL_TRY(run_prep_config(ctx));
    if (o->cell_labels) PL_TRY(run_cell_labels_load(o->cell_labels, &ctx->manifest, &ctx->cell_labels));
    ctx->vit_dim = ctx->vit_cfg.dim * (card->last_n > 1 ? card->last_n : 1) * (card->avgpool ? 2 : 1);
    ctx->dim = ctx->vit_dim * ctx->R;
    return PL_OK;
}

// Digests (and the bytes of each item, for the schedule): every rank computes its share; everybody gathers them.
static PlStatus run_digests(RunContext *ctx) {
    size_t N = ctx->manifest.count;
    ctx->digests = calloc(N + 1, sizeof *ctx->digests);
    ctx->digest_error = calloc(N + 1, sizeof *ctx->digest_error);
    ctx->cost = calloc(N + 1, sizeof *ctx->cost);
    if (!ctx->digests || !ctx->digest_error || !ctx->cost) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    return pl_item_digests(&ctx->manifest, NULL, N, ctx->opt->verify, ctx->rank, ctx->size, ctx->digests,
                           ctx->digest_error, ctx->cost);
}

static PlStatus run_settings(RunContext *ctx) {
    const PlRunOptions *o = ctx->opt;
    char buf[1024];
    const char *align = run_strategy_name(ctx);
    const char *fill = o->fill ? o->fill : ctx->card.fill ? ctx->card.fill : "";
    snprintf(buf, sizeof buf,
             "{\"levels\":%d,\"align\":\"%s\",\"fill\":\"%s\",\"seed\":%ld,\"tile\":%d,\"tile_stride\":%d,\"crop\":%d,\"crop_um\":%g,"
             "\"cell_border\":\"%s\",\"min_cell_area\":%d,\"pixel_size_um\":%g,\"fov_size\":%d,\"digest\":\"%s\","
             "\"kernels\":\"%s\",\"precision\":\"%s\"}",
             o->levels, align, fill, o->seed, o->tile, o->tile_stride > 0 ? o->tile_stride : o->tile, o->crop, o->crop_um,
             o->cell_border ? o->cell_border : "shift", o->min_cell_area, o->pixel_size_um, o->fov_size,
             o->verify ? "content" : "stat", (o->kernels ? o->kernels : pl_kernels_default())->name, pl_precision_name(o->precision));
    ctx->options_json = pl_strdup(buf);
    if (!ctx->options_json) return PL_ERR_NOMEM;
    size_t n = strlen(ctx->weights_sha) + strlen(ctx->card.json) + strlen(buf) + 4;
    char *all = pl_malloc(n);
    if (!all) return PL_ERR_NOMEM;
    snprintf(all, n, "%s\n%s\n%s", ctx->weights_sha, ctx->card.json, buf);
    pl_digest_text(all, ctx->settings_key);
    free(all);
    return PL_OK;
}

static void run_context_free(RunContext *ctx) {
    if (ctx->digest_error)
        for (size_t i = 0; i < ctx->manifest.count; i++) free(ctx->digest_error[i]);
    free(ctx->digest_error);
    pl_manifest_free(&ctx->manifest);
    pl_modelcard_free(&ctx->card);
    pl_vit_linears_destroy(ctx->linears);
    pl_weights_free(&ctx->weights);
    free(ctx->digests);
    free(ctx->cost);
    free(ctx->options_json);
    free(ctx->journal_dir);
    run_cell_labels_free(&ctx->cell_labels);
    free(ctx->had_row);
}

// Largest first (the last items handed out are the small ones), ties in manifest order.
typedef struct RunTask {
    double cost;
    long item;
} RunTask;

static int run_cmp_task(const void *a, const void *b) {
    const RunTask *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? 1 : -1;
    return x->item < y->item ? -1 : x->item > y->item;
}

// Rank 0: resume from the journal, reuse the old store, list the items still to compute.
static PlStatus run_plan(RunContext *ctx, PlJournalWriter *jw, long *tasks, long *n_tasks, int64_t *valid,
                         PlRunSummary *sum) {
    const PlManifest *m = &ctx->manifest;
    char key[128];
    int present = 0;
    PL_TRY(pl_journal_settings_read(ctx->journal_dir, key, &present));
    if (present && strcmp(key, ctx->settings_key) != 0) {
        pl_log_info("journal %s belongs to other settings: discarding it", ctx->journal_dir);
        PL_TRY(pl_journal_remove(ctx->journal_dir));
    } else if (!present) {
        PL_TRY(pl_journal_remove(ctx->journal_dir));   // leftovers without settings: never trusted
    }
    PL_TRY(pl_journal_settings_write(ctx->journal_dir, ctx->settings_key));
    PlJournalIndex idx;
    PL_TRY(pl_journal_scan(ctx->journal_dir, &idx));
    if (idx.torn) pl_log_info("journal: discarded the torn tail of %zu file%s", idx.torn, idx.torn > 1 ? "s" : "");
    for (int r = 0; r < ctx->size; r++) valid[r] = pl_journal_valid_length(&idx, r);
    unsigned char *done = calloc(m->count, 1), *reused = calloc(m->count, 1);
    PlStatus st = done && reused ? PL_OK : PL_FAIL(PL_ERR_NOMEM, "out of memory");
    // Journal records of the current inputs are resumed; failures are tried again (like the previous store's
    // /failures), so that a raised budget or a repaired file takes effect on the re-run.
    for (size_t e = 0; st == PL_OK && e < idx.count; e++) {
        long i = pl_manifest_find(m, idx.entries[e].id);
        if (i >= 0 && !idx.entries[e].failed && !strcmp(idx.entries[e].digest, ctx->digests[i]) &&
            idx.entries[e].dim == ctx->dim)
            done[i] = 1;
    }
    pl_journal_index_free(&idx);
    if (st == PL_OK) st = pl_journal_open(jw, ctx->journal_dir, 0, valid[0]);
    if (st == PL_OK) st = run_reuse_old_store(ctx, done, reused, ctx->had_row, jw, sum);
    if (st == PL_OK) st = pl_journal_sync(jw);
    *n_tasks = 0;
    RunTask *order = st == PL_OK ? pl_malloc((m->count ? m->count : 1) * sizeof *order) : NULL;
    if (st == PL_OK && !order) st = PL_ERR_NOMEM;
    for (size_t i = 0; i < m->count && st == PL_OK; i++) {
        if (done[i]) sum->resumed++;
        else if (!reused[i]) order[(*n_tasks)++] = (RunTask){ctx->cost[i], (long)i};
    }
    if (st == PL_OK) qsort(order, (size_t)*n_tasks, sizeof *order, run_cmp_task);
    for (long t = 0; st == PL_OK && t < *n_tasks; t++) tasks[t] = order[t].item;
    free(order);
    free(done);
    free(reused);
    return st;
}

// Embedding statistics summed / ranged over the ranks.
static PlStatus run_gather_stats(const RunContext *ctx, const RunWorkerStats *ws, PlRunSummary *sum) {
    double mine[6] = {ws->t_prep, ws->t_embed, ws->t_journal, ws->t_wait, (double)ws->computed, (double)ws->failed};
    double tot[6], busy_min = 0, busy_max = 0, busy_sum = 0;
    PL_MPI_TRY(MPI_Allreduce(mine, tot, 6, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    PL_MPI_TRY(MPI_Allreduce(&ws->t_busy, &busy_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD));
    PL_MPI_TRY(MPI_Allreduce(&ws->t_busy, &busy_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    PL_MPI_TRY(MPI_Allreduce(&ws->t_busy, &busy_sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    sum->t_prep = tot[0], sum->t_embed = tot[1], sum->t_journal = tot[2], sum->t_wait = tot[3];
    sum->computed = (long)tot[4];
    sum->rank_busy_min = busy_min, sum->rank_busy_max = busy_max, sum->rank_busy_mean = busy_sum / ctx->size;
    return PL_OK;
}

// Load, digest, settings: every rank; errors agreed.
static PlStatus run_prepare(RunContext *ctx) {
    PlStatus st = run_load(ctx);
    if (st != PL_OK && ctx->rank == 0 && ctx->manifest.n_errors > 1)   // every manifest problem, then the summary
        for (size_t i = 0; i < ctx->manifest.n_errors; i++) pl_log_error("%s", ctx->manifest.errors[i]);
    if (st == PL_OK && ctx->rank == 0 && pl_modelcard_verify_weights(&ctx->card, ctx->weights_sha) != PL_OK)
        st = PL_ERR_FORMAT;
    st = pl_mpi_agree(st, "loading the manifest and model");
    if (st == PL_OK) st = run_bcast_string(ctx->weights_sha, sizeof ctx->weights_sha);
    if (st == PL_OK) st = run_digests(ctx);
    if (st == PL_OK) st = run_settings(ctx);
    return st;
}

PlStatus pl_run(const PlRunOptions *o, PlRunSummary *sum) {
    memset(sum, 0, sizeof *sum);
    double t0 = pl_clock_now();
    RunContext ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.opt = o;
    PL_MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &ctx.rank));
    PL_MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &ctx.size));
    PlLock lock;
    PlStatus st = pl_mpi_agree(run_lock_output(&ctx, &lock), "locking the output");
    if (st == PL_OK) st = run_prepare(&ctx);
    size_t N = ctx.manifest.count;
    sum->items = (long)N;
    sum->dim = ctx.dim;
    ctx.threads = pl_threadpool_size(o->pool);
    size_t jl = strlen(o->out) + 16;
    ctx.journal_dir = malloc(jl);
    if (ctx.journal_dir) snprintf(ctx.journal_dir, jl, "%s.journal", o->out);
    long *tasks = calloc(N ? N : 1, sizeof *tasks);
    int64_t *valid = calloc((size_t)ctx.size, sizeof *valid);
    if (ctx.rank == 0) ctx.had_row = calloc(N ? N : 1, 1);
    if (st == PL_OK && (!tasks || !valid || !ctx.journal_dir || (ctx.rank == 0 && !ctx.had_row)))
        st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
    st = pl_mpi_agree(st, "planning");
    long n_tasks = 0;
    PlJournalWriter jw;
    memset(&jw, 0, sizeof jw);
    jw.fd = -1;
    if (st == PL_OK && ctx.rank == 0) {
        st = run_plan(&ctx, &jw, tasks, &n_tasks, valid, sum);
        pl_log_info("run: %zu items, %ld to compute, %ld resumed from the journal, %ld reused from %s; %d rank%s x %d "
                    "thread%s, embedding dim %d, kernels %s, precision %s", N, n_tasks, sum->resumed, sum->reused,
                    o->out, ctx.size, ctx.size > 1 ? "s" : "", ctx.threads, ctx.threads > 1 ? "s" : "", ctx.dim,
                    (o->kernels ? o->kernels : pl_kernels_default())->name, pl_precision_name(o->precision));
    }
    st = pl_mpi_agree(st, "planning on rank 0");
    if (st == PL_OK) st = PL_MPI_CHECK(MPI_Bcast(&n_tasks, 1, MPI_LONG, 0, MPI_COMM_WORLD));
    if (st == PL_OK && n_tasks > 0) st = PL_MPI_CHECK(MPI_Bcast(tasks, (int)n_tasks, MPI_LONG, 0, MPI_COMM_WORLD));
    if (st == PL_OK) st = PL_MPI_CHECK(MPI_Bcast(valid, ctx.size, MPI_INT64_T, 0, MPI_COMM_WORLD));
    ctx.journal_start = valid;
    if (st == PL_OK && ctx.rank != 0) st = pl_journal_open(&jw, ctx.journal_dir, ctx.rank, valid[ctx.rank]);
    st = pl_mpi_agree(st, "opening the journals");
    RunWorkerStats ws;
    memset(&ws, 0, sizeof ws);
    if (st == PL_OK) st = run_worker(&ctx, tasks, n_tasks, &jw, &ws);
    PlStatus cs = pl_journal_close(&jw);   // flushed also after a failure or a stop: a re-run resumes from it
    if (st == PL_OK) st = cs;
    st = pl_mpi_agree(st, "embedding");
    if (st == PL_OK) st = run_check_stop(&ctx, sum);
    if (st == PL_OK) st = run_gather_stats(&ctx, &ws, sum);
    if (st == PL_OK) st = run_finish(&ctx, sum);
    sum->seconds = pl_clock_now() - t0;
    free(tasks);
    free(valid);
    pl_lock_release(&lock);
    run_context_free(&ctx);
    return st;
}
