// Element type names, sizes and bit-exact F16/BF16 → float32 conversion for checkpoint loaders.
#include "pl_dtype.h"

#include <string.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoint loaders assume a little-endian host");

static const struct { PlDtype t; const char *name; size_t size; } dtype_table[] = {
    {PL_DTYPE_F32, "F32", 4}, {PL_DTYPE_F16, "F16", 2}, {PL_DTYPE_BF16, "BF16", 2}, {PL_DTYPE_F64, "F64", 8},
    {PL_DTYPE_I64, "I64", 8}, {PL_DTYPE_I32, "I32", 4}, {PL_DTYPE_I16, "I16", 2},   {PL_DTYPE_I8, "I8", 1},
    {PL_DTYPE_U8, "U8", 1},   {PL_DTYPE_BOOL, "BOOL", 1},
};

PlDtype pl_dtype_from_safetensors(const char *name) {
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (strcmp(dtype_table[i].name, name) == 0) return dtype_table[i].t;
    return PL_DTYPE_UNKNOWN;
}

const char *pl_dtype_name(PlDtype t) {
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].t == t) return dtype_table[i].name;
    return "unknown";
}

size_t pl_dtype_size(PlDtype t) {
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].t == t) return dtype_table[i].size;
    return 0;
}

int pl_dtype_is_float_convertible(PlDtype t) {
    return t == PL_DTYPE_F32 || t == PL_DTYPE_F16 || t == PL_DTYPE_BF16;
}

static float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float pl_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (mant << 13));   // Inf / NaN
    if (exp == 0) {
        if (mant == 0) return bits_to_float(sign);                                // ±0
        // subnormal: value = mant * 2^-24
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

float pl_bfloat16_to_float(uint16_t b) { return bits_to_float((uint32_t)b << 16); }

void pl_dtype_convert(PlDtype t, const void *src, float *dst, size_t n) {
    const unsigned char *s = src;
    if (t == PL_DTYPE_F32) {
        memcpy(dst, s, n * sizeof(float));
    } else if (t == PL_DTYPE_F16) {
        size_t i = 0;
#ifdef __F16C__
        for (; i + 8 <= n; i += 8)   // hardware conversion (IEEE, same results as the scalar path)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
#endif
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = pl_half_to_float(h);
        }
    } else if (t == PL_DTYPE_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = pl_bfloat16_to_float(h);
        }
    }
}
