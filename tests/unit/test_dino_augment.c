// Unit tests for DINO's multi-crop augmentation (stages/train/pl_dino_augment.h): the bicubic resize against torch's
// F.interpolate(bicubic, align_corners=False) in float64 and the Gaussian blur against an exact float64 separable
// reference (tests/fixtures/dino_augment/make_dino_augment_fixtures.py), the blur's width against PIL's GaussianBlur
// and the solarization against PIL's solarize, both through DINO's own utils.py;
// determinism and purity of the views; crop-box statistics; every probability over many keys within binomial bounds;
// each view equal to its drawn transformations composed by hand; the RGB-only steps off for C != 3.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_dino_augment.h"
#include "pl_npy.h"
#include "pl_rng.h"
#include "pl_train_augment.h"

// Bicubic: the float64 reference against float32 arithmetic with coordinates and weights from double: each output is
// two chained 4-term sums (the weights' absolute sum is at most 1.3 per axis) of float32 products, so a few float32
// units (6e-8) of max |src| times 1.7: measured at most 1.8e-7 of max |src| (torch's own float32 run, whose source
// coordinates are float32, lies 1.1e-6 from the reference). Tolerance 1e-6.
#define TOL_RESIZE 1e-6
// Blur: two chained sums of up to 13 float32 products with float32 weights summing to 1: measured at most 1.2e-7 of
// max |src|; tolerance 1e-6.
#define TOL_BLUR 1e-6

static void load(const char *name, PlNpyArray *a) {
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "tests/fixtures/dino_augment/%s", name);
    pl_test_source_path(rel, path, sizeof path);
    PL_ASSERT_OK(pl_npy_read(path, a));
}

