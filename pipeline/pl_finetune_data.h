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

#include "pl_error.h"
#include "pl_modelcard.h"
#include "pl_npy.h"
#include "pl_store_table.h"
#include "pl_threadpool.h"
#include "pl_vit.h"

typedef struct FtDataOptions {
    int channels, patch, size;  // model input channels, patch size, canvas side
    PlStoreLevel level;         // fov, tiles or cells: the geometry of `protloc run` (pl_card_prep_levels) with
    int tile;                   // tiles: this side (stride = side), and
    int crop;                   // cells: this crop side; the other settings at run's defaults (PlCardLevels)
} FtDataOptions;

typedef struct FtDataset {
    int C, size;            // channels (the card's slots) and canvas side
    int64_t n;              // samples (FOVs, tiles or cells) of the usable items, in manifest order
    float *x;               // (n, C, size, size)
    int32_t *cls;           // (n) class index
    char **ids;             // (n) item id, "<id>/tile<k>" or "<id>/cell<k>"
    int n_classes;
    char **classes;         // (n_classes) sorted bytewise
    int64_t *train, *val, *test;   // row indices per split, ascending
    int64_t n_train, n_val, n_test;
    int64_t n_failed, n_multilabel, n_unlabelled;
} FtDataset;

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
    // owned storage
    PlNpyArray npy;
    int32_t *y_own;
    float *t_own;
    int64_t *all_rows;
    FtDataset ds;
    int is_manifest;
} FtData;

// --input X.npy (float32 (N, C, H, W), finite, C = the model's channels) and --labels Y.npy ((N) int class ids: softmax
// cross-entropy, or (N, K) float multi-hot targets in [0, 1]: BCE); every row trains. *classes: the head's class
// count when known (> 0, checked), else set from the labels.
PlStatus ft_data_load_arrays(const char *input, const char *labels, const PlVitConfig *cfg, int *classes, FtData *d);
// A manifest's labelled items at level->level (tile, crop; level->size: canvas side, 0 = the model's native size),
// through ft_dataset_load; rank 0 lists failed items in OUT_DIR/failures.tsv and logs the split sizes.
PlStatus ft_data_load_manifest(const char *manifest, const PlModelCard *card, const PlVitConfig *cfg,
                               const FtDataOptions *level, const char *out_dir, PlThreadPool *pool, int rank,
                               int *classes, FtData *d);
void ft_data_free(FtData *d);

#endif
