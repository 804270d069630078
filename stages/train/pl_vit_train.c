// Trainable DINO ViT + head (any kind of pl_train_head.h): the parameter layout (backbone then head), the derived
// state (the DINO head's W, the BF16 copy), the workers' activation slabs (one backbone activation set per view
// group, plus the head's), and the micro-batch composed of the backbone (pl_vit_backbone.c) and head
// (pl_train_head.c) modules.
#include "pl_vit_train.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_train_layers.h"
#include "pl_vit_backbone.h"

typedef struct Worker {
    float *slab;
    size_t slab_floats;
    PlBackboneActs acts[PL_TRAIN_MAX_GROUPS];   // one per view group
    PlHeadActs head;           // the head on group 0's features: logits in head.out (m, NC)
    float *dlogits;            // (rows, NC): rows = the head's max_rows
    const float *head_in;      // pl_vit_train_head_forward's features (n rows), NULL before one
    int head_n;
    PlTrainGemm gemm;          // every GEMM of this worker: backend, precision, BF16 operand scratch (in the slab)
} Worker;

struct PlVitTrain {
    PlVitTrainSpec s;
    const PlKernels *k;
    PlBackbone bb;             // the backbone module, pointed into params
    PlHeadSpec hs;
    PlHeadParams hp;           // the head's parameters, pointed into params (DINO: last_w / last_vnorm into derived)
    int nbackbone;             // backbone tensors (the head's first tensor index)
    PlTrainTensor *tensors;
    int ntensors;
    float *params;             // param_floats parameters, then derived_floats of derived state (one allocation)
    size_t param_floats;
    float *derived;            // DINO head: W and its row norms (pl_head_derived_point), = params + param_floats
    size_t derived_floats;     // 0 for the other heads
    _Atomic int derived_valid; // derived was computed from the current parameters (pl_vit_train_sync)
    uint16_t *params16;        // BF16: parameters and derived rounded once per step (pl_vit_train_sync), read by
    _Atomic int params16_valid;//       every GEMM
    Worker *workers;
};

size_t pl_vit_train_param_floats(const PlVitTrain *t) { return t->param_floats; }
float *pl_vit_train_params(PlVitTrain *t) {
    atomic_store_explicit(&t->params16_valid, 0, memory_order_release);   // the caller may change them
    atomic_store_explicit(&t->derived_valid, 0, memory_order_release);
    return t->params;
}

// The derived state from the parameters: W first, then the BF16 copy of both (W's copy is rounded from the new W).
void pl_vit_train_sync(PlVitTrain *t) {
    if (t->derived_floats && !atomic_load_explicit(&t->derived_valid, memory_order_acquire)) {
        pl_head_weight_norm(&t->hs, &t->hp);
        atomic_store_explicit(&t->derived_valid, 1, memory_order_release);
    }
    if (!t->params16 || atomic_load_explicit(&t->params16_valid, memory_order_acquire)) return;
    pl_bf16_from_f32_n(t->params16, t->params, t->param_floats + t->derived_floats);
    atomic_store_explicit(&t->params16_valid, 1, memory_order_release);
}

void pl_vit_train_set_profile(PlVitTrain *t, PlTrainProfile *prof) {
    for (int i = 0; i < t->s.workers; i++) t->workers[i].gemm.prof = pl_train_profile_worker(prof, i);
}

PlVitTrainHead pl_vit_train_head_dino(void) {
    return (PlVitTrainHead){.kind = PL_HEAD_DINO, .hidden_dim = PL_HEAD_DINO_HIDDEN,
                            .bottleneck_dim = PL_HEAD_DINO_BOTTLENECK, .nlayers = PL_HEAD_DINO_NLAYERS,
                            .norm_last_layer = 1};
}
const PlVitTrainSpec *pl_vit_train_spec(const PlVitTrain *t) { return &t->s; }
const PlHeadSpec *pl_vit_train_head_spec(const PlVitTrain *t) { return &t->hs; }
const PlTrainTensor *pl_vit_train_tensors(const PlVitTrain *t, int *count) {
    *count = t->ntensors;
    return t->tensors;
}

