// Unit tests for cell measurement and crops: border policies on tiny arrays, label-mask validation, and the real
// HPA nucleus mask (21 nuclei) against NumPy centroids (tests/fixtures/cells/make_hpa_nuclei_centroids.py).
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cells.h"
#include "pl_decode.h"

static void test_border_policies_exact(void **state) {
    (void)state;
    enum { H = 20, W = 20, S = 6 };
    int32_t lab[H * W] = {0};
    float img[2 * H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            img[y * W + x] = (float)(y * 100 + x);
            img[H * W + y * W + x] = -(float)(y * 100 + x);
        }
    const float *planes[2] = {img, img + H * W};
    lab[1 * W + 1] = lab[1 * W + 2] = lab[2 * W + 1] = lab[2 * W + 2] = 1;   // centroid (1.5, 1.5), area 4
    lab[10 * W + 10] = 3;                                                  // (10, 10), area 1
    lab[18 * W + 17] = lab[19 * W + 17] = 2;                               // (18.5, 17), area 2
    PlCellSet set = {0};
    assert_int_equal(pl_cells_measure(lab, H, W, 1, &set), PL_OK);
    assert_int_equal(set.count, 3);
    assert_int_equal(set.cells[0].label, 1);
    assert_int_equal(set.cells[1].label, 2);
    assert_int_equal(set.cells[2].label, 3);
    assert_true(fabsf(set.cells[0].cy - 1.5f) < 1e-6f && fabsf(set.cells[0].cx - 1.5f) < 1e-6f);
    assert_int_equal(set.cells[0].area, 4);
    assert_true(fabsf(set.cells[1].cy - 18.5f) < 1e-6f && fabsf(set.cells[1].cx - 17.0f) < 1e-6f);
    // min_area drops the single-pixel cell
    assert_int_equal(pl_cells_measure(lab, H, W, 2, &set), PL_OK);
    assert_int_equal(set.count, 2);

    // skip: only the centred cell 3 fits (crop rows/cols 7..12)
    assert_int_equal(pl_cells_measure(lab, H, W, 1, &set), PL_OK);
    assert_int_equal(pl_cells_place(&set, H, W, S, PL_CELL_BORDER_SKIP), PL_OK);
    assert_int_equal(set.count, 1);
    assert_int_equal(set.cells[0].label, 3);
    assert_int_equal(set.cells[0].y0, 7);
    assert_int_equal(set.cells[0].x0, 7);
    float out[3 * 2 * S * S];
    assert_int_equal(pl_cells_crop(planes, 2, H, W, &set, 0, 1, S, out), PL_OK);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            assert_true(out[y * S + x] == (float)((7 + y) * 100 + 7 + x));
            assert_true(out[S * S + y * S + x] == -(float)((7 + y) * 100 + 7 + x));
        }
    // pad: cell 1 crop origin (-1, -1): first row and column are zero
    assert_int_equal(pl_cells_measure(lab, H, W, 1, &set), PL_OK);
    assert_int_equal(pl_cells_place(&set, H, W, S, PL_CELL_BORDER_PAD), PL_OK);
    assert_int_equal(set.count, 3);
    assert_int_equal(set.cells[0].y0, -1);
    assert_int_equal(set.cells[0].x0, -1);
    assert_int_equal(set.cells[1].y0, 16);   // round(18.5) = 19 → 19 - 3; rows 16..21, 20 and 21 outside
    assert_int_equal(pl_cells_crop(planes, 2, H, W, &set, 0, 3, S, out), PL_OK);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float want = (y == 0 || x == 0) ? 0.0f : (float)((y - 1) * 100 + x - 1);
            assert_true(out[y * S + x] == want);
            int sy = 16 + y, sx = 14 + x;
            float want2 = sy >= H ? 0.0f : -(float)(sy * 100 + sx);
            assert_true(out[(1 * 2 + 1) * S * S + y * S + x] == want2);
        }
    // shift: cell 1 moves to (0, 0), cell 2 to rows 14..19
    assert_int_equal(pl_cells_measure(lab, H, W, 1, &set), PL_OK);
    assert_int_equal(pl_cells_place(&set, H, W, S, PL_CELL_BORDER_SHIFT), PL_OK);
    assert_int_equal(set.count, 3);
    assert_int_equal(set.cells[0].y0, 0);
    assert_int_equal(set.cells[0].x0, 0);
    assert_int_equal(set.cells[1].y0, 14);
    assert_int_equal(set.cells[1].x0, 14);
    // rescaling by 2: a 2x2 block at rows/cols 1..2 becomes rows/cols 2..5 (centre 3.5), area 16
    assert_int_equal(pl_cells_measure(lab, H, W, 1, &set), PL_OK);
    assert_int_equal(pl_cells_rescale(&set, 2.0, 2.0), PL_OK);
    assert_true(fabsf(set.cells[0].cy - 3.5f) < 1e-6f && fabsf(set.cells[0].cx - 3.5f) < 1e-6f);
    assert_int_equal(set.cells[0].area, 16);
    assert_int_equal(pl_cells_rescale(&set, 0, 1), PL_ERR_ARG);
    // bad ranges and sizes
    assert_int_equal(pl_cells_crop(planes, 2, H, W, &set, 2, 2, S, out), PL_ERR_ARG);
    assert_int_equal(pl_cells_place(&set, H, W, 30, PL_CELL_BORDER_SHIFT), PL_ERR_ARG);
    pl_cell_set_free(&set);
}

