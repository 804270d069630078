// `protloc run` orchestration API: options, summary, and the collective entry point pl_run().
//
// pl_run is collective over MPI_COMM_WORLD (call it on every rank, MPI already started). Rank 0 validates and
// plans, all ranks embed (dynamic self-scheduling through an MPI one-sided counter), journal their finished
// items, then write the HDF5 store collectively to a temporary name that rank 0 renames into place.
// Ownership: PlRunOptions borrows its strings; PlRunSummary is plain data.
#ifndef PL_RUN_H
#define PL_RUN_H

#include "pl_error.h"

enum { PL_LEVEL_FOV = 1, PL_LEVEL_TILES = 2, PL_LEVEL_CELLS = 4 };

typedef struct PlRunOptions {
    const char *manifest;
    const char *model;          // model card JSON
    const char *out;            // STORE.h5
    const char *root;           // NULL = manifest folder
    int allow_outside_root;
    int levels;                 // PL_LEVEL_* bits (default fov)
    const char *align;          // channel alignment: map | replicate | random | duplicate (NULL = the card's input_mode)
    const char *fill;           // duplicate: "slot=role,..." or "*=role" (NULL = the card's "fill")
    long seed;                  // random: seed of the per-item slot shuffle
    int tile;                   // tile side in pixels (default 224)
    int tile_stride;            // default = tile
    int crop;                   // cell crop side in pixels (default 0 = crop_um)
    double crop_um;             // cell crop side in µm (default 0 = 224 px)
    const char *cell_border;    // "skip" | "pad" | "shift" (default shift)
    int min_cell_area;          // pixels (default 50)
    double pixel_size_um;       // default pixel size for items without pixel_size_um (0 = card's or 0.206)
    int fov_size;               // > 0: centre-crop / zero-pad FOVs to this square size (default 0 = native)
    int batch;                  // ViT batch for tiles / cells (default 16)
    int threads;                // ViT threads per rank (0 = cores of the node / ranks on the node)
    int verify;                 // content SHA-256 digests instead of size + mtime
    int strict;                 // any item failure makes the run fail (store not written, journal kept)
    int no_progress;            // never draw a bar
    int prefetch;               // items prepared ahead of the embedding (default 2)
} PlRunOptions;

typedef struct PlRunSummary {
    long items;                 // manifest items
    long added, changed, removed, reused, resumed, computed, failed;
    long tiles, cells;          // rows written
    int dim;                    // embedding length
    double seconds;
    double t_prep, t_embed, t_journal, t_store, t_wait;   // summed over ranks (seconds)
    double rank_busy_min, rank_busy_max, rank_busy_mean; // per-rank seconds in the compute loop
} PlRunSummary;

void pl_run_options_default(PlRunOptions *o);
// Collective. Returns PL_OK also when items failed (summary->failed > 0); errors abort the whole run.
PlStatus pl_run(const PlRunOptions *o, PlRunSummary *summary);
// "fov,tiles" → PL_LEVEL_* bits; PL_ERR_ARG on unknown names.
PlStatus pl_run_parse_levels(const char *text, int *levels);

#endif
