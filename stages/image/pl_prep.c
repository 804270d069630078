// FOV preprocessing composition: decode, rescale, normalise, align, tile with reusable buffers (see pl_prep.h).
#include "pl_prep.h"

#include <stdlib.h>
#include <string.h>

struct PlPrepWork {
    PlImage decoded[PL_ALIGN_MAX_ROLES];   // one per role (reused)
    float *scaled;                         // (n_roles, height, width) rescaled planes
    size_t scaled_cap;
    void *scratch;                         // normalisation scratch (percentiles)
    size_t scratch_cap;
    PlResizeWork resize;
};

PlStatus pl_prep_config_default(PlPrepConfig *cfg, const char *slots_csv) {
    memset(cfg, 0, sizeof *cfg);
    pl_decode_limits_default(&cfg->limits);
    pl_norm_spec_default(&cfg->norm, PL_NORM_SELF);
    cfg->fov.mode = PL_FOV_WHOLE;
    cfg->fov.patch = 16;
    cfg->fov.size = 224;
    cfg->fov.stride = 224;
    cfg->fov.border = PL_BORDER_DROP;
    return pl_align_spec_init(&cfg->align, PL_ALIGN_MAP, slots_csv);
}

PlStatus pl_prep_config_validate(const PlPrepConfig *cfg) {
    PL_TRY(pl_norm_spec_validate(&cfg->norm, cfg->align.n_slots));
    PL_TRY(pl_fov_spec_validate(&cfg->fov));
    if (cfg->scale < 0.0) return PL_FAIL(PL_ERR_ARG, "rescale factor %g must be > 0", cfg->scale);
    if (cfg->model_pixel_um < 0.0) return PL_FAIL(PL_ERR_ARG, "model pixel size %g must be > 0", cfg->model_pixel_um);
    return PL_OK;
}

static PlStatus ensure_work(PlPrepResult *res) {
    if (res->work) return PL_OK;
    res->work = pl_calloc(1, sizeof *res->work);
    return res->work ? PL_OK : PL_ERR_NOMEM;
}

static PlStatus grow_bytes(void **p, size_t *cap, size_t need) {
    if (*p && *cap >= need) return PL_OK;
    void *q = pl_malloc(need ? need : 1);
    if (!q) return PL_ERR_NOMEM;
    free(*p);
    *p = q;
    *cap = need;
    return PL_OK;
}

