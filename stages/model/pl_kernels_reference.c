// The `reference` backend of the kernel interface (pl_kernels.h), for tests: plain C loops, FP32 operands, every dot
// product accumulated in double and rounded once, so its results do not depend on blocking, row order or CPU. Never
// chosen by "auto"; built with the CMake option PROTLOC_KERNELS_REFERENCE (which also adds its row to the registry).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "pl_kernels.h"

// op(X)[i][p] of a row-major X with row stride ld (transposed: X[p][i]).
static double ref_at(const float *x, int ld, int trans, int i, int p) {
    return trans ? (double)x[(size_t)p * (size_t)ld + (size_t)i] : (double)x[(size_t)i * (size_t)ld + (size_t)p];
}

static void reference_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                           const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += ref_at(a, lda, trans_a, i, p) * ref_at(b, ldb, trans_b, p, j);
            float *cij = c + (size_t)i * (size_t)ldc + (size_t)j;
            // beta 0: C is not read (BLAS semantics: a NaN already there does not propagate)
            *cij = (float)(beta == 0.0f ? alpha * s : alpha * s + (double)beta * *cij);
        }
}

struct PlKernelMat {   // the borrowed weight (n, k) and bias (n)
    const float *w, *bias;
    int n, k;
};

static PlStatus reference_probe(PlPrecision precision) {
    if (precision == PL_PRECISION_FP32) return PL_OK;
    return PL_FAIL(PL_ERR_UNSUPPORTED, "the reference kernels compute FP32 only (not %s)", pl_precision_name(precision));
}

static PlStatus reference_mat_create(const float *w, const float *bias, int n, int k, PlPrecision precision,
                                     PlKernelMat **out) {
    *out = NULL;
    PL_TRY(reference_probe(precision));
    if (n < 1 || k < 1) return PL_FAIL(PL_ERR_ARG, "reference: weight shape (%d, %d)", n, k);
    PlKernelMat *m = pl_calloc(1, sizeof *m);
    if (!m) return PL_ERR_NOMEM;
    *m = (PlKernelMat){w, bias, n, k};
    *out = m;
    return PL_OK;
}

static void reference_mat_destroy(PlKernelMat *mat) { free(mat); }

static PlStatus reference_mat_plan(PlKernelMat *mat, int m, int lda, int ldc, int flags) {
    if ((flags & PL_LINEAR_ACCUMULATE) && (flags & PL_LINEAR_GELU))
        return PL_FAIL(PL_ERR_ARG, "linear: GELU and accumulate together are not supported");
    if (flags & (PL_LINEAR_BF16_IN | PL_LINEAR_BF16_OUT))
        return PL_FAIL(PL_ERR_UNSUPPORTED, "the reference kernels have no BF16 operands");
    if (m < 1 || lda < mat->k || ldc < mat->n)
        return PL_FAIL(PL_ERR_ARG, "linear: %d rows with strides %d, %d for a (%d, %d) weight", m, lda, ldc, mat->n,
                       mat->k);
    return PL_OK;
}

// C = [C +] act(A W^T + bias), each element from one double sum; GELU is the exact erf form.
static void reference_linear(const PlKernelMat *mat, int m, const void *av, int lda, int flags, void *cv, int ldc,
                             void *scratch) {
    const float *a = av;
    float *c = cv;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < mat->n; j++) {
            double s = 0;
            for (int p = 0; p < mat->k; p++)
                s += (double)a[(size_t)i * (size_t)lda + (size_t)p] * mat->w[(size_t)j * (size_t)mat->k + (size_t)p];
            if (mat->bias) s += mat->bias[j];
            if (flags & PL_LINEAR_GELU) s = 0.5 * s * (1.0 + erf(s / sqrt(2.0)));
            float *cij = c + (size_t)i * (size_t)ldc + (size_t)j;
            *cij = (float)((flags & PL_LINEAR_ACCUMULATE) ? *cij + s : s);
        }
}

static const PlKernels reference_kernels = {
    .name = "reference",
    .row_align = 1,   // every row is computed on its own
    .max_rows = 256,
    .gemm = reference_gemm,
    .gemm_bf16 = NULL,
    .mat_create = reference_mat_create,
    .mat_destroy = reference_mat_destroy,
    .mat_plan = reference_mat_plan,
    .linear = reference_linear,
};

static void reference_version(char *buf, size_t size) { snprintf(buf, size, "no library (plain C loops)"); }

const PlKernelsBackend pl_kernels_reference_backend = {
    .name = "reference",
    .description = "test-only plain C loops, FP32 with double accumulation; never chosen by auto",
    .probe = reference_probe,
    .auto_rank = NULL,
    .kernels = &reference_kernels,
    .version = reference_version,
    .single_thread = NULL,
    .options = NULL,
};
