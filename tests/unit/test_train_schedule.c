// Unit tests for the schedules pl_cosine_schedule_at and pl_lr_at (stages/train/pl_optim.h), which are DINO's
// cosine_scheduler (utils.py): a warm-up np.linspace(start, base, warmup) (endpoint included), then for i = 0 .. n - 1
// with n = total - warmup: final + 0.5 (base - final) (1 + cos(pi i / n)). Checked against that arithmetic written
// here independently in double, at the first step, inside the warm-up, the last warm-up step, the first step after it,
// the middle and the last step of several (total, warmup) combinations (warmup 0 and 1 included); against every
// step of the lr schedules numpy computes with DINO's code; and against DINO's three uses in main_dino.py (lr with
// warm-up, weight decay, teacher momentum) and warm-ups from a non-zero start (both fixtures made by
// tests/fixtures/schedule/make_schedule_fixture.py). Warm-up values are numpy's bit for bit.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_optim.h"

// np.linspace(0, base, warmup)[step]: numpy multiplies the index by the step (base - 0) / (warmup - 1) and sets the
// last element to base exactly; a single element is the start, 0.
static double linspace_at(int64_t step, int64_t warmup, double base) {
    if (warmup == 1) return 0.0;
    if (step == warmup - 1) return base;
    return (double)step * (base / (double)(warmup - 1));
}

// The schedule at `step` by DINO's arithmetic (constant: base after the warm-up instead of the cosine).
static double dino_lr(int64_t step, int64_t total, int64_t warmup, double base, double final, int constant) {
    if (step < warmup) return linspace_at(step, warmup, base);
    if (constant) return base;
    double i = (double)(step - warmup), n = (double)(total - warmup);
    return final + 0.5 * (base - final) * (1.0 + cos(3.14159265358979323846 * i / n));
}

// got within 1e-15 of want, relative (want 0: exactly 0).
static void assert_rel(const char *what, int64_t step, int64_t total, int64_t warmup, double got, double want) {
    if (want == 0.0 ? got != 0.0 : !(fabs(got - want) <= 1e-15 * fabs(want)))
        fail_msg("%s: step %lld of %lld (warm-up %lld): pl_lr_at %.17g, expected %.17g", what, (long long)step,
                 (long long)total, (long long)warmup, got, want);
}

typedef struct Combo {
    int64_t total, warmup;
    double base, final;
} Combo;

static const Combo combos[] = {
    {10, 0, 5e-4, 1e-6},  {10, 1, 0.1, 0.0},     {7, 3, 5e-4, 1e-6},  {100, 50, 5e-4, 1e-6}, {12, 0, 2e-3, 1e-5},
    {4, 4, 0.05, 0.0},    {2, 1, 1.0, 0.5},      {1, 0, 0.3, 0.01},   {150, 37, 1e-3, 2e-6}, {1000, 1, 5e-4, 1e-6},
    {101, 2, 0.2, 0.002}, {9, 8, 3e-4, 3e-4},
};

