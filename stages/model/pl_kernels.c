// What the kernel backends share (pl_kernels.h): the precision names, the scratch rule of linear(), and a GEMM cut
// into fixed row blocks over the process's pool (the registry and the choice of a backend: pl_kernels_registry.c).
#include <string.h>

#include "pl_kernels.h"

PlStatus pl_precision_parse(const char *name, PlPrecision *out) {
    if (name && strcmp(name, "fp32") == 0) *out = PL_PRECISION_FP32;
    else if (name && strcmp(name, "bf16") == 0) *out = PL_PRECISION_BF16;
    else return PL_FAIL(PL_ERR_ARG, "unknown precision '%s' (known: fp32, bf16)", name ? name : "(null)");
    return PL_OK;
}

const char *pl_precision_name(PlPrecision precision) { return precision == PL_PRECISION_BF16 ? "bf16" : "fp32"; }

size_t pl_kernels_linear_scratch_bytes(int m, int k, PlPrecision precision) {
    if (precision != PL_PRECISION_BF16 || m < 1 || k < 1) return 0;
    return ((size_t)m * (size_t)k * sizeof(uint16_t) + 63) & ~(size_t)63;
}

int pl_kernels_pool_rows(const PlKernels *k) {
    int align = k->row_align > 0 ? k->row_align : 1;
    return (64 + align - 1) / align * align;
}

typedef struct PooledGemm {
    const PlKernels *k;
    int ta, tb, m, n, kk, lda, ldb, ldc, rows;
    float alpha, beta;
    const float *a, *b;
    float *c;
} PooledGemm;

// Pool task `task`: rows [task * rows, ...) of C. Row r of op(A) starts at a + r * lda, or at column r when A is
// transposed.
static void gemm_pooled_block(void *ctx, int task, int thread) {
    (void)thread;
    const PooledGemm *g = ctx;
    int r0 = task * g->rows, m = g->m - r0 < g->rows ? g->m - r0 : g->rows;
    const float *a = g->ta ? g->a + r0 : g->a + (size_t)r0 * (size_t)g->lda;
    float *c = g->c + (size_t)r0 * (size_t)g->ldc;
    g->k->gemm(g->ta, g->tb, m, g->n, g->kk, g->alpha, a, g->lda, g->b, g->ldb, g->beta, c, g->ldc);
}

void pl_kernels_gemm_pooled(const PlKernels *k, PlThreadPool *pool, int trans_a, int trans_b, int m, int n, int kk,
                            float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                            int ldc) {
    if (m <= 0 || n <= 0) return;
    PooledGemm g = {k, trans_a, trans_b, m, n, kk, lda, ldb, ldc, pl_kernels_pool_rows(k), alpha, beta, a, b, c};
    int blocks = (m + g.rows - 1) / g.rows;
    if (pool && blocks > 1) {
        pl_threadpool_run(pool, gemm_pooled_block, &g, blocks);
    } else {
        for (int t = 0; t < blocks; t++) gemm_pooled_block(&g, t, 0);
    }
}
