// DINO ViT forward pass: patch GEMM, CLS + position embeddings, pre-norm blocks, final LayerNorm.
//
// Work is split into two kinds of parallel phases over one thread pool (OpenBLAS runs single-threaded
// inside each task):
//   - row phases: contiguous chunks of the (B*T) token rows; everything that is row-independent is
//     fused into one phase (proj + residual + LN2 + fc1 + GELU + fc2 + residual + next block's LN1 + qkv);
//   - attention phases: one task per (image, head), softmax(q k^T / sqrt(hd)) v by the fused flash-style kernel
//     (pl_flash_attention.h: online softmax over key blocks, O(T * hd) memory per thread, no (T, T) matrix).
// So a block costs two dispatches. All activations live in one slab allocated (and touched) at create.
#include "pl_vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_flash_attention.h"
#include "pl_kernels.h"
#include "pl_threadpool.h"
#include "pl_vit_kernels.h"

#define PL_VIT_MIN_ROWS 48    // smallest row chunk worth a separate GEMM call
// The largest row chunk (it bounds the per-thread MLP buffer) and the multiple chunks start on come from the kernel
// backend (PlKernels.max_rows, .row_align).

typedef struct PlVitBlockW {
    const float *n1w, *n1b, *n2w, *n2b;
    PlKernelMat *qkv, *proj, *fc1, *fc2;   // the four linears with their biases (owned by the PlVitLinears)
} PlVitBlockW;

// The model's linears prepared once by one kernel backend at one precision (pl_vit.h); any number of PlVits (input
// sizes, batch sizes) share one.
struct PlVitLinears {
    const PlKernels *k;
    PlPrecision precision;
    int depth;
    PlKernelMat *patch;    // patch_embed.proj.weight as a linear without bias (bias and position are added after it)
    PlKernelMat **mats;    // (depth, 4): qkv, proj, fc1, fc2 of each block
};

struct PlVit {
    PlVitConfig cfg;
    PlVitOptions opt;
    int gh, gw, T, K, out_dim, last_n, threads;
    const float *patch_b, *cls, *norm_w, *norm_b;
    PlKernelMat *patch;     // from lin
    PlVitLinears *lin;      // the prepared linears: borrowed from the options, or owned (own_lin)
    int own_lin;
    PlVitBlockW *blocks;
    float *pos;             // (T, D) position embedding for this input size
    float *slab;            // every activation below
    size_t slab_bytes;
    float *x;               // (B, T, D) residual stream
    float *xn;              // (B, T, D) LayerNorm output: shares att's memory (see pl_vit_rows_mlp)
    float *qkv;             // (B, T, 3D)
    float *att;             // (B, T, D) attention output (heads concatenated)
    float *hid;             // (threads, hid_rows, max(hidden, K)) per-thread MLP hidden / unfolded patches
    unsigned char *scores;  // (threads, attn_bytes) the fused attention's scratch (pl_flash_attention.h)
    size_t attn_bytes;
    unsigned char *lin_scratch;   // (threads, lin_scratch_bytes) the kernel backend's linear() scratch
    size_t lin_scratch_bytes;
    int hid_ld;
    int hid_bf16;           // PL_LINEAR_BF16_OUT when the MLP hidden activation is kept in BF16 (--precision bf16)
    PlThreadPool *pool;     // borrowed
    const PlKernels *k;     // the kernel backend (pl_kernels.h)
    // per-forward state read by the tasks
    const float *in;
    int batch, rows, chunk_rows, nchunks, layer;
    int hid_rows;           // rows of each thread's slice of hid (the largest chunk planned at create)
};

static const float *pl_vit_tensor(const PlWeights *w, const char *name) {
    for (size_t i = 0; i < w->count; i++)
        if (w->tensors[i].name && strcmp(w->tensors[i].name, name) == 0) return w->tensors[i].data;
    return NULL;
}

int pl_vit_output_dim(const PlVit *vit) { return vit->out_dim; }
int pl_vit_tokens(const PlVit *vit) { return vit->T; }
size_t pl_vit_activation_bytes(const PlVit *vit) { return vit->slab_bytes; }
int pl_vit_threads(const PlVit *vit) { return vit->threads; }

