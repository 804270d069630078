// The training cache: build (plan, shards, index) and read (pl_train_cache.h).
#include "pl_train_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_build_info.h"
#include "pl_clock.h"
#include "pl_digest.h"
#include "pl_fs.h"
#include "pl_idindex.h"
#include "pl_item_digests.h"
#include "pl_lock.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_report.h"
#include "pl_rng.h"

#define CACHE_FORMAT "protloc-train-cache"
#define CACHE_VERSION 1
#define LANE_FDS 16   // shard descriptors a lane keeps open (least recently used closed first)

PlStatus pl_train_cache_settings(const FtPlan *p, char key[65], char *text, size_t text_size) {
    char card[65];
    PL_TRY(pl_sha256_file(p->card->path, card));
    const FtDataOptions *fo = &p->fo;
    int n = snprintf(text, text_size,
                     "protloc %s training cache v%d; card sha256 %s; channels %d; canvas %d; level %s; tile %d; "
                     "crop %d; patch %d", PROTLOC_VERSION, CACHE_VERSION, card, fo->channels, fo->size,
                     pl_store_level_name(fo->level), fo->tile, fo->crop, fo->patch);
    if (n < 0 || (size_t)n >= text_size) return PL_FAIL(PL_ERR_INTERNAL, "cache settings text too long");
    pl_digest_text(text, key);
    return PL_OK;
}

// ---- the index (cache.json) ----

typedef struct CacheIndex {
    char key[65];
    char settings[1024];
    int C, S;
    int n_shards;
    char **shards;   // file names in DIR/shards
} CacheIndex;

static void index_free(CacheIndex *x) {
    for (int i = 0; i < x->n_shards; i++) free(x->shards[i]);
    free(x->shards);
    memset(x, 0, sizeof *x);
}

// Read DIR/cache.json; *found 0 when there is none.
static PlStatus index_read(const char *dir, CacheIndex *x, int *found) {
    memset(x, 0, sizeof *x);
    *found = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, PL_TRAIN_CACHE_INDEX);
    if (access(path, F_OK) != 0) return PL_OK;
    char *text = NULL;
    size_t len = 0;
    PL_TRY(pl_file_read_all(path, 64u << 20, &text, &len));
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!root) return PL_FAIL(PL_ERR_FORMAT, "%s:%d: not JSON (%s)", path, je.line, je.text);
    PlStatus st = PL_OK;
    const char *format = json_string_value(json_object_get(root, "format"));
    const char *key = json_string_value(json_object_get(root, "settings_key"));
    json_t *shards = json_object_get(root, "shards");
    if (!format || strcmp(format, CACHE_FORMAT) != 0)
        st = PL_FAIL(PL_ERR_FORMAT, "%s is not a protloc training cache index (format '%s')", path, format ? format : "");
    else if (json_integer_value(json_object_get(root, "version")) != CACHE_VERSION)
        st = PL_FAIL(PL_ERR_FORMAT, "%s: cache version %lld, this protloc reads version %d", path,
                     (long long)json_integer_value(json_object_get(root, "version")), CACHE_VERSION);
    else if (!key || strlen(key) != 64 || !json_is_array(shards))
        st = PL_FAIL(PL_ERR_FORMAT, "%s: settings_key (64 hex) or shards (an array) missing", path);
    if (st == PL_OK) {
        snprintf(x->key, sizeof x->key, "%s", key);
        const char *text = json_string_value(json_object_get(root, "settings"));
        snprintf(x->settings, sizeof x->settings, "%s", text ? text : "?");
        x->C = (int)json_integer_value(json_object_get(root, "channels"));
        x->S = (int)json_integer_value(json_object_get(root, "size"));
        size_t n = json_array_size(shards);
        x->shards = pl_calloc(n + 1, sizeof *x->shards);
        if (!x->shards) st = PL_ERR_NOMEM;
        for (size_t i = 0; i < n && st == PL_OK; i++) {
            const char *name = json_string_value(json_array_get(shards, i));
            if (!name || !*name || strchr(name, '/'))
                st = PL_FAIL(PL_ERR_FORMAT, "%s: shard %zu is not a file name", path, i);
            else if (!(x->shards[x->n_shards++] = pl_strdup(name)))
                st = PL_ERR_NOMEM;
        }
    }
    json_decref(root);
    if (st != PL_OK) index_free(x);
    else *found = 1;
    return st;
}

