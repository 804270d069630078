// The kernel interface: the dense linear algebra of the ViT (inference and training) and of the kNN search, as one
// table of function pointers (PlKernels) with one backend per file, and a registry of the backends built in (the IOR
// aiori.h pattern): each backend file defines one PlKernelsBackend (name, description, availability probe, the
// auto rule's rank, its PlKernels, its library's version) and pl_kernels_registry.c lists them, one row each, the
// optional ones guarded by their CMake option. Selection by name, help text, refusals and `protloc --version` loop
// over that table, so adding a backend is one file, one row and one CMake option (docs/architecture.md).
// Backends compute on caller-owned buffers and start no threads of their own: callers run them inside the process's
// one thread pool, one call per task (the program calls pl_kernels_single_thread once; the onednn backend, for one,
// runs each primitive single-threaded on the calling thread, so oneDNN's OpenMP pool never competes with protloc's).
// Determinism: for fixed shapes a backend returns bit-identical results on every call, whatever thread calls it
// (callers rely on it for thread- and rank-count-independent embeddings and training).
//
// Ownership: the tables are static. A PlKernelMat is owned by whoever created it (mat_destroy frees it) and may borrow
// the weight and bias it was made from. mat_plan and linear may be called from many threads at once.
#ifndef PL_KERNELS_H
#define PL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"

typedef enum PlPrecision {
    PL_PRECISION_FP32 = 0,   // FP32 everywhere (the default; every reproducibility guarantee)
    PL_PRECISION_BF16 = 1,   // GEMM and attention inputs rounded to BF16, FP32 accumulation and FP32 statistics
} PlPrecision;

PlStatus pl_precision_parse(const char *name, PlPrecision *out);   // "fp32" | "bf16"
const char *pl_precision_name(PlPrecision precision);

typedef struct PlKernelMat PlKernelMat;   // a weight matrix prepared by one backend (see mat_create)

enum {
    PL_LINEAR_ACCUMULATE = 1,   // C += result (the residual add) instead of C = result
    PL_LINEAR_GELU = 2,         // result = gelu(x W^T + bias), the exact erf form (not with ACCUMULATE)
    PL_LINEAR_BF16_IN = 4,      // BF16 mats only: A is already BF16 (uint16_t, row stride lda elements)
    PL_LINEAR_BF16_OUT = 8,     // BF16 mats only: C is written as BF16 (uint16_t, row stride ldc), rounded to nearest
                                // even from the FP32 result (not with ACCUMULATE)
};

typedef struct PlKernels {
    const char *name;   // the backend's name (its PlKernelsBackend's)
    // Callers that cut the rows of one product into several calls get bit-identical rows whatever the cut when every
    // call starts on a multiple of row_align rows (OpenBLAS: 48, its rows depend on their place in its 16/24-row
    // tiles; oneDNN: 1, its rows are independent), and are fastest with calls of about max_rows rows.
    int row_align, max_rows;
    // Row-major C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C; op transposes when trans_* != 0. FP32.
    void (*gemm)(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc);
    // The same with BF16 operands (pl_bf16.h), exact products and FP32 accumulation into FP32 C. NULL when the
    // backend has no BF16 GEMM.
    void (*gemm_bf16)(int trans_a, int trans_b, int m, int n, int k, float alpha, const uint16_t *a, int lda,
                      const uint16_t *b, int ldb, float beta, float *c, int ldc);
    // Prepare an nn.Linear: weight w (n, k) row-major and bias (n) (may be NULL), for linear(): converted to
    // `precision` and laid out the way the backend computes fastest, once. The mat may keep pointers to w and bias
    // (they must outlive it). PL_ERR_UNSUPPORTED when the backend (or the CPU) lacks the precision.
    PlStatus (*mat_create)(const float *w, const float *bias, int n, int k, PlPrecision precision, PlKernelMat **out);
    void (*mat_destroy)(PlKernelMat *mat);
    // Create everything linear() needs for m rows with these strides and flags, so that linear() itself neither
    // fails nor allocates (call it at create time for every row count the caller will use).
    PlStatus (*mat_plan)(PlKernelMat *mat, int m, int lda, int ldc, int flags);
    // C (m, n) (row stride ldc) = [C +] act(A (m, k) (row stride lda) W^T + bias) with a planned (m, lda, ldc,
    // flags). A and C are float, or BF16 (uint16_t) where the flags say so. scratch:
    // pl_kernels_linear_scratch_bytes(m, k, precision) bytes, 64-byte aligned, private to the calling thread (NULL
    // when that is 0).
    void (*linear)(const PlKernelMat *mat, int m, const void *a, int lda, int flags, void *c, int ldc, void *scratch);
} PlKernels;

