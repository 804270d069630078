// Unit tests for alignment, normalisation (vs NumPy), rescaling (vs exact/PyTorch references), tiling and pl_prep_fov.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_align.h"
#include "pl_geometry.h"
#include "pl_image_write.h"
#include "pl_normalise.h"
#include "pl_npy.h"
#include "pl_prep.h"

static void load_ref(const char *name, PlNpyArray *a) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/fixtures/images/ref/%s", name);
    pl_test_source_path(rel, path, sizeof path);
    if (pl_npy_read(path, a) != PL_OK) {
        print_error("%s\n", pl_error_message());
        fail();
    }
}

// |got - want| <= tol * max(1, |want|) everywhere
static void expect_close(const float *got, const float *want, size_t n, double tol, const char *what) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]) / fmax(1.0, fabs((double)want[i]));
        if (!(e <= worst)) worst = e, at = i;
    }
    if (!(worst <= tol)) {
        print_error("%s: worst relative error %g at %zu (got %.9g want %.9g)\n", what, worst, at, (double)got[at],
                    (double)want[at]);
        fail();
    }
}

static const char *const hpa_roles[2] = {"nucleus", "protein"};

static void test_align_map(void **state) {
    (void)state;
    PlAlignSpec spec;
    PlAlignPlan plan;
    assert_int_equal(pl_align_spec_init(&spec, PL_ALIGN_MAP, "protein,nucleus,microtubules,er"), PL_OK);
    assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, "x", &plan), PL_OK);
    assert_int_equal(plan.n_views, 1);
    int want[4] = {1, 0, -1, -1};
    assert_memory_equal(plan.src[0], want, sizeof want);
    // tiny arrays: nucleus plane = 1..4, protein = 10..40
    float src[8] = {1, 2, 3, 4, 10, 20, 30, 40}, dst[16];
    pl_align_apply(&plan, src, 4, dst);
    float expect[16] = {10, 20, 30, 40, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(dst, expect, sizeof expect);
    // ImageNet with a declared mapping
    assert_int_equal(pl_align_spec_init(&spec, PL_ALIGN_MAP, "red, green, blue"), PL_OK);
    assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, "x", &plan), PL_ERR_ARG);
    assert_non_null(strstr(pl_error_message(), "declare a mapping"));
    assert_int_equal(pl_align_spec_set_mapping(&spec, "green=protein,blue=nucleus"), PL_OK);
    assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, "x", &plan), PL_OK);
    int want3[3] = {-1, 1, 0};
    assert_memory_equal(plan.src[0], want3, sizeof want3);
    assert_int_equal(pl_align_spec_set_mapping(&spec, "alpha=protein"), PL_ERR_ARG);
    assert_non_null(strstr(pl_error_message(), "alpha"));
    assert_int_equal(pl_align_spec_set_mapping(&spec, "green"), PL_ERR_ARG);
    const char *dup[2] = {"nucleus", "nucleus"};
    assert_int_equal(pl_align_plan(&spec, dup, 2, "x", &plan), PL_ERR_ARG);
    assert_int_equal(pl_align_spec_init(&spec, PL_ALIGN_MAP, "a,b,a"), PL_ERR_ARG);
}

static void test_align_replicate(void **state) {
    (void)state;
    PlAlignSpec spec;
    PlAlignPlan plan;
    assert_int_equal(pl_align_spec_init(&spec, PL_ALIGN_REPLICATE, "red,green,blue"), PL_OK);
    assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, NULL, &plan), PL_OK);
    assert_int_equal(plan.n_views, 2);
    float src[4] = {1, 2, 7, 8}, dst[12];
    pl_align_apply(&plan, src, 2, dst);
    float expect[12] = {1, 2, 1, 2, 1, 2, 7, 8, 7, 8, 7, 8};   // view 0 = nucleus everywhere, view 1 = protein
    assert_memory_equal(dst, expect, sizeof expect);
}

