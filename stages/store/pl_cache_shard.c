// Training-cache shards: zstd sample frames and a checksummed table, written atomically (pl_cache_shard.h).
#include "pl_cache_shard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "pl_fs.h"

// The header, the table's integers and the samples' floats are the host's bytes in memory order: little-endian only.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "protloc cache shards assume a little-endian host"
#endif

#define SHARD_MAGIC "PLCSHRD1"
#define SHARD_HEADER 64
#define SHARD_DTYPE_F32 1
#define SHARD_MAX_DIM 65536                          // C and S each
#define SHARD_MAX_TABLE ((uint64_t)1 << 30)          // decompressed table bytes accepted on open
#define SHARD_ITEM_MIN 15                            // table bytes of an item with empty strings
#define SHARD_SAMPLE_ENTRY 12                        // u64 offset + u32 bytes

typedef struct ShardHeader {
    char magic[8];
    uint32_t version, C, S, dtype;
    uint64_t n_items, n_samples, table_offset, table_bytes, table_raw_bytes;
} ShardHeader;
_Static_assert(sizeof(ShardHeader) == SHARD_HEADER, "cache shard header must be 64 bytes");
_Static_assert(sizeof(float) == 4, "cache shards hold 4-byte floats");

struct PlCacheShardWriter {
    char *final_path, *temp_path;
    int fd;
    int C, S;
    size_t raw_bytes;              // C * S * S * 4
    ZSTD_CCtx *cctx;
    unsigned char *frame;          // (frame_cap)
    size_t frame_cap;
    unsigned char *items;          // the table's item records, serialised as they are added
    size_t items_len, items_cap;
    unsigned char *samples;        // the table's sample entries
    size_t samples_len, samples_cap;
    uint64_t pos;                  // where the next frame goes
    uint64_t n_items, n_samples;
    int broken;                    // a write failed: only abort (or a failing commit) remains
};

struct PlCacheDecoder {
    ZSTD_DCtx *dctx;
    unsigned char *frame, *raw;    // (frame_cap), (raw_cap): a frame is checked before dst is written
    size_t frame_cap, raw_cap;
};

// ---- shared helpers ----

// Bytes of one (C, S, S) float32 sample; 0 (PL_ERR_ARG recorded) when C or S is out of range.
static size_t shard_sample_bytes(int C, int S) {
    if (C < 1 || S < 1 || C > SHARD_MAX_DIM || S > SHARD_MAX_DIM) {
        PL_FAIL(PL_ERR_ARG, "C = %d and S = %d must each lie in [1, %d]", C, S, SHARD_MAX_DIM);
        return 0;
    }
    size_t n;
    if (pl_mul_overflows((size_t)C * (size_t)S, (size_t)S * 4, &n)) return 0;
    return n;
}

// 1 when f (n bytes) starts a zstd frame that carries a content checksum (RFC 8878: the frame header descriptor
// after the 4-byte magic has Content_Checksum_flag, bit 2), so decompressing it verifies the data.
static int shard_frame_checksummed(const unsigned char *f, size_t n) {
    uint32_t magic;
    if (n < 5) return 0;
    memcpy(&magic, f, 4);
    return magic == ZSTD_MAGICNUMBER && (f[4] & 4) != 0;
}

// Write all n bytes at `off`, through short writes and EINTR; a failure is PL_ERR_IO naming `path` (and a full disk).
static PlStatus shard_pwrite_all(int fd, const void *buf, size_t n, uint64_t off, const char *path) {
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return PL_FS_WRITE_FAIL("cannot write", path, k < 0 ? errno : ENOSPC);
        p += k;
        off += (uint64_t)k;
        n -= (size_t)k;
    }
    return PL_OK;
}

// Read all n bytes at `off`: 0 done, 1 the file ends first, -1 error (errno set).
static int shard_pread_all(int fd, void *buf, size_t n, uint64_t off) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t k = pread(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) return 1;
        p += k;
        off += (uint64_t)k;
        n -= (size_t)k;
    }
    return 0;
}

// ---- writer ----

static void shard_writer_free(PlCacheShardWriter *w) {
    ZSTD_freeCCtx(w->cctx);
    free(w->final_path);
    free(w->temp_path);
    free(w->frame);
    free(w->items);
    free(w->samples);
    free(w);
}

