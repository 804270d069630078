// Built-in nucleus segmentation of a nucleus (Hoechst/DAPI) channel into a label image.
//
// Algorithm (libvips-like stage: validate in create, compute in run, free in destroy):
//   1. Gaussian smoothing (sigma in µm, separable, replicated borders).
//   2. Otsu threshold on a 4096-bin histogram of the smoothed image.
//   3. "Is anything there?" rule: the noise level sigma_n is estimated from the RAW image as
//      1.4826 * median(|I(y,x+1) - I(y,x)|) / sqrt(2) (insensitive to smooth structure). When the Otsu
//      classes of the smoothed image differ by less than min_contrast * sigma_n (default 5), the image is
//      declared empty: zero nuclei (noise alone gives a class difference of ~0.2 sigma_n after smoothing).
//   4. Enclosed background holes smaller than max_hole_um2 are filled (dark nucleoli).
//   5. Exact Euclidean distance transform of the foreground; marker-free watershed on the distance
//      transform where a basin survives only when its dynamics (peak distance minus the distance at which
//      it meets a higher basin) is at least split_h_um: this splits touching round nuclei at their necks
//      and leaves single (also elongated) nuclei whole. split_h_um = 0 disables splitting (plain connected
//      components, 8-connected).
//   6. Objects outside [min_area_um2, max_area_um2] are removed; objects touching the image border are
//      removed when exclude_border is set. Labels are renumbered 1..N in raster order of first pixel.
//
// Ownership: a PlSegmenter owns one slab of work buffers sized for (height, width); reuse it for many
// images of that size (no allocation in pl_segmenter_run). Not thread-safe: one segmenter per thread.
#ifndef PL_SEGMENT_H
#define PL_SEGMENT_H

#include <stdint.h>
#include "pl_error.h"

typedef struct PlSegmentParams {
    double pixel_size_um;   // µm per pixel (default 0.206, OpenCell)
    double sigma_um;        // Gaussian smoothing sigma in µm (default 0.5)
    double min_area_um2;    // smallest nucleus kept, µm² (default 20)
    double max_area_um2;    // largest object kept, µm² (default 1500)
    double max_hole_um2;    // enclosed background holes up to this size are filled, µm² (default 100)
    double split_h_um;      // watershed dynamics needed to split touching nuclei, µm (default 1.0; 0 = off)
    double min_contrast;    // foreground - background class means, in noise sigmas (default 5)
    int exclude_border;     // drop objects touching the image border (default 1)
} PlSegmentParams;

typedef struct PlSegmentStats {
    int count;              // nuclei in the label image
    double threshold;       // Otsu threshold on the smoothed image (raw intensity units)
    double background;      // mean of the smoothed background class
    double foreground;      // mean of the smoothed foreground class
    double noise_sigma;     // estimated per-pixel noise sigma of the raw image
    double contrast;        // (foreground - background) / noise_sigma (HUGE_VAL when noise is 0)
    int empty;              // 1 when the contrast rule declared the image empty
    int removed_small;      // objects removed by the size filter (below min area)
    int removed_large;      // objects removed by the size filter (above max area)
    int removed_border;     // objects removed for touching the border
} PlSegmentStats;

typedef struct PlSegmenter PlSegmenter;

void pl_segment_params_default(PlSegmentParams *p);
// Validate parameters and allocate work buffers for (height, width) images.
PlStatus pl_segmenter_create(int height, int width, const PlSegmentParams *params, PlSegmenter **out);
// Segment `plane` (H, W) raw intensities into `labels` (H, W): 0 = background, 1..N nuclei.
// NaN/Inf in the input → PL_ERR_NUMERIC. `stats` may be NULL.
PlStatus pl_segmenter_run(PlSegmenter *s, const float *plane, int32_t *labels, PlSegmentStats *stats);
void pl_segmenter_destroy(PlSegmenter *s);
// Was s created for (height, width) images with exactly these parameters (so that it can be reused)?
int pl_segmenter_fits(const PlSegmenter *s, int height, int width, const PlSegmentParams *params);

// One-shot convenience: create, run, destroy.
PlStatus pl_segment_nuclei(const float *plane, int height, int width, const PlSegmentParams *params,
                           int32_t *labels, PlSegmentStats *stats);

#endif