static double max_abs_f(const float *x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static void test_resize_matches_torch(void **state) {
    (void)state;
    PlNpyArray src, cases;
    load("resize_src.npy", &src);
    load("resize_cases.npy", &cases);
    assert_int_equal(src.ndim, 3);
    int C = (int)src.shape[0], H = (int)src.shape[1], W = (int)src.shape[2];
    const float *s = src.data;
    const int64_t *cs = cases.data;
    double scale = max_abs_f(s, (size_t)C * H * W), worst = 0.0;
    for (int64_t i = 0; i < cases.shape[0]; i++) {
        int top = (int)cs[5 * i], left = (int)cs[5 * i + 1], h = (int)cs[5 * i + 2], w = (int)cs[5 * i + 3];
        int S = (int)cs[5 * i + 4];
        char name[64];
        snprintf(name, sizeof name, "resize_%d.npy", (int)i);
        PlNpyArray ref;
        load(name, &ref);
        assert_int_equal(pl_npy_count(&ref), (size_t)C * S * S);
        float *out = malloc(sizeof(float) * S * S), *scratch = malloc(sizeof(float) * ((size_t)h * S + 10 * S));
        double err = 0.0;
        for (int c = 0; c < C; c++) {
            pl_dino_resize_bicubic(s + (size_t)c * H * W, W, top, left, h, w, S, out, scratch);
            const double *r = (const double *)ref.data + (size_t)c * S * S;
            for (int k = 0; k < S * S; k++) err = fmax(err, fabs((double)out[k] - r[k]) / scale);
        }
        if (h == S && w == S) {   // same size: the identity, bit for bit
            for (int c = 0; c < C; c++) {
                pl_dino_resize_bicubic(s + (size_t)c * H * W, W, top, left, h, w, S, out, scratch);
                for (int y = 0; y < S; y++)
                    assert_memory_equal(out + y * S, s + (size_t)c * H * W + (size_t)(top + y) * W + left, sizeof(float) * S);
            }
        }
        if (!(err <= TOL_RESIZE)) fail_msg("crop %d (%d, %d, %dx%d -> %d): max error %.3g of max |src|", (int)i, top, left, h, w, S, err);
        worst = fmax(worst, err);
        free(out), free(scratch);
        pl_npy_free(&ref);
    }
    print_message("bicubic resize vs torch float64: max |error| %.3g of max |src| over %d crops (tolerance %g)\n",
                  worst, (int)cases.shape[0], TOL_RESIZE);
    pl_npy_free(&src), pl_npy_free(&cases);
}

static void blur_case(const char *src_name, const char *ref_fmt, const double *sigmas, int m, double *worst) {
    PlNpyArray src;
    load(src_name, &src);
    int H = (int)src.shape[0], W = (int)src.shape[1];
    size_t n = (size_t)H * W;
    double scale = max_abs_f(src.data, n);
    float *x = malloc(sizeof(float) * n), *scratch = malloc(sizeof(float) * (n + 2 * 6 + 1));
    for (int i = 0; i < m; i++) {
        char name[64];
        snprintf(name, sizeof name, ref_fmt, i);
        PlNpyArray ref;
        load(name, &ref);
        assert_int_equal(pl_npy_count(&ref), n);
        memcpy(x, src.data, sizeof(float) * n);
        pl_dino_gaussian_blur(x, H, W, sigmas[i], scratch);
        double err = 0.0;
        for (size_t k = 0; k < n; k++) err = fmax(err, fabs((double)x[k] - ((const double *)ref.data)[k]) / scale);
        if (!(err <= TOL_BLUR)) fail_msg("%s sigma %g: max error %.3g of max |src|", src_name, sigmas[i], err);
        *worst = fmax(*worst, err);
        pl_npy_free(&ref);
    }
    free(x), free(scratch);
    pl_npy_free(&src);
}

static void test_blur_matches_reference(void **state) {
    (void)state;
    PlNpyArray sig;
    load("blur_sigmas.npy", &sig);
    int m = (int)sig.shape[0];
    double worst = 0.0;
    blur_case("blur_src.npy", "blur_%d.npy", sig.data, m, &worst);
    blur_case("blur_small.npy", "blur_small_%d.npy", sig.data, m, &worst);   // 4x5: taps clamped many times over
    print_message("Gaussian blur vs float64 reference: max |error| %.3g of max |src| over %d sigmas (tolerance %g)\n",
                  worst, m, TOL_BLUR);
    pl_npy_free(&sig);
}

// Standard deviation of a 1-D impulse response w (n taps, centred at n / 2).
static double impulse_std(const double *w, int n) {
    double s = 0.0, ss = 0.0;
    for (int x = 0; x < n; x++) s += w[x], ss += w[x] * (x - n / 2) * (x - n / 2);
    return sqrt(ss / s);
}

// PIL's GaussianBlur (DINO's) is three box blurs of the same variance, on 8-bit values: not the same kernel, so the
// comparison is of what DINO's radius means. (1) The standard deviation of the kernel (a 255 impulse in a 1x81 image)
// equals PIL's within 0.03 pixel for sigma >= 1 (measured at most 0.009, at sigma 2, where the truncation at 3 sigma
// narrows protloc's); below that a sampled Gaussian is narrower than sigma while PIL's boxes keep the variance (0.464
// against PIL's 0.493 at sigma 0.5; documented). (2) On a noisy 8-bit image (noise sd 20 levels) the two blurs
// differ by at most 1 level on average and 8 at most (measured at most 0.62 and 6.3: the box kernels' flatter shape
// on noise, PIL's rounding to 8 bits).
static void test_blur_against_pil(void **state) {
    (void)state;
    PlNpyArray sig, src;
    load("pil_sigmas.npy", &sig);
    load("pil_src.npy", &src);
    int H = (int)src.shape[0], W = (int)src.shape[1];
    size_t n = (size_t)H * W;
    enum { NI = 81 };
    float *x = malloc(sizeof(float) * n), imp[NI];
    float *scratch = malloc(sizeof(float) * (n + NI + 13));
    double wp[NI], wo[NI];
    for (int i = 0; i < (int)sig.shape[0]; i++) {
        double sigma = ((const double *)sig.data)[i];
        char name[64];
        PlNpyArray pil, pimp;
        snprintf(name, sizeof name, "pil_%d.npy", i);
        load(name, &pil);
        snprintf(name, sizeof name, "pil_impulse_%d.npy", i);
        load(name, &pimp);
        assert_int_equal(pl_npy_count(&pimp), NI);
        for (size_t k = 0; k < n; k++) x[k] = ((const uint8_t *)src.data)[k];
        pl_dino_gaussian_blur(x, H, W, sigma, scratch);
        double mean = 0.0, mx = 0.0;
        for (size_t k = 0; k < n; k++) {
            double d = fabs((double)x[k] - ((const uint8_t *)pil.data)[k]);
            mean += d, mx = fmax(mx, d);
        }
        mean /= (double)n;
        memset(imp, 0, sizeof imp);
        imp[NI / 2] = 255.0f;
        pl_dino_gaussian_blur(imp, 1, NI, sigma, scratch);
        for (int k = 0; k < NI; k++) wo[k] = imp[k], wp[k] = ((const uint8_t *)pimp.data)[k];
        double so = impulse_std(wo, NI), sp = impulse_std(wp, NI);
        print_message("sigma %.2f: kernel std protloc %.4f, PIL %.4f; image |diff| mean %.3f max %.2f levels\n", sigma,
                      so, sp, mean, mx);
        if (sigma >= 1.0 && !(fabs(so - sp) <= 0.03)) fail_msg("sigma %g: kernel std %.4f, PIL's %.4f", sigma, so, sp);
        if (!(mean <= 1.0 && mx <= 8.0)) fail_msg("sigma %g: differs from PIL by %.3f on average, %.2f at most", sigma, mean, mx);
        pl_npy_free(&pil), pl_npy_free(&pimp);
    }
    free(x), free(scratch);
    pl_npy_free(&sig), pl_npy_free(&src);
}

#define CANARY 64
static float *alloc_canary(size_t n) {
    float *p = malloc(sizeof(float) * (n + CANARY));
    for (size_t i = 0; i < n + CANARY; i++) p[i] = -12345.0f;
    return p;
}
static void check_canary(const float *p, size_t n, const char *what) {
    for (size_t i = n; i < n + CANARY; i++)
        if (p[i] != -12345.0f) fail_msg("%s: written past its %zu floats", what, n);
}

static void fill_source(float *s, int C, int H, int W, uint64_t seed) {
    PlRng r;
    pl_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)C * H * W; i++) s[i] = (float)pl_rng_uniform(&r);
}

