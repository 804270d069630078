// Fine-tuning, wired from the training layers: the classification objective (pl_train_classify.h) of a trainer
// (pl_vit_train.h), the data-parallel step (pl_train_step.h), the optimizer (pl_optim.h) and the one training loop
// (pl_trainer.h: schedule, train.jsonl, checkpoints, resume), over in-memory training data as a batch source with
// seeded shuffling and augmentation; validation at each epoch end (the best epoch's weights kept), the final scores
// and the written weights.
//
// Reproducibility: every random choice is a pure function of (seed, global sample position) or (seed, epoch, row),
// and the gradient is summed in a fixed order, so the final weights are bit-identical for any thread and rank count
// (reduce "tree") and after any interruption + resume.
// Threads: the pool computes; the program's reader (o->reader, pipeline/pl_batch_reader.c) prepares the next global
// batch (order, augmentation) into the source's second slot meanwhile.
// Ownership: the caller owns the trainer, the data and the pool; pl_finetune_run allocates and frees the rest.
// Rank 0 alone writes files; every rank holds identical weights after every step.
#ifndef PL_FINETUNE_H
#define PL_FINETUNE_H

#include <signal.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_optim.h"
#include "pl_threadpool.h"
#include "pl_train_profile.h"
#include "pl_trainer.h"
#include "pl_vit_train.h"

typedef struct PlFinetuneData {
    int64_t n;                 // images in the set
    int C, H, W;
    const float *x;            // (rows of the store, C, H, W), or NULL: the images come from `samples`
    const int32_t *y;          // (rows of the store) class ids (cross-entropy), or NULL
    const float *targets;      // (rows of the store, classes) multi-hot (BCE), or NULL
    int classes;
    const int64_t *rows;       // (n) image i of the set is row rows[i] of x / y / targets; NULL = row i
    const PlSampleSource *samples;   // with x NULL: reads row r (a training cache, pipeline/pl_train_cache.h)
} PlFinetuneData;

static inline int64_t pl_finetune_row(const PlFinetuneData *d, int64_t i) { return d->rows ? d->rows[i] : i; }

typedef struct PlFinetuneOptions {
    const char *out_dir;       // existing, writable folder
    PlOptimOptions optim;
    double lr;                 // > 0: used as given; 0: base_lr * batch / 256 (or base_lr with no_lr_scaling)
    double base_lr;            // 1e-4 (DINO4Cells)
    int no_lr_scaling;
    double min_lr;             // cosine end value (0, as CosineAnnealingLR's eta_min)
    double weight_decay_end;   // >= 0: weight decay cosine from optim.weight_decay to this (DINO's wd_schedule); < 0: constant
    int64_t steps;             // optimizer steps; 0 = epochs * ceil(n / batch)
    int epochs;
    int batch;                 // global batch
    int schedule_constant;     // 1: constant lr after the warm-up
    int64_t warmup_steps;
    int augment, shuffle;
    int balanced;              // class-balanced sampling: each epoch draws n rows with replacement, weight 1 / class size
    uint64_t seed;
    int allreduce, use_mpi;
    int64_t checkpoint_every;  // steps between checkpoints (0: epoch ends and the end only)
    int resume;                // continue from out_dir/checkpoint.safetensors
    const char *args_text;     // every option that changes the result, as text (checked on resume)
    const volatile sig_atomic_t *stop;   // nonzero: stop after the current step (checkpoint, PL_ERR_INTERRUPTED)
    PlThreadPool *pool;
    PlTrainProfile *profile;   // optional (borrowed): per-phase times of the steps (pl_train_profile.h)
    const PlBatchReader *reader;   // the program's reader that prepares the next batches meanwhile (NULL: the loop)
    int prefetch;              // global batches the reader prepares ahead of the step (1 .. PL_BATCH_SLOTS_MAX - 1)
    int quiet;
} PlFinetuneOptions;

void pl_finetune_options_default(PlFinetuneOptions *o);
// The learning rate the run uses at its peak (after batch scaling), as reported.
double pl_finetune_peak_lr(const PlFinetuneOptions *o);

typedef struct PlFinetuneResult {
    int64_t steps, start_step;  // total optimizer steps; the step this run started at (> 0 after a resume)
    double first_loss, last_loss;
    double img_per_s;           // training images per second over this run's steps
    double peak_lr;
    int n_epochs;               // epochs finished (an epoch = ceil(n / batch) steps)
    double *epoch_loss;         // (n_epochs) mean training loss of each epoch
    double *epoch_val_f1;       // (n_epochs) validation macro F1 after each epoch (NULL without a validation set)
    int best_epoch;             // 1-based epoch whose weights were kept (best val macro F1; the last without val)
    double best_val_f1;
    // scores of the kept weights on the test set (eval_split "test"), or on the training images without one
    const char *eval_split;     // "test" or "train"
    int64_t n_eval;
    double eval_macro_f1, eval_accuracy;
    double *per_class_f1;       // (classes)
    int64_t *confusion;         // (classes, classes + 1), single-label only (else NULL)
} PlFinetuneResult;

// Train on `train`; val and test may be NULL. With val, the weights of the epoch with the best validation macro F1
// are kept (written and scored); test is scored once, at the end.
PlStatus pl_finetune_run(PlVitTrain *t, const PlFinetuneData *train, const PlFinetuneData *val,
                         const PlFinetuneData *test, const PlFinetuneOptions *o, PlFinetuneResult *r);
void pl_finetune_result_free(PlFinetuneResult *r);

#endif