// ---- layout ----

// The head module's spec: the spec's head on cfg.dim features, classes outputs, max(micro_batch, head_rows) rows.
static PlHeadSpec head_spec(const PlVitTrainSpec *spec) {
    const PlVitTrainHead *h = &spec->head;
    const int rows = spec->head_rows > spec->micro_batch ? spec->head_rows : spec->micro_batch;
    return (PlHeadSpec){.kind = h->kind, .in_dim = spec->cfg.dim, .out_dim = spec->classes, .dropout = h->dropout,
                        .max_rows = rows, .hidden_dim = h->hidden_dim,
                        .bottleneck_dim = h->bottleneck_dim, .nlayers = h->nlayers,
                        .norm_last_layer = h->norm_last_layer};
}

// The spec with its view groups normalised (group 0 = height, width, micro_batch), the backbone's options and the
// head's spec.
static void set_modules(PlVitTrain *t, const PlVitTrainSpec *spec) {
    t->s = *spec;
    if (t->s.ngroups < 1) t->s.ngroups = 1;
    t->s.groups[0] = (PlViewGroup){spec->height, spec->width, spec->micro_batch};
    t->bb.cfg = spec->cfg;
    t->bb.recompute = spec->recompute;
    t->bb.drop_path = spec->drop_path;
    t->bb.precision = spec->precision;
    t->hs = head_spec(spec);
}

static void build_layout(PlVitTrain *t) {
    size_t off = 0;
    pl_backbone_tensors(&t->s.cfg, t->tensors, &t->ntensors, &off);
    t->nbackbone = t->ntensors;
    pl_head_tensors(&t->hs, "head.", t->s.cfg.depth + 1, t->tensors, &t->ntensors, &off);
    t->param_floats = off;
    t->derived_floats = pl_head_derived_floats(&t->hs);
}

// Carve one worker's activation slab; with base == NULL only counts floats. Returns the float count.
static size_t carve_worker(const PlVitTrain *t, Worker *w, float *base) {
    size_t off = 0, cap = 0;
    for (int i = 0; i < t->s.ngroups; i++) {
        const PlViewGroup *vg = &t->s.groups[i];
        PlBackboneActs *a = base ? &w->acts[i] : NULL;
        off += pl_backbone_acts_carve(&t->bb, vg->micro_batch, vg->height, vg->width, a, base ? base + off : NULL);
        size_t rows = (size_t)vg->micro_batch * pl_vit_config_tokens(&t->s.cfg, vg->height, vg->width, NULL, NULL);
        size_t c = pl_backbone_gemm_cap(&t->s.cfg, rows);
        cap = c > cap ? c : cap;
    }
    off += pl_head_acts_carve(base ? &w->head : NULL, &t->hs, base ? base + off : NULL);
    const size_t NC = (size_t)t->s.classes, m = (size_t)t->hs.max_rows;
    if (base) w->dlogits = base + off;
    off += (m * NC + 15) & ~(size_t)15;
    // BF16 operands of the largest GEMM (activations rows x widest, or the largest weight), two of them
    size_t hcap = pl_head_gemm_cap(&t->hs);
    cap = t->s.precision == PL_PRECISION_BF16 ? (hcap > cap ? hcap : cap) : 0;
    size_t half = (((cap + 1) / 2) + 15) & ~(size_t)15;
    if (base)
        w->gemm = (PlTrainGemm){.k = t->k, .precision = t->s.precision, .a16 = (uint16_t *)(base + off),
                                .b16 = (uint16_t *)(base + off + half), .cap = cap, .w32 = t->params,
                                .w16 = t->params16, .wn = t->param_floats + t->derived_floats,
                                .w16_valid = &t->params16_valid};
    off += 2 * half;
    return off;
}

double pl_vit_train_activation_bytes(const PlVitTrainSpec *spec) {
    PlVitTrain *t = pl_calloc(1, sizeof *t);
    if (!t) return 0;
    set_modules(t, spec);
    double bytes = 0;
    if (pl_vit_config_check(&spec->cfg, spec->height, spec->width) == PL_OK) {
        int ok = t->s.ngroups <= PL_TRAIN_MAX_GROUPS;
        for (int i = 1; ok && i < t->s.ngroups; i++)
            ok = t->s.groups[i].height >= spec->cfg.patch && t->s.groups[i].width >= spec->cfg.patch;
        if (ok) bytes = (double)carve_worker(t, NULL, NULL) * sizeof(float);
    }
    free(t);
    return bytes;
}

