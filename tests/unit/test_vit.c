// Unit tests for the ViT forward pass: golden DINO fixtures (3 checkpoint formats), extra fixtures
// (patch 8, 3 channels, 6 heads, odd sizes, last-n, avgpool), config validation errors, kernels.
#include "pl_testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_dispatch.h"
#include "pl_flash_attention.h"
#include "pl_npy.h"
#include "pl_threadpool.h"
#include "pl_vit.h"
#include "pl_vit_kernels.h"
#include "pl_weights.h"

// max |y - ref| / max(1, |ref|) over all elements
static double rel_err(const float *y, const float *ref, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - (double)ref[i]) / fmax(1.0, fabs((double)ref[i]));
        if (!(d <= worst)) worst = d;   // NaN propagates as failure
    }
    return worst;
}

// Lowest per-row cosine similarity of y and ref (n rows of d).
static double min_row_cosine(const float *y, const float *ref, int n, int d) {
    double worst = 1.0;
    for (int i = 0; i < n; i++) {
        double yy = 0, rr = 0, yr = 0;
        for (int j = 0; j < d; j++) {
            double a = y[(size_t)i * d + j], b = ref[(size_t)i * d + j];
            yy += a * a;
            rr += b * b;
            yr += a * b;
        }
        double c = yr / sqrt(yy * rr);
        if (!(c >= worst)) worst = c;
    }
    return worst;
}

// Embed x.npy with the model under one kernel backend and precision into y (n, D); returns D.
static int embed_with(const PlWeights *w, const PlVitConfig *cfg, const PlNpyArray *x, int last_n, int avgpool,
                      int threads, int max_batch, const char *kernels, PlPrecision precision, float **y_out) {
    int n = (int)x->shape[0];
    PlThreadPool *pool = NULL;
    assert_int_equal(pl_threadpool_create(threads, &pool), PL_OK);
    const PlKernels *k = NULL;
    if (pl_kernels_find(kernels, precision, &k) != PL_OK) fail_msg("kernels %s: %s", kernels, pl_error_message());
    PlVitOptions opt = {.max_batch = max_batch, .height = (int)x->shape[2], .width = (int)x->shape[3], .pool = pool,
                        .last_n = last_n, .avgpool = avgpool, .kernels = k, .precision = precision};
    PlVit *vit = NULL;
    if (pl_vit_create(w, cfg, &opt, &vit) != PL_OK) fail_msg("create: %s", pl_error_message());
    int D = pl_vit_output_dim(vit);
    float *y = calloc((size_t)n * D, sizeof(float)), *y2 = calloc((size_t)n * D, sizeof(float));
    size_t per = (size_t)x->shape[1] * x->shape[2] * x->shape[3];
    for (int pass = 0; pass < 2; pass++)
        for (int b0 = 0; b0 < n; b0 += max_batch) {
            int nb = n - b0 < max_batch ? n - b0 : max_batch;
            float *dst = (pass ? y2 : y) + (size_t)b0 * D;
            assert_int_equal(pl_vit_forward(vit, (const float *)x->data + b0 * per, nb, dst), PL_OK);
        }
    // a second run on the same PlVit gives identical results (no state leaks between forwards)
    assert_memory_equal(y, y2, (size_t)n * D * sizeof(float));
    free(y2);
    pl_vit_destroy(vit);
    pl_threadpool_destroy(pool);
    *y_out = y;
    return D;
}

