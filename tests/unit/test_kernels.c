// Unit tests for the kernel interface (pl_kernels.h) under every registered backend: GEMM and BF16 GEMM against a
// double reference, linear() with each post-op against a reference, every backend against the `reference` backend
// on odd shapes, transposes, strides, alpha/beta and post-ops, row results independent of how rows are chunked (the
// property thread- and rank-count-independent embeddings rest on), and backend selection / refusal messages.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_dispatch.h"
#include "pl_kernels.h"
#include "pl_threadpool.h"


static float val(long i, int salt) { return (float)(((i * 7919 + salt * 104729) % 2001) - 1000) / 731.0f; }

static float bf16_round(float x) { return pl_bf16_to_f32(pl_bf16_from_f32(x)); }

// Registered backend b at precision p, or NULL where the part `what` does not apply: a backend without a BF16 GEMM
// (openblas, reference) computes FP32 only by design and must refuse BF16, and a BF16 backend may refuse it on a CPU
// without AVX512-BF16 (a visible skip: the program then exits 77). FP32 must be there on every backend.
static const PlKernels *kernels_or_skip(int b, PlPrecision p, const char *what) {
    const PlKernelsBackend *be = pl_kernels_backend(b);
    const PlKernels *k = NULL;
    assert_non_null(be);
    if (p == PL_PRECISION_FP32) {
        PL_ASSERT_OK(pl_kernels_find(be->name, p, &k));
        return k;
    }
    PlStatus st = pl_kernels_find(be->name, p, &k);
    if (!be->kernels->gemm_bf16) {
        assert_int_equal(st, PL_ERR_UNSUPPORTED);
        return NULL;
    }
    if (st == PL_OK) return k;
    PlCpuLevel level = pl_cpu_level();
    if (st == PL_ERR_UNSUPPORTED && level < PL_CPU_AVX512_BF16) {
        pl_test_skip_part("%s: %s BF16 refused on this CPU (level %s): %s", what, be->name, pl_cpu_level_name(level),
                          pl_error_message());
        return NULL;
    }
    fail_msg("%s: %s BF16 unavailable on a CPU of level %s: %s", what, be->name, pl_cpu_level_name(level),
             pl_error_message());
    return NULL;
}

// C (m, n) reference of linear(): [C +] act(round(A) round(W)^T + bias) in double.
static void linear_reference(int m, int n, int k, const float *a, const float *w, const float *bias, int flags,
                             int bf16, float *c) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float x = a[(size_t)i * k + p], y = w[(size_t)j * k + p];
                if (bf16) x = bf16_round(x), y = bf16_round(y);
                s += (double)x * y;
            }
            if (bias) s += bias[j];
            if (flags & PL_LINEAR_GELU) s = 0.5 * s * (1.0 + erf(s / sqrt(2.0)));
            c[(size_t)i * n + j] = (float)((flags & PL_LINEAR_ACCUMULATE) ? c[(size_t)i * n + j] + s : s);
        }
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

