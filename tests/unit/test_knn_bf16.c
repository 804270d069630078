// Unit tests for the kNN search's kernel backends and BF16 candidate pass: BF16 similarities (onednn) and FP32
// similarities under onednn and openblas give bit-identical neighbour lists (indices and scores) on random data
// and on adversarial near-ties (1-4 ulp apart, equal in BF16, duplicated rows, near-duplicate groups larger than
// the candidate buffers, group and self exclusions), for both metrics, several block sizes and thread counts. The BF16
// runs are skipped (exit 77) only where pl_test_bf16_kernels finds a CPU without AVX512-BF16; elsewhere a refusal fails.
#include "pl_testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_kernels.h"
#include "pl_knn.h"
#include "pl_rng.h"
#include "pl_topk.h"

typedef struct Data {
    int Q, R, D;
    float *q, *r, *rn;        // (Q, D), (R, D), (R) squared reference norms (euclidean)
    int32_t *qg, *rg;         // groups (exclusion tests)
    int64_t *self;            // (Q) a query's own reference row, or -1
} Data;

static void data_alloc(Data *d, int Q, int R, int D) {
    d->Q = Q, d->R = R, d->D = D;
    d->q = calloc((size_t)Q * D, sizeof(float));
    d->r = calloc((size_t)R * D, sizeof(float));
    d->rn = calloc((size_t)R, sizeof(float));
    d->qg = calloc((size_t)Q, sizeof(int32_t));
    d->rg = calloc((size_t)R, sizeof(int32_t));
    d->self = calloc((size_t)Q, sizeof(int64_t));
    assert_true(d->q && d->r && d->rn && d->qg && d->rg && d->self);
}

static void data_free(Data *d) {
    free(d->q); free(d->r); free(d->rn); free(d->qg); free(d->rg); free(d->self);
}

static void data_finish(Data *d) {
    for (int j = 0; j < d->R; j++) {
        float a = 0;
        for (int k = 0; k < d->D; k++) a += d->r[(size_t)j * d->D + k] * d->r[(size_t)j * d->D + k];
        d->rn[j] = a;
        d->rg[j] = j % 7;
    }
    for (int i = 0; i < d->Q; i++) d->qg[i] = i % 5;
}

static void random_unit(PlRng *rng, float *x, int D) {
    for (int k = 0; k < D; k++) x[k] = (float)pl_rng_normal(rng);
    pl_knn_normalise_rows(x, 1, D);
}

// x moved by `steps` ulps at `n` random coordinates (up or down): FP32 dot products move by a few ulps, the BF16
// copy almost never changes.
static void nudge_ulps(PlRng *rng, float *x, int D, int n, int steps) {
    for (int t = 0; t < n; t++) {
        int k = (int)pl_rng_below(rng, (uint64_t)D);
        float to = pl_rng_below(rng, 2) ? INFINITY : -INFINITY;
        for (int s = 0; s < steps; s++) x[k] = nextafterf(x[k], to);
    }
}

// Random unit rows; the queries are noisy copies of references (self = that reference).
static void make_random(Data *d, int Q, int R, int D, uint64_t seed) {
    data_alloc(d, Q, R, D);
    PlRng rng;
    pl_rng_seed(&rng, seed);
    for (int j = 0; j < R; j++) random_unit(&rng, d->r + (size_t)j * D, D);
    for (int i = 0; i < Q; i++) {
        int j = (int)pl_rng_below(&rng, (uint64_t)R);
        for (int k = 0; k < D; k++) d->q[(size_t)i * D + k] = d->r[(size_t)j * D + k] + 0.3f * (float)pl_rng_normal(&rng) / sqrtf((float)D);
        pl_knn_normalise_rows(d->q + (size_t)i * D, 1, D);
        d->self[i] = j;
    }
    data_finish(d);
}

