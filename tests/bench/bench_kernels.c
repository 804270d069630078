// Per-shape GFLOP/s of each kernel backend (pl_kernels.h) on the GEMM shapes protloc runs, beside the FP32 FMA peak
// measured in the same process: the ViT's linears (forward, through prepared weights with their post-ops), the
// training GEMMs (transposed operands) and the kNN similarity block, for openblas FP32, onednn FP32 and onednn BF16.
// Each thread computes its own rows (as protloc's pool does); GFLOP/s counts all threads together.
//
//   build/bench/bench_kernels [--threads 1,2] [--seconds 1] [--peak]   (--peak: only the FMA peak per thread count)
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fma_peak.h"
#include "pl_bf16.h"
#include "pl_clock.h"
#include "pl_kernels.h"

void openblas_set_num_threads(int num_threads);

typedef struct Shape {
    const char *what;
    int kind;   // 0 = linear (prepared weight w (n, k), flags), 1 = gemm (ta, tb)
    int m, n, k, ta, tb, flags;
} Shape;

static const Shape shapes[] = {
    {"ViT-S qkv", 0, 512, 1152, 384, 0, 0, 0},
    {"ViT-S fc1+GELU", 0, 512, 1536, 384, 0, 0, PL_LINEAR_GELU},
    {"ViT-S fc2+residual", 0, 512, 384, 1536, 0, 0, PL_LINEAR_ACCUMULATE},
    {"ViT-B qkv", 0, 512, 2304, 768, 0, 0, 0},
    {"ViT-B proj+residual", 0, 512, 768, 768, 0, 0, PL_LINEAR_ACCUMULATE},
    {"ViT-B fc1+GELU", 0, 512, 3072, 768, 0, 0, PL_LINEAR_GELU},
    {"ViT-B fc2+residual", 0, 512, 768, 3072, 0, 0, PL_LINEAR_ACCUMULATE},
    {"train dX = dY W (ViT-S fc1)", 1, 394, 384, 1536, 0, 0, 0},
    {"train dW = dY^T X (ViT-S fc1)", 1, 1536, 384, 394, 1, 0, 0},
    {"kNN block Q R^T", 1, 256, 2048, 384, 0, 1, 0},
};

typedef struct Job {
    const PlKernels *k;
    PlPrecision p;
    const Shape *s;
    PlKernelMat *mat;
    float *a, *b, *c;
    uint16_t *a16, *b16;
    void *scratch;
    double seconds;
    long iters;
} Job;

static void run_once(Job *j) {
    const Shape *s = j->s;
    if (s->kind == 0) {
        j->k->linear(j->mat, s->m, j->a, s->k, s->flags, j->c, s->n, j->scratch);
    } else {
        int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
        if (j->p == PL_PRECISION_BF16)
            j->k->gemm_bf16(s->ta, s->tb, s->m, s->n, s->k, 1.0f, j->a16, lda, j->b16, ldb, 0.0f, j->c, s->n);
        else
            j->k->gemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, j->a, lda, j->b, ldb, 0.0f, j->c, s->n);
    }
}

static void *job_thread(void *arg) {
    Job *j = arg;
    run_once(j);   // warm up (creates the primitive on first use)
    double t0 = pl_clock_now();
    j->iters = 0;
    do {
        run_once(j);
        j->iters++;
    } while (pl_clock_now() - t0 < j->seconds);
    j->seconds = pl_clock_now() - t0;
    return NULL;
}