static void test_align_random(void **state) {
    (void)state;
    PlAlignSpec spec;
    PlAlignPlan a, b;
    assert_int_equal(pl_align_spec_init(&spec, PL_ALIGN_RANDOM, "protein,nucleus,microtubules,er"), PL_OK);
    spec.seed = 42;
    int n_plans = 0, plans[40][4], slot_used[4] = {0, 0, 0, 0};
    for (int i = 0; i < 40; i++) {
        char id[32];
        snprintf(id, sizeof id, "item%d", i);
        assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, id, &a), PL_OK);
        assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, id, &b), PL_OK);
        assert_memory_equal(a.src[0], b.src[0], 4 * sizeof(int));   // deterministic per (seed, id)
        int seen[2] = {0, 0}, empty = 0;
        for (int s = 0; s < 4; s++) {
            if (a.src[0][s] < 0) empty++;
            else seen[a.src[0][s]]++;
        }
        assert_int_equal(seen[0], 1);   // every role placed exactly once
        assert_int_equal(seen[1], 1);
        assert_int_equal(empty, 2);
        int seen_before = 0;
        for (int k = 0; k < n_plans && !seen_before; k++) seen_before = memcmp(plans[k], a.src[0], sizeof plans[k]) == 0;
        if (!seen_before) memcpy(plans[n_plans++], a.src[0], sizeof plans[0]);
        for (int s = 0; s < 4; s++) slot_used[s] += a.src[0][s] >= 0;
    }
    // 12 possible placements of 2 roles into 4 slots: 40 items must show most of them, and every slot is used
    assert_true(n_plans >= 8);
    for (int s = 0; s < 4; s++) assert_true(slot_used[s] > 0);
    // the seed changes the assignment for at least one of the items
    int changed = 0;
    for (int i = 0; i < 10; i++) {
        char id[32];
        snprintf(id, sizeof id, "item%d", i);
        spec.seed = 42;
        PL_ASSERT_OK(pl_align_plan(&spec, hpa_roles, 2, id, &a));
        spec.seed = 43;
        PL_ASSERT_OK(pl_align_plan(&spec, hpa_roles, 2, id, &b));
        changed += memcmp(a.src[0], b.src[0], 4 * sizeof(int)) != 0;
    }
    assert_true(changed > 0);
    assert_int_equal(pl_align_item_seed(1, "abc"), pl_align_item_seed(1, "abc"));
    assert_true(pl_align_item_seed(1, "abc") != pl_align_item_seed(1, "abd"));
}

static void test_align_duplicate(void **state) {
    (void)state;
    PlAlignSpec spec;
    PlAlignPlan plan;
    assert_int_equal(pl_align_spec_init(&spec, PL_ALIGN_DUPLICATE, "protein,nucleus,microtubules,er"), PL_OK);
    assert_int_equal(pl_align_spec_set_fill(&spec, "microtubules=protein,er=nucleus"), PL_OK);
    assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, NULL, &plan), PL_OK);
    int want[4] = {1, 0, 1, 0};
    assert_memory_equal(plan.src[0], want, sizeof want);
    assert_int_equal(pl_align_spec_init(&spec, PL_ALIGN_DUPLICATE, "protein,nucleus,microtubules,er"), PL_OK);
    assert_int_equal(pl_align_spec_set_fill(&spec, "*=nucleus"), PL_OK);
    assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, NULL, &plan), PL_OK);
    int want2[4] = {1, 0, 0, 0};   // mapped slots keep their natural role
    assert_memory_equal(plan.src[0], want2, sizeof want2);
    assert_int_equal(pl_align_spec_set_fill(&spec, "er=mito"), PL_OK);
    assert_int_equal(pl_align_plan(&spec, hpa_roles, 2, NULL, &plan), PL_ERR_ARG);
    assert_non_null(strstr(pl_error_message(), "'mito'"));
    PlAlignStrategy st;
    assert_int_equal(pl_align_strategy_parse("duplicate", &st), PL_OK);
    assert_int_equal(st, PL_ALIGN_DUPLICATE);
    assert_int_equal(pl_align_strategy_parse("natural", &st), PL_ERR_ARG);
}

