// `protloc manifest scan`: build a manifest from a folder of OpenCell or HPA images (file naming → ids, channels,
// targets, labels, deterministic leakage-free splits). Rules are documented in docs/guide.md ("Scanning folders").
//
// OpenCell layout: every `*_proj.tif` / `*_proj.tiff` below DIR (recursively, sorted) is one item; id = its path
//   relative to DIR without the `_proj.tif` suffix; nucleus = `file#0`, protein = `file#1`; pixel 0.206 µm.
//   Target (→ group, and → label via an OpenCell annotation CSV): the first `_`-separated token of the file name
//   that is an ENSG id or a target name in the CSV; without a CSV the first `ENSG…` token, else the token after a
//   leading `OC-FOV`, else the first token.
// HPA layout: files `{id}_{red,green,blue,yellow}.{png,tif,tiff}` below DIR → microtubules, protein, nucleus, er;
//   an optional `{id}_cellmask.png` (HPA-Cell-Segmentation output) fills the `mask` column. Items lacking a
//   channel are skipped and listed in PlScanResult.skipped. Group = `{plate}_{well}` for ids `{plate}_{well}_{field}`
//   (one antibody per well), else the id.
// Labels: an OpenCell annotation CSV (grade-3 single-label) or an `id,labels[,group][,split]` CSV (see
//   pl_scan_labels.h); group/split columns of an id CSV override the derived ones.
// Split: hash (FNV-1a 64) of the group → `test` with probability test_fraction, `val` with val_fraction, else
//   `train` (or fold `hash % folds` when folds > 0): stable when images are added, never splits a group.
// Ownership: a PlScanResult owns every string; free with pl_manifest_scan_free.
#ifndef PL_MANIFEST_SCAN_H
#define PL_MANIFEST_SCAN_H

#include <stddef.h>
#include <stdio.h>
#include "pl_error.h"

typedef enum PlScanLayout { PL_SCAN_OPENCELL = 1, PL_SCAN_HPA = 2 } PlScanLayout;

typedef struct PlScanOptions {
    PlScanLayout layout;
    const char *labels_csv;     // NULL = no labels (label column empty)
    const char *dataset;        // dataset column; NULL = "opencell" / "hpa"
    const char *paths_relative_to; // folder the written paths are relative to (files outside it: absolute);
                                   // NULL = absolute paths
    double pixel_size_um;       // 0 = layout default (OpenCell 0.206; HPA: column left out)
    double test_fraction;       // e.g. 0.2
    double val_fraction;        // e.g. 0
    int folds;                  // > 0: split = fold number instead of train/val/test
    int labelled_only;          // drop items whose label is empty
} PlScanOptions;

#define PL_SCAN_MAX_ROLES 4

typedef struct PlScanItem {
    char *id, *label, *split, *group;
    char *channels[PL_SCAN_MAX_ROLES];   // "path#page" as written, indexed like PlScanResult.roles
    char *mask;                          // NULL when none
} PlScanItem;

typedef struct PlScanResult {
    const char *dataset;
    int n_roles;
    const char *roles[PL_SCAN_MAX_ROLES];
    double pixel_size_um;       // 0 = column left out
    int has_mask;               // at least one item has a mask (others get an empty cell)
    size_t count;
    PlScanItem *items;          // (count) sorted by id
    size_t n_files;             // image files matched
    size_t n_unlabelled;        // items with an empty label (before labelled_only)
    size_t n_dropped;           // items dropped by labelled_only
    size_t n_skipped;
    char **skipped;             // (n_skipped) "id: missing red, yellow" messages
} PlScanResult;

PlStatus pl_manifest_scan(const char *dir, const PlScanOptions *opt, PlScanResult *out);
// Write the manifest TSV (header + one row per item) atomically to `path`, or to `fp` when path is NULL.
PlStatus pl_manifest_scan_write(const PlScanResult *r, const char *path, FILE *fp);
void pl_manifest_scan_free(PlScanResult *r);

#endif
