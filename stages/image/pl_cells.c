// Cell measurement and crops from label images (see pl_cells.h).
#include "pl_cells.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_decode.h"

PlStatus pl_cell_border_parse(const char *name, PlCellBorder *out) {
    if (!strcmp(name, "skip")) *out = PL_CELL_BORDER_SKIP;
    else if (!strcmp(name, "pad")) *out = PL_CELL_BORDER_PAD;
    else if (!strcmp(name, "shift")) *out = PL_CELL_BORDER_SHIFT;
    else return PL_FAIL(PL_ERR_ARG, "unknown cell border policy '%s' (expected skip, pad or shift)", name);
    return PL_OK;
}

const char *pl_cell_border_name(PlCellBorder b) {
    switch (b) {
    case PL_CELL_BORDER_SKIP: return "skip";
    case PL_CELL_BORDER_PAD: return "pad";
    case PL_CELL_BORDER_SHIFT: return "shift";
    }
    return "?";
}

PlStatus pl_cells_crop_side(int crop_px, double crop_um, double pixel_size_um, int *side) {
    double s;
    if (crop_px > 0) {
        s = crop_px;
    } else {
        if (!(crop_um > 0) || !(pixel_size_um > 0) || !isfinite(crop_um) || !isfinite(pixel_size_um))
            return PL_FAIL(PL_ERR_ARG, "cell crop: need a crop size in px, or in µm with a pixel size "
                                       "(got %g µm at %g µm/px)", crop_um, pixel_size_um);
        s = floor(crop_um / pixel_size_um + 0.5);
    }
    if (!(s >= 1 && s <= 8192))
        return PL_FAIL(PL_ERR_ARG, "cell crop side %.0f px outside 1..8192", s);
    *side = (int)s;
    return PL_OK;
}

PlStatus pl_cells_labels_from_image(const PlImage *img, const char *name, int32_t *labels) {
    if (img->channels != 1)
        return PL_FAIL(PL_ERR_FORMAT, "%s: a label mask must have one channel (has %d)", name, img->channels);
    size_t n = (size_t)img->height * (size_t)img->width;
    for (size_t i = 0; i < n; i++) {
        float v = img->data[i];
        if (!(v >= 0 && v < 16777216.0f) || v != floorf(v))
            return PL_FAIL(PL_ERR_FORMAT, "%s: label mask value %g at row %zu, column %zu is not an integer "
                                          "in 0..16777215", name, (double)v, i / (size_t)img->width,
                           i % (size_t)img->width);
        labels[i] = (int32_t)v;
    }
    return PL_OK;
}

PlStatus pl_cells_read_mask(const char *ref, int height, int width, int32_t *labels) {
    PlImage img;
    memset(&img, 0, sizeof img);
    PlStatus st = pl_image_read(ref, NULL, &img);
    if (st != PL_OK) return pl_error_wrap("reading label mask");
    if (img.height != height || img.width != width) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: label mask is %d x %d but the image is %d x %d", ref, img.height, img.width,
                     height, width);
        pl_image_free(&img);
        return st;
    }
    if (img.is_float) {
        pl_image_free(&img);
        return PL_FAIL(PL_ERR_FORMAT, "%s: label mask has floating-point samples (need 8/16/32-bit integers)", ref);
    }
    st = pl_cells_labels_from_image(&img, ref, labels);
    pl_image_free(&img);
    return st;
}

static PlStatus reserve_cells(PlCellSet *set, int n) {
    if (n <= set->capacity) return PL_OK;
    PlCell *c = realloc(set->cells, (size_t)n * sizeof *c);
    if (!c) return PL_FAIL(PL_ERR_NOMEM, "cell set: cannot grow to %d cells", n);
    set->cells = c;
    set->capacity = n;
    return PL_OK;
}

PlStatus pl_cells_measure(const int32_t *labels, int height, int width, int64_t min_area, PlCellSet *set) {
    if (height <= 0 || width <= 0) return PL_FAIL(PL_ERR_ARG, "cell measure: bad size %d x %d", height, width);
    size_t n = (size_t)height * (size_t)width;
    int32_t max_label = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] < 0)
            return PL_FAIL(PL_ERR_FORMAT, "cell measure: negative label %d at row %zu, column %zu", labels[i],
                           i / (size_t)width, i % (size_t)width);
        if (labels[i] > max_label) max_label = labels[i];
    }
    size_t need = (size_t)max_label + 1;
    if (need > set->acc_capacity) {
        double *a = realloc(set->acc, need * 3 * sizeof(double));
        if (!a) return PL_FAIL(PL_ERR_NOMEM, "cell measure: no memory for %zu labels", need);
        set->acc = a;
        set->acc_capacity = need;
    }
    memset(set->acc, 0, need * 3 * sizeof(double));
    for (int y = 0; y < height; y++) {
        const int32_t *row = labels + (size_t)y * width;
        for (int x = 0; x < width; x++) {
            int32_t l = row[x];
            if (!l) continue;
            double *a = set->acc + (size_t)l * 3;
            a[0] += y;
            a[1] += x;
            a[2] += 1;
        }
    }
    int count = 0;
    for (size_t l = 1; l < need; l++)
        if (set->acc[l * 3 + 2] > 0 && set->acc[l * 3 + 2] >= (double)min_area) count++;
    PL_TRY(reserve_cells(set, count));
    set->count = 0;
    for (size_t l = 1; l < need; l++) {
        const double *a = set->acc + l * 3;
        if (!(a[2] > 0) || a[2] < (double)min_area) continue;
        PlCell *c = &set->cells[set->count++];
        c->label = (int32_t)l;
        c->cy = (float)(a[0] / a[2]);
        c->cx = (float)(a[1] / a[2]);
        c->area = (int64_t)a[2];
        c->y0 = c->x0 = 0;
    }
    return PL_OK;
}