static PlStatus index_write(const char *dir, const char *key, const char *settings, int C, int S, char **names,
                            int n, const PlTrainCacheBuild *b) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, PL_TRAIN_CACHE_INDEX);
    json_t *root = json_object(), *arr = json_array();
    if (!root || !arr) {
        json_decref(root);
        json_decref(arr);
        return PL_ERR_NOMEM;
    }
    json_object_set_new(root, "format", json_string(CACHE_FORMAT));
    json_object_set_new(root, "version", json_integer(CACHE_VERSION));
    json_object_set_new(root, "settings_key", json_string(key));
    json_object_set_new(root, "settings", json_string(settings));
    json_object_set_new(root, "channels", json_integer(C));
    json_object_set_new(root, "size", json_integer(S));
    json_object_set_new(root, "dtype", json_string("float32"));
    json_object_set_new(root, "items", json_integer(b->items));
    json_object_set_new(root, "failed_items", json_integer(b->failed));
    for (int i = 0; i < n; i++) json_array_append_new(arr, json_string(names[i]));
    json_object_set_new(root, "shards", arr);
    PlStatus st = pl_report_write_json(path, root);
    json_decref(root);
    return st;
}

// ---- the build plan (rank 0) ----

// The name of a new shard: a digest of the settings key and its items' ids and input digests.
static void shard_name(const char *key, const FtPlan *p, char (*digests)[PL_DIGEST_LEN], const int64_t *rows, int n,
                       char out[32]) {
    uint64_t h = pl_rng_hash_bytes(key, strlen(key), PL_RNG_FNV_OFFSET);
    for (int i = 0; i < n; i++) {
        const char *id = p->m.items[p->items[rows[i]]].id;
        h = pl_rng_hash_bytes(id, strlen(id) + 1, h);
        h = pl_rng_hash_bytes(digests[rows[i]], strlen(digests[rows[i]]) + 1, h);
    }
    snprintf(out, 32, "s-%016llx.plc", (unsigned long long)h);
}

// Whether the shard at path exists complete and holds exactly these items (a build killed after writing it).
static int shard_is_done(const char *path, const FtPlan *p, char (*digests)[PL_DIGEST_LEN], const int64_t *rows,
                         int n) {
    if (access(path, F_OK) != 0) return 0;
    PlCacheShard s;
    if (pl_cache_shard_open(&s, path) != PL_OK) {
        pl_log_warn("%s: %s; it is written again", path, pl_error_message());
        return 0;
    }
    int ok = s.n_items == n && s.C == p->fo.channels && s.S == p->fo.size;
    for (int i = 0; ok && i < n; i++)
        ok = !strcmp(s.items[i].id, p->m.items[p->items[rows[i]]].id) && !strcmp(s.items[i].digest, digests[rows[i]]);
    pl_cache_shard_close(&s);
    return ok;
}

typedef struct BuildPlan {
    int64_t *group;      // (p->n) the new shard of each row (>= 0), or -1: reused
    int n_groups;
    char **keep;         // old shards still holding reused rows, in the old index's order
    int n_keep;
    char **old;          // every shard of the old index
    int n_old;
    char **damaged;      // kept shards whose frames failed --check: removed once the build holds the lock alone
    int n_damaged;
    int index_ok;        // the old index was read and has this build's settings
    int64_t reused_failed;   // reused items recorded as failed
} BuildPlan;

// Whether the cache must be written: a new or unreadable index, other settings, items to prepare or shards to drop.
static int plan_writes(const BuildPlan *bp) { return !bp->index_ok || bp->n_groups > 0 || bp->n_keep != bp->n_old; }

static void plan_free(BuildPlan *bp) {
    free(bp->group);
    for (int i = 0; i < bp->n_keep; i++) free(bp->keep[i]);
    free(bp->keep);
    for (int i = 0; i < bp->n_old; i++) free(bp->old[i]);
    free(bp->old);
    for (int i = 0; i < bp->n_damaged; i++) free(bp->damaged[i]);
    free(bp->damaged);
    memset(bp, 0, sizeof *bp);
}

// ---- items by id and input digest ----

