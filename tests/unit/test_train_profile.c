// Unit tests for the training profile (pl_train_profile.h): self time of nested phases, the on/off switch, reset,
// the per-step and per-worker figures and the rest of the step, and the attribution of the linear layers' GEMMs
// (forward, input gradient, weight gradient; exact FLOP counts) and of BF16 operand conversions (pl_train_layers.h).
// Nothing here asserts a duration beyond its sign and the sums the bookkeeping guarantees.
#include "pl_testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_clock.h"
#include "pl_kernels.h"
#include "pl_train_layers.h"
#include "pl_train_profile.h"

static void spin(double seconds) {
    double t0 = pl_clock_now();
    while (pl_clock_now() - t0 < seconds) {
    }
}

static void test_nesting_and_switch(void **state) {
    (void)state;
    PlTrainProfile *p = NULL;
    PL_ASSERT_OK(pl_train_profile_create(2, &p));
    PlProfSlot *w0 = pl_train_profile_worker(p, 0), *w1 = pl_train_profile_worker(p, 1), *m = pl_train_profile_main(p);
    assert_non_null(w0);
    assert_non_null(w1);
    assert_ptr_equal(m, &p->slot[2]);
    assert_null(pl_train_profile_worker(p, 2));
    assert_null(pl_train_profile_worker(NULL, 0));
    // off (as created): nothing is counted
    PlProfMark mk = pl_prof_begin(w0);
    spin(1e-3);
    pl_prof_end(w0, mk, PL_PROF_ATTN_FWD, 5.0);
    assert_true(w0->sec[PL_PROF_ATTN_FWD] == 0.0 && w0->flop[PL_PROF_ATTN_FWD] == 0.0);
    // on: an inner phase is subtracted from the outer one; the two add up to the outer span
    pl_train_profile_enable(p, 1);
    double t0 = pl_clock_now();
    PlProfMark outer = pl_prof_begin(w0);
    spin(2e-3);
    PlProfMark inner = pl_prof_begin(w0);
    spin(2e-3);
    pl_prof_end(w0, inner, PL_PROF_BF16, 0.0);
    pl_prof_end(w0, outer, PL_PROF_QKV_FWD, 100.0);
    double span = pl_clock_now() - t0;
    double so = w0->sec[PL_PROF_QKV_FWD], si = w0->sec[PL_PROF_BF16];
    assert_true(so >= 2e-3 && si >= 2e-3);
    assert_true(so + si <= span + 1e-9);
    assert_true(fabs(w0->inner - (so + si)) < 1e-12);
    assert_true(w0->flop[PL_PROF_QKV_FWD] == 100.0);
    // worker phases are averaged over the workers and the steps; the loop's phases over the steps only
    w1->sec[PL_PROF_QKV_FWD] = 3.0 - so;   // the two workers: 3 thread-seconds in all
    m->sec[PL_PROF_OPTIM] = 0.5;
    p->step_sec = 4.0;
    p->steps = 2;
    assert_true(fabs(pl_train_profile_phase_sec(p, PL_PROF_QKV_FWD) - 0.75) < 1e-12);
    assert_true(fabs(pl_train_profile_phase_sec(p, PL_PROF_OPTIM) - 0.25) < 1e-12);
    assert_true(fabs(pl_train_profile_phase_flop(p, PL_PROF_QKV_FWD) - 50.0) < 1e-12);
    double claimed = 0.0;
    for (int ph = 0; ph < PL_PROF_PHASES; ph++) claimed += pl_train_profile_phase_sec(p, (PlProfPhase)ph);
    assert_true(fabs(pl_train_profile_rest_sec(p) - (2.0 - claimed)) < 1e-12);
    assert_string_equal(pl_prof_phase_name(PL_PROF_FC2_DW), "fc2 weight grad");
    assert_string_equal(pl_prof_phase_name(PL_PROF_PHASES), "?");
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(pl_train_profile_print(p, "t", f), 0);
    fclose(f);
    // reset keeps the switch, forgets the figures
    pl_train_profile_reset(p);
    assert_true(p->steps == 0 && p->step_sec == 0.0 && w1->sec[PL_PROF_QKV_FWD] == 0.0 && w0->on == 1);
    assert_int_equal(w0->linear, PL_PROF_HEAD);
    pl_train_profile_enable(p, 0);
    assert_int_equal(m->on, 0);
    pl_train_profile_destroy(p);
    // a NULL slot is a no-op
    pl_prof_end(NULL, pl_prof_begin(NULL), PL_PROF_DATA, 1.0);
    pl_prof_linear(NULL, PL_PROF_FC1_FWD);
}

