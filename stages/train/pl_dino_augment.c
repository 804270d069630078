// DINO's multi-crop augmentation of one microscopy image into global and local views (see pl_dino_augment.h).
#include "pl_dino_augment.h"

#include <math.h>
#include <string.h>

#include "pl_image.h"
#include "pl_rng.h"
#include "pl_train_augment.h"

#define LUMA_R 0.299f
#define LUMA_G 0.587f
#define LUMA_B 0.114f

void pl_dino_augment_options_default(PlDinoAugmentOptions *o) {
    o->global_size = 224;
    o->local_size = 96;
    o->n_local = 8;
    o->global_scale_min = 0.4, o->global_scale_max = 1.0;
    o->local_scale_min = 0.05, o->local_scale_max = 0.4;
    o->hflip_p = 0.5;
    o->vflip_rot90 = 1;
    o->jitter_p = 0.8, o->brightness = 0.4, o->contrast = 0.4, o->saturation = 0.2;
    o->blur_p[0] = 1.0, o->blur_p[1] = 0.1, o->blur_p[2] = 0.5;
    o->blur_sigma_min = 0.1, o->blur_sigma_max = 2.0;
    o->grayscale_p = 0.2, o->solarize_p = 0.2;
}

static int prob_ok(double p) { return p >= 0.0 && p <= 1.0; }

PlStatus pl_dino_augment_options_check(const PlDinoAugmentOptions *o) {
    if (o->global_size < 1 || o->local_size < 1 || o->n_local < 0)
        return PL_FAIL(PL_ERR_ARG, "DINO augmentation: view sizes must be >= 1 and the local count >= 0 (global %d, "
                       "local %d, %d locals)", o->global_size, o->local_size, o->n_local);
    if (!(o->global_scale_min > 0 && o->global_scale_min <= o->global_scale_max && o->local_scale_min > 0 &&
          o->local_scale_min <= o->local_scale_max))
        return PL_FAIL(PL_ERR_ARG, "DINO augmentation: crop scales must satisfy 0 < min <= max (global [%g, %g], "
                       "local [%g, %g])", o->global_scale_min, o->global_scale_max, o->local_scale_min, o->local_scale_max);
    if (!(prob_ok(o->hflip_p) && prob_ok(o->jitter_p) && prob_ok(o->blur_p[0]) && prob_ok(o->blur_p[1]) &&
          prob_ok(o->blur_p[2]) && prob_ok(o->grayscale_p) && prob_ok(o->solarize_p)))
        return PL_FAIL(PL_ERR_ARG, "DINO augmentation: probabilities must lie in [0, 1]");
    if (!(o->brightness >= 0 && o->brightness < 1 && o->contrast >= 0 && o->contrast < 1 && o->saturation >= 0 &&
          o->saturation < 1))
        return PL_FAIL(PL_ERR_ARG, "DINO augmentation: jitter strengths must lie in [0, 1) (brightness %g, contrast "
                       "%g, saturation %g)", o->brightness, o->contrast, o->saturation);
    if (!(o->blur_sigma_min > 0 && o->blur_sigma_min <= o->blur_sigma_max && o->blur_sigma_max <= 100))
        return PL_FAIL(PL_ERR_ARG, "DINO augmentation: blur sigma must satisfy 0 < min <= max <= 100 ([%g, %g])",
                       o->blur_sigma_min, o->blur_sigma_max);
    return PL_OK;
}

int pl_dino_blur_radius(double sigma) {
    int r = (int)ceil(3.0 * sigma);
    return r < 1 ? 1 : r;
}

static int max_size(const PlDinoAugmentOptions *o) {
    return o->n_local > 0 && o->local_size > o->global_size ? o->local_size : o->global_size;
}

// plane (S*S) | blur temp (S*S + 2R + 1) | resize scratch (H*S + 10*S), S the largest view size.
size_t pl_dino_augment_scratch_floats(const PlDinoAugmentOptions *o, int C, int H, int W) {
    size_t S = (size_t)max_size(o);
    return 2 * S * S + 2 * (size_t)pl_dino_blur_radius(o->blur_sigma_max) + 1 + (size_t)H * S + 10 * S;
}

