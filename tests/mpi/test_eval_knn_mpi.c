// MPI test (2 and 3 ranks): distributed exact kNN gives the same neighbours and per-k scores as one rank,
// including exact score ties (duplicate rows), group exclusion, leave-one-out and grouped k-fold.
#include "pl_testutil.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_knn_eval.h"
#include "pl_mpi.h"
#include "pl_rng.h"

static char *dup_str(const char *s) {
    char *p = malloc(strlen(s) + 1);
    strcpy(p, s);
    return p;
}

// 240 rows, 16 dims, 5 classes, 40 groups; every 4th row duplicates the previous one (exact ties).
static void make_set(PlFeatureSet *fs) {
    enum { N = 240, D = 16 };
    memset(fs, 0, sizeof *fs);
    fs->n = N;
    fs->dim = D;
    fs->x = malloc(sizeof(float) * N * D);
    fs->id = calloc(N, sizeof(char *));
    fs->label = calloc(N, sizeof(char *));
    fs->split = calloc(N, sizeof(char *));
    fs->group = calloc(N, sizeof(char *));
    fs->item = calloc(N, sizeof(int64_t));
    PlRng rng;
    pl_rng_seed(&rng, 99);
    char buf[64];
    for (int i = 0; i < N; i++) {
        int g = i / 6, c = g % 5;
        for (int d = 0; d < D; d++)
            fs->x[i * D + d] = (i % 4 == 3) ? fs->x[(i - 1) * D + d]
                                            : (float)(pl_rng_uniform(&rng) + (d == c ? 0.8 : 0.0));
        snprintf(buf, sizeof buf, "r%d", i);
        fs->id[i] = dup_str(buf);
        snprintf(buf, sizeof buf, "c%d", c);
        fs->label[i] = dup_str(i % 29 == 7 ? "" : buf);
        fs->split[i] = dup_str(g % 3 == 0 ? "test" : "train");
        snprintf(buf, sizeof buf, "g%d", g);
        fs->group[i] = dup_str(buf);
        fs->item[i] = i;
    }
}

static void compare(const PlKnnResult *a, const PlKnnResult *b) {
    assert_int_equal(a->K, b->K);
    assert_int_equal(a->n_runs, b->n_runs);
    assert_int_equal(a->n_queries, b->n_queries);
    assert_memory_equal(a->macro_f1, b->macro_f1, sizeof(double) * a->K * a->n_runs);
    assert_memory_equal(a->accuracy, b->accuracy, sizeof(double) * a->K * a->n_runs);
    int C = a->n_classes;
    assert_memory_equal(a->confusion, b->confusion, sizeof(int64_t) * a->K * C * (C + 1));
    if (a->neighbours) {
        assert_non_null(b->neighbours);
        assert_memory_equal(a->neighbours, b->neighbours, sizeof(int64_t) * a->n_queries * a->K);
        assert_memory_equal(a->neighbour_scores, b->neighbour_scores, sizeof(float) * a->n_queries * a->K);
    }
}

static void run_both(PlKnnOptions *o) {
    PlFeatureSet fs;
    make_set(&fs);
    PlKnnResult one, many;
    o->comm = MPI_COMM_NULL;
    assert_int_equal(pl_knn_evaluate(&fs, o, &one), PL_OK);
    o->comm = MPI_COMM_WORLD;
    o->ref_block = 7;   // several blocks per shard
    o->query_block = 5;
    assert_int_equal(pl_knn_evaluate(&fs, o, &many), PL_OK);
    compare(&one, &many);
    pl_knn_result_free(&one);
    pl_knn_result_free(&many);
    pl_features_free(&fs);
}

static void test_train_test(void **state) {
    (void)state;
    PlKnnOptions o;
    pl_knn_options_default(&o);
    o.k_max = 40;
    o.keep_neighbours = 1;
    assert_int_equal(pl_threadpool_create(2, &o.pool), PL_OK);
    run_both(&o);
    o.vote = PL_KNN_VOTE_MAJORITY;
    o.metric = PL_KNN_EUCLIDEAN;
    o.unlabelled_refs = 1;
    run_both(&o);
    pl_threadpool_destroy(o.pool);
}

static void test_loo_exclude_group(void **state) {
    (void)state;
    PlKnnOptions o;
    pl_knn_options_default(&o);
    o.protocol = PL_KNN_LOO;
    o.exclude = PL_KNN_EXCLUDE_GROUP;
    o.k_max = 30;
    o.keep_neighbours = 1;
    run_both(&o);
}

static void test_kfold(void **state) {
    (void)state;
    PlKnnOptions o;
    pl_knn_options_default(&o);
    o.protocol = PL_KNN_KFOLD;
    o.folds = 4;
    o.seeds = 2;
    o.k_max = 25;
    run_both(&o);
}

int main(int argc, char **argv) {
    int rank, size;
    if (pl_mpi_start(&argc, &argv, &rank, &size) != PL_OK) return 1;
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_train_test), cmocka_unit_test(test_loo_exclude_group),
                                       cmocka_unit_test(test_kfold)};
    return pl_test_mpi_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
