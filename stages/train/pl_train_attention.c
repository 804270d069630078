// Multi-head softmax attention of the training layers (pl_train_layers.h): per (image, head), either products through
// the kernel backend's GEMMs with the (T, T) probabilities kept for the backward (sequences up to
// PL_ATTN_GEMM_MAX_TOKENS, where they are small and the backend's GEMMs outrun the fused kernel: forward and backward
// together 1.7x at 197 tokens in BF16, tests/bench/bench_train_attention.c), or the fused flash kernel
// (pl_flash_attention.h) for longer ones, whose memory does not grow with T^2.
#include "pl_train_layers.h"

#include <math.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_flash_attention.h"
#include "pl_vit_kernels.h"

static size_t attn_align(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

// The GEMM path's scratch, carved in this order: dP (T, T) FP32; BF16 only: the image's q|k|v rows (T, 3D), its
// output gradient (T, D), P and dS (T, T).
static size_t attn_gemm_bytes(int T, int D, PlPrecision precision) {
    const size_t t = (size_t)T, tt = t * t, d = (size_t)D;
    size_t bytes = attn_align(tt * sizeof(float));
    if (precision == PL_PRECISION_BF16)
        bytes += attn_align(t * 3 * d * sizeof(uint16_t)) + attn_align(t * d * sizeof(uint16_t)) +
                 2 * attn_align(tt * sizeof(uint16_t));
    return bytes;
}

typedef struct AttnGemmScratch {
    float *dp;                      // (T, T)
    uint16_t *qkv16, *do16;         // (T, 3D), (T, D)
    uint16_t *p16, *ds16;           // (T, T)
} AttnGemmScratch;

static AttnGemmScratch attn_gemm_carve(void *scratch, int T, int D, PlPrecision precision) {
    const size_t t = (size_t)T, tt = t * t, d = (size_t)D;
    unsigned char *p = scratch;
    AttnGemmScratch s = {0};
    s.dp = (float *)p, p += attn_align(tt * sizeof(float));
    if (precision == PL_PRECISION_BF16) {
        s.qkv16 = (uint16_t *)p, p += attn_align(t * 3 * d * sizeof(uint16_t));
        s.do16 = (uint16_t *)p, p += attn_align(t * d * sizeof(uint16_t));
        s.p16 = (uint16_t *)p, p += attn_align(tt * sizeof(uint16_t));
        s.ds16 = (uint16_t *)p;
    }
    return s;
}

// The flash kernel's scratch comes after the GEMM path's at min(T, the limit): the total never shrinks as T grows, so
// a buffer sized for the largest input serves every smaller one, whichever path that one takes.
static size_t attn_flash_offset(int T, int D, PlPrecision precision) {
    return attn_align(attn_gemm_bytes(T < PL_ATTN_GEMM_MAX_TOKENS ? T : PL_ATTN_GEMM_MAX_TOKENS, D, precision));
}

static void *attn_flash_scratch(void *scratch, int T, int D, PlPrecision precision) {
    return (unsigned char *)scratch + attn_flash_offset(T, D, precision);
}

size_t pl_attention_scratch_bytes(int T, int D, int NH, PlPrecision precision) {
    return attn_flash_offset(T, D, precision) + pl_flash_attention_scratch_bytes(T, D / NH, precision);
}

int pl_attention_uses_gemm(const PlKernels *k, const float *probs, int T, PlPrecision precision) {
    return k && probs && T <= PL_ATTN_GEMM_MAX_TOKENS &&
           (precision == PL_PRECISION_FP32 ? k->gemm != NULL : k->gemm_bf16 != NULL);
}

// C = alpha op(A) op(B) at the path's precision: FP32 operands, or the BF16 copies (a16, b16) of the same operands.
static void attn_gemm(const PlKernels *k, PlPrecision precision, int ta, int tb, int m, int n, int kk, float alpha,
                      const float *a, const uint16_t *a16, int lda, const float *b, const uint16_t *b16, int ldb,
                      float *c, int ldc) {
    if (precision == PL_PRECISION_BF16)
        k->gemm_bf16(ta, tb, m, n, kk, alpha, a16, lda, b16, ldb, 0.0f, c, ldc);
    else
        k->gemm(ta, tb, m, n, kk, alpha, a, lda, b, ldb, 0.0f, c, ldc);
}

// sum_d a[d] b[d] over ATTN_DOT_LANES partial sums combined in a fixed order (not one chain of dependent adds).
#define ATTN_DOT_LANES 8
static float attn_row_dot(const float *restrict a, const float *restrict b, int n) {
    float acc[ATTN_DOT_LANES] = {0};
    int d = 0;
    for (; d + ATTN_DOT_LANES <= n; d += ATTN_DOT_LANES)
        for (int j = 0; j < ATTN_DOT_LANES; j++) acc[j] += a[d + j] * b[d + j];
    for (int j = 0; d + j < n; j++) acc[j] += a[d + j] * b[d + j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void attn_gemm_forward(const PlKernels *k, float *out, float *probs, const float *qkv, int B, int T, int D,
                              int NH, PlPrecision precision, void *scratch) {
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);
    const AttnGemmScratch s = attn_gemm_carve(scratch, T, D, precision);
    const int bf16 = precision == PL_PRECISION_BF16;
    for (int b = 0; b < B; b++) {
        const float *qb = qkv + (size_t)b * T * 3 * D;
        if (bf16) pl_bf16_from_f32_n(s.qkv16, qb, (size_t)T * 3 * D);
        for (int h = 0; h < NH; h++) {
            const size_t c0 = (size_t)h * hd;
            const float *q = qb + c0;
            const uint16_t *q16 = bf16 ? s.qkv16 + c0 : NULL;
            float *p = probs + ((size_t)b * NH + h) * T * T;
            // P (T, T) = softmax(scale q k^T), kept for the backward
            attn_gemm(k, precision, 0, 1, T, T, hd, scale, q, q16, 3 * D, q + D, bf16 ? q16 + D : NULL, 3 * D, p, T);
            pl_vit_softmax_rows(p, T, T, T);
            if (bf16) pl_bf16_from_f32_n(s.p16, p, (size_t)T * T);
            // out (T, hd) = P v
            attn_gemm(k, precision, 0, 0, T, hd, T, 1.0f, p, s.p16, T, q + 2 * D, bf16 ? q16 + 2 * D : NULL, 3 * D,
                      out + (size_t)b * T * D + c0, D);
        }
    }
}

static void attn_gemm_backward(const PlKernels *k, float *dqkv, const float *dout, const float *qkv, const float *out,
                               const float *probs, int B, int T, int D, int NH, PlPrecision precision, void *scratch) {
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);
    const AttnGemmScratch s = attn_gemm_carve(scratch, T, D, precision);
    const int bf16 = precision == PL_PRECISION_BF16;
    for (int b = 0; b < B; b++) {
        const size_t row0 = (size_t)b * T;
        const float *qb = qkv + row0 * 3 * D, *ob = out + row0 * D, *gb = dout + row0 * D;
        float *db = dqkv + row0 * 3 * D;
        if (bf16) {
            pl_bf16_from_f32_n(s.qkv16, qb, (size_t)T * 3 * D);
            pl_bf16_from_f32_n(s.do16, gb, (size_t)T * D);
        }
        for (int h = 0; h < NH; h++) {
            const size_t c0 = (size_t)h * hd;
            const float *q = qb + c0, *o = ob + c0, *g = gb + c0;
            const uint16_t *q16 = bf16 ? s.qkv16 + c0 : NULL, *g16 = bf16 ? s.do16 + c0 : NULL;
            float *dq = db + c0;
            const float *p = probs + ((size_t)b * NH + h) * T * T;
            if (bf16) pl_bf16_from_f32_n(s.p16, p, (size_t)T * T);   // the forward's BF16 P, the same bits
            // dV (T, hd) = P^T dO
            attn_gemm(k, precision, 1, 0, T, hd, T, 1.0f, p, s.p16, T, g, g16, D, dq + 2 * D, 3 * D);
            // dP (T, T) = dO V^T
            attn_gemm(k, precision, 0, 1, T, T, hd, 1.0f, g, g16, D, q + 2 * D, bf16 ? q16 + 2 * D : NULL, 3 * D, s.dp,
                      T);
            // dS = P (dP - rowsum(dO o)), the softmax backward, in place of dP
            for (int i = 0; i < T; i++) {
                const float di = attn_row_dot(g + (size_t)i * D, o + (size_t)i * D, hd);
                const float *restrict pi = p + (size_t)i * T;
                float *restrict dpi = s.dp + (size_t)i * T;
                for (int j = 0; j < T; j++) dpi[j] = pi[j] * (dpi[j] - di);
            }
            if (bf16) pl_bf16_from_f32_n(s.ds16, s.dp, (size_t)T * T);
            // dQ (T, hd) = scale dS K, dK (T, hd) = scale dS^T Q
            attn_gemm(k, precision, 0, 0, T, hd, T, scale, s.dp, s.ds16, T, q + D, bf16 ? q16 + D : NULL, 3 * D, dq,
                      3 * D);
            attn_gemm(k, precision, 1, 0, T, hd, T, scale, s.dp, s.ds16, T, q, q16, 3 * D, dq + D, 3 * D);
        }
    }
}

void pl_attention_forward(const PlKernels *k, float *out, float *lse, float *probs, const float *qkv, int B, int T, int D,
                          int NH, PlPrecision precision, void *scratch) {
    if (pl_attention_uses_gemm(k, probs, T, precision)) {
        attn_gemm_forward(k, out, probs, qkv, B, T, D, NH, precision, scratch);
        return;
    }
    void *fa = attn_flash_scratch(scratch, T, D, precision);
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * 3 * D + (size_t)h * hd;
            pl_flash_attention_forward(T, hd, scale, q, q + D, q + 2 * D, 3 * D, out + (size_t)b * T * D + (size_t)h * hd,
                                       D, lse + ((size_t)b * NH + h) * T, precision, fa);
        }
}

void pl_attention_backward(const PlKernels *k, float *dqkv, const float *dout, const float *qkv, const float *out,
                           const float *lse, const float *probs, int B, int T, int D, int NH, PlPrecision precision,
                           void *scratch) {
    if (pl_attention_uses_gemm(k, probs, T, precision)) {
        attn_gemm_backward(k, dqkv, dout, qkv, out, probs, B, T, D, NH, precision, scratch);
        return;
    }
    void *fa = attn_flash_scratch(scratch, T, D, precision);
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t row0 = (size_t)b * T;
            const float *q = qkv + row0 * 3 * D + (size_t)h * hd;
            float *dq = dqkv + row0 * 3 * D + (size_t)h * hd;
            const float *o = out + row0 * D + (size_t)h * hd, *g = dout + row0 * D + (size_t)h * hd;
            pl_flash_attention_backward(T, hd, scale, q, q + D, q + 2 * D, 3 * D, o, g, D,
                                        lse + ((size_t)b * NH + h) * T, dq, dq + D, dq + 2 * D, precision, fa);
        }
}
