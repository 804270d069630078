// Manifest TSV parser and validator (spec: docs/manifests.md): items with ids, labels, splits, groups, channel paths.
//
// A manifest is a tab-separated file. Lines starting with '#' are comments, blank lines are ignored; the first
// other line is the header. Required columns: id, dataset, label, split, group. Optional: pixel_size_um, mask,
// sha256. Every other column is a channel role (nucleus, protein, microtubules, er, or a role a model card
// declares) holding `path[#page]`. Relative paths resolve against the manifest's folder (or options.root);
// a path that escapes the root is refused unless options.allow_outside_root.
//
// Every text field must be valid UTF-8 (stores and .h5ad files are UTF-8) within PL_MANIFEST_MAX_ID (ids) or
// PL_MANIFEST_MAX_TEXT bytes, so that a bad manifest fails at `manifest check`, not after the compute.
// Errors: every problem found is recorded as "file:line:column: what is wrong" in PlManifest.errors (up to
// options.max_errors); pl_manifest_load then returns PL_ERR_FORMAT with the first error (plus "and N more") as
// the message. The partially filled PlManifest must still be released with pl_manifest_free.
//
// Ownership: a PlManifest owns every string, item, error and its id index; pl_manifest_free releases them all.
#ifndef PL_MANIFEST_H
#define PL_MANIFEST_H

#include <stddef.h>
#include "pl_error.h"
#include "pl_idindex.h"

#define PL_MANIFEST_MAX_ROLES 16
#define PL_MANIFEST_MAX_LINE (1 << 16)
#define PL_MANIFEST_MAX_ID 1024       // bytes of an item id (journal records and stores hold ids up to this)
#define PL_MANIFEST_MAX_TEXT 4096     // bytes of a label, dataset, split, group or path (also a class name's limit)

// One channel of one item: a resolved file path and a page (TIFF directory / sample index), default 0.
typedef struct PlManifestChannel {
    char *path;        // resolved path (root joined, lexically normalised); NULL when the cell is empty
    char *raw;         // the text as written in the manifest ("" when empty)
    int page;
} PlManifestChannel;

typedef struct PlManifestItem {
    char *id;
    char *dataset;
    char *label;       // ';'-separated labels; "" = unlabelled
    char *split;       // "train", "val", "test", a fold integer, or "" (unassigned)
    char *group;       // protein / gene used for leakage-free splits
    PlManifestChannel channels[PL_MANIFEST_MAX_ROLES];   // indexed like PlManifest.roles
    PlManifestChannel mask;   // mask.path NULL when absent
    double pixel_size_um;     // 0 = not given
    char *sha256;             // expected content hash of the channels (64 hex chars) or NULL
    int line;                 // 1-based line number in the manifest
} PlManifestItem;

typedef struct PlManifest {
    char *path;               // the manifest file as given
    char *root;               // folder relative paths resolve against
    int n_roles;
    char *roles[PL_MANIFEST_MAX_ROLES];   // role column names, in column order
    size_t count;
    PlManifestItem *items;    // (count) in file order
    char **errors;            // (n_errors) "file:line:column: message"
    size_t n_errors;
    size_t n_errors_total;    // including those beyond max_errors
    PlIdIndex index;          // item id → item index (the first item of each id)
} PlManifest;

typedef struct PlManifestOptions {
    const char *root;                 // NULL = the manifest's folder
    const char *const *roles;         // allowed role names; NULL = nucleus, protein, microtubules, er
    int n_roles;
    int allow_outside_root;           // accept paths outside the root
    int check_files;                  // stat every channel / mask file ("missing file" errors)
    size_t max_errors;                // errors kept in PlManifest.errors; 0 = 100
} PlManifestOptions;

// Parse and validate. On PL_ERR_FORMAT `out->errors` lists every problem (caller still frees `out`).
PlStatus pl_manifest_load(const char *path, const PlManifestOptions *options, PlManifest *out);
// Index of a role column, or -1.
int pl_manifest_role_index(const PlManifest *m, const char *role);
// Index of the item with this id, or -1 (O(1): the manifest keeps an id index).
long pl_manifest_find(const PlManifest *m, const char *id);
// Is `split` a valid split value ("train", "val", "test", a non-negative integer, or "")?
int pl_manifest_split_valid(const char *split);
// The default role names (nucleus, protein, microtubules, er) and their count.
const char *const *pl_manifest_default_roles(int *count);
// A channel's image reference "path#page" as the decoders take it, into ref (size bytes). PL_ERR_LIMIT naming the path
// when it does not fit (a path too long to name a file), never a truncated reference to another file.
PlStatus pl_manifest_channel_ref(const PlManifestChannel *ch, char *ref, size_t size);
void pl_manifest_free(PlManifest *m);

#endif