// linear() of one backend and precision: matches the reference, and every row's result is bit-identical however the
// rows are cut into calls, as long as the cuts fall on multiples of row_align rows (48 for OpenBLAS, which rounds a
// row according to its place in its 24/16-row tiles; what the ViT does). Backends with row_align 1 (oneDNN,
// reference) have rows independent of any cut, small tails included.
static void check_linear(const PlKernels *k, PlPrecision prec, int n, int kd) {
    enum { M = 421 };
    static const int aligned_a[] = {0, 48, 96, 240, 288, 384, M, M, M};
    static const int aligned_b[] = {0, 144, 336, M, M, M, M, M};
    static const int ragged_a[] = {0, 1, 6, 48, 96, 240, 288, 384, M};
    static const int ragged_b[] = {0, 48, 53, 144, 190, 336, 420, M};
    int ragged = k->row_align == 1;
    assert_true(ragged || 48 % k->row_align == 0);   // the aligned cuts are multiples of 48
    const int *cuts_a = ragged ? ragged_a : aligned_a, *cuts_b = ragged ? ragged_b : aligned_b;
    float *w = malloc(sizeof(float) * n * kd), *bias = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * M * kd);
    float *ref = malloc(sizeof(float) * M * n), *c1 = malloc(sizeof(float) * M * n), *c2 = malloc(sizeof(float) * M * n);
    void *scratch = NULL;
    assert_int_equal(posix_memalign(&scratch, 64, pl_kernels_linear_scratch_bytes(M, kd, prec) + 64), 0);
    for (long i = 0; i < (long)n * kd; i++) w[i] = val(i, 1) / sqrtf((float)kd);
    for (int i = 0; i < n; i++) bias[i] = val(i, 2) * 0.1f;
    for (long i = 0; i < (long)M * kd; i++) a[i] = val(i, 3);
    PlKernelMat *mat = NULL;
    assert_int_equal(k->mat_create(w, bias, n, kd, prec, &mat), PL_OK);
    static const int all_flags[] = {0, PL_LINEAR_GELU, PL_LINEAR_ACCUMULATE};
    for (int f = 0; f < 3; f++) {
        int flags = all_flags[f];
        for (long i = 0; i < (long)M * n; i++) ref[i] = c1[i] = c2[i] = val(i, 4);   // the residual for ACCUMULATE
        linear_reference(M, n, kd, a, w, bias, flags, prec == PL_PRECISION_BF16, ref);
        const int *cuts[2] = {cuts_a, cuts_b};
        int ncuts[2] = {9, 8};
        float *out[2] = {c1, c2};
        for (int v = 0; v < 2; v++)
            for (int i = 0; i + 1 < ncuts[v]; i++) {
                int r0 = cuts[v][i], m = cuts[v][i + 1] - r0;
                if (m == 0) continue;
                assert_int_equal(k->mat_plan(mat, m, kd, n, flags), PL_OK);
                k->linear(mat, m, a + (size_t)r0 * kd, kd, flags, out[v] + (size_t)r0 * n, n, scratch);
            }
        double e = max_abs_diff(c1, ref, (size_t)M * n);
        print_message("%s %s linear (%d x %d) flags %d: max |diff| to reference %.3g\n", k->name, pl_precision_name(prec),
                      n, kd, flags, e);
        assert_true(e <= 2e-4 * sqrt((double)kd));   // FP32 accumulation of kd terms of size ~1
        assert_memory_equal(c1, c2, sizeof(float) * M * n);
    }
    k->mat_destroy(mat);
    free(scratch);
    free(w);
    free(bias);
    free(a);
    free(ref);
    free(c1);
    free(c2);
}

static void test_linear_every_backend(void **state) {
    (void)state;
    static const int shapes[][2] = {{96, 96}, {288, 96}, {384, 1536}, {1152, 384}, {200, 37}};
    for (int b = 0; b < pl_kernels_backend_count(); b++)
        for (int p = 0; p < 2; p++) {
            const PlKernels *k = kernels_or_skip(b, (PlPrecision)p, "linear() against the reference");
            if (!k) continue;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_linear(k, (PlPrecision)p, shapes[s][0], shapes[s][1]);
        }
}

