// Unit tests for DINO's loss module (stages/train/pl_dino_loss.h) against facebookresearch/dino's own DINOLoss
// (main_dino.py at 7c446df, run in float64 by tests/fixtures/dino_loss/make_dino_loss_fixtures.py): the loss and
// d(loss)/d(student) of 3 images with 2 and with 4 views (2 global + 2 local) at epochs inside and after the teacher
// temperature warm-up, with a non-zero center, computed over micro-batches of 3 and of 1 + 2 images (gradients
// bit-identical, losses and the center statistic summed as the step driver sums them); the center update against
// DINO's float64 result and bit for bit against DINO run in float32; the teacher temperature schedule bit for bit
// against numpy (DINO's defaults 0.04 -> 0.04 over 0 epochs, 0.04 -> 0.07 over 30, and 1- and 7-epoch warm-ups);
// K = 65536 (DINO's out_dim) against a plain double-precision reference; the argument checks.
//
// Tolerances (float32 inputs, the reference exact to float64): the loss within 2e-6 relative (each cross-entropy
// -w . log p = sum w_k |log p_k| is computed from float32 q and float32 exponentials, a few roundings of 2^-24
// relative each, summed in double), each gradient element within 1e-6 * scale / (n_terms tau_s) (the element is
// that factor times W p_k - w_k with p_k, w_k <= 1 and W <= 2, each carrying a few roundings of 2^-24).
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_dino_loss.h"
#include "pl_npy.h"

enum { B = 3, K = 37, CALLS = 4 };
static const double STUDENT_TEMP = 0.1, WARMUP_TEMP = 0.04, TEMP = 0.07, MOMENTUM = 0.9;
static const int64_t WARMUP_EPOCHS = 30, NEPOCHS = 100;
static const double LOSS_TOL = 2e-6, GRAD_TOL = 1e-6;

static void load(const char *name, PlNpyArray *a, const char *descr, size_t count) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "tests/fixtures/dino_loss/%s", name);
    pl_test_source_path(rel, path, sizeof path);
    PL_ASSERT_OK(pl_npy_read(path, a));
    if (strcmp(a->descr, descr) != 0) fail_msg("%s: dtype %s, expected %s", name, a->descr, descr);
    if (count && pl_npy_count(a) != count) fail_msg("%s: %zu elements, expected %zu", name, pl_npy_count(a), count);
}

