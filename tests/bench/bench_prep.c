// Benchmark: FOV preprocessing (decode + rescale + normalise + align + tile) throughput in MPix/s and ms per FOV.
// Usage: build/bench/bench_prep [repeats=7]   (inputs are generated at run time in a temp folder)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pl_clock.h"
#include "pl_decode.h"
#include "pl_error.h"
#include "pl_fs.h"
#include "pl_image.h"
#include "pl_image_write.h"
#include "pl_prep.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Microscopy-like content: smooth blobs (cells) + speckle + background, 16-bit range.
static void synth_plane(float *p, int H, int W, unsigned seed) {
    unsigned s = seed * 2654435761u + 1u;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double v = 400.0 + 3000.0 * (0.5 + 0.5 * sin(x * 0.031 + seed) * cos(y * 0.027 - seed));
            s = s * 1664525u + 1013904223u;
            v += (double)(s >> 20) * 0.5;
            p[(size_t)y * W + x] = (float)(v > 65535 ? 65535 : v);
        }
}

static void die(const char *what) {
    fprintf(stderr, "bench_prep: %s: %s\n", what, pl_error_message());
    exit(1);
}

typedef struct Case {
    const char *name;
    const char *slots;
    PlAlignStrategy strategy;
    PlFovMode fov;
    int tile;
    PlTileBorder border;
    double src_um, model_um;
    int n_sources;
    PlChannelSource sources[4];
    double mpix;   // source megapixels decoded per FOV (all channels)
} Case;

static void run_case(const Case *c, int repeats) {
    PlPrepConfig cfg;
    if (pl_prep_config_default(&cfg, c->slots) != PL_OK) die("config");
    cfg.align.strategy = c->strategy;
    cfg.fov.mode = c->fov;
    cfg.fov.size = c->tile;
    cfg.fov.stride = c->tile;
    cfg.fov.border = c->border;
    cfg.model_pixel_um = c->model_um;
    if (pl_prep_config_validate(&cfg) != PL_OK) die("validate");
    PlPrepResult res = {0};
    double *t = malloc(sizeof(double) * (size_t)repeats), *td = malloc(sizeof(double) * (size_t)repeats);
    PlImage tmp = {0};
    // warm-up (allocates the reusable buffers once)
    if (pl_prep_fov(&cfg, "bench", c->src_um, c->sources, c->n_sources, &res) != PL_OK) die(c->name);
    for (int r = 0; r < repeats; r++) {
        double t0 = pl_clock_now();
        for (int k = 0; k < c->n_sources; k++)
            if (pl_image_read_reuse(c->sources[k].ref, NULL, &tmp) != PL_OK) die("decode");
        td[r] = pl_clock_now() - t0;
        t0 = pl_clock_now();
        if (pl_prep_fov(&cfg, "bench", c->src_um, c->sources, c->n_sources, &res) != PL_OK) die(c->name);
        t[r] = pl_clock_now() - t0;
    }
    qsort(t, (size_t)repeats, sizeof(double), cmp_double);
    qsort(td, (size_t)repeats, sizeof(double), cmp_double);
    double med = t[repeats / 2], medd = td[repeats / 2];
    size_t out = (size_t)res.n_views * res.n_tiles * res.n_slots * res.tile_h * res.tile_w;
    printf("%-38s %6.1f ms/FOV (decode %6.1f ms)  %7.1f MPix/s  -> %d view(s) x %d tile(s) of %dx%dx%d (%.1f M floats)\n",
           c->name, med * 1e3, medd * 1e3, c->mpix / med, res.n_views, res.n_tiles, res.n_slots, res.tile_h,
           res.tile_w, out / 1e6);
    pl_image_free(&tmp);
    pl_prep_result_free(&res);
    free(t);
    free(td);
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 7;
    if (repeats < 1) repeats = 1;
    char dir[] = "/tmp/bench_prep_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char tif[256], png[4][256], ref[6][300];
    snprintf(tif, sizeof tif, "%s/opencell_like.tif", dir);
    PlImage img;
    if (pl_image_alloc(&img, 2, 1024, 1024) != PL_OK) die("alloc");
    synth_plane(pl_image_channel(&img, 0), 1024, 1024, 1);
    synth_plane(pl_image_channel(&img, 1), 1024, 1024, 2);
    if (pl_tiff_write(tif, &img, 16, PL_TIFF_NONE) != PL_OK) die("write tif");
    pl_image_free(&img);
    if (pl_image_alloc(&img, 1, 2048, 2048) != PL_OK) die("alloc");
    const char *hpa_names[4] = {"green", "blue", "red", "yellow"};
    for (int k = 0; k < 4; k++) {
        synth_plane(img.data, 2048, 2048, 10 + (unsigned)k);
        snprintf(png[k], sizeof png[k], "%s/hpa_%s.png", dir, hpa_names[k]);
        if (pl_png_write(png[k], &img, 0, 16) != PL_OK) die("write png");
    }
    pl_image_free(&img);
    snprintf(ref[0], sizeof ref[0], "%s#0", tif);
    snprintf(ref[1], sizeof ref[1], "%s#1", tif);
    const char *hpa4 = "protein,nucleus,microtubules,er";
    Case cases[] = {
        {"opencell 1024² TIFF, map, whole", hpa4, PL_ALIGN_MAP, PL_FOV_WHOLE, 224, PL_BORDER_DROP, 0, 0, 2,
         {{"nucleus", ref[0]}, {"protein", ref[1]}}, 2.0 * 1024 * 1024 / 1e6},
        {"opencell 1024² TIFF, map, tiles 224", hpa4, PL_ALIGN_MAP, PL_FOV_TILES, 224, PL_BORDER_SHIFT, 0, 0, 2,
         {{"nucleus", ref[0]}, {"protein", ref[1]}}, 2.0 * 1024 * 1024 / 1e6},
        {"opencell 1024² TIFF, replicate, tiles", "red,green,blue", PL_ALIGN_REPLICATE, PL_FOV_TILES, 224,
         PL_BORDER_SHIFT, 0, 0, 2, {{"nucleus", ref[0]}, {"protein", ref[1]}}, 2.0 * 1024 * 1024 / 1e6},
        {"opencell 1024² TIFF, 0.206→0.08 µm, tiles", hpa4, PL_ALIGN_MAP, PL_FOV_TILES, 224, PL_BORDER_SHIFT,
         0.206, 0.08, 2, {{"nucleus", ref[0]}, {"protein", ref[1]}}, 2.0 * 1024 * 1024 / 1e6},
        {"hpa 2048² 4xPNG16, map, whole", hpa4, PL_ALIGN_MAP, PL_FOV_WHOLE, 224, PL_BORDER_DROP, 0, 0, 4,
         {{"protein", png[0]}, {"nucleus", png[1]}, {"microtubules", png[2]}, {"er", png[3]}},
         4.0 * 2048 * 2048 / 1e6},
        {"hpa 2048² 4xPNG16, 0.08→0.16 µm, whole", hpa4, PL_ALIGN_MAP, PL_FOV_WHOLE, 224, PL_BORDER_DROP, 0.08, 0.16,
         4, {{"protein", png[0]}, {"nucleus", png[1]}, {"microtubules", png[2]}, {"er", png[3]}},
         4.0 * 2048 * 2048 / 1e6},
    };
    printf("bench_prep: median of %d runs per case; MPix/s = decoded source pixels (all channels) / total time\n", repeats);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], repeats);
    unlink(tif);
    for (int k = 0; k < 4; k++) unlink(png[k]);
    rmdir(dir);
    return 0;
}
