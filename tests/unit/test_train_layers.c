// Unit tests for the training layers' backward passes (pl_train_layers.h) by central finite differences of their
// forwards: layernorm, linear (dinp overwritten or accumulated), exact GELU, multi-head attention, softmax
// cross-entropy and BCE-with-logits (summed loss and dlogits), and pl_vit_pos_resize_backward as the transpose.
#include "pl_testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_kernels.h"
#include "pl_bf16.h"
#include "pl_train_layers.h"
#include <stdatomic.h>
#include "pl_vit_kernels.h"

// Float forwards, loss L = sum(g * out) in double, eps = 1e-3: float rounding of the forward leaves ~1e-4 of noise
// in a numeric derivative and the O(eps^2) truncation less, while a wrong formula (a missing term, a transposed
// operand, a lost scale) is off by O(0.1..1) of the gradient's size.
#define FD_EPS 1e-3f
#define FD_TOL 5e-3     // |num - ana| <= FD_TOL * max(1, max|ana|) for the float layers
#define LOSS_TOL 1e-5   // the losses are computed in double: tighter
#define LN_EPS 1e-6f

static uint64_t rng = 0x9e3779b97f4a7c15ULL;   // the test data stream (pl_test_urand)
static float *rand_buf(size_t n, float scale) { return pl_test_rand_buf(&rng, n, scale); }
static float *const_buf(size_t n, float v) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}
static double dotd(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
// |a - b| <= tol * max(1, |b|) elementwise
static void assert_close(const char *what, const float *a, const float *b, size_t n, double tol) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= tol * fmax(1.0, fabs((double)b[i]))))
            fail_msg("%s[%zu]: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
}

typedef double (*LossFn)(void *ctx);

// Compare the analytic gradient ana (n) with central differences of loss() in each element of x (n), perturbed in
// place and restored; the step is the actual float difference xp - xm.
static void check_fd(const char *what, float *x, size_t n, const float *ana, LossFn loss, void *ctx, double tol) {
    double amax = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs((double)ana[i]));
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i], xp = x0 + FD_EPS, xm = x0 - FD_EPS;
        x[i] = xp;
        double lp = loss(ctx);
        x[i] = xm;
        double lm = loss(ctx);
        x[i] = x0;
        double e = fabs((lp - lm) / ((double)xp - (double)xm) - ana[i]);
        if (!(e <= worst)) worst = e;   // NaN propagates as failure
    }
    print_message("%-28s n=%4zu max|ana|=%8.3g max|num-ana|=%8.3g (tol %.3g)\n", what, n, amax, worst,
                  tol * fmax(1.0, amax));
    if (!(worst <= tol * fmax(1.0, amax))) fail_msg("%s: finite differences disagree", what);
}

// ---- layernorm ----
typedef struct {
    float *inp, *w, *b, *g, *out, *mean, *rstd;
    int N, C;
} LnCtx;
static double ln_loss(void *p) {
    LnCtx *c = p;
    pl_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, LN_EPS);
    return dotd(c->g, c->out, (size_t)c->N * c->C);
}

static void test_layernorm_backward(void **state) {
    (void)state;
    for (int C = 7; C <= 12; C += 5) {
        const int N = 5;
        size_t n = (size_t)N * C;
        LnCtx c = {rand_buf(n, 2.0f), rand_buf(C, 1.0f), rand_buf(C, 0.5f), rand_buf(n, 1.0f), const_buf(n, 0),
                   const_buf(N, 0), const_buf(N, 0), N, C};
        for (int i = 0; i < C; i++) c.w[i] += 1.0f;   // weights around 1, as trained
        ln_loss(&c);
        float *dinp = const_buf(n, 0.0f), *dw = const_buf(C, 9.0f), *db = const_buf(C, -9.0f);   // dw, db overwritten
        pl_layernorm_backward(dinp, dw, db, c.g, c.inp, c.w, c.mean, c.rstd, N, C);
        char what[64];
        snprintf(what, sizeof what, "layernorm C=%d dinp", C);
        check_fd(what, c.inp, n, dinp, ln_loss, &c, FD_TOL);
        snprintf(what, sizeof what, "layernorm C=%d dw", C);
        check_fd(what, c.w, C, dw, ln_loss, &c, FD_TOL);
        snprintf(what, sizeof what, "layernorm C=%d db", C);
        check_fd(what, c.b, C, db, ln_loss, &c, FD_TOL);
        // a second call adds into a pre-filled dinp (+=) and overwrites dw, db again
        float *pre = rand_buf(n, 3.0f), *acc = malloc(n * sizeof(float)), *sum = malloc(n * sizeof(float));
        float *dw2 = const_buf(C, 5.0f), *db2 = const_buf(C, 5.0f);
        memcpy(acc, pre, n * sizeof(float));
        for (size_t i = 0; i < n; i++) sum[i] = pre[i] + dinp[i];
        ln_loss(&c);
        pl_layernorm_backward(acc, dw2, db2, c.g, c.inp, c.w, c.mean, c.rstd, N, C);
        assert_close("layernorm dinp +=", acc, sum, n, 1e-6);
        assert_memory_equal(dw2, dw, C * sizeof(float));
        assert_memory_equal(db2, db, C * sizeof(float));
        free(pre), free(acc), free(sum), free(dw2), free(db2), free(dinp), free(dw), free(db);
        free(c.inp), free(c.w), free(c.b), free(c.g), free(c.out), free(c.mean), free(c.rstd);
    }
}

