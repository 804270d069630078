// Unit tests for evaluation: metrics on hand-made cases, top-K heaps and ties, blocked search vs brute force,
// the all-k vote, .npy+TSV loading errors, and logistic regression on separable blobs.
#include "pl_testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_features.h"
#include "pl_knn.h"
#include "pl_knn_eval.h"
#include "pl_metrics.h"
#include "pl_npy.h"
#include "pl_probe.h"
#include "pl_rng.h"
#include "pl_topk.h"

static void test_macro_f1_hand_case(void **state) {
    (void)state;
    // classes 0..3; class 3 never occurs (excluded from the average); -1 = no vote
    int32_t t[] = {0, 0, 1, 2}, p[] = {0, 1, 1, -1};
    int64_t tp[4], fp[4], fn[4];
    PlClassCounts c = {4, tp, fp, fn};
    pl_metrics_count(t, p, 4, 1, &c);
    double per[4];
    int present[4];
    double m = pl_metrics_macro_f1(&c, per, present);
    assert_true(fabs(per[0] - 2.0 / 3) < 1e-12);
    assert_true(fabs(per[1] - 2.0 / 3) < 1e-12);
    assert_true(per[2] == 0.0);
    assert_int_equal(present[3], 0);
    assert_true(fabs(m - (4.0 / 3) / 3) < 1e-12);
    assert_true(fabs(pl_metrics_accuracy(&c, 4) - 0.5) < 1e-12);
    // a class only predicted (never true) enters the average with F1 0 (sklearn's label set)
    int32_t t2[] = {0, 0}, p2[] = {0, 1};
    pl_metrics_count(t2, p2, 2, 1, &c);
    assert_true(fabs(pl_metrics_macro_f1(&c, NULL, NULL) - (2.0 / 3) / 2) < 1e-12);
    int64_t conf[4 * 5];
    pl_metrics_confusion(t, p, 4, 1, 4, conf);
    assert_int_equal(conf[0 * 5 + 0], 1);
    assert_int_equal(conf[0 * 5 + 1], 1);
    assert_int_equal(conf[2 * 5 + 4], 1);   // no-vote column
    double mean, sd, v[] = {1, 2, 3, 4};
    pl_metrics_mean_std(v, 4, &mean, &sd);
    assert_true(fabs(mean - 2.5) < 1e-12 && fabs(sd - sqrt(5.0 / 3)) < 1e-12);
}

static void test_topk_ties_and_merge(void **state) {
    (void)state;
    PlTopK t;
    assert_int_equal(pl_topk_init(&t, 1, 3), PL_OK);
    // equal scores: smaller index wins, regardless of arrival order
    pl_topk_push(&t, 0, 0.5f, 9);
    pl_topk_push(&t, 0, 0.5f, 4);
    pl_topk_push(&t, 0, 0.5f, 7);
    pl_topk_push(&t, 0, 0.5f, 1);
    pl_topk_push(&t, 0, 0.4f, 0);
    pl_topk_push(&t, 0, 0.9f, 100);
    pl_topk_finish(&t);
    assert_int_equal(t.count[0], 3);
    assert_int_equal(t.items[0].index, 100);
    assert_int_equal(t.items[1].index, 1);
    assert_int_equal(t.items[2].index, 4);
    pl_topk_free(&t);
    // fewer candidates than k: padding; merge of two padded lists
    PlTopK a, b;
    assert_int_equal(pl_topk_init(&a, 1, 4), PL_OK);
    assert_int_equal(pl_topk_init(&b, 1, 4), PL_OK);
    pl_topk_push(&a, 0, 0.3f, 2);
    pl_topk_push(&a, 0, 0.7f, 5);
    pl_topk_push(&b, 0, 0.7f, 3);
    pl_topk_finish(&a);
    pl_topk_finish(&b);
    assert_int_equal(a.items[2].index, INT64_MAX);
    PlNeighbour out[4];
    pl_topk_merge_lists(a.items, b.items, 4, out);
    assert_int_equal(out[0].index, 3);
    assert_int_equal(out[1].index, 5);
    assert_int_equal(out[2].index, 2);
    assert_int_equal(out[3].index, INT64_MAX);
    pl_topk_merge_lists(b.items, a.items, 4, out);   // commutative
    assert_int_equal(out[0].index, 3);
    assert_int_equal(out[2].index, 2);
    pl_topk_free(&a);
    pl_topk_free(&b);
}

