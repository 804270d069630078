// The classification objective (pl_train_objective.h) of fine-tuning: the trainer's backbone and head
// (pl_vit_train.h) with softmax cross-entropy on class ids or BCE-with-logits on multi-hot targets (the spec's loss).
//
// Ownership: the objective borrows the trainer; a PlTrainBatch borrows its arrays from whoever prepared them.
#ifndef PL_TRAIN_CLASSIFY_H
#define PL_TRAIN_CLASSIFY_H

#include <stdint.h>

#include "pl_train_objective.h"
#include "pl_vit_train.h"

// This rank's share of one global batch for classification: its samples in order (global batch positions
// [first, first + count) of pl_train_step_rank_samples).
typedef struct PlTrainBatch {
    const float *x;            // (count, C, H, W)
    const int32_t *y;          // (count) class ids (cross-entropy), or NULL
    const float *targets;      // (count, classes) targets (BCE), or NULL
    const uint64_t *keys;      // (count) one 64-bit key per sample (drop path, head dropout)
} PlTrainBatch;

// The objective over trainer t (its loss from the spec); batches passed to the step are PlTrainBatch.
void pl_train_classify_objective(PlVitTrain *t, PlTrainObjective *out);

#endif
