// Training checkpoints with a verified digest, a fingerprint and finiteness checks (see pl_train_ckpt.h).
#include "pl_train_ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_digest.h"
#include "pl_safetensors.h"
#include "pl_weights.h"

enum { CKPT_GROUPS = 4 };
static const char *const ckpt_prefix[CKPT_GROUPS] = {"p/", "m/", "v/", "b/"};
// metadata keys, in the order the digest covers them
// (K_TSTEPS, the per-tensor optimizer steps where they differ from the step, is covered only when not empty, so
// checkpoints without frozen tensors keep the digest they always had)
enum { K_STEP, K_ARGS, K_INIT, K_DATA, K_HIST, K_EPOCH, K_TSTEPS, K_N };
static const char *const ckpt_key[K_N] = {"protloc_finetune_step", "protloc_finetune_args", "protloc_finetune_init",
                                          "protloc_finetune_data", "protloc_finetune_history", "protloc_finetune_epoch",
                                          "protloc_tensor_steps"};
#define CKPT_DIGEST_KEY "protloc_finetune_digest"

// The slabs a checkpoint holds: parameters, moments (v is NULL for SGD), best-epoch copy (NULL without validation).
static void ckpt_slabs(PlVitTrain *t, PlOptim *op, float *best, float *slab[CKPT_GROUPS]) {
    slab[0] = pl_vit_train_params(t);
    slab[1] = pl_optim_moment(op, 0);
    slab[2] = pl_optim_moment(op, 1);
    slab[3] = best;
}

// SHA-256 over every tensor (prefix, name, bytes) of the present slabs and every metadata value, in a fixed order.
static PlStatus ckpt_digest(const PlTrainTensor *tt, int nt, float *const slab[CKPT_GROUPS], const PlTrainState *fs,
                            const char *const value[K_N], char hex[65]) {
    PlSha256 h;
    PL_TRY(pl_sha256_begin(&h));
    PlStatus st = PL_OK;
    for (int k = 0; k < CKPT_GROUPS && st == PL_OK; k++)
        for (int i = 0; i < nt && st == PL_OK && slab[k]; i++) {
            st = pl_sha256_add(&h, ckpt_prefix[k], strlen(ckpt_prefix[k]));
            if (st == PL_OK) st = pl_sha256_add(&h, tt[i].name, strlen(tt[i].name) + 1);
            if (st == PL_OK) st = pl_sha256_add(&h, slab[k] + tt[i].offset, tt[i].numel * sizeof(float));
        }
    for (int i = 0; i < fs->n_extra && st == PL_OK; i++) {
        st = pl_sha256_add(&h, "x/", 2);
        if (st == PL_OK) st = pl_sha256_add(&h, fs->extra[i].name, strlen(fs->extra[i].name) + 1);
        if (st == PL_OK) st = pl_sha256_add(&h, fs->extra[i].data, fs->extra[i].count * sizeof(float));
    }
    for (int k = 0; k < K_N && st == PL_OK; k++) {
        if (k == K_TSTEPS && !value[k][0]) continue;
        st = pl_sha256_add(&h, ckpt_key[k], strlen(ckpt_key[k]) + 1);
        if (st == PL_OK) st = pl_sha256_add(&h, value[k], strlen(value[k]) + 1);
    }
    if (st != PL_OK) {
        pl_sha256_abort(&h);
        return st;
    }
    return pl_sha256_end(&h, hex);
}

PlStatus pl_train_ckpt_check_finite(PlVitTrain *t, PlOptim *op, const float *best) {
    float *slab[CKPT_GROUPS];
    ckpt_slabs(t, op, (float *)best, slab);   // only read
    int nt;
    const PlTrainTensor *tt = pl_vit_train_tensors(t, &nt);
    for (int k = 0; k < CKPT_GROUPS; k++) {
        if (!slab[k]) continue;
        for (int i = 0; i < nt; i++) {
            const float *x = slab[k] + tt[i].offset;
            float acc = 0.0f;   // x * 0 is NaN exactly when x is NaN or infinite: one branch-free pass
            for (size_t j = 0; j < tt[i].numel; j++) acc += x[j] * 0.0f;
            if (acc == 0.0f) continue;
            for (size_t j = 0; j < tt[i].numel; j++)
                if (!isfinite(x[j]))
                    return PL_FAIL(PL_ERR_NUMERIC, "%s%s holds %s at element %zu (%s)", ckpt_prefix[k], tt[i].name,
                                   isnan(x[j]) ? "NaN" : x[j] > 0 ? "+Inf" : "-Inf", j,
                                   k == 0 ? "the weights" : k == 3 ? "the best epoch's weights" : "the optimizer state");
        }
    }
    return PL_OK;
}