void pl_cache_shard_abort(PlCacheShardWriter *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);   // the file is being thrown away: a close error changes nothing
    if (w->temp_path) unlink(w->temp_path);
    shard_writer_free(w);
}

// Compress `n` bytes of src into w->frame (one frame with zstd's content checksum); *out its size.
static PlStatus shard_compress(PlCacheShardWriter *w, const void *src, size_t n, size_t *out) {
    size_t bound = ZSTD_compressBound(n);
    if (ZSTD_isError(bound) || bound < n) return PL_FAIL(PL_ERR_LIMIT, "%s: %zu bytes are too many for one zstd frame",
                                                         w->temp_path, n);
    if (bound > w->frame_cap) PL_TRY(pl_grow((void **)&w->frame, &w->frame_cap, bound, 1));
    size_t r = ZSTD_compress2(w->cctx, w->frame, w->frame_cap, src, n);
    if (ZSTD_isError(r))
        return PL_FAIL(PL_ERR_INTERNAL, "%s: zstd compression failed: %s", w->temp_path, ZSTD_getErrorName(r));
    *out = r;
    return PL_OK;
}

PlStatus pl_cache_shard_create(PlCacheShardWriter **out, const char *final_path, int C, int S, int level) {
    *out = NULL;
    size_t raw = shard_sample_bytes(C, S);
    if (!raw) return pl_error_wrap("cache shard %s", final_path);
    if (level < 1 || level > ZSTD_maxCLevel())
        return PL_FAIL(PL_ERR_ARG, "cache shard %s: zstd level %d outside [1, %d]", final_path, level,
                       ZSTD_maxCLevel());
    PlCacheShardWriter *w = pl_calloc(1, sizeof *w);
    if (!w) return PL_ERR_NOMEM;
    w->fd = -1;
    w->C = C;
    w->S = S;
    w->raw_bytes = raw;
    w->pos = SHARD_HEADER;
    w->final_path = pl_strdup(final_path);
    w->temp_path = pl_temp_path_for(final_path);
    if (!w->final_path || !w->temp_path) {
        shard_writer_free(w);
        return PL_ERR_NOMEM;
    }
    w->cctx = ZSTD_createCCtx();
    if (!w->cctx || ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, 0))) {
        shard_writer_free(w);
        return PL_FAIL(PL_ERR_NOMEM, "cache shard %s: cannot set up a zstd context", final_path);
    }
    w->fd = open(w->temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        PlStatus st = PL_FS_WRITE_FAIL("cannot create", w->temp_path, errno);
        shard_writer_free(w);   // nothing was created
        return st;
    }
    unsigned char zero[SHARD_HEADER] = {0};   // the real header is written by commit
    PlStatus st = shard_pwrite_all(w->fd, zero, sizeof zero, 0, w->temp_path);
    if (st != PL_OK) {
        pl_cache_shard_abort(w);
        return st;
    }
    *out = w;
    return PL_OK;
}

static void shard_put(unsigned char **p, const void *src, size_t n) {
    if (n) memcpy(*p, src, n);
    *p += n;
}

// Check that an item's strings fit the table (NULL digest, stage or message: empty); PL_ERR_ARG when not.
static PlStatus shard_check_record(const PlCacheShardWriter *w, const char *id, const char *digest, const char *stage,
                                   const char *message) {
    if (w->broken) return PL_FAIL(PL_ERR_ARG, "cache shard %s: an earlier write failed; abort it", w->final_path);
    size_t id_len = id ? strlen(id) : 0, dg_len = digest ? strlen(digest) : 0;
    size_t st_len = stage ? strlen(stage) : 0, msg_len = message ? strlen(message) : 0;
    if (id_len == 0 || id_len > UINT16_MAX || dg_len > UINT16_MAX || st_len > UINT16_MAX || msg_len > UINT32_MAX)
        return PL_FAIL(PL_ERR_ARG, "cache shard %s: item %llu ('%.64s'): empty or too long id, digest, stage or "
                       "message (%zu, %zu, %zu, %zu bytes)", w->final_path, (unsigned long long)w->n_items,
                       id ? id : "", id_len, dg_len, st_len, msg_len);
    return PL_OK;
}

