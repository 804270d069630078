// Heads as training modules: the linear head (DINO eval_linear), the DINO4Cells MLP head
// Linear(in, 512)-ReLU-Dropout-Linear(512, 256)-ReLU-Dropout-Linear(256, out) and DINO's projection head (DINOHead of
// vision_transformer.py as main_dino.py builds it), each a named parameter struct pointed into a slab (parameters or
// gradients, same function), per-worker activations carved from a float slab, and a forward/backward pair built from
// pl_train_layers.h. Usable on its own (a probe on stored features) or on top of the ViT backbone (pl_vit_train.h).
//
// The DINO head (PL_HEAD_DINO): mlp = max(nlayers, 1) Linears in -> hidden -> ... -> hidden -> bottleneck with the
// exact-erf GELU between them (use_bn False; nlayers 1: a single Linear(in, bottleneck)), then
// F.normalize(x, dim=-1, p=2, eps=1e-12) = x / max(||x||, eps), then last_layer = weight_norm(Linear(bottleneck, out,
// bias=False)) over dim 0: W[i] = g[i] v[i] / ||v[i]||. Its state-dict names: mlp.{0,2,4,...}.{weight,bias} (the
// nn.Sequential indices, GELUs at the odd ones; "mlp.weight" / "mlp.bias" for nlayers 1), last_layer.weight_g
// (out, 1), last_layer.weight_v (out, bottleneck). norm_last_layer (DINO's default): weight_g stays 1 and gets no
// gradient; the backward writes 0 for it and the caller must freeze it in the optimizer
// (pl_optim_set_frozen_matching(op, "last_layer.weight_g", 1, ...)) so that weight decay never moves it either, and
// keep it frozen when DINO's freeze_last_layer epochs end (unfreezing "last_layer" matches weight_g too).
// W is derived from (g, v) once per step, not per micro-batch: pl_head_weight_norm fills it (and the row norms
// ||v||) into a buffer the caller owns (pl_head_derived_floats, pointed by pl_head_derived_point), shared read-only
// by every worker's forward and backward; the caller refreshes it after initialising or loading the parameters and
// after every optimizer step (the model, pl_vit_train.h, owns it and refreshes it in pl_vit_train_sync). Its cost is out x bottleneck (+ out) floats once per model: 64 MiB at DINO's default
// 65536 x 256 (not per worker). In BF16 the GEMMs read W's resident BF16 copy when its owner keeps one (the model
// places W right after its parameters and rounds both in pl_vit_train_sync), else convert W into the worker's
// operand scratch.
//
// Ownership (pl_train_head.c): nothing here allocates. Parameters, gradients, activations and the DINO head's
// derived W live in the caller's slabs; a PlHeadParams / PlHeadActs only points into them. One PlHeadActs per thread.
#ifndef PL_TRAIN_HEAD_H
#define PL_TRAIN_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_train_layers.h"
#include "pl_train_tensor.h"

// The DINO4Cells MLP head's hidden sizes (the one definition; the probe and the trainer use these).
#define PL_HEAD_MLP_H1 512
#define PL_HEAD_MLP_H2 256
// The DINO head: main_dino.py's defaults, and the most Linears its mlp may have here.
#define PL_HEAD_DINO_OUT 65536
#define PL_HEAD_DINO_HIDDEN 2048
#define PL_HEAD_DINO_BOTTLENECK 256
#define PL_HEAD_DINO_NLAYERS 3
#define PL_HEAD_DINO_MAX_LAYERS 8
#define PL_HEAD_MAX_TENSORS (2 * PL_HEAD_DINO_MAX_LAYERS + 2)

typedef enum PlHeadKind { PL_HEAD_LINEAR = 0, PL_HEAD_MLP = 1, PL_HEAD_DINO = 2 } PlHeadKind;

typedef struct PlHeadSpec {
    PlHeadKind kind;
    int in_dim, out_dim;   // features in, logits (DINO: prototypes) out
    float dropout;         // MLP: dropout probability in training, [0, 1) (DINO4Cells 0.5); ignored otherwise
    int max_rows;          // largest n passed to forward / backward (the activations' capacity)
    // DINO: the mlp's hidden width and bottleneck, its Linear count (DINO's max(nlayers, 1): below 1 means 1; at most
    // PL_HEAD_DINO_MAX_LAYERS), and norm_last_layer (1: weight_g frozen at 1). Ignored by the other kinds.
    int hidden_dim, bottleneck_dim, nlayers;
    int norm_last_layer;
} PlHeadSpec;

// A DINO head spec with main_dino.py's defaults (out_dim 65536, hidden 2048, bottleneck 256, nlayers 3,
// norm_last_layer 1, use_bn off) on in_dim features for max_rows rows.
PlHeadSpec pl_head_dino_spec(int in_dim, int max_rows);

// Named parameters (or, pointed at a gradient slab, their gradients). Linear: weight (out, in), bias (out).
// MLP (torch nn.Sequential indices 0, 3, 6): fc1 (512, in), fc2 (256, 512), fc3 (out, 256), each with its bias.
// DINO: mlp_w[l] (out_l, in_l), mlp_b[l] (out_l) for each of the mlp's Linears l (in -> hidden ... -> bottleneck),
// last_g (out, 1), last_v (out, bottleneck).
typedef struct PlHeadParams {
    float *weight, *bias;
    float *fc1_w, *fc1_b, *fc2_w, *fc2_b, *fc3_w, *fc3_b;
    float *mlp_w[PL_HEAD_DINO_MAX_LAYERS], *mlp_b[PL_HEAD_DINO_MAX_LAYERS];
    float *last_g, *last_v;
    // DINO, derived from (last_g, last_v) by pl_head_weight_norm, not tensors (a parameter PlHeadParams only; NULL
    // in a gradient one): last_w (out, bottleneck) = g v / ||v|| row-wise, last_vnorm (out) = ||v|| per row.
    float *last_w, *last_vnorm;
} PlHeadParams;

