// Unit tests for the optimizer module over a plain tensor table (stages/train/pl_optim.h, pl_optim_create_for), against
// float32 PyTorch driven as facebookresearch/dino's train_one_epoch drives it (tests/fixtures/optim/
// make_optim_fixtures.py): AdamW with a per-step lr and weight decay, DINO's per-tensor clipping and the "last_layer"
// tensors frozen for the first steps; SGD with momentum, global clipping and the same schedule; the teacher EMA bit
// for bit. Also: results independent of the thread count, frozen tensors bit-untouched, per-tensor norms over several
// chunks, the step-count accessors and the argument checks.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_npy.h"
#include "pl_optim.h"
#include "pl_threadpool.h"

// The fixture's table (make_optim_fixtures.py TABLE), laid out in a slab at 16-float aligned offsets (zero padding).
enum { NT = 6, STEPS = 7, FROZEN_STEPS = 3 };
static const struct { const char *name; int ndim; int64_t shape[3]; } table_spec[NT] = {
    {"pos_embed", 3, {1, 3, 4}},
    {"blocks.0.mlp.fc1.weight", 2, {8, 12}},
    {"blocks.0.mlp.fc1.bias", 1, {8}},
    {"head.mlp.0.weight", 2, {6, 8}},
    {"head.last_layer.weight_g", 2, {10, 1}},
    {"head.last_layer.weight_v", 2, {10, 8}},
};

typedef struct Fixture {
    PlTrainTensor t[NT];
    size_t floats, flat;   // slab floats (padded), fixture floats (concatenated)
    PlNpyArray init, grads, lr, wd, frozen;
} Fixture;

static void load(const char *name, PlNpyArray *a) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "tests/fixtures/optim/%s", name);
    pl_test_source_path(rel, path, sizeof path);
    PL_ASSERT_OK(pl_npy_read(path, a));
}

// The table (DINO's groups: no decay for ".bias" and 1-D tensors) and the shared inputs.
static void fixture_load(Fixture *f) {
    memset(f, 0, sizeof *f);
    size_t off = 0, flat = 0;
    for (int i = 0; i < NT; i++) {
        PlTrainTensor *x = &f->t[i];
        snprintf(x->name, sizeof x->name, "%s", table_spec[i].name);
        x->ndim = table_spec[i].ndim;
        x->numel = 1;
        for (int d = 0; d < x->ndim; d++) x->shape[d] = table_spec[i].shape[d], x->numel *= (size_t)x->shape[d];
        size_t len = strlen(x->name);
        x->decay = !(x->ndim == 1 || (len >= 5 && strcmp(x->name + len - 5, ".bias") == 0));
        x->head = strncmp(x->name, "head.", 5) == 0;
        x->offset = off;
        off = (off + x->numel + 15) / 16 * 16;
        flat += x->numel;
    }
    f->floats = off;
    f->flat = flat;
    load("init.npy", &f->init);
    load("grads.npy", &f->grads);
    load("lr.npy", &f->lr);
    load("wd.npy", &f->wd);
    load("frozen.npy", &f->frozen);
    assert_string_equal(f->init.descr, "<f4");
    assert_string_equal(f->lr.descr, "<f8");
    assert_string_equal(f->frozen.descr, "<i8");
    assert_int_equal(pl_npy_count(&f->init), flat);
    assert_int_equal(pl_npy_count(&f->grads), (size_t)STEPS * flat);
}

static void fixture_free(Fixture *f) {
    pl_npy_free(&f->init);
    pl_npy_free(&f->grads);
    pl_npy_free(&f->lr);
    pl_npy_free(&f->wd);
    pl_npy_free(&f->frozen);
}

// flat (concatenated) <-> slab (padded)
static void scatter(const Fixture *f, const float *flat, float *slab) {
    memset(slab, 0, f->floats * sizeof(float));
    for (int i = 0, k = 0; i < NT; k += (int)f->t[i].numel, i++)
        memcpy(slab + f->t[i].offset, flat + k, f->t[i].numel * sizeof(float));
}

