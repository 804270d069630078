// `protloc run` preprocessing of one item: FOV and tiles through pl_prep_fov; cell crops from the decoded planes.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_decode.h"
#include "pl_run_priv.h"
#include "pl_segment.h"

static void prep_fail(RunPrepared *p, const char *stage, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void prep_fail(RunPrepared *p, const char *stage, const char *fmt, ...) {
    p->failed = 1;
    snprintf(p->stage, sizeof p->stage, "%s", stage);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    va_end(ap);
}

static int prep_reserve(void **buf, size_t *cap, size_t count, size_t elem) {
    if (count <= *cap) return 1;
    void *q = realloc(*buf, count * elem);
    if (!q) return 0;
    *buf = q;
    *cap = count;
    return 1;
}

// One ViT input (C, h, w) of variant `v` from raw planes (n_planes, H, W), region origin (y0, x0) (may lie
// partly outside: those raw pixels are 0), normalised per channel as the card says. Empty slots are 0.
static void prep_make_input(const RunContext *ctx, const RunPrepared *p, int v, int y0, int x0, int h, int w,
                            float *out) {
    const PlModelCard *card = &ctx->card;
    size_t hw = (size_t)h * (size_t)w;
    for (int k = 0; k < ctx->C; k++) {
        float *dst = out + (size_t)k * hw;
        int plane = p->map[v][k];
        if (plane < 0) {
            memset(dst, 0, hw * sizeof *dst);
            continue;
        }
        const float *src = p->planes + (size_t)plane * (size_t)p->H * (size_t)p->W;
        float scale = p->plane_scale[plane];
        for (int y = 0; y < h; y++) {
            int sy = y0 + y;
            float *row = dst + (size_t)y * (size_t)w;
            if (sy < 0 || sy >= p->H) {
                memset(row, 0, (size_t)w * sizeof *row);
                continue;
            }
            for (int x = 0; x < w; x++) {
                int sx = x0 + x;
                row[x] = (sx >= 0 && sx < p->W) ? src[(size_t)sy * (size_t)p->W + (size_t)sx] * scale : 0.0f;
            }
        }
        if (card->norm_mode == PL_CARD_NORM_FIXED) {
            float m = card->mean[k], inv = 1.0f / card->std[k];
            for (size_t i = 0; i < hw; i++) dst[i] = (dst[i] - m) * inv;
        } else {   // DINO4Cells: x = (x - mean) / (std_population + 1e-7), in double for stability
            double sum = 0.0, sq = 0.0;
            for (size_t i = 0; i < hw; i++) sum += dst[i];
            double mean = sum / (double)hw;
            for (size_t i = 0; i < hw; i++) {
                double d = dst[i] - mean;
                sq += d * d;
            }
            double sd = sqrt(sq / (double)hw);
            float fm = (float)mean, inv = (float)(1.0 / (sd + 1e-7));
            for (size_t i = 0; i < hw; i++) dst[i] = (dst[i] - fm) * inv;
        }
    }
}

static int prep_batch_reserve(const RunContext *ctx, RunBatch *b, int rows, int h, int w) {
    size_t n = (size_t)rows * (size_t)ctx->R * (size_t)ctx->C * (size_t)h * (size_t)w;
    if (!prep_reserve((void **)&b->x, &b->cap, n ? n : 1, sizeof(float))) return 0;
    b->rows = rows;
    b->h = h;
    b->w = w;
    return 1;
}

// Decode every source plane, check / align sizes; fills p->planes (n_planes, H, W).
static int prep_read_planes(const RunContext *ctx, const PlManifestItem *it, RunPrepared *p) {
    const PlManifest *m = &ctx->manifest;
    int H = 0, W = 0, any = 0;
    for (int q = 0; q < ctx->n_planes; q++) {
        const PlManifestChannel *ch = &it->channels[ctx->plane_role[q]];
        PlImage *img = &p->plane_img[q];
        if (!ch->path) continue;
        char ref[4200];
        snprintf(ref, sizeof ref, "%s#%d", ch->path, ch->page);
        if (pl_image_read_reuse(ref, NULL, img) != PL_OK) {
            prep_fail(p, "decode", "%s channel %s: %s", m->roles[ctx->plane_role[q]], ref, pl_error_message());
            return 0;
        }
        if (!any || img->height < H) H = img->height;
        if (!any || img->width < W) W = img->width;
        if (any && (img->height != p->H || img->width != p->W)) {
            prep_fail(p, "align", "%s channel %s is %dx%d but the first channel is %dx%d",
                      m->roles[ctx->plane_role[q]], ref, img->width, img->height, p->W, p->H);
            return 0;
        }
        if (!any) {
            p->H = img->height;
            p->W = img->width;
        }
        any = 1;
        p->plane_scale[q] = img->is_float ? 1.0f : (float)(1.0 / (ldexp(1.0, img->bits) - 1.0));
    }
    if (!any) {
        prep_fail(p, "decode", "item has none of the channels the model reads");
        return 0;
    }
    p->H = H;
    p->W = W;
    size_t hw = (size_t)H * (size_t)W;
    if (!prep_reserve((void **)&p->planes, &p->planes_cap, hw * (size_t)ctx->n_planes, sizeof(float))) {
        prep_fail(p, "decode", "out of memory for a %dx%d image", W, H);
        return 0;
    }
    for (int q = 0; q < ctx->n_planes; q++) {
        float *dst = p->planes + (size_t)q * hw;
        const PlImage *img = &p->plane_img[q];
        if (!it->channels[ctx->plane_role[q]].path) {   // absent role: a zero plane
            memset(dst, 0, hw * sizeof *dst);
            p->plane_scale[q] = 1.0f;
            continue;
        }
        for (int y = 0; y < H; y++)   // top-left common region (crop alignment)
            memcpy(dst + (size_t)y * (size_t)W, img->data + (size_t)y * (size_t)img->width, (size_t)W * sizeof *dst);
    }
    return 1;
}

static int prep_cells(const RunContext *ctx, const PlManifestItem *it, RunPrepared *p) {
    const PlRunOptions *o = ctx->opt;
    size_t hw = (size_t)p->H * (size_t)p->W;
    if (!prep_reserve((void **)&p->labels, &p->labels_cap, hw, sizeof(int32_t))) {
        prep_fail(p, "cells", "out of memory");
        return 0;
    }
    double px = it->pixel_size_um > 0 ? it->pixel_size_um : o->pixel_size_um > 0 ? o->pixel_size_um : 0.206;
    if (it->mask.path) {
        char ref[4200];
        snprintf(ref, sizeof ref, "%s#%d", it->mask.path, it->mask.page);
        PlImage mask = {0};
        PlStatus st = pl_image_read(ref, NULL, &mask);
        if (st == PL_OK && (mask.height < p->H || mask.width < p->W))
            st = PL_FAIL(PL_ERR_FORMAT, "%s: mask is %dx%d, the image %dx%d", ref, mask.width, mask.height, p->W, p->H);
        if (st == PL_OK) {   // crop the mask like the channels (top-left region)
            PlImage view = mask;
            float *tmp = malloc(hw * sizeof *tmp);
            if (!tmp) st = PL_FAIL(PL_ERR_NOMEM, "out of memory");
            else {
                for (int y = 0; y < p->H; y++)
                    memcpy(tmp + (size_t)y * (size_t)p->W, mask.data + (size_t)y * (size_t)mask.width,
                           (size_t)p->W * sizeof *tmp);
                view.data = tmp;
                view.height = p->H;
                view.width = p->W;
                view.channels = 1;
                st = pl_cells_labels_from_image(&view, ref, p->labels);
                free(tmp);
            }
        }
        pl_image_free(&mask);
        if (st != PL_OK) {
            prep_fail(p, "mask", "%s", pl_error_message());
            return 0;
        }
    } else {
        if (ctx->nucleus_role < 0 || !it->channels[ctx->nucleus_role].path) {
            prep_fail(p, "cells", "no mask and no nucleus channel to segment");
            return 0;
        }
        // the nucleus plane: the source plane whose role is the nucleus role
        int q = -1;
        for (int k = 0; k < ctx->n_planes; k++)
            if (ctx->plane_role[k] == ctx->nucleus_role) q = k;
        PlImage nuc = {0};
        const float *plane = NULL;
        if (q >= 0) {
            plane = p->planes + (size_t)q * hw;
        } else {
            const PlManifestChannel *ch = &it->channels[ctx->nucleus_role];
            char ref[4200];
            snprintf(ref, sizeof ref, "%s#%d", ch->path, ch->page);
            if (pl_image_read(ref, NULL, &nuc) != PL_OK || nuc.height < p->H || nuc.width < p->W) {
                prep_fail(p, "decode", "nucleus channel %s: %s", ref,
                          nuc.data ? "smaller than the other channels" : pl_error_message());
                pl_image_free(&nuc);
                return 0;
            }
            plane = nuc.data;   // (only the top-left region matters when widths agree; crop otherwise)
            if (nuc.width != p->W) {
                for (int y = 0; y < p->H; y++)
                    memmove(nuc.data + (size_t)y * (size_t)p->W, nuc.data + (size_t)y * (size_t)nuc.width,
                            (size_t)p->W * sizeof(float));
            }
        }
        PlSegmentParams sp;
        pl_segment_params_default(&sp);
        sp.pixel_size_um = px;
        PlStatus st = pl_segment_nuclei(plane, p->H, p->W, &sp, p->labels, NULL);
        pl_image_free(&nuc);
        if (st != PL_OK) {
            prep_fail(p, "segment", "%s", pl_error_message());
            return 0;
        }
    }
    int side = 0;
    PlCellBorder border = PL_CELL_BORDER_SHIFT;
    if (pl_cells_crop_side(o->crop, o->crop > 0 ? 0 : (o->crop_um > 0 ? o->crop_um : 224 * px), px, &side) != PL_OK ||
        pl_cell_border_parse(o->cell_border ? o->cell_border : "shift", &border) != PL_OK ||
        pl_cells_measure(p->labels, p->H, p->W, o->min_cell_area, &p->cellset) != PL_OK ||
        pl_cells_place(&p->cellset, p->H, p->W, side, border) != PL_OK) {
        prep_fail(p, "cells", "%s", pl_error_message());
        return 0;
    }
    int n = p->cellset.count;
    if (n == 0) {
        prep_fail(p, "cells", "no cells found");
        return 0;
    }
    if (!prep_batch_reserve(ctx, &p->cells, n, side, side) ||
        !prep_reserve((void **)&p->cell_cyx, &p->cell_cap, (size_t)n * 2, sizeof(float))) {
        prep_fail(p, "cells", "out of memory for %d crops", n);
        return 0;
    }
    free(p->cell_area);   // sized with cell_cyx's capacity
    p->cell_area = malloc(p->cell_cap * sizeof(int64_t));
    if (!p->cell_area) {
        prep_fail(p, "cells", "out of memory");
        return 0;
    }
    size_t in_size = (size_t)ctx->C * (size_t)side * (size_t)side;
    for (int i = 0; i < n; i++) {
        const PlCell *c = &p->cellset.cells[i];
        p->cell_cyx[2 * i] = c->cy;
        p->cell_cyx[2 * i + 1] = c->cx;
        p->cell_area[i] = c->area;
        for (int v = 0; v < ctx->R; v++)
            prep_make_input(ctx, p, v, c->y0, c->x0, side, side, p->cells.x + ((size_t)i * ctx->R + v) * in_size);
    }
    return 1;
}

// The pl_prep sources of an item: every plane role it has a file for ("path#page").
static int prep_sources(const RunContext *ctx, const PlManifestItem *it, RunPrepared *p, PlChannelSource *src,
                        char refs[][4200]) {
    const PlManifest *m = &ctx->manifest;
    int n = 0;
    for (int q = 0; q < ctx->n_planes; q++) {
        const PlManifestChannel *ch = &it->channels[ctx->plane_role[q]];
        if (!ch->path) {
            if (ctx->R > 1) {
                prep_fail(p, "align", "replicate needs every channel, and the %s channel is empty",
                          m->roles[ctx->plane_role[q]]);
                return -1;
            }
            continue;
        }
        snprintf(refs[n], 4200, "%s#%d", ch->path, ch->page);
        src[n].role = m->roles[ctx->plane_role[q]];
        src[n].ref = refs[n];
        n++;
    }
    if (n == 0) prep_fail(p, "input", "the item has none of the channels the model reads");
    return n;
}

static double prep_pixel_size(const RunContext *ctx, const PlManifestItem *it) {
    return it->pixel_size_um > 0 ? it->pixel_size_um : ctx->opt->pixel_size_um;
}

// FOV or tiles through pl_prep_fov; the output is reordered from view-major (v, t) to row-major (t, v) so the
// R views of a row embed next to each other (their CLS vectors are concatenated).
static int prep_level(const RunContext *ctx, const PlManifestItem *it, const PlPrepConfig *cfg, const char *stage,
                      RunPrepared *p, RunBatch *b, int32_t **yx) {
    PlChannelSource src[RUN_MAX_VARIANTS];
    static _Thread_local char refs[RUN_MAX_VARIANTS][4200];
    int n = prep_sources(ctx, it, p, src, refs);
    if (n <= 0) return 0;
    PlPrepResult *r = &p->pres;
    if (pl_prep_fov(cfg, it->id, prep_pixel_size(ctx, it), src, n, r) != PL_OK) {
        PlStatus code = pl_error_code();
        prep_fail(p, code == PL_ERR_EMPTY || code == PL_ERR_LIMIT ? stage : "decode", "%s", pl_error_message());
        return 0;
    }
    if (r->n_views != ctx->R || r->n_slots != ctx->C) {
        prep_fail(p, stage, "preprocessing gave %d views of %d slots, expected %d of %d", r->n_views, r->n_slots,
                  ctx->R, ctx->C);
        return 0;
    }
    int T = r->n_tiles;
    if (!prep_batch_reserve(ctx, b, T, r->tile_h, r->tile_w)) {
        prep_fail(p, stage, "out of memory for %d inputs", T);
        return 0;
    }
    size_t in_size = (size_t)ctx->C * (size_t)r->tile_h * (size_t)r->tile_w;
    for (int t = 0; t < T; t++)
        for (int v = 0; v < ctx->R; v++)
            memcpy(b->x + ((size_t)t * ctx->R + v) * in_size, r->data + ((size_t)v * T + t) * in_size,
                   in_size * sizeof(float));
    if (yx) {
        if (!prep_reserve((void **)yx, &p->tile_cap, (size_t)T * 2, sizeof(int32_t))) {
            prep_fail(p, stage, "out of memory");
            return 0;
        }
        for (int t = 0; t < T; t++) {
            (*yx)[2 * t] = r->tiles[t].y;
            (*yx)[2 * t + 1] = r->tiles[t].x;
        }
    }
    return 1;
}

// Cells: the item's alignment plan over the decoded planes (random shuffles per item), then the crops.
static int prep_cell_plan(const RunContext *ctx, const PlManifestItem *it, RunPrepared *p) {
    const char *roles[RUN_MAX_VARIANTS];
    int plane_of[RUN_MAX_VARIANTS], n = 0;
    for (int q = 0; q < ctx->n_planes; q++) {
        if (!it->channels[ctx->plane_role[q]].path) continue;
        roles[n] = ctx->manifest.roles[ctx->plane_role[q]];
        plane_of[n++] = q;
    }
    PlAlignPlan plan;
    if (pl_align_plan(&ctx->prep_fov.align, roles, n, it->id, &plan) != PL_OK) {
        prep_fail(p, "align", "%s", pl_error_message());
        return 0;
    }
    if (plan.n_views != ctx->R) {
        prep_fail(p, "align", "alignment gave %d views, expected %d", plan.n_views, ctx->R);
        return 0;
    }
    for (int v = 0; v < plan.n_views; v++)
        for (int k = 0; k < ctx->C; k++) p->map[v][k] = plan.src[v][k] < 0 ? -1 : plane_of[plan.src[v][k]];
    return prep_cells(ctx, it, p);
}

void run_prepare_item(const RunContext *ctx, long item, RunPrepared *p) {
    double t0 = run_now();
    const PlRunOptions *o = ctx->opt;
    const PlManifestItem *it = &ctx->manifest.items[item];
    p->item = item;
    p->failed = 0;
    p->stage[0] = p->message[0] = '\0';
    p->fov.rows = p->tiles.rows = p->cells.rows = 0;
    if (ctx->digest_error && ctx->digest_error[item]) {
        prep_fail(p, "input", "%s", ctx->digest_error[item]);
        goto out;
    }
    if ((o->levels & PL_LEVEL_FOV) && !prep_level(ctx, it, &ctx->prep_fov, "fov", p, &p->fov, NULL)) goto out;
    if ((o->levels & PL_LEVEL_TILES) && !prep_level(ctx, it, &ctx->prep_tiles, "tiles", p, &p->tiles, &p->tile_yx))
        goto out;
    if ((o->levels & PL_LEVEL_CELLS) && (!prep_read_planes(ctx, it, p) || !prep_cell_plan(ctx, it, p))) goto out;
    if ((o->levels & PL_LEVEL_CELLS) && !prep_cells(ctx, it, p)) goto out;
out:
    p->seconds = run_now() - t0;
}

void run_prepared_free(RunPrepared *p) {
    free(p->fov.x);
    free(p->tiles.x);
    free(p->cells.x);
    free(p->tile_yx);
    free(p->cell_cyx);
    free(p->cell_area);
    for (int q = 0; q < RUN_MAX_VARIANTS; q++) pl_image_free(&p->plane_img[q]);
    free(p->planes);
    free(p->labels);
    pl_cell_set_free(&p->cellset);
    pl_image_free(&p->mask_img);
    pl_prep_result_free(&p->pres);
    memset(p, 0, sizeof *p);
}
