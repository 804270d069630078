// Unit tests for built-in nucleus segmentation: known disks, touching pairs, noise-only images, real OpenCell FOVs.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cells.h"
#include "pl_decode.h"
#include "pl_segment.h"

// Deterministic normal noise (xorshift + Box-Muller), independent of libc rand().
static uint64_t rng_state = 88172645463325252ull;
static double rng_uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static double rng_normal(void) {
    double u = rng_uniform(), v = rng_uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void add_disk(float *img, int H, int W, double cy, double cx, double r, float value) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) img[(size_t)y * W + x] = value;
}

static void add_noise(float *img, size_t n, double offset, double sigma) {
    for (size_t i = 0; i < n; i++) img[i] += (float)(offset + sigma * rng_normal());
}

static void test_noise_only_gives_no_nuclei(void **state) {
    (void)state;
    int H = 512, W = 512;
    float *img = calloc((size_t)H * W, sizeof(float));
    int32_t *lab = malloc((size_t)H * W * sizeof(int32_t));
    PlSegmentParams p;
    pl_segment_params_default(&p);
    // pure Gaussian read noise on an offset, at several noise levels
    double sigmas[3] = {5, 40, 300};
    for (int k = 0; k < 3; k++) {
        memset(img, 0, (size_t)H * W * sizeof(float));
        add_noise(img, (size_t)H * W, 500, sigmas[k]);
        PlSegmentStats st;
        assert_int_equal(pl_segment_nuclei(img, H, W, &p, lab, &st), PL_OK);
        assert_int_equal(st.count, 0);
        assert_true(st.empty);
        assert_true(st.contrast < 1.0);
        for (size_t i = 0; i < (size_t)H * W; i++) assert_int_equal(lab[i], 0);
    }
    // Poisson-like shot noise (variance = mean) plus read noise
    for (size_t i = 0; i < (size_t)H * W; i++) img[i] = (float)(300 + 80 + sqrt(80.0) * rng_normal() + 3 * rng_normal());
    PlSegmentStats st;
    assert_int_equal(pl_segment_nuclei(img, H, W, &p, lab, &st), PL_OK);
    assert_int_equal(st.count, 0);
    // a perfectly flat image
    for (size_t i = 0; i < (size_t)H * W; i++) img[i] = 123;
    assert_int_equal(pl_segment_nuclei(img, H, W, &p, lab, &st), PL_OK);
    assert_int_equal(st.count, 0);
    free(img);
    free(lab);
}

static void test_known_disks_and_touching_pairs(void **state) {
    (void)state;
    int H = 400, W = 400;
    float *img = calloc((size_t)H * W, sizeof(float));
    int32_t *lab = malloc((size_t)H * W * sizeof(int32_t));
    // 6 isolated nuclei (radius 25 px = 5.2 µm at 0.206 µm/px) + 2 touching pairs (overlap 10 px)
    double centres[6][2] = {{60, 60}, {60, 200}, {60, 330}, {200, 60}, {330, 60}, {330, 330}};
    for (int i = 0; i < 6; i++) add_disk(img, H, W, centres[i][0], centres[i][1], 25, 2000);
    add_disk(img, H, W, 200, 175, 25, 2000);
    add_disk(img, H, W, 200, 215, 25, 2000);
    add_disk(img, H, W, 300, 180, 22, 1800);
    add_disk(img, H, W, 333, 200, 22, 1800);
    // a small speck (below min area) and a nucleus cut by the border
    add_disk(img, H, W, 150, 300, 3, 2000);
    add_disk(img, H, W, 395, 200, 20, 2000);
    add_noise(img, (size_t)H * W, 400, 30);
    PlSegmentParams p;
    pl_segment_params_default(&p);
    PlSegmentStats st;
    assert_int_equal(pl_segment_nuclei(img, H, W, &p, lab, &st), PL_OK);
    assert_false(st.empty);
    assert_int_equal(st.count, 10);
    assert_true(st.removed_border >= 1);
    PlCellSet set = {0};
    assert_int_equal(pl_cells_measure(lab, H, W, 1, &set), PL_OK);
    assert_int_equal(set.count, 10);
    // each isolated disk is found once with its centroid within 1 px and area within 10%
    for (int i = 0; i < 6; i++) {
        int found = 0;
        for (int c = 0; c < set.count; c++) {
            double dy = set.cells[c].cy - centres[i][0], dx = set.cells[c].cx - centres[i][1];
            if (dy * dy + dx * dx < 1.0) {
                found++;
                assert_true(fabs((double)set.cells[c].area - M_PI * 25 * 25) < 0.1 * M_PI * 25 * 25);
            }
        }
        assert_int_equal(found, 1);
    }
    // labels are 1..N in raster order of first pixel
    int32_t next = 1;
    for (size_t i = 0; i < (size_t)H * W; i++) {
        if (lab[i] == next) next++;
        else assert_true(lab[i] < next);
    }
    assert_int_equal(next, 11);
    // splitting off: the touching pairs merge into 2 objects → 8
    p.split_h_um = 0;
    assert_int_equal(pl_segment_nuclei(img, H, W, &p, lab, &st), PL_OK);
    assert_int_equal(st.count, 8);
    // border exclusion off: the cut nucleus is kept → 9
    p.exclude_border = 0;
    assert_int_equal(pl_segment_nuclei(img, H, W, &p, lab, &st), PL_OK);
    assert_int_equal(st.count, 9);
    pl_cell_set_free(&set);
    free(img);
    free(lab);
}

