// Fine-tuning data from a manifest and a model card (see pl_finetune_data.h).
#include "pl_finetune_data.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_card_prep.h"
#include "pl_features.h"
#include "pl_fs.h"
#include "pl_geometry.h"
#include "pl_log.h"
#include "pl_manifest.h"
#include "pl_prep.h"

#define FT_REF_MAX (PATH_MAX + 16)

typedef struct PrepCtx {
    const PlManifest *m;
    const PlModelCard *card;
    const PlPrepConfig *cfg;
    const int64_t *items;    // manifest item of each row
    int C, size;
    float *x;
    PlPrepResult *res;       // per thread
    PlResizeWork *rw;        // per thread
    char **msg;              // per row: NULL = ok, else "stage\tmessage"
} PrepCtx;

static void prep_row(void *vctx, int row, int thread) {
    PrepCtx *p = vctx;
    const PlManifestItem *it = &p->m->items[p->items[row]];
    PlChannelSource src[PL_CARD_MAX_SLOTS];
    char refs[PL_CARD_MAX_SLOTS][FT_REF_MAX], msg[1200];
    int n = 0;
    const char *stage = "input";
    PlStatus st = PL_OK;
    for (int k = 0; k < p->C && st == PL_OK; k++) {
        int r = p->card->slots[k][0] ? pl_manifest_role_index(p->m, p->card->slots[k]) : -1;
        if (r < 0 || !it->channels[r].path) continue;
        int dup = 0;
        for (int q = 0; q < n; q++) dup |= strcmp(src[q].role, p->m->roles[r]) == 0;
        if (dup) continue;
        st = pl_manifest_channel_ref(&it->channels[r], refs[n], FT_REF_MAX);
        src[n].role = p->m->roles[r];
        src[n].ref = refs[n];
        n++;
    }
    if (st == PL_OK && n == 0) st = PL_FAIL(PL_ERR_ARG, "the item has none of the channels the model reads");
    if (st == PL_OK) {
        stage = "prep";
        double px = it->pixel_size_um > 0 ? it->pixel_size_um : p->card->pixel_size_um;
        st = pl_prep_fov(p->cfg, it->id, px, src, n, &p->res[thread]);
        if (st != PL_OK && p->res[thread].failed_step) stage = p->res[thread].failed_step;
    }
    const PlPrepResult *r = &p->res[thread];
    if (st == PL_OK && (r->n_views != 1 || r->n_tiles != 1 || r->n_slots != p->C))
        st = PL_FAIL(PL_ERR_UNSUPPORTED, "fine-tuning needs one view of %d slots per item (got %d views, %d tiles, %d "
                                         "slots; channel replication is not supported for fine-tuning)",
                     p->C, r->n_views, r->n_tiles, r->n_slots);
    const size_t plane = (size_t)p->size * p->size;
    for (int c = 0; c < p->C && st == PL_OK; c++) {
        stage = "resize";
        st = pl_resize_plane(&p->rw[thread], r->data + (size_t)c * r->tile_h * r->tile_w, r->tile_h, r->tile_w,
                             p->x + ((size_t)row * p->C + c) * plane, p->size, p->size);
    }
    if (st != PL_OK) {
        snprintf(msg, sizeof msg, "%s\t%s", stage, pl_error_message());
        p->msg[row] = strdup(msg);
        if (!p->msg[row]) p->msg[row] = (char *)"";   // still marks the row failed
    }
}