double pl_vit_flops_per_image(const PlVitConfig *c, int height, int width) {
    double gh = height / c->patch, gw = width / c->patch, T = 1 + gh * gw, D = c->dim;
    double K = (double)c->in_chans * c->patch * c->patch;
    double per_block = T * D * 3 * D + 2 * T * T * D + T * D * D + 2 * T * D * c->mlp_hidden;
    return 2.0 * (gh * gw * K * D + c->depth * per_block);
}

void pl_vit_destroy(PlVit *vit) {
    if (!vit) return;
    if (vit->own_lin) pl_vit_linears_destroy(vit->lin);
    free(vit->blocks);
    free(vit->pos);
    free(vit->slab);
    free(vit);
}

static void pl_vit_plan_chunks(PlVit *v, int rows);
static void pl_vit_chunk(const PlVit *v, int task, int *r0, int *n);

// The activation slab of v (its config, options, token count and threads set): sizes of x, qkv, att, hid, scores and
// the linear() scratch in floats; returns the total in floats (64-byte aligned carving). Sets hid_ld, hid_rows and
// lin_scratch_bytes.
static size_t pl_vit_slab_plan(PlVit *v, size_t sizes[6]) {
    size_t B = (size_t)v->opt.max_batch, T = (size_t)v->T, D = (size_t)v->cfg.dim;
    v->hid_ld = v->cfg.mlp_hidden > v->K ? v->cfg.mlp_hidden : v->K;
    // Per-thread MLP/unfold buffer: rows of the largest chunk any batch up to max_batch uses (often far fewer
    // than the backend's max_rows at small batches).
    v->hid_rows = 1;
    for (int b = 1; b <= v->opt.max_batch; b++) {
        pl_vit_plan_chunks(v, b * v->T);
        if (v->chunk_rows > v->hid_rows) v->hid_rows = v->chunk_rows;
    }
    sizes[0] = B * T * D;
    sizes[1] = B * T * 3 * D;
    sizes[2] = B * T * D;
    sizes[3] = (size_t)v->threads * (size_t)v->hid_rows * (size_t)v->hid_ld;
    v->attn_bytes = (pl_flash_attention_scratch_bytes(v->T, v->cfg.dim / v->cfg.heads, v->opt.precision) + 63) & ~(size_t)63;
    sizes[4] = (size_t)v->threads * v->attn_bytes / sizeof(float);
    int widest = v->cfg.mlp_hidden > v->K ? v->cfg.mlp_hidden : v->K;
    v->lin_scratch_bytes = pl_kernels_linear_scratch_bytes(v->hid_rows, widest > v->cfg.dim ? widest : v->cfg.dim,
                                                           v->opt.precision);
    sizes[5] = (size_t)v->threads * v->lin_scratch_bytes / sizeof(float);
    size_t total = 0;
    for (int i = 0; i < 6; i++) total += (sizes[i] + 15) & ~(size_t)15;
    return total;
}

double pl_vit_memory_bytes(const PlVitConfig *cfg, const PlVitOptions *opt) {
    if (cfg->patch < 1 || opt->height < cfg->patch || opt->width < cfg->patch || opt->max_batch < 1) return 0;
    PlVit v;
    memset(&v, 0, sizeof v);
    v.cfg = *cfg;
    v.opt = *opt;
    v.gh = opt->height / cfg->patch;
    v.gw = opt->width / cfg->patch;
    double T = 1.0 + (double)v.gh * v.gw;
    if (T * opt->max_batch > 2e9) return T * opt->max_batch * cfg->dim * 5.0 * sizeof(float);   // beyond int rows
    v.T = (int)T;
    v.K = cfg->in_chans * cfg->patch * cfg->patch;
    v.threads = pl_threadpool_size(opt->pool);
    v.k = opt->kernels ? opt->kernels : pl_kernels_default();
    size_t sizes[6];
    return (double)pl_vit_slab_plan(&v, sizes) * sizeof(float) + T * cfg->dim * sizeof(float);   // + position embedding
}

void pl_vit_linears_destroy(PlVitLinears *lin) {
    if (!lin) return;
    lin->k->mat_destroy(lin->patch);
    for (int i = 0; lin->mats && i < 4 * lin->depth; i++) lin->k->mat_destroy(lin->mats[i]);
    free(lin->mats);
    free(lin);
}

