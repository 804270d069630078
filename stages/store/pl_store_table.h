// One level of an embedding store read into memory: protloc's one store reader (export, kNN, probes).
//
// A PlStoreTable is a store level (docs/formats.md) flattened to one row per observation: fov rows are items,
// tile and cell rows point at their item (`item`, an index into /items). Every row has its item's id, dataset,
// label, split and group (id and label are required; dataset, split and group read as "" when a store lacks
// them); tiles add y, x and cells add cy, cx, area, mask_label ("extra" columns, when present). When cells were
// labelled with a cell-label table (`protloc run --cell-labels`), /cells/label gives each cell row its own
// class, and pl_store_table_label returns it instead of the item's label.
// Ownership: the table owns every array and string (pl_store_table_free).
#ifndef PL_STORE_TABLE_H
#define PL_STORE_TABLE_H

#include <stdint.h>
#include "pl_error.h"

typedef enum PlStoreLevel { PL_STORE_FOV = 0, PL_STORE_TILES = 1, PL_STORE_CELLS = 2 } PlStoreLevel;
#define PL_STORE_N_LEVELS 3
#define PL_STORE_N_META 5        // id, dataset, label, split, group
#define PL_STORE_MAX_EXTRA 4
#define PL_STORE_MAX_ATTRS 32

extern const char *const pl_store_meta_names[PL_STORE_N_META];   // "id", "dataset", "label", "split", "group"

// "fov" | "tiles" | "cells" → level; anything else is PL_ERR_ARG naming the text.
PlStatus pl_store_level_parse(const char *text, PlStoreLevel *level);
const char *pl_store_level_name(PlStoreLevel level);

typedef struct PlStoreTable {
    PlStoreLevel level;
    char *store_path;
    int64_t n_items;
    char **meta[PL_STORE_N_META];   // (n_items) each: /items/{id,dataset,label,split,group}
    int64_t n;                      // rows (observations)
    int64_t d;                      // embedding width
    float *x;                       // (n, d)
    int64_t *item;                  // (n) row index into the items
    char **row_label;               // (n) cells with /cells/label: the cell's class ("" = unlabelled); else NULL
    int n_extra;
    const char *extra_names[PL_STORE_MAX_EXTRA];
    float *extra[PL_STORE_MAX_EXTRA];   // (n) each
    int n_attrs;                    // string root attributes (provenance)
    char *attr_names[PL_STORE_MAX_ATTRS];
    char *attr_values[PL_STORE_MAX_ATTRS];
} PlStoreTable;

// Read one level of `store` (validates shapes and item indices; errors name the store and the dataset).
PlStatus pl_store_table_load(const char *store, PlStoreLevel level, PlStoreTable *t);
// The class label of row r: its cell label when the table has them, else its item's label.
const char *pl_store_table_label(const PlStoreTable *t, int64_t r);
void pl_store_table_free(PlStoreTable *t);

#endif
