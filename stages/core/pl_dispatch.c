// CPU level detection for runtime dispatch (see pl_dispatch.h).
#include "pl_dispatch.h"

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