PlStatus pl_vit_linears_create(const PlWeights *w, const PlVitConfig *cfg, const PlKernels *kernels,
                               PlPrecision precision, PlVitLinears **out) {
    *out = NULL;
    const int D = cfg->dim, H = cfg->mlp_hidden, K = cfg->in_chans * cfg->patch * cfg->patch;
    if (!kernels) kernels = pl_kernels_default();
    PlVitLinears *lin = pl_calloc(1, sizeof *lin);
    if (!lin) return PL_ERR_NOMEM;
    lin->k = kernels;
    lin->precision = precision;
    lin->depth = cfg->depth;
    lin->mats = pl_calloc((size_t)4 * cfg->depth, sizeof *lin->mats);
    PlStatus st = lin->mats ? PL_OK : PL_ERR_NOMEM;
    const float *pw = pl_vit_tensor(w, "patch_embed.proj.weight");
    if (st == PL_OK && !pw) st = PL_FAIL(PL_ERR_ARG, "weights lack 'patch_embed.proj.weight' (validate them with pl_vit_config_infer first)");
    if (st == PL_OK) st = lin->k->mat_create(pw, NULL, D, K, precision, &lin->patch);
    static const char *names[4] = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};
    const int rows[4] = {3 * D, D, H, D}, cols[4] = {D, D, D, H};
    for (int i = 0; i < cfg->depth && st == PL_OK; i++)
        for (int j = 0; j < 4 && st == PL_OK; j++) {
            char wn[96], bn[96];
            snprintf(wn, sizeof wn, "blocks.%d.%s.weight", i, names[j]);
            snprintf(bn, sizeof bn, "blocks.%d.%s.bias", i, names[j]);
            const float *wt = pl_vit_tensor(w, wn), *bt = pl_vit_tensor(w, bn);
            if (!wt || !bt) st = PL_FAIL(PL_ERR_ARG, "weights lack '%s' (validate them with pl_vit_config_infer first)", !wt ? wn : bn);
            else st = lin->k->mat_create(wt, bt, rows[j], cols[j], precision, &lin->mats[4 * i + j]);
        }
    if (st != PL_OK) {
        pl_vit_linears_destroy(lin);
        return pl_error_wrap("preparing the ViT's weights for the %s kernels at %s", kernels->name,
                             pl_precision_name(precision));
    }
    *out = lin;
    return PL_OK;
}

// Plan every linear for every row count a forward up to max_batch images uses (the row chunks of
// pl_vit_plan_chunks), so a forward never creates anything. Identical shapes share one plan inside the backend, so
// planning block 0's linears (and the patch embedding) covers every block.
static PlStatus pl_vit_plan_linears(PlVit *v) {
    const int D = v->cfg.dim, H = v->cfg.mlp_hidden, K = v->K;
    const PlKernels *k = v->k;
    int last = -1;
    for (int batch = 1; batch <= v->opt.max_batch; batch++) {
        pl_vit_plan_chunks(v, batch * v->T);
        for (int t = 0; t < v->nchunks; t++) {
            int r0, n;
            pl_vit_chunk(v, t, &r0, &n);
            if (n <= 0 || n == last) continue;
            last = n;
            const PlVitBlockW *b = &v->blocks[0];
            PL_TRY(k->mat_plan(v->patch, n, K, D, 0));
            PL_TRY(k->mat_plan(b->qkv, n, D, 3 * D, 0));
            PL_TRY(k->mat_plan(b->proj, n, D, D, PL_LINEAR_ACCUMULATE));
            PL_TRY(k->mat_plan(b->fc1, n, D, H, PL_LINEAR_GELU | v->hid_bf16));
            PL_TRY(k->mat_plan(b->fc2, n, H, D, PL_LINEAR_ACCUMULATE | (v->hid_bf16 ? PL_LINEAR_BF16_IN : 0)));
        }
    }
    return PL_OK;
}

