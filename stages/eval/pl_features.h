// Embeddings with their item metadata for evaluation, read from a store level or from .npy + TSV, and the one label
// encoder of protloc (knn and probe score the same classes and rows).
//
// Ownership: a PlFeatureSet owns its matrix and every string (pl_features_free); a PlLabelCoding owns its class
// names and row codes (pl_label_coding_free).
#ifndef PL_FEATURES_H
#define PL_FEATURES_H

#include <stdint.h>
#include "pl_error.h"
#include "pl_manifest.h"
#include "pl_store_table.h"

typedef struct PlFeatureSet {
    int64_t n;          // rows
    int dim;
    float *x;           // (n, dim)
    char **id;          // (n) item id (for tiles/cells: "<item id>/tile<j>" or "/cell<j>")
    char **label;       // (n) "" = unlabelled, "a;b" = several labels (cells: the cell's own label when stored)
    char **split;       // (n) "train", "val", "test", a fold number, or ""
    char **group;       // (n) protein/gene ("" = none)
    int64_t *item;      // (n) row in /items (store) or the row itself (npy)
    int64_t n_skipped;  // rows dropped on load (non-finite embeddings, e.g. failed items)
} PlFeatureSet;

// Read one level of a store written by `protloc run` (layout in docs/formats.md) through pl_store_table_load.
// Rows with NaN/Inf are skipped (counted in n_skipped).
PlStatus pl_features_read_store(const char *path, PlStoreLevel level, PlFeatureSet *fs);
// Read F.npy ((N, D) float32) and M.tsv (header naming at least `id` and `label`; `split`, `group` optional;
// other columns ignored; '#' lines are comments; one data line per row, in order).
PlStatus pl_features_read_npy_tsv(const char *npy_path, const char *tsv_path, PlFeatureSet *fs);
void pl_features_free(PlFeatureSet *fs);

// ---- labels → classes
typedef enum PlMultilabel { PL_MULTILABEL_SKIP = 0, PL_MULTILABEL_FIRST = 1 } PlMultilabel;

#define PL_FEATURES_MAX_LABEL PL_MANIFEST_MAX_TEXT   // bytes of one class name (longer: an error naming the row)

typedef struct PlLabelCoding {
    int n_classes;
    char **classes;             // (n_classes) distinct usable labels, sorted bytewise
    int32_t *cls;               // (n) per row: class >= 0, -1 unlabelled, -2 multi-label row dropped (SKIP)
    int64_t n_unlabelled, n_multilabel_skipped;
} PlLabelCoding;

// Classes of every row: the label itself; "a;b" (several labels) is dropped (SKIP) or reduced to "a" (FIRST);
// "" (or an empty first label) is unlabelled. Errors: a label longer than PL_FEATURES_MAX_LABEL bytes (naming
// the row and id), more than max_classes classes.
PlStatus pl_features_encode_labels(const PlFeatureSet *fs, PlMultilabel multilabel, int max_classes, PlLabelCoding *out);
void pl_label_coding_free(PlLabelCoding *c);

#endif