// Keys' cubic convolution with a = -0.75 as torch's get_cubic_upsample_coefficients, for fraction t in [0, 1).
static void cubic_weights(double t, float w[4]) {
    const double A = -0.75;
    double x = t + 1.0;
    w[0] = (float)(((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A);
    x = t;
    w[1] = (float)(((A + 2.0) * x - (A + 3.0)) * x * x + 1.0);
    x = 1.0 - t;
    w[2] = (float)(((A + 2.0) * x - (A + 3.0)) * x * x + 1.0);
    x = 2.0 - t;
    w[3] = (float)(((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A);
}

// One axis of n_in -> n_out: base index floor(real) in idx (as exact float values) and the 4 weights per output.
static void cubic_axis(int n_in, int n_out, float *idx, float *w) {
    double scale = (double)n_in / (double)n_out;
    for (int i = 0; i < n_out; i++) {
        double real = scale * (i + 0.5) - 0.5, f = floor(real);
        idx[i] = (float)f;
        cubic_weights(real - f, w + 4 * i);
    }
}

static inline int clampi(int v, int n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

void pl_dino_resize_bicubic(const float *src, int stride, int top, int left, int ch, int cw, int S, float *dst,
                            float *scratch) {
    float *tmp = scratch, *wx = tmp + (size_t)ch * S, *wy = wx + 4 * (size_t)S, *ix = wy + 4 * (size_t)S,
          *iy = ix + S;   // tmp (ch, S)
    cubic_axis(cw, S, ix, wx);
    cubic_axis(ch, S, iy, wy);
    for (int y = 0; y < ch; y++) {   // each crop row along x
        const float *row = src + (size_t)(top + y) * stride + left;
        float *t = tmp + (size_t)y * S;
        for (int o = 0; o < S; o++) {
            int b = (int)ix[o];
            const float *w = wx + 4 * o;
            float acc = row[clampi(b - 1, cw)] * w[0];
            acc += row[clampi(b, cw)] * w[1];
            acc += row[clampi(b + 1, cw)] * w[2];
            acc += row[clampi(b + 2, cw)] * w[3];
            t[o] = acc;
        }
    }
    for (int o = 0; o < S; o++) {   // then down the columns
        int b = (int)iy[o];
        const float *w = wy + 4 * o;
        const float *r0 = tmp + (size_t)clampi(b - 1, ch) * S, *r1 = tmp + (size_t)clampi(b, ch) * S;
        const float *r2 = tmp + (size_t)clampi(b + 1, ch) * S, *r3 = tmp + (size_t)clampi(b + 2, ch) * S;
        float *d = dst + (size_t)o * S;
        for (int x = 0; x < S; x++) {
            float acc = r0[x] * w[0];
            acc += r1[x] * w[1];
            acc += r2[x] * w[2];
            acc += r3[x] * w[3];
            d[x] = acc;
        }
    }
}

void pl_dino_gaussian_blur(float *x, int H, int W, double sigma, float *scratch) {
    int R = pl_dino_blur_radius(sigma);
    float *tmp = scratch, *k = scratch + (size_t)H * W;   // tmp (H, W), k (2R + 1)
    double sum = 0.0;
    for (int j = -R; j <= R; j++) sum += exp(-(double)j * j / (2.0 * sigma * sigma));
    for (int j = -R; j <= R; j++) k[j + R] = (float)(exp(-(double)j * j / (2.0 * sigma * sigma)) / sum);
    pl_image_blur_separable(x, x, tmp, H, W, k + R, R);
}

void pl_dino_augment_view_params(const PlDinoAugmentOptions *o, uint64_t key, int view, int H, int W, int rgb,
                                 PlDinoViewParams *p) {
    int global = view < 2;
    PlAugmentOptions box;
    pl_augment_options_default(&box);
    box.scale_min = global ? o->global_scale_min : o->local_scale_min;
    box.scale_max = global ? o->global_scale_max : o->local_scale_max;
    PlRng r;
    pl_rng_seed(&r, pl_rng_mix(key, (uint64_t)view));
    memset(p, 0, sizeof *p);
    p->size = global ? o->global_size : o->local_size;
    p->attempt = pl_augment_crop_box(&r, &box, H, W, &p->top, &p->left, &p->h, &p->w);
    p->hflip = pl_rng_uniform(&r) < o->hflip_p;
    int vflip = pl_rng_uniform(&r) < 0.5, rot = (int)pl_rng_below(&r, 4);
    p->vflip = o->vflip_rot90 ? vflip : 0;
    p->rot = o->vflip_rot90 ? rot : 0;
    p->jitter = pl_rng_uniform(&r) < o->jitter_p;
    int gray = pl_rng_uniform(&r) < o->grayscale_p;
    p->blur = pl_rng_uniform(&r) < o->blur_p[global ? view : 2];
    p->sigma = pl_rng_range(&r, o->blur_sigma_min, o->blur_sigma_max);
    int solarize = pl_rng_uniform(&r) < o->solarize_p;
    p->jitter_key = pl_rng_next(&r);
    p->grayscale = rgb ? gray : 0;
    p->solarize = rgb && view == 1 ? solarize : 0;
}

// torchvision ColorJitter's factor: uniform in [max(0, 1 - s), 1 + s].
static double jitter_factor(PlRng *r, double s) { return pl_rng_range(r, 1.0 - s > 0 ? 1.0 - s : 0.0, 1.0 + s); }

void pl_dino_augment_jitter_factors(const PlDinoAugmentOptions *o, uint64_t jitter_key, int c, double *brightness,
                                    double *contrast, double *saturation) {
    PlRng r;
    pl_rng_seed(&r, pl_rng_mix(jitter_key, (uint64_t)c));
    *brightness = jitter_factor(&r, o->brightness);
    *contrast = jitter_factor(&r, o->contrast);
    *saturation = jitter_factor(&r, o->saturation);
}

static double plane_mean(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

// Microscopy: per channel, out = b (k x + (1 - k) mean) = (b k) x + b (1 - k) mean.
static void jitter_channels(const PlDinoAugmentOptions *o, uint64_t jkey, float *x, int C, size_t n) {
    for (int c = 0; c < C; c++) {
        double b, k, s;
        pl_dino_augment_jitter_factors(o, jkey, c, &b, &k, &s);
        float *p = x + (size_t)c * n;
        float a = (float)(b * k), off = (float)(b * (1.0 - k) * plane_mean(p, n));
        for (size_t i = 0; i < n; i++) p[i] = a * p[i] + off;
    }
}

// RGB (3, n): one b, k, s; m = mean luma; out = b (k (s x + (1 - s) L) + (1 - k) m), L the pixel's luma.
static void jitter_rgb(const PlDinoAugmentOptions *o, uint64_t jkey, float *x, size_t n) {
    double b, k, s;
    pl_dino_augment_jitter_factors(o, jkey, 0, &b, &k, &s);
    float *R = x, *G = x + n, *B = x + 2 * n;
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m += LUMA_R * R[i] + LUMA_G * G[i] + LUMA_B * B[i];
    m /= (double)n;
    float fs = (float)s, fl = (float)(1.0 - s), fa = (float)(b * k), off = (float)(b * (1.0 - k) * m);
    for (size_t i = 0; i < n; i++) {
        float L = LUMA_R * R[i] + LUMA_G * G[i] + LUMA_B * B[i];
        R[i] = fa * (fs * R[i] + fl * L) + off;
        G[i] = fa * (fs * G[i] + fl * L) + off;
        B[i] = fa * (fs * B[i] + fl * L) + off;
    }
}

void pl_dino_augment_view(const PlDinoAugmentOptions *o, uint64_t key, int view, const float *src, int C, int H, int W,
                          int rgb, float *out, float *scratch) {
    int S0 = max_size(o);
    float *plane = scratch, *blur_tmp = plane + (size_t)S0 * S0;
    float *resize_tmp = blur_tmp + (size_t)S0 * S0 + 2 * (size_t)pl_dino_blur_radius(o->blur_sigma_max) + 1;
    int is_rgb = rgb && C == 3;
    PlDinoViewParams p;
    pl_dino_augment_view_params(o, key, view, H, W, is_rgb, &p);
    int S = p.size;
    size_t n = (size_t)S * S, hw = (size_t)H * W;
    for (int c = 0; c < C; c++) {
        pl_dino_resize_bicubic(src + (size_t)c * hw, W, p.top, p.left, p.h, p.w, S, plane, resize_tmp);
        pl_augment_flip_rotate(plane, S, S, p.hflip, p.vflip, p.rot, out + (size_t)c * n);
    }
    if (p.jitter) {
        if (is_rgb)
            jitter_rgb(o, p.jitter_key, out, n);
        else
            jitter_channels(o, p.jitter_key, out, C, n);
    }
    if (p.grayscale) {
        float *R = out, *G = out + n, *B = out + 2 * n;
        for (size_t i = 0; i < n; i++) R[i] = G[i] = B[i] = LUMA_R * R[i] + LUMA_G * G[i] + LUMA_B * B[i];
    }
    if (p.blur)
        for (int c = 0; c < C; c++) pl_dino_gaussian_blur(out + (size_t)c * n, S, S, p.sigma, blur_tmp);
    if (p.solarize)
        for (size_t i = 0; i < 3 * n; i++)
            if (out[i] >= 0.5f) out[i] = 1.0f - out[i];
}

void pl_dino_augment_views(const PlDinoAugmentOptions *o, uint64_t key, const float *src, int C, int H, int W, int rgb,
                           float *global, float *local, float *scratch) {
    size_t g = (size_t)C * o->global_size * o->global_size, l = (size_t)C * o->local_size * o->local_size;
    for (int v = 0; v < 2; v++) pl_dino_augment_view(o, key, v, src, C, H, W, rgb, global + v * g, scratch);
    for (int v = 0; v < o->n_local; v++) pl_dino_augment_view(o, key, 2 + v, src, C, H, W, rgb, local + v * l, scratch);
}
