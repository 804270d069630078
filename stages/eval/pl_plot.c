// Evaluation plots with cairo (PNG + SVG): F1 vs k, confusion heatmap, per-class F1 bars, F1 vs data fraction.
#include "pl_plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_fs.h"

typedef void (*PlotDraw)(cairo_t *cr, double w, double h, const void *ctx);

// Render `draw` into BASE.png and BASE.svg, each through a temporary name and an atomic rename.
static PlStatus plot_write_both(const char *base, double w, double h, PlotDraw draw, const void *ctx) {
    char path[4096];
    for (int kind = 0; kind < 2; kind++) {
        snprintf(path, sizeof path, "%s.%s", base, kind == 0 ? "png" : "svg");
        char *tmp = pl_temp_path_for(path);
        if (!tmp) return PL_ERR_NOMEM;
        cairo_surface_t *s = kind == 0 ? cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)w, (int)h)
                                       : cairo_svg_surface_create(tmp, w, h);
        cairo_t *cr = cairo_create(s);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        draw(cr, w, h, ctx);
        cairo_status_t cs = cairo_status(cr);
        cairo_destroy(cr);
        if (kind == 0 && cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_write_to_png(s, tmp);
        cairo_surface_finish(s);
        if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(s);
        cairo_surface_destroy(s);
        if (cs != CAIRO_STATUS_SUCCESS) {
            unlink(tmp);
            free(tmp);
            return PL_FAIL(PL_ERR_IO, "%s: cairo cannot draw the plot: %s", path, cairo_status_to_string(cs));
        }
        PlStatus st = pl_file_commit_rename(tmp, path);
        if (st != PL_OK) unlink(tmp);
        free(tmp);
        PL_TRY(st);
    }
    return PL_OK;
}

static void plot_text(cairo_t *cr, double x, double y, const char *s, double size, double align_x, double align_y) {
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align_x * e.width - e.x_bearing, y - align_y * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

static void plot_text_rotated(cairo_t *cr, double x, double y, const char *s, double size) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -M_PI / 2);
    plot_text(cr, 0, 0, s, size, 0.5, 0.5);
    cairo_restore(cr);
}

// "Nice" tick step for a range.
static double plot_tick_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

typedef struct Axes {
    double x0, y0, x1, y1;      // plot area in pixels (y0 top)
    double xmin, xmax, ymin, ymax;
    int xlog;
    int xint;                   // x values are integers (k, epochs): ticks only at integers (a step of at least 1)
} Axes;

static double ax_x(const Axes *a, double v) {
    double t = a->xlog ? (log10(v) - log10(a->xmin)) / (log10(a->xmax) - log10(a->xmin)) : (v - a->xmin) / (a->xmax - a->xmin);
    return a->x0 + t * (a->x1 - a->x0);
}
static double ax_y(const Axes *a, double v) { return a->y1 - (v - a->ymin) / (a->ymax - a->ymin) * (a->y1 - a->y0); }

