// Unit tests for the training augmentation (stages/train/pl_train_augment.h). The random resized crop's boxes against
// torchvision's RandomResizedCrop.get_params, transcribed here over the same uniform draws: thousands of draws per
// image shape, each box equal to the transcription's and inside the image, its size consistent with an area fraction
// in [scale_min, scale_max] and an aspect ratio in [3/4, 4/3] up to the rounding to whole pixels, the same number of
// draws taken; the fallback forced (elongated images where no attempt fits, a scale above 1) gives torchvision's
// centre crop. Flips and quarter turns: exact pixel tests on small images of distinct values, alone and through
// pl_augment_image.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_rng.h"
#include "pl_train_augment.h"

// Python's round() (half to even), which torchvision's int(round(...)) uses: nearbyint in the default rounding mode.
static int py_round(double x) { return (int)nearbyint(x); }

typedef struct Box {
    int top, left, h, w, attempt;   // attempt 1-10, 0 = the centre-crop fallback
} Box;

// torchvision.transforms.RandomResizedCrop.get_params(img, scale, ratio=(3/4, 4/3)) for an (H, W) image, with each
// torch draw taken from r: uniform_(a, b) = a + (b - a) u, randint(0, n) = floor(u n). torchvision draws the two
// uniforms in float32; protloc (and so this transcription) in double.
static Box tv_get_params(PlRng *r, double scale_lo, double scale_hi, int H, int W) {
    const double ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;
    double area = (double)H * (double)W, log_lo = log(ratio_lo), log_hi = log(ratio_hi);
    for (int attempt = 1; attempt <= 10; attempt++) {
        double target_area = area * (scale_lo + (scale_hi - scale_lo) * pl_rng_uniform(r));
        double aspect_ratio = exp(log_lo + (log_hi - log_lo) * pl_rng_uniform(r));
        int w = py_round(sqrt(target_area * aspect_ratio)), h = py_round(sqrt(target_area / aspect_ratio));
        if (0 < w && w <= W && 0 < h && h <= H) {
            int i = (int)(pl_rng_uniform(r) * (double)(H - h + 1));
            int j = (int)(pl_rng_uniform(r) * (double)(W - w + 1));
            return (Box){i, j, h, w, attempt};
        }
    }
    // fallback to the central crop
    double in_ratio = (double)W / (double)H;
    int w, h;
    if (in_ratio < ratio_lo) {
        w = W;
        h = py_round(w / ratio_lo);
    } else if (in_ratio > ratio_hi) {
        h = H;
        w = py_round(h * ratio_hi);
    } else {   // the whole image
        w = W;
        h = H;
    }
    return (Box){(H - h) / 2, (W - w) / 2, h, w, 0};
}

static Box product_box(PlRng *r, double scale_lo, double scale_hi, int H, int W) {
    PlAugmentOptions o;
    pl_augment_options_default(&o);
    o.scale_min = scale_lo, o.scale_max = scale_hi;
    Box b;
    b.attempt = pl_augment_crop_box(r, &o, H, W, &b.top, &b.left, &b.h, &b.w);
    return b;
}

// A box from an attempt: w and h are sqrt(t r) and sqrt(t / r) rounded, so some area t in [lo, hi] * H * W and ratio
// r in [3/4, 4/3] give t r in [(w - 1/2)^2, (w + 1/2)^2] and t / r in [(h - 1/2)^2, (h + 1/2)^2]: t in
// [(w - 1/2)(h - 1/2), (w + 1/2)(h + 1/2)] and r in [(w - 1/2) / (h + 1/2), (w + 1/2) / (h - 1/2)] must meet the bounds.
static void check_attempt_bounds(const Box *b, double lo, double hi, int H, int W, uint64_t seed) {
    double area = (double)H * W, t_min = (b->w - 0.5) * (b->h - 0.5), t_max = (b->w + 0.5) * (b->h + 0.5);
    double r_min = (b->w - 0.5) / (b->h + 0.5), r_max = b->h > 0.5 ? (b->w + 0.5) / (b->h - 0.5) : INFINITY;
    if (t_min > hi * area * (1 + 1e-12) || t_max < lo * area * (1 - 1e-12))
        fail_msg("%dx%d seed %llu: box %dx%d (area %.4f of the image) cannot come from an area fraction in [%g, %g]", H,
                 W, (unsigned long long)seed, b->h, b->w, b->h * (double)b->w / area, lo, hi);
    if (r_min > (4.0 / 3.0) * (1 + 1e-12) || r_max < 0.75 * (1 - 1e-12))
        fail_msg("%dx%d seed %llu: box %dx%d cannot come from an aspect ratio in [3/4, 4/3]", H, W,
                 (unsigned long long)seed, b->h, b->w);
}