void pl_vit_train_bytes(const PlVitTrain *t, double *params, double *bf16, double *activations) {
    const double floats = (double)(t->param_floats + t->derived_floats);
    *params = floats * sizeof(float);
    *bf16 = t->params16 ? floats * sizeof *t->params16 : 0.0;
    double a = 0.0;
    for (int i = 0; i < t->s.workers; i++) a += (double)t->workers[i].slab_floats * sizeof(float);
    *activations = a;
}

void pl_vit_train_destroy(PlVitTrain *t) {
    if (!t) return;
    if (t->workers)
        for (int i = 0; i < t->s.workers; i++) free(t->workers[i].slab);
    free(t->workers);
    free(t->tensors);
    free(t->params);
    free(t->params16);
    free(t);
}

static PlStatus check_spec(const PlVitTrainSpec *spec, const PlKernels *kernels) {
    const PlVitConfig *c = &spec->cfg;
    PL_TRY(pl_vit_config_check(c, spec->height, spec->width));
    if (c->depth > PL_BACKBONE_MAX_DEPTH)
        return PL_FAIL(PL_ERR_LIMIT, "depth %d exceeds the trainable backbone's %d blocks", c->depth, PL_BACKBONE_MAX_DEPTH);
    if (spec->classes < 1) return PL_FAIL(PL_ERR_ARG, "the head needs at least 1 class (got %d)", spec->classes);
    if (spec->micro_batch < 1 || spec->workers < 1) return PL_FAIL(PL_ERR_ARG, "micro-batch and workers must be >= 1");
    if (spec->ngroups < 0 || spec->ngroups > PL_TRAIN_MAX_GROUPS)
        return PL_FAIL(PL_ERR_ARG, "%d view groups (1 .. %d)", spec->ngroups, PL_TRAIN_MAX_GROUPS);
    for (int i = 1; i < spec->ngroups; i++) {
        const PlViewGroup *g = &spec->groups[i];
        PL_TRY(pl_vit_config_check(c, g->height, g->width));
        if (g->micro_batch < 1) return PL_FAIL(PL_ERR_ARG, "view group %d has micro-batch %d", i, g->micro_batch);
    }
    if (!(spec->head.dropout >= 0.0f && spec->head.dropout < 1.0f))
        return PL_FAIL(PL_ERR_ARG, "head dropout %g is outside [0, 1)", (double)spec->head.dropout);
    PlHeadSpec hs = head_spec(spec);
    PL_TRY(pl_head_spec_check(&hs));
    if (!(spec->drop_path >= 0.0f && spec->drop_path < 1.0f))
        return PL_FAIL(PL_ERR_ARG, "drop-path rate %g is outside [0, 1)", (double)spec->drop_path);
    if (spec->precision != PL_PRECISION_FP32 && spec->precision != PL_PRECISION_BF16)
        return PL_FAIL(PL_ERR_ARG, "unknown precision %d", (int)spec->precision);
    if (!kernels) kernels = pl_kernels_default();
    if (spec->precision == PL_PRECISION_BF16 && !kernels->gemm_bf16) {
        char bf16[128];
        pl_kernels_names(bf16, sizeof bf16, 1);
        return PL_FAIL(PL_ERR_UNSUPPORTED, "the %s kernels have no BF16 GEMM: use --kernels %s for --precision bf16",
                       kernels->name, bf16);
    }
    return PL_OK;
}