// The extra arrays are finite (as the slabs, pl_train_ckpt_check_finite).
static PlStatus ckpt_check_extras(const PlTrainState *fs) {
    for (int i = 0; i < fs->n_extra; i++)
        for (size_t j = 0; j < fs->extra[i].count; j++)
            if (!isfinite(fs->extra[i].data[j]))
                return PL_FAIL(PL_ERR_NUMERIC, "x/%s holds %s at element %zu", fs->extra[i].name,
                               isnan(fs->extra[i].data[j]) ? "NaN" : fs->extra[i].data[j] > 0 ? "+Inf" : "-Inf", j);
    return PL_OK;
}

// The optimizer's per-tensor step counts that differ from its step count, as "index:steps;..." (malloc'd; "" when
// none: tensors frozen for a while, e.g. DINO's last layer, count fewer steps).
static char *ckpt_tensor_steps_text(const PlOptim *op, int nt) {
    size_t size = 8 + (size_t)nt * 42, u = 0;
    char *text = pl_malloc(size);
    if (!text) return NULL;
    text[0] = '\0';
    const int64_t all = pl_optim_steps_taken(op);
    for (int i = 0; i < nt && u < size; i++) {
        int64_t n = pl_optim_tensor_steps(op, i);
        if (n != all) u += (size_t)snprintf(text + u, size - u, "%s%d:%lld", u ? ";" : "", i, (long long)n);
    }
    return text;
}

static PlStatus ckpt_tensor_steps_parse(const char *path, const char *text, PlOptim *op, int nt) {
    for (const char *p = text; p && *p;) {
        int i;
        long long n;
        if (sscanf(p, "%d:%lld", &i, &n) != 2 || i < 0 || i >= nt || n < 0)
            return PL_FAIL(PL_ERR_FORMAT, "%s: malformed per-tensor step counts", path);
        PL_TRY(pl_optim_set_tensor_steps(op, i, n));
        p = strchr(p, ';');
        if (p) p++;
    }
    return PL_OK;
}

// The epoch history as "loss,f1;loss,f1;..." (malloc'd).
static char *ckpt_history_text(const PlTrainState *fs) {
    size_t size = 64 + (size_t)fs->n_epochs * 52;
    char *hist = pl_malloc(size);
    if (!hist) return NULL;
    size_t u = 0;
    hist[0] = '\0';
    for (int e = 0; e < fs->n_epochs && u < size; e++)
        u += (size_t)snprintf(hist + u, size - u, "%s%.17g,%.17g", e ? ";" : "", fs->epoch_loss[e],
                              fs->epoch_val_f1 ? fs->epoch_val_f1[e] : -1.0);
    return hist;
}

PlStatus pl_train_ckpt_write(const char *path, PlVitTrain *t, PlOptim *op, const PlTrainCkptKeys *k, int64_t step,
                             const PlTrainState *fs) {
    PL_TRY(pl_train_ckpt_check_finite(t, op, fs->best));
    PL_TRY(ckpt_check_extras(fs));
    int nt;
    const PlTrainTensor *tt = pl_vit_train_tensors(t, &nt);
    float *slab[CKPT_GROUPS];
    ckpt_slabs(t, op, fs->best, slab);
    // A view on the slabs (no copy: a checkpoint of ViT-B would otherwise hold 3-4 extra parameter copies): the
    // tensors borrow their data, so this PlWeights is released by hand below, never by pl_weights_free.
    PlWeights w;
    memset(&w, 0, sizeof w);
    w.tensors = pl_calloc((size_t)nt * CKPT_GROUPS + (size_t)fs->n_extra + 1, sizeof *w.tensors);
    PlStatus st = w.tensors ? PL_OK : PL_ERR_NOMEM;
    for (int g = 0; g < CKPT_GROUPS && st == PL_OK; g++)
        for (int i = 0; i < nt && st == PL_OK && slab[g]; i++) {
            PlWeightTensor *x = &w.tensors[w.count];
            char name[96];
            snprintf(name, sizeof name, "%s%s", ckpt_prefix[g], tt[i].name);
            if (!(x->name = pl_strdup(name))) {
                st = PL_ERR_NOMEM;
                break;
            }
            x->ndim = tt[i].ndim;
            memcpy(x->shape, tt[i].shape, sizeof tt[i].shape);
            x->data = slab[g] + tt[i].offset;
            w.count++;
        }
    for (int i = 0; i < fs->n_extra && st == PL_OK; i++) {
        PlWeightTensor *x = &w.tensors[w.count];
        char name[96];
        snprintf(name, sizeof name, "x/%s", fs->extra[i].name);
        if (!(x->name = pl_strdup(name))) {
            st = PL_ERR_NOMEM;
            break;
        }
        x->ndim = 1;
        x->shape[0] = (int64_t)fs->extra[i].count;
        x->data = fs->extra[i].data;
        w.count++;
    }
    char steps[32], ih[32], dh[32], ep[160], digest[65];
    char *hist = st == PL_OK ? ckpt_history_text(fs) : NULL;
    char *tsteps = st == PL_OK ? ckpt_tensor_steps_text(op, nt) : NULL;
    if (st == PL_OK && (!hist || !tsteps)) st = PL_ERR_NOMEM;
    snprintf(steps, sizeof steps, "%lld", (long long)step);
    snprintf(ih, sizeof ih, "%016llx", (unsigned long long)k->init_hash);
    snprintf(dh, sizeof dh, "%016llx", (unsigned long long)k->data_hash);
    snprintf(ep, sizeof ep, "%.17g %lld %d %.17g", fs->loss_sum, (long long)fs->loss_steps, fs->best_epoch,
             fs->best_val_f1);
    const char *value[K_N] = {steps, k->args_text ? k->args_text : "", ih, dh, hist ? hist : "", ep,
                              tsteps ? tsteps : ""};
    if (st == PL_OK) st = ckpt_digest(tt, nt, slab, fs, value, digest);
    const char *meta[] = {ckpt_key[K_STEP], value[K_STEP], ckpt_key[K_ARGS], value[K_ARGS], ckpt_key[K_INIT],
                          value[K_INIT], ckpt_key[K_DATA], value[K_DATA], ckpt_key[K_HIST], value[K_HIST],
                          ckpt_key[K_EPOCH], value[K_EPOCH], CKPT_DIGEST_KEY, digest,
                          value[K_TSTEPS][0] ? ckpt_key[K_TSTEPS] : NULL, value[K_TSTEPS], NULL};
    if (st == PL_OK) st = pl_safetensors_write(path, &w, meta);
    free(hist);
    free(tsteps);
    for (size_t i = 0; i < w.count; i++) free(w.tensors[i].name);
    free(w.tensors);
    if (st != PL_OK) pl_error_wrap("writing the checkpoint %s", path);
    return st;
}

