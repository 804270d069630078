// Unit tests for the model (pl_vit_train.h) carrying DINO's projection head (PL_HEAD_DINO) on a tiny backbone:
// pl_vit_train_forward equals the backbone forward then pl_head_forward by hand (bit-identical), its backward from a
// given d(output) equals the module-level backwards (the whole gradient slab), the derived W refreshes on
// pl_vit_train_sync after the parameters change (and a stale forward is refused), pl_vit_train_copy_params gives
// bit-identical outputs and refuses another layout, export/load under DINOHead's names round-trips, 1 worker and 2
// concurrent workers give bit-identical outputs and gradients, the memory report counts the derived buffer, and in
// BF16 (where the CPU has AVX512-BF16) the model stays close to FP32 and bit-identical across workers. Cases:
// nlayers 3 with norm_last_layer, nlayers 1 without (weight_g trained).
#include "pl_testutil.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_train_head.h"
#include "pl_vit_train.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float urand(void) {   // uniform in [-1, 1)
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(rng >> 40) / 8388608.0 - 1.0);
}
static float *rand_buf(size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = scale * urand();
    return x;
}

static const PlVitConfig CFG = {.in_chans = 3, .patch = 8, .dim = 16, .depth = 2, .heads = 2, .mlp_hidden = 32,
                                .pos_grid = 4, .ln_eps = 1e-6f};
enum { HW = 32, MB = 3, OUT = 50, HIDDEN = 20, BOTTLENECK = 8 };
static const uint64_t KEYS[2][MB] = {{101, 102, 103}, {201, 202, 203}};

static PlVitTrainSpec dino_spec(int nlayers, int norm, int workers, PlPrecision precision) {
    PlVitTrainSpec sp = {.cfg = CFG, .classes = OUT, .height = HW, .width = HW, .micro_batch = MB, .workers = workers,
                         .drop_path = 0.2f, .precision = precision};
    sp.head = pl_vit_train_head_dino();
    sp.head.hidden_dim = HIDDEN, sp.head.bottleneck_dim = BOTTLENECK, sp.head.nlayers = nlayers;
    sp.head.norm_last_layer = norm;
    return sp;
}

static int head_first(const PlVitTrain *t) {
    int nt;
    const PlTrainTensor *tab = pl_vit_train_tensors(t, &nt);
    for (int i = 0; i < nt; i++)
        if (tab[i].head) return i;
    fail_msg("no head tensor");
    return -1;
}

// A DINO model with random backbone parameters (LayerNorm weights around 1) and DINOHead's init (from load) plus
// noise on every head tensor, refreshed by pl_vit_train_sync.
static PlVitTrain *model_create(const PlVitTrainSpec *sp, const PlKernels *k) {
    PlVitTrain *t = NULL;
    PL_ASSERT_OK(pl_vit_train_create(sp, k, &t));
    int nt;
    const PlTrainTensor *tab = pl_vit_train_tensors(t, &nt);
    float *p = pl_vit_train_params(t);
    for (int i = 0; i < nt; i++) {
        if (tab[i].head) continue;
        int ln = strstr(tab[i].name, "norm") && strstr(tab[i].name, ".weight");
        for (size_t j = 0; j < tab[i].numel; j++) p[tab[i].offset + j] = (ln ? 1.0f : 0.0f) + 0.3f * urand();
    }
    PlWeights w;
    PL_ASSERT_OK(pl_vit_train_export(t, 0, &w));
    PL_ASSERT_OK(pl_vit_train_load(t, &w, NULL, 7));   // DINOHead's init, W refreshed
    pl_weights_free(&w);
    p = pl_vit_train_params(t);
    for (int i = head_first(t); i < nt; i++) {
        if (strstr(tab[i].name, "weight_g")) {   // g != 1 when it trains
            for (size_t j = 0; j < tab[i].numel; j++)
                p[tab[i].offset + j] = sp->head.norm_last_layer ? 1.0f : 1.0f + 0.5f * urand();
            continue;
        }
        for (size_t j = 0; j < tab[i].numel; j++) p[tab[i].offset + j] += 0.1f * urand();
    }
    pl_vit_train_sync(t);
    return t;
}

