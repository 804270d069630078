// ViT row kernels: LayerNorm, exact-erf GELU, softmax, vectorisable erf/exp, bicubic position resize.
#include "pl_vit_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// exp(x): Cephes-style range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n by
// building the exponent bits. Branch-free so loops over it vectorise. Inputs below -87.3 return
// ~1e-38 instead of a denormal (softmax inputs are <= 0, so the difference is far below float ulp of 1).
float pl_vit_exp(float x) {
    x = x < -87.3f ? -87.3f : x;   // ternaries, not fminf/fmaxf: they vectorise without -ffast-math
    x = x > 88.3f ? 88.3f : x;
    // n = round(x / ln2) with the 1.5 * 2^23 trick (floorf would block vectorisation without -fno-trapping-math)
    float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - fn * 0.693359375f;
    r = r + fn * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    int32_t bits = ((int32_t)fn + 127) << 23;   // 2^n from its exponent bits
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (|erf| rounds to 1 in float beyond), the rational form
// used by XLA/Eigen for float.
float pl_vit_erf(float x) {
    x = x < -4.0f ? -4.0f : x;
    x = x > 4.0f ? 4.0f : x;
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return x * p / q;
}

// Sum and max with 16 independent partials: the compiler vectorises these (a plain float reduction
// loop stays scalar without -ffast-math because it may not reorder additions).
#define PL_LANES 16
static float pl_sum(const float *x, int n) {
    float acc[PL_LANES] = {0};
    int i = 0;
    for (; i + PL_LANES <= n; i += PL_LANES)
        for (int j = 0; j < PL_LANES; j++) acc[j] += x[i + j];
    float s = 0.0f;
    for (int j = 0; j < PL_LANES; j++) s += acc[j];
    for (; i < n; i++) s += x[i];
    return s;
}

static float pl_sum_sq_dev(const float *x, int n, float mean) {
    float acc[PL_LANES] = {0};
    int i = 0;
    for (; i + PL_LANES <= n; i += PL_LANES)
        for (int j = 0; j < PL_LANES; j++) {
            float d = x[i + j] - mean;
            acc[j] += d * d;
        }
    float s = 0.0f;
    for (int j = 0; j < PL_LANES; j++) s += acc[j];
    for (; i < n; i++) s += (x[i] - mean) * (x[i] - mean);
    return s;
}

static float pl_max(const float *x, int n) {
    float acc[PL_LANES];
    for (int j = 0; j < PL_LANES; j++) acc[j] = x[0];
    int i = 0;
    for (; i + PL_LANES <= n; i += PL_LANES)
        for (int j = 0; j < PL_LANES; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    float m = acc[0];
    for (int j = 1; j < PL_LANES; j++) m = acc[j] > m ? acc[j] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

void pl_vit_layernorm(const float *x, int ldx, float *out, int ldo, int rows, int n, const float *w,
                      const float *b, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *o = out + (size_t)r * ldo;
        float mean = pl_sum(xr, n) / (float)n;
        float v = pl_sum_sq_dev(xr, n, mean);
        float inv = 1.0f / sqrtf(v / (float)n + eps);
        for (int i = 0; i < n; i++) o[i] = (xr[i] - mean) * inv * w[i] + b[i];
    }
}

void pl_vit_bias_gelu(float *x, int rows, int n, const float *bias) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * n;
        for (int i = 0; i < n; i++) {
            float v = xr[i] + bias[i];
            xr[i] = 0.5f * v * (1.0f + pl_vit_erf(v * 0.70710678118654752f));
        }
    }
}

void pl_vit_add_bias(float *x, int ldx, int rows, int n, const float *bias) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * ldx;
        for (int i = 0; i < n; i++) xr[i] += bias[i];
    }
}

void pl_vit_softmax_rows(float *x, int ldx, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *restrict xr = x + (size_t)r * ldx;   // restrict: lets the exp loop vectorise
        float m = pl_max(xr, n);
        for (int i = 0; i < n; i++) xr[i] = pl_vit_exp(xr[i] - m);
        float inv = 1.0f / pl_sum(xr, n);
        for (int i = 0; i < n; i++) xr[i] *= inv;
    }
}

// PyTorch's cubic convolution weights for the 4 taps around a source coordinate with fraction t.
static void pl_cubic_weights(double t, double w[4]) {
    const double A = -0.75;
    double x1 = t + 1.0, x2 = t, x3 = 1.0 - t, x4 = 2.0 - t;
    w[0] = ((A * x1 - 5.0 * A) * x1 + 8.0 * A) * x1 - 4.0 * A;
    w[1] = ((A + 2.0) * x2 - (A + 3.0)) * x2 * x2 + 1.0;
    w[2] = ((A + 2.0) * x3 - (A + 3.0)) * x3 * x3 + 1.0;
    w[3] = ((A * x4 - 5.0 * A) * x4 + 8.0 * A) * x4 - 4.0 * A;
}

static int pl_clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

void pl_vit_pos_resize(const float *src, int grid, int dim, int gh, int gw, float *dst) {
    // scale_factor as DINO passes it; PyTorch maps dst -> src with 1/scale (align_corners=False,
    // no clamping of negative source coordinates for cubic).
    double sy = ((double)gh + 0.1) / (double)grid, sx = ((double)gw + 0.1) / (double)grid;
    for (int oy = 0; oy < gh; oy++) {
        double ry = ((double)oy + 0.5) / sy - 0.5;
        double fy = floor(ry);
        int iy = (int)fy;
        double wy[4];
        pl_cubic_weights(ry - fy, wy);
        for (int ox = 0; ox < gw; ox++) {
            double rx = ((double)ox + 0.5) / sx - 0.5;
            double fx = floor(rx);
            int ix = (int)fx;
            double wx[4];
            pl_cubic_weights(rx - fx, wx);
            float *o = dst + ((size_t)oy * gw + ox) * dim;
            for (int c = 0; c < dim; c++) {
                double acc = 0.0;
                for (int j = 0; j < 4; j++) {
                    int yy = pl_clampi(iy - 1 + j, 0, grid - 1);
                    double row = 0.0;
                    for (int i = 0; i < 4; i++) {
                        int xx = pl_clampi(ix - 1 + i, 0, grid - 1);
                        row += wx[i] * (double)src[((size_t)yy * grid + xx) * dim + c];
                    }
                    acc += wy[j] * row;
                }
                o[c] = (float)acc;
            }
        }
    }
}
