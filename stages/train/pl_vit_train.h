// A trainable DINO ViT + head: the layout (backbone tensors, DINO names, then the head's under "head."), one
// parameter slab, per-worker activation slabs (one activation set per view group, plus the head's), and the
// micro-batch composed of the modules: backbone forward (pl_vit_backbone.h) -> head forward (pl_train_head.h) ->
// the caller's loss -> head backward -> backbone backward. The head is any kind of pl_train_head.h: the linear or
// DINO4Cells MLP classifier of fine-tuning, or DINO's projection head (a pretraining student = backbone + DINO head;
// its teacher = a second PlVitTrain of the same layout, forward only, started by pl_vit_train_copy_params and
// updated by pl_optim_ema on the two parameter slabs).
//
// Ownership: a PlVitTrain owns its parameter slab, the DINO head's derived buffer, the BF16 copy and one activation
// slab per worker, all allocated (and touched) at create; pl_vit_train_destroy frees them. Gradient buffers belong
// to the caller (pl_train_step.h): they have the parameter slab's layout (pl_vit_train_param_floats floats, padding
// always 0). Workers are independent: worker w's functions may run concurrently with worker v's (one thread each),
// never two calls on the same worker.
// Derived state, one per model, shared read-only by the workers: the BF16 copy of the parameters (BF16 only) and
// the DINO head's weight-normalised last layer W = g v / ||v|| with its row norms (pl_head_derived_floats: out x
// bottleneck + out floats, 64 MiB at DINO's 65536 x 256; placed right after the parameters, so in BF16 it has a
// resident copy too). pl_vit_train_params marks both stale; pl_vit_train_sync refreshes them (the step driver calls
// the objective's begin_step, which calls it, before each step's micro-batches; evaluation calls it before
// predicting); load and copy_params refresh them themselves. A DINO head's forward refuses stale parameters.
// Numerics: every micro-batch is computed on one thread with fixed shapes, so its gradient is bit-identical
// whichever thread, rank or thread count computes it.
#ifndef PL_VIT_TRAIN_H
#define PL_VIT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_kernels.h"
#include "pl_train_head.h"
#include "pl_train_profile.h"
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


// The head on the backbone's CLS features (its inputs cfg.dim, its outputs PlVitTrainSpec.classes, its rows the
// micro-batch). All zero: the linear head (head.weight, head.bias).
typedef struct PlVitTrainHead {
    PlHeadKind kind;    // PL_HEAD_LINEAR; PL_HEAD_MLP: the DINO4Cells MLP Linear(dim, 512)-ReLU-Dropout-Linear(512,
                        // 256)-ReLU-Dropout-Linear(256, classes), tensors head.{0,3,6}.{weight,bias} (nn.Sequential
                        // names); PL_HEAD_DINO: DINO's projection head, tensors head.mlp.{0,2,4}.{weight,bias},
                        // head.last_layer.weight_g / weight_v (DINOHead's names, pl_train_head.h)
    float dropout;      // MLP head: dropout probability in training, [0, 1) (DINO4Cells 0.5); ignored by the others
    int hidden_dim, bottleneck_dim, nlayers;   // DINO head: the mlp's hidden width, bottleneck, Linear count
    int norm_last_layer;                       // DINO head: 1 = weight_g frozen at 1 (freeze it in the optimizer)
} PlVitTrainHead;

// DINO's projection head with main_dino.py's defaults (hidden 2048, bottleneck 256, 3 layers, norm_last_layer 1);
// its out_dim is the spec's classes (DINO's default PL_HEAD_DINO_OUT = 65536).
PlVitTrainHead pl_vit_train_head_dino(void);

typedef struct PlVitTrainSpec {
    PlVitConfig cfg;    // backbone architecture
    int classes;        // head outputs: classes, or the DINO head's out_dim (prototypes)
    PlLossKind loss;
    int height, width;  // input size in pixels (remainder pixels beyond whole patches are ignored)
    int micro_batch;    // images per micro-batch (>= 1)
    int recompute;      // 1: keep only each block's input; recompute the block during the backward
    float drop_path;    // stochastic depth rate of the last block (DINO: linspace(0, rate, depth))
    int workers;        // activation slabs (one per thread)
    PlVitTrainHead head;
    PlPrecision precision;   // attention products (pl_flash_attention.h): FP32 (default, 0) or BF16
    // View groups: group 0 is always (height, width, micro_batch) (create fills groups[0]); ngroups 0 or 1 = that
    // one; up to PL_TRAIN_MAX_GROUPS with extra groups in groups[1 ..] (backbone forward/backward only).
    int ngroups;
    PlViewGroup groups[PL_TRAIN_MAX_GROUPS];
    // Rows of the head's activations per worker (pl_vit_train_head_forward on given features, e.g. DINO's student
    // head over every view of a micro-batch): 0 or below micro_batch = micro_batch (fine-tuning: unchanged).
    int head_rows;
} PlVitTrainSpec;

typedef struct PlVitTrain PlVitTrain;