// |got - want| <= tol_rel |want| + tol_abs for every element of the table.
static double compare(const Fixture *f, const char *what, int step, const float *slab, const float *want_flat,
                      double tol_rel, double tol_abs) {
    double worst = 0.0;
    for (int i = 0, k = 0; i < NT; k += (int)f->t[i].numel, i++)
        for (size_t j = 0; j < f->t[i].numel; j++) {
            double got = slab[f->t[i].offset + j], want = want_flat[k + j], err = fabs(got - want);
            if (!(err <= tol_rel * fabs(want) + tol_abs))
                fail_msg("%s after step %d: %s[%zu] = %.9g, torch %.9g", what, step, f->t[i].name, j, got, want);
            if (err > worst) worst = err;
        }
    return worst;
}

// Runs the fixture's STEPS steps (per-step lr, weight decay, last_layer frozen as torch had it) on `threads` threads;
// params, grad: slabs (params filled from init.npy). Norms: (STEPS, NT) per-tensor or (STEPS) global.
static PlOptim *run_steps(const Fixture *f, const PlOptimOptions *o, int threads, float *params, float *grad,
                          double *norms) {
    PlThreadPool *pool = NULL;
    PL_ASSERT_OK(pl_threadpool_create(threads, &pool));
    PlOptim *op = NULL;
    PL_ASSERT_OK(pl_optim_create_for(f->t, NT, f->floats, 0, o, &op));
    scatter(f, f->init.data, params);
    const double *lr = f->lr.data, *wd = f->wd.data;
    const int64_t *frozen = f->frozen.data;
    for (int s = 0; s < STEPS; s++) {
        PL_ASSERT_OK(pl_optim_set_weight_decay(op, wd[s]));
        assert_true(pl_optim_weight_decay(op) == wd[s]);
        int matched = 0;
        pl_optim_set_frozen_matching(op, "last_layer", (int)frozen[s], &matched);
        assert_int_equal(matched, 2);
        scatter(f, (const float *)f->grads.data + (size_t)s * f->flat, grad);
        double gnorm = 0.0;
        pl_optim_step(op, params, grad, lr[s], pool, &gnorm);
        if (o->clip_mode == PL_OPTIM_CLIP_PER_TENSOR) {
            const double *tn = pl_optim_tensor_norms(op);
            assert_non_null(tn);
            double sq = 0.0;
            for (int i = 0; i < NT; i++) norms[s * NT + i] = tn[i], sq += tn[i] * tn[i];
            assert_true(fabs(gnorm - sqrt(sq)) <= 1e-12 * gnorm);
        } else {
            assert_null(pl_optim_tensor_norms(op));
            norms[s] = gnorm;
        }
    }
    pl_threadpool_destroy(pool);
    return op;
}