static PlStatus write_failures(const char *path, const PlManifest *m, const int64_t *items, char **msg, int64_t n) {
    size_t cap = 4096, len = 0;
    char *buf = pl_malloc(cap);
    if (!buf) return PL_ERR_NOMEM;
    len = (size_t)snprintf(buf, cap, "id\tline\tstage\tmessage\n");
    for (int64_t i = 0; i < n; i++) {
        if (!msg[i]) continue;
        const PlManifestItem *it = &m->items[items[i]];
        size_t need = strlen(it->id) + strlen(msg[i]) + 64;
        if (len + need >= cap) {
            size_t ncap = (len + need) * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return PL_FAIL(PL_ERR_NOMEM, "cannot list the failed items");
            }
            buf = nb;
            cap = ncap;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s\t%d\t%s\n", it->id, it->line, msg[i][0] ? msg[i] : "prep\t?");
    }
    PlStatus st = pl_file_write_atomic(path, buf, len);
    free(buf);
    return st;
}

void ft_dataset_free(FtDataset *ds) {
    free(ds->x);
    free(ds->cls);
    if (ds->ids)
        for (int64_t i = 0; i < ds->n; i++) free(ds->ids[i]);
    free(ds->ids);
    if (ds->classes)
        for (int i = 0; i < ds->n_classes; i++) free(ds->classes[i]);
    free(ds->classes);
    free(ds->train);
    memset(ds, 0, sizeof *ds);
}

