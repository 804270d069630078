// The trainable ViT backbone module: layout, named parameters, activation carving, and the forward/backward of one
// micro-batch at any input size (see pl_vit_backbone.h).
#include "pl_vit_backbone.h"

#include <stdio.h>
#include <string.h>

#include "pl_rng.h"
#include "pl_vit_kernels.h"

static const char *const block_names[PL_BLOCK_TENSORS] = {
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
    "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"};

int pl_backbone_tensor_count(const PlVitConfig *cfg) { return 4 + cfg->depth * PL_BLOCK_TENSORS + 2; }

void pl_backbone_tensors(const PlVitConfig *c, PlTrainTensor *table, int *count, size_t *off) {
    const int64_t D = c->dim, Hm = c->mlp_hidden, G = c->pos_grid, P = c->patch;
    pl_train_tensor_add(table, count, off, "cls_token", 3, (int64_t[]){1, 1, D}, 0, 0);
    pl_train_tensor_add(table, count, off, "pos_embed", 3, (int64_t[]){1, 1 + G * G, D}, 0, 0);
    pl_train_tensor_add(table, count, off, "patch_embed.proj.weight", 4, (int64_t[]){D, c->in_chans, P, P}, 0, 0);
    pl_train_tensor_add(table, count, off, "patch_embed.proj.bias", 1, (int64_t[]){D}, 0, 0);
    const int64_t shapes[PL_BLOCK_TENSORS][2] = {{D, 0}, {D, 0}, {3 * D, D}, {3 * D, 0}, {D, D}, {D, 0},
                                                 {D, 0}, {D, 0}, {Hm, D},   {Hm, 0},    {D, Hm}, {D, 0}};
    for (int l = 0; l < c->depth; l++)
        for (int j = 0; j < PL_BLOCK_TENSORS; j++) {
            char n[64];
            snprintf(n, sizeof n, "blocks.%d.%s", l, block_names[j]);
            pl_train_tensor_add(table, count, off, n, shapes[j][1] ? 2 : 1, shapes[j], l + 1, 0);
        }
    pl_train_tensor_add(table, count, off, "norm.weight", 1, (int64_t[]){D}, c->depth + 1, 0);
    pl_train_tensor_add(table, count, off, "norm.bias", 1, (int64_t[]){D}, c->depth + 1, 0);
}

void pl_backbone_point(PlBackboneParams *p, const PlVitConfig *cfg, const PlTrainTensor *first, float *slab) {
    const PlTrainTensor *x = first;
    p->cls = slab + (x++)->offset;
    p->pos = slab + (x++)->offset;
    p->patch_w = slab + (x++)->offset;
    p->patch_b = slab + (x++)->offset;
    for (int l = 0; l < cfg->depth; l++) {
        PlBlockParams *b = &p->blocks[l];
        float **named[PL_BLOCK_TENSORS] = {&b->ln1_w,  &b->ln1_b, &b->qkv_w, &b->qkv_b, &b->proj_w, &b->proj_b,
                                           &b->ln2_w,  &b->ln2_b, &b->fc1_w, &b->fc1_b, &b->fc2_w,  &b->fc2_b};
        for (int j = 0; j < PL_BLOCK_TENSORS; j++) *named[j] = slab + (x++)->offset;
    }
    p->norm_w = slab + (x++)->offset;
    p->norm_b = slab + x->offset;
}

static size_t attn_floats(const PlBackbone *bb, int T) {
    const PlVitConfig *c = &bb->cfg;
    return (pl_attention_scratch_bytes(T, c->dim, c->heads, bb->precision) + sizeof(float) - 1) / sizeof(float);
}

