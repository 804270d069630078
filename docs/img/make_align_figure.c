// Renders docs/img/channel_strategies.png: the four channel-alignment strategies applied by pl_prep to real samples.
//
// Build and run from the repository root after building protloc (build/ holds libprotloc_stages.a):
//   gcc -O2 -std=c11 -D_DEFAULT_SOURCE -Istages/core -Istages/image docs/img/make_align_figure.c
//       build/libprotloc_stages.a $(pkg-config --cflags --libs cairo libtiff-4 libpng16) -lm -o /tmp/make_align_figure
//   /tmp/make_align_figure ../shared/samples docs/img/channel_strategies.png
// (the gcc command is one line; it is split here for width)
// Sources: nucleus = OpenCell FOV_00007 Hoechst (1024², 0.206 µm); protein = the HPA 1000_A12_2 green channel
// (2048², ~0.08 µm) rescaled to the same field size — a stand-in from other cells, since the shared OpenCell
// samples hold the nucleus channel only. Model slots: HPA order [protein, nucleus, microtubules, er] and
// ImageNet [red, green, blue] for `replicate`. Every panel is the real pl_prep_planes output (self
// normalisation, z-scores shown as grey from -1 to +4; empty slots are exactly 0 and drawn hatched).
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_decode.h"
#include "pl_geometry.h"
#include "pl_prep.h"

#define THUMB 120
#define GAP 16

static void die(const char *what) {
    fprintf(stderr, "make_align_figure: %s: %s\n", what, pl_error_message());
    exit(1);
}

// Draw a (T, T) z-scored plane as a grey thumbnail at (x, y), tinted by rgb; hatched when all zero.
static void draw_plane(cairo_t *cr, const float *p, int T, double x, double y, const double rgb[3]) {
    int zero = 1;
    for (int i = 0; i < T * T && zero; i++) zero = p[i] == 0.0f;
    if (zero) {
        cairo_set_source_rgb(cr, 0.12, 0.12, 0.12);
        cairo_rectangle(cr, x, y, T, T);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        cairo_set_line_width(cr, 1);
        for (int k = -T; k < T; k += 12) {
            cairo_move_to(cr, x + (k < 0 ? 0 : k), y + (k < 0 ? -k : 0));
            cairo_line_to(cr, x + (k + T > T ? T : k + T), y + (k < 0 ? T : T - k));
        }
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, x + T / 2.0 - 20, y + T / 2.0 + 5);
        cairo_show_text(cr, "empty: 0");
        return;
    }
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, T, T);
    unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    cairo_surface_flush(s);
    for (int r = 0; r < T; r++)
        for (int c = 0; c < T; c++) {
            double v = (p[r * T + c] + 1.0) / 5.0;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            uint32_t px = ((uint32_t)(255 * v * rgb[0]) << 16) | ((uint32_t)(255 * v * rgb[1]) << 8) | (uint32_t)(255 * v * rgb[2]);
            memcpy(d + r * stride + c * 4, &px, 4);
        }
    cairo_surface_mark_dirty(s);
    cairo_set_source_surface(cr, s, x, y);
    cairo_paint(cr);
    cairo_surface_destroy(s);
}

static const double *tint(const char *name) {
    static const double blue[3] = {0.45, 0.6, 1.0}, green[3] = {0.4, 1.0, 0.4}, red[3] = {1.0, 0.45, 0.45},
                        yellow[3] = {1.0, 0.9, 0.35}, grey[3] = {1, 1, 1};
    if (!strcmp(name, "nucleus") || !strcmp(name, "blue")) return blue;
    if (!strcmp(name, "protein") || !strcmp(name, "green")) return green;
    if (!strcmp(name, "microtubules") || !strcmp(name, "red")) return red;
    if (!strcmp(name, "er")) return yellow;
    return grey;
}

