// Fine-tuning data: a manifest through run's stages (ft_dataset_load), or arrays, as one FtData (pl_finetune_data.h).
#include "pl_finetune_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_card_prep.h"
#include "pl_failures.h"
#include "pl_features.h"
#include "pl_fs.h"
#include "pl_geometry.h"
#include "pl_log.h"
#include "pl_manifest.h"
#include "pl_npy.h"
#include "pl_prep.h"
#include "pl_mpi.h"
#include "pl_train_cache.h"

// One item through the card's preparation at the plan's level (pl_card_prep.h, as `protloc run`); each sample
// resized to size x size into o->x (malloc'd). *stage: the step that failed.
static PlStatus prep_item(FtPlan *p, int64_t row, int thread, FtItemSamples *o, const char **stage) {
    const PlManifestItem *it = &p->m.items[p->items[row]];
    PlChannelSource src[PL_CARD_MAX_SLOTS];
    char refs[PL_CARD_MAX_SLOTS][PL_CARD_REF_MAX];
    int n = 0;
    PL_TRY(pl_card_item_sources(&p->m, it, p->plane_role, p->n_planes, p->every_plane, src, refs, &n, stage));
    PlPrepResult *r = &p->res[thread];
    const PlStoreLevel level = p->fo.level;
    PL_TRY(pl_card_prep_item(&p->cfg[level], level, &p->m, it, pl_card_item_pixel_size(p->card, it, 0), src, n,
                             p->nucleus_role, &p->seg[thread], r, stage));
    *stage = pl_store_level_name(level);
    const int C = p->fo.channels, size = p->fo.size;
    if (r->n_views != 1 || r->n_slots != C)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "fine-tuning needs one view of %d slots per item (got %d views, %d slots; "
                                           "channel replication is not supported for fine-tuning)", C, r->n_views,
                       r->n_slots);
    if (r->n_tiles < 1) return PL_FAIL(PL_ERR_EMPTY, "the item gave no %s", level == PL_STORE_CELLS ? "cell" : "tile");
    const size_t plane = (size_t)size * size, in_plane = (size_t)r->tile_h * r->tile_w;
    o->x = pl_malloc((size_t)r->n_tiles * C * plane * sizeof(float));
    if (!o->x) return PL_ERR_NOMEM;
    *stage = "resize";
    for (int t = 0; t < r->n_tiles; t++)
        for (int c = 0; c < C; c++)
            PL_TRY(pl_resize_plane(&p->rw[thread], r->data + ((size_t)t * C + c) * in_plane, r->tile_h, r->tile_w,
                                   o->x + ((size_t)t * C + c) * plane, size, size));
    o->n = r->n_tiles;
    return PL_OK;
}

typedef struct PrepTask {
    FtPlan *p;
    const int64_t *rows;
    FtItemSamples *out;
} PrepTask;

// Pool task: an item that fails is recorded (its step and message) and skipped, as `run` records it; only failing
// to record it fails the load.
static PlStatus prep_row(void *vctx, int k, int thread) {
    PrepTask *t = vctx;
    FtItemSamples *o = &t->out[k];
    const char *stage = "input";
    if (prep_item(t->p, t->rows[k], thread, o, &stage) == PL_OK) return PL_OK;
    free(o->x);
    o->x = NULL;
    o->n = 0;
    o->stage = stage;
    o->msg = pl_strdup(pl_error_message());
    return o->msg ? PL_OK : pl_error_wrap("recording the failure of item %s", t->p->m.items[t->p->items[t->rows[k]]].id);
}

PlStatus ft_plan_prep(FtPlan *p, PlThreadPool *pool, const int64_t *rows, int count, FtItemSamples *out) {
    memset(out, 0, (size_t)count * sizeof *out);
    int threads = pl_threadpool_size(pool);
    if (threads > p->threads) {   // per-thread work, kept for the plan's later calls
        PlPrepResult *res = realloc(p->res, (size_t)threads * sizeof *res);
        if (res) p->res = res;
        PlResizeWork *rw = res ? realloc(p->rw, (size_t)threads * sizeof *rw) : NULL;
        if (rw) p->rw = rw;
        PlSegmenter **seg = rw ? realloc(p->seg, (size_t)threads * sizeof *seg) : NULL;
        if (!seg) return PL_FAIL(PL_ERR_NOMEM, "out of memory for %d preparation threads", threads);
        p->seg = seg;
        memset(p->res + p->threads, 0, (size_t)(threads - p->threads) * sizeof *p->res);
        memset(p->rw + p->threads, 0, (size_t)(threads - p->threads) * sizeof *p->rw);
        memset(p->seg + p->threads, 0, (size_t)(threads - p->threads) * sizeof *p->seg);
        p->threads = threads;
    }
    PrepTask t = {p, rows, out};
    return pl_threadpool_run_checked(pool, prep_row, &t, count);
}

