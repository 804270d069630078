// Trainable DINO ViT + linear head: parameter slab layout, per-worker activation slabs, and the forward/backward of
// one micro-batch built from the layer pairs in pl_train_layers.c.
#include "pl_vit_train.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_rng.h"
#include "pl_train_layers.h"
#include "pl_vit_kernels.h"

#define PL_TRAIN_BLOCK_TENSORS 12
static const char *const block_names[PL_TRAIN_BLOCK_TENSORS] = {
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
    "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"};
// Slab index of the first tensors: cls, pos, patch w, patch b, then 12 per block, norm w, norm b, head w, head b.
enum { T_CLS = 0, T_POS, T_PW, T_PB, T_BLOCK0 };

typedef struct BlockActs {     // one block's saved activations, rows = m * T
    float *ln1, *ln1m, *ln1r;  // (rows, D), (rows), (rows)
    float *qkv;                // (rows, 3D)
    float *lse;                // (m, NH, T) attention log-sum-exp per query row (the flash backward's input)
    float *att;                // (rows, D)
    float *xmid;               // (rows, D) residual after the attention branch
    float *ln2, *ln2m, *ln2r;
    float *fc1, *gel;          // (rows, Hm)
} BlockActs;

typedef struct Worker {
    float *slab;
    size_t slab_floats;
    float *u;                  // (m * np, K) unfolded patches
    float *xs;                 // (depth + 1, rows, D) block inputs, then the final residual
    BlockActs *blk;            // depth entries (all the same slab with recompute)
    float *pos;                // (T, D) position embedding for this input size
    float *cls, *lnf, *lnfm, *lnfr;   // (m, D), (m, D), (m), (m)
    float *logits, *dlogits;   // (m, NC)
    float *h1, *a1, *k1, *h2, *a2, *k2;   // MLP head: pre-ReLU, post-dropout, dropout scale per unit: (m, 512 / 256)
    float *dh1, *dh2;          // MLP head gradients (m, 512 / 256)
    float *scale;              // (depth, 2, m) drop-path scale per block, branch, sample
    float *dres, *dtmp, *dln, *dqkv, *datt, *dh, *dpos, *dcls;
    float *attn_scratch;       // pl_attention_scratch_bytes (64-byte aligned), forward and backward
    PlTrainGemm gemm;          // every GEMM of this worker: backend, precision, BF16 operand scratch (in the slab)
} Worker;

struct PlVitTrain {
    PlVitTrainSpec s;
    const PlKernels *k;
    int gh, gw, np, T, K, interp;
    PlTrainTensor *tensors;
    int ntensors;
    float *params;
    size_t param_floats;
    uint16_t *params16;        // BF16: the parameters rounded once per step (pl_vit_train_sync), read by every GEMM
    _Atomic int params16_valid;
    Worker *workers;
};

size_t pl_vit_train_param_floats(const PlVitTrain *t) { return t->param_floats; }
float *pl_vit_train_params(PlVitTrain *t) {
    atomic_store_explicit(&t->params16_valid, 0, memory_order_release);   // the caller may change them
    return t->params;
}

void pl_vit_train_sync(PlVitTrain *t) {
    if (!t->params16 || atomic_load_explicit(&t->params16_valid, memory_order_acquire)) return;
    pl_bf16_from_f32_n(t->params16, t->params, t->param_floats);
    atomic_store_explicit(&t->params16_valid, 1, memory_order_release);
}
const PlVitTrainSpec *pl_vit_train_spec(const PlVitTrain *t) { return &t->s; }
const PlTrainTensor *pl_vit_train_tensors(const PlVitTrain *t, int *count) {
    *count = t->ntensors;
    return t->tensors;
}

// ---- layout ----

