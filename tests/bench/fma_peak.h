// The machine's FP32 FMA peak, measured: every benchmark prints it beside its figures (docs/performance.md states
// each result as a share of the peak measured in the same run). Header-only, for tests/bench programs.
//
// Each thread runs 12 independent chains of fused multiply-adds on the widest vectors the CPU has (AVX-512: 16
// floats, AVX2+FMA: 8, else SSE mul+add: 4), long enough to amortise start-up; FLOPs = 2 per lane per FMA.
#ifndef FMA_PEAK_H
#define FMA_PEAK_H

#include <pthread.h>
#include <stdint.h>

#include "pl_clock.h"
#include "pl_dispatch.h"

#if PL_DISPATCH_X86
#include <immintrin.h>

__attribute__((target("avx512f"))) static float fma_chain_avx512(int64_t iters) {
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++) a[k] = _mm512_set1_ps((float)k);
    for (int64_t i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) a[k] = _mm512_fmadd_ps(a[k], m, c);
    __m512 s = a[0];
    for (int k = 1; k < 12; k++) s = _mm512_add_ps(s, a[k]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_chain_avx2(int64_t iters) {
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++) a[k] = _mm256_set1_ps((float)k);
    for (int64_t i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) a[k] = _mm256_fmadd_ps(a[k], m, c);
    __m256 s = a[0];
    for (int k = 1; k < 12; k++) s = _mm256_add_ps(s, a[k]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}
#endif

static float fma_chain_scalar(int64_t iters) {   // 4 lanes of SSE mul + add (2 FLOPs per lane per step)
    float a[12][4], m = 0.999999f, c = 1e-7f;
    for (int k = 0; k < 12; k++)
        for (int l = 0; l < 4; l++) a[k][l] = (float)k;
    for (int64_t i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++)
            for (int l = 0; l < 4; l++) a[k][l] = a[k][l] * m + c;
    return a[0][0] + a[11][3];
}

typedef struct FmaPeakJob {
    int64_t iters;
    int lanes;
    volatile float sink;
} FmaPeakJob;

static void *fma_peak_thread(void *arg) {
    FmaPeakJob *j = arg;
#if PL_DISPATCH_X86
    PlCpuLevel level = pl_cpu_level();
    if (level >= PL_CPU_AVX512) { j->lanes = 16; j->sink = fma_chain_avx512(j->iters); return NULL; }
    if (level == PL_CPU_AVX2 && __builtin_cpu_supports("fma")) { j->lanes = 8; j->sink = fma_chain_avx2(j->iters); return NULL; }
#endif
    j->lanes = 4;
    j->sink = fma_chain_scalar(j->iters);
    return NULL;
}

// FP32 GFLOP/s of `threads` threads running FMA chains at once (best of 3 runs of ~0.3 s).
static double fma_peak_gflops(int threads) {
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    pthread_t tid[256];
    FmaPeakJob job[256];
    double best = 0;
    int64_t iters = 20000000;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = pl_clock_now();
        for (int t = 0; t < threads; t++) {
            job[t].iters = iters;
            if (t > 0 && pthread_create(&tid[t], NULL, fma_peak_thread, &job[t]) != 0) return 0;
        }
        fma_peak_thread(&job[0]);
        for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
        double dt = pl_clock_now() - t0;
        double flops = 2.0 * job[0].lanes * 12.0 * (double)iters * threads;
        if (flops / dt / 1e9 > best) best = flops / dt / 1e9;
    }
    return best;
}

#endif
