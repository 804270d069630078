// The 16-lane vector primitives of the flash-attention kernels, one set per CPU level: pl_flash_attention.c includes
// this file (then pl_flash_attention_body.h) once per level with FA_ISA (0 baseline, 1 AVX2+FMA, 2 AVX-512F,
// 3 AVX512-BF16), PL_FA(name) (the level's names) and PL_FATTR (its target attribute) defined. Private to it.
//
// Every level computes the same IEEE operations lane by lane: fv_fma is a fused multiply-add (fmaf in the baseline),
// fv_max(a, b) is `a > b ? a : b` (MAXPS), the exp is pl_vit_kernels_body.h's polynomial with the same separate
// multiplies and adds, and the BF16 pair dot product is VDPBF16PS or its emulation: acc = fma(a_odd, b_odd, acc),
// then acc = fma(a_even, b_even, acc), each BF16 product exact in FP32 (see pl_flash_attention.h on denormals).
#define FV PL_FA(fv)
#define FA_AW PL_FA(aw)   // a BF16 pair broadcast to all lanes
#define FA_BW PL_FA(bw)   // 16 BF16 pairs

#define FA_EXP_CONSTS                                                                                               \
    const float lo = -87.3f, hi = 88.3f, l2e = 1.44269504088896341f, magic = 12582912.0f, c1 = 0.693359375f,       \
                c2 = 2.12194440e-4f, p0 = 1.9875691500e-4f, p1 = 1.3981999507e-3f, p2 = 8.3334519073e-3f,           \
                p3 = 4.1665795894e-2f, p4 = 1.6666665459e-1f, p5 = 5.0000001201e-1f

#if FA_ISA == 0
typedef struct {
    float f[16];
} FV;
typedef struct {
    float odd, even;
} FA_AW;
typedef struct {
    FV odd, even;
} FA_BW;
#define FA_LANES(expr) \
    FV r_;             \
    for (int i = 0; i < 16; i++) r_.f[i] = (expr);  \
    return r_
static inline FV PL_FA(ld)(const float *p) { FV r; memcpy(r.f, p, sizeof r.f); return r; }
static inline void PL_FA(st)(float *p, FV v) { memcpy(p, v.f, sizeof v.f); }
static inline FV PL_FA(set1)(float x) { FA_LANES(x); }
static inline FV PL_FA(fma)(FV a, FV b, FV c) { FA_LANES(fmaf(a.f[i], b.f[i], c.f[i])); }
static inline FV PL_FA(mul)(FV a, FV b) { FA_LANES(a.f[i] * b.f[i]); }
static inline FV PL_FA(add)(FV a, FV b) { FA_LANES(a.f[i] + b.f[i]); }
static inline FV PL_FA(sub)(FV a, FV b) { FA_LANES(a.f[i] - b.f[i]); }
static inline FV PL_FA(max)(FV a, FV b) { FA_LANES(a.f[i] > b.f[i] ? a.f[i] : b.f[i]); }
static inline FV PL_FA(keep_lt)(FV v, int n, float fill) { FA_LANES(i < n ? v.f[i] : fill); }
static inline FV PL_FA(exp)(FV v) { FA_LANES(fa_exp1(v.f[i])); }
static inline float PL_FA(hmax)(FV v) {
    float m = v.f[0];
    for (int i = 1; i < 16; i++) m = v.f[i] > m ? v.f[i] : m;
    return m;
}
static inline FA_AW PL_FA(aw_set)(uint32_t a) { return (FA_AW){fa_bits_f32(a & 0xffff0000u), fa_bits_f32(a << 16)}; }
static inline FA_BW PL_FA(bw_ld)(const uint32_t *p) {
    FA_BW b;
    for (int i = 0; i < 16; i++) {
        b.odd.f[i] = fa_bits_f32(p[i] & 0xffff0000u);
        b.even.f[i] = fa_bits_f32(p[i] << 16);
    }
    return b;
}
static inline FV PL_FA(dp)(FV acc, FA_AW a, FA_BW b) {
    for (int i = 0; i < 16; i++) {
        acc.f[i] = fmaf(a.odd, b.odd.f[i], acc.f[i]);
        acc.f[i] = fmaf(a.even, b.even.f[i], acc.f[i]);
    }
    return acc;
}
// dst[0..15] = bf16 of v (flushed, rounded); dst2 (u32 lanes) = bf16(even) | bf16(odd) << 16.
static inline void PL_FA(cvt16)(void *dst, FV v) {
    uint16_t h[16];
    for (int i = 0; i < 16; i++) h[i] = fa_bf16(v.f[i]);
    memcpy(dst, h, sizeof h);
}
static inline void PL_FA(cvt_pair)(uint32_t *dst, FV even, FV odd) {
    for (int i = 0; i < 16; i++) dst[i] = (uint32_t)fa_bf16(even.f[i]) | (uint32_t)fa_bf16(odd.f[i]) << 16;
}
#undef FA_LANES

