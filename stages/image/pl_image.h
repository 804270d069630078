// A decoded single- or multi-channel image as planar float32, the common currency of the image stages.
// Ownership: a PlImage owns `data`; pl_image_free releases it. Data layout (C, H, W), row-major.
#ifndef PL_IMAGE_H
#define PL_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"

typedef struct PlImage {
    int channels;
    int height;
    int width;
    int bits;          // source bit depth per sample: 8, 16, 32; for float sources 32 with is_float = 1
    int is_float;      // source samples were floating point
    float *data;       // (channels, height, width) raw sample values (not rescaled)
    size_t capacity;   // floats allocated at `data` (>= channels*height*width); lets readers reuse buffers
} PlImage;

// Allocate a zeroed image. Returns PL_ERR_NOMEM / PL_ERR_LIMIT on failure.
PlStatus pl_image_alloc(PlImage *img, int channels, int height, int width);
void pl_image_free(PlImage *img);
// Make `img` (zeroed, or previously allocated) hold (channels, height, width), reusing its buffer when
// `capacity` suffices; contents are NOT cleared. Returns PL_ERR_NOMEM / PL_ERR_LIMIT / PL_ERR_ARG.
PlStatus pl_image_reshape(PlImage *img, int channels, int height, int width);
// Pointer to channel c: data + c*height*width.
float *pl_image_channel(const PlImage *img, int c);
// Separable convolution of one plane in (H, W) with the symmetric kernel k[-r .. r] (`kc` points at its centre,
// r >= 1) along x, then along y, borders replicated: out (H, W) (may equal in), tmp (H, W) scratch. Each output
// sums its 2r + 1 products in kernel order (the Gaussians of segmentation and of DINO's augmentation).
void pl_image_blur_separable(const float *in, float *out, float *tmp, int H, int W, const float *kc, int r);

#endif
