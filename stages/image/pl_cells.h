// Single-cell crops: measure objects of a label image (centroid, area, label id) and cut fixed-size
// (C, S, S) crops centred on them from a prepared multi-channel image (C, H, W).
//
// Labels come either from a label-mask file named in the manifest (e.g. HPA-Cell-Segmentation output:
// 8/16-bit PNG or TIFF, 0 = background; pl_cells_read_mask) or from the built-in nucleus segmentation
// (pl_segment.h). Typical use by the runner, with every buffer reused across items:
//
//   PlCellSet set = {0};
//   pl_cells_measure(labels, H, W, min_area_px, &set);             // objects in label order
//   pl_cells_place(&set, H, W, S, PL_CELL_BORDER_SHIFT);           // crop origins; SKIP drops cells
//   for (first = 0; first < set.count; first += B)                 // batches of B crops
//       pl_cells_crop(planes, C, H, W, &set, first, n, S, out);    // out (n, C, S, S), planes[c] (H, W)
//   pl_cell_set_free(&set);
//
// Coordinates: cy/cx are the mean row/column of the object's pixels (pixel centres at integers, as
// numpy's mean of np.nonzero). The crop of a cell covers rows y0..y0+S-1 and columns x0..x0+S-1 with
// y0 = round(cy) - S/2 (same for x), before the border policy.
// Ownership: PlCellSet owns its arrays (grown on demand, never shrunk); free with pl_cell_set_free.
#ifndef PL_CELLS_H
#define PL_CELLS_H

#include <stdint.h>
#include "pl_error.h"
#include "pl_image.h"

typedef enum PlCellBorder {
    PL_CELL_BORDER_SKIP = 0,    // drop cells whose crop leaves the image
    PL_CELL_BORDER_PAD = 1,     // keep the centred crop; pixels outside the image are 0
    PL_CELL_BORDER_SHIFT = 2    // move the crop inside the image (the cell is then off-centre)
} PlCellBorder;

typedef struct PlCell {
    int32_t label;      // label id in the label image
    float cy, cx;       // centroid (row, column) in pixels
    int64_t area;       // pixels
    int32_t y0, x0;     // crop origin set by pl_cells_place (may be negative with PAD)
} PlCell;

typedef struct PlCellSet {
    PlCell *cells;      // (count) in increasing label order
    int count;
    int capacity;
    double *acc;        // (acc_capacity * 3) per-label sums of y, x, pixel count
    size_t acc_capacity;
} PlCellSet;

// "skip" | "pad" | "shift" → enum; anything else → PL_ERR_ARG.
PlStatus pl_cell_border_parse(const char *name, PlCellBorder *out);
const char *pl_cell_border_name(PlCellBorder b);

// Crop side in pixels: crop_px when > 0, else round(crop_um / pixel_size_um). Must be 1..8192.
PlStatus pl_cells_crop_side(int crop_px, double crop_um, double pixel_size_um, int *side);

// Convert a decoded single-channel label image to int32 labels (H, W). Values must be integers in
// [0, 2^24); `name` (a file name) is used in error messages.
PlStatus pl_cells_labels_from_image(const PlImage *img, const char *name, int32_t *labels);
// Decode a label-mask reference ("mask.png", "mask.tif#0") and check it is (height, width); labels (H, W).
PlStatus pl_cells_read_mask(const char *ref, int height, int width, int32_t *labels);

// Measure every label > 0 with at least min_area pixels: centroid, area. Replaces set's contents.
PlStatus pl_cells_measure(const int32_t *labels, int height, int width, int64_t min_area, PlCellSet *set);
// Map measured cells into an image resampled by factors (scale_y, scale_x) (e.g. physical rescaling of the FOV
// after measuring on the native-resolution label image): cy' = (cy + 0.5) * scale_y - 0.5 (pixel-centre convention
// of pl_geometry's resampling), area' = round(area * scale_y * scale_x). Call before pl_cells_place.
PlStatus pl_cells_rescale(PlCellSet *set, double scale_y, double scale_x);
// Compute crop origins for crops of side S in an (H, W) image; with SKIP, cells whose crop would leave
// the image are removed from the set (order kept). Fails with PL_ERR_ARG when S exceeds the image with SHIFT.
PlStatus pl_cells_place(PlCellSet *set, int height, int width, int side, PlCellBorder border);
// Copy crops of cells [first, first+n) into out (n, C, S, S); outside pixels are 0. Channel c comes from the
// plane planes[c] (H, W), or is all 0 when planes[c] is NULL (an empty model slot); for a contiguous image
// (C, H, W) pass planes[c] = image + c * H * W.
PlStatus pl_cells_crop(const float *const *planes, int channels, int height, int width, const PlCellSet *set,
                       int first, int n, int side, float *out);

void pl_cell_set_free(PlCellSet *set);

#endif