#elif FA_ISA == 1
typedef struct {
    __m256 lo, hi;
} FV;
typedef struct {
    __m256 odd, even;
} FA_AW;
typedef struct {
    FV odd, even;
} FA_BW;
PL_FATTR static inline FV PL_FA(ld)(const float *p) { return (FV){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
PL_FATTR static inline void PL_FA(st)(float *p, FV v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
PL_FATTR static inline FV PL_FA(set1)(float x) { return (FV){_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
PL_FATTR static inline FV PL_FA(fma)(FV a, FV b, FV c) {
    return (FV){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
PL_FATTR static inline FV PL_FA(mul)(FV a, FV b) { return (FV){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
PL_FATTR static inline FV PL_FA(add)(FV a, FV b) { return (FV){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
PL_FATTR static inline FV PL_FA(sub)(FV a, FV b) { return (FV){_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
PL_FATTR static inline FV PL_FA(max)(FV a, FV b) { return (FV){_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
PL_FATTR static inline FV PL_FA(keep_lt)(FV v, int n, float fill) {
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), nn = _mm256_set1_epi32(n);
    __m256 mlo = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nn, idx));
    __m256 mhi = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nn, _mm256_add_epi32(idx, _mm256_set1_epi32(8))));
    __m256 f = _mm256_set1_ps(fill);
    return (FV){_mm256_blendv_ps(f, v.lo, mlo), _mm256_blendv_ps(f, v.hi, mhi)};
}
PL_FATTR static inline __m256 PL_FA(exp8)(__m256 in) {
    FA_EXP_CONSTS;
    __m256 x = _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), in));   // NaN stays NaN
    __m256 mg = _mm256_set1_ps(magic);
    __m256 fn = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(l2e), mg), mg);
    __m256 r = _mm256_fmadd_ps(fn, _mm256_set1_ps(-c1), x);
    r = _mm256_fmadd_ps(fn, _mm256_set1_ps(c2), r);
    __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(p0), r, _mm256_set1_ps(p1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(p2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(p3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(p4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(p5));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fn), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}
PL_FATTR static inline FV PL_FA(exp)(FV v) { return (FV){PL_FA(exp8)(v.lo), PL_FA(exp8)(v.hi)}; }
PL_FATTR static inline float PL_FA(hmax)(FV v) {
    float t[16], m;
    PL_FA(st)(t, v);
    m = t[0];
    for (int i = 1; i < 16; i++) m = t[i] > m ? t[i] : m;
    return m;
}
PL_FATTR static inline FA_AW PL_FA(aw_set)(uint32_t a) {
    return (FA_AW){_mm256_set1_ps(fa_bits_f32(a & 0xffff0000u)), _mm256_set1_ps(fa_bits_f32(a << 16))};
}
PL_FATTR static inline FA_BW PL_FA(bw_ld)(const uint32_t *p) {
    __m256i a = _mm256_loadu_si256((const __m256i *)p), b = _mm256_loadu_si256((const __m256i *)(p + 8));
    __m256i mask = _mm256_set1_epi32((int)0xffff0000u);
    FA_BW r;
    r.odd = (FV){_mm256_castsi256_ps(_mm256_and_si256(a, mask)), _mm256_castsi256_ps(_mm256_and_si256(b, mask))};
    r.even = (FV){_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(b, 16))};
    return r;
}
PL_FATTR static inline FV PL_FA(dp)(FV acc, FA_AW a, FA_BW b) {
    acc.lo = _mm256_fmadd_ps(a.odd, b.odd.lo, acc.lo);
    acc.hi = _mm256_fmadd_ps(a.odd, b.odd.hi, acc.hi);
    acc.lo = _mm256_fmadd_ps(a.even, b.even.lo, acc.lo);
    acc.hi = _mm256_fmadd_ps(a.even, b.even.hi, acc.hi);
    return acc;
}
// 8 lanes to bf16 bit patterns in u32 lanes: flush |x| < 2^-56 to a signed zero, round to nearest even, quiet NaN.
PL_FATTR static inline __m256i PL_FA(bf16x8)(__m256 x) {
    __m256i u = _mm256_castps_si256(x), absu = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    __m256i tiny = _mm256_cmpgt_epi32(_mm256_set1_epi32(FA_BF16_TINY_BITS), absu);
    u = _mm256_blendv_epi8(u, _mm256_and_si256(u, _mm256_set1_epi32((int)0x80000000u)), tiny);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(r, q, nan);
}
PL_FATTR static inline void PL_FA(cvt16)(void *dst, FV v) {
    __m256i p = _mm256_packus_epi32(PL_FA(bf16x8)(v.lo), PL_FA(bf16x8)(v.hi));
    _mm256_storeu_si256((__m256i *)dst, _mm256_permute4x64_epi64(p, 0xd8));
}
PL_FATTR static inline void PL_FA(cvt_pair)(uint32_t *dst, FV even, FV odd) {
    __m256i lo = _mm256_or_si256(PL_FA(bf16x8)(even.lo), _mm256_slli_epi32(PL_FA(bf16x8)(odd.lo), 16));
    __m256i hi = _mm256_or_si256(PL_FA(bf16x8)(even.hi), _mm256_slli_epi32(PL_FA(bf16x8)(odd.hi), 16));
    _mm256_storeu_si256((__m256i *)dst, lo);
    _mm256_storeu_si256((__m256i *)(dst + 8), hi);
}

#else   // FA_ISA 2 (AVX-512F) and 3 (AVX512-BF16)
typedef __m512 FV;
PL_FATTR static inline FV PL_FA(ld)(const float *p) { return _mm512_loadu_ps(p); }
PL_FATTR static inline void PL_FA(st)(float *p, FV v) { _mm512_storeu_ps(p, v); }
PL_FATTR static inline FV PL_FA(set1)(float x) { return _mm512_set1_ps(x); }
PL_FATTR static inline FV PL_FA(fma)(FV a, FV b, FV c) { return _mm512_fmadd_ps(a, b, c); }
PL_FATTR static inline FV PL_FA(mul)(FV a, FV b) { return _mm512_mul_ps(a, b); }
PL_FATTR static inline FV PL_FA(add)(FV a, FV b) { return _mm512_add_ps(a, b); }
PL_FATTR static inline FV PL_FA(sub)(FV a, FV b) { return _mm512_sub_ps(a, b); }
PL_FATTR static inline FV PL_FA(max)(FV a, FV b) { return _mm512_max_ps(a, b); }
PL_FATTR static inline FV PL_FA(keep_lt)(FV v, int n, float fill) {
    __mmask16 m = n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
    return _mm512_mask_blend_ps(m, _mm512_set1_ps(fill), v);
}
PL_FATTR static inline FV PL_FA(exp)(FV in) {
    FA_EXP_CONSTS;
    __m512 x = _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), in));   // NaN stays NaN
    __m512 mg = _mm512_set1_ps(magic);
    __m512 fn = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(l2e), mg), mg);
    __m512 r = _mm512_fmadd_ps(fn, _mm512_set1_ps(-c1), x);
    r = _mm512_fmadd_ps(fn, _mm512_set1_ps(c2), r);
    __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(p0), r, _mm512_set1_ps(p1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(p2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(p3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(p4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(p5));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, fn);   // y * 2^fn, fn in [-126, 127]: the same single rounding as a multiply
}
PL_FATTR static inline float PL_FA(hmax)(FV v) {
    __m256 a = _mm256_max_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    b = _mm_max_ss(b, _mm_shuffle_ps(b, b, 1));
    return _mm_cvtss_f32(b);
}
// 16 lanes to bf16 bit patterns in u32 lanes: flush |x| < 2^-56 to a signed zero, round to nearest even, quiet NaN.
PL_FATTR static inline __m512i PL_FA(bf16x16)(FV x) {
    __m512i u = _mm512_castps_si512(x), absu = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __mmask16 tiny = _mm512_cmplt_epu32_mask(absu, _mm512_set1_epi32(FA_BF16_TINY_BITS));
    u = _mm512_mask_and_epi32(u, tiny, u, _mm512_set1_epi32((int)0x80000000u));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(absu, _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
}
PL_FATTR static inline void PL_FA(cvt_pair)(uint32_t *dst, FV even, FV odd) {
    __m512i r = _mm512_or_si512(PL_FA(bf16x16)(even), _mm512_slli_epi32(PL_FA(bf16x16)(odd), 16));
    _mm512_storeu_si512(dst, r);
}
#if FA_ISA == 2
typedef struct {
    __m512 odd, even;
} FA_AW;
typedef struct {
    __m512 odd, even;
} FA_BW;
PL_FATTR static inline FA_AW PL_FA(aw_set)(uint32_t a) {
    return (FA_AW){_mm512_set1_ps(fa_bits_f32(a & 0xffff0000u)), _mm512_set1_ps(fa_bits_f32(a << 16))};
}
PL_FATTR static inline FA_BW PL_FA(bw_ld)(const uint32_t *p) {
    __m512i u = _mm512_loadu_si512(p);
    return (FA_BW){_mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32((int)0xffff0000u))),
                   _mm512_castsi512_ps(_mm512_slli_epi32(u, 16))};
}
PL_FATTR static inline FV PL_FA(dp)(FV acc, FA_AW a, FA_BW b) {
    acc = _mm512_fmadd_ps(a.odd, b.odd, acc);
    return _mm512_fmadd_ps(a.even, b.even, acc);
}
PL_FATTR static inline void PL_FA(cvt16)(void *dst, FV v) {
    _mm256_storeu_si256((__m256i *)dst, _mm512_cvtepi32_epi16(PL_FA(bf16x16)(v)));
}
#else
typedef __m512bh FA_AW;
typedef __m512bh FA_BW;
PL_FATTR static inline FA_AW PL_FA(aw_set)(uint32_t a) { return (__m512bh)_mm512_set1_epi32((int)a); }
PL_FATTR static inline FA_BW PL_FA(bw_ld)(const uint32_t *p) { return (__m512bh)_mm512_loadu_si512(p); }
PL_FATTR static inline FV PL_FA(dp)(FV acc, FA_AW a, FA_BW b) { return _mm512_dpbf16_ps(acc, a, b); }
// The hardware conversion (VCVTNEPS2BF16, round to nearest even) after the same flush: equal to the integer rounding
// for every finite input (flushed values are never denormal); only NaN payloads may differ.
PL_FATTR static inline void PL_FA(cvt16)(void *dst, FV v) {
    __m512i u = _mm512_castps_si512(v);
    __mmask16 tiny = _mm512_cmplt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                             _mm512_set1_epi32(FA_BF16_TINY_BITS));
    u = _mm512_mask_and_epi32(u, tiny, u, _mm512_set1_epi32((int)0x80000000u));
    _mm256_storeu_si256((__m256i *)dst, (__m256i)_mm512_cvtneps_pbh(_mm512_castsi512_ps(u)));
}
#endif
#endif