// Append one item record (the table format of pl_cache_shard.h; shard_check_record passed) to w->items.
static PlStatus shard_add_record(PlCacheShardWriter *w, const char *id, const char *digest, int failed,
                                 const char *stage, const char *message, uint32_t n_samples) {
    size_t id_len = strlen(id), dg_len = digest ? strlen(digest) : 0;
    size_t st_len = stage ? strlen(stage) : 0, msg_len = message ? strlen(message) : 0;
    size_t need = w->items_len + SHARD_ITEM_MIN + id_len + dg_len + st_len + msg_len;
    if (need > w->items_cap) {
        size_t cap = w->items_cap ? w->items_cap : 4096;
        while (cap < need) cap *= 2;
        PL_TRY(pl_grow((void **)&w->items, &w->items_cap, cap, 1));
    }
    unsigned char *p = w->items + w->items_len, f = (unsigned char)(failed != 0);
    uint16_t a = (uint16_t)id_len, b = (uint16_t)dg_len, c = (uint16_t)st_len;
    uint32_t m = (uint32_t)msg_len;
    shard_put(&p, &a, 2);
    shard_put(&p, id, id_len);
    shard_put(&p, &b, 2);
    shard_put(&p, digest, dg_len);
    shard_put(&p, &f, 1);
    shard_put(&p, &c, 2);
    shard_put(&p, stage, st_len);
    shard_put(&p, &m, 4);
    shard_put(&p, message, msg_len);
    shard_put(&p, &n_samples, 4);
    w->items_len = need;
    w->n_items++;
    return PL_OK;
}

PlStatus pl_cache_shard_add_item(PlCacheShardWriter *w, const char *id, const char *digest, int n, const float *x) {
    PL_TRY(shard_check_record(w, id, digest, NULL, NULL));
    if (n < 0 || (n > 0 && !x))
        return PL_FAIL(PL_ERR_ARG, "cache shard %s: item '%.64s': %d samples%s", w->final_path, id ? id : "", n,
                       n > 0 ? " but no data" : "");
    size_t need = w->samples_len + (size_t)n * SHARD_SAMPLE_ENTRY;
    if (need > w->samples_cap) {
        size_t cap = w->samples_cap ? w->samples_cap : 1024;
        while (cap < need) cap *= 2;
        PL_TRY(pl_grow((void **)&w->samples, &w->samples_cap, cap, 1));
    }
    size_t nv = w->raw_bytes / 4;
    for (int j = 0; j < n; j++) {
        size_t comp = 0;
        PlStatus st = shard_compress(w, (const unsigned char *)(x + (size_t)j * nv), w->raw_bytes, &comp);
        if (st == PL_OK && comp > UINT32_MAX)
            st = PL_FAIL(PL_ERR_LIMIT, "cache shard %s: a %zu-byte frame does not fit the table's u32", w->temp_path,
                         comp);
        if (st == PL_OK) st = shard_pwrite_all(w->fd, w->frame, comp, w->pos, w->temp_path);
        if (st != PL_OK) {
            w->broken = 1;   // bytes of this item may be in the file but will never be in the table
            return pl_error_wrap("item '%.64s', its sample %d", id, j);
        }
        uint64_t off = w->pos;
        uint32_t len = (uint32_t)comp;
        unsigned char *p = w->samples + w->samples_len + (size_t)j * SHARD_SAMPLE_ENTRY;
        shard_put(&p, &off, 8);
        shard_put(&p, &len, 4);
        w->pos += comp;
    }
    PlStatus st = shard_add_record(w, id, digest, 0, NULL, NULL, (uint32_t)n);
    if (st != PL_OK) {
        w->broken = n > 0;
        return st;
    }
    w->samples_len = need;
    w->n_samples += (uint64_t)n;
    return PL_OK;
}

PlStatus pl_cache_shard_add_failure(PlCacheShardWriter *w, const char *id, const char *digest, const char *stage,
                                    const char *message) {
    PL_TRY(shard_check_record(w, id, digest, stage, message));
    return shard_add_record(w, id, digest, 1, stage, message, 0);
}

