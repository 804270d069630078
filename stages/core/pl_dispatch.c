// CPU level detection for runtime dispatch (see pl_dispatch.h).
#include "pl_dispatch.h"

#include <string.h>

PlCpuLevel pl_cpu_level(void) {
#if PL_DISPATCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bf16"))
        return PL_CPU_AVX512_BF16;
    if (__builtin_cpu_supports("avx512f")) return PL_CPU_AVX512;
    if (__builtin_cpu_supports("avx2")) return PL_CPU_AVX2;
#endif
    return PL_CPU_BASELINE;
}

const char *pl_cpu_level_name(PlCpuLevel level) {
    switch (level) {
    case PL_CPU_BASELINE: return "baseline";
    case PL_CPU_AVX2: return "avx2";
    case PL_CPU_AVX512: return "avx512";
    case PL_CPU_AVX512_BF16: return "avx512bf16";
    }
    return "?";
}

static PlCpuLevel dispatch_level_at(const void *table, size_t i, size_t stride, size_t level_offset) {
    PlCpuLevel level;
    memcpy(&level, (const char *)table + i * stride + level_offset, sizeof level);
    return level;
}

size_t pl_dispatch_pick(const void *table, size_t count, size_t stride, size_t level_offset, PlCpuLevel best) {
    size_t pick = 0;
    for (size_t i = 0; i < count; i++)
        if (dispatch_level_at(table, i, stride, level_offset) <= best) pick = i;
    return pick;
}

PlStatus pl_dispatch_find(const void *table, size_t count, size_t stride, size_t level_offset, PlCpuLevel level,
                          PlCpuLevel best, const char *family, size_t *index) {
    if (level > best)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "this CPU has no %s for the %s kernels (best: %s)", pl_cpu_level_name(level),
                       family, pl_cpu_level_name(best));
    for (size_t i = 0; i < count; i++)
        if (dispatch_level_at(table, i, stride, level_offset) == level) {
            *index = i;
            return PL_OK;
        }
    return PL_FAIL(PL_ERR_UNSUPPORTED, "no %s copy of the %s kernels in this build", pl_cpu_level_name(level), family);
}