// Adversarial near-ties around two base rows b0, b1:
//   refs [0, 300): b0 nudged by 1-4 ulps at 1-3 coordinates (FP32 scores 1-4 ulps apart, equal in BF16);
//   refs [300, 400): 10 rows, each duplicated 10 times;
//   refs [400, 700): b1 plus perturbations of BF16-rounding size (BF16 and FP32 order them differently);
//   the rest random. Queries: b0, b1 themselves, noisy copies of them and of duplicated rows, random rows.
// Each 300-row group exceeds the buffer's keep limit for K = 50 in both precisions: the rescan path runs.
static void make_adversarial(Data *d, uint64_t seed) {
    enum { Q = 48, R = 1500, D = 72 };
    data_alloc(d, Q, R, D);
    PlRng rng;
    pl_rng_seed(&rng, seed);
    float b0[D], b1[D];
    random_unit(&rng, b0, D);
    random_unit(&rng, b1, D);
    for (int j = 0; j < R; j++) {
        float *x = d->r + (size_t)j * D;
        if (j < 300) {
            memcpy(x, b0, sizeof b0);
            nudge_ulps(&rng, x, D, 1 + (int)pl_rng_below(&rng, 3), 1 + (int)pl_rng_below(&rng, 4));
        } else if (j < 400) {
            if ((j - 300) % 10 == 0) random_unit(&rng, x, D);
            else memcpy(x, d->r + (size_t)(j - (j - 300) % 10) * D, sizeof(float) * D);
        } else if (j < 700) {
            for (int k = 0; k < D; k++) x[k] = b1[k] * (1.0f + (float)(pl_rng_uniform(&rng) - 0.5) * 0x1.0p-8f);
        } else {
            random_unit(&rng, x, D);
        }
    }
    for (int i = 0; i < Q; i++) {
        float *x = d->q + (size_t)i * D;
        d->self[i] = -1;
        switch (i % 6) {
        case 0: memcpy(x, b0, sizeof b0); break;
        case 1: memcpy(x, b1, sizeof b1); break;
        case 2: for (int k = 0; k < D; k++) x[k] = b0[k] + 1e-3f * (float)pl_rng_normal(&rng); break;
        case 3: for (int k = 0; k < D; k++) x[k] = b1[k] + 1e-3f * (float)pl_rng_normal(&rng); break;
        case 4: {   // a duplicated reference row itself (excluded by self when asked)
            int j = 300 + 10 * (int)pl_rng_below(&rng, 10);
            memcpy(x, d->r + (size_t)j * D, sizeof(float) * D);
            d->self[i] = j;
            break;
        }
        default: random_unit(&rng, x, D);
        }
    }
    data_finish(d);
}

typedef struct Run {
    const PlKernels *kernels;
    PlPrecision precision;
    int threads, qb, rb;
} Run;

static void search(const Data *d, PlKnnMetric metric, int exclusions, const Run *run, int K, PlTopK *t, PlKnnStats *stats) {
    PlKnnSearch s = {.queries = d->q, .n_queries = d->Q, .refs = d->r, .n_refs = d->R, .dim = d->D, .metric = metric,
                     .ref_sqnorm = metric == PL_KNN_EUCLIDEAN ? d->rn : NULL,
                     .query_group = exclusions ? d->qg : NULL, .ref_group = exclusions ? d->rg : NULL,
                     .query_self = exclusions ? d->self : NULL, .query_block = run->qb, .ref_block = run->rb,
                     .kernels = run->kernels, .precision = run->precision, .stats = stats};
    PL_ASSERT_OK(pl_threadpool_create(run->threads, &s.pool));
    PL_ASSERT_OK(pl_topk_init(t, d->Q, K));
    PL_ASSERT_OK(pl_knn_search(&s, t));
    pl_threadpool_destroy(s.pool);
}

static void assert_same_lists(const PlTopK *a, const PlTopK *b, const char *what) {
    assert_int_equal(a->n_queries, b->n_queries);
    assert_int_equal(a->k, b->k);
    for (int64_t q = 0; q < a->n_queries; q++) {
        if (a->count[q] == b->count[q] &&
            memcmp(a->items + q * a->k, b->items + q * b->k, sizeof(PlNeighbour) * (size_t)a->k) == 0)
            continue;
        for (int j = 0; j < a->k; j++) {
            const PlNeighbour *x = a->items + q * a->k + j, *y = b->items + q * b->k + j;
            if (x->index != y->index || memcmp(&x->score, &y->score, sizeof(float)) != 0)
                fail_msg("%s: query %lld slot %d: (%lld, %.9g) vs (%lld, %.9g)", what, (long long)q, j,
                         (long long)x->index, (double)x->score, (long long)y->index, (double)y->score);
        }
        fail_msg("%s: query %lld counts %d vs %d", what, (long long)q, a->count[q], b->count[q]);
    }
}

