// Per-rank crash-safe journals of finished items: zstd-compressed, checksummed records, fsync'ed in batches.
//
// A run writes STORE.h5.journal/rank-NNNNN.jnl (one file per rank, only that rank appends) plus a "settings"
// file holding the run's settings key. A record is one finished item (embeddings, tile/cell metadata, or a
// failure). Records are appended with one write(); a record cut short by a crash, or whose SHA-256-derived
// checksum does not match, ends the valid part of its file: pl_journal_scan reports the valid length and
// the writer truncates the file there before appending again. Little-endian hosts only (checked at build).
//
// Ownership: PlJournalWriter owns its fd and buffers (pl_journal_close); PlJournalIndex owns its entries
// (pl_journal_index_free); PlJournalItem owns its decoded arrays, reused between reads (pl_journal_item_free).
#ifndef PL_JOURNAL_H
#define PL_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"
#include "pl_manifest.h"

#define PL_JOURNAL_MAX_ID PL_MANIFEST_MAX_ID   // an item id (the manifest checks the same limit)

// One finished item to append. Arrays are borrowed.
typedef struct PlJournalRecord {
    const char *id;
    const char *digest;
    int failed;                 // 1: fail_stage / fail_message say why; no embeddings
    const char *fail_stage;
    const char *fail_message;
    int dim;                    // embedding length D
    int has_fov;
    const float *fov;           // (D)
    int n_tiles;
    const int32_t *tile_yx;     // (n_tiles, 2) top-left y, x in input pixels
    const float *tile_emb;      // (n_tiles, D)
    int n_cells;
    const float *cell_cyx;      // (n_cells, 2) centroid y, x
    const int64_t *cell_area;   // (n_cells) pixels
    const int32_t *cell_label;  // (n_cells) label of each cell in the item's label image
    const float *cell_emb;      // (n_cells, D)
} PlJournalRecord;

typedef struct PlJournalWriter {
    int fd;
    char *path;
    unsigned char *buf;         // record assembly buffer
    size_t cap;
    unsigned char *zbuf;        // compression buffer
    size_t zcap;
    int pending;                // records since the last fsync
    int sync_every;             // fsync after this many records (default 16)
    double sync_seconds;        // ... or when this long has passed since the last fsync (default 2)
    double last_sync;
    void *zctx;                 // ZSTD_CCtx
} PlJournalWriter;

// Path of rank r's journal file inside `dir` (malloc'd).
char *pl_journal_rank_path(const char *dir, int rank);
// Open (create) rank's journal for appending after truncating it to `valid_length` bytes.
PlStatus pl_journal_open(PlJournalWriter *w, const char *dir, int rank, int64_t valid_length);
PlStatus pl_journal_append(PlJournalWriter *w, const PlJournalRecord *rec);
PlStatus pl_journal_sync(PlJournalWriter *w);
// Sync and close; safe on a zeroed writer.
PlStatus pl_journal_close(PlJournalWriter *w);

typedef struct PlJournalEntry {
    char *id;
    char *digest;
    int file;                   // index into PlJournalIndex.files
    int64_t offset;             // record start
    uint32_t length;            // record bytes
    int failed;
    int has_fov;
    int dim;
    int n_tiles, n_cells;
} PlJournalEntry;

typedef struct PlJournalIndex {
    int n_files;
    char **files;               // every rank-*.jnl in the folder
    int *file_rank;             // the rank number in each file name
    int64_t *valid_length;      // bytes of intact records per file
    size_t count;
    PlJournalEntry *entries;    // in file order, then record order
    size_t torn;                // files whose tail was discarded
} PlJournalIndex;

// Scan every journal file of `dir` (a missing folder gives an empty index).
PlStatus pl_journal_scan(const char *dir, PlJournalIndex *idx);
// Valid length of rank's file in the index (0 if absent).
int64_t pl_journal_valid_length(const PlJournalIndex *idx, int rank);
void pl_journal_index_free(PlJournalIndex *idx);

// A decoded record; arrays are owned and reused across pl_journal_read calls, each with its own capacity (in
// elements).
typedef struct PlJournalItem {
    char id[PL_JOURNAL_MAX_ID + 1];
    char digest[128];
    int failed;
    char fail_stage[64];
    char fail_message[1024];
    int dim, has_fov, n_tiles, n_cells;
    float *fov;                 // (dim)
    int32_t *tile_yx;           // (n_tiles, 2)
    float *tile_emb;            // (n_tiles, dim)
    float *cell_cyx;            // (n_cells, 2)
    int64_t *cell_area;         // (n_cells)
    int32_t *cell_label;        // (n_cells)
    float *cell_emb;            // (n_cells, dim)
    size_t fov_cap, tile_yx_cap, tile_emb_cap, cell_cyx_cap, cell_area_cap, cell_label_cap, cell_emb_cap;
    unsigned char *raw, *comp;  // scratch
    size_t raw_cap, comp_cap;
} PlJournalItem;

// Read and verify entry `e` of `idx`.
PlStatus pl_journal_read(const PlJournalIndex *idx, size_t e, PlJournalItem *item);
void pl_journal_item_free(PlJournalItem *item);

// The settings file of a journal folder: write (atomically) and read back (NULL key when absent).
PlStatus pl_journal_settings_write(const char *dir, const char *key);
PlStatus pl_journal_settings_read(const char *dir, char key[128], int *present);
// Remove the journal folder and every file in it.
PlStatus pl_journal_remove(const char *dir);

#endif