// ---- linear ----
typedef struct {
    const PlTrainGemm *k;
    float *inp, *w, *b, *g, *out;
    int N, IC, OC;
} LinCtx;
static const PlTrainGemm *fp32_gemm(void) {
    static PlTrainGemm g;
    g.k = pl_kernels_default();
    g.precision = PL_PRECISION_FP32;
    return &g;
}
static double lin_loss(void *p) {
    LinCtx *c = p;
    pl_linear_forward(c->k, c->out, c->inp, c->w, c->b, c->N, c->IC, c->OC);
    return dotd(c->g, c->out, (size_t)c->N * c->OC);
}

static void test_linear_backward(void **state) {
    (void)state;
    const int shapes[2][2] = {{7, 6}, {12, 9}};
    for (int s = 0; s < 2; s++) {
        const int N = 5, IC = shapes[s][0], OC = shapes[s][1];
        size_t ni = (size_t)N * IC, no = (size_t)N * OC, nw = (size_t)OC * IC;
        LinCtx c = {fp32_gemm(), rand_buf(ni, 1.0f), rand_buf(nw, 0.5f), rand_buf(OC, 0.5f),
                    rand_buf(no, 1.0f), const_buf(no, 0), N, IC, OC};
        float *dinp = const_buf(ni, 7.0f), *dw = const_buf(nw, 7.0f), *db = const_buf(OC, 7.0f);   // all overwritten
        pl_linear_backward(c.k, dinp, 0.0f, dw, db, c.g, c.inp, c.w, N, IC, OC);
        char what[64];
        snprintf(what, sizeof what, "linear %dx%d dinp (beta 0)", IC, OC);
        check_fd(what, c.inp, ni, dinp, lin_loss, &c, FD_TOL);
        snprintf(what, sizeof what, "linear %dx%d dw", IC, OC);
        check_fd(what, c.w, nw, dw, lin_loss, &c, FD_TOL);
        snprintf(what, sizeof what, "linear %dx%d db", IC, OC);
        check_fd(what, c.b, OC, db, lin_loss, &c, FD_TOL);
        // beta 1 adds dout W into a pre-filled dinp; dw, db are still overwritten
        float *pre = rand_buf(ni, 3.0f), *acc = malloc(ni * sizeof(float)), *sum = malloc(ni * sizeof(float));
        float *dw2 = const_buf(nw, -4.0f), *db2 = const_buf(OC, -4.0f);
        memcpy(acc, pre, ni * sizeof(float));
        for (size_t i = 0; i < ni; i++) sum[i] = pre[i] + dinp[i];
        pl_linear_backward(c.k, acc, 1.0f, dw2, db2, c.g, c.inp, c.w, N, IC, OC);
        assert_close("linear dinp beta 1", acc, sum, ni, 1e-6);
        assert_close("linear dw (beta 1 call)", dw2, dw, nw, 1e-6);
        assert_close("linear db (beta 1 call)", db2, db, OC, 1e-6);
        // dinp NULL: only the parameter gradients
        float *dw3 = const_buf(nw, 3.0f), *db3 = const_buf(OC, 3.0f);
        pl_linear_backward(c.k, NULL, 0.0f, dw3, db3, c.g, c.inp, c.w, N, IC, OC);
        assert_close("linear dw (dinp NULL)", dw3, dw, nw, 1e-6);
        assert_close("linear db (dinp NULL)", db3, db, OC, 1e-6);
        free(pre), free(acc), free(sum), free(dw2), free(db2), free(dw3), free(db3), free(dinp), free(dw), free(db);
        free(c.inp), free(c.w), free(c.b), free(c.g), free(c.out);
    }
}

