// Unit tests for the step driver (stages/train/pl_train_step.h) through the objective interface
// (pl_train_objective.h) with a test objective whose per-sample gradients and statistics are known values: the
// summed gradient and statistics (a) equal the float sums along the documented fixed tree over micro-batches
// (recomputed here), bit for bit, (b) are bit-identical for 1, 2 and 3 threads, (c) come back with the mean loss;
// and a failing micro-batch returns its own message.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_threadpool.h"
#include "pl_train_step.h"

enum { P = 37, S = 5, MB = 3, BATCH = 11 };

typedef struct ToyBatch {
    const float *x;   // (BATCH) one value per sample
} ToyBatch;

typedef struct Toy {
    int fail_at;      // sample position whose micro-batch fails (-1: none)
} Toy;

// Per-sample gradient element j and statistic k of sample value v: values whose float sums depend on the order.
static float toy_grad(float v, int j) { return v * (float)(j + 1) * 1.0e-3f + 1.0f / (float)(j + 3); }
static float toy_stat(float v, int k) { return v * v + (float)k * 0.1f; }

static PlStatus toy_microbatch(void *ctx, int worker, const void *batch, int first, int n, float scale, float *grad,
                               float *stats, double *loss_sum) {
    (void)worker;
    const Toy *toy = ctx;
    const ToyBatch *b = batch;
    if (toy->fail_at >= first && toy->fail_at < first + n)
        return PL_FAIL(PL_ERR_NUMERIC, "toy sample %d is poisoned", toy->fail_at);
    for (int j = 0; j < P; j++) {
        float g = 0.0f;
        for (int i = 0; i < n; i++) g += toy_grad(b->x[first + i], j);
        grad[j] = g * scale;
    }
    for (int k = 0; k < S; k++) {
        float s = 0.0f;
        for (int i = 0; i < n; i++) s += toy_stat(b->x[first + i], k);
        stats[k] = s;
    }
    double l = 0.0;
    for (int i = 0; i < n; i++) l += b->x[first + i];
    *loss_sum = l;
    return PL_OK;
}

static PlTrainObjective toy_objective(Toy *toy) {
    return (PlTrainObjective){.name = "toy", .ctx = toy, .param_floats = P, .stat_floats = S, .workers = 3,
                              .micro_batch = MB, .loss_norm = 1.0, .microbatch = toy_microbatch};
}

// The documented tree over micro-batch values v (M of them, `len` floats each): node (s, k) = left + right, or left
// alone when the right half starts beyond the last micro-batch. Result in out.
static void tree_sum(float *const *v, int M, int start, int k, int len, float *out, int *present) {
    if (start >= M) {
        *present = 0;
        return;
    }
    if (k == 1) {
        memcpy(out, v[start], (size_t)len * sizeof(float));
        *present = 1;
        return;
    }
    float r[P + S];
    int pr = 0;
    tree_sum(v, M, start, k / 2, len, out, present);
    tree_sum(v, M, start + k / 2, k / 2, len, r, &pr);
    if (pr)
        for (int i = 0; i < len; i++) out[i] += r[i];
}

static void run_step(int threads, Toy *toy, const ToyBatch *b, float *grad, float *stats, double *loss, PlStatus *st) {
    PlThreadPool *pool = NULL;
    assert_int_equal(pl_threadpool_create(threads, &pool), PL_OK);
    PlTrainObjective obj = toy_objective(toy);
    PlTrainStepOptions o = {.global_batch = BATCH};
    PlTrainStep *s = NULL;
    assert_int_equal(pl_train_step_create(&obj, pool, &o, &s), PL_OK);
    float *g = NULL;
    const float *st_sum = NULL;
    *st = pl_train_step_run(s, b, &g, &st_sum, loss);
    if (*st == PL_OK) {
        assert_non_null(st_sum);
        memcpy(grad, g, P * sizeof(float));
        memcpy(stats, st_sum, S * sizeof(float));
    }
    pl_train_step_destroy(s);
    pl_threadpool_destroy(pool);
}

static void test_sums_follow_the_tree(void **state) {
    (void)state;
    float x[BATCH];
    for (int i = 0; i < BATCH; i++) x[i] = (float)(i * 7 % 5) * 0.37f - 0.5f + (float)i * 1e-3f;
    ToyBatch b = {x};
    Toy toy = {-1};
    // reference: every micro-batch's buffer as the toy computes it, then the tree
    enum { M = (BATCH + MB - 1) / MB };
    float bufs[M][P + S], *v[M];
    for (int m = 0; m < M; m++) {
        int n = BATCH - m * MB < MB ? BATCH - m * MB : MB;
        double l;
        assert_int_equal(toy_microbatch(&toy, 0, &b, m * MB, n, 1.0f / (float)BATCH, bufs[m], bufs[m] + P, &l), PL_OK);
        v[m] = bufs[m];
    }
    // the driver pads the statistics to a 16-float boundary after the gradient; the sums are element-wise, so the
    // reference can keep them packed
    float want[P + S];
    int present = 0;
    tree_sum(v, M, 0, 4, P + S, want, &present);
    double want_loss = 0.0;
    for (int i = 0; i < BATCH; i++) want_loss += x[i];
    for (int threads = 1; threads <= 3; threads++) {
        float grad[P], stats[S];
        double loss;
        PlStatus st;
        run_step(threads, &toy, &b, grad, stats, &loss, &st);
        assert_int_equal(st, PL_OK);
        if (memcmp(grad, want, sizeof grad) != 0) fail_msg("%d thread(s): the gradient is not the tree sum", threads);
        if (memcmp(stats, want + P, sizeof stats) != 0)
            fail_msg("%d thread(s): the statistics are not the tree sum", threads);
        if (fabs(loss - want_loss / BATCH) > 1e-12) fail_msg("mean loss %.17g, expected %.17g", loss, want_loss / BATCH);
    }
}

static void test_failure_names_the_micro_batch(void **state) {
    (void)state;
    float x[BATCH] = {0};
    ToyBatch b = {x};
    Toy toy = {7};
    for (int threads = 1; threads <= 3; threads++) {
        float grad[P], stats[S];
        double loss;
        PlStatus st;
        run_step(threads, &toy, &b, grad, stats, &loss, &st);
        assert_int_equal(st, PL_ERR_NUMERIC);
        assert_non_null(strstr(pl_error_message(), "toy sample 7 is poisoned"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums_follow_the_tree),
        cmocka_unit_test(test_failure_names_the_micro_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
