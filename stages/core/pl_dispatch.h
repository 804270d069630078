// Runtime CPU dispatch: builds are portable (no -march=native by default), and hot loops that gain from wider
// vectors are compiled once per CPU level and chosen at run time by what the CPU reports (cpuid), so a CPU without
// the instructions never reaches them. The levels' code computes bit-identical results (see each kernel file), so
// embeddings do not depend on which level ran, also across ranks on different CPU generations.
#ifndef PL_DISPATCH_H
#define PL_DISPATCH_H

#if defined(__x86_64__) && defined(__GNUC__)
#define PL_DISPATCH_X86 1
#else
#define PL_DISPATCH_X86 0
#endif

typedef enum PlCpuLevel { PL_CPU_BASELINE = 0, PL_CPU_AVX2 = 1, PL_CPU_AVX512 = 2, PL_CPU_AVX512_BF16 = 3 } PlCpuLevel;

// The best level this CPU supports (AVX-512 means AVX-512F; AVX512-BF16 means AVX-512F + BW + VL + the BF16
// dot-product instructions, as on Cooper Lake, Sapphire Rapids, Zen 4 and Zen 5). Kernel families with no copy for a
// level use the best copy below it.
PlCpuLevel pl_cpu_level(void);
const char *pl_cpu_level_name(PlCpuLevel level);   // "baseline", "avx2", "avx512", "avx512bf16"

#endif
