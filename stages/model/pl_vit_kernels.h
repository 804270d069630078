// Elementwise and row kernels of the ViT forward pass (LayerNorm, exact GELU, softmax, bicubic position
// embedding resize) on flat float32 buffers. No allocation; callers own every buffer.
#ifndef PL_VIT_KERNELS_H
#define PL_VIT_KERNELS_H

#include <stddef.h>

#include "pl_dispatch.h"
#include "pl_error.h"

// out[r] = (x[r] - mean) / sqrt(var + eps) * w + b for each of `rows` rows of length n.
// x: (rows, n) with row stride ldx; out: (rows, n) with row stride ldo (out may equal x).
void pl_vit_layernorm(const float *x, int ldx, float *out, int ldo, int rows, int n, const float *w,
                      const float *b, float eps);
// In place: x = gelu(x + bias) with the exact erf form 0.5 x (1 + erf(x / sqrt 2)). x: (rows, n).
void pl_vit_bias_gelu(float *x, int rows, int n, const float *bias);
// In place: x += bias for each row. x: (rows, n), row stride ldx.
void pl_vit_add_bias(float *x, int ldx, int rows, int n, const float *bias);
// In place, row-wise softmax of x: (rows, n) with row stride ldx.
void pl_vit_softmax_rows(float *x, int ldx, int rows, int n);
// Training: out = gelu(pre) over n elements (out may equal pre); backward dpre = dout * gelu'(pre) (dpre may equal dout)
// with gelu'(x) = cdf(x) + x pdf(x) and cdf(x) taken from the forward's out (pre, out: the forward's input and output).
void pl_vit_gelu_forward(float *out, const float *pre, size_t n);
void pl_vit_gelu_backward(float *dpre, const float *dout, const float *pre, const float *out, size_t n);
// The kernels above run the best copy the CPU supports (pl_dispatch.h): baseline x86-64, AVX2 or AVX-512, all
// bit-identical. pl_vit_kernels_use switches every thread to one level (tests and benchmarks compare them);
// PL_ERR_UNSUPPORTED when the CPU lacks it.
PlStatus pl_vit_kernels_use(PlCpuLevel level);
PlCpuLevel pl_vit_kernels_level(void);
// Vectorisable float erf and exp (max error ~2 ulp over the float range that matters here).
float pl_vit_erf(float x);
float pl_vit_exp(float x);

// DINO's interpolate_pos_encoding for the patch part of a position embedding:
// src (grid*grid, dim) -> dst (gh*gw, dim), bicubic (A = -0.75, align_corners=False, border clamp) with
// PyTorch's scale_factor semantics scale = ((gh + 0.1) / grid, (gw + 0.1) / grid). Computed in double.
void pl_vit_pos_resize(const float *src, int grid, int dim, int gh, int gw, float *dst);
// Its backward (the transposed map): dsrc (grid*grid, dim) += the gradient flowing back from ddst (gh*gw, dim),
// with the same taps, weights and border clamping; fixed loop order, so the result is deterministic.
void pl_vit_pos_resize_backward(const float *ddst, int grid, int dim, int gh, int gw, float *dsrc);

#endif
