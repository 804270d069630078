// Training-cache reader throughput on ONE thread (docs/performance.md "Training cache"): samples/s of reading a built
// cache's samples (pread + zstd decompress + byte unshuffle + checksum, pl_cache_shard_read as the batch reader's lane
// does) in a shuffled order, followed by the per-sample CPU work of the consumer's fetch:
//   --mode finetune  pl_augment_image (random resized crop, flips, rot90, jitter, standardisation) at the canvas size,
//                    as stages/train/pl_finetune.c fetch_prepare does for `protloc finetune --cache`;
//   --mode dino      pl_dino_augment_views (2 global + N local views, default 2 x 224^2 + 8 x 96^2) then
//                    pl_standardise_channels on every view (DINO's normalisation step);
//   --mode read      the read alone.
// Prints the FP32 FMA peak measured in the same run (fma_peak.h), the load average, the cache's sample count and
// shape, and read / augment / total seconds per sample and samples/s (the total is the reader thread's rate).
//
//   build/bench/bench_cache_reader --cache DIR [--mode finetune|dino|read] [--seconds 5] [--seed 1]
//                                  [--global 224] [--local 96] [--n-local 8]
// DIR: a cache made by `protloc cache build` (its shards/*.plc are read directly; cache.json's order is not needed).
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fma_peak.h"
#include "pl_cache_shard.h"
#include "pl_clock.h"
#include "pl_dino_augment.h"
#include "pl_rng.h"
#include "pl_train_augment.h"

