// Label tables for `protloc manifest scan`: OpenCell annotation CSVs and HPA-style `id,labels` CSVs, looked up by key.
//
// Two CSV formats are recognised from their header line:
//   - OpenCell annotations `ensg_id,target_name,annotation_name,annotation_grade` (one row per target and class):
//     each target becomes one entry keyed by BOTH its ENSG id and its target name; its label is its single
//     grade-3 class, or "" when it has none or several (counted in n_multi_grade3 / n_no_grade3); its group is
//     the target name.
//   - an `id,labels[,group][,split]` table (column names case-insensitive; `Id,Target` of the HPA Kaggle train.csv
//     also works): labels separated by ' ', ';' or '|' are joined with ';'. Keyed by id.
// Ownership: a PlLabelTable owns every string; free with pl_label_table_free.
#ifndef PL_SCAN_LABELS_H
#define PL_SCAN_LABELS_H

#include <stddef.h>
#include "pl_error.h"

typedef enum PlLabelFormat { PL_LABELS_OPENCELL = 1, PL_LABELS_ID = 2 } PlLabelFormat;

typedef struct PlLabelEntry {
    char *key;       // ENSG id / target name (OpenCell) or item id
    char *label;     // ';'-separated, "" = unlabelled
    char *group;     // NULL when the table has none for this key
    char *split;     // NULL when the table has none
} PlLabelEntry;

typedef struct PlLabelTable {
    PlLabelFormat format;
    size_t count;
    PlLabelEntry *entries;     // (count) sorted by key
    size_t n_targets;          // OpenCell: distinct targets; id tables: rows
    size_t n_single_grade3;    // OpenCell: targets with exactly one grade-3 class
    size_t n_multi_grade3;     // OpenCell: targets with several grade-3 classes (label "")
    size_t n_no_grade3;        // OpenCell: targets without a grade-3 class (label "")
} PlLabelTable;

// Read and index a labels CSV; errors name the file and line.
PlStatus pl_label_table_load(const char *path, PlLabelTable *out);
// The entry for `key`, or NULL.
const PlLabelEntry *pl_label_table_find(const PlLabelTable *t, const char *key);
void pl_label_table_free(PlLabelTable *t);

#endif
