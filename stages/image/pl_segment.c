// Nucleus segmentation: Gaussian blur, Otsu, contrast rule, hole filling, EDT, dynamics watershed, filters.
#include "pl_segment.h"

#include "pl_image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PL_SEG_BINS 4096

struct PlSegmenter {
    PlSegmentParams p;
    int H, W;
    int radius;          // Gaussian kernel radius (0 = no smoothing)
    float *kernel;       // (2*radius+1)
    float *smooth;       // (H, W) smoothed image
    float *tmp;          // (H, W) blur intermediate, then |dx| samples for the noise median
    float *dist;         // (H, W) distance to background (px)
    int32_t *parent;     // (H, W) union-find parents, later per-object flags
    int32_t *order;      // (H, W) pixel order / flood lists / id maps
    int32_t *stack;      // (H, W) flood stack, later per-object areas
    float *line_f;       // (max(H,W)) EDT 1-D input
    float *line_z;       // (max(H,W)+1) EDT parabola boundaries
    int32_t *line_v;     // (max(H,W)) EDT parabola positions
    int32_t *key_count;  // (max_key + 2) counting sort of squared distances
    int max_key;
    double *hist;        // (PL_SEG_BINS)
    void *slab;
};

void pl_segment_params_default(PlSegmentParams *p) {
    p->pixel_size_um = 0.206;
    p->sigma_um = 0.5;
    p->min_area_um2 = 20.0;
    p->max_area_um2 = 1500.0;
    p->max_hole_um2 = 100.0;
    p->split_h_um = 1.0;
    p->min_contrast = 5.0;
    p->exclude_border = 1;
}

static PlStatus validate_params(const PlSegmentParams *p) {
    if (!(p->pixel_size_um > 0) || !isfinite(p->pixel_size_um))
        return PL_FAIL(PL_ERR_ARG, "segmentation: pixel size must be > 0 µm (got %g)", p->pixel_size_um);
    if (!(p->sigma_um >= 0) || !isfinite(p->sigma_um) || p->sigma_um / p->pixel_size_um > 50)
        return PL_FAIL(PL_ERR_ARG, "segmentation: smoothing sigma %g µm is negative or over 50 px", p->sigma_um);
    if (!(p->min_area_um2 >= 0) || !(p->max_area_um2 > p->min_area_um2) || !isfinite(p->min_area_um2))
        return PL_FAIL(PL_ERR_ARG, "segmentation: need 0 <= min area (%g µm²) < max area (%g µm²)",
                       p->min_area_um2, p->max_area_um2);
    if (!(p->max_hole_um2 >= 0) || !isfinite(p->max_hole_um2))
        return PL_FAIL(PL_ERR_ARG, "segmentation: max hole area must be >= 0 µm² (got %g)", p->max_hole_um2);
    if (!(p->split_h_um >= 0) || !isfinite(p->split_h_um))
        return PL_FAIL(PL_ERR_ARG, "segmentation: split height must be >= 0 µm (got %g)", p->split_h_um);
    if (!(p->min_contrast >= 0) || !isfinite(p->min_contrast))
        return PL_FAIL(PL_ERR_ARG, "segmentation: min contrast must be >= 0 (got %g)", p->min_contrast);
    return PL_OK;
}

int pl_segmenter_fits(const PlSegmenter *s, int height, int width, const PlSegmentParams *params) {
    if (!s) return 0;
    const PlSegmentParams *a = &s->p;
    return s->H == height && s->W == width && a->pixel_size_um == params->pixel_size_um &&
           a->sigma_um == params->sigma_um && a->min_area_um2 == params->min_area_um2 &&
           a->max_area_um2 == params->max_area_um2 && a->max_hole_um2 == params->max_hole_um2 &&
           a->split_h_um == params->split_h_um && a->min_contrast == params->min_contrast &&
           a->exclude_border == params->exclude_border;
}