// The linear layers book their GEMMs under the layer pl_prof_linear named (2 m n k FLOPs each), bias work under
// "residual", and with BF16 the operand conversions under "bf16 conversions"; without a layer everything is "head".
static void test_linear_attribution(void **state) {
    (void)state;
    enum { N = 6, IC = 8, OC = 5 };
    float inp[N * IC], w[OC * IC], b[OC], out[N * OC], dout[N * OC], dinp[N * IC], dw[OC * IC], db[OC];
    for (int i = 0; i < N * IC; i++) inp[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < OC * IC; i++) w[i] = (float)((i * 5) % 13) / 13.0f - 0.5f;
    for (int i = 0; i < OC; i++) b[i] = 0.1f * (float)i;
    for (int i = 0; i < N * OC; i++) dout[i] = (float)((i * 3) % 7) / 7.0f - 0.5f;
    const PlKernels *k = pl_kernels_default();
    for (int bf16 = 0; bf16 < 2; bf16++) {
        const PlKernels *kb = k;
        if (bf16 && pl_kernels_find("auto", PL_PRECISION_BF16, &kb) != PL_OK) continue;   // no BF16 GEMM here
        PlTrainProfile *p = NULL;
        PL_ASSERT_OK(pl_train_profile_create(1, &p));
        pl_train_profile_enable(p, 1);
        uint16_t a16[64], b16[64];
        PlTrainGemm g = {.k = kb, .precision = bf16 ? PL_PRECISION_BF16 : PL_PRECISION_FP32, .a16 = a16, .b16 = b16,
                         .cap = 64, .prof = pl_train_profile_worker(p, 0)};
        PlProfSlot *s = g.prof;
        pl_prof_linear(s, PL_PROF_FC1_FWD);
        pl_linear_forward(&g, out, inp, w, b, N, IC, OC);
        pl_linear_backward(&g, dinp, 0.0f, dw, db, dout, inp, w, N, IC, OC);
        const double f = 2.0 * N * IC * OC;
        assert_true(s->flop[PL_PROF_FC1_FWD] == f && s->flop[PL_PROF_FC1_DX] == f && s->flop[PL_PROF_FC1_DW] == f);
        assert_true(s->sec[PL_PROF_FC1_FWD] > 0.0 && s->sec[PL_PROF_FC1_DX] > 0.0 && s->sec[PL_PROF_FC1_DW] > 0.0);
        assert_true(s->sec[PL_PROF_RESIDUAL] > 0.0);
        assert_true(bf16 ? s->sec[PL_PROF_BF16] > 0.0 : s->sec[PL_PROF_BF16] == 0.0);
        assert_true(s->flop[PL_PROF_QKV_FWD] == 0.0 && s->flop[PL_PROF_HEAD] == 0.0);
        // no layer named: the head's GEMMs
        pl_prof_linear(s, PL_PROF_HEAD);
        pl_linear_backward(&g, NULL, 0.0f, dw, NULL, dout, inp, w, N, IC, OC);
        assert_true(s->flop[PL_PROF_HEAD] == f && s->flop[PL_PROF_FC1_DW] == f);
        pl_train_profile_destroy(p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nesting_and_switch),
        cmocka_unit_test(test_linear_attribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
