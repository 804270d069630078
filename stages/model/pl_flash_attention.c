// Flash attention on the CPU (pl_flash_attention.h): the scratch layout of one call, the scalar exp and BF16 rounding
// every level shares, and the per-CPU-level copies of the packing and the kernels (pl_flash_attention_simd.h +
// pl_flash_attention_body.h + pl_flash_attention_bwd.h, included once per level) behind one dispatch table.
#include "pl_flash_attention.h"

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pl_bf16.h"

#if PL_DISPATCH_X86
#include <immintrin.h>
#endif

#define FA_BC 64                     // keys (and, in the backward, queries) per block: the online-softmax step
#define FA_BR_MAX 8                  // most rows any level blocks in registers (sizes the scratch tiles)
#define FA_BF16_TINY_BITS 0x23800000 // 2^-56: |x| below it is flushed to a signed zero before rounding to BF16

// Everything one call works on: arguments, then the packed copies and tiles carved from the scratch.
typedef struct FaCtx {
    int T, hd, hdp, dpairs, nkb;   // tokens, head dim, hd rounded up to 16, ceil(hd / 2), blocks of FA_BC tokens
    float scale;
    PlPrecision prec;
    const float *q, *k, *v;   // (T, hd), row stride ld
    const float *dout;        // backward: (T, hd), row stride ldo
    int ld;
    float *out;               // forward output (T, hd), row stride ldo
    int ldo;
    float *lse;               // forward: (T) or NULL
    float *dq, *dk, *dv;      // backward outputs (T, hd), row stride ld
    // forward, FP32: K^T blocks (nkb, hd, 64), V rows (nkb * 64, hdp); BF16: q pairs (T, dpairs), K^T pair blocks
    // (nkb, dpairs, 64), V key pairs (nkb * 32, hdp)
    float *kt, *vr;
    uint32_t *q2, *kt2, *v2;
    float *sb, *pb, *oacc;    // (FA_BR_MAX, 64) scores, (FA_BR_MAX, 64) probabilities, (FA_BR_MAX, hdp) output sums
    uint32_t *p2;             // (FA_BR_MAX, 32) BF16 probability pairs
    // backward, FP32: Q^T and dO^T blocks (nkb, hd, 64), Q and dO rows (nkb * 64, hdp); BF16: the same blocks as
    // pairs over d (nkb, dpairs, 64), Q, dO and K as pairs over tokens (nkb * 32, hdp), K and V rows as pairs over d
    // (T, dpairs)
    float *qt, *dot, *qr, *dor;
    uint32_t *qt2, *dot2, *q2t, *do2t, *k2t, *k2d, *v2d;
    float *lsep, *dd;         // (nkb * 64) lse and rowsum(dO o), zero-padded
    float *st, *dpt;          // (64 + FA_BR_MAX, 64) tiles S^T -> P^T and dP^T -> dS^T
    uint32_t *pt16, *dst16;   // (64, 32) P^T and dS^T rows as BF16 pairs over queries
    uint32_t *dsp;            // (32, 64) dS^T as BF16 pairs over keys
    float *dkb, *dvb, *dqt;   // (64, hdp) dK and dV of the key block; (nkb, hd, 64) dQ^T
    float *junk;              // (max(hdp, 64)) destination of the rows a register block computes past the end
} FaCtx;

// exp(x): pl_vit_kernels_body.h's range reduction x = n ln2 + r and degree-6 polynomial (Cephes), written with
// fused multiply-adds as exp(r) = (P(r) r + 1) r + 1 and 2^n from its exponent bits; the vector versions
// (pl_flash_attention_simd.h) compute the same operations lane by lane. Inputs are clamped to [-87.3, 88.3]
// (so n stays in [-126, 127]); NaN gives NaN.
static inline float fa_exp1(float in) {
    float x = -87.3f > in ? -87.3f : in;   // the operand order of MAXPS / MINPS: a NaN passes through
    x = 88.3f < x ? 88.3f : x;
    if (x != x) return x;
    float fn = fmaf(x, 1.44269504088896341f, 12582912.0f) - 12582912.0f;   // round(x / ln2)
    float r = fmaf(fn, -0.693359375f, x);
    r = fmaf(fn, 2.12194440e-4f, r);
    float y = fmaf(1.9875691500e-4f, r, 1.3981999507e-3f);
    y = fmaf(y, r, 8.3334519073e-3f);
    y = fmaf(y, r, 4.1665795894e-2f);
    y = fmaf(y, r, 1.6666665459e-1f);
    y = fmaf(y, r, 5.0000001201e-1f);
    y = fmaf(y, r, 1.0f);
    y = fmaf(y, r, 1.0f);
    int32_t bits = ((int32_t)fn + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

static inline float fa_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// BF16 of x after flushing |x| < 2^-56 to a signed zero (pl_flash_attention.h explains why).
static inline uint16_t fa_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) < FA_BF16_TINY_BITS) u &= 0x80000000u;
    return pl_bf16_from_f32(fa_bits_f32(u));
}

