// DINO's multi-crop augmentation (main_dino.py DataAugmentationDINO) for multi-channel float microscopy: 2 global and
// N local views of one source image, each a pure function of (key, view index).
//
// Per view, in DINO's order (view 0 = global 1, view 1 = global 2, views 2 .. N+1 = the locals):
//   1. crop box: pl_augment_crop_box (torchvision's RandomResizedCrop.get_params; area scale 0.4-1 global, 0.05-0.4
//      local, aspect 3/4-4/3, 10 tries then the centre crop);
//   2. resize of the crop to S x S (224 global, 96 local) by bicubic interpolation as torch's
//      F.interpolate(mode='bicubic', align_corners=False, antialias=False) computes it on the cropped tensor: source
//      coordinate scale * (i + 0.5) - 0.5 with scale = crop size / S (not clamped), Keys' cubic with a = -0.75,
//      indices clamped to the crop (border replicate), rows first then columns. DINO resizes PIL images, whose
//      bicubic is antialiased when shrinking (its support widens by the scale); protloc follows torch's tensor path
//      (torchvision's tensor resize, antialias off by default before torchvision 0.17) because microscopy views are
//      float (C, H, W) tensors of any channel count, which PIL cannot hold (8-bit, at most 4 bands) without
//      quantising. A documented choice: shrinking a 512-pixel crop to 224 therefore aliases as torch's does.
//      Coordinates and weights are computed in double, the sums in float;
//   3. horizontal flip p 0.5 (DINO), then vertical flip p 0.5 and a random multiple of 90 degrees (a protloc
//      extension for microscopy, which has no up or down; on by default, `vflip_rot90`), through
//      pl_augment_flip_rotate;
//   4. DINO's ColorJitter(0.4, 0.4, 0.2, 0.1) applied with p 0.8: brightness factor b and contrast factor k uniform
//      in [1 - 0.4, 1 + 0.4]; brightness multiplies, contrast blends with the mean as torchvision's adjust_contrast:
//      out = k x + (1 - k) mean. Microscopy (rgb off): each channel draws its own b and k and uses its own mean
//      (channels are independent stains, not colours). RGB (rgb on and C == 3): one b, k and saturation factor s in
//      [0.8, 1.2] for the image, contrast's mean is the mean of the luma image, saturation blends with the per-pixel
//      luma (out = s x + (1 - s) L). Nothing is clamped (float data has no [0, 1] range), and without clamping these
//      operations commute, so ColorJitter's random order is not drawn. Hue (0.1) is not implemented: it needs an
//      HSV round trip defined only on [0, 1] colours, and it does not commute with the others;
//   5. RGB only: RandomGrayscale p 0.2: every channel becomes the luma L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2,
//      PIL's "L" mode, not rounded);
//   6. Gaussian blur with DINO's per-view probabilities (1.0 global 1, 0.1 global 2, 0.5 locals), sigma uniform in
//      [0.1, 2.0] output pixels (utils.GaussianBlur passes it as PIL's radius, which is the standard deviation):
//      an exact separable Gaussian, weights exp(-j^2 / (2 sigma^2)) for |j| <= R = max(1, ceil(3 sigma)) normalised
//      to sum 1 (PIL approximates the Gaussian by three box blurs of the same variance), border replicate (as PIL's
//      box blur), each channel alone. The kernel's width matches PIL's for sigma >= 1; below about 0.7 a sampled
//      Gaussian is narrower than sigma (std 0.46 at sigma 0.5, near the identity at 0.3) while PIL's boxes keep it;
//   7. RGB only, global 2 only: Solarization p 0.2: PIL's ImageOps.solarize inverts 8-bit values >= 128; on
//      [0, 1]-scaled RGB the 8-bit value rounds to >= 128 exactly when x >= 0.5, so x >= 0.5 becomes 1 - x.
// No normalisation: views come out in the source's units, and the caller standardises each view as fine-tuning does
// (pl_standardise_channels) or normalises as its card says. With rgb set but C != 3 the RGB-only steps are off.
//
// Randomness: view v draws from pl_rng_seed(pl_rng_mix(key, v)) (the key is the caller's mix of seed, epoch and item):
// the crop box, then hflip, vflip, rot, jitter, grayscale, blur, sigma, solarize (each always drawn, used when its
// option applies), then a jitter key; channel c's factors (b, k, then s in RGB mode from channel 0's stream) come
// from pl_rng_seed(pl_rng_mix(jitter key, c)). The same key gives the same views bit for bit on any thread.
// No allocation: the caller passes scratch of pl_dino_augment_scratch_floats floats.
#ifndef PL_DINO_AUGMENT_H
#define PL_DINO_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"