PlStatus pl_segmenter_create(int height, int width, const PlSegmentParams *params, PlSegmenter **out) {
    *out = NULL;
    if (height < 3 || width < 3 || height > (1 << 15) || width > (1 << 15))
        return PL_FAIL(PL_ERR_LIMIT, "segmentation: image %d x %d outside 3..32768 px per side", height, width);
    PlSegmentParams p;
    if (params) p = *params; else pl_segment_params_default(&p);
    PL_TRY(validate_params(&p));
    PlSegmenter *s = pl_calloc(1, sizeof *s);
    if (!s) return PL_ERR_NOMEM;
    s->p = p;
    s->H = height;
    s->W = width;
    double sigma_px = p.sigma_um / p.pixel_size_um;
    s->radius = sigma_px < 0.3 ? 0 : (int)ceil(3.0 * sigma_px);
    int m = height > width ? height : width;
    int half = (height < width ? height : width) / 2 + 1;
    s->max_key = half * half;
    size_t n = (size_t)height * (size_t)width;
    // one slab carved into named tensors (every piece 8-byte aligned)
    size_t sz_kernel = ((size_t)(2 * s->radius + 1) * sizeof(float) + 7) & ~(size_t)7;
    size_t sz_plane = (n * 4 + 7) & ~(size_t)7;
    size_t sz_line = ((size_t)(m + 1) * 4 + 7) & ~(size_t)7;
    size_t sz_keys = ((size_t)(s->max_key + 2) * 4 + 7) & ~(size_t)7;
    size_t total = PL_SEG_BINS * sizeof(double) + sz_kernel + 6 * sz_plane + 3 * sz_line + sz_keys;
    char *slab = pl_malloc(total);
    if (!slab) {
        free(s);
        return PL_ERR_NOMEM;
    }
    s->slab = slab;
    s->hist = (double *)slab; slab += PL_SEG_BINS * sizeof(double);
    s->kernel = (float *)slab; slab += sz_kernel;
    s->smooth = (float *)slab; slab += sz_plane;
    s->tmp = (float *)slab; slab += sz_plane;
    s->dist = (float *)slab; slab += sz_plane;
    s->parent = (int32_t *)slab; slab += sz_plane;
    s->order = (int32_t *)slab; slab += sz_plane;
    s->stack = (int32_t *)slab; slab += sz_plane;
    s->line_f = (float *)slab; slab += sz_line;
    s->line_z = (float *)slab; slab += sz_line;
    s->line_v = (int32_t *)slab; slab += sz_line;
    s->key_count = (int32_t *)slab;
    if (s->radius > 0) {
        double sum = 0;
        for (int k = -s->radius; k <= s->radius; k++) {
            double w = exp(-0.5 * k * k / (sigma_px * sigma_px));
            s->kernel[k + s->radius] = (float)w;
            sum += w;
        }
        for (int k = 0; k <= 2 * s->radius; k++) s->kernel[k] = (float)(s->kernel[k] / sum);
    }
    *out = s;
    return PL_OK;
}

void pl_segmenter_destroy(PlSegmenter *s) {
    if (!s) return;
    free(s->slab);
    free(s);
}

// Separable Gaussian with replicated borders: in (H, W) → out (H, W), through the segmenter's tmp plane.
static void blur(const PlSegmenter *s, const float *in, float *out) {
    if (s->radius == 0) {
        memcpy(out, in, (size_t)s->H * s->W * sizeof(float));
        return;
    }
    pl_image_blur_separable(in, out, s->tmp, s->H, s->W, s->kernel + s->radius, s->radius);
}

// k-th smallest of a[0..n) (reorders a). Hoare quickselect; balanced on runs of equal values.
static float select_kth(float *a, size_t n, size_t kth) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                float t = a[i]; a[i] = a[j]; a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (kth <= j) hi = j;
        else if (kth >= i) lo = i;
        else return a[kth];
    }
    return a[kth];
}