size_t pl_backbone_acts_carve(const PlBackbone *bb, int max_images, int height, int width, PlBackboneActs *a,
                              float *base) {
    const PlVitConfig *c = &bb->cfg;
    const int Tcap = pl_vit_config_tokens(c, height, width, NULL, NULL);
    const size_t m = (size_t)max_images, T = (size_t)Tcap, D = (size_t)c->dim, Hm = (size_t)c->mlp_hidden;
    const size_t rows = m * T, NH = (size_t)c->heads, L = (size_t)c->depth;
    const size_t K = (size_t)c->in_chans * c->patch * c->patch;
    size_t off = 0;
#define PL_CARVE(ptr, n)                                   \
    do {                                                   \
        if (base) (ptr) = base + off;                      \
        off += ((size_t)(n) + 15) & ~(size_t)15;           \
    } while (0)
    PlBackboneActs *x = a;
    PlBlockActs tmp;
    if (base) {
        memset(a, 0, sizeof *a);
        a->max_images = max_images;
        a->max_tokens = Tcap;
    }
    PL_CARVE(x->u, m * (T - 1) * K);
    PL_CARVE(x->xs, (L + 1) * rows * D);
    size_t nblk = bb->recompute ? 1 : L;
    for (size_t l = 0; l < nblk; l++) {
        PlBlockActs *b = base ? &a->blk[l] : &tmp;
        PL_CARVE(b->ln1, rows * D);
        PL_CARVE(b->ln1m, rows);
        PL_CARVE(b->ln1r, rows);
        PL_CARVE(b->qkv, rows * 3 * D);
        PL_CARVE(b->lse, m * NH * T);
        if (Tcap <= PL_ATTN_GEMM_MAX_TOKENS) PL_CARVE(b->probs, m * NH * T * T);
        PL_CARVE(b->att, rows * D);
        PL_CARVE(b->xmid, rows * D);
        PL_CARVE(b->ln2, rows * D);
        PL_CARVE(b->ln2m, rows);
        PL_CARVE(b->ln2r, rows);
        PL_CARVE(b->fc1, rows * Hm);
        PL_CARVE(b->gel, rows * Hm);
    }
    if (base && bb->recompute)
        for (size_t l = 1; l < L; l++) a->blk[l] = a->blk[0];
    PL_CARVE(x->pos, T * D);
    PL_CARVE(x->cls, m * D);
    PL_CARVE(x->lnf, m * D);
    PL_CARVE(x->lnfm, m);
    PL_CARVE(x->lnfr, m);
    PL_CARVE(x->scale, L * 2 * m);
    PL_CARVE(x->dres, rows * D);
    PL_CARVE(x->dtmp, rows * D);
    PL_CARVE(x->dln, rows * D);
    PL_CARVE(x->dqkv, rows * 3 * D);
    PL_CARVE(x->datt, rows * D);
    PL_CARVE(x->dh, rows * Hm);
    PL_CARVE(x->attn_scratch, attn_floats(bb, Tcap));
    PL_CARVE(x->dpos, T * D);
    PL_CARVE(x->dcls, m * D);
#undef PL_CARVE
    return off;
}

size_t pl_backbone_gemm_cap(const PlVitConfig *c, size_t rows) {
    const size_t D = (size_t)c->dim, Hm = (size_t)c->mlp_hidden, K = (size_t)c->in_chans * c->patch * c->patch;
    size_t width = 3 * D > Hm ? 3 * D : Hm;
    width = width > K ? width : K;
    size_t sizes[] = {rows * width, Hm * D, 3 * D * D, D * K}, cap = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) cap = sizes[i] > cap ? sizes[i] : cap;
    return cap;
}

// ---- forward ----

static float *block_input(const PlBackbone *bb, const PlBackboneActs *a, int l) {
    return a->xs + (size_t)l * a->max_images * a->max_tokens * bb->cfg.dim;
}

// A branch's gradient: rows of sample b (T rows each) = s[b] * src rows (its drop-path scale), written to dst and
// returned; src itself when every scale is 1 (no drop path: the same values without a copy).
static const float *scale_rows(float *dst, const float *src, const float *s, int n, int T, int D) {
    int all_one = 1;
    for (int b = 0; b < n; b++) all_one &= s[b] == 1.0f;
    if (all_one) return src;
    for (int b = 0; b < n; b++) {
        size_t o = (size_t)b * T * D, len = (size_t)T * D;
        float f = s[b];
        for (size_t i = 0; i < len; i++) dst[o + i] = f * src[o + i];
    }
    return dst;
}