// The named steps of every combination, and their defining properties, against the formula above.
static void test_named_steps(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof combos / sizeof combos[0]; c++) {
        const Combo *k = &combos[c];
        int64_t T = k->total, W = k->warmup, n = T - W;
        double b = k->base, f = k->final;
        for (int constant = 0; constant < 2; constant++) {
            const char *what = constant ? "constant" : "cosine";
            // the first step: 0 (the start of the warm-up) or base (cos 0 = 1)
            double first = pl_lr_at(0, T, W, b, f, constant);
            assert_rel(what, 0, T, W, first, dino_lr(0, T, W, b, f, constant));
            if (W > 0) assert_true(first == 0.0);
            else assert_rel(what, 0, T, W, first, b);
            if (W > 0) {
                // inside the warm-up: linear from 0; the last warm-up step is base (np.linspace's endpoint), except
                // for a one-step warm-up, whose only value is the start, 0
                for (int64_t s = 1; s < W; s++) {
                    assert_rel(what, s, T, W, pl_lr_at(s, T, W, b, f, constant), dino_lr(s, T, W, b, f, constant));
                    assert_rel(what, s, T, W, pl_lr_at(s, T, W, b, f, constant), b * (double)s / (double)(W - 1));
                }
                assert_rel(what, W - 1, T, W, pl_lr_at(W - 1, T, W, b, f, constant), W == 1 ? 0.0 : b);
            }
            if (n <= 0) continue;   // warm-up only
            // the first step after the warm-up: base (the cosine starts at its top)
            assert_rel(what, W, T, W, pl_lr_at(W, T, W, b, f, constant), b);
            // the middle of the cosine (exactly halfway for even n) and the last step, which DINO leaves one step
            // short of final
            int64_t mid = W + n / 2, last = T - 1;
            assert_rel(what, mid, T, W, pl_lr_at(mid, T, W, b, f, constant), dino_lr(mid, T, W, b, f, constant));
            assert_rel(what, last, T, W, pl_lr_at(last, T, W, b, f, constant), dino_lr(last, T, W, b, f, constant));
            if (constant) {
                assert_true(pl_lr_at(mid, T, W, b, f, 1) == b && pl_lr_at(last, T, W, b, f, 1) == b);
                continue;
            }
            if (n % 2 == 0 && n > 0 && fabs(pl_lr_at(mid, T, W, b, f, 0) - 0.5 * (b + f)) > 1e-15 * fabs(b))
                fail_msg("middle step %lld of %lld: %.17g, not (base + final) / 2", (long long)mid, (long long)T,
                         pl_lr_at(mid, T, W, b, f, 0));
            double want_last = f + 0.5 * (b - f) * (1.0 + cos(3.14159265358979323846 * (double)(n - 1) / (double)n));
            assert_rel(what, last, T, W, pl_lr_at(last, T, W, b, f, 0), want_last);
            if (n > 1 && b != f) assert_true(pl_lr_at(last, T, W, b, f, 0) > f);
            // every other step too, and the cosine never rises
            for (int64_t s = W; s < T; s++) {
                assert_rel(what, s, T, W, pl_lr_at(s, T, W, b, f, 0), dino_lr(s, T, W, b, f, 0));
                if (s > W) assert_true(pl_lr_at(s, T, W, b, f, 0) <= pl_lr_at(s - 1, T, W, b, f, 0));
            }
        }
    }
}

// Every step of the schedules numpy computed with DINO's cosine_scheduler. The warm-up agrees to a rounding of the
// division; the cosine to numpy's cos against libm's, an error of an ulp of (1 + cos) that near the end (where
// 1 + cos -> 0) is large relative to the lr but not to the schedule's scale: so the bound is 1e-15 relative to
// max(|base|, |final|), and 1e-15 relative to the value itself while the value is at least a tenth of that scale.
static void test_numpy_fixture(void **state) {
    (void)state;
    char path[4096], line[512];
    pl_test_source_path("tests/fixtures/schedule/dino_cosine_schedule.tsv", path, sizeof path);
    FILE *fp = fopen(path, "r");
    if (!fp) fail_msg("cannot open %s", path);
    int rows = 0, schedules = 0;
    int64_t expect_step = 0, prev_total = -1, prev_warmup = -1;
    double worst = 0.0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#') continue;
        long long total, warmup, step;
        double base, final, lr;
        if (sscanf(line, "%lld %lld %lf %lf %lld %lf", &total, &warmup, &base, &final, &step, &lr) != 6)
            fail_msg("%s: bad row '%s'", path, line);
        if (step == 0) {   // a new schedule: the previous one had all its steps
            if (prev_total >= 0 && expect_step != prev_total) fail_msg("a schedule of %lld has %lld rows", (long long)prev_total, (long long)expect_step);
            schedules++, expect_step = 0;
        }
        assert_int_equal(step, expect_step);
        expect_step++, prev_total = total, prev_warmup = warmup;
        double got = pl_lr_at(step, total, warmup, base, final, 0), scale = fmax(fabs(base), fabs(final));
        double err = fabs(got - lr);
        if (step < warmup && got != lr)   // the warm-up is numpy's linspace arithmetic exactly
            fail_msg("%s: warm-up step %lld of %lld: pl_lr_at %.17g, numpy %.17g", path, step, warmup, got, lr);
        if (lr == 0.0 ? got != 0.0 : !(err <= 1e-15 * scale) || (fabs(lr) >= 0.1 * scale && !(err <= 1e-15 * fabs(lr))))
            fail_msg("%s: step %lld of %lld (warm-up %lld): pl_lr_at %.17g, numpy %.17g", path, step, total, warmup, got, lr);
        if (err / scale > worst) worst = err / scale;
        rows++;
    }
    fclose(fp);
    assert_int_equal(expect_step, prev_total);
    (void)prev_warmup;
    assert_true(schedules >= 9 && rows >= 290);
    print_message("%d steps of %d DINO schedules (numpy): worst |pl_lr_at - numpy| = %.3g of max(|base|, |final|)\n",
                  rows, schedules, worst);
}