void ft_item_samples_free(FtItemSamples *out, int count) {
    for (int i = 0; out && i < count; i++) {
        free(out[i].x);
        free(out[i].msg);
        out[i] = (FtItemSamples){0};
    }
}

void ft_plan_free(FtPlan *p) {
    for (int i = 0; i < p->threads; i++) {
        pl_prep_result_free(&p->res[i]);
        pl_resize_work_free(&p->rw[i]);
        pl_segmenter_destroy(p->seg[i]);
    }
    free(p->res);
    free(p->rw);
    free(p->seg);
    pl_label_coding_free(&p->lc);
    free(p->items);
    pl_manifest_free(&p->m);
    memset(p, 0, sizeof *p);
}

PlStatus ft_plan_load(const char *manifest, const PlModelCard *card, const FtDataOptions *fo, FtPlan *p) {
    memset(p, 0, sizeof *p);
    p->card = card;
    p->fo = *fo;
    const char *roles[PL_CARD_MAX_ROLES];   // the roles `run` accepts for this card
    int nr = pl_card_manifest_roles(card, roles);
    PlManifestOptions mo = {.roles = roles, .n_roles = nr, .max_errors = 20};
    PlStatus st = pl_manifest_load(manifest, &mo, &p->m);
    if (st != PL_OK) {
        if (p->m.n_errors) pl_error_wrap("%s (first problem: %s)", manifest, p->m.errors[0]);
        pl_manifest_free(&p->m);
        memset(p, 0, sizeof *p);
        return st;
    }
    const PlManifest *m = &p->m;
    // classes: the one label encoder over a feature-set view of the manifest (no embeddings)
    PlFeatureSet fs = {0};
    fs.n = (int64_t)m->count;
    fs.label = pl_calloc(m->count + 1, sizeof(char *));
    fs.split = pl_calloc(m->count + 1, sizeof(char *));
    fs.id = pl_calloc(m->count + 1, sizeof(char *));
    p->items = pl_malloc((m->count + 1) * sizeof(int64_t));
    PlPrepConfig base;
    PlAlignStrategy strategy = PL_ALIGN_MAP;
    char slots[PL_CARD_MAX_SLOTS * 40];
    if (!fs.label || !fs.split || !fs.id || !p->items) st = PL_ERR_NOMEM;
    for (size_t i = 0; i < m->count && st == PL_OK; i++) {
        fs.label[i] = m->items[i].label;
        fs.split[i] = m->items[i].split;
        fs.id[i] = m->items[i].id;
    }
    if (st == PL_OK) st = pl_features_encode_labels(&fs, PL_MULTILABEL_SKIP, 4096, &p->lc);
    for (size_t i = 0; i < m->count && st == PL_OK; i++) {
        const char *sp = m->items[i].split;
        if (fo->all_items || (p->lc.cls[i] >= 0 && (!strcmp(sp, "train") || !strcmp(sp, "val") || !strcmp(sp, "test"))))
            p->items[p->n++] = (int64_t)i;
    }
    free(fs.label);
    free(fs.split);
    free(fs.id);
    if (st == PL_OK && p->n == 0)
        st = fo->all_items ? PL_FAIL(PL_ERR_EMPTY, "%s lists no item", manifest)
                           : PL_FAIL(PL_ERR_EMPTY, "%s: no labelled item in the train, val or test split", manifest);
    if (st == PL_OK) st = pl_card_prep_config(card, fo->channels, NULL, NULL, 0, &base, &strategy, slots, sizeof slots);
    if (st == PL_OK) st = pl_card_check_fill(card, &base.align, NULL, m);   // once, not per item
    if (st == PL_OK) {   // the level's geometry and the item's sources, as `protloc run` has them
        PlCardLevels g;
        pl_card_levels_default(&g);
        g.patch = fo->patch;
        g.tile = fo->tile;
        g.crop = fo->crop;
        st = pl_card_prep_levels(&base, &g, p->cfg);
    }
    if (st == PL_OK) st = pl_card_plane_roles(card, fo->channels, strategy, card->fill, m, p->plane_role, &p->n_planes);
    p->every_plane = strategy == PL_ALIGN_REPLICATE;
    p->nucleus_role = pl_manifest_role_index(m, "nucleus");
    if (st != PL_OK) ft_plan_free(p);
    return st;
}


