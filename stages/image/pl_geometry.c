// Rescaling (separable area / bilinear) and FOV tile layouts (see pl_geometry.h).
#include "pl_geometry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

PlStatus pl_resize_size(int height, int width, double factor, int max_side, int *out_height, int *out_width) {
    if (!(factor > 0.0) || !isfinite(factor)) return PL_FAIL(PL_ERR_ARG, "rescale factor %g must be > 0", factor);
    double h = floor(height * factor + 0.5), w = floor(width * factor + 0.5);
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    if (h > max_side || w > max_side)
        return PL_FAIL(PL_ERR_LIMIT, "rescaling %d x %d by %g gives %.0f x %.0f, above the limit of %d per side", height,
                       width, factor, h, w, max_side);
    *out_height = (int)h;
    *out_width = (int)w;
    return PL_OK;
}

double pl_resize_factor_from_pixel_size(double source_um, double model_um) {
    if (!(source_um > 0.0) || !(model_um > 0.0)) return 1.0;
    return source_um / model_um;
}

// Build the taps of one axis (in → out) into start/count/weight (out × taps).
static void axis_taps(int in, int out, int taps, int *start, int *count, float *weight) {
    double s = (double)in / (double)out;
    for (int o = 0; o < out; o++) {
        float *w = weight + (size_t)o * (size_t)taps;
        memset(w, 0, (size_t)taps * sizeof(float));
        if (out == in) {
            start[o] = o, count[o] = 1, w[0] = 1.0f;
        } else if (out < in) {   // area: overlap of [o*s, (o+1)*s) with each [i, i+1)
            double a = o * s, b = (o + 1) * s;
            int i0 = (int)floor(a), i1 = (int)ceil(b);
            if (i1 > in) i1 = in;
            start[o] = i0, count[o] = i1 - i0;
            for (int i = i0; i < i1; i++) {
                double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
                w[i - i0] = (float)((hi - lo) / s);
            }
        } else {                 // bilinear, half-pixel centres, clamped
            double src = (o + 0.5) * s - 0.5;
            if (src < 0) src = 0;
            int i0 = (int)floor(src);
            if (i0 > in - 1) i0 = in - 1;
            double f = src - i0;
            if (i0 + 1 > in - 1) {
                start[o] = i0, count[o] = 1, w[0] = 1.0f;
            } else {
                start[o] = i0, count[o] = 2, w[0] = (float)(1.0 - f), w[1] = (float)f;
            }
        }
    }
}

static int taps_for(int in, int out) { return out < in ? (int)ceil((double)in / out) + 2 : 2; }

static PlStatus grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (*cap >= need && *p) return PL_OK;
    void *q = pl_malloc(need * elem);
    if (!q) return PL_ERR_NOMEM;
    free(*p);
    *p = q;
    *cap = need;
    return PL_OK;
}

static PlStatus resize_prepare(PlResizeWork *w, int in_h, int in_w, int out_h, int out_w) {
    if (w->in_h == in_h && w->in_w == in_w && w->out_h == out_h && w->out_w == out_w && w->tmp) return PL_OK;
    int xt = taps_for(in_w, out_w), yt = taps_for(in_h, out_h);
    size_t xneed = (size_t)out_w * (size_t)xt, yneed = (size_t)out_h * (size_t)yt;
    // one grow-only buffer per axis: [start | count | weights]
    if (w->xcap < xneed + 2 * (size_t)out_w || !w->x_weight) {
        free(w->x_start);
        w->x_start = pl_malloc((2 * (size_t)out_w) * sizeof(int) + xneed * sizeof(float));
        if (!w->x_start) return PL_ERR_NOMEM;
        w->xcap = xneed + 2 * (size_t)out_w;
    }
    w->x_count = w->x_start + out_w;
    w->x_weight = (float *)(void *)(w->x_count + out_w);
    if (w->ycap < yneed + 2 * (size_t)out_h || !w->y_weight) {
        free(w->y_start);
        w->y_start = pl_malloc((2 * (size_t)out_h) * sizeof(int) + yneed * sizeof(float));
        if (!w->y_start) return PL_ERR_NOMEM;
        w->ycap = yneed + 2 * (size_t)out_h;
    }
    w->y_count = w->y_start + out_h;
    w->y_weight = (float *)(void *)(w->y_count + out_h);
    void *tmp = w->tmp;
    PL_TRY(grow(&tmp, &w->tmp_cap, (size_t)in_h * (size_t)out_w, sizeof(float)));
    w->tmp = tmp;
    axis_taps(in_w, out_w, xt, w->x_start, w->x_count, w->x_weight);
    axis_taps(in_h, out_h, yt, w->y_start, w->y_count, w->y_weight);
    w->x_taps = xt, w->y_taps = yt;
    w->in_h = in_h, w->in_w = in_w, w->out_h = out_h, w->out_w = out_w;
    return PL_OK;
}

