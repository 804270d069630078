// Unit tests for DINO's projection head as a training module (stages/train/pl_train_head.h, PL_HEAD_DINO) against
// float64 PyTorch runs of facebookresearch/dino's own DINOHead (tests/fixtures/dino_head/make_dino_head_fixtures.py):
// the state-dict names and shapes, the forward and every gradient (input, the mlp's Linears, weight_v, weight_g or
// its frozen 0) for nlayers 1, 2, 3 (and 0, DINO's max(nlayers, 1)) with norm_last_layer on and off, in FP32 and
// (where the CPU has AVX512-BF16) BF16; pooled GEMMs bit-identical for 1 and 3 threads; the init's distributions;
// main_dino.py's default spec and the spec checks.
#include "pl_testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_npy.h"
#include "pl_threadpool.h"
#include "pl_train_head.h"

// make_dino_head_fixtures.py's sizes and cases
enum { IN = 24, HIDDEN = 40, BOTTLENECK = 16, OUT = 70, N = 5 };
static const struct { const char *name; int nlayers, norm; } cases[] = {
    {"l3_norm", 3, 1}, {"l3_free", 3, 0}, {"l2_norm", 2, 1}, {"l2_free", 2, 0}, {"l1_norm", 1, 1}, {"l1_free", 1, 0},
};

// FP32: each value is a short chain of float32 roundings (dots of <= 40 terms accumulated in float32 by the GEMMs,
// two norms and one weight norm in double, the GELUs), so a relative error of a few float32 units (6e-8) times the
// depth: measured at most 4.2e-7 of each tensor's largest value, the tolerance 2e-6 (about 30 float32 units). BF16:
// operands rounded to 8 significant bits (2^-9 = 2e-3 relative each) through up to four GEMMs in a row: measured at
// most 8.4e-3 (AVX512-BF16, onednn), the tolerance 3e-2.
#define TOL_FP32 2e-6
#define TOL_BF16 3e-2

static void load(const char *cs, const char *what, PlNpyArray *a) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "tests/fixtures/dino_head/%s_%s.npy", cs, what);
    pl_test_source_path(rel, path, sizeof path);
    PL_ASSERT_OK(pl_npy_read(path, a));
}

// max |a - ref| / max |ref| (float32 result against a float64 reference)
static double rel_err(const float *a, const double *ref, size_t n) {
    double m = 0.0, d = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]);
        if (!(e <= d)) d = e;
    }
    return m > 0.0 ? d / m : d;
}

typedef struct {
    PlHeadSpec s;
    PlTrainTensor tab[PL_HEAD_MAX_TENSORS];
    int nt;
    size_t floats;
    float *params, *grads, *acts, *derived;
    PlHeadParams p, g;
    PlHeadActs a;
} Head;

static PlHeadSpec small_spec(int nlayers, int norm, int rows) {
    return (PlHeadSpec){.kind = PL_HEAD_DINO, .in_dim = IN, .out_dim = OUT, .max_rows = rows, .hidden_dim = HIDDEN,
                        .bottleneck_dim = BOTTLENECK, .nlayers = nlayers, .norm_last_layer = norm};
}

static void head_create(Head *h, const PlHeadSpec *s) {
    memset(h, 0, sizeof *h);
    h->s = *s;
    PL_ASSERT_OK(pl_head_spec_check(&h->s));
    size_t off = 0;
    pl_head_tensors(&h->s, "", 0, h->tab, &h->nt, &off);
    assert_int_equal(h->nt, pl_head_tensor_count(&h->s));
    h->floats = off;
    h->params = pl_train_alloc_slab(off);
    h->grads = pl_train_alloc_slab(off);
    h->acts = pl_train_alloc_slab(pl_head_acts_carve(NULL, &h->s, NULL));
    h->derived = pl_train_alloc_slab(pl_head_derived_floats(&h->s));
    assert_non_null(h->params), assert_non_null(h->grads), assert_non_null(h->acts), assert_non_null(h->derived);
    pl_head_point(&h->p, &h->s, h->tab, h->params);
    pl_head_point(&h->g, &h->s, h->tab, h->grads);
    pl_head_derived_point(&h->p, &h->s, h->derived);
    pl_head_acts_carve(&h->a, &h->s, h->acts);
}

static void head_free(Head *h) { free(h->params), free(h->grads), free(h->acts), free(h->derived); }

// The flat fixture parameters (DINO's order = the table's) into the slab.
static void head_set_params(Head *h, const float *flat, size_t count) {
    size_t k = 0;
    for (int i = 0; i < h->nt; i++) {
        memcpy(h->params + h->tab[i].offset, flat + k, h->tab[i].numel * sizeof(float));
        k += h->tab[i].numel;
    }
    assert_int_equal(k, count);
    pl_head_weight_norm(&h->s, &h->p);
}