// Every backend/precision/layout in `runs` against the first (openblas FP32, one thread, default blocks). bf: the
// onednn BF16 kernels from pl_test_bf16_kernels, or NULL where that skipped BF16 visibly (a CPU without AVX512-BF16):
// then only the FP32 runs compare. Both FP32 backends run on every CPU (oneDNN is a required dependency).
static void compare_runs(const Data *d, PlKnnMetric metric, int exclusions, int K, const char *name,
                         const PlKernels *bf, PlKnnStats *bf16_stats) {
    const PlKernels *ob = NULL, *od = NULL;
    PL_ASSERT_OK(pl_kernels_find("openblas", PL_PRECISION_FP32, &ob));
    PL_ASSERT_OK(pl_kernels_find("onednn", PL_PRECISION_FP32, &od));
    const Run runs[] = {
        {ob, PL_PRECISION_FP32, 1, 0, 0},  {ob, PL_PRECISION_FP32, 2, 7, 33}, {od, PL_PRECISION_FP32, 1, 0, 0},
        {od, PL_PRECISION_FP32, 3, 5, 64}, {bf, PL_PRECISION_BF16, 1, 0, 0},  {bf, PL_PRECISION_BF16, 2, 16, 128},
        {bf, PL_PRECISION_BF16, 3, 1, 1000},
    };
    PlTopK ref;
    search(d, metric, exclusions, &runs[0], K, &ref, NULL);
    for (size_t i = 1; i < sizeof runs / sizeof runs[0]; i++) {
        if (!runs[i].kernels) continue;   // BF16 on a CPU without AVX512-BF16: skipped (pl_test_bf16_kernels said so)
        PlTopK t;
        PlKnnStats st;
        search(d, metric, exclusions, &runs[i], K, &t, &st);
        char what[256];
        snprintf(what, sizeof what, "%s, %s %s, %d threads, blocks %d x %d, %s%s", name, runs[i].kernels->name,
                 pl_precision_name(runs[i].precision), runs[i].threads, runs[i].qb, runs[i].rb,
                 metric == PL_KNN_COSINE ? "cosine" : "euclidean", exclusions ? ", exclusions" : "");
        assert_same_lists(&ref, &t, what);
        if (runs[i].precision == PL_PRECISION_BF16 && bf16_stats && i == 4) *bf16_stats = st;
        pl_topk_free(&t);
    }
    pl_topk_free(&ref);
}

static void test_random_normalised(void **state) {
    (void)state;
    Data d;
    make_random(&d, 300, 3000, 100, 11);   // D = 100: the fixed-order dot product's 16-lane tail is used
    const PlKernels *bf = pl_test_bf16_kernels("BF16 kNN search on random data");
    PlKnnStats st = {0, 0};
    compare_runs(&d, PL_KNN_COSINE, 0, 50, "random", bf, &st);
    compare_runs(&d, PL_KNN_COSINE, 1, 50, "random", bf, NULL);
    compare_runs(&d, PL_KNN_EUCLIDEAN, 0, 20, "random", bf, NULL);
    if (bf) {
        assert_int_equal(st.rescans, 0);   // ordinary data: the window fits, nothing is rescanned
        assert_true(st.rescored >= 300 * 50);
    }
    data_free(&d);
}

// The BF16 order of the b1 group differs from its FP32 order (the data really tests the bound).
static void assert_bf16_reorders(const Data *d, int query, int K, const PlTopK *exact) {
    int D = d->D, better = 0;
    const float *q = d->q + (size_t)query * D;
    // the exact K-th neighbour, and a reference outside the exact top K that BF16 ranks above it
    const PlNeighbour *kth = exact->items + (size_t)query * K + K - 1;
    double kth_bf = 0;
    for (int k = 0; k < D; k++)
        kth_bf += (double)pl_bf16_to_f32(pl_bf16_from_f32(q[k])) * pl_bf16_to_f32(pl_bf16_from_f32(d->r[kth->index * D + k]));
    for (int j = 0; j < d->R; j++) {
        int in_top = 0;
        for (int t = 0; t < K; t++) in_top |= exact->items[(size_t)query * K + t].index == j;
        if (in_top) continue;
        double bf = 0;
        for (int k = 0; k < D; k++)
            bf += (double)pl_bf16_to_f32(pl_bf16_from_f32(q[k])) * pl_bf16_to_f32(pl_bf16_from_f32(d->r[(size_t)j * D + k]));
        better += bf >= kth_bf;
    }
    print_message("query %d: %d references outside the exact top %d score >= its K-th in BF16\n", query, better, K);
    assert_true(better > 0);
}

