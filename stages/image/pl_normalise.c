// Normalisation: self / fixed / none with optional percentile clipping (see pl_normalise.h).
#include "pl_normalise.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

void pl_norm_spec_default(PlNormSpec *spec, PlNormMode mode) {
    memset(spec, 0, sizeof *spec);
    spec->mode = mode;
    spec->clip_low = 0.0f;
    spec->clip_high = 100.0f;
    spec->eps = 1e-7;
}

PlStatus pl_norm_mode_parse(const char *name, PlNormMode *out) {
    if (name && strcmp(name, "self") == 0) *out = PL_NORM_SELF;
    else if (name && strcmp(name, "fixed") == 0) *out = PL_NORM_FIXED;
    else if (name && strcmp(name, "none") == 0) *out = PL_NORM_NONE;
    else return PL_FAIL(PL_ERR_ARG, "unknown normalisation '%s' (self, fixed, none)", name ? name : "");
    return PL_OK;
}

static PlStatus parse_floats(const char *csv, float *out, int *n, const char *what) {
    *n = 0;
    const char *p = csv;
    while (p && *p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v)) return PL_FAIL(PL_ERR_ARG, "%s: '%s' is not a list of numbers", what, csv);
        if (*n == PL_NORM_MAX_SLOTS) return PL_FAIL(PL_ERR_ARG, "%s: more than %d values", what, PL_NORM_MAX_SLOTS);
        out[(*n)++] = (float)v;
        while (*end == ' ') end++;
        if (*end == ',') end++;
        else if (*end) return PL_FAIL(PL_ERR_ARG, "%s: unexpected '%s' in '%s'", what, end, csv);
        p = end;
    }
    return PL_OK;
}

PlStatus pl_norm_spec_set_fixed(PlNormSpec *spec, const char *mean_csv, const char *std_csv) {
    int nm = 0, ns = 0;
    PL_TRY(parse_floats(mean_csv, spec->mean, &nm, "normalisation mean"));
    PL_TRY(parse_floats(std_csv, spec->std, &ns, "normalisation std"));
    if (nm != ns) return PL_FAIL(PL_ERR_ARG, "normalisation: %d means but %d stds", nm, ns);
    for (int i = 0; i < ns; i++)
        if (!(spec->std[i] > 0.0f)) return PL_FAIL(PL_ERR_ARG, "normalisation std[%d] = %g must be > 0", i, (double)spec->std[i]);
    spec->n_stats = nm;
    return PL_OK;
}

PlStatus pl_norm_spec_validate(const PlNormSpec *spec, int n_slots) {
    if (spec->mode != PL_NORM_SELF && spec->mode != PL_NORM_FIXED && spec->mode != PL_NORM_NONE)
        return PL_FAIL(PL_ERR_ARG, "unknown normalisation mode %d", (int)spec->mode);
    if (!(spec->clip_low >= 0.0f && spec->clip_high <= 100.0f && spec->clip_low < spec->clip_high))
        return PL_FAIL(PL_ERR_ARG, "percentile clip %g..%g must satisfy 0 <= low < high <= 100", (double)spec->clip_low,
                       (double)spec->clip_high);
    if (spec->mode == PL_NORM_SELF && !(spec->eps > 0.0)) return PL_FAIL(PL_ERR_ARG, "normalisation eps must be > 0");
    if (spec->mode == PL_NORM_FIXED) {
        if (spec->n_stats == 0 && n_slots != 3)
            return PL_FAIL(PL_ERR_ARG, "fixed normalisation for %d slots needs a mean and std per slot (ImageNet defaults cover 3 slots only)", n_slots);
        if (spec->n_stats != 0 && spec->n_stats != n_slots)
            return PL_FAIL(PL_ERR_ARG, "fixed normalisation lists %d mean/std values but the model has %d slots", spec->n_stats, n_slots);
    }
    return PL_OK;
}

static int clipping(const PlNormSpec *spec) { return spec->clip_low > 0.0f || spec->clip_high < 100.0f; }

size_t pl_norm_scratch_bytes(const PlNormSpec *spec, size_t n) { return clipping(spec) ? n * sizeof(float) : 0; }

