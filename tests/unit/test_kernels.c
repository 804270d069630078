// Unit tests for the kernel interface (pl_kernels.h) under every backend: GEMM and BF16 GEMM against a double
// reference, linear() with each post-op against a reference, row results independent of how rows are chunked (the
// property thread- and rank-count-independent embeddings rest on), and backend selection / refusal messages.
#include "pl_testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_kernels.h"
#include "pl_threadpool.h"

static const char *backend_names[] = {"openblas", "onednn"};

static float val(long i, int salt) { return (float)(((i * 7919 + salt * 104729) % 2001) - 1000) / 731.0f; }

static float bf16_round(float x) { return pl_bf16_to_f32(pl_bf16_from_f32(x)); }

// Backend backend_names[b] at precision p, or NULL where the part `what` does not apply: openblas has no BF16 by
// design (test_find_and_refusals checks that it refuses), and onednn BF16 may be missing on a CPU without
// AVX512-BF16 (a visible skip: the program then exits 77). FP32 must be there on every backend.
static const PlKernels *kernels_or_skip(int b, PlPrecision p, const char *what) {
    const PlKernels *k = NULL;
    if (p == PL_PRECISION_FP32) {
        PL_ASSERT_OK(pl_kernels_find(backend_names[b], p, &k));
        return k;
    }
    if (strcmp(backend_names[b], "openblas") == 0) {
        assert_int_equal(pl_kernels_find(backend_names[b], p, &k), PL_ERR_UNSUPPORTED);
        return NULL;
    }
    return pl_test_bf16_kernels(what);
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
// rows are cut into calls, as long as the cuts fall on multiples of 48 rows (what the ViT does: OpenBLAS rounds a
// row according to its place in its 24/16-row tiles). oneDNN's rows are independent of any cut, small tails included.
static void check_linear(const PlKernels *k, PlPrecision prec, int n, int kd) {
    enum { M = 421 };
    static const int aligned_a[] = {0, 48, 96, 240, 288, 384, M, M, M};
    static const int aligned_b[] = {0, 144, 336, M, M, M, M, M};
    static const int ragged_a[] = {0, 1, 6, 48, 96, 240, 288, 384, M};
    static const int ragged_b[] = {0, 48, 53, 144, 190, 336, 420, M};
    int ragged = strcmp(k->name, "onednn") == 0;
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
    for (int b = 0; b < 2; b++)
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
    for (int bk = 0; bk < 2; bk++) {
        const PlKernels *k = NULL;
        assert_int_equal(pl_kernels_find(backend_names[bk], PL_PRECISION_FP32, &k), PL_OK);
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
    for (int b = 0; b < 2; b++)
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
    assert_non_null(strstr(pl_error_message(), "known: auto, openblas, onednn"));
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

int main(void) {
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_every_backend),
        cmocka_unit_test(test_gemm_every_backend),
        cmocka_unit_test(test_linear_concurrent_threads),
        cmocka_unit_test(test_linear_bf16_operands),
        cmocka_unit_test(test_find_and_refusals),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
