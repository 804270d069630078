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

#include <stddef.h>

#include "pl_error.h"

// The best level this CPU supports (AVX-512 means AVX-512F; AVX512-BF16 means AVX-512F + BW + VL + the BF16
// dot-product instructions, as on Cooper Lake, Sapphire Rapids, Zen 4 and Zen 5). Kernel families with no copy for a
// level use the best copy below it.
PlCpuLevel pl_cpu_level(void);
const char *pl_cpu_level_name(PlCpuLevel level);   // "baseline", "avx2", "avx512", "avx512bf16"

// A kernel family's copies are a table of `count` entries of `stride` bytes, in ascending level order, each holding
// its PlCpuLevel at byte `level_offset` (offsetof). pl_dispatch_pick: the index of the copy to run on a CPU whose best
// level is `best` (the highest level not above it). pl_dispatch_find: the index of the copy at exactly `level`
// (tests and benchmarks force levels), PL_ERR_UNSUPPORTED naming the family when the CPU (best) or the build lacks it.
size_t pl_dispatch_pick(const void *table, size_t count, size_t stride, size_t level_offset, PlCpuLevel best);
PlStatus pl_dispatch_find(const void *table, size_t count, size_t stride, size_t level_offset, PlCpuLevel level,
                          PlCpuLevel best, const char *family, size_t *index);

#endif
