// Multinomial logistic regression with L2 (sklearn's objective) fitted by L-BFGS; linear prediction.
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_probe.h"

typedef struct LogregProblem {
    const PlKernels *k;
    PlThreadPool *pool;
    const float *x;        // (n, d)
    const int32_t *y;      // (n)
    int64_t n;
    int d, C;
    double inv_c;          // 1 / C_reg
    float *W;              // (d, C) float copy of the parameters for sgemm
    float *logits;         // (n, C) scratch; becomes P - Y
    float *gW;             // (d, C) float gradient from sgemm
} LogregProblem;

// f(theta) and its gradient; theta = [W (d*C) | b (C)] in double.
// The cross-entropy stays here rather than in pl_softmax_xent (pl_train_layers.h) because this is a different
// objective for a different optimizer: sklearn's L2-regularised SUM (not a batch mean) minimised by L-BFGS, whose
// Armijo test compares f in double between trial points. Each logit is the float GEMM product plus the bias in double
// (z + b, softmax and log-sum-exp in double) and the bias gradient sums the double residuals; pl_softmax_xent takes
// float logits and returns float residuals, so the bias would be rounded into float32 logits first. Measured on the
// probe benchmark (60,000 x 768, 17 classes, onednn, 2 threads): macro F1 unchanged (0.6027), but the rounding noise in
// f makes more trial steps fail the Armijo test: 103 evaluations for 33 iterations instead of 64 for 32, the fit
// about 1.5x slower.
static double logreg_eval(LogregProblem *p, const double *theta, double *grad) {
    int d = p->d, C = p->C;
    size_t nw = (size_t)d * C;
    for (size_t i = 0; i < nw; i++) p->W[i] = (float)theta[i];
    const double *b = theta + nw;
    // logits (n, C) = x (n, d) . W (d, C)
    pl_kernels_gemm_pooled(p->k, p->pool, 0, 0, (int)p->n, C, d, 1.0f, p->x, d, p->W, C, 0.0f, p->logits, C);
    double loss = 0;
    double *gb = grad + nw;
    for (int c = 0; c < C; c++) gb[c] = 0;
    for (int64_t i = 0; i < p->n; i++) {
        float *z = p->logits + (size_t)i * C;
        double m = -INFINITY;
        for (int c = 0; c < C; c++) {
            double v = (double)z[c] + b[c];
            if (v > m) m = v;
        }
        double s = 0;
        for (int c = 0; c < C; c++) s += exp((double)z[c] + b[c] - m);
        double lse = m + log(s);
        loss += lse - ((double)z[p->y[i]] + b[p->y[i]]);
        for (int c = 0; c < C; c++) {
            double pr = exp((double)z[c] + b[c] - lse) - (c == p->y[i] ? 1.0 : 0.0);
            z[c] = (float)pr;
            gb[c] += pr;
        }
    }
    // gW (d, C) = x^T (d, n) . (P - Y) (n, C)
    pl_kernels_gemm_pooled(p->k, p->pool, 1, 0, d, C, (int)p->n, 1.0f, p->x, d, p->logits, C, 0.0f, p->gW, C);
    double reg = 0;
    for (size_t i = 0; i < nw; i++) {
        reg += theta[i] * theta[i];
        grad[i] = (double)p->gW[i] + p->inv_c * theta[i];
    }
    return loss + 0.5 * p->inv_c * reg;
}

static double logreg_dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

