// Seeded training augmentations of one image (DINO4Cells' end-to-end recipe): random resized crop (area scale
// 0.4-1, aspect 3/4-4/3, torchvision's sampling with 10 tries and a centre-crop fallback, bilinear resize back to the
// model input), horizontal and vertical flips (p 0.5 each), a random multiple of 90 degrees (square inputs only),
// per-channel brightness and contrast factors ~ N(1, 0.5) clipped at >= 0.5, then per-image per-channel
// standardisation (x - mean) / (population std + 1e-7). A pure function of the 64-bit key (seed, epoch, item).
// No allocation: the caller passes a scratch buffer of C*H*W floats.
#ifndef PL_TRAIN_AUGMENT_H
#define PL_TRAIN_AUGMENT_H

#include <stdint.h>

#include "pl_rng.h"

typedef struct PlAugmentOptions {
    double scale_min, scale_max;   // 0.4, 1
    int flips, rot90, jitter;      // 1, 1, 1
} PlAugmentOptions;

void pl_augment_options_default(PlAugmentOptions *o);
// src (C, H, W) -> dst (C, H, W); scratch: C*H*W floats. src and dst must not overlap.
void pl_augment_image(const PlAugmentOptions *o, uint64_t key, const float *src, int C, int H, int W, float *dst,
                      float *scratch);
// The random resized crop's box in an (H, W) image, drawn from r as torchvision's RandomResizedCrop.get_params:
// up to 10 attempts, each drawing an area fraction uniform in [scale_min, scale_max] and an aspect ratio w / h
// log-uniform in [3/4, 4/3] (two draws), w = round(sqrt(area ratio)), h = round(sqrt(area / ratio)); the first box
// with 0 < w <= W and 0 < h <= H is placed uniformly (top then left, one draw each). When none fits: the centre crop
// of the whole image with its aspect ratio clamped to [3/4, 4/3] (no draws). Returns the attempt that fitted (1-10),
// or 0 for the fallback. pl_augment_image draws its crop with it, first from the key's stream.
int pl_augment_crop_box(PlRng *r, const PlAugmentOptions *o, int H, int W, int *top, int *left, int *h, int *w);
// One channel, exactly (values are moved, never computed), src and dst (H, W): `rot` quarter turns counter-clockwise
// as np.rot90 / torch.rot90 over (H, W) (one turn: out[y][x] = in[x][W-1-y]), then the flips: hflip mirrors
// left-right (out[y][x] = in[y][W-1-x]), vflip top-bottom (out[y][x] = in[H-1-y][x]). rot (0-3) must be 0 unless
// H == W. src and dst must not overlap.
void pl_augment_flip_rotate(const float *src, int H, int W, int hflip, int vflip, int rot, float *dst);
// In place: (x - mean) / (population std + 1e-7) per channel of x (C, H, W).
void pl_standardise_channels(float *x, int C, int H, int W);

#endif