static void test_normalise_vs_numpy(void **state) {
    (void)state;
    PlNpyArray in, ref;
    load_ref("norm_input_u16.npy", &in);
    const float *x = in.data;
    size_t n = pl_npy_count(&in);
    float *y = malloc(n * sizeof(float));
    void *scratch = malloc(n * sizeof(float));
    PlNormSpec spec;
    PlChannelStats st;
    double shift, scale;
    // self
    pl_norm_spec_default(&spec, PL_NORM_SELF);
    assert_int_equal(pl_norm_stats(&spec, x, n, 16, 0, NULL, &st), PL_OK);
    pl_norm_affine(&spec, &st, 0, &shift, &scale);
    pl_norm_apply(x, n, st.lo, st.hi, shift, scale, y);
    load_ref("norm_self.npy", &ref);
    expect_close(y, ref.data, n, 1e-6, "self");
    pl_npy_free(&ref);
    // self with percentile clipping 1 .. 99.5
    spec.clip_low = 1.0, spec.clip_high = 99.5;
    assert_int_equal(pl_norm_spec_validate(&spec, 4), PL_OK);
    assert_true(pl_norm_scratch_bytes(&spec, n) >= n * sizeof(float));
    assert_int_equal(pl_norm_stats(&spec, x, n, 16, 0, scratch, &st), PL_OK);
    pl_norm_affine(&spec, &st, 0, &shift, &scale);
    pl_norm_apply(x, n, st.lo, st.hi, shift, scale, y);
    load_ref("norm_self_clip.npy", &ref);
    expect_close(y, ref.data, n, 1e-6, "self+clip");
    pl_npy_free(&ref);
    // percentiles
    load_ref("norm_percentiles.npy", &ref);
    const double *pr = ref.data;
    const double ps[6] = {1.0, 99.5, 50.0, 0.0, 100.0, 33.3};
    for (int i = 0; i < 6; i++) {
        double p = pl_percentile(x, n, ps[i], scratch);
        if (fabs(p - pr[i]) > 1e-6 * fmax(1.0, fabs(pr[i]))) {
            print_error("percentile %g: %f vs %f\n", ps[i], p, pr[i]);
            fail();
        }
    }
    pl_npy_free(&ref);
    // fixed, ImageNet slot 1 (green)
    pl_norm_spec_default(&spec, PL_NORM_FIXED);
    assert_int_equal(pl_norm_spec_validate(&spec, 3), PL_OK);
    assert_int_equal(pl_norm_spec_validate(&spec, 4), PL_ERR_ARG);
    assert_int_equal(pl_norm_stats(&spec, x, n, 16, 0, NULL, &st), PL_OK);
    pl_norm_affine(&spec, &st, 1, &shift, &scale);
    pl_norm_apply(x, n, st.lo, st.hi, shift, scale, y);
    load_ref("norm_fixed_slot1.npy", &ref);
    expect_close(y, ref.data, n, 1e-6, "fixed");
    pl_npy_free(&ref);
    // explicit per-slot stats, validation errors
    assert_int_equal(pl_norm_spec_set_fixed(&spec, "0.1,0.2,0.3,0.4", "0.5,0.5,0.5,0.5"), PL_OK);
    assert_int_equal(pl_norm_spec_validate(&spec, 4), PL_OK);
    assert_int_equal(pl_norm_spec_set_fixed(&spec, "0.1,0.2", "0.5,0"), PL_ERR_ARG);
    assert_int_equal(pl_norm_spec_set_fixed(&spec, "0.1,x", "0.5,1"), PL_ERR_ARG);
    PlNormMode mode;
    assert_int_equal(pl_norm_mode_parse("zscore", &mode), PL_ERR_ARG);
    // a constant image: std 0 → (x - mean) / 1e-7 = 0, no NaN
    float flat[16];
    for (int i = 0; i < 16; i++) flat[i] = 7.0f;
    pl_norm_spec_default(&spec, PL_NORM_SELF);
    assert_int_equal(pl_norm_stats(&spec, flat, 16, 8, 0, NULL, &st), PL_OK);
    pl_norm_affine(&spec, &st, 0, &shift, &scale);
    pl_norm_apply(flat, 16, st.lo, st.hi, shift, scale, flat);
    for (int i = 0; i < 16; i++) assert_true(flat[i] == 0.0f);
    // eps matters for nearly constant images: values 0 / 2e-6 have std 1e-6 → z = ±1e-6 / (1e-6 + 1e-7)
    for (int i = 0; i < 16; i++) flat[i] = (i % 2) ? 2e-6f : 0.0f;
    assert_int_equal(pl_norm_stats(&spec, flat, 16, 32, 1, NULL, &st), PL_OK);
    pl_norm_affine(&spec, &st, 0, &shift, &scale);
    pl_norm_apply(flat, 16, st.lo, st.hi, shift, scale, flat);
    assert_true(fabs(flat[1] - 1e-6 / 1.1e-6) < 1e-5 && fabs(flat[0] + 1e-6 / 1.1e-6) < 1e-5);
    free(y);
    free(scratch);
    pl_npy_free(&in);
}