// Robust per-pixel noise sigma from horizontal differences of the raw image, over pairs of pixels that
// both lie in the smoothed background class (nuclear texture would inflate it otherwise); falls back to
// all pairs when the background has fewer than 64 pairs.
static double noise_sigma(const PlSegmenter *s, const float *in, double thr) {
    int H = s->H, W = s->W;
    size_t n = 0;
    for (int pass = 0; pass < 2 && n < 64; pass++) {
        n = 0;
        for (int y = 0; y < H; y++) {
            const float *row = in + (size_t)y * W;
            const float *sm = s->smooth + (size_t)y * W;
            for (int x = 0; x + 1 < W; x++)
                if (pass == 1 || (sm[x] < thr && sm[x + 1] < thr)) s->tmp[n++] = fabsf(row[x + 1] - row[x]);
        }
    }
    double med = select_kth(s->tmp, n, n / 2);
    return 1.4826 * med / sqrt(2.0);
}

// Otsu threshold of the smoothed image over [min, max(99.5th percentile, min + (max - min) / 4)]
// (brighter values count in the top bin, so a few saturated objects cannot pull the threshold up);
// returns 0 when the image is flat.
static int otsu(PlSegmenter *s, double *thr) {
    size_t n = (size_t)s->H * s->W;
    const float *v = s->smooth;
    float lo = v[0], top = v[0];
    for (size_t i = 1; i < n; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > top) top = v[i];
    }
    memcpy(s->tmp, v, n * sizeof(float));
    float hi = select_kth(s->tmp, n, (size_t)(0.995 * (double)(n - 1)));
    // a lone small nucleus can sit above the percentile: keep at least a quarter of the full range
    float quarter = lo + 0.25f * (top - lo);
    if (hi < quarter) hi = quarter;
    if (!(hi - lo > 1e-6f * (fabsf(hi) + fabsf(lo) + 1e-30f))) return 0;
    double scale = PL_SEG_BINS / ((double)hi - lo);
    memset(s->hist, 0, PL_SEG_BINS * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        int b = (int)((v[i] - lo) * scale);
        s->hist[b >= PL_SEG_BINS ? PL_SEG_BINS - 1 : b] += 1.0;
    }
    double total = 0, sum_all = 0;
    for (int b = 0; b < PL_SEG_BINS; b++) {
        total += s->hist[b];
        sum_all += s->hist[b] * (b + 0.5);
    }
    double w0 = 0, sum0 = 0, best = -1;
    int best_b = 0;
    for (int b = 0; b < PL_SEG_BINS - 1; b++) {
        w0 += s->hist[b];
        sum0 += s->hist[b] * (b + 0.5);
        double w1 = total - w0;
        if (w0 <= 0 || w1 <= 0) continue;
        double m0 = sum0 / w0, m1 = (sum_all - sum0) / w1;
        double between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if (between > best) {
            best = between;
            best_b = b;
        }
    }
    if (best < 0) return 0;
    *thr = lo + (best_b + 1) / scale;   // foreground: value >= thr
    return 1;
}

// Flood the 4-connected background (label 0) region containing `seed` with `mark`; appends pixels to
// s->order from *list_len. Returns the region size.
static size_t flood_background(PlSegmenter *s, int32_t *lab, size_t seed, int32_t mark, size_t *list_len) {
    int H = s->H, W = s->W;
    size_t top = 0, count = 0;
    lab[seed] = mark;
    s->stack[top++] = (int32_t)seed;
    while (top > 0) {
        size_t i = (size_t)s->stack[--top];
        s->order[(*list_len)++] = (int32_t)i;
        count++;
        int y = (int)(i / (size_t)W), x = (int)(i % (size_t)W);
        if (x > 0 && lab[i - 1] == 0) { lab[i - 1] = mark; s->stack[top++] = (int32_t)(i - 1); }
        if (x + 1 < W && lab[i + 1] == 0) { lab[i + 1] = mark; s->stack[top++] = (int32_t)(i + 1); }
        if (y > 0 && lab[i - W] == 0) { lab[i - W] = mark; s->stack[top++] = (int32_t)(i - W); }
        if (y + 1 < H && lab[i + W] == 0) { lab[i + W] = mark; s->stack[top++] = (int32_t)(i + W); }
    }
    return count;
}