// gemm (every transpose, alpha, beta) and gemm_bf16 against a double reference on the same (rounded) inputs.
static void test_gemm_every_backend(void **state) {
    (void)state;
    enum { M = 37, N = 53, K = 71, LD = 80 };
    static float a[LD * LD], b[LD * LD], c[M * LD], ref[M * LD];
    static uint16_t a16[LD * LD], b16[LD * LD];
    for (int i = 0; i < LD * LD; i++) a[i] = val(i, 5), b[i] = val(i, 6);
    for (int i = 0; i < LD * LD; i++) a16[i] = pl_bf16_from_f32(a[i]), b16[i] = pl_bf16_from_f32(b[i]);
    for (int bk = 0; bk < pl_kernels_backend_count(); bk++) {
        const PlKernels *k = NULL;
        assert_int_equal(pl_kernels_find(pl_kernels_backend(bk)->name, PL_PRECISION_FP32, &k), PL_OK);
        for (int bf = 0; bf < 2; bf++) {
            if (bf && !k->gemm_bf16) continue;
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    for (int beta = 0; beta < 2; beta++) {
                        float alpha = 0.37f;
                        for (int i = 0; i < M * LD; i++) c[i] = ref[i] = val(i, 7);
                        for (int i = 0; i < M; i++)
                            for (int j = 0; j < N; j++) {
                                double s = 0;
                                for (int p = 0; p < K; p++) {
                                    size_t ia = ta ? (size_t)p * LD + i : (size_t)i * LD + p;
                                    size_t ib = tb ? (size_t)j * LD + p : (size_t)p * LD + j;
                                    float x = bf ? bf16_round(a[ia]) : a[ia], y = bf ? bf16_round(b[ib]) : b[ib];
                                    s += (double)x * y;
                                }
                                ref[i * LD + j] = (float)(alpha * s + beta * ref[i * LD + j]);
                            }
                        if (bf) k->gemm_bf16(ta, tb, M, N, K, alpha, a16, LD, b16, LD, (float)beta, c, LD);
                        else k->gemm(ta, tb, M, N, K, alpha, a, LD, b, LD, (float)beta, c, LD);
                        double e = max_abs_diff(c, ref, (size_t)M * LD);
                        if (e > 1e-4) fail_msg("%s gemm%s ta=%d tb=%d beta=%d: max |diff| %g", k->name, bf ? "_bf16" : "", ta, tb, beta, e);
                    }
            print_message("%s gemm%s: every transpose and beta within 1e-4 of the reference\n", k->name, bf ? "_bf16" : "");
        }
    }
}

// Threads of one pool running the same prepared linear (the same primitive) at once, as the ViT's row chunks do:
// every chunk's result equals the serial one (a primitive holding per-call state would race here).
typedef struct ConcurrentJob {
    const PlKernels *k;
    PlKernelMat *mat;
    const float *a;
    float *c;
    unsigned char *scratch;
    size_t scratch_bytes;
    int rows, n, kd;
} ConcurrentJob;

static void concurrent_task(void *ctx, int task, int thread) {
    ConcurrentJob *j = ctx;
    j->k->linear(j->mat, j->rows, j->a + (size_t)task * j->rows * j->kd, j->kd, PL_LINEAR_GELU,
                 j->c + (size_t)task * j->rows * j->n, j->n, j->scratch + (size_t)thread * j->scratch_bytes);
}

static void test_linear_concurrent_threads(void **state) {
    (void)state;
    enum { TASKS = 16, ROWS = 96, N = 384, KD = 384 };
    float *w = malloc(sizeof(float) * N * KD), *bias = malloc(sizeof(float) * N), *a = malloc(sizeof(float) * TASKS * ROWS * KD);
    float *serial = malloc(sizeof(float) * TASKS * ROWS * N), *par = malloc(sizeof(float) * TASKS * ROWS * N);
    for (long i = 0; i < (long)N * KD; i++) w[i] = val(i, 8) / 20.0f;
    for (int i = 0; i < N; i++) bias[i] = val(i, 9) * 0.1f;
    for (long i = 0; i < (long)TASKS * ROWS * KD; i++) a[i] = val(i, 10);
    PlThreadPool *pool = NULL;
    assert_int_equal(pl_threadpool_create(2, &pool), PL_OK);
    for (int b = 0; b < pl_kernels_backend_count(); b++)
        for (int p = 0; p < 2; p++) {
            const PlKernels *k = kernels_or_skip(b, (PlPrecision)p, "one linear run by 2 threads at once");
            if (!k) continue;
            ConcurrentJob j = {.k = k, .a = a, .rows = ROWS, .n = N, .kd = KD};
            j.scratch_bytes = pl_kernels_linear_scratch_bytes(ROWS, KD, (PlPrecision)p) + 64;
            assert_int_equal(posix_memalign((void **)&j.scratch, 64, 2 * j.scratch_bytes), 0);
            assert_int_equal(k->mat_create(w, bias, N, KD, (PlPrecision)p, &j.mat), PL_OK);
            assert_int_equal(k->mat_plan(j.mat, ROWS, KD, N, PL_LINEAR_GELU), PL_OK);
            j.c = serial;
            for (int t = 0; t < TASKS; t++) concurrent_task(&j, t, 0);
            for (int rep = 0; rep < 5; rep++) {
                j.c = par;
                memset(par, 0, sizeof(float) * TASKS * ROWS * N);
                pl_threadpool_run(pool, concurrent_task, &j, TASKS);
                assert_memory_equal(par, serial, sizeof(float) * TASKS * ROWS * N);
            }
            print_message("%s %s: one linear run by 2 threads at once = serial, bit for bit\n", k->name,
                          pl_precision_name((PlPrecision)p));
            k->mat_destroy(j.mat);
            free(j.scratch);
        }
    pl_threadpool_destroy(pool);
    free(w);
    free(bias);
    free(a);
    free(serial);
    free(par);
}