// One case against its fixture with the given GEMMs: returns the worst error over out, d(x) and the gradients.
static double check_case(int c, int nlayers, const PlTrainGemm *gemm, double tol, const char *label) {
    const char *cs = cases[c].name;
    Head h;
    PlHeadSpec s = small_spec(nlayers, cases[c].norm, N);
    head_create(&h, &s);
    // DINO's state-dict names and shapes
    const int L = cases[c].nlayers;
    for (int l = 0; l < L; l++) {
        char w[32];
        if (L == 1)
            snprintf(w, sizeof w, "mlp.weight");
        else
            snprintf(w, sizeof w, "mlp.%d.weight", 2 * l);
        assert_string_equal(h.tab[2 * l].name, w);
        assert_int_equal(h.tab[2 * l].shape[0], l == L - 1 ? BOTTLENECK : HIDDEN);
        assert_int_equal(h.tab[2 * l].shape[1], l == 0 ? IN : HIDDEN);
    }
    assert_string_equal(h.tab[2 * L].name, "last_layer.weight_g");
    assert_int_equal(h.tab[2 * L].ndim, 2);
    assert_int_equal(h.tab[2 * L].shape[0], OUT), assert_int_equal(h.tab[2 * L].shape[1], 1);
    assert_string_equal(h.tab[2 * L + 1].name, "last_layer.weight_v");
    assert_int_equal(h.tab[2 * L + 1].shape[0], OUT), assert_int_equal(h.tab[2 * L + 1].shape[1], BOTTLENECK);

    PlNpyArray x, dout, params, out, dx, grads;
    load(cs, "x", &x), load(cs, "dout", &dout), load(cs, "params", &params);
    load(cs, "out", &out), load(cs, "dx", &dx), load(cs, "grads", &grads);
    head_set_params(&h, params.data, pl_npy_count(&params));
    assert_int_equal(pl_npy_count(&grads), pl_npy_count(&params));
    pl_head_forward(&h.s, &h.p, &h.a, gemm, x.data, N);
    double worst = rel_err(h.a.out, out.data, (size_t)N * OUT);
    print_message("%s %-8s nlayers %d: out %.3g", label, cs, nlayers, worst);
    if (!(worst <= tol)) fail_msg("%s %s: forward differs from DINOHead by %g", label, cs, worst);
    for (size_t i = 0; i < h.floats; i++) h.grads[i] = 9.0f;   // overwritten
    pl_head_backward(&h.s, &h.p, &h.g, &h.a, gemm, dout.data, x.data, N);
    double e = rel_err(h.a.dinp, dx.data, (size_t)N * IN);
    print_message(", d(x) %.3g", e);
    if (!(e <= tol)) fail_msg("%s %s: d(input) differs by %g", label, cs, e);
    worst = fmax(worst, e);
    size_t k = 0;
    for (int i = 0; i < h.nt; i++) {
        const float *gi = h.grads + h.tab[i].offset;
        const double *ri = (const double *)grads.data + k;
        k += h.tab[i].numel;
        if (cases[c].norm && i == 2 * L) {   // the frozen weight_g: no gradient, 0
            for (size_t j = 0; j < h.tab[i].numel; j++)
                if (gi[j] != 0.0f) fail_msg("%s %s: frozen weight_g has gradient %g", label, cs, (double)gi[j]);
            continue;
        }
        e = rel_err(gi, ri, h.tab[i].numel);
        print_message(", %s %.3g", h.tab[i].name, e);
        if (!(e <= tol)) fail_msg("%s %s: d(%s) differs by %g", label, cs, h.tab[i].name, e);
        worst = fmax(worst, e);
    }
    print_message("\n");
    pl_npy_free(&x), pl_npy_free(&dout), pl_npy_free(&params), pl_npy_free(&out), pl_npy_free(&dx), pl_npy_free(&grads);
    head_free(&h);
    return worst;
}

static void test_fixtures_fp32(void **state) {
    (void)state;
    const PlTrainGemm gemm = {.k = pl_kernels_default(), .precision = PL_PRECISION_FP32};
    double worst = 0.0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        worst = fmax(worst, check_case((int)c, cases[c].nlayers, &gemm, TOL_FP32, "fp32"));
        if (cases[c].nlayers == 1)   // DINO's max(nlayers, 1): 0 builds the same single Linear
            worst = fmax(worst, check_case((int)c, 0, &gemm, TOL_FP32, "fp32"));
    }
    print_message("FP32 worst relative error %.3g (tolerance %.0e)\n", worst, TOL_FP32);
}

