// The ViT's training layers: forward/backward pairs over flat float32 arrays (see pl_train_layers.h).
#include "pl_train_layers.h"

#include "pl_bf16.h"
#include "pl_vit_kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

// The row sums of LayerNorm in double, over PL_LN_LANES independent partial sums combined in a fixed order: the same
// value for any thread count (rows never split), and not bound by the latency of one long chain of dependent adds.
#define PL_LN_LANES 8

static double ln_combine(const double *acc) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void ln_row_moments(const float *x, int C, float *mean, float *rstd, float eps) {
    double acc[PL_LN_LANES] = {0};
    int i = 0;
    for (; i + PL_LN_LANES <= C; i += PL_LN_LANES)
        for (int j = 0; j < PL_LN_LANES; j++) acc[j] += x[i + j];
    for (; i < C; i++) acc[i % PL_LN_LANES] += x[i];
    float m = (float)(ln_combine(acc) / C);
    double var[PL_LN_LANES] = {0};
    for (i = 0; i + PL_LN_LANES <= C; i += PL_LN_LANES)
        for (int j = 0; j < PL_LN_LANES; j++) {
            double d = (double)x[i + j] - m;
            var[j] += d * d;
        }
    for (; i < C; i++) {
        double d = (double)x[i] - m;
        var[i % PL_LN_LANES] += d * d;
    }
    *mean = m;
    *rstd = (float)(1.0 / sqrt(ln_combine(var) / C + eps));
}

void pl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                          int C, float eps) {
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        float m, rs;
        ln_row_moments(x, C, &m, &rs, eps);
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * rs * w[i] + b[i];
        mean[r] = m;
        rstd[r] = rs;
    }
}

// One row's input gradient (added) and its share of dw, db; the arrays never overlap (restrict: vectorised).
static void ln_row_backward(float *restrict dx, float *restrict dw, float *restrict db, const float *restrict x,
                            const float *restrict g, const float *restrict w, float m, float rs, float mean_dn,
                            float mean_dn_n, int C) {
    for (int i = 0; i < C; i++) {
        float n = (x[i] - m) * rs, dn = g[i] * w[i];
        dx[i] += (dn - mean_dn - n * mean_dn_n) * rs;
        dw[i] += g[i] * n;
        db[i] += g[i];
    }
}

void pl_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int N, int C) {
    pl_layernorm_backward_beta(dinp, dw, db, 0.0f, dout, inp, w, mean, rstd, N, C);
}

void pl_layernorm_backward_beta(float *dinp, float *dw, float *db, float grad_beta, const float *dout, const float *inp,
                                const float *w, const float *mean, const float *rstd, int N, int C) {
    if (grad_beta == 0.0f)
        for (int i = 0; i < C; i++) dw[i] = db[i] = 0.0f;
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C, *g = dout + (size_t)r * C;
        float *dx = dinp + (size_t)r * C;
        float m = mean[r], rs = rstd[r];
        double a[PL_LN_LANES] = {0}, an[PL_LN_LANES] = {0};
        int i0 = 0;
        for (; i0 + PL_LN_LANES <= C; i0 += PL_LN_LANES)
            for (int j = 0; j < PL_LN_LANES; j++) {
                float n = (x[i0 + j] - m) * rs, dn = g[i0 + j] * w[i0 + j];
                a[j] += dn;
                an[j] += (double)dn * n;
            }
        for (; i0 < C; i0++) {
            float n = (x[i0] - m) * rs, dn = g[i0] * w[i0];
            a[i0 % PL_LN_LANES] += dn;
            an[i0 % PL_LN_LANES] += (double)dn * n;
        }
        float mean_dn = (float)(ln_combine(a) / C), mean_dn_n = (float)(ln_combine(an) / C);
        ln_row_backward(dx, dw, db, x, g, w, m, rs, mean_dn, mean_dn_n, C);
    }
}