typedef struct PlDinoAugmentOptions {
    int global_size, local_size, n_local;        // 224, 96, 8 (square views)
    double global_scale_min, global_scale_max;   // 0.4, 1 (DINO's --global_crops_scale)
    double local_scale_min, local_scale_max;     // 0.05, 0.4 (DINO's --local_crops_scale)
    double hflip_p;                              // 0.5
    int vflip_rot90;                             // 1: vertical flip p 0.5 and k * 90 degrees, k uniform in 0-3
    double jitter_p, brightness, contrast;       // 0.8, 0.4, 0.4
    double saturation;                           // 0.2 (RGB only)
    double blur_p[3];                            // global 1, global 2, locals: 1.0, 0.1, 0.5
    double blur_sigma_min, blur_sigma_max;       // 0.1, 2.0
    double grayscale_p, solarize_p;              // 0.2, 0.2 (RGB only; solarization on global 2 only)
} PlDinoAugmentOptions;

// What one view drew (pl_dino_augment_view_params): the transformations pl_dino_augment_view applies.
typedef struct PlDinoViewParams {
    int size;                       // S
    int top, left, h, w, attempt;   // crop box; attempt 1-10, 0 = centre-crop fallback
    int hflip, vflip, rot;
    int jitter, grayscale, blur, solarize;   // grayscale and solarize already 0 when the RGB steps are off
    double sigma;                   // blur's sigma (drawn even when blur is 0)
    uint64_t jitter_key;
} PlDinoViewParams;

void pl_dino_augment_options_default(PlDinoAugmentOptions *o);
// PL_ERR_ARG unless sizes >= 1, n_local >= 0, 0 < scale_min <= scale_max, probabilities in [0, 1], 0 <= brightness,
// contrast, saturation < 1 and 0 < sigma_min <= sigma_max <= 100.
PlStatus pl_dino_augment_options_check(const PlDinoAugmentOptions *o);
// Floats of scratch for pl_dino_augment_views / pl_dino_augment_view on (C, H, W) sources.
size_t pl_dino_augment_scratch_floats(const PlDinoAugmentOptions *o, int C, int H, int W);

// The draws of view `view` (0 .. 1 + n_local) of an (H, W) source; rgb: the RGB-only steps apply (rgb && C == 3).
void pl_dino_augment_view_params(const PlDinoAugmentOptions *o, uint64_t key, int view, int H, int W, int rgb,
                                 PlDinoViewParams *p);
// Channel c's jitter factors: brightness, contrast and (RGB mode, from channel 0) saturation.
void pl_dino_augment_jitter_factors(const PlDinoAugmentOptions *o, uint64_t jitter_key, int c, double *brightness,
                                    double *contrast, double *saturation);
// One view: src (C, H, W) -> out (C, S, S), S = the view's size.
void pl_dino_augment_view(const PlDinoAugmentOptions *o, uint64_t key, int view, const float *src, int C, int H, int W,
                          int rgb, float *out, float *scratch);
// All views: global (2, C, G, G), local (n_local, C, L, L) (NULL when n_local is 0).
void pl_dino_augment_views(const PlDinoAugmentOptions *o, uint64_t key, const float *src, int C, int H, int W, int rgb,
                           float *global, float *local, float *scratch);

// The building blocks, one channel each.
// Crop (top, left, ch, cw) of src (rows of `stride` floats) -> dst (S, S), bicubic as above; scratch: ch*S + 10*S.
void pl_dino_resize_bicubic(const float *src, int stride, int top, int left, int ch, int cw, int S, float *dst,
                            float *scratch);
// In place on x (H, W): the Gaussian blur above; scratch: H*W + 2*R + 1 floats (R = max(1, ceil(3 sigma))).
void pl_dino_gaussian_blur(float *x, int H, int W, double sigma, float *scratch);
int pl_dino_blur_radius(double sigma);

#endif