PlStatus ft_dataset_load(const char *manifest, const PlModelCard *card, int C, int patch, int size, const char *failures,
                         PlThreadPool *pool, FtDataset *ds) {
    memset(ds, 0, sizeof *ds);
    ds->C = C;
    ds->size = size;
    // roles: the default ones plus every role the card's slots name (as `run` accepts them)
    const char *roles[PL_MANIFEST_MAX_ROLES + PL_CARD_MAX_SLOTS];
    int n_default = 0, nr = 0;
    const char *const *def = pl_manifest_default_roles(&n_default);
    for (int i = 0; i < n_default; i++) roles[nr++] = def[i];
    for (int k = 0; k < card->n_slots; k++) {
        int dup = !card->slots[k][0];
        for (int i = 0; i < nr; i++) dup |= !strcmp(roles[i], card->slots[k]);
        if (!dup) roles[nr++] = card->slots[k];
    }
    PlManifest m;
    PlManifestOptions mo = {.roles = roles, .n_roles = nr, .max_errors = 20};
    PlStatus st = pl_manifest_load(manifest, &mo, &m);
    if (st != PL_OK) {
        if (m.n_errors) pl_error_wrap("%s (first problem: %s)", manifest, m.errors[0]);
        pl_manifest_free(&m);
        return st;
    }
    // classes: the one label encoder over a feature-set view of the manifest (no embeddings)
    PlFeatureSet fs = {0};
    fs.n = (int64_t)m.count;
    fs.label = pl_calloc(m.count + 1, sizeof(char *));
    fs.split = pl_calloc(m.count + 1, sizeof(char *));
    fs.id = pl_calloc(m.count + 1, sizeof(char *));
    PlLabelCoding lc = {0};
    int64_t *items = pl_malloc((m.count + 1) * sizeof(int64_t));
    PlPrepConfig cfg;
    char slots[PL_CARD_MAX_SLOTS * 40];
    PrepCtx p = {0};
    if (!fs.label || !fs.split || !fs.id || !items) st = PL_ERR_NOMEM;
    for (size_t i = 0; i < m.count && st == PL_OK; i++) {
        fs.label[i] = m.items[i].label;
        fs.split[i] = m.items[i].split;
        fs.id[i] = m.items[i].id;
    }
    if (st == PL_OK) st = pl_features_encode_labels(&fs, PL_MULTILABEL_SKIP, 4096, &lc);
    int64_t n = 0;
    for (size_t i = 0; i < m.count && st == PL_OK; i++) {
        const char *sp = m.items[i].split;
        if (lc.cls[i] >= 0 && (!strcmp(sp, "train") || !strcmp(sp, "val") || !strcmp(sp, "test"))) items[n++] = (int64_t)i;
    }
    if (st == PL_OK && n == 0)
        st = PL_FAIL(PL_ERR_EMPTY, "%s: no labelled item in the train, val or test split", manifest);
    if (st == PL_OK) st = pl_card_prep_config(card, C, NULL, NULL, 0, &cfg, NULL, slots, sizeof slots);
    if (st == PL_OK) {
        cfg.fov.patch = patch;
        st = pl_prep_config_validate(&cfg);
    }
    int threads = pl_threadpool_size(pool);
    if (st == PL_OK) {
        p = (PrepCtx){&m, card, &cfg, items, C, size, NULL, NULL, NULL, NULL};
        p.x = pl_malloc((size_t)n * C * size * size * sizeof(float));
        p.res = pl_calloc((size_t)threads, sizeof *p.res);
        p.rw = pl_calloc((size_t)threads, sizeof *p.rw);
        p.msg = pl_calloc((size_t)n, sizeof *p.msg);
        if (!p.x || !p.res || !p.rw || !p.msg) st = PL_FAIL(PL_ERR_NOMEM, "cannot hold %lld training images of %dx%dx%d",
                                                             (long long)n, C, size, size);
    }
    if (st == PL_OK) pl_threadpool_run(pool, prep_row, &p, (int)n);
    // compact: keep the rows that prepared
    if (st == PL_OK) {
        ds->cls = pl_malloc((size_t)n * sizeof(int32_t));
        ds->ids = pl_calloc((size_t)n + 1, sizeof(char *));
        ds->train = pl_malloc(3 * ((size_t)n + 1) * sizeof(int64_t));
        if (!ds->cls || !ds->ids || !ds->train) st = PL_ERR_NOMEM;
    }
    if (st == PL_OK) {
        ds->val = ds->train + n + 1;
        ds->test = ds->val + n + 1;
        const size_t img = (size_t)C * size * size;
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++) {
            if (p.msg[i]) {
                ds->n_failed++;
                continue;
            }
            const PlManifestItem *it = &m.items[items[i]];
            if (k != i) memmove(p.x + (size_t)k * img, p.x + (size_t)i * img, img * sizeof(float));
            ds->cls[k] = lc.cls[items[i]];
            ds->ids[k] = pl_strdup(it->id);
            if (!ds->ids[k]) st = PL_ERR_NOMEM;
            if (!strcmp(it->split, "train")) ds->train[ds->n_train++] = k;
            else if (!strcmp(it->split, "val")) ds->val[ds->n_val++] = k;
            else ds->test[ds->n_test++] = k;
            k++;
        }
        ds->n = k;
        ds->x = p.x;
        p.x = NULL;
        ds->n_classes = lc.n_classes;
        ds->classes = lc.classes;
        lc.classes = NULL;
        lc.n_classes = 0;
        ds->n_multilabel = lc.n_multilabel_skipped;
        ds->n_unlabelled = lc.n_unlabelled;
        if (ds->n_failed && failures) {
            pl_log_warn("%lld item(s) failed to preprocess and are skipped; listed in %s", (long long)ds->n_failed, failures);
            PlStatus ws = write_failures(failures, &m, items, p.msg, n);
            if (st == PL_OK) st = ws;
        }
        if (st == PL_OK && ds->n_train == 0) st = PL_FAIL(PL_ERR_EMPTY, "%s: no usable item in the train split", manifest);
    }
    if (p.msg)
        for (int64_t i = 0; i < n; i++)
            if (p.msg[i] && p.msg[i][0]) free(p.msg[i]);
    if (p.res)
        for (int i = 0; i < threads; i++) pl_prep_result_free(&p.res[i]);
    if (p.rw)
        for (int i = 0; i < threads; i++) pl_resize_work_free(&p.rw[i]);
    free(p.x);
    free(p.res);
    free(p.rw);
    free(p.msg);
    pl_label_coding_free(&lc);
    free(fs.label);
    free(fs.split);
    free(fs.id);
    free(items);
    pl_manifest_free(&m);
    if (st != PL_OK) ft_dataset_free(ds);
    return st;
}