PlStatus pl_prep_planes(const PlPrepConfig *cfg, const char *item_id, double pixel_size_um,
                        const char *const *roles, const float *const *planes, const int *bits, const int *is_float,
                        int n_roles, int height, int width, PlPrepResult *res) {
    const char *id = item_id ? item_id : "(item)";
    res->n_tiles = 0;
    PL_TRY(ensure_work(res));
    PlPrepWork *w = res->work;
    if (n_roles <= 0 || n_roles > PL_ALIGN_MAX_ROLES)
        return PL_FAIL(PL_ERR_ARG, "%s: %d source channels (1..%d allowed)", id, n_roles, PL_ALIGN_MAX_ROLES);
    PlStatus st = pl_align_plan(&cfg->align, roles, n_roles, item_id, &res->plan);
    if (st != PL_OK) return pl_error_wrap("%s", id);

    // 2. rescale
    double factor = cfg->scale > 0.0 ? cfg->scale : pl_resize_factor_from_pixel_size(pixel_size_um, cfg->model_pixel_um);
    int H = height, W = width;
    if (factor != 1.0) {
        st = pl_resize_size(height, width, factor, cfg->max_side > 0 ? cfg->max_side : 32768, &H, &W);
        if (st != PL_OK) return pl_error_wrap("%s", id);
    }
    const size_t plane = (size_t)H * (size_t)W;
    const float *scaled[PL_ALIGN_MAX_ROLES];
    if (H != height || W != width) {
        size_t need;
        if (pl_mul_overflows(plane * sizeof(float), (size_t)n_roles, &need)) return PL_ERR_LIMIT;
        void *p = w->scaled;
        PL_TRY(grow_bytes(&p, &w->scaled_cap, need));
        w->scaled = p;
        for (int r = 0; r < n_roles; r++) {
            PL_TRY(pl_resize_plane(&w->resize, planes[r], height, width, w->scaled + (size_t)r * plane, H, W));
            scaled[r] = w->scaled + (size_t)r * plane;
        }
    } else {
        for (int r = 0; r < n_roles; r++) scaled[r] = planes[r];
    }
    res->src_height = height, res->src_width = width, res->height = H, res->width = W;
    res->scale = (double)H / (double)height;

    // 3. per-role statistics
    PlChannelStats stats[PL_ALIGN_MAX_ROLES];
    size_t sbytes = pl_norm_scratch_bytes(&cfg->norm, plane);
    if (sbytes) PL_TRY(grow_bytes(&w->scratch, &w->scratch_cap, sbytes));
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
    size_t tile_plane = (size_t)th * (size_t)tw, total;
    if (pl_mul_overflows((size_t)V * (size_t)nt * (size_t)S, tile_plane, &total)) return PL_ERR_LIMIT;
    if (total > ((size_t)1 << 30))   // 4 GiB of float32 for one item is a configuration mistake, not data
        return PL_FAIL(PL_ERR_LIMIT, "%s: %d view(s) x %d tile(s) x %d slot(s) of %d x %d = %zu values exceed the limit of 2^30 per item; use a larger stride or fewer views",
                       id, V, nt, S, th, tw, total);
    if (res->data_capacity < total || !res->data) {
        float *d = pl_malloc(total * sizeof(float));
        if (!d) return PL_ERR_NOMEM;
        free(res->data);
        res->data = d;
        res->data_capacity = total;
    }

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

PlStatus pl_prep_fov(const PlPrepConfig *cfg, const char *item_id, double pixel_size_um,
                     const PlChannelSource *sources, int n_sources, PlPrepResult *res) {
    const char *id = item_id ? item_id : "(item)";
    res->n_tiles = 0;
    if (n_sources <= 0 || n_sources > PL_ALIGN_MAX_ROLES)
        return PL_FAIL(PL_ERR_ARG, "%s: %d source channels (1..%d allowed)", id, n_sources, PL_ALIGN_MAX_ROLES);
    PL_TRY(ensure_work(res));
    PlPrepWork *w = res->work;
    const char *roles[PL_ALIGN_MAX_ROLES];
    const float *planes[PL_ALIGN_MAX_ROLES];
    int bits[PL_ALIGN_MAX_ROLES], is_float[PL_ALIGN_MAX_ROLES];
    // 1. decode each role's channel into its reusable buffer
    for (int r = 0; r < n_sources; r++) {
        PlImage *img = &w->decoded[r];
        if (pl_image_read_reuse(sources[r].ref, &cfg->limits, img) != PL_OK)
            return pl_error_wrap("%s: role %s", id, sources[r].role);
        if (r > 0 && (img->height != w->decoded[0].height || img->width != w->decoded[0].width))
            return PL_FAIL(PL_ERR_FORMAT, "%s: role %s (%s) is %d x %d but role %s (%s) is %d x %d", id, sources[r].role,
                           sources[r].ref, img->height, img->width, sources[0].role, sources[0].ref,
                           w->decoded[0].height, w->decoded[0].width);
        roles[r] = sources[r].role;
        planes[r] = img->data;
        bits[r] = img->bits;
        is_float[r] = img->is_float;
    }
    return pl_prep_planes(cfg, item_id, pixel_size_um, roles, planes, bits, is_float, n_sources,
                          w->decoded[0].height, w->decoded[0].width, res);
}

void pl_prep_result_free(PlPrepResult *res) {
    if (res->work) {
        for (int r = 0; r < PL_ALIGN_MAX_ROLES; r++) pl_image_free(&res->work->decoded[r]);
        free(res->work->scaled);
        free(res->work->scratch);
        pl_resize_work_free(&res->work->resize);
        free(res->work);
    }
    free(res->data);
    free(res->tiles);
    memset(res, 0, sizeof *res);
}