static void add_tensor(PlVitTrain *t, size_t *off, const char *name, int ndim, const int64_t *shape, int layer, int head) {
    PlTrainTensor *x = &t->tensors[t->ntensors++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = ndim;
    x->numel = 1;
    for (int i = 0; i < ndim; i++) {
        x->shape[i] = shape[i];
        x->numel *= (size_t)shape[i];
    }
    x->offset = *off;
    *off += (x->numel + 15) & ~(size_t)15;
    size_t len = strlen(name);
    x->decay = !(len >= 5 && strcmp(name + len - 5, ".bias") == 0) && ndim != 1;
    x->layer = layer;
    x->head = head;
}

static void build_layout(PlVitTrain *t) {
    const PlVitConfig *c = &t->s.cfg;
    const int64_t D = c->dim, Hm = c->mlp_hidden, G = c->pos_grid, P = c->patch, NC = t->s.classes;
    size_t off = 0;
    add_tensor(t, &off, "cls_token", 3, (int64_t[]){1, 1, D}, 0, 0);
    add_tensor(t, &off, "pos_embed", 3, (int64_t[]){1, 1 + G * G, D}, 0, 0);
    add_tensor(t, &off, "patch_embed.proj.weight", 4, (int64_t[]){D, c->in_chans, P, P}, 0, 0);
    add_tensor(t, &off, "patch_embed.proj.bias", 1, (int64_t[]){D}, 0, 0);
    const int64_t shapes[PL_TRAIN_BLOCK_TENSORS][2] = {{D, 0}, {D, 0}, {3 * D, D}, {3 * D, 0}, {D, D}, {D, 0},
                                                        {D, 0}, {D, 0}, {Hm, D},   {Hm, 0},    {D, Hm}, {D, 0}};
    for (int l = 0; l < c->depth; l++)
        for (int j = 0; j < PL_TRAIN_BLOCK_TENSORS; j++) {
            char n[64];
            snprintf(n, sizeof n, "blocks.%d.%s", l, block_names[j]);
            add_tensor(t, &off, n, shapes[j][1] ? 2 : 1, shapes[j], l + 1, 0);
        }
    add_tensor(t, &off, "norm.weight", 1, (int64_t[]){D}, c->depth + 1, 0);
    add_tensor(t, &off, "norm.bias", 1, (int64_t[]){D}, c->depth + 1, 0);
    if (!t->s.head_mlp) {
        add_tensor(t, &off, "head.weight", 2, (int64_t[]){NC, D}, c->depth + 1, 1);
        add_tensor(t, &off, "head.bias", 1, (int64_t[]){NC}, c->depth + 1, 1);
    } else {
        const int64_t H1 = PL_TRAIN_MLP_H1, H2 = PL_TRAIN_MLP_H2;
        add_tensor(t, &off, "head.0.weight", 2, (int64_t[]){H1, D}, c->depth + 1, 1);
        add_tensor(t, &off, "head.0.bias", 1, (int64_t[]){H1}, c->depth + 1, 1);
        add_tensor(t, &off, "head.3.weight", 2, (int64_t[]){H2, H1}, c->depth + 1, 1);
        add_tensor(t, &off, "head.3.bias", 1, (int64_t[]){H2}, c->depth + 1, 1);
        add_tensor(t, &off, "head.6.weight", 2, (int64_t[]){NC, H2}, c->depth + 1, 1);
        add_tensor(t, &off, "head.6.bias", 1, (int64_t[]){NC}, c->depth + 1, 1);
    }
    t->param_floats = off;
}

// Carve one worker's activation slab; with base == NULL only counts floats. Returns the float count.
static size_t carve_worker(const PlVitTrain *t, Worker *w, float *base) {
    const PlVitConfig *c = &t->s.cfg;
    const size_t m = (size_t)t->s.micro_batch, T = (size_t)t->T, D = (size_t)c->dim, Hm = (size_t)c->mlp_hidden;
    const size_t rows = m * T, NH = (size_t)c->heads, NC = (size_t)t->s.classes, L = (size_t)c->depth;
    size_t off = 0;
#define PL_CARVE(ptr, n)                                   \
    do {                                                   \
        if (base) (ptr) = base + off;                      \
        off += ((size_t)(n) + 15) & ~(size_t)15;           \
    } while (0)
    Worker tw, *x = base ? w : &tw;
    PL_CARVE(x->u, m * (size_t)t->np * (size_t)t->K);
    PL_CARVE(x->xs, (L + 1) * rows * D);
    size_t nblk = t->s.recompute ? 1 : L;
    for (size_t l = 0; l < nblk; l++) {
        BlockActs tmp, *b = base ? &w->blk[l] : &tmp;
        PL_CARVE(b->ln1, rows * D);
        PL_CARVE(b->ln1m, rows);
        PL_CARVE(b->ln1r, rows);
        PL_CARVE(b->qkv, rows * 3 * D);
        PL_CARVE(b->lse, m * NH * T);
        PL_CARVE(b->att, rows * D);
        PL_CARVE(b->xmid, rows * D);
        PL_CARVE(b->ln2, rows * D);
        PL_CARVE(b->ln2m, rows);
        PL_CARVE(b->ln2r, rows);
        PL_CARVE(b->fc1, rows * Hm);
        PL_CARVE(b->gel, rows * Hm);
    }
    if (base && t->s.recompute)
        for (size_t l = 1; l < L; l++) w->blk[l] = w->blk[0];
    PL_CARVE(x->pos, T * D);
    PL_CARVE(x->cls, m * D);
    PL_CARVE(x->lnf, m * D);
    PL_CARVE(x->lnfm, m);
    PL_CARVE(x->lnfr, m);
    PL_CARVE(x->logits, m * NC);
    PL_CARVE(x->dlogits, m * NC);
    size_t H1 = t->s.head_mlp ? PL_TRAIN_MLP_H1 : 0, H2 = t->s.head_mlp ? PL_TRAIN_MLP_H2 : 0;
    PL_CARVE(x->h1, m * H1);
    PL_CARVE(x->a1, m * H1);
    PL_CARVE(x->k1, m * H1);
    PL_CARVE(x->dh1, m * H1);
    PL_CARVE(x->h2, m * H2);
    PL_CARVE(x->a2, m * H2);
    PL_CARVE(x->k2, m * H2);
    PL_CARVE(x->dh2, m * H2);
    PL_CARVE(x->scale, L * 2 * m);
    PL_CARVE(x->dres, rows * D);
    PL_CARVE(x->dtmp, rows * D);
    PL_CARVE(x->dln, rows * D);
    PL_CARVE(x->dqkv, rows * 3 * D);
    PL_CARVE(x->datt, rows * D);
    PL_CARVE(x->dh, rows * Hm);
    PL_CARVE(x->attn_scratch,
             (pl_attention_scratch_bytes((int)T, (int)D, (int)NH, t->s.precision) + sizeof(float) - 1) / sizeof(float));
    PL_CARVE(x->dpos, T * D);
    PL_CARVE(x->dcls, m * D);
    // BF16 operands of the largest GEMM (activations rows x widest, or the largest weight), two of them
    size_t cap = 0;
    if (t->s.precision == PL_PRECISION_BF16) {
        size_t K = (size_t)t->K, width = 3 * D > Hm ? 3 * D : Hm;
        width = width > K ? width : K;
        width = width > H1 ? width : H1;
        width = width > NC ? width : NC;
        size_t sizes[] = {rows * width, Hm * D, 3 * D * D, D * K, H1 * D, H2 * H1, NC * D, NC * H2};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) cap = sizes[i] > cap ? sizes[i] : cap;
    }
    float *a16 = NULL, *b16 = NULL;
    PL_CARVE(a16, (cap + 1) / 2);
    PL_CARVE(b16, (cap + 1) / 2);
    if (base)
        x->gemm = (PlTrainGemm){t->k,          t->s.precision, (uint16_t *)a16,   (uint16_t *)b16,   cap,
                                t->params,     t->params16,    t->param_floats, &t->params16_valid};
#undef PL_CARVE
    return off;
}

