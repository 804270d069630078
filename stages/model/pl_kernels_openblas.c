// The `openblas` backend of the kernel interface (pl_kernels.h): cblas_sgemm, single-threaded inside the caller's task.
#include <cblas.h>
#include <string.h>

#include "pl_kernels.h"

static void openblas_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                          const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

static const PlKernels openblas_kernels = {"openblas", openblas_gemm};

const PlKernels *pl_kernels_openblas(void) { return &openblas_kernels; }

PlStatus pl_kernels_find(const char *name, const PlKernels **out) {
    *out = NULL;
    if (!name || strcmp(name, "auto") == 0 || strcmp(name, "openblas") == 0) {
        *out = &openblas_kernels;
        return PL_OK;
    }
    return PL_FAIL(PL_ERR_ARG, "unknown kernel backend '%s' (known: auto, openblas)", name);
}