// The DINO head by hand on features feat (n, dim) from a copy of t's parameters: its own derived W, activations and
// an FP32 GEMM; out (n, OUT), and with dout the head's gradients into grad (param floats layout) and *dinp.
typedef struct {
    PlHeadSpec s;
    PlHeadParams p, g;
    PlHeadActs a;
    float *params, *derived, *acts;
    PlTrainGemm gemm;
} HandHead;

static void hand_create(HandHead *h, PlVitTrain *t, float *grad) {
    memset(h, 0, sizeof *h);
    h->s = *pl_vit_train_head_spec(t);
    int nt;
    const PlTrainTensor *tab = pl_vit_train_tensors(t, &nt);
    const size_t pf = pl_vit_train_param_floats(t);
    h->params = malloc(pf * sizeof(float));
    assert_non_null(h->params);
    memcpy(h->params, pl_vit_train_params(t), pf * sizeof(float));
    pl_vit_train_sync(t);
    h->derived = pl_train_alloc_slab(pl_head_derived_floats(&h->s));
    h->acts = pl_train_alloc_slab(pl_head_acts_carve(NULL, &h->s, NULL));
    assert_non_null(h->derived), assert_non_null(h->acts);
    const int first = head_first(t);
    pl_head_point(&h->p, &h->s, tab + first, h->params);
    pl_head_derived_point(&h->p, &h->s, h->derived);
    pl_head_weight_norm(&h->s, &h->p);
    if (grad) pl_head_point(&h->g, &h->s, tab + first, grad);
    pl_head_acts_carve(&h->a, &h->s, h->acts);
    h->gemm = (PlTrainGemm){.k = pl_kernels_default(), .precision = PL_PRECISION_FP32};
}

static void hand_free(HandHead *h) { free(h->params), free(h->derived), free(h->acts); }

static void test_forward_backward(void **state) {
    (void)state;
    const int cases[2][2] = {{3, 1}, {1, 0}};
    for (int c = 0; c < 2; c++) {
        PlVitTrainSpec sp = dino_spec(cases[c][0], cases[c][1], 2, PL_PRECISION_FP32);
        PlVitTrain *t = model_create(&sp, NULL);
        const size_t pf = pl_vit_train_param_floats(t), nout = (size_t)MB * OUT, nx = (size_t)MB * 3 * HW * HW;
        float *x = rand_buf(nx, 1.0f), *dout = rand_buf(nout, 1.0f);
        // forward: the model vs the backbone (worker 1) then the head by hand
        const float *out, *feat;
        float *dlogits, *ga = calloc(pf, sizeof(float)), *gb = calloc(pf, sizeof(float));
        assert_non_null(ga), assert_non_null(gb);
        PL_ASSERT_OK(pl_vit_train_forward(t, 0, x, MB, KEYS[0], &out, &dlogits));
        PL_ASSERT_OK(pl_vit_train_backbone_forward(t, 1, 0, x, MB, HW, HW, KEYS[0], &feat));
        HandHead h;
        hand_create(&h, t, gb);
        pl_head_forward(&h.s, &h.p, &h.a, &h.gemm, feat, MB);
        assert_memory_equal(out, h.a.out, nout * sizeof(float));
        int finite = 1;
        for (size_t i = 0; i < nout; i++) finite &= isfinite(out[i]) != 0;
        assert_true(finite);
        // backward from dout: the model's gradient slab vs the head's backward then the backbone's
        memcpy(dlogits, dout, nout * sizeof(float));
        int nt;
        const PlTrainTensor *tab = pl_vit_train_tensors(t, &nt);
        for (int i = 0; i < nt; i++)   // every tensor's gradient is overwritten (the padding stays 0)
            for (size_t j = 0; j < tab[i].numel; j++) ga[tab[i].offset + j] = 9.0f;
        PL_ASSERT_OK(pl_vit_train_backward(t, 0, ga));
        pl_head_backward(&h.s, &h.p, &h.g, &h.a, &h.gemm, dout, feat, MB);
        PL_ASSERT_OK(pl_vit_train_backbone_backward(t, 1, 0, h.a.dinp, gb, 0));
        assert_memory_equal(ga, gb, pf * sizeof(float));
        const PlTrainTensor *g = &tab[nt - 2], *v = &tab[nt - 1];
        assert_string_equal(g->name, "head.last_layer.weight_g");
        assert_string_equal(v->name, "head.last_layer.weight_v");
        double gsum = 0.0, vsum = 0.0;
        for (size_t j = 0; j < g->numel; j++) gsum += fabs(ga[g->offset + j]);
        for (size_t j = 0; j < v->numel; j++) vsum += fabs(ga[v->offset + j]);
        assert_true(vsum > 0.0);
        assert_true(sp.head.norm_last_layer ? gsum == 0.0 : gsum > 0.0);   // frozen weight_g: no gradient
        print_message("nlayers %d norm_last_layer %d: forward and gradient slab (%zu floats) = modules by hand\n",
                      cases[c][0], cases[c][1], pf);
        hand_free(&h);
        free(x), free(dout), free(ga), free(gb);
        pl_vit_train_destroy(t);
    }
}

