// Heads (linear, DINO4Cells MLP, DINO projection head) as training modules: layout, init, dropout, DINO's weight
// norm, forward/backward (see pl_train_head.h).
#include "pl_train_head.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pl_rng.h"

#define PL_HEAD_NORM_EPS 1e-12f   // F.normalize's default eps

// The DINO head's Linear count (DINOHead: nlayers = max(nlayers, 1)), and Linear l's input and output widths.
static int dino_layers(const PlHeadSpec *s) { return s->nlayers > 1 ? s->nlayers : 1; }
static int dino_in(const PlHeadSpec *s, int l) { return l == 0 ? s->in_dim : s->hidden_dim; }
static int dino_out(const PlHeadSpec *s, int l) { return l == dino_layers(s) - 1 ? s->bottleneck_dim : s->hidden_dim; }

PlHeadSpec pl_head_dino_spec(int in_dim, int max_rows) {
    return (PlHeadSpec){.kind = PL_HEAD_DINO, .in_dim = in_dim, .out_dim = PL_HEAD_DINO_OUT, .max_rows = max_rows,
                        .hidden_dim = PL_HEAD_DINO_HIDDEN, .bottleneck_dim = PL_HEAD_DINO_BOTTLENECK,
                        .nlayers = PL_HEAD_DINO_NLAYERS, .norm_last_layer = 1};
}

PlStatus pl_head_spec_check(const PlHeadSpec *s) {
    if (s->kind != PL_HEAD_LINEAR && s->kind != PL_HEAD_MLP && s->kind != PL_HEAD_DINO)
        return PL_FAIL(PL_ERR_ARG, "unknown head kind %d", (int)s->kind);
    if (s->in_dim < 1 || s->max_rows < 1)
        return PL_FAIL(PL_ERR_ARG, "head of %d inputs for %d rows", s->in_dim, s->max_rows);
    if (s->out_dim < 1) return PL_FAIL(PL_ERR_ARG, "the head needs at least 1 class (got %d)", s->out_dim);
    if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
        return PL_FAIL(PL_ERR_ARG, "head dropout %g is outside [0, 1)", (double)s->dropout);
    if (s->kind != PL_HEAD_DINO) return PL_OK;
    if (dino_layers(s) > PL_HEAD_DINO_MAX_LAYERS)
        return PL_FAIL(PL_ERR_ARG, "DINO head of %d layers (at most %d)", s->nlayers, PL_HEAD_DINO_MAX_LAYERS);
    if (s->bottleneck_dim < 1 || (dino_layers(s) > 1 && s->hidden_dim < 1))
        return PL_FAIL(PL_ERR_ARG, "DINO head of hidden width %d and bottleneck %d", s->hidden_dim, s->bottleneck_dim);
    if (s->norm_last_layer != 0 && s->norm_last_layer != 1)
        return PL_FAIL(PL_ERR_ARG, "DINO head norm_last_layer %d is neither 0 nor 1", s->norm_last_layer);
    return PL_OK;
}

int pl_head_tensor_count(const PlHeadSpec *s) {
    if (s->kind == PL_HEAD_DINO) return 2 * dino_layers(s) + 2;
    return s->kind == PL_HEAD_MLP ? 6 : 2;
}

void pl_head_tensors(const PlHeadSpec *s, const char *prefix, int layer, PlTrainTensor *table, int *count, size_t *off) {
    const int64_t D = s->in_dim, NC = s->out_dim, H1 = PL_HEAD_MLP_H1, H2 = PL_HEAD_MLP_H2;
    char n[64];
#define PL_HEAD_ADD(suffix, ndim, ...)                                                                  \
    do {                                                                                                \
        snprintf(n, sizeof n, "%s%s", prefix, suffix);                                                  \
        pl_train_tensor_add(table, count, off, n, ndim, (const int64_t[]){__VA_ARGS__}, layer, 1);      \
    } while (0)
    if (s->kind == PL_HEAD_LINEAR) {
        PL_HEAD_ADD("weight", 2, NC, D);
        PL_HEAD_ADD("bias", 1, NC);
    } else if (s->kind == PL_HEAD_DINO) {   // DINOHead's state-dict names: nn.Sequential indices 0, 2, 4, ...
        const int L = dino_layers(s);
        char w[32], b[32];
        for (int l = 0; l < L; l++) {
            if (L == 1)
                snprintf(w, sizeof w, "mlp.weight"), snprintf(b, sizeof b, "mlp.bias");
            else
                snprintf(w, sizeof w, "mlp.%d.weight", 2 * l), snprintf(b, sizeof b, "mlp.%d.bias", 2 * l);
            PL_HEAD_ADD(w, 2, (int64_t)dino_out(s, l), (int64_t)dino_in(s, l));
            PL_HEAD_ADD(b, 1, (int64_t)dino_out(s, l));
        }
        PL_HEAD_ADD("last_layer.weight_g", 2, NC, 1);
        PL_HEAD_ADD("last_layer.weight_v", 2, NC, (int64_t)s->bottleneck_dim);
    } else {
        PL_HEAD_ADD("0.weight", 2, H1, D);
        PL_HEAD_ADD("0.bias", 1, H1);
        PL_HEAD_ADD("3.weight", 2, H2, H1);
        PL_HEAD_ADD("3.bias", 1, H2);
        PL_HEAD_ADD("6.weight", 2, NC, H2);
        PL_HEAD_ADD("6.bias", 1, NC);
    }
#undef PL_HEAD_ADD
}