// BF16 training GEMMs: every transpose gives the product of the BF16-rounded operands accumulated in FP32 (against a
// double reference on the same rounded operands), and the parameters themselves are never touched.
static void test_train_gemm_bf16(void **state) {
    (void)state;
    const PlKernels *k = pl_test_bf16_kernels("BF16 training GEMMs");
    if (!k) skip();
    enum { M = 29, N = 41, K = 53, LD = 64 };
    uint16_t a16[LD * LD], b16[LD * LD];
    PlTrainGemm g = {.k = k, .precision = PL_PRECISION_BF16, .a16 = a16, .b16 = b16, .cap = LD * LD};
    float *a = rand_buf(LD * LD, 1.0f), *b = rand_buf(LD * LD, 1.0f), *c = const_buf(M * LD, 0.5f), *ref = malloc(sizeof(float) * M * LD);
    float *a_copy = malloc(sizeof(float) * LD * LD);
    memcpy(a_copy, a, sizeof(float) * LD * LD);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int i = 0; i < M * LD; i++) c[i] = ref[i] = 0.5f;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = 0;
                    for (int p = 0; p < K; p++) {
                        float x = ta ? a[p * LD + i] : a[i * LD + p], y = tb ? b[j * LD + p] : b[p * LD + j];
                        acc += (double)pl_bf16_to_f32(pl_bf16_from_f32(x)) * pl_bf16_to_f32(pl_bf16_from_f32(y));
                    }
                    ref[i * LD + j] = (float)(acc + 0.5);
                }
            pl_train_gemm(&g, ta, tb, M, N, K, 1.0f, a, LD, b, LD, 1.0f, c, LD);
            assert_close("bf16 train gemm", c, ref, M * LD, 2e-5);
            // b as a parameter with a resident BF16 copy (pl_vit_train_sync) is read from that copy: a copy holding
            // 2 b (exact in BF16) doubles the product
            static uint16_t w16[LD * LD];
            static _Atomic int valid = 1;
            for (int i = 0; i < LD * LD; i++) w16[i] = pl_bf16_from_f32(2.0f * pl_bf16_to_f32(pl_bf16_from_f32(b[i])));
            PlTrainGemm gr = g;
            gr.w32 = b, gr.w16 = w16, gr.wn = LD * LD, gr.w16_valid = &valid;
            for (int i = 0; i < M * LD; i++) c[i] = 0.5f, ref[i] = 2.0f * (ref[i] - 0.5f) + 0.5f;
            pl_train_gemm(&gr, ta, tb, M, N, K, 1.0f, a, LD, b, LD, 1.0f, c, LD);
            assert_close("bf16 train gemm (resident parameters)", c, ref, M * LD, 4e-5);
        }
    assert_memory_equal(a, a_copy, sizeof(float) * LD * LD);   // FP32 master values untouched
    free(a), free(b), free(c), free(ref), free(a_copy);
}

// ---- GELU ----
typedef struct {
    float *pre, *g, *out;
    int64_t n;
} GeluCtx;
static double gelu_loss(void *p) {
    GeluCtx *c = p;
    pl_gelu_forward(c->out, c->pre, c->n);
    return dotd(c->g, c->out, (size_t)c->n);
}

static void test_gelu_backward(void **state) {
    (void)state;
    const int64_t n = 5 * 9;
    GeluCtx c = {rand_buf(n, 4.0f), rand_buf(n, 1.0f), const_buf(n, 0), n};
    c.pre[0] = 0.0f, c.pre[1] = -6.0f, c.pre[2] = 6.0f;
    float *dpre = const_buf(n, 11.0f);
    gelu_loss(&c);   // the forward's output, which the backward reads
    pl_gelu_backward(dpre, c.g, c.pre, c.out, n);
    check_fd("gelu dpre", c.pre, n, dpre, gelu_loss, &c, FD_TOL);
    // the forward runs in place (out == pre) with the same values
    float *inplace = malloc(n * sizeof(float));
    memcpy(inplace, c.pre, n * sizeof(float));
    gelu_loss(&c);
    pl_gelu_forward(inplace, inplace, n);
    assert_memory_equal(inplace, c.out, n * sizeof(float));
    free(inplace), free(dpre), free(c.pre), free(c.g), free(c.out);
}

