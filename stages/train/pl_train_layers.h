// Forward/backward pairs of the ViT's layers for training (llm.c style): plain functions over flat float32 arrays,
// single-threaded (the trainer runs one micro-batch per thread), GEMMs through the kernel interface (pl_kernels.h).
//
// Conventions: shapes in comments; `inp`/`out` row-major. Backward functions OVERWRITE parameter gradients (each
// parameter is used once per micro-batch, so the trainer never has to zero them), or with a gradient beta of 1 (the
// *_beta variants) ADD into them (several view groups of one step summing into one gradient slab); they ACCUMULATE
// (+=) into input gradients marked `+=` (residual streams). No allocation anywhere; callers own every buffer.
#ifndef PL_TRAIN_LAYERS_H
#define PL_TRAIN_LAYERS_H

#include <stdint.h>

#include "pl_kernels.h"
#include "pl_train_profile.h"

// out (N, C) = LayerNorm(inp (N, C)) * w + b; mean, rstd (N) saved for the backward.
void pl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                          int C, float eps);
// dinp (N, C) += d/dinp; dw, db (C) = gradients (overwritten).
void pl_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int N, int C);
// The same with grad_beta: 0 overwrites dw, db (exactly pl_layernorm_backward), 1 adds the rows' sums into them.
void pl_layernorm_backward_beta(float *dinp, float *dw, float *db, float grad_beta, const float *dout, const float *inp,
                                const float *w, const float *mean, const float *rstd, int N, int C);

// Every GEMM of training: the kernel backend and the precision, and (BF16) the calling worker's operand scratch.
// FP32: k->gemm. BF16: both operands are rounded to BF16 (pl_bf16.h) into a16 / b16 and multiplied by k->gemm_bf16
// with FP32 accumulation (the parameters, gradients and optimizer state stay FP32: BF16 is only what enters the
// products). a16 / b16 hold cap elements each; pl_train_gemm_cap tells how many a GEMM needs.
// An operand inside [w32, w32 + wn) (the parameter slab) is taken from its resident BF16 copy w16 (same offsets)
// when *w16_valid, instead of being converted again by every micro-batch.
// pool (optional, FP32 only): the GEMMs go through pl_kernels_gemm_pooled (fixed row blocks over the process's pool,
// bit-identical for any pool size; for a caller whose parallelism is one big product, never inside a pool task);
// NULL: k->gemm on the calling thread, as the ViT trainer's workers do.
// prof (optional): the calling worker's profile slot (pl_train_profile.h); the GEMMs, conversions and the layers below
// add their time to it (the linear layers to the phase pl_prof_linear named).
typedef struct PlTrainGemm {
    const PlKernels *k;
    PlPrecision precision;
    uint16_t *a16, *b16;
    size_t cap;
    const float *w32;
    const uint16_t *w16;
    size_t wn;
    const _Atomic int *w16_valid;
    PlThreadPool *pool;
    PlProfSlot *prof;
} PlTrainGemm;

// Row-major C (m, n) = alpha op(A) op(B) + beta C, as PlKernels.gemm, at g's precision.
void pl_train_gemm(const PlTrainGemm *g, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc);

// out (N, OC) = inp (N, IC) W^T + b, W (OC, IC). beta = 1 adds into out instead of overwriting (residual GEMMs).
void pl_linear_forward(const PlTrainGemm *k, float *out, const float *inp, const float *w, const float *b, int N, int IC,
                       int OC);
// dinp (N, IC) = (beta 0) or += (beta 1) dout W; dw (OC, IC) = dout^T inp; db (OC) = column sums of dout.
// dinp may be NULL (the input needs no gradient), db NULL (no bias).
void pl_linear_backward(const PlTrainGemm *k, float *dinp, float dinp_beta, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int N, int IC, int OC);
// The same with grad_beta for dw and db: 0 overwrites them (exactly pl_linear_backward), 1 adds into them.
void pl_linear_backward_beta(const PlTrainGemm *k, float *dinp, float dinp_beta, float *dw, float *db, float grad_beta,
                             const float *dout, const float *inp, const float *w, int N, int IC, int OC);

