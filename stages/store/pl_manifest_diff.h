// `protloc manifest diff`: which item ids were added, removed or changed between two manifests.
//
// Items are matched by id. "changed" = any of dataset, label, split, group, pixel_size_um, sha256, mask or a channel
// (resolved path and page, for the union of both manifests' roles) differs; the entry names the fields.
// Ownership: a PlManifestDiff owns its entries; entry ids point into the two PlManifests (keep them alive).
#ifndef PL_MANIFEST_DIFF_H
#define PL_MANIFEST_DIFF_H

#include <stddef.h>
#include "pl_error.h"
#include "pl_manifest.h"

typedef enum PlDiffKind { PL_DIFF_ADDED = 1, PL_DIFF_REMOVED = 2, PL_DIFF_CHANGED = 3 } PlDiffKind;

typedef struct PlManifestDiffEntry {
    PlDiffKind kind;
    const char *id;
    char fields[256];     // changed: comma-separated field/role names ("label,protein"); else ""
} PlManifestDiffEntry;

typedef struct PlManifestDiff {
    size_t n_added, n_removed, n_changed, n_unchanged;
    size_t count;
    PlManifestDiffEntry *entries;   // (count): added and changed in NEW order, then removed in OLD order
} PlManifestDiff;

// Load a manifest for comparison: every non-standard column is accepted as a role, paths may lie anywhere,
// files are not checked. Errors as pl_manifest_load.
PlStatus pl_manifest_load_any_roles(const char *path, PlManifest *out);
PlStatus pl_manifest_diff(const PlManifest *old_m, const PlManifest *new_m, PlManifestDiff *out);
void pl_manifest_diff_free(PlManifestDiff *d);

#endif
