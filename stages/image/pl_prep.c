// FOV preprocessing composition: decode, rescale, normalise, align, tile with reusable buffers (see pl_prep.h).
#include "pl_prep.h"

#include "pl_prep_priv.h"

#include <stdlib.h>
#include <string.h>

PlStatus pl_prep_config_default(PlPrepConfig *cfg, const char *slots_csv) {
    memset(cfg, 0, sizeof *cfg);
    pl_decode_limits_default(&cfg->limits);
    pl_norm_spec_default(&cfg->norm, PL_NORM_SELF);
    cfg->fov.mode = PL_FOV_WHOLE;
    cfg->fov.patch = 16;
    cfg->fov.size = PL_PREP_TILE_DEFAULT;
    cfg->fov.stride = PL_PREP_TILE_DEFAULT;
    cfg->fov.border = PL_BORDER_DROP;
    cfg->cells.crop_px = PL_PREP_CROP_DEFAULT;
    cfg->cells.border = PL_CELL_BORDER_SHIFT;
    cfg->cells.min_area = PL_PREP_MIN_CELL_AREA_DEFAULT;
    pl_segment_params_default(&cfg->cells.segment);
    return pl_align_spec_init(&cfg->align, PL_ALIGN_MAP, slots_csv);
}

PlStatus pl_prep_config_validate(const PlPrepConfig *cfg) {
    PL_TRY(pl_norm_spec_validate(&cfg->norm, cfg->align.n_slots));
    PL_TRY(pl_fov_spec_validate(&cfg->fov));
    if (cfg->scale < 0.0) return PL_FAIL(PL_ERR_ARG, "rescale factor %g must be > 0", cfg->scale);
    if (cfg->model_pixel_um < 0.0) return PL_FAIL(PL_ERR_ARG, "model pixel size %g must be > 0", cfg->model_pixel_um);
    return PL_OK;
}

PlStatus pl_prep_work_ensure(PlPrepResult *res) {
    if (res->work) return PL_OK;
    res->work = pl_calloc(1, sizeof *res->work);
    return res->work ? PL_OK : PL_ERR_NOMEM;
}

PlStatus pl_prep_rescale(const PlPrepConfig *cfg, const char *id, double pixel_size_um, const PlPrepPlanes *in,
                         PlPrepResult *res, const float **scaled) {
    PlPrepWork *w = res->work;
    double factor = cfg->scale > 0.0 ? cfg->scale : pl_resize_factor_from_pixel_size(pixel_size_um, cfg->model_pixel_um);
    int H = in->height, W = in->width;
    if (factor != 1.0 && pl_resize_size(in->height, in->width, factor, cfg->max_side > 0 ? cfg->max_side : 32768, &H,
                                        &W) != PL_OK)
        return pl_error_wrap("%s", id);
    const size_t plane = (size_t)H * (size_t)W;
    if (H != in->height || W != in->width) {
        size_t need;
        if (pl_mul_overflows(plane, (size_t)in->n, &need)) return PL_ERR_LIMIT;
        PL_TRY(pl_grow((void **)&w->scaled, &w->scaled_cap, need, sizeof(float)));
        for (int r = 0; r < in->n; r++) {
            PL_TRY(pl_resize_plane(&w->resize, in->planes[r], in->height, in->width, w->scaled + (size_t)r * plane, H, W));
            scaled[r] = w->scaled + (size_t)r * plane;
        }
    } else {
        for (int r = 0; r < in->n; r++) scaled[r] = in->planes[r];
    }
    res->src_height = in->height, res->src_width = in->width, res->height = H, res->width = W;
    res->scale = (double)H / (double)in->height;
    return PL_OK;
}

