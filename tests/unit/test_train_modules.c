// Unit tests for the training modules: the ViT backbone's view groups (pl_vit_backbone.h through pl_vit_train.h:
// features at each size equal the inference ViT's CLS output, two held groups' summed gradient equals two separate
// backwards) and the heads (pl_train_head.h: backward against central finite differences for the linear and the MLP
// head with dropout; pooled GEMMs bit-identical for any pool size).
#include "pl_testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_threadpool.h"
#include "pl_train_head.h"
#include "pl_vit.h"
#include "pl_vit_train.h"

static uint64_t rng = 0x2545f4914f6cdd1dULL;   // the test data stream (pl_test_urand)
static float urand(void) { return pl_test_urand(&rng); }
static float *rand_buf(size_t n, float scale) { return pl_test_rand_buf(&rng, n, scale); }
static double dotd(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
// max |a - b| / max(1, max |b|)
static double scaled_diff(const float *a, const float *b, size_t n) {
    double m = 1.0, d = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e;
    }
    return d / m;
}

// ---- backbone: two view groups ----

static const PlVitConfig CFG = {.in_chans = 3, .patch = 8, .dim = 16, .depth = 2, .heads = 2, .mlp_hidden = 32,
                                .pos_grid = 4, .ln_eps = 1e-6f};

// The inference ViT's features (n, D) of x at height x width with the trainer's backbone weights w.
static void vit_features(const PlWeights *w, const float *x, int n, int height, int width, float *out) {
    PlVitOptions o = {.max_batch = n, .height = height, .width = width};
    PlVit *vit = NULL;
    assert_int_equal(pl_vit_create(w, &CFG, &o, &vit), PL_OK);
    assert_int_equal(pl_vit_output_dim(vit), CFG.dim);
    assert_int_equal(pl_vit_tokens(vit), pl_vit_config_tokens(&CFG, height, width, NULL, NULL));
    assert_int_equal(pl_vit_forward(vit, x, n, out), PL_OK);
    pl_vit_destroy(vit);
}