static void plot_axes(cairo_t *cr, const Axes *a, const char *title, const char *xlabel, const char *ylabel,
                      const double *xticks, int n_xticks) {
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    plot_text(cr, (a->x0 + a->x1) / 2, a->y0 - 22, title, 15, 0.5, 0.5);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    char buf[64];
    double ys = plot_tick_step(a->ymax - a->ymin, 6);
    int ydec = ys < 1 ? 2 : 0;   // enough decimals that no two tick labels read the same (a step of 0.005 needs 3)
    while (ydec < 9 && fabs(ys * pow(10, ydec) - round(ys * pow(10, ydec))) > 1e-6 * ys * pow(10, ydec)) ydec++;
    for (double v = ceil(a->ymin / ys) * ys; v <= a->ymax + 1e-9; v += ys) {
        double y = ax_y(a, v);
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, a->x0, y);
        cairo_line_to(cr, a->x1, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%.*f", ydec, fabs(v) < ys * 1e-6 ? 0.0 : v);   // no "-0.00"
        plot_text(cr, a->x0 - 6, y, buf, 11, 1, 0.5);
    }
    double xs = plot_tick_step(a->xmax - a->xmin, 8);
    if (a->xint && xs < 1) xs = 1;   // 1, 2, 5, 10, ... times a power of ten >= 1 are whole numbers already
    int n = 0;
    double auto_ticks[64];
    if (!xticks) {
        for (double v = ceil(a->xmin / xs) * xs; v <= a->xmax + 1e-9 && n < 64; v += xs) auto_ticks[n++] = v;
        xticks = auto_ticks;
        n_xticks = n;
    }
    for (int i = 0; i < n_xticks; i++) {
        double x = ax_x(a, xticks[i]);
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, x, a->y0);
        cairo_line_to(cr, x, a->y1);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%g", xticks[i]);
        plot_text(cr, x, a->y1 + 6, buf, 11, 0.5, 0);
    }
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, a->x0, a->y0, a->x1 - a->x0, a->y1 - a->y0);
    cairo_stroke(cr);
    plot_text(cr, (a->x0 + a->x1) / 2, a->y1 + 36, xlabel, 13, 0.5, 0.5);
    plot_text_rotated(cr, a->x0 - 52, (a->y0 + a->y1) / 2, ylabel, 13);
}

// ---------------------------------------------------------------- F1 vs k

typedef struct F1K { const double *mean, *std; int K, best; const char *title; } F1K;

static void draw_f1_vs_k(cairo_t *cr, double w, double h, const void *p) {
    const F1K *c = p;
    double lo = 1, hi = 0;
    for (int k = 0; k < c->K; k++) {
        double s = c->std ? c->std[k] : 0;
        if (c->mean[k] - s < lo) lo = c->mean[k] - s;
        if (c->mean[k] + s > hi) hi = c->mean[k] + s;
    }
    double pad = (hi - lo) * 0.1 + 0.01;
    Axes a = {80, 60, w - 30, h - 70, 1, c->K > 1 ? c->K : 2, fmax(0, lo - pad), fmin(1, hi + pad), 0, 1};
    if (a.ymax - a.ymin < 0.02) a.ymax = a.ymin + 0.02;
    plot_axes(cr, &a, c->title, "k (neighbours)", "macro F1", NULL, 0);
    if (c->std) {
        cairo_set_source_rgba(cr, 0.2, 0.4, 0.8, 0.2);
        for (int k = 0; k < c->K; k++) {
            double x = ax_x(&a, k + 1), y = ax_y(&a, c->mean[k] + c->std[k]);
            if (k == 0) cairo_move_to(cr, x, y); else cairo_line_to(cr, x, y);
        }
        for (int k = c->K - 1; k >= 0; k--) cairo_line_to(cr, ax_x(&a, k + 1), ax_y(&a, c->mean[k] - c->std[k]));
        cairo_close_path(cr);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.15, 0.35, 0.75);
    cairo_set_line_width(cr, 2);
    for (int k = 0; k < c->K; k++) {
        double x = ax_x(&a, k + 1), y = ax_y(&a, c->mean[k]);
        if (k == 0) cairo_move_to(cr, x, y); else cairo_line_to(cr, x, y);
    }
    if (c->K == 1) cairo_arc(cr, ax_x(&a, 1), ax_y(&a, c->mean[0]), 3, 0, 2 * M_PI);
    cairo_stroke(cr);
    double bx = ax_x(&a, c->best), by = ax_y(&a, c->mean[c->best - 1]);
    cairo_set_source_rgb(cr, 0.85, 0.1, 0.1);
    cairo_arc(cr, bx, by, 6, 0, 2 * M_PI);
    cairo_fill(cr);
    char buf[96];
    snprintf(buf, sizeof buf, "best k = %d (%.3f)", c->best, c->mean[c->best - 1]);
    plot_text(cr, bx + (bx > (a.x0 + a.x1) / 2 ? -10 : 10), by + 16, buf, 12, bx > (a.x0 + a.x1) / 2 ? 1 : 0, 0);
}

