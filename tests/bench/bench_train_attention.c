// Benchmark of the training attention layer (pl_train_layers.h: pl_attention_forward / pl_attention_backward) on one
// thread: the fused flash path against the GEMM path through each kernel backend that computes the precision, FP32
// and BF16, side by side in one run, for one image of T tokens and `heads` heads (the trainer's unit of work).
//
//   build/bench/bench_train_attention [--tokens 37,197,257,785] [--dim 384] [--heads 6] [--seconds 1]
// One tab-separated line per (T, precision, path) after '#' lines with the CPU level and the one-thread FP32 FMA peak:
// ms per image for the forward and the backward and their GFLOP/s (forward 4 T^2 D flops: q k^T and P v; backward
// counted as 10 T^2 D for both paths, though the GEMM path, which keeps P, computes only dV, dP, dQ and dK: 8 T^2 D). Above PL_ATTN_GEMM_MAX_TOKENS the layer takes the flash path whatever the
// backend; to time the GEMM path there, build with -DPL_ATTN_GEMM_MAX_TOKENS=N (how the limit was chosen).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fma_peak.h"
#include "bench_util.h"
#include "pl_clock.h"
#include "pl_dispatch.h"
#include "pl_kernels.h"
#include "pl_train_layers.h"

typedef struct Bench {
    int T, D, NH;
    const PlKernels *k;   // NULL: flash
    PlPrecision prec;
    float *qkv, *out, *lse, *probs, *dout, *dqkv;
    void *scratch;
} Bench;

static void run_fwd(void *ctx) {
    Bench *b = ctx;
    pl_attention_forward(b->k, b->out, b->lse, b->probs, b->qkv, 1, b->T, b->D, b->NH, b->prec, b->scratch);
}

static void run_bwd(void *ctx) {
    Bench *b = ctx;
    pl_attention_backward(b->k, b->dqkv, b->dout, b->qkv, b->out, b->lse, b->probs, 1, b->T, b->D, b->NH, b->prec, b->scratch);
}

int main(int argc, char **argv) {
    int tokens[8] = {37, 197, 257, 785}, nt = 4, D = 384, NH = 6;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            if ((nt = bench_parse_ints(argv[++i], tokens, 8)) < 1) {
                fprintf(stderr, "%s: --tokens takes positive integers separated by commas\n", argv[0]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--dim") && i + 1 < argc) D = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--heads") && i + 1 < argc) NH = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--tokens 37,197,257,785] [--dim 384] [--heads 6] [--seconds 1]\n", argv[0]);
            return 2;
        }
    }
    if (NH < 1 || D < NH || D % NH) {
        fprintf(stderr, "--dim must be a positive multiple of --heads\n");
        return 2;
    }
    pl_kernels_single_thread();
    printf("# training attention, one thread, one image: dim %d, %d heads (hd %d); cpu level %s; "
           "GEMM path up to %d tokens in the trainer\n",
           D, NH, D / NH, pl_cpu_level_name(pl_cpu_level()), PL_ATTN_GEMM_MAX_TOKENS);
    printf("# fp32 fma peak threads=1: %.1f GFLOP/s\n", fma_peak_gflops(1));
    printf("# T\tprecision\tpath\tms_fwd\tGFLOP/s_fwd\tms_bwd\tGFLOP/s_bwd\n");
    for (int ti = 0; ti < nt; ti++) {
        const int T = tokens[ti];
        const size_t nq = (size_t)T * 3 * D, no = (size_t)T * D;
        Bench b = {.T = T, .D = D, .NH = NH};
        b.qkv = malloc(nq * sizeof(float));
        b.dqkv = malloc(nq * sizeof(float));
        b.out = malloc(no * sizeof(float));
        b.dout = malloc(no * sizeof(float));
        b.lse = malloc((size_t)NH * T * sizeof(float));
        b.probs = malloc((size_t)NH * T * T * sizeof(float));
        size_t sbytes = pl_attention_scratch_bytes(T, D, NH, PL_PRECISION_BF16);   // >= the FP32 path's
        b.scratch = aligned_alloc(64, (sbytes + 63) / 64 * 64);
        if (!b.qkv || !b.dqkv || !b.out || !b.dout || !b.lse || !b.probs || !b.scratch) return 1;
        unsigned long long s = 12345;
        for (size_t i = 0; i < nq; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            b.qkv[i] = (float)((double)(s >> 40) / 8388608.0 - 1.0);
        }
        for (size_t i = 0; i < no; i++) b.dout[i] = b.qkv[i * 3 + 1];
        const double ff = 4.0 * T * T * D, fb = 10.0 * T * T * D;
        for (int p = 0; p < 2; p++) {
            b.prec = p ? PL_PRECISION_BF16 : PL_PRECISION_FP32;
            for (int path = -1; path < pl_kernels_backend_count(); path++) {
                const char *name = "flash";
                b.k = NULL;
                if (path >= 0) {
                    const PlKernelsBackend *be = pl_kernels_backend(path);
                    if (be->probe(b.prec) != PL_OK) continue;
                    b.k = be->kernels;
                    if (!(p ? b.k->gemm_bf16 != NULL : b.k->gemm != NULL) || !strcmp(be->name, "reference")) continue;
                    name = be->name;
                }
                if (b.k && !pl_attention_uses_gemm(b.k, b.probs, T, b.prec)) {
                    printf("%d\t%s\tgemm %s\t(above the limit: not taken)\n", T, pl_precision_name(b.prec), name);
                    continue;
                }
                run_fwd(&b);
                double tf = bench_best_seconds(run_fwd, &b, seconds), tb = bench_best_seconds(run_bwd, &b, seconds);
                printf("%d\t%s\t%s%s\t%.3f\t%.1f\t%.3f\t%.1f\n", T, pl_precision_name(b.prec), b.k ? "gemm " : "",
                       name, tf * 1e3, ff / tf * 1e-9, tb * 1e3, fb / tb * 1e-9);
                fflush(stdout);
            }
        }
        free(b.qkv), free(b.dqkv), free(b.out), free(b.dout), free(b.lse), free(b.probs), free(b.scratch);
    }
    return 0;
}