// Same key: the same bytes, whatever the scratch held and in whichever order the views are made; different keys
// (seed, epoch or item differing) differ in every view. Scratch and outputs stay within their sizes.
static void test_determinism(void **state) {
    (void)state;
    PlDinoAugmentOptions o;
    pl_dino_augment_options_default(&o);
    o.global_size = 48, o.local_size = 20, o.n_local = 4;
    PL_ASSERT_OK(pl_dino_augment_options_check(&o));
    for (int rgb = 0; rgb < 2; rgb++) {
        int C = rgb ? 3 : 4, H = 96, W = 80;
        float *src = malloc(sizeof(float) * C * H * W);
        fill_source(src, C, H, W, 7);
        size_t ns = pl_dino_augment_scratch_floats(&o, C, H, W);
        size_t ng = 2 * (size_t)C * 48 * 48, nl = 4 * (size_t)C * 20 * 20;
        float *scratch = alloc_canary(ns), *g1 = alloc_canary(ng), *l1 = alloc_canary(nl);
        float *g2 = malloc(sizeof(float) * ng), *l2 = malloc(sizeof(float) * nl), *v = malloc(sizeof(float) * ng);
        uint64_t key = pl_rng_mix(pl_rng_mix(42, 3), 17);
        pl_dino_augment_views(&o, key, src, C, H, W, rgb, g1, l1, scratch);
        check_canary(scratch, ns, "scratch"), check_canary(g1, ng, "global"), check_canary(l1, nl, "local");
        for (size_t i = 0; i < ns; i++) scratch[i] = (float)i;   // dirty scratch
        for (int view = 5; view >= 0; view--) {               // views one at a time, backwards
            float *dst = view < 2 ? g2 + view * (ng / 2) : l2 + (view - 2) * (nl / 4);
            pl_dino_augment_view(&o, key, view, src, C, H, W, rgb, dst, scratch);
        }
        assert_memory_equal(g1, g2, sizeof(float) * ng);
        assert_memory_equal(l1, l2, sizeof(float) * nl);
        const uint64_t others[3] = {pl_rng_mix(pl_rng_mix(43, 3), 17), pl_rng_mix(pl_rng_mix(42, 4), 17),
                                    pl_rng_mix(pl_rng_mix(42, 3), 18)};
        for (int k = 0; k < 3; k++) {
            pl_dino_augment_views(&o, others[k], src, C, H, W, rgb, g2, l2, scratch);
            for (int view = 0; view < 6; view++) {
                const float *a = view < 2 ? g1 + view * (ng / 2) : l1 + (view - 2) * (nl / 4);
                const float *b = view < 2 ? g2 + view * (ng / 2) : l2 + (view - 2) * (nl / 4);
                if (memcmp(a, b, sizeof(float) * (view < 2 ? ng / 2 : nl / 4)) == 0)
                    fail_msg("rgb %d: key %d gives view %d the same bytes as the first key", rgb, k, view);
            }
        }
        // each view of one key differs from the others (independent streams)
        assert_true(memcmp(g1, g1 + ng / 2, sizeof(float) * ng / 2) != 0);
        assert_true(memcmp(l1, l1 + nl / 4, sizeof(float) * nl / 4) != 0);
        free(src), free(scratch), free(g1), free(l1), free(g2), free(l2), free(v);
    }
}