PlStatus pl_plot_f1_vs_k(const char *base, const double *mean, const double *std, int K, int best_k, const char *title) {
    if (K < 1 || best_k < 1 || best_k > K) return PL_FAIL(PL_ERR_ARG, "%s: nothing to plot (K %d, best %d)", base, K, best_k);
    F1K c = {mean, std, K, best_k, title};
    return plot_write_both(base, 800, 500, draw_f1_vs_k, &c);
}

// ---------------------------------------------------------------- confusion heatmap

typedef struct Conf { const int64_t *conf; int C, cols; char *const *classes; const char *title; double label_w; } Conf;

static void draw_confusion(cairo_t *cr, double w, double h, const void *p) {
    const Conf *c = p;
    double top = 60, left = c->label_w + 20, cell = (h - top - c->label_w - 30) / c->C;
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    plot_text(cr, w / 2, 25, c->title, 15, 0.5, 0.5);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    double fs = fmin(12, cell * 0.45);
    char buf[32];
    for (int a = 0; a < c->C; a++) {
        int64_t tot = 0;
        for (int b = 0; b < c->C + 1; b++) tot += c->conf[(size_t)a * (c->C + 1) + b];
        for (int b = 0; b < c->cols; b++) {
            double v = tot ? (double)c->conf[(size_t)a * (c->C + 1) + b] / (double)tot : 0;
            double x = left + b * cell, y = top + a * cell;
            cairo_set_source_rgb(cr, 1 - 0.85 * v, 1 - 0.6 * v, 1 - 0.2 * v);
            cairo_rectangle(cr, x, y, cell, cell);
            cairo_fill(cr);
            if (cell >= 14 && c->conf[(size_t)a * (c->C + 1) + b] > 0) {
                cairo_set_source_rgb(cr, v > 0.5 ? 1 : 0, v > 0.5 ? 1 : 0, v > 0.5 ? 1 : 0);
                snprintf(buf, sizeof buf, "%.2f", v);
                plot_text(cr, x + cell / 2, y + cell / 2, buf, fs * 0.85, 0.5, 0.5);
            }
        }
        cairo_set_source_rgb(cr, 0, 0, 0);
        plot_text(cr, left - 6, top + (a + 0.5) * cell, c->classes[a], fs, 1, 0.5);
    }
    for (int b = 0; b < c->cols; b++) {
        cairo_save(cr);
        cairo_translate(cr, left + (b + 0.5) * cell, top + c->C * cell + 6);
        cairo_rotate(cr, -M_PI / 2);
        cairo_set_source_rgb(cr, 0, 0, 0);
        plot_text(cr, 0, 0, b < c->C ? c->classes[b] : "(no vote)", fs, 1, 0.5);
        cairo_restore(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, left, top, c->cols * cell, c->C * cell);
    cairo_stroke(cr);
    plot_text(cr, left + c->cols * cell / 2, h - 10, "predicted class", 13, 0.5, 1);
    plot_text_rotated(cr, 12, top + c->C * cell / 2, "true class", 13);
}

static double plot_label_width(char *const *classes, int C, double size) {
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cairo_t *cr = cairo_create(s);
    cairo_set_font_size(cr, size);
    double m = 40;
    for (int i = 0; i < C; i++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, classes[i], &e);
        if (e.x_advance > m) m = e.x_advance;
    }
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    return fmin(m + 10, 260);
}

PlStatus pl_plot_confusion(const char *base, const int64_t *conf, int C, char *const *classes, const char *title) {
    if (C < 1) return PL_FAIL(PL_ERR_ARG, "%s: no classes to plot", base);
    int novote = 0;
    for (int a = 0; a < C; a++) novote |= conf[(size_t)a * (C + 1) + C] != 0;
    Conf c = {conf, C, C + novote, classes, title, plot_label_width(classes, C, 12)};
    double cell = C <= 10 ? 56 : C <= 20 ? 36 : 24;
    double w = c.label_w + 40 + c.cols * cell, h = 60 + c.label_w + 30 + C * cell;
    if (w < 500) w = 500;
    return plot_write_both(base, w, h, draw_confusion, &c);
}

