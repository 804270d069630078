// Embeddings with their item metadata for evaluation: read from an HDF5 store level or from .npy + TSV.
//
// Ownership: a PlFeatureSet owns its matrix and every string; pl_features_free releases them.
#ifndef PL_FEATURES_H
#define PL_FEATURES_H

#include <stdint.h>
#include "pl_error.h"

typedef struct PlFeatureSet {
    int64_t n;          // rows
    int dim;
    float *x;           // (n, dim)
    char **id;          // (n) item id (for tiles/cells: "<item id>/tile<j>" or "/cell<j>")
    char **label;       // (n) "" = unlabelled, "a;b" = several labels
    char **split;       // (n) "train", "val", "test", a fold number, or ""
    char **group;       // (n) protein/gene ("" = none)
    int64_t *item;      // (n) row in /items (store) or the row itself (npy)
    int64_t n_skipped;  // rows dropped on load (non-finite embeddings, e.g. failed items)
} PlFeatureSet;

typedef enum PlFeatureLevel { PL_LEVEL_FOV = 0, PL_LEVEL_TILES = 1, PL_LEVEL_CELLS = 2 } PlFeatureLevel;

// Parse "fov" | "tiles" | "cells".
PlStatus pl_features_parse_level(const char *s, PlFeatureLevel *level);
// Read a store written by `protloc embed` (layout in docs/formats.md). Rows with NaN/Inf are skipped
// (counted in n_skipped).
PlStatus pl_features_read_store(const char *path, PlFeatureLevel level, PlFeatureSet *fs);
// Read F.npy ((N, D) float32) and M.tsv (header naming at least `id` and `label`; `split`, `group` optional;
// other columns ignored; '#' lines are comments; one data line per row, in order).
PlStatus pl_features_read_npy_tsv(const char *npy_path, const char *tsv_path, PlFeatureSet *fs);
void pl_features_free(PlFeatureSet *fs);

#endif