static void test_options_and_label_validation(void **state) {
    (void)state;
    int side = 0;
    assert_int_equal(pl_cells_crop_side(100, 0, 0, &side), PL_OK);
    assert_int_equal(side, 100);
    assert_int_equal(pl_cells_crop_side(0, 20.6, 0.206, &side), PL_OK);
    assert_int_equal(side, 100);
    assert_int_equal(pl_cells_crop_side(0, 20, 0, &side), PL_ERR_ARG);
    assert_int_equal(pl_cells_crop_side(0, 1e6, 0.1, &side), PL_ERR_ARG);
    PlCellBorder b;
    assert_int_equal(pl_cell_border_parse("shift", &b), PL_OK);
    assert_int_equal(b, PL_CELL_BORDER_SHIFT);
    assert_string_equal(pl_cell_border_name(PL_CELL_BORDER_PAD), "pad");
    assert_int_equal(pl_cell_border_parse("wrap", &b), PL_ERR_ARG);

    PlImage img;
    assert_int_equal(pl_image_alloc(&img, 1, 4, 4), PL_OK);
    int32_t lab[16];
    img.data[5] = 7;
    assert_int_equal(pl_cells_labels_from_image(&img, "m.png", lab), PL_OK);
    assert_int_equal(lab[5], 7);
    img.data[6] = 1.5f;
    assert_int_equal(pl_cells_labels_from_image(&img, "m.png", lab), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "m.png"));
    assert_non_null(strstr(pl_error_message(), "row 1, column 2"));
    img.data[6] = -1;
    assert_int_equal(pl_cells_labels_from_image(&img, "m.png", lab), PL_ERR_FORMAT);
    pl_image_free(&img);
    int32_t neg[4] = {0, -3, 0, 0};
    PlCellSet set = {0};
    assert_int_equal(pl_cells_measure(neg, 2, 2, 1, &set), PL_ERR_FORMAT);
    pl_cell_set_free(&set);
}