PlStatus pl_cells_rescale(PlCellSet *set, double scale_y, double scale_x) {
    if (!(scale_y > 0) || !(scale_x > 0) || !isfinite(scale_y) || !isfinite(scale_x))
        return PL_FAIL(PL_ERR_ARG, "cell rescale: factors %g x %g must be finite and > 0", scale_y, scale_x);
    for (int i = 0; i < set->count; i++) {
        PlCell *c = &set->cells[i];
        c->cy = (float)((c->cy + 0.5) * scale_y - 0.5);
        c->cx = (float)((c->cx + 0.5) * scale_x - 0.5);
        c->area = (int64_t)floor((double)c->area * scale_y * scale_x + 0.5);
    }
    return PL_OK;
}

PlStatus pl_cells_place(PlCellSet *set, int height, int width, int side, PlCellBorder border) {
    if (side <= 0) return PL_FAIL(PL_ERR_ARG, "cell crop: side %d must be positive", side);
    if (border == PL_CELL_BORDER_SHIFT && (side > height || side > width))
        return PL_FAIL(PL_ERR_ARG, "cell crop: side %d px does not fit in a %d x %d image (border policy shift)",
                       side, height, width);
    int kept = 0;
    for (int i = 0; i < set->count; i++) {
        PlCell c = set->cells[i];
        int y0 = (int)floorf(c.cy + 0.5f) - side / 2;
        int x0 = (int)floorf(c.cx + 0.5f) - side / 2;
        int inside = y0 >= 0 && x0 >= 0 && y0 + side <= height && x0 + side <= width;
        if (border == PL_CELL_BORDER_SKIP && !inside) continue;
        if (border == PL_CELL_BORDER_SHIFT) {
            if (y0 < 0) y0 = 0;
            if (x0 < 0) x0 = 0;
            if (y0 + side > height) y0 = height - side;
            if (x0 + side > width) x0 = width - side;
        }
        c.y0 = y0;
        c.x0 = x0;
        set->cells[kept++] = c;
    }
    set->count = kept;
    return PL_OK;
}

PlStatus pl_cells_crop(const float *const *planes, int channels, int height, int width, const PlCellSet *set,
                       int first, int n, int side, float *out) {
    if (first < 0 || n < 0 || first + n > set->count)
        return PL_FAIL(PL_ERR_ARG, "cell crop: range [%d, %d) outside the %d cells", first, first + n, set->count);
    size_t plane = (size_t)side * side;
    for (int i = 0; i < n; i++) {
        const PlCell *c = &set->cells[first + i];
        for (int ch = 0; ch < channels; ch++) {
            float *dst = out + ((size_t)i * channels + ch) * plane;   // (S, S)
            const float *src = planes[ch];                            // (H, W) or NULL
            if (!src) {
                memset(dst, 0, plane * sizeof(float));
                continue;
            }
            for (int y = 0; y < side; y++) {
                int sy = c->y0 + y;
                float *drow = dst + (size_t)y * side;
                if (sy < 0 || sy >= height) {
                    memset(drow, 0, (size_t)side * sizeof(float));
                    continue;
                }
                int xa = c->x0 < 0 ? -c->x0 : 0;
                int xb = c->x0 + side > width ? width - c->x0 : side;
                if (xb < xa) xb = xa;
                if (xa > side) xa = xb = side;
                for (int x = 0; x < xa; x++) drow[x] = 0;
                if (xb > xa) memcpy(drow + xa, src + (size_t)sy * width + c->x0 + xa, (size_t)(xb - xa) * sizeof(float));
                for (int x = xb; x < side; x++) drow[x] = 0;
            }
        }
    }
    return PL_OK;
}

void pl_cell_set_free(PlCellSet *set) {
    free(set->cells);
    free(set->acc);
    memset(set, 0, sizeof *set);
}