static void test_resize_references(void **state) {
    (void)state;
    PlResizeWork w = {0};
    PlNpyArray checker, ramp, ref;
    load_ref("checker_30x42.npy", &checker);
    load_ref("ramp_30x42.npy", &ramp);
    // area average of a 1-pixel checkerboard by 2 → 0.5 everywhere; by 3 → 4/9 or 5/9
    float out[30 * 42];
    assert_int_equal(pl_resize_plane(&w, checker.data, 30, 42, out, 15, 21), PL_OK);
    for (int i = 0; i < 15 * 21; i++) assert_true(fabsf(out[i] - 0.5f) < 1e-6f);
    assert_int_equal(pl_resize_plane(&w, checker.data, 30, 42, out, 10, 14), PL_OK);
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 14; j++) {
            float want = ((i + j) % 2 == 0) ? 4.0f / 9.0f : 5.0f / 9.0f;
            assert_true(fabsf(out[i * 14 + j] - want) < 1e-6f);
        }
    // non-integer area factor vs exact integration
    assert_int_equal(pl_resize_plane(&w, ramp.data, 30, 42, out, 11, 17), PL_OK);
    load_ref("area_ramp_30x42_to_11x17.npy", &ref);
    expect_close(out, ref.data, 11 * 17, 2e-6, "area 30x42→11x17");
    pl_npy_free(&ref);
    // bilinear enlargement vs torch interpolate(align_corners=False)
    float *big = malloc(77 * 100 * sizeof(float));
    assert_int_equal(pl_resize_plane(&w, ramp.data, 30, 42, big, 77, 100), PL_OK);
    load_ref("bilinear_ramp_30x42_to_77x100.npy", &ref);
    expect_close(big, ref.data, 77 * 100, 2e-6, "bilinear 30x42→77x100");
    pl_npy_free(&ref);
    // identity and sizes from pixel sizes: OpenCell 0.206 µm → HPA 0.08 µm: ×2.575
    assert_int_equal(pl_resize_plane(&w, ramp.data, 30, 42, out, 30, 42), PL_OK);
    assert_memory_equal(out, ramp.data, 30 * 42 * sizeof(float));
    int oh, ow;
    assert_int_equal(pl_resize_size(1024, 1024, pl_resize_factor_from_pixel_size(0.206, 0.08), 32768, &oh, &ow), PL_OK);
    assert_int_equal(oh, 2637);
    assert_int_equal(pl_resize_size(1024, 1024, 100.0, 32768, &oh, &ow), PL_ERR_LIMIT);
    assert_int_equal(pl_resize_size(1024, 1024, -1.0, 32768, &oh, &ow), PL_ERR_ARG);
    free(big);
    pl_npy_free(&checker);
    pl_npy_free(&ramp);
    pl_resize_work_free(&w);
}