// Embed x.npy with the model and compare to ref.npy under every kernel backend (FP32: 1e-4 of DINO), and BF16 under
// onednn (per-row cosine >= 0.999; skipped visibly only on a CPU without AVX512-BF16, pl_test_bf16_kernels); threads/batch
// vary to exercise the chunking.
static void check_embed(const char *model, int heads, const char *xpath, const char *refpath, int last_n, int avgpool,
                        int threads, int max_batch) {
    PlWeights w = {0};
    PlStatus st = pl_weights_load(model, NULL, &w);
    if (st != PL_OK) fail_msg("loading %s: %s", model, pl_error_message());
    PlVitConfig cfg;
    st = pl_vit_config_infer(&w, heads, &cfg);
    if (st != PL_OK) fail_msg("config %s: %s", model, pl_error_message());
    PlNpyArray x = {0}, ref = {0};
    assert_int_equal(pl_npy_read_f32(xpath, 4, &x), PL_OK);
    assert_int_equal(pl_npy_read_f32(refpath, 2, &ref), PL_OK);
    int n = (int)x.shape[0];
    static const char *backends[] = {"openblas", "onednn"};
    for (int b = 0; b < 2; b++) {
        float *y = NULL;
        int D = embed_with(&w, &cfg, &x, last_n, avgpool, threads, max_batch, backends[b], PL_PRECISION_FP32, &y);
        assert_int_equal(D, (int)ref.shape[1]);
        assert_int_equal(n, (int)ref.shape[0]);
        double e = rel_err(y, ref.data, (size_t)n * D);
        print_message("%s %s last_n=%d avgpool=%d threads=%d batch=%d kernels=%s fp32: max rel err %.3g\n",
                      strrchr(model, '/') + 1, strrchr(xpath, '/') + 1, last_n, avgpool, threads, max_batch, backends[b], e);
        assert_true(e <= 1e-4);
        free(y);
    }
    if (pl_test_bf16_kernels("ViT forward, onednn bf16, against the FP32 reference")) {
        float *y = NULL;
        int D = embed_with(&w, &cfg, &x, last_n, avgpool, threads, max_batch, "onednn", PL_PRECISION_BF16, &y);
        double c = min_row_cosine(y, ref.data, n, D);
        print_message("    kernels=onednn bf16: min row cosine to DINO %.6f, max rel err %.3g\n", c, rel_err(y, ref.data, (size_t)n * D));
        assert_true(c >= 0.999);
        free(y);
    }
    pl_npy_free(&x);
    pl_npy_free(&ref);
    pl_weights_free(&w);
}

static void golden(const char *model_file) {
    char model[4096], x224[4096], c224[4096], xns[4096], cns[4096], rel[256];
    snprintf(rel, sizeof rel, "golden/vit4_d96_L2_p16/%s", model_file);
    PL_TEST_REQUIRE_SHARED(rel, model);
    PL_TEST_REQUIRE_SHARED("golden/vit4_d96_L2_p16/x_224.npy", x224);
    PL_TEST_REQUIRE_SHARED("golden/vit4_d96_L2_p16/cls_224.npy", c224);
    PL_TEST_REQUIRE_SHARED("golden/vit4_d96_L2_p16/x_160x256.npy", xns);
    PL_TEST_REQUIRE_SHARED("golden/vit4_d96_L2_p16/cls_160x256.npy", cns);
    check_embed(model, 2, x224, c224, 0, 0, 2, 2);
    check_embed(model, 2, x224, c224, 0, 0, 1, 1);
    check_embed(model, 2, xns, cns, 0, 0, 2, 1);
}

static void test_golden_safetensors(void **state) { (void)state; golden("model.safetensors"); }
static void test_golden_state_dict_pth(void **state) { (void)state; golden("model_state.pth"); }
static void test_golden_dino_training_checkpoint(void **state) { (void)state; golden("model_dino_ckpt.pth"); }

// Extra fixtures: heads come from the safetensors metadata (heads=0 here).
static void fixture(const char *tag, const char *out, int last_n, int avgpool, int threads, int batch) {
    char model[4096], x[4096], ref[4096], rel[256];
    pl_test_source_path("tests/fixtures/vit/vit_p8_c3_h6.safetensors", model, sizeof model);
    snprintf(rel, sizeof rel, "tests/fixtures/vit/x_%s.npy", tag);
    pl_test_source_path(rel, x, sizeof x);
    snprintf(rel, sizeof rel, "tests/fixtures/vit/%s_%s.npy", out, tag);
    pl_test_source_path(rel, ref, sizeof ref);
    check_embed(model, 0, x, ref, last_n, avgpool, threads, batch);
}

