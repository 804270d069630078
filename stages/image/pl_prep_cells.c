// Single-cell crops of one item, composed from the stages: decode, labels (mask or segmentation), measure,
// rescale, place, crop, per-crop normalisation (see pl_prep.h, pl_prep_cells).
#include <stdlib.h>
#include <string.h>

#include "pl_prep.h"
#include "pl_prep_priv.h"

// The plane to segment: a decoded source with the same reference, or the channel decoded on its own.
static PlStatus cells_segment_plane(const PlPrepConfig *cfg, const char *id, const PlPrepPlanes *in,
                                    const PlChannelSource *src, PlPrepResult *res, const float **plane) {
    for (int r = 0; r < in->n; r++)
        if (strcmp(in->roles[r], src->role) == 0) {
            *plane = in->planes[r];
            return PL_OK;
        }
    PlImage *img = &res->work->segment_img;
    if (pl_image_read_reuse(src->ref, &cfg->limits, img) != PL_OK) return pl_error_wrap("%s: role %s", id, src->role);
    if (img->height != in->height || img->width != in->width)
        return PL_FAIL(PL_ERR_FORMAT, "%s: role %s (%s) is %d x %d but role %s is %d x %d", id, src->role, src->ref,
                       img->height, img->width, in->roles[0], in->height, in->width);
    *plane = img->data;
    return PL_OK;
}

// Step 2: the source-resolution label image of the item into res->work->labels.
static PlStatus cells_labels(const PlPrepConfig *cfg, const char *id, double pixel_size_um, const PlPrepPlanes *in,
                             const char *mask_ref, const PlChannelSource *segment_from, PlSegmenter **segmenter,
                             PlPrepResult *res) {
    PlPrepWork *w = res->work;
    size_t hw = (size_t)in->height * (size_t)in->width;
    PL_TRY(pl_grow((void **)&w->labels, &w->labels_cap, hw, sizeof(int32_t)));
    if (mask_ref) {
        res->failed_step = "mask";
        if (pl_cells_read_mask(mask_ref, in->height, in->width, w->labels) != PL_OK) return pl_error_wrap("%s", id);
        res->failed_step = NULL;
        return PL_OK;
    }
    res->failed_step = "segment";
    if (!segment_from) return PL_FAIL(PL_ERR_FORMAT, "%s: no label mask and no nucleus channel to segment cells from", id);
    if (!(pixel_size_um > 0))
        return PL_FAIL(PL_ERR_ARG, "%s: the built-in nucleus segmentation needs the pixel size (pixel_size_um in the "
                       "manifest, --pixel-size, or the model card's pixel_size_um)", id);
    PlSegmentParams sp = cfg->cells.segment;
    sp.pixel_size_um = pixel_size_um;
    if (!pl_segmenter_fits(*segmenter, in->height, in->width, &sp)) {
        pl_segmenter_destroy(*segmenter);
        *segmenter = NULL;
        if (pl_segmenter_create(in->height, in->width, &sp, segmenter) != PL_OK) return pl_error_wrap("%s", id);
    }
    const float *plane = NULL;
    PL_TRY(cells_segment_plane(cfg, id, in, segment_from, res, &plane));
    if (pl_segmenter_run(*segmenter, plane, w->labels, NULL) != PL_OK)
        return pl_error_wrap("%s: segmenting role %s", id, segment_from->role);
    res->failed_step = NULL;
    return PL_OK;
}

// Step 6: normalise crop (S*S values) of a source plane in place, as model slot `slot`.
static PlStatus cells_normalise(const PlPrepConfig *cfg, const PlPrepPlanes *in, int role, int slot, float *crop,
                                size_t n, float *scratch) {
    PlChannelStats st;
    PL_TRY(pl_norm_stats(&cfg->norm, crop, n, in->bits[role], in->is_float[role], scratch, &st));
    double shift, scale;
    pl_norm_affine(&cfg->norm, &st, slot, &shift, &scale);
    pl_norm_apply(crop, n, st.lo, st.hi, shift, scale, crop);
    return PL_OK;
}

