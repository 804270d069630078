// The ViT architecture: pl_vit_config_infer (from checkpoint tensors, with full tensor validation), the one config
// and input-size check, and the token count of an input size (pl_vit.h).
#include "pl_vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const PlWeightTensor *pl_vit_find(const PlWeights *w, const char *name) {
    for (size_t i = 0; i < w->count; i++)
        if (w->tensors[i].name && strcmp(w->tensors[i].name, name) == 0) return &w->tensors[i];
    return NULL;
}

static void pl_vit_shape_str(const PlWeightTensor *t, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (used < size) snprintf(buf + used, size - used, ")");
}

// Require tensor `name` with the given shape (ndim entries of dims).
static PlStatus pl_vit_expect(const PlWeights *w, const char *name, int ndim, const int64_t *dims) {
    const PlWeightTensor *t = pl_vit_find(w, name);
    if (!t) return PL_FAIL(PL_ERR_FORMAT, "missing tensor '%s'", name);
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == dims[d];
    if (!ok) {
        char got[128];
        char want[128];
        PlWeightTensor tmp = {0};
        tmp.ndim = ndim;
        for (int d = 0; d < ndim; d++) tmp.shape[d] = dims[d];
        pl_vit_shape_str(t, got, sizeof got);
        pl_vit_shape_str(&tmp, want, sizeof want);
        return PL_FAIL(PL_ERR_FORMAT, "tensor '%s' has shape %s, expected %s", name, got, want);
    }
    if (!t->data) return PL_FAIL(PL_ERR_FORMAT, "tensor '%s' has no data", name);
    return PL_OK;
}

#define PL_EXPECT1(w, name, a) PL_TRY(pl_vit_expect((w), (name), 1, (const int64_t[]){(a)}))
#define PL_EXPECT2(w, name, a, b) PL_TRY(pl_vit_expect((w), (name), 2, (const int64_t[]){(a), (b)}))

// Heads from the loader's stored args / metadata: "heads=", "num_heads=" lines, or the DINO arch name.
static int pl_vit_heads_from_args(const PlWeights *w) {
    if (w->args_heads > 0) return w->args_heads;
    const char *keys[] = {"heads", "num_heads"};
    for (int k = 0; k < 2; k++) {
        size_t len;
        const char *v = pl_weights_arg(w, keys[k], &len);
        int heads = v && len > 0 ? atoi(v) : 0;   // atoi stops at the line's end
        if (heads > 0) return heads;
    }
    const char *arch = w->args_arch;
    if (strcmp(arch, "vit_tiny") == 0) return 3;
    if (strcmp(arch, "vit_small") == 0) return 6;
    if (strcmp(arch, "vit_base") == 0) return 12;
    return 0;
}

static int pl_vit_is_block_tensor(const char *name, int depth) {
    if (strncmp(name, "blocks.", 7) != 0) return 0;
    char *end = NULL;
    long i = strtol(name + 7, &end, 10);
    if (end == name + 7 || *end != '.' || i < 0 || i >= depth) return 0;
    static const char *suffixes[] = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                                     "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
                                     "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"};
    char canon[64];
    snprintf(canon, sizeof canon, "blocks.%ld.", i);
    if (strncmp(name, canon, strlen(canon)) != 0) return 0;   // e.g. "blocks.01." is not ours
    for (size_t s = 0; s < sizeof suffixes / sizeof suffixes[0]; s++)
        if (strcmp(end + 1, suffixes[s]) == 0) return 1;
    return 0;
}