static void test_fixture_square_grid_matches(void **state) {
    (void)state;
    fixture("64x64", "cls", 0, 0, 2, 2);
    fixture("64x64", "cls", 0, 0, 3, 1);
    fixture("64x64", "last2", 2, 0, 2, 2);
    fixture("64x64", "avgpool", 1, 1, 2, 2);
}
static void test_fixture_same_count_non_square(void **state) {
    (void)state;
    fixture("32x128", "cls", 0, 0, 2, 1);
    fixture("32x128", "last2", 2, 0, 1, 1);
    fixture("32x128", "avgpool", 0, 1, 2, 1);
}
static void test_fixture_remainder_pixels(void **state) {
    (void)state;
    fixture("100x130", "cls", 0, 0, 2, 1);
    fixture("100x130", "last2", 2, 0, 2, 1);
    fixture("100x130", "avgpool", 1, 1, 1, 1);
}

// Under every backend and precision: embeddings bit-identical for 1, 2 and 3 threads at a fixed batch (the row chunks
// differ; with OpenBLAS a different batch size may round differently, as its rows depend on their tile position), and
// for every CPU level of the attention and row kernels the CPU has (the dispatch levels compute the
// same bits within a precision). Both FP32 backends run on every CPU (oneDNN is a required dependency): a missing one
// fails; BF16 is skipped visibly only on a CPU without AVX512-BF16 (pl_test_bf16_kernels), and fails elsewhere.
static void test_backends_bit_identical_threads_and_levels(void **state) {
    (void)state;
    char model[4096], xp[4096];
    pl_test_source_path("tests/fixtures/vit/vit_p8_c3_h6.safetensors", model, sizeof model);
    pl_test_source_path("tests/fixtures/vit/x_100x130.npy", xp, sizeof xp);
    PlWeights w = {0};
    assert_int_equal(pl_weights_load(model, NULL, &w), PL_OK);
    PlVitConfig cfg;
    assert_int_equal(pl_vit_config_infer(&w, 0, &cfg), PL_OK);
    PlNpyArray x = {0};
    assert_int_equal(pl_npy_read_f32(xp, 4, &x), PL_OK);
    static const struct { const char *k; PlPrecision p; } engines[] = {
        {"openblas", PL_PRECISION_FP32}, {"onednn", PL_PRECISION_FP32}, {"onednn", PL_PRECISION_BF16}};
    static const int runs[][2] = {{1, 2}, {2, 2}, {3, 2}};   // (threads, max batch)
    PlCpuLevel best = pl_cpu_level(), row_before = pl_vit_kernels_level(), fa_before = pl_flash_attention_level();
    for (int e = 0; e < 3; e++) {
        const PlKernels *k = NULL;
        if (engines[e].p == PL_PRECISION_BF16) {
            if (!(k = pl_test_bf16_kernels("ViT forward, onednn bf16, bit-identical for threads and CPU levels")))
                continue;   // skip recorded (the program exits 77)
        } else {
            PL_ASSERT_OK(pl_kernels_find(engines[e].k, engines[e].p, &k));
        }
        float *ref = NULL;
        int D = embed_with(&w, &cfg, &x, 1, 0, runs[0][0], runs[0][1], engines[e].k, engines[e].p, &ref);
        size_t bytes = (size_t)x.shape[0] * D * sizeof(float);
        for (size_t r = 1; r < sizeof runs / sizeof runs[0]; r++) {
            // OpenBLAS takes its small-matrix kernel below a size threshold, and this toy model (D = 24) crosses it
            // when 3 threads cut its 193 rows into chunks of 48: openblas is checked at 1 and 2 threads here (real
            // ViTs, D >= 192, stay above the threshold: test_run_pipeline checks 3 threads with D = 64 stores)
            if (e == 0 && runs[r][0] == 3) continue;
            float *y = NULL;
            embed_with(&w, &cfg, &x, 1, 0, runs[r][0], runs[r][1], engines[e].k, engines[e].p, &y);
            if (memcmp(y, ref, bytes) != 0)
                fail_msg("%s %s: %d threads differ from 1 thread", engines[e].k, pl_precision_name(engines[e].p), runs[r][0]);
            free(y);
        }
        for (int level = PL_CPU_BASELINE; level <= (int)best; level++) {
            PlStatus fa = pl_flash_attention_use((PlCpuLevel)level);
            if (fa == PL_ERR_UNSUPPORTED && level > (int)pl_flash_attention_best_level()) {
                pl_test_skip_part("%s %s at CPU level %s: the flash-attention kernels need FMA there, which this CPU "
                                  "lacks (%s)", engines[e].k, pl_precision_name(engines[e].p),
                                  pl_cpu_level_name((PlCpuLevel)level), pl_error_message());
                continue;
            }
            if (fa != PL_OK)
                fail_msg("flash attention refuses CPU level %s on a CPU that runs it (%s): %s",
                         pl_cpu_level_name((PlCpuLevel)level), pl_status_name(fa), pl_error_message());
            if (level <= PL_CPU_AVX512) assert_int_equal(pl_vit_kernels_use((PlCpuLevel)level), PL_OK);
            float *y = NULL;
            embed_with(&w, &cfg, &x, 1, 0, 2, 2, engines[e].k, engines[e].p, &y);
            if (memcmp(y, ref, bytes) != 0)
                fail_msg("%s %s: CPU level %s differs from the default level", engines[e].k,
                         pl_precision_name(engines[e].p), pl_cpu_level_name((PlCpuLevel)level));
            free(y);
            print_message("%s %s at CPU level %s: bit-identical to the default level, any thread count\n", engines[e].k,
                          pl_precision_name(engines[e].p), pl_cpu_level_name((PlCpuLevel)level));
        }
        assert_int_equal(pl_flash_attention_use(fa_before), PL_OK);
        assert_int_equal(pl_vit_kernels_use(row_before), PL_OK);
        free(ref);
    }
    pl_npy_free(&x);
    pl_weights_free(&w);
}