// One fixture case: V views, CALLS calls of B images.
static void check_case(const char *name, int V) {
    const char *parts[] = {"student", "teacher", "epoch", "temp", "center_in", "center_out",
                           "loss",    "grad",    "sum32", "center32"};
    const char *descr[] = {"<f4", "<f4", "<i8", "<f8", "<f4", "<f8", "<f8", "<f8", "<f4", "<f4"};
    size_t counts[] = {(size_t)CALLS * B * V * K, (size_t)CALLS * B * 2 * K, CALLS, CALLS, (size_t)CALLS * K,
                       (size_t)CALLS * K, CALLS, (size_t)CALLS * B * V * K, (size_t)CALLS * K, (size_t)CALLS * K};
    PlNpyArray a[10];
    for (int i = 0; i < 10; i++) {
        char file[128];
        snprintf(file, sizeof file, "%s_%s.npy", name, parts[i]);
        load(file, &a[i], descr[i], counts[i]);
    }
    const float *student = a[0].data, *teacher = a[1].data, *center_in = a[4].data, *sum32 = a[8].data,
                *center32 = a[9].data;
    const int64_t *epoch = a[2].data;
    const double *temp = a[3].data, *center_out = a[5].data, *loss_ref = a[6].data, *grad_ref = a[7].data;
    const size_t SV = (size_t)V * K;
    const int terms = pl_dino_loss_terms(V);
    assert_int_equal(terms, 2 * V - 2);
    PL_ASSERT_OK(pl_dino_loss_check(V, K, STUDENT_TEMP, WARMUP_TEMP, TEMP, WARMUP_EPOCHS, NEPOCHS));
    assert_int_equal(pl_dino_loss_scratch_floats(K), 2 * K);
    float scratch[2 * K], g3[B * 4 * K], g12[B * 4 * K], stat1[K], stat2[K], stat3[K], center[K];
    double max_loss = 0.0, max_grad = 0.0, max_center = 0.0;
    for (int c = 0; c < CALLS; c++) {
        const float *s = student + (size_t)c * B * SV, *t = teacher + (size_t)c * B * 2 * K;
        const float *cin = center_in + (size_t)c * K;
        double tt = pl_dino_teacher_temp(epoch[c], WARMUP_TEMP, TEMP, WARMUP_EPOCHS, NEPOCHS);
        if (memcmp(&tt, &temp[c], sizeof tt) != 0)
            fail_msg("%s call %d: teacher temperature %.17g, DINO's %.17g", name, c, tt, temp[c]);
        const float scale = 1.0f / (float)B;   // the step driver's 1 / global batch
        // One micro-batch of 3 images, and micro-batches of 1 + 2 images (summed as the step driver sums).
        double l3 = pl_dino_loss(g3, s, t, cin, B, V, K, STUDENT_TEMP, tt, scale, scratch);
        double l1 = pl_dino_loss(g12, s, t, cin, 1, V, K, STUDENT_TEMP, tt, scale, scratch);
        double l2 = pl_dino_loss(g12 + SV, s + SV, t + 2 * K, cin, 2, V, K, STUDENT_TEMP, tt, scale, scratch);
        assert_memory_equal(g3, g12, (size_t)B * SV * sizeof(float));
        assert_true(fabs((l1 + l2) - l3) <= 1e-14 * fabs(l3));
        assert_true(pl_dino_loss(NULL, s, t, cin, B, V, K, STUDENT_TEMP, tt, scale, scratch) == l3);
        double loss = l3 / B, lref = loss_ref[c], err = fabs(loss - lref) / fabs(lref);
        if (err > max_loss) max_loss = err;
        if (!(err <= LOSS_TOL)) fail_msg("%s call %d: loss %.17g, DINO's %.17g (rel %.3g)", name, c, loss, lref, err);
        double f = (double)scale / (terms * STUDENT_TEMP);
        for (size_t i = 0; i < (size_t)B * SV; i++) {
            double gref = grad_ref[(size_t)c * B * SV + i], e = fabs((double)g3[i] - gref) / f;
            if (e > max_grad) max_grad = e;
            if (!(e <= GRAD_TOL))
                fail_msg("%s call %d: d/ds[%zu] %.9g, DINO's %.17g (%.3g of scale / (n_terms tau_s))", name, c, i,
                         g3[i], gref, e);
        }
        // The center: statistic per micro-batch, summed as floats, then DINO's update with count = 2 B.
        pl_dino_teacher_sum(stat1, t, 1, K);
        pl_dino_teacher_sum(stat2, t + 2 * K, 2, K);
        pl_dino_teacher_sum(stat3, t, B, K);
        for (int k = 0; k < K; k++) {
            double direct = (double)t[k] + t[K + k] + t[2 * K + k] + t[3 * K + k] + t[4 * K + k] + t[5 * K + k];
            assert_true(stat3[k] == (float)direct);   // the same double sum, rounded once
            stat1[k] += stat2[k];
        }
        memcpy(center, cin, sizeof center);
        pl_dino_center_update(center, stat1, 2 * B, MOMENTUM, K);
        for (int k = 0; k < K; k++) {
            double ref = center_out[(size_t)c * K + k], bound = 1e-6 * (fabs(cin[k]) + fabs(stat1[k]) / (2 * B));
            double e = fabs(center[k] - ref);
            if (e / (bound > 0 ? bound : 1) > max_center) max_center = e / (bound > 0 ? bound : 1);
            if (!(e <= bound)) fail_msg("%s call %d: center[%d] %.9g, DINO's %.17g", name, c, k, center[k], ref);
        }
        // Bit for bit against DINO in float32 on torch's own float32 sum.
        memcpy(center, cin, sizeof center);
        pl_dino_center_update(center, sum32 + (size_t)c * K, 2 * B, MOMENTUM, K);
        for (int k = 0; k < K; k++)
            if (memcmp(&center[k], &center32[(size_t)c * K + k], sizeof(float)) != 0)
                fail_msg("%s call %d: float32 center[%d] %.9g, torch's %.9g", name, c, k, center[k],
                         center32[(size_t)c * K + k]);
    }
    print_message("%s: max loss error %.3g relative, max gradient error %.3g of scale / (n_terms tau_s), "
                  "max center error %.3g of its bound\n", name, max_loss, max_grad, max_center);
    for (int i = 0; i < 10; i++) pl_npy_free(&a[i]);
}