// ---- attention ----
typedef struct {
    float *qkv, *g, *out, *lse, *probs;
    void *scratch;
    int B, T, D, NH;
    const PlKernels *k;   // NULL: the flash path; the default backend: the GEMM path
} AttCtx;
static double att_loss(void *p) {
    AttCtx *c = p;
    pl_attention_forward(c->k, c->out, c->lse, c->probs, c->qkv, c->B, c->T, c->D, c->NH, PL_PRECISION_FP32, c->scratch);
    return dotd(c->g, c->out, (size_t)c->B * c->T * c->D);
}

static void test_attention_backward(void **state) {
    (void)state;
    for (int path = 0; path < 2; path++)
        for (int NH = 1; NH <= 4; NH *= 2) {
            const int B = 2, T = 5, D = 8;
            const PlKernels *k = path ? pl_kernels_default() : NULL;
            float probe[1];
            assert_int_equal(pl_attention_uses_gemm(k, probe, T, PL_PRECISION_FP32), path);
            assert_int_equal(pl_attention_uses_gemm(pl_kernels_default(), NULL, T, PL_PRECISION_FP32), 0);   // no room
            size_t nq = (size_t)B * T * 3 * D, no = (size_t)B * T * D, nl = (size_t)B * NH * T;
            size_t sb = (pl_attention_scratch_bytes(T, D, NH, PL_PRECISION_FP32) + 63) / 64 * 64;
            AttCtx c = {rand_buf(nq, 1.5f), rand_buf(no, 1.0f), const_buf(no, 0), const_buf(nl, 0),
                        path ? const_buf(nl * T, 0) : NULL, aligned_alloc(64, sb), B, T, D, NH, k};
            assert_non_null(c.scratch);
            att_loss(&c);
            if (!path)
                for (size_t r = 0; r < nl; r++) assert_true(isfinite(c.lse[r]));   // log-sum-exp of each query row
            float *out = malloc(no * sizeof(float)), *lse = malloc(nl * sizeof(float)), *dqkv = const_buf(nq, 13.0f);
            float *probs = path ? malloc(nl * T * sizeof(float)) : NULL;
            memcpy(out, c.out, no * sizeof(float));
            memcpy(lse, c.lse, nl * sizeof(float));
            if (path) {   // each row of P is a distribution
                memcpy(probs, c.probs, nl * T * sizeof(float));
                for (size_t r = 0; r < nl; r++) {
                    double sum = 0.0;
                    for (int j = 0; j < T; j++) sum += probs[r * T + j];
                    assert_true(fabs(sum - 1.0) < 1e-6);
                }
            }
            pl_attention_backward(k, dqkv, c.g, c.qkv, out, lse, probs, B, T, D, NH, PL_PRECISION_FP32, c.scratch);
            char what[64];
            snprintf(what, sizeof what, "attention %s NH=%d dqkv", path ? "gemm" : "flash", NH);
            check_fd(what, c.qkv, nq, dqkv, att_loss, &c, FD_TOL);
            // overwritten: a second call into a differently pre-filled dqkv gives the same values
            float *dqkv2 = const_buf(nq, -2.0f);
            pl_attention_backward(k, dqkv2, c.g, c.qkv, out, lse, probs, B, T, D, NH, PL_PRECISION_FP32, c.scratch);
            assert_memory_equal(dqkv2, dqkv, nq * sizeof(float));
            free(dqkv2), free(out), free(lse), free(probs), free(dqkv), free(c.scratch), free(c.qkv), free(c.g),
                free(c.out), free(c.lse), free(c.probs);
        }
}