PlStatus pl_vit_train_create(const PlVitTrainSpec *spec, const PlKernels *kernels, PlVitTrain **out) {
    *out = NULL;
    PL_TRY(check_spec(spec, kernels));
    PlVitTrain *t = pl_calloc(1, sizeof *t);
    if (!t) return PL_ERR_NOMEM;
    set_modules(t, spec);
    t->k = kernels ? kernels : pl_kernels_default();
    t->tensors = pl_calloc((size_t)pl_backbone_tensor_count(&spec->cfg) + PL_HEAD_MAX_TENSORS, sizeof *t->tensors);
    if (!t->tensors) goto nomem;
    build_layout(t);
    t->params = pl_train_alloc_slab(t->param_floats + t->derived_floats);
    t->workers = pl_calloc((size_t)spec->workers, sizeof *t->workers);
    if (!t->params || !t->workers) goto nomem;
    if (spec->precision == PL_PRECISION_BF16) {
        t->params16 = pl_calloc(t->param_floats + t->derived_floats, sizeof *t->params16);
        if (!t->params16) goto nomem;
    }
    pl_backbone_point(&t->bb.p, &t->s.cfg, t->tensors, t->params);
    pl_head_point(&t->hp, &t->hs, t->tensors + t->nbackbone, t->params);
    t->derived = t->params + t->param_floats;
    pl_head_derived_point(&t->hp, &t->hs, t->derived);   // stale until load or sync: a DINO forward refuses it
    size_t wfloats = carve_worker(t, NULL, NULL);
    for (int i = 0; i < spec->workers; i++) {
        Worker *w = &t->workers[i];
        w->slab = pl_train_alloc_slab(wfloats);
        if (!w->slab) {
            PlStatus st = PL_FAIL(PL_ERR_NOMEM, "cannot allocate %zu MiB of training activations for worker %d",
                                  wfloats * sizeof(float) >> 20, i);
            pl_vit_train_destroy(t);
            return st;
        }
        w->slab_floats = wfloats;
        carve_worker(t, w, w->slab);
    }
    *out = t;
    return PL_OK;
nomem:
    pl_vit_train_destroy(t);
    return PL_FAIL(PL_ERR_NOMEM, "cannot allocate the trainer's parameters");
}

// ---- loading and exporting ----

static void shape_text(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t u = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && u < n; i++) u += (size_t)snprintf(buf + u, n - u, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (u < n) snprintf(buf + u, n - u, ")");
}

static PlStatus copy_tensor(const PlTrainTensor *x, const PlWeights *w, const char *name, const char *what, float *dst) {
    const PlWeightTensor *src = pl_weights_find(w, name);
    if (!src) return PL_FAIL(PL_ERR_FORMAT, "%s has no tensor '%s'", what, name);
    size_t n = (size_t)pl_weight_tensor_numel(src);
    int same = n == x->numel;
    // DINO stores some tensors with leading 1s; compare the element count and the trailing dims
    if (same && src->ndim >= 1 && x->ndim >= 1) same = src->shape[src->ndim - 1] == x->shape[x->ndim - 1];
    if (!same) {
        char a[96], b[96];
        shape_text(src->ndim, src->shape, a, sizeof a);
        shape_text(x->ndim, x->shape, b, sizeof b);
        return PL_FAIL(PL_ERR_FORMAT, "%s tensor '%s' has shape %s, the model needs %s", what, name, a, b);
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src->data[i]))
            return PL_FAIL(PL_ERR_NUMERIC, "%s tensor '%s' holds NaN/Inf at element %zu", what, name, i);
    memcpy(dst, src->data, n * sizeof(float));
    return PL_OK;
}

PlStatus pl_vit_train_load(PlVitTrain *t, const PlWeights *w, const PlWeights *head, uint64_t seed) {
    for (int i = 0; i < t->ntensors; i++) {
        const PlTrainTensor *x = &t->tensors[i];
        if (!x->head)
            PL_TRY(copy_tensor(x, w, x->name, "the backbone", t->params + x->offset));
        else if (head)
            PL_TRY(copy_tensor(x, head, x->name + 5, "the head", t->params + x->offset));
    }
    if (!head) pl_head_init(&t->hs, &t->hp, seed, t->nbackbone);
    pl_vit_train_params(t);   // changed: W and the BF16 copy from the new parameters
    pl_vit_train_sync(t);
    return PL_OK;
}