// dst rows of sample b = base + s[b] * src rows (the residual add of a drop-path scaled branch; dst is neither).
static void add_scaled_rows(float *restrict dst, const float *restrict base, const float *restrict src, const float *s,
                            int n, int T, int D) {
    for (int b = 0; b < n; b++) {
        size_t o = (size_t)b * T * D, len = (size_t)T * D;
        float f = s[b];
        for (size_t i = 0; i < len; i++) dst[o + i] = base[o + i] + f * src[o + i];
    }
}

// Drop-path scale per block, branch and sample: 0 or 1 / (1 - p) from the sample's key; 1 without keys.
static void set_drop_path(const PlBackbone *bb, PlBackboneActs *a, int n, const uint64_t *keys) {
    const int L = bb->cfg.depth, m = a->max_images;
    for (int l = 0; l < L; l++) {
        double p = L > 1 ? (double)bb->drop_path * l / (L - 1) : 0.0;   // torch.linspace(0, rate, depth)
        for (int j = 0; j < 2; j++)
            for (int b = 0; b < n; b++) {
                float s = 1.0f;
                if (p > 0.0 && keys) {
                    PlRng r;
                    pl_rng_seed(&r, pl_rng_mix(keys[b], (uint64_t)(2 * l + j)));
                    s = pl_rng_uniform(&r) >= p ? (float)(1.0 / (1.0 - p)) : 0.0f;
                }
                a->scale[((size_t)l * 2 + j) * m + b] = s;
            }
    }
}

// x (n, C, H, W) -> block 0's input (n, T, D): patch embedding, CLS token, position embedding for this size.
static void forward_embed(const PlBackbone *bb, PlBackboneActs *a, const PlTrainGemm *g, const float *x) {
    const PlVitConfig *c = &bb->cfg;
    const int D = c->dim, T = a->T, np = T - 1, K = c->in_chans * c->patch * c->patch, G = c->pos_grid, n = a->n;
    const float *pos = bb->p.pos, *cls = bb->p.cls, *pw = bb->p.patch_w, *pb = bb->p.patch_b;
    PlProfMark mk = pl_prof_begin(g->prof);
    memcpy(a->pos, pos, (size_t)D * sizeof(float));
    if (a->interp)
        pl_vit_pos_resize(pos + D, G, D, a->gh, a->gw, a->pos + D);
    else
        memcpy(a->pos + D, pos + D, (size_t)np * D * sizeof(float));
    pl_patch_unfold(a->u, x, n, c->in_chans, a->height, a->width, c->patch, a->gh, a->gw);
    float *x0 = a->xs;
    for (int b = 0; b < n; b++) {
        float *xb = x0 + (size_t)b * T * D;
        pl_train_gemm(g, 0, 1, np, D, K, 1.0f, a->u + (size_t)b * np * K, K, pw, K, 0.0f, xb + D, D);
        for (int i = 0; i < D; i++) xb[i] = cls[i] + a->pos[i];
        for (int r = 1; r < T; r++)
            for (int i = 0; i < D; i++) xb[(size_t)r * D + i] += pb[i] + a->pos[(size_t)r * D + i];
    }
    pl_prof_end(g->prof, mk, PL_PROF_PATCH_FWD, 2.0 * n * np * D * K);
}

