// The training cache: a manifest's training items prepared once (decode, rescale, normalise, align, level, canvas:
// pl_finetune_data.h's FtPlan) and kept on disk in shards, so that training reads each rank's samples from disk a
// few batches ahead instead of holding every canvas in memory (docs/formats.md, docs/guide.md).
//
// DIR/cache.json      the index: format, version, the settings key and text, the shard list, counts
// DIR/shards/*.plc    the shards (stages/store/pl_cache_shard.h): up to PL_TRAIN_CACHE_SHARD_ITEMS items each, named
//                     by a digest of their items' ids and input digests under the settings key
// DIR/lock            shared by the runs that read the cache, exclusive while a build writes it (pl_lock.h)
//
// Build (collective): rank 0 takes the lock shared and plans: an item is reused when a listed shard holds its id
// with its current input digest (pl_item_digests: size + mtime, or content with verify) under the same settings key
// (card contents, channels, canvas, level, tile, crop, patch, protloc version); the others are grouped in manifest
// order into new shards. When there is anything to write, rank 0 makes the lock exclusive (refused, PL_ERR_BUSY,
// while a training run reads the cache or another build writes it; an up-to-date cache needs no exclusive lock, so
// any number of training runs share it) and the ranks write the new shards in turn (shard g on rank g % ranks), each
// with the process's pool. A shard whose file exists complete (a build killed after writing it) is not written
// again. Then rank 0 writes cache.json (temp + fsync + rename + directory fsync) and removes the shards it no longer
// lists. A failure on any rank (ENOSPC...) is agreed before the index is touched: the previous cache stays as it was.
// A kept shard mostly of items no longer used is dropped (its live items prepared again), and with check every kept
// shard's samples are decompressed: a damaged shard is removed and its items prepared again.
// Read: every rank opens the index and the shards' tables (not their samples); a sample is read on demand by a
// lane (a thread), which decompresses and checks it (a corrupt frame fails naming the item, never gives garbage).
//
// Ownership: a PlTrainCache owns its shard tables, lanes (decoders, open descriptors) and sample map
// (pl_train_cache_close). The plan is borrowed.
#ifndef PL_TRAIN_CACHE_H
#define PL_TRAIN_CACHE_H

#include <stdint.h>

#include "pl_cache_shard.h"
#include "pl_digest.h"
#include "pl_error.h"
#include "pl_finetune_data.h"
#include "pl_lock.h"
#include "pl_threadpool.h"
#include "pl_trainer.h"

#define PL_TRAIN_CACHE_SHARD_ITEMS 64
#define PL_TRAIN_CACHE_ZSTD_LEVEL 3
#define PL_TRAIN_CACHE_INDEX "cache.json"

typedef struct PlTrainCacheOptions {
    const char *dir;      // the cache folder (created)
    int verify;           // content digests (SHA-256 of every file) instead of size + mtime
    int check;            // decompress every sample of the shards kept for reuse; a damaged shard's items are
                          // prepared again (its frame checksums fail: bit rot, a torn copy)
    int quiet;
    int hold;             // rank 0 keeps the shared lock when the build succeeds (PlTrainCacheBuild.lock)
} PlTrainCacheOptions;

typedef struct PlTrainCacheBuild {
    int64_t items, reused, computed, failed;   // the plan's items; reused from shards; prepared now; failed (any)
    int64_t shards, shards_written, shards_removed;
    double seconds;
    PlLock lock;          // with PlTrainCacheOptions.hold, rank 0: the cache's shared lock (pl_lock_release, or hand
                          // it to PlTrainCache.lock)
} PlTrainCacheBuild;

// Build or update the cache of the plan's items (collective over every rank; see above). The item digests are kept
// in the plan's cache (PlTrainCache.digests needs them): pass the same `digests` array (p->n entries) to open.
PlStatus pl_train_cache_build(FtPlan *p, const PlTrainCacheOptions *o, PlThreadPool *pool, int rank, int ranks,
                              char (*digests)[PL_DIGEST_LEN], PlTrainCacheBuild *b);

typedef struct PlTrainCacheLane PlTrainCacheLane;

typedef struct PlTrainCache {
    char *dir;
    int C, S;
    int n_shards;
    PlCacheShard *shards;          // tables only (their descriptors closed; lanes open their own)
    uint32_t *sample;              // (n) each dataset row's sample in the shards' concatenation (4 bytes a row)
    int64_t *shard_first;          // (n_shards + 1) the first sample of each shard in that concatenation
    int64_t n;
    int lanes;
    PlTrainCacheLane *lane;        // (lanes)
    PlSampleSource source;         // read = pl_train_cache_read
    char *settings_key;
    PlLock lock;                   // rank 0 of a training run: the shared lock that keeps builds out (given by the
                                   // caller after open; released by close)
} PlTrainCache;

// Open the cache built for p with `lanes` concurrent readers and index its samples into ds (x NULL; rows in manifest
// order, as ft_dataset_load gives them). Items the cache records as failed are listed in `failures` (when not NULL)
// with run's columns. The cache must hold every item of the plan with its digest (build first).
PlStatus pl_train_cache_open(PlTrainCache *c, FtPlan *p, const char *dir, char (*digests)[PL_DIGEST_LEN], int lanes,
                             const char *failures, FtDataset *ds);
// Row `row` of the dataset into dst (C, S, S), by lane `lane`.
PlStatus pl_train_cache_read(void *cache, int64_t row, int lane, float *dst);
void pl_train_cache_close(PlTrainCache *c);

// The settings key (64 hex) of a plan: a SHA-256 over its settings text (text: at least 512 bytes).
PlStatus pl_train_cache_settings(const FtPlan *p, char key[65], char *text, size_t text_size);

#endif