// dst (packed, rows x cols) = bf16 of the stored matrix src (rows x cols, row stride ld).
static void train_to_bf16(uint16_t *dst, const float *src, int ld, int rows, int cols) {
    pl_bf16_from_f32_rows(dst, (size_t)cols, src, (size_t)ld, (size_t)rows, (size_t)cols);
}

// The resident BF16 copy of p when p points into the parameter slab and the copy is current; NULL otherwise.
static const uint16_t *train_resident(const PlTrainGemm *g, const float *p) {
    if (!g->w16 || !g->w16_valid || !atomic_load_explicit(g->w16_valid, memory_order_acquire)) return NULL;
    if (p < g->w32 || p >= g->w32 + g->wn) return NULL;
    return g->w16 + (p - g->w32);
}

// pl_train_gemm; with a_ready (BF16) g->a16 already holds A as this call would round and pack it (the previous GEMM of
// the same A with the same stored shape converted it), so it is not converted again.
static void train_gemm(const PlTrainGemm *g, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                       int a_ready, const float *b, int ldb, float beta, float *c, int ldc) {
    if (g->precision != PL_PRECISION_BF16) {
        if (g->pool)
            pl_kernels_gemm_pooled(g->k, g->pool, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        else
            g->k->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    // the stored shapes: A is (m, k), or (k, m) when transposed; B (k, n) or (n, k)
    int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    const uint16_t *a16 = train_resident(g, a), *b16 = train_resident(g, b);
    PlProfMark mk = pl_prof_begin(g->prof);
    if (!a16 && !a_ready) train_to_bf16(g->a16, a, lda, ar, ac);
    if (!b16) train_to_bf16(g->b16, b, ldb, br, bc);
    pl_prof_end(g->prof, mk, PL_PROF_BF16, 0.0);
    g->k->gemm_bf16(ta, tb, m, n, k, alpha, a16 ? a16 : g->a16, a16 ? lda : ac, b16 ? b16 : g->b16, b16 ? ldb : bc, beta,
                    c, ldc);
}

void pl_train_gemm(const PlTrainGemm *g, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                   const float *b, int ldb, float beta, float *c, int ldc) {
    train_gemm(g, ta, tb, m, n, k, alpha, a, lda, 0, b, ldb, beta, c, ldc);
}

// The profile phase of the current linear layer's GEMM of `kind` (0 forward, 1 input grad, 2 weight grad).
static PlProfPhase linear_phase(const PlTrainGemm *g, int kind) {
    return g->prof && g->prof->linear != PL_PROF_HEAD ? (PlProfPhase)(g->prof->linear + kind) : PL_PROF_HEAD;
}

static double gemm_flop(int m, int n, int k) { return 2.0 * m * n * k; }

void pl_linear_forward(const PlTrainGemm *k, float *out, const float *inp, const float *w, const float *b, int N, int IC,
                       int OC) {
    PlProfMark mk = pl_prof_begin(k->prof);
    pl_train_gemm(k, 0, 1, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
    pl_prof_end(k->prof, mk, linear_phase(k, 0), gemm_flop(N, OC, IC));
    if (b) {
        mk = pl_prof_begin(k->prof);
        for (int r = 0; r < N; r++) {
            float *o = out + (size_t)r * OC;
            for (int i = 0; i < OC; i++) o[i] += b[i];
        }
        pl_prof_end(k->prof, mk, PL_PROF_RESIDUAL, 0.0);
    }
}

void pl_linear_backward(const PlTrainGemm *k, float *dinp, float dinp_beta, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int N, int IC, int OC) {
    pl_linear_backward_beta(k, dinp, dinp_beta, dw, db, 0.0f, dout, inp, w, N, IC, OC);
}

void pl_linear_backward_beta(const PlTrainGemm *k, float *dinp, float dinp_beta, float *dw, float *db, float grad_beta,
                             const float *dout, const float *inp, const float *w, int N, int IC, int OC) {
    PlProfMark mk = pl_prof_begin(k->prof);
    if (dinp) {
        pl_train_gemm(k, 0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, dinp_beta, dinp, IC);   // (N, OC) x (OC, IC)
        pl_prof_end(k->prof, mk, linear_phase(k, 1), gemm_flop(N, IC, OC));
        mk = pl_prof_begin(k->prof);
    }
    // dout is stored (N, OC) in both products: BF16 rounds it once, for the input and the weight gradient
    train_gemm(k, 1, 0, OC, IC, N, 1.0f, dout, OC, dinp != NULL, inp, IC, grad_beta, dw, IC);   // (OC, N) x (N, IC)
    pl_prof_end(k->prof, mk, linear_phase(k, 2), gemm_flop(OC, IC, N));
    if (db) {
        mk = pl_prof_begin(k->prof);
        if (grad_beta == 0.0f)
            for (int i = 0; i < OC; i++) db[i] = 0.0f;
        for (int r = 0; r < N; r++) {
            const float *g = dout + (size_t)r * OC;
            for (int i = 0; i < OC; i++) db[i] += g[i];
        }
        pl_prof_end(k->prof, mk, PL_PROF_RESIDUAL, 0.0);
    }
}

void pl_gelu_forward(float *out, const float *pre, int64_t n) { pl_vit_gelu_forward(out, pre, (size_t)n); }

void pl_gelu_backward(float *dpre, const float *dout, const float *pre, const float *out, int64_t n) {
    pl_vit_gelu_backward(dpre, dout, pre, out, (size_t)n);
}

void pl_relu_dropout_forward(float *out, const float *pre, const float *keep, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = pre[i] > 0.0f ? pre[i] * keep[i] : 0.0f;
}

void pl_relu_dropout_backward(float *dpre, const float *dout, const float *pre, const float *keep, int64_t n) {
    for (int64_t i = 0; i < n; i++) dpre[i] = pre[i] > 0.0f ? dout[i] * keep[i] : 0.0f;
}

void pl_patch_unfold(float *u, const float *x, int B, int C, int H, int W, int P, int gh, int gw) {
    const int K = C * P * P;
    for (int b = 0; b < B; b++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++) {
                float *row = u + (((size_t)b * gh + py) * gw + px) * K;
                for (int c = 0; c < C; c++) {
                    const float *img = x + ((size_t)b * C + c) * H * W;
                    for (int ky = 0; ky < P; ky++)
                        memcpy(row + ((size_t)c * P + ky) * P, img + (size_t)(py * P + ky) * W + (size_t)px * P,
                               (size_t)P * sizeof(float));
                }
            }
}

double pl_softmax_xent(float *dlogits, const float *logits, const int32_t *y, int B, int NC, float scale) {
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * NC;
        float *d = dlogits + (size_t)b * NC;
        float m = l[0];
        for (int i = 1; i < NC; i++) m = l[i] > m ? l[i] : m;
        double z = 0.0;
        for (int i = 0; i < NC; i++) z += exp((double)l[i] - m);
        double lz = log(z);
        loss += lz - ((double)l[y[b]] - m);
        for (int i = 0; i < NC; i++) d[i] = scale * (float)(exp((double)l[i] - m - lz) - (i == y[b]));
    }
    return loss;
}

double pl_bce_logits(float *dlogits, const float *logits, const float *t, int B, int NC, float scale) {
    double loss = 0.0;
    for (int64_t i = 0; i < (int64_t)B * NC; i++) {
        double x = logits[i], y = t[i];
        // max(x, 0) - x y + log(1 + exp(-|x|)), as torch's binary_cross_entropy_with_logits
        loss += (x > 0 ? x : 0) - x * y + log1p(exp(-fabs(x)));
        double sig = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
        dlogits[i] = scale * (float)(sig - y);
    }
    return loss;
}