static void test_tile_layouts(void **state) {
    (void)state;
    PlTile t[64];
    int th, tw, n;
    PlFovSpec f = {.mode = PL_FOV_TILES, .size = 32, .stride = 32, .border = PL_BORDER_DROP};
    assert_int_equal(pl_fov_layout(&f, 100, 70, &th, &tw, t, 64, &n), PL_OK);
    assert_int_equal(n, 3 * 2);   // y 0,32,64; x 0,32
    assert_int_equal(t[5].y, 64);
    assert_int_equal(t[5].x, 32);
    f.border = PL_BORDER_PAD;
    assert_int_equal(pl_fov_layout(&f, 100, 70, &th, &tw, t, 64, &n), PL_OK);
    assert_int_equal(n, 4 * 3);   // y 0,32,64,96; x 0,32,64
    assert_int_equal(t[11].y, 96);
    assert_int_equal(t[11].x, 64);
    f.border = PL_BORDER_SHIFT;
    assert_int_equal(pl_fov_layout(&f, 100, 70, &th, &tw, t, 64, &n), PL_OK);
    assert_int_equal(n, 4 * 3);   // y 0,32,64,68; x 0,32,38
    assert_int_equal(t[11].y, 68);
    assert_int_equal(t[11].x, 38);
    f.stride = 24, f.border = PL_BORDER_DROP;   // overlapping tiles
    assert_int_equal(pl_fov_layout(&f, 100, 70, &th, &tw, t, 64, &n), PL_OK);
    assert_int_equal(n, 3 * 2);   // y 0,24,48 (72+32 > 100); x 0,24
    assert_int_equal(pl_fov_layout(&f, 20, 70, &th, &tw, t, 64, &n), PL_ERR_EMPTY);
    assert_non_null(strstr(pl_error_message(), "20 x 70"));
    f.border = PL_BORDER_PAD;
    assert_int_equal(pl_fov_layout(&f, 20, 70, &th, &tw, t, 64, &n), PL_OK);
    assert_int_equal(n, 3);
    PlFovSpec whole = {.mode = PL_FOV_WHOLE, .patch = 16};
    assert_int_equal(pl_fov_layout(&whole, 100, 70, &th, &tw, t, 64, &n), PL_OK);
    assert_true(n == 1 && th == 96 && tw == 64 && t[0].y == 2 && t[0].x == 3);
    PlFovSpec center = {.mode = PL_FOV_CENTER, .size = 50};
    assert_int_equal(pl_fov_layout(&center, 40, 60, &th, &tw, t, 64, &n), PL_OK);
    assert_true(n == 1 && th == 50 && t[0].y == -5 && t[0].x == 5);
    // extraction with padding
    float src[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, dst[16];   // 3 x 4
    pl_tile_extract(src, 3, 4, (PlTile){-1, 2}, 4, 4, 0.0f, dst);
    float want[16] = {0, 0, 0, 0, 3, 4, 0, 0, 7, 8, 0, 0, 11, 12, 0, 0};
    assert_memory_equal(dst, want, sizeof want);
    PlFovMode m;
    PlTileBorder b;
    assert_int_equal(pl_fov_mode_parse("grid", &m), PL_ERR_ARG);
    assert_int_equal(pl_tile_border_parse("mirror", &b), PL_ERR_ARG);
}

static void fixture_ref(const char *name, int channel, char *buf, size_t n) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/fixtures/images/%s", name);
    pl_test_source_path(rel, path, sizeof path);
    snprintf(buf, n, "%s#%d", path, channel);
}

