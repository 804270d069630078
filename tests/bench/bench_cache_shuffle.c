// Training-cache compression: zstd with and without the 4-byte shuffle the shards use (docs/performance.md "Training
// cache"). Reads every sample of a built cache (pl_cache_shard_read: the canvases exactly as finetune trains on them),
// then compresses each one as one frame (content checksum on, as the shards write them) at the given zstd levels,
// plain float32 bytes and byte-shuffled (plane b = byte b of every value, as pl_cache_shard.c's shard_shuffle), and
// prints per level and layout: compressed MiB, ratio raw / compressed, and one thread's compress and decompress
// (+ unshuffle) MB/s of raw data. One thread; the FP32 FMA peak and the load are printed for the record.
//
//   build/bench/bench_cache_shuffle --cache DIR [--levels 1,3,9]
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "fma_peak.h"
#include "pl_cache_shard.h"
#include "pl_clock.h"

static void shuffle4(unsigned char *dst, const unsigned char *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < 4; b++) dst[b * n + i] = src[4 * i + b];
}

static void unshuffle4(unsigned char *dst, const unsigned char *src, size_t n) {
    for (size_t b = 0; b < 4; b++)
        for (size_t i = 0; i < n; i++) dst[4 * i + b] = src[b * n + i];
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    const char *dir = NULL, *levels_s = "1,3,9";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cache") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--levels") && i + 1 < argc) levels_s = argv[++i];
        else { fprintf(stderr, "usage: %s --cache DIR [--levels 1,3,9]\n", argv[0]); return 2; }
    }
    if (!dir) { fprintf(stderr, "--cache DIR is needed\n"); return 2; }
    int levels[16], n_levels = 0;
    for (const char *p = levels_s; *p && n_levels < 16;) {
        levels[n_levels++] = atoi(p);
        const char *c = strchr(p, ',');
        if (!c) break;
        p = c + 1;
    }

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

    // every sample into memory (the caches this is meant for are small: real sample FOVs)
    float *all = NULL;
    int64_t n = 0;
    int C = 0, S = 0;
    uint64_t shard_frames = 0;
    for (int s = 0; s < n_names; s++) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", sd, names[s]);
        PlCacheShard sh;
        if (pl_cache_shard_open(&sh, p) != PL_OK) { fprintf(stderr, "cannot open %s\n", p); return 1; }
        if (!C) { C = sh.C; S = sh.S; }
        if (sh.C != C || sh.S != S) { fprintf(stderr, "shards differ in shape\n"); return 1; }
        PlCacheDecoder *d = NULL;
        if (pl_cache_decoder_create(&d, C, S) != PL_OK) return 1;
        const size_t chw = (size_t)C * S * S;
        all = realloc(all, (size_t)(n + sh.n_samples) * chw * sizeof(float));
        for (int64_t k = 0; k < sh.n_samples; k++) {
            if (pl_cache_shard_read(&sh, k, d, all + (size_t)(n + k) * chw) != PL_OK) return 1;
            shard_frames += sh.bytes[k];
        }
        n += sh.n_samples;
        pl_cache_decoder_free(d);
        pl_cache_shard_close(&sh);
    }
    if (!n) { fprintf(stderr, "no samples\n"); return 1; }
    const size_t nv = (size_t)C * S * S, raw = nv * 4;
    double la[3] = {0, 0, 0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) { if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = -1; fclose(lf); }
    printf("# bench_cache_shuffle: %s: %lld samples of (%d, %d, %d) float32, raw %.2f MiB; the shards' frames %.2f MiB"
           " (ratio %.2f); zstd %s\n", dir, (long long)n, C, S, S, (double)n * raw / 1048576.0, shard_frames / 1048576.0,
           (double)n * raw / (double)shard_frames, ZSTD_versionString());
    printf("# fp32 fma peak threads=1: %.1f GFLOP/s (measured now); load average %.2f %.2f %.2f\n", fma_peak_gflops(1),
           la[0], la[1], la[2]);
    printf("| zstd level | layout | compressed MiB | ratio | compress MB/s | decompress MB/s |\n|---|---|---|---|---|---|\n");

    unsigned char *shuf = malloc(raw), *back = malloc(raw), *back2 = malloc(raw);
    size_t cap = ZSTD_compressBound(raw);
    unsigned char *frame = malloc(cap);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    for (int li = 0; li < n_levels; li++) {
        for (int shuffled = 0; shuffled < 2; shuffled++) {
            ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
            ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, levels[li]);
            ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
            double tc = 0, td = 0;
            uint64_t total = 0;
            for (int64_t k = 0; k < n; k++) {
                const unsigned char *x = (const unsigned char *)(all + (size_t)k * nv);
                double a = pl_clock_now();
                const unsigned char *in = x;
                if (shuffled) { shuffle4(shuf, x, nv); in = shuf; }
                size_t z = ZSTD_compress2(cc, frame, cap, in, raw);
                double b = pl_clock_now();
                if (ZSTD_isError(z)) { fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(z)); return 1; }
                size_t r = ZSTD_decompressDCtx(dc, shuffled ? back2 : back, raw, frame, z);
                if (shuffled) unshuffle4(back, back2, nv);
                double c = pl_clock_now();
                if (ZSTD_isError(r) || r != raw || memcmp(back, x, raw)) { fprintf(stderr, "round trip failed\n"); return 1; }
                tc += b - a;
                td += c - b;
                total += z;
            }
            printf("| %d | %s | %.2f | %.2f | %.0f | %.0f |\n", levels[li], shuffled ? "byte-shuffled" : "plain float32",
                   total / 1048576.0, (double)n * raw / (double)total, (double)n * raw / tc / 1e6, (double)n * raw / td / 1e6);
        }
    }
    ZSTD_freeCCtx(cc);
    ZSTD_freeDCtx(dc);
    free(frame); free(shuf); free(back); free(back2); free(all);
    for (int s = 0; s < n_names; s++) free(names[s]);
    free(names);
    return 0;
}