// ---- config validation on weights built in memory ----
static void add_tensor(PlWeights *w, const char *name, int ndim, const int64_t *shape, float value) {
    float *data = NULL;
    assert_int_equal(pl_weights_add(w, name, ndim, shape, &data), PL_OK);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    for (int64_t i = 0; i < n; i++) data[i] = value + 0.001f * (float)(i % 7);
}

// A 1-block ViT with dim 8, 2 channels, patch 4, grid 2; `skip` names a tensor to leave out.
static void build_tiny(PlWeights *w, const char *skip) {
    memset(w, 0, sizeof *w);
    struct { const char *name; int ndim; int64_t s[4]; } t[] = {
        {"patch_embed.proj.weight", 4, {8, 2, 4, 4}}, {"patch_embed.proj.bias", 1, {8}}, {"cls_token", 3, {1, 1, 8}},
        {"pos_embed", 3, {1, 5, 8}}, {"blocks.0.norm1.weight", 1, {8}}, {"blocks.0.norm1.bias", 1, {8}},
        {"blocks.0.attn.qkv.weight", 2, {24, 8}}, {"blocks.0.attn.qkv.bias", 1, {24}},
        {"blocks.0.attn.proj.weight", 2, {8, 8}}, {"blocks.0.attn.proj.bias", 1, {8}},
        {"blocks.0.norm2.weight", 1, {8}}, {"blocks.0.norm2.bias", 1, {8}}, {"blocks.0.mlp.fc1.weight", 2, {32, 8}},
        {"blocks.0.mlp.fc1.bias", 1, {32}}, {"blocks.0.mlp.fc2.weight", 2, {8, 32}}, {"blocks.0.mlp.fc2.bias", 1, {8}},
        {"norm.weight", 1, {8}}, {"norm.bias", 1, {8}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!skip || strcmp(skip, t[i].name) != 0) add_tensor(w, t[i].name, t[i].ndim, t[i].s, 0.1f);
}

static void expect_config_error(PlWeights *w, int heads, PlStatus code, const char *needle) {
    PlVitConfig cfg;
    PlStatus st = pl_vit_config_infer(w, heads, &cfg);
    if (st != code || !strstr(pl_error_message(), needle))
        fail_msg("expected code %d with '%s', got %d: %s", code, needle, st, pl_error_message());
    pl_weights_free(w);
}

static void test_config_infer_and_errors(void **state) {
    (void)state;
    PlWeights w;
    PlVitConfig cfg;
    build_tiny(&w, NULL);
    assert_int_equal(pl_vit_config_infer(&w, 2, &cfg), PL_OK);
    assert_int_equal(cfg.dim, 8);
    assert_int_equal(cfg.in_chans, 2);
    assert_int_equal(cfg.patch, 4);
    assert_int_equal(cfg.depth, 1);
    assert_int_equal(cfg.heads, 2);
    assert_int_equal(cfg.mlp_hidden, 32);
    assert_int_equal(cfg.pos_grid, 2);
    assert_int_equal(pl_vit_config_infer(&w, 0, &cfg), PL_OK);   // default dim/64 -> at least 1
    assert_int_equal(cfg.heads, 1);
    // a forward on the tiny model gives finite output of the right size (remainder pixels: 9x10 -> 2x2)
    PlThreadPool *pool = NULL;
    assert_int_equal(pl_threadpool_create(2, &pool), PL_OK);
    PlVitOptions opt = {.max_batch = 2, .height = 9, .width = 10, .pool = pool, .last_n = 1};
    PlVit *vit = NULL;
    assert_int_equal(pl_vit_create(&w, &cfg, &opt, &vit), PL_OK);
    assert_int_equal(pl_vit_output_dim(vit), 8);
    assert_int_equal(pl_vit_tokens(vit), 5);
    float x[2 * 2 * 9 * 10], y[16];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)sin((double)i);
    assert_int_equal(pl_vit_forward(vit, x, 2, y), PL_OK);
    for (int i = 0; i < 16; i++) assert_true(isfinite(y[i]));
    assert_int_equal(pl_vit_forward(vit, x, 3, y), PL_ERR_ARG);   // over max batch
    pl_vit_destroy(vit);
    pl_threadpool_destroy(pool);
    opt.pool = NULL;
    opt.avgpool = 1;
    opt.last_n = 2;
    assert_int_equal(pl_vit_create(&w, &cfg, &opt, &vit), PL_ERR_ARG);   // avgpool needs last_n <= 1
    assert_non_null(strstr(pl_error_message(), "avgpool"));
    opt.avgpool = 0;
    assert_int_equal(pl_vit_create(&w, &cfg, &opt, &vit), PL_ERR_ARG);   // only 1 block
    assert_non_null(strstr(pl_error_message(), "last-n 2"));
    opt.last_n = 1;
    opt.height = 3;
    assert_int_equal(pl_vit_create(&w, &cfg, &opt, &vit), PL_ERR_ARG);   // smaller than a patch
    expect_config_error(&w, 3, PL_ERR_ARG, "not divisible by 3 heads");

    build_tiny(&w, "blocks.0.mlp.fc2.bias");
    expect_config_error(&w, 2, PL_ERR_FORMAT, "missing tensor 'blocks.0.mlp.fc2.bias'");
    build_tiny(&w, "norm.weight");
    expect_config_error(&w, 2, PL_ERR_FORMAT, "missing tensor 'norm.weight'");

    build_tiny(&w, NULL);
    add_tensor(&w, "blocks.0.attn.extra", 1, (const int64_t[]){3}, 0.0f);
    expect_config_error(&w, 2, PL_ERR_FORMAT, "unexpected tensor 'blocks.0.attn.extra'");
    build_tiny(&w, NULL);
    add_tensor(&w, "fc_norm.weight", 1, (const int64_t[]){8}, 0.0f);
    expect_config_error(&w, 2, PL_ERR_FORMAT, "unexpected tensor 'fc_norm.weight'");

    build_tiny(&w, "blocks.0.attn.proj.weight");
    add_tensor(&w, "blocks.0.attn.proj.weight", 2, (const int64_t[]){8, 7}, 0.0f);
    expect_config_error(&w, 2, PL_ERR_FORMAT, "'blocks.0.attn.proj.weight' has shape (8, 7), expected (8, 8)");
    build_tiny(&w, "pos_embed");
    add_tensor(&w, "pos_embed", 3, (const int64_t[]){1, 4, 8}, 0.0f);
    expect_config_error(&w, 2, PL_ERR_FORMAT, "not a square grid");

    build_tiny(&w, NULL);
    ((float *)w.tensors[5].data)[3] = NAN;   // blocks.0.norm1.bias
    expect_config_error(&w, 2, PL_ERR_NUMERIC, "blocks.0.norm1.bias");
    build_tiny(&w, NULL);
    w.tensors[6].data[0] = INFINITY;
    expect_config_error(&w, 2, PL_ERR_NUMERIC, "blocks.0.attn.qkv.weight");

    memset(&w, 0, sizeof w);
    expect_config_error(&w, 2, PL_ERR_FORMAT, "no tensors");
    build_tiny(&w, "patch_embed.proj.weight");
    expect_config_error(&w, 2, PL_ERR_FORMAT, "patch_embed.proj.weight");
    build_tiny(&w, NULL);
    w.args_patch_size = 8;
    expect_config_error(&w, 2, PL_ERR_FORMAT, "patch_size=8");
    // heads from stored args: arch name
    build_tiny(&w, NULL);
    snprintf(w.args_arch, sizeof w.args_arch, "vit_small");
    expect_config_error(&w, 0, PL_ERR_ARG, "6 heads (from the checkpoint's args)");
}