// k-th smallest of a[0..n) (a is permuted); Hoare-style quickselect with median-of-3 pivots.
static float select_kth(float *a, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        float x = a[lo], y = a[mid], z = a[hi];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j], a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

double pl_percentile(const float *x, size_t n, double p, float *scratch) {
    if (n == 0) return 0.0f;
    memcpy(scratch, x, n * sizeof(float));
    double pos = p / 100.0 * (double)(n - 1);
    size_t k = (size_t)floor(pos);
    if (k >= n - 1) return select_kth(scratch, n, n - 1);
    double frac = pos - (double)k;
    float a = select_kth(scratch, n, k);
    // after selection, everything right of k is >= a: the (k+1)-th smallest is their minimum
    float b = scratch[k + 1];
    for (size_t i = k + 2; i < n; i++) b = scratch[i] < b ? scratch[i] : b;
    return (double)a + ((double)b - (double)a) * frac;
}

PlStatus pl_norm_stats(const PlNormSpec *spec, const float *x, size_t n, int bits, int is_float, void *scratch,
                       PlChannelStats *st) {
    memset(st, 0, sizeof *st);
    st->lo = -INFINITY;
    st->hi = INFINITY;
    st->max_value = is_float ? 1.0 : bits == 8 ? 255.0 : bits == 16 ? 65535.0 : 4294967295.0;
    if (n == 0) return PL_FAIL(PL_ERR_ARG, "normalisation of an empty plane");
    if (clipping(spec)) {
        if (!scratch) return PL_FAIL(PL_ERR_INTERNAL, "percentile clipping needs scratch memory");
        st->lo = spec->clip_low > 0.0f ? pl_percentile(x, n, spec->clip_low, scratch) : -INFINITY;
        st->hi = spec->clip_high < 100.0f ? pl_percentile(x, n, spec->clip_high, scratch) : INFINITY;
    }
    if (spec->mode != PL_NORM_SELF) return PL_OK;
    const double lo = st->lo, hi = st->hi;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i] < lo ? lo : x[i] > hi ? hi : (double)x[i];
        sum += v;
    }
    double mean = sum / (double)n, ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i] < lo ? lo : x[i] > hi ? hi : (double)x[i];
        double d = v - mean;
        ss += d * d;
    }
    st->mean = mean;
    st->std = sqrt(ss / (double)n);
    if (!isfinite(st->mean) || !isfinite(st->std))
        return PL_FAIL(PL_ERR_NUMERIC, "normalisation statistics are not finite (mean %g, std %g)", st->mean, st->std);
    return PL_OK;
}

void pl_norm_affine(const PlNormSpec *spec, const PlChannelStats *st, int slot, double *shift, double *scale) {
    if (spec->mode == PL_NORM_SELF) {
        *shift = st->mean;
        *scale = 1.0 / (st->std + spec->eps);
    } else if (spec->mode == PL_NORM_FIXED) {
        double m, s;
        if (spec->n_stats > 0) {
            int k = slot < spec->n_stats ? slot : spec->n_stats - 1;
            m = spec->mean[k], s = spec->std[k];
        } else {
            int k = slot < 3 ? slot : 2;
            m = imagenet_mean[k], s = imagenet_std[k];
        }
        *shift = m * st->max_value;          // (x/max - m)/s == (x - m*max) * 1/(s*max)
        *scale = 1.0 / (s * st->max_value);
    } else {
        *shift = 0.0;
        *scale = 1.0;
    }
}

void pl_norm_apply(const float *x, size_t n, double lo, double hi, double shift, double scale, float *y) {
    // double arithmetic, one rounding to float at the end (matches a float64 NumPy reference to ~0.5 ulp)
    if (isinf(lo) && isinf(hi)) {
        for (size_t i = 0; i < n; i++) y[i] = (float)(((double)x[i] - shift) * scale);
    } else {
        for (size_t i = 0; i < n; i++) {
            double v = x[i] < lo ? lo : x[i] > hi ? hi : (double)x[i];
            y[i] = (float)((v - shift) * scale);
        }
    }
}