static void test_hpa_nucleus_mask_matches_numpy(void **state) {
    (void)state;
    char mask_path[4096], green_path[4096], fixture[4096];
    PL_TEST_REQUIRE_SHARED("samples/hpa_1000_A12_2/1000_A12_2_nucleimask.png", mask_path);
    PL_TEST_REQUIRE_SHARED("samples/hpa_1000_A12_2/1000_A12_2_green.png", green_path);
    pl_test_source_path("tests/fixtures/cells/hpa_1000_A12_2_nuclei.tsv", fixture, sizeof fixture);
    enum { H = 2048, W = 2048, S = 256 };
    int32_t *lab = malloc((size_t)H * W * sizeof(int32_t));
    assert_non_null(lab);
    // wrong expected size → error naming the file
    assert_int_equal(pl_cells_read_mask(mask_path, 1024, 1024, lab), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "1000_A12_2_nucleimask.png"));
    assert_int_equal(pl_cells_read_mask(mask_path, H, W, lab), PL_OK);
    PlCellSet set = {0};
    assert_int_equal(pl_cells_measure(lab, H, W, 1, &set), PL_OK);
    assert_int_equal(set.count, 21);
    FILE *f = fopen(fixture, "r");
    assert_non_null(f);
    char line[512];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        int label;
        double cy, cx;
        long area;
        assert_int_equal(sscanf(line, "%d %lf %lf %ld", &label, &cy, &cx, &area), 4);
        const PlCell *c = &set.cells[rows];
        assert_int_equal(c->label, label);
        assert_true(fabs(c->cy - cy) < 1e-2 && fabs(c->cx - cx) < 1e-2);
        assert_int_equal(c->area, area);
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, 21);
    // crops (2 channels: protein, mask as float) centred on every nucleus, zero-padded at the border
    PlImage green;
    memset(&green, 0, sizeof green);
    assert_int_equal(pl_image_read(green_path, NULL, &green), PL_OK);
    assert_int_equal(green.height, H);
    float *image = malloc((size_t)2 * H * W * sizeof(float));   // (2, H, W)
    memcpy(image, green.data, (size_t)H * W * sizeof(float));
    for (size_t i = 0; i < (size_t)H * W; i++) image[(size_t)H * W + i] = (float)lab[i];
    const float *image_planes[2] = {image, image + (size_t)H * W};
    assert_int_equal(pl_cells_place(&set, H, W, S, PL_CELL_BORDER_PAD), PL_OK);
    assert_int_equal(set.count, 21);
    float *crops = malloc((size_t)4 * 2 * S * S * sizeof(float));   // batches of 4: (4, 2, S, S)
    for (int first = 0; first < set.count; first += 4) {
        int n = set.count - first < 4 ? set.count - first : 4;
        assert_int_equal(pl_cells_crop(image_planes, 2, H, W, &set, first, n, S, crops), PL_OK);
        for (int i = 0; i < n; i++) {
            const PlCell *c = &set.cells[first + i];
            const float *mask_crop = crops + ((size_t)i * 2 + 1) * S * S;
            const float *prot_crop = crops + ((size_t)i * 2) * S * S;
            // the nucleus sits at the crop centre: centre pixel carries its label, and the crop holds
            // its whole area when the crop is inside the image
            assert_true(mask_crop[(S / 2) * S + S / 2] == (float)c->label);
            int cy = (int)floorf(c->cy + 0.5f), cx = (int)floorf(c->cx + 0.5f);
            assert_true(prot_crop[(S / 2) * S + S / 2] == green.data[(size_t)cy * W + cx]);
        }
    }
    // skip policy keeps only nuclei whose 256-px crop lies inside the image, matching a direct count
    int inside = 0;
    for (int i = 0; i < set.count; i++) {
        int y0 = (int)floorf(set.cells[i].cy + 0.5f) - S / 2, x0 = (int)floorf(set.cells[i].cx + 0.5f) - S / 2;
        inside += y0 >= 0 && x0 >= 0 && y0 + S <= H && x0 + S <= W;
    }
    assert_int_equal(pl_cells_place(&set, H, W, S, PL_CELL_BORDER_SKIP), PL_OK);
    assert_int_equal(set.count, inside);
    assert_true(inside > 10 && inside < 21);
    free(crops);
    free(image);
    pl_image_free(&green);
    pl_cell_set_free(&set);
    free(lab);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_border_policies_exact),
        cmocka_unit_test(test_options_and_label_validation),
        cmocka_unit_test(test_hpa_nucleus_mask_matches_numpy),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