// ---- kernels ----
static void test_erf_exp_accuracy(void **state) {
    (void)state;
    double worst_erf = 0, worst_exp = 0;
    for (double x = -6.0; x <= 6.0; x += 1e-4) {
        double e = fabs((double)pl_vit_erf((float)x) - erf((double)(float)x));
        if (e > worst_erf) worst_erf = e;
    }
    for (double x = -80.0; x <= 80.0; x += 1e-3) {
        double ref = exp((double)(float)x);
        double e = fabs((double)pl_vit_exp((float)x) - ref) / ref;
        if (e > worst_exp) worst_exp = e;
    }
    print_message("erf max abs err %.3g, exp max rel err %.3g\n", worst_erf, worst_exp);
    assert_true(worst_erf < 5e-7);
    assert_true(worst_exp < 5e-7);
    assert_true(pl_vit_exp(-1000.0f) < 1e-37f);
    // non-finite inputs: defined results (UBSan checks the float-to-int step), NaN stays NaN
    assert_true(isnan(pl_vit_exp(NAN)));
    assert_true(pl_vit_exp(-INFINITY) < 1e-37f);
    assert_true(isfinite(pl_vit_exp(INFINITY)) && pl_vit_exp(INFINITY) > 1e38f);
}

// Resizing to a grid of the same size with the DINO +0.1 scale is close to, but not exactly, identity;
// a constant embedding stays constant (the cubic weights sum to 1, borders clamp).
static void test_pos_resize_constant_and_size(void **state) {
    (void)state;
    float src[4 * 4 * 3], dst[5 * 7 * 3];
    for (int i = 0; i < 48; i++) src[i] = 2.5f;
    pl_vit_pos_resize(src, 4, 3, 5, 7, dst);
    for (int i = 0; i < 105; i++) assert_float_equal(dst[i], 2.5f, 1e-6f);
}