static void check_inside(const Box *b, int H, int W, uint64_t seed) {
    if (!(b->h >= 1 && b->w >= 1 && b->top >= 0 && b->left >= 0 && b->top + b->h <= H && b->left + b->w <= W))
        fail_msg("%dx%d seed %llu: box top %d left %d %dx%d is not inside the image", H, W, (unsigned long long)seed,
                 b->top, b->left, b->h, b->w);
}

// Many draws per shape and scale: the product's box, attempt and random draws equal torchvision's; every box is inside
// the image and within the bounds.
static void test_crop_box_matches_torchvision(void **state) {
    (void)state;
    static const int shapes[][2] = {{64, 64}, {48, 80}, {80, 48}, {224, 224}, {1, 1}, {2, 3}, {7, 5}, {40, 40}, {3, 4}, {16, 9}};
    static const double scales[][2] = {{0.4, 1.0}, {0.08, 1.0}, {1.0, 1.0}, {0.05, 0.4}};
    int total = 0, fallbacks = 0, retried = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t c = 0; c < sizeof scales / sizeof scales[0]; c++) {
            int H = shapes[s][0], W = shapes[s][1];
            double lo = scales[c][0], hi = scales[c][1];
            for (uint64_t seed = 0; seed < 1500; seed++) {
                PlRng r, ref;
                pl_rng_seed(&r, pl_rng_mix(seed, s * 16 + c));
                ref = r;
                Box got = product_box(&r, lo, hi, H, W), want = tv_get_params(&ref, lo, hi, H, W);
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail_msg("%dx%d scale [%g, %g] seed %llu: box (%d, %d, %d, %d) attempt %d, torchvision (%d, %d, %d, "
                             "%d) attempt %d", H, W, lo, hi, (unsigned long long)seed, got.top, got.left, got.h, got.w,
                             got.attempt, want.top, want.left, want.h, want.w, want.attempt);
                if (memcmp(r.s, ref.s, sizeof r.s) != 0)
                    fail_msg("%dx%d seed %llu: the crop took a different number of draws than torchvision", H, W,
                             (unsigned long long)seed);
                check_inside(&got, H, W, seed);
                if (got.attempt) check_attempt_bounds(&got, lo, hi, H, W, seed);
                total++, fallbacks += got.attempt == 0, retried += got.attempt > 1;
            }
        }
    print_message("%d crop boxes = torchvision's: %d after a retry, %d centre-crop fallbacks\n", total, retried, fallbacks);
    assert_true(retried > 0);   // the draws exercised the retry loop
}

// No attempt can fit: the area fraction is at least 0.4 while one side is far too short for any ratio in [3/4, 4/3]
// (or the scale exceeds the image); every draw then takes exactly 20 uniforms and returns torchvision's centre crop.
static void test_crop_fallback(void **state) {
    (void)state;
    static const struct {
        int H, W;
        double lo, hi;
        int top, left, h, w;   // torchvision's centre crop, worked out by hand
    } cases[] = {
        {1, 100, 0.4, 1.0, 0, 49, 1, 1},      // wide: h = 1, w = round(1 * 4/3) = 1, j = (100 - 1) // 2
        {100, 1, 0.4, 1.0, 49, 0, 1, 1},      // tall: w = 1, h = round(1 / (3/4)) = 1, i = 99 // 2
        {10, 200, 0.4, 1.0, 0, 93, 10, 13},   // h = 10, w = round(13.33) = 13, j = 187 // 2
        {200, 10, 0.4, 1.0, 93, 0, 13, 10},   // w = 10, h = round(13.33) = 13, i = 187 // 2
        {6, 50, 0.4, 1.0, 0, 21, 6, 8},       // h = 6, w = round(8) = 8, j = 42 // 2
        {50, 6, 0.4, 1.0, 21, 0, 8, 6},
        {9, 40, 0.5, 1.0, 0, 14, 9, 12},      // h = 9, w = 12, j = 28 // 2
        {30, 36, 2.0, 2.0, 0, 0, 30, 36},     // twice the area never fits; ratio 1.2 is in bounds: the whole image
        {36, 30, 2.0, 2.0, 0, 0, 36, 30},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (uint64_t seed = 0; seed < 1000; seed++) {
            PlRng r, ref, twenty;
            pl_rng_seed(&r, pl_rng_mix(seed, 1000 + c));
            ref = twenty = r;
            Box got = product_box(&r, cases[c].lo, cases[c].hi, cases[c].H, cases[c].W);
            Box want = tv_get_params(&ref, cases[c].lo, cases[c].hi, cases[c].H, cases[c].W);
            Box hand = {cases[c].top, cases[c].left, cases[c].h, cases[c].w, 0};
            if (memcmp(&got, &hand, sizeof got) != 0 || memcmp(&want, &hand, sizeof want) != 0)
                fail_msg("%dx%d seed %llu: fallback box (%d, %d, %d, %d) attempt %d, torchvision (%d, %d, %d, %d), "
                         "by hand (%d, %d, %d, %d)", cases[c].H, cases[c].W, (unsigned long long)seed, got.top, got.left,
                         got.h, got.w, got.attempt, want.top, want.left, want.h, want.w, hand.top, hand.left, hand.h,
                         hand.w);
            for (int i = 0; i < 20; i++) pl_rng_next(&twenty);
            if (memcmp(r.s, twenty.s, sizeof r.s) != 0) fail_msg("%dx%d: the fallback did not take exactly 10 attempts", cases[c].H, cases[c].W);
        }
}

// dst = rot90^k(in) as np.rot90(in, k) over (n, n): one turn is out[i][j] = in[j][n - 1 - i].
static void np_rot90(const float *in, int n, int k, float *out) {
    float a[64], b[64];
    memcpy(a, in, sizeof(float) * n * n);
    for (int t = 0; t < k; t++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) b[i * n + j] = a[j * n + (n - 1 - i)];
        memcpy(a, b, sizeof(float) * n * n);
    }
    memcpy(out, a, sizeof(float) * n * n);
}

