// Golden test of DINO's self-distillation objective (stages/train/pl_train_dino.h) against DINO's own training loop
// (tests/fixtures/dino_train/make_dino_train_fixtures.py: main_dino.py's train_one_epoch in float64 on a tiny ViT +
// DINOHead, 4 images of 2 global 32x32 and 2 local 16x16 views, 3 steps): the C steps run through pl_train_step
// (the objective), pl_optim (AdamW, per-tensor clip 3.0, the decayed group's wd schedule, "last_layer" frozen at step
// 0, weight_g always) and pl_train_dino_after_step (center, teacher EMA), driven by hand (micro-batches of 1, 2 and 4
// images) and through pl_trainer_run (the after-step hook of a pretraining command, which also moves the last-layer
// freeze; bit-identical to the by-hand steps); loss, center, student and teacher weights are compared after every
// step. The weights are also bit-identical for 1, 2 and 3 threads at the same micro-batch size.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_npy.h"
#include "pl_optim.h"
#include "pl_threadpool.h"
#include "pl_train_dino.h"
#include "pl_train_step.h"
#include "pl_trainer.h"
#include "pl_vit_train.h"

enum { B = 4, C = 2, G = 32, L = 16, NLOC = 2, K = 64, STEPS = 3 };
static const PlVitConfig CFG = {.in_chans = C, .patch = 8, .dim = 32, .depth = 2, .heads = 2, .mlp_hidden = 128,
                                .pos_grid = 4, .ln_eps = 1e-6f};
// main_dino.py's settings of the fixture: lr (already scaled by the batch), min_lr, wd, wd_end, momentum_teacher.
static const double LR = 1e-3, MIN_LR = 1e-4, WD = 0.04, WD_END = 0.4, MOMENTUM = 0.9, CLIP = 3.0;

// Tolerances against the float64 reference (float32 arithmetic on float32-representable inputs); measured maxima over
// micro-batches 1, 2, 4 and the 3 steps are printed by the test (loss 3.5e-6 relative, center 3.5e-7, student
// weights 1.0e-6, teacher 2.0e-7 absolute). The loss: a sum of 12 cross-entropies of float32 softmaxes over 64
// prototypes of a float32 network, ~1e-6 relative per forward, compounded by the 2 earlier updates: 1e-5. The center:
// means of teacher outputs of size ~1 (float32 forwards, ~1e-7 each) moved by 3 updates: 2e-6. The weights: AdamW
// moves each by up to lr = 1e-3 per step, lr g / (sqrt(g^2) + eps) at the first step, which float32 gradient rounding
// changes by lr x (its relative error) only where |g| is within a few orders of eps, i.e. up to ~1e-6 (the patch
// embedding's gradients, sums over 16 patches x 8 views that nearly cancel for some elements); elsewhere ~lr x 1e-6
// relative: 3e-6 + 1e-5 |w| (3x the worst measured). The teacher moves by (1 - m) of the student's change: within
// the same bound. A missed freeze, weight decay or EMA moves weights by ~1e-4 .. 1e-3, far outside.
static const double LOSS_RTOL = 1e-5, CENTER_ATOL = 2e-6, W_ATOL = 3e-6, W_RTOL = 1e-5;

typedef struct Fixture {
    PlNpyArray init, glob, loc, loss, center, student, teacher, sched;
    char names[64][64];
    size_t numel[64];
    int count;
    size_t P;
} Fixture;

static void load(const char *name, PlNpyArray *a, const char *descr) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "tests/fixtures/dino_train/%s", name);
    pl_test_source_path(rel, path, sizeof path);
    PL_ASSERT_OK(pl_npy_read(path, a));
    if (strcmp(a->descr, descr) != 0) fail_msg("%s: dtype %s, expected %s", name, a->descr, descr);
}