PlStatus pl_prep_reserve_output(PlPrepResult *res, const char *id, int views, int n, int slots, int h, int w,
                                const char *what) {
    size_t total;
    if (pl_mul_overflows((size_t)views * (size_t)n * (size_t)slots, (size_t)h * (size_t)w, &total)) return PL_ERR_LIMIT;
    if (total > ((size_t)1 << 30))   // 4 GiB of float32 for one item is a configuration mistake, not data
        return PL_FAIL(PL_ERR_LIMIT, "%s: %d view(s) x %d %s(s) x %d slot(s) of %d x %d = %zu values exceed the limit of "
                       "2^30 per item; use a larger stride or fewer views", id, views, n, what, slots, h, w, total);
    return pl_grow((void **)&res->data, &res->data_capacity, total, sizeof(float));
}

PlStatus pl_prep_planes(const PlPrepConfig *cfg, const char *item_id, double pixel_size_um,
                        const char *const *roles, const float *const *planes, const int *bits, const int *is_float,
                        int n_roles, int height, int width, PlPrepResult *res) {
    const char *id = item_id ? item_id : "(item)";
    res->n_tiles = 0;
    PL_TRY(pl_prep_work_ensure(res));
    PlPrepWork *w = res->work;
    if (n_roles <= 0 || n_roles > PL_ALIGN_MAX_ROLES)
        return PL_FAIL(PL_ERR_ARG, "%s: %d source channels (1..%d allowed)", id, n_roles, PL_ALIGN_MAX_ROLES);
    PlStatus st = pl_align_plan(&cfg->align, roles, n_roles, item_id, &res->plan);
    if (st != PL_OK) return pl_error_wrap("%s", id);

    // 2. rescale
    PlPrepPlanes in = {.n = n_roles, .height = height, .width = width};
    for (int r = 0; r < n_roles; r++) in.planes[r] = planes[r];
    const float *scaled[PL_ALIGN_MAX_ROLES];
    PL_TRY(pl_prep_rescale(cfg, id, pixel_size_um, &in, res, scaled));
    const int H = res->height, W = res->width;
    const size_t plane = (size_t)H * (size_t)W;

    // 3. per-role statistics
    PlChannelStats stats[PL_ALIGN_MAX_ROLES];
    size_t sbytes = pl_norm_scratch_bytes(&cfg->norm, plane);
    if (sbytes) PL_TRY(pl_grow((void **)&w->scratch, &w->scratch_cap, sbytes / sizeof(float), sizeof(float)));
    for (int r = 0; r < n_roles; r++) {
        st = pl_norm_stats(&cfg->norm, scaled[r], plane, bits[r], is_float[r], w->scratch, &stats[r]);
        if (st != PL_OK) return pl_error_wrap("%s: role %s", id, roles[r]);
    }

    // 4. tile layout
    int th, tw, nt;
    st = pl_fov_layout(&cfg->fov, H, W, &th, &tw, NULL, 0, &nt);
    if (st != PL_OK) return pl_error_wrap("%s", id);
    if (res->tiles_capacity < nt) {
        PlTile *t = pl_malloc((size_t)nt * sizeof *t);
        if (!t) return PL_ERR_NOMEM;
        free(res->tiles);
        res->tiles = t;
        res->tiles_capacity = nt;
    }
    PL_TRY(pl_fov_layout(&cfg->fov, H, W, &th, &tw, res->tiles, res->tiles_capacity, &nt));
    const int V = res->plan.n_views, S = res->plan.n_slots;
    size_t tile_plane = (size_t)th * (size_t)tw;
    PL_TRY(pl_prep_reserve_output(res, id, V, nt, S, th, tw, "tile"));

    // 5. fused normalise + align + tile: every output value written exactly once
    for (int v = 0; v < V; v++)
        for (int t = 0; t < nt; t++)
            for (int s = 0; s < S; s++) {
                float *dst = res->data + (((size_t)v * (size_t)nt + (size_t)t) * (size_t)S + (size_t)s) * tile_plane;
                int r = res->plan.src[v][s];
                if (r < 0) {
                    memset(dst, 0, tile_plane * sizeof(float));
                    continue;
                }
                double shift, scale;
                pl_norm_affine(&cfg->norm, &stats[r], s, &shift, &scale);
                PlTile tile = res->tiles[t];
                int inside = tile.y >= 0 && tile.x >= 0 && tile.y + th <= H && tile.x + tw <= W;
                if (!inside) pl_tile_extract(scaled[r], H, W, tile, th, tw, 0.0f, dst);
                for (int y = 0; y < th; y++) {
                    int sy = tile.y + y;
                    float *d = dst + (size_t)y * (size_t)tw;
                    if (inside) {
                        pl_norm_apply(scaled[r] + (size_t)sy * (size_t)W + (size_t)tile.x, (size_t)tw, stats[r].lo,
                                      stats[r].hi, shift, scale, d);
                        continue;
                    }
                    if (sy < 0 || sy >= H) continue;   // padding rows stay 0
                    int c0 = tile.x < 0 ? -tile.x : 0, c1 = tile.x + tw > W ? W - tile.x : tw;
                    if (c1 > c0) pl_norm_apply(d + c0, (size_t)(c1 - c0), stats[r].lo, stats[r].hi, shift, scale, d + c0);
                }
            }
    res->n_views = V, res->n_tiles = nt, res->n_slots = S, res->tile_h = th, res->tile_w = tw;
    return PL_OK;
}