static void test_fixtures_bf16(void **state) {
    (void)state;
    const PlKernels *k = pl_test_bf16_kernels("DINO head BF16 GEMMs");
    if (!k) skip();
    PlHeadSpec s = small_spec(3, 0, N);
    const size_t cap = pl_head_gemm_cap(&s);
    uint16_t *a16 = malloc(cap * sizeof *a16), *b16 = malloc(cap * sizeof *b16);
    assert_non_null(a16), assert_non_null(b16);
    const PlTrainGemm gemm = {.k = k, .precision = PL_PRECISION_BF16, .a16 = a16, .b16 = b16, .cap = cap};
    double worst = 0.0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        worst = fmax(worst, check_case((int)c, cases[c].nlayers, &gemm, TOL_BF16, "bf16"));
    print_message("BF16 worst relative error %.3g (tolerance %.0e)\n", worst, TOL_BF16);
    free(a16), free(b16);
}

static float lcg(uint64_t *r) {   // uniform in [-1, 1)
    *r = *r * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*r >> 40) * 0x1p-23 - 1.0);
}

// Pooled GEMMs: forward and backward bit-identical for 1 and 3 threads, close to no pool (300 rows, so the GEMMs
// split into several row blocks).
static void test_pooled(void **state) {
    (void)state;
    PlThreadPool *p1 = NULL, *p3 = NULL;
    PL_ASSERT_OK(pl_threadpool_create(1, &p1));
    PL_ASSERT_OK(pl_threadpool_create(3, &p3));
    PlThreadPool *pools[3] = {NULL, p1, p3};
    enum { ROWS = 300 };
    PlNpyArray params;
    load("l3_free", "params", &params);
    float *x = malloc((size_t)ROWS * IN * sizeof(float)), *dout = malloc((size_t)ROWS * OUT * sizeof(float));
    assert_non_null(x), assert_non_null(dout);
    uint64_t r = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < (size_t)ROWS * IN; i++) x[i] = lcg(&r);
    for (size_t i = 0; i < (size_t)ROWS * OUT; i++) dout[i] = lcg(&r);
    float *out[3], *dinp[3], *grads[3];
    size_t ng = 0;
    for (int i = 0; i < 3; i++) {
        Head h;
        PlHeadSpec s = small_spec(3, 0, ROWS);
        head_create(&h, &s);
        head_set_params(&h, params.data, pl_npy_count(&params));
        const PlTrainGemm gemm = {.k = pl_kernels_default(), .precision = PL_PRECISION_FP32, .pool = pools[i]};
        pl_head_forward(&h.s, &h.p, &h.a, &gemm, x, ROWS);
        pl_head_backward(&h.s, &h.p, &h.g, &h.a, &gemm, dout, x, ROWS);
        ng = h.floats;
        out[i] = malloc((size_t)ROWS * OUT * sizeof(float)), dinp[i] = malloc((size_t)ROWS * IN * sizeof(float));
        grads[i] = malloc(ng * sizeof(float));
        memcpy(out[i], h.a.out, (size_t)ROWS * OUT * sizeof(float));
        memcpy(dinp[i], h.a.dinp, (size_t)ROWS * IN * sizeof(float));
        memcpy(grads[i], h.grads, ng * sizeof(float));
        head_free(&h);
    }
    assert_memory_equal(out[1], out[2], (size_t)ROWS * OUT * sizeof(float));
    assert_memory_equal(dinp[1], dinp[2], (size_t)ROWS * IN * sizeof(float));
    assert_memory_equal(grads[1], grads[2], ng * sizeof(float));
    double m = 0.0, d = 0.0;
    for (size_t j = 0; j < ng; j++) m = fmax(m, fabs(grads[0][j])), d = fmax(d, fabs(grads[0][j] - grads[1][j]));
    print_message("pooled: 1 and 3 threads bit-identical; gradient vs no pool %.3g of %.3g\n", d, m);
    assert_true(d <= 1e-5 * m);
    for (int i = 0; i < 3; i++) free(out[i]), free(dinp[i]), free(grads[i]);
    free(x), free(dout);
    pl_npy_free(&params);
    pl_threadpool_destroy(p1);
    pl_threadpool_destroy(p3);
}

static void moments(const float *v, size_t n, double *mean, double *sd, double *amax) {
    double s = 0.0, ss = 0.0;
    *amax = 0.0;
    for (size_t i = 0; i < n; i++) s += v[i], ss += (double)v[i] * v[i], *amax = fmax(*amax, fabs(v[i]));
    *mean = s / (double)n;
    *sd = sqrt(ss / (double)n - *mean * *mean);
}

