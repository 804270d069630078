// Benchmark: nucleus segmentation per 1024² FOV, cell measurement + crops, and synthetic field rendering.
// Usage: build/bench/bench_segment [FOV.tif ...] (default: the 7 shared OpenCell Hoechst FOVs) [--reps N]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pl_cells.h"
#include "pl_clock.h"
#include "pl_decode.h"
#include "pl_segment.h"
#include "pl_synth.h"

int main(int argc, char **argv) {
    int reps = 5;
    const char *files[64];
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (nf < 64) files[nf++] = argv[i];
    }
    static char defaults[7][512];
    if (nf == 0) {
        static const char *const names[7] = {"00007", "00027", "00061", "00076", "00156", "01036", "01176"};
        const char *shared = getenv("PROTLOC_SHARED_DIR");
        for (int i = 0; i < 7; i++) {
            snprintf(defaults[i], sizeof defaults[i], "%s/samples/opencell_hoechst_proj/FOV_%s_RAW.tif",
                     shared ? shared : "../shared", names[i]);
            files[nf++] = defaults[i];
        }
    }
    PlSegmenter *seg = NULL;
    int32_t *lab = NULL;
    PlCellSet set = {0};
    float *crops = NULL;
    int H = 0, W = 0;
    double seg_total = 0, crop_total = 0;
    long nuclei = 0;
    int runs = 0;
    for (int f = 0; f < nf; f++) {
        PlImage img;
        memset(&img, 0, sizeof img);
        if (pl_image_read(files[f], NULL, &img) != PL_OK) {
            fprintf(stderr, "%s\n", pl_error_message());
            return 1;
        }
        if (!seg || img.height != H || img.width != W) {
            pl_segmenter_destroy(seg);
            free(lab);
            H = img.height;
            W = img.width;
            if (pl_segmenter_create(H, W, NULL, &seg) != PL_OK) {
                fprintf(stderr, "%s\n", pl_error_message());
                return 1;
            }
            lab = malloc((size_t)H * W * sizeof(int32_t));
        }
        PlSegmentStats st;
        pl_segmenter_run(seg, img.data, lab, &st);   // warm-up (page faults)
        for (int r = 0; r < reps; r++) {
            double t0 = (1e3 * pl_clock_now());
            pl_segmenter_run(seg, img.data, lab, &st);
            double t1 = (1e3 * pl_clock_now());
            pl_cells_measure(lab, H, W, 1, &set);
            pl_cells_place(&set, H, W, 100, PL_CELL_BORDER_PAD);
            if (!crops) crops = malloc((size_t)4096 * 100 * 100 * sizeof(float));
            int n = set.count < 4096 ? set.count : 4096;
            pl_cells_crop((const float *const[]){img.data}, 1, H, W, &set, 0, n, 100, crops);
            double t2 = (1e3 * pl_clock_now());
            seg_total += t1 - t0;
            crop_total += t2 - t1;
            runs++;
        }
        nuclei += st.count;
        printf("%s\t%dx%d\t%d nuclei\n", files[f], H, W, st.count);
        pl_image_free(&img);
    }
    double mpix = (double)H * W / 1e6;
    printf("segment: %.1f ms per %dx%d FOV (%.1f MPix/s), %d runs\n", seg_total / runs, H, W,
           mpix / (seg_total / runs / 1e3), runs);
    printf("measure + 100px crops of every nucleus: %.2f ms per FOV (%ld nuclei over %d FOVs)\n", crop_total / runs,
           nuclei, nf);
    PlSynthField sf;
    if (pl_synth_field_alloc(&sf, PL_SYNTH_OPENCELL, 1024) == PL_OK) {
        double t0 = (1e3 * pl_clock_now());
        for (int r = 0; r < 3; r++) pl_synth_render(&sf, r, 1, (uint64_t)r + 1);
        printf("synth render: %.1f ms per 1024x1024 OpenCell field (2 channels)\n", ((1e3 * pl_clock_now()) - t0) / 3);
        pl_synth_field_free(&sf);
    }
    free(crops);
    free(lab);
    pl_cell_set_free(&set);
    pl_segmenter_destroy(seg);
    return 0;
}
