// Bulk FP32 -> BF16 conversion (pl_bf16.h) compiled once per CPU level and chosen at run time (pl_dispatch.h): the
// element rule is pl_bf16_from_f32 in every copy, so all levels give the same bits; only the vector width differs.
#include "pl_bf16.h"

#include <stdatomic.h>
#include <stddef.h>

#include "pl_dispatch.h"

#define PL_BF16_BODY                                                                                               \
    for (size_t i = 0; i < n; i++) dst[i] = pl_bf16_from_f32(src[i]);

static void bf16_n_baseline(uint16_t *restrict dst, const float *restrict src, size_t n) { PL_BF16_BODY }
#if PL_DISPATCH_X86
__attribute__((target("avx2"))) static void bf16_n_avx2(uint16_t *restrict dst, const float *restrict src, size_t n) {
    PL_BF16_BODY
}
__attribute__((target("avx512f,avx512bw"))) static void bf16_n_avx512(uint16_t *restrict dst, const float *restrict src,
                                                                      size_t n) {
    PL_BF16_BODY
}
#endif

typedef void (*Bf16Fn)(uint16_t *restrict, const float *restrict, size_t);
typedef struct Bf16Copy {
    PlCpuLevel level;
    Bf16Fn fn;
} Bf16Copy;
static const Bf16Copy bf16_copies[] = {
    {PL_CPU_BASELINE, bf16_n_baseline},
#if PL_DISPATCH_X86
    {PL_CPU_AVX2, bf16_n_avx2},
    {PL_CPU_AVX512, bf16_n_avx512},
#endif
};
static _Atomic(Bf16Fn) bf16_fn;

static Bf16Fn bf16_pick(void) {
    Bf16Fn f = atomic_load_explicit(&bf16_fn, memory_order_acquire);
    if (f) return f;
    f = bf16_copies[pl_dispatch_pick(bf16_copies, sizeof bf16_copies / sizeof bf16_copies[0], sizeof bf16_copies[0],
                                     offsetof(Bf16Copy, level), pl_cpu_level())].fn;
    atomic_store_explicit(&bf16_fn, f, memory_order_release);
    return f;
}

void pl_bf16_from_f32_n(uint16_t *restrict dst, const float *restrict src, size_t n) { bf16_pick()(dst, src, n); }

void pl_bf16_from_f32_rows(uint16_t *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols) {
    Bf16Fn f = bf16_pick();
    for (size_t r = 0; r < rows; r++) f(dst + r * ldd, src + r * lds, cols);
}