// AdamW + DINO's per-tensor clipping + weight-decay schedule + frozen last layer, against torch; then the same on 3
// threads, bit for bit.
static void test_adamw_dino(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    PlNpyArray want, wm, wv, wn, wsteps;
    load("adamw_params.npy", &want);
    load("adamw_m.npy", &wm);
    load("adamw_v.npy", &wv);
    load("adamw_norms.npy", &wn);
    load("adamw_tsteps.npy", &wsteps);
    PlOptimOptions o;
    pl_optim_options_default(&o);
    o.clip = 0.9;
    o.clip_mode = PL_OPTIM_CLIP_PER_TENSOR;
    float *p = pl_train_alloc_slab(f.floats), *g = pl_train_alloc_slab(f.floats);
    float *p3 = pl_train_alloc_slab(f.floats), *g3 = pl_train_alloc_slab(f.floats);
    double norms[STEPS * NT], norms3[STEPS * NT];
    assert_true(p && g && p3 && g3);
    // step by step against torch: run k steps from the start for every k (the optimizer must match after each)
    PlOptim *op = run_steps(&f, &o, 1, p, g, norms);
    double worst = compare(&f, "AdamW params", STEPS, p, (const float *)want.data + (size_t)(STEPS - 1) * f.flat,
                           2e-6, 1e-6);
    // the moments and torch's per-parameter state['step']: the frozen tensors took STEPS - FROZEN_STEPS steps
    compare(&f, "AdamW exp_avg", STEPS, pl_optim_moment(op, 0), wm.data, 1e-5, 1e-7);
    // exp_avg_sq: 3e-5, not an ulp: pl_optim weights the new gradient by 1.0f - (float)beta2 where torch uses
    // (float)(1 - beta2) (1.3e-5 apart for 0.999); kept so fine-tuning stays as it was (pl_optim.h)
    compare(&f, "AdamW exp_avg_sq", STEPS, pl_optim_moment(op, 1), wv.data, 3e-5, 1e-9);
    for (int i = 0; i < NT; i++) assert_int_equal(pl_optim_tensor_steps(op, i), ((const int64_t *)wsteps.data)[i]);
    assert_int_equal(pl_optim_tensor_steps(op, 4), STEPS - FROZEN_STEPS);
    assert_int_equal(pl_optim_steps_taken(op), STEPS);
    for (int i = 0; i < STEPS * NT; i++)   // DINO's param_norms (torch's float32 norm)
        if (!(fabs(norms[i] - ((const float *)wn.data)[i]) <= 1e-6 * norms[i]))
            fail_msg("norm %d of step %d: %.9g, torch %.9g", i % NT, i / NT, norms[i], ((const float *)wn.data)[i]);
    pl_optim_destroy(op);
    for (int k = 1; k < STEPS; k++) {   // every intermediate step
        PlOptimOptions ok = o;
        PlThreadPool *pool = NULL;
        PL_ASSERT_OK(pl_threadpool_create(1, &pool));
        PL_ASSERT_OK(pl_optim_create_for(f.t, NT, f.floats, 0, &ok, &op));
        scatter(&f, f.init.data, p);
        for (int s = 0; s < k; s++) {
            PL_ASSERT_OK(pl_optim_set_weight_decay(op, ((const double *)f.wd.data)[s]));
            pl_optim_set_frozen_matching(op, "last_layer", (int)((const int64_t *)f.frozen.data)[s], NULL);
            scatter(&f, (const float *)f.grads.data + (size_t)s * f.flat, g);
            pl_optim_step(op, p, g, ((const double *)f.lr.data)[s], pool, NULL);
        }
        double w = compare(&f, "AdamW params", k, p, (const float *)want.data + (size_t)(k - 1) * f.flat, 2e-6, 1e-6);
        if (w > worst) worst = w;
        pl_optim_destroy(op);
        pl_threadpool_destroy(pool);
    }
    // three threads: the same bits
    op = run_steps(&f, &o, 1, p, g, norms);
    PlOptim *op3 = run_steps(&f, &o, 3, p3, g3, norms3);
    assert_memory_equal(p, p3, f.floats * sizeof(float));
    assert_memory_equal(pl_optim_moment(op, 1), pl_optim_moment(op3, 1), f.floats * sizeof(float));
    assert_memory_equal(norms, norms3, sizeof norms);
    print_message("AdamW (DINO: per-tensor clip, wd schedule, frozen last layer) vs float32 torch: worst |diff| %.3g\n",
                  worst);
    pl_optim_destroy(op);
    pl_optim_destroy(op3);
    free(p), free(g), free(p3), free(g3);
    pl_npy_free(&want), pl_npy_free(&wm), pl_npy_free(&wv), pl_npy_free(&wn), pl_npy_free(&wsteps);
    fixture_free(&f);
}