// BF16 operands passed as such: a BF16 GELU output (PL_LINEAR_BF16_OUT) is the FP32 output rounded to BF16 (to one
// BF16 unit: oneDNN's GELU on the way), and feeding it back as BF16 input (PL_LINEAR_BF16_IN) equals feeding the same
// values in FP32 (the backend converts them to the same BF16), bit for bit. openblas refuses both flags.
static void test_linear_bf16_operands(void **state) {
    (void)state;
    const PlKernels *k = pl_test_bf16_kernels("BF16 linear operands");
    if (!k) skip();
    enum { M = 100, N = 96, K = 64 };
    static float w[N * K], bias[N], a[M * K], c32[M * N], back[M * N], y1[M * K], y2[M * K], w2[K * N];
    static uint16_t c16[M * N];
    for (int i = 0; i < N * K; i++) w[i] = val(i, 12) / 8.0f, w2[i] = val(i, 13) / 8.0f;
    for (int i = 0; i < N; i++) bias[i] = val(i, 14) * 0.1f;
    for (int i = 0; i < M * K; i++) a[i] = val(i, 15);
    void *scratch = NULL;
    assert_int_equal(posix_memalign(&scratch, 64, pl_kernels_linear_scratch_bytes(M, N > K ? N : K, PL_PRECISION_BF16) + 64), 0);
    PlKernelMat *mat = NULL, *mat2 = NULL;
    assert_int_equal(k->mat_create(w, bias, N, K, PL_PRECISION_BF16, &mat), PL_OK);
    assert_int_equal(k->mat_create(w2, NULL, K, N, PL_PRECISION_BF16, &mat2), PL_OK);
    assert_int_equal(k->mat_plan(mat, M, K, N, PL_LINEAR_GELU), PL_OK);
    assert_int_equal(k->mat_plan(mat, M, K, N, PL_LINEAR_GELU | PL_LINEAR_BF16_OUT), PL_OK);
    k->linear(mat, M, a, K, PL_LINEAR_GELU, c32, N, scratch);
    k->linear(mat, M, a, K, PL_LINEAR_GELU | PL_LINEAR_BF16_OUT, c16, N, scratch);
    for (int i = 0; i < M * N; i++) {
        float r = pl_bf16_to_f32(pl_bf16_from_f32(c32[i])), g = pl_bf16_to_f32(c16[i]);
        if (!(fabsf(g - r) <= fabsf(r) * (1.0f / 128.0f) + 1e-6f)) fail_msg("bf16 out [%d]: %g vs %g", i, (double)g, (double)r);
        back[i] = g;
    }
    assert_int_equal(k->mat_plan(mat2, M, N, K, PL_LINEAR_BF16_IN), PL_OK);
    assert_int_equal(k->mat_plan(mat2, M, N, K, 0), PL_OK);
    k->linear(mat2, M, c16, N, PL_LINEAR_BF16_IN, y1, K, scratch);
    k->linear(mat2, M, back, N, 0, y2, K, scratch);
    assert_memory_equal(y1, y2, sizeof y1);
    assert_int_equal(k->mat_plan(mat, M, K, N, PL_LINEAR_ACCUMULATE | PL_LINEAR_BF16_OUT), PL_ERR_ARG);
    k->mat_destroy(mat);
    k->mat_destroy(mat2);
    PlKernelMat *om = NULL;
    const PlKernels *ob = NULL;
    PL_ASSERT_OK(pl_kernels_find("openblas", PL_PRECISION_FP32, &ob));
    assert_int_equal(ob->mat_create(w, bias, N, K, PL_PRECISION_FP32, &om), PL_OK);
    assert_int_equal(ob->mat_plan(om, M, K, N, PL_LINEAR_BF16_IN), PL_ERR_UNSUPPORTED);
    ob->mat_destroy(om);
    free(scratch);
}