// An index of the plan's rows by "id\tdigest" (the key a shard's table holds for an item); free with row_keys_free.
static PlStatus row_keys_index(const FtPlan *p, char (*digests)[PL_DIGEST_LEN], PlIdIndex *ix, char ***keys_out) {
    char **keys = pl_calloc((size_t)p->n + 1, sizeof *keys);
    *keys_out = keys;
    if (!keys) return PL_ERR_NOMEM;
    for (int64_t i = 0; i < p->n; i++) {
        const char *id = p->m.items[p->items[i]].id;
        size_t len = strlen(id) + strlen(digests[i]) + 2;
        if (!(keys[i] = pl_malloc(len))) return PL_ERR_NOMEM;
        snprintf(keys[i], len, "%s\t%s", id, digests[i]);
        PL_TRY(pl_idindex_add(ix, keys[i], i, NULL));
    }
    return PL_OK;
}

static void row_keys_free(const FtPlan *p, PlIdIndex *ix, char **keys) {
    pl_idindex_free(ix);
    for (int64_t i = 0; keys && i < p->n; i++) free(keys[i]);
    free(keys);
}

// The row of a shard's item j, or -1 when the plan has no such (id, digest).
static int64_t row_of_item(const PlIdIndex *ix, const PlCacheShard *s, int64_t j) {
    char item[2 * PL_MANIFEST_MAX_TEXT + PL_DIGEST_LEN];
    snprintf(item, sizeof item, "%s\t%s", s->items[j].id, s->items[j].digest);
    return pl_idindex_find(ix, item);
}

// With --check: decompress every sample of a shard kept for reuse and check it (its content checksum), so that a
// damaged frame is found and its shard's items prepared again now instead of stopping a training run later.
static PlStatus shard_check_frames(const PlCacheShard *s) {
    PlCacheDecoder *dec = NULL;
    PL_TRY(pl_cache_decoder_create(&dec, s->C, s->S));
    float *x = pl_malloc(((size_t)s->C * s->S * s->S + 1) * sizeof *x);
    PlStatus st = x ? PL_OK : PL_ERR_NOMEM;
    for (int64_t k = 0; k < s->n_samples && st == PL_OK; k++) st = pl_cache_shard_read(s, k, dec, x);
    free(x);
    pl_cache_decoder_free(dec);
    return st;
}

// Rank 0: which rows an old shard of the same settings still holds (reused), and the groups of the others.
static PlStatus plan_build(const FtPlan *p, const char *dir, const char *key, const char *settings,
                           char (*digests)[PL_DIGEST_LEN], int check,
                           BuildPlan *bp, PlTrainCacheBuild *b) {
    memset(bp, 0, sizeof *bp);
    bp->group = pl_malloc(((size_t)p->n + 1) * sizeof *bp->group);
    if (!bp->group) return PL_ERR_NOMEM;
    for (int64_t i = 0; i < p->n; i++) bp->group[i] = -2;   // -2: not found yet
    CacheIndex old;
    int found = 0;
    PlStatus st = index_read(dir, &old, &found);
    if (st != PL_OK) {   // an unreadable index: rebuild (its shards are removed once the new index is written)
        pl_log_warn("%s; the cache is rebuilt", pl_error_message());
        st = PL_OK;
    } else if (found && strcmp(old.key, key) != 0) {
        pl_log_info("cache %s was built with other settings (%s), this run's are %s: every item is prepared again",
                    dir, old.settings, settings);
    }
    if (found) {
        bp->old = old.shards;   // taken over
        bp->n_old = old.n_shards;
        old.shards = NULL;
        old.n_shards = 0;
    }
    PlIdIndex ix = {0};
    char **keys = NULL;   // "id\tdigest" of each row
    int64_t *found_rows = NULL;   // the rows found in one old shard
    bp->index_ok = found && !strcmp(old.key, key);
    if (bp->index_ok) {
        st = row_keys_index(p, digests, &ix, &keys);
        bp->keep = pl_calloc((size_t)bp->n_old + 1, sizeof *bp->keep);
        bp->damaged = pl_calloc((size_t)bp->n_old + 1, sizeof *bp->damaged);
        found_rows = pl_malloc(((size_t)p->n + 1) * sizeof *found_rows);
        if ((!bp->keep || !bp->damaged || !found_rows) && st == PL_OK) st = PL_ERR_NOMEM;
        for (int k = 0; k < bp->n_old && st == PL_OK; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/shards/%s", dir, bp->old[k]);
            PlCacheShard s;
            if (pl_cache_shard_open(&s, path) != PL_OK) {   // lost or damaged: its items are prepared again
                pl_log_warn("cache shard %s: %s; its items are prepared again", path, pl_error_message());
                continue;
            }
            int64_t used = 0, used_failed = 0;   // its rows are found_rows[0, used); how many of them failed
            for (int64_t j = 0; j < s.n_items && s.C == p->fo.channels && s.S == p->fo.size && st == PL_OK; j++) {
                int64_t row = row_of_item(&ix, &s, j);
                if (row >= 0 && bp->group[row] == -2) {
                    bp->group[row] = -1;
                    found_rows[used++] = row;
                    used_failed += s.items[j].failed != 0;
                }
            }
            // a shard mostly of items the manifest no longer has (or has changed) is not kept: its live items are
            // prepared again into new shards, so stale samples never take more than half of a kept shard
            const char *why = used > 0 && 2 * used < s.n_items ? "most of its items are no longer used" : NULL;
            int damaged = 0;
            if (!why && used > 0 && check && shard_check_frames(&s) != PL_OK) {
                why = pl_error_message();
                damaged = 1;
            }
            if (why) {
                pl_log_warn("cache shard %s: %s; its %lld item(s) still in use are prepared again", path, why,
                            (long long)used);
                for (int64_t j = 0; j < used; j++) bp->group[found_rows[j]] = -2;
                used = 0;
            }
            pl_cache_shard_close(&s);
            bp->reused_failed += used ? used_failed : 0;
            // a damaged shard is removed before the new shards are written: its replacement holds the same items
            // under the same name, and a killed build would otherwise take the damaged file for a finished shard
            if (damaged && !(bp->damaged[bp->n_damaged++] = pl_strdup(path))) st = PL_ERR_NOMEM;
            if (used && !(bp->keep[bp->n_keep++] = pl_strdup(bp->old[k]))) st = PL_ERR_NOMEM;
        }
    }
    free(found_rows);
    row_keys_free(p, &ix, keys);
    // the rows to prepare, in manifest order, PL_TRAIN_CACHE_SHARD_ITEMS a shard
    int64_t todo = 0;
    for (int64_t i = 0; i < p->n && st == PL_OK; i++) {
        if (bp->group[i] == -1) {
            b->reused++;
            continue;
        }
        bp->group[i] = todo++ / PL_TRAIN_CACHE_SHARD_ITEMS;
    }
    bp->n_groups = (int)((todo + PL_TRAIN_CACHE_SHARD_ITEMS - 1) / PL_TRAIN_CACHE_SHARD_ITEMS);
    index_free(&old);
    return st;
}