// SGD with momentum, global clipping (clip_grad_norm_ over every tensor, frozen ones included, before the freeze) and
// the weight-decay schedule: the frozen tensors' momentum buffers start at their own first step.
static void test_sgd_global(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    PlNpyArray want, wm, wn;
    load("sgd_params.npy", &want);
    load("sgd_m.npy", &wm);
    load("sgd_norm.npy", &wn);
    PlOptimOptions o;
    pl_optim_options_default(&o);
    o.kind = PL_OPTIM_SGD;
    o.momentum = 0.9;
    o.clip = 2.5;
    float *p = pl_train_alloc_slab(f.floats), *g = pl_train_alloc_slab(f.floats);
    assert_true(p && g);
    double norms[STEPS];
    PlOptim *op = run_steps(&f, &o, 2, p, g, norms);
    double worst = compare(&f, "SGD params", STEPS, p, (const float *)want.data + (size_t)(STEPS - 1) * f.flat,
                           2e-6, 1e-6);
    compare(&f, "SGD momentum_buffer", STEPS, pl_optim_moment(op, 0), wm.data, 1e-5, 1e-7);
    assert_null(pl_optim_moment(op, 1));
    for (int s = 0; s < STEPS; s++)
        if (!(fabs(norms[s] - ((const double *)wn.data)[s]) <= 1e-6 * norms[s]))
            fail_msg("global norm of step %d: %.9g, torch %.9g", s, norms[s], ((const double *)wn.data)[s]);
    for (int i = 0; i < NT; i++)
        assert_int_equal(pl_optim_tensor_steps(op, i),
                         strstr(f.t[i].name, "last_layer") ? STEPS - FROZEN_STEPS : STEPS);
    print_message("SGD (momentum, global clip, wd schedule, frozen last layer) vs float32 torch: worst |diff| %.3g\n",
                  worst);
    pl_optim_destroy(op);
    free(p), free(g);
    pl_npy_free(&want), pl_npy_free(&wm), pl_npy_free(&wn);
    fixture_free(&f);
}

// A frozen tensor's parameters and moments stay bit for bit (weight decay included); its count stays; thawed, its
// first step is a first step (AdamW's bias correction 1 - beta^1), unlike a tensor whose count is set higher.
static void test_frozen_untouched(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    PlOptimOptions o;
    pl_optim_options_default(&o);
    o.weight_decay = 0.3;
    PlOptim *op = NULL;
    PL_ASSERT_OK(pl_optim_create_for(f.t, NT, f.floats, 0, &o, &op));
    float *p = pl_train_alloc_slab(f.floats), *g = pl_train_alloc_slab(f.floats);
    float *before = pl_train_alloc_slab(f.floats);
    assert_true(p && g && before);
    scatter(&f, f.init.data, p);
    PL_ASSERT_OK(pl_optim_set_frozen(op, 1, 1));
    assert_int_equal(pl_optim_frozen(op, 1), 1);
    assert_int_equal(pl_optim_frozen(op, 0), 0);
    memcpy(before, p, f.floats * sizeof(float));
    const PlTrainTensor *x = &f.t[1];
    for (int s = 0; s < 3; s++) {
        scatter(&f, (const float *)f.grads.data + (size_t)s * f.flat, g);
        pl_optim_step(op, p, g, 0.01, NULL, NULL);
        assert_memory_equal(p + x->offset, before + x->offset, x->numel * sizeof(float));
        for (size_t j = 0; j < x->numel; j++)
            assert_true(pl_optim_moment(op, 0)[x->offset + j] == 0.0f && pl_optim_moment(op, 1)[x->offset + j] == 0.0f);
        assert_true(memcmp(p + f.t[0].offset, before + f.t[0].offset, f.t[0].numel * sizeof(float)) != 0);
    }
    assert_int_equal(pl_optim_tensor_steps(op, 1), 0);
    assert_int_equal(pl_optim_tensor_steps(op, 0), 3);
    assert_int_equal(pl_optim_steps_taken(op), 3);
    // thawed: its first AdamW step moves each element by about lr (m / sqrt(v) = sign(g) after one step)
    PL_ASSERT_OK(pl_optim_set_frozen(op, 1, 0));
    PL_ASSERT_OK(pl_optim_set_weight_decay(op, 0.0));
    memcpy(before, p, f.floats * sizeof(float));
    pl_optim_step(op, p, g, 0.01, NULL, NULL);
    for (size_t j = 0; j < x->numel; j++) {
        double d = before[x->offset + j] - p[x->offset + j];
        if (g[x->offset + j] != 0.0f) assert_true(fabs(fabs(d) - 0.01) < 1e-5 && (d > 0) == (g[x->offset + j] > 0));
    }
    assert_int_equal(pl_optim_tensor_steps(op, 1), 1);
    // the accessors: set all, set one
    pl_optim_set_steps_taken(op, 40);
    for (int i = 0; i < NT; i++) assert_int_equal(pl_optim_tensor_steps(op, i), 40);
    PL_ASSERT_OK(pl_optim_set_tensor_steps(op, 5, 7));
    assert_int_equal(pl_optim_tensor_steps(op, 5), 7);
    assert_int_equal(pl_optim_steps_taken(op), 40);
    pl_optim_destroy(op);
    free(p), free(g), free(before);
    fixture_free(&f);
}