PlStatus pl_prep_cells(const PlPrepConfig *cfg, const char *item_id, double pixel_size_um,
                       const PlChannelSource *sources, int n_sources, const char *mask_ref,
                       const PlChannelSource *segment_from, PlSegmenter **segmenter, PlPrepResult *res) {
    const char *id = item_id ? item_id : "(item)";
    res->n_tiles = 0;
    res->failed_step = NULL;
    PlPrepPlanes in;
    PL_TRY(pl_prep_decode(cfg, id, sources, n_sources, res, &in));   // 1. decode
    if (pl_align_plan(&cfg->align, in.roles, in.n, item_id, &res->plan) != PL_OK) return pl_error_wrap("%s", id);
    PlPrepWork *w = res->work;
    PL_TRY(cells_labels(cfg, id, pixel_size_um, &in, mask_ref, segment_from, segmenter, res));   // 2. labels
    PlCellSet *set = &res->cells;
    if (pl_cells_measure(w->labels, in.height, in.width, cfg->cells.min_area, set) != PL_OK)   // 3. measure
        return pl_error_wrap("%s", id);
    const float *scaled[PL_ALIGN_MAX_ROLES];
    PL_TRY(pl_prep_rescale(cfg, id, pixel_size_um, &in, res, scaled));   // 4. rescale planes and cells
    const int H = res->height, W = res->width;
    if ((H != in.height || W != in.width) &&
        pl_cells_rescale(set, (double)H / in.height, (double)W / in.width) != PL_OK)
        return pl_error_wrap("%s", id);
    // 5. crop side at the rescaled pixel size: the model's when rescaled, else the source's
    double px = H != in.height || W != in.width ? cfg->model_pixel_um : pixel_size_um;
    int side = 0;
    if (pl_cells_crop_side(cfg->cells.crop_px, cfg->cells.crop_um, px, &side) != PL_OK ||
        pl_cells_place(set, H, W, side, cfg->cells.border) != PL_OK)
        return pl_error_wrap("%s", id);
    if (set->count == 0)
        return PL_FAIL(PL_ERR_EMPTY, "%s: no cells found (%s)", id, mask_ref ? mask_ref : "built-in segmentation");
    const int V = res->plan.n_views, S = res->plan.n_slots, n = set->count;
    PL_TRY(pl_prep_reserve_output(res, id, V, n, S, side, side, "cell"));
    size_t crop = (size_t)side * (size_t)side;
    size_t sbytes = pl_norm_scratch_bytes(&cfg->norm, crop);
    if (sbytes) PL_TRY(pl_grow((void **)&w->scratch, &w->scratch_cap, crop, sizeof(float)));
    for (int v = 0; v < V; v++) {
        const float *planes[PL_ALIGN_MAX_SLOTS];
        for (int s = 0; s < S; s++) planes[s] = res->plan.src[v][s] < 0 ? NULL : scaled[res->plan.src[v][s]];
        float *out = res->data + (size_t)v * n * S * crop;   // (n, S, side, side)
        PL_TRY(pl_cells_crop(planes, S, H, W, set, 0, n, side, out));
        for (int c = 0; c < n; c++)   // 6. every crop standardised on its own
            for (int s = 0; s < S; s++) {
                int r = res->plan.src[v][s];
                if (r < 0) continue;   // empty slot: 0
                if (cells_normalise(cfg, &in, r, s, out + ((size_t)c * S + s) * crop, crop, w->scratch) != PL_OK)
                    return pl_error_wrap("%s: cell %d (label %d), role %s", id, c, set->cells[c].label, in.roles[r]);
            }
    }
    res->n_views = V, res->n_tiles = n, res->n_slots = S, res->tile_h = side, res->tile_w = side;
    return PL_OK;
}