// The box a view drew is pl_augment_crop_box's first draw from the view's stream (one crop sampler), inside the
// image, and (unless the fallback) its size comes from an area fraction in the view's scale range and an aspect ratio
// in [3/4, 4/3] up to the rounding to whole pixels.
static void test_crop_box_stats(void **state) {
    (void)state;
    PlDinoAugmentOptions o;
    pl_dino_augment_options_default(&o);
    const int keys = 4000, views = 2 + o.n_local;
    static const int shapes[][2] = {{512, 512}, {300, 420}};
    for (int s = 0; s < 2; s++) {
        int H = shapes[s][0], W = shapes[s][1], fallbacks = 0;
        double area_sum[2] = {0, 0}, lo_seen[2] = {1, 1}, hi_seen[2] = {0, 0};
        int count[2] = {0, 0};
        for (int key = 0; key < keys; key++)
            for (int view = 0; view < views; view++) {
                PlDinoViewParams p;
                pl_dino_augment_view_params(&o, (uint64_t)key * 7919 + 11, view, H, W, 0, &p);
                int g = view < 2 ? 0 : 1;
                double lo = g ? o.local_scale_min : o.global_scale_min, hi = g ? o.local_scale_max : o.global_scale_max;
                PlAugmentOptions box;
                pl_augment_options_default(&box);
                box.scale_min = lo, box.scale_max = hi;
                PlRng r;
                pl_rng_seed(&r, pl_rng_mix((uint64_t)key * 7919 + 11, (uint64_t)view));
                int top, left, h, w, att = pl_augment_crop_box(&r, &box, H, W, &top, &left, &h, &w);
                if (!(att == p.attempt && top == p.top && left == p.left && h == p.h && w == p.w))
                    fail_msg("key %d view %d: box differs from pl_augment_crop_box's", key, view);
                if (!(p.top >= 0 && p.left >= 0 && p.h >= 1 && p.w >= 1 && p.top + p.h <= H && p.left + p.w <= W))
                    fail_msg("key %d view %d: box outside the image", key, view);
                assert_int_equal(p.size, g ? o.local_size : o.global_size);
                if (p.attempt == 0) {
                    fallbacks++;
                    continue;
                }
                double area = (double)H * W, t_min = (p.w - 0.5) * (p.h - 0.5), t_max = (p.w + 0.5) * (p.h + 0.5);
                double r_min = (p.w - 0.5) / (p.h + 0.5), r_max = (p.w + 0.5) / (p.h - 0.5);
                if (t_min > hi * area * (1 + 1e-12) || t_max < lo * area * (1 - 1e-12))
                    fail_msg("key %d view %d: box %dx%d is not an area fraction in [%g, %g]", key, view, p.h, p.w, lo, hi);
                if (r_min > 4.0 / 3.0 * (1 + 1e-12) || r_max < 0.75 * (1 - 1e-12))
                    fail_msg("key %d view %d: box %dx%d is not an aspect ratio in [3/4, 4/3]", key, view, p.h, p.w);
                double f = p.h * (double)p.w / area;
                area_sum[g] += f, count[g]++, lo_seen[g] = fmin(lo_seen[g], f), hi_seen[g] = fmax(hi_seen[g], f);
            }
        // the boxes span each scale range; a local box always fits at the first attempt on these shapes (area 0.4 at
        // aspect 4/3 is 0.73 of each side), so its area fraction is uniform on [0.05, 0.4] up to the rounding: mean
        // 0.225 within 5 standard errors (0.35 / sqrt(12 n)) + 2e-3 of rounding. Global boxes near area 1 and away
        // from aspect 1 do not fit and are redrawn (torchvision's rejection), so their mean lies below the midpoint.
        for (int g = 0; g < 2; g++) {
            double lo = g ? o.local_scale_min : o.global_scale_min, hi = g ? o.local_scale_max : o.global_scale_max;
            double mean = area_sum[g] / count[g];
            print_message("%dx%d %s: %d boxes, area fraction mean %.4f, range [%.4f, %.4f]\n", H, W,
                          g ? "local" : "global", count[g], mean, lo_seen[g], hi_seen[g]);
            double cap = fmin(hi, fmin(H, 4.0 * W / 3.0) * fmin(W, 4.0 * H / 3.0) / ((double)H * W));   // largest fit
            if (!(lo_seen[g] < lo + 0.01 && hi_seen[g] > cap - 0.03)) fail_msg("the boxes do not span [%g, %g]", lo, cap);
        }
        double local_mean = area_sum[1] / count[1];
        if (!(fabs(local_mean - 0.225) <= 5 * 0.35 / sqrt(12.0 * count[1]) + 2e-3))
            fail_msg("local mean area fraction %.4f, expected 0.225", local_mean);
        assert_true(fallbacks <= keys * views / 1000);   // a fallback needs 10 misses: rare on these shapes
    }
}