// brute force: all (score, index) pairs sorted by the tie rule
static int cmp_pair(const void *x, const void *y) {
    const PlNeighbour *a = x, *b = y;
    if (pl_topk_better(a->score, a->index, b->score, b->index)) return -1;
    if (pl_topk_better(b->score, b->index, a->score, a->index)) return 1;
    return 0;
}

static void check_search(PlKnnMetric metric, int with_groups, int threads, int qb, int rb) {
    enum { Q = 37, R = 101, D = 13, K = 12 };
    static float q[Q * D], r[R * D], rn[R];
    static int32_t qg[Q], rg[R];
    static int64_t self[Q];
    PlRng rng;
    pl_rng_seed(&rng, 42);
    // values on a coarse grid: exact float dot products, many exact ties
    for (int i = 0; i < Q * D; i++) q[i] = (float)(pl_rng_below(&rng, 5) - 2);
    for (int i = 0; i < R * D; i++) r[i] = (float)(pl_rng_below(&rng, 5) - 2);
    for (int j = 0; j < R; j++) {
        float a = 0;
        for (int d = 0; d < D; d++) a += r[j * D + d] * r[j * D + d];
        rn[j] = a;
        rg[j] = j % 7;
    }
    for (int i = 0; i < Q; i++) qg[i] = i % 5, self[i] = i * 2;
    PlKnnSearch s = {.queries = q, .n_queries = Q, .refs = r, .n_refs = R, .dim = D, .ref_offset = 0, .metric = metric,
                     .ref_sqnorm = metric == PL_KNN_EUCLIDEAN ? rn : NULL, .query_group = with_groups ? qg : NULL,
                     .ref_group = with_groups ? rg : NULL, .query_self = with_groups ? self : NULL,
                     .query_block = qb, .ref_block = rb};
    assert_int_equal(pl_threadpool_create(threads, &s.pool), PL_OK);
    PlTopK t;
    assert_int_equal(pl_topk_init(&t, Q, K), PL_OK);
    assert_int_equal(pl_knn_search(&s, &t), PL_OK);
    pl_threadpool_destroy(s.pool);
    PlNeighbour all[R];
    for (int i = 0; i < Q; i++) {
        int n = 0;
        for (int j = 0; j < R; j++) {
            if (with_groups && (rg[j] == qg[i] || j == self[i])) continue;
            float dot = 0, qq = 0;
            for (int d = 0; d < D; d++) dot += q[i * D + d] * r[j * D + d], qq += q[i * D + d] * q[i * D + d];
            all[n].score = metric == PL_KNN_EUCLIDEAN ? 2 * dot - rn[j] - qq : dot;
            all[n].index = j;
            n++;
        }
        qsort(all, (size_t)n, sizeof all[0], cmp_pair);
        assert_int_equal(t.count[i], K);
        for (int k = 0; k < K; k++) {
            assert_int_equal(t.items[i * K + k].index, all[k].index);
            assert_true(t.items[i * K + k].score == all[k].score);
        }
    }
    pl_topk_free(&t);
}

static void test_search_matches_brute_force(void **state) {
    (void)state;
    check_search(PL_KNN_COSINE, 0, 1, 0, 0);
    check_search(PL_KNN_COSINE, 0, 2, 4, 9);
    check_search(PL_KNN_COSINE, 1, 3, 5, 16);
    check_search(PL_KNN_EUCLIDEAN, 0, 2, 8, 7);
    check_search(PL_KNN_EUCLIDEAN, 1, 1, 1, 1);
}