static void test_two_views(void **state) {
    (void)state;
    check_case("v2", 2);
}

static void test_four_views(void **state) {
    (void)state;
    check_case("v4", 4);
}

// Every epoch of numpy's schedules, bit for bit; epochs past the end give the final temperature.
static void test_teacher_temp(void **state) {
    (void)state;
    static const struct { const char *name; double warmup_temp, temp; int64_t warmup, nepochs; } sch[] = {
        {"default", 0.04, 0.04, 0, 100}, {"warmup30", 0.04, 0.07, 30, 100},
        {"warmup1", 0.04, 0.07, 1, 5},   {"warmup7", 0.03, 0.065, 7, 7},
    };
    for (size_t i = 0; i < sizeof sch / sizeof sch[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "temp_%s.npy", sch[i].name);
        PlNpyArray a;
        load(file, &a, "<f8", (size_t)sch[i].nepochs);
        const double *want = a.data;
        PL_ASSERT_OK(pl_dino_loss_check(2, 1, 0.1, sch[i].warmup_temp, sch[i].temp, sch[i].warmup, sch[i].nepochs));
        for (int64_t e = 0; e < sch[i].nepochs; e++) {
            double got = pl_dino_teacher_temp(e, sch[i].warmup_temp, sch[i].temp, sch[i].warmup, sch[i].nepochs);
            if (memcmp(&got, &want[e], sizeof got) != 0)
                fail_msg("schedule %s epoch %lld: %.17g, numpy's %.17g", sch[i].name, (long long)e, got, want[e]);
        }
        double past = pl_dino_teacher_temp(sch[i].nepochs + 3, sch[i].warmup_temp, sch[i].temp, sch[i].warmup,
                                           sch[i].nepochs);
        assert_true(past == sch[i].temp);
        pl_npy_free(&a);
    }
}

// A reproducible value in [-1, 1).
static float uniform(uint64_t *x) {
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*x >> 11) * 0x1p-53 * 2.0 - 1.0);
}