// Every step of DINO's schedules as main_dino.py builds them (lr with a warm-up, rising weight decay, teacher momentum
// to 1) and of warm-ups from a non-zero start_warmup_value: warm-up steps bit for bit; cosine steps within 1e-15 of
// |final| + |base - final|, since numpy's own cos differs from libm's by an ulp in most steps and the rising schedules
// (final - c (1 + cos)) cancel, which makes that ulp several of the result's; the momentum never falls, stays below 1.
static void test_dino_uses(void **state) {
    (void)state;
    char path[4096], line[512];
    pl_test_source_path("tests/fixtures/schedule/dino_schedule_uses.tsv", path, sizeof path);
    FILE *fp = fopen(path, "r");
    if (!fp) fail_msg("cannot open %s", path);
    int rows = 0, warm_rows = 0, exact = 0, uses[3] = {0, 0, 0};
    double worst = 0.0, prev_momentum = 0.0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#') continue;
        char use[16];
        long long total, warmup, step;
        double base, final, start, value;
        if (sscanf(line, "%15s %lld %lld %lf %lf %lf %lld %lf", use, &total, &warmup, &base, &final, &start, &step,
                   &value) != 8)
            fail_msg("%s: bad row '%s'", path, line);
        double got = pl_cosine_schedule_at(step, total, warmup, base, final, start);
        double scale = fmax(fabs(base), fabs(final)), err = fabs(got - value);
        if (step < warmup) {
            if (got != value)
                fail_msg("%s: %s warm-up step %lld of %lld (start %g): %.17g, numpy %.17g", path, use, step, warmup,
                         start, got, value);
            warm_rows++;
        } else if (!(err <= 1e-15 * (fabs(final) + fabs(base - final)))) {   // ulps of the terms, not of the sum
            fail_msg("%s: %s step %lld of %lld (warm-up %lld): %.17g, numpy %.17g", path, use, step, total, warmup, got,
                     value);
        }
        if (strcmp(use, "lr") == 0 && start == 0.0) assert_true(got == pl_lr_at(step, total, warmup, base, final, 0));
        if (strcmp(use, "momentum") == 0) {
            assert_true(got < 1.0 && (step == 0 ? got == base : got >= prev_momentum));
            prev_momentum = got;
        }
        uses[strcmp(use, "lr") == 0 ? 0 : strcmp(use, "wd") == 0 ? 1 : 2]++;
        exact += got == value;
        if (err / scale > worst) worst = err / scale;
        rows++;
    }
    fclose(fp);
    assert_true(rows >= 1600 && warm_rows >= 370 && uses[0] > 0 && uses[1] > 0 && uses[2] > 0);
    print_message("%d steps of DINO's schedules (%d warm-up, all exact): %d bit-exact, worst %.3g of the scale\n", rows,
                  warm_rows, exact, worst);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named_steps),
        cmocka_unit_test(test_numpy_fixture),
        cmocka_unit_test(test_dino_uses),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