// W follows the parameters: a stale forward is refused, sync refreshes it, the output is the head by hand on the new
// weight_v; scaling a row of v leaves W (weight norm) and that output column unchanged.
static void test_refresh(void **state) {
    (void)state;
    PlVitTrainSpec sp = dino_spec(3, 1, 1, PL_PRECISION_FP32);
    PlVitTrain *t = NULL;
    PL_ASSERT_OK(pl_vit_train_create(&sp, NULL, &t));
    float *x = rand_buf((size_t)MB * 3 * HW * HW, 1.0f);
    const float *out, *feat;
    assert_int_not_equal(pl_vit_train_forward(t, 0, x, MB, NULL, &out, NULL), PL_OK);   // never loaded: stale
    pl_vit_train_destroy(t);
    t = model_create(&sp, NULL);
    const size_t nout = (size_t)MB * OUT;
    float *before = malloc(nout * sizeof(float)), *feats = malloc((size_t)MB * CFG.dim * sizeof(float));
    PL_ASSERT_OK(pl_vit_train_forward(t, 0, x, MB, NULL, &out, NULL));
    memcpy(before, out, nout * sizeof(float));
    PL_ASSERT_OK(pl_vit_train_backbone_forward(t, 0, 0, x, MB, HW, HW, NULL, &feat));
    memcpy(feats, feat, (size_t)MB * CFG.dim * sizeof(float));

    int nt;
    const PlTrainTensor *tab = pl_vit_train_tensors(t, &nt);
    const PlTrainTensor *v = &tab[nt - 1];
    float *p = pl_vit_train_params(t);   // stale from here
    for (size_t j = 0; j < v->numel; j++) p[v->offset + j] += 0.3f * urand();
    assert_int_not_equal(pl_vit_train_forward(t, 0, x, MB, NULL, &out, NULL), PL_OK);
    pl_vit_train_sync(t);
    PL_ASSERT_OK(pl_vit_train_forward(t, 0, x, MB, NULL, &out, NULL));
    HandHead h;
    hand_create(&h, t, NULL);
    pl_head_forward(&h.s, &h.p, &h.a, &h.gemm, feats, MB);
    assert_memory_equal(out, h.a.out, nout * sizeof(float));
    assert_memory_not_equal(out, before, nout * sizeof(float));
    memcpy(before, out, nout * sizeof(float));
    // v's row 3 times 4: the same W row within rounding, so the same output column
    p = pl_vit_train_params(t);
    for (int j = 0; j < BOTTLENECK; j++) p[v->offset + 3 * BOTTLENECK + j] *= 4.0f;
    pl_vit_train_sync(t);
    PL_ASSERT_OK(pl_vit_train_forward(t, 0, x, MB, NULL, &out, NULL));
    for (int b = 0; b < MB; b++)
        for (int j = 0; j < OUT; j++) {
            const float o = out[b * OUT + j], r = before[b * OUT + j];
            if (j != 3) assert_true(o == r);
            else if (!(fabsf(o - r) <= 1e-6f * fmaxf(1.0f, fabsf(r)))) fail_msg("row 3: %g vs %g", (double)o, (double)r);
        }
    print_message("W refreshed by sync; stale forwards refused; weight norm invariant to a row's scale\n");
    hand_free(&h);
    free(x), free(before), free(feats);
    pl_vit_train_destroy(t);
}

