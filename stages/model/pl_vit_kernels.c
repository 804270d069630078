// ViT row kernels: the per-CPU-level copies of LayerNorm, exact-erf GELU, softmax (pl_vit_kernels_body.h; at AVX-512
// the softmax is pl_vit_kernels_avx512.h's hand-vectorised copy of the same arithmetic) behind one dispatch table, and
// the bicubic position-embedding resize.
#include "pl_vit_kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// ---- one copy of the kernels per CPU level (pl_vit_kernels_body.h) ----
#define PL_K(name) pl_k_##name##_baseline
#define PL_KATTR
#include "pl_vit_kernels_body.h"
#undef PL_K
#undef PL_KATTR
#undef PL_LANES
#if PL_DISPATCH_X86
#define PL_K(name) pl_k_##name##_avx2
#define PL_KATTR __attribute__((target("avx2")))
#include "pl_vit_kernels_body.h"
#undef PL_K
#undef PL_KATTR
#undef PL_LANES
#define PL_K(name) pl_k_##name##_avx512
#define PL_KATTR __attribute__((target("avx512f")))
#include "pl_vit_kernels_body.h"
#undef PL_K
#undef PL_KATTR
#undef PL_LANES
#include "pl_vit_kernels_avx512.h"   // hand-vectorised copies, the same bits (softmax)
#endif

typedef struct VitKernelTable {
    PlCpuLevel level;
    void (*layernorm)(const float *, int, float *, int, int, int, const float *, const float *, float);
    void (*bias_gelu)(float *, int, int, const float *);
    void (*add_bias)(float *, int, int, int, const float *);
    void (*softmax_rows)(float *, int, int, int);
    void (*gelu_fwd)(float *, const float *, size_t);
    void (*gelu_bwd)(float *, const float *, const float *, const float *, size_t);
} VitKernelTable;

#define PL_KTABLE(suffix, lv)                                                                                     \
    {lv, pl_k_layernorm_##suffix, pl_k_bias_gelu_##suffix, pl_k_add_bias_##suffix, pl_k_softmax_rows_##suffix,          \
     pl_k_gelu_fwd_##suffix, pl_k_gelu_bwd_##suffix}
static const VitKernelTable vit_tables[] = {
    PL_KTABLE(baseline, PL_CPU_BASELINE),
#if PL_DISPATCH_X86
    PL_KTABLE(avx2, PL_CPU_AVX2),
    {PL_CPU_AVX512, pl_k_layernorm_avx512, pl_k_bias_gelu_avx512, pl_k_add_bias_avx512, pl_k_softmax_rows_avx512_hand,
     pl_k_gelu_fwd_avx512, pl_k_gelu_bwd_avx512},
#endif
};
#define VIT_NTABLES (sizeof vit_tables / sizeof vit_tables[0])
static _Atomic(const VitKernelTable *) vit_table;

// The table in use: the best level the CPU has, chosen on first use (a race picks the same table twice).
static const VitKernelTable *vit_kernels(void) {
    const VitKernelTable *t = atomic_load_explicit(&vit_table, memory_order_acquire);
    if (t) return t;
    t = &vit_tables[pl_dispatch_pick(vit_tables, VIT_NTABLES, sizeof vit_tables[0], offsetof(VitKernelTable, level),
                                     pl_cpu_level())];
    atomic_store_explicit(&vit_table, t, memory_order_release);
    return t;
}

PlStatus pl_vit_kernels_use(PlCpuLevel level) {
    size_t i;
    PL_TRY(pl_dispatch_find(vit_tables, VIT_NTABLES, sizeof vit_tables[0], offsetof(VitKernelTable, level), level,
                            pl_cpu_level(), "ViT row", &i));
    atomic_store_explicit(&vit_table, &vit_tables[i], memory_order_release);
    return PL_OK;
}

PlCpuLevel pl_vit_kernels_level(void) { return vit_kernels()->level; }

float pl_vit_exp(float x) { return pl_k_exp_baseline(x); }
float pl_vit_erf(float x) { return pl_k_erf_baseline(x); }

void pl_vit_layernorm(const float *x, int ldx, float *out, int ldo, int rows, int n, const float *w, const float *b,
                      float eps) {
    vit_kernels()->layernorm(x, ldx, out, ldo, rows, n, w, b, eps);
}
void pl_vit_bias_gelu(float *x, int rows, int n, const float *bias) { vit_kernels()->bias_gelu(x, rows, n, bias); }
void pl_vit_add_bias(float *x, int ldx, int rows, int n, const float *bias) {
    vit_kernels()->add_bias(x, ldx, rows, n, bias);
}
void pl_vit_softmax_rows(float *x, int ldx, int rows, int n) { vit_kernels()->softmax_rows(x, ldx, rows, n); }
void pl_vit_gelu_forward(float *out, const float *pre, size_t n) { vit_kernels()->gelu_fwd(out, pre, n); }
void pl_vit_gelu_backward(float *dpre, const float *dout, const float *pre, const float *out, size_t n) {
    vit_kernels()->gelu_bwd(dpre, dout, pre, out, n);
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

// The 4 source taps of output coordinate o of a grid-long axis resized by `scale` (PyTorch maps dst -> src with
// 1/scale, align_corners=False, no clamping of negative source coordinates for cubic): border-clamped indices and
// cubic weights. Shared by the resize and its backward, so both use the very same taps.
static void pl_cubic_taps(int o, double scale, int grid, int idx[4], double w[4]) {
    double r = ((double)o + 0.5) / scale - 0.5;
    double f = floor(r);
    pl_cubic_weights(r - f, w);
    for (int j = 0; j < 4; j++) idx[j] = pl_clampi((int)f - 1 + j, 0, grid - 1);
}

void pl_vit_pos_resize(const float *src, int grid, int dim, int gh, int gw, float *dst) {
    // scale_factor as DINO passes it
    double sy = ((double)gh + 0.1) / (double)grid, sx = ((double)gw + 0.1) / (double)grid;
    for (int oy = 0; oy < gh; oy++) {
        int yy[4], xx[4];
        double wy[4], wx[4];
        pl_cubic_taps(oy, sy, grid, yy, wy);
        for (int ox = 0; ox < gw; ox++) {
            pl_cubic_taps(ox, sx, grid, xx, wx);
            float *o = dst + ((size_t)oy * gw + ox) * dim;
            for (int c = 0; c < dim; c++) {
                double acc = 0.0;
                for (int j = 0; j < 4; j++) {
                    double row = 0.0;
                    for (int i = 0; i < 4; i++) row += wx[i] * (double)src[((size_t)yy[j] * grid + xx[i]) * dim + c];
                    acc += wy[j] * row;
                }
                o[c] = (float)acc;
            }
        }
    }
}

void pl_vit_pos_resize_backward(const float *ddst, int grid, int dim, int gh, int gw, float *dsrc) {
    double sy = ((double)gh + 0.1) / (double)grid, sx = ((double)gw + 0.1) / (double)grid;
    for (int oy = 0; oy < gh; oy++) {
        int yy[4], xx[4];
        double wy[4], wx[4];
        pl_cubic_taps(oy, sy, grid, yy, wy);
        for (int ox = 0; ox < gw; ox++) {
            pl_cubic_taps(ox, sx, grid, xx, wx);
            const float *g = ddst + ((size_t)oy * gw + ox) * dim;
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 4; i++) {
                    float wgt = (float)(wy[j] * wx[i]);
                    float *d = dsrc + ((size_t)yy[j] * grid + xx[i]) * dim;
                    for (int c = 0; c < dim; c++) d[c] += wgt * g[c];
                }
        }
    }
}