// gemm (FP32) spread over the process's pool for callers whose parallelism is one big product (the probe heads): C's
// m rows are cut into fixed blocks of pl_kernels_pool_rows(k) rows, one gemm call and one pool task each. The blocks
// do not depend on the pool's size, so C is bit-identical for any thread count. pool NULL: the calling thread
// computes the same blocks. Not for use inside a pool task (the pool is not re-entrant).
void pl_kernels_gemm_pooled(const PlKernels *k, PlThreadPool *pool, int trans_a, int trans_b, int m, int n, int kk,
                            float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                            int ldc);
// The row block of pl_kernels_gemm_pooled: the smallest multiple of row_align that is at least 64.
int pl_kernels_pool_rows(const PlKernels *k);
// Scratch linear() needs for m rows of k inputs at this precision (the BF16 copy of A; 0 for FP32).
size_t pl_kernels_linear_scratch_bytes(int m, int k, PlPrecision precision);

// One registered backend (a row of the registry, pl_kernels_registry.c; defined in the backend's own file).
typedef struct PlKernelsBackend {
    const char *name;          // what --kernels takes; kernels->name is the same
    const char *description;   // one line for help and --version
    // PL_OK when it computes `precision` on this CPU, else PL_ERR_UNSUPPORTED with the reason.
    PlStatus (*probe)(PlPrecision precision);
    // How much "auto" wants it for `precision` on this CPU (a fixed rule of the CPU, so every rank of a job agrees):
    // auto takes the highest rank, the earlier row on a tie; 0 (or a NULL function): never chosen by auto.
    int (*auto_rank)(PlPrecision precision);
    const PlKernels *kernels;   // the table it provides (static)
    // Its library and version on one line into buf (the library linked, not the header compiled against).
    void (*version)(char *buf, size_t size);
    // Make its library compute on the calling thread only (callers run it inside their own pool); NULL: nothing.
    void (*single_thread)(void);
    const char *options;   // help for its own options, NULL when it has none
} PlKernelsBackend;

// The registry: backends 0..pl_kernels_backend_count()-1 in table order (NULL out of range).
int pl_kernels_backend_count(void);
const PlKernelsBackend *pl_kernels_backend(int i);
// The backend of callers that pass no kernels (NULL): the table's first row, FP32.
const PlKernels *pl_kernels_default(void);
// "auto, " and the registered names separated by ", " into buf (truncated to size); bf16_gemm_only: only the
// backends with a BF16 GEMM.
void pl_kernels_names(char *buf, size_t size, int bf16_gemm_only);
// Every backend's single_thread hook (the program calls it once before computing).
void pl_kernels_single_thread(void);
// The backend called `name` for this precision: a registered name or "auto" (NULL = "auto"): auto picks, by a fixed
// rule from the CPU (the backends' auto_rank, so every rank of a job picks the same), the backend measured fastest
// for the precision (docs/performance.md). PL_ERR_ARG for an unknown name (the message lists the known ones),
// PL_ERR_UNSUPPORTED when the backend cannot compute the precision on this CPU.
PlStatus pl_kernels_find(const char *name, PlPrecision precision, const PlKernels **out);

#endif