// Table frame after the samples, then the real header; the caller closes and renames.
static PlStatus shard_write_table(PlCacheShardWriter *w) {
    size_t raw = w->items_len + w->samples_len;
    unsigned char *table = pl_malloc(raw ? raw : 1);
    if (!table) return PL_ERR_NOMEM;
    if (w->items_len) memcpy(table, w->items, w->items_len);
    if (w->samples_len) memcpy(table + w->items_len, w->samples, w->samples_len);
    size_t comp;
    PlStatus st = shard_compress(w, table, raw, &comp);
    free(table);
    if (st == PL_OK) st = shard_pwrite_all(w->fd, w->frame, comp, w->pos, w->temp_path);
    if (st != PL_OK) return st;
    ShardHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SHARD_MAGIC, 8);
    h.version = PL_CACHE_SHARD_VERSION;
    h.C = (uint32_t)w->C;
    h.S = (uint32_t)w->S;
    h.dtype = SHARD_DTYPE_F32;
    h.n_items = w->n_items;
    h.n_samples = w->n_samples;
    h.table_offset = w->pos;
    h.table_bytes = comp;
    h.table_raw_bytes = raw;
    return shard_pwrite_all(w->fd, &h, sizeof h, 0, w->temp_path);
}

PlStatus pl_cache_shard_commit(PlCacheShardWriter *w) {
    PlStatus st = w->broken ? PL_FAIL(PL_ERR_ARG, "cache shard %s: an earlier write failed", w->final_path) : PL_OK;
    if (st == PL_OK) st = shard_write_table(w);
    // pl_file_commit_rename fsyncs the file (reopened), renames it and fsyncs the folder: no fsync here, only close
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0 && st == PL_OK) st = PL_FS_WRITE_FAIL("cannot close", w->temp_path, errno);
    if (st == PL_OK) st = pl_file_commit_rename(w->temp_path, w->final_path);
    if (st != PL_OK) {
        unlink(w->temp_path);   // after a failed rename the temp file is still there; after a failed dir fsync not
        st = pl_error_wrap("committing cache shard %s", w->final_path);
    }
    shard_writer_free(w);
    return st;
}

// ---- reader ----

void pl_cache_shard_close(PlCacheShard *s) {
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->path);
    free(s->items);
    free(s->offset);
    free(s->bytes);
    free(s->strings);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

// Validate the header against the file's size.
static PlStatus shard_check_header(const PlCacheShard *s, const ShardHeader *h, uint64_t size) {
    const char *p = s->path;
    if (memcmp(h->magic, SHARD_MAGIC, 8) != 0) return PL_FAIL(PL_ERR_FORMAT, "%s: not a protloc cache shard (no magic "
                                                              "\"%s\" at its start)", p, SHARD_MAGIC);
    if (h->version != PL_CACHE_SHARD_VERSION)
        return PL_FAIL(PL_ERR_FORMAT, "%s: cache shard version %u, this build reads version %d", p, h->version,
                       PL_CACHE_SHARD_VERSION);
    if (h->C < 1 || h->S < 1 || h->C > SHARD_MAX_DIM || h->S > SHARD_MAX_DIM)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt header: C = %u, S = %u (each must lie in [1, %d])", p, h->C, h->S,
                       SHARD_MAX_DIM);
    if (h->dtype != SHARD_DTYPE_F32)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt header: dtype %u (1 = float32 is the only one)", p, h->dtype);
    if (h->table_offset < SHARD_HEADER || h->table_bytes > size || h->table_offset > size - h->table_bytes ||
        h->table_offset + h->table_bytes != size)
        return PL_FAIL(PL_ERR_FORMAT, "%s: truncated or corrupt: its table should span bytes %llu + %llu of a "
                       "%llu-byte file and end it", p, (unsigned long long)h->table_offset,
                       (unsigned long long)h->table_bytes, (unsigned long long)size);
    if (h->table_raw_bytes > SHARD_MAX_TABLE || h->n_items > h->table_raw_bytes / SHARD_ITEM_MIN ||
        h->n_samples > h->table_raw_bytes / SHARD_SAMPLE_ENTRY)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt header: %llu items and %llu samples in a %llu-byte table", p,
                       (unsigned long long)h->n_items, (unsigned long long)h->n_samples,
                       (unsigned long long)h->table_raw_bytes);
    return PL_OK;
}