static void test_find_and_refusals(void **state) {
    (void)state;
    const PlKernels *k = NULL;
    assert_int_equal(pl_kernels_find("auto", PL_PRECISION_FP32, &k), PL_OK);
    assert_non_null(k);
    assert_int_equal(pl_kernels_find(NULL, PL_PRECISION_FP32, &k), PL_OK);
    assert_int_equal(pl_kernels_find("openblas", PL_PRECISION_FP32, &k), PL_OK);
    assert_string_equal(k->name, "openblas");
    assert_int_equal(pl_kernels_find("onednn", PL_PRECISION_FP32, &k), PL_OK);
    assert_string_equal(k->name, "onednn");
    assert_int_equal(pl_kernels_find("mkl", PL_PRECISION_FP32, &k), PL_ERR_ARG);
    char known[256] = "known: auto";   // every registered name, in table order
    for (int b = 0; b < pl_kernels_backend_count(); b++) {
        const PlKernelsBackend *be = pl_kernels_backend(b);
        assert_string_equal(be->kernels->name, be->name);
        size_t used = strlen(known);
        snprintf(known + used, sizeof known - used, ", %s", be->name);
        // every backend computes FP32 and says which library it is
        assert_int_equal(be->probe(PL_PRECISION_FP32), PL_OK);
        char version[256] = "";
        be->version(version, sizeof version);
        assert_true(version[0] != '\0');
    }
    assert_null(pl_kernels_backend(pl_kernels_backend_count()));
    assert_int_equal(pl_kernels_find("mkl", PL_PRECISION_FP32, &k), PL_ERR_ARG);
    if (!strstr(pl_error_message(), known)) fail_msg("'%s' does not list '%s'", pl_error_message(), known);
    assert_true(pl_kernels_default() == pl_kernels_backend(0)->kernels);
    assert_int_equal(pl_kernels_find("openblas", PL_PRECISION_BF16, &k), PL_ERR_UNSUPPORTED);
    assert_non_null(strstr(pl_error_message(), "FP32 only"));
    PlPrecision p;
    assert_int_equal(pl_precision_parse("bf16", &p), PL_OK);
    assert_int_equal(p, PL_PRECISION_BF16);
    assert_int_equal(pl_precision_parse("fp16", &p), PL_ERR_ARG);
    // BF16 rounding: nearest, ties to even, NaN stays NaN
    assert_int_equal(pl_bf16_from_f32(1.0f), 0x3f80);
    assert_int_equal(pl_bf16_from_f32(1.00390625f), 0x3f80);    // tie -> even (down)
    assert_int_equal(pl_bf16_from_f32(1.01171875f), 0x3f82);    // tie -> even (up)
    assert_true(isnan(pl_bf16_to_f32(pl_bf16_from_f32(NAN))));
    // the bulk conversion (vectorised per CPU level) gives the element rule's bits, special values included
    enum { NB = 1001 };
    static float src[NB];
    static uint16_t bulk[NB];
    for (int i = 0; i < NB; i++) src[i] = val(i, 11) * powf(2.0f, (float)(i % 300 - 150));
    src[0] = NAN, src[1] = INFINITY, src[2] = -INFINITY, src[3] = 1.00390625f, src[4] = -0.0f, src[5] = 1e-40f;
    pl_bf16_from_f32_n(bulk, src, NB);
    for (int i = 0; i < NB; i++)
        if (bulk[i] != pl_bf16_from_f32(src[i])) fail_msg("bulk bf16 of %g: %#x, element rule %#x", (double)src[i], bulk[i], pl_bf16_from_f32(src[i]));
}