// The teacher: a copy of the student (other workers, another view group) gives bit-identical outputs; the export
// under DINOHead's names loads back into a third model with the same outputs; another layout is refused.
static void test_copy_export(void **state) {
    (void)state;
    PlVitTrainSpec sp = dino_spec(3, 1, 2, PL_PRECISION_FP32);
    PlVitTrain *s = model_create(&sp, NULL), *te = NULL, *u = NULL, *lin = NULL;
    PlVitTrainSpec tsp = dino_spec(3, 1, 1, PL_PRECISION_FP32);
    tsp.ngroups = 2, tsp.groups[1] = (PlViewGroup){16, 16, 5};
    PL_ASSERT_OK(pl_vit_train_create(&tsp, NULL, &te));
    PL_ASSERT_OK(pl_vit_train_copy_params(te, s));
    const size_t nout = (size_t)MB * OUT;
    float *x = rand_buf((size_t)MB * 3 * HW * HW, 1.0f), *ref = malloc(nout * sizeof(float));
    const float *out;
    PL_ASSERT_OK(pl_vit_train_forward(s, 1, x, MB, NULL, &out, NULL));
    memcpy(ref, out, nout * sizeof(float));
    PL_ASSERT_OK(pl_vit_train_forward(te, 0, x, MB, NULL, &out, NULL));
    assert_memory_equal(out, ref, nout * sizeof(float));
    // EMA works on the two slabs: same length, same layout
    assert_int_equal(pl_vit_train_param_floats(te), pl_vit_train_param_floats(s));

    // export: DINOHead's state-dict names, then load into a fresh model
    PlWeights bb, hd;
    PL_ASSERT_OK(pl_vit_train_export(s, 0, &bb));
    PL_ASSERT_OK(pl_vit_train_export(s, 1, &hd));
    const char *names[] = {"mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias", "mlp.4.weight", "mlp.4.bias",
                           "last_layer.weight_g", "last_layer.weight_v"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) assert_non_null(pl_weights_find(&hd, names[i]));
    const PlWeightTensor *wv = pl_weights_find(&hd, "last_layer.weight_v");
    const PlWeightTensor *wg = pl_weights_find(&hd, "last_layer.weight_g");
    assert_int_equal(wv->shape[0], OUT), assert_int_equal(wv->shape[1], BOTTLENECK);
    assert_int_equal(wg->shape[0], OUT), assert_int_equal(wg->shape[1], 1);
    PL_ASSERT_OK(pl_vit_train_create(&sp, NULL, &u));
    PL_ASSERT_OK(pl_vit_train_load(u, &bb, &hd, 99));
    PL_ASSERT_OK(pl_vit_train_forward(u, 0, x, MB, NULL, &out, NULL));
    assert_memory_equal(out, ref, nout * sizeof(float));

    // another layout (the linear head; a DINO head of other sizes): refused, the destination untouched
    PlVitTrainSpec lsp = sp;
    lsp.head = (PlVitTrainHead){.kind = PL_HEAD_LINEAR};
    PL_ASSERT_OK(pl_vit_train_create(&lsp, NULL, &lin));
    assert_int_not_equal(pl_vit_train_copy_params(lin, s), PL_OK);
    print_message("copy refused: %s\n", pl_error_message());
    assert_int_not_equal(pl_vit_train_copy_params(s, lin), PL_OK);
    PlVitTrain *other = NULL;
    PlVitTrainSpec osp = dino_spec(3, 1, 1, PL_PRECISION_FP32);
    osp.head.bottleneck_dim = BOTTLENECK + 1;
    PL_ASSERT_OK(pl_vit_train_create(&osp, NULL, &other));
    assert_int_not_equal(pl_vit_train_copy_params(other, s), PL_OK);
    print_message("copy refused: %s\n", pl_error_message());
    PL_ASSERT_OK(pl_vit_train_forward(s, 0, x, MB, NULL, &out, NULL));
    assert_memory_equal(out, ref, nout * sizeof(float));
    pl_vit_train_destroy(other);
    pl_weights_free(&bb), pl_weights_free(&hd);
    free(x), free(ref);
    pl_vit_train_destroy(s), pl_vit_train_destroy(te), pl_vit_train_destroy(u), pl_vit_train_destroy(lin);
}