PlStatus pl_vit_create(const PlWeights *w, const PlVitConfig *cfg, const PlVitOptions *opt, PlVit **out) {
    *out = NULL;
    const PlVitConfig *c = cfg;
    PL_TRY(pl_vit_config_check(c, opt->height, opt->width));
    if (opt->max_batch < 1 || opt->max_batch > 65536) return PL_FAIL(PL_ERR_ARG, "batch size %d out of range 1..65536", opt->max_batch);
    if (opt->avgpool && opt->last_n > 1)
        return PL_FAIL(PL_ERR_ARG, "--avgpool with last-n %d: DINO's eval_linear defines average pooling only with n_last_blocks = 1",
                       opt->last_n);
    if (opt->last_n < 0 || opt->last_n > c->depth)
        return PL_FAIL(PL_ERR_ARG, "last-n %d out of range 1..%d (the model has %d blocks)", opt->last_n, c->depth, c->depth);

    PlVit *v = pl_calloc(1, sizeof *v);
    if (!v) return PL_ERR_NOMEM;
    v->cfg = *c;
    v->opt = *opt;
    v->T = pl_vit_config_tokens(c, opt->height, opt->width, &v->gh, &v->gw);
    v->K = c->in_chans * c->patch * c->patch;
    v->last_n = opt->last_n > 1 ? opt->last_n : 1;
    v->out_dim = opt->avgpool ? 2 * c->dim : v->last_n * c->dim;
    v->pool = opt->pool;
    v->k = opt->kernels ? opt->kernels : pl_kernels_default();
    v->hid_bf16 = opt->precision == PL_PRECISION_BF16 ? PL_LINEAR_BF16_OUT : 0;
    v->threads = pl_threadpool_size(opt->pool);
    const int D = c->dim;

    v->patch_b = pl_vit_tensor(w, "patch_embed.proj.bias");
    v->cls = pl_vit_tensor(w, "cls_token");
    v->norm_w = pl_vit_tensor(w, "norm.weight");
    v->norm_b = pl_vit_tensor(w, "norm.bias");
    const float *pos_src = pl_vit_tensor(w, "pos_embed");
    v->blocks = pl_calloc((size_t)c->depth, sizeof *v->blocks);
    if (!v->blocks) goto nomem;
    // (the linears' weights and biases are looked up, and a missing one named, by pl_vit_linears_create)
    int missing = !v->patch_b || !v->cls || !v->norm_w || !v->norm_b || !pos_src;
    for (int i = 0; i < c->depth && !missing; i++) {
        PlVitBlockW *b = &v->blocks[i];
        char n[96];
#define PL_W(field, suffix) (snprintf(n, sizeof n, "blocks.%d." suffix, i), b->field = pl_vit_tensor(w, n), missing |= !b->field)
        PL_W(n1w, "norm1.weight");
        PL_W(n1b, "norm1.bias");
        PL_W(n2w, "norm2.weight");
        PL_W(n2b, "norm2.bias");
#undef PL_W
    }
    if (missing) {
        pl_vit_destroy(v);
        return PL_FAIL(PL_ERR_ARG, "weights do not match the config (validate them with pl_vit_config_infer first)");
    }

    // Position embedding for this input size (DINO: untouched when the grid matches and H == W).
    v->pos = pl_malloc((size_t)v->T * D * sizeof(float));
    if (!v->pos) goto nomem;
    memcpy(v->pos, pos_src, (size_t)D * sizeof(float));
    int npatch = v->gh * v->gw, grid = c->pos_grid;
    if (npatch == grid * grid && opt->height == opt->width)
        memcpy(v->pos + D, pos_src + D, (size_t)npatch * D * sizeof(float));
    else
        pl_vit_pos_resize(pos_src + D, grid, D, v->gh, v->gw, v->pos + D);

    PlStatus st = PL_OK;
    if (opt->linears) {
        v->lin = opt->linears;
        if (v->lin->k != v->k || v->lin->precision != opt->precision || v->lin->depth != c->depth)
            st = PL_FAIL(PL_ERR_ARG, "prepared linears are for the %s kernels at %s, not %s at %s", v->lin->k->name,
                         pl_precision_name(v->lin->precision), v->k->name, pl_precision_name(opt->precision));
    } else {
        st = pl_vit_linears_create(w, c, v->k, opt->precision, &v->lin);
        v->own_lin = st == PL_OK;
    }
    if (st == PL_OK) {
        v->patch = v->lin->patch;
        for (int i = 0; i < c->depth; i++) {
            PlVitBlockW *b = &v->blocks[i];
            b->qkv = v->lin->mats[4 * i];
            b->proj = v->lin->mats[4 * i + 1];
            b->fc1 = v->lin->mats[4 * i + 2];
            b->fc2 = v->lin->mats[4 * i + 3];
        }
        st = pl_vit_plan_linears(v);
    }
    if (st != PL_OK) {
        pl_vit_destroy(v);
        return st;
    }

    // One slab for every activation.
    size_t B = (size_t)opt->max_batch, sizes[6];
    size_t total = pl_vit_slab_plan(v, sizes);
    if (total > ((size_t)1 << 40) / sizeof(float)) {
        pl_vit_destroy(v);
        return PL_FAIL(PL_ERR_LIMIT, "activations for batch %zu at %dx%d would need %zu GiB", B, opt->height, opt->width,
                       total * sizeof(float) >> 30);
    }
    v->slab_bytes = total * sizeof(float);
    if (posix_memalign((void **)&v->slab, 64, v->slab_bytes) != 0) {
        PlStatus st = PL_FAIL(PL_ERR_NOMEM, "cannot allocate %zu MiB of activations", v->slab_bytes >> 20);
        v->slab = NULL;
        pl_vit_destroy(v);
        return st;
    }
    memset(v->slab, 0, v->slab_bytes);   // touch every page now, not in the first forward
    float *p = v->slab;
    float **dst[6] = {&v->x, &v->qkv, &v->att, &v->hid, (float **)&v->scores, (float **)&v->lin_scratch};
    for (int i = 0; i < 6; i++) {
        *dst[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    // LayerNorm outputs reuse att: within a row chunk, att is dead once proj has read it, and the
    // LN1 output is dead once the qkv GEMM of the same chunk has read it, before attention writes att.
    v->xn = v->att;
    *out = v;
    return PL_OK;
nomem:
    pl_vit_destroy(v);
    return PL_ERR_NOMEM;
}

// ---- row phases ----

// xn = LN1(x); qkv = xn Wqkv^T + b, for rows [r0, r0 + n).
static void *pl_vit_lin_scratch(const PlVit *v, int thread) {
    return v->lin_scratch_bytes ? v->lin_scratch + (size_t)thread * v->lin_scratch_bytes : NULL;
}

static void pl_vit_rows_qkv(PlVit *v, const PlVitBlockW *b, int r0, int n, int thread) {
    const int D = v->cfg.dim;
    float *x = v->x + (size_t)r0 * D, *xn = v->xn + (size_t)r0 * D, *qkv = v->qkv + (size_t)r0 * 3 * D;
    pl_vit_layernorm(x, D, xn, D, n, D, b->n1w, b->n1b, v->cfg.ln_eps);
    v->k->linear(b->qkv, n, xn, D, 0, qkv, 3 * D, pl_vit_lin_scratch(v, thread));
}

// x += proj(att); x += fc2(gelu(fc1(LN2(x)))), for rows [r0, r0 + n).
static void pl_vit_rows_mlp(PlVit *v, const PlVitBlockW *b, int r0, int n, int thread) {
    const int D = v->cfg.dim, H = v->cfg.mlp_hidden;
    float *x = v->x + (size_t)r0 * D, *xn = v->xn + (size_t)r0 * D, *att = v->att + (size_t)r0 * D;
    float *hid = v->hid + (size_t)thread * v->hid_rows * v->hid_ld;   // (n, H)
    void *scratch = pl_vit_lin_scratch(v, thread);
    v->k->linear(b->proj, n, att, D, PL_LINEAR_ACCUMULATE, x, D, scratch);
    pl_vit_layernorm(x, D, xn, D, n, D, b->n2w, b->n2b, v->cfg.ln_eps);
    // BF16: fc1 stores its GELU output as BF16 and fc2 reads it as such (the rounding fc2 would do anyway, without
    // writing, reading and converting the widest activation in FP32)
    v->k->linear(b->fc1, n, xn, D, PL_LINEAR_GELU | v->hid_bf16, hid, H, scratch);
    v->k->linear(b->fc2, n, hid, H, PL_LINEAR_ACCUMULATE | (v->hid_bf16 ? PL_LINEAR_BF16_IN : 0), x, D, scratch);
}

// Patch embedding for rows [r0, r0 + n): unfold each patch (C, p, p) into a row, one GEMM with the
// conv weight (D, C*p*p), then bias + position; CLS rows get cls_token + pos[0].
static void pl_vit_rows_embed(PlVit *v, int r0, int n, int thread) {
    const int D = v->cfg.dim, C = v->cfg.in_chans, P = v->cfg.patch, K = v->K, T = v->T;
    const int H = v->opt.height, W = v->opt.width;
    float *u = v->hid + (size_t)thread * v->hid_rows * v->hid_ld;   // (n, K)
    for (int r = r0; r < r0 + n; r++) {
        int b = r / T, t = r % T;
        float *row = u + (size_t)(r - r0) * K;
        if (t == 0) {
            memset(row, 0, (size_t)K * sizeof(float));
            continue;
        }
        int py = (t - 1) / v->gw, px = (t - 1) % v->gw;
        for (int ch = 0; ch < C; ch++) {
            const float *img = v->in + ((size_t)b * C + ch) * H * W;
            for (int ky = 0; ky < P; ky++)
                memcpy(row + ((size_t)ch * P + ky) * P, img + (size_t)(py * P + ky) * W + (size_t)px * P, (size_t)P * sizeof(float));
        }
    }
    float *x = v->x + (size_t)r0 * D;
    v->k->linear(v->patch, n, u, K, 0, x, D, pl_vit_lin_scratch(v, thread));
    for (int r = r0; r < r0 + n; r++) {
        int t = r % T;
        float *xr = v->x + (size_t)r * D;
        const float *pos = v->pos + (size_t)t * D;
        if (t == 0)
            for (int i = 0; i < D; i++) xr[i] = v->cls[i] + pos[i];
        else
            for (int i = 0; i < D; i++) xr[i] += v->patch_b[i] + pos[i];
    }
}

// Chunk boundaries: the balanced split point rounded down to a multiple of the backend's row_align, so every
// row meets the same GEMM micro-kernel tiling whatever the chunk count (see pl_vit_forward).
static int pl_vit_chunk_start(const PlVit *v, int task) {
    if (task >= v->nchunks) return v->rows;
    long s = (long)task * v->rows / v->nchunks;
    return (int)(s / v->k->row_align * v->k->row_align);
}

static void pl_vit_chunk(const PlVit *v, int task, int *r0, int *n) {
    *r0 = pl_vit_chunk_start(v, task);
    *n = pl_vit_chunk_start(v, task + 1) - *r0;
}

// Plan the row chunks of a forward over `rows` token rows: at most about the backend's max_rows rows each, a
// multiple of the thread count when there are enough rows (equal shares), about PL_VIT_MIN_ROWS rows or more each
// (GEMM efficiency). Chunks start on multiples of the backend's row_align rows (OpenBLAS: 48, as it rounds a row
// differently depending on where it falls in its micro-kernel tiles; oneDNN: any row), which makes every row's
// result independent of the chunk count, so embeddings are bit-identical for any thread count (and so for any MPI
// rank count). Sets rows, nchunks and chunk_rows (the largest chunk).
static void pl_vit_plan_chunks(PlVit *v, int rows) {
    int span = v->k->max_rows - v->k->row_align;   // a chunk's share before rounding its start down
    int nchunks = (rows + span - 1) / span;
    nchunks = (nchunks + v->threads - 1) / v->threads * v->threads;
    if (rows / nchunks < PL_VIT_MIN_ROWS) {
        nchunks = rows / PL_VIT_MIN_ROWS;
        if (nchunks < 1) nchunks = 1;
    }
    v->rows = rows;
    v->nchunks = nchunks;
    v->chunk_rows = 0;
    for (int t = 0; t < nchunks; t++) {
        int r0, n;
        pl_vit_chunk(v, t, &r0, &n);
        if (n > v->chunk_rows) v->chunk_rows = n;
    }
}

// layer < 0: patch embedding then block 0's qkv. layer = i: block i's MLP half, then block i+1's qkv
// (or, after the last block with avgpool, the final LayerNorm of every row into xn).
static void pl_vit_task_rows(void *ctx, int task, int thread) {
    PlVit *v = ctx;
    int r0, n;
    pl_vit_chunk(v, task, &r0, &n);
    if (n <= 0) return;
    int next = v->layer + 1;
    if (v->layer < 0)
        pl_vit_rows_embed(v, r0, n, thread);
    else
        pl_vit_rows_mlp(v, &v->blocks[v->layer], r0, n, thread);
    if (next < v->cfg.depth)
        pl_vit_rows_qkv(v, &v->blocks[next], r0, n, thread);
    else if (v->opt.avgpool)
        pl_vit_layernorm(v->x + (size_t)r0 * v->cfg.dim, v->cfg.dim, v->xn + (size_t)r0 * v->cfg.dim, v->cfg.dim, n,
                         v->cfg.dim, v->norm_w, v->norm_b, v->cfg.ln_eps);
}

// ---- attention: task = (image, head), the fused flash-style kernel (no (T, T) matrix) ----
static void pl_vit_task_attention(void *ctx, int task, int thread) {
    PlVit *v = ctx;
    const int D = v->cfg.dim, T = v->T, nh = v->cfg.heads, hd = D / nh;
    int b = task / nh, h = task % nh;
    const float *q = v->qkv + (size_t)b * T * 3 * D + (size_t)h * hd;
    float *o = v->att + (size_t)b * T * D + (size_t)h * hd;
    pl_flash_attention_forward(T, hd, 1.0f / sqrtf((float)hd), q, q + D, q + 2 * D, 3 * D, o, D, NULL, v->opt.precision,
                               v->scores + (size_t)thread * v->attn_bytes);
}

// out[b, slot*D ...] = final LayerNorm of image b's CLS row.
static void pl_vit_emit_cls(PlVit *v, float *out, int slot) {
    const int D = v->cfg.dim;
    for (int b = 0; b < v->batch; b++)
        pl_vit_layernorm(v->x + (size_t)b * v->T * D, D, out + (size_t)b * v->out_dim + (size_t)slot * D, D, 1, D,
                         v->norm_w, v->norm_b, v->cfg.ln_eps);
}

PlStatus pl_vit_forward(PlVit *v, const float *x, int batch, float *out) {
    if (!v || !x || !out) return PL_FAIL(PL_ERR_ARG, "pl_vit_forward: NULL argument");
    if (batch < 1 || batch > v->opt.max_batch)
        return PL_FAIL(PL_ERR_ARG, "batch %d out of range 1..%d (the max batch given at create)", batch, v->opt.max_batch);
    const int D = v->cfg.dim, depth = v->cfg.depth;
    v->in = x;
    v->batch = batch;
    pl_vit_plan_chunks(v, batch * v->T);
    if (v->chunk_rows > v->hid_rows)
        return PL_FAIL(PL_ERR_INTERNAL, "row chunk of %d rows exceeds the %d planned at create", v->chunk_rows, v->hid_rows);

    v->layer = -1;
    pl_threadpool_run(v->pool, pl_vit_task_rows, v, v->nchunks);
    for (int i = 0; i < depth; i++) {
        pl_threadpool_run(v->pool, pl_vit_task_attention, v, batch * v->cfg.heads);
        v->layer = i;
        pl_threadpool_run(v->pool, pl_vit_task_rows, v, v->nchunks);
        int slot = i - (depth - v->last_n);
        if (slot >= 0 && !v->opt.avgpool) pl_vit_emit_cls(v, out, slot);
    }
    if (v->opt.avgpool) {
        // DINO eval_linear: cat((cls.unsqueeze(-1), mean(patch tokens).unsqueeze(-1)), -1).reshape(B, -1)
        const int T = v->T;
        for (int b = 0; b < batch; b++) {
            const float *xb = v->xn + (size_t)b * T * D;
            float *o = out + (size_t)b * v->out_dim;
            for (int i = 0; i < D; i++) o[2 * i] = xb[i];
            for (int i = 0; i < D; i++) o[2 * i + 1] = 0.0f;
            for (int t = 1; t < T; t++)
                for (int i = 0; i < D; i++) o[2 * i + 1] += xb[(size_t)t * D + i];
            for (int i = 0; i < D; i++) o[2 * i + 1] /= (float)(T - 1);
        }
    }
    return PL_OK;
}