// FAILURES lists the items that failed (pl_failures.h, as `run`'s STORE.h5.failures.tsv; no previous store, so no
// regression), or is removed when none did, so that a clean re-run leaves no stale list.
PlStatus ft_plan_write_failures(const FtPlan *p, const char *path, const FtItemSamples *out, int64_t n_failed) {
    if (n_failed == 0) {
        int removed = 0;
        PL_TRY(pl_failures_remove(path, &removed));
        if (removed) pl_log_info("removed %s of an earlier run: every item preprocessed", path);
        return PL_OK;
    }
    pl_log_warn("%lld item(s) failed to preprocess and are skipped; listed in %s", (long long)n_failed, path);
    PlFailureList fl;
    PL_TRY(pl_failures_open(&fl, path));
    PlStatus st = PL_OK;
    for (int64_t i = 0; i < p->n && st == PL_OK; i++)
        if (out[i].msg) {
            const PlManifestItem *it = &p->m.items[p->items[i]];
            st = pl_failures_add(&fl, it->id, it->line, out[i].stage, 0, out[i].msg);
        }
    if (st != PL_OK) {
        pl_failures_abort(&fl);
        return st;
    }
    return pl_failures_commit(&fl);
}

void ft_dataset_free(FtDataset *ds) {
    free(ds->x);
    free(ds->cls);
    if (ds->classes)
        for (int i = 0; i < ds->n_classes; i++) free(ds->classes[i]);
    free(ds->classes);
    free(ds->train);
    memset(ds, 0, sizeof *ds);
}

// The split list of plan row i: 0 train, 1 val, 2 test (labelled items only), 3 none.
static int ft_split_of(const FtPlan *p, int64_t i) {
    const int64_t item = p->items[i];
    const char *split = p->m.items[item].split;
    if (p->lc.cls[item] < 0) return 3;
    return !strcmp(split, "train") ? 0 : !strcmp(split, "val") ? 1 : !strcmp(split, "test") ? 2 : 3;
}

PlStatus ft_dataset_index(FtPlan *p, const int *n_samples, FtDataset *ds) {
    memset(ds, 0, sizeof *ds);
    ds->C = p->fo.channels;
    ds->size = p->fo.size;
    // samples of train, val, test and of none (unlabelled or another split: pretraining's all_items): the three
    // lists are sized to their counts
    int64_t total = 0, in_split[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < p->n; i++) {
        if (n_samples[i] <= 0) continue;
        in_split[ft_split_of(p, i)] += n_samples[i];
        total += n_samples[i];
    }
    ds->cls = pl_malloc(((size_t)total + 1) * sizeof(int32_t));
    ds->train = pl_malloc(((size_t)total + 3) * sizeof(int64_t));
    if (!ds->cls || !ds->train) {
        ft_dataset_free(ds);
        return PL_FAIL(PL_ERR_NOMEM, "cannot index %lld training samples", (long long)total);
    }
    ds->val = ds->train + in_split[0] + 1;
    ds->test = ds->val + in_split[1] + 1;
    int64_t k = 0;
    for (int64_t i = 0; i < p->n; i++) {
        if (n_samples[i] < 0) {
            ds->n_failed++;
            continue;
        }
        const int split = ft_split_of(p, i);
        for (int t = 0; t < n_samples[i]; t++, k++) {
            ds->cls[k] = p->lc.cls[p->items[i]];
            if (split == 0) ds->train[ds->n_train++] = k;
            else if (split == 1) ds->val[ds->n_val++] = k;
            else if (split == 2) ds->test[ds->n_test++] = k;
        }
    }
    ds->n = k;
    ds->n_classes = p->lc.n_classes;
    ds->classes = p->lc.classes;   // moved: the plan's coding no longer owns them
    p->lc.classes = NULL;
    p->lc.n_classes = 0;
    ds->n_multilabel = p->lc.n_multilabel_skipped;
    ds->n_unlabelled = p->lc.n_unlabelled;
    return PL_OK;
}