// ---------------------------------------------------------------- per-class F1 bars

typedef struct Bars { const double *f1; int C; char *const *classes; const char *title; double label_w; } Bars;

static void draw_class_f1(cairo_t *cr, double w, double h, const void *p) {
    const Bars *c = p;
    double left = c->label_w + 20, top = 60, right = w - 60, rowh = (h - top - 50) / c->C;
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    plot_text(cr, w / 2, 25, c->title, 15, 0.5, 0.5);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    char buf[32];
    for (int i = 0; i <= 10; i += 2) {
        double x = left + (right - left) * i / 10.0;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, x, top);
        cairo_line_to(cr, x, top + c->C * rowh);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%.1f", i / 10.0);
        plot_text(cr, x, top + c->C * rowh + 6, buf, 11, 0.5, 0);
    }
    for (int k = 0; k < c->C; k++) {
        double y = top + k * rowh;
        cairo_set_source_rgb(cr, 0.2, 0.5, 0.3);
        cairo_rectangle(cr, left, y + rowh * 0.15, (right - left) * c->f1[k], rowh * 0.7);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        double fs = fmin(12, rowh * 0.6);
        plot_text(cr, left - 6, y + rowh / 2, c->classes[k], fs, 1, 0.5);
        snprintf(buf, sizeof buf, "%.3f", c->f1[k]);
        plot_text(cr, left + (right - left) * c->f1[k] + 4, y + rowh / 2, buf, fs * 0.9, 0, 0.5);
    }
    plot_text(cr, (left + right) / 2, h - 12, "F1", 13, 0.5, 1);
}

PlStatus pl_plot_class_f1(const char *base, const double *f1, int C, char *const *classes, const char *title) {
    if (C < 1) return PL_FAIL(PL_ERR_ARG, "%s: no classes to plot", base);
    Bars c = {f1, C, classes, title, plot_label_width(classes, C, 12)};
    return plot_write_both(base, 800, 110 + C * (C <= 20 ? 28 : 18), draw_class_f1, &c);
}

// ---------------------------------------------------------------- F1 vs fraction

typedef struct Frac { const double *fr; int F, S; const char *const *names; const double *mean, *std; const char *title; } Frac;

static void draw_f1_vs_fraction(cairo_t *cr, double w, double h, const void *p) {
    const Frac *c = p;
    double lo = 1, hi = 0, fmin_ = 1, fmax_ = 0;
    for (int i = 0; i < c->S * c->F; i++) {
        lo = fmin(lo, c->mean[i] - c->std[i]);
        hi = fmax(hi, c->mean[i] + c->std[i]);
    }
    for (int f = 0; f < c->F; f++) fmin_ = fmin(fmin_, c->fr[f]), fmax_ = fmax(fmax_, c->fr[f]);
    if (fmax_ <= fmin_) fmin_ = fmax_ / 2;
    double pad = (hi - lo) * 0.1 + 0.01;
    Axes a = {80, 60, w - 160, h - 70, fmin_ / 1.3, fmax_ * 1.3, fmax(0, lo - pad), fmin(1, hi + pad), 1, 0};
    if (a.ymax - a.ymin < 0.02) a.ymax = a.ymin + 0.02;
    plot_axes(cr, &a, c->title, "fraction of training data (log scale)", "macro F1", c->fr, c->F);
    static const double col[4][3] = {{0.15, 0.35, 0.75}, {0.85, 0.35, 0.1}, {0.2, 0.6, 0.3}, {0.5, 0.2, 0.6}};
    for (int s = 0; s < c->S; s++) {
        const double *m = c->mean + (size_t)s * c->F, *sd = c->std + (size_t)s * c->F;
        cairo_set_source_rgb(cr, col[s % 4][0], col[s % 4][1], col[s % 4][2]);
        cairo_set_line_width(cr, 2);
        for (int f = 0; f < c->F; f++) {
            if (f == 0) cairo_move_to(cr, ax_x(&a, c->fr[f]), ax_y(&a, m[f]));
            else cairo_line_to(cr, ax_x(&a, c->fr[f]), ax_y(&a, m[f]));
        }
        cairo_stroke(cr);
        cairo_set_line_width(cr, 1.5);
        for (int f = 0; f < c->F; f++) {
            double x = ax_x(&a, c->fr[f]);
            cairo_move_to(cr, x, ax_y(&a, m[f] - sd[f]));
            cairo_line_to(cr, x, ax_y(&a, m[f] + sd[f]));
            cairo_move_to(cr, x - 5, ax_y(&a, m[f] - sd[f]));
            cairo_line_to(cr, x + 5, ax_y(&a, m[f] - sd[f]));
            cairo_move_to(cr, x - 5, ax_y(&a, m[f] + sd[f]));
            cairo_line_to(cr, x + 5, ax_y(&a, m[f] + sd[f]));
            cairo_stroke(cr);
            cairo_arc(cr, x, ax_y(&a, m[f]), 4, 0, 2 * M_PI);
            cairo_fill(cr);
        }
        cairo_rectangle(cr, w - 145, 70 + s * 22, 14, 14);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        plot_text(cr, w - 125, 77 + s * 22, c->names[s], 12, 0, 0.5);
    }
}