static void fixture_load(Fixture *f) {
    char path[4096];
    pl_test_source_path("tests/fixtures/dino_train/names.txt", path, sizeof path);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    f->count = 0;
    f->P = 0;
    while (f->count < 64 && fscanf(fp, "%63s %zu", f->names[f->count], &f->numel[f->count]) == 2)
        f->P += f->numel[f->count++];
    fclose(fp);
    load("student_init.npy", &f->init, "<f4");
    load("globals.npy", &f->glob, "<f4");
    load("locals.npy", &f->loc, "<f4");
    load("loss.npy", &f->loss, "<f8");
    load("center.npy", &f->center, "<f8");
    load("student.npy", &f->student, "<f4");
    load("teacher.npy", &f->teacher, "<f4");
    load("sched.npy", &f->sched, "<f8");
    assert_int_equal(pl_npy_count(&f->init), f->P);
    assert_int_equal(pl_npy_count(&f->student), STEPS * f->P);
    assert_int_equal(pl_npy_count(&f->glob), (size_t)B * 2 * C * G * G);
    assert_int_equal(pl_npy_count(&f->loc), (size_t)B * NLOC * C * L * L);
}

static void fixture_free(Fixture *f) {
    PlNpyArray *a[] = {&f->init, &f->glob, &f->loc, &f->loss, &f->center, &f->student, &f->teacher, &f->sched};
    for (size_t i = 0; i < sizeof a / sizeof *a; i++) pl_npy_free(a[i]);
}

// The table index of each fixture tensor (names.txt order), checked by name and size.
static void map_tensors(const Fixture *f, const PlVitTrain *t, int *idx) {
    int count;
    const PlTrainTensor *tab = pl_vit_train_tensors(t, &count);
    assert_int_equal(count, f->count);
    for (int i = 0; i < f->count; i++) {
        idx[i] = -1;
        for (int j = 0; j < count; j++)
            if (strcmp(tab[j].name, f->names[i]) == 0) idx[i] = j;
        if (idx[i] < 0) fail_msg("fixture tensor %s is not in the model", f->names[i]);
        assert_int_equal(tab[idx[i]].numel, f->numel[i]);
    }
}

// The result of one run: weights after each step in the fixture's flat order, losses, centers.
typedef struct Run {
    float *student, *teacher;   // (STEPS, P)
    double loss[STEPS];
    float center[STEPS][K];
} Run;

// Drop path of the student in the keyed runs (test_drop_path): its rate and one key per view of each image.
static float g_drop_path;
static uint64_t g_gkeys[B * 2], g_lkeys[B * NLOC];

static PlVitTrainSpec model_spec(int m, int workers, int student) {
    PlVitTrainSpec sp = {.cfg = CFG, .classes = K, .height = G, .width = G, .micro_batch = 2 * m,
                         .workers = workers};
    sp.head = pl_vit_train_head_dino();
    sp.head.hidden_dim = 48;
    sp.head.bottleneck_dim = 16;
    if (student) {
        sp.drop_path = g_drop_path;
        sp.ngroups = 2;
        sp.groups[1] = (PlViewGroup){.height = L, .width = L, .micro_batch = NLOC * m};
        sp.head_rows = (2 + NLOC) * m;
    }
    return sp;
}

// Everything one run holds: the two models (the student from the fixture's initial weights, the teacher its copy),
// the pool, the objective, the step driver and the optimizer (DINO's: AdamW, per-tensor clip, "last_layer" frozen
// for the first epoch, weight_g always).
typedef struct Setup {
    const Fixture *f;
    PlVitTrain *student, *teacher;
    PlThreadPool *pool;
    PlTrainDino *d;
    PlTrainObjective obj;
    PlTrainStep *step;
    PlOptim *op;
    int idx[64];
    Run *r;
    PlDinoBatch batch;
} Setup;

