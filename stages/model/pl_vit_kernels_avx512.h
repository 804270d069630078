// Hand-vectorised AVX-512 copies of the ViT row kernels where the compiler's copy of pl_vit_kernels_body.h is slow
// (softmax). Included once by pl_vit_kernels.c, after the generic copies. Each performs exactly the generic body's
// operations in the same order (no fused multiply-adds, the same partial sums combined the same way), so it stays
// bit-identical to every other level (test_vit.c: test_kernels_identical_at_every_cpu_level).
#ifndef PL_VIT_KERNELS_AVX512_H
#define PL_VIT_KERNELS_AVX512_H

#include <immintrin.h>

#define PL_V512 __attribute__((target("avx512f")))

// PL_K(exp) of pl_vit_kernels_body.h, 16 lanes: the same clamps (MAXPS / MINPS return their second operand for a
// NaN, as the body's ternaries do), range reduction, polynomial and NaN pass-through.
PL_V512 static inline __m512 vk512_exp(__m512 in) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 x = _mm512_max_ps(in, _mm512_set1_ps(-87.3f));   // in > -87.3 ? in : -87.3
    x = _mm512_min_ps(x, _mm512_set1_ps(88.3f));             // x < 88.3 ? x : 88.3
    __m512 fn = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), magic), magic);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(fn, _mm512_set1_ps(0.693359375f)));
    r = _mm512_add_ps(r, _mm512_mul_ps(fn, _mm512_set1_ps(2.12194440e-4f)));
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_add_ps(_mm512_mul_ps(y, r), _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(y, r), r), r), _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(fn), _mm512_set1_epi32(127)), 23);
    __m512 v = _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(in, in, _CMP_ORD_Q), in, v);   // in == in ? v : in
}

// The body's tree over 16 lanes: lane j + lane j + w for w = 8, 4, 2, 1; lane 0.
PL_V512 static inline float vk512_sum_tree(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}

// PL_K(softmax_rows) (see there for the order of every operation).
PL_V512 static void pl_k_softmax_rows_avx512_hand(float *x, int ldx, int rows, int n) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * ldx;
        const int body = n & ~15;
        const __mmask16 tail = (__mmask16)((1u << (n - body)) - 1u);
        __m512 acc = _mm512_set1_ps(xr[0]);
        for (int i = 0; i < body; i += 16) acc = _mm512_max_ps(_mm512_loadu_ps(xr + i), acc);
        float m = _mm512_reduce_max_ps(acc);
        for (int i = body; i < n; i++) m = xr[i] > m ? xr[i] : m;
        const __m512 vm = _mm512_set1_ps(m);
        __m512 sum = _mm512_setzero_ps();
        for (int i = 0; i < body; i += 16) {
            __m512 e = vk512_exp(_mm512_sub_ps(_mm512_loadu_ps(xr + i), vm));
            _mm512_storeu_ps(xr + i, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (tail) {
            __m512 e = vk512_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, xr + body), vm));
            _mm512_mask_storeu_ps(xr + body, tail, e);
            sum = _mm512_mask_add_ps(sum, tail, sum, e);
        }
        const __m512 inv = _mm512_set1_ps(1.0f / vk512_sum_tree(sum));
        for (int i = 0; i < body; i += 16) _mm512_storeu_ps(xr + i, _mm512_mul_ps(_mm512_loadu_ps(xr + i), inv));
        if (tail) _mm512_mask_storeu_ps(xr + body, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, xr + body), inv));
    }
}

#undef PL_V512
#endif
