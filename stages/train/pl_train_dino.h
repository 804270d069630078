// DINO's self-distillation objective (facebookresearch/dino main_dino.py train_one_epoch at commit 7c446df) for the
// step driver (pl_train_objective.h): per micro-batch, the teacher's forward of the 2 global views of each image, the
// student's backbone over the global views (view group 0) and the local views (group 1), the student's DINO head over
// every view, DINOLoss (pl_dino_loss.h) against the center and the epoch's teacher temperature, and the backward; the
// per-step statistics (K + 1 floats) are the teacher outputs' sum (the center's) and the summed entropy of the
// teacher's targets (collapse monitoring). After each optimizer step (pl_train_dino_after_step, the shape of
// PlTrainerHooks.after_step): the center update over the global batch, the teacher EMA with DINO's momentum
// schedule, and the teacher's derived state. The core of `protloc pretrain` (pl_pretrain.h).
//
// Models. The student: backbone + PL_HEAD_DINO head, spec micro_batch = 2 m (the global views of m images), height /
// width the global size, with N local views per image view group 1 = (local height, local width, N m) (ngroups 1 when
// N = 0) and head_rows >= (2 + N) m (the head runs over every view). The teacher: the same tensor layout (started by
// pl_vit_train_copy_params), micro_batch >= 2 m, the same global size, at least the student's workers; forward only.
// The optimizer (the caller's) must freeze "last_layer.weight_g" (norm_last_layer) and "last_layer" during DINO's
// freeze_last_layer epochs, clip per tensor, and follow DINO's lr / wd schedules.
//
// Ownership: a PlTrainDino borrows both models and the pool, and owns the center (K floats) and one slab of
// per-worker buffers (the features of every view of a micro-batch and their gradients, the loss's scratch), all
// allocated at create; a step allocates nothing. A PlDinoBatch borrows its arrays from whoever prepared them.
#ifndef PL_TRAIN_DINO_H
#define PL_TRAIN_DINO_H

#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"
#include "pl_train_objective.h"
#include "pl_vit_train.h"

// This rank's share of one global batch: its images in order, each with its fixed views (the augmentation is the
// caller's, pl_dino_augment.h).
typedef struct PlDinoBatch {
    const float *globals;          // (count, 2, C, Hg, Wg)
    const float *locals;           // (count, N, C, Hl, Wl); NULL when N = 0
    const uint64_t *global_keys;   // (count, 2) the student's drop-path key per global view, or NULL (no drop path)
    const uint64_t *local_keys;    // (count, N) per local view, or NULL
} PlDinoBatch;

typedef struct PlTrainDinoOptions {
    int local_views;                  // N (DINO local_crops_number, 8); 0: globals only
    double student_temp;              // 0.1
    double warmup_teacher_temp, teacher_temp;   // 0.04, 0.04 (main_dino.py's defaults)
    int64_t warmup_teacher_temp_epochs;         // 0
    int64_t nepochs;                  // epochs of the run (the temperature schedule's length)
    double center_momentum;           // 0.9
    double momentum_teacher;          // 0.996: cosine_scheduler(momentum_teacher, 1, epochs, niter_per_ep)
    int64_t steps_per_epoch;          // niter_per_ep (the temperature's epoch = step / steps_per_epoch)
    int64_t total_steps;              // nepochs * steps_per_epoch (the momentum schedule's length)
    int global_batch;                 // images per step over all ranks (the center's count is 2 x this)
    PlThreadPool *pool;               // the EMA's threads (NULL: the calling thread)
} PlTrainDinoOptions;

// main_dino.py's defaults for the fields above it names (local_views 8, the temperatures, momenta); the caller sets
// nepochs, steps_per_epoch, total_steps, global_batch and pool.
void pl_train_dino_options_default(PlTrainDinoOptions *o);

typedef struct PlTrainDino PlTrainDino;

// Checks the two models against each other and the options (messages name the mismatch); the center starts at 0
// (DINO's register_buffer zeros) and the step at 0.
PlStatus pl_train_dino_create(PlVitTrain *student, PlVitTrain *teacher, const PlTrainDinoOptions *o,
                              PlTrainDino **out);
void pl_train_dino_destroy(PlTrainDino *d);
// The objective over d: micro_batch m images, stat_floats K + 1, loss_norm 1; batches passed to the step are
// PlDinoBatch. Its begin_step sets the teacher temperature of the current step's epoch and syncs both models.
void pl_train_dino_objective(PlTrainDino *d, PlTrainObjective *out);
// After the optimizer step `step` with the step's summed statistics (stats: K + 1 floats, the teacher outputs' sum
// over the global batch, then the targets' entropy sum): center update (count 2 x global batch), teacher EMA (momentum
// pl_cosine_schedule_at(step, total_steps, 0, momentum_teacher, 1, 0)) over the whole parameter slabs, the teacher's
// pl_vit_train_sync; the next step is step + 1. ctx is the PlTrainDino (PlTrainerHooks.after_step).
PlStatus pl_train_dino_after_step(void *ctx, int64_t step, const float *stats);
// The center (K floats; writable, e.g. for a resume) and the step the next begin_step uses (a resume sets it).
float *pl_train_dino_center(PlTrainDino *d);
void pl_train_dino_set_step(PlTrainDino *d, int64_t step);
// The teacher temperature the micro-batches use (set by begin_step) and the teacher momentum of `step`.
double pl_train_dino_teacher_temp(const PlTrainDino *d);
// The mean entropy (nats) of the teacher's targets softmax((t - center) / temp) over the global views of the last
// step (set by pl_train_dino_after_step from the step's statistics): log K when the targets are uniform, 0 when each
// is one prototype, DINO's two collapses.
double pl_train_dino_teacher_entropy(const PlTrainDino *d);
double pl_train_dino_momentum(const PlTrainDino *d, int64_t step);

#endif
