// `protloc run` orchestration API: options, summary, and the collective entry point pl_run().
//
// pl_run is collective over MPI_COMM_WORLD (call it on every rank, MPI already started). Rank 0 locks the output,
// validates and plans, all ranks embed (dynamic self-scheduling through an MPI one-sided counter) and journal their
// finished items; then the store is written collectively to a temporary name that rank 0 renames into place,
// unless the failures say the previous store must stay (docs/guide.md "Exit statuses").
// Ownership: PlRunOptions borrows its strings and the pool; PlRunSummary is plain data.
#ifndef PL_RUN_H
#define PL_RUN_H

#include <signal.h>

#include "pl_error.h"
#include "pl_kernels.h"
#include "pl_store_table.h"
#include "pl_threadpool.h"

// Level bits of PlRunOptions.levels, one per store level.
enum { PL_RUN_FOV = 1 << PL_STORE_FOV, PL_RUN_TILES = 1 << PL_STORE_TILES, PL_RUN_CELLS = 1 << PL_STORE_CELLS };

// A callback after each item is journaled (tests use it to slow a run down; production leaves it NULL).
// Default --max-tokens: attention time grows with the square of the tokens; 65536 = a 4096 x 4096 FOV at patch 16
// (about 10 minutes per item for ViT-S/16 on 2 cores). Larger fields of view go through --level tiles.
#define PL_RUN_MAX_TOKENS_DEFAULT 65536

typedef void (*PlRunItemHook)(void *ctx, long item);

typedef struct PlRunOptions {
    const char *manifest;
    const char *model;          // model card JSON
    const char *out;            // STORE.h5
    const char *root;           // NULL = manifest folder
    int allow_outside_root;
    int levels;                 // PL_RUN_* bits (default fov)
    const char *align;          // channel alignment: map | replicate | random | duplicate (NULL = the card's input_mode)
    const char *fill;           // duplicate: "slot=role,..." or "*=role" (NULL = the card's "fill")
    long seed;                  // random: seed of the per-item slot shuffle
    int tile;                   // tile side in pixels (default 224)
    int tile_stride;            // default = tile
    int crop;                   // cell crop side in pixels (default 0 = crop_um)
    double crop_um;             // cell crop side in µm (default 0 = 224 px)
    const char *cell_border;    // "skip" | "pad" | "shift" (default shift)
    int min_cell_area;          // source pixels of the label image (default 50)
    const char *cell_labels;    // TSV of (id, mask_label, label): the cells that score in knn/probe (NULL = none)
    double pixel_size_um;       // source pixel size of items without pixel_size_um (0 = the card's, else unknown)
    int fov_size;               // > 0: centre-crop / zero-pad FOVs to this square size (default 0 = native)
    int batch;                  // ViT batch for tiles / cells (default 16)
    PlThreadPool *pool;         // borrowed: the process's pool for the ViT (NULL = the calling thread only)
    const PlKernels *kernels;   // the ViT's kernel backend (pl_kernels.h; NULL = pl_kernels_default())
    PlPrecision precision;      // FP32 (default) or BF16; both recorded in the store's settings
    int verify;                 // content SHA-256 digests instead of size + mtime
    int strict;                 // any item failure makes the run fail (store not written, journal kept)
    double max_failed;          // < 0: default rule (no failure of an item the previous store had a row for);
                                // >= 1: at most this many failed items; in [0, 1): at most this share of the items
    int accept_failures;        // commit whatever failed (still at least one row)
    int64_t max_pixels;         // per-item budget: decoded pixels per channel (0 = the decoder's limit)
    int64_t max_memory;         // per-item budget: bytes of one item's model inputs + activations (0 = default)
    int64_t max_tokens;         // per-item budget: ViT tokens of a whole-FOV input (0 = PL_RUN_MAX_TOKENS_DEFAULT)
    int no_progress;            // never draw a bar
    int prefetch;               // items prepared ahead of the embedding (default 2)
    const volatile sig_atomic_t *stop_signal;   // borrowed: nonzero = stop cleanly (pl_process.h); NULL = never
    PlRunItemHook after_item;   // test-only hooks (NULL in production): after each journaled item (item >= 0) and,
    void *after_item_ctx;       // with item = -1, on every rank once the temporary store is written, before commit
} PlRunOptions;

// What became of the store at --out.
typedef enum PlRunOutcome {
    PL_RUN_COMMITTED = 0,       // the new store replaced the previous one
    PL_RUN_KEPT = 1,            // failures beyond what may replace the store (--max-failed, or regressions):
                                // the previous store is unchanged, the failures are in STORE.h5.failures.tsv
    PL_RUN_NO_ROWS = 2          // no item produced a row: the previous store is unchanged
} PlRunOutcome;

typedef struct PlRunSummary {
    long items;                 // manifest items
    long added, changed, removed, reused, resumed, computed, failed;
    long tiles, cells;          // rows written
    int dim;                    // embedding length
    double seconds;
    double t_prep, t_embed, t_journal, t_store, t_wait;   // summed over ranks (seconds)
    double rank_busy_min, rank_busy_max, rank_busy_mean; // per-rank seconds in the compute loop
    PlRunOutcome outcome;
    long regressions;           // failed items that had a row in the previous store
    int stop_signal;            // the signal that stopped the run (pl_run then returns PL_ERR_INTERRUPTED)
    double peak_rss_mib;        // largest peak resident set size of any rank
} PlRunSummary;

void pl_run_options_default(PlRunOptions *o);
// Collective. Returns PL_OK when the run finished, also when items failed (summary->failed) or the previous store
// was kept (summary->outcome); PL_ERR_BUSY when another run holds --out (STORE.h5.lock); PL_ERR_INTERRUPTED on a
// stop request (summary->stop_signal; the journal keeps the finished items); other errors abort the whole run.
PlStatus pl_run(const PlRunOptions *o, PlRunSummary *summary);
// Outputs never overwrite inputs (pl_run_paths.c): PL_ERR_ARG when --out, STORE.h5.failures.tsv, STORE.h5.lock,
// the journal folder STORE.h5.journal/ (or anything inside it) or a temporary file beside the store names the same
// file as --manifest, --model, the weights the card names or --cell-labels. Local: every rank decides the same.
PlStatus pl_run_check_outputs(const PlRunOptions *o);
// "fov,tiles" → PL_RUN_* bits; PL_ERR_ARG on unknown names.
PlStatus pl_run_parse_levels(const char *text, int *levels);

#endif