static void set_geometry(PlVitTrain *t) {
    const PlVitConfig *c = &t->s.cfg;
    t->gh = t->s.height / c->patch;
    t->gw = t->s.width / c->patch;
    t->np = t->gh * t->gw;
    t->T = 1 + t->np;
    t->K = c->in_chans * c->patch * c->patch;
    t->interp = !(t->np == c->pos_grid * c->pos_grid && t->s.height == t->s.width);
}

double pl_vit_train_activation_bytes(const PlVitTrainSpec *spec) {
    PlVitTrain t;
    memset(&t, 0, sizeof t);
    t.s = *spec;
    if (spec->cfg.patch < 1 || spec->height < spec->cfg.patch || spec->width < spec->cfg.patch) return 0;
    set_geometry(&t);
    return (double)carve_worker(&t, NULL, NULL) * sizeof(float);
}

void pl_vit_train_bytes(const PlVitTrain *t, double *params, double *bf16, double *activations) {
    *params = (double)t->param_floats * sizeof(float);
    *bf16 = t->params16 ? (double)t->param_floats * sizeof *t->params16 : 0.0;
    double a = 0.0;
    for (int i = 0; i < t->s.workers; i++) a += (double)t->workers[i].slab_floats * sizeof(float);
    *activations = a;
}

