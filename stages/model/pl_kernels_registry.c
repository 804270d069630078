// The registry of kernel backends (pl_kernels.h): the table of the backends built in, one row each, and everything
// that goes by name over it: --kernels lookup ("auto" included), the list of known names, the default backend.
// Adding a backend: its own file defining a PlKernelsBackend, one row here (guarded by the compile definition of its
// CMake option when it is optional), and that option in CMakeLists.txt.
#include <stdio.h>
#include <string.h>

#include "pl_kernels.h"

extern const PlKernelsBackend pl_kernels_openblas_backend, pl_kernels_onednn_backend;
#ifdef PROTLOC_KERNELS_REFERENCE
extern const PlKernelsBackend pl_kernels_reference_backend;
#endif

// The first row is the default backend (pl_kernels_default) and wins auto's ties.
static const PlKernelsBackend *const kernels_table[] = {
    &pl_kernels_openblas_backend,
    &pl_kernels_onednn_backend,
#ifdef PROTLOC_KERNELS_REFERENCE
    &pl_kernels_reference_backend,
#endif
};

int pl_kernels_backend_count(void) { return (int)(sizeof kernels_table / sizeof kernels_table[0]); }

const PlKernelsBackend *pl_kernels_backend(int i) {
    return i >= 0 && i < pl_kernels_backend_count() ? kernels_table[i] : NULL;
}

const PlKernels *pl_kernels_default(void) { return kernels_table[0]->kernels; }

void pl_kernels_names(char *buf, size_t size, int bf16_gemm_only) {
    if (size == 0) return;
    size_t used = (size_t)snprintf(buf, size, "auto");
    for (int i = 0; i < pl_kernels_backend_count() && used < size; i++) {
        if (bf16_gemm_only && !kernels_table[i]->kernels->gemm_bf16) continue;
        used += (size_t)snprintf(buf + used, size - used, ", %s", kernels_table[i]->name);
    }
}

void pl_kernels_single_thread(void) {
    for (int i = 0; i < pl_kernels_backend_count(); i++)
        if (kernels_table[i]->single_thread) kernels_table[i]->single_thread();
}

// The row auto picks for this precision: the highest auto_rank, the earlier row on a tie; NULL when none wants it.
static const PlKernelsBackend *kernels_auto(PlPrecision precision) {
    const PlKernelsBackend *best = NULL;
    int best_rank = 0;
    for (int i = 0; i < pl_kernels_backend_count(); i++) {
        int rank = kernels_table[i]->auto_rank ? kernels_table[i]->auto_rank(precision) : 0;
        if (rank > best_rank) best = kernels_table[i], best_rank = rank;
    }
    return best;
}

PlStatus pl_kernels_find(const char *name, PlPrecision precision, const PlKernels **out) {
    *out = NULL;
    const PlKernelsBackend *b = NULL;
    if (!name || strcmp(name, "auto") == 0) {
        b = kernels_auto(precision);
        if (!b)
            return PL_FAIL(PL_ERR_UNSUPPORTED, "--kernels auto --precision %s: no backend built in computes it",
                           pl_precision_name(precision));
    } else {
        for (int i = 0; i < pl_kernels_backend_count() && !b; i++)
            if (strcmp(name, kernels_table[i]->name) == 0) b = kernels_table[i];
        if (!b) {
            char known[256];
            pl_kernels_names(known, sizeof known, 0);
            return PL_FAIL(PL_ERR_ARG, "unknown kernel backend '%s' (known: %s)", name, known);
        }
    }
    if (b->probe(precision) != PL_OK)
        return pl_error_wrap("--kernels %s --precision %s", name ? name : "auto", pl_precision_name(precision));
    *out = b->kernels;
    return PL_OK;
}
