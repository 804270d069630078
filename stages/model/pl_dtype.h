// Checkpoint element types (F32/F16/BF16/...) and their conversion to float32.
#ifndef PL_DTYPE_H
#define PL_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum PlDtype {
    PL_DTYPE_UNKNOWN = 0,
    PL_DTYPE_F32, PL_DTYPE_F16, PL_DTYPE_BF16,            // convertible to float32
    PL_DTYPE_F64, PL_DTYPE_I64, PL_DTYPE_I32, PL_DTYPE_I16, PL_DTYPE_I8, PL_DTYPE_U8, PL_DTYPE_BOOL
} PlDtype;

// Safetensors dtype names: "F32", "F16", "BF16", "F64", "I64", ... (PL_DTYPE_UNKNOWN when unknown).
PlDtype pl_dtype_from_safetensors(const char *name);
const char *pl_dtype_name(PlDtype t);      // the safetensors spelling
size_t pl_dtype_size(PlDtype t);            // bytes per element (0 for unknown)
int pl_dtype_is_float_convertible(PlDtype t);

float pl_half_to_float(uint16_t h);
float pl_bfloat16_to_float(uint16_t b);
// Convert n little-endian elements of `src` (of type t, convertible) to float32.
void pl_dtype_convert(PlDtype t, const void *src, float *dst, size_t n);

#endif
