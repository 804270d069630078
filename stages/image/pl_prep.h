// One-call FOV preprocessing for the runner: decode → rescale → normalise → align → tile, into one buffer.
//
// Order of operations (per item), each step documented in its own header:
//   1. decode   every source channel ("file.tif#1" per role) with pl_image_read_reuse (pl_decode.h);
//               all roles must share height × width (error names both files otherwise).
//   2. rescale  each role plane by cfg->scale, or by item pixel size ÷ cfg->model_pixel_um
//               (pl_geometry.h: area average when shrinking, bilinear when enlarging).
//   3. stats    per role plane: percentile clip bounds, mean/std (pl_normalise.h) — on the rescaled plane.
//   4. align    the plan (views × slots → role) for the item's roles (pl_align.h); for `random` the
//               item id seeds the shuffle.
//   5. write    for each view v, tile t, slot s: the tile window of role plan[v][s]'s plane, normalised
//               with that role's stats and slot s's affine map (fixed mode uses per-slot mean/std);
//               empty slots and padding are 0 in normalised units.
// Output layout: data (n_views * n_tiles, n_slots, tile_h, tile_w) float32, index = v * n_tiles + t
// (view-major: with `replicate` the embeddings of view v are concatenated in role order); tiles[t]
// gives the top-left (y, x) in the RESCALED image (divide by `scale` for source pixels).
//
// Buffers: a PlPrepResult owns all its memory (output, decoded and rescaled planes, scratch) and reuses
// it across calls: allocate one per worker thread, call pl_prep_fov for every item, free once with
// pl_prep_result_free. Steady state performs no allocation when sizes repeat.
// Thread safety: distinct PlPrepResult per thread; cfg is read-only.
#ifndef PL_PREP_H
#define PL_PREP_H

#include <stddef.h>
#include "pl_align.h"
#include "pl_cells.h"
#include "pl_decode.h"
#include "pl_error.h"
#include "pl_geometry.h"
#include "pl_image.h"
#include "pl_normalise.h"
#include "pl_segment.h"

// The default geometry of the levels, defined once for the stages and every command (`run`, `finetune`,
// pl_card_prep.h): tile side and single-cell crop side in pixels of the rescaled image, smallest cell in pixels of
// the source-resolution label image.
#define PL_PREP_TILE_DEFAULT 224
#define PL_PREP_CROP_DEFAULT 224
#define PL_PREP_MIN_CELL_AREA_DEFAULT 50
// The defaults as string literals, for help texts.
#define PL_PREP_TEXT_(x) #x
#define PL_PREP_TEXT(x) PL_PREP_TEXT_(x)
#define PL_PREP_TILE_DEFAULT_TEXT PL_PREP_TEXT(PL_PREP_TILE_DEFAULT)
#define PL_PREP_CROP_DEFAULT_TEXT PL_PREP_TEXT(PL_PREP_CROP_DEFAULT)
#define PL_PREP_MIN_CELL_AREA_DEFAULT_TEXT PL_PREP_TEXT(PL_PREP_MIN_CELL_AREA_DEFAULT)

// Single-cell crops (pl_prep_cells): crop size and border policy, smallest cell, and the built-in segmentation
// used for items without a label mask.
typedef struct PlCellSpec {
    int crop_px;              // crop side in pixels of the rescaled image; > 0 wins over crop_um
    double crop_um;           // crop side in µm (needs a known pixel size)
    PlCellBorder border;      // skip | pad | shift
    int64_t min_area;         // smallest object kept, in pixels of the source-resolution label image
    PlSegmentParams segment;  // pixel_size_um is replaced by the item's source pixel size
} PlCellSpec;

typedef struct PlPrepConfig {
    PlDecodeLimits limits;
    PlAlignSpec align;        // model slots + strategy (+ mapping / fills / seed)
    PlNormSpec norm;
    double scale;             // explicit rescale factor (> 0) wins; 0 = from pixel sizes
    double model_pixel_um;    // model card pixel_size_um; 0 = no physical rescaling
    PlFovSpec fov;
    int max_side;             // limit on the rescaled image side (default 32768 when 0)
    PlCellSpec cells;         // pl_prep_cells only
} PlPrepConfig;

// A channel of the item: the role it plays and the image reference ("path#k").
typedef struct PlChannelSource {
    const char *role;
    const char *ref;
} PlChannelSource;