static void setup_create(Setup *u, const Fixture *f, int m, int threads, Run *r) {
    memset(u, 0, sizeof *u);
    u->f = f;
    u->r = r;
    PlVitTrainSpec ss = model_spec(m, threads, 1), ts = model_spec(m, threads, 0);
    PL_ASSERT_OK(pl_vit_train_create(&ss, NULL, &u->student));
    PL_ASSERT_OK(pl_vit_train_create(&ts, NULL, &u->teacher));
    map_tensors(f, u->student, u->idx);
    int count;
    const PlTrainTensor *tab = pl_vit_train_tensors(u->student, &count);
    float *params = pl_vit_train_params(u->student);
    const float *init = f->init.data;
    for (int i = 0, off = 0; i < f->count; off += (int)f->numel[i], i++)
        memcpy(params + tab[u->idx[i]].offset, init + off, f->numel[i] * sizeof(float));
    pl_vit_train_sync(u->student);
    PL_ASSERT_OK(pl_vit_train_copy_params(u->teacher, u->student));
    PL_ASSERT_OK(pl_threadpool_create(threads, &u->pool));
    PlTrainDinoOptions o;
    pl_train_dino_options_default(&o);
    o.local_views = NLOC;
    o.warmup_teacher_temp = 0.04;
    o.teacher_temp = 0.07;
    o.warmup_teacher_temp_epochs = 2;
    o.nepochs = STEPS;
    o.momentum_teacher = MOMENTUM;
    o.steps_per_epoch = 1;
    o.total_steps = STEPS;
    o.global_batch = B;
    o.pool = u->pool;
    PL_ASSERT_OK(pl_train_dino_create(u->student, u->teacher, &o, &u->d));
    pl_train_dino_objective(u->d, &u->obj);
    PlTrainStepOptions so = {.global_batch = B};
    PL_ASSERT_OK(pl_train_step_create(&u->obj, u->pool, &so, &u->step));
    PlOptimOptions oo;
    pl_optim_options_default(&oo);
    oo.weight_decay = WD;
    oo.clip = CLIP;
    oo.clip_mode = PL_OPTIM_CLIP_PER_TENSOR;
    PL_ASSERT_OK(pl_optim_create(u->student, &oo, &u->op));
    u->batch = (PlDinoBatch){.globals = f->glob.data, .locals = f->loc.data};
    if (g_drop_path > 0.0f) {
        u->batch.global_keys = g_gkeys;
        u->batch.local_keys = g_lkeys;
    }
}

static void setup_destroy(Setup *u) {
    pl_optim_destroy(u->op);
    pl_train_step_destroy(u->step);
    pl_train_dino_destroy(u->d);
    pl_threadpool_destroy(u->pool);
    pl_vit_train_destroy(u->teacher);
    pl_vit_train_destroy(u->student);
}

// DINO's cancel_gradients_last_layer with freeze_last_layer 1 (1 step per epoch): "last_layer" frozen at step 0
// only; weight_g (norm_last_layer) always.
static void freeze_for(PlOptim *op, int64_t s) {
    int matched = 0;
    pl_optim_set_frozen_matching(op, "last_layer", s < 1, &matched);
    assert_int_equal(matched, 2);
    pl_optim_set_frozen_matching(op, "last_layer.weight_g", 1, NULL);
}

// The state after step s into the run: center, student and teacher weights in the fixture's flat order.
static void record(Setup *u, int s) {
    const Fixture *f = u->f;
    int count;
    const PlTrainTensor *tab = pl_vit_train_tensors(u->student, &count);
    memcpy(u->r->center[s], pl_train_dino_center(u->d), sizeof u->r->center[s]);
    const float *sp = pl_vit_train_params(u->student), *tp = pl_vit_train_params(u->teacher);
    for (int i = 0, off = 0; i < f->count; off += (int)f->numel[i], i++) {
        memcpy(u->r->student + s * f->P + off, sp + tab[u->idx[i]].offset, f->numel[i] * sizeof(float));
        memcpy(u->r->teacher + s * f->P + off, tp + tab[u->idx[i]].offset, f->numel[i] * sizeof(float));
    }
}