PlStatus pl_resize_plane(PlResizeWork *w, const float *src, int in_h, int in_w, float *dst, int out_h, int out_w) {
    if (in_h <= 0 || in_w <= 0 || out_h <= 0 || out_w <= 0)
        return PL_FAIL(PL_ERR_ARG, "resize %d x %d → %d x %d: sizes must be positive", in_h, in_w, out_h, out_w);
    if (in_h == out_h && in_w == out_w) {
        memmove(dst, src, (size_t)in_h * (size_t)in_w * sizeof(float));
        return PL_OK;
    }
    PL_TRY(resize_prepare(w, in_h, in_w, out_h, out_w));
    // horizontal: (in_h, in_w) → tmp (in_h, out_w)
    for (int y = 0; y < in_h; y++) {
        const float *row = src + (size_t)y * (size_t)in_w;
        float *t = w->tmp + (size_t)y * (size_t)out_w;
        for (int o = 0; o < out_w; o++) {
            const float *wt = w->x_weight + (size_t)o * (size_t)w->x_taps;
            const float *r = row + w->x_start[o];
            float acc = 0.0f;
            for (int k = 0; k < w->x_count[o]; k++) acc += wt[k] * r[k];
            t[o] = acc;
        }
    }
    // vertical: tmp (in_h, out_w) → dst (out_h, out_w), row combinations (vectorises over x)
    for (int o = 0; o < out_h; o++) {
        float *d = dst + (size_t)o * (size_t)out_w;
        const float *wt = w->y_weight + (size_t)o * (size_t)w->y_taps;
        const float *t0 = w->tmp + (size_t)w->y_start[o] * (size_t)out_w;
        float w0 = wt[0];
        for (int x = 0; x < out_w; x++) d[x] = w0 * t0[x];
        for (int k = 1; k < w->y_count[o]; k++) {
            const float *tk = t0 + (size_t)k * (size_t)out_w;
            float wk = wt[k];
            for (int x = 0; x < out_w; x++) d[x] += wk * tk[x];
        }
    }
    return PL_OK;
}

