// The `openblas` backend of the kernel interface (pl_kernels.h): cblas_sgemm, single-threaded inside the caller's task.
// FP32 only (Debian 12's OpenBLAS 0.3.21 exports no BF16 GEMM); linear() is one sgemm followed by the bias (and GELU)
// pass of pl_vit_kernels.h, exactly the arithmetic the ViT forward has always used.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "pl_kernels.h"
#include "pl_vit_kernels.h"

static void openblas_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                          const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

struct PlKernelMat {   // the borrowed weight and bias, as they are
    const float *w, *bias;
    int n, k;
};

static PlStatus openblas_probe(PlPrecision precision) {
    if (precision == PL_PRECISION_FP32) return PL_OK;
    char bf16[128];
    pl_kernels_names(bf16, sizeof bf16, 1);
    return PL_FAIL(PL_ERR_UNSUPPORTED, "the openblas kernels compute FP32 only (Debian's OpenBLAS has no BF16 GEMM): "
                                       "use --kernels %s for --precision %s", bf16, pl_precision_name(precision));
}

static PlStatus openblas_mat_create(const float *w, const float *bias, int n, int k, PlPrecision precision,
                                    PlKernelMat **out) {
    *out = NULL;
    PL_TRY(openblas_probe(precision));
    PlKernelMat *m = pl_calloc(1, sizeof *m);
    if (!m) return PL_ERR_NOMEM;
    *m = (PlKernelMat){w, bias, n, k};
    *out = m;
    return PL_OK;
}

static void openblas_mat_destroy(PlKernelMat *mat) { free(mat); }

static PlStatus openblas_mat_plan(PlKernelMat *mat, int m, int lda, int ldc, int flags) {
    if ((flags & PL_LINEAR_ACCUMULATE) && (flags & PL_LINEAR_GELU))
        return PL_FAIL(PL_ERR_ARG, "linear: GELU and accumulate together are not supported");
    if (flags & (PL_LINEAR_BF16_IN | PL_LINEAR_BF16_OUT))
        return PL_FAIL(PL_ERR_UNSUPPORTED, "the openblas kernels have no BF16 operands");
    return PL_OK;
}

// C = [C +] A W^T (one sgemm, beta 1 when accumulating), then + bias (with GELU when asked) row by row.
static void openblas_linear(const PlKernelMat *mat, int m, const void *av, int lda, int flags, void *cv, int ldc,
                            void *scratch) {
    if (m <= 0) return;
    const float *a = av;
    float *c = cv;
    openblas_gemm(0, 1, m, mat->n, mat->k, 1.0f, a, lda, mat->w, mat->k, (flags & PL_LINEAR_ACCUMULATE) ? 1.0f : 0.0f, c, ldc);
    if (flags & PL_LINEAR_GELU) {
        if (mat->bias && ldc == mat->n) pl_vit_bias_gelu(c, m, mat->n, mat->bias);
        else
            for (int i = 0; i < m; i++) {
                if (mat->bias) pl_vit_add_bias(c + (size_t)i * ldc, ldc, 1, mat->n, mat->bias);
                pl_vit_gelu_forward(c + (size_t)i * ldc, c + (size_t)i * ldc, (size_t)mat->n);
            }
    } else if (mat->bias) {
        pl_vit_add_bias(c, ldc, m, mat->n, mat->bias);
    }
}

static const PlKernels openblas_kernels = {"openblas",          48,   256, openblas_gemm,
                                           NULL,                openblas_mat_create, openblas_mat_destroy,
                                           openblas_mat_plan,   openblas_linear};

// auto's FP32 backend where oneDNN's rank does not beat it (CPUs without AVX-512; docs/performance.md); no BF16
static int openblas_auto_rank(PlPrecision precision) { return precision == PL_PRECISION_FP32 ? 1 : 0; }

static void openblas_version(char *buf, size_t size) { snprintf(buf, size, "%s", openblas_get_config()); }

static void openblas_single_thread(void) { openblas_set_num_threads(1); }

const PlKernelsBackend pl_kernels_openblas_backend = {
    .name = "openblas",
    .description = "OpenBLAS cblas_sgemm, FP32 only; bias and GELU in a pass after the GEMM",
    .probe = openblas_probe,
    .auto_rank = openblas_auto_rank,
    .kernels = &openblas_kernels,
    .version = openblas_version,
    .single_thread = openblas_single_thread,
    .options = NULL,
};
