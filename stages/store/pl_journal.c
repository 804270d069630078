// Per-rank journal files of finished items: record encoding, checksums, zstd, batched fsync, scanning (pl_journal.h).
#include "pl_journal.h"

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "pl_clock.h"
#include "pl_fs.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "protloc journals assume a little-endian host"
#endif

#define JOURNAL_MAGIC "PLJ2"   // 2: cell records carry their mask label
#define JOURNAL_HEADER 64
#define JOURNAL_MAX_RECORD ((uint64_t)1 << 31)

// On-disk header (64 bytes, little-endian).
typedef struct JournalHeader {
    char magic[4];
    uint32_t total_len;     // header + id + digest + compressed payload
    uint32_t flags;         // bit0 failed, bit1 has_fov
    uint32_t dim;
    uint32_t n_tiles;
    uint32_t n_cells;
    uint32_t id_len;
    uint32_t digest_len;
    uint32_t raw_len;
    uint32_t comp_len;
    uint8_t checksum[16];   // SHA-256 (truncated) of the record with this field zeroed
    uint8_t reserved[8];
} JournalHeader;
_Static_assert(sizeof(JournalHeader) == JOURNAL_HEADER, "journal header must be 64 bytes");


static void journal_checksum(const unsigned char *rec, size_t len, uint8_t out[16]) {
    // rec's checksum field must be zero while hashing
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(rec, len, md, &mdlen, EVP_sha256(), NULL);
    memcpy(out, md, 16);
}

// Byte buffers that grow by doubling (record assembly, scanning).
static PlStatus journal_reserve(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap && *buf) return PL_OK;
    size_t ncap = *cap ? *cap : 4096;
    while (ncap < need) ncap *= 2;
    return pl_grow((void **)buf, cap, ncap, 1);
}

char *pl_journal_rank_path(const char *dir, int rank) {
    size_t n = strlen(dir) + 32;
    char *p = pl_malloc(n);
    if (p) snprintf(p, n, "%s/rank-%05d.jnl", dir, rank);
    return p;
}

PlStatus pl_journal_open(PlJournalWriter *w, const char *dir, int rank, int64_t valid_length) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->sync_every = 16;
    w->sync_seconds = 2.0;
    PL_TRY(pl_mkdir_p(dir));
    w->path = pl_journal_rank_path(dir, rank);
    if (!w->path) return PL_ERR_NOMEM;
    // O_NONBLOCK, then the kind: a FIFO or device in place of the rank file fails here instead of blocking
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    struct stat sb;
    int err = w->fd < 0 ? errno : fstat(w->fd, &sb) != 0 ? errno : 0;
    if (err == 0 && !S_ISREG(sb.st_mode)) err = ENXIO;
    if (err == 0 && fcntl(w->fd, F_SETFL, 0) != 0) err = errno;
    if (err) {
        PlStatus st = err == ENXIO ? PL_FAIL(PL_ERR_IO, "journal %s is not a regular file (a FIFO, device or socket): "
                                             "remove it, or the whole journal folder, to start afresh", w->path)
                                   : PL_FAIL(PL_ERR_IO, "cannot open journal %s: %s", w->path, strerror(err));
        pl_journal_close(w);
        return st;
    }
    if (ftruncate(w->fd, (off_t)valid_length) != 0 || lseek(w->fd, (off_t)valid_length, SEEK_SET) < 0) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot truncate journal %s: %s", w->path, strerror(errno));
        pl_journal_close(w);
        return st;
    }
    w->zctx = ZSTD_createCCtx();
    if (!w->zctx) {
        pl_journal_close(w);
        return PL_FAIL(PL_ERR_NOMEM, "ZSTD_createCCtx failed");
    }
    w->last_sync = pl_clock_now();
    return pl_fsync_parent_dir(w->path);
}

static void journal_put(unsigned char **p, const void *src, size_t n) {
    if (n) memcpy(*p, src, n);
    *p += n;
}