static void test_vote_all_k(void **state) {
    (void)state;
    // one query, neighbours: class 1 (0.9), class 0 (0.5), class 0 (0.5), unlabelled (0.4)
    int32_t lab[4] = {1, 0, 0, -1};
    float sc[4] = {0.9f, 0.5f, 0.5f, 0.4f};
    int cnt[1] = {4};
    double scratch[2];
    int32_t pred[4];
    pl_knn_vote_all_k(lab, sc, cnt, 1, 4, 2, PL_KNN_VOTE_MAJORITY, 0.07f, scratch, pred);
    assert_int_equal(pred[0], 1);
    assert_int_equal(pred[1], 0);   // 1 vs 1: tie -> smaller class index
    assert_int_equal(pred[2], 0);
    assert_int_equal(pred[3], 0);   // unlabelled neighbour casts no vote
    pl_knn_vote_all_k(lab, sc, cnt, 1, 4, 2, PL_KNN_VOTE_WEIGHTED, 0.07f, scratch, pred);
    assert_int_equal(pred[1], 1);   // exp(0) vs exp(-0.4/0.07)
    assert_int_equal(pred[2], 1);
    pl_knn_vote_all_k(lab, sc, cnt, 1, 4, 2, PL_KNN_VOTE_WEIGHTED, 10.0f, scratch, pred);
    assert_int_equal(pred[2], 0);   // high temperature ~ majority
    // fewer neighbours than K: the prediction stays
    int cnt1[1] = {1};
    pl_knn_vote_all_k(lab, sc, cnt1, 1, 4, 2, PL_KNN_VOTE_MAJORITY, 0.07f, scratch, pred);
    assert_int_equal(pred[3], 1);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_npy_tsv_errors(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char npy[1024], tsv[1024];
    snprintf(npy, sizeof npy, "%s/f.npy", dir);
    snprintf(tsv, sizeof tsv, "%s/m.tsv", dir);
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {3, 2};
    assert_int_equal(pl_npy_write_f32(npy, 2, shape, x), PL_OK);
    PlFeatureSet fs;
    write_text(tsv, "# c\nid\tlabel\tsplit\tgroup\na\tx\ttrain\tg1\nb\ty\ttest\tg2\nc\t\ttest\tg2\n");
    assert_int_equal(pl_features_read_npy_tsv(npy, tsv, &fs), PL_OK);
    assert_int_equal(fs.n, 3);
    assert_string_equal(fs.label[2], "");
    assert_string_equal(fs.group[1], "g2");
    pl_features_free(&fs);
    write_text(tsv, "id\tlabel\na\tx\nb\ty\n");
    assert_int_equal(pl_features_read_npy_tsv(npy, tsv, &fs), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "2 data lines"));
    write_text(tsv, "name\tlabel\na\tx\nb\ty\nc\tz\n");
    assert_int_equal(pl_features_read_npy_tsv(npy, tsv, &fs), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "'id'"));
    write_text(tsv, "id\tlabel\na\tx\nb\ty\tEXTRA\nc\tz\n");
    assert_int_equal(pl_features_read_npy_tsv(npy, tsv, &fs), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "m.tsv:3"));
    x[3] = NAN;
    assert_int_equal(pl_npy_write_f32(npy, 2, shape, x), PL_OK);
    write_text(tsv, "id\tlabel\na\tx\nb\ty\nc\tz\n");
    assert_int_equal(pl_features_read_npy_tsv(npy, tsv, &fs), PL_ERR_NUMERIC);
    assert_non_null(strstr(pl_error_message(), "id b"));
    pl_test_rmtree(dir);
    free(dir);
}

static void test_logreg_blobs(void **state) {
    (void)state;
    enum { N = 300, D = 5, C = 3 };
    static float x[N * D];
    static int32_t y[N], pred[N];
    PlRng rng;
    pl_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        for (int d = 0; d < D; d++) {
            double u1 = pl_rng_uniform(&rng) + 1e-12, u2 = pl_rng_uniform(&rng);
            x[i * D + d] = (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2) + (d == y[i] ? 3.0 : 0.0));
        }
    }
    float W[D * C], b[C];
    int iters = 0;
    assert_int_equal(pl_probe_logreg_fit(pl_kernels_default(), NULL, x, y, N, D, C, 1.0, 500, 1e-6, W, b, &iters),
                     PL_OK);
    assert_true(iters > 0);
    pl_probe_linear_predict(pl_kernels_default(), NULL, x, N, D, C, W, b, pred);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += pred[i] == y[i];
    assert_true(ok > 0.9 * N);
    // the class-d weight on feature d is the largest in its column
    for (int c = 0; c < C; c++)
        for (int d = 0; d < D; d++)
            if (d != c) assert_true(W[c * C + c] > W[d * C + c]);
}