PlStatus pl_vit_train_create(const PlVitTrainSpec *spec, const PlKernels *kernels, PlVitTrain **out);
void pl_vit_train_destroy(PlVitTrain *t);
// Bytes of one worker's activations for this spec (computed by the same carving as create, without allocating):
// per view group the backbone's activations (pl_vit_backbone.h) for its micro-batch m_g; the head's for group 0's
// m rows (max(m, head_rows) with PlVitTrainSpec.head_rows; pl_head_acts_carve: its output (m, classes), its d(input) (m, dim) and the kind's intermediates - DINO:
// 2 (nlayers - 1) + 2 hidden-wide and 3 bottleneck-wide rows each); the d(output) buffer (m, classes); in BF16 two
// operand scratches as large as the largest GEMM operand (DINO: out x bottleneck, 2 x 32 MiB at the defaults).
// The head's output and d(output) grow with classes: 2 x m x 65536 floats (8 MiB at m = 16) for DINO's out_dim.
double pl_vit_train_activation_bytes(const PlVitTrainSpec *spec);
// Bytes this trainer holds, for the memory report (what create allocated and touched): its FP32 parameter slab and
// the DINO head's derived buffer (W and its row norms; 0 for the other heads), the resident BF16 copy of both (0
// for FP32) and the activation slabs of all its workers.
void pl_vit_train_bytes(const PlVitTrain *t, double *params, double *bf16, double *activations);

size_t pl_vit_train_param_floats(const PlVitTrain *t);   // slab length in floats, padding included
const PlTrainTensor *pl_vit_train_tensors(const PlVitTrain *t, int *count);
// The parameter slab; also marks the derived state stale (the caller may change them): the BF16 copy and the DINO
// head's W. EMA (DINO's teacher): pl_optim_ema(pl_vit_train_params(teacher), pl_vit_train_params(student),
// pl_vit_train_param_floats(student), m, pool): both slabs have the same layout when pl_vit_train_copy_params
// accepted the pair; then pl_vit_train_sync(teacher) before its next forward.
float *pl_vit_train_params(PlVitTrain *t);
// Refresh the derived state if the parameters changed since (pl_vit_train_params was called): the DINO head's W
// (pl_head_weight_norm, FP32 and BF16), then the resident BF16 copy of the parameters and W (BF16). Call it before
// each step's micro-batches and before predicting (no-op when nothing changed). Until it is called after a change,
// a DINO head's forward fails and the other heads' GEMMs convert the parameters themselves (slower, same result).
void pl_vit_train_sync(PlVitTrain *t);
// Worker w's layers time themselves into prof's slot w from now on (NULL: no profiling). prof is borrowed and must
// have at least as many workers as t, and outlive its use.
void pl_vit_train_set_profile(PlVitTrain *t, PlTrainProfile *prof);
// Copy src's parameters into dst (DINO: teacher.load_state_dict(student.state_dict())) and refresh dst's derived
// state. The layouts must match: the same tensors (names, shapes, offsets); precision, workers, micro-batches and
// view groups may differ. Errors name the first differing tensor.
PlStatus pl_vit_train_copy_params(PlVitTrain *dst, const PlVitTrain *src);
const PlVitTrainSpec *pl_vit_train_spec(const PlVitTrain *t);

// Copy the backbone from `w` (validated against the spec's config: every tensor present with its shape) and the head
// from `head` (linear: "weight" (classes, dim), "bias" (classes); MLP: "0.weight" (512, dim), "0.bias", "3.weight"
// (256, 512), "3.bias", "6.weight" (classes, 256), "6.bias"; DINO: DINOHead's state-dict names, "mlp.0.weight" ...
// "last_layer.weight_g" (classes, 1), "last_layer.weight_v" (classes, bottleneck)). head NULL: pl_head_init from
// `seed` (linear = DINO eval_linear's: weight ~ N(0, 0.01), bias 0; MLP = torch nn.Linear's default: weight and bias
// ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); DINO = DINOHead's). Then refreshes the derived state (pl_vit_train_sync).
// Errors name the tensor and both shapes.
PlStatus pl_vit_train_load(PlVitTrain *t, const PlWeights *w, const PlWeights *head, uint64_t seed);
// The backbone (DINO names) or the head (its names without "head.", e.g. DINO's "last_layer.weight_v") as a
// PlWeights copy, for writing.
PlStatus pl_vit_train_export(const PlVitTrain *t, int head, PlWeights *out);

// Forward of n <= micro_batch images x (n, C, H, W) on `worker` through the backbone and the head: *logits (n,
// classes; the DINO head's output for DINO) and *dlogits, the worker's buffer (n, classes) the caller's loss fills
// with d(loss)/d(logits) before pl_vit_train_backward (dlogits NULL: forward only, e.g. a teacher); both valid until
// the worker's next forward. keys (n): one 64-bit key per sample (drop-path and head-dropout masks are a pure
// function of it); NULL: evaluation (no drop path, no dropout). A DINO head needs fresh derived state
// (pl_vit_train_sync after the parameters changed).
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
// The head alone on `worker` over given features feat (n, D), n <= the head's rows (PlVitTrainSpec.head_rows): *out
// (n, classes) the head's output and *dout the worker's buffer (n, classes) the caller's loss fills with d(loss)/d(out)
// before pl_vit_train_head_backward (dout NULL: forward only); both valid until the worker's next head forward (this
// or pl_vit_train_forward). keys (n): MLP head dropout masks (NULL: none). feat must stay unchanged until the
// backward. A DINO head needs fresh derived state (pl_vit_train_sync).
PlStatus pl_vit_train_head_forward(PlVitTrain *t, int worker, const float *feat, int n, const uint64_t *keys,
                                   const float **out, float **dout);
// Backward of the worker's last head forward from its dout: the head tensors' gradients into grad (param floats),
// overwritten (the backbone's are left alone: pl_vit_train_backbone_backward writes them), and *dfeat (n, D), the
// worker's buffer, d(loss)/d(feat), valid until its next head backward.
PlStatus pl_vit_train_head_backward(PlVitTrain *t, int worker, float *grad, const float **dfeat);
// The head's spec (the head's tensors follow the backbone's in the table).
const PlHeadSpec *pl_vit_train_head_spec(const PlVitTrain *t);

#endif
