// Benchmark of one (image, head) of attention, single thread: the ViT forward's old path (cblas_sgemm q k^T into a
// (256, T) score chunk, pl_vit_softmax_rows, cblas_sgemm with v; OpenBLAS on one thread) against the flash kernel
// (pl_flash_attention.h) in FP32 and BF16 at every dispatch level the CPU has, side by side.
//
//   build/bench/bench_flash_attention [--tokens 197,1025,4097] [--hd 64] [--heads 12] [--seconds 1]
//                                     [--levels baseline,avx2,avx512,avx512bf16] [--backward]
// q, k, v are slices of (T, 3 * heads * hd) rows as in the ViT. One tab-separated line per (T, path) after a '#'
// header: ms per (image, head) and GFLOP/s counting 4 T^2 hd flops (forward; --backward adds the backward, counted
// as 10 T^2 hd flops). The baseline level is a portable scalar fallback: slow, so it is left out above T = 1100.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "pl_clock.h"
#include "pl_dispatch.h"
#include "pl_flash_attention.h"
#include "pl_vit_kernels.h"

void openblas_set_num_threads(int num_threads);

#define QCHUNK 256   // pl_vit.c's PL_VIT_QCHUNK

typedef struct Bench {
    int T, hd, ld;
    float scale;
    float *qkv, *o, *lse, *dout, *dqkv, *scores;
    void *scratch;
    PlPrecision prec;
} Bench;

static void old_path(void *ctx) {
    Bench *b = ctx;
    const int T = b->T, hd = b->hd, ld = b->ld;
    const float *q = b->qkv, *k = q + ld / 3, *v = q + 2 * (ld / 3);
    int rows = T < QCHUNK ? T : QCHUNK;
    for (int i0 = 0; i0 < T; i0 += rows) {
        int m = T - i0 < rows ? T - i0 : rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, T, hd, b->scale, q + (size_t)i0 * ld, ld, k, ld, 0.0f,
                    b->scores, T);
        pl_vit_softmax_rows(b->scores, T, m, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, T, 1.0f, b->scores, T, v, ld, 0.0f,
                    b->o + (size_t)i0 * hd, hd);
    }
}

static void flash_fwd(void *ctx) {
    Bench *b = ctx;
    const float *q = b->qkv;
    pl_flash_attention_forward(b->T, b->hd, b->scale, q, q + b->ld / 3, q + 2 * (b->ld / 3), b->ld, b->o, b->hd, b->lse,
                               b->prec, b->scratch);
}

static void flash_bwd(void *ctx) {
    Bench *b = ctx;
    const float *q = b->qkv;
    pl_flash_attention_backward(b->T, b->hd, b->scale, q, q + b->ld / 3, q + 2 * (b->ld / 3), b->ld, b->o, b->dout,
                                b->hd, b->lse, b->dqkv, b->dqkv + b->ld / 3, b->dqkv + 2 * (b->ld / 3), b->prec,
                                b->scratch);
}

int main(int argc, char **argv) {
    int tokens[8] = {197, 1025, 4097}, nt = 3, hd = 64, heads = 12, backward = 0;
    double seconds = 1.0;
    int use_level[4] = {1, 1, 1, 1};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            if ((nt = bench_parse_ints(argv[++i], tokens, 8)) < 1) {
                fprintf(stderr, "%s: --tokens takes positive integers separated by commas\n", argv[0]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--hd") && i + 1 < argc) hd = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--heads") && i + 1 < argc) heads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--backward")) backward = 1;
        else if (!strcmp(argv[i], "--levels") && i + 1 < argc) {
            const char *l = argv[++i];
            for (int lv = 0; lv < 4; lv++) {
                const char *name = pl_cpu_level_name((PlCpuLevel)lv);
                const char *hit = strstr(l, name);
                // "avx512" must not match inside "avx512bf16"
                use_level[lv] = hit && (hit[strlen(name)] == ',' || hit[strlen(name)] == 0);
            }
        } else {
            fprintf(stderr, "usage: %s [--tokens 197,1025,4097] [--hd 64] [--heads 12] [--seconds 1] [--levels L,..]"
                            " [--backward]\n", argv[0]);
            return 2;
        }
    }
    openblas_set_num_threads(1);
    printf("# best level %s; one thread; hd %d, q/k/v row stride %d\n", pl_cpu_level_name(pl_cpu_level()), hd,
           3 * heads * hd);
    printf("# T\tpath\tlevel\tprecision\tms_fwd\tGFLOP/s_fwd%s\n", backward ? "\tms_bwd\tGFLOP/s_bwd" : "");
    for (int ti = 0; ti < nt; ti++) {
        Bench b = {.T = tokens[ti], .hd = hd, .ld = 3 * heads * hd, .scale = 1.0f / sqrtf((float)hd)};
        const size_t T = (size_t)b.T;
        size_t sc = pl_flash_attention_scratch_bytes(b.T, hd, PL_PRECISION_FP32);
        size_t sb = pl_flash_attention_scratch_bytes(b.T, hd, PL_PRECISION_BF16);
        b.qkv = malloc(sizeof(float) * T * b.ld);
        b.dqkv = malloc(sizeof(float) * T * b.ld);
        b.o = malloc(sizeof(float) * T * hd);
        b.dout = malloc(sizeof(float) * T * hd);
        b.lse = malloc(sizeof(float) * T);
        b.scores = malloc(sizeof(float) * QCHUNK * T);
        b.scratch = aligned_alloc(64, ((sc > sb ? sc : sb) + 63) / 64 * 64);
        if (!b.qkv || !b.dqkv || !b.o || !b.dout || !b.lse || !b.scores || !b.scratch) return 1;
        unsigned long long s = 12345;
        for (size_t i = 0; i < T * b.ld; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            b.qkv[i] = (float)((double)(s >> 40) / 8388608.0 - 1.0);
        }
        for (size_t i = 0; i < T * hd; i++) b.dout[i] = b.qkv[i * 3 + 1];
        const double flops = 4.0 * (double)T * T * hd;
        double t = bench_best_seconds(old_path, &b, seconds);
        printf("%d\tsgemm+softmax+sgemm\topenblas\tfp32\t%.3f\t%.1f%s\n", b.T, t * 1e3, flops / t * 1e-9,
               backward ? "\t-\t-" : "");
        for (int lv = 0; lv < 4; lv++) {
            if (!use_level[lv] || pl_flash_attention_use((PlCpuLevel)lv) != PL_OK) continue;
            if (lv == PL_CPU_BASELINE && b.T > 1100) continue;
            for (int p = 0; p < 2; p++) {
                b.prec = p ? PL_PRECISION_BF16 : PL_PRECISION_FP32;
                t = bench_best_seconds(flash_fwd, &b, seconds);
                printf("%d\tflash\t%s\t%s\t%.3f\t%.1f", b.T, pl_cpu_level_name((PlCpuLevel)lv),
                       pl_precision_name(b.prec), t * 1e3, flops / t * 1e-9);
                if (backward) {
                    double tb = bench_best_seconds(flash_bwd, &b, seconds);
                    printf("\t%.3f\t%.1f", tb * 1e3, 2.5 * flops / tb * 1e-9);
                }
                printf("\n");
                fflush(stdout);
            }
        }
        free(b.qkv), free(b.dqkv), free(b.o), free(b.dout), free(b.lse), free(b.scores), free(b.scratch);
    }
    return 0;
}