// ---- one copy of the kernels per CPU level ----
#define PL_FA(name) fa_##name##_baseline
#define PL_FATTR
#define FA_ISA 0
#define FA_BR 4
#define FA_VMAX 2
#include "pl_flash_attention_simd.h"
#include "pl_flash_attention_body.h"
#undef PL_FA
#undef PL_FATTR
#undef FA_ISA
#undef FA_BR
#undef FA_VMAX
#if PL_DISPATCH_X86
#define PL_FA(name) fa_##name##_avx2
#define PL_FATTR __attribute__((target("avx2,fma")))
#define FA_ISA 1
#define FA_BR 2
#define FA_VMAX 2
#include "pl_flash_attention_simd.h"
#include "pl_flash_attention_body.h"
#undef PL_FA
#undef PL_FATTR
#undef FA_ISA
#undef FA_BR
#undef FA_VMAX
#define PL_FA(name) fa_##name##_avx512
#define PL_FATTR __attribute__((target("avx512f")))
#define FA_ISA 2
#define FA_BR 6
#define FA_VMAX 4
#include "pl_flash_attention_simd.h"
#include "pl_flash_attention_body.h"
#undef PL_FA
#undef PL_FATTR
#undef FA_ISA
#undef FA_BR
#undef FA_VMAX
#define PL_FA(name) fa_##name##_avx512bf16
#define PL_FATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define FA_ISA 3
#define FA_BR 6
#define FA_VMAX 4
#include "pl_flash_attention_simd.h"
#include "pl_flash_attention_body.h"
#undef PL_FA
#undef PL_FATTR
#undef FA_ISA
#undef FA_BR
#undef FA_VMAX
#endif

typedef struct FaTable {
    PlCpuLevel level;
    void (*forward)(const FaCtx *);
    void (*backward)(const FaCtx *);
} FaTable;

static const FaTable fa_tables[] = {
    {PL_CPU_BASELINE, fa_forward_baseline, fa_backward_baseline},
#if PL_DISPATCH_X86
    {PL_CPU_AVX2, fa_forward_avx2, fa_backward_avx2},
    {PL_CPU_AVX512, fa_forward_avx512, fa_backward_avx512},
    {PL_CPU_AVX512_BF16, fa_forward_avx512bf16, fa_backward_avx512bf16},
#endif
};
#define FA_NTABLES (sizeof fa_tables / sizeof fa_tables[0])
static _Atomic(const FaTable *) fa_table;

PlCpuLevel pl_flash_attention_best_level(void) {
    PlCpuLevel best = pl_cpu_level();
#if PL_DISPATCH_X86
    __builtin_cpu_init();
    if (best == PL_CPU_AVX2 && !__builtin_cpu_supports("fma")) best = PL_CPU_BASELINE;
#endif
    return best;
}

static const FaTable *fa_kernels(void) {
    const FaTable *t = atomic_load_explicit(&fa_table, memory_order_acquire);
    if (t) return t;
    t = &fa_tables[pl_dispatch_pick(fa_tables, FA_NTABLES, sizeof fa_tables[0], offsetof(FaTable, level),
                                    pl_flash_attention_best_level())];
    atomic_store_explicit(&fa_table, t, memory_order_release);
    return t;
}

PlStatus pl_flash_attention_use(PlCpuLevel level) {
    size_t i;
    PL_TRY(pl_dispatch_find(fa_tables, FA_NTABLES, sizeof fa_tables[0], offsetof(FaTable, level), level,
                            pl_flash_attention_best_level(), "flash-attention", &i));
    atomic_store_explicit(&fa_table, &fa_tables[i], memory_order_release);
    return PL_OK;
}

PlCpuLevel pl_flash_attention_level(void) { return fa_kernels()->level; }

float pl_flash_attention_exp(float x) { return fa_exp1(x); }


// ---- scratch layout ----