PlStatus pl_journal_append(PlJournalWriter *w, const PlJournalRecord *r) {
    size_t id_len = strlen(r->id), dg_len = strlen(r->digest);
    if (id_len == 0 || id_len > PL_JOURNAL_MAX_ID || dg_len >= 128)
        return PL_FAIL(PL_ERR_ARG, "journal record: id or digest length out of range (id '%.64s')", r->id);
    size_t D = r->failed ? 0 : (size_t)r->dim;
    size_t nt = r->failed ? 0 : (size_t)r->n_tiles, nc = r->failed ? 0 : (size_t)r->n_cells;
    size_t stage_len = r->failed && r->fail_stage ? strlen(r->fail_stage) : 0;
    size_t msg_len = r->failed && r->fail_message ? strlen(r->fail_message) : 0;
    if ((nt && (!r->tile_yx || !r->tile_emb)) || (nc && (!r->cell_cyx || !r->cell_area || !r->cell_label || !r->cell_emb)) ||
        (!r->failed && r->has_fov && !r->fov))
        return PL_FAIL(PL_ERR_ARG, "journal record for '%s': an array of its %zu tiles / %zu cells / FOV is missing", r->id,
                       nt, nc);
    if (stage_len > 63) stage_len = 63;
    if (msg_len > 1023) msg_len = 1023;
    uint64_t raw = 0;
    if (!r->failed) {
        if (r->has_fov) raw += D * 4;
        raw += nt * (8 + D * 4) + nc * (8 + 8 + 4 + D * 4);
    } else {
        raw = 8 + stage_len + msg_len;
    }
    if (raw > JOURNAL_MAX_RECORD) return PL_FAIL(PL_ERR_LIMIT, "journal record for '%s' too large (%llu bytes)",
                                                 r->id, (unsigned long long)raw);
    PL_TRY(journal_reserve(&w->buf, &w->cap, (size_t)raw + 1));
    unsigned char *p = w->buf;
    if (!r->failed) {
        if (r->has_fov) journal_put(&p, r->fov, D * 4);
        journal_put(&p, r->tile_yx, nt * 8);
        journal_put(&p, r->tile_emb, nt * D * 4);
        journal_put(&p, r->cell_cyx, nc * 8);
        journal_put(&p, r->cell_area, nc * 8);
        journal_put(&p, r->cell_label, nc * 4);
        journal_put(&p, r->cell_emb, nc * D * 4);
    } else {
        uint32_t a = (uint32_t)stage_len, b = (uint32_t)msg_len;
        journal_put(&p, &a, 4);
        journal_put(&p, r->fail_stage, stage_len);
        journal_put(&p, &b, 4);
        journal_put(&p, r->fail_message, msg_len);
    }
    size_t bound = ZSTD_compressBound((size_t)raw);
    size_t total_max = JOURNAL_HEADER + id_len + dg_len + bound;
    PL_TRY(journal_reserve(&w->zbuf, &w->zcap, total_max));
    unsigned char *out = w->zbuf;
    size_t comp = ZSTD_compressCCtx(w->zctx, out + JOURNAL_HEADER + id_len + dg_len, bound, w->buf, (size_t)raw, 1);
    if (ZSTD_isError(comp)) return PL_FAIL(PL_ERR_INTERNAL, "zstd compression failed: %s", ZSTD_getErrorName(comp));
    JournalHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, JOURNAL_MAGIC, 4);
    size_t total = JOURNAL_HEADER + id_len + dg_len + comp;
    h.total_len = (uint32_t)total;
    h.flags = (r->failed ? 1u : 0u) | (!r->failed && r->has_fov ? 2u : 0u);
    h.dim = (uint32_t)D;
    h.n_tiles = (uint32_t)nt;
    h.n_cells = (uint32_t)nc;
    h.id_len = (uint32_t)id_len;
    h.digest_len = (uint32_t)dg_len;
    h.raw_len = (uint32_t)raw;
    h.comp_len = (uint32_t)comp;
    memcpy(out, &h, sizeof h);
    memcpy(out + JOURNAL_HEADER, r->id, id_len);
    memcpy(out + JOURNAL_HEADER + id_len, r->digest, dg_len);
    journal_checksum(out, total, h.checksum);
    memcpy(out + offsetof(JournalHeader, checksum), h.checksum, 16);
    size_t done = 0;
    while (done < total) {
        ssize_t n = write(w->fd, out + done, total - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return PL_FAIL(PL_ERR_IO, "cannot append to journal %s: %s", w->path, strerror(errno));
        done += (size_t)n;
    }
    w->pending++;
    if (w->pending >= w->sync_every || pl_clock_now() - w->last_sync >= w->sync_seconds) PL_TRY(pl_journal_sync(w));
    return PL_OK;
}

PlStatus pl_journal_sync(PlJournalWriter *w) {
    if (w->fd < 0 || w->pending == 0) return PL_OK;
    if (fsync(w->fd) != 0) return PL_FAIL(PL_ERR_IO, "fsync of journal %s failed: %s", w->path, strerror(errno));
    w->pending = 0;
    w->last_sync = pl_clock_now();
    return PL_OK;
}