// The value of metadata key `key` in the loader's "name=value" lines (malloc'd copy), or NULL.
static char *ckpt_meta(const PlWeights *w, const char *key) {
    size_t len;
    const char *value = pl_weights_arg(w, key, &len);
    char *v = value ? pl_malloc(len + 1) : NULL;
    if (v) snprintf(v, len + 1, "%.*s", (int)len, value);
    return v;
}

static PlStatus ckpt_history_parse(const char *path, const char *text, PlTrainState *fs) {
    fs->n_epochs = 0;
    for (const char *p = text; p && *p;) {
        double l, f;
        if (fs->n_epochs >= fs->cap_epochs)
            return PL_FAIL(PL_ERR_FORMAT, "%s: its epoch history holds more epochs than this run has (%d)", path,
                           fs->cap_epochs);
        if (sscanf(p, "%lf,%lf", &l, &f) != 2) return PL_FAIL(PL_ERR_FORMAT, "%s: malformed epoch history", path);
        fs->epoch_loss[fs->n_epochs] = l;
        if (fs->epoch_val_f1) fs->epoch_val_f1[fs->n_epochs] = f;
        fs->n_epochs++;
        p = strchr(p, ';');
        if (p) p++;
    }
    return PL_OK;
}

// The fingerprint: arguments and architecture, initial weights, data; then the step range.
static PlStatus ckpt_check_keys(const char *path, char *const value[K_N], const PlTrainCkptKeys *k, int64_t *step) {
    const char *args = k->args_text ? k->args_text : "";
    if (!value[K_ARGS] || strcmp(value[K_ARGS], args) != 0)
        return PL_FAIL(PL_ERR_ARG, "%s was written with other arguments or another architecture (it has: %s; this run: "
                       "%s); use another --out or the same arguments", path, value[K_ARGS] ? value[K_ARGS] : "none", args);
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)k->init_hash);
    if (!value[K_INIT] || strcmp(value[K_INIT], want) != 0)
        return PL_FAIL(PL_ERR_ARG, "%s was started from another model or head (initial weights differ)", path);
    snprintf(want, sizeof want, "%016llx", (unsigned long long)k->data_hash);
    if (!value[K_DATA] || strcmp(value[K_DATA], want) != 0)
        return PL_FAIL(PL_ERR_ARG, "%s was trained on other images or labels", path);
    long long s = -1;
    char end;
    if (!value[K_STEP] || sscanf(value[K_STEP], "%lld%c", &s, &end) != 1 || s < 0)
        return PL_FAIL(PL_ERR_FORMAT, "%s has no valid step count", path);
    if (s > k->total_steps)
        return PL_FAIL(PL_ERR_FORMAT, "%s is at step %lld, beyond this run's %lld steps", path, s,
                       (long long)k->total_steps);
    *step = s;
    return PL_OK;
}