PlStatus ft_dataset_load(const char *manifest, const PlModelCard *card, const FtDataOptions *fo, const char *failures,
                         PlThreadPool *pool, FtDataset *ds) {
    memset(ds, 0, sizeof *ds);
    FtPlan p;
    PL_TRY(ft_plan_load(manifest, card, fo, &p));
    PlStatus st = PL_OK;
    FtItemSamples *out = pl_calloc((size_t)p.n, sizeof *out);
    int *counts = pl_malloc((size_t)p.n * sizeof(int));
    int64_t *rows = pl_malloc((size_t)p.n * sizeof(int64_t));
    if (!out || !counts || !rows) st = PL_ERR_NOMEM;
    for (int64_t i = 0; st == PL_OK && i < p.n; i++) rows[i] = i;
    if (st == PL_OK) st = ft_plan_prep(&p, pool, rows, (int)p.n, out);
    for (int64_t i = 0; st == PL_OK && i < p.n; i++) counts[i] = out[i].msg ? -1 : out[i].n;
    if (st == PL_OK) st = ft_dataset_index(&p, counts, ds);
    // the samples of the items that prepared, in manifest order
    const size_t img = (size_t)ds->C * ds->size * ds->size;
    if (st == PL_OK) {
        ds->x = pl_malloc(((size_t)ds->n + 1) * img * sizeof(float));
        if (!ds->x)
            st = PL_FAIL(PL_ERR_NOMEM, "cannot hold %lld training images of %dx%dx%d", (long long)ds->n, ds->C,
                         ds->size, ds->size);
    }
    for (int64_t i = 0, k = 0; st == PL_OK && i < p.n; i++)
        if (!out[i].msg) {   // each item's buffer goes as soon as it is copied: the peak stays near one copy
            memcpy(ds->x + (size_t)k * img, out[i].x, (size_t)out[i].n * img * sizeof(float));
            k += out[i].n;
            free(out[i].x);
            out[i].x = NULL;
        }
    if (st == PL_OK && failures) st = ft_plan_write_failures(&p, failures, out, ds->n_failed);
    if (st == PL_OK && (fo->all_items ? ds->n == 0 : ds->n_train == 0))
        st = PL_FAIL(PL_ERR_EMPTY, "%s: no usable item%s", manifest,
                      fo->all_items ? "" : " in the train split");
    if (out) ft_item_samples_free(out, (int)p.n);
    free(out);
    free(counts);
    free(rows);
    ft_plan_free(&p);
    if (st != PL_OK) ft_dataset_free(ds);
    return st;
}

// ---- the training data of a command: arrays or a manifest ----

// Labels: (N) integer class ids or (N, K) float multi-hot targets. Fills y or targets (malloc'd) and *classes.
static PlStatus ft_labels_load(const char *path, int64_t n, int *classes, int32_t **y, float **targets) {
    PlNpyArray a = {0};
    PL_TRY(pl_npy_read(path, &a));
    PlStatus st = PL_OK;
    int is_int = strcmp(a.descr, "<i8") == 0 || strcmp(a.descr, "<i4") == 0;
    int is_float = strcmp(a.descr, "<f4") == 0 || strcmp(a.descr, "<f8") == 0;
    if (a.ndim < 1 || a.shape[0] != n) {
        st = PL_FAIL(PL_ERR_ARG, "%s has %lld labels but the input has %lld images", path,
                     a.ndim ? (long long)a.shape[0] : 0LL, (long long)n);
    } else if (a.ndim == 1 && is_int) {
        *y = pl_malloc((size_t)n * sizeof(int32_t));
        if (!*y) st = PL_ERR_NOMEM;
        int64_t mx = -1;
        for (int64_t i = 0; i < n && st == PL_OK; i++) {
            int64_t v = a.descr[2] == '8' ? ((const int64_t *)a.data)[i] : ((const int32_t *)a.data)[i];
            if (v < 0 || v > 1000000 || (*classes > 0 && v >= *classes))
                st = PL_FAIL(PL_ERR_ARG, "%s: label %lld of row %lld is out of range 0..%d", path, (long long)v,
                             (long long)i, *classes > 0 ? *classes - 1 : 1000000);
            else
                (*y)[i] = (int32_t)v;
            if (v > mx) mx = v;
        }
        if (st == PL_OK && *classes <= 0) *classes = (int)mx + 1;
    } else if (a.ndim == 2 && is_float) {
        int k = (int)a.shape[1];
        if (*classes > 0 && k != *classes)
            st = PL_FAIL(PL_ERR_ARG, "%s has %d label columns but the head has %d classes", path, k, *classes);
        *classes = k;
        *targets = pl_malloc((size_t)n * k * sizeof(float));
        if (!*targets && st == PL_OK) st = PL_ERR_NOMEM;
        for (int64_t i = 0; i < n * k && st == PL_OK; i++) {
            double v = a.descr[2] == '4' ? ((const float *)a.data)[i] : ((const double *)a.data)[i];
            if (!(v >= 0.0 && v <= 1.0))
                st = PL_FAIL(PL_ERR_ARG, "%s: target (%lld, %lld) = %g is not in [0, 1]", path, (long long)(i / k),
                             (long long)(i % k), v);
            else
                (*targets)[i] = (float)v;
        }
    } else {
        st = PL_FAIL(PL_ERR_ARG, "%s must hold int64/int32 class ids of shape (N) or float multi-hot targets of "
                                 "shape (N, K); it holds %s with %d dimensions", path, a.descr, a.ndim);
    }
    pl_npy_free(&a);
    return st;
}