// ---- workers ----

typedef struct {
    PlVitTrain *t;
    int worker;
    const float *x, *dout;
    const uint64_t *keys;
    float *out, *grad;
    PlStatus st;
} Job;

static PlStatus job_run(Job *j) {
    const float *out;
    float *dl;
    const size_t nout = (size_t)MB * OUT;
    PL_TRY(pl_vit_train_forward(j->t, j->worker, j->x, MB, j->keys, &out, &dl));
    memcpy(j->out, out, nout * sizeof(float));
    memcpy(dl, j->dout, nout * sizeof(float));
    return pl_vit_train_backward(j->t, j->worker, j->grad);
}
static void *job_thread(void *arg) {
    Job *j = arg;
    j->st = job_run(j);
    return NULL;
}

// Two micro-batches on a 2-worker model, concurrently on two threads, vs one after the other on a 1-worker copy:
// bit-identical outputs and gradients.
static void check_workers(PlVitTrain *two, PlVitTrain *one) {
    const size_t pf = pl_vit_train_param_floats(two), nout = (size_t)MB * OUT, nx = (size_t)MB * 3 * HW * HW;
    float *x[2] = {rand_buf(nx, 1.0f), rand_buf(nx, 1.0f)}, *d[2] = {rand_buf(nout, 1.0f), rand_buf(nout, 1.0f)};
    Job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (Job){.t = i < 2 ? two : one, .worker = i < 2 ? i : 0, .x = x[i % 2], .dout = d[i % 2],
                        .keys = KEYS[i % 2], .out = malloc(nout * sizeof(float)), .grad = calloc(pf, sizeof(float))};
        assert_non_null(jobs[i].out), assert_non_null(jobs[i].grad);
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, job_thread, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 2; i < 4; i++) jobs[i].st = job_run(&jobs[i]);
    for (int i = 0; i < 4; i++) PL_ASSERT_OK(jobs[i].st);
    for (int i = 0; i < 2; i++) {
        assert_memory_equal(jobs[i].out, jobs[i + 2].out, nout * sizeof(float));
        assert_memory_equal(jobs[i].grad, jobs[i + 2].grad, pf * sizeof(float));
    }
    for (int i = 0; i < 4; i++) free(jobs[i].out), free(jobs[i].grad);
    free(x[0]), free(x[1]), free(d[0]), free(d[1]);
}

static void test_workers(void **state) {
    (void)state;
    PlVitTrainSpec sp2 = dino_spec(3, 0, 2, PL_PRECISION_FP32), sp1 = dino_spec(3, 0, 1, PL_PRECISION_FP32);
    PlVitTrain *two = model_create(&sp2, NULL), *one = NULL;
    PL_ASSERT_OK(pl_vit_train_create(&sp1, NULL, &one));
    PL_ASSERT_OK(pl_vit_train_copy_params(one, two));
    check_workers(two, one);
    // the memory report: the derived buffer with the parameters, activations as documented per worker
    double params, bf16, acts;
    pl_vit_train_bytes(two, &params, &bf16, &acts);
    const PlHeadSpec *hs = pl_vit_train_head_spec(two);
    assert_true(pl_head_derived_floats(hs) >= (size_t)OUT * BOTTLENECK + OUT);
    assert_true(params == (double)(pl_vit_train_param_floats(two) + pl_head_derived_floats(hs)) * sizeof(float));
    assert_true(bf16 == 0.0);
    assert_true(acts == 2.0 * pl_vit_train_activation_bytes(&sp2));
    assert_true(pl_vit_train_activation_bytes(&sp2) >= 2.0 * MB * OUT * sizeof(float));   // output and d(output)
    print_message("2 concurrent workers = 1 worker (outputs and gradients); memory report counts W\n");
    pl_vit_train_destroy(two), pl_vit_train_destroy(one);
}