// |count / n - p| within 5 binomial standard deviations (and exact at p = 0 or 1).
static void check_rate(const char *what, long count, long n, double p) {
    double rate = (double)count / n, sd = sqrt(p * (1 - p) / n);
    print_message("%-28s %.4f (p %.2f, n %ld)\n", what, rate, p, n);
    if (!(fabs(rate - p) <= 5 * sd)) fail_msg("%s: rate %.4f over %ld, expected %.3f", what, rate, n, p);
}

static void test_probabilities(void **state) {
    (void)state;
    PlDinoAugmentOptions o;
    pl_dino_augment_options_default(&o);
    const long keys = 20000;
    long hflip = 0, vflip = 0, rot[4] = {0}, jitter = 0, blur[3] = {0}, gray = 0, sol[2] = {0}, views_n[3] = {0};
    long gray_off = 0, sol_off = 0;
    double sig_sum = 0, sig_lo = 10, sig_hi = 0, b_sum = 0, k_sum = 0, s_sum = 0, f_lo = 10, f_hi = 0, s_lo = 10, s_hi = 0;
    long nf = 0;
    for (long key = 0; key < keys; key++)
        for (int view = 0; view < 2 + o.n_local; view++) {
            PlDinoViewParams p, q;
            uint64_t k64 = pl_rng_mix(99, (uint64_t)key);
            pl_dino_augment_view_params(&o, k64, view, 512, 512, 1, &p);
            pl_dino_augment_view_params(&o, k64, view, 512, 512, 0, &q);
            int kind = view < 2 ? view : 2;
            views_n[kind]++;
            hflip += p.hflip, vflip += p.vflip, rot[p.rot]++, jitter += p.jitter, blur[kind] += p.blur;
            gray += p.grayscale;
            if (view < 2) sol[view] += p.solarize;
            else if (p.solarize) fail_msg("a local view solarized");
            gray_off += q.grayscale, sol_off += q.solarize;
            sig_sum += p.sigma, sig_lo = fmin(sig_lo, p.sigma), sig_hi = fmax(sig_hi, p.sigma);
            if (view == 0 && key < 2000)
                for (int c = 0; c < 4; c++) {
                    double b, k, s;
                    pl_dino_augment_jitter_factors(&o, p.jitter_key, c, &b, &k, &s);
                    b_sum += b, k_sum += k, s_sum += s, nf++;
                    f_lo = fmin(f_lo, fmin(b, k)), f_hi = fmax(f_hi, fmax(b, k)), s_lo = fmin(s_lo, s), s_hi = fmax(s_hi, s);
                }
        }
    long n = keys * (2 + o.n_local);
    check_rate("horizontal flip", hflip, n, 0.5);
    check_rate("vertical flip", vflip, n, 0.5);
    for (int r = 0; r < 4; r++) check_rate("quarter turns", rot[r], n, 0.25);
    check_rate("jitter", jitter, n, 0.8);
    check_rate("grayscale (RGB)", gray, n, 0.2);
    check_rate("blur, global 1", blur[0], views_n[0], 1.0);
    check_rate("blur, global 2", blur[1], views_n[1], 0.1);
    check_rate("blur, locals", blur[2], views_n[2], 0.5);
    check_rate("solarize, global 1 (RGB)", sol[0], views_n[0], 0.0);
    check_rate("solarize, global 2 (RGB)", sol[1], views_n[1], 0.2);
    assert_int_equal(gray_off, 0);
    assert_int_equal(sol_off, 0);
    // sigma uniform on [0.1, 2.0]: mean 1.05, standard error 1.9 / sqrt(12 n)
    double sm = sig_sum / n;
    print_message("sigma mean %.4f range [%.4f, %.4f]; jitter factors mean %.4f %.4f %.4f, range [%.4f, %.4f], "
                  "saturation [%.4f, %.4f]\n", sm, sig_lo, sig_hi, b_sum / nf, k_sum / nf, s_sum / nf, f_lo, f_hi, s_lo, s_hi);
    assert_true(fabs(sm - 1.05) <= 5 * 1.9 / sqrt(12.0 * n));
    assert_true(sig_lo >= 0.1 && sig_hi <= 2.0 && sig_lo < 0.11 && sig_hi > 1.99);
    assert_true(f_lo >= 0.6 && f_hi <= 1.4 && f_lo < 0.61 && f_hi > 1.39 && s_lo >= 0.8 && s_hi <= 1.2);
    assert_true(fabs(b_sum / nf - 1.0) < 5 * 0.8 / sqrt(12.0 * nf) && fabs(k_sum / nf - 1.0) < 5 * 0.8 / sqrt(12.0 * nf));
    // switched off: no vertical flips or turns
    o.vflip_rot90 = 0;
    for (long key = 0; key < 2000; key++) {
        PlDinoViewParams p;
        pl_dino_augment_view_params(&o, (uint64_t)key, (int)(key % 10), 512, 512, 0, &p);
        assert_int_equal(p.vflip, 0);
        assert_int_equal(p.rot, 0);
    }
}