// K = 65536 (DINO's out_dim), 2 images of 10 views (2 global + 8 local), against the loss and gradient computed
// here in double from the definition (log-sum-exp, softmax, the pairs written out).
static void test_large_k(void **state) {
    (void)state;
    enum { N = 2, V = 10, KL = 65536 };
    const double tau_t = 0.055, tau_s = STUDENT_TEMP;
    const float scale = 1.0f / 64.0f;
    float *s = malloc(sizeof(float) * N * V * KL), *t = malloc(sizeof(float) * N * 2 * KL);
    float *center = malloc(sizeof(float) * KL), *g = malloc(sizeof(float) * N * V * KL);
    float *scratch = malloc(sizeof(float) * pl_dino_loss_scratch_floats(KL));
    double *q = malloc(sizeof(double) * 2 * KL), *lp = malloc(sizeof(double) * KL);
    assert_non_null(s && t && center && g && scratch && q && lp);
    uint64_t x = 42;
    for (size_t i = 0; i < (size_t)N * V * KL; i++) s[i] = uniform(&x) * 1.5f;
    for (size_t i = 0; i < (size_t)N * 2 * KL; i++) t[i] = uniform(&x) * 1.2f;
    for (size_t i = 0; i < KL; i++) center[i] = uniform(&x) * 0.3f;
    const int terms = pl_dino_loss_terms(V);
    double loss = pl_dino_loss(g, s, t, center, N, V, KL, tau_s, tau_t, scale, scratch), ref = 0.0;
    double f = (double)scale / (terms * tau_s), max_grad = 0.0;
    for (int b = 0; b < N; b++) {
        for (int i = 0; i < 2; i++) {   // q_i in double
            const float *ti = t + ((size_t)b * 2 + i) * KL;
            double m = -INFINITY, S = 0.0;
            for (int k = 0; k < KL; k++) m = fmax(m, ((double)ti[k] - center[k]) / tau_t);
            for (int k = 0; k < KL; k++) S += exp(((double)ti[k] - center[k]) / tau_t - m);
            for (int k = 0; k < KL; k++) q[(size_t)i * KL + k] = exp(((double)ti[k] - center[k]) / tau_t - m) / S;
        }
        for (int v = 0; v < V; v++) {
            const float *sv = s + ((size_t)b * V + v) * KL;
            double m = -INFINITY, S = 0.0;
            for (int k = 0; k < KL; k++) m = fmax(m, sv[k] / tau_s);
            for (int k = 0; k < KL; k++) S += exp(sv[k] / tau_s - m);
            for (int k = 0; k < KL; k++) lp[k] = sv[k] / tau_s - m - log(S);
            for (int k = 0; k < KL; k++) {
                double d = 0.0;
                for (int i = 0; i < 2; i++) {
                    if (i == v) continue;
                    ref -= q[(size_t)i * KL + k] * lp[k] / terms;
                    d += exp(lp[k]) - q[(size_t)i * KL + k];
                }
                double e = fabs(g[((size_t)b * V + v) * KL + k] - f * d) / f;
                if (e > max_grad) max_grad = e;
            }
        }
    }
    double err = fabs(loss - ref) / fabs(ref);
    print_message("K = %d: loss %.12g, reference %.12g, rel error %.3g; max gradient error %.3g of scale / "
                  "(n_terms tau_s)\n", KL, loss, ref, err, max_grad);
    assert_true(err <= LOSS_TOL);
    assert_true(max_grad <= GRAD_TOL);
    free(s), free(t), free(center), free(g), free(scratch), free(q), free(lp);
}

static void test_arguments(void **state) {
    (void)state;
    PL_ASSERT_OK(pl_dino_loss_check(12, 65536, 0.1, 0.04, 0.04, 0, 100));   // DINO's defaults
    assert_int_equal(pl_dino_loss_check(1, 37, 0.1, 0.04, 0.07, 30, 100), PL_ERR_ARG);
    assert_non_null(strstr(pl_error_message(), "views"));
    assert_int_equal(pl_dino_loss_check(2, 0, 0.1, 0.04, 0.07, 30, 100), PL_ERR_ARG);
    assert_int_equal(pl_dino_loss_check(2, 37, 0.0, 0.04, 0.07, 30, 100), PL_ERR_ARG);
    assert_int_equal(pl_dino_loss_check(2, 37, NAN, 0.04, 0.07, 30, 100), PL_ERR_ARG);
    assert_int_equal(pl_dino_loss_check(2, 37, 0.1, -0.04, 0.07, 30, 100), PL_ERR_ARG);
    assert_int_equal(pl_dino_loss_check(2, 37, 0.1, 0.04, INFINITY, 30, 100), PL_ERR_ARG);
    assert_int_equal(pl_dino_loss_check(2, 37, 0.1, 0.04, 0.07, 101, 100), PL_ERR_ARG);
    assert_int_equal(pl_dino_loss_check(2, 37, 0.1, 0.04, 0.07, -1, 100), PL_ERR_ARG);
    PL_ASSERT_OK(pl_dino_loss_check(2, 37, 0.1, 0.04, 0.07, 100, 100));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_views), cmocka_unit_test(test_four_views), cmocka_unit_test(test_teacher_temp),
        cmocka_unit_test(test_large_k),   cmocka_unit_test(test_arguments),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
