// Private to the preprocessing compositions (pl_prep.c: fields of view and tiles, pl_prep_cells.c: cell crops):
// the reusable work buffers of a PlPrepResult and the decode and rescale steps both compositions share.
#ifndef PL_PREP_PRIV_H
#define PL_PREP_PRIV_H

#include "pl_prep.h"

struct PlPrepWork {
    PlImage decoded[PL_ALIGN_MAX_ROLES];   // one per role (reused)
    float *scaled;                         // (n_roles, height, width) rescaled planes
    size_t scaled_cap;
    float *scratch;                        // normalisation scratch (percentiles)
    size_t scratch_cap;
    PlResizeWork resize;
    int32_t *labels;                       // cells: (H, W) source-resolution label image
    size_t labels_cap;
    PlImage segment_img;                   // cells: the channel to segment when it is not a model input
};

// The decoded planes of an item (step 1 of both compositions).
typedef struct PlPrepPlanes {
    const char *roles[PL_ALIGN_MAX_ROLES];
    const float *planes[PL_ALIGN_MAX_ROLES];   // (height, width) each
    int bits[PL_ALIGN_MAX_ROLES], is_float[PL_ALIGN_MAX_ROLES];
    int n, height, width;
} PlPrepPlanes;

PlStatus pl_prep_work_ensure(PlPrepResult *res);
// Decode every source into res->work->decoded (same size required; errors name the item and roles).
PlStatus pl_prep_decode(const PlPrepConfig *cfg, const char *id, const PlChannelSource *sources, int n_sources,
                        PlPrepResult *res, PlPrepPlanes *out);
// Rescale the planes by cfg->scale or the pixel sizes into res->work->scaled (or point at the inputs when the
// factor is 1); sets res->src_height/width, height/width and scale. scaled[r] (height', width') on return.
PlStatus pl_prep_rescale(const PlPrepConfig *cfg, const char *id, double pixel_size_um, const PlPrepPlanes *in,
                         PlPrepResult *res, const float **scaled);
// Make res->data hold (views * n, slots, h, w) floats; more than 2^30 values for one item is PL_ERR_LIMIT.
PlStatus pl_prep_reserve_output(PlPrepResult *res, const char *id, int views, int n, int slots, int h, int w,
                                const char *what);

#endif
