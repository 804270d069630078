// The training objective interface: what one micro-batch computes (forward, loss, backward) and which per-step
// statistics besides the gradient must be summed over the global batch (DINO's teacher center is one). The step
// driver (pl_train_step.h) cuts the global batch into micro-batches, runs them on the pool and sums gradients and
// statistics in a fixed order; the optimizer (pl_optim.h) and the loop (pl_trainer.h) never learn which objective
// runs. An objective is a table of function pointers over its own context (the IOR aiori.h pattern):
//   - classification (pl_train_classify.h): backbone + head + softmax cross-entropy or BCE-with-logits;
//   - DINO self-distillation (pl_train_dino.h): teacher and student views, DINOLoss, the center as statistics.
// To add one: a file that fills a PlTrainObjective from its context and implements `microbatch` (and `begin_step`
// when it keeps per-step derived state, e.g. the model's BF16 copy of the weights and DINO head's W:
// pl_vit_train_sync of every model it runs, the teacher's included).
//
// Ownership: the objective's context belongs to whoever built the table; the driver borrows both.
#ifndef PL_TRAIN_OBJECTIVE_H
#define PL_TRAIN_OBJECTIVE_H

#include <stddef.h>

#include "pl_error.h"

typedef struct PlTrainObjective {
    const char *name;            // "classification", ...
    void *ctx;
    size_t param_floats;         // length of the gradient slab (the trained parameters' slab, padding included)
    size_t stat_floats;          // statistics per step summed over the global batch besides the gradient (0: none)
    int workers;                 // micro-batches it can compute at once (one per thread; activation sets)
    int micro_batch;             // samples per micro-batch
    double loss_norm;            // the mean loss is sum(losses) / (global batch * loss_norm); gradients are scaled
                                 // by 1 / (global batch * loss_norm) (1; BCE: the classes, as torch's mean)
    // Before the micro-batches of a step, on the calling thread (may be NULL).
    void (*begin_step)(void *ctx);
    // Samples [first, first + n) of this rank's share of the global batch `batch` (the objective's own batch type),
    // on `worker` (0 <= worker < workers; one thread each, concurrently with other workers): grad (param_floats)
    // OVERWRITTEN with scale * d(sum of the n losses)/d(params); stats (stat_floats, NULL when 0) overwritten with
    // this micro-batch's share of the statistics; *loss_sum the sum of its n losses. Must not allocate.
    PlStatus (*microbatch)(void *ctx, int worker, const void *batch, int first, int n, float scale, float *grad,
                           float *stats, double *loss_sum);
} PlTrainObjective;

#endif