// GFLOP/s of `threads` threads each running shape s on its own buffers with backend k at precision p; 0 if the
// backend cannot (printed as "-").
static double measure(const PlKernels *k, PlPrecision p, const Shape *s, int threads, double seconds) {
    if (p == PL_PRECISION_BF16 && !k->gemm_bf16) return 0;
    size_t big = (size_t)(s->m > s->n ? s->m : s->n) * (size_t)(s->k > s->n ? s->k : s->n) + (size_t)s->m * s->n;
    Job jobs[16];
    pthread_t tid[16];
    float *w = malloc(sizeof(float) * (size_t)s->n * s->k), *bias = malloc(sizeof(float) * s->n);
    for (size_t i = 0; i < (size_t)s->n * s->k; i++) w[i] = (float)((i * 7919) % 1000) / 1e4f - 0.05f;
    for (int i = 0; i < s->n; i++) bias[i] = 0.01f * (float)(i % 7);
    PlKernelMat *mat = NULL;
    if (s->kind == 0 && k->mat_create(w, bias, s->n, s->k, p, &mat) != PL_OK) return 0;
    for (int t = 0; t < threads; t++) {
        Job *j = &jobs[t];
        memset(j, 0, sizeof *j);
        j->k = k, j->p = p, j->s = s, j->mat = mat, j->seconds = seconds;
        j->a = malloc(sizeof(float) * big), j->b = malloc(sizeof(float) * big), j->c = malloc(sizeof(float) * big);
        j->a16 = malloc(sizeof(uint16_t) * big), j->b16 = malloc(sizeof(uint16_t) * big);
        if (posix_memalign(&j->scratch, 64, pl_kernels_linear_scratch_bytes(s->m, s->k, p) + 64) != 0) return 0;
        for (size_t i = 0; i < big; i++) j->a[i] = (float)((i * 104729) % 2000) / 1e3f - 1.0f, j->b[i] = j->a[i] * 0.5f, j->c[i] = 0;
        pl_bf16_from_f32_n(j->a16, j->a, big);
        pl_bf16_from_f32_n(j->b16, j->b, big);
        if (mat && k->mat_plan(mat, s->m, s->k, s->n, s->flags) != PL_OK) return 0;
    }
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, job_thread, &jobs[t]);
    double flops = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        flops += 2.0 * s->m * (double)s->n * s->k * jobs[t].iters / jobs[t].seconds;
    }
    for (int t = 0; t < threads; t++) {
        free(jobs[t].a), free(jobs[t].b), free(jobs[t].c), free(jobs[t].a16), free(jobs[t].b16);
        free(jobs[t].scratch);
    }
    if (mat) k->mat_destroy(mat);
    free(w);
    free(bias);
    return flops / 1e9;
}

int main(int argc, char **argv) {
    int threads[4] = {1, 2}, nthreads = 2;
    double seconds = 1.0;
    int peak_only = 0;   // --peak: print the FMA peak per thread count only (for benchmark scripts)
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--peak")) {
            peak_only = 1;
        } else if (i + 1 < argc && !strcmp(argv[i], "--seconds")) {
            seconds = atof(argv[++i]);
        } else if (i + 1 < argc && !strcmp(argv[i], "--threads")) {
            nthreads = 0;
            for (char *t = strtok(argv[++i], ","); t && nthreads < 4; t = strtok(NULL, ",")) threads[nthreads++] = atoi(t);
        } else {
            fprintf(stderr, "bench_kernels: unknown option or missing value: %s\n", argv[i]);
            return 2;
        }
    }
    openblas_set_num_threads(1);   // the program's setting: every call runs single-threaded on its calling thread
    const PlKernels *ob = NULL, *dn = NULL;   // the two production backends, by name from the registry
    if (pl_kernels_find("openblas", PL_PRECISION_FP32, &ob) != PL_OK || pl_kernels_find("onednn", PL_PRECISION_FP32, &dn) != PL_OK) {
        fprintf(stderr, "bench_kernels: %s\n", pl_error_message());
        return 1;
    }
    printf("# kernel backends per shape; cpu level %s\n", pl_cpu_level_name(pl_cpu_level()));
    for (int t = 0; t < nthreads; t++) {
        if (threads[t] < 1 || threads[t] > 16) continue;
        double peak = fma_peak_gflops(threads[t]);
        printf("\n## %d thread(s): FP32 FMA peak %.1f GFLOP/s (measured now)\n\n", threads[t], peak);
        if (peak_only) continue;
        printf("| shape (m x n x k) | openblas FP32 | onednn FP32 | onednn BF16 | BF16 / best FP32 |\n|---|---|---|---|---|\n");
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const Shape *sh = &shapes[s];
            double r[3] = {measure(ob, PL_PRECISION_FP32, sh, threads[t], seconds),
                           measure(dn, PL_PRECISION_FP32, sh, threads[t], seconds),
                           measure(dn, PL_PRECISION_BF16, sh, threads[t], seconds)};
            double best32 = r[0] > r[1] ? r[0] : r[1];
            printf("| %s (%d x %d x %d%s) |", sh->what, sh->m, sh->n, sh->k, sh->ta ? ", A^T" : sh->tb ? ", B^T" : "");
            for (int e = 0; e < 3; e++)
                if (r[e] > 0) printf(" %.1f (%.0f%%) |", r[e], 100.0 * r[e] / peak);
                else printf(" - |");
            printf(" %.2f |\n", best32 > 0 ? r[2] / best32 : 0.0);
            fflush(stdout);
        }
    }
    return 0;
}