// BF16: the model reads W's resident BF16 copy; outputs close to the FP32 model's, workers bit-identical.
static void test_bf16(void **state) {
    (void)state;
    const PlKernels *k = pl_test_bf16_kernels("DINO head model in BF16");
    if (!k) skip();
    PlVitTrainSpec s32 = dino_spec(3, 1, 1, PL_PRECISION_FP32), s2 = dino_spec(3, 1, 2, PL_PRECISION_BF16);
    PlVitTrainSpec s1 = dino_spec(3, 1, 1, PL_PRECISION_BF16);
    PlVitTrain *f = model_create(&s32, NULL), *two = NULL, *one = NULL;
    PL_ASSERT_OK(pl_vit_train_create(&s2, k, &two));
    PL_ASSERT_OK(pl_vit_train_create(&s1, k, &one));
    PL_ASSERT_OK(pl_vit_train_copy_params(two, f));
    PL_ASSERT_OK(pl_vit_train_copy_params(one, f));
    double params, bf16, acts;
    pl_vit_train_bytes(two, &params, &bf16, &acts);
    assert_true(bf16 == params / 2.0);   // the parameters and W, rounded
    const size_t nout = (size_t)MB * OUT;
    float *x = rand_buf((size_t)MB * 3 * HW * HW, 1.0f), *ref = malloc(nout * sizeof(float));
    const float *out;
    PL_ASSERT_OK(pl_vit_train_forward(f, 0, x, MB, NULL, &out, NULL));
    memcpy(ref, out, nout * sizeof(float));
    PL_ASSERT_OK(pl_vit_train_forward(two, 1, x, MB, NULL, &out, NULL));
    double m = 0.0, e = 0.0;
    for (size_t i = 0; i < nout; i++) m = fmax(m, fabs(ref[i])), e = fmax(e, fabs((double)out[i] - ref[i]));
    print_message("BF16 vs FP32 output: max |diff| %.3g of max |out| %.3g\n", e, m);
    assert_true(e <= 3e-2 * m);
    check_workers(two, one);
    free(x), free(ref);
    pl_vit_train_destroy(f), pl_vit_train_destroy(two), pl_vit_train_destroy(one);
}

// The spec's head description: the linear head by default, DINO's defaults from pl_vit_train_head_dino, bad DINO
// sizes refused at create.
static void test_spec(void **state) {
    (void)state;
    PlVitTrainHead d = pl_vit_train_head_dino();
    assert_int_equal(d.kind, PL_HEAD_DINO);
    assert_int_equal(d.hidden_dim, 2048), assert_int_equal(d.bottleneck_dim, 256), assert_int_equal(d.nlayers, 3);
    assert_int_equal(d.norm_last_layer, 1);
    PlVitTrainSpec sp = {.cfg = CFG, .classes = 4, .height = HW, .width = HW, .micro_batch = 2, .workers = 1};
    PlVitTrain *t = NULL;
    PL_ASSERT_OK(pl_vit_train_create(&sp, NULL, &t));
    assert_int_equal(pl_vit_train_head_spec(t)->kind, PL_HEAD_LINEAR);
    int nt;
    const PlTrainTensor *tab = pl_vit_train_tensors(t, &nt);
    assert_string_equal(tab[nt - 1].name, "head.bias");
    pl_vit_train_destroy(t);
    sp = dino_spec(3, 1, 1, PL_PRECISION_FP32);
    sp.head.nlayers = PL_HEAD_DINO_MAX_LAYERS + 1;
    assert_int_not_equal(pl_vit_train_create(&sp, NULL, &t), PL_OK);
    sp = dino_spec(3, 1, 1, PL_PRECISION_FP32);
    sp.head.bottleneck_dim = 0;
    assert_int_not_equal(pl_vit_train_create(&sp, NULL, &t), PL_OK);
    sp = dino_spec(3, 2, 1, PL_PRECISION_FP32);
    assert_int_not_equal(pl_vit_train_create(&sp, NULL, &t), PL_OK);
    assert_null(t);
}

int main(void) {
    openblas_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_backward), cmocka_unit_test(test_refresh), cmocka_unit_test(test_copy_export),
        cmocka_unit_test(test_workers),          cmocka_unit_test(test_bf16),    cmocka_unit_test(test_spec),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