// lab: 0 = background, > 0 = object ids. Fills every 4-connected background region that does not touch
// the border, has fewer than max_hole pixels, a mean smoothed intensity >= min_mean and is enclosed by a
// single object id, with that id.
static void fill_holes(PlSegmenter *s, int32_t *lab, size_t max_hole, double min_mean) {
    int H = s->H, W = s->W;
    size_t n = (size_t)H * W, len = 0;
    for (int x = 0; x < W; x++) {
        if (lab[x] == 0) flood_background(s, lab, (size_t)x, -1, &len);
        size_t b = (size_t)(H - 1) * W + x;
        if (lab[b] == 0) flood_background(s, lab, b, -1, &len);
    }
    for (int y = 0; y < H; y++) {
        size_t a = (size_t)y * W, b = a + W - 1;
        if (lab[a] == 0) flood_background(s, lab, a, -1, &len);
        if (lab[b] == 0) flood_background(s, lab, b, -1, &len);
    }
    for (size_t i = 0; i < n; i++) {
        if (lab[i] != 0) continue;
        len = 0;   // the list is only needed for the current hole
        size_t size = flood_background(s, lab, i, -2, &len);
        if (size >= max_hole) continue;
        double sum = 0;
        for (size_t k = 0; k < len; k++) sum += s->smooth[s->order[k]];
        if (sum < min_mean * (double)len) continue;
        int32_t owner = 0;
        int single = 1;
        for (size_t k = 0; k < len && single; k++) {
            size_t j = (size_t)s->order[k];
            size_t nb[4] = {j - 1, j + 1, j - W, j + W};   // never outside: holes do not touch the border
            for (int t = 0; t < 4; t++) {
                int32_t l = lab[nb[t]];
                if (l <= 0) continue;
                if (owner == 0) owner = l;
                else if (l != owner) single = 0;
            }
        }
        if (single && owner > 0)
            for (size_t k = 0; k < len; k++) lab[s->order[k]] = owner;
    }
    for (size_t i = 0; i < n; i++)
        if (lab[i] < 0) lab[i] = 0;
}

// 1-D squared-distance transform (Felzenszwalb & Huttenlocher) of f (n) into d (n), with virtual
// background just outside both ends.
static void edt_1d(PlSegmenter *s, const float *f, float *d, int n) {
    float *z = s->line_z;
    int32_t *v = s->line_v;
    int k = 0;
    v[0] = 0;
    z[0] = -INFINITY;
    z[1] = INFINITY;
    for (int q = 1; q < n; q++) {
        float sq = ((f[q] + (float)q * q) - (f[v[k]] + (float)v[k] * v[k])) / (2.0f * (q - v[k]));
        while (sq <= z[k]) {   // z[0] = -inf stops the loop at k = 0
            k--;
            sq = ((f[q] + (float)q * q) - (f[v[k]] + (float)v[k] * v[k])) / (2.0f * (q - v[k]));
        }
        k++;
        v[k] = q;
        z[k] = sq;
        z[k + 1] = INFINITY;
    }
    k = 0;
    for (int q = 0; q < n; q++) {
        while (z[k + 1] < q) k++;
        float dq = (float)(q - v[k]);
        float val = dq * dq + f[v[k]];
        float e1 = (float)(q + 1) * (q + 1), e2 = (float)(n - q) * (n - q);
        if (e1 < val) val = e1;
        if (e2 < val) val = e2;
        d[q] = val;
    }
}

