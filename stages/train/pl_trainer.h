// The one training loop, for every objective: steps over fixed-size global batches, the learning-rate and
// weight-decay schedules,
// the optimizer, finiteness stops (NaN loss, gradient norm, weights or moments), per-step train.jsonl lines, atomic
// checkpoints every N steps, at every epoch end and at the end, bit-identical resume, SIGTERM (checkpoint, then
// stop), an epoch-end hook (validation) and an after-step hook (e.g. a teacher's EMA). Every failure one rank may
// meet alone (its batch, rank 0's log and checkpoint writes) is agreed on before the next collective.
//
// Where batches come from: a PlBatchSource prepares the batch of a step into one of two slots; a PlBatchReader,
// which the program owns (pipeline/pl_batch_reader.c: one reader thread), runs it ahead of the loop, or, without
// one, the loop prepares each batch itself when it needs it.
//
// Ownership: the caller owns the trainer, step, optimizer, source, reader and state; pl_trainer_run borrows them and
// opens and closes train.jsonl itself. Rank 0 alone writes files.
#ifndef PL_TRAINER_H
#define PL_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_optim.h"
#include "pl_threadpool.h"
#include "pl_train_ckpt.h"
#include "pl_train_profile.h"
#include "pl_train_step.h"
#include "pl_vit_train.h"

// A batch source: a ring of `slots` (2..PL_BATCH_SLOTS_MAX) batches; prepare(step, slot) fills slot step % slots
// with this rank's share of the step's global batch, a pure function of the step; batch(slot) is then what the step
// driver receives. prepare is called from one thread at a time (the reader's, or the loop's), never for a slot the
// loop is reading; with a reader, the steps up to slots - 1 ahead of the loop's are prepared meanwhile.
#define PL_BATCH_SLOTS_MAX 8
typedef struct PlBatchSource {
    void *ctx;
    PlStatus (*prepare)(void *ctx, int64_t step, int slot);
    const void *(*batch)(void *ctx, int slot);
    int slots;
} PlBatchSource;

// Images that are not all in memory (a training cache): read(ctx, row, lane, dst) fills dst (C, H, W) with image
// `row`; lanes 0..lanes-1 may read at the same time, one caller per lane: a pool task uses its thread index, the
// batch source lane lanes - 1. digest: a hash of what the source serves (checkpoints record it).
typedef struct PlSampleSource {
    void *ctx;
    PlStatus (*read)(void *ctx, int64_t row, int lane, float *dst);
    int lanes;
    uint64_t digest;
} PlSampleSource;

// Who runs a source ahead of the loop. attach: start serving `src` (nothing prepared yet); request: prepare `step`
// (into slot step % src->slots) when free; wait: until `step` is prepared, its status (the source's error with its
// message); detach: stop serving (waits for a prepare in flight). The thread behind it belongs to the program; it
// counts what it delivered and how long the loop waited (stats).
typedef struct PlBatchReader {
    void *self;
    PlStatus (*attach)(void *self, const PlBatchSource *src);
    void (*request)(void *self, int64_t step);
    PlStatus (*wait)(void *self, int64_t step);
    void (*detach)(void *self);
    void (*stats)(void *self, int64_t *batches, double *prepare_s, double *wait_s);
} PlBatchReader;

typedef struct PlTrainerHooks {
    void *ctx;
    // After epoch `epoch` (0-based) ended and its mean loss was recorded in fs (validation, best copy); may be NULL.
    PlStatus (*epoch_end)(void *ctx, int epoch, PlTrainState *fs);
    // After the optimizer step of `step` with the step's summed statistics (NULL when the objective has none), on
    // every rank; may be NULL.
    PlStatus (*after_step)(void *ctx, int64_t step, const float *stats);
    // After epoch_end, on rank 0: what to add to train.jsonl about the epoch, as JSON members ("\"a\": 1, \"b\": 2");
    // nothing when line is left empty. The loop writes {"step": S, "epoch": E, <members>} (S: the epoch's last
    // step) among the step lines, so a resume keeps it with the steps before it. May be NULL.
    void (*epoch_log)(void *ctx, int epoch, char *line, size_t size);
} PlTrainerHooks;

typedef struct PlTrainerOptions {
    const char *out_dir;          // train.jsonl and checkpoint.safetensors (rank 0 writes them)
    int64_t total_steps;
    int batch;                    // global batch
    int64_t epoch_samples;        // samples per epoch: step s belongs to epoch s * batch / epoch_samples
    double peak_lr, min_lr;       // DINO cosine_scheduler (pl_lr_at) from peak to min after the warm-up
    int64_t warmup_steps;
    int schedule_constant;        // 1: peak after the warm-up
    int wd_schedule;              // 1: the decayed group's weight decay follows DINO's wd_schedule, a cosine (no
    double wd_base, wd_final;     //    warm-up) from wd_base to wd_final, set every step; 0: the optimizer's own
    int64_t checkpoint_every;     // steps between checkpoints (0: epoch ends and the end only)
    int resume;                   // continue from out_dir/checkpoint.safetensors when it exists
    PlTrainCkptKeys keys;         // what the checkpoint must match to be resumed
    const volatile sig_atomic_t *stop;   // nonzero: checkpoint after the current step, then PL_ERR_INTERRUPTED
    PlThreadPool *pool;
    int use_mpi, quiet;
    PlTrainProfile *profile;      // optional (borrowed): data, optimizer and hook times and the step's wall go to
                                  // its loop slot; the first step of the run is not profiled when more follow
} PlTrainerOptions;

typedef struct PlTrainerResult {
    int64_t start_step;           // > 0 after a resume
    double first_loss, last_loss; // of this run's first and last step
    double img_per_s;             // over this run's steps
} PlTrainerResult;

// Train from step 0 (or the checkpoint's step) to o->total_steps. fs: the caller's state arrays (cap_epochs epochs,
// best copy when validating), restored on resume and saved in every checkpoint. reader NULL: prepare in the loop.
PlStatus pl_trainer_run(PlVitTrain *t, PlTrainStep *step, PlOptim *op, const PlBatchSource *src,
                        const PlBatchReader *reader, const PlTrainerHooks *hooks, const PlTrainerOptions *o,
                        PlTrainState *fs, PlTrainerResult *r);

#endif
