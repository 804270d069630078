// `protloc run` preprocessing of one item: its sources and each level through the card's preparation
// (pl_card_prep.h, shared with `finetune`); this file checks the per-item budgets and reorders the output for the ViT.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_card_prep.h"
#include "pl_decode.h"
#include "pl_log.h"
#include "pl_run_priv.h"

static void prep_fail(RunPrepared *p, const char *stage, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void prep_fail(RunPrepared *p, const char *stage, const char *fmt, ...) {
    p->failed = 1;
    snprintf(p->stage, sizeof p->stage, "%s", stage);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    va_end(ap);
}

// The sources of an item (pl_card_item_sources over the run's planes). Returns the count, 0 on failure.
static int prep_sources(const RunContext *ctx, const PlManifestItem *it, RunPrepared *p, PlChannelSource *src,
                        char (*refs)[PL_CARD_REF_MAX]) {
    int n = 0;
    const char *stage = "input";
    if (pl_card_item_sources(&ctx->manifest, it, ctx->plane_role, ctx->n_planes, ctx->R > 1, src, refs, &n, &stage) !=
        PL_OK)
        prep_fail(p, stage, "%s", pl_error_message());
    return n;
}

// Copy pl_prep's view-major output (v, t) into the batch row-major (t, v), so the R views of a row embed next to
// each other (their outputs are concatenated).
static int prep_to_batch(const RunContext *ctx, const PlPrepResult *r, const char *stage, RunPrepared *p,
                         RunBatch *b) {
    if (r->n_views != ctx->R || r->n_slots != ctx->C) {
        prep_fail(p, stage, "preprocessing gave %d views of %d slots, expected %d of %d", r->n_views, r->n_slots,
                  ctx->R, ctx->C);
        return 0;
    }
    int T = r->n_tiles;
    size_t in_size = (size_t)ctx->C * (size_t)r->tile_h * (size_t)r->tile_w;
    if (pl_grow((void **)&b->x, &b->cap, (size_t)T * ctx->R * in_size, sizeof(float)) != PL_OK) {
        prep_fail(p, stage, "%s", pl_error_message());
        return 0;
    }
    b->rows = T;
    b->h = r->tile_h;
    b->w = r->tile_w;
    for (int t = 0; t < T; t++)
        for (int v = 0; v < ctx->R; v++)
            memcpy(b->x + ((size_t)t * ctx->R + v) * in_size, r->data + ((size_t)v * T + t) * in_size,
                   in_size * sizeof(float));
    return 1;
}

// The model input size of the FOV level for an image of h x w (after rescaling): the whole image cropped to whole
// patches, or --fov-size.
static void prep_fov_size(const RunContext *ctx, int h, int w, int *th, int *tw) {
    int P = ctx->vit_cfg.patch;
    if (ctx->opt->fov_size > 0) *th = *tw = ctx->opt->fov_size;
    else *th = h / P * P, *tw = w / P * P;
}

// Per-item budgets (--max-memory, --max-tokens), checked from the image header before anything large is
// allocated: the decoded and rescaled channels, the model inputs of each requested level and the ViT activations
// for them; the whole-FOV input's token count (its attention time grows with the square). 0 when over.
static int prep_check_budget(const RunContext *ctx, const PlManifestItem *it, const PlChannelSource *src, int n,
                             RunPrepared *p) {
    const PlRunOptions *o = ctx->opt;
    char *path = NULL;
    int channel = 0;
    PlImageInfo info;
    if (pl_image_ref_parse(src[0].ref, &path, &channel) != PL_OK) return 1;   // the decoder reports the problem
    PlStatus st = pl_image_probe(path, &ctx->prep[PL_STORE_FOV].limits, &info);
    free(path);
    if (st != PL_OK) return 1;
    const PlPrepConfig *cfg = &ctx->prep[PL_STORE_FOV];
    double px = pl_card_item_pixel_size(&ctx->card, it, ctx->opt->pixel_size_um);
    double f = cfg->scale > 0 ? cfg->scale : pl_resize_factor_from_pixel_size(px, cfg->model_pixel_um);
    double H = info.height, W = info.width, H2 = H * f + 0.5, W2 = W * f + 0.5;
    double planes = 4.0 * n * (H * W + (f != 1.0 ? H2 * W2 : 0.0)) * 2;   // decoded (+ the reader's copy) + rescaled
    double need = planes, vit = 0, in_px = 0;
    int th = 0, tw = 0, R = ctx->R, C = ctx->C, batch = o->batch > 0 ? o->batch : 16;
    PlVitOptions vo = {.pool = o->pool, .last_n = ctx->card.last_n, .avgpool = ctx->card.avgpool, .precision = o->precision};
    if (o->levels & PL_RUN_FOV) {
        prep_fov_size(ctx, (int)H2, (int)W2, &th, &tw);
        vo.max_batch = R, vo.height = th, vo.width = tw;
        vit = pl_vit_memory_bytes(&ctx->vit_cfg, &vo);
        in_px = (double)th * tw;
        need = planes + 2.0 * 4.0 * R * C * in_px + vit;   // pl_prep's output + the batch copy + activations
        int P = ctx->vit_cfg.patch;
        double tokens = 1.0 + (double)(th / P) * (tw / P);
        int64_t max_tokens = o->max_tokens > 0 ? o->max_tokens : PL_RUN_MAX_TOKENS_DEFAULT;
        if (tokens > (double)max_tokens) {
            prep_fail(p, "budget", "%s is %d x %d%s: as one %d x %d input it is %.0f ViT tokens, more than --max-tokens "
                      "%lld (attention time grows with their square); embed it as tiles (--level tiles), crop it "
                      "(--fov-size N), or raise --max-tokens", src[0].ref, info.width, info.height,
                      f != 1.0 ? " (rescaled)" : "", th, tw, tokens, (long long)max_tokens);
            return 0;
        }
    }
    if (o->levels & PL_RUN_TILES) {
        int t = o->tile;
        double tiles = ((H2 - t) / (o->tile_stride > 0 ? o->tile_stride : t) + 2) * ((W2 - t) / (o->tile_stride > 0 ? o->tile_stride : t) + 2);
        vo.max_batch = batch * R, vo.height = vo.width = t;
        double tb = planes + 2.0 * 4.0 * R * C * tiles * t * t + pl_vit_memory_bytes(&ctx->vit_cfg, &vo);
        if (tb > need) need = tb;
    }
    if (o->max_memory <= 0 || need <= (double)o->max_memory) return 1;
    char need_text[32], vit_text[32], max_text[32];
    prep_fail(p, "budget", "%s is %d x %d (%d channel%s%s): embedding it needs about %s (ViT activations for a "
              "%d x %d input: %s), more than --max-memory %s; embed it as tiles (--level tiles), crop it "
              "(--fov-size N), or raise --max-memory", src[0].ref, info.width, info.height, n, n > 1 ? "s" : "",
              f != 1.0 ? ", rescaled" : "", pl_log_format_bytes(need, need_text, sizeof need_text), th, tw,
              pl_log_format_bytes(vit, vit_text, sizeof vit_text),
              pl_log_format_bytes((double)o->max_memory, max_text, sizeof max_text));
    return 0;
}

// One level of the item through the card's preparation (pl_card_prep_item), into the level's batch.
static int prep_level(const RunContext *ctx, const PlManifestItem *it, PlStoreLevel level, const PlChannelSource *src,
                      int n, PlSegmenter **segmenter, RunPrepared *p, RunBatch *b) {
    PlPrepResult *r = &p->pres;
    const char *stage = pl_store_level_name(level);
    double px = pl_card_item_pixel_size(&ctx->card, it, ctx->opt->pixel_size_um);
    if (pl_card_prep_item(&ctx->prep[level], level, &ctx->manifest, it, px, src, n, ctx->nucleus_role, segmenter, r,
                          &stage) != PL_OK) {
        prep_fail(p, stage, "%s", pl_error_message());
        return 0;
    }
    return prep_to_batch(ctx, r, pl_store_level_name(level), p, b);
}

// The tiles' origins in the rescaled image.
static int prep_tile_origins(RunPrepared *p) {
    const PlPrepResult *r = &p->pres;
    if (pl_grow((void **)&p->tile_yx, &p->tile_yx_cap, (size_t)r->n_tiles * 2, sizeof(int32_t)) != PL_OK) {
        prep_fail(p, "tiles", "%s", pl_error_message());
        return 0;
    }
    for (int t = 0; t < r->n_tiles; t++) {
        p->tile_yx[2 * t] = r->tiles[t].y;
        p->tile_yx[2 * t + 1] = r->tiles[t].x;
    }
    return 1;
}

// Each cell's centroid, area and label.
static int prep_cell_records(RunPrepared *p) {
    const PlPrepResult *r = &p->pres;
    int c = r->cells.count;
    if (pl_grow((void **)&p->cell_cyx, &p->cell_cyx_cap, (size_t)c * 2, sizeof(float)) != PL_OK ||
        pl_grow((void **)&p->cell_area, &p->cell_area_cap, (size_t)c, sizeof(int64_t)) != PL_OK ||
        pl_grow((void **)&p->cell_label, &p->cell_label_cap, (size_t)c, sizeof(int32_t)) != PL_OK) {
        prep_fail(p, "cells", "%s", pl_error_message());
        return 0;
    }
    for (int i = 0; i < c; i++) {
        const PlCell *cell = &r->cells.cells[i];
        p->cell_cyx[2 * i] = cell->cy;
        p->cell_cyx[2 * i + 1] = cell->cx;
        p->cell_area[i] = cell->area;
        p->cell_label[i] = cell->label;
    }
    return 1;
}

void run_prepare_item(const RunContext *ctx, long item, PlSegmenter **segmenter, RunPrepared *p) {
    double t0 = pl_clock_now();
    const PlRunOptions *o = ctx->opt;
    const PlManifestItem *it = &ctx->manifest.items[item];
    p->item = item;
    p->failed = 0;
    p->stage[0] = p->message[0] = '\0';
    p->fov.rows = p->tiles.rows = p->cells.rows = 0;
    PlChannelSource src[RUN_MAX_VARIANTS];
    static _Thread_local char refs[RUN_MAX_VARIANTS][PL_CARD_REF_MAX];
    int n = 0;
    if (ctx->digest_error && ctx->digest_error[item]) prep_fail(p, "input", "%s", ctx->digest_error[item]);
    else n = prep_sources(ctx, it, p, src, refs);
    if (n > 0 && !prep_check_budget(ctx, it, src, n, p)) n = 0;
    if (n > 0 && (o->levels & PL_RUN_FOV)) (void)prep_level(ctx, it, PL_STORE_FOV, src, n, segmenter, p, &p->fov);
    if (n > 0 && !p->failed && (o->levels & PL_RUN_TILES) &&
        prep_level(ctx, it, PL_STORE_TILES, src, n, segmenter, p, &p->tiles))
        (void)prep_tile_origins(p);
    if (n > 0 && !p->failed && (o->levels & PL_RUN_CELLS) &&
        prep_level(ctx, it, PL_STORE_CELLS, src, n, segmenter, p, &p->cells))
        (void)prep_cell_records(p);
    p->seconds = pl_clock_now() - t0;
}

void run_prepared_free(RunPrepared *p) {
    free(p->fov.x);
    free(p->tiles.x);
    free(p->cells.x);
    free(p->tile_yx);
    free(p->cell_cyx);
    free(p->cell_area);
    free(p->cell_label);
    pl_prep_result_free(&p->pres);
    memset(p, 0, sizeof *p);
}
