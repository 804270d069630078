// Training checkpoints: the parameters, optimizer moments, best-epoch copy, the objective's extra arrays (x/<name>,
// e.g. DINO's teacher and center) and loop state (the per-tensor optimizer step counts where tensors were frozen) of
// a training run in one safetensors file (tensors p/<name>, m/<name>, v/<name>, b/<name>), written only when every
// value is finite, with a
// SHA-256 digest of every tensor and state value that a resume verifies, and the run's fingerprint (arguments,
// architecture, initial weights, data) that a resume must match.
//
// Ownership: the caller owns the trainer, optimizer and state; these functions borrow them. PlTrainState's arrays
// are allocated by the caller (cap_epochs entries) and filled in place by pl_train_ckpt_read.
#ifndef PL_TRAIN_CKPT_H
#define PL_TRAIN_CKPT_H

#include <stdint.h>

#include "pl_error.h"
#include "pl_optim.h"
#include "pl_vit_train.h"

#define PL_TRAIN_CKPT_NAME "checkpoint.safetensors"

// A float array an objective keeps beside the weights (DINO: the teacher's parameters, the center), saved as tensor
// "x/<name>" (1-D) and restored in place.
typedef struct PlTrainExtra {
    const char *name;
    float *data;
    size_t count;
} PlTrainExtra;

// Loop state beyond the weights and moments, saved so a resume continues bit-identically.
typedef struct PlTrainState {
    int n_epochs, cap_epochs;
    double *epoch_loss, *epoch_val_f1;   // (cap_epochs); epoch_val_f1 NULL without validation
    double loss_sum;                     // losses of the current epoch's finished steps
    int64_t loss_steps;
    int best_epoch;
    double best_val_f1;
    float *best;                         // the best epoch's parameters (validation only), else NULL
    const PlTrainExtra *extra;           // (n_extra) the objective's own state, or NULL
    int n_extra;
} PlTrainState;

// What a checkpoint must match to be resumed.
typedef struct PlTrainCkptKeys {
    const char *args_text;   // every option and the architecture that change the result, as text
    uint64_t init_hash;      // hash of the initial weights
    uint64_t data_hash;      // hash of the training (and validation) images and labels
    int64_t total_steps;     // the run's optimizer steps: a checkpoint's step must lie in [0, total_steps]
} PlTrainCkptKeys;

// Check that the parameters, the optimizer moments and `best` (the best-epoch copy, or NULL) are finite; otherwise
// PL_ERR_NUMERIC naming the first tensor (p/, m/, v/ or b/ + its name), the element and the value. The training loop
// checks every step without `best` (a copy of weights that were checked when it was taken).
PlStatus pl_train_ckpt_check_finite(PlVitTrain *t, PlOptim *op, const float *best);
// Write `path` atomically at optimizer step `step` (after pl_train_ckpt_check_finite: a poisoned state never replaces
// a good checkpoint).
PlStatus pl_train_ckpt_write(const char *path, PlVitTrain *t, PlOptim *op, const PlTrainCkptKeys *k, int64_t step,
                             const PlTrainState *fs);
// Read `path` into the trainer, optimizer and state after verifying its digest, its fingerprint against `k` and its
// step range; any mismatch is an error naming the file and what differs, and leaves nothing half-loaded that
// matters (the caller stops).
PlStatus pl_train_ckpt_read(const char *path, PlVitTrain *t, PlOptim *op, const PlTrainCkptKeys *k, int64_t *step,
                            PlTrainState *fs);
// The step a checkpoint was written at (metadata only, no digest check), for messages; -1 when unreadable.
int64_t pl_train_ckpt_step(const char *path);

#endif