// The two paths compute the same function: forward and backward agree to float rounding, FP32 and BF16 (each BF16
// path against its own FP32, within BF16 operand rounding), at a size with several 64-key blocks and a ragged tail.
static void test_attention_paths_agree(void **state) {
    (void)state;
    const int B = 2, T = 133, D = 64, NH = 2;
    const PlKernels *k = NULL;
    if (pl_kernels_find("auto", PL_PRECISION_BF16, &k) != PL_OK) k = pl_kernels_default();   // BF16 where the CPU can
    size_t nq = (size_t)B * T * 3 * D, no = (size_t)B * T * D, nl = (size_t)B * NH * T;
    float *qkv = rand_buf(nq, 1.5f), *g = rand_buf(no, 1.0f), *lse = const_buf(nl, 0), *probs = const_buf(nl * T, 0);
    float *out[2][2], *dq[2][2];
    for (int prec = 0; prec < 2; prec++) {
        PlPrecision p = prec ? PL_PRECISION_BF16 : PL_PRECISION_FP32;
        if (prec && !k->gemm_bf16) continue;
        void *scratch = aligned_alloc(64, (pl_attention_scratch_bytes(T, D, NH, p) + 63) / 64 * 64);
        assert_non_null(scratch);
        for (int path = 0; path < 2; path++) {
            const PlKernels *kp = path ? k : NULL;
            out[prec][path] = const_buf(no, 0);
            dq[prec][path] = const_buf(nq, 0);
            pl_attention_forward(kp, out[prec][path], lse, probs, qkv, B, T, D, NH, p, scratch);
            pl_attention_backward(kp, dq[prec][path], g, qkv, out[prec][path], lse, probs, B, T, D, NH, p, scratch);
        }
        float eo = 0.0f, ed = 0.0f, tol = prec ? 5e-3f : 4e-6f;
        for (size_t i = 0; i < no; i++) eo = fmaxf(eo, fabsf(out[prec][0][i] - out[prec][1][i]));
        for (size_t i = 0; i < nq; i++) ed = fmaxf(ed, fabsf(dq[prec][0][i] - dq[prec][1][i]));
        printf("attention %s (%s) flash vs gemm: max|d out| %.3g, max|d dqkv| %.3g (tol %.3g, %.3g)\n",
               pl_precision_name(p), k->name, eo, ed, tol, 4 * tol);
        assert_true(eo <= tol);
        assert_true(ed <= 4 * tol);
        for (int path = 0; path < 2; path++) free(out[prec][path]), free(dq[prec][path]);
        free(scratch);
    }
    free(qkv), free(g), free(lse), free(probs);
}

// ---- losses ----
typedef struct {
    float *logits;
    const int32_t *y;
    const float *t;
    int B, NC;
    float scale;
} LossCtx;
// scale * sum_b -log softmax(l_b)[y_b], directly in double
static double xent_ref(void *p) {
    LossCtx *c = p;
    double L = 0.0;
    for (int b = 0; b < c->B; b++) {
        const float *l = c->logits + (size_t)b * c->NC;
        double m = l[0], z = 0.0;
        for (int i = 1; i < c->NC; i++) m = fmax(m, l[i]);
        for (int i = 0; i < c->NC; i++) z += exp((double)l[i] - m);
        L += m + log(z) - l[c->y[b]];
    }
    return c->scale * L;
}
static double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }
// scale * sum -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] = scale * sum t softplus(-x) + (1 - t) softplus(x)
static double bce_ref(void *p) {
    LossCtx *c = p;
    double L = 0.0;
    for (size_t i = 0; i < (size_t)c->B * c->NC; i++)
        L += c->t[i] * softplus(-(double)c->logits[i]) + (1.0 - c->t[i]) * softplus(c->logits[i]);
    return c->scale * L;
}

static void test_softmax_xent(void **state) {
    (void)state;
    enum { B = 4, NC = 6 };
    const int32_t y[B] = {0, 5, 2, 3};
    float *logits = rand_buf(B * NC, 3.0f), *dl = const_buf(B * NC, 17.0f);
    for (int i = 0; i < NC; i++) logits[3 * NC + i] *= 30.0f;   // one row of large logits: the max shift matters
    LossCtx c = {logits, y, NULL, B, NC, 1.0f};
    double L = pl_softmax_xent(dl, logits, y, B, NC, 1.0f / B), ref = xent_ref(&c);
    print_message("softmax_xent loss %.12g ref %.12g\n", L, ref);
    assert_true(isfinite(L) && fabs(L - ref) <= 1e-10 * fmax(1.0, fabs(ref)));
    c.scale = 1.0f / B;
    check_fd("softmax_xent dlogits", logits, B * NC, dl, xent_ref, &c, LOSS_TOL);
    for (int b = 0; b < B; b++) {   // rows of softmax - onehot sum to 0
        double s = 0.0;
        for (int i = 0; i < NC; i++) s += dl[b * NC + i];
        assert_true(fabs(s) <= 1e-6);
    }
    free(logits), free(dl);
}