PlStatus pl_journal_close(PlJournalWriter *w) {
    PlStatus st = PL_OK;
    if (w->fd >= 0) {
        st = pl_journal_sync(w);
        if (close(w->fd) != 0 && st == PL_OK)
            st = PL_FAIL(PL_ERR_IO, "cannot close journal %s: %s", w->path, strerror(errno));
    }
    ZSTD_freeCCtx(w->zctx);
    free(w->path);
    free(w->buf);
    free(w->zbuf);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    return st;
}

// ---- scanning ----

static PlStatus journal_scan_file(PlJournalIndex *idx, int fi, size_t *cap) {
    const char *path = idx->files[fi];
    FILE *fp;   // a FIFO or device in the journal folder is an error naming it, never a hang
    if (pl_fopen_regular(path, &fp) != PL_OK)
        return pl_error_wrap("journal rank file (remove it, or the whole journal folder, to start afresh)");
    int64_t off = 0;
    unsigned char *rec = NULL;
    size_t rec_cap = 0;
    PlStatus st = PL_OK;
    for (;;) {
        JournalHeader h;
        size_t got = fread(&h, 1, sizeof h, fp);
        if (got == 0) break;
        if (got < sizeof h || memcmp(h.magic, JOURNAL_MAGIC, 4) != 0 || h.total_len < JOURNAL_HEADER ||
            (uint64_t)JOURNAL_HEADER + h.id_len + h.digest_len + h.comp_len != h.total_len || h.id_len == 0 ||
            h.id_len > PL_JOURNAL_MAX_ID || h.digest_len >= 128) {
            idx->torn++;
            break;
        }
        if ((st = journal_reserve(&rec, &rec_cap, h.total_len)) != PL_OK) break;
        memcpy(rec, &h, sizeof h);
        if (fread(rec + JOURNAL_HEADER, 1, h.total_len - JOURNAL_HEADER, fp) != h.total_len - JOURNAL_HEADER) {
            idx->torn++;
            break;
        }
        uint8_t want[16], got_sum[16];
        memcpy(want, h.checksum, 16);
        memset(rec + offsetof(JournalHeader, checksum), 0, 16);
        journal_checksum(rec, h.total_len, got_sum);
        if (memcmp(want, got_sum, 16) != 0) {
            idx->torn++;
            break;
        }
        if (idx->count == *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            PlJournalEntry *grown = realloc(idx->entries, ncap * sizeof *grown);
            if (!grown) { st = PL_FAIL(PL_ERR_NOMEM, "out of memory scanning journals"); break; }
            idx->entries = grown;
            *cap = ncap;
        }
        PlJournalEntry *e = &idx->entries[idx->count];
        memset(e, 0, sizeof *e);
        e->id = strndup((const char *)rec + JOURNAL_HEADER, h.id_len);
        e->digest = strndup((const char *)rec + JOURNAL_HEADER + h.id_len, h.digest_len);
        if (!e->id || !e->digest) {
            free(e->id); free(e->digest);
            st = PL_FAIL(PL_ERR_NOMEM, "out of memory scanning journals");
            break;
        }
        idx->count++;
        e->file = fi;
        e->offset = off;
        e->length = h.total_len;
        e->failed = (h.flags & 1u) != 0;
        e->has_fov = (h.flags & 2u) != 0;
        e->dim = (int)h.dim;
        e->n_tiles = (int)h.n_tiles;
        e->n_cells = (int)h.n_cells;
        off += h.total_len;
    }
    idx->valid_length[fi] = off;
    free(rec);
    fclose(fp);
    return st;
}