// Squared Euclidean distance of every foreground pixel (lab != 0) to the nearest background pixel or to
// the outside of the image, into s->dist.
static void distance_transform(PlSegmenter *s, const int32_t *lab) {
    int H = s->H, W = s->W;
    // columns: distance along y (virtual background above and below the image), swept row by row so memory
    // is read contiguously; line_v holds the last background row of every column
    int32_t *last = s->line_v;
    for (int x = 0; x < W; x++) last[x] = -1;
    for (int y = 0; y < H; y++) {
        const int32_t *l = lab + (size_t)y * W;
        float *d = s->dist + (size_t)y * W;
        for (int x = 0; x < W; x++) {
            if (!l[x]) last[x] = y;
            d[x] = (float)(y - last[x]);
        }
    }
    for (int x = 0; x < W; x++) last[x] = H;
    for (int y = H - 1; y >= 0; y--) {
        const int32_t *l = lab + (size_t)y * W;
        float *d = s->dist + (size_t)y * W;
        for (int x = 0; x < W; x++) {
            if (!l[x]) last[x] = y;
            float up = (float)(last[x] - y);
            if (up < d[x]) d[x] = up;
        }
    }
    // rows: squared distances combined with parabolas
    for (int y = 0; y < H; y++) {
        float *row = s->dist + (size_t)y * W;
        for (int x = 0; x < W; x++) s->line_f[x] = row[x] * row[x];
        edt_1d(s, s->line_f, row, W);
    }
}

static int32_t uf_find(int32_t *parent, int32_t i) {
    int32_t r = i;
    while (parent[r] != r) r = parent[r];
    while (parent[i] != r) {
        int32_t next = parent[i];
        parent[i] = r;
        i = next;
    }
    return r;
}

// Watershed on the distance transform with dynamics-based basin merging. lab: 1/0 foreground in;
// object ids 1..K (raster order of first pixel) out. Returns K.
static int32_t watershed(PlSegmenter *s, int32_t *lab, double h_px) {
    int H = s->H, W = s->W;
    size_t n = (size_t)H * W;
    int32_t *parent = s->parent, *order = s->order, *cnt = s->key_count;
    float *d2 = s->dist;
    int max_key = s->max_key;
    memset(cnt, 0, (size_t)(max_key + 2) * sizeof(int32_t));
    size_t nfg = 0;
    for (size_t i = 0; i < n; i++) {
        parent[i] = -1;
        if (!lab[i]) continue;
        int key = (int)d2[i];
        if (key > max_key) key = max_key;
        cnt[max_key - key]++;   // descending distance
        nfg++;
    }
    int32_t acc = 0;
    for (int k = 0; k <= max_key; k++) {
        int32_t c = cnt[k];
        cnt[k] = acc;
        acc += c;
    }
    for (size_t i = 0; i < n; i++) {
        if (!lab[i]) continue;
        int key = (int)d2[i];
        if (key > max_key) key = max_key;
        order[cnt[max_key - key]++] = (int32_t)i;
    }
    for (size_t i = 0; i < n; i++) d2[i] = sqrtf(d2[i]);   // now plain distances
    const float *dist = d2;
    for (size_t t = 0; t < nfg; t++) {
        int32_t p = order[t];
        int y = p / W, x = p % W;
        int32_t roots[8];
        int nr = 0;
        for (int dy = -1; dy <= 1; dy++) {
            int yy = y + dy;
            if (yy < 0 || yy >= H) continue;
            for (int dx = -1; dx <= 1; dx++) {
                int xx = x + dx;
                if ((dx == 0 && dy == 0) || xx < 0 || xx >= W) continue;
                int32_t q = yy * W + xx;
                if (parent[q] < 0) continue;
                int32_t r = uf_find(parent, q);
                int dup = 0;
                for (int k = 0; k < nr; k++) dup |= roots[k] == r;
                if (!dup) roots[nr++] = r;
            }
        }
        if (nr == 0) {
            parent[p] = p;
            continue;
        }
        int32_t best = roots[0];
        for (int k = 1; k < nr; k++)
            if (dist[roots[k]] > dist[best] || (dist[roots[k]] == dist[best] && roots[k] < best)) best = roots[k];
        for (int k = 0; k < nr; k++) {
            int32_t r = roots[k];
            if (r != best && (double)dist[r] - dist[p] < h_px) parent[r] = best;
        }
        parent[p] = best;
    }
    // ids in raster order of first pixel; order[] becomes root → id map
    memset(order, 0, n * sizeof(int32_t));
    int32_t next = 0;
    for (size_t i = 0; i < n; i++) {
        if (!lab[i]) continue;
        int32_t r = uf_find(parent, (int32_t)i);
        if (order[r] == 0) order[r] = ++next;
        lab[i] = order[r];
    }
    return next;
}

