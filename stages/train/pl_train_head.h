// Classification heads as training modules: the linear head (DINO eval_linear) and the DINO4Cells MLP head
// Linear(in, 512)-ReLU-Dropout-Linear(512, 256)-ReLU-Dropout-Linear(256, out), each a named parameter struct pointed
// into a slab (parameters or gradients, same function), per-worker activations carved from a float slab, and a
// forward/backward pair built from pl_train_layers.h. Usable on its own (a probe on stored features) or on top of the
// ViT backbone (pl_vit_train.h).
//
// Ownership (pl_train_head.c): nothing here allocates. Parameters, gradients and activations live in the caller's
// slabs; a PlHeadParams / PlHeadActs only points into them. One PlHeadActs per thread.
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
#define PL_HEAD_MAX_TENSORS 6

typedef enum PlHeadKind { PL_HEAD_LINEAR = 0, PL_HEAD_MLP = 1 } PlHeadKind;

typedef struct PlHeadSpec {
    PlHeadKind kind;
    int in_dim, out_dim;   // features in, logits out
    float dropout;         // MLP: dropout probability in training, [0, 1) (DINO4Cells 0.5); ignored for linear
    int max_rows;          // largest n passed to forward / backward (the activations' capacity)
} PlHeadSpec;

// Named parameters (or, pointed at a gradient slab, their gradients). Linear: weight (out, in), bias (out).
// MLP (torch nn.Sequential indices 0, 3, 6): fc1 (512, in), fc2 (256, 512), fc3 (out, 256), each with its bias.
typedef struct PlHeadParams {
    float *weight, *bias;
    float *fc1_w, *fc1_b, *fc2_w, *fc2_b, *fc3_w, *fc3_b;
} PlHeadParams;

typedef struct PlHeadActs {
    float *h1, *a1, *k1, *dh1;   // MLP (rows, 512): pre-ReLU, post-dropout, dropout scale, gradient
    float *h2, *a2, *k2, *dh2;   // MLP (rows, 256)
    float *out;                  // (rows, out_dim) the forward's logits
    float *dinp;                 // (rows, in_dim) the backward's d(input)
} PlHeadActs;

PlStatus pl_head_spec_check(const PlHeadSpec *s);
int pl_head_tensor_count(const PlHeadSpec *s);
// Append the head's tensors to a table: prefix + "weight"/"bias" (linear) or prefix + "{0,3,6}.{weight,bias}" (MLP),
// with parameter-group layer `layer` and head flag 1 (pl_train_tensor_add).
void pl_head_tensors(const PlHeadSpec *s, const char *prefix, int layer, PlTrainTensor *table, int *count, size_t *off);
// Point p at the head's tensors inside slab (parameters, or a gradient slab of the same layout); first is the head's
// first tensor in the table pl_head_tensors filled.
void pl_head_point(PlHeadParams *p, const PlHeadSpec *s, const PlTrainTensor *first, float *slab);
// Carve one thread's activations from base (64-byte aligned); base NULL only counts. Returns the floats used.
size_t pl_head_acts_carve(PlHeadActs *a, const PlHeadSpec *s, float *base);
// Elements the largest of the head's GEMM operands holds (PlTrainGemm.cap for BF16).
size_t pl_head_gemm_cap(const PlHeadSpec *s);

// Initial parameters: linear = DINO eval_linear (weight ~ N(0, 0.01) from seed, bias 0); MLP = torch nn.Linear's
// default (weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))), each tensor's stream mixing in its index in the
// whole table, first_index being the head's first tensor's.
void pl_head_init(const PlHeadSpec *s, const PlHeadParams *p, uint64_t seed, int first_index);

// MLP dropout scales of n rows: 0 or 1 / (1 - p) per unit from the row's 64-bit key; keys NULL (evaluation) or
// p = 0: all 1. No-op for the linear head.
void pl_head_set_dropout(const PlHeadSpec *s, PlHeadActs *a, int n, const uint64_t *keys);
// a->out (n, out_dim) = head(inp (n, in_dim)), with the dropout scales last set. n <= max_rows.
void pl_head_forward(const PlHeadSpec *s, const PlHeadParams *p, PlHeadActs *a, const PlTrainGemm *g, const float *inp,
                     int n);
// From dout (n, out_dim) after the forward of inp: parameter gradients into grad (overwritten), a->dinp (n, in_dim);
// a->dinp set to NULL after carving skips the input gradient (a probe on stored features needs none).
void pl_head_backward(const PlHeadSpec *s, const PlHeadParams *p, const PlHeadParams *grad, PlHeadActs *a,
                      const PlTrainGemm *g, const float *dout, const float *inp, int n);

#endif
