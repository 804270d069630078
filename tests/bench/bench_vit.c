// Benchmark of the ViT forward pass: images/s and GFLOP/s for DINO ViT-S/16 and ViT-B/16 (random weights
// or a checkpoint), against OpenBLAS's own large-SGEMM rate measured in the same run, plus peak RSS.
//
//   build/bench/bench_vit [--arch vit_small|vit_base] [--patch P] [--size S] [--threads 1,2] [--batch 1,8,32]
//                         [--seconds 3] [--model FILE --heads H] [--save-weights FILE.safetensors] [--no-gemm]
//                         [--kernels auto|baseline,avx2,avx512]
// One line per (kernel level, threads, batch) on stdout, tab separated, after a '#' header. --kernels runs the ViT's
// element-wise kernels at each listed CPU level (pl_dispatch.h) side by side; auto (default) = what protloc picks.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "fma_peak.h"
#include "pl_safetensors.h"
#include "pl_clock.h"
#include "pl_threadpool.h"
#include "pl_vit.h"
#include "pl_vit_kernels.h"
#include "pl_weights.h"

void openblas_set_num_threads(int num_threads);

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;
static float rng_normal(void) {   // cheap approximately normal: sum of 4 uniforms, centred, unit variance
    float s = 0.0f;
    for (int i = 0; i < 4; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        s += (float)(rng_state >> 40) / (float)(1ull << 24);
    }
    return (s - 2.0f) * 1.7320508f;
}

static int add_random(PlWeights *w, const char *name, int ndim, const int64_t *shape, float std, float mean) {
    float *d = NULL;
    if (pl_weights_add(w, name, ndim, shape, &d) != PL_OK) return -1;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    for (int64_t i = 0; i < n; i++) d[i] = mean + std * rng_normal();
    return 0;
}

// DINO ViT with random weights (trunc-normal-like std 0.02, LayerNorm weight 1).
static int build_random(PlWeights *w, int dim, int depth, int chans, int patch, int grid) {
    memset(w, 0, sizeof *w);
    int rc = 0;
    int64_t D = dim, H = 4 * dim;
    rc |= add_random(w, "cls_token", 3, (int64_t[]){1, 1, D}, 0.02f, 0);
    rc |= add_random(w, "pos_embed", 3, (int64_t[]){1, 1 + (int64_t)grid * grid, D}, 0.02f, 0);
    rc |= add_random(w, "patch_embed.proj.weight", 4, (int64_t[]){D, chans, patch, patch}, 0.02f, 0);
    rc |= add_random(w, "patch_embed.proj.bias", 1, (int64_t[]){D}, 0.01f, 0);
    for (int i = 0; i < depth && !rc; i++) {
        char n[96];
#define R(suffix, nd, std, mean, ...) (snprintf(n, sizeof n, "blocks.%d." suffix, i), add_random(w, n, nd, (int64_t[]){__VA_ARGS__}, std, mean))
        rc |= R("norm1.weight", 1, 0.05f, 1.0f, D);
        rc |= R("norm1.bias", 1, 0.01f, 0.0f, D);
        rc |= R("attn.qkv.weight", 2, 0.02f, 0.0f, 3 * D, D);
        rc |= R("attn.qkv.bias", 1, 0.01f, 0.0f, 3 * D);
        rc |= R("attn.proj.weight", 2, 0.02f, 0.0f, D, D);
        rc |= R("attn.proj.bias", 1, 0.01f, 0.0f, D);
        rc |= R("norm2.weight", 1, 0.05f, 1.0f, D);
        rc |= R("norm2.bias", 1, 0.01f, 0.0f, D);
        rc |= R("mlp.fc1.weight", 2, 0.02f, 0.0f, H, D);
        rc |= R("mlp.fc1.bias", 1, 0.01f, 0.0f, H);
        rc |= R("mlp.fc2.weight", 2, 0.02f, 0.0f, D, H);
        rc |= R("mlp.fc2.bias", 1, 0.01f, 0.0f, D);
#undef R
    }
    rc |= add_random(w, "norm.weight", 1, (int64_t[]){D}, 0.05f, 1.0f);
    rc |= add_random(w, "norm.bias", 1, (int64_t[]){D}, 0.01f, 0);
    return rc;
}

