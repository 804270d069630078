// DINO's self-distillation loss (facebookresearch/dino main_dino.py `DINOLoss`, commit 7c446df) as plain functions
// over flat float32 arrays for protloc's data-parallel step: the loss and its gradient per image of a micro-batch,
// the teacher statistic the step driver sums over the global batch, the center's EMA, and the teacher temperature
// schedule. A building block of the pretraining objective; it knows nothing of models or steps.
//
// Layout. Per image b of a micro-batch, its views' head outputs (K = out_dim), image-major:
//   student (n, V, K): V = 2 global + N local views (DINO's ncrops), the 2 global views first;
//   teacher (n, 2, K): the teacher's outputs of the 2 global views.
// DINO's tensors are crop-major over the global batch of B images (student_output.chunk(ncrops), teacher_output
// .chunk(2)): protloc's student[b][v] is DINO's student_output[v * B + b], teacher[b][i] its teacher_output[i * B + b].
//
// The loss. For image b, q_i = softmax((t_i - center) / tau_t) (i = 0, 1; no gradient: DINO's detach) and
//   loss_b = sum over pairs (i, v), i in {0, 1}, v in [0, V), v != i, of -q_i . log_softmax(s_v / tau_s);
// DINO's loss is the mean over the batch of loss_b / n_terms, n_terms = pl_dino_loss_terms(V) = 2 V - 2. A micro-batch
// returns sum_b loss_b / n_terms; the step driver divides the global sum by the global batch B and passes
// scale = 1 / B, so the gradients summed over micro-batches are DINO's. The gradient, from
// d(-w . log_softmax(z))/dz = (sum_k w_k) softmax(z) - w and z = s / tau_s:
//   d/ds_v = scale / (n_terms tau_s) * (W_v p_v - w_v),  p_v = softmax(s_v / tau_s),  w_v = sum over i in {0, 1},
//   i != v, of q_i (q_1 for v = 0, q_0 for v = 1, q_0 + q_1 for local views), W_v = sum_k w_v[k] (1 up to rounding for
//   the global views, 2 for the local ones): the exact gradient of the loss as computed from the float32 q.
//
// Numerics: float32 in and out; differences of inputs, temperatures and the max subtraction in double, the
// exponentials in float32 (expf), every sum over K in double. Against DINOLoss in float64 on the same float32 inputs
// (tests/unit/test_train_dino_loss.c): the loss within 2e-6 relative, each gradient element within
// 1e-6 * scale / (n_terms tau_s) (a few float32 roundings of softmax values <= 1: q, expf, the final product);
// measured 1.1e-8 and 1.7e-7 (torch's own float32 DINOLoss on the same inputs: 1.0e-7 and 9.1e-7).
// Nothing allocates; everything streams over K (K may be DINO's 65536) with a caller's scratch of
// pl_dino_loss_scratch_floats(K) floats.
//
// Ownership: callers own every buffer.
#ifndef PL_DINO_LOSS_H
#define PL_DINO_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"

// DINO's options checked once, at create: V >= 2 views, K >= 1, temperatures > 0 and finite, 0 <= warmup_epochs
// <= nepochs (np.ones(nepochs - warmup_epochs) fails otherwise).
PlStatus pl_dino_loss_check(int views, int K, double student_temp, double warmup_teacher_temp, double teacher_temp,
                            int64_t warmup_epochs, int64_t nepochs);

// n_terms: the (teacher view, student view) pairs of one image, 2 V - 2 (V >= 2).
int pl_dino_loss_terms(int views);

// Floats of scratch pl_dino_loss needs: 2 K (the two teacher distributions of the image at hand).
size_t pl_dino_loss_scratch_floats(int K);

// The loss of n images: returns sum_b loss_b / n_terms (double). dstudent (n, V, K) OVERWRITTEN with
// scale * d(that sum)/d(student) (NULL: the loss only). student (n, V, K), teacher (n, 2, K), center (K);
// tau_s = student_temp (DINO 0.1), tau_t = teacher_temp (pl_dino_teacher_temp of the epoch).
// scratch: pl_dino_loss_scratch_floats(K) floats. The result of an image does not depend on n or on the other images,
// so any cut of the batch into micro-batches gives the same gradients, bit for bit.
double pl_dino_loss(float *dstudent, const float *student, const float *teacher, const float *center, int n, int V,
                    int K, double student_temp, double teacher_temp, float scale, float *scratch);

// The center statistic of n images: sum (K) OVERWRITTEN with sum over b of t_b0 + t_b1 (teacher (n, 2, K)), summed in
// double in row order and rounded once. The step driver sums it over the global batch (its fixed tree).
void pl_dino_teacher_sum(float *sum, const float *teacher, int n, int K);

// DINO's update_center on the global sum of the teacher outputs: center (K) = center * m + (sum / count) * (1 - m),
// count = 2 * global batch (len(teacher_output) * world_size). In torch 1.13's float32 arithmetic bit for bit (checked
// against torch): fl(fl(center * (float)m) + fl(fl(sum / (float)count) * (float)(1 - m))), the Python scalars m and
// 1 - m (taken in double) rounded to float32, the division a true float32 division.
void pl_dino_center_update(float *center, const float *sum, int64_t count, double momentum, int K);

// DINO's teacher temperature at `epoch` (>= 0): np.concatenate((np.linspace(warmup_teacher_temp, teacher_temp,
// warmup_epochs), np.ones(nepochs - warmup_epochs) * teacher_temp))[epoch], numpy's float64 values bit for bit
// (the linspace as pl_cosine_schedule_at computes it). Epochs past nepochs give teacher_temp.
double pl_dino_teacher_temp(int64_t epoch, double warmup_teacher_temp, double teacher_temp, int64_t warmup_epochs,
                            int64_t nepochs);

#endif
