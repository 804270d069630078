// `protloc export`: one level of an embedding store (docs/formats.md) as .h5ad (AnnData), .npy + meta TSV, or TSV.
//
// The writers take a store level read by pl_store_table_load: one row per observation, with its item's id,
// dataset, label (a cell's own label when the store has cell labels), split and group, and the level's extras.
// Ownership: the writers only read the table; the caller frees it (pl_store_table_free).
#ifndef PL_EXPORT_H
#define PL_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"
#include "pl_store_table.h"

// The table comes from pl_store_table_load (pl_store_table.h), protloc's one store reader.

// Unique observation name of row r: the item id (fov) or "<id>/<k>" (k-th tile/cell of that item). Caller frees.
char *pl_export_obs_name(const PlStoreTable *t, int64_t r, int64_t k);
// Per-row ordinal k within its item (the k-th tile/cell of that item), (n) malloc'd; NULL when out of memory.
int64_t *pl_export_ordinals(const PlStoreTable *t);

// Writers: each writes to a temporary name and renames it into place.
// .npy: X (n, d) float32 to `path`; the metadata (id, dataset, label, split, group, extras) to `meta_path` (TSV).
PlStatus pl_export_write_npy(const PlStoreTable *t, const char *path, const char *meta_path);
// TSV: header then one row per observation: obs, id, dataset, label, split, group, extras, e0..e{d-1}.
PlStatus pl_export_write_tsv(const PlStoreTable *t, const char *path);
// AnnData .h5ad (on-disk spec 0.1.0: X dense float32, obs/var dataframes of string arrays, uns provenance).
PlStatus pl_export_write_h5ad(const PlStoreTable *t, const char *path);


#endif
