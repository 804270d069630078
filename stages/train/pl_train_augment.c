// Seeded training augmentations (see pl_train_augment.h).
#include "pl_train_augment.h"

#include <math.h>
#include <string.h>

#include "pl_rng.h"

void pl_augment_options_default(PlAugmentOptions *o) {
    o->scale_min = 0.4;
    o->scale_max = 1.0;
    o->flips = o->rot90 = o->jitter = 1;
}

void pl_standardise_channels(float *x, int C, int H, int W) {
    size_t n = (size_t)H * W;
    for (int c = 0; c < C; c++) {
        float *p = x + (size_t)c * n;
        double s = 0.0, ss = 0.0;
        for (size_t i = 0; i < n; i++) s += p[i];
        double mean = s / (double)n;
        for (size_t i = 0; i < n; i++) ss += ((double)p[i] - mean) * ((double)p[i] - mean);
        float inv = (float)(1.0 / (sqrt(ss / (double)n) + 1e-7)), m = (float)mean;
        for (size_t i = 0; i < n; i++) p[i] = (p[i] - m) * inv;
    }
}

// torchvision RandomResizedCrop.get_params: (top, left, h, w) of the crop.
int pl_augment_crop_box(PlRng *r, const PlAugmentOptions *o, int H, int W, int *top, int *left, int *ch, int *cw) {
    double area = (double)H * W, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (o->scale_min + (o->scale_max - o->scale_min) * pl_rng_uniform(r));
        double ratio = exp(lr0 + (lr1 - lr0) * pl_rng_uniform(r));
        int w = (int)lround(sqrt(target * ratio)), h = (int)lround(sqrt(target / ratio));
        if (w > 0 && h > 0 && w <= W && h <= H) {
            *top = (int)pl_rng_below(r, H - h + 1);
            *left = (int)pl_rng_below(r, W - w + 1);
            *ch = h;
            *cw = w;
            return attempt + 1;
        }
    }
    double in_ratio = (double)W / H;   // fallback: centre crop at the clamped aspect ratio
    int w = W, h = H;
    if (in_ratio < 3.0 / 4.0)
        h = (int)lround(w / (3.0 / 4.0));
    else if (in_ratio > 4.0 / 3.0)
        w = (int)lround(h * (4.0 / 3.0));
    *ch = h < H ? h : H;
    *cw = w < W ? w : W;
    *top = (H - *ch) / 2;
    *left = (W - *cw) / 2;
    return 0;
}

// Bilinear resize (align_corners=False, no antialias) of crop (top, left, ch, cw) of src (H, W) to dst (H, W).
static void resize_crop(const float *src, int H, int W, int top, int left, int ch, int cw, float *dst) {
    double sy = (double)ch / H, sx = (double)cw / W;
    for (int oy = 0; oy < H; oy++) {
        double fy = (oy + 0.5) * sy - 0.5;
        if (fy < 0) fy = 0;
        int y0 = (int)fy, y1 = y0 + 1 < ch ? y0 + 1 : ch - 1;
        float wy = (float)(fy - y0);
        for (int ox = 0; ox < W; ox++) {
            double fx = (ox + 0.5) * sx - 0.5;
            if (fx < 0) fx = 0;
            int x0 = (int)fx, x1 = x0 + 1 < cw ? x0 + 1 : cw - 1;
            float wx = (float)(fx - x0);
            const float *r0 = src + (size_t)(top + y0) * W + left, *r1 = src + (size_t)(top + y1) * W + left;
            float a = r0[x0] + (r0[x1] - r0[x0]) * wx, b = r1[x0] + (r1[x1] - r1[x0]) * wx;
            dst[(size_t)oy * W + ox] = a + (b - a) * wy;
        }
    }
}

void pl_augment_flip_rotate(const float *src, int H, int W, int hflip, int vflip, int rot, float *dst) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = vflip ? H - 1 - y : y, sx = hflip ? W - 1 - x : x;
            int ry = sy, rx = sx;   // rotate by rot * 90 degrees (square only)
            for (int k = 0; k < rot; k++) {
                int t = ry;
                ry = rx;
                rx = W - 1 - t;
            }
            dst[(size_t)y * W + x] = src[(size_t)ry * W + rx];
        }
}

void pl_augment_image(const PlAugmentOptions *o, uint64_t key, const float *src, int C, int H, int W, float *dst,
                      float *scratch) {
    PlRng r;
    pl_rng_seed(&r, key);
    int top, left, ch, cw;
    pl_augment_crop_box(&r, o, H, W, &top, &left, &ch, &cw);
    int hflip = o->flips && pl_rng_uniform(&r) < 0.5, vflip = o->flips && pl_rng_uniform(&r) < 0.5;
    int rot = o->rot90 && H == W ? (int)pl_rng_below(&r, 4) : 0;
    size_t n = (size_t)H * W;
    for (int c = 0; c < C; c++) {
        float *s = scratch + (size_t)c * n, *d = dst + (size_t)c * n;
        resize_crop(src + (size_t)c * n, H, W, top, left, ch, cw, s);
        pl_augment_flip_rotate(s, H, W, hflip, vflip, rot, d);
        if (o->jitter) {   // DINO4Cells: brightness and contrast factors ~ N(1, 0.5), at least 0.5
            double b = 1.0 + 0.5 * pl_rng_normal(&r), k = 1.0 + 0.5 * pl_rng_normal(&r);
            float fb = (float)(b < 0.5 ? 0.5 : b), fk = (float)(k < 0.5 ? 0.5 : k);
            double mean = 0.0;
            for (size_t i = 0; i < n; i++) mean += d[i];
            float m = (float)(mean / (double)n);
            for (size_t i = 0; i < n; i++) d[i] = ((d[i] - m) * fk + m) * fb;
        }
    }
    pl_standardise_channels(dst, C, H, W);
}