PlStatus pl_vit_train_copy_params(PlVitTrain *dst, const PlVitTrain *src) {
    if (dst->ntensors != src->ntensors)
        return PL_FAIL(PL_ERR_ARG, "cannot copy a model of %d tensors into one of %d", src->ntensors, dst->ntensors);
    for (int i = 0; i < src->ntensors; i++) {
        const PlTrainTensor *a = &src->tensors[i], *b = &dst->tensors[i];
        int same = strcmp(a->name, b->name) == 0 && a->offset == b->offset && a->ndim == b->ndim;
        for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
        if (!same) {
            char x[96], y[96];
            shape_text(a->ndim, a->shape, x, sizeof x);
            shape_text(b->ndim, b->shape, y, sizeof y);
            return PL_FAIL(PL_ERR_ARG, "cannot copy the model's parameters: tensor %d is '%s' %s at %zu in the source, "
                                       "'%s' %s at %zu in the destination", i, a->name, x, a->offset, b->name, y,
                           b->offset);
        }
    }
    if (dst->param_floats != src->param_floats)   // the same tensors at the same offsets: never (a bug)
        return PL_FAIL(PL_ERR_INTERNAL, "parameter slabs of %zu and %zu floats", src->param_floats, dst->param_floats);
    memcpy(pl_vit_train_params(dst), src->params, src->param_floats * sizeof(float));
    pl_vit_train_sync(dst);
    return PL_OK;
}

PlStatus pl_vit_train_export(const PlVitTrain *t, int head, PlWeights *out) {
    memset(out, 0, sizeof *out);
    size_t floats = 0;
    for (int i = 0; i < t->ntensors; i++)
        if (t->tensors[i].head == head) floats += pl_weights_slab_floats(t->tensors[i].numel);
    PlStatus st = pl_weights_reserve(out, floats);
    for (int i = 0; i < t->ntensors && st == PL_OK; i++) {
        const PlTrainTensor *x = &t->tensors[i];
        if (x->head != head) continue;
        float *data;
        st = pl_weights_add(out, head ? x->name + 5 : x->name, x->ndim, x->shape, &data);
        if (st == PL_OK) memcpy(data, t->params + x->offset, x->numel * sizeof(float));
    }
    if (st != PL_OK) pl_weights_free(out);
    return st;
}

// ---- the classification micro-batch and the backbone alone ----

static PlStatus check_worker(const PlVitTrain *t, int worker, int group, int n, const char *what) {
    if (worker < 0 || worker >= t->s.workers || group < 0 || group >= t->s.ngroups || n < 1 ||
        n > t->s.groups[group].micro_batch)
        return PL_FAIL(PL_ERR_ARG, "%s of %d images on worker %d (limits %d, %d)", what, n, worker,
                       group >= 0 && group < t->s.ngroups ? t->s.groups[group].micro_batch : 0, t->s.workers);
    return PL_OK;
}

PlStatus pl_vit_train_forward(PlVitTrain *t, int worker, const float *x, int n, const uint64_t *keys,
                              const float **logits, float **dlogits) {
    PL_TRY(check_worker(t, worker, 0, n, "forward"));
    if (t->derived_floats && !atomic_load_explicit(&t->derived_valid, memory_order_acquire))
        return PL_FAIL(PL_ERR_ARG, "the DINO head's last layer is stale: call pl_vit_train_sync after changing the "
                                   "parameters, before the forward");
    Worker *w = &t->workers[worker];
    PlBackboneActs *a = &w->acts[0];
    pl_head_set_dropout(&t->hs, &w->head, n, keys);
    PL_TRY(pl_backbone_forward(&t->bb, a, &w->gemm, x, n, t->s.height, t->s.width, keys));
    pl_head_forward(&t->hs, &t->hp, &w->head, &w->gemm, a->lnf, n);
    w->head_in = a->lnf;
    w->head_n = n;
    *logits = w->head.out;
    if (dlogits) *dlogits = w->dlogits;
    return PL_OK;
}