static void forward_block(const PlBackbone *bb, PlBackboneActs *a, const PlTrainGemm *g, int l) {
    const PlVitConfig *c = &bb->cfg;
    const PlBlockParams *p = &bb->p.blocks[l];
    const int D = c->dim, Hm = c->mlp_hidden, T = a->T, n = a->n, rows = n * T;
    const float *x = block_input(bb, a, l);
    float *xout = block_input(bb, a, l + 1);
    PlBlockActs *s = &a->blk[l];
    const float *sc = a->scale + (size_t)l * 2 * a->max_images;
    PlProfSlot *pr = g->prof;
    PlProfMark mk = pl_prof_begin(pr);
    pl_layernorm_forward(s->ln1, s->ln1m, s->ln1r, x, p->ln1_w, p->ln1_b, rows, D, c->ln_eps);
    pl_prof_end(pr, mk, PL_PROF_LN_FWD, 0.0);
    pl_prof_linear(pr, PL_PROF_QKV_FWD);
    pl_linear_forward(g, s->qkv, s->ln1, p->qkv_w, p->qkv_b, rows, D, 3 * D);
    mk = pl_prof_begin(pr);
    pl_attention_forward(g->k, s->att, s->lse, s->probs, s->qkv, n, T, D, c->heads, bb->precision, a->attn_scratch);
    pl_prof_end(pr, mk, PL_PROF_ATTN_FWD, 4.0 * n * T * T * D);   // QK^T and PV
    pl_prof_linear(pr, PL_PROF_PROJ_FWD);
    pl_linear_forward(g, a->dtmp, s->att, p->proj_w, p->proj_b, rows, D, D);
    mk = pl_prof_begin(pr);
    add_scaled_rows(s->xmid, x, a->dtmp, sc, n, T, D);
    pl_prof_end(pr, mk, PL_PROF_RESIDUAL, 0.0);
    mk = pl_prof_begin(pr);
    pl_layernorm_forward(s->ln2, s->ln2m, s->ln2r, s->xmid, p->ln2_w, p->ln2_b, rows, D, c->ln_eps);
    pl_prof_end(pr, mk, PL_PROF_LN_FWD, 0.0);
    pl_prof_linear(pr, PL_PROF_FC1_FWD);
    pl_linear_forward(g, s->fc1, s->ln2, p->fc1_w, p->fc1_b, rows, D, Hm);
    mk = pl_prof_begin(pr);
    pl_gelu_forward(s->gel, s->fc1, (int64_t)rows * Hm);
    pl_prof_end(pr, mk, PL_PROF_GELU_FWD, 0.0);
    pl_prof_linear(pr, PL_PROF_FC2_FWD);
    pl_linear_forward(g, a->dtmp, s->gel, p->fc2_w, p->fc2_b, rows, Hm, D);
    pl_prof_linear(pr, PL_PROF_HEAD);
    mk = pl_prof_begin(pr);
    add_scaled_rows(xout, s->xmid, a->dtmp, sc + a->max_images, n, T, D);
    pl_prof_end(pr, mk, PL_PROF_RESIDUAL, 0.0);
}

PlStatus pl_backbone_forward(const PlBackbone *bb, PlBackboneActs *a, const PlTrainGemm *g, const float *x, int n,
                             int height, int width, const uint64_t *keys) {
    const PlVitConfig *c = &bb->cfg;
    if (height < c->patch || width < c->patch)
        return PL_FAIL(PL_ERR_ARG, "input %dx%d is smaller than one %dx%d patch", height, width, c->patch, c->patch);
    int gh, gw, T = pl_vit_config_tokens(c, height, width, &gh, &gw);
    if (n < 1 || n > a->max_images || T > a->max_tokens ||
        pl_attention_scratch_bytes(T, c->dim, c->heads, bb->precision) >
            pl_attention_scratch_bytes(a->max_tokens, c->dim, c->heads, bb->precision))
        return PL_FAIL(PL_ERR_ARG, "%d images of %d tokens (%dx%d) exceed the activations' %d images of %d tokens", n, T,
                       height, width, a->max_images, a->max_tokens);
    a->n = n;
    a->height = height;
    a->width = width;
    a->gh = gh;
    a->gw = gw;
    a->T = T;
    a->interp = !(gh * gw == c->pos_grid * c->pos_grid && height == width);
    set_drop_path(bb, a, n, keys);
    forward_embed(bb, a, g, x);
    for (int l = 0; l < c->depth; l++) forward_block(bb, a, g, l);
    const int D = c->dim;
    const float *xf = block_input(bb, a, c->depth);
    for (int b = 0; b < n; b++) memcpy(a->cls + (size_t)b * D, xf + (size_t)b * T * D, (size_t)D * sizeof(float));
    pl_layernorm_forward(a->lnf, a->lnfm, a->lnfr, a->cls, bb->p.norm_w, bb->p.norm_b, n, D, c->ln_eps);
    return PL_OK;
}