static void test_prep_fov_vs_numpy(void **state) {
    (void)state;
    char nuc[1100], prot[1100];
    fixture_ref("opencell_like_2page.tif", 0, nuc, sizeof nuc);
    fixture_ref("opencell_like_2page.tif", 1, prot, sizeof prot);
    PlChannelSource src[2] = {{"nucleus", nuc}, {"protein", prot}};
    PlPrepConfig cfg;
    assert_int_equal(pl_prep_config_default(&cfg, "protein,nucleus,microtubules,er"), PL_OK);
    cfg.scale = 0.5;
    cfg.fov = (PlFovSpec){.mode = PL_FOV_TILES, .size = 8, .stride = 8, .border = PL_BORDER_PAD};
    assert_int_equal(pl_prep_config_validate(&cfg), PL_OK);
    PlPrepResult res = {0};
    PL_ASSERT_OK(pl_prep_fov(&cfg, "fov1", 0.0, src, 2, &res));
    assert_int_equal(res.n_views, 1);
    assert_int_equal(res.n_tiles, 9);
    assert_int_equal(res.n_slots, 4);
    assert_int_equal(res.tile_h, 8);
    assert_int_equal(res.height, 20);
    assert_int_equal(res.width, 24);
    assert_int_equal(res.tiles[8].y, 16);
    assert_int_equal(res.tiles[8].x, 16);
    PlNpyArray ref;
    load_ref("prep_opencell_like_tiles.npy", &ref);
    assert_int_equal(pl_npy_count(&ref), 9 * 4 * 64);
    expect_close(res.data, ref.data, 9 * 4 * 64, 1e-5, "pl_prep_fov vs numpy");
    pl_npy_free(&ref);
    // second call with the same sizes reuses every buffer
    float *data = res.data;
    assert_int_equal(pl_prep_fov(&cfg, "fov1", 0.0, src, 2, &res), PL_OK);
    assert_ptr_equal(res.data, data);
    // replicate + fixed ImageNet + whole: 2 views (nucleus, protein), patch crop 40x48 → 32x48
    assert_int_equal(pl_prep_config_default(&cfg, "red,green,blue"), PL_OK);
    cfg.align.strategy = PL_ALIGN_REPLICATE;
    pl_norm_spec_default(&cfg.norm, PL_NORM_FIXED);
    assert_int_equal(pl_prep_fov(&cfg, "fov1", 0.0, src, 2, &res), PL_OK);
    assert_int_equal(res.n_views, 2);
    assert_int_equal(res.n_tiles, 1);
    assert_int_equal(res.tile_h, 32);
    assert_int_equal(res.tile_w, 48);
    assert_int_equal(res.tiles[0].y, 4);
    // view 1 (protein, page 1), slot 2 (blue), pixel (0,0) = source (4,0): (v/65535 - 0.406)/0.225
    double v = (1 * 9973 + 4 * 1031) % 65536;
    float got = res.data[((size_t)1 * 3 + 2) * 32 * 48];
    assert_true(fabs(got - (v / 65535.0 - 0.406) / 0.225) < 1e-6);
    // physical rescale 0.206 → 0.08 µm/px and center crop with padding: padding is exactly 0
    assert_int_equal(pl_prep_config_default(&cfg, "protein,nucleus,microtubules,er"), PL_OK);
    cfg.model_pixel_um = 0.08;
    cfg.fov = (PlFovSpec){.mode = PL_FOV_CENTER, .size = 128};
    assert_int_equal(pl_prep_fov(&cfg, "fov1", 0.206, src, 2, &res), PL_OK);
    assert_int_equal(res.height, 103);   // round(40 * 2.575)
    assert_int_equal(res.width, 124);
    assert_int_equal(res.tiles[0].y, -13);
    assert_true(res.data[0] == 0.0f);                      // padded corner of the protein slot
    assert_true(res.data[(size_t)64 * 128 + 64] != 0.0f);  // centre is image
    for (int i = 0; i < 128 * 128; i++) assert_true(res.data[(size_t)2 * 128 * 128 + i] == 0.0f);   // empty slot
    pl_prep_result_free(&res);
}

static void test_prep_errors(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char other[1200], nuc[1100];
    snprintf(other, sizeof other, "%s/small.png", dir);
    PlImage img;
    assert_int_equal(pl_image_alloc(&img, 1, 10, 12), PL_OK);
    assert_int_equal(pl_png_write(other, &img, 0, 8), PL_OK);
    pl_image_free(&img);
    fixture_ref("opencell_like_2page.tif", 0, nuc, sizeof nuc);
    PlChannelSource src[2] = {{"nucleus", nuc}, {"protein", other}};
    PlPrepConfig cfg;
    assert_int_equal(pl_prep_config_default(&cfg, "protein,nucleus"), PL_OK);
    PlPrepResult res = {0};
    assert_int_equal(pl_prep_fov(&cfg, "itemA", 0.0, src, 2, &res), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "itemA: role protein"));
    assert_non_null(strstr(pl_error_message(), "small.png"));
    assert_int_equal(res.n_tiles, 0);
    PlChannelSource missing[1] = {{"protein", "/nonexistent/p.tif#1"}};
    assert_int_equal(pl_prep_fov(&cfg, "itemB", 0.0, missing, 1, &res), PL_ERR_IO);
    assert_non_null(strstr(pl_error_message(), "itemB: role protein"));
    assert_non_null(strstr(pl_error_message(), "/nonexistent/p.tif"));
    pl_prep_result_free(&res);
    pl_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_align_map),          cmocka_unit_test(test_align_replicate),
        cmocka_unit_test(test_align_random),       cmocka_unit_test(test_align_duplicate),
        cmocka_unit_test(test_normalise_vs_numpy), cmocka_unit_test(test_resize_references),
        cmocka_unit_test(test_tile_layouts),       cmocka_unit_test(test_prep_fov_vs_numpy),
        cmocka_unit_test(test_prep_errors),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
