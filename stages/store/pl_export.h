// `protloc export`: one level of an embedding store (docs/formats.md) as .h5ad (AnnData), .npy + meta TSV, or TSV.
//
// A PlExportTable is the store flattened to one row per observation of the chosen level: fov rows are items,
// tile and cell rows point at their item (`item`, an index into /items). Every row carries its item's id,
// dataset, label, split and group; tiles add y, x and cells add cy, cx, area ("extra" columns).
// Ownership: the table owns every array and string (pl_export_free).
#ifndef PL_EXPORT_H
#define PL_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"

typedef enum PlExportLevel { PL_EXPORT_FOV = 0, PL_EXPORT_TILES = 1, PL_EXPORT_CELLS = 2 } PlExportLevel;

#define PL_EXPORT_MAX_EXTRA 3
#define PL_EXPORT_N_META 5   // id, dataset, label, split, group
#define PL_EXPORT_MAX_ATTRS 32

typedef struct PlExportTable {
    PlExportLevel level;
    char *store_path;
    int64_t n_items;
    char **meta[PL_EXPORT_N_META];   // (n_items) each: /items/{id,dataset,label,split,group}
    int64_t n;                       // rows (observations)
    int64_t d;                       // embedding width
    float *x;                        // (n, d)
    int64_t *item;                   // (n) row index into the items
    int n_extra;
    const char *extra_names[PL_EXPORT_MAX_EXTRA];
    float *extra[PL_EXPORT_MAX_EXTRA];   // (n) each
    int n_attrs;                     // string root attributes of the store (provenance), copied to .h5ad uns
    char *attr_names[PL_EXPORT_MAX_ATTRS];
    char *attr_values[PL_EXPORT_MAX_ATTRS];
} PlExportTable;

extern const char *const pl_export_meta_names[PL_EXPORT_N_META];   // "id", "dataset", "label", "split", "group"

PlStatus pl_export_level_parse(const char *text, PlExportLevel *level);
const char *pl_export_level_name(PlExportLevel level);

// Read one level of `store` (validates shapes and item indices; errors name the store and dataset).
PlStatus pl_export_load(const char *store, PlExportLevel level, PlExportTable *t);
// Unique observation name of row r: the item id (fov) or "<id>/<k>" (k-th tile/cell of that item). Caller frees.
char *pl_export_obs_name(const PlExportTable *t, int64_t r, int64_t k);
// Per-row ordinal k within its item (the k-th tile/cell of that item), (n) malloc'd; NULL when out of memory.
int64_t *pl_export_ordinals(const PlExportTable *t);

// Writers: each writes to a temporary name and renames it into place.
// .npy: X (n, d) float32 to `path`; the metadata (id, dataset, label, split, group, extras) to `meta_path` (TSV).
PlStatus pl_export_write_npy(const PlExportTable *t, const char *path, const char *meta_path);
// TSV: header then one row per observation: obs, id, dataset, label, split, group, extras, e0..e{d-1}.
PlStatus pl_export_write_tsv(const PlExportTable *t, const char *path);
// AnnData .h5ad (on-disk spec 0.1.0: X dense float32, obs/var dataframes of string arrays, uns provenance).
PlStatus pl_export_write_h5ad(const PlExportTable *t, const char *path);

void pl_export_free(PlExportTable *t);

#endif
