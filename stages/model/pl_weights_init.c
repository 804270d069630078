// Deterministic random ViT weights with DINO's initialisation (protloc's PlRng: xoshiro256** + Box-Muller).
#include "pl_weights_init.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pl_rng.h"

// DINO's trunc_normal_(std=0.02) truncates at the absolute bounds a=-2, b=2.
static void fill_trunc_normal(PlRng *r, float *x, int64_t n, double std) {
    for (int64_t i = 0; i < n; i++) {
        double v;
        do v = pl_rng_normal(r) * std;
        while (v < -2.0 || v > 2.0);
        x[i] = (float)v;
    }
}

static void fill_const(PlRng *r, float *x, int64_t n, float value, float jitter) {
    for (int64_t i = 0; i < n; i++) x[i] = value + (jitter > 0 ? (float)(pl_rng_normal(r) * jitter) : 0.0f);
}

typedef enum { INIT_TRUNC, INIT_ONE, INIT_ZERO } InitKind;

static PlStatus add(PlWeights *w, PlRng *r, const PlVitInitSpec *s, const char *name, InitKind kind, int ndim,
                    int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    float *x;
    PL_TRY(pl_weights_add(w, name, ndim, shape, &x));
    snprintf(w->tensors[w->count - 1].dtype, sizeof w->tensors[0].dtype, "F32");
    int64_t n = pl_weight_tensor_numel(&w->tensors[w->count - 1]);
    if (kind == INIT_TRUNC) fill_trunc_normal(r, x, n, 0.02);
    else fill_const(r, x, n, kind == INIT_ONE ? 1.0f : 0.0f, s->jitter);
    return PL_OK;
}

const char *pl_vit_arch_name(int dim, int depth, int heads) {
    if (depth == 12 && dim == 192 && heads == 3) return "vit_tiny";
    if (depth == 12 && dim == 384 && heads == 6) return "vit_small";
    if (depth == 12 && dim == 768 && heads == 12) return "vit_base";
    return "vit_custom";
}

static PlStatus init_validate(const PlVitInitSpec *s) {
    if (s->dim < 1 || s->dim > 8192) return PL_FAIL(PL_ERR_ARG, "--dim %d must be in 1..8192", s->dim);
    if (s->depth < 1 || s->depth > 128) return PL_FAIL(PL_ERR_ARG, "--depth %d must be in 1..128", s->depth);
    if (s->heads < 1 || s->dim % s->heads != 0)
        return PL_FAIL(PL_ERR_ARG, "--heads %d must be positive and divide --dim %d", s->heads, s->dim);
    if (s->patch < 1 || s->patch > 256) return PL_FAIL(PL_ERR_ARG, "--patch %d must be in 1..256", s->patch);
    if (s->in_chans < 1 || s->in_chans > 64)
        return PL_FAIL(PL_ERR_ARG, "--in-chans %d must be in 1..64", s->in_chans);
    if (s->img_size < s->patch || s->img_size > 8192)
        return PL_FAIL(PL_ERR_ARG, "--img-size %d must be in %d..8192 (at least one patch)", s->img_size, s->patch);
    if (s->mlp_ratio < 1 || s->mlp_ratio > 16) return PL_FAIL(PL_ERR_ARG, "mlp ratio %d must be in 1..16", s->mlp_ratio);
    if (!(s->jitter >= 0.0f && s->jitter <= 10.0f)) return PL_FAIL(PL_ERR_ARG, "--jitter must be in 0..10");
    double params = (double)s->depth * (double)s->dim * s->dim * (4.0 + 2.0 * s->mlp_ratio) +
                    (double)s->dim * s->in_chans * s->patch * s->patch +
                    (double)s->dim * ((double)(s->img_size / s->patch) * (s->img_size / s->patch) + 1);
    if (params * 4 > 16e9) return PL_FAIL(PL_ERR_LIMIT, "the model would hold %.3g parameters (limit 4e9)", params);
    return PL_OK;
}

PlStatus pl_weights_init_vit(const PlVitInitSpec *s, PlWeights *w) {
    memset(w, 0, sizeof *w);
    PL_TRY(init_validate(s));
    PlRng r;
    pl_rng_seed(&r, s->seed ^ 0x70726f746c6f63ull);
    int64_t D = s->dim, grid = s->img_size / s->patch, H = (int64_t)s->mlp_ratio * D;
    char name[96];
    PlStatus st = add(w, &r, s, "cls_token", INIT_TRUNC, 3, 1, 1, D, 0);
    if (st == PL_OK) st = add(w, &r, s, "pos_embed", INIT_TRUNC, 3, 1, 1 + grid * grid, D, 0);
    if (st == PL_OK) st = add(w, &r, s, "patch_embed.proj.weight", INIT_TRUNC, 4, D, s->in_chans, s->patch, s->patch);
    if (st == PL_OK) st = add(w, &r, s, "patch_embed.proj.bias", INIT_ZERO, 1, D, 0, 0, 0);
    for (int b = 0; st == PL_OK && b < s->depth; b++) {
        static const struct { const char *suffix; InitKind kind; int rows, cols; } parts[] = {
            {"norm1.weight", INIT_ONE, 1, 0},      {"norm1.bias", INIT_ZERO, 1, 0},
            {"attn.qkv.weight", INIT_TRUNC, 3, 1}, {"attn.qkv.bias", INIT_ZERO, 3, 0},
            {"attn.proj.weight", INIT_TRUNC, 1, 1}, {"attn.proj.bias", INIT_ZERO, 1, 0},
            {"norm2.weight", INIT_ONE, 1, 0},      {"norm2.bias", INIT_ZERO, 1, 0},
            {"mlp.fc1.weight", INIT_TRUNC, -1, 1}, {"mlp.fc1.bias", INIT_ZERO, -1, 0},
            {"mlp.fc2.weight", INIT_TRUNC, 1, -1}, {"mlp.fc2.bias", INIT_ZERO, 1, 0},
        };
        for (size_t k = 0; st == PL_OK && k < sizeof parts / sizeof parts[0]; k++) {
            snprintf(name, sizeof name, "blocks.%d.%s", b, parts[k].suffix);
            int64_t rows = parts[k].rows < 0 ? H : parts[k].rows * D;
            int64_t cols = parts[k].cols < 0 ? H : parts[k].cols * D;
            st = parts[k].cols ? add(w, &r, s, name, parts[k].kind, 2, rows, cols, 0, 0)
                               : add(w, &r, s, name, parts[k].kind, 1, rows, 0, 0, 0);
        }
    }
    if (st == PL_OK) st = add(w, &r, s, "norm.weight", INIT_ONE, 1, D, 0, 0, 0);
    if (st == PL_OK) st = add(w, &r, s, "norm.bias", INIT_ZERO, 1, D, 0, 0, 0);
    if (st != PL_OK) {
        pl_weights_free(w);
        return st;
    }
    snprintf(w->format, sizeof w->format, "generated");
    w->args_heads = s->heads;
    w->args_patch_size = s->patch;
    snprintf(w->args_arch, sizeof w->args_arch, "%s", pl_vit_arch_name(s->dim, s->depth, s->heads));
    return PL_OK;
}
