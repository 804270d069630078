// The preprocessing a model card implies, written once for every command that feeds a model from a manifest
// (`run`, `finetune`): the manifest roles it reads, the alignment strategy over the card's input slots,
// normalisation and the model's pixel size (pl_card_prep.c), the geometry of the three levels (FOV, tiles, cells),
// which manifest columns feed an item's channels, and one item through one level's stage composition
// (pl_card_item.c).
#ifndef PL_CARD_PREP_H
#define PL_CARD_PREP_H

#include <stddef.h>
#include <stdint.h>

#include <limits.h>

#include "pl_error.h"
#include "pl_manifest.h"
#include "pl_modelcard.h"
#include "pl_prep.h"
#include "pl_segment.h"
#include "pl_store_table.h"

// cfg = pl_prep_config_default over the card's n_slots slots (an empty slot is named "emptyK" so that no role feeds
// it), the alignment strategy `strategy` (NULL = the card's input mode; "natural" means map) with `fill` (NULL = the
// card's) and `seed`, the card's normalisation and pixel size. Geometry stays the default (whole FOV). The slot list
// is also written to slots (comma-separated). Errors name the card.
PlStatus pl_card_prep_config(const PlModelCard *card, int n_slots, const char *strategy, const char *fill,
                             uint64_t seed, PlPrepConfig *cfg, PlAlignStrategy *strategy_out, char *slots,
                             size_t slots_size);

// Checks of a card made once at load, so that no run computes every item before failing each the same way:
// pl_card_check_depth: the card's "last_n" is within 1..depth, the number of blocks of its weights;
// pl_card_check_fill: under alignment 'duplicate' (`align` from pl_card_prep_config), every fill role that some item
// of `m` needs (the slot's own role is missing for it) is held by at least one item. `fill` is the --fill option
// (NULL: the card's "fill"), named in the message with the slot, the role and the roles the manifest has.
PlStatus pl_card_check_depth(const PlModelCard *card, int depth);
PlStatus pl_card_check_fill(const PlModelCard *card, const PlAlignSpec *align, const char *fill, const PlManifest *m);

// The manifest role columns a command feeding this card accepts: the default roles, then every role the card's slots
// name that is not among them. roles must hold PL_CARD_MAX_ROLES entries (borrowed strings); returns the count.
#define PL_CARD_MAX_ROLES (PL_MANIFEST_MAX_ROLES + PL_CARD_MAX_SLOTS)
int pl_card_manifest_roles(const PlModelCard *card, const char **roles);

// ---- the geometry of the levels (its defaults: PL_PREP_*_DEFAULT, pl_prep.h) ----

typedef struct PlCardLevels {
    int patch;            // the model's patch: the FOV is cut to whole patches (and tiles / crops must hold one)
    int fov_size;         // > 0: the FOV centre-cropped / zero-padded to fov_size x fov_size; 0: the whole FOV
    int tile;             // tile side; tiles never cross the border (partial tiles are dropped)
    int tile_stride;      // 0 = tile (no overlap)
    int crop;             // cell crop side in pixels (> 0 wins over crop_um)
    double crop_um;       // cell crop side in µm (0 with crop 0: PL_PREP_CROP_DEFAULT pixels)
    PlCellBorder cell_border;
    int min_cell_area;
} PlCardLevels;

// tile PL_PREP_TILE_DEFAULT, stride = tile, crop PL_PREP_CROP_DEFAULT px, border shift, min area
// PL_PREP_MIN_CELL_AREA_DEFAULT, whole FOV; patch 16 (set it to the model's).
void pl_card_levels_default(PlCardLevels *g);
// The configuration of each level (indexed by PlStoreLevel) from `base` (pl_card_prep_config): the FOV level
// through pl_prep_fov (whole or --fov-size), the tiles level through pl_prep_fov (tiles), the cells level through
// pl_prep_cells; each validated.
PlStatus pl_card_prep_levels(const PlPrepConfig *base, const PlCardLevels *g, PlPrepConfig cfg[PL_STORE_N_LEVELS]);

// ---- which manifest columns feed an item ----

// The planes an item is read from, as manifest role indices: the roles the card's slots name, in slot order
// (replicate concatenates its views in this order), then the roles only a `duplicate` fill names (`fill`: the
// --fill text or the card's); each when the manifest has that column. plane_role holds PL_CARD_MAX_SLOTS; returns
// the count, and fails naming the card and the manifest when none of the slots is a column.
PlStatus pl_card_plane_roles(const PlModelCard *card, int n_slots, PlAlignStrategy strategy, const char *fill,
                             const PlManifest *m, int *plane_role, int *n_planes);

// A channel's image reference "path#page" as the decoders take it (never truncated: a longer path fails the item).
#define PL_CARD_REF_MAX (PATH_MAX + 16)
// The sources of one item: every plane it has a file for, in plane order, as role + "path#page" (refs holds
// PL_CARD_MAX_SLOTS references). every_plane (replicate): an empty plane fails the item. On failure *stage says
// what failed ("input": a reference, or no plane at all; "align": an empty plane under every_plane).
PlStatus pl_card_item_sources(const PlManifest *m, const PlManifestItem *it, const int *plane_role, int n_planes,
                              int every_plane, PlChannelSource *src, char (*refs)[PL_CARD_REF_MAX], int *n_src,
                              const char **stage);
// The source pixel size of an item: its pixel_size_um, else `fallback_um` (> 0: --pixel-size), else the card's (the
// image is taken to be at the model's resolution), else 0 (unknown: no physical rescaling).
double pl_card_item_pixel_size(const PlModelCard *card, const PlManifestItem *it, double fallback_um);
// One item at one level through its stage composition with cfg (pl_card_prep_levels' entry of that level): FOV and
// tiles through pl_prep_fov; cells through pl_prep_cells with the item's label mask, else the built-in segmentation
// of its nucleus channel (nucleus_role: the manifest's "nucleus" column, -1 = none) with *segmenter (the calling
// thread's). On failure *stage names the step that failed ("decode", "mask", "segment"), "input" (a reference),
// else the level ("fov", "tiles", "cells"); r keeps its buffers for the next item.
PlStatus pl_card_prep_item(const PlPrepConfig *cfg, PlStoreLevel level, const PlManifest *m, const PlManifestItem *it,
                           double pixel_size_um, const PlChannelSource *src, int n_src, int nucleus_role,
                           PlSegmenter **segmenter, PlPrepResult *r, const char **stage);

#endif