void ft_data_free(FtData *d) {
    pl_npy_free(&d->npy);
    free(d->y_own);
    free(d->t_own);
    free(d->all_rows);
    if (d->is_manifest) ft_dataset_free(&d->ds);
    if (d->cache) pl_train_cache_close(d->cache);
    free(d->cache);
}

PlStatus ft_data_load_arrays(const char *input, const char *labels, const PlVitConfig *cfg, int *classes, FtData *d) {
    PL_TRY(pl_npy_read_f32(input, 4, &d->npy));
    const PlNpyArray *x = &d->npy;
    int64_t n = x->shape[0];
    if (n < 1 || x->shape[1] != cfg->in_chans || x->shape[2] < cfg->patch || x->shape[3] < cfg->patch)
        return PL_FAIL(PL_ERR_ARG, "%s has shape (%lld, %lld, %lld, %lld); the model needs (N >= 1, %d, >= %d, >= %d)",
                       input, (long long)x->shape[0], (long long)x->shape[1], (long long)x->shape[2],
                       (long long)x->shape[3], cfg->in_chans, cfg->patch, cfg->patch);
    const float *xd = x->data;
    size_t count = pl_npy_count(x), chw = count / (size_t)n;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(xd[i]))
            return PL_FAIL(PL_ERR_NUMERIC, "%s: image %zu holds %s (element %zu)", input, i / chw,
                           isnan(xd[i]) ? "NaN" : "Inf", i % chw);
    if (labels) PL_TRY(ft_labels_load(labels, n, classes, &d->y_own, &d->t_own));   // NULL: pretraining, none
    d->all_rows = pl_malloc((size_t)n * sizeof(int64_t));
    if (!d->all_rows) return PL_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) d->all_rows[i] = i;
    d->source = input;
    d->n = n;
    d->C = (int)x->shape[1];
    d->H = (int)x->shape[2];
    d->W = (int)x->shape[3];
    d->x = xd;
    d->cls = d->y_own;
    d->targets = d->t_own;
    d->classes = *classes;
    d->train = d->all_rows;
    d->ntr = n;
    return PL_OK;
}

void ft_data_options(const PlVitConfig *cfg, const FtDataOptions *level, FtDataOptions *fo) {
    *fo = *level;
    fo->channels = cfg->in_chans;
    fo->patch = cfg->patch;
    fo->size = level->size > 0 ? level->size : cfg->pos_grid * cfg->patch;
}

// The dataset from the training cache: plan, build or update (every rank), open.
static PlStatus load_cached(const char *manifest, const PlModelCard *card, const FtDataOptions *fo,
                            const FtCacheUse *cu, const char *failures, PlThreadPool *pool, int rank, int ranks,
                            FtData *d) {
    FtPlan p;
    PlStatus st = ft_plan_load(manifest, card, fo, &p);
    if (pl_mpi_active() && ranks > 1) st = pl_mpi_agree(st, "reading the manifest");
    if (st != PL_OK) return st;
    char (*digests)[PL_DIGEST_LEN] = pl_calloc((size_t)p.n + 1, sizeof *digests);
    d->cache = pl_calloc(1, sizeof *d->cache);
    if (!digests || !d->cache) st = PL_ERR_NOMEM;
    if (pl_mpi_active() && ranks > 1) st = pl_mpi_agree(st, "reading the manifest");
    PlTrainCacheBuild b;
    PlTrainCacheOptions co = {.dir = cu->dir, .verify = cu->verify, .hold = 1};   // builds stay out while we read
    b.lock = (PlLock){.fd = -1};
    if (st == PL_OK) st = pl_train_cache_build(&p, &co, pool, rank, ranks, digests, &b);
    if (st == PL_OK) st = pl_train_cache_open(d->cache, &p, cu->dir, digests, cu->lanes, failures, &d->ds);
    if (st == PL_OK) d->cache->lock = b.lock;
    else pl_lock_release(&b.lock);
    if (pl_mpi_active() && ranks > 1) st = pl_mpi_agree(st, "opening the training cache");
    if (st == PL_OK && (fo->all_items ? d->ds.n == 0 : d->ds.n_train == 0))
        st = PL_FAIL(PL_ERR_EMPTY, "%s: no usable item%s", manifest,
                      fo->all_items ? "" : " in the train split");
    if (st == PL_OK) d->samples = &d->cache->source;
    free(digests);
    ft_plan_free(&p);
    return st;
}