// ---- writing the new shards ----

// One new shard: its items prepared a pool's width at a time and appended in order.
static PlStatus shard_write(FtPlan *p, PlThreadPool *pool, const char *path, const int64_t *rows, int n,
                            char (*digests)[PL_DIGEST_LEN], FtItemSamples *out, int64_t *computed, int64_t *failed) {
    PlCacheShardWriter *w = NULL;
    PL_TRY(pl_cache_shard_create(&w, path, p->fo.channels, p->fo.size, PL_TRAIN_CACHE_ZSTD_LEVEL));
    const int width = pl_threadpool_size(pool);
    PlStatus st = PL_OK;
    for (int i0 = 0; i0 < n && st == PL_OK; i0 += width) {
        int m = n - i0 < width ? n - i0 : width;
        st = ft_plan_prep(p, pool, rows + i0, m, out);
        for (int j = 0; j < m && st == PL_OK; j++) {
            const int64_t row = rows[i0 + j];
            const char *id = p->m.items[p->items[row]].id;
            if (out[j].msg) {
                st = pl_cache_shard_add_failure(w, id, digests[row], out[j].stage, out[j].msg);
                (*failed)++;
            } else {
                st = pl_cache_shard_add_item(w, id, digests[row], out[j].n, out[j].x);
            }
            (*computed)++;
        }
        ft_item_samples_free(out, m);
    }
    if (st == PL_OK) return pl_cache_shard_commit(w);
    pl_cache_shard_abort(w);
    return st;
}

// Rank 0, after the index: remove the shards of DIR/shards that it does not list (replaced, or left by a killed
// build of other items), and temporary files of dead builds. Returns how many were removed.
static int64_t remove_unlisted(const char *dir, char **names, int n) {
    char sdir[4096];
    snprintf(sdir, sizeof sdir, "%s/shards", dir);
    DIR *d = opendir(sdir);
    if (!d) return 0;
    PlIdIndex ix = {0};
    for (int i = 0; i < n; i++)
        if (pl_idindex_add(&ix, names[i], i, NULL) != PL_OK) {   // out of memory: keep everything
            pl_idindex_free(&ix);
            closedir(d);
            return 0;
        }
    int64_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "s-", 2) != 0 || pl_idindex_find(&ix, e->d_name) >= 0) continue;
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s/%s", sdir, e->d_name);
        if (unlink(path) == 0) removed++;
        else pl_log_warn("cannot remove the unlisted cache shard %s: %s", path, strerror(errno));
    }
    closedir(d);
    pl_idindex_free(&ix);
    if (removed) (void)pl_fsync_parent_dir(sdir);
    return removed;
}