PlStatus pl_journal_scan(const char *dir, PlJournalIndex *idx) {
    memset(idx, 0, sizeof *idx);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return PL_OK;
        return PL_FAIL(PL_ERR_IO, "cannot open journal folder %s: %s", dir, strerror(errno));
    }
    struct dirent *de;
    int cap = 0;
    PlStatus st = PL_OK;
    while ((de = readdir(d)) != NULL) {
        int rank = -1, len = 0;
        if (sscanf(de->d_name, "rank-%d.jnl%n", &rank, &len) != 1 || de->d_name[len] != '\0' || rank < 0) continue;
        if (idx->n_files == cap) {
            cap = cap ? cap * 2 : 8;
            char **f = realloc(idx->files, (size_t)cap * sizeof *f);
            int *r = f ? realloc(idx->file_rank, (size_t)cap * sizeof *r) : NULL;
            int64_t *v = r ? realloc(idx->valid_length, (size_t)cap * sizeof *v) : NULL;
            if (f) idx->files = f;
            if (r) idx->file_rank = r;
            if (v) idx->valid_length = v;
            if (!f || !r || !v) { st = PL_FAIL(PL_ERR_NOMEM, "out of memory"); break; }
        }
        idx->files[idx->n_files] = pl_journal_rank_path(dir, rank);
        if (!idx->files[idx->n_files]) { st = PL_ERR_NOMEM; break; }
        idx->file_rank[idx->n_files] = rank;
        idx->valid_length[idx->n_files] = 0;
        idx->n_files++;
    }
    closedir(d);
    // deterministic order: by rank
    for (int i = 1; i < idx->n_files; i++)
        for (int j = i; j > 0 && idx->file_rank[j - 1] > idx->file_rank[j]; j--) {
            char *tf = idx->files[j]; idx->files[j] = idx->files[j - 1]; idx->files[j - 1] = tf;
            int tr = idx->file_rank[j]; idx->file_rank[j] = idx->file_rank[j - 1]; idx->file_rank[j - 1] = tr;
        }
    size_t ecap = 0;
    for (int i = 0; i < idx->n_files && st == PL_OK; i++) st = journal_scan_file(idx, i, &ecap);
    if (st != PL_OK) pl_journal_index_free(idx);
    return st;
}

int64_t pl_journal_valid_length(const PlJournalIndex *idx, int rank) {
    for (int i = 0; i < idx->n_files; i++)
        if (idx->file_rank[i] == rank) return idx->valid_length[i];
    return 0;
}

void pl_journal_index_free(PlJournalIndex *idx) {
    for (size_t i = 0; i < idx->count; i++) {
        free(idx->entries[i].id);
        free(idx->entries[i].digest);
    }
    free(idx->entries);
    for (int i = 0; i < idx->n_files; i++) free(idx->files[i]);
    free(idx->files);
    free(idx->file_rank);
    free(idx->valid_length);
    memset(idx, 0, sizeof *idx);
}

