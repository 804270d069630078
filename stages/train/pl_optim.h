// The one optimizer module for every trained thing (fine-tuning, the probe's MLP head; DINO pretraining next), exactly
// as torch.optim / facebookresearch/dino do it, over any parameter table (PlTrainTensor) carved out of one slab:
//
//   pl_optim_step            torch.optim.AdamW / torch.optim.SGD (single-tensor paths), with DINO's parameter groups
//                            (utils.get_params_groups: weight decay only on tensors with decay = 1, i.e. not ".bias"
//                            and not 1-D) and optional layer-wise lr decay (lr of layer id i = lr * decay^(layers - i))
//   clip_mode GLOBAL         torch.nn.utils.clip_grad_norm_(all parameters, clip): one norm over every gradient
//   clip_mode PER_TENSOR     DINO utils.clip_gradients(model, clip): per tensor, norm = ||g||_2, coef = clip /
//                            (norm + 1e-6) in float32, g *= coef when coef < 1; the norms are kept for the log
//   pl_optim_set_weight_decay   DINO main_dino.py: optimizer.param_groups[0]["weight_decay"] = wd_schedule[it] before
//                            each step (the decayed group's weight decay; the other group stays at 0)
//   pl_optim_set_frozen(_matching)  DINO utils.cancel_gradients_last_layer: p.grad = None for the "last_layer"
//                            tensors, so torch skips them: no update, no weight decay, no moment change and their own
//                            state['step'] does not advance (their later bias correction uses their own count)
//   pl_optim_ema             DINO's teacher update: param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)
//   pl_cosine_schedule_at    DINO utils.cosine_scheduler (lr with warm-up, weight decay, teacher momentum)
//
// One known difference from torch: AdamW weights the new gradient in exp_avg / exp_avg_sq by 1.0f - (float)beta where
// torch uses (float)(1 - beta) (torch's Python double rounded once); for beta2 = 0.999 the two are 1.3e-5 apart
// (relative), which moves exp_avg_sq by that and the parameters by a few float32 ulps over a run. Kept as it is so
// fine-tuning results stay byte-identical to earlier runs (tests/unit/test_optim.c measures it against torch).
//
// DINO's order within a step is: backward, clip_gradients, cancel_gradients_last_layer, optimizer.step; so clipping
// (either kind) and the reported norms cover frozen tensors too, and their gradients are scaled like the others'.
//
// Ownership: a PlOptim owns its moment slabs (same layout as the parameters) and borrows the tensor table, which must
// outlive it. Every update is element-wise; the global clipping norm sums fixed 64 Ki-element chunks of the slab and
// the per-tensor norms fixed 64 Ki-element chunks of each tensor, each in a fixed order, and the EMA runs in fixed
// blocks: no result depends on the thread count.
#ifndef PL_OPTIM_H
#define PL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"
#include "pl_train_tensor.h"
#include "pl_vit_train.h"

typedef enum PlOptimKind { PL_OPTIM_ADAMW = 0, PL_OPTIM_SGD = 1 } PlOptimKind;
typedef enum PlOptimClip {
    PL_OPTIM_CLIP_GLOBAL = 0,       // torch.nn.utils.clip_grad_norm_ over all gradients (fine-tuning)
    PL_OPTIM_CLIP_PER_TENSOR = 1,   // DINO utils.clip_gradients: each tensor's gradient on its own (pretraining)
} PlOptimClip;

typedef struct PlOptimOptions {
    PlOptimKind kind;
    double weight_decay;     // decayed tensors only (DINO groups); pl_optim_set_weight_decay changes it per step
    double momentum;         // SGD (0 = plain SGD)
    double beta1, beta2, eps;   // AdamW: 0.9, 0.999, 1e-8
    double layer_decay;      // 1 = off; else lr of layer id i is lr * layer_decay^(layers - i)
    double clip;             // 0 = off; else the max norm of clip_mode
    PlOptimClip clip_mode;   // default GLOBAL
} PlOptimOptions;

void pl_optim_options_default(PlOptimOptions *o);   // AdamW, wd 0.04, momentum 0.9, no decay / clipping, GLOBAL

typedef struct PlOptim PlOptim;

// An optimizer for `count` tensors of a slab of `floats` floats (every tensor's offset + numel within it, padding
// between tensors zero in the gradient); `layers` is the highest layer id of the table (layer-wise lr decay).
PlStatus pl_optim_create_for(const PlTrainTensor *tensors, int count, size_t floats, int layers,
                             const PlOptimOptions *o, PlOptim **out);