void pl_head_point(PlHeadParams *p, const PlHeadSpec *s, const PlTrainTensor *first, float *slab) {
    memset(p, 0, sizeof *p);
    if (s->kind == PL_HEAD_LINEAR) {
        p->weight = slab + first[0].offset;
        p->bias = slab + first[1].offset;
        return;
    }
    if (s->kind == PL_HEAD_DINO) {
        const int L = dino_layers(s);
        for (int l = 0; l < L; l++) {
            p->mlp_w[l] = slab + first[2 * l].offset;
            p->mlp_b[l] = slab + first[2 * l + 1].offset;
        }
        p->last_g = slab + first[2 * L].offset;
        p->last_v = slab + first[2 * L + 1].offset;
        return;
    }
    float **named[6] = {&p->fc1_w, &p->fc1_b, &p->fc2_w, &p->fc2_b, &p->fc3_w, &p->fc3_b};
    for (int i = 0; i < 6; i++) *named[i] = slab + first[i].offset;
}

size_t pl_head_acts_carve(PlHeadActs *a, const PlHeadSpec *s, float *base) {
    const size_t m = (size_t)s->max_rows, mlp = s->kind == PL_HEAD_MLP;
    const size_t H1 = mlp ? PL_HEAD_MLP_H1 : 0, H2 = mlp ? PL_HEAD_MLP_H2 : 0;
    size_t off = 0;
    PlHeadActs tmp, *x = base ? a : &tmp;
    memset(x, 0, sizeof *x);
#define PL_CARVE(ptr, n)                                   \
    do {                                                   \
        if (base && (n) > 0) (ptr) = base + off;           \
        off += ((size_t)(n) + 15) & ~(size_t)15;           \
    } while (0)
    PL_CARVE(x->h1, m * H1);
    PL_CARVE(x->a1, m * H1);
    PL_CARVE(x->k1, m * H1);
    PL_CARVE(x->dh1, m * H1);
    PL_CARVE(x->h2, m * H2);
    PL_CARVE(x->a2, m * H2);
    PL_CARVE(x->k2, m * H2);
    PL_CARVE(x->dh2, m * H2);
    if (s->kind == PL_HEAD_DINO) {
        const size_t HD = (size_t)s->hidden_dim, BN = (size_t)s->bottleneck_dim;
        const int hidden = dino_layers(s) - 1;   // Linears followed by a GELU
        for (int l = 0; l < hidden; l++) {
            PL_CARVE(x->mh[l], m * HD);
            PL_CARVE(x->ma[l], m * HD);
        }
        if (hidden > 0) {
            PL_CARVE(x->dm[0], m * HD);
            PL_CARVE(x->dm[1], m * HD);
        }
        PL_CARVE(x->z, m * BN);
        PL_CARVE(x->zn, m);
        PL_CARVE(x->y, m * BN);
        PL_CARVE(x->dy, m * BN);
    }
    PL_CARVE(x->out, m * (size_t)s->out_dim);
    PL_CARVE(x->dinp, m * (size_t)s->in_dim);
#undef PL_CARVE
    return off;
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

size_t pl_head_gemm_cap(const PlHeadSpec *s) {
    const size_t m = (size_t)s->max_rows, D = (size_t)s->in_dim, NC = (size_t)s->out_dim;
    if (s->kind == PL_HEAD_LINEAR) return max_z(m * max_z(D, NC), NC * D);
    if (s->kind == PL_HEAD_DINO) {   // each Linear's input, output gradient and weight; the last layer's W
        const size_t BN = (size_t)s->bottleneck_dim;
        size_t cap = max_z(m * max_z(BN, NC), NC * BN);
        for (int l = 0; l < dino_layers(s); l++) {
            const size_t in = (size_t)dino_in(s, l), out = (size_t)dino_out(s, l);
            cap = max_z(cap, max_z(m * max_z(in, out), in * out));
        }
        return cap;
    }
    const size_t H1 = PL_HEAD_MLP_H1, H2 = PL_HEAD_MLP_H2;
    size_t width = max_z(max_z(D, NC), H1);   // H1 > H2
    return max_z(max_z(m * width, H1 * D), max_z(H2 * H1, NC * H2));
}

size_t pl_head_derived_floats(const PlHeadSpec *s) {
    if (s->kind != PL_HEAD_DINO) return 0;
    const size_t NC = (size_t)s->out_dim, BN = (size_t)s->bottleneck_dim;
    return ((NC * BN + 15) & ~(size_t)15) + ((NC + 15) & ~(size_t)15);
}

void pl_head_derived_point(PlHeadParams *p, const PlHeadSpec *s, float *buf) {
    if (s->kind != PL_HEAD_DINO) return;
    const size_t NC = (size_t)s->out_dim, BN = (size_t)s->bottleneck_dim;
    p->last_w = buf;                                         // (NC, BN)
    p->last_vnorm = buf + ((NC * BN + 15) & ~(size_t)15);    // (NC)
}

void pl_head_weight_norm(const PlHeadSpec *s, const PlHeadParams *p) {
    if (s->kind != PL_HEAD_DINO) return;
    const int NC = s->out_dim, BN = s->bottleneck_dim;
    for (int i = 0; i < NC; i++) {   // torch: v * (g / norm_except_dim(v, 2, 0))
        const float *v = p->last_v + (size_t)i * BN;
        float *w = p->last_w + (size_t)i * BN;
        double ss = 0.0;
        for (int j = 0; j < BN; j++) ss += (double)v[j] * v[j];
        const float norm = (float)sqrt(ss), scale = p->last_g[i] / norm;
        p->last_vnorm[i] = norm;
        for (int j = 0; j < BN; j++) w[j] = v[j] * scale;
    }
}

// DINOHead's init: the mlp's Linears through _init_weights (trunc_normal std 0.02 on [-2, 2], bias 0), last_layer
// torch's default nn.Linear weight U(-1/sqrt(in), 1/sqrt(in)) as weight_v and weight_g filled with 1.
static void dino_init(const PlHeadSpec *s, const PlHeadParams *p, uint64_t seed, int first_index) {
    const int L = dino_layers(s);
    for (int i = 0; i < 2 * L + 2; i++) {
        PlRng r;
        pl_rng_seed(&r, pl_rng_mix(pl_rng_mix(seed, 0xd1e0), (uint64_t)(first_index + i)));
        if (i < 2 * L) {
            const size_t out = (size_t)dino_out(s, i / 2), in = (size_t)dino_in(s, i / 2);
            if (i % 2) {
                memset(p->mlp_b[i / 2], 0, out * sizeof(float));
                continue;
            }
            for (size_t j = 0; j < out * in; j++) {   // the truncated normal by rejection (the same distribution)
                double x;
                do {
                    x = 0.02 * pl_rng_normal(&r);
                } while (!(x >= -2.0 && x <= 2.0));
                p->mlp_w[i / 2][j] = (float)x;
            }
        } else if (i == 2 * L) {
            for (int j = 0; j < s->out_dim; j++) p->last_g[j] = 1.0f;
        } else {
            const double bound = 1.0 / sqrt((double)s->bottleneck_dim);
            const size_t numel = (size_t)s->out_dim * (size_t)s->bottleneck_dim;
            for (size_t j = 0; j < numel; j++) p->last_v[j] = (float)(bound * (2.0 * pl_rng_uniform(&r) - 1.0));
        }
    }
}

void pl_head_init(const PlHeadSpec *s, const PlHeadParams *p, uint64_t seed, int first_index) {
    const size_t D = (size_t)s->in_dim, NC = (size_t)s->out_dim;
    if (s->kind == PL_HEAD_DINO) {
        dino_init(s, p, seed, first_index);
        return;
    }
    if (s->kind == PL_HEAD_LINEAR) {   // DINO eval_linear: weight ~ N(0, 0.01), bias 0
        PlRng r;
        pl_rng_seed(&r, pl_rng_mix(seed, 0x4ead));
        for (size_t j = 0; j < NC * D; j++) p->weight[j] = (float)(0.01 * pl_rng_normal(&r));
        memset(p->bias, 0, NC * sizeof(float));
        return;
    }
    // torch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight and its bias, one stream per tensor
    float *const dst[6] = {p->fc1_w, p->fc1_b, p->fc2_w, p->fc2_b, p->fc3_w, p->fc3_b};
    const size_t out[3] = {PL_HEAD_MLP_H1, PL_HEAD_MLP_H2, NC}, fan_in[3] = {D, PL_HEAD_MLP_H1, PL_HEAD_MLP_H2};
    for (int i = 0; i < 6; i++) {
        const int layer = i / 2, bias = i % 2;
        const size_t numel = bias ? out[layer] : out[layer] * fan_in[layer];
        double bound = 1.0 / sqrt((double)fan_in[layer]);
        PlRng r;
        pl_rng_seed(&r, pl_rng_mix(pl_rng_mix(seed, 0x4ead), (uint64_t)(first_index + i)));
        for (size_t j = 0; j < numel; j++) dst[i][j] = (float)(bound * (2.0 * pl_rng_uniform(&r) - 1.0));
    }
}

void pl_head_set_dropout(const PlHeadSpec *s, PlHeadActs *a, int n, const uint64_t *keys) {
    if (s->kind != PL_HEAD_MLP) return;
    const double p = s->dropout;
    const float keep = (float)(1.0 / (1.0 - p));
    const int H[2] = {PL_HEAD_MLP_H1, PL_HEAD_MLP_H2};
    float *k[2] = {a->k1, a->k2};
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

// DINO's forward: mlp -> F.normalize -> the weight-normalised last layer (W derived by pl_head_weight_norm).
static void dino_forward(const PlHeadSpec *s, const PlHeadParams *p, PlHeadActs *a, const PlTrainGemm *g,
                         const float *inp, int n) {
    const int L = dino_layers(s), BN = s->bottleneck_dim;
    const float *x = inp;
    for (int l = 0; l < L - 1; l++) {   // (n, in_l) -> (n, hidden), GELU
        pl_linear_forward(g, a->mh[l], x, p->mlp_w[l], p->mlp_b[l], n, dino_in(s, l), s->hidden_dim);
        pl_gelu_forward(a->ma[l], a->mh[l], (int64_t)n * s->hidden_dim);
        x = a->ma[l];
    }
    pl_linear_forward(g, a->z, x, p->mlp_w[L - 1], p->mlp_b[L - 1], n, dino_in(s, L - 1), BN);   // (n, BN)
    for (int r = 0; r < n; r++) {   // y = z / max(||z||, eps)
        const float *z = a->z + (size_t)r * BN;
        float *y = a->y + (size_t)r * BN;
        double ss = 0.0;
        for (int j = 0; j < BN; j++) ss += (double)z[j] * z[j];
        const float norm = (float)sqrt(ss), inv = 1.0f / fmaxf(norm, PL_HEAD_NORM_EPS);
        a->zn[r] = norm;
        for (int j = 0; j < BN; j++) y[j] = z[j] * inv;
    }
    pl_linear_forward(g, a->out, a->y, p->last_w, NULL, n, BN, s->out_dim);   // (n, NC), no bias
}

// DINO's backward (see pl_head_backward).
static void dino_backward(const PlHeadSpec *s, const PlHeadParams *p, const PlHeadParams *grad, PlHeadActs *a,
                          const PlTrainGemm *g, const float *dout, const float *inp, int n) {
    const int L = dino_layers(s), BN = s->bottleneck_dim, NC = s->out_dim;
    // the last layer: dy (n, BN) = dout W; dW (NC, BN) = dout^T y, into weight_v's gradient, then through the norm
    pl_linear_backward(g, a->dy, 0.0f, grad->last_v, NULL, dout, a->y, p->last_w, n, BN, NC);
    for (int i = 0; i < NC; i++) {   // dg = <dW, v> / |v|;  dv = (g / |v|) (dW - v <dW, v> / |v|^2)
        const float *v = p->last_v + (size_t)i * BN;
        float *dv = grad->last_v + (size_t)i * BN;
        double dot = 0.0;
        for (int j = 0; j < BN; j++) dot += (double)dv[j] * v[j];
        const double norm = p->last_vnorm[i];
        const float scale = (float)(p->last_g[i] / norm), proj = (float)(dot / (norm * norm));
        grad->last_g[i] = s->norm_last_layer ? 0.0f : (float)(dot / norm);
        for (int j = 0; j < BN; j++) dv[j] = scale * (dv[j] - v[j] * proj);
    }
    for (int r = 0; r < n; r++) {   // through y = z / max(|z|, eps): dz = (dy - y <y, dy>) / |z|, or dy / eps
        const float *y = a->y + (size_t)r * BN;
        float *d = a->dy + (size_t)r * BN;
        const float norm = a->zn[r];
        if (!(norm > PL_HEAD_NORM_EPS)) {   // the clamp holds: the denominator is the constant eps
            for (int j = 0; j < BN; j++) d[j] /= PL_HEAD_NORM_EPS;
            continue;
        }
        double dot = 0.0;
        for (int j = 0; j < BN; j++) dot += (double)y[j] * d[j];
        const float inv = 1.0f / norm, yd = (float)dot;
        for (int j = 0; j < BN; j++) d[j] = (d[j] - y[j] * yd) * inv;
    }
    // the mlp, last Linear first: its output gradient in dy, then the hidden ones alternating in dm[0], dm[1]
    const float *dnext = a->dy;
    for (int l = L - 1; l >= 0; l--) {
        const float *x = l == 0 ? inp : a->ma[l - 1];
        float *dx = l == 0 ? a->dinp : a->dm[l % 2];
        pl_linear_backward(g, dx, 0.0f, grad->mlp_w[l], grad->mlp_b[l], dnext, x, p->mlp_w[l], n, dino_in(s, l),
                           dino_out(s, l));
        if (l > 0) pl_gelu_backward(dx, dx, a->mh[l - 1], a->ma[l - 1], (int64_t)n * s->hidden_dim);
        dnext = dx;
    }
}

void pl_head_forward(const PlHeadSpec *s, const PlHeadParams *p, PlHeadActs *a, const PlTrainGemm *g, const float *inp,
                     int n) {
    const int D = s->in_dim, NC = s->out_dim, H1 = PL_HEAD_MLP_H1, H2 = PL_HEAD_MLP_H2;
    if (s->kind == PL_HEAD_DINO) {
        dino_forward(s, p, a, g, inp, n);
        return;
    }
    if (s->kind == PL_HEAD_LINEAR) {
        pl_linear_forward(g, a->out, inp, p->weight, p->bias, n, D, NC);   // (n, D) -> (n, NC)
        return;
    }
    pl_linear_forward(g, a->h1, inp, p->fc1_w, p->fc1_b, n, D, H1);          // (n, H1)
    pl_relu_dropout_forward(a->a1, a->h1, a->k1, (int64_t)n * H1);
    pl_linear_forward(g, a->h2, a->a1, p->fc2_w, p->fc2_b, n, H1, H2);       // (n, H2)
    pl_relu_dropout_forward(a->a2, a->h2, a->k2, (int64_t)n * H2);
    pl_linear_forward(g, a->out, a->a2, p->fc3_w, p->fc3_b, n, H2, NC);      // (n, NC)
}

void pl_head_backward(const PlHeadSpec *s, const PlHeadParams *p, const PlHeadParams *grad, PlHeadActs *a,
                      const PlTrainGemm *g, const float *dout, const float *inp, int n) {
    const int D = s->in_dim, NC = s->out_dim, H1 = PL_HEAD_MLP_H1, H2 = PL_HEAD_MLP_H2;
    if (s->kind == PL_HEAD_DINO) {
        dino_backward(s, p, grad, a, g, dout, inp, n);
        return;
    }
    if (s->kind == PL_HEAD_LINEAR) {
        pl_linear_backward(g, a->dinp, 0.0f, grad->weight, grad->bias, dout, inp, p->weight, n, D, NC);
        return;
    }
    pl_linear_backward(g, a->dh2, 0.0f, grad->fc3_w, grad->fc3_b, dout, a->a2, p->fc3_w, n, H2, NC);
    pl_relu_dropout_backward(a->dh2, a->dh2, a->h2, a->k2, (int64_t)n * H2);
    pl_linear_backward(g, a->dh1, 0.0f, grad->fc2_w, grad->fc2_b, a->dh2, a->a1, p->fc2_w, n, H1, H2);
    pl_relu_dropout_backward(a->dh1, a->dh1, a->h1, a->k1, (int64_t)n * H1);
    pl_linear_backward(g, a->dinp, 0.0f, grad->fc1_w, grad->fc1_b, a->dh1, inp, p->fc1_w, n, D, H1);
}
