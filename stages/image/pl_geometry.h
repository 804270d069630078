// Geometry: rescaling (area average when shrinking, bilinear when enlarging) and FOV layouts (whole/tiles/center).
//
// Rescaling is separable, per axis: out < in → area averaging (each output pixel is the overlap-weighted
// mean of the input pixels its footprint [o*in/out, (o+1)*in/out) covers, like OpenCV INTER_AREA);
// out > in → bilinear with half-pixel centres, src = (o + 0.5) * in/out - 0.5 clamped to the border
// (PyTorch interpolate(mode="bilinear", align_corners=False) given an output size); out == in → copy.
// Physical rescaling: factor = source µm/px ÷ model µm/px (OpenCell 0.206 → HPA 0.08: ×2.575);
// output size = round(in * factor), at least 1.
//
// FOV modes produce tiles (top-left y, x in the rescaled image, possibly negative = padded):
//   whole   one tile: the image centre-cropped to the largest multiple of `patch` per side.
//   tiles   size × size tiles every `stride` pixels, row-major; leftover at the bottom/right border:
//           drop (no partial tiles), pad (one more tile, zero-padded), shift (one more tile moved inside
//           so it ends at the border). Images smaller than a tile: drop → no tiles (error), pad/shift → one
//           zero-padded tile at (0, 0).
//   center  one size × size tile centred on the image (zero-padded when the image is smaller).
// Padding is 0 in NORMALISED units (pl_prep extracts tiles after normalisation).
// Ownership: PlResizeWork owns its buffers (pl_resize_work_free); others are value types.
#ifndef PL_GEOMETRY_H
#define PL_GEOMETRY_H

#include <stddef.h>
#include "pl_error.h"

// Output size for a rescale factor (> 0); PL_ERR_LIMIT above max_side.
PlStatus pl_resize_size(int height, int width, double factor, int max_side, int *out_height, int *out_width);
// Rescale factor from pixel sizes (µm/px); 1.0 when either is <= 0.
double pl_resize_factor_from_pixel_size(double source_um, double model_um);

// Reusable weight tables and row buffer for pl_resize (grow-only; no allocation in steady state).
typedef struct PlResizeWork {
    int in_h, in_w, out_h, out_w;            // geometry the tables were built for
    int *x_start, *x_count, *y_start, *y_count;
    float *x_weight, *y_weight;              // (out, max_taps) per axis
    int x_taps, y_taps;
    float *tmp;                              // (in_h, out_w) horizontal pass
    size_t tmp_cap, xcap, ycap;
} PlResizeWork;

// Resize one plane (in_h, in_w) → (out_h, out_w). `work` zero-initialised before first use.
PlStatus pl_resize_plane(PlResizeWork *work, const float *src, int in_h, int in_w, float *dst, int out_h, int out_w);
void pl_resize_work_free(PlResizeWork *work);

typedef enum PlFovMode { PL_FOV_WHOLE = 0, PL_FOV_TILES = 1, PL_FOV_CENTER = 2 } PlFovMode;
typedef enum PlTileBorder { PL_BORDER_DROP = 0, PL_BORDER_PAD = 1, PL_BORDER_SHIFT = 2 } PlTileBorder;

typedef struct PlFovSpec {
    PlFovMode mode;
    int size;             // tiles / center: tile side in pixels
    int stride;           // tiles: step (default = size)
    PlTileBorder border;  // tiles
    int patch;            // whole: crop to a multiple of this (ViT patch, e.g. 16)
} PlFovSpec;

typedef struct PlTile {
    int y, x;             // top-left corner in the (rescaled) image; may be negative for padded center tiles
} PlTile;

PlStatus pl_fov_mode_parse(const char *name, PlFovMode *out);            // whole | tiles | center
PlStatus pl_tile_border_parse(const char *name, PlTileBorder *out);      // drop | pad | shift
const char *pl_fov_mode_name(PlFovMode m);
PlStatus pl_fov_spec_validate(const PlFovSpec *spec);

// Lay out tiles for an image of (height, width): tile size in *tile_h × *tile_w, positions in `tiles`
// (capacity max_tiles; *n_tiles is set even when it exceeds max_tiles, then PL_ERR_LIMIT is returned,
// so call once with max_tiles = 0 to size the array). No tiles → PL_ERR_EMPTY naming the sizes.
PlStatus pl_fov_layout(const PlFovSpec *spec, int height, int width, int *tile_h, int *tile_w, PlTile *tiles,
                       int max_tiles, int *n_tiles);

// Copy the window at `t` of a plane (height, width) into dst (tile_h, tile_w); outside pixels = pad.
void pl_tile_extract(const float *src, int height, int width, PlTile t, int tile_h, int tile_w, float pad, float *dst);

#endif
