// One shard of the training cache: the prepared samples of a group of manifest items, written once, read by sample.
//
// A shard holds, for each of its items in order, either the item's samples (n >= 0 canvases of float32 (C, S, S),
// each compressed as one zstd frame with zstd's content checksum; no byte shuffle: on real OpenCell canvases it made
// frames 20-40% larger, docs/performance.md "Training cache") or the item's failure (stage and message, as `run` records it). Each item carries its
// manifest id and its input digest (pl_digest_item), so an incremental build can tell which items it still holds.
// Layout (little-endian; docs/formats.md):
//   header (64 bytes): magic "PLCSHRD1", u32 version (2), u32 C, u32 S, u32 dtype (1 = float32), u64 n_items,
//                      u64 n_samples, u64 table_offset, u64 table_bytes, u64 table_raw_bytes (no spare bytes)
//   the sample frames, back to back from byte 64 to table_offset, in item order; a frame decompresses to the
//                      C * S * S * 4 bytes of one sample (version 1 shards, byte-shuffled, are refused: rebuilt)
//   table (table_bytes, ending the file): one zstd frame (checksummed) of table_raw_bytes: for each item in order:
//          u16 id_len, id, u16 digest_len, digest, u8 failed, u16 stage_len, stage, u32 msg_len, msg, u32 n_samples
//          (strings without NUL; an item's first sample is the sum of the n_samples before it); then for each
//          sample of the shard in order: u64 offset, u32 bytes (its frame)
// The same samples, items and compression level give the same bytes (no time stamps; with the same zstd version),
// so a rebuilt shard is byte-identical to the one a killed build would have written.
//
// Thread safety: a PlCacheShard is read-only after open; pl_cache_shard_read may run from any number of threads at
// once, each with its own PlCacheDecoder (pread, no shared offsets).
// Ownership: a writer owns its file and buffers until commit or abort; a PlCacheShard owns its descriptor and table
// (pl_cache_shard_close); a PlCacheDecoder owns its zstd context and buffer (pl_cache_decoder_free).
#ifndef PL_CACHE_SHARD_H
#define PL_CACHE_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"

#define PL_CACHE_SHARD_VERSION 2

typedef struct PlCacheShardWriter PlCacheShardWriter;

// Start writing FINAL_PATH under a temporary name beside it (pl_temp_path_for); samples are (C, S, S) float32,
// compressed at zstd `level` (>= 1).
PlStatus pl_cache_shard_create(PlCacheShardWriter **w, const char *final_path, int C, int S, int level);
// Append an item with its n >= 0 samples x (n, C, S, S) (finite values; not checked). id: 1 to 65535 bytes; digest
// (NULL: empty), stage: up to 65535 bytes. A failed write (PL_ERR_IO) leaves the writer good only for abort.
PlStatus pl_cache_shard_add_item(PlCacheShardWriter *w, const char *id, const char *digest, int n, const float *x);
// Append an item that failed at `stage` with `message` (NULL: empty).
PlStatus pl_cache_shard_add_failure(PlCacheShardWriter *w, const char *id, const char *digest, const char *stage,
                                    const char *message);
// Write the table and header, fsync, rename to the final path, fsync the directory; frees w (also on failure, after
// removing the temporary file). A full disk is PL_ERR_IO naming the file; the final path is then untouched.
PlStatus pl_cache_shard_commit(PlCacheShardWriter *w);
// Remove the temporary file and free w (NULL: nothing).
void pl_cache_shard_abort(PlCacheShardWriter *w);

typedef struct PlCacheShardItem {
    const char *id, *digest;
    int failed;                 // 1: stage / message say why, no samples
    const char *stage, *message;
    int64_t first_sample;       // index of its first sample in the shard
    int n_samples;
} PlCacheShardItem;

typedef struct PlCacheShard {
    char *path;
    int fd;
    int C, S;
    int64_t n_items, n_samples;
    PlCacheShardItem *items;    // (n_items)
    uint64_t *offset;           // (n_samples) frame offsets in the file
    uint32_t *bytes;            // (n_samples) frame sizes
    char *strings;              // the table's text, which items[] point into
} PlCacheShard;

// Open and validate a shard (magic, version, sizes, table frame and its checksum, every frame inside the file).
// Errors: PL_ERR_IO (cannot read), PL_ERR_FORMAT (not a shard, truncated, corrupt table), naming the file.
PlStatus pl_cache_shard_open(PlCacheShard *s, const char *path);
void pl_cache_shard_close(PlCacheShard *s);

typedef struct PlCacheDecoder PlCacheDecoder;

// A decoder for samples of up to C * S * S floats.
PlStatus pl_cache_decoder_create(PlCacheDecoder **d, int C, int S);
void pl_cache_decoder_free(PlCacheDecoder *d);

// Read sample `k` of the shard into dst (C, S, S). A frame that does not decompress, fails its checksum or has the
// wrong size is PL_ERR_FORMAT naming the shard, the sample and the item (id) it belongs to; dst is written only
// after the frame checked out (never partial data).
PlStatus pl_cache_shard_read(const PlCacheShard *s, int64_t k, PlCacheDecoder *d, float *dst);
// The same through `fd`, a descriptor of the same file the caller opened (a reader that closed s->fd keeps its own).
PlStatus pl_cache_shard_read_fd(const PlCacheShard *s, int fd, int64_t k, PlCacheDecoder *d, float *dst);

#endif