// The steps by hand: the loop's schedules (pl_trainer.c) and hook calls.
static void run_steps(const Fixture *f, int m, int threads, Run *r) {
    Setup u;
    setup_create(&u, f, m, threads, r);
    const double *sched = f->sched.data;
    for (int s = 0; s < STEPS; s++) {
        const double lr = pl_lr_at(s, STEPS, 0, LR, MIN_LR, 0);
        const double wd = pl_cosine_schedule_at(s, STEPS, 0, WD, WD_END, 0.0);
        assert_true(fabs(lr - sched[s * 4 + 0]) <= 1e-18 && fabs(wd - sched[s * 4 + 1]) <= 1e-17);
        assert_true(fabs(pl_train_dino_momentum(u.d, s) - sched[s * 4 + 2]) <= 1e-16);
        PL_ASSERT_OK(pl_optim_set_weight_decay(u.op, wd));
        freeze_for(u.op, s);
        float *grad;
        const float *stats;
        double loss;
        PL_ASSERT_OK(pl_train_step_run(u.step, &u.batch, &grad, &stats, &loss));
        assert_true(fabs(pl_train_dino_teacher_temp(u.d) - sched[s * 4 + 3]) <= 1e-17);
        pl_optim_step(u.op, pl_vit_train_params(u.student), grad, lr, u.pool, NULL);
        PL_ASSERT_OK(pl_train_dino_after_step(u.d, s, stats));
        r->loss[s] = loss;
        record(&u, s);
    }
    setup_destroy(&u);
}

// ---- the same steps through pl_trainer_run ----

static PlStatus src_prepare(void *ctx, int64_t step, int slot) {
    (void)ctx, (void)step, (void)slot;
    return PL_OK;   // the views are fixed
}
static const void *src_batch(void *ctx, int slot) {
    (void)slot;
    return &((Setup *)ctx)->batch;
}
// The command's after-step hook: DINO's center and teacher update, then the next step's last-layer freeze.
static PlStatus loop_after_step(void *ctx, int64_t step, const float *stats) {
    Setup *u = ctx;
    PL_TRY(pl_train_dino_after_step(u->d, step, stats));
    record(u, (int)step);
    freeze_for(u->op, step + 1);
    return PL_OK;
}

static void run_loop(const Fixture *f, int m, int threads, Run *r) {
    Setup u;
    setup_create(&u, f, m, threads, r);
    char *dir = pl_test_tmpdir();
    assert_non_null(dir);
    freeze_for(u.op, 0);
    const PlBatchSource src = {.ctx = &u, .prepare = src_prepare, .batch = src_batch, .slots = 2};
    const PlTrainerHooks hooks = {.ctx = &u, .after_step = loop_after_step};
    const PlTrainerOptions to = {.out_dir = dir, .total_steps = STEPS, .batch = B, .epoch_samples = B,
                                 .peak_lr = LR, .min_lr = MIN_LR, .wd_schedule = 1, .wd_base = WD, .wd_final = WD_END,
                                 .keys = {.args_text = "test_train_dino", .total_steps = STEPS}, .pool = u.pool,
                                 .quiet = 1};
    double epoch_loss[STEPS + 2] = {0};
    PlTrainState fs = {.cap_epochs = STEPS + 2, .epoch_loss = epoch_loss};
    PlTrainerResult tr;
    PL_ASSERT_OK(pl_trainer_run(u.student, u.step, u.op, &src, NULL, &hooks, &to, &fs, &tr));
    assert_int_equal(fs.n_epochs, STEPS);
    for (int s = 0; s < STEPS; s++) r->loss[s] = epoch_loss[s];   // one step per epoch
    pl_test_rmtree(dir);
    free(dir);
    setup_destroy(&u);
}

static void run_alloc(const Fixture *f, Run *r) {
    r->student = calloc(STEPS * f->P, sizeof(float));
    r->teacher = calloc(STEPS * f->P, sizeof(float));
    assert_true(r->student && r->teacher);
}
static void run_free(Run *r) {
    free(r->student);
    free(r->teacher);
}

// Weights of one step against the reference: the worst |err| / (W_ATOL + W_RTOL |ref|), the tensor it is in.
static double weights_error(const Fixture *f, const float *got, const float *ref, double *max_abs, const char **where) {
    double worst = 0.0;
    *max_abs = 0.0;
    for (int i = 0, off = 0; i < f->count; off += (int)f->numel[i], i++)
        for (size_t j = 0; j < f->numel[i]; j++) {
            const double e = fabs((double)got[off + j] - (double)ref[off + j]);
            const double q = e / (W_ATOL + W_RTOL * fabs((double)ref[off + j]));
            if (e > *max_abs) *max_abs = e;
            if (q > worst) {
                worst = q;
                *where = f->names[i];
            }
        }
    return worst;
}