static void test_adversarial_near_ties(void **state) {
    (void)state;
    Data d;
    make_adversarial(&d, 5);
    const PlKernels *bf = pl_test_bf16_kernels("BF16 kNN search on adversarial near-ties");
    PlKnnStats st = {0, 0};
    compare_runs(&d, PL_KNN_COSINE, 0, 50, "adversarial", bf, &st);
    compare_runs(&d, PL_KNN_COSINE, 1, 50, "adversarial", bf, NULL);
    compare_runs(&d, PL_KNN_EUCLIDEAN, 0, 50, "adversarial", bf, NULL);
    compare_runs(&d, PL_KNN_EUCLIDEAN, 1, 50, "adversarial", bf, NULL);
    compare_runs(&d, PL_KNN_COSINE, 1, 7, "adversarial", bf, NULL);   // K smaller than a duplicate group of 10
    if (bf) assert_true(st.rescans > 0);   // the 300-row groups overflow the BF16 buffer
    // FP32 too (its window is 2^-23-sized, the b0 group 1-4 ulps wide); and an oracle without any window: with K
    // = R every reference is a candidate, so the first 50 of each full list are the exact top 50
    PlTopK exact, all;
    PlKnnStats fst = {0, 0};
    Run run = {pl_kernels_default(), PL_PRECISION_FP32, 1, 0, 0};
    search(&d, PL_KNN_COSINE, 0, &run, 50, &exact, &fst);
    assert_true(fst.rescans > 0);
    search(&d, PL_KNN_COSINE, 0, &run, d.R, &all, NULL);
    for (int q = 0; q < d.Q; q++)
        for (int j = 0; j < 50; j++) {
            const PlNeighbour *x = exact.items + (size_t)q * 50 + j, *y = all.items + (size_t)q * d.R + j;
            if (x->index != y->index || memcmp(&x->score, &y->score, sizeof(float)) != 0)
                fail_msg("query %d slot %d: (%lld, %.9g) with K = 50, (%lld, %.9g) in the full list", q, j,
                         (long long)x->index, (double)x->score, (long long)y->index, (double)y->score);
        }
    pl_topk_free(&all);
    // query 1 is b1: the BF16 scores rank some reference outside the exact top 50 above the exact 50th
    assert_bf16_reorders(&d, 1, 50, &exact);
    pl_topk_free(&exact);
    data_free(&d);
}

// A window wider than the buffer but no rescan: many exact duplicates just above K, other rows far below.
static void test_duplicates_and_errors(void **state) {
    (void)state;
    Data d;
    make_random(&d, 40, 500, 48, 3);
    for (int j = 100; j < 160; j++) memcpy(d.r + (size_t)j * 48, d.r + 100 * 48, sizeof(float) * 48);
    memcpy(d.q, d.r + 100 * 48, sizeof(float) * 48);
    data_finish(&d);
    const PlKernels *bf = pl_test_bf16_kernels("BF16 kNN search on duplicates");
    compare_runs(&d, PL_KNN_COSINE, 0, 30, "duplicates", bf, NULL);
    compare_runs(&d, PL_KNN_COSINE, 1, 30, "duplicates", bf, NULL);
    // BF16 on a backend without a BF16 GEMM is refused with a message naming it
    PlTopK t;
    PL_ASSERT_OK(pl_topk_init(&t, d.Q, 5));
    PlKnnSearch s = {.queries = d.q, .n_queries = d.Q, .refs = d.r, .n_refs = d.R, .dim = d.D,
                     .kernels = pl_kernels_default(), .precision = PL_PRECISION_BF16};
    assert_int_equal(pl_knn_search(&s, &t), PL_ERR_UNSUPPORTED);
    assert_non_null(strstr(pl_error_message(), "openblas"));
    s.precision = (PlPrecision)7;
    assert_int_equal(pl_knn_search(&s, &t), PL_ERR_ARG);
    pl_topk_free(&t);
    data_free(&d);
}

int main(void) {
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_random_normalised),
                                       cmocka_unit_test(test_adversarial_near_ties),
                                       cmocka_unit_test(test_duplicates_and_errors)};
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
