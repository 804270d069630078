// Fine-tuning data: arrays (ft_data_load_arrays), or a manifest and a model card (ft_data_load_manifest,
// ft_dataset_load): every labelled item of the train / val / test splits goes through `protloc run`'s preparation
// at one level (pl_card_prep.h: the same manifest columns per channel, decode -> rescale to the card's pixel size ->
// normalise -> align channels, the same level geometry): its whole field of view, its tiles, or its single-cell
// crops (label mask or built-in nucleus segmentation); every sample is resized to a square canvas of `size` pixels
// (area average when shrinking, bilinear when enlarging) that the trainer crops, flips and jitters. Tiles and cells
// inherit the item's label and split.
//
// Classes come from the one label encoder (pl_features_encode_labels, multi-label rows skipped), so they are the
// classes `protloc probe` scores; rows are in manifest order, so `--fraction` subsets (pl_probe_subset) pair with the
// probe's on a store of the same manifest. Items that fail a stage are skipped and listed in FAILURES with run's
// columns (pl_failures.h; NULL: not written, e.g. on ranks other than 0); the rest are used.
// Ownership: a FtDataset owns every array and string (ft_dataset_free). Every MPI rank loads the whole set (the
// preprocessing is small next to training), with the process's thread pool.
#ifndef PL_FINETUNE_DATA_H
#define PL_FINETUNE_DATA_H

#include <stdint.h>

#include "pl_card_prep.h"
#include "pl_error.h"
#include "pl_features.h"
#include "pl_manifest.h"
#include "pl_modelcard.h"
#include "pl_npy.h"
#include "pl_store_table.h"
#include "pl_threadpool.h"
#include "pl_trainer.h"
#include "pl_vit.h"
#include "pl_weights.h"

typedef struct FtDataOptions {
    int channels, patch, size;  // model input channels, patch size, canvas side
    PlStoreLevel level;         // fov, tiles or cells: the geometry of `protloc run` (pl_card_prep_levels) with
    int tile;                   // tiles: this side (stride = side), and
    int crop;                   // cells: this crop side; the other settings at run's defaults (PlCardLevels)
    int all_items;              // 1 (pretraining): every item, labelled or not, whatever its split; 0: the labelled
                                // items of the train, val and test splits
} FtDataOptions;

typedef struct FtDataset {
    int C, size;            // channels (the card's slots) and canvas side
    int64_t n;              // samples (FOVs, tiles or cells) of the usable items, in manifest order
    float *x;               // (n, C, size, size), or NULL when the samples stay in a training cache
    int32_t *cls;           // (n) class index
    int n_classes;
    char **classes;         // (n_classes) sorted bytewise
    int64_t *train, *val, *test;   // row indices per split, ascending (labelled rows only)
    int64_t n_train, n_val, n_test;
    int64_t n_failed, n_multilabel, n_unlabelled;
} FtDataset;

// The preparation of a manifest's training items (FtDataOptions' level and canvas): the manifest, its classes (the one
// label encoder), the items it trains on (labelled, split train / val / test; multi-label rows skipped), the level's
// configuration and the item -> sources mapping, and per-thread work kept between calls.
// Ownership: an FtPlan owns everything it holds (ft_plan_free); card is borrowed.
typedef struct FtPlan {
    PlManifest m;
    PlLabelCoding lc;
    const PlModelCard *card;
    FtDataOptions fo;
    int64_t *items;                 // (n) manifest item of each selected row, in manifest order
    int64_t n;
    PlPrepConfig cfg[PL_STORE_N_LEVELS];
    int plane_role[PL_CARD_MAX_SLOTS], n_planes, every_plane, nucleus_role;
    int threads;                    // per-thread work below, sized at the first ft_plan_prep
    PlPrepResult *res;
    PlResizeWork *rw;
    PlSegmenter **seg;
} FtPlan;

// The samples of one item: x (n, C, size, size), or its failure (stage: a literal; msg malloc'd).
typedef struct FtItemSamples {
    float *x;
    int n;
    const char *stage;
    char *msg;
} FtItemSamples;

