// Optimizers for fine-tuning, exactly as torch.optim.AdamW and torch.optim.SGD, over a trainer's parameter slab with
// DINO's parameter groups (utils.get_params_groups: no weight decay for ".bias" and 1-D tensors), optional layer-wise
// lr decay and global gradient-norm clipping; and the learning-rate schedule (DINO's cosine_scheduler: linear warm-up
// from 0, then cosine to the final value, one value per optimizer step).
//
// Ownership: a PlOptim owns its moment slabs (same layout as the parameters) and borrows the tensor table.
// Every update is element-wise and the clipping norm sums fixed 64 Ki-element chunks in a fixed order, so results do
// not depend on the thread count.
#ifndef PL_OPTIM_H
#define PL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"
#include "pl_vit_train.h"

typedef enum PlOptimKind { PL_OPTIM_ADAMW = 0, PL_OPTIM_SGD = 1 } PlOptimKind;

typedef struct PlOptimOptions {
    PlOptimKind kind;
    double weight_decay;     // decayed tensors only (DINO groups)
    double momentum;         // SGD (0 = plain SGD)
    double beta1, beta2, eps;   // AdamW: 0.9, 0.999, 1e-8
    double layer_decay;      // 1 = off; else lr of layer id i is lr * layer_decay^(depth + 1 - i)
    double clip;             // 0 = off; else torch clip_grad_norm_(max_norm = clip) over all gradients
} PlOptimOptions;

void pl_optim_options_default(PlOptimOptions *o);   // AdamW, wd 0.04, momentum 0.9, no decay / clipping

typedef struct PlOptim PlOptim;

PlStatus pl_optim_create(const PlVitTrain *t, const PlOptimOptions *o, PlOptim **out);
void pl_optim_destroy(PlOptim *op);
// One step at learning rate lr: params updated in place from grad (grad is scaled in place when clipping).
// *grad_norm receives the global gradient norm before clipping. Runs on `pool` (NULL = calling thread).
void pl_optim_step(PlOptim *op, float *params, float *grad, double lr, PlThreadPool *pool, double *grad_norm);
// Moment slabs and step counter, for checkpoints: m (and v for AdamW; NULL for SGD), floats each.
int64_t pl_optim_steps_taken(const PlOptim *op);
void pl_optim_set_steps_taken(PlOptim *op, int64_t steps);
float *pl_optim_moment(PlOptim *op, int which);   // 0 = exp_avg / momentum buffer, 1 = exp_avg_sq (NULL for SGD)
size_t pl_optim_floats(const PlOptim *op);
// Bytes of moment state the optimizer keeps in memory, for the memory report: 2 slabs for AdamW, 1 for SGD with
// momentum, 0 for plain SGD (its buffer is allocated zeroed but never written, so it takes no memory). _for: what
// pl_optim_create(t, o) would hold, without creating it.
double pl_optim_bytes(const PlOptim *op);
double pl_optim_bytes_for(const PlVitTrain *t, const PlOptimOptions *o);

// DINO's cosine_scheduler value at `step` of `total`: steps < warmup go linearly from 0 to base
// (np.linspace(0, base, warmup)), the rest follow final + (base - final) (1 + cos(pi i / (total - warmup))) / 2.
// constant = 1 returns base after the warm-up.
double pl_lr_at(int64_t step, int64_t total, int64_t warmup, double base, double final, int constant);

#endif