typedef struct PlPrepWork PlPrepWork;   // private reusable buffers

typedef struct PlPrepResult {
    float *data;              // (n_views * n_tiles, n_slots, tile_h, tile_w)
    size_t data_capacity;     // floats
    PlTile *tiles;            // (n_tiles)
    int tiles_capacity;
    int n_views, n_tiles, n_slots, tile_h, tile_w;
    int src_height, src_width;   // decoded size
    int height, width;           // rescaled size
    double scale;                // applied factor (rescaled / source)
    PlAlignPlan plan;
    PlCellSet cells;             // pl_prep_cells: each cell's label, centroid and area in the rescaled image, crop origin
    const char *failed_step;     // after a failure: "decode", "mask" or "segment" when that step failed, else NULL
    PlPrepWork *work;
} PlPrepResult;

// Defaults: limits default, norm self, scale 0, model_pixel_um 0, fov whole with patch 16 (tiles of
// PL_PREP_TILE_DEFAULT), align strategy map on `slots_csv` (e.g. "protein,nucleus,microtubules,er"); cells:
// PL_PREP_CROP_DEFAULT px crops, border shift, min area PL_PREP_MIN_CELL_AREA_DEFAULT px, default segmentation
// parameters.
PlStatus pl_prep_config_default(PlPrepConfig *cfg, const char *slots_csv);
// Validate the whole configuration once (normalisation vs slot count, FOV spec).
PlStatus pl_prep_config_validate(const PlPrepConfig *cfg);

// Decode and preprocess one item. `item_id` names the item in errors and seeds `random`;
// `pixel_size_um` is the item's source pixel size (0 = unknown → no physical rescale).
// On failure the result holds no valid data (n_tiles = 0) but keeps its buffers.
PlStatus pl_prep_fov(const PlPrepConfig *cfg, const char *item_id, double pixel_size_um,
                     const PlChannelSource *sources, int n_sources, PlPrepResult *res);

// Same from already-decoded planes (for cell crops and tests): `planes[r]` is (height, width) for role
// roles[r], from a source of `bits[r]` depth (`is_float[r]`).
PlStatus pl_prep_planes(const PlPrepConfig *cfg, const char *item_id, double pixel_size_um,
                        const char *const *roles, const float *const *planes, const int *bits, const int *is_float,
                        int n_roles, int height, int width, PlPrepResult *res);

// Single-cell crops of one item, every step a stage function (docs/stages.md, "Cells"):
//   1. decode every source channel (as pl_prep_fov; all the same size);
//   2. labels at source resolution: the label mask `mask_ref` (pl_cells_read_mask: exactly the channels' size,
//      integer samples) or, when mask_ref is NULL, the built-in nucleus segmentation (pl_segment.h) of the channel
//      `segment_from` (one of the sources, or decoded on its own; same size) with *segmenter, which is created on
//      first use and re-created only when the image size or the parameters change (the caller owns it: one per
//      worker thread, pl_segmenter_destroy at the end); the segmentation needs the item's pixel size;
//   3. cells measured on the labels (pl_cells_measure, cfg->cells.min_area);
//   4. the planes rescaled as pl_prep_fov does (factor or µm/px) and the cells mapped into the rescaled image
//      (pl_cells_rescale);
//   5. the crop side from cfg->cells (pixels of the rescaled image, or µm at the rescaled pixel size), the crop
//      origins by the border policy (pl_cells_place), and each view's slots cut out (pl_cells_crop; pixels
//      outside the image are 0);
//   6. each crop normalised on its own, channel by channel (pl_norm_stats / pl_norm_affine / pl_norm_apply over
//      the S x S crop, as DINO4Cells standardises each single-cell image); empty slots stay 0.
// Output: data (n_views * n_tiles, n_slots, S, S), view-major, n_tiles = number of cells; tile_h = tile_w = S;
// res->cells lists the cells in label order. No cell → PL_ERR_EMPTY.
PlStatus pl_prep_cells(const PlPrepConfig *cfg, const char *item_id, double pixel_size_um,
                       const PlChannelSource *sources, int n_sources, const char *mask_ref,
                       const PlChannelSource *segment_from, PlSegmenter **segmenter, PlPrepResult *res);

void pl_prep_result_free(PlPrepResult *res);

#endif