PlStatus pl_prep_decode(const PlPrepConfig *cfg, const char *id, const PlChannelSource *sources, int n_sources,
                        PlPrepResult *res, PlPrepPlanes *out) {
    if (n_sources <= 0 || n_sources > PL_ALIGN_MAX_ROLES)
        return PL_FAIL(PL_ERR_ARG, "%s: %d source channels (1..%d allowed)", id, n_sources, PL_ALIGN_MAX_ROLES);
    PL_TRY(pl_prep_work_ensure(res));
    PlPrepWork *w = res->work;
    for (int r = 0; r < n_sources; r++) {
        PlImage *img = &w->decoded[r];
        res->failed_step = "decode";
        if (pl_image_read_reuse(sources[r].ref, &cfg->limits, img) != PL_OK)
            return pl_error_wrap("%s: role %s", id, sources[r].role);
        if (r > 0 && (img->height != w->decoded[0].height || img->width != w->decoded[0].width))
            return PL_FAIL(PL_ERR_FORMAT, "%s: role %s (%s) is %d x %d but role %s (%s) is %d x %d", id, sources[r].role,
                           sources[r].ref, img->height, img->width, sources[0].role, sources[0].ref,
                           w->decoded[0].height, w->decoded[0].width);
        out->roles[r] = sources[r].role;
        out->planes[r] = img->data;
        out->bits[r] = img->bits;
        out->is_float[r] = img->is_float;
    }
    res->failed_step = NULL;
    out->n = n_sources;
    out->height = w->decoded[0].height;
    out->width = w->decoded[0].width;
    return PL_OK;
}

PlStatus pl_prep_fov(const PlPrepConfig *cfg, const char *item_id, double pixel_size_um,
                     const PlChannelSource *sources, int n_sources, PlPrepResult *res) {
    const char *id = item_id ? item_id : "(item)";
    res->n_tiles = 0;
    res->failed_step = NULL;
    PlPrepPlanes in;
    PL_TRY(pl_prep_decode(cfg, id, sources, n_sources, res, &in));   // 1. decode each role's channel
    return pl_prep_planes(cfg, item_id, pixel_size_um, in.roles, in.planes, in.bits, in.is_float, in.n, in.height,
                          in.width, res);
}

void pl_prep_result_free(PlPrepResult *res) {
    if (res->work) {
        for (int r = 0; r < PL_ALIGN_MAX_ROLES; r++) pl_image_free(&res->work->decoded[r]);
        free(res->work->scaled);
        free(res->work->scratch);
        free(res->work->labels);
        pl_image_free(&res->work->segment_img);
        pl_resize_work_free(&res->work->resize);
        free(res->work);
    }
    free(res->data);
    free(res->tiles);
    pl_cell_set_free(&res->cells);
    memset(res, 0, sizeof *res);
}
