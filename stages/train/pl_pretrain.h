// DINO self-supervised pretraining (facebookresearch/dino main_dino.py train_one_epoch at commit 7c446df) on the one
// training loop (pl_trainer.h): the DINO objective (pl_train_dino.h), DINO's schedules (learning rate: warm-up from 0
// then cosine, pl_lr_at; weight decay: cosine on the decayed group; teacher momentum and temperature: in
// pl_train_dino), the last layer's freeze for the first freeze_last_layer epochs (its gradients dropped: no optimizer
// state, step count or decay while frozen), weight_g frozen with norm_last_layer, and checkpoints that carry the
// teacher and the center (PlTrainState extras) so a resume is bit-identical.
//
// Data: fixed views in memory (the contract of `protloc pretrain --global-views G.npy [--local-views L.npy]`), or
// images (in memory, or read from a training cache through a PlSampleSource) whose views DINO's multi-crop
// augmentation makes on the batch source (pl_dino_augment_views, a pure function of (seed, epoch, image), then each
// view standardised per channel, pl_standardise_channels). Every epoch takes N // B global batches (drop_last); with
// shuffle, epoch e's order is a permutation drawn from (seed, e) (protloc's RNG, not torch's), without it iteration i
// takes samples i B ... i B + B - 1 in order. Drop path keys: one per view, a pure function of (seed, step, the
// image's place in the global batch, view), so any rank and thread count draws the same masks.
//
// Ownership: pl_pretrain_run borrows the models, the views and the options; it owns (and frees) the objective, the
// step driver, the optimizer and the batch slots it creates.
#ifndef PL_PRETRAIN_H
#define PL_PRETRAIN_H

#include <signal.h>
#include <stdint.h>

#include "pl_dino_augment.h"
#include "pl_error.h"
#include "pl_optim.h"
#include "pl_pretrain_monitor.h"
#include "pl_threadpool.h"
#include "pl_train_profile.h"
#include "pl_train_dino.h"
#include "pl_trainer.h"
#include "pl_vit_train.h"

// Images whose views are drawn by the multi-crop augmentation.
typedef struct PlPretrainImages {
    int H, W;                          // the images: (n, C, H, W)
    const float *x;                    // in memory, or NULL: read from `samples`
    const PlSampleSource *samples;     // (lane samples->lanes - 1 is the batch source's)
    PlDinoAugmentOptions aug;          // global_size, local_size, n_local give the views' shapes
    int rgb;                           // the RGB-only steps (C == 3 RGB cards)
} PlPretrainImages;

typedef struct PlPretrainViews {
    int64_t n;                 // images
    int C, Hg, Wg;             // global views: (n, 2, C, Hg, Wg)
    int n_local, Hl, Wl;       // local views: (n, n_local, C, Hl, Wl); n_local 0: none
    const float *globals, *locals;   // fixed views, or NULL with `images`
    const PlPretrainImages *images;  // NULL: the fixed views above
} PlPretrainViews;

typedef struct PlPretrainOptions {
    int batch;                      // global batch (all ranks)
    int64_t epochs;
    int shuffle;
    uint64_t seed;
    double lr, min_lr;              // the peak (after warm-up) and final learning rate, as used
    int64_t warmup_epochs;
    double weight_decay, weight_decay_end;
    int64_t freeze_last_layer;      // epochs with the last layer frozen
    int norm_last_layer;            // 1: last_layer.weight_g frozen (at 1)
    PlOptimOptions optim;           // kind, momentum, clip (per tensor); weight_decay is set from above
    PlTrainDinoOptions dino;        // temperatures, momenta, local views (the run fills the schedule lengths)
    int64_t checkpoint_every;
    int64_t eval_every;             // epochs between kNN evaluations of the teacher (0: none; needs `labels`)
    const PlPretrainLabels *labels; // labelled images for the kNN monitor (rows of the images), or NULL
    const PlPretrainImageSet *eval_images;   // the images they index (NULL: the views' images)
    int resume;
    const char *out_dir, *args_text;
    const volatile sig_atomic_t *stop;
    PlThreadPool *pool;
    PlTrainProfile *profile;   // optional (borrowed): per-phase times of the steps (pl_train_profile.h)
    const PlBatchReader *reader;
    int use_mpi, quiet;
} PlPretrainOptions;

typedef struct PlPretrainResult {
    int64_t steps, steps_per_epoch, start_step;
    double first_loss, last_loss, img_per_s;
    int n_epochs;
    double *epoch_loss;             // (n_epochs) malloc'd: pl_pretrain_result_free
    float *epoch_entropy;           // (n_epochs) mean entropy of the teacher's targets (nats; -1: none)
    float *epoch_temp;              // (n_epochs) the teacher temperature
    float *epoch_knn;               // (n_epochs) the teacher's best kNN macro F1, -1 when not evaluated
    int collapse_warnings;          // epochs that ended near uniform or near one prototype
} PlPretrainResult;

// The DINO freeze of the optimizer's tensors for step `step` (epoch step / steps_per_epoch): "last_layer" frozen
// while the epoch is below freeze_last_layer, "last_layer.weight_g" always when norm_last_layer.
void pl_pretrain_freeze(PlOptim *op, int64_t step, int64_t steps_per_epoch, int64_t freeze_last_layer,
                        int norm_last_layer);
// Train the student against the teacher (a copy of it at start) over the views. center: out, the final center
// (K floats, the student's out_dim). Every rank calls it; rank 0 writes train.jsonl and the checkpoints. At every
// epoch end rank 0 logs the epoch's mean target entropy and teacher temperature (a line of train.jsonl), warns when
// the targets collapsed (near uniform or near one prototype, naming DINO's remedies), and every eval_every epochs
// adds the teacher's kNN macro F1 (pl_pretrain_monitor.h); these per-epoch values travel in the checkpoints.
PlStatus pl_pretrain_run(PlVitTrain *student, PlVitTrain *teacher, const PlPretrainViews *v,
                         const PlPretrainOptions *o, float *center, PlPretrainResult *r);
void pl_pretrain_result_free(PlPretrainResult *r);
// The augmentation key of image `row` in `epoch` (pl_dino_augment_views' key): what the batch source draws with, so a
// preview shows the crops training uses.
uint64_t pl_pretrain_view_key(uint64_t seed, int64_t epoch, int64_t row);

#endif