static void test_backbone_groups(void **state) {
    (void)state;
    const int D = CFG.dim, n0 = 2, n1 = 3;
    PlVitTrainSpec sp = {.cfg = CFG, .classes = 3, .height = 32, .width = 32, .micro_batch = n0, .workers = 1,
                         .drop_path = 0.2f, .ngroups = 2};
    sp.groups[1] = (PlViewGroup){16, 16, n1};
    PlVitTrain *t = NULL;
    assert_int_equal(pl_vit_train_create(&sp, NULL, &t), PL_OK);
    int nt;
    const PlTrainTensor *tab = pl_vit_train_tensors(t, &nt);
    float *p = pl_vit_train_params(t);
    for (int i = 0; i < nt; i++) {   // random parameters, LayerNorm weights around 1
        int ln = strstr(tab[i].name, "norm") && strstr(tab[i].name, ".weight");
        for (size_t j = 0; j < tab[i].numel; j++) p[tab[i].offset + j] = (ln ? 1.0f : 0.0f) + 0.3f * urand();
    }
    PlWeights w;
    assert_int_equal(pl_vit_train_export(t, 0, &w), PL_OK);

    float *x0 = rand_buf((size_t)n0 * 3 * 32 * 32, 1.0f), *x1 = rand_buf((size_t)n1 * 3 * 16 * 16, 1.0f);
    float ref[3 * 16];
    const float *f;
    // features at each size (and at a size below group 0's capacity) = the inference ViT's CLS output
    const struct { int group, n, h, w; const float *x; } sizes[] = {{0, n0, 32, 32, x0}, {1, n1, 16, 16, x1},
                                                                    {0, n0, 24, 32, x0}, {1, n1, 16, 8, x1}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        // a smaller input is the leading pixels of each image: crop x to (n, 3, h, w)
        int H = sizes[s].group ? 16 : 32, W = H, h = sizes[s].h, wd = sizes[s].w, n = sizes[s].n;
        float *xc = malloc((size_t)n * 3 * h * wd * sizeof(float));
        for (int b = 0; b < n * 3; b++)
            for (int r = 0; r < h; r++)
                memcpy(xc + ((size_t)b * h + r) * wd, sizes[s].x + ((size_t)b * H + r) * W, (size_t)wd * sizeof(float));
        assert_int_equal(pl_vit_train_backbone_forward(t, 0, sizes[s].group, xc, n, h, wd, NULL, &f), PL_OK);
        vit_features(&w, xc, n, h, wd, ref);
        double e = scaled_diff(f, ref, (size_t)n * D);
        print_message("features %dx%d (group %d) vs inference ViT: %.3g\n", h, wd, sizes[s].group, e);
        if (!(e < 1e-4)) fail_msg("features at %dx%d differ from the inference ViT by %g", h, wd, e);
        free(xc);
    }
    // too many tokens for group 1's activations, too many images: refused
    assert_int_not_equal(pl_vit_train_backbone_forward(t, 0, 1, x0, 1, 32, 32, NULL, &f), PL_OK);
    assert_int_not_equal(pl_vit_train_backbone_forward(t, 0, 1, x1, n1 + 1, 16, 16, NULL, &f), PL_OK);

    // gradients: separately (overwrite), and both forwards held then summed into one slab (accumulate)
    size_t pf = pl_vit_train_param_floats(t);
    float *ga = calloc(pf, sizeof(float)), *gb = calloc(pf, sizeof(float)), *gc = calloc(pf, sizeof(float));
    float *gd = calloc(pf, sizeof(float)), *d0 = rand_buf((size_t)n0 * D, 1.0f), *d1 = rand_buf((size_t)n1 * D, 1.0f);
    const uint64_t k0[2] = {11, 12}, k1[3] = {21, 22, 23};
    assert_int_equal(pl_vit_train_backbone_forward(t, 0, 0, x0, n0, 32, 32, k0, &f), PL_OK);
    assert_int_equal(pl_vit_train_backbone_backward(t, 0, 0, d0, ga, 0), PL_OK);
    assert_int_equal(pl_vit_train_backbone_forward(t, 0, 1, x1, n1, 16, 16, k1, &f), PL_OK);
    assert_int_equal(pl_vit_train_backbone_backward(t, 0, 1, d1, gb, 0), PL_OK);
    assert_int_equal(pl_vit_train_backbone_forward(t, 0, 0, x0, n0, 32, 32, k0, &f), PL_OK);
    assert_int_equal(pl_vit_train_backbone_forward(t, 0, 1, x1, n1, 16, 16, k1, &f), PL_OK);
    for (size_t i = 0; i < pf; i++) gc[i] = gd[i] = 7.0f;   // overwritten by the first backward
    assert_int_equal(pl_vit_train_backbone_backward(t, 0, 1, d1, gc, 0), PL_OK);
    assert_int_equal(pl_vit_train_backbone_backward(t, 0, 0, d0, gc, 1), PL_OK);
    // group 0's backward after group 1's forward was held: bit-identical to its backward alone
    assert_int_equal(pl_vit_train_backbone_backward(t, 0, 0, d0, gd, 0), PL_OK);
    int nb = 0;
    for (int i = 0; i < nt; i++) {
        if (tab[i].head) continue;
        nb++;
        const size_t o = tab[i].offset, m = tab[i].numel;
        assert_memory_equal(gd + o, ga + o, m * sizeof(float));
        float *sum = malloc(m * sizeof(float));
        for (size_t j = 0; j < m; j++) sum[j] = ga[o + j] + gb[o + j];
        double e = scaled_diff(gc + o, sum, m);
        if (!(e < 1e-5)) fail_msg("%s: accumulated gradient differs from the sum of two backwards by %g", tab[i].name, e);
        free(sum);
    }
    assert_int_equal(nb, 4 + 12 * CFG.depth + 2);
    print_message("two view groups: accumulated gradient = sum of separate backwards (%d tensors)\n", nb);
    free(ga), free(gb), free(gc), free(gd), free(d0), free(d1), free(x0), free(x1);
    pl_weights_free(&w);
    pl_vit_train_destroy(t);
}

// ---- heads ----

typedef struct {
    PlHeadSpec s;
    PlTrainTensor tab[PL_HEAD_MAX_TENSORS];
    int nt;
    float *params, *grads, *acts, *inp, *dout;
    PlHeadParams p, g;
    PlHeadActs a;
    PlTrainGemm gemm;
    int n;
} HeadCtx;