static void test_bce_logits(void **state) {
    (void)state;
    enum { B = 3, NC = 5 };
    float *logits = rand_buf(B * NC, 4.0f), *t = rand_buf(B * NC, 1.0f), *dl = const_buf(B * NC, 17.0f);
    for (int i = 0; i < B * NC; i++) t[i] = 0.5f * (t[i] + 1.0f);   // soft targets in [0, 1)
    t[0] = 0.0f, t[1] = 1.0f, t[2] = 1.0f, t[3] = 0.0f;
    logits[0] = 30.0f, logits[1] = -30.0f, logits[2] = 25.0f, logits[3] = -25.0f, logits[4] = 0.0f;
    const float scale = 1.0f / (B * NC);
    LossCtx c = {logits, NULL, t, B, NC, 1.0f};
    double L = pl_bce_logits(dl, logits, t, B, NC, scale), ref = bce_ref(&c);
    print_message("bce_logits loss %.12g ref %.12g\n", L, ref);
    assert_true(isfinite(L) && fabs(L - ref) <= 1e-10 * fmax(1.0, fabs(ref)));
    c.scale = scale;
    check_fd("bce_logits dlogits", logits, B * NC, dl, bce_ref, &c, LOSS_TOL);
    free(logits), free(t), free(dl);
}

// ---- position embedding resize ----
// <resize(a), b> == <a, resize_backward(b)> in double for random a, b; resize_backward adds into dsrc.
static void check_pos_adjoint(int grid, int gh, int gw, int dim) {
    size_t ns = (size_t)grid * grid * dim, nd = (size_t)gh * gw * dim;
    float *a = rand_buf(ns, 1.0f), *b = rand_buf(nd, 1.0f), *ra = const_buf(nd, 0), *rb = const_buf(ns, 0);
    pl_vit_pos_resize(a, grid, dim, gh, gw, ra);
    pl_vit_pos_resize_backward(b, grid, dim, gh, gw, rb);
    double lhs = dotd(ra, b, nd), rhs = dotd(a, rb, ns), mag = 0.0;
    for (size_t i = 0; i < nd; i++) mag += fabs((double)ra[i] * b[i]);
    print_message("pos_resize %2d -> (%2d,%2d) dim %d: <Ra,b> %.9g <a,R'b> %.9g rel %.3g\n", grid, gh, gw, dim, lhs,
                  rhs, fabs(lhs - rhs) / mag);
    assert_true(fabs(lhs - rhs) <= 1e-5 * mag);
    float *acc = rand_buf(ns, 2.0f), *sum = malloc(ns * sizeof(float));
    for (size_t i = 0; i < ns; i++) sum[i] = acc[i] + rb[i];
    pl_vit_pos_resize_backward(b, grid, dim, gh, gw, acc);
    assert_close("pos_resize_backward +=", acc, sum, ns, 1e-5);
    free(a), free(b), free(ra), free(rb), free(acc), free(sum);
}

// Small grids, dim 1: the backward of every unit vector is the matching row of the forward's matrix.
static void check_pos_transpose(int grid, int gh, int gw) {
    int ns = grid * grid, nd = gh * gw;
    float *m = malloc((size_t)nd * ns * sizeof(float)), *e = const_buf(ns > nd ? ns : nd, 0);
    float *col = malloc((size_t)nd * sizeof(float)), *row = malloc((size_t)ns * sizeof(float));
    for (int k = 0; k < ns; k++) {   // column k of M = resize(e_k)
        e[k] = 1.0f;
        pl_vit_pos_resize(e, grid, 1, gh, gw, col);
        e[k] = 0.0f;
        for (int r = 0; r < nd; r++) m[(size_t)r * ns + k] = col[r];
    }
    for (int r = 0; r < nd; r++) {   // resize_backward(e_r) = row r of M
        e[r] = 1.0f;
        memset(row, 0, (size_t)ns * sizeof(float));
        pl_vit_pos_resize_backward(e, grid, 1, gh, gw, row);
        e[r] = 0.0f;
        assert_close("pos_resize_backward row", row, m + (size_t)r * ns, ns, 1e-6);
    }
    free(m), free(e), free(col), free(row);
}

static void test_pos_resize_backward_is_transpose(void **state) {
    (void)state;
    const int cases[4][3] = {{4, 3, 5}, {4, 5, 5}, {4, 4, 6}, {14, 32, 20}};
    for (int i = 0; i < 4; i++) {
        check_pos_adjoint(cases[i][0], cases[i][1], cases[i][2], 3);
        if (cases[i][0] == 4) check_pos_transpose(cases[i][0], cases[i][1], cases[i][2]);
    }
}

int main(void) {
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm_backward),
        cmocka_unit_test(test_linear_backward),
        cmocka_unit_test(test_train_gemm_bf16),
        cmocka_unit_test(test_gelu_backward),
        cmocka_unit_test(test_attention_backward),
        cmocka_unit_test(test_attention_paths_agree),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_bce_logits),
        cmocka_unit_test(test_pos_resize_backward_is_transpose),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