typedef struct { int shard; int64_t k; } Ref;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    const char *dir = NULL, *mode = "finetune";
    double seconds = 5;
    uint64_t seed = 1;
    int global = 224, local = 96, n_local = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cache") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--global") && i + 1 < argc) global = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--local") && i + 1 < argc) local = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n-local") && i + 1 < argc) n_local = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s --cache DIR [--mode finetune|dino|read] [--seconds S] [--seed N] [--global 224] "
                            "[--local 96] [--n-local 8]\n", argv[0]);
            return 2;
        }
    }
    if (!dir || (strcmp(mode, "finetune") && strcmp(mode, "dino") && strcmp(mode, "read"))) {
        fprintf(stderr, "--cache DIR and --mode finetune|dino|read are needed\n");
        return 2;
    }

    // the shards, in name order
    char sd[4096];
    snprintf(sd, sizeof sd, "%s/shards", dir);
    DIR *dp = opendir(sd);
    if (!dp) { perror(sd); return 1; }
    char **names = NULL;
    int n_names = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".plc")) {
            names = realloc(names, (size_t)(n_names + 1) * sizeof *names);
            names[n_names++] = strdup(e->d_name);
        }
    }
    closedir(dp);
    if (!n_names) { fprintf(stderr, "no shards in %s\n", sd); return 1; }
    qsort(names, (size_t)n_names, sizeof *names, cmp_str);
    PlCacheShard *sh = calloc((size_t)n_names, sizeof *sh);
    int64_t n = 0;
    uint64_t frame_bytes = 0;
    for (int s = 0; s < n_names; s++) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", sd, names[s]);
        if (pl_cache_shard_open(&sh[s], p) != PL_OK) { fprintf(stderr, "cannot open %s\n", p); return 1; }
        if (sh[s].C != sh[0].C || sh[s].S != sh[0].S) { fprintf(stderr, "shards differ in shape\n"); return 1; }
        n += sh[s].n_samples;
        for (int64_t k = 0; k < sh[s].n_samples; k++) frame_bytes += sh[s].bytes[k];
    }
    if (!n) { fprintf(stderr, "the cache holds no samples\n"); return 1; }
    const int C = sh[0].C, S = sh[0].S;
    const size_t chw = (size_t)C * S * S;
    Ref *ref = malloc((size_t)n * sizeof *ref);
    int64_t r = 0;
    for (int s = 0; s < n_names; s++)
        for (int64_t k = 0; k < sh[s].n_samples; k++) ref[r++] = (Ref){s, k};
    PlRng rng;   // a shuffled order, as finetune's sampler reads
    pl_rng_seed(&rng, seed);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(pl_rng_next(&rng) % (uint64_t)(i + 1));
        Ref t = ref[i]; ref[i] = ref[j]; ref[j] = t;
    }

    PlCacheDecoder *dec = NULL;
    if (pl_cache_decoder_create(&dec, C, S) != PL_OK) return 1;
    float *sample = malloc(chw * sizeof(float));
    PlAugmentOptions ao;
    pl_augment_options_default(&ao);
    PlDinoAugmentOptions dopt;
    pl_dino_augment_options_default(&dopt);
    dopt.global_size = global;
    dopt.local_size = local;
    dopt.n_local = n_local;
    if (pl_dino_augment_options_check(&dopt) != PL_OK) { fprintf(stderr, "bad DINO options\n"); return 2; }
    size_t scratch_n = chw;
    if (!strcmp(mode, "dino")) scratch_n = pl_dino_augment_scratch_floats(&dopt, C, S, S);
    float *scratch = malloc(scratch_n * sizeof(float));
    float *out = malloc(chw * sizeof(float));
    float *gv = malloc((size_t)2 * C * global * global * sizeof(float));
    float *lv = n_local ? malloc((size_t)n_local * C * local * local * sizeof(float)) : NULL;

    const double peak1 = fma_peak_gflops(1);
    double la[3] = {0, 0, 0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) { if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1; fclose(lf); }
    printf("# bench_cache_reader: %s, mode %s, 1 thread, %.1f s\n", dir, mode, seconds);
    printf("# fp32 fma peak threads=1: %.1f GFLOP/s (measured now)\n", peak1);
    printf("# load average before: %.2f %.2f %.2f\n", la[0], la[1], la[2]);
    printf("# cache: %d shards, %lld samples of (%d, %d, %d) float32 = %.1f MiB raw, frames %.1f MiB (ratio %.2f)\n",
           n_names, (long long)n, C, S, S, (double)n * chw * 4 / 1048576.0, frame_bytes / 1048576.0,
           (double)n * chw * 4 / (double)(frame_bytes ? frame_bytes : 1));
    if (!strcmp(mode, "dino"))
        printf("# views per sample: 2 x %d^2 + %d x %d^2 (pl_dino_augment_views + pl_standardise_channels)\n", global,
               n_local, local);

    double t_read = 0, t_aug = 0, t0 = pl_clock_now();
    int64_t done = 0;
    double checksum = 0;
    while (pl_clock_now() - t0 < seconds || done < 8) {
        const Ref *q = &ref[done % n];
        const int64_t epoch = done / n;
        double a = pl_clock_now();
        if (pl_cache_shard_read(&sh[q->shard], q->k, dec, sample) != PL_OK) { fprintf(stderr, "read failed\n"); return 1; }
        double b = pl_clock_now();
        const uint64_t key = pl_rng_mix(pl_rng_mix(seed, (uint64_t)epoch), (uint64_t)(done % n));
        if (!strcmp(mode, "finetune")) {
            pl_augment_image(&ao, key, sample, C, S, S, out, scratch);
            checksum += out[0];
        } else if (!strcmp(mode, "dino")) {
            pl_dino_augment_views(&dopt, key, sample, C, S, S, 0, gv, lv, scratch);
            for (int v = 0; v < 2; v++) pl_standardise_channels(gv + (size_t)v * C * global * global, C, global, global);
            for (int v = 0; v < n_local; v++) pl_standardise_channels(lv + (size_t)v * C * local * local, C, local, local);
            checksum += gv[0] + (lv ? lv[0] : 0);
        } else {
            checksum += sample[0];
        }
        double c = pl_clock_now();
        t_read += b - a;
        t_aug += c - b;
        done++;
    }
    const double total = t_read + t_aug;
    printf("samples %lld (%.2f passes)  read %.3f ms/sample  augment %.3f ms/sample  total %.3f ms/sample\n",
           (long long)done, (double)done / n, 1e3 * t_read / done, 1e3 * t_aug / done, 1e3 * total / done);
    printf("read_samples_per_s %.1f\n", done / t_read);
    printf("reader_samples_per_s %.1f   (read + %s, one thread)\n", done / total, mode);
    printf("# checksum %g\n", checksum);

    free(lv); free(gv); free(out); free(scratch); free(sample);
    pl_cache_decoder_free(dec);
    for (int s = 0; s < n_names; s++) { pl_cache_shard_close(&sh[s]); free(names[s]); }
    free(sh); free(names); free(ref);
    return 0;
}