// ---- every registered backend against the `reference` backend (plain loops, double accumulation) ----
// Tolerance, per element: the reference is the exact result rounded once; a backend accumulates k products in FP32 in
// whatever order and blocking it likes (FMA or not), whose error is bounded by gamma_(k+2) * S ~ (k + 2) u S, with
// u = 2^-24 and S the same sum over absolute values (|alpha| sum |a b| + |beta c|, plus |bias| and the residual for
// linear), which the reference itself computes on |A|, |B|, |C|; another 2u for the alpha/beta and bias/residual
// roundings. GELU (derivative at most 1.13) adds its own approximation of erf (a few ulps of the output; 1e-6 absolute
// covers oneDNN's polynomial and pl_vit's). BF16: both sides see the same round-to-nearest-even inputs (BF16
// products are exact in FP32), so the same FP32 accumulation bound holds.
static const PlKernels *reference_or_skip(void) {
    for (int b = 0; b < pl_kernels_backend_count(); b++)
        if (strcmp(pl_kernels_backend(b)->name, "reference") == 0) return pl_kernels_backend(b)->kernels;
    pl_test_skip_part("the reference backend is not built (cmake -DPROTLOC_KERNELS_REFERENCE=ON)");
    return NULL;
}

static void fill(float *x, size_t n, int salt, int bf16) {
    for (size_t i = 0; i < n; i++) x[i] = bf16 ? bf16_round(val((long)i, salt)) : val((long)i, salt);
}

static void abs_of(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = fabsf(src[i]);
}

// |got - want| <= tol(k, S) for every element of the (m, n) matrices with row stride ld; returns the worst ratio.
static double check_bound(const char *what, const float *got, const float *want, const float *absum, int m, int n,
                          int ld, int k, int gelu) {
    const double u = ldexp(1.0, -24);
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            size_t e = (size_t)i * ld + j;
            double tol = (gelu ? 1.13 : 1.0) * ((double)k + 4) * u * absum[e] + 2 * u * fabs(want[e]) + (gelu ? 1e-6 : 0);
            double d = fabs((double)got[e] - want[e]);
            if (!(d <= tol)) fail_msg("%s: element (%d, %d) = %.9g, reference %.9g: |diff| %.3g over %.3g", what, i, j,
                                      (double)got[e], (double)want[e], d, tol);
            if (tol > 0 && d / tol > worst) worst = d / tol;
        }
    return worst;
}