static void label(cairo_t *cr, double x, double y, const char *text, double size) {
    cairo_set_font_size(cr, size);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_move_to(cr, x, y);
    cairo_show_text(cr, text);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: make_align_figure SAMPLES_DIR OUT.png\n");
        return 2;
    }
    char nuc_path[1024], prot_path[1024];
    snprintf(nuc_path, sizeof nuc_path, "%s/opencell_hoechst_proj/FOV_00007_RAW.tif", argv[1]);
    snprintf(prot_path, sizeof prot_path, "%s/hpa_1000_A12_2/1000_A12_2_green.png", argv[1]);
    PlImage nuc, prot;
    if (pl_image_read(nuc_path, NULL, &nuc) != PL_OK) die("nucleus");
    if (pl_image_read(prot_path, NULL, &prot) != PL_OK) die("protein");
    // both to THUMB² (area averaging): the figure shows whole fields
    PlResizeWork rw = {0};
    float *planes_buf = malloc(sizeof(float) * 2 * THUMB * THUMB);
    if (pl_resize_plane(&rw, nuc.data, nuc.height, nuc.width, planes_buf, THUMB, THUMB) != PL_OK ||
        pl_resize_plane(&rw, prot.data, prot.height, prot.width, planes_buf + THUMB * THUMB, THUMB, THUMB) != PL_OK)
        die("resize");
    // z-scored copies of the sources, for display only
    float *shown = malloc(sizeof(float) * 2 * THUMB * THUMB);
    for (int k = 0; k < 2; k++) {
        const float *p = planes_buf + k * THUMB * THUMB;
        double m = 0, v = 0;
        for (int i = 0; i < THUMB * THUMB; i++) m += p[i];
        m /= THUMB * THUMB;
        for (int i = 0; i < THUMB * THUMB; i++) v += (p[i] - m) * (p[i] - m);
        double sd = sqrt(v / (THUMB * THUMB)) + 1e-7;
        for (int i = 0; i < THUMB * THUMB; i++) shown[k * THUMB * THUMB + i] = (float)((p[i] - m) / sd);
    }
    const char *roles[2] = {"nucleus", "protein"};
    const float *planes[2] = {planes_buf, planes_buf + THUMB * THUMB};
    int bits[2] = {16, 16}, is_float[2] = {0, 0};

    struct { const char *title, *slots, *extra; PlAlignStrategy s; } rows[4] = {
        {"map (natural mapping)", "protein,nucleus,microtubules,er", NULL, PL_ALIGN_MAP},
        {"replicate (one view per role, ImageNet RGB)", "red,green,blue", NULL, PL_ALIGN_REPLICATE},
        {"random (seed 2, item FOV_00007)", "protein,nucleus,microtubules,er", NULL, PL_ALIGN_RANDOM},
        {"duplicate (microtubules=nucleus, er=protein)", "protein,nucleus,microtubules,er", "microtubules=nucleus,er=protein", PL_ALIGN_DUPLICATE},
    };
    const double left = 20, slots_x = left + 2 * (THUMB + GAP) + 70, row_h = THUMB + 70;
    int total_rows = 5;   // replicate takes two
    int W = (int)(slots_x + 4 * (THUMB + GAP) + 10), H = (int)(40 + total_rows * row_h);
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    label(cr, left, 24, "protloc channel alignment: source roles -> model input slots (pl_prep output, self-normalised)", 15);
    double y = 40;
    PlPrepResult res = {0};
    for (int r = 0; r < 4; r++) {
        PlPrepConfig cfg;
        if (pl_prep_config_default(&cfg, rows[r].slots) != PL_OK) die("config");
        cfg.align.strategy = rows[r].s;
        cfg.align.seed = 2;
        if (rows[r].extra && pl_align_spec_set_fill(&cfg.align, rows[r].extra) != PL_OK) die("fill");
        cfg.fov = (PlFovSpec){.mode = PL_FOV_CENTER, .size = THUMB};
        if (pl_prep_planes(&cfg, "FOV_00007", 0, roles, planes, bits, is_float, 2, THUMB, THUMB, &res) != PL_OK) die("prep");
        for (int v = 0; v < res.n_views; v++) {
            label(cr, left, y + 18, v == 0 ? rows[r].title : "", 14);
            double ty = y + 28;
            for (int k = 0; k < 2; k++) {
                draw_plane(cr, shown + k * THUMB * THUMB, THUMB, left + k * (THUMB + GAP), ty, tint(roles[k]));
                label(cr, left + k * (THUMB + GAP), ty + THUMB + 14, roles[k], 12);
            }
            // normalised slots of view v
            for (int s = 0; s < res.n_slots; s++) {
                const float *p = res.data + ((size_t)v * res.n_slots + s) * THUMB * THUMB;
                double sx = slots_x + s * (THUMB + GAP);
                draw_plane(cr, p, THUMB, sx, ty, tint(cfg.align.slots[s]));
                char text[96];
                int src = res.plan.src[v][s];
                label(cr, sx, ty + THUMB + 14, cfg.align.slots[s], 12);
                snprintf(text, sizeof text, "<- %s", src >= 0 ? roles[src] : "(empty)");
                label(cr, sx, ty + THUMB + 28, text, 12);
            }
            if (res.n_views > 1) {
                char text[64];
                snprintf(text, sizeof text, "view %d", v);
                label(cr, slots_x - 62, ty + THUMB / 2.0, text, 12);
            }
            y += row_h;
        }
    }
    cairo_surface_flush(surf);
    cairo_status_t cs = cairo_surface_write_to_png(surf, argv[2]);
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    pl_prep_result_free(&res);
    pl_resize_work_free(&rw);
    free(planes_buf);
    free(shown);
    pl_image_free(&nuc);
    pl_image_free(&prot);
    if (cs != CAIRO_STATUS_SUCCESS) {
        fprintf(stderr, "make_align_figure: cannot write %s: %s\n", argv[2], cairo_status_to_string(cs));
        return 1;
    }
    return 0;
}