PlStatus pl_vit_train_backward(PlVitTrain *t, int worker, float *grad) {
    PL_TRY(check_worker(t, worker, 0, 1, "backward"));
    Worker *w = &t->workers[worker];
    PlBackboneActs *a = &w->acts[0];
    if (a->n < 1) return PL_FAIL(PL_ERR_ARG, "backward on worker %d before its forward", worker);
    PlBackboneParams bg;
    PlHeadParams hg;
    pl_backbone_point(&bg, &t->s.cfg, t->tensors, grad);
    pl_head_point(&hg, &t->hs, t->tensors + t->nbackbone, grad);
    pl_head_backward(&t->hs, &t->hp, &hg, &w->head, &w->gemm, w->dlogits, a->lnf, a->n);
    pl_backbone_backward(&t->bb, a, &w->gemm, w->head.dinp, &bg, 0);
    return PL_OK;
}

PlStatus pl_vit_train_predict(PlVitTrain *t, int worker, const float *x, int n, float *logits) {
    const float *out = NULL;
    PL_TRY(pl_vit_train_forward(t, worker, x, n, NULL, &out, NULL));
    memcpy(logits, out, (size_t)n * t->s.classes * sizeof(float));
    return PL_OK;
}

PlStatus pl_vit_train_backbone_forward(PlVitTrain *t, int worker, int group, const float *x, int n, int height,
                                       int width, const uint64_t *keys, const float **features) {
    PL_TRY(check_worker(t, worker, group, n, "backbone forward"));
    PlBackboneActs *a = &t->workers[worker].acts[group];
    PL_TRY(pl_backbone_forward(&t->bb, a, &t->workers[worker].gemm, x, n, height, width, keys));
    *features = a->lnf;
    return PL_OK;
}

PlStatus pl_vit_train_backbone_backward(PlVitTrain *t, int worker, int group, const float *dfeat, float *grad,
                                        int accumulate) {
    PL_TRY(check_worker(t, worker, group, 1, "backbone backward"));
    PlBackboneActs *a = &t->workers[worker].acts[group];
    if (a->n < 1) return PL_FAIL(PL_ERR_ARG, "backbone backward of group %d before its forward", group);
    PlBackboneParams bg;
    pl_backbone_point(&bg, &t->s.cfg, t->tensors, grad);
    pl_backbone_backward(&t->bb, a, &t->workers[worker].gemm, dfeat, &bg, accumulate);
    return PL_OK;
}

// ---- the head alone, on given features ----

PlStatus pl_vit_train_head_forward(PlVitTrain *t, int worker, const float *feat, int n, const uint64_t *keys,
                                   const float **out, float **dout) {
    if (worker < 0 || worker >= t->s.workers || n < 1 || n > t->hs.max_rows)
        return PL_FAIL(PL_ERR_ARG, "head forward of %d rows on worker %d (limits %d, %d)", n, worker, t->hs.max_rows,
                       t->s.workers);
    if (t->derived_floats && !atomic_load_explicit(&t->derived_valid, memory_order_acquire))
        return PL_FAIL(PL_ERR_ARG, "the DINO head's last layer is stale: call pl_vit_train_sync after changing the "
                                   "parameters, before the forward");
    Worker *w = &t->workers[worker];
    pl_head_set_dropout(&t->hs, &w->head, n, keys);
    pl_head_forward(&t->hs, &t->hp, &w->head, &w->gemm, feat, n);
    w->head_in = feat;
    w->head_n = n;
    *out = w->head.out;
    if (dout) *dout = w->dlogits;
    return PL_OK;
}

PlStatus pl_vit_train_head_backward(PlVitTrain *t, int worker, float *grad, const float **dfeat) {
    if (worker < 0 || worker >= t->s.workers) return PL_FAIL(PL_ERR_ARG, "head backward on worker %d", worker);
    Worker *w = &t->workers[worker];
    if (!w->head_in) return PL_FAIL(PL_ERR_ARG, "head backward on worker %d before its head forward", worker);
    PlHeadParams hg;
    pl_head_point(&hg, &t->hs, t->tensors + t->nbackbone, grad);
    pl_head_backward(&t->hs, &t->hp, &hg, &w->head, &w->gemm, w->dlogits, w->head_in, w->head_n);
    *dfeat = w->head.dinp;
    return PL_OK;
}