static void head_setup(HeadCtx *c, PlHeadKind kind, int n, PlThreadPool *pool) {
    memset(c, 0, sizeof *c);
    c->s = (PlHeadSpec){.kind = kind, .in_dim = 6, .out_dim = 4, .dropout = 0.5f, .max_rows = n};
    assert_int_equal(pl_head_spec_check(&c->s), PL_OK);
    size_t off = 0;
    pl_head_tensors(&c->s, "", 0, c->tab, &c->nt, &off);
    assert_int_equal(c->nt, pl_head_tensor_count(&c->s));
    c->params = pl_train_alloc_slab(off);
    c->grads = pl_train_alloc_slab(off);
    c->acts = pl_train_alloc_slab(pl_head_acts_carve(NULL, &c->s, NULL));
    assert_non_null(c->params), assert_non_null(c->grads), assert_non_null(c->acts);
    pl_head_point(&c->p, &c->s, c->tab, c->params);
    pl_head_point(&c->g, &c->s, c->tab, c->grads);
    pl_head_acts_carve(&c->a, &c->s, c->acts);
    pl_head_init(&c->s, &c->p, 5, 0);
    for (int i = 0; i < c->nt; i++)   // the linear head's bias starts at 0: give every tensor some signal
        for (size_t j = 0; j < c->tab[i].numel; j++) c->params[c->tab[i].offset + j] += 0.2f * urand();
    c->n = n;
    c->inp = rand_buf((size_t)n * c->s.in_dim, 1.5f);
    c->dout = rand_buf((size_t)n * c->s.out_dim, 1.0f);
    c->gemm = (PlTrainGemm){.k = pl_kernels_default(), .precision = PL_PRECISION_FP32, .pool = pool};
    uint64_t *keys = malloc((size_t)n * sizeof *keys);
    assert_non_null(keys);
    for (int b = 0; b < n; b++) keys[b] = 1000u + (uint64_t)b;
    pl_head_set_dropout(&c->s, &c->a, n, keys);
    free(keys);
}

static void head_free(HeadCtx *c) {
    free(c->params), free(c->grads), free(c->acts), free(c->inp), free(c->dout);
}

// The MLP's ReLU pattern (which pre-activations are positive) as a hash: 0 for the linear head.
static uint64_t relu_pattern(const HeadCtx *c) {
    uint64_t h = 0;
    if (c->s.kind != PL_HEAD_MLP) return 0;
    for (int i = 0; i < c->n * PL_HEAD_MLP_H1; i++) h = h * 1099511628211ULL + (c->a.h1[i] > 0.0f);
    for (int i = 0; i < c->n * PL_HEAD_MLP_H2; i++) h = h * 1099511628211ULL + (c->a.h2[i] > 0.0f);
    return h;
}

static double head_loss(HeadCtx *c, uint64_t *pattern) {
    pl_head_forward(&c->s, &c->p, &c->a, &c->gemm, c->inp, c->n);
    if (pattern) *pattern = relu_pattern(c);
    return dotd(c->dout, c->a.out, (size_t)c->n * c->s.out_dim);
}

// Central differences of head_loss in each element of x (n) against ana; a step that moves a ReLU input across 0
// (the loss has a kink there) is skipped, and only a few may be.
static void check_fd(const char *what, HeadCtx *c, float *x, const float *ana, size_t n) {
    const float eps = 1e-3f;
    double amax = 0.0, worst = 0.0;
    size_t skipped = 0;
    uint64_t base, pp, pm;
    head_loss(c, &base);
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs((double)ana[i]));
    const size_t step = n > 4096 ? 37 : 1;   // large tensors: every 37th element
    for (size_t i = 0; i < n; i += step) {
        float x0 = x[i], xp = x0 + eps, xm = x0 - eps;
        x[i] = xp;
        double lp = head_loss(c, &pp);
        x[i] = xm;
        double lm = head_loss(c, &pm);
        x[i] = x0;
        if (pp != base || pm != base) {
            skipped++;
            continue;
        }
        double e = fabs((lp - lm) / ((double)xp - (double)xm) - ana[i]);
        if (!(e <= worst)) worst = e;
    }
    print_message("%-24s n=%4zu max|ana|=%8.3g max|num-ana|=%8.3g (%zu at a ReLU kink)\n", what, n, amax, worst,
                  skipped);
    if (!(worst <= 5e-3 * fmax(1.0, amax))) fail_msg("%s: finite differences disagree", what);
    if (skipped * 20 * step > n) fail_msg("%s: %zu of %zu steps cross a ReLU kink", what, skipped, n);
}