void pl_resize_work_free(PlResizeWork *w) {
    free(w->x_start);
    free(w->y_start);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

PlStatus pl_fov_mode_parse(const char *name, PlFovMode *out) {
    if (name && strcmp(name, "whole") == 0) *out = PL_FOV_WHOLE;
    else if (name && strcmp(name, "tiles") == 0) *out = PL_FOV_TILES;
    else if (name && strcmp(name, "center") == 0) *out = PL_FOV_CENTER;
    else return PL_FAIL(PL_ERR_ARG, "unknown FOV mode '%s' (whole, tiles, center)", name ? name : "");
    return PL_OK;
}

PlStatus pl_tile_border_parse(const char *name, PlTileBorder *out) {
    if (name && strcmp(name, "drop") == 0) *out = PL_BORDER_DROP;
    else if (name && strcmp(name, "pad") == 0) *out = PL_BORDER_PAD;
    else if (name && strcmp(name, "shift") == 0) *out = PL_BORDER_SHIFT;
    else return PL_FAIL(PL_ERR_ARG, "unknown tile border policy '%s' (drop, pad, shift)", name ? name : "");
    return PL_OK;
}

const char *pl_fov_mode_name(PlFovMode m) {
    return m == PL_FOV_WHOLE ? "whole" : m == PL_FOV_TILES ? "tiles" : m == PL_FOV_CENTER ? "center" : "?";
}

PlStatus pl_fov_spec_validate(const PlFovSpec *spec) {
    switch (spec->mode) {
    case PL_FOV_WHOLE:
        if (spec->patch <= 0 || spec->patch > 4096) return PL_FAIL(PL_ERR_ARG, "FOV whole: patch %d must be in 1..4096", spec->patch);
        return PL_OK;
    case PL_FOV_TILES:
        if (spec->stride <= 0 || spec->stride > 65536)
            return PL_FAIL(PL_ERR_ARG, "FOV tiles: stride %d must be in 1..65536", spec->stride);
        /* fall through */
    case PL_FOV_CENTER:
        if (spec->size <= 0 || spec->size > 65536) return PL_FAIL(PL_ERR_ARG, "FOV %s: tile size %d must be in 1..65536", pl_fov_mode_name(spec->mode), spec->size);
        return PL_OK;
    }
    return PL_FAIL(PL_ERR_ARG, "unknown FOV mode %d", (int)spec->mode);
}

// Tile origins along one axis of length n (tile t, stride s, border policy b); returns the count.
static int axis_positions(int n, int t, int s, PlTileBorder b, int *pos, int cap) {
    int k = 0;
    if (n < t) {
        if (b == PL_BORDER_DROP) return 0;
        if (cap > 0) pos[0] = 0;
        return 1;
    }
    int last = -1;
    for (int p = 0; p + t <= n; p += s) {
        if (k < cap) pos[k] = p;
        k++;
        last = p;
    }
    if (last + t < n) {
        if (b == PL_BORDER_PAD) {
            if (k < cap) pos[k] = last + s;
            k++;
        } else if (b == PL_BORDER_SHIFT) {
            if (k < cap) pos[k] = n - t;
            k++;
        }
    }
    return k;
}

PlStatus pl_fov_layout(const PlFovSpec *spec, int height, int width, int *tile_h, int *tile_w, PlTile *tiles,
                       int max_tiles, int *n_tiles) {
    PL_TRY(pl_fov_spec_validate(spec));
    *n_tiles = 0;
    if (spec->mode == PL_FOV_WHOLE) {
        int th = height / spec->patch * spec->patch, tw = width / spec->patch * spec->patch;
        if (th == 0 || tw == 0)
            return PL_FAIL(PL_ERR_EMPTY, "image %d x %d is smaller than one %d-pixel patch", height, width, spec->patch);
        *tile_h = th, *tile_w = tw, *n_tiles = 1;
        if (max_tiles < 1) return max_tiles == 0 ? PL_OK : PL_ERR_LIMIT;
        tiles[0].y = (height - th) / 2, tiles[0].x = (width - tw) / 2;
        return PL_OK;
    }
    *tile_h = *tile_w = spec->size;
    if (spec->mode == PL_FOV_CENTER) {
        *n_tiles = 1;
        if (max_tiles < 1) return PL_OK;
        // floor division so negative offsets (padding) split evenly
        tiles[0].y = (int)floor((height - spec->size) / 2.0), tiles[0].x = (int)floor((width - spec->size) / 2.0);
        return PL_OK;
    }
    enum { AXIS_MAX = 65536 };
    int ny = axis_positions(height, spec->size, spec->stride, spec->border, NULL, 0);
    int nx = axis_positions(width, spec->size, spec->stride, spec->border, NULL, 0);
    if (ny == 0 || nx == 0)
        return PL_FAIL(PL_ERR_EMPTY, "image %d x %d is smaller than a %d-pixel tile and the border policy is drop",
                       height, width, spec->size);
    if ((long long)ny * nx > 1 << 24) return PL_FAIL(PL_ERR_LIMIT, "%d x %d tiles are too many", ny, nx);
    *n_tiles = ny * nx;
    if (max_tiles == 0) return PL_OK;
    if (max_tiles < *n_tiles) return PL_FAIL(PL_ERR_LIMIT, "%d tiles do not fit in %d slots", *n_tiles, max_tiles);
    int *py = pl_malloc(((size_t)ny + (size_t)nx) * sizeof(int));
    if (!py) return PL_ERR_NOMEM;
    int *px = py + ny;
    axis_positions(height, spec->size, spec->stride, spec->border, py, ny);
    axis_positions(width, spec->size, spec->stride, spec->border, px, nx);
    for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) tiles[i * nx + j].y = py[i], tiles[i * nx + j].x = px[j];
    free(py);
    (void)AXIS_MAX;
    return PL_OK;
}

void pl_tile_extract(const float *src, int height, int width, PlTile t, int tile_h, int tile_w, float pad, float *dst) {
    for (int r = 0; r < tile_h; r++) {
        int y = t.y + r;
        float *d = dst + (size_t)r * (size_t)tile_w;
        if (y < 0 || y >= height) {
            for (int c = 0; c < tile_w; c++) d[c] = pad;
            continue;
        }
        int c0 = t.x < 0 ? -t.x : 0;
        int c1 = t.x + tile_w > width ? width - t.x : tile_w;
        if (c1 < c0) c1 = c0;
        for (int c = 0; c < c0 && c < tile_w; c++) d[c] = pad;
        if (c1 > c0) memcpy(d + c0, src + (size_t)y * (size_t)width + (size_t)(t.x + c0), (size_t)(c1 - c0) * sizeof(float));
        for (int c = c1 > c0 ? c1 : c0; c < tile_w; c++) d[c] = pad;
    }
}
