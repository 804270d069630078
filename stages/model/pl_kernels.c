// What the kernel backends share (pl_kernels.h): the precision names, the scratch rule of linear(), and the choice of
// a backend by name ("auto": a fixed rule per CPU and precision, so every rank of a job picks the same one).
#include <string.h>

#include "pl_dispatch.h"
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

// Whether backend k computes this precision on this CPU: it prepares a small weight.
static PlStatus kernels_check(const PlKernels *k, PlPrecision precision) {
    static const float w[64 * 64];
    PlKernelMat *mat = NULL;
    PL_TRY(k->mat_create(w, NULL, 64, 64, precision, &mat));
    k->mat_destroy(mat);
    return PL_OK;
}

PlStatus pl_kernels_find(const char *name, PlPrecision precision, const PlKernels **out) {
    *out = NULL;
    const PlKernels *k;
    if (!name || strcmp(name, "auto") == 0) {
        // The rule (docs/performance.md has the measurements): BF16 needs oneDNN; FP32 runs on oneDNN where the CPU has
        // AVX-512 (its packed-weight matmul with fused post-ops: 85% of the FMA peak on ViT-S/16 against OpenBLAS's
        // 77% on Zen 4, and OpenBLAS falls to its Haswell kernels where OPENBLAS_CORETYPE=Haswell is set), on
        // OpenBLAS elsewhere.
        k = precision == PL_PRECISION_BF16 || pl_cpu_level() >= PL_CPU_AVX512 ? pl_kernels_onednn() : pl_kernels_openblas();
    } else if (strcmp(name, "openblas") == 0) {
        k = pl_kernels_openblas();
    } else if (strcmp(name, "onednn") == 0) {
        k = pl_kernels_onednn();
    } else {
        return PL_FAIL(PL_ERR_ARG, "unknown kernel backend '%s' (known: auto, openblas, onednn)", name);
    }
    PlStatus st = kernels_check(k, precision);
    if (st != PL_OK) return pl_error_wrap("--kernels %s --precision %s", name ? name : "auto", pl_precision_name(precision));
    *out = k;
    return PL_OK;
}