// Copy the checkpoint's tensors into the slabs (every one must be present with the trainer's element count).
static PlStatus ckpt_load_tensors(const char *path, const PlWeights *w, const PlTrainTensor *tt, int nt,
                                  float *const slab[CKPT_GROUPS], const PlTrainState *fs) {
    for (int g = 0; g < CKPT_GROUPS; g++) {
        if (!slab[g]) continue;
        for (int i = 0; i < nt; i++) {
            char name[96];
            snprintf(name, sizeof name, "%s%s", ckpt_prefix[g], tt[i].name);
            const PlWeightTensor *x = pl_weights_find(w, name);
            if (!x || (size_t)pl_weight_tensor_numel(x) != tt[i].numel)
                return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s is missing or has another shape", path, name);
            memcpy(slab[g] + tt[i].offset, x->data, tt[i].numel * sizeof(float));
        }
    }
    for (int i = 0; i < fs->n_extra; i++) {
        char name[96];
        snprintf(name, sizeof name, "x/%s", fs->extra[i].name);
        const PlWeightTensor *x = pl_weights_find(w, name);
        if (!x || (size_t)pl_weight_tensor_numel(x) != fs->extra[i].count)
            return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s is missing or has another shape", path, name);
        memcpy(fs->extra[i].data, x->data, fs->extra[i].count * sizeof(float));
    }
    return PL_OK;
}

PlStatus pl_train_ckpt_read(const char *path, PlVitTrain *t, PlOptim *op, const PlTrainCkptKeys *k, int64_t *step,
                            PlTrainState *fs) {
    PlWeights w;
    PL_TRY(pl_weights_load(path, NULL, &w));
    char *value[K_N] = {0}, *stored = ckpt_meta(&w, CKPT_DIGEST_KEY);
    for (int i = 0; i < K_N; i++) value[i] = ckpt_meta(&w, ckpt_key[i]);
    int64_t s = 0;
    long long ls = 0;
    PlStatus st = ckpt_check_keys(path, value, k, &s);
    if (st == PL_OK && (!value[K_EPOCH] || sscanf(value[K_EPOCH], "%lf %lld %d %lf", &fs->loss_sum, &ls,
                                                  &fs->best_epoch, &fs->best_val_f1) != 4))
        st = PL_FAIL(PL_ERR_FORMAT, "%s has no valid epoch state", path);
    fs->loss_steps = ls;
    if (st == PL_OK) st = ckpt_history_parse(path, value[K_HIST], fs);
    int nt;
    const PlTrainTensor *tt = pl_vit_train_tensors(t, &nt);
    float *slab[CKPT_GROUPS];
    ckpt_slabs(t, op, fs->best, slab);
    if (st == PL_OK) st = ckpt_load_tensors(path, &w, tt, nt, slab, fs);
    char digest[65];
    const char *cvalue[K_N];
    for (int i = 0; i < K_N; i++) cvalue[i] = value[i] ? value[i] : "";
    if (st == PL_OK && !stored)
        st = PL_FAIL(PL_ERR_FORMAT, "%s has no digest (written by an older protloc or another program); start over "
                     "with --force", path);
    if (st == PL_OK) st = ckpt_digest(tt, nt, slab, fs, cvalue, digest);
    if (st == PL_OK && strcmp(digest, stored) != 0)
        st = PL_FAIL(PL_ERR_FORMAT, "%s is corrupt: its contents do not match its digest (a tensor or a state value "
                     "changed after it was written); resume from a good copy or start over with --force", path);
    if (st == PL_OK) st = pl_train_ckpt_check_finite(t, op, fs->best);
    if (st == PL_OK) st = ckpt_check_extras(fs);
    if (st != PL_OK && pl_error_code() == PL_ERR_NUMERIC) pl_error_wrap("%s", path);
    free(stored);
    pl_weights_free(&w);
    if (st == PL_OK) {
        *step = s;
        pl_optim_set_steps_taken(op, s);
        st = ckpt_tensor_steps_parse(path, value[K_TSTEPS], op, nt);
    }
    for (int i = 0; i < K_N; i++) free(value[i]);
    return st;
}

int64_t pl_train_ckpt_step(const char *path) {
    PlWeights w;
    if (pl_weights_load(path, NULL, &w) != PL_OK) {
        pl_error_clear();
        return -1;
    }
    char *v = ckpt_meta(&w, ckpt_key[K_STEP]);
    long long s = -1;
    if (!v || sscanf(v, "%lld", &s) != 1) s = -1;
    free(v);
    pl_weights_free(&w);
    return s;
}
