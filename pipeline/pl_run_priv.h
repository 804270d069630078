// Internal structures shared by the files of `protloc run` (pl_run.c, pl_run_prep.c, pl_run_worker.c,
// pl_run_reuse.c, pl_run_store.c, pl_schedule.c, pl_progress.c). Not a public API.
// Ownership: RunContext owns the manifest, card, weights and digests; RunPrepared owns its buffers.
#ifndef PL_RUN_PRIV_H
#define PL_RUN_PRIV_H

#include <mpi.h>
#include <stdint.h>

#include "pl_cells.h"
#include "pl_clock.h"
#include "pl_digest.h"
#include "pl_image.h"
#include "pl_journal.h"
#include "pl_lock.h"
#include "pl_manifest.h"
#include "pl_modelcard.h"
#include "pl_idindex.h"
#include "pl_prep.h"
#include "pl_run.h"
#include "pl_segment.h"
#include "pl_vit.h"
#include "pl_weights.h"

#define RUN_MAX_VARIANTS PL_CARD_MAX_SLOTS

// The --cell-labels table: (item id, mask label) → class. Rows are looked up by item (cell_first/cell_count
// ranges of `rows`, sorted by mask label).
typedef struct RunCellLabel {
    int32_t mask_label;
    const char *label;          // points into `text`
    int line;
} RunCellLabel;
typedef struct RunCellLabels {
    char *path;
    char *text;                 // the file, split in place
    RunCellLabel *rows;         // sorted by (item, mask label)
    long *item_first, *item_count;   // (manifest items) range of each item's rows
    size_t n;
} RunCellLabels;

// Read-only state every rank holds after planning.
typedef struct RunContext {
    const PlRunOptions *opt;
    int rank, size;
    PlManifest manifest;
    PlModelCard card;
    PlWeights weights;
    PlVitConfig vit_cfg;
    PlVitLinears *linears;      // the weights' linears prepared once for opt->kernels and opt->precision
    char weights_sha[65];
    char settings_key[65];
    char *options_json;         // preprocessing/run options that decide reuse (stored in the store)
    char (*digests)[PL_DIGEST_LEN];   // (items) input digests ("" = digest failed: see digest_error)
    char **digest_error;        // (items) NULL or the reason the item's files could not be read
    double *cost;               // (items) bytes of input files (scheduling weight)
    // model input mapping
    int C;                      // model input channels
    int R;                      // variants per embedding row (1 natural; #sources replicate)
    int n_planes;               // distinct source roles read per item (pl_card_plane_roles)
    int plane_role[RUN_MAX_VARIANTS];            // manifest role index of each plane
    PlPrepConfig prep[PL_STORE_N_LEVELS];        // each level's configuration (pl_card_prep_levels)
    int nucleus_role;           // manifest role index of "nucleus" or -1
    int vit_dim;                // output dim of one forward
    int dim;                    // embedding row length = R * vit_dim
    int threads;                // threads of the pool the ViT runs on
    char *journal_dir;
    RunCellLabels cell_labels;  // --cell-labels table (empty without it)
    unsigned char *had_row;     // rank 0: (items) 1 when the previous store at --out had a row for the item
    const int64_t *journal_start;   // borrowed, (ranks): bytes of each rank's journal before this run; records at
                                    // or after that offset were written by this run
} RunContext;

// One level's ViT inputs for an item: x (rows * R, C, h, w); row r's embedding = the R outputs concatenated.
typedef struct RunBatch {
    float *x;
    size_t cap;                 // floats
    int rows, h, w;
} RunBatch;

// An item prepared by the reader thread.
typedef struct RunPrepared {
    long item;                  // manifest index
    int failed;
    char stage[32];
    char message[1024];
    RunBatch fov, tiles, cells;
    int32_t *tile_yx;           // (tiles.rows, 2)
    size_t tile_yx_cap;
    float *cell_cyx;            // (cells.rows, 2)
    size_t cell_cyx_cap;
    int64_t *cell_area;         // (cells.rows)
    size_t cell_area_cap;
    int32_t *cell_label;        // (cells.rows) label of each cell in the item's label image
    size_t cell_label_cap;
    PlPrepResult pres;          // the stage compositions' buffers (reused across items)
    double seconds;
} RunPrepared;


