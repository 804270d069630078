// A trainable DINO ViT + classification head: the layout (backbone tensors, DINO names, then the head's under
// "head."), one parameter slab, per-worker activation slabs (one activation set per view group, plus the head's),
// and the classification micro-batch composed of the modules: backbone forward (pl_vit_backbone.h) -> head forward
// (pl_train_head.h) -> loss -> head backward -> backbone backward.
//
// Ownership: a PlVitTrain owns its parameter slab and one activation slab per worker, all allocated (and touched)
// at create; pl_vit_train_destroy frees them. Gradient buffers belong to the caller (pl_train_step.h): they have the
// parameter slab's layout (pl_vit_train_param_floats floats, padding always 0). Workers are independent: worker w's
// functions may run concurrently with worker v's (one thread each), never two calls on the same worker.
// Numerics: every micro-batch is computed on one thread with fixed shapes, so its gradient is bit-identical
// whichever thread, rank or thread count computes it.
#ifndef PL_VIT_TRAIN_H
#define PL_VIT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_kernels.h"
#include "pl_train_head.h"
#include "pl_train_tensor.h"
#include "pl_vit.h"
#include "pl_weights.h"

typedef enum PlLossKind { PL_LOSS_XENT = 0, PL_LOSS_BCE = 1 } PlLossKind;

// One view size of a step (DINO: 2 global 224^2 views, 8 local 96^2 views per image): each worker holds one
// activation set per group, so the forwards of all groups can be held before their backwards.
typedef struct PlViewGroup {
    int height, width;  // the largest input of this group (a forward may use any size whose tokens fit)
    int micro_batch;    // images per micro-batch (>= 1)
} PlViewGroup;
#define PL_TRAIN_MAX_GROUPS 4


typedef struct PlVitTrainSpec {
    PlVitConfig cfg;    // backbone architecture
    int classes;        // head outputs
    PlLossKind loss;
    int height, width;  // input size in pixels (remainder pixels beyond whole patches are ignored)
    int micro_batch;    // images per micro-batch (>= 1)
    int recompute;      // 1: keep only each block's input; recompute the block during the backward
    float drop_path;    // stochastic depth rate of the last block (DINO: linspace(0, rate, depth))
    int workers;        // activation slabs (one per thread)
    int head_mlp;       // 0: linear head (head.weight, head.bias); 1: the DINO4Cells MLP head
                        // Linear(dim, 512)-ReLU-Dropout-Linear(512, 256)-ReLU-Dropout-Linear(256, classes), tensors
                        // head.{0,3,6}.{weight,bias} (nn.Sequential names)
    float head_dropout; // MLP head: dropout probability in training (DINO4Cells 0.5)
    PlPrecision precision;   // attention products (pl_flash_attention.h): FP32 (default, 0) or BF16
    // View groups: group 0 is always (height, width, micro_batch) (create fills groups[0]); ngroups 0 or 1 = that
    // one; up to PL_TRAIN_MAX_GROUPS with extra groups in groups[1 ..] (backbone forward/backward only).
    int ngroups;
    PlViewGroup groups[PL_TRAIN_MAX_GROUPS];
} PlVitTrainSpec;

typedef struct PlVitTrain PlVitTrain;

PlStatus pl_vit_train_create(const PlVitTrainSpec *spec, const PlKernels *kernels, PlVitTrain **out);
void pl_vit_train_destroy(PlVitTrain *t);
// Bytes of one worker's activations for this spec (the documented formula, computed without allocating).
double pl_vit_train_activation_bytes(const PlVitTrainSpec *spec);
// Bytes this trainer holds, for the memory report (what create allocated and touched): its FP32 parameter slab,
// the resident BF16 copy of the parameters (0 for FP32) and the activation slabs of all its workers.
void pl_vit_train_bytes(const PlVitTrain *t, double *params, double *bf16, double *activations);

size_t pl_vit_train_param_floats(const PlVitTrain *t);   // slab length in floats, padding included
const PlTrainTensor *pl_vit_train_tensors(const PlVitTrain *t, int *count);
float *pl_vit_train_params(PlVitTrain *t);   // also marks the BF16 copy stale (the caller may change them)
// BF16: round the parameters into their resident BF16 copy if they changed since (pl_vit_train_params was called);
// call it before each step's micro-batches and before predicting. No-op for FP32. Until it is called after a change,
// the GEMMs convert the parameters themselves (slower, same result).
void pl_vit_train_sync(PlVitTrain *t);
const PlVitTrainSpec *pl_vit_train_spec(const PlVitTrain *t);

// Copy the backbone from `w` (validated against the spec's config: every tensor present with its shape) and the head
// from `head` (linear: "weight" (classes, dim), "bias" (classes); MLP: "0.weight" (512, dim), "0.bias", "3.weight"
// (256, 512), "3.bias", "6.weight" (classes, 256), "6.bias"). head NULL: linear = DINO eval_linear's init (weight ~
// N(0, 0.01) from `seed`, bias 0); MLP = torch nn.Linear's default (weight and bias ~ U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) from `seed`). Errors name the tensor and both shapes.
PlStatus pl_vit_train_load(PlVitTrain *t, const PlWeights *w, const PlWeights *head, uint64_t seed);
// The backbone (DINO names) or the head (its names without "head.") as a PlWeights copy, for writing.
PlStatus pl_vit_train_export(const PlVitTrain *t, int head, PlWeights *out);

// Forward of n <= micro_batch images x (n, C, H, W) on `worker` through the backbone and the head: *logits (n,
// classes) and *dlogits, the worker's buffer (n, classes) the caller's loss fills with d(loss)/d(logits) before
// pl_vit_train_backward; both valid until the worker's next forward. keys (n): one 64-bit key per sample (drop-path
// and head-dropout masks are a pure function of it); NULL: evaluation (no drop path, no dropout).
PlStatus pl_vit_train_forward(PlVitTrain *t, int worker, const float *x, int n, const uint64_t *keys,
                              const float **logits, float **dlogits);
// Backward of the worker's last forward from its dlogits: the gradient of every tensor into grad (param floats),
// overwritten.
PlStatus pl_vit_train_backward(PlVitTrain *t, int worker, float *grad);

// Forward only (no drop path): logits (n, classes).
PlStatus pl_vit_train_predict(PlVitTrain *t, int worker, const float *x, int n, float *logits);

// The backbone of `group` on `worker` alone (pl_vit_backbone.h): forward of n <= the group's micro_batch images
// x (n, C, height, width) of any size up to the group's, keys (n) for drop path (NULL: none), features (n, D) into
// *features (the worker's buffer, valid until the group's next forward); then the backward from dfeat (n, D) into
// grad (param floats; backbone tensors only), overwritten (accumulate 0) or added into (accumulate 1). Every group's
// forward may be held before the backwards.
PlStatus pl_vit_train_backbone_forward(PlVitTrain *t, int worker, int group, const float *x, int n, int height,
                                       int width, const uint64_t *keys, const float **features);
PlStatus pl_vit_train_backbone_backward(PlVitTrain *t, int worker, int group, const float *dfeat, float *grad,
                                        int accumulate);
// The head's spec and its named parameters (the head's tensors follow the backbone's in the table).
const PlHeadSpec *pl_vit_train_head_spec(const PlVitTrain *t);

#endif