PlStatus pl_vit_config_infer(const PlWeights *w, int heads, PlVitConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    if (!w || w->count == 0) return PL_FAIL(PL_ERR_FORMAT, "checkpoint holds no tensors");
    const PlWeightTensor *pw = pl_vit_find(w, "patch_embed.proj.weight");
    if (!pw) return PL_FAIL(PL_ERR_FORMAT, "missing tensor 'patch_embed.proj.weight' (not a DINO ViT backbone?)");
    if (pw->ndim != 4 || pw->shape[2] != pw->shape[3] || pw->shape[0] < 1 || pw->shape[1] < 1 || pw->shape[2] < 1 ||
        pw->shape[0] > 65536 || pw->shape[1] > 64 || pw->shape[2] > 256) {
        char got[128];
        pl_vit_shape_str(pw, got, sizeof got);
        return PL_FAIL(PL_ERR_FORMAT, "tensor 'patch_embed.proj.weight' has shape %s, expected (dim, channels, patch, patch)", got);
    }
    int D = (int)pw->shape[0], C = (int)pw->shape[1], P = (int)pw->shape[2];
    if (w->args_patch_size > 0 && w->args_patch_size != P)
        return PL_FAIL(PL_ERR_FORMAT, "stored args say patch_size=%d but 'patch_embed.proj.weight' has %dx%d kernels",
                       w->args_patch_size, P, P);
    const PlWeightTensor *pos = pl_vit_find(w, "pos_embed");
    if (!pos) return PL_FAIL(PL_ERR_FORMAT, "missing tensor 'pos_embed'");
    if (pos->ndim != 3 || pos->shape[0] != 1 || pos->shape[2] != D || pos->shape[1] < 2) {
        char got[128];
        pl_vit_shape_str(pos, got, sizeof got);
        return PL_FAIL(PL_ERR_FORMAT, "tensor 'pos_embed' has shape %s, expected (1, 1 + grid*grid, %d)", got, D);
    }
    int64_t npos = pos->shape[1] - 1;
    int grid = (int)llround(sqrt((double)npos));
    if ((int64_t)grid * grid != npos)
        return PL_FAIL(PL_ERR_FORMAT, "tensor 'pos_embed' holds %lld patch positions, not a square grid", (long long)npos);

    int depth = 0;
    for (;;) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", depth);
        if (!pl_vit_find(w, name)) break;
        depth++;
    }
    if (depth == 0) return PL_FAIL(PL_ERR_FORMAT, "missing tensor 'blocks.0.norm1.weight' (no transformer blocks)");
    const PlWeightTensor *fc1 = pl_vit_find(w, "blocks.0.mlp.fc1.weight");
    if (!fc1) return PL_FAIL(PL_ERR_FORMAT, "missing tensor 'blocks.0.mlp.fc1.weight'");
    if (fc1->ndim != 2 || fc1->shape[0] < 1 || fc1->shape[0] > 1 << 20) {
        char got[128];
        pl_vit_shape_str(fc1, got, sizeof got);
        return PL_FAIL(PL_ERR_FORMAT, "tensor 'blocks.0.mlp.fc1.weight' has shape %s, expected (hidden, %d)", got, D);
    }
    int hidden = (int)fc1->shape[0];

    int source = 0;   // 0 argument, 1 stored args, 2 default
    if (heads < 0) return PL_FAIL(PL_ERR_ARG, "head count %d must be positive", heads);
    if (heads == 0) {
        heads = pl_vit_heads_from_args(w);
        source = heads > 0 ? 1 : 2;
        if (heads == 0) heads = D / 64 > 0 ? D / 64 : 1;
    }
    if (D % heads != 0)
        return PL_FAIL(PL_ERR_ARG, "embedding dim %d is not divisible by %d heads (%s)", D, heads,
                       source == 0 ? "given" : source == 1 ? "from the checkpoint's args" : "default dim/64");

    // Every expected tensor, with its shape.
    PL_TRY(pl_vit_expect(w, "patch_embed.proj.weight", 4, (const int64_t[]){D, C, P, P}));
    PL_EXPECT1(w, "patch_embed.proj.bias", D);
    PL_TRY(pl_vit_expect(w, "cls_token", 3, (const int64_t[]){1, 1, D}));
    PL_TRY(pl_vit_expect(w, "pos_embed", 3, (const int64_t[]){1, npos + 1, D}));
    for (int i = 0; i < depth; i++) {
        char n[96];
#define PL_BLK(suffix) (snprintf(n, sizeof n, "blocks.%d." suffix, i), n)
        PL_EXPECT1(w, PL_BLK("norm1.weight"), D);
        PL_EXPECT1(w, PL_BLK("norm1.bias"), D);
        PL_EXPECT2(w, PL_BLK("attn.qkv.weight"), 3 * (int64_t)D, D);
        PL_EXPECT1(w, PL_BLK("attn.qkv.bias"), 3 * (int64_t)D);
        PL_EXPECT2(w, PL_BLK("attn.proj.weight"), D, D);
        PL_EXPECT1(w, PL_BLK("attn.proj.bias"), D);
        PL_EXPECT1(w, PL_BLK("norm2.weight"), D);
        PL_EXPECT1(w, PL_BLK("norm2.bias"), D);
        PL_EXPECT2(w, PL_BLK("mlp.fc1.weight"), hidden, D);
        PL_EXPECT1(w, PL_BLK("mlp.fc1.bias"), hidden);
        PL_EXPECT2(w, PL_BLK("mlp.fc2.weight"), D, hidden);
        PL_EXPECT1(w, PL_BLK("mlp.fc2.bias"), D);
#undef PL_BLK
    }
    PL_EXPECT1(w, "norm.weight", D);
    PL_EXPECT1(w, "norm.bias", D);

    // Nothing else, and every value finite.
    for (size_t i = 0; i < w->count; i++) {
        const PlWeightTensor *t = &w->tensors[i];
        const char *name = t->name ? t->name : "(unnamed)";
        int known = t->name && (strcmp(name, "patch_embed.proj.weight") == 0 || strcmp(name, "patch_embed.proj.bias") == 0 ||
                                strcmp(name, "cls_token") == 0 || strcmp(name, "pos_embed") == 0 ||
                                strcmp(name, "norm.weight") == 0 || strcmp(name, "norm.bias") == 0 ||
                                pl_vit_is_block_tensor(name, depth));
        if (!known) return PL_FAIL(PL_ERR_FORMAT, "unexpected tensor '%s' (not part of a %d-block DINO ViT)", name, depth);
        for (size_t d = 0, count = 1;; d++) {
            if (d == (size_t)t->ndim) {
                for (size_t k = 0; k < count; k++)
                    if (!isfinite(t->data[k]))
                        return PL_FAIL(PL_ERR_NUMERIC, "tensor '%s' holds a non-finite value (%g) at flat index %zu", name,
                                       (double)t->data[k], k);
                break;
            }
            count *= (size_t)t->shape[d];
        }
    }
    cfg->in_chans = C;
    cfg->patch = P;
    cfg->dim = D;
    cfg->depth = depth;
    cfg->heads = heads;
    cfg->mlp_hidden = hidden;
    cfg->pos_grid = grid;
    cfg->ln_eps = 1e-6f;
    return PL_OK;
}

PlStatus pl_vit_config_check(const PlVitConfig *c, int height, int width) {
    if (c->dim < 1 || c->heads < 1 || c->dim % c->heads || c->patch < 1 || c->depth < 1 || c->in_chans < 1 ||
        c->mlp_hidden < 1 || c->pos_grid < 1)
        return PL_FAIL(PL_ERR_ARG, "invalid ViT config (dim %d, heads %d, patch %d, depth %d)", c->dim, c->heads, c->patch,
                       c->depth);
    if (height < c->patch || width < c->patch)
        return PL_FAIL(PL_ERR_ARG, "input %dx%d is smaller than one %dx%d patch", height, width, c->patch, c->patch);
    if (height > 65536 || width > 65536) return PL_FAIL(PL_ERR_LIMIT, "input %dx%d too large", height, width);
    return PL_OK;
}

int pl_vit_config_tokens(const PlVitConfig *cfg, int height, int width, int *gh, int *gw) {
    int h = height / cfg->patch, w = width / cfg->patch;
    if (gh) *gh = h;
    if (gw) *gw = w;
    return 1 + h * w;
}