PlStatus pl_train_cache_build(FtPlan *p, const PlTrainCacheOptions *o, PlThreadPool *pool, int rank, int ranks,
                              char (*digests)[PL_DIGEST_LEN], PlTrainCacheBuild *b) {
    memset(b, 0, sizeof *b);
    b->lock.fd = -1;
    const double t0 = pl_clock_now();
    const int mpi = pl_mpi_active() && ranks > 1;
    b->items = p->n;
    char key[65], settings[1024], path[4096];
    PlLock lock = {.fd = -1};
    BuildPlan bp = {0};
    PlStatus st = pl_train_cache_settings(p, key, settings, sizeof settings);
    if (st == PL_OK && rank == 0) {
        snprintf(path, sizeof path, "%s/shards", o->dir);
        st = pl_mkdir_p(path);
        if (st == PL_OK) {
            snprintf(path, sizeof path, "%s/lock", o->dir);
            st = pl_lock_acquire_shared(&lock, path);
        }
    }
    if (mpi) st = pl_mpi_agree(st, "opening the training cache");
    if (st == PL_OK) st = pl_item_digests(&p->m, p->items, (size_t)p->n, o->verify, rank, ranks, digests, NULL, NULL);
    if (mpi) st = pl_mpi_agree(st, "digesting the training items");
    int writes = 0;
    if (st == PL_OK && rank == 0) st = plan_build(p, o->dir, key, settings, digests, o->check, &bp, b);
    if (st == PL_OK && rank == 0 && (writes = plan_writes(&bp)) &&
        pl_lock_set_exclusive(&lock, 1, "protloc cache build") != PL_OK)   // readers (training runs) or a builder
        st = pl_error_wrap("training cache %s needs an update (%lld item(s) to prepare, %d shard(s) to drop), but it "
                           "is in use: update it when no run uses it (protloc cache build)", o->dir,
                           (long long)(p->n - b->reused), bp.n_old - bp.n_keep);
    for (int i = 0; st == PL_OK && rank == 0 && i < bp.n_damaged; i++)
        if (unlink(bp.damaged[i]) != 0 && errno != ENOENT)
            st = PL_FAIL(PL_ERR_IO, "cannot remove the damaged cache shard %s: %s", bp.damaged[i], strerror(errno));
    if (mpi) st = pl_mpi_agree(st, "planning the training cache");
    if (st == PL_OK && rank != 0 && !(bp.group = pl_malloc(((size_t)p->n + 1) * sizeof *bp.group))) st = PL_ERR_NOMEM;
    if (mpi) st = pl_mpi_agree(st, "planning the training cache");
    if (st == PL_OK && mpi) {   // every rank learns the groups
        st = PL_MPI_CHECK(MPI_Bcast(bp.group, (int)p->n, MPI_INT64_T, 0, MPI_COMM_WORLD));
        if (st == PL_OK) st = PL_MPI_CHECK(MPI_Bcast(&bp.n_groups, 1, MPI_INT, 0, MPI_COMM_WORLD));
        if (st == PL_OK) st = PL_MPI_CHECK(MPI_Bcast(&writes, 1, MPI_INT, 0, MPI_COMM_WORLD));
        if (st != PL_OK) pl_mpi_mark_desynced("broadcasting the cache plan failed");
    }
    char (*names)[32] = NULL;
    int64_t *rows = NULL, todo = 0;   // the rows to prepare, in order: group g is rows[g * G, (g + 1) * G)
    FtItemSamples *out = NULL;
    if (st == PL_OK) {
        names = pl_calloc((size_t)bp.n_groups + 1, sizeof *names);
        rows = pl_malloc(((size_t)p->n + 1) * sizeof *rows);
        out = pl_calloc((size_t)pl_threadpool_size(pool), sizeof *out);
        if (!names || !rows || !out) st = PL_ERR_NOMEM;
    }
    for (int64_t i = 0; st == PL_OK && i < p->n; i++)
        if (bp.group[i] >= 0) rows[todo++] = i;
    int64_t computed = 0, failed = 0;
    for (int g = 0; g < bp.n_groups && st == PL_OK; g++) {
        const int64_t g0 = (int64_t)g * PL_TRAIN_CACHE_SHARD_ITEMS;
        const int n = (int)(todo - g0 < PL_TRAIN_CACHE_SHARD_ITEMS ? todo - g0 : PL_TRAIN_CACHE_SHARD_ITEMS);
        shard_name(key, p, digests, rows + g0, n, names[g]);
        if (g % ranks != rank) continue;
        snprintf(path, sizeof path, "%s/shards/%s", o->dir, names[g]);
        if (shard_is_done(path, p, digests, rows + g0, n)) continue;   // written by a build killed later
        st = shard_write(p, pool, path, rows + g0, n, digests, out, &computed, &failed);
        if (st == PL_OK) b->shards_written++;
    }
    if (mpi) st = pl_mpi_agree(st, "writing the training cache shards");
    if (st == PL_OK && mpi) {
        int64_t mine[3] = {computed, failed, b->shards_written}, all[3];
        st = PL_MPI_CHECK(MPI_Allreduce(mine, all, 3, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
        computed = all[0];
        failed = all[1];
        b->shards_written = all[2];
    }
    b->computed = computed;
    if (st == PL_OK && rank == 0 && !writes) {   // up to date: nothing is written, the index stays as it is
        b->shards = bp.n_keep;
        b->failed = bp.reused_failed;
    } else if (st == PL_OK && rank == 0) {   // the index: the shards kept, then the new ones; then the unlisted removed
        int n = bp.n_keep + bp.n_groups;
        char **list = pl_calloc((size_t)n + 1, sizeof *list);
        if (!list) st = PL_ERR_NOMEM;
        for (int i = 0; st == PL_OK && i < bp.n_keep; i++) list[i] = bp.keep[i];
        for (int g = 0; st == PL_OK && g < bp.n_groups; g++) list[bp.n_keep + g] = names[g];
        b->shards = n;
        b->failed = failed + bp.reused_failed;   // every failed item the index lists: new and reused
        if (st == PL_OK) st = index_write(o->dir, key, settings, p->fo.channels, p->fo.size, list, n, b);
        if (st == PL_OK) b->shards_removed = remove_unlisted(o->dir, list, n);
        free(list);
    }
    if (mpi) st = pl_mpi_agree(st, "writing the training cache index");
    b->seconds = pl_clock_now() - t0;
    if (st == PL_OK && rank == 0 && !o->quiet)
        pl_log_info("training cache %s: %lld items (%lld reused, %lld prepared now, %lld of them failed), %lld shards "
                    "(%lld written, %lld removed), %.1f s", o->dir, (long long)b->items, (long long)b->reused,
                    (long long)b->computed, (long long)failed, (long long)b->shards, (long long)b->shards_written,
                    (long long)b->shards_removed, b->seconds);
    free(names);
    free(rows);
    free(out);
    plan_free(&bp);
    if (st == PL_OK && o->hold && lock.fd >= 0 && (!writes || (st = pl_lock_set_exclusive(&lock, 0, NULL)) == PL_OK)) {
        b->lock = lock;   // the caller reads the cache under the shared lock
        return st;
    }
    pl_lock_release(&lock);
    return st;
}

// ---- reading ----

struct PlTrainCacheLane {
    PlCacheDecoder *dec;
    int shard[LANE_FDS];   // -1: free
    int fd[LANE_FDS];
    uint64_t used[LANE_FDS], tick;
};

// The lane's descriptor of shard k (opened on first use; the least recently used one closed to make room).
static PlStatus lane_fd(PlTrainCache *c, PlTrainCacheLane *L, int k, int *fd) {
    int victim = 0;
    for (int i = 0; i < LANE_FDS; i++) {
        if (L->shard[i] == k) {
            L->used[i] = ++L->tick;
            *fd = L->fd[i];
            return PL_OK;
        }
        if (L->used[i] < L->used[victim]) victim = i;
    }
    int nfd = -1;
    PL_TRY(pl_open_regular(c->shards[k].path, &nfd));
    if (L->shard[victim] >= 0) close(L->fd[victim]);
    L->shard[victim] = k;
    L->fd[victim] = nfd;
    L->used[victim] = ++L->tick;
    *fd = nfd;
    return PL_OK;
}

PlStatus pl_train_cache_read(void *cache, int64_t row, int lane, float *dst) {
    PlTrainCache *c = cache;
    if (row < 0 || row >= c->n || lane < 0 || lane >= c->lanes)
        return PL_FAIL(PL_ERR_INTERNAL, "cache read of row %lld by lane %d (rows %lld, lanes %d)", (long long)row, lane,
                       (long long)c->n, c->lanes);
    PlTrainCacheLane *L = &c->lane[lane];
    int lo = 0, hi = c->n_shards - 1;   // the shard holding global sample c->sample[row]: the last first <= it
    const int64_t g = c->sample[row];
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (c->shard_first[mid] <= g) lo = mid;
        else hi = mid - 1;
    }
    const int k = lo;
    int fd = -1;
    PL_TRY(lane_fd(c, L, k, &fd));
    PlStatus st = pl_cache_shard_read_fd(&c->shards[k], fd, g - c->shard_first[k], L->dec, dst);
    if (st != PL_OK)
        return pl_error_wrap("training cache %s (`protloc cache build ... --check` finds the damaged shards and "
                             "prepares their items again)", c->dir);
    return PL_OK;
}

void pl_train_cache_close(PlTrainCache *c) {
    for (int i = 0; c->lane && i < c->lanes; i++) {
        for (int j = 0; j < LANE_FDS; j++)
            if (c->lane[i].shard[j] >= 0) close(c->lane[i].fd[j]);
        pl_cache_decoder_free(c->lane[i].dec);
    }
    free(c->lane);
    for (int i = 0; c->shards && i < c->n_shards; i++) pl_cache_shard_close(&c->shards[i]);
    free(c->shards);
    free(c->sample);
    free(c->shard_first);
    free(c->settings_key);
    free(c->dir);
    if (c->lock.path) pl_lock_release(&c->lock);
    memset(c, 0, sizeof *c);
}

// Open the listed shards' tables (their descriptors closed: lanes open their own).
static PlStatus open_shards(PlTrainCache *c, const CacheIndex *x) {
    c->shards = pl_calloc((size_t)x->n_shards + 1, sizeof *c->shards);
    if (!c->shards) return PL_ERR_NOMEM;
    for (int k = 0; k < x->n_shards; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/shards/%s", c->dir, x->shards[k]);
        PL_TRY(pl_cache_shard_open(&c->shards[k], path));
        c->n_shards++;
        if (c->shards[k].C != c->C || c->shards[k].S != c->S)
            return PL_FAIL(PL_ERR_FORMAT, "%s holds (%d, %d, %d) samples, the cache (%d, %d, %d)", path,
                           c->shards[k].C, c->shards[k].S, c->shards[k].S, c->C, c->S, c->S);
        close(c->shards[k].fd);
        c->shards[k].fd = -1;
    }
    return PL_OK;
}

// Each plan row's (shard, item) by its id and digest; *where (p->n) gets shard << 32 | item, or -1 when missing.
static PlStatus find_items(const PlTrainCache *c, const FtPlan *p, char (*digests)[PL_DIGEST_LEN], int64_t *where) {
    for (int64_t i = 0; i < p->n; i++) where[i] = -1;
    PlIdIndex ix = {0};
    char **keys = NULL;
    PlStatus st = row_keys_index(p, digests, &ix, &keys);
    for (int k = 0; k < c->n_shards && st == PL_OK; k++)
        for (int64_t j = 0; j < c->shards[k].n_items; j++) {
            int64_t row = row_of_item(&ix, &c->shards[k], j);
            if (row >= 0 && where[row] < 0) where[row] = (int64_t)k << 32 | j;
        }
    row_keys_free(p, &ix, keys);
    return st;
}

PlStatus pl_train_cache_open(PlTrainCache *c, FtPlan *p, const char *dir, char (*digests)[PL_DIGEST_LEN], int lanes,
                             const char *failures, FtDataset *ds) {
    memset(c, 0, sizeof *c);
    memset(ds, 0, sizeof *ds);
    char key[65], settings[1024];
    PL_TRY(pl_train_cache_settings(p, key, settings, sizeof settings));
    CacheIndex x;
    int found = 0;
    PL_TRY(index_read(dir, &x, &found));
    if (!found) return PL_FAIL(PL_ERR_IO, "%s/%s does not exist (build the cache first: protloc cache build)", dir,
                               PL_TRAIN_CACHE_INDEX);
    PlStatus st = PL_OK;
    if (strcmp(x.key, key) != 0)
        st = PL_FAIL(PL_ERR_ARG, "training cache %s was built with other settings (%s) than this run's (%s); build it "
                                 "again (protloc cache build) or give another --cache", dir, x.settings, settings);
    c->dir = pl_strdup(dir);
    c->settings_key = pl_strdup(key);
    c->C = p->fo.channels;
    c->S = p->fo.size;
    if (st == PL_OK && (!c->dir || !c->settings_key)) st = PL_ERR_NOMEM;
    if (st == PL_OK) st = open_shards(c, &x);
    index_free(&x);
    int64_t *where = pl_malloc(((size_t)p->n + 1) * sizeof *where);
    int *counts = pl_malloc(((size_t)p->n + 1) * sizeof *counts);
    FtItemSamples *fail = pl_calloc((size_t)p->n + 1, sizeof *fail);
    if (st == PL_OK && (!where || !counts || !fail)) st = PL_ERR_NOMEM;
    if (st == PL_OK) st = find_items(c, p, digests, where);
    int64_t n_failed = 0;
    for (int64_t i = 0; i < p->n && st == PL_OK; i++) {
        if (where[i] < 0) {
            st = PL_FAIL(PL_ERR_FORMAT, "training cache %s does not hold item %s (line %d) with its current input "
                                        "digest; build it again (protloc cache build)", dir,
                         p->m.items[p->items[i]].id, p->m.items[p->items[i]].line);
            break;
        }
        const PlCacheShardItem *it = &c->shards[where[i] >> 32].items[where[i] & 0xffffffff];
        counts[i] = it->failed ? -1 : it->n_samples;
        if (it->failed) {   // borrowed strings, for the failure list
            fail[i].stage = it->stage;
            fail[i].msg = (char *)it->message;
            n_failed++;
        }
    }
    if (st == PL_OK) st = ft_dataset_index(p, counts, ds);
    if (st == PL_OK) {
        c->n = ds->n;
        c->sample = pl_malloc(((size_t)ds->n + 1) * sizeof *c->sample);
        c->shard_first = pl_malloc(((size_t)c->n_shards + 1) * sizeof *c->shard_first);
        if (!c->sample || !c->shard_first) st = PL_ERR_NOMEM;
    }
    for (int k = 0; st == PL_OK && k <= c->n_shards; k++)
        c->shard_first[k] = k == 0 ? 0 : c->shard_first[k - 1] + c->shards[k - 1].n_samples;
    if (st == PL_OK && c->shard_first[c->n_shards] > (int64_t)UINT32_MAX)
        st = PL_FAIL(PL_ERR_LIMIT, "training cache %s holds %lld samples; at most %u are supported", dir,
                     (long long)c->shard_first[c->n_shards], UINT32_MAX);
    uint64_t h = pl_rng_hash_bytes(key, 64, PL_RNG_FNV_OFFSET);
    for (int64_t i = 0, r = 0; st == PL_OK && i < p->n; i++) {
        if (counts[i] < 0) continue;
        const int k = (int)(where[i] >> 32);
        const PlCacheShardItem *it = &c->shards[k].items[where[i] & 0xffffffff];
        for (int t = 0; t < counts[i]; t++, r++) {
            c->sample[r] = (uint32_t)(c->shard_first[k] + it->first_sample + t);
        }
        h = pl_rng_hash_bytes(it->id, strlen(it->id) + 1, h);
        h = pl_rng_hash_bytes(it->digest, strlen(it->digest) + 1, h);
    }
    if (st == PL_OK && failures) st = ft_plan_write_failures(p, failures, fail, n_failed);
    free(where);
    free(counts);
    free(fail);   // its strings belong to the shard tables
    if (st == PL_OK) c->lanes = lanes;
    if (st == PL_OK && !(c->lane = pl_calloc((size_t)lanes, sizeof *c->lane))) st = PL_ERR_NOMEM;
    for (int i = 0; st == PL_OK && i < lanes; i++)
        for (int j = 0; j < LANE_FDS; j++) c->lane[i].shard[j] = -1;
    for (int i = 0; st == PL_OK && i < lanes; i++) st = pl_cache_decoder_create(&c->lane[i].dec, c->C, c->S);
    if (st != PL_OK) {
        pl_train_cache_close(c);
        ft_dataset_free(ds);
        return st;
    }
    c->source = (PlSampleSource){c, pl_train_cache_read, lanes, h};
    return PL_OK;
}