// DINOHead's init as distributions: trunc_normal(0.02) weights, zero biases, g = 1, v ~ U(+-1/sqrt(bottleneck)), so
// W = v / |v| has unit rows; the same seed gives the same values, another seed others.
static void test_init(void **state) {
    (void)state;
    PlHeadSpec s = {.kind = PL_HEAD_DINO, .in_dim = 96, .out_dim = 1000, .max_rows = 1, .hidden_dim = 256,
                    .bottleneck_dim = 64, .nlayers = 3, .norm_last_layer = 1};
    Head h, h2;
    head_create(&h, &s);
    head_create(&h2, &s);
    pl_head_init(&h.s, &h.p, 42, 7);
    pl_head_init(&h2.s, &h2.p, 42, 7);
    assert_memory_equal(h.params, h2.params, h.floats * sizeof(float));
    pl_head_init(&h2.s, &h2.p, 43, 7);
    assert_memory_not_equal(h.params, h2.params, h.floats * sizeof(float));
    double mean, sd, amax;
    for (int l = 0; l < 3; l++) {
        const PlTrainTensor *w = &h.tab[2 * l], *b = &h.tab[2 * l + 1];
        moments(h.params + w->offset, w->numel, &mean, &sd, &amax);
        print_message("%-14s mean %+.2e sd %.5f max|w| %.4f\n", w->name, mean, sd, amax);
        assert_true(fabs(mean) < 0.02 * 5 / sqrt((double)w->numel));
        assert_true(fabs(sd - 0.02) < 0.02 * 0.03);
        assert_true(amax <= 2.0 && amax > 0.02 * 3);
        for (size_t j = 0; j < b->numel; j++) assert_true(h.params[b->offset + j] == 0.0f);
    }
    for (int i = 0; i < s.out_dim; i++) assert_true(h.p.last_g[i] == 1.0f);
    const double bound = 1.0 / sqrt((double)s.bottleneck_dim);
    moments(h.p.last_v, (size_t)s.out_dim * s.bottleneck_dim, &mean, &sd, &amax);
    print_message("weight_v       mean %+.2e sd %.5f max|v| %.4f (bound %.4f)\n", mean, sd, amax, bound);
    assert_true(amax < bound && amax > 0.99 * bound);
    assert_true(fabs(sd - bound / sqrt(3.0)) < 0.01 * bound);
    pl_head_weight_norm(&h.s, &h.p);
    for (int i = 0; i < s.out_dim; i++) {
        const float *w = h.p.last_w + (size_t)i * s.bottleneck_dim;
        double ss = 0.0;
        for (int j = 0; j < s.bottleneck_dim; j++) ss += (double)w[j] * w[j];
        assert_true(fabs(sqrt(ss) - 1.0) < 1e-6);
    }
    head_free(&h), head_free(&h2);
}

// main_dino.py's defaults, the derived buffer's size, and the spec checks.
static void test_spec(void **state) {
    (void)state;
    PlHeadSpec s = pl_head_dino_spec(384, 64);
    assert_int_equal(s.kind, PL_HEAD_DINO);
    assert_int_equal(s.out_dim, 65536), assert_int_equal(s.hidden_dim, 2048), assert_int_equal(s.bottleneck_dim, 256);
    assert_int_equal(s.nlayers, 3), assert_int_equal(s.norm_last_layer, 1);
    PL_ASSERT_OK(pl_head_spec_check(&s));
    assert_int_equal(pl_head_tensor_count(&s), 8);
    assert_true(pl_head_derived_floats(&s) >= (size_t)65536 * 256 + 65536);   // W: 64 MiB at the defaults
    PlHeadSpec t = s;
    t.nlayers = 0;   // DINO's max(nlayers, 1)
    PL_ASSERT_OK(pl_head_spec_check(&t));
    assert_int_equal(pl_head_tensor_count(&t), 4);
    t.nlayers = PL_HEAD_DINO_MAX_LAYERS + 1;
    assert_int_equal(pl_head_spec_check(&t), PL_ERR_ARG);
    t = s, t.bottleneck_dim = 0;
    assert_int_equal(pl_head_spec_check(&t), PL_ERR_ARG);
    t = s, t.hidden_dim = 0;
    assert_int_equal(pl_head_spec_check(&t), PL_ERR_ARG);
    t.nlayers = 1;   // a single Linear(in, bottleneck) has no hidden width
    PL_ASSERT_OK(pl_head_spec_check(&t));
    t = s, t.norm_last_layer = 2;
    assert_int_equal(pl_head_spec_check(&t), PL_ERR_ARG);
    PlHeadSpec lin = {.kind = PL_HEAD_LINEAR, .in_dim = 4, .out_dim = 3, .max_rows = 2};
    assert_int_equal(pl_head_derived_floats(&lin), 0);
}

int main(void) {
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_fp32), cmocka_unit_test(test_fixtures_bf16), cmocka_unit_test(test_pooled),
        cmocka_unit_test(test_init),          cmocka_unit_test(test_spec),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
