// DINO Vision Transformer forward pass (facebookresearch/dino vision_transformer.py) on flat float32 buffers.
//
// Ownership: a PlVit borrows the PlWeights it was created from, the thread pool it computes on, its kernel backend
// (pl_kernels.h; every GEMM goes through it) and the prepared linears it was given (PlVitOptions.linears), all of
// which must outlive it; it owns prepared linears it made itself, and one activation slab sized at
// create time for (max_batch, height, width) and its interpolated position embedding; pl_vit_destroy releases those. pl_vit_forward never allocates.
// A PlVit is not re-entrant: one forward at a time per PlVit (and per pool). Its GEMMs run inside the pool's
// tasks, so the program must have set the kernel libraries to one thread (pl_kernels_single_thread;
// pipeline/pl_process.h does).
#ifndef PL_VIT_H
#define PL_VIT_H

#include "pl_error.h"
#include "pl_kernels.h"
#include "pl_threadpool.h"
#include "pl_weights.h"

typedef struct PlVitConfig {
    int in_chans;      // input channels (3 ImageNet, 4 HPA)
    int patch;         // patch size in pixels (8 or 16)
    int dim;           // embedding dim D
    int depth;         // number of blocks
    int heads;         // attention heads (dim % heads == 0)
    int mlp_hidden;    // fc1 output size (4 D for DINO)
    int pos_grid;      // sqrt(N) of the stored position embedding (14 for 224 px at patch 16)
    float ln_eps;      // LayerNorm eps (1e-6 for DINO's vit_* constructors)
} PlVitConfig;

// Infer the architecture from the tensors and validate every expected tensor (missing, extra,
// mis-shaped, NaN/Inf -> error naming the tensor). heads: > 0 = use it; 0 = from the weights' stored
// args/metadata when the loader found them, else dim / 64.
PlStatus pl_vit_config_infer(const PlWeights *w, int heads, PlVitConfig *cfg);

// The one check of an architecture and an input size, shared by inference (pl_vit_create) and training
// (pl_vit_train_create): positive sizes, dim a multiple of heads, an input of at least one patch and at most 65536
// pixels a side.
PlStatus pl_vit_config_check(const PlVitConfig *cfg, int height, int width);
// Tokens per image including CLS for an input size: 1 + (height / patch) * (width / patch) (remainder pixels beyond
// whole patches are cropped); the patch grid into *gh, *gw when they are not NULL.
int pl_vit_config_tokens(const PlVitConfig *cfg, int height, int width, int *gh, int *gw);

// The model's linears (patch embedding and each block's qkv, proj, fc1, fc2) prepared once by one kernel backend at
// one precision (converted, packed): made once per model and shared by every PlVit of it (each input size / batch
// size). Borrows w's tensors (they must outlive it). Optional: a PlVit without one prepares its own.
typedef struct PlVitLinears PlVitLinears;
PlStatus pl_vit_linears_create(const PlWeights *w, const PlVitConfig *cfg, const PlKernels *kernels,
                               PlPrecision precision, PlVitLinears **out);
void pl_vit_linears_destroy(PlVitLinears *lin);

typedef struct PlVitOptions {
    int max_batch;     // largest batch passed to pl_vit_forward (>= 1)
    int height, width; // input size in pixels (fixed for this PlVit; remainder pixels are cropped)
    PlThreadPool *pool;   // borrowed: the process's pool (NULL = everything on the calling thread)
    int last_n;        // 0 or 1 = CLS of the final block; n > 1 = CLS of the last n blocks concatenated
                       // (each after the final LayerNorm, as DINO's get_intermediate_layers)
    const PlKernels *kernels;   // GEMM backend (pl_kernels.h); NULL = pl_kernels_default()
    PlPrecision precision;      // FP32 (default) or BF16 GEMM inputs (FP32 accumulation, statistics and residuals)
    PlVitLinears *linears;      // borrowed, optional: prepared for these kernels and precision (NULL = prepare own)
    int avgpool;       // 1 = DINO eval_linear --avgpool features: (B, 2D) laid out exactly as DINO does,
                       // i.e. CLS and mean patch token interleaved per feature [c0, a0, c1, a1, ...];
                       // DINO defines it only with last_n <= 1 (other combinations are refused)
} PlVitOptions;

typedef struct PlVit PlVit;

PlStatus pl_vit_create(const PlWeights *w, const PlVitConfig *cfg, const PlVitOptions *opt, PlVit **out);
// x: (batch, in_chans, height, width) float32; out: (batch, pl_vit_output_dim) float32. 1 <= batch <= max_batch.
PlStatus pl_vit_forward(PlVit *vit, const float *x, int batch, float *out);
int pl_vit_output_dim(const PlVit *vit);
// Tokens per image including CLS (pl_vit_config_tokens of this PlVit's input size).
int pl_vit_tokens(const PlVit *vit);
// Bytes a PlVit of these options would allocate (activation slab + interpolated position embedding), computed
// without allocating: budget checks before the allocation (`protloc run --max-memory`).
double pl_vit_memory_bytes(const PlVitConfig *cfg, const PlVitOptions *opt);
// Bytes of the activation slab (for memory accounting).
size_t pl_vit_activation_bytes(const PlVit *vit);
int pl_vit_threads(const PlVit *vit);
void pl_vit_destroy(PlVit *vit);

// Multiply-add count of one image's forward pass (x2 for FLOPs), for benchmarks.
double pl_vit_flops_per_image(const PlVitConfig *cfg, int height, int width);

#endif