// pl_optim_nonfinite: the update itself notices a NaN or an infinity it writes (parameters or moments), for AdamW and
// SGD, and forgets it once a step writes finite values again; a frozen tensor is not looked at.
static void test_nonfinite_flag(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    for (int kind = 0; kind < 2; kind++) {
        PlOptimOptions o;
        pl_optim_options_default(&o);
        if (kind) {
            o.kind = PL_OPTIM_SGD;
            o.momentum = 0.9;
        }
        PlOptim *op = NULL;
        PL_ASSERT_OK(pl_optim_create_for(f.t, NT, f.floats, 0, &o, &op));
        float *p = pl_train_alloc_slab(f.floats), *g = pl_train_alloc_slab(f.floats);
        assert_true(p && g);
        scatter(&f, f.init.data, p);
        scatter(&f, f.grads.data, g);
        pl_optim_step(op, p, g, 0.01, NULL, NULL);
        assert_int_equal(pl_optim_nonfinite(op), 0);
        const PlTrainTensor *x = &f.t[3];
        g[x->offset + 5] = INFINITY;   // AdamW: v = Inf, p = NaN; SGD: p = -Inf
        pl_optim_step(op, p, g, 0.01, NULL, NULL);
        assert_int_equal(pl_optim_nonfinite(op), 1);
        // a frozen tensor is skipped: with the bad element frozen, a finite step clears the flag
        PL_ASSERT_OK(pl_optim_set_frozen(op, 3, 1));
        scatter(&f, f.grads.data, g);
        pl_optim_step(op, p, g, 0.01, NULL, NULL);
        assert_int_equal(pl_optim_nonfinite(op), 0);
        // a NaN gradient in another tensor
        g[f.t[0].offset] = NAN;
        pl_optim_step(op, p, g, 0.01, NULL, NULL);
        assert_int_equal(pl_optim_nonfinite(op), 1);
        pl_optim_destroy(op);
        free(p), free(g);
    }
    fixture_free(&f);
}