// ---- backward ----

static void backward_block(const PlBackbone *bb, PlBackboneActs *a, const PlTrainGemm *g, int l, const PlBlockParams *gp,
                           float beta) {
    const PlVitConfig *c = &bb->cfg;
    const PlBlockParams *p = &bb->p.blocks[l];
    const int D = c->dim, Hm = c->mlp_hidden, T = a->T, n = a->n, rows = n * T;
    if (bb->recompute) forward_block(bb, a, g, l);
    const PlBlockActs *s = &a->blk[l];
    const float *x = block_input(bb, a, l);
    const float *sc = a->scale + (size_t)l * 2 * a->max_images;
    PlProfSlot *pr = g->prof;
    // MLP branch: xout = xmid + s2 * fc2(gelu(fc1(LN2(xmid))))
    PlProfMark mk = pl_prof_begin(pr);
    const float *dbranch = scale_rows(a->dtmp, a->dres, sc + a->max_images, n, T, D);
    pl_prof_end(pr, mk, PL_PROF_RESIDUAL, 0.0);
    pl_prof_linear(pr, PL_PROF_FC2_FWD);
    pl_linear_backward_beta(g, a->dh, 0.0f, gp->fc2_w, gp->fc2_b, beta, dbranch, s->gel, p->fc2_w, rows, Hm, D);
    mk = pl_prof_begin(pr);
    pl_gelu_backward(a->dh, a->dh, s->fc1, s->gel, (int64_t)rows * Hm);
    pl_prof_end(pr, mk, PL_PROF_GELU_BWD, 0.0);
    pl_prof_linear(pr, PL_PROF_FC1_FWD);
    pl_linear_backward_beta(g, a->dln, 0.0f, gp->fc1_w, gp->fc1_b, beta, a->dh, s->ln2, p->fc1_w, rows, D, Hm);
    mk = pl_prof_begin(pr);
    pl_layernorm_backward_beta(a->dres, gp->ln2_w, gp->ln2_b, beta, a->dln, s->xmid, p->ln2_w, s->ln2m, s->ln2r, rows, D);
    pl_prof_end(pr, mk, PL_PROF_LN_BWD, 0.0);
    // attention branch: xmid = x + s1 * proj(attn(qkv(LN1(x))))
    mk = pl_prof_begin(pr);
    dbranch = scale_rows(a->dtmp, a->dres, sc, n, T, D);
    pl_prof_end(pr, mk, PL_PROF_RESIDUAL, 0.0);
    pl_prof_linear(pr, PL_PROF_PROJ_FWD);
    pl_linear_backward_beta(g, a->datt, 0.0f, gp->proj_w, gp->proj_b, beta, dbranch, s->att, p->proj_w, rows, D, D);
    mk = pl_prof_begin(pr);
    pl_attention_backward(g->k, a->dqkv, a->datt, s->qkv, s->att, s->lse, s->probs, n, T, D, c->heads, bb->precision,
                          a->attn_scratch);
    // GEMM path: dV, dP, dQ, dK; flash: QK^T again and the same four
    double bwd_products = pl_attention_uses_gemm(g->k, s->probs, T, bb->precision) ? 8.0 : 10.0;
    pl_prof_end(pr, mk, PL_PROF_ATTN_BWD, bwd_products * n * T * T * D);
    pl_prof_linear(pr, PL_PROF_QKV_FWD);
    pl_linear_backward_beta(g, a->dln, 0.0f, gp->qkv_w, gp->qkv_b, beta, a->dqkv, s->ln1, p->qkv_w, rows, D, 3 * D);
    pl_prof_linear(pr, PL_PROF_HEAD);
    // The key bias shifts every score of a query row by the same amount, which softmax cancels: its gradient is
    // exactly zero (in float it would be rounding noise, which Adam would turn into lr-sized steps).
    memset(gp->qkv_b + D, 0, (size_t)D * sizeof(float));
    mk = pl_prof_begin(pr);
    pl_layernorm_backward_beta(a->dres, gp->ln1_w, gp->ln1_b, beta, a->dln, x, p->ln1_w, s->ln1m, s->ln1r, rows, D);
    pl_prof_end(pr, mk, PL_PROF_LN_BWD, 0.0);
}