PlStatus pl_probe_logreg_fit(const PlKernels *k, PlThreadPool *pool, const float *x, const int32_t *y, int64_t n, int d,
                             int C, double Creg, int max_iter, double tol, float *Wout, float *bout, int *iters) {
    if (n < 1 || n > INT_MAX || d < 1 || C < 1 || !(Creg > 0))
        return PL_FAIL(PL_ERR_ARG, "logistic regression: bad sizes or C (%lld rows, %d dims, %d classes, C %g)",
                       (long long)n, d, C, Creg);
    enum { M = 10 };
    size_t np = (size_t)d * C + C;
    // one slab: theta, grad, dir, theta_new, grad_new, S (M, np), Y (M, np) | floats: W, gW, logits
    size_t nd = np * (5 + 2 * M);
    double *slab = pl_calloc(nd, sizeof(double));
    float *fs = pl_malloc(((size_t)d * C * 2 + (size_t)n * C) * sizeof(float));
    if (!slab || !fs) {
        free(slab);
        free(fs);
        return pl_error_wrap("logistic regression working memory (%lld x %d)", (long long)n, C);
    }
    double *th = slab, *g = th + np, *dir = g + np, *th2 = dir + np, *g2 = th2 + np, *S = g2 + np, *Yv = S + M * np;
    double rho[M], alpha[M];
    LogregProblem p = {k, pool, x, y, n, d, C, 1.0 / Creg, fs, fs + (size_t)d * C * 2, fs + (size_t)d * C};
    double f = logreg_eval(&p, th, g);
    int hist = 0, head = 0, it = 0;
    double gnorm0 = 0;
    for (size_t i = 0; i < np; i++) gnorm0 = fmax(gnorm0, fabs(g[i]));
    PlStatus st = PL_OK;
    for (it = 0; it < max_iter; it++) {
        double gmax = 0;
        for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(g[i]));
        if (gmax <= tol * fmax(1.0, gnorm0)) break;
        // two-loop recursion: dir = -H g
        for (size_t i = 0; i < np; i++) dir[i] = -g[i];
        for (int j = 0; j < hist; j++) {
            int k = (head - 1 - j + M) % M;
            alpha[k] = rho[k] * logreg_dot(S + k * np, dir, np);
            for (size_t i = 0; i < np; i++) dir[i] -= alpha[k] * Yv[k * np + i];
        }
        if (hist > 0) {
            int k = (head - 1 + M) % M;
            double gamma = logreg_dot(S + k * np, Yv + k * np, np) / logreg_dot(Yv + k * np, Yv + k * np, np);
            for (size_t i = 0; i < np; i++) dir[i] *= gamma;
        } else {
            double gn = sqrt(logreg_dot(g, g, np));
            for (size_t i = 0; i < np; i++) dir[i] /= fmax(gn, 1.0);
        }
        for (int j = hist - 1; j >= 0; j--) {
            int k = (head - 1 - j + M) % M;
            double beta = rho[k] * logreg_dot(Yv + k * np, dir, np);
            for (size_t i = 0; i < np; i++) dir[i] += (alpha[k] - beta) * S[k * np + i];
        }
        double dg = logreg_dot(dir, g, np);
        if (dg >= 0) {   // not a descent direction: restart with steepest descent
            hist = 0;
            for (size_t i = 0; i < np; i++) dir[i] = -g[i];
            dg = -logreg_dot(g, g, np);
        }
        // backtracking line search with the Armijo condition (and a curvature check for the update)
        double step = 1.0, f2 = f;
        int ok = 0;
        for (int ls = 0; ls < 40; ls++) {
            for (size_t i = 0; i < np; i++) th2[i] = th[i] + step * dir[i];
            f2 = logreg_eval(&p, th2, g2);
            if (isfinite(f2) && f2 <= f + 1e-4 * step * dg) {
                ok = 1;
                break;
            }
            step *= 0.5;
        }
        if (!ok) break;   // no progress possible at float precision: converged as far as it goes
        double *s = S + head * np, *yv = Yv + head * np;
        for (size_t i = 0; i < np; i++) {
            s[i] = th2[i] - th[i];
            yv[i] = g2[i] - g[i];
        }
        double sy = logreg_dot(s, yv, np);
        if (sy > 1e-12) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % M;
            if (hist < M) hist++;
        }
        double fold = f;
        memcpy(th, th2, np * sizeof(double));
        memcpy(g, g2, np * sizeof(double));
        f = f2;
        if (fabs(fold - f) <= 1e-12 * fmax(1.0, fabs(f))) {
            it++;
            break;
        }
    }
    if (!isfinite(f)) st = PL_FAIL(PL_ERR_NUMERIC, "logistic regression diverged (loss %g)", f);
    for (size_t i = 0; i < (size_t)d * C; i++) Wout[i] = (float)th[i];
    for (int c = 0; c < C; c++) bout[c] = (float)th[(size_t)d * C + c];
    if (iters) *iters = it;
    free(slab);
    free(fs);
    return st;
}

void pl_probe_linear_predict(const PlKernels *k, PlThreadPool *pool, const float *x, int64_t n, int d, int C,
                             const float *W, const float *b, int32_t *pred) {
    float z[4096];
    int chunk = C > 0 && C <= 4096 ? 4096 / C : 1;
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int m = (int)(n - i0 < chunk ? n - i0 : chunk);
        pl_kernels_gemm_pooled(k, pool, 0, 0, m, C, d, 1.0f, x + (size_t)i0 * d, d, W, C, 0.0f, z, C);
        for (int i = 0; i < m; i++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (z[(size_t)i * C + c] + b[c] > z[(size_t)i * C + best] + b[best]) best = c;
            pred[i0 + i] = best;
        }
    }
}