// torch.flip / np.flip of (H, W): hflip over the last axis, vflip over the first.
static void np_flip(const float *in, int H, int W, int hflip, int vflip, float *out) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) out[y * W + x] = in[(vflip ? H - 1 - y : y) * W + (hflip ? W - 1 - x : x)];
}

// Exact pixels: worked examples, then every quarter-turn / flip combination of a 5x5 (np.rot90, then np.flip) and the
// flips of a 3x7 image; the 16 combinations on a square give the 8 symmetries of the square.
static void test_flip_rotate_exact(void **state) {
    (void)state;
    const float m3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float out[64];
    const float rot1[9] = {3, 6, 9, 2, 5, 8, 1, 4, 7};   // np.rot90([[1,2,3],[4,5,6],[7,8,9]])
    const float rot2[9] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
    const float rot3[9] = {7, 4, 1, 8, 5, 2, 9, 6, 3};
    const float hf[9] = {3, 2, 1, 6, 5, 4, 9, 8, 7}, vf[9] = {7, 8, 9, 4, 5, 6, 1, 2, 3};
    const float hf_rot1[9] = {9, 6, 3, 8, 5, 2, 7, 4, 1};   // np.fliplr(np.rot90(m)): the anti-transpose
    pl_augment_flip_rotate(m3, 3, 3, 0, 0, 0, out);
    assert_memory_equal(out, m3, sizeof m3);
    pl_augment_flip_rotate(m3, 3, 3, 0, 0, 1, out);
    assert_memory_equal(out, rot1, sizeof rot1);
    pl_augment_flip_rotate(m3, 3, 3, 0, 0, 2, out);
    assert_memory_equal(out, rot2, sizeof rot2);
    pl_augment_flip_rotate(m3, 3, 3, 0, 0, 3, out);
    assert_memory_equal(out, rot3, sizeof rot3);
    pl_augment_flip_rotate(m3, 3, 3, 1, 0, 0, out);
    assert_memory_equal(out, hf, sizeof hf);
    pl_augment_flip_rotate(m3, 3, 3, 0, 1, 0, out);
    assert_memory_equal(out, vf, sizeof vf);
    pl_augment_flip_rotate(m3, 3, 3, 1, 1, 0, out);
    assert_memory_equal(out, rot2, sizeof rot2);   // both flips = a half turn
    pl_augment_flip_rotate(m3, 3, 3, 1, 0, 1, out);
    assert_memory_equal(out, hf_rot1, sizeof hf_rot1);
    // non-square: flips only
    const float m34[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const float m34h[12] = {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9}, m34v[12] = {9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4};
    pl_augment_flip_rotate(m34, 3, 4, 1, 0, 0, out);
    assert_memory_equal(out, m34h, sizeof m34h);
    pl_augment_flip_rotate(m34, 3, 4, 0, 1, 0, out);
    assert_memory_equal(out, m34v, sizeof m34v);
    // every combination on 5x5 against np.rot90 then np.flip
    enum { N = 5 };
    float src[N * N], turned[N * N], want[N * N], seen[16][N * N];
    for (int i = 0; i < N * N; i++) src[i] = (float)(i * 3 + 1);
    int distinct = 0;
    for (int hflip = 0; hflip < 2; hflip++)
        for (int vflip = 0; vflip < 2; vflip++)
            for (int rot = 0; rot < 4; rot++) {
                np_rot90(src, N, rot, turned);
                np_flip(turned, N, N, hflip, vflip, want);
                pl_augment_flip_rotate(src, N, N, hflip, vflip, rot, out);
                if (memcmp(out, want, sizeof want) != 0) fail_msg("5x5 hflip %d vflip %d rot %d differs from numpy", hflip, vflip, rot);
                int fresh = 1;
                for (int k = 0; k < distinct; k++) fresh &= memcmp(seen[k], out, sizeof want) != 0;
                if (fresh) memcpy(seen[distinct++], out, sizeof want);
            }
    assert_int_equal(distinct, 8);
    for (int hflip = 0; hflip < 2; hflip++)
        for (int vflip = 0; vflip < 2; vflip++) {
            float src34[3 * 7], want34[3 * 7];
            for (int i = 0; i < 21; i++) src34[i] = (float)(100 - i);
            np_flip(src34, 3, 7, hflip, vflip, want34);
            pl_augment_flip_rotate(src34, 3, 7, hflip, vflip, 0, out);
            assert_memory_equal(out, want34, sizeof want34);
        }
}

// pl_augment_image with the crop fixed to the whole image (scale 1 on a square, or the fallback) and no jitter: the
// resize is the identity, so each output channel is exactly the standardised quarter turn and flips the key draws after
// the crop (hflip, vflip: u < 1/2; rot: floor(4 u), squares only). Values are small integers, so the standardisation
// sums are exact in any order.
static void check_geometry(int H, int W, int C, double scale, int keys, int *combos_seen) {
    PlAugmentOptions o;
    pl_augment_options_default(&o);
    o.scale_min = o.scale_max = scale;
    o.jitter = 0;
    size_t n = (size_t)H * W;
    float *src = malloc(sizeof(float) * C * n), *dst = malloc(sizeof(float) * C * n);
    float *scratch = malloc(sizeof(float) * C * n), *want = malloc(sizeof(float) * C * n), *fl = malloc(sizeof(float) * n);
    for (size_t i = 0; i < C * n; i++) src[i] = (float)((i * 37) % (C * n)) + 1.0f;   // distinct
    for (int key = 0; key < keys; key++) {
        PlRng r;
        pl_rng_seed(&r, (uint64_t)key);
        int top, left, h, w;
        pl_augment_crop_box(&r, &o, H, W, &top, &left, &h, &w);
        if (!(top == 0 && left == 0 && h == H && w == W)) fail_msg("%dx%d key %d: crop is not the whole image", H, W, key);
        int hflip = pl_rng_uniform(&r) < 0.5, vflip = pl_rng_uniform(&r) < 0.5;
        int rot = H == W ? (int)(pl_rng_uniform(&r) * 4.0) : 0;
        combos_seen[hflip * 8 + vflip * 4 + rot] = 1;
        for (int c = 0; c < C; c++) {
            if (H == W) np_rot90(src + c * n, H, rot, fl);
            else memcpy(fl, src + c * n, sizeof(float) * n);
            np_flip(fl, H, W, hflip, vflip, want + c * n);
        }
        pl_standardise_channels(want, C, H, W);
        pl_augment_image(&o, (uint64_t)key, src, C, H, W, dst, scratch);
        if (memcmp(dst, want, sizeof(float) * C * n) != 0)
            fail_msg("%dx%d key %d: output is not the standardised rot %d hflip %d vflip %d of the input", H, W, key,
                     rot, hflip, vflip);
    }
    free(src), free(dst), free(scratch), free(want), free(fl);
}

static void test_augment_image_geometry(void **state) {
    (void)state;
    int seen[16] = {0}, seen_rect[16] = {0};
    // scale 1 on 8x8: an attempt fits only as 8x8 (w = 7 needs a ratio below 0.879, which makes h 9)
    check_geometry(8, 8, 2, 1.0, 300, seen);
    for (int i = 0; i < 16; i++)
        if (!seen[i]) fail_msg("square: hflip %d vflip %d rot %d never drawn in 300 keys", i / 8, (i / 4) % 2, i % 4);
    // scale 2 on 3x4: no attempt fits, and the fallback keeps the whole image (its ratio 4/3 is within the bounds)
    check_geometry(3, 4, 3, 2.0, 100, seen_rect);
    for (int i = 0; i < 16; i++)
        if (seen_rect[i] != (i % 4 == 0)) fail_msg("3x4: hflip %d vflip %d rot %d drawn %d", i / 8, (i / 4) % 2, i % 4, seen_rect[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crop_box_matches_torchvision),
        cmocka_unit_test(test_crop_fallback),
        cmocka_unit_test(test_flip_rotate_exact),
        cmocka_unit_test(test_augment_image_geometry),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