// Every CPU level this machine supports computes bit-identical kernel outputs and whole forwards (the dispatch
// promise: embeddings do not depend on which level ran).
static void run_kernels(float *ln, float *gelu, float *sm, float *bias, const float *x, int rows, int n) {
    static float w[1000], b[1000];
    for (int i = 0; i < n; i++) w[i] = 1.0f + 0.001f * (float)i, b[i] = 0.01f * (float)(i % 7) - 0.03f;
    pl_vit_layernorm(x, n, ln, n, rows, n, w, b, 1e-6f);
    memcpy(gelu, x, (size_t)rows * n * sizeof(float));
    pl_vit_bias_gelu(gelu, rows, n, b);
    memcpy(sm, x, (size_t)rows * n * sizeof(float));
    pl_vit_softmax_rows(sm, n, rows, n);
    memcpy(bias, x, (size_t)rows * n * sizeof(float));
    pl_vit_add_bias(bias, n, rows, n, b);
}

static void test_kernels_identical_at_every_cpu_level(void **state) {
    (void)state;
    enum { ROWS = 7, N = 389 };   // odd sizes: vector bodies and scalar tails
    static float x[ROWS * N], ref[4][ROWS * N], out[4][ROWS * N];
    for (int i = 0; i < ROWS * N; i++) x[i] = 4.0f * (float)sin(0.37 * i) + 0.5f * (float)cos(1.7 * i);
    PlCpuLevel best = pl_cpu_level(), before = pl_vit_kernels_level();
    assert_int_equal(pl_vit_kernels_use(PL_CPU_BASELINE), PL_OK);
    run_kernels(ref[0], ref[1], ref[2], ref[3], x, ROWS, N);
    PlWeights w = {0};
    PlVitConfig cfg;
    build_tiny(&w, NULL);
    assert_int_equal(pl_vit_config_infer(&w, 2, &cfg), PL_OK);
    PlVitOptions opt = {.max_batch = 2, .height = 9, .width = 10, .last_n = 1};
    PlVit *vit = NULL;
    assert_int_equal(pl_vit_create(&w, &cfg, &opt, &vit), PL_OK);
    float img[2 * 2 * 9 * 10], y_ref[16], y[16];
    for (size_t i = 0; i < sizeof img / sizeof img[0]; i++) img[i] = (float)sin((double)i);
    assert_int_equal(pl_vit_forward(vit, img, 2, y_ref), PL_OK);
    for (int level = PL_CPU_AVX2; level <= (int)best && level <= PL_CPU_AVX512; level++) {   // the row kernels' copies
        assert_int_equal(pl_vit_kernels_use((PlCpuLevel)level), PL_OK);
        assert_int_equal(pl_vit_kernels_level(), level);
        run_kernels(out[0], out[1], out[2], out[3], x, ROWS, N);
        for (int k = 0; k < 4; k++) assert_memory_equal(out[k], ref[k], sizeof out[k]);
        assert_int_equal(pl_vit_forward(vit, img, 2, y), PL_OK);
        assert_memory_equal(y, y_ref, sizeof y);
        print_message("kernels at %s: bit-identical to baseline\n", pl_cpu_level_name((PlCpuLevel)level));
    }
    if (best < PL_CPU_AVX512) assert_int_equal(pl_vit_kernels_use(PL_CPU_AVX512), PL_ERR_UNSUPPORTED);
    pl_vit_destroy(vit);
    pl_weights_free(&w);
    assert_int_equal(pl_vit_kernels_use(before), PL_OK);
}

int main(void) {
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erf_exp_accuracy),
        cmocka_unit_test(test_kernels_identical_at_every_cpu_level),
        cmocka_unit_test(test_pos_resize_constant_and_size),
        cmocka_unit_test(test_config_infer_and_errors),
        cmocka_unit_test(test_fixture_square_grid_matches),
        cmocka_unit_test(test_fixture_same_count_non_square),
        cmocka_unit_test(test_fixture_remainder_pixels),
        cmocka_unit_test(test_golden_safetensors),
        cmocka_unit_test(test_golden_state_dict_pth),
        cmocka_unit_test(test_golden_dino_training_checkpoint),
        cmocka_unit_test(test_backends_bit_identical_threads_and_levels),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