// One class whose name is 1,100 bytes long (plus a multi-label row and an unlabelled row): kNN and the probe see
// the same classes and score the same rows, because both use pl_features_encode_labels.
static void test_long_label_same_classes_in_knn_and_probe(void **state) {
    (void)state;
    enum { N = 60, DIM = 4 };
    char long_label[1101];
    memset(long_label, 'x', 1100);
    long_label[1100] = '\0';
    PlFeatureSet fs;
    memset(&fs, 0, sizeof fs);
    fs.n = N;
    fs.dim = DIM;
    fs.x = calloc((size_t)N * DIM, sizeof(float));
    fs.id = calloc(N, sizeof(char *)), fs.label = calloc(N, sizeof(char *));
    fs.split = calloc(N, sizeof(char *)), fs.group = calloc(N, sizeof(char *));
    fs.item = calloc(N, sizeof(int64_t));
    PlRng rng;
    pl_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        int c = i % 3;
        char id[16];
        snprintf(id, sizeof id, "r%d", i);
        fs.id[i] = strdup(id);
        fs.label[i] = strdup(i == 5 ? "a;b" : i == 7 ? "" : c == 0 ? "alpha" : c == 1 ? "beta" : long_label);
        fs.split[i] = strdup(i % 2 ? "test" : "train");
        fs.group[i] = strdup(id);
        fs.item[i] = i;
        for (int d = 0; d < DIM; d++) fs.x[(size_t)i * DIM + d] = (float)(d == c) * 3.0f + (float)pl_rng_normal(&rng) * 0.3f;
    }
    PlKnnOptions ko;
    pl_knn_options_default(&ko);
    ko.k_max = 5;
    PlKnnResult kr;
    assert_int_equal(pl_knn_evaluate(&fs, &ko, &kr), PL_OK);
    PlProbeOptions po;
    pl_probe_options_default(&po);
    po.use_mlp = 0;
    PlProbeResult pr;
    assert_int_equal(pl_probe_evaluate(&fs, &po, &pr), PL_OK);
    assert_int_equal(kr.n_classes, 3);
    assert_int_equal(pr.n_classes, 3);
    for (int c = 0; c < 3; c++) assert_string_equal(kr.classes[c], pr.classes[c]);
    assert_int_equal((int)strlen(kr.classes[2]), 1100);
    assert_int_equal(kr.n_queries, pr.n_test);                 // the same scored rows: 30 test rows minus 5, 7
    assert_int_equal(kr.n_queries, 28);
    assert_int_equal(kr.n_multilabel_skipped, pr.n_skipped);   // the "a;b" row is dropped by both
    int64_t support = 0;
    for (int c = 0; c < 3; c++) support += pr.support[c];
    assert_int_equal(support, 28);
    assert_true(pr.f1_mean[0] > 0.9 && kr.f1_mean[0] > 0.9);
    pl_knn_result_free(&kr);
    pl_probe_result_free(&pr);
    // a label over the limit is an error naming the row, for both
    free(fs.label[3]);
    fs.label[3] = calloc(PL_FEATURES_MAX_LABEL + 2, 1);
    memset(fs.label[3], 'y', PL_FEATURES_MAX_LABEL + 1);
    assert_int_equal(pl_knn_evaluate(&fs, &ko, &kr), PL_ERR_LIMIT);
    assert_non_null(strstr(pl_error_message(), "row 3 (id r3)"));
    assert_int_equal(pl_probe_evaluate(&fs, &po, &pr), PL_ERR_LIMIT);
    assert_non_null(strstr(pl_error_message(), "row 3 (id r3)"));
    pl_features_free(&fs);
}

// The probe heads on the kernel interface: for each backend, the same bits for no pool and pools of 1, 2 and 3
// threads (the GEMMs' row blocks do not depend on the pool; 700 rows, 100 dims and the MLP's 512/256 hidden units
// make several blocks, a partial last one included), and both backends agree on what they learn.
static void probe_blob_set(PlFeatureSet *fs, int n, int dim, int classes) {
    memset(fs, 0, sizeof *fs);
    fs->n = n;
    fs->dim = dim;
    fs->x = calloc((size_t)n * dim, sizeof(float));
    fs->id = calloc(n, sizeof(char *)), fs->label = calloc(n, sizeof(char *));
    fs->split = calloc(n, sizeof(char *)), fs->group = calloc(n, sizeof(char *));
    fs->item = calloc(n, sizeof(int64_t));
    assert_true(fs->x && fs->id && fs->label && fs->split && fs->group && fs->item);
    PlRng rng;
    pl_rng_seed(&rng, 11);
    for (int i = 0; i < n; i++) {
        int c = i % classes;
        char id[16], lab[16];
        snprintf(id, sizeof id, "r%d", i);
        snprintf(lab, sizeof lab, "class%d", c);
        fs->id[i] = strdup(id), fs->group[i] = strdup(id), fs->label[i] = strdup(lab);
        fs->split[i] = strdup(i % 5 == 0 ? "test" : i % 5 == 1 ? "val" : "train");
        fs->item[i] = i;
        for (int d = 0; d < dim; d++)
            fs->x[(size_t)i * dim + d] = (float)pl_rng_normal(&rng) + (d % classes == c ? 0.6f : 0.0f);
    }
}