// Read, check and decompress the table frame into a malloc'd *raw (h->table_raw_bytes bytes).
static PlStatus shard_load_table(const PlCacheShard *s, const ShardHeader *h, unsigned char **raw) {
    *raw = NULL;
    size_t nc = (size_t)h->table_bytes, nr = (size_t)h->table_raw_bytes;
    unsigned char *comp = pl_malloc(nc ? nc : 1), *out = NULL;   // out only once the frame says it holds nr bytes
    if (!comp) return PL_ERR_NOMEM;
    PlStatus st = PL_OK;
    int r = shard_pread_all(s->fd, comp, nc, h->table_offset);
    if (r < 0) {
        st = PL_FAIL(PL_ERR_IO, "cannot read %s: %s", s->path, strerror(errno));
    } else if (r > 0) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: truncated while reading its table", s->path);
    } else if (!shard_frame_checksummed(comp, nc) || ZSTD_getFrameContentSize(comp, nc) != (unsigned long long)nr ||
               ZSTD_findFrameCompressedSize(comp, nc) != nc) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: not one checksummed zstd frame of %zu bytes holding %zu",
                     s->path, nc, nr);
    } else if (!(out = pl_malloc(nr ? nr : 1))) {
        st = PL_ERR_NOMEM;
    } else {
        size_t got = ZSTD_decompress(out, nr, comp, nc);
        if (ZSTD_isError(got) || got != nr)
            st = PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table (zstd: %s)", s->path,
                         ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
    }
    free(comp);
    if (st != PL_OK) {
        free(out);
        return st;
    }
    *raw = out;
    return PL_OK;
}

// A bounds-checked cursor over the decompressed table.
typedef struct ShardCursor {
    const unsigned char *p, *end;
} ShardCursor;

static int cur_get(ShardCursor *c, void *dst, size_t n) {
    if ((size_t)(c->end - c->p) < n) return 0;
    if (n) memcpy(dst, c->p, n);
    c->p += n;
    return 1;
}

// Copy a string of `len` bytes into *strings (NUL-terminated) and point *out at it; 0 when past the end or with a NUL.
static int cur_string(ShardCursor *c, size_t len, char **strings, const char **out) {
    if ((size_t)(c->end - c->p) < len || (len && memchr(c->p, 0, len))) return 0;
    *out = *strings;
    if (len) memcpy(*strings, c->p, len);
    (*strings)[len] = '\0';
    *strings += len + 1;
    c->p += len;
    return 1;
}

// Parse one item record; `why` says what is wrong when it returns 0.
static int shard_parse_item(ShardCursor *c, char **strings, PlCacheShardItem *it, const char **why) {
    uint16_t id_len, dg_len, st_len;
    uint32_t msg_len, n;
    uint8_t failed;
    *why = "its record runs past the table's end";
    if (!cur_get(c, &id_len, 2) || !cur_string(c, id_len, strings, &it->id) || !cur_get(c, &dg_len, 2) ||
        !cur_string(c, dg_len, strings, &it->digest) || !cur_get(c, &failed, 1) || !cur_get(c, &st_len, 2) ||
        !cur_string(c, st_len, strings, &it->stage) || !cur_get(c, &msg_len, 4) ||
        !cur_string(c, msg_len, strings, &it->message) || !cur_get(c, &n, 4))
        return 0;
    *why = id_len == 0 ? "its id is empty" : failed > 1 ? "its failed flag is neither 0 nor 1"
         : failed && n ? "it failed yet has samples" : n > INT_MAX ? "it has too many samples" : NULL;
    it->failed = failed;
    it->n_samples = (int)n;
    return *why == NULL;
}

