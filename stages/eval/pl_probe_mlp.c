// DINO4Cells MLP head: Linear(F,512)-ReLU-Dropout-Linear(512,256)-ReLU-Dropout-Linear(256,C), AdamW,
// cosine learning-rate (lr -> lr_min) and weight-decay (wd_start -> wd_end) schedules per step, class-balanced
// sampling with replacement, early stopping on validation macro F1 (best weights kept).
#include "pl_probe_mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_metrics.h"
#include "pl_rng.h"

typedef struct MlpParams {
    float *W1, *b1, *W2, *b2, *W3, *b3;   // (F,H1) (H1) (H1,H2) (H2) (H2,C) (C): y = x W + b
} MlpParams;

static void mlp_carve(float *base, int F, int H1, int H2, int C, MlpParams *p) {
    p->W1 = base;
    p->b1 = p->W1 + (size_t)F * H1;
    p->W2 = p->b1 + H1;
    p->b2 = p->W2 + (size_t)H1 * H2;
    p->W3 = p->b2 + H2;
    p->b3 = p->W3 + (size_t)H2 * C;
}

// Row-major C (m, n) = op(A) op(B) [+ C when accumulate], on the options' kernels over their pool
static void mlp_gemm(const PlProbeOptions *o, int ta, int tb, int m, int n, int k, const float *a, int lda,
                     const float *b, int ldb, int accumulate, float *c, int ldc) {
    pl_kernels_gemm_pooled(o->kernels, o->pool, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, accumulate ? 1.0f : 0.0f, c, ldc);
}

// out (n, m) = relu?(x (n, k) . W (k, m) + b)
static void mlp_linear(const PlProbeOptions *o, const float *x, int n, int k, const float *W, const float *b, int m,
                       float *out, int relu) {
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * m, b, (size_t)m * sizeof(float));
    mlp_gemm(o, 0, 0, n, m, k, x, k, W, m, 1, out, m);
    if (relu)
        for (size_t i = 0; i < (size_t)n * m; i++) out[i] = out[i] > 0 ? out[i] : 0;
}

// One AdamW step over the parameter slab, cut into fixed blocks of MLP_ADAM_BLOCK elements, one
// pool task each: every element is updated on its own, so the result does not depend on the blocks or the threads.
enum { MLP_ADAM_BLOCK = 32768 };

typedef struct MlpAdamStep {
    float *theta, *am, *av;
    const float *grad;
    size_t n;
    size_t seg[6][2];         // (start, length) of W1 b1 W2 b2 W3 b3 in theta; weight decay on the matrices only
    double b1, b2, eps, lr, bc1, bc2;
    float decay;              // 1 - lr * wd
} MlpAdamStep;

static void mlp_adam_block(void *ctx, int task, int thread) {
    (void)thread;
    const MlpAdamStep *s = ctx;
    size_t lo = (size_t)task * MLP_ADAM_BLOCK, hi = lo + MLP_ADAM_BLOCK < s->n ? lo + MLP_ADAM_BLOCK : s->n;
    for (int l = 0; l < 6; l++) {
        size_t a = s->seg[l][0] > lo ? s->seg[l][0] : lo, e = s->seg[l][0] + s->seg[l][1];
        if (e > hi) e = hi;
        float decay = (l % 2 == 0) ? s->decay : 1.0f;
        for (size_t i = a; i < e; i++) {
            float gi = s->grad[i];
            s->am[i] = (float)(s->b1 * s->am[i] + (1 - s->b1) * gi);
            s->av[i] = (float)(s->b2 * s->av[i] + (1 - s->b2) * gi * gi);
            s->theta[i] = s->theta[i] * decay - (float)(s->lr * (s->am[i] / s->bc1) / (sqrt(s->av[i] / s->bc2) + s->eps));
        }
    }
}

// Predictions for n rows in chunks (inference: no dropout). buf holds chunk * (H1 + H2 + C) floats.
static void mlp_predict(const PlProbeOptions *o, const MlpParams *p, int F, int H1, int H2, int C, const float *x,
                        int64_t n, float *buf, int chunk, int32_t *pred) {
    float *h1 = buf, *h2 = h1 + (size_t)chunk * H1, *z = h2 + (size_t)chunk * H2;
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int m = (int)(n - i0 < chunk ? n - i0 : chunk);
        mlp_linear(o, x + (size_t)i0 * F, m, F, p->W1, p->b1, H1, h1, 1);
        mlp_linear(o, h1, m, H1, p->W2, p->b2, H2, h2, 1);
        mlp_linear(o, h2, m, H2, p->W3, p->b3, C, z, 0);
        for (int i = 0; i < m; i++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (z[(size_t)i * C + c] > z[(size_t)i * C + best]) best = c;
            pred[i0 + i] = best;
        }
    }
}

static double mlp_macro_f1(const int32_t *y, const int32_t *pred, int64_t n, int C, int64_t *counts) {
    PlClassCounts cc = {C, counts, counts + C, counts + 2 * C};
    pl_metrics_count(y, pred, n, 1, &cc);
    return pl_metrics_macro_f1(&cc, NULL, NULL);
}