// Per-tensor norms of tensors spanning several chunks: the same bits on 1 and 3 threads, close to a plain sum, and the
// clipping coefficient as torch's float32 arithmetic has it.
static void test_tensor_norms_chunks(void **state) {
    (void)state;
    PlTrainTensor t[3];
    memset(t, 0, sizeof t);
    size_t numel[3] = {150001, 7, 65536}, off = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(t[i].name, sizeof t[i].name, "t%d.weight", i);
        t[i].ndim = 1, t[i].shape[0] = (int64_t)numel[i], t[i].numel = numel[i], t[i].offset = off;
        off = (off + numel[i] + 15) / 16 * 16;
    }
    float *g0 = pl_train_alloc_slab(off), *g1 = pl_train_alloc_slab(off), *g2 = pl_train_alloc_slab(off);
    float *p1 = pl_train_alloc_slab(off), *p2 = pl_train_alloc_slab(off);
    assert_true(g0 && g1 && g2 && p1 && p2);
    uint64_t r = 12345;
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < numel[i]; j++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            g0[t[i].offset + j] = (float)((double)(r >> 11) / 9007199254740992.0 - 0.5) * (i == 1 ? 0.01f : 1.0f);
        }
    memcpy(g1, g0, off * sizeof(float));
    memcpy(g2, g0, off * sizeof(float));
    PlOptimOptions o;
    pl_optim_options_default(&o);
    o.kind = PL_OPTIM_SGD;
    o.momentum = 0.0;
    o.weight_decay = 0.0;
    o.clip = 1.0;
    o.clip_mode = PL_OPTIM_CLIP_PER_TENSOR;
    PlOptim *a = NULL, *b = NULL;
    PlThreadPool *pool = NULL;
    PL_ASSERT_OK(pl_threadpool_create(3, &pool));
    PL_ASSERT_OK(pl_optim_create_for(t, 3, off, 0, &o, &a));
    PL_ASSERT_OK(pl_optim_create_for(t, 3, off, 0, &o, &b));
    assert_true(pl_optim_bytes(a) == pl_optim_bytes_for_table(t, 3, off, &o));
    double na = 0.0, nb = 0.0;
    pl_optim_step(a, p1, g1, 0.5, NULL, &na);
    pl_optim_step(b, p2, g2, 0.5, pool, &nb);
    assert_memory_equal(pl_optim_tensor_norms(a), pl_optim_tensor_norms(b), 3 * sizeof(double));
    assert_memory_equal(p1, p2, off * sizeof(float));
    assert_true(na == nb);
    for (int i = 0; i < 3; i++) {
        double s = 0.0;
        for (size_t j = 0; j < numel[i]; j++) s += (double)g0[t[i].offset + j] * g0[t[i].offset + j];
        double norm = pl_optim_tensor_norms(a)[i];
        assert_true(fabs(norm - sqrt(s)) <= 1e-12 * sqrt(s));
        float coef = 1.0f / ((float)norm + 1e-6f);   // clip / (param_norm + 1e-6) on float32 tensors
        for (size_t j = 0; j < numel[i]; j += 997) {
            float want = coef < 1.0f ? g0[t[i].offset + j] * coef : g0[t[i].offset + j];
            assert_true(g1[t[i].offset + j] == want);             // the gradient clipped in place
            assert_true(p1[t[i].offset + j] == -0.5f * want);      // plain SGD from 0
        }
    }
    assert_true(pl_optim_tensor_norms(a)[1] < 1.0 && pl_optim_tensor_norms(a)[0] > 1.0);   // one unclipped
    pl_optim_destroy(a);
    pl_optim_destroy(b);
    pl_threadpool_destroy(pool);
    free(g0), free(g1), free(g2), free(p1), free(p2);
}