// Parse the table into s->items / offset / bytes / strings and check it against the header and the file.
static PlStatus shard_parse_table(PlCacheShard *s, const ShardHeader *h, const unsigned char *raw) {
    size_t nr = (size_t)h->table_raw_bytes, ni = (size_t)h->n_items, ns = (size_t)h->n_samples;
    if (ns > nr / SHARD_SAMPLE_ENTRY)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: %zu bytes cannot hold %zu sample entries", s->path, nr, ns);
    s->items = pl_calloc(ni ? ni : 1, sizeof *s->items);
    s->offset = pl_malloc((ns ? ns : 1) * sizeof *s->offset);
    s->bytes = pl_malloc((ns ? ns : 1) * sizeof *s->bytes);
    // every string of the items' part (the table less its sample entries) plus its NUL; ni <= nr / 15
    s->strings = pl_malloc(nr - ns * SHARD_SAMPLE_ENTRY + 4 * ni + 1);
    if (!s->items || !s->offset || !s->bytes || !s->strings) return PL_ERR_NOMEM;
    ShardCursor c = {raw, raw + nr - ns * SHARD_SAMPLE_ENTRY};   // the items' part: its strings fit s->strings
    char *strings = s->strings;
    int64_t first = 0;
    for (size_t i = 0; i < ni; i++) {
        PlCacheShardItem *it = &s->items[i];
        const char *why;
        if (!shard_parse_item(&c, &strings, it, &why))
            return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: item %zu%s%.64s%s: %s", s->path, i,
                           it->id ? " ('" : "", it->id ? it->id : "", it->id ? "')" : "", why);
        it->first_sample = first;
        if ((uint64_t)it->n_samples > h->n_samples - (uint64_t)first)
            return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: item %zu ('%.64s') has samples beyond the %llu the "
                           "header counts", s->path, i, it->id, (unsigned long long)h->n_samples);
        first += it->n_samples;
    }
    if ((uint64_t)first != h->n_samples)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: its items hold %lld samples, the header counts %llu",
                       s->path, (long long)first, (unsigned long long)h->n_samples);
    if (c.p != c.end)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: its items end %zu bytes before the sample entries", s->path,
                       (size_t)(c.end - c.p));
    c.end = raw + nr;
    size_t bound = ZSTD_compressBound(shard_sample_bytes(s->C, s->S));
    uint64_t expect = SHARD_HEADER;   // frames lie back to back from the header to the table
    for (size_t k = 0; k < ns; k++) {
        if (!cur_get(&c, &s->offset[k], 8) || !cur_get(&c, &s->bytes[k], 4))
            return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: it ends inside sample %zu's entry", s->path, k);
        if (s->offset[k] != expect || s->bytes[k] == 0 || s->bytes[k] > bound ||
            s->bytes[k] > h->table_offset - expect)
            return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: sample %zu at byte %llu + %u, expected at byte %llu "
                           "and before the table at %llu", s->path, k, (unsigned long long)s->offset[k], s->bytes[k],
                           (unsigned long long)expect, (unsigned long long)h->table_offset);
        expect += s->bytes[k];
    }
    if (expect != h->table_offset || c.p != c.end)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt table: its samples end at byte %llu, the table starts at %llu; "
                       "%zu table bytes left over", s->path, (unsigned long long)expect,
                       (unsigned long long)h->table_offset, (size_t)(c.end - c.p));
    return PL_OK;
}