PlStatus ft_data_load_manifest(const char *manifest, const PlModelCard *card, const PlVitConfig *cfg,
                               const FtDataOptions *level, const FtCacheUse *cache, const char *out_dir,
                               PlThreadPool *pool, int rank, int ranks, int *classes, FtData *d) {
    if (card->n_slots != cfg->in_chans)
        return PL_FAIL(PL_ERR_ARG, "model card %s names %d input slots, the weights take %d channels", card->path,
                       card->n_slots, cfg->in_chans);
    char failures[4096];
    snprintf(failures, sizeof failures, "%s/failures.tsv", out_dir);
    FtDataOptions fo;
    ft_data_options(cfg, level, &fo);
    const int size = fo.size;
    d->is_manifest = 1;
    if (cache && cache->dir) PL_TRY(load_cached(manifest, card, &fo, cache, rank == 0 ? failures : NULL, pool, rank,
                                                ranks, d));
    else PL_TRY(ft_dataset_load(manifest, card, &fo, rank == 0 ? failures : NULL, pool, &d->ds));
    FtDataset *ds = &d->ds;
    if (*classes > 0 && *classes != ds->n_classes)
        return PL_FAIL(PL_ERR_ARG, "the head has %d classes but %s has %d (%s ... %s)", *classes, manifest,
                       ds->n_classes, ds->classes[0], ds->classes[ds->n_classes - 1]);
    *classes = ds->n_classes;
    d->source = manifest;
    d->n = ds->n;
    d->C = ds->C;
    d->H = d->W = ds->size;
    d->x = ds->x;
    d->cls = ds->cls;
    d->classes = ds->n_classes;
    d->class_names = ds->classes;
    d->train = ds->train;
    d->val = ds->val;
    d->test = ds->test;
    d->ntr = ds->n_train;
    d->nva = ds->n_val;
    d->nte = ds->n_test;
    d->n_failed = ds->n_failed;
    if (rank == 0)
        pl_log_info("%s: %lld training, %lld validation, %lld test %s, %d classes, %dx%d canvases (items: %lld failed, "
                    "%lld multi-label and %lld unlabelled skipped)", manifest, (long long)d->ntr, (long long)d->nva,
                    (long long)d->nte, fo.level == PL_STORE_CELLS ? "cells" : fo.level == PL_STORE_TILES ? "tiles" : "FOVs",
                    d->classes, size, size, (long long)ds->n_failed, (long long)ds->n_multilabel,
                    (long long)ds->n_unlabelled);
    return PL_OK;
}


PlStatus ft_backbone_load(const char *model, const char *card_path, int *heads, const char **key, PlWeights *w,
                          PlModelCard *card, int *have_card, PlVitConfig *cfg, const char **weights) {
    *weights = model;
    size_t ml = strlen(model);
    int model_is_card = ml > 5 && strcmp(model + ml - 5, ".json") == 0;
    if (model_is_card && card_path) return PL_FAIL(PL_ERR_ARG, "--card goes with --model CHECKPOINT, not with a card");
    if (model_is_card || card_path) {   // the card says how to feed the model; --card keeps --model's weights
        PL_TRY(pl_modelcard_load(model_is_card ? model : card_path, card));
        *have_card = 1;
        if (model_is_card) {
            char hex[65];
            PL_TRY(pl_modelcard_verify_weights(card, hex));
            *weights = card->weights;
        }
        if (*heads == 0) *heads = card->heads;
        if (!*key) *key = card->checkpoint_key;
    }
    PlWeightsOptions wopt = {.checkpoint_key = *key};
    PL_TRY(pl_weights_load(*weights, &wopt, w));
    if (pl_vit_config_infer(w, *heads, cfg) != PL_OK) return pl_error_wrap("%s", *weights);
    return PL_OK;
}