static void check_golden(const Fixture *f, const Run *r, const char *what) {
    const double *lref = f->loss.data, *cref = f->center.data;
    const float *sref = f->student.data, *tref = f->teacher.data, *init = f->init.data;
    for (int s = 0; s < STEPS; s++) {
        const double lerr = fabs(r->loss[s] - lref[s]) / fabs(lref[s]);
        double cerr = 0.0;
        for (int k = 0; k < K; k++) cerr = fmax(cerr, fabs((double)r->center[s][k] - cref[s * K + k]));
        double sabs, tabs;
        const char *sw = "-", *tw = "-";
        const double sq = weights_error(f, r->student + s * f->P, sref + s * f->P, &sabs, &sw);
        const double tq = weights_error(f, r->teacher + s * f->P, tref + s * f->P, &tabs, &tw);
        printf("%s step %d: loss %.9f (ref %.9f, rel err %.2e), center max err %.2e, student max err %.2e "
               "(worst/tol %.3f in %s), teacher max err %.2e (worst/tol %.3f in %s)\n",
               what, s, r->loss[s], lref[s], lerr, cerr, sabs, sq, sw, tabs, tq, tw);
        assert_true(lerr <= LOSS_RTOL);
        assert_true(cerr <= CENTER_ATOL);
        assert_true(sq <= 1.0);
        assert_true(tq <= 1.0);
    }
    // step 0 froze the last layer: its weight_v did not move; it moved at step 1
    for (int i = 0, off = 0; i < f->count; off += (int)f->numel[i], i++)
        if (strcmp(f->names[i], "head.last_layer.weight_v") == 0) {
            assert_memory_equal(r->student + off, init + off, f->numel[i] * sizeof(float));
            assert_memory_not_equal(r->student + f->P + off, init + off, f->numel[i] * sizeof(float));
        }
}

static void test_golden(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    const int mbs[] = {1, 2, 4};
    for (size_t i = 0; i < sizeof mbs / sizeof *mbs; i++) {
        Run r;
        run_alloc(&f, &r);
        run_steps(&f, mbs[i], 1, &r);
        char what[32];
        snprintf(what, sizeof what, "micro-batch %d", mbs[i]);
        check_golden(&f, &r, what);
        run_free(&r);
    }
    fixture_free(&f);
}

// The same micro-batch size on 1, 2 and 3 threads: the same micro-batches summed along the same tree.
static void test_threads_bit_identical(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    const int mbs[] = {1, 2};
    for (size_t i = 0; i < sizeof mbs / sizeof *mbs; i++) {
        Run r1, r;
        run_alloc(&f, &r1);
        run_steps(&f, mbs[i], 1, &r1);
        for (int threads = 2; threads <= 3; threads++) {
            run_alloc(&f, &r);
            run_steps(&f, mbs[i], threads, &r);
            assert_memory_equal(r.student, r1.student, STEPS * f.P * sizeof(float));
            assert_memory_equal(r.teacher, r1.teacher, STEPS * f.P * sizeof(float));
            assert_memory_equal(r.center, r1.center, sizeof r.center);
            for (int s = 0; s < STEPS; s++) assert_true(r.loss[s] == r1.loss[s]);
            run_free(&r);
        }
        run_free(&r1);
    }
    fixture_free(&f);
}