static void compare_gemm(const PlKernels *k, const PlKernels *ref, int bf16) {
    static const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {37, 53, 71}, {64, 33, 129}, {129, 17, 250}};
    static const float alphas[] = {1.0f, 0.37f, -2.0f}, betas[] = {0.0f, 1.0f, -0.5f};
    enum { LD = 260 };   // every operand stored with a row stride wider than its rows
    float *a = malloc(sizeof(float) * LD * LD), *b = malloc(sizeof(float) * LD * LD);
    float *aa = malloc(sizeof(float) * LD * LD), *ab = malloc(sizeof(float) * LD * LD);
    float *c = malloc(sizeof(float) * 130 * LD), *want = malloc(sizeof(float) * 130 * LD);
    float *absum = malloc(sizeof(float) * 130 * LD);
    uint16_t *a16 = malloc(sizeof(uint16_t) * LD * LD), *b16 = malloc(sizeof(uint16_t) * LD * LD);
    assert_true(a && b && aa && ab && c && want && absum && a16 && b16);
    fill(a, (size_t)LD * LD, 21, bf16), fill(b, (size_t)LD * LD, 22, bf16);
    abs_of(aa, a, (size_t)LD * LD), abs_of(ab, b, (size_t)LD * LD);
    for (size_t i = 0; i < (size_t)LD * LD; i++) a16[i] = pl_bf16_from_f32(a[i]), b16[i] = pl_bf16_from_f32(b[i]);
    double worst = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int al = 0; al < 3; al++)
                    for (int be = 0; be < 3; be++) {
                        int m = shapes[s][0], n = shapes[s][1], kk = shapes[s][2];
                        float alpha = alphas[al], beta = betas[be];
                        for (size_t i = 0; i < (size_t)130 * LD; i++) c[i] = want[i] = val((long)i, 23);
                        abs_of(absum, c, (size_t)130 * LD);
                        ref->gemm(ta, tb, m, n, kk, alpha, a, LD, b, LD, beta, want, LD);
                        ref->gemm(ta, tb, m, n, kk, fabsf(alpha), aa, LD, ab, LD, fabsf(beta), absum, LD);
                        if (bf16) k->gemm_bf16(ta, tb, m, n, kk, alpha, a16, LD, b16, LD, beta, c, LD);
                        else k->gemm(ta, tb, m, n, kk, alpha, a, LD, b, LD, beta, c, LD);
                        char what[160];
                        snprintf(what, sizeof what, "%s gemm%s (%d x %d x %d) ta=%d tb=%d alpha=%g beta=%g", k->name,
                                 bf16 ? "_bf16" : "", m, n, kk, ta, tb, (double)alpha, (double)beta);
                        double r = check_bound(what, c, want, absum, m, n, LD, kk, 0);
                        if (r > worst) worst = r;
                        for (int i = 0; i < m; i++)   // nothing written outside the m x n block
                            for (int j = n; j < LD; j++)
                                if (c[(size_t)i * LD + j] != val((long)i * LD + j, 23)) fail_msg("%s: wrote column %d", what, j);
                    }
    print_message("%s gemm%s: every shape, transpose, alpha and beta within the bound of the reference (worst %.2f of it)\n",
                  k->name, bf16 ? "_bf16" : "", worst);
    free(a), free(b), free(aa), free(ab), free(c), free(want), free(absum), free(a16), free(b16);
}