// DINO's teacher EMA: bit for bit as torch computes it in float32, and the same bits on any thread count.
static void test_ema(void **state) {
    (void)state;
    PlNpyArray t0, st, ms, want;
    load("ema_teacher0.npy", &t0);
    load("ema_student.npy", &st);
    load("ema_m.npy", &ms);
    load("ema_teacher.npy", &want);
    size_t n = pl_npy_count(&t0);
    float *k = pl_malloc(n * sizeof(float));
    assert_non_null(k);
    memcpy(k, t0.data, n * sizeof(float));
    for (int s = 0; s < 3; s++) {
        pl_optim_ema(k, (const float *)st.data + (size_t)s * n, n, ((const double *)ms.data)[s], NULL);
        assert_memory_equal(k, (const float *)want.data + (size_t)s * n, n * sizeof(float));
    }
    free(k);
    // many blocks: 1 vs 3 threads, and the float32 formula element by element
    size_t big = 3 * 65536 + 123;
    float *a = pl_malloc(big * sizeof(float)), *b = pl_malloc(big * sizeof(float)), *q = pl_malloc(big * sizeof(float));
    assert_true(a && b && q);
    for (size_t i = 0; i < big; i++) a[i] = b[i] = (float)sin((double)i), q[i] = (float)cos((double)i * 0.7);
    PlThreadPool *pool = NULL;
    PL_ASSERT_OK(pl_threadpool_create(3, &pool));
    double m = 0.9993;
    pl_optim_ema(a, q, big, m, NULL);
    pl_optim_ema(b, q, big, m, pool);
    assert_memory_equal(a, b, big * sizeof(float));
    for (size_t i = 0; i < big; i += 101) {
        float x = (float)sin((double)i) * (float)m, y = q[i] * (float)(1.0 - m);
        assert_true(a[i] == x + y);
    }
    pl_threadpool_destroy(pool);
    free(a), free(b), free(q);
    pl_npy_free(&t0), pl_npy_free(&st), pl_npy_free(&ms), pl_npy_free(&want);
}

// Bad arguments are refused with PL_ERR_ARG.
static void test_arguments(void **state) {
    (void)state;
    Fixture f;
    fixture_load(&f);
    PlOptimOptions o;
    pl_optim_options_default(&o);
    PlOptim *op = NULL;
    assert_int_equal(pl_optim_create_for(f.t, NT, f.t[5].offset + 3, 0, &o, &op), PL_ERR_ARG);   // slab too short
    assert_null(op);
    assert_int_equal(pl_optim_create_for(f.t, 0, f.floats, 0, &o, &op), PL_ERR_ARG);
    PlTrainTensor t2[NT];
    memcpy(t2, f.t, sizeof t2);
    t2[3].layer = 2;
    assert_int_equal(pl_optim_create_for(t2, NT, f.floats, 1, &o, &op), PL_ERR_ARG);   // layer over the highest
    o.clip_mode = (PlOptimClip)7;
    assert_int_equal(pl_optim_create_for(f.t, NT, f.floats, 0, &o, &op), PL_ERR_ARG);
    o.clip_mode = PL_OPTIM_CLIP_GLOBAL;
    PL_ASSERT_OK(pl_optim_create_for(f.t, NT, f.floats, 0, &o, &op));
    assert_int_equal(pl_optim_set_weight_decay(op, -0.1), PL_ERR_ARG);
    assert_int_equal(pl_optim_set_weight_decay(op, NAN), PL_ERR_ARG);
    assert_true(pl_optim_weight_decay(op) == 0.04);
    assert_int_equal(pl_optim_set_frozen(op, NT, 1), PL_ERR_ARG);
    assert_int_equal(pl_optim_set_frozen(op, -1, 1), PL_ERR_ARG);
    assert_int_equal(pl_optim_set_tensor_steps(op, 0, -1), PL_ERR_ARG);
    int matched = -1;
    pl_optim_set_frozen_matching(op, "no such", 1, &matched);
    assert_int_equal(matched, 0);
    assert_int_equal(pl_optim_tensor_count(op), NT);
    assert_true(pl_optim_bytes(op) == pl_optim_bytes_for_table(f.t, NT, f.floats, &o));
    pl_optim_destroy(op);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_dino),       cmocka_unit_test(test_sgd_global),
        cmocka_unit_test(test_frozen_untouched), cmocka_unit_test(test_tensor_norms_chunks),
        cmocka_unit_test(test_ema),              cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_nonfinite_flag),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