// Points c's buffers into base (NULL: only sizes) for the forward or the backward; returns the bytes used.
static size_t fa_carve(FaCtx *c, void *base, int backward) {
    size_t off = 0;
    const size_t T = (size_t)c->T, hd = (size_t)c->hd, hdp = (size_t)c->hdp, np = (size_t)c->dpairs;
    const size_t nkb = (size_t)c->nkb, tp = nkb * FA_BC;
    const int bf16 = c->prec == PL_PRECISION_BF16;
#define FA_CARVE(field, n)                                                                  \
    do {                                                                                    \
        c->field = base ? (void *)((char *)base + off) : NULL;                              \
        off += ((size_t)(n) * sizeof *c->field + 63) / 64 * 64;                             \
    } while (0)
    if (!backward) {
        FA_CARVE(sb, FA_BR_MAX * FA_BC);
        FA_CARVE(pb, FA_BR_MAX * FA_BC);
        FA_CARVE(oacc, FA_BR_MAX * hdp);
        if (bf16) {
            FA_CARVE(q2, T * np);
            FA_CARVE(kt2, nkb * np * FA_BC);
            FA_CARVE(v2, tp / 2 * hdp);
            FA_CARVE(p2, FA_BR_MAX * FA_BC / 2);
        } else {
            FA_CARVE(kt, nkb * hd * FA_BC);
            FA_CARVE(vr, tp * hdp);
        }
    } else {
        FA_CARVE(lsep, tp);
        FA_CARVE(dd, tp);
        FA_CARVE(st, (FA_BC + FA_BR_MAX) * FA_BC);
        FA_CARVE(dpt, (FA_BC + FA_BR_MAX) * FA_BC);
        FA_CARVE(dkb, FA_BC * hdp);
        FA_CARVE(dvb, FA_BC * hdp);
        FA_CARVE(dqt, nkb * hd * FA_BC);
        FA_CARVE(junk, hdp > FA_BC ? hdp : FA_BC);
        if (bf16) {
            FA_CARVE(qt2, nkb * np * FA_BC);
            FA_CARVE(dot2, nkb * np * FA_BC);
            FA_CARVE(q2t, tp / 2 * hdp);
            FA_CARVE(do2t, tp / 2 * hdp);
            FA_CARVE(k2t, tp / 2 * hdp);
            FA_CARVE(k2d, T * np);
            FA_CARVE(v2d, T * np);
            FA_CARVE(pt16, FA_BC * FA_BC / 2);
            FA_CARVE(dst16, FA_BC * FA_BC / 2);
            FA_CARVE(dsp, FA_BC / 2 * FA_BC);
        } else {
            FA_CARVE(qt, nkb * hd * FA_BC);
            FA_CARVE(dot, nkb * hd * FA_BC);
            FA_CARVE(qr, tp * hdp);
            FA_CARVE(dor, tp * hdp);
        }
    }
#undef FA_CARVE
    return off;
}

static void fa_init(FaCtx *c, int T, int hd, float scale, PlPrecision precision) {
    memset(c, 0, sizeof *c);
    c->T = T;
    c->hd = hd;
    c->hdp = (hd + 15) / 16 * 16;
    c->dpairs = (hd + 1) / 2;
    c->nkb = (T + FA_BC - 1) / FA_BC;
    c->scale = scale;
    c->prec = precision;
}

size_t pl_flash_attention_scratch_bytes(int T, int hd, PlPrecision precision) {
    if (T < 1 || hd < 1) return 0;
    FaCtx c;
    fa_init(&c, T, hd, 1.0f, precision);
    size_t f = fa_carve(&c, NULL, 0), b = fa_carve(&c, NULL, 1);
    return f > b ? f : b;
}

void pl_flash_attention_forward(int T, int hd, float scale, const float *q, const float *k, const float *v, int ld,
                                float *o, int ldo, float *lse, PlPrecision precision, void *scratch) {
    if (T < 1 || hd < 1) return;
    FaCtx c;
    fa_init(&c, T, hd, scale, precision);
    c.q = q, c.k = k, c.v = v, c.ld = ld, c.out = o, c.ldo = ldo, c.lse = lse;
    fa_carve(&c, scratch, 0);
    fa_kernels()->forward(&c);
}

void pl_flash_attention_backward(int T, int hd, float scale, const float *q, const float *k, const float *v, int ld,
                                 const float *o, const float *dout, int ldo, const float *lse, float *dq, float *dk,
                                 float *dv, PlPrecision precision, void *scratch) {
    if (T < 1 || hd < 1) return;
    FaCtx c;
    fa_init(&c, T, hd, scale, precision);
    c.q = q, c.k = k, c.v = v, c.ld = ld, c.dout = dout, c.ldo = ldo, c.dq = dq, c.dk = dk, c.dv = dv;
    fa_carve(&c, scratch, 1);
    const int tp = c.nkb * FA_BC;
    for (int i = 0; i < tp; i++) {   // lse and D = rowsum(dO o), zero-padded to whole blocks
        double s = 0.0;
        if (i < T)
            for (int d = 0; d < hd; d++) s += (double)dout[(size_t)i * ldo + d] * o[(size_t)i * ldo + d];
        c.dd[i] = (float)s;
        c.lsep[i] = i < T ? lse[i] : 0.0f;
    }
    fa_kernels()->backward(&c);
}