void pl_vit_train_destroy(PlVitTrain *t) {
    if (!t) return;
    if (t->workers)
        for (int i = 0; i < t->s.workers; i++) {
            free(t->workers[i].slab);
            free(t->workers[i].blk);
        }
    free(t->workers);
    free(t->tensors);
    free(t->params);
    free(t->params16);
    free(t);
}

float *pl_train_alloc_slab(size_t floats) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, floats * sizeof(float)) != 0) return NULL;
    memset(p, 0, floats * sizeof(float));   // zero (padding stays 0) and touch every page now, not in a hot loop
    return p;
}

PlStatus pl_vit_train_create(const PlVitTrainSpec *spec, const PlKernels *kernels, PlVitTrain **out) {
    *out = NULL;
    const PlVitConfig *c = &spec->cfg;
    if (c->dim < 1 || c->heads < 1 || c->dim % c->heads || c->patch < 1 || c->depth < 1 || c->in_chans < 1 ||
        c->mlp_hidden < 1 || c->pos_grid < 1)
        return PL_FAIL(PL_ERR_ARG, "invalid ViT config (dim %d, heads %d, patch %d, depth %d)", c->dim, c->heads,
                       c->patch, c->depth);
    if (spec->classes < 1) return PL_FAIL(PL_ERR_ARG, "the head needs at least 1 class (got %d)", spec->classes);
    if (spec->micro_batch < 1 || spec->workers < 1) return PL_FAIL(PL_ERR_ARG, "micro-batch and workers must be >= 1");
    if (spec->height < c->patch || spec->width < c->patch)
        return PL_FAIL(PL_ERR_ARG, "input %dx%d is smaller than one %dx%d patch", spec->height, spec->width, c->patch,
                       c->patch);
    if (!(spec->head_dropout >= 0.0f && spec->head_dropout < 1.0f))
        return PL_FAIL(PL_ERR_ARG, "head dropout %g is outside [0, 1)", (double)spec->head_dropout);
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
    PlVitTrain *t = pl_calloc(1, sizeof *t);
    if (!t) return PL_ERR_NOMEM;
    t->s = *spec;
    t->k = kernels;
    set_geometry(t);
    t->tensors = pl_calloc((size_t)T_BLOCK0 + (size_t)c->depth * PL_TRAIN_BLOCK_TENSORS + 8, sizeof *t->tensors);
    if (!t->tensors) goto nomem;
    build_layout(t);
    t->params = pl_train_alloc_slab(t->param_floats);
    t->workers = pl_calloc((size_t)spec->workers, sizeof *t->workers);
    if (!t->params || !t->workers) goto nomem;
    if (spec->precision == PL_PRECISION_BF16) {
        t->params16 = pl_calloc(t->param_floats, sizeof *t->params16);
        if (!t->params16) goto nomem;
    }
    size_t wfloats = carve_worker(t, NULL, NULL);
    for (int i = 0; i < spec->workers; i++) {
        Worker *w = &t->workers[i];
        w->blk = pl_calloc((size_t)c->depth, sizeof *w->blk);
        w->slab = pl_train_alloc_slab(wfloats);
        if (!w->blk || !w->slab) {
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
        float *dst = t->params + x->offset;
        if (!x->head) {
            PL_TRY(copy_tensor(x, w, x->name, "the backbone", dst));
        } else if (head) {
            PL_TRY(copy_tensor(x, head, x->name + 5, "the head", dst));
        } else if (t->s.head_mlp) {   // torch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            const PlTrainTensor *wt = x->ndim == 2 ? x : x - 1;   // a bias follows its weight
            double bound = 1.0 / sqrt((double)wt->shape[1]);
            PlRng r;
            pl_rng_seed(&r, pl_rng_mix(pl_rng_mix(seed, 0x4ead), (uint64_t)i));
            for (size_t j = 0; j < x->numel; j++) dst[j] = (float)(bound * (2.0 * pl_rng_uniform(&r) - 1.0));
        } else if (strcmp(x->name, "head.weight") == 0) {   // DINO eval_linear: weight ~ N(0, 0.01), bias 0
            PlRng r;
            pl_rng_seed(&r, pl_rng_mix(seed, 0x4ead));
            for (size_t j = 0; j < x->numel; j++) dst[j] = (float)(0.01 * pl_rng_normal(&r));
        } else {
            memset(dst, 0, x->numel * sizeof(float));
        }
    }
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

// ---- forward / backward of one micro-batch ----

#define PRM(t, i) ((t)->params + (t)->tensors[i].offset)
#define GRD(t, g, i) ((g) + (t)->tensors[i].offset)
static int bt(int l, int j) { return T_BLOCK0 + l * PL_TRAIN_BLOCK_TENSORS + j; }

static float *block_input(const PlVitTrain *t, const Worker *w, int l) {
    return w->xs + (size_t)l * t->s.micro_batch * t->T * t->s.cfg.dim;
}

// dst rows of sample b (T rows each) = s[b] * src rows; or, with add, dst += s[b] * src.
static void scale_rows(float *dst, const float *src, const float *s, int n, int T, int D, int add) {
    for (int b = 0; b < n; b++) {
        size_t o = (size_t)b * T * D, len = (size_t)T * D;
        float f = s[b];
        if (add)
            for (size_t i = 0; i < len; i++) dst[o + i] += f * src[o + i];
        else
            for (size_t i = 0; i < len; i++) dst[o + i] = f * src[o + i];
    }
}

static void forward_embed(PlVitTrain *t, Worker *w, const float *x, int n) {
    const PlVitConfig *c = &t->s.cfg;
    const int D = c->dim, T = t->T, K = t->K, G = c->pos_grid;
    const float *pos = PRM(t, T_POS), *cls = PRM(t, T_CLS), *pw = PRM(t, T_PW), *pb = PRM(t, T_PB);
    memcpy(w->pos, pos, (size_t)D * sizeof(float));
    if (t->interp)
        pl_vit_pos_resize(pos + D, G, D, t->gh, t->gw, w->pos + D);
    else
        memcpy(w->pos + D, pos + D, (size_t)t->np * D * sizeof(float));
    pl_patch_unfold(w->u, x, n, c->in_chans, t->s.height, t->s.width, c->patch, t->gh, t->gw);
    float *x0 = w->xs;
    for (int b = 0; b < n; b++) {
        float *xb = x0 + (size_t)b * T * D;
        pl_train_gemm(&w->gemm, 0, 1, t->np, D, K, 1.0f, w->u + (size_t)b * t->np * K, K, pw, K, 0.0f, xb + D, D);
        for (int i = 0; i < D; i++) xb[i] = cls[i] + w->pos[i];
        for (int r = 1; r < T; r++)
            for (int i = 0; i < D; i++) xb[(size_t)r * D + i] += pb[i] + w->pos[(size_t)r * D + i];
    }
}

static void forward_block(PlVitTrain *t, Worker *w, int l, int n) {
    const PlVitConfig *c = &t->s.cfg;
    const int D = c->dim, Hm = c->mlp_hidden, T = t->T, rows = n * T;
    const float *x = block_input(t, w, l);
    float *xout = block_input(t, w, l + 1);
    BlockActs *a = &w->blk[l];
    const float *s = w->scale + (size_t)l * 2 * t->s.micro_batch;
    pl_layernorm_forward(a->ln1, a->ln1m, a->ln1r, x, PRM(t, bt(l, 0)), PRM(t, bt(l, 1)), rows, D, c->ln_eps);
    pl_linear_forward(&w->gemm, a->qkv, a->ln1, PRM(t, bt(l, 2)), PRM(t, bt(l, 3)), rows, D, 3 * D);
    pl_attention_forward(a->att, a->lse, a->qkv, n, T, D, c->heads, t->s.precision, w->attn_scratch);
    pl_linear_forward(&w->gemm, w->dtmp, a->att, PRM(t, bt(l, 4)), PRM(t, bt(l, 5)), rows, D, D);
    memcpy(a->xmid, x, (size_t)rows * D * sizeof(float));
    scale_rows(a->xmid, w->dtmp, s, n, T, D, 1);
    pl_layernorm_forward(a->ln2, a->ln2m, a->ln2r, a->xmid, PRM(t, bt(l, 6)), PRM(t, bt(l, 7)), rows, D, c->ln_eps);
    pl_linear_forward(&w->gemm, a->fc1, a->ln2, PRM(t, bt(l, 8)), PRM(t, bt(l, 9)), rows, D, Hm);
    pl_gelu_forward(a->gel, a->fc1, (int64_t)rows * Hm);
    pl_linear_forward(&w->gemm, w->dtmp, a->gel, PRM(t, bt(l, 10)), PRM(t, bt(l, 11)), rows, Hm, D);
    memcpy(xout, a->xmid, (size_t)rows * D * sizeof(float));
    scale_rows(xout, w->dtmp, s + t->s.micro_batch, n, T, D, 1);
}

// ReLU then dropout (scale k: 0 or 1 / (1 - p), or 1 outside training) of h into a; n elements.
static void relu_dropout(float *a, const float *h, const float *k, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = h[i] > 0.0f ? h[i] * k[i] : 0.0f;
}

// The head on the final-normed CLS rows w->lnf (n, D) -> w->logits (n, classes).
static void head_forward(PlVitTrain *t, Worker *w, int n, int hd) {
    const int D = t->s.cfg.dim, NC = t->s.classes;
    if (!t->s.head_mlp) {
        pl_linear_forward(&w->gemm, w->logits, w->lnf, PRM(t, hd), PRM(t, hd + 1), n, D, NC);
        return;
    }
    const int H1 = PL_TRAIN_MLP_H1, H2 = PL_TRAIN_MLP_H2;
    pl_linear_forward(&w->gemm, w->h1, w->lnf, PRM(t, hd), PRM(t, hd + 1), n, D, H1);
    relu_dropout(w->a1, w->h1, w->k1, (size_t)n * H1);
    pl_linear_forward(&w->gemm, w->h2, w->a1, PRM(t, hd + 2), PRM(t, hd + 3), n, H1, H2);
    relu_dropout(w->a2, w->h2, w->k2, (size_t)n * H2);
    pl_linear_forward(&w->gemm, w->logits, w->a2, PRM(t, hd + 4), PRM(t, hd + 5), n, H2, NC);
}

// Backward of the head from w->dlogits: parameter gradients into g, d(lnf) (n, D) into w->dtmp.
static void head_backward(PlVitTrain *t, Worker *w, int n, int hd, float *g) {
    const int D = t->s.cfg.dim, NC = t->s.classes;
    if (!t->s.head_mlp) {
        pl_linear_backward(&w->gemm, w->dtmp, 0.0f, GRD(t, g, hd), GRD(t, g, hd + 1), w->dlogits, w->lnf, PRM(t, hd), n, D,
                           NC);
        return;
    }
    const int H1 = PL_TRAIN_MLP_H1, H2 = PL_TRAIN_MLP_H2;
    pl_linear_backward(&w->gemm, w->dh2, 0.0f, GRD(t, g, hd + 4), GRD(t, g, hd + 5), w->dlogits, w->a2, PRM(t, hd + 4), n,
                       H2, NC);
    for (size_t i = 0; i < (size_t)n * H2; i++) w->dh2[i] = w->h2[i] > 0.0f ? w->dh2[i] * w->k2[i] : 0.0f;
    pl_linear_backward(&w->gemm, w->dh1, 0.0f, GRD(t, g, hd + 2), GRD(t, g, hd + 3), w->dh2, w->a1, PRM(t, hd + 2), n, H1,
                       H2);
    for (size_t i = 0; i < (size_t)n * H1; i++) w->dh1[i] = w->h1[i] > 0.0f ? w->dh1[i] * w->k1[i] : 0.0f;
    pl_linear_backward(&w->gemm, w->dtmp, 0.0f, GRD(t, g, hd), GRD(t, g, hd + 1), w->dh1, w->lnf, PRM(t, hd), n, D, H1);
}

// MLP head dropout scales for n samples: 0 or 1 / (1 - p) per unit from the sample's key; 1 without keys (eval).
static void set_head_dropout(PlVitTrain *t, Worker *w, int n, const uint64_t *keys) {
    if (!t->s.head_mlp) return;
    const double p = t->s.head_dropout;
    const float keep = (float)(1.0 / (1.0 - p));
    const int H[2] = {PL_TRAIN_MLP_H1, PL_TRAIN_MLP_H2};
    float *k[2] = {w->k1, w->k2};
    for (int j = 0; j < 2; j++)
        for (int b = 0; b < n; b++) {
            float *kb = k[j] + (size_t)b * H[j];
            if (!keys || p == 0.0) {
                for (int u = 0; u < H[j]; u++) kb[u] = 1.0f;
                continue;
            }
            PlRng r;
            pl_rng_seed(&r, pl_rng_mix(keys[b], 0xd40u + (uint64_t)j));
            for (int u = 0; u < H[j]; u++) kb[u] = pl_rng_uniform(&r) >= p ? keep : 0.0f;
        }
}

// Everything up to the logits (n, classes) in w->logits.
static void forward_all(PlVitTrain *t, Worker *w, const float *x, int n) {
    const PlVitConfig *c = &t->s.cfg;
    const int D = c->dim, L = c->depth, T = t->T, nt = T_BLOCK0 + L * PL_TRAIN_BLOCK_TENSORS;
    forward_embed(t, w, x, n);
    for (int l = 0; l < L; l++) forward_block(t, w, l, n);
    const float *xf = block_input(t, w, L);
    for (int b = 0; b < n; b++) memcpy(w->cls + (size_t)b * D, xf + (size_t)b * T * D, (size_t)D * sizeof(float));
    pl_layernorm_forward(w->lnf, w->lnfm, w->lnfr, w->cls, PRM(t, nt), PRM(t, nt + 1), n, D, c->ln_eps);
    head_forward(t, w, n, nt + 2);
}

static void backward_block(PlVitTrain *t, Worker *w, int l, int n, float *g) {
    const PlVitConfig *c = &t->s.cfg;
    const int D = c->dim, Hm = c->mlp_hidden, T = t->T, rows = n * T;
    if (t->s.recompute) forward_block(t, w, l, n);
    const BlockActs *a = &w->blk[l];
    const float *x = block_input(t, w, l);
    const float *s = w->scale + (size_t)l * 2 * t->s.micro_batch;
    // MLP branch: xout = xmid + s2 * fc2(gelu(fc1(LN2(xmid))))
    scale_rows(w->dtmp, w->dres, s + t->s.micro_batch, n, T, D, 0);
    pl_linear_backward(&w->gemm, w->dh, 0.0f, GRD(t, g, bt(l, 10)), GRD(t, g, bt(l, 11)), w->dtmp, a->gel,
                       PRM(t, bt(l, 10)), rows, Hm, D);
    pl_gelu_backward(w->dh, w->dh, a->fc1, (int64_t)rows * Hm);
    pl_linear_backward(&w->gemm, w->dln, 0.0f, GRD(t, g, bt(l, 8)), GRD(t, g, bt(l, 9)), w->dh, a->ln2, PRM(t, bt(l, 8)),
                       rows, D, Hm);
    pl_layernorm_backward(w->dres, GRD(t, g, bt(l, 6)), GRD(t, g, bt(l, 7)), w->dln, a->xmid, PRM(t, bt(l, 6)), a->ln2m,
                          a->ln2r, rows, D);
    // attention branch: xmid = x + s1 * proj(attn(qkv(LN1(x))))
    scale_rows(w->dtmp, w->dres, s, n, T, D, 0);
    pl_linear_backward(&w->gemm, w->datt, 0.0f, GRD(t, g, bt(l, 4)), GRD(t, g, bt(l, 5)), w->dtmp, a->att,
                       PRM(t, bt(l, 4)), rows, D, D);
    pl_attention_backward(w->dqkv, w->datt, a->qkv, a->att, a->lse, n, T, D, c->heads, t->s.precision,
                          w->attn_scratch);
    pl_linear_backward(&w->gemm, w->dln, 0.0f, GRD(t, g, bt(l, 2)), GRD(t, g, bt(l, 3)), w->dqkv, a->ln1,
                       PRM(t, bt(l, 2)), rows, D, 3 * D);
    // The key bias shifts every score of a query row by the same amount, which softmax cancels: its gradient is
    // exactly zero (in float it would be rounding noise, which Adam would turn into lr-sized steps).
    memset(GRD(t, g, bt(l, 3)) + D, 0, (size_t)D * sizeof(float));
    pl_layernorm_backward(w->dres, GRD(t, g, bt(l, 0)), GRD(t, g, bt(l, 1)), w->dln, x, PRM(t, bt(l, 0)), a->ln1m,
                          a->ln1r, rows, D);
}

static void backward_embed(PlVitTrain *t, Worker *w, int n, float *g) {
    const PlVitConfig *c = &t->s.cfg;
    const int D = c->dim, T = t->T, K = t->K;
    memset(w->dpos, 0, (size_t)T * D * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *d = w->dres + (size_t)b * T * D;
        for (size_t i = 0; i < (size_t)T * D; i++) w->dpos[i] += d[i];
    }
    memcpy(GRD(t, g, T_CLS), w->dpos, (size_t)D * sizeof(float));
    float *gpos = GRD(t, g, T_POS);
    memcpy(gpos, w->dpos, (size_t)D * sizeof(float));
    if (t->interp) {
        memset(gpos + D, 0, (size_t)c->pos_grid * c->pos_grid * D * sizeof(float));
        pl_vit_pos_resize_backward(w->dpos + D, c->pos_grid, D, t->gh, t->gw, gpos + D);
    } else {
        memcpy(gpos + D, w->dpos + D, (size_t)t->np * D * sizeof(float));
    }
    float *gpb = GRD(t, g, T_PB);
    memset(gpb, 0, (size_t)D * sizeof(float));
    for (int r = 1; r < T; r++)
        for (int i = 0; i < D; i++) gpb[i] += w->dpos[(size_t)r * D + i];
    for (int b = 0; b < n; b++)   // (D, np) x (np, K), images in order
        pl_train_gemm(&w->gemm, 1, 0, D, K, t->np, 1.0f, w->dres + ((size_t)b * T + 1) * D, D, w->u + (size_t)b * t->np * K, K,
                   b ? 1.0f : 0.0f, GRD(t, g, T_PW), K);
}

static void set_drop_path(PlVitTrain *t, Worker *w, int n, const uint64_t *keys) {
    const int L = t->s.cfg.depth, m = t->s.micro_batch;
    for (int l = 0; l < L; l++) {
        double p = L > 1 ? (double)t->s.drop_path * l / (L - 1) : 0.0;   // torch.linspace(0, rate, depth)
        for (int j = 0; j < 2; j++)
            for (int b = 0; b < n; b++) {
                float s = 1.0f;
                if (p > 0.0 && keys) {
                    PlRng r;
                    pl_rng_seed(&r, pl_rng_mix(keys[b], (uint64_t)(2 * l + j)));
                    s = pl_rng_uniform(&r) >= p ? (float)(1.0 / (1.0 - p)) : 0.0f;
                }
                w->scale[((size_t)l * 2 + j) * m + b] = s;
            }
    }
}

PlStatus pl_vit_train_microbatch(PlVitTrain *t, int worker, const float *x, const int32_t *y, const float *targets,
                                 int n, const uint64_t *keys, float loss_scale, float *grad, double *loss_sum) {
    if (worker < 0 || worker >= t->s.workers || n < 1 || n > t->s.micro_batch)
        return PL_FAIL(PL_ERR_ARG, "micro-batch of %d images on worker %d (limits %d, %d)", n, worker,
                       t->s.micro_batch, t->s.workers);
    Worker *w = &t->workers[worker];
    const PlVitConfig *c = &t->s.cfg;
    const int D = c->dim, L = c->depth, T = t->T, NC = t->s.classes, nt = T_BLOCK0 + L * PL_TRAIN_BLOCK_TENSORS;
    set_drop_path(t, w, n, keys);
    set_head_dropout(t, w, n, keys);
    forward_all(t, w, x, n);
    if (t->s.loss == PL_LOSS_XENT)
        *loss_sum = pl_softmax_xent(w->dlogits, w->logits, y, n, NC, loss_scale);
    else
        *loss_sum = pl_bce_logits(w->dlogits, w->logits, targets, n, NC, loss_scale);
    // head and final LayerNorm (CLS rows only)
    head_backward(t, w, n, nt + 2, grad);
    memset(w->dcls, 0, (size_t)n * D * sizeof(float));
    pl_layernorm_backward(w->dcls, GRD(t, grad, nt), GRD(t, grad, nt + 1), w->dtmp, w->cls, PRM(t, nt), w->lnfm,
                          w->lnfr, n, D);
    memset(w->dres, 0, (size_t)n * T * D * sizeof(float));
    for (int b = 0; b < n; b++) memcpy(w->dres + (size_t)b * T * D, w->dcls + (size_t)b * D, (size_t)D * sizeof(float));
    for (int l = L - 1; l >= 0; l--) backward_block(t, w, l, n, grad);
    backward_embed(t, w, n, grad);
    return PL_OK;
}

PlStatus pl_vit_train_predict(PlVitTrain *t, int worker, const float *x, int n, float *logits) {
    if (worker < 0 || worker >= t->s.workers || n < 1 || n > t->s.micro_batch)
        return PL_FAIL(PL_ERR_ARG, "prediction batch of %d images on worker %d (limits %d, %d)", n, worker,
                       t->s.micro_batch, t->s.workers);
    Worker *w = &t->workers[worker];
    set_drop_path(t, w, n, NULL);
    set_head_dropout(t, w, n, NULL);
    forward_all(t, w, x, n);
    memcpy(logits, w->logits, (size_t)n * t->s.classes * sizeof(float));
    return PL_OK;
}