PlStatus ft_plan_load(const char *manifest, const PlModelCard *card, const FtDataOptions *fo, FtPlan *p);
void ft_plan_free(FtPlan *p);
// Prepare the selected rows rows[0..count) with the pool into out[0..count): each item's samples, or its failure
// recorded (skipped, as `run` skips it); only a failure to record one fails the call.
PlStatus ft_plan_prep(FtPlan *p, PlThreadPool *pool, const int64_t *rows, int count, FtItemSamples *out);
void ft_item_samples_free(FtItemSamples *out, int count);
// FAILURES (pl_failures.h) lists the selected rows whose out[i].msg is set (n_failed of them), or is removed when
// n_failed is 0.
PlStatus ft_plan_write_failures(const FtPlan *p, const char *path, const FtItemSamples *out, int64_t n_failed);
// The dataset's index from the sample count of each selected row (-1: failed): classes, splits and counts, x left
// NULL; moves the plan's class names into ds.
PlStatus ft_dataset_index(FtPlan *p, const int *n_samples, FtDataset *ds);

PlStatus ft_dataset_load(const char *manifest, const PlModelCard *card, const FtDataOptions *fo, const char *failures,
                         PlThreadPool *pool, FtDataset *ds);
void ft_dataset_free(FtDataset *ds);

// The training data of a command: arrays (every row trains) or a manifest (train / val / test splits). Ownership: a
// FtData owns the arrays it loaded and its FtDataset (ft_data_free); the pointers above "owned storage" view them.
typedef struct FtData {
    const char *source;
    int64_t n;
    int C, H, W, classes;
    const float *x;
    const int32_t *cls;
    const float *targets;
    char **class_names;
    const int64_t *train, *val, *test;
    int64_t ntr, nva, nte, n_failed;
    const PlSampleSource *samples;   // x NULL: the samples are read from the training cache through this
    // owned storage
    struct PlTrainCache *cache;
    PlNpyArray npy;
    int32_t *y_own;
    float *t_own;
    int64_t *all_rows;
    FtDataset ds;
    int is_manifest;
} FtData;

// --input X.npy (float32 (N, C, H, W), finite, C = the model's channels) and --labels Y.npy ((N) int class ids: softmax
// cross-entropy, or (N, K) float multi-hot targets in [0, 1]: BCE; NULL: no labels, for pretraining); every row
// trains. *classes: the head's class
// count when known (> 0, checked), else set from the labels.
PlStatus ft_data_load_arrays(const char *input, const char *labels, const PlVitConfig *cfg, int *classes, FtData *d);
// The preparation options for a model: level's level, tile and crop; the model's channels and patch; canvas side
// level->size, or the model's native size when 0.
void ft_data_options(const PlVitConfig *cfg, const FtDataOptions *level, FtDataOptions *fo);

// Where a manifest's samples live: cache NULL: in memory (ft_dataset_load); else the training cache in that folder
// (pipeline/pl_train_cache.h: built or updated first, collectively; then read by `lanes` readers).
typedef struct FtCacheUse {
    const char *dir;
    int lanes;       // the pool's threads + 1 (the batch source's lane)
    int verify;      // content digests of the inputs
} FtCacheUse;

// A manifest's labelled items at level->level (tile, crop; level->size: canvas side, 0 = the model's native size),
// in memory or through the training cache (collective over the ranks then); rank 0 lists failed items in
// OUT_DIR/failures.tsv and logs the split sizes.
PlStatus ft_data_load_manifest(const char *manifest, const PlModelCard *card, const PlVitConfig *cfg,
                               const FtDataOptions *level, const FtCacheUse *cache, const char *out_dir,
                               PlThreadPool *pool, int rank, int ranks, int *classes, FtData *d);
void ft_data_free(FtData *d);

// The backbone a training command starts from: MODEL is a model card (.json; its weights verified) or a checkpoint,
// with CARD_PATH the card that says how to feed it (NULL: none, for arrays). *heads (0) and *key (NULL) default to
// the card's. Ownership: the caller frees *w, and *card when *have_card is set.
PlStatus ft_backbone_load(const char *model, const char *card_path, int *heads, const char **key, PlWeights *w,
                          PlModelCard *card, int *have_card, PlVitConfig *cfg, const char **weights);

#endif