PlStatus pl_plot_f1_vs_fraction(const char *base, const double *fractions, int F, int n_series,
                                const char *const *names, const double *mean, const double *std, const char *title) {
    if (F < 1 || n_series < 1) return PL_FAIL(PL_ERR_ARG, "%s: nothing to plot", base);
    Frac c = {fractions, F, n_series, names, mean, std, title};
    return plot_write_both(base, 860, 500, draw_f1_vs_fraction, &c);
}

// ---------------------------------------------------------------- a curve over 1..n

typedef struct Curve { const double *y; int n, mark; const char *xlabel, *ylabel, *title; } Curve;

static void draw_curve(cairo_t *cr, double w, double h, const void *p) {
    const Curve *c = p;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < c->n; i++)
        if (isfinite(c->y[i])) {
            lo = fmin(lo, c->y[i]);
            hi = fmax(hi, c->y[i]);
        }
    if (!isfinite(lo)) lo = 0, hi = 1;
    double pad = (hi - lo) * 0.1 + 1e-3;
    Axes a = {80, 60, w - 30, h - 70, 1, c->n > 1 ? c->n : 2, lo - pad, hi + pad, 0, 1};
    plot_axes(cr, &a, c->title, c->xlabel, c->ylabel, NULL, 0);
    cairo_set_source_rgb(cr, 0.15, 0.35, 0.75);
    cairo_set_line_width(cr, 2);
    int started = 0;
    for (int i = 0; i < c->n; i++) {
        if (!isfinite(c->y[i])) continue;
        double x = ax_x(&a, i + 1), y = ax_y(&a, c->y[i]);
        if (!started) cairo_move_to(cr, x, y); else cairo_line_to(cr, x, y);
        started = 1;
    }
    cairo_stroke(cr);
    if (c->mark >= 1 && c->mark <= c->n && isfinite(c->y[c->mark - 1])) {
        double bx = ax_x(&a, c->mark), by = ax_y(&a, c->y[c->mark - 1]);
        cairo_set_source_rgb(cr, 0.85, 0.1, 0.1);
        cairo_arc(cr, bx, by, 6, 0, 2 * M_PI);
        cairo_fill(cr);
    }
}

PlStatus pl_plot_curve(const char *base, const double *y, int n, int mark, const char *xlabel, const char *ylabel,
                       const char *title) {
    if (n < 1) return PL_FAIL(PL_ERR_ARG, "%s: nothing to plot", base);
    Curve c = {y, n, mark, xlabel, ylabel, title};
    return plot_write_both(base, 800, 500, draw_curve, &c);
}