// out = gelu(pre) with the exact erf form (out may equal pre); gelu_backward: dpre = dout * gelu'(pre) (dpre may
// equal dout) from the forward's input pre and output out (not in place: out != pre). n elements each.
void pl_gelu_forward(float *out, const float *pre, int64_t n);
void pl_gelu_backward(float *dpre, const float *dout, const float *pre, const float *out, int64_t n);

// out = relu(pre) * keep (keep: the dropout scale per element, 0 or 1 / (1 - p), or 1 outside training); backward:
// dpre = dout * keep where pre > 0, else 0 (dpre may equal dout). n elements each.
void pl_relu_dropout_forward(float *out, const float *pre, const float *keep, int64_t n);
void pl_relu_dropout_backward(float *dpre, const float *dout, const float *pre, const float *keep, int64_t n);

// Multi-head softmax attention of B images (pl_train_attention.c), one (image, head) at a time: qkv (B, T, 3D) laid
// out [q | k | v] per row with heads in contiguous blocks of D/NH (D a multiple of NH: the trainer checks); out
// (B, T, D) heads concatenated. precision: FP32, or BF16 operands of every product with FP32 accumulation and FP32
// softmax. Two paths, chosen by pl_attention_uses_gemm from k, probs and T alone (so a forward and its backward,
// given the same three, always agree):
//   GEMM (T <= PL_ATTN_GEMM_MAX_TOKENS, probs given and k has the precision's GEMM): P = softmax(scale q k^T),
//     out = P v through k's GEMMs; P is saved in probs (B, NH, T, T) FP32 for the backward, which forms dV = P^T dO,
//     dP = dO V^T, dS = P (dP - rowsum(dO o)), dQ = scale dS K, dK = scale dS^T Q. lse is neither written nor read.
//   flash (otherwise: longer sequences, no room for probs, or k NULL; pl_flash_attention.h): online softmax, O(T hd)
//     scratch; lse (B, NH, T) each query row's log-sum-exp, saved by the forward for the backward instead of the
//     (T, T) probabilities.
// Either way a query row's result depends only on its (image, head): the same bits for any thread or rank count.
// scratch: pl_attention_scratch_bytes(T, D, NH, precision) bytes, 64-byte aligned (never smaller for larger T).
#ifndef PL_ATTN_GEMM_MAX_TOKENS   // (a benchmark build may move it: tests/bench/bench_train_attention.c)
#define PL_ATTN_GEMM_MAX_TOKENS 256
#endif
size_t pl_attention_scratch_bytes(int T, int D, int NH, PlPrecision precision);
int pl_attention_uses_gemm(const PlKernels *k, const float *probs, int T, PlPrecision precision);
void pl_attention_forward(const PlKernels *k, float *out, float *lse, float *probs, const float *qkv, int B, int T, int D,
                          int NH, PlPrecision precision, void *scratch);
// dqkv (B, T, 3D) = gradient (overwritten) from dout (B, T, D) and the forward's out, lse and probs (same k and
// precision).
void pl_attention_backward(const PlKernels *k, float *dqkv, const float *dout, const float *qkv, const float *out,
                           const float *lse, const float *probs, int B, int T, int D, int NH, PlPrecision precision,
                           void *scratch);

// Unfold the P x P patches of B images x (B, C, H, W) on a gh x gw grid into rows u (B * gh * gw, C*P*P) in the
// order of a Conv2d weight (C, P, P); remainder pixels beyond gh*P / gw*P are ignored, as the convolution does.
void pl_patch_unfold(float *u, const float *x, int B, int C, int H, int W, int P, int gh, int gw);

// Softmax cross-entropy of logits (B, NC) with class ids y (B): returns the summed loss (double); dlogits (B, NC) =
// scale * (softmax - onehot) (scale = 1 / global batch for a mean loss).
double pl_softmax_xent(float *dlogits, const float *logits, const int32_t *y, int B, int NC, float scale);
// Binary cross-entropy with logits against targets t (B, NC) in [0, 1] (numerically stable form): returns the summed
// loss; dlogits = scale * (sigmoid - t) (scale = 1 / (global batch * NC) for torch's mean reduction).
double pl_bce_logits(float *dlogits, const float *logits, const float *t, int B, int NC, float scale);

#endif