static void test_head_backward(void **state) {
    (void)state;
    for (int kind = PL_HEAD_LINEAR; kind <= PL_HEAD_MLP; kind++) {
        HeadCtx c;
        head_setup(&c, (PlHeadKind)kind, 3, NULL);
        head_loss(&c, NULL);
        for (size_t i = 0; i < (size_t)c.tab[c.nt - 1].offset + c.tab[c.nt - 1].numel; i++) c.grads[i] = 9.0f;
        pl_head_backward(&c.s, &c.p, &c.g, &c.a, &c.gemm, c.dout, c.inp, c.n);
        float *dinp = malloc((size_t)c.n * c.s.in_dim * sizeof(float));
        memcpy(dinp, c.a.dinp, (size_t)c.n * c.s.in_dim * sizeof(float));
        char what[64];
        snprintf(what, sizeof what, "%s head d(input)", kind ? "mlp" : "linear");
        check_fd(what, &c, c.inp, dinp, (size_t)c.n * c.s.in_dim);
        for (int i = 0; i < c.nt; i++) {
            snprintf(what, sizeof what, "%s head %s", kind ? "mlp" : "linear", c.tab[i].name);
            check_fd(what, &c, c.params + c.tab[i].offset, c.grads + c.tab[i].offset, c.tab[i].numel);
        }
        if (kind == PL_HEAD_MLP) {   // dropout really drops about half of the units
            int zeros = 0;
            for (int i = 0; i < c.n * PL_HEAD_MLP_H1; i++) zeros += c.a.k1[i] == 0.0f;
            assert_true(zeros > c.n * PL_HEAD_MLP_H1 / 4 && zeros < c.n * PL_HEAD_MLP_H1 * 3 / 4);
        }
        free(dinp);
        head_free(&c);
    }
}

// The head on a pool: forward and backward bit-identical for 1 and 3 threads (fixed row blocks), close to no pool.
static void test_head_pooled(void **state) {
    (void)state;
    PlThreadPool *p1 = NULL, *p3 = NULL;
    assert_int_equal(pl_threadpool_create(1, &p1), PL_OK);
    assert_int_equal(pl_threadpool_create(3, &p3), PL_OK);
    PlThreadPool *pools[3] = {NULL, p1, p3};
    float *out[3], *dinp[3], *grads[3];
    const int n = 300;
    size_t nout = (size_t)n * 4, nin = (size_t)n * 6, ng = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t save = rng;
        HeadCtx c;
        head_setup(&c, PL_HEAD_MLP, n, pools[i]);
        rng = save;
        head_loss(&c, NULL);
        pl_head_backward(&c.s, &c.p, &c.g, &c.a, &c.gemm, c.dout, c.inp, c.n);
        ng = c.tab[c.nt - 1].offset + c.tab[c.nt - 1].numel;
        out[i] = malloc(nout * sizeof(float)), dinp[i] = malloc(nin * sizeof(float)), grads[i] = malloc(ng * sizeof(float));
        memcpy(out[i], c.a.out, nout * sizeof(float));
        memcpy(dinp[i], c.a.dinp, nin * sizeof(float));
        memcpy(grads[i], c.grads, ng * sizeof(float));
        head_free(&c);
    }
    assert_memory_equal(out[1], out[2], nout * sizeof(float));
    assert_memory_equal(dinp[1], dinp[2], nin * sizeof(float));
    assert_memory_equal(grads[1], grads[2], ng * sizeof(float));
    assert_true(scaled_diff(out[0], out[1], nout) < 1e-5);
    assert_true(scaled_diff(grads[0], grads[1], ng) < 1e-5);
    for (int i = 0; i < 3; i++) free(out[i]), free(dinp[i]), free(grads[i]);
    pl_threadpool_destroy(p1);
    pl_threadpool_destroy(p3);
}

int main(void) {
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backbone_groups),
        cmocka_unit_test(test_head_backward),
        cmocka_unit_test(test_head_pooled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