PlStatus pl_probe_mlp_run(const PlProbeOptions *o, int C, int F, const float *xtr, const int32_t *ytr, int64_t n_tr,
                          const float *xva, const int32_t *yva, int64_t n_va, const float *xte, int64_t n_te,
                          uint64_t seed, int32_t *pred, int *best_epoch) {
    int H1 = o->hidden1, H2 = o->hidden2, B = o->batch;
    if (n_tr < 1 || n_va < 1 || C < 2 || B < 1) return PL_FAIL(PL_ERR_ARG, "MLP head: needs training and validation rows and 2+ classes");
    size_t np = (size_t)F * H1 + H1 + (size_t)H1 * H2 + H2 + (size_t)H2 * C + C;
    const int chunk = 512;
    // one slab: params, grads, adam m, adam v, best params | batch x, h1, m1, h2, m2, z | class index | eval buffers
    size_t nf = 5 * np + (size_t)B * (F + 2 * H1 + 2 * H2 + C) + (size_t)(B > chunk ? B : chunk) * (H1 + H2 + C);
    float *slab = pl_calloc(nf, sizeof(float));
    int64_t *byclass = pl_malloc(((size_t)n_tr + C + 1) * sizeof(int64_t) + (size_t)C * sizeof(int64_t));
    int32_t *yb = pl_malloc(((size_t)B + (size_t)n_va + 1) * sizeof(int32_t));
    int64_t *counts = pl_malloc(3 * (size_t)C * sizeof(int64_t));
    if (!slab || !byclass || !yb || !counts) {
        free(slab); free(byclass); free(yb); free(counts);
        return pl_error_wrap("MLP head working memory");
    }
    float *theta = slab, *grad = theta + np, *am = grad + np, *av = am + np, *best = av + np;
    float *xb = best + np, *h1 = xb + (size_t)B * F, *m1 = h1 + (size_t)B * H1, *h2 = m1 + (size_t)B * H1,
          *m2 = h2 + (size_t)B * H2, *z = m2 + (size_t)B * H2, *ebuf = z + (size_t)B * C;
    int32_t *pva = yb + B;
    MlpParams P, G;
    mlp_carve(theta, F, H1, H2, C, &P);
    mlp_carve(grad, F, H1, H2, C, &G);
    PlRng rng;
    pl_rng_seed(&rng, seed);
    // PyTorch Linear initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
    struct { float *w; size_t n; int fan; } init[6] = {{P.W1, (size_t)F * H1, F}, {P.b1, (size_t)H1, F},
        {P.W2, (size_t)H1 * H2, H1}, {P.b2, (size_t)H2, H1}, {P.W3, (size_t)H2 * C, H2}, {P.b3, (size_t)C, H2}};
    for (int l = 0; l < 6; l++) {
        double a = 1.0 / sqrt((double)init[l].fan);
        for (size_t i = 0; i < init[l].n; i++) init[l].w[i] = (float)((2 * pl_rng_uniform(&rng) - 1) * a);
    }
    // rows grouped by class for balanced sampling
    int64_t *cstart = byclass + n_tr, *ccount = cstart + C + 1;
    for (int c = 0; c <= C; c++) cstart[c] = 0;
    for (int64_t i = 0; i < n_tr; i++) cstart[ytr[i] + 1]++;
    for (int c = 0; c < C; c++) { ccount[c] = cstart[c + 1]; cstart[c + 1] += cstart[c]; }
    {
        int64_t fill[C];
        for (int c = 0; c < C; c++) fill[c] = cstart[c];
        for (int64_t i = 0; i < n_tr; i++) byclass[fill[ytr[i]]++] = i;
    }
    int present[C], n_present = 0;
    for (int c = 0; c < C; c++) if (ccount[c] > 0) present[n_present++] = c;

    int64_t steps_per_epoch = (n_tr + B - 1) / B;
    int64_t total = steps_per_epoch * o->epochs, step = 0;
    double b1c = 0.9, b2c = 0.999, eps = 1e-8;
    double best_f1 = -1;
    int since = 0, epoch;
    *best_epoch = 0;
    memcpy(best, theta, np * sizeof(float));
    float keep = (float)(1.0 - o->dropout), inv_keep = keep > 0 ? 1.0f / keep : 0.0f;
    for (epoch = 1; epoch <= o->epochs; epoch++) {
        for (int64_t s = 0; s < steps_per_epoch; s++, step++) {
            // class-balanced batch: class uniform over present classes, row uniform within the class
            for (int i = 0; i < B; i++) {
                int c = present[pl_rng_below(&rng, n_present)];
                int64_t r = byclass[cstart[c] + pl_rng_below(&rng, ccount[c])];
                memcpy(xb + (size_t)i * F, xtr + (size_t)r * F, (size_t)F * sizeof(float));
                yb[i] = ytr[r];
            }
            // forward with dropout masks (m1, m2 hold 0 or 1/keep)
            mlp_linear(o, xb, B, F, P.W1, P.b1, H1, h1, 1);
            for (size_t i = 0; i < (size_t)B * H1; i++) { m1[i] = pl_rng_uniform(&rng) < keep ? inv_keep : 0; h1[i] *= m1[i]; }
            mlp_linear(o, h1, B, H1, P.W2, P.b2, H2, h2, 1);
            for (size_t i = 0; i < (size_t)B * H2; i++) { m2[i] = pl_rng_uniform(&rng) < keep ? inv_keep : 0; h2[i] *= m2[i]; }
            mlp_linear(o, h2, B, H2, P.W3, P.b3, C, z, 0);
            // dz = (softmax - onehot) / B
            for (int i = 0; i < B; i++) {
                float *zi = z + (size_t)i * C;
                float mx = zi[0];
                for (int c = 1; c < C; c++) mx = zi[c] > mx ? zi[c] : mx;
                double sum = 0;
                for (int c = 0; c < C; c++) { zi[c] = expf(zi[c] - mx); sum += zi[c]; }
                for (int c = 0; c < C; c++) zi[c] = (float)((zi[c] / sum - (c == yb[i] ? 1.0 : 0.0)) / B);
            }
            // backward: dW3 = h2^T dz, db3 = sum dz, dh2 = dz W3^T * mask2 * relu'
            mlp_gemm(o, 1, 0, H2, C, B, h2, H2, z, C, 0, G.W3, C);
            for (int c = 0; c < C; c++) { float a = 0; for (int i = 0; i < B; i++) a += z[(size_t)i * C + c]; G.b3[c] = a; }
            // dh2 overwrites m2 (h2 > 0 exactly where relu and mask were active)
            mlp_gemm(o, 0, 1, B, H2, C, z, C, P.W3, C, 0, ebuf, H2);
            for (size_t i = 0; i < (size_t)B * H2; i++) m2[i] = h2[i] > 0 ? ebuf[i] * m2[i] : 0;
            mlp_gemm(o, 1, 0, H1, H2, B, h1, H1, m2, H2, 0, G.W2, H2);
            for (int c = 0; c < H2; c++) { float a = 0; for (int i = 0; i < B; i++) a += m2[(size_t)i * H2 + c]; G.b2[c] = a; }
            mlp_gemm(o, 0, 1, B, H1, H2, m2, H2, P.W2, H2, 0, ebuf, H1);
            for (size_t i = 0; i < (size_t)B * H1; i++) m1[i] = h1[i] > 0 ? ebuf[i] * m1[i] : 0;
            mlp_gemm(o, 1, 0, F, H1, B, xb, F, m1, H1, 0, G.W1, H1);
            for (int c = 0; c < H1; c++) { float a = 0; for (int i = 0; i < B; i++) a += m1[(size_t)i * H1 + c]; G.b1[c] = a; }
            // AdamW with cosine schedules (weight decay on weight matrices only)
            double t = total > 1 ? (double)step / (double)(total - 1) : 1.0;
            double cosw = 0.5 * (1 + cos(M_PI * t));
            double lr = o->lr_min + (o->lr - o->lr_min) * cosw;
            double wd = o->wd_end + (o->wd_start - o->wd_end) * cosw;
            double bc1 = 1 - pow(b1c, (double)(step + 1)), bc2 = 1 - pow(b2c, (double)(step + 1));
            MlpAdamStep as = {theta, am, av, grad, np,
                              {{0, (size_t)F * H1}, {(size_t)(P.b1 - theta), (size_t)H1},
                               {(size_t)(P.W2 - theta), (size_t)H1 * H2}, {(size_t)(P.b2 - theta), (size_t)H2},
                               {(size_t)(P.W3 - theta), (size_t)H2 * C}, {(size_t)(P.b3 - theta), (size_t)C}},
                              b1c, b2c, eps, lr, bc1, bc2, (float)(1 - lr * wd)};
            int blocks = (int)((np + MLP_ADAM_BLOCK - 1) / MLP_ADAM_BLOCK);
            if (o->pool) pl_threadpool_run(o->pool, mlp_adam_block, &as, blocks);
            else for (int b = 0; b < blocks; b++) mlp_adam_block(&as, b, 0);
        }
        mlp_predict(o, &P, F, H1, H2, C, xva, n_va, ebuf, chunk, pva);
        double f1 = mlp_macro_f1(yva, pva, n_va, C, counts);
        if (!isfinite(theta[0])) break;
        if (f1 > best_f1) {
            best_f1 = f1;
            *best_epoch = epoch;
            memcpy(best, theta, np * sizeof(float));
            since = 0;
        } else if (++since >= o->patience) {
            break;
        }
    }
    MlpParams Bp;
    mlp_carve(best, F, H1, H2, C, &Bp);
    PlStatus st = PL_OK;
    for (size_t i = 0; i < np; i++)
        if (!isfinite(best[i])) { st = PL_FAIL(PL_ERR_NUMERIC, "MLP head: weights became non-finite"); break; }
    if (st == PL_OK) mlp_predict(o, &Bp, F, H1, H2, C, xte, n_te, ebuf, chunk, pred);
    free(slab); free(byclass); free(yb); free(counts);
    return st;
}