PlStatus pl_cache_shard_open(PlCacheShard *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->path = pl_strdup(path);
    if (!s->path) return PL_ERR_NOMEM;
    PlStatus st = pl_open_regular(path, &s->fd);
    struct stat sb;
    ShardHeader h;
    if (st == PL_OK && fstat(s->fd, &sb) != 0) st = PL_FAIL(PL_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    if (st == PL_OK) {
        int r = (uint64_t)sb.st_size < SHARD_HEADER ? 1 : shard_pread_all(s->fd, &h, sizeof h, 0);
        if (r < 0) st = PL_FAIL(PL_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        if (r > 0) st = PL_FAIL(PL_ERR_FORMAT, "%s: %lld bytes, too short for a cache shard's %d-byte header", path,
                                (long long)sb.st_size, SHARD_HEADER);
    }
    if (st == PL_OK) st = shard_check_header(s, &h, (uint64_t)sb.st_size);
    unsigned char *raw = NULL;
    if (st == PL_OK) {
        s->C = (int)h.C;
        s->S = (int)h.S;
        s->n_items = (int64_t)h.n_items;
        s->n_samples = (int64_t)h.n_samples;
        st = shard_load_table(s, &h, &raw);
    }
    if (st == PL_OK) st = shard_parse_table(s, &h, raw);
    free(raw);
    if (st != PL_OK) pl_cache_shard_close(s);
    return st;
}

// ---- decoder and sample reads ----

PlStatus pl_cache_decoder_create(PlCacheDecoder **out, int C, int S) {
    *out = NULL;
    size_t raw = shard_sample_bytes(C, S);
    if (!raw) return pl_error_wrap("cache decoder");
    size_t bound = ZSTD_compressBound(raw);
    if (ZSTD_isError(bound) || bound < raw) return PL_FAIL(PL_ERR_LIMIT, "cache decoder: %zu-byte samples", raw);
    PlCacheDecoder *d = pl_calloc(1, sizeof *d);
    if (!d) return PL_ERR_NOMEM;
    d->frame_cap = bound;
    d->raw_cap = raw;
    d->frame = pl_malloc(bound);
    d->raw = d->frame ? pl_malloc(raw) : NULL;
    d->dctx = d->raw ? ZSTD_createDCtx() : NULL;
    if (!d->dctx) {
        pl_cache_decoder_free(d);
        return PL_FAIL(PL_ERR_NOMEM, "cache decoder: cannot allocate %zu + %zu bytes and a zstd context", bound, raw);
    }
    *out = d;
    return PL_OK;
}

void pl_cache_decoder_free(PlCacheDecoder *d) {
    if (!d) return;
    ZSTD_freeDCtx(d->dctx);
    free(d->frame);
    free(d->raw);
    free(d);
}

static const char *shard_ordinal(int n) {
    int t = n % 100;
    return t >= 11 && t <= 13 ? "th" : n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
}

// A corrupt sample: PL_ERR_FORMAT naming the shard, the sample and its item (binary search by first_sample).
static PlStatus shard_sample_fail(const PlCacheShard *s, int64_t k, const char *what, const char *detail) {
    int64_t lo = 0, hi = s->n_items - 1;   // the last item whose first_sample <= k holds sample k
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (s->items[mid].first_sample <= k) lo = mid; else hi = mid - 1;
    }
    const PlCacheShardItem *it = &s->items[lo];
    int nth = (int)(k - it->first_sample) + 1;
    return PL_FAIL(PL_ERR_FORMAT, "%s: sample %lld (item %s, its %d%s sample): %s%s%s%s", s->path, (long long)k,
                   it->id, nth, shard_ordinal(nth), what, detail ? " (zstd: " : "", detail ? detail : "",
                   detail ? ")" : "");
}

PlStatus pl_cache_shard_read(const PlCacheShard *s, int64_t k, PlCacheDecoder *d, float *dst) {
    return pl_cache_shard_read_fd(s, s->fd, k, d, dst);
}

PlStatus pl_cache_shard_read_fd(const PlCacheShard *s, int fd, int64_t k, PlCacheDecoder *d, float *dst) {
    if (k < 0 || k >= s->n_samples)
        return PL_FAIL(PL_ERR_ARG, "%s: sample %lld out of range (it holds %lld)", s->path, (long long)k,
                       (long long)s->n_samples);
    size_t raw = (size_t)s->C * (size_t)s->S * (size_t)s->S * 4, n = s->bytes[k];
    if (raw > d->raw_cap || n > d->frame_cap)
        return PL_FAIL(PL_ERR_ARG, "%s: sample %lld: a %zu-byte sample does not fit a decoder for %zu", s->path,
                       (long long)k, raw, d->raw_cap);
    int r = shard_pread_all(fd, d->frame, n, s->offset[k]);
    if (r < 0) return PL_FAIL(PL_ERR_IO, "cannot read %s: sample %lld: %s", s->path, (long long)k, strerror(errno));
    if (r > 0) return shard_sample_fail(s, k, "the file ends inside its frame (truncated since it was opened)", NULL);
    if (!shard_frame_checksummed(d->frame, n))
        return shard_sample_fail(s, k, "corrupt data (not a checksummed zstd frame)", NULL);
    size_t got = ZSTD_decompressDCtx(d->dctx, d->raw, raw, d->frame, n);
    if (ZSTD_isError(got)) return shard_sample_fail(s, k, "corrupt data", ZSTD_getErrorName(got));
    if (got != raw) return shard_sample_fail(s, k, "corrupt data (wrong decompressed size)", NULL);
    memcpy(dst, d->raw, raw);
    return PL_OK;
}