// A source the size of the views with crop scale 1: every box is the whole image (an attempt fits only as the whole
// square, else the fallback is the whole square) and the resize is the identity (t = 0: weights 0, 1, 0, 0), so each
// view is its drawn transformations applied by hand to the source.
typedef struct Setup {
    PlDinoAugmentOptions o;
    int C, S;
    float *src, *out, *want, *scratch;
} Setup;

static void setup_open(Setup *t, int C, int S) {
    pl_dino_augment_options_default(&t->o);
    t->o.global_size = t->o.local_size = S, t->o.n_local = 2;
    t->o.global_scale_min = t->o.global_scale_max = t->o.local_scale_min = t->o.local_scale_max = 1.0;
    t->o.jitter_p = 0, t->o.blur_p[0] = t->o.blur_p[1] = t->o.blur_p[2] = 0;
    t->o.grayscale_p = t->o.solarize_p = 0;
    t->C = C, t->S = S;
    size_t n = (size_t)C * S * S;
    t->src = malloc(sizeof(float) * n), t->out = malloc(sizeof(float) * n), t->want = malloc(sizeof(float) * n);
    t->scratch = malloc(sizeof(float) * pl_dino_augment_scratch_floats(&t->o, C, S, S));
    fill_source(t->src, C, S, S, 2024);
}
static void setup_close(Setup *t) { free(t->src), free(t->out), free(t->want), free(t->scratch); }

// want = the view's flips and turns of the source; returns its params.
static PlDinoViewParams geometry(Setup *t, uint64_t key, int view, int rgb) {
    PlDinoViewParams p;
    pl_dino_augment_view_params(&t->o, key, view, t->S, t->S, rgb && t->C == 3, &p);
    if (!(p.top == 0 && p.left == 0 && p.h == t->S && p.w == t->S)) fail_msg("key %llu: crop is not the whole image", (unsigned long long)key);
    size_t n = (size_t)t->S * t->S;
    for (int c = 0; c < t->C; c++) pl_augment_flip_rotate(t->src + c * n, t->S, t->S, p.hflip, p.vflip, p.rot, t->want + c * n);
    return p;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double m = fmax(max_abs_f(b, n), 1e-30), e = 0.0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e / m;
}

// Jitter: two float32 roundings of the factors and one product and sum per value: tolerance 1e-6 of the largest value.
static void test_view_composition(void **state) {
    (void)state;
    Setup t;
    setup_open(&t, 4, 24);
    size_t n = 24 * 24;
    int turned = 0, jittered = 0, blurred = 0;
    for (uint64_t key = 0; key < 60; key++)
        for (int view = 0; view < 4; view++) {
            t.o.jitter_p = 0, t.o.blur_p[0] = t.o.blur_p[1] = t.o.blur_p[2] = 0;
            PlDinoViewParams p = geometry(&t, key, view, 0);
            pl_dino_augment_view(&t.o, key, view, t.src, 4, 24, 24, 0, t.out, t.scratch);
            assert_memory_equal(t.out, t.want, sizeof(float) * 4 * n);
            turned += p.rot != 0;
            // jitter always: channel c = b (k x + (1 - k) mean)
            t.o.jitter_p = 1;
            p = geometry(&t, key, view, 0);
            assert_true(p.jitter);
            for (int c = 0; c < 4; c++) {
                double b, k, s, m = 0.0;
                pl_dino_augment_jitter_factors(&t.o, p.jitter_key, c, &b, &k, &s);
                float *w = t.want + c * n;
                for (size_t i = 0; i < n; i++) m += w[i];
                m /= (double)n;
                for (size_t i = 0; i < n; i++) w[i] = (float)(b * (k * w[i] + (1 - k) * m));
            }
            pl_dino_augment_view(&t.o, key, view, t.src, 4, 24, 24, 0, t.out, t.scratch);
            double e = max_rel(t.out, t.want, 4 * n);
            if (!(e <= 1e-6)) fail_msg("key %llu view %d: jitter differs by %.3g", (unsigned long long)key, view, e);
            jittered++;
            // blur always, no jitter: exactly pl_dino_gaussian_blur of each turned channel at the drawn sigma
            t.o.jitter_p = 0, t.o.blur_p[0] = t.o.blur_p[1] = t.o.blur_p[2] = 1;
            p = geometry(&t, key, view, 0);
            assert_true(p.blur);
            float *bs = malloc(sizeof(float) * (n + 2 * pl_dino_blur_radius(p.sigma) + 1));
            for (int c = 0; c < 4; c++) pl_dino_gaussian_blur(t.want + c * n, 24, 24, p.sigma, bs);
            free(bs);
            pl_dino_augment_view(&t.o, key, view, t.src, 4, 24, 24, 0, t.out, t.scratch);
            assert_memory_equal(t.out, t.want, sizeof(float) * 4 * n);
            blurred++;
        }
    assert_true(turned > 100);
    print_message("%d views composed by hand: geometry and blur bit for bit, jitter within 1e-6 (%d)\n", blurred, jittered);
    setup_close(&t);
}