static void backward_embed(const PlBackbone *bb, PlBackboneActs *a, const PlTrainGemm *g, const PlBackboneParams *gp,
                           int acc) {
    const PlVitConfig *c = &bb->cfg;
    const int D = c->dim, T = a->T, np = T - 1, K = c->in_chans * c->patch * c->patch, n = a->n;
    PlProfMark mk = pl_prof_begin(g->prof);
    memset(a->dpos, 0, (size_t)T * D * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *d = a->dres + (size_t)b * T * D;
        for (size_t i = 0; i < (size_t)T * D; i++) a->dpos[i] += d[i];
    }
    float *gpos = gp->pos;
    if (acc) {
        for (int i = 0; i < D; i++) gp->cls[i] += a->dpos[i];
        for (int i = 0; i < D; i++) gpos[i] += a->dpos[i];
    } else {
        memcpy(gp->cls, a->dpos, (size_t)D * sizeof(float));
        memcpy(gpos, a->dpos, (size_t)D * sizeof(float));
    }
    if (a->interp) {
        if (!acc) memset(gpos + D, 0, (size_t)c->pos_grid * c->pos_grid * D * sizeof(float));
        pl_vit_pos_resize_backward(a->dpos + D, c->pos_grid, D, a->gh, a->gw, gpos + D);
    } else if (acc) {
        for (size_t i = 0; i < (size_t)np * D; i++) gpos[D + i] += a->dpos[D + i];
    } else {
        memcpy(gpos + D, a->dpos + D, (size_t)np * D * sizeof(float));
    }
    float *gpb = gp->patch_b;
    if (!acc) memset(gpb, 0, (size_t)D * sizeof(float));
    for (int r = 1; r < T; r++)
        for (int i = 0; i < D; i++) gpb[i] += a->dpos[(size_t)r * D + i];
    for (int b = 0; b < n; b++)   // (D, np) x (np, K), images in order
        pl_train_gemm(g, 1, 0, D, K, np, 1.0f, a->dres + ((size_t)b * T + 1) * D, D, a->u + (size_t)b * np * K, K,
                      (b || acc) ? 1.0f : 0.0f, gp->patch_w, K);
    pl_prof_end(g->prof, mk, PL_PROF_PATCH_BWD, 2.0 * n * np * D * K);
}

void pl_backbone_backward(const PlBackbone *bb, PlBackboneActs *a, const PlTrainGemm *g, const float *dfeat,
                          const PlBackboneParams *grad, int accumulate) {
    const PlVitConfig *c = &bb->cfg;
    const int D = c->dim, T = a->T, n = a->n;
    const float beta = accumulate ? 1.0f : 0.0f;
    // final LayerNorm (CLS rows only), then the residual stream's gradient (n, T, D): CLS rows only
    memset(a->dcls, 0, (size_t)n * D * sizeof(float));
    pl_layernorm_backward_beta(a->dcls, grad->norm_w, grad->norm_b, beta, dfeat, a->cls, bb->p.norm_w, a->lnfm, a->lnfr,
                               n, D);
    memset(a->dres, 0, (size_t)n * T * D * sizeof(float));
    for (int b = 0; b < n; b++) memcpy(a->dres + (size_t)b * T * D, a->dcls + (size_t)b * D, (size_t)D * sizeof(float));
    for (int l = c->depth - 1; l >= 0; l--) backward_block(bb, a, g, l, &grad->blocks[l], beta);
    backward_embed(bb, a, g, grad, accumulate);
}