PlStatus pl_journal_read(const PlJournalIndex *idx, size_t e, PlJournalItem *it) {
    const PlJournalEntry *en = &idx->entries[e];
    const char *path = idx->files[en->file];
    PL_TRY(journal_reserve(&it->comp, &it->comp_cap, en->length));
    FILE *fp;
    if (pl_fopen_regular(path, &fp) != PL_OK) return pl_error_wrap("journal rank file");
    int ok = fseeko(fp, (off_t)en->offset, SEEK_SET) == 0 && fread(it->comp, 1, en->length, fp) == en->length;
    fclose(fp);
    if (!ok) return PL_FAIL(PL_ERR_IO, "cannot read record at %lld of journal %s", (long long)en->offset, path);
    JournalHeader h;
    memcpy(&h, it->comp, sizeof h);
    uint8_t sum[16];
    memset(it->comp + offsetof(JournalHeader, checksum), 0, 16);
    journal_checksum(it->comp, en->length, sum);
    if (memcmp(sum, h.checksum, 16) != 0)
        return PL_FAIL(PL_ERR_FORMAT, "journal %s: record at %lld changed since it was scanned", path,
                       (long long)en->offset);
    memcpy(it->id, it->comp + JOURNAL_HEADER, h.id_len);
    it->id[h.id_len] = '\0';
    memcpy(it->digest, it->comp + JOURNAL_HEADER + h.id_len, h.digest_len);
    it->digest[h.digest_len] = '\0';
    PL_TRY(journal_reserve(&it->raw, &it->raw_cap, (size_t)h.raw_len + 1));
    size_t n = ZSTD_decompress(it->raw, h.raw_len, it->comp + JOURNAL_HEADER + h.id_len + h.digest_len, h.comp_len);
    if (ZSTD_isError(n) || n != h.raw_len)
        return PL_FAIL(PL_ERR_FORMAT, "journal %s: record at %lld does not decompress", path, (long long)en->offset);
    it->failed = (h.flags & 1u) != 0;
    it->has_fov = (h.flags & 2u) != 0;
    it->dim = (int)h.dim;
    it->n_tiles = (int)h.n_tiles;
    it->n_cells = (int)h.n_cells;
    it->fail_stage[0] = it->fail_message[0] = '\0';
    const unsigned char *p = it->raw, *end = it->raw + h.raw_len;
    if (it->failed) {
        uint32_t a = 0, b = 0;
        if (end - p < 4) goto bad;
        memcpy(&a, p, 4); p += 4;
        if (a > 63 || (size_t)(end - p) < a + 4) goto bad;
        memcpy(it->fail_stage, p, a); it->fail_stage[a] = '\0'; p += a;
        memcpy(&b, p, 4); p += 4;
        if (b > 1023 || (size_t)(end - p) < b) goto bad;
        memcpy(it->fail_message, p, b); it->fail_message[b] = '\0';
        return PL_OK;
    }
    size_t D = (size_t)h.dim, nt = h.n_tiles, nc = h.n_cells;
    size_t need = (it->has_fov ? D * 4 : 0) + nt * (8 + D * 4) + nc * (8 + 8 + 4 + D * 4);
    if (need != h.raw_len) goto bad;
    // every array has its own capacity: a record with many small rows after one with few large ones (or the
    // reverse) grows exactly the arrays that need it
    PL_TRY(pl_grow((void **)&it->fov, &it->fov_cap, D, sizeof *it->fov));
    PL_TRY(pl_grow((void **)&it->tile_yx, &it->tile_yx_cap, nt * 2, sizeof *it->tile_yx));
    PL_TRY(pl_grow((void **)&it->tile_emb, &it->tile_emb_cap, nt * D, sizeof *it->tile_emb));
    PL_TRY(pl_grow((void **)&it->cell_cyx, &it->cell_cyx_cap, nc * 2, sizeof *it->cell_cyx));
    PL_TRY(pl_grow((void **)&it->cell_area, &it->cell_area_cap, nc, sizeof *it->cell_area));
    PL_TRY(pl_grow((void **)&it->cell_label, &it->cell_label_cap, nc, sizeof *it->cell_label));
    PL_TRY(pl_grow((void **)&it->cell_emb, &it->cell_emb_cap, nc * D, sizeof *it->cell_emb));
    if (it->has_fov) { memcpy(it->fov, p, D * 4); p += D * 4; }
    memcpy(it->tile_yx, p, nt * 8); p += nt * 8;
    memcpy(it->tile_emb, p, nt * D * 4); p += nt * D * 4;
    memcpy(it->cell_cyx, p, nc * 8); p += nc * 8;
    memcpy(it->cell_area, p, nc * 8); p += nc * 8;
    memcpy(it->cell_label, p, nc * 4); p += nc * 4;
    memcpy(it->cell_emb, p, nc * D * 4);
    return PL_OK;
bad:
    return PL_FAIL(PL_ERR_FORMAT, "journal %s: record at %lld has an inconsistent payload", path,
                   (long long)en->offset);
}

void pl_journal_item_free(PlJournalItem *it) {
    free(it->fov); free(it->tile_yx); free(it->tile_emb); free(it->cell_cyx); free(it->cell_area);
    free(it->cell_label); free(it->cell_emb); free(it->raw); free(it->comp);
    memset(it, 0, sizeof *it);
}

PlStatus pl_journal_settings_write(const char *dir, const char *key) {
    PL_TRY(pl_mkdir_p(dir));
    char path[4096];
    snprintf(path, sizeof path, "%s/settings", dir);
    return pl_file_write_atomic(path, key, strlen(key));
}

PlStatus pl_journal_settings_read(const char *dir, char key[128], int *present) {
    char path[4096];
    snprintf(path, sizeof path, "%s/settings", dir);
    *present = 0;
    key[0] = '\0';
    struct stat sb;
    if (stat(path, &sb) != 0) return PL_OK;
    char *data = NULL;
    size_t size = 0;
    PL_TRY(pl_file_read_all(path, 4096, &data, &size));
    snprintf(key, 128, "%.*s", (int)size, data);
    free(data);
    *present = 1;
    return PL_OK;
}

PlStatus pl_journal_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? PL_OK : PL_FAIL(PL_ERR_IO, "cannot open %s: %s", dir, strerror(errno));
    struct dirent *de;
    char path[4096];
    PlStatus st = PL_OK;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) != 0 && st == PL_OK) st = PL_FAIL(PL_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    }
    closedir(d);
    if (st == PL_OK && rmdir(dir) != 0) st = PL_FAIL(PL_ERR_IO, "cannot remove %s: %s", dir, strerror(errno));
    return st;
}
