// Classification heads (linear, DINO4Cells MLP) as training modules: layout, init, dropout, forward/backward
// (see pl_train_head.h).
#include "pl_train_head.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pl_rng.h"

PlStatus pl_head_spec_check(const PlHeadSpec *s) {
    if (s->kind != PL_HEAD_LINEAR && s->kind != PL_HEAD_MLP) return PL_FAIL(PL_ERR_ARG, "unknown head kind %d", (int)s->kind);
    if (s->in_dim < 1 || s->max_rows < 1)
        return PL_FAIL(PL_ERR_ARG, "head of %d inputs for %d rows", s->in_dim, s->max_rows);
    if (s->out_dim < 1) return PL_FAIL(PL_ERR_ARG, "the head needs at least 1 class (got %d)", s->out_dim);
    if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
        return PL_FAIL(PL_ERR_ARG, "head dropout %g is outside [0, 1)", (double)s->dropout);
    return PL_OK;
}

int pl_head_tensor_count(const PlHeadSpec *s) { return s->kind == PL_HEAD_MLP ? 6 : 2; }

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
    float **named[PL_HEAD_MAX_TENSORS] = {&p->fc1_w, &p->fc1_b, &p->fc2_w, &p->fc2_b, &p->fc3_w, &p->fc3_b};
    for (int i = 0; i < PL_HEAD_MAX_TENSORS; i++) *named[i] = slab + first[i].offset;
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
    PL_CARVE(x->out, m * (size_t)s->out_dim);
    PL_CARVE(x->dinp, m * (size_t)s->in_dim);
#undef PL_CARVE
    return off;
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

size_t pl_head_gemm_cap(const PlHeadSpec *s) {
    const size_t m = (size_t)s->max_rows, D = (size_t)s->in_dim, NC = (size_t)s->out_dim;
    if (s->kind == PL_HEAD_LINEAR) return max_z(m * max_z(D, NC), NC * D);
    const size_t H1 = PL_HEAD_MLP_H1, H2 = PL_HEAD_MLP_H2;
    size_t width = max_z(max_z(D, NC), H1);   // H1 > H2
    return max_z(max_z(m * width, H1 * D), max_z(H2 * H1, NC * H2));
}

void pl_head_init(const PlHeadSpec *s, const PlHeadParams *p, uint64_t seed, int first_index) {
    const size_t D = (size_t)s->in_dim, NC = (size_t)s->out_dim;
    if (s->kind == PL_HEAD_LINEAR) {   // DINO eval_linear: weight ~ N(0, 0.01), bias 0
        PlRng r;
        pl_rng_seed(&r, pl_rng_mix(seed, 0x4ead));
        for (size_t j = 0; j < NC * D; j++) p->weight[j] = (float)(0.01 * pl_rng_normal(&r));
        memset(p->bias, 0, NC * sizeof(float));
        return;
    }
    // torch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight and its bias, one stream per tensor
    float *const dst[PL_HEAD_MAX_TENSORS] = {p->fc1_w, p->fc1_b, p->fc2_w, p->fc2_b, p->fc3_w, p->fc3_b};
    const size_t out[3] = {PL_HEAD_MLP_H1, PL_HEAD_MLP_H2, NC}, fan_in[3] = {D, PL_HEAD_MLP_H1, PL_HEAD_MLP_H2};
    for (int i = 0; i < PL_HEAD_MAX_TENSORS; i++) {
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

void pl_head_forward(const PlHeadSpec *s, const PlHeadParams *p, PlHeadActs *a, const PlTrainGemm *g, const float *inp,
                     int n) {
    const int D = s->in_dim, NC = s->out_dim, H1 = PL_HEAD_MLP_H1, H2 = PL_HEAD_MLP_H2;
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
