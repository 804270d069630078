// BF16 (bfloat16: the top 16 bits of an IEEE float32) conversion, the one owner of the rounding rule every BF16 path
// uses: float -> bf16 rounds to nearest, ties to even (as oneDNN, PyTorch and the AVX512-BF16 VCVTNEPS2BF16
// instruction do; that instruction also flushes denormals, which these plain-C versions keep), NaN stays a (quiet)
// NaN. bf16 -> float is exact. Header-only, branch-free per element so loops over it vectorise.
#ifndef PL_BF16_H
#define PL_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t pl_bf16_from_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t is_nan = (u & 0x7fffffffu) > 0x7f800000u;
    return (uint16_t)(is_nan ? ((u >> 16) | 0x40u) : rounded);
}

static inline float pl_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// dst[i] = bf16(src[i]) for n elements: the same rule, compiled per CPU level (pl_bf16.c, runtime dispatch), so bulk
// conversions run 16 lanes wide where the CPU has AVX-512; every level gives the same bits.
void pl_bf16_from_f32_n(uint16_t *restrict dst, const float *restrict src, size_t n);

// dst (rows, cols) with row stride ldd = bf16 of src (rows, cols) with row stride lds.
void pl_bf16_from_f32_rows(uint16_t *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols);

#endif