// OpenBLAS's own multi-threaded SGEMM rate on a large square problem (GFLOP/s).
static double gemm_rate(int threads, int n, double seconds) {
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 0.0;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = rng_normal();
        b[i] = rng_normal();
        c[i] = 0.0f;
    }
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);   // warm up
    double best = 0.0, t_end = pl_clock_now() + seconds;
    do {
        double t0 = pl_clock_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double r = 2.0 * n * (double)n * n / (pl_clock_now() - t0) / 1e9;
        if (r > best) best = r;
    } while (pl_clock_now() < t_end);
    openblas_set_num_threads(1);
    free(a);
    free(b);
    free(c);
    struct timespec pause = {0, 300000000};   // let OpenBLAS's worker threads go idle before we time our pool
    nanosleep(&pause, NULL);
    return best;
}

int main(int argc, char **argv) {
    const char *arch = "vit_small", *model = NULL, *save = NULL;
    int patch = 16, size = 224, heads = 0, threads[8] = {1, 2}, nthreads = 2, batches[8] = {1, 8, 32}, nbatches = 3, gemm = 1;
    double seconds = 3.0;
    openblas_set_num_threads(1);   // the program's setting: GEMMs run inside the pool's tasks (also with --no-gemm)
    PlCpuLevel levels[3];
    int nlevels = 0;
    const PlKernels *engines[8];   // --engine BACKEND:PRECISION[,...] (pl_kernels.h); default openblas:fp32
    PlPrecision precisions[8];
    int nengines = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-gemm")) { gemm = 0; continue; }
        if (!v) { fprintf(stderr, "bench_vit: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--patch")) patch = atoi(v);
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--heads")) heads = atoi(v);
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--save-weights")) save = v;
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--threads")) { if ((nthreads = bench_parse_ints(v, threads, 8)) < 1) { fprintf(stderr, "bench_vit: bad --threads\n"); return 2; } }
        else if (!strcmp(a, "--batch")) { if ((nbatches = bench_parse_ints(v, batches, 8)) < 1) { fprintf(stderr, "bench_vit: bad --batch\n"); return 2; } }
        else if (!strcmp(a, "--kernels")) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t && nlevels < 3; t = strtok(NULL, ",")) {
                int found = 0;
                for (int l = PL_CPU_BASELINE; l <= PL_CPU_AVX512; l++)
                    if (!strcmp(t, pl_cpu_level_name((PlCpuLevel)l))) levels[nlevels++] = (PlCpuLevel)l, found = 1;
                if (!found && strcmp(t, "auto")) { fprintf(stderr, "bench_vit: --kernels wants auto, baseline, avx2, avx512\n"); return 2; }
            }
        }
        else if (!strcmp(a, "--engine")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t && nengines < 8; t = strtok(NULL, ",")) {
                char *colon = strchr(t, ':');
                PlPrecision p = PL_PRECISION_FP32;
                if (colon) *colon = 0;
                if ((colon && pl_precision_parse(colon + 1, &p) != PL_OK) ||
                    pl_kernels_find(t, p, &engines[nengines]) != PL_OK) {
                    fprintf(stderr, "bench_vit: --engine: %s\n", pl_error_message());
                    return 2;
                }
                precisions[nengines++] = p;
            }
        }
        else { fprintf(stderr, "bench_vit: unknown option %s\n", a); return 2; }
    }
    struct rusage ru0;   // process baseline (libraries) before any weights or activations
    getrusage(RUSAGE_SELF, &ru0);
    PlWeights w;
    if (model) {
        if (pl_weights_load(model, NULL, &w) != PL_OK) { fprintf(stderr, "bench_vit: %s\n", pl_error_message()); return 1; }
    } else {
        int dim = !strcmp(arch, "vit_base") ? 768 : !strcmp(arch, "vit_tiny") ? 192 : 384;
        if (!strcmp(arch, "vit_small") + !strcmp(arch, "vit_base") + !strcmp(arch, "vit_tiny") != 1) {
            fprintf(stderr, "bench_vit: --arch must be vit_tiny, vit_small or vit_base\n");
            return 2;
        }
        if (build_random(&w, dim, 12, 3, patch, 224 / patch) != 0) { fprintf(stderr, "bench_vit: %s\n", pl_error_message()); return 1; }
        heads = heads ? heads : dim / 64;
        if (save) {
            char hs[16], ps[16];
            snprintf(hs, sizeof hs, "%d", heads);
            snprintf(ps, sizeof ps, "%d", patch);
            const char *meta[] = {"heads", hs, "patch_size", ps, "arch", arch, NULL};
            if (pl_safetensors_write(save, &w, meta) != PL_OK) { fprintf(stderr, "bench_vit: %s\n", pl_error_message()); return 1; }
            fprintf(stderr, "wrote %s\n", save);
            pl_weights_free(&w);
            return 0;
        }
    }
    PlVitConfig cfg;
    if (pl_vit_config_infer(&w, heads, &cfg) != PL_OK) { fprintf(stderr, "bench_vit: %s\n", pl_error_message()); return 1; }
    size_t weight_bytes = 0;
    for (size_t i = 0; i < w.count; i++) weight_bytes += (size_t)pl_weight_tensor_numel(&w.tensors[i]) * sizeof(float);
    double flops = pl_vit_flops_per_image(&cfg, size, size);
    printf("# model dim=%d depth=%d heads=%d patch=%d size=%d  %.2f GFLOP/image  weights %.1f MiB  baseline RSS %.1f MiB\n",
           cfg.dim, cfg.depth, cfg.heads, cfg.patch, size, flops / 1e9, weight_bytes / 1048576.0, ru0.ru_maxrss / 1024.0);
    double gemm_gflops[8] = {0};
    if (gemm)
        for (int t = 0; t < nthreads; t++) {
            gemm_gflops[t] = gemm_rate(threads[t], 2048, seconds > 1 ? 1.5 : seconds);
            printf("# openblas sgemm 2048^3 threads=%d: %.1f GFLOP/s\n", threads[t], gemm_gflops[t]);
        }
    if (nlevels == 0) levels[nlevels++] = pl_vit_kernels_level();
    if (nengines == 0) engines[nengines] = pl_kernels_default(), precisions[nengines++] = PL_PRECISION_FP32;
    printf("# cpu level %s\n", pl_cpu_level_name(pl_cpu_level()));
    double peak[8] = {0};
    for (int t = 0; t < nthreads; t++) {
        peak[t] = fma_peak_gflops(threads[t]);
        printf("# fp32 fma peak threads=%d: %.1f GFLOP/s\n", threads[t], peak[t]);
    }
    printf("#kernels\tthreads\tbatch\timages_per_s\tms_per_image\tgflops\tpct_of_sgemm\tactivations_MiB\tpeak_rss_MiB\tpct_of_fma_peak\n");
    fflush(stdout);
    int maxb = 0;
    for (int b = 0; b < nbatches; b++) maxb = batches[b] > maxb ? batches[b] : maxb;
    size_t per = (size_t)cfg.in_chans * size * size;
    float *x = malloc(sizeof(float) * per * maxb), *y = malloc(sizeof(float) * (size_t)cfg.dim * maxb * 2);
    if (!x || !y) return 1;
    for (size_t i = 0; i < per * maxb; i++) x[i] = rng_normal();
    for (int e = 0; e < nengines; e++)
    for (int l = 0; l < nlevels; l++)
    for (int t = 0; t < nthreads; t++) {
        if (pl_vit_kernels_use(levels[l]) != PL_OK) { fprintf(stderr, "bench_vit: %s\n", pl_error_message()); return 1; }
        PlThreadPool *pool = NULL;   // the process's one pool at this thread count (as protloc's programs have)
        if (pl_threadpool_create(threads[t], &pool) != PL_OK) { fprintf(stderr, "bench_vit: %s\n", pl_error_message()); return 1; }
        for (int b = 0; b < nbatches; b++) {
            PlVitOptions opt = {.max_batch = batches[b], .height = size, .width = size, .pool = pool,
                                .kernels = engines[e], .precision = precisions[e]};
            PlVit *vit;
            if (pl_vit_create(&w, &cfg, &opt, &vit) != PL_OK) { fprintf(stderr, "bench_vit: %s\n", pl_error_message()); return 1; }
            if (pl_vit_forward(vit, x, batches[b], y) != PL_OK) return 1;   // warm up
            int iters = 0;
            double t0 = pl_clock_now(), t1;
            do {
                if (pl_vit_forward(vit, x, batches[b], y) != PL_OK) return 1;
                iters++;
                t1 = pl_clock_now();
            } while (t1 - t0 < seconds || iters < 2);
            double ips = iters * batches[b] / (t1 - t0);
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            printf("%s/%s/%s\t%d\t%d\t%.4f\t%.2f\t%.1f\t%.0f\t%.1f\t%.1f\t%.0f\n", pl_cpu_level_name(levels[l]), engines[e]->name,
                   pl_precision_name(precisions[e]), threads[t], batches[b], ips, 1000.0 / ips, ips * flops / 1e9,
                   gemm ? 100.0 * ips * flops / 1e9 / gemm_gflops[t] : 0.0, pl_vit_activation_bytes(vit) / 1048576.0,
                   ru.ru_maxrss / 1024.0, 100.0 * ips * flops / 1e9 / peak[t]);
            fflush(stdout);
            pl_vit_destroy(vit);
        }
        pl_threadpool_destroy(pool);
    }
    free(x);
    free(y);
    pl_weights_free(&w);
    return 0;
}