// The ViT trainer's table (layers = depth + 1).
PlStatus pl_optim_create(const PlVitTrain *t, const PlOptimOptions *o, PlOptim **out);
void pl_optim_destroy(PlOptim *op);
// One step at learning rate lr: params updated in place from grad (grad is scaled in place when clipping; frozen
// tensors are left alone). *grad_norm (may be NULL) receives the global gradient norm before clipping (in PER_TENSOR
// mode the square root of the per-tensor squared norms summed in table order). Runs on `pool` (NULL = calling thread).
void pl_optim_step(PlOptim *op, float *params, float *grad, double lr, PlThreadPool *pool, double *grad_norm);
// 1 when the last pl_optim_step wrote a NaN or an infinity into a parameter or a moment (found during the update at
// no extra cost; the caller names it with a full check, pl_train_ckpt_check_finite), else 0.
int pl_optim_nonfinite(const PlOptim *op);

// The decayed group's weight decay from the next step on (>= 0; PL_ERR_ARG otherwise), and its current value.
PlStatus pl_optim_set_weight_decay(PlOptim *op, double wd);
double pl_optim_weight_decay(const PlOptim *op);
// Freeze (1) or thaw (0) tensor `tensor` for the following steps until changed (PL_ERR_ARG for a bad index);
// _matching: every tensor whose name contains `substring` (DINO: "last_layer"), *matched (may be NULL) receives how
// many. pl_optim_frozen: 1 when frozen.
PlStatus pl_optim_set_frozen(PlOptim *op, int tensor, int frozen);
void pl_optim_set_frozen_matching(PlOptim *op, const char *substring, int frozen, int *matched);
int pl_optim_frozen(const PlOptim *op, int tensor);
// PER_TENSOR mode: the pre-clipping gradient norm of every tensor (table order, pl_optim_tensor_count of them) at the
// last step, DINO's param_norms; NULL in GLOBAL mode.
const double *pl_optim_tensor_norms(const PlOptim *op);
int pl_optim_tensor_count(const PlOptim *op);

// Moment slabs and step counters, for checkpoints: m (and v for AdamW; NULL for SGD), floats each.
// pl_optim_steps_taken: steps taken (calls of pl_optim_step, or the value set); _set_ sets it and every tensor's count.
int64_t pl_optim_steps_taken(const PlOptim *op);
void pl_optim_set_steps_taken(PlOptim *op, int64_t steps);
// Per tensor (torch's state['step']): lower than steps_taken for tensors that were frozen. PL_ERR_ARG for a bad index
// or a negative count.
int64_t pl_optim_tensor_steps(const PlOptim *op, int tensor);
PlStatus pl_optim_set_tensor_steps(PlOptim *op, int tensor, int64_t steps);
float *pl_optim_moment(PlOptim *op, int which);   // 0 = exp_avg / momentum buffer, 1 = exp_avg_sq (NULL for SGD)
size_t pl_optim_floats(const PlOptim *op);
// Bytes of moment state the optimizer keeps in memory, for the memory report: 2 slabs for AdamW, 1 for SGD with
// momentum, 0 for plain SGD (its buffer is allocated zeroed but never written, so it takes no memory), plus the norm
// partial sums. _for / _for_table: what pl_optim_create(t, o) / pl_optim_create_for would hold, without creating it.
double pl_optim_bytes(const PlOptim *op);
double pl_optim_bytes_for(const PlVitTrain *t, const PlOptimOptions *o);
double pl_optim_bytes_for_table(const PlTrainTensor *tensors, int count, size_t floats, const PlOptimOptions *o);

// DINO's teacher EMA in float32, as torch computes it: teacher = fl(fl(teacher * (float)m) + fl(student * (float)(1 -
// m))) with 1 - m taken in double (checked bit-exact against torch). Fixed blocks over `pool` (NULL = this thread).
void pl_optim_ema(float *teacher, const float *student, size_t n, double momentum, PlThreadPool *pool);

// DINO utils.cosine_scheduler(base, final, epochs, niter_per_ep, warmup_epochs, start_warmup)[step], with
// total = epochs * niter_per_ep and warmup = warmup_epochs * niter_per_ep, in numpy's float64 arithmetic: steps
// < warmup are np.linspace(start_warmup, base, warmup) (i * ((base - start) / (warmup - 1)) + start, the last exactly
// base, a single one start), the rest final + 0.5 (base - final) (1 + cos(pi i / (total - warmup))). Used for the lr,
// the weight decay (cosine_scheduler(wd, wd_end, ...), no warm-up) and the teacher momentum (cosine_scheduler(m, 1,
// ...)). Steps past the end give the last cosine formula's values (DINO's array would be out of range); warm-up only
// schedules give base after it.
double pl_cosine_schedule_at(int64_t step, int64_t total, int64_t warmup, double base, double final,
                             double start_warmup);
// The fine-tuning lr: pl_cosine_schedule_at from 0, or with constant = 1 base after the warm-up.
double pl_lr_at(int64_t step, int64_t total, int64_t warmup, double base, double final, int constant);

#endif
