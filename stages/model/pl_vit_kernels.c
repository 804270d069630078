// ViT row kernels: LayerNorm, exact-erf GELU, softmax, vectorisable erf/exp, bicubic position resize.
#include "pl_vit_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// exp(x): Cephes-style range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n by
// building the exponent bits. Branch-free so loops over it vectorise. Inputs below -87.3 return
// ~1e-38 instead of a denormal (softmax inputs are <= 0, so the difference is far below float ulp of 1).
float pl_vit_exp(float x) {
    x = fminf(fmaxf(x, -87.3f), 88.3f);
    float fn = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - fn * 0.693359375f;
    r = r + fn * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    int32_t n = (int32_t)fn;
    int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (|erf| rounds to 1 in float beyond), the rational form
// used by XLA/Eigen for float.
float pl_vit_erf(float x) {
    x = fminf(fmaxf(x, -4.0f), 4.0f);
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

void pl_vit_layernorm(const float *x, int ldx, float *out, int ldo, int rows, int n, const float *w,
                      const float *b, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *o = out + (size_t)r * ldo;
        float s = 0.0f;
        for (int i = 0; i < n; i++) s += xr[i];
        float mean = s / (float)n;
        float v = 0.0f;
        for (int i = 0; i < n; i++) {
            float d = xr[i] - mean;
            v += d * d;
        }
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
        float *xr = x + (size_t)r * ldx;
        float m = xr[0];
        for (int i = 1; i < n; i++) m = fmaxf(m, xr[i]);
        float s = 0.0f;
        for (int i = 0; i < n; i++) {
            float e = pl_vit_exp(xr[i] - m);
            xr[i] = e;
            s += e;
        }
        float inv = 1.0f / s;
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
