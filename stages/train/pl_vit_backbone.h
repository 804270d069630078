// The trainable DINO ViT backbone as a module: named parameters (llm.c's ParameterTensors) pointed into a parameter
// slab or, by the same function, into a gradient slab of the same layout; per-view-group activations carved from a
// float slab; and the forward of n images at any input size (final-normed CLS features (n, D)) with its backward
// from d(features), built from the layer pairs of pl_train_layers.h.
//
// Ownership (pl_vit_backbone.c): nothing here allocates. A PlBackbone points into its owner's parameter slab
// (pl_vit_train.c); a PlBackboneActs into one worker's activation slab. One thread per PlBackboneActs; several
// PlBackboneActs of one worker may hold forwards at once (two view groups) before their backwards.
// Numerics: one micro-batch computed on one thread with fixed shapes; the overwrite path (accumulate 0) is the
// reference the golden tests pin.
#ifndef PL_VIT_BACKBONE_H
#define PL_VIT_BACKBONE_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_train_layers.h"
#include "pl_train_tensor.h"
#include "pl_vit.h"

#define PL_BLOCK_TENSORS 12         // tensors per transformer block
#define PL_BACKBONE_MAX_DEPTH 64    // blocks a trainable backbone may have

typedef struct PlBlockParams {
    float *ln1_w, *ln1_b;     // norm1 (D)
    float *qkv_w, *qkv_b;     // attn.qkv (3D, D), (3D)
    float *proj_w, *proj_b;   // attn.proj (D, D), (D)
    float *ln2_w, *ln2_b;     // norm2 (D)
    float *fc1_w, *fc1_b;     // mlp.fc1 (Hm, D), (Hm)
    float *fc2_w, *fc2_b;     // mlp.fc2 (D, Hm), (D)
} PlBlockParams;

typedef struct PlBackboneParams {
    float *cls;                // cls_token (1, 1, D)
    float *pos;                // pos_embed (1, 1 + G*G, D)
    float *patch_w, *patch_b;  // patch_embed.proj (D, C, P, P), (D)
    PlBlockParams blocks[PL_BACKBONE_MAX_DEPTH];   // depth of them used
    float *norm_w, *norm_b;    // norm (D)
} PlBackboneParams;

// The module: architecture, training options and the parameters it computes with.
typedef struct PlBackbone {
    PlVitConfig cfg;
    int recompute;             // 1: keep only each block's input; recompute the block in the backward
    float drop_path;           // stochastic depth of the last block (DINO: linspace(0, rate, depth))
    PlPrecision precision;     // attention products (pl_train_layers.h)
    PlBackboneParams p;        // into the parameter slab
} PlBackbone;

typedef struct PlBlockActs {   // one block's saved activations, rows = n * T
    float *ln1, *ln1m, *ln1r;  // (rows, D), (rows), (rows)
    float *qkv;                // (rows, 3D)
    float *lse;                // (n, NH, T) attention log-sum-exp per query row (the flash backward's input)
    float *probs;              // (n, NH, T, T) attention probabilities (the GEMM path's), NULL when the capacity's
                               // tokens exceed PL_ATTN_GEMM_MAX_TOKENS (then attention always takes the flash path)
    float *att;                // (rows, D)
    float *xmid;               // (rows, D) residual after the attention branch
    float *ln2, *ln2m, *ln2r;
    float *fc1, *gel;          // (rows, Hm)
} PlBlockActs;

// One view group's activations: capacity max_images images of at most max_tokens tokens; the geometry of the last
// forward (what its backward uses).
typedef struct PlBackboneActs {
    int max_images, max_tokens;
    int n, height, width, gh, gw, T, interp;
    float *u;                  // (n * np, C*P*P) unfolded patches
    float *xs;                 // (depth + 1, capacity rows, D) block inputs, then the final residual
    PlBlockActs blk[PL_BACKBONE_MAX_DEPTH];   // depth entries (all the same buffers with recompute)
    float *pos;                // (T, D) position embedding for this input size
    float *cls, *lnf, *lnfm, *lnfr;   // (n, D) CLS rows, (n, D) features (final LayerNorm), (n), (n)
    float *scale;              // (depth, 2, max_images) drop-path scale per block, branch, sample
    float *dres, *dtmp, *dln, *dqkv, *datt, *dh, *dpos, *dcls;
    float *attn_scratch;       // pl_attention_scratch_bytes at max_tokens
} PlBackboneActs;

int pl_backbone_tensor_count(const PlVitConfig *cfg);
// Append the backbone's tensors (DINO names, layer-wise lr ids 0 .. depth + 1) to a table (pl_train_tensor_add).
void pl_backbone_tensors(const PlVitConfig *cfg, PlTrainTensor *table, int *count, size_t *off);
// Point p at the backbone's tensors in slab (parameters, or a gradient slab of the same layout); first = the table
// entries pl_backbone_tensors filled.
void pl_backbone_point(PlBackboneParams *p, const PlVitConfig *cfg, const PlTrainTensor *first, float *slab);

// Carve the activations of max_images images of up to height x width pixels from base (64-byte aligned); base NULL
// only counts. Returns the floats used.
size_t pl_backbone_acts_carve(const PlBackbone *bb, int max_images, int height, int width, PlBackboneActs *a,
                              float *base);
// Elements the largest GEMM operand of rows token rows holds (PlTrainGemm.cap for BF16).
size_t pl_backbone_gemm_cap(const PlVitConfig *cfg, size_t rows);

// Forward of n images x (n, C, height, width) (any size whose tokens fit a's capacity): the final-normed CLS
// features (n, D) in a->lnf. keys (n): drop-path masks per sample (NULL: no drop path, evaluation).
PlStatus pl_backbone_forward(const PlBackbone *bb, PlBackboneActs *a, const PlTrainGemm *g, const float *x, int n,
                             int height, int width, const uint64_t *keys);
// Backward of a's last forward from dfeat (n, D): parameter gradients into grad, overwritten (accumulate 0) or added
// into (accumulate 1: several view groups summing into one gradient slab).
void pl_backbone_backward(const PlBackbone *bb, PlBackboneActs *a, const PlTrainGemm *g, const float *dfeat,
                          const PlBackboneParams *grad, int accumulate);

#endif