static void test_probe_kernels_and_threads(void **state) {
    (void)state;
    enum { N = 700, DIM = 100, C = 4 };
    PlFeatureSet fs;
    probe_blob_set(&fs, N, DIM, C);
    // both FP32 backends run on every CPU protloc builds for (oneDNN is a required dependency): a missing one fails
    const PlKernels *backends[2] = {pl_kernels_default(), NULL};
    PL_ASSERT_OK(pl_kernels_find("onednn", PL_PRECISION_FP32, &backends[1]));
    const int nb = 2;
    double f1[2][2];
    for (int b = 0; b < nb; b++) {
        PlProbeResult ref;
        memset(&ref, 0, sizeof ref);
        for (int threads = 0; threads <= 3; threads++) {
            PlThreadPool *pool = NULL;
            if (threads > 0) assert_int_equal(pl_threadpool_create(threads, &pool), PL_OK);
            PlProbeOptions po;
            pl_probe_options_default(&po);
            po.kernels = backends[b];
            po.pool = pool;
            po.epochs = 6;
            po.lr = 1e-3;
            PlProbeResult pr;
            assert_int_equal(pl_probe_evaluate(&fs, &po, &pr), PL_OK);
            assert_int_equal(pr.n_heads, 2);
            if (threads == 0) {
                ref = pr;
                for (int h = 0; h < 2; h++) f1[b][h] = pr.macro_f1[h];
            } else {
                assert_memory_equal(pr.macro_f1, ref.macro_f1, 2 * sizeof(double));
                assert_memory_equal(pr.epochs_run, ref.epochs_run, 2 * sizeof(int));
                assert_memory_equal(pr.per_class_f1, ref.per_class_f1, 2 * C * sizeof(double));
                assert_memory_equal(pr.confusion, ref.confusion, 2 * C * (C + 1) * sizeof(int64_t));
                pl_probe_result_free(&pr);
            }
            pl_threadpool_destroy(pool);
        }
        assert_true(f1[b][0] > 0.8 && f1[b][1] > 0.6);   // both heads learn the blobs
        pl_probe_result_free(&ref);
    }
    for (int h = 0; h < 2; h++) assert_true(fabs(f1[0][h] - f1[1][h]) < 0.03);
    // the logistic-regression weights themselves: bit-identical across pools, within 1e-3 across backends
    static float x[N * DIM];
    static int32_t y[N];
    for (int i = 0; i < N; i++) y[i] = i % C;
    memcpy(x, fs.x, sizeof x);
    float W[2][4][DIM * C + C];
    for (int b = 0; b < nb; b++)
        for (int threads = 0; threads <= 3; threads++) {
            PlThreadPool *pool = NULL;
            if (threads > 0) assert_int_equal(pl_threadpool_create(threads, &pool), PL_OK);
            int iters = 0;
            assert_int_equal(pl_probe_logreg_fit(backends[b], pool, x, y, N, DIM, C, 1.0, 200, 1e-6, W[b][threads],
                                                 W[b][threads] + DIM * C, &iters), PL_OK);
            pl_threadpool_destroy(pool);
            if (threads > 0) assert_memory_equal(W[b][threads], W[b][0], sizeof W[b][0]);
        }
    for (int i = 0; i < DIM * C + C; i++)
        assert_true(fabsf(W[0][0][i] - W[1][0][i]) < 1e-3f * (1 + fabsf(W[0][0][i])));
    pl_features_free(&fs);
}

int main(void) {
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_macro_f1_hand_case), cmocka_unit_test(test_topk_ties_and_merge),
        cmocka_unit_test(test_search_matches_brute_force), cmocka_unit_test(test_vote_all_k),
        cmocka_unit_test(test_npy_tsv_errors), cmocka_unit_test(test_logreg_blobs),
        cmocka_unit_test(test_long_label_same_classes_in_knn_and_probe),
        cmocka_unit_test(test_probe_kernels_and_threads)};
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