// pl_run_commit.c: rank 0 locks --out (OUT.lock) and removes temporaries of dead runs (other ranks: no-op).
PlStatus run_lock_output(const RunContext *ctx, PlLock *lock);
// Collective: PL_ERR_INTERRUPTED (and sum->stop_signal) when any rank got a stop request.
PlStatus run_check_stop(const RunContext *ctx, PlRunSummary *sum);
// Collective: the end of a run: store plan, commit decision, the store or the kept previous one, failure report.
PlStatus run_finish(const RunContext *ctx, PlRunSummary *sum);

// pl_run_prep.c: one item through the card's preparation (pl_card_prep.h); *segmenter is the calling thread's (reused) segmenter.
void run_prepare_item(const RunContext *ctx, long item, PlSegmenter **segmenter, RunPrepared *p);
void run_prepared_free(RunPrepared *p);

// pl_run_cells.c: the --cell-labels table.
PlStatus run_cell_labels_load(const char *path, const PlManifest *m, RunCellLabels *t);
// Class of cell `mask_label` of item `item` ("" when the table does not list it).
const char *run_cell_labels_find(const RunCellLabels *t, long item, int32_t mask_label);
void run_cell_labels_free(RunCellLabels *t);

// pl_schedule.c: dynamic self-scheduling through a one-sided counter hosted on rank 0.
typedef struct RunScheduler {
    MPI_Win win;
    int64_t *base;              // window memory (rank 0: [next, done])
    int64_t total;
    int active;
} RunScheduler;
PlStatus run_scheduler_create(RunScheduler *s, int64_t total, MPI_Comm comm);
// Next task index, or -1 when every task has been handed out.
PlStatus run_scheduler_next(RunScheduler *s, int64_t *task);
PlStatus run_scheduler_done(RunScheduler *s, int64_t n);
// Hand out no more tasks, to any rank (a stop request: every rank's next call returns -1).
PlStatus run_scheduler_stop(RunScheduler *s);
PlStatus run_scheduler_progress(RunScheduler *s, int64_t *handed, int64_t *done);
PlStatus run_scheduler_free(RunScheduler *s);   // collective

// pl_progress.c: rank 0's progress display.
typedef struct RunProgress {
    long total;
    double start, last_draw;
    int tty;
    int enabled;
} RunProgress;
void run_progress_start(RunProgress *p, long total, int enabled);
void run_progress_update(RunProgress *p, long done, int force);
void run_progress_finish(RunProgress *p, long done);

// pl_run_worker.c: embed this rank's share of `tasks` (manifest indices), appending to `journal`.
typedef struct RunWorkerStats {
    long computed, failed;
    double t_prep, t_embed, t_journal, t_wait, t_busy;
} RunWorkerStats;
PlStatus run_worker(const RunContext *ctx, const long *tasks, long n_tasks, PlJournalWriter *journal,
                    RunWorkerStats *stats);

// pl_run_reuse.c: rank 0 copies unchanged items of the existing store into its journal (marks reused[i]).
// done[i] = the journal already holds item i; had_row[i] is set for every item the existing store has a row for.
// Adds added/changed/removed/reused counts to sum.
PlStatus run_reuse_old_store(const RunContext *ctx, const unsigned char *done, unsigned char *reused,
                             unsigned char *had_row, PlJournalWriter *journal, PlRunSummary *sum);

// pl_run_store.c: the store plan, the failure report and the store written from the journals (after every rank
// closed its journal).
typedef struct RunStorePlan {
    int64_t *table;             // (items, 7): the journal record chosen for each item (file, offset, length, tiles,
                                // cells, failed, has_fov)
    int n_files;
    int *file_rank;             // (n_files) the rank of each journal file
    long n_ok, n_fail;          // items with rows / failed items
    long regressions;           // failed items that had a row in the previous store
    int64_t n_tiles, n_cells;   // store rows
} RunStorePlan;
// Collective: rank 0 picks each item's record, every rank gets the plan and its counts.
PlStatus run_store_plan(const RunContext *ctx, RunStorePlan *plan);
void run_store_plan_free(RunStorePlan *plan);
// Collective: write the store to temp_path (numeric datasets in bounded rounds on every rank, then rank 0 adds the
// strings and attributes).
PlStatus run_write_store(const RunContext *ctx, const RunStorePlan *plan, const char *temp_path);
// Rank 0: the failed items as a TSV (id, line, stage, regression, message), written atomically.
PlStatus run_write_failure_report(const RunContext *ctx, const RunStorePlan *plan, const char *path);

#endif