static void test_arguments(void **state) {
    (void)state;
    PlVitTrainSpec ss = model_spec(2, 1, 1), ts = model_spec(2, 1, 0);
    PlVitTrain *student, *teacher, *small;
    PL_ASSERT_OK(pl_vit_train_create(&ss, NULL, &student));
    PL_ASSERT_OK(pl_vit_train_create(&ts, NULL, &teacher));
    PlTrainDinoOptions o;
    pl_train_dino_options_default(&o);
    o.local_views = NLOC;
    PlTrainDino *d;
    PL_ASSERT_OK(pl_train_dino_create(student, teacher, &o, &d));
    pl_train_dino_destroy(d);
    o.local_views = 3;   // group 1 holds 2 x 2 local views
    assert_int_equal(pl_train_dino_create(student, teacher, &o, &d), PL_ERR_ARG);
    assert_null(d);
    o.local_views = NLOC;
    PlVitTrainSpec ts1 = model_spec(1, 1, 0);   // a teacher too small for 2 images' globals
    PL_ASSERT_OK(pl_vit_train_create(&ts1, NULL, &small));
    assert_int_equal(pl_train_dino_create(student, small, &o, &d), PL_ERR_ARG);
    PlVitTrainSpec ss1 = model_spec(2, 1, 1);   // head rows for the globals only
    ss1.head_rows = 0;
    PlVitTrain *narrow;
    PL_ASSERT_OK(pl_vit_train_create(&ss1, NULL, &narrow));
    assert_int_equal(pl_train_dino_create(narrow, teacher, &o, &d), PL_ERR_ARG);
    pl_vit_train_destroy(narrow);
    pl_vit_train_destroy(small);
    pl_vit_train_destroy(teacher);
    pl_vit_train_destroy(student);
}

// Drop path on the student (rate 0.3, keys per view): each view's mask follows its key, whichever micro-batch and
// thread compute it: micro-batches of 1 and 4 images agree to float32 rounding (a misplaced key would drop other
// samples' paths and change the loss by far more), 1 and 3 threads bit for bit, and the loss differs from the
// undropped one.
static void test_drop_path(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    for (int i = 0; i < B * 2; i++) g_gkeys[i] = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    for (int i = 0; i < B * NLOC; i++) g_lkeys[i] = 0xd1b54a32d192ed03ull * (uint64_t)(i + 7);
    g_drop_path = 0.3f;
    Run a, b, c;
    run_alloc(&f, &a);
    run_alloc(&f, &b);
    run_alloc(&f, &c);
    run_steps(&f, 1, 1, &a);
    run_steps(&f, 1, 3, &b);
    run_steps(&f, 4, 1, &c);
    g_drop_path = 0.0f;
    assert_memory_equal(a.student, b.student, STEPS * f.P * sizeof(float));
    assert_memory_equal(a.teacher, b.teacher, STEPS * f.P * sizeof(float));
    const double *lref = f.loss.data;
    for (int s = 0; s < STEPS; s++) {
        printf("drop path step %d: loss %.9f (micro-batch 4: %.9f, no drop path: %.9f)\n", s, a.loss[s], c.loss[s],
               lref[s]);
        assert_true(a.loss[s] == b.loss[s]);
        assert_true(fabs(a.loss[s] - c.loss[s]) <= LOSS_RTOL * fabs(a.loss[s]));
    }
    assert_true(fabs(a.loss[0] - lref[0]) > 1e-3 * fabs(lref[0]));
    run_free(&a);
    run_free(&b);
    run_free(&c);
    fixture_free(&f);
}

// The loop (pl_trainer_run with DINO's after-step hook) gives the by-hand steps' weights, centers and losses bit for
// bit, so it matches DINO's own steps too.
static void test_trainer_loop(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    Run hand, loop;
    run_alloc(&f, &hand);
    run_alloc(&f, &loop);
    run_steps(&f, 2, 1, &hand);
    run_loop(&f, 2, 2, &loop);
    check_golden(&f, &loop, "pl_trainer_run");
    assert_memory_equal(loop.student, hand.student, STEPS * f.P * sizeof(float));
    assert_memory_equal(loop.teacher, hand.teacher, STEPS * f.P * sizeof(float));
    assert_memory_equal(loop.center, hand.center, sizeof loop.center);
    for (int s = 0; s < STEPS; s++) assert_true(loop.loss[s] == hand.loss[s]);
    run_free(&hand);
    run_free(&loop);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_trainer_loop),
        cmocka_unit_test(test_drop_path),
        cmocka_unit_test(test_arguments),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