static void test_bad_input_and_params(void **state) {
    (void)state;
    PlSegmentParams p;
    pl_segment_params_default(&p);
    PlSegmenter *s = NULL;
    p.pixel_size_um = 0;
    assert_int_equal(pl_segmenter_create(64, 64, &p, &s), PL_ERR_ARG);
    assert_non_null(strstr(pl_error_message(), "pixel size"));
    pl_segment_params_default(&p);
    p.max_area_um2 = 1;
    assert_int_equal(pl_segmenter_create(64, 64, &p, &s), PL_ERR_ARG);
    pl_segment_params_default(&p);
    assert_int_equal(pl_segmenter_create(2, 64, &p, &s), PL_ERR_LIMIT);
    assert_int_equal(pl_segmenter_create(64, 64, &p, &s), PL_OK);
    float img[64 * 64] = {0};
    int32_t lab[64 * 64];
    img[64 * 10 + 7] = NAN;
    assert_int_equal(pl_segmenter_run(s, img, lab, NULL), PL_ERR_NUMERIC);
    assert_non_null(strstr(pl_error_message(), "row 10, column 7"));
    pl_segmenter_destroy(s);
}

// Real OpenCell Hoechst FOVs. Bounds: counts checked by eye on overlays of every FOV (docs/stages.md,
// "How the counts were checked") and against the independent scipy reference in tests/cli/test_segment.sh.
static void test_opencell_samples_plausible(void **state) {
    (void)state;
    static const struct { const char *name; int lo, hi; } fovs[] = {
        {"FOV_00007_RAW.tif", 38, 56}, {"FOV_00027_RAW.tif", 75, 110}, {"FOV_00061_RAW.tif", 62, 92},
        {"FOV_00076_RAW.tif", 100, 145}, {"FOV_00156_RAW.tif", 36, 54}, {"FOV_01036_RAW.tif", 58, 86},
        {"FOV_01176_RAW.tif", 22, 36},
    };
    char path[4096], rel[256];
    PlSegmenter *s = NULL;
    int32_t *lab = NULL;
    PlCellSet set = {0};
    for (size_t f = 0; f < sizeof fovs / sizeof fovs[0]; f++) {
        snprintf(rel, sizeof rel, "samples/opencell_hoechst_proj/%s", fovs[f].name);
        PL_TEST_REQUIRE_SHARED(rel, path);
        PlImage img;
        memset(&img, 0, sizeof img);
        assert_int_equal(pl_image_read(path, NULL, &img), PL_OK);
        assert_int_equal(img.height, 1024);
        if (!s) {
            PlSegmentParams p;
            pl_segment_params_default(&p);   // 0.206 µm/px
            assert_int_equal(pl_segmenter_create(img.height, img.width, &p, &s), PL_OK);
            lab = malloc((size_t)img.height * img.width * sizeof(int32_t));
        }
        PlSegmentStats st;
        assert_int_equal(pl_segmenter_run(s, img.data, lab, &st), PL_OK);
        print_message("%s: %d nuclei (threshold %.0f, contrast %.1f noise sigmas)\n", fovs[f].name, st.count,
                      st.threshold, st.contrast);
        assert_true(st.count >= fovs[f].lo && st.count <= fovs[f].hi);
        assert_true(st.contrast > 8);
        // every nucleus has a plausible area: 20..1500 µm² at 0.206 µm/px
        assert_int_equal(pl_cells_measure(lab, img.height, img.width, 1, &set), PL_OK);
        assert_int_equal(set.count, st.count);
        for (int c = 0; c < set.count; c++) {
            double um2 = set.cells[c].area * 0.206 * 0.206;
            assert_true(um2 >= 20 && um2 <= 1500);
        }
        pl_image_free(&img);
    }
    pl_cell_set_free(&set);
    pl_segmenter_destroy(s);
    free(lab);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noise_only_gives_no_nuclei),
        cmocka_unit_test(test_known_disks_and_touching_pairs),
        cmocka_unit_test(test_bad_input_and_params),
        cmocka_unit_test(test_opencell_samples_plausible),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