static float luma(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

// RGB (C == 3, rgb on): DINO's jitter (one b, k, s), grayscale and solarization (global 2 only) by hand; with C != 3
// (or rgb off) the RGB-only steps are off: the same bytes whatever their probabilities.
static void test_rgb_steps(void **state) {
    (void)state;
    Setup t;
    setup_open(&t, 3, 20);
    size_t n = 20 * 20;
    int solarized = 0;
    for (uint64_t key = 0; key < 40; key++)
        for (int view = 0; view < 4; view++) {
            t.o.jitter_p = 1, t.o.grayscale_p = 0, t.o.solarize_p = 0;
            PlDinoViewParams p = geometry(&t, key, view, 1);
            double b, k, s, m = 0.0;
            pl_dino_augment_jitter_factors(&t.o, p.jitter_key, 0, &b, &k, &s);
            float *R = t.want, *G = R + n, *B = G + n;
            for (size_t i = 0; i < n; i++) m += luma(R[i], G[i], B[i]);
            m /= (double)n;
            for (size_t i = 0; i < n; i++) {   // contrast (luma mean), saturation (pixel luma), brightness
                double L = luma(R[i], G[i], B[i]);
                float *ch[3] = {R, G, B};
                for (int c = 0; c < 3; c++) ch[c][i] = (float)(b * (k * (s * ch[c][i] + (1 - s) * L) + (1 - k) * m));
            }
            pl_dino_augment_view(&t.o, key, view, t.src, 3, 20, 20, 1, t.out, t.scratch);
            double e = max_rel(t.out, t.want, 3 * n);
            if (!(e <= 1e-6)) fail_msg("key %llu view %d: RGB jitter differs by %.3g", (unsigned long long)key, view, e);
            // grayscale always: the three channels are the luma
            t.o.jitter_p = 0, t.o.grayscale_p = 1;
            p = geometry(&t, key, view, 1);
            assert_true(p.grayscale);
            pl_dino_augment_view(&t.o, key, view, t.src, 3, 20, 20, 1, t.out, t.scratch);
            for (size_t i = 0; i < n; i++) {
                float L = luma(R[i], G[i], B[i]);
                if (!(t.out[i] == L && t.out[n + i] == L && t.out[2 * n + i] == L)) fail_msg("grayscale is not the luma");
            }
            // solarization always: global 2 only, x >= 0.5 -> 1 - x
            t.o.grayscale_p = 0, t.o.solarize_p = 1;
            p = geometry(&t, key, view, 1);
            assert_int_equal(p.solarize, view == 1);
            if (view == 1)
                for (size_t i = 0; i < 3 * n; i++)
                    if (t.want[i] >= 0.5f) t.want[i] = 1.0f - t.want[i], solarized++;
            pl_dino_augment_view(&t.o, key, view, t.src, 3, 20, 20, 1, t.out, t.scratch);
            assert_memory_equal(t.out, t.want, sizeof(float) * 3 * n);
        }
    assert_true(solarized > 0);
    setup_close(&t);
    // RGB steps on at probability 1, jitter on: rgb with C = 4 or 1 gives the bytes of rgb off; C = 3 differs
    for (int C = 1; C <= 4; C++) {
        Setup u;
        setup_open(&u, C, 16);
        u.o.jitter_p = 1, u.o.grayscale_p = u.o.solarize_p = 1, u.o.blur_p[1] = 1;
        size_t m = (size_t)C * 16 * 16;
        float *off = malloc(sizeof(float) * m);
        int differ = 0;
        for (uint64_t key = 0; key < 10; key++)
            for (int view = 0; view < 4; view++) {
                pl_dino_augment_view(&u.o, key, view, u.src, C, 16, 16, 1, u.out, u.scratch);
                pl_dino_augment_view(&u.o, key, view, u.src, C, 16, 16, 0, off, u.scratch);
                differ += memcmp(u.out, off, sizeof(float) * m) != 0;
            }
        if (C == 3) assert_int_equal(differ, 40);
        else if (differ) fail_msg("C = %d: rgb changed %d views", C, differ);
        free(off);
        setup_close(&u);
    }
}

// Solarization against DINO's own utils.Solarization (PIL's ImageOps.solarize, 8-bit threshold 128) on every 8-bit
// value: the view of x / 255 (global 2, everything else off), times 255 and rounded, is PIL's result turned the same way.
static void test_solarize_matches_dino(void **state) {
    (void)state;
    PlNpyArray src, ref;
    load("solarize_src.npy", &src);
    load("solarize.npy", &ref);
    Setup t;
    setup_open(&t, 3, 16);
    t.o.solarize_p = 1;
    size_t n = 16 * 16;
    float *ref_f = malloc(sizeof(float) * 3 * n), *ref_turned = malloc(sizeof(float) * 3 * n);
    for (size_t i = 0; i < 3 * n; i++) t.src[i] = ((const uint8_t *)src.data)[i] / 255.0f, ref_f[i] = ((const uint8_t *)ref.data)[i];
    int changed = 0;
    for (uint64_t key = 0; key < 8; key++) {
        PlDinoViewParams p = geometry(&t, key, 1, 1);
        assert_true(p.solarize);
        for (int c = 0; c < 3; c++) pl_augment_flip_rotate(ref_f + c * n, 16, 16, p.hflip, p.vflip, p.rot, ref_turned + c * n);
        pl_dino_augment_view(&t.o, key, 1, t.src, 3, 16, 16, 1, t.out, t.scratch);
        for (size_t i = 0; i < 3 * n; i++) {
            if ((float)nearbyint(t.out[i] * 255.0) != ref_turned[i])
                fail_msg("key %llu value %zu: %.6f * 255 is not PIL's %g", (unsigned long long)key, i, t.out[i], ref_turned[i]);
            changed += ref_turned[i] != t.want[i] * 255.0f;
        }
    }
    assert_true(changed > 0);
    free(ref_f), free(ref_turned);
    setup_close(&t);
    pl_npy_free(&src), pl_npy_free(&ref);
}

static void test_options_check(void **state) {
    (void)state;
    PlDinoAugmentOptions o, d;
    pl_dino_augment_options_default(&d);
    PL_ASSERT_OK(pl_dino_augment_options_check(&d));
    assert_int_equal(d.global_size, 224), assert_int_equal(d.local_size, 96), assert_int_equal(d.n_local, 8);
    o = d, o.local_size = 0;
    assert_int_equal(pl_dino_augment_options_check(&o), PL_ERR_ARG);
    o = d, o.n_local = -1;
    assert_int_equal(pl_dino_augment_options_check(&o), PL_ERR_ARG);
    o = d, o.local_scale_min = 0.5;   // above its max 0.4
    assert_int_equal(pl_dino_augment_options_check(&o), PL_ERR_ARG);
    o = d, o.blur_p[1] = 1.5;
    assert_int_equal(pl_dino_augment_options_check(&o), PL_ERR_ARG);
    o = d, o.blur_sigma_min = 0;
    assert_int_equal(pl_dino_augment_options_check(&o), PL_ERR_ARG);
    o = d, o.contrast = 1.0;
    assert_int_equal(pl_dino_augment_options_check(&o), PL_ERR_ARG);
    o = d, o.n_local = 0;   // no locals: fine, local may be NULL
    PL_ASSERT_OK(pl_dino_augment_options_check(&o));
    o.global_size = 8;
    float src[2 * 10 * 12], g[2 * 2 * 8 * 8];
    float *scratch = malloc(sizeof(float) * pl_dino_augment_scratch_floats(&o, 2, 10, 12));
    for (int i = 0; i < 240; i++) src[i] = (float)i;
    pl_dino_augment_views(&o, 5, src, 2, 10, 12, 0, g, NULL, scratch);
    free(scratch);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_matches_torch),
        cmocka_unit_test(test_blur_matches_reference),
        cmocka_unit_test(test_blur_against_pil),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_crop_box_stats),
        cmocka_unit_test(test_probabilities),
        cmocka_unit_test(test_view_composition),
        cmocka_unit_test(test_rgb_steps),
        cmocka_unit_test(test_solarize_matches_dino),
        cmocka_unit_test(test_options_check),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
