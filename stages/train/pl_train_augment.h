// Seeded training augmentations of one image (DINO4Cells' end-to-end recipe): random resized crop (area scale
// 0.4-1, aspect 3/4-4/3, torchvision's sampling with 10 tries and a centre-crop fallback, bilinear resize back to the
// model input), horizontal and vertical flips (p 0.5 each), a random multiple of 90 degrees (square inputs only),
// per-channel brightness and contrast factors ~ N(1, 0.5) clipped at >= 0.5, then per-image per-channel
// standardisation (x - mean) / (population std + 1e-7). A pure function of the 64-bit key (seed, epoch, item).
// No allocation: the caller passes a scratch buffer of C*H*W floats.
#ifndef PL_TRAIN_AUGMENT_H
#define PL_TRAIN_AUGMENT_H

#include <stdint.h>

typedef struct PlAugmentOptions {
    double scale_min, scale_max;   // 0.4, 1
    int flips, rot90, jitter;      // 1, 1, 1
} PlAugmentOptions;

void pl_augment_options_default(PlAugmentOptions *o);
// src (C, H, W) -> dst (C, H, W); scratch: C*H*W floats. src and dst must not overlap.
void pl_augment_image(const PlAugmentOptions *o, uint64_t key, const float *src, int C, int H, int W, float *dst,
                      float *scratch);
// In place: (x - mean) / (population std + 1e-7) per channel of x (C, H, W).
void pl_standardise_channels(float *x, int C, int H, int W);

#endif
