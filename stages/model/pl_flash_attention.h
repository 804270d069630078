// Fused flash-style softmax attention of one (image, head), forward and backward, FP32 or BF16, on the CPU: an online
// softmax over blocks of 64 keys, so no (T, T) matrix ever exists and memory is O(T * hd) per thread. Compiled once
// per CPU level (baseline, AVX2+FMA, AVX-512F, AVX512-BF16) and chosen at run time (pl_dispatch.h).
//
// Numerics. FP32: products and sums in FP32 with fused multiply-adds in a fixed order. BF16: q, k, v, the
// probabilities P of the PV product and, in the backward, both operands of every GEMM-like product are rounded to BF16
// (pl_bf16.h, round to nearest even) with FP32 accumulation; softmax statistics (max, sum, lse) are always FP32.
// Before rounding to BF16, values with |x| < 2^-56 are flushed to a signed zero: every BF16 operand is then 0 or a
// multiple of 2^-63, every product and (zero-started) partial sum a multiple of 2^-126 = FLT_MIN, so no denormal ever
// reaches the BF16 dot product and the hardware instruction (VDPBF16PS, which flushes denormals) and its emulation
// with fmaf (odd pair element first, then even) agree exactly. Within one precision every level gives BIT-IDENTICAL
// results for finite inputs (NaN/Inf inputs give NaN/Inf outputs whose payload may differ between levels).
// The result for a query row does not depend on the thread or on anything outside its (image, head).
#ifndef PL_FLASH_ATTENTION_H
#define PL_FLASH_ATTENTION_H

#include <stddef.h>

#include "pl_dispatch.h"
#include "pl_error.h"
#include "pl_kernels.h"

// Per-thread scratch (bytes, 64-byte aligned by the caller) for one call of forward or backward with T tokens,
// head dim hd, at this precision. The same for every CPU level.
size_t pl_flash_attention_scratch_bytes(int T, int hd, PlPrecision precision);

// o (T, hd) (row stride ldo) = softmax(scale * q k^T) v for q, k, v (T, hd) with row stride ld (in protloc slices of
// the (T, 3D) qkv rows, ld = 3D). lse: NULL or (T), each query row's log-sum-exp of the scaled scores (the backward
// needs it). o must not overlap q, k, v.
void pl_flash_attention_forward(int T, int hd, float scale, const float *q, const float *k, const float *v, int ld,
                                float *o, int ldo, float *lse, PlPrecision precision, void *scratch);

// Backward of the forward above (FlashAttention-2 style: probabilities recomputed block-wise from lse): given o and
// dout (T, hd) (row stride ldo) and lse (T) from the forward at the same precision, WRITES dq, dk, dv (T, hd) with
// row stride ld (they may be slices of one (T, 3D) gradient; they must not overlap the inputs).
void pl_flash_attention_backward(int T, int hd, float scale, const float *q, const float *k, const float *v, int ld,
                                 const float *o, const float *dout, int ldo, const float *lse, float *dq, float *dk,
                                 float *dv, PlPrecision precision, void *scratch);

// Tests and benchmarks: force a dispatch level (PL_ERR_UNSUPPORTED when the CPU or the build lacks it); the level in
// use (the best the CPU has unless forced).
PlStatus pl_flash_attention_use(PlCpuLevel level);
PlCpuLevel pl_flash_attention_level(void);
// The best level this CPU runs the kernels at (asked of the CPU: the AVX2 copy also needs FMA).
PlCpuLevel pl_flash_attention_best_level(void);
// The kernels' exp (every level computes exactly this), for tests that model the arithmetic.
float pl_flash_attention_exp(float x);

#endif
