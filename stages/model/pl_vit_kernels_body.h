// The ViT's element-wise and row kernels, compiled once per CPU level: pl_vit_kernels.c includes this file once for
// each level with PL_K(name) (the level's function names) and PL_KATTR (its target attribute) defined, so the same
// source becomes a baseline, an AVX2 and an AVX-512 version. Private to pl_vit_kernels.c.
//
// Every version computes bit-identical results: the loops are element-wise or reduce into a fixed number of
// partial sums (PL_LANES) in a fixed order, C11 mode contracts no multiply-adds, and nothing uses -ffast-math.
#define PL_LANES 16

// exp(x): Cephes-style range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n by
// building the exponent bits. Branch-free so loops over it vectorise. Inputs below -87.3 return
// ~1e-38 instead of a denormal (softmax inputs are <= 0, so the difference is far below float ulp of 1).
// NaN gives NaN (the clamps send it to a finite value first, so the float-to-int conversion is always defined).
static inline float PL_K(exp)(float in) {
    float x = in > -87.3f ? in : -87.3f;   // ternaries, not fminf/fmaxf: they vectorise without -ffast-math
    x = x < 88.3f ? x : 88.3f;
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
    return in == in ? y * scale : in;
}

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (|erf| rounds to 1 in float beyond), the rational form
// used by XLA/Eigen for float.
static inline float PL_K(erf)(float x) {
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
PL_KATTR static inline float PL_K(sum)(const float *x, int n) {
    float acc[PL_LANES] = {0};
    int i = 0;
    for (; i + PL_LANES <= n; i += PL_LANES)
        for (int j = 0; j < PL_LANES; j++) acc[j] += x[i + j];
    float s = 0.0f;
    for (int j = 0; j < PL_LANES; j++) s += acc[j];
    for (; i < n; i++) s += x[i];
    return s;
}

PL_KATTR static inline float PL_K(sum_sq_dev)(const float *x, int n, float mean) {
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

PL_KATTR static inline float PL_K(max)(const float *x, int n) {
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

PL_KATTR static void PL_K(layernorm)(const float *x, int ldx, float *out, int ldo, int rows, int n, const float *w,
                      const float *b, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *o = out + (size_t)r * ldo;
        float mean = PL_K(sum)(xr, n) / (float)n;
        float v = PL_K(sum_sq_dev)(xr, n, mean);
        float inv = 1.0f / sqrtf(v / (float)n + eps);
        for (int i = 0; i < n; i++) o[i] = (xr[i] - mean) * inv * w[i] + b[i];
    }
}

PL_KATTR static void PL_K(bias_gelu)(float *x, int rows, int n, const float *bias) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * n;
        for (int i = 0; i < n; i++) {
            float v = xr[i] + bias[i];
            xr[i] = 0.5f * v * (1.0f + PL_K(erf)(v * 0.70710678118654752f));
        }
    }
}

PL_KATTR static void PL_K(add_bias)(float *x, int ldx, int rows, int n, const float *bias) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * ldx;
        for (int i = 0; i < n; i++) xr[i] += bias[i];
    }
}

// Softmax of each row: m = the row's max (any order gives the same m, or, for finite inputs, a zero of either sign,
// which leaves x - m unchanged); e = exp(x - m) stored in place while PL_LANES partial sums gather it (the tail's
// elements into the first lanes); the partials combined as a tree (lane j + lane j + w for w = 8, 4, 2, 1, the order
// of a vector reduction); the row scaled by 1 / sum. (Unused at AVX-512, where pl_vit_kernels_avx512.h's copy of the
// same arithmetic runs.)
PL_KATTR __attribute__((unused)) static void PL_K(softmax_rows)(float *x, int ldx, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *restrict xr = x + (size_t)r * ldx;   // restrict: lets the exp loop vectorise
        float m = PL_K(max)(xr, n);
        float acc[PL_LANES] = {0};
        int i = 0;
        for (; i + PL_LANES <= n; i += PL_LANES)
            for (int j = 0; j < PL_LANES; j++) {
                float e = PL_K(exp)(xr[i + j] - m);
                xr[i + j] = e;
                acc[j] += e;
            }
        for (int j = 0; i + j < n; j++) {
            float e = PL_K(exp)(xr[i + j] - m);
            xr[i + j] = e;
            acc[j] += e;
        }
        for (int w = PL_LANES / 2; w >= 1; w /= 2)
            for (int j = 0; j < w; j++) acc[j] += acc[j + w];
        float inv = 1.0f / acc[0];
        for (i = 0; i < n; i++) xr[i] *= inv;
    }
}

// Training: out = gelu(pre) (exact erf form, out may equal pre) and its backward dpre = dout * gelu'(pre)
// (dpre may equal dout), element-wise.
PL_KATTR static void PL_K(gelu_fwd)(float *out, const float *pre, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = pre[i];
        out[i] = 0.5f * v * (1.0f + PL_K(erf)(v * 0.70710678118654752f));
    }
}

PL_KATTR static void PL_K(gelu_bwd)(float *dpre, const float *dout, const float *pre, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = pre[i];
        // gelu(x) = x cdf(x): cdf from the forward's output (out / x, cdf(0) = 1/2) instead of a second erf
        float cdf = x != 0.0f ? out[i] / x : 0.5f;
        float pdf = 0.3989422804014327f * PL_K(exp)(-0.5f * x * x);
        dpre[i] = dout[i] * (cdf + x * pdf);
    }
}