PlStatus pl_segmenter_run(PlSegmenter *s, const float *plane, int32_t *labels, PlSegmentStats *stats) {
    PlSegmentStats st;
    memset(&st, 0, sizeof st);
    int H = s->H, W = s->W;
    size_t n = (size_t)H * W;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(plane[i]))
            return PL_FAIL(PL_ERR_NUMERIC, "segmentation: non-finite value at row %zu, column %zu",
                           i / (size_t)W, i % (size_t)W);
    memset(labels, 0, n * sizeof(int32_t));
    blur(s, plane, s->smooth);
    double thr;
    if (!otsu(s, &thr)) {
        st.empty = 1;
        if (stats) *stats = st;
        return PL_OK;
    }
    double sum0 = 0, sum1 = 0;
    size_t n0 = 0, n1 = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->smooth[i] >= thr) { sum1 += s->smooth[i]; n1++; }
        else { sum0 += s->smooth[i]; n0++; }
    }
    st.threshold = thr;
    st.noise_sigma = noise_sigma(s, plane, thr);
    st.background = n0 ? sum0 / n0 : 0;
    st.foreground = n1 ? sum1 / n1 : 0;
    double diff = st.foreground - st.background;
    st.contrast = st.noise_sigma > 0 ? diff / st.noise_sigma : HUGE_VAL;
    if (n0 == 0 || n1 == 0 || !(st.contrast >= s->p.min_contrast) || !(diff > 0)) {
        st.empty = 1;
        if (stats) *stats = st;
        return PL_OK;
    }
    for (size_t i = 0; i < n; i++) labels[i] = s->smooth[i] >= thr;
    double px2 = s->p.pixel_size_um * s->p.pixel_size_um;
    double min_px = s->p.min_area_um2 / px2, max_px = s->p.max_area_um2 / px2;
    // Holes would distort the distance transform. Before it, fill only holes that are dim nuclear regions
    // (nucleoli: mean above halfway from background to threshold), not background gaps enclosed by a
    // rosette of touching nuclei; after the watershed, also fill any hole enclosed by one nucleus.
    double hole_px = s->p.max_hole_um2 / px2;
    size_t max_hole = (size_t)(hole_px < 1e15 ? hole_px : 1e15);
    fill_holes(s, labels, max_hole, 0.5 * (st.background + thr));
    distance_transform(s, labels);
    double h_px = s->p.split_h_um > 0 ? s->p.split_h_um / s->p.pixel_size_um : HUGE_VAL;
    int32_t k = watershed(s, labels, h_px);
    fill_holes(s, labels, max_hole, -HUGE_VAL);
    // per-object area (stack) and border flag (parent), new ids (order)
    int32_t *area = s->stack, *border = s->parent, *newid = s->order;
    for (int32_t j = 0; j <= k; j++) area[j] = border[j] = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int32_t l = labels[(size_t)y * W + x];
            if (!l) continue;
            area[l]++;
            if (y == 0 || x == 0 || y == H - 1 || x == W - 1) border[l] = 1;
        }
    int32_t kept = 0;
    newid[0] = 0;
    for (int32_t j = 1; j <= k; j++) {
        newid[j] = 0;
        if (area[j] < min_px) st.removed_small++;
        else if (area[j] > max_px) st.removed_large++;
        else if (s->p.exclude_border && border[j]) st.removed_border++;
        else newid[j] = ++kept;
    }
    for (size_t i = 0; i < n; i++) labels[i] = newid[labels[i]];
    st.count = kept;
    if (stats) *stats = st;
    return PL_OK;
}

PlStatus pl_segment_nuclei(const float *plane, int height, int width, const PlSegmentParams *params,
                           int32_t *labels, PlSegmentStats *stats) {
    PlSegmenter *s;
    PL_TRY(pl_segmenter_create(height, width, params, &s));
    PlStatus st = pl_segmenter_run(s, plane, labels, stats);
    pl_segmenter_destroy(s);
    return st;
}