static void compare_linear(const PlKernels *k, const PlKernels *ref, PlPrecision prec) {
    static const int shapes[][2] = {{1, 1}, {5, 3}, {37, 71}, {200, 37}, {96, 385}};   // (n, k)
    static const int rows[] = {1, 7, 50};
    static const int all_flags[] = {0, PL_LINEAR_GELU, PL_LINEAR_ACCUMULATE};
    enum { LD = 400, M = 50 };   // A and C row strides wider than their rows
    int bf16 = prec == PL_PRECISION_BF16;
    float *w = malloc(sizeof(float) * 200 * 385), *bias = malloc(sizeof(float) * 200), *a = malloc(sizeof(float) * M * LD);
    float *aw = malloc(sizeof(float) * 200 * 385), *abias = malloc(sizeof(float) * 200), *aa = malloc(sizeof(float) * M * LD);
    float *c = malloc(sizeof(float) * M * LD), *want = malloc(sizeof(float) * M * LD), *absum = malloc(sizeof(float) * M * LD);
    void *scratch = NULL;
    assert_true(w && bias && a && aw && abias && aa && c && want && absum);
    assert_int_equal(posix_memalign(&scratch, 64, pl_kernels_linear_scratch_bytes(M, LD, prec) + 64), 0);
    fill(a, (size_t)M * LD, 31, bf16), abs_of(aa, a, (size_t)M * LD);
    double worst = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], kd = shapes[s][1];
        for (long i = 0; i < (long)n * kd; i++) w[i] = val(i, 32) / sqrtf((float)kd);
        if (bf16) for (long i = 0; i < (long)n * kd; i++) w[i] = bf16_round(w[i]);
        for (int i = 0; i < n; i++) bias[i] = val(i, 33) * 0.1f;
        abs_of(aw, w, (size_t)n * kd), abs_of(abias, bias, (size_t)n);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            PlKernelMat *mat = NULL, *rmat = NULL, *amat = NULL;
            PL_ASSERT_OK(k->mat_create(w, with_bias ? bias : NULL, n, kd, prec, &mat));
            PL_ASSERT_OK(ref->mat_create(w, with_bias ? bias : NULL, n, kd, PL_PRECISION_FP32, &rmat));
            PL_ASSERT_OK(ref->mat_create(aw, with_bias ? abias : NULL, n, kd, PL_PRECISION_FP32, &amat));
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
                for (int f = 0; f < 3; f++) {
                    int m = rows[r], flags = all_flags[f];
                    for (size_t i = 0; i < (size_t)M * LD; i++) c[i] = want[i] = val((long)i, 34);   // the residual
                    abs_of(absum, c, (size_t)M * LD);
                    PL_ASSERT_OK(k->mat_plan(mat, m, LD, LD, flags));
                    PL_ASSERT_OK(ref->mat_plan(rmat, m, LD, LD, flags));
                    PL_ASSERT_OK(ref->mat_plan(amat, m, LD, LD, flags & PL_LINEAR_ACCUMULATE));
                    k->linear(mat, m, a, LD, flags, c, LD, scratch);
                    ref->linear(rmat, m, a, LD, flags, want, LD, NULL);
                    ref->linear(amat, m, aa, LD, flags & PL_LINEAR_ACCUMULATE, absum, LD, NULL);
                    char what[160];
                    snprintf(what, sizeof what, "%s %s linear (%d rows, %d x %d)%s flags %d", k->name,
                             pl_precision_name(prec), m, n, kd, with_bias ? " + bias" : "", flags);
                    double q = check_bound(what, c, want, absum, m, n, LD, kd, flags & PL_LINEAR_GELU);
                    if (q > worst) worst = q;
                }
            k->mat_destroy(mat), ref->mat_destroy(rmat), ref->mat_destroy(amat);
        }
    }
    print_message("%s %s linear: every shape, row count, bias and post-op within the bound of the reference (worst %.2f "
                  "of it)\n", k->name, pl_precision_name(prec), worst);
    free(w), free(bias), free(a), free(aw), free(abias), free(aa), free(c), free(want), free(absum), free(scratch);
}

static void test_every_backend_against_reference(void **state) {
    (void)state;
    const PlKernels *ref = reference_or_skip();
    if (!ref) return;
    assert_int_equal(pl_kernels_find("reference", PL_PRECISION_BF16, &(const PlKernels *){NULL}), PL_ERR_UNSUPPORTED);
    assert_null(ref->gemm_bf16);
    for (int b = 0; b < pl_kernels_backend_count(); b++) {
        if (pl_kernels_backend(b)->kernels == ref) continue;
        for (int p = 0; p < 2; p++) {
            const PlKernels *k = kernels_or_skip(b, (PlPrecision)p, "a backend against the reference");
            if (!k) continue;
            compare_gemm(k, ref, p == PL_PRECISION_BF16);
            compare_linear(k, ref, (PlPrecision)p);
        }
    }
}

int main(void) {
    pl_kernels_single_thread();   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_every_backend),
        cmocka_unit_test(test_gemm_every_backend),
        cmocka_unit_test(test_linear_concurrent_threads),
        cmocka_unit_test(test_linear_bf16_operands),
        cmocka_unit_test(test_find_and_refusals),
        cmocka_unit_test(test_every_backend_against_reference),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
