// The kernel interface: the dense linear algebra the ViT's training path calls (and the engine's backends
// implement), as one table of function pointers with one backend per file (the IOR aiori.h pattern).
//
// Today one backend exists: `openblas` (pl_kernels_openblas.c), always built. A backend's functions are pure
// compute on caller-owned buffers: no allocation, no threads of their own (callers run them inside the process's
// one thread pool, one call per task, with the BLAS library set to one thread by the program).
// Determinism: for fixed shapes a backend returns bit-identical results on every call (callers rely on it for
// thread- and rank-count-independent training).
#ifndef PL_KERNELS_H
#define PL_KERNELS_H

#include "pl_error.h"

typedef struct PlKernels {
    const char *name;   // "openblas"
    // Row-major C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C; op transposes when trans_* != 0.
    void (*gemm)(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc);
} PlKernels;

const PlKernels *pl_kernels_openblas(void);
// The backend called `name` ("auto" = the default, openblas); PL_ERR_ARG naming the known ones otherwise.
PlStatus pl_kernels_find(const char *name, const PlKernels **out);

#endif