typedef struct PlHeadActs {
    float *h1, *a1, *k1, *dh1;   // MLP (rows, 512): pre-ReLU, post-dropout, dropout scale, gradient
    float *h2, *a2, *k2, *dh2;   // MLP (rows, 256)
    float *mh[PL_HEAD_DINO_MAX_LAYERS - 1];   // DINO (rows, hidden) per hidden Linear: pre-GELU
    float *ma[PL_HEAD_DINO_MAX_LAYERS - 1];   // DINO (rows, hidden) post-GELU (the next Linear's input)
    float *dm[2];                // DINO (rows, hidden) the backward's gradients, alternating between Linears
    float *z, *zn, *y, *dy;      // DINO: mlp output (rows, bottleneck), its L2 norm (rows), normalised, d(y) / d(z)
    float *out;                  // (rows, out_dim) the forward's logits
    float *dinp;                 // (rows, in_dim) the backward's d(input)
} PlHeadActs;

PlStatus pl_head_spec_check(const PlHeadSpec *s);
int pl_head_tensor_count(const PlHeadSpec *s);
// Append the head's tensors to a table: prefix + "weight"/"bias" (linear), prefix + "{0,3,6}.{weight,bias}" (MLP) or
// DINO's names (above), with parameter-group layer `layer` and head flag 1 (pl_train_tensor_add).
void pl_head_tensors(const PlHeadSpec *s, const char *prefix, int layer, PlTrainTensor *table, int *count, size_t *off);
// Point p at the head's tensors inside slab (parameters, or a gradient slab of the same layout); first is the head's
// first tensor in the table pl_head_tensors filled.
void pl_head_point(PlHeadParams *p, const PlHeadSpec *s, const PlTrainTensor *first, float *slab);
// Carve one thread's activations from base (64-byte aligned); base NULL only counts. Returns the floats used.
size_t pl_head_acts_carve(PlHeadActs *a, const PlHeadSpec *s, float *base);
// Elements the largest of the head's GEMM operands holds (PlTrainGemm.cap for BF16).
size_t pl_head_gemm_cap(const PlHeadSpec *s);

// DINO: floats of the derived buffer (W and the row norms, 64-byte aligned pieces; 0 for the other kinds); point a
// parameter PlHeadParams' last_w / last_vnorm into buf (after pl_head_point, which clears them); and refresh them from
// its last_g / last_v: W[i] = v[i] (g[i] / ||v[i]||) (torch's weight_norm; a zero row of v gives NaN as in torch).
// Once per step: after init / load and after each optimizer update, before the step's forwards. No-op for the
// other kinds.
size_t pl_head_derived_floats(const PlHeadSpec *s);
void pl_head_derived_point(PlHeadParams *p, const PlHeadSpec *s, float *buf);
void pl_head_weight_norm(const PlHeadSpec *s, const PlHeadParams *p);

// Initial parameters: linear = DINO eval_linear (weight ~ N(0, 0.01) from seed, bias 0); MLP = torch nn.Linear's
// default (weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))); DINO = DINOHead's: the mlp's weights
// trunc_normal(std 0.02, cut at -2 and 2 absolute), biases 0, last_layer.weight_v torch's default nn.Linear weight
// U(-1/sqrt(bottleneck), 1/sqrt(bottleneck)) (DINO's _init_weights runs before last_layer exists) and weight_g 1
// (the same distributions as DINO, from protloc's RNG). Each tensor's stream mixes in its index in the whole table,
// first_index being the head's first tensor's. DINO: pl_head_weight_norm must follow.
void pl_head_init(const PlHeadSpec *s, const PlHeadParams *p, uint64_t seed, int first_index);

// MLP dropout scales of n rows: 0 or 1 / (1 - p) per unit from the row's 64-bit key; keys NULL (evaluation) or
// p = 0: all 1. No-op for the linear head.
void pl_head_set_dropout(const PlHeadSpec *s, PlHeadActs *a, int n, const uint64_t *keys);
// a->out (n, out_dim) = head(inp (n, in_dim)), with the dropout scales last set. n <= max_rows. DINO: reads the
// derived W (pl_head_weight_norm).
void pl_head_forward(const PlHeadSpec *s, const PlHeadParams *p, PlHeadActs *a, const PlTrainGemm *g, const float *inp,
                     int n);
// From dout (n, out_dim) after the forward of inp: parameter gradients into grad (overwritten), a->dinp (n, in_dim);
// a->dinp set to NULL after carving skips the input gradient (a probe on stored features needs none).
// DINO: d(last_layer.weight_v) and d(weight_g) through the weight norm (torch's formulas: dg = <dW, v> / ||v||,
// dv = (g / ||v||) (dW - v dg / ||v||), per micro-batch, linear in dW so the workers' sums are the step's
// gradient); d(weight_g) = 0 with norm_last_layer (torch: no gradient; the optimizer must freeze it).
void pl_head_backward(const PlHeadSpec *s, const PlHeadParams *p, const PlHeadParams *grad, PlHeadActs *a,
                      const PlTrainGemm *g, const float *dout, const float *inp, int n);

#endif
