// kNN benchmark: exact top-K search (blocked sgemm + heaps + rescoring) and per-k scoring for k = 1..K,
// compared with OpenBLAS's large-GEMM rate. Optionally writes its data for tests/bench/knn_vs_python.sh.
//
//   build/bench/bench_knn [--refs 50000] [--queries 10000] [--dim 384] [--k 200] [--classes 20]
//                         [--threads 2] [--query-block 256] [--ref-block 2048] [--repeat 1] [--write-data DIR]
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pl_clock.h"
#include "pl_knn.h"
#include "pl_metrics.h"
#include "pl_npy.h"
#include "pl_rng.h"
#include "pl_threadpool.h"
#include "pl_topk.h"

static double gauss(PlRng *r) {
    double u1 = pl_rng_uniform(r) + 1e-300, u2 = pl_rng_uniform(r);
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

int main(int argc, char **argv) {
    long R = 50000, Q = 10000, D = 384, K = 200, C = 20, threads = 2, qb = 256, rb = 2048, repeat = 1;
    const char *write_dir = NULL;
    for (int i = 1; i < argc; i++) {
        long *dst = NULL;
        if (strcmp(argv[i], "--refs") == 0) dst = &R;
        else if (strcmp(argv[i], "--queries") == 0) dst = &Q;
        else if (strcmp(argv[i], "--dim") == 0) dst = &D;
        else if (strcmp(argv[i], "--k") == 0) dst = &K;
        else if (strcmp(argv[i], "--classes") == 0) dst = &C;
        else if (strcmp(argv[i], "--threads") == 0) dst = &threads;
        else if (strcmp(argv[i], "--query-block") == 0) dst = &qb;
        else if (strcmp(argv[i], "--ref-block") == 0) dst = &rb;
        else if (strcmp(argv[i], "--repeat") == 0) dst = &repeat;
        else if (strcmp(argv[i], "--write-data") == 0 && i + 1 < argc) { write_dir = argv[++i]; continue; }
        if (!dst || i + 1 >= argc || (*dst = strtol(argv[++i], NULL, 10)) <= 0) {
            fprintf(stderr, "usage: %s [--refs N] [--queries N] [--dim D] [--k K] [--classes C] [--threads T] "
                            "[--query-block N] [--ref-block N] [--repeat N] [--write-data DIR]\n", argv[0]);
            return 2;
        }
    }
    if (K > R) K = R;
    // clustered data: class centres + noise, L2-normalised (as cosine kNN sees it)
    float *ref = malloc(sizeof(float) * R * D), *qry = malloc(sizeof(float) * Q * D);
    float *cent = malloc(sizeof(float) * C * D);
    int32_t *rl = malloc(sizeof(int32_t) * R), *ql = malloc(sizeof(int32_t) * Q);
    if (!ref || !qry || !cent || !rl || !ql) { fprintf(stderr, "out of memory\n"); return 1; }
    PlRng rng;
    pl_rng_seed(&rng, 2026);
    for (long i = 0; i < C * D; i++) cent[i] = (float)gauss(&rng);
    for (long i = 0; i < R + Q; i++) {
        int32_t c = (int32_t)pl_rng_below(&rng, C);
        float *x = i < R ? ref + i * D : qry + (i - R) * D;
        for (long d = 0; d < D; d++) x[d] = cent[c * D + d] * 0.35f + (float)gauss(&rng);
        if (i < R) rl[i] = c; else ql[i - R] = c;
    }
    pl_knn_normalise_rows(ref, R, (int)D);
    pl_knn_normalise_rows(qry, Q, (int)D);
    if (write_dir) {
        char p[4096];
        int64_t s2[2] = {R, D}, s1[1] = {R};
        snprintf(p, sizeof p, "%s/refs.npy", write_dir);
        if (pl_npy_write_f32(p, 2, s2, ref) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
        s2[0] = Q;
        snprintf(p, sizeof p, "%s/queries.npy", write_dir);
        if (pl_npy_write_f32(p, 2, s2, qry) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
        snprintf(p, sizeof p, "%s/ref_labels.npy", write_dir);
        if (pl_npy_write(p, "<i4", 1, s1, rl) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
        s1[0] = Q;
        snprintf(p, sizeof p, "%s/query_labels.npy", write_dir);
        if (pl_npy_write(p, "<i4", 1, s1, ql) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
    }

    // 1. OpenBLAS large-GEMM rate (its own threads), best of 2
    openblas_set_num_threads((int)threads);
    {
        int n = 3072;
        float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
        for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
        memset(c, 0, sizeof(float) * n * n);
        double best = 1e30, best_cpu = 1e30;
        for (int r = 0; r < 2; r++) {
            double t0 = pl_clock_now(), c0 = pl_clock_cpu();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            double t = pl_clock_now() - t0, tc = pl_clock_cpu() - c0;
            if (t < best) best = t;
            if (tc < best_cpu) best_cpu = tc;
        }
        printf("openblas_large_gemm  %dx%dx%d  %.3f s wall (%.1f GFLOP/s), %.3f s CPU (%.1f GFLOP per CPU-second)\n", n, n, n,
               best, 2.0 * n * n * n / best / 1e9, best_cpu, 2.0 * n * n * n / best_cpu / 1e9);
        double gemm_cpu_rate = 2.0 * n * n * n / best_cpu / 1e9;
        double gemm_rate = 2.0 * n * n * n / best / 1e9;
        free(a); free(b); free(c);

        // 2. the similarity phase alone: the same blocked sgemm loop as the search (threads x 1-thread BLAS)
        //    timed on a few query blocks on one thread (each search thread runs exactly these calls)
        openblas_set_num_threads(1);
        double flops = 2.0 * (double)Q * (double)R * (double)D;
        float *S = malloc(sizeof(float) * qb * rb * threads);
        double t0 = pl_clock_now();
        long nqb = (Q + qb - 1) / qb;
        long sample = nqb < 4 ? nqb : 4;   // a few query blocks on one thread: sgemm time per block
        for (long b0 = 0; b0 < sample; b0++) {
            long q0 = b0 * qb, nq = Q - q0 < qb ? Q - q0 : qb;
            for (long r0 = 0; r0 < R; r0 += rb) {
                long nr = R - r0 < rb ? R - r0 : rb;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nr, (int)D, 1.0f, qry + q0 * D, (int)D,
                            ref + r0 * D, (int)D, 0.0f, S, (int)nr);
            }
        }
        double t1 = pl_clock_now() - t0;
        double sample_flops = 2.0 * (double)(sample * qb < Q ? sample * qb : Q) * (double)R * (double)D;
        double block_rate_1t = sample_flops / t1 / 1e9;
        printf("blocked_sgemm_1thread  %ldx%ldx%ld blocks  %.1f GFLOP/s per thread (x%ld threads = %.1f, %.0f%% of large GEMM)\n",
               qb, rb, D, block_rate_1t, threads, block_rate_1t * threads, 100.0 * block_rate_1t * threads / gemm_rate);
        free(S);

        // 3. full exact search + per-k scoring, on one pool as protloc knn runs it
        PlThreadPool *pool = NULL;
        if (pl_threadpool_create((int)threads, &pool) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
        PlTopK t;
        if (pl_topk_init(&t, Q, (int)K) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
        int32_t *nbl = malloc(sizeof(int32_t) * Q * K), *pred = malloc(sizeof(int32_t) * Q * K);
        float *nbs = malloc(sizeof(float) * Q * K);
        double *scratch = malloc(sizeof(double) * (C + 1));
        double *f1 = malloc(sizeof(double) * K);
        double best_search = 1e30, best_score = 1e30, cpu_search = 0, cpu_score = 0;
        for (long rep = 0; rep < repeat; rep++) {
            PlKnnSearch s = {.queries = qry, .n_queries = Q, .refs = ref, .n_refs = R, .dim = (int)D, .metric = PL_KNN_COSINE,
                             .pool = pool, .query_block = (int)qb, .ref_block = (int)rb};
            double a0 = pl_clock_now(), c0 = pl_clock_cpu();
            if (pl_knn_search(&s, &t) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
            double a1 = pl_clock_now(), c1 = pl_clock_cpu();
            for (long q = 0; q < Q; q++)
                for (long k = 0; k < K; k++) {
                    nbl[q * K + k] = rl[t.items[q * K + k].index];
                    nbs[q * K + k] = t.items[q * K + k].score;
                }
            pl_knn_vote_all_k(nbl, nbs, t.count, Q, (int)K, (int)C, PL_KNN_VOTE_WEIGHTED, 0.07f, scratch, pred);
            int64_t tp[C], fp[C], fn[C];
            PlClassCounts cc = {(int)C, tp, fp, fn};
            for (long k = 0; k < K; k++) {
                pl_metrics_count(ql, pred + k, Q, K, &cc);
                f1[k] = pl_metrics_macro_f1(&cc, NULL, NULL);
            }
            double a2 = pl_clock_now(), c2 = pl_clock_cpu();
            if (a1 - a0 < best_search) best_search = a1 - a0, cpu_search = c1 - c0;
            if (a2 - a1 < best_score) best_score = a2 - a1, cpu_score = c2 - c1;
        }
        printf("protloc_search  R=%ld Q=%ld D=%ld K=%ld threads=%ld  %.3f s wall, %.3f s CPU  (%.1f GFLOP/s effective, %.0f%% of large GEMM)\n",
               R, Q, D, K, threads, best_search, cpu_search, flops / best_search / 1e9, 100.0 * flops / best_search / 1e9 / gemm_rate);
        printf("protloc_search_cpu_rate  %.1f GFLOP per CPU-second = %.0f%% of the large GEMM's (similarity + selection + rescoring)\n",
               flops / cpu_search / 1e9, 100.0 * (flops / cpu_search / 1e9) / gemm_cpu_rate);
        printf("protloc_scoring_all_k  %.3f s\n", best_score);
        printf("protloc_total  %.3f s wall, %.3f s CPU  macro_f1@k=1 %.4f  @k=10 %.4f  @k=200 %.4f\n", best_search + best_score, cpu_search + cpu_score, f1[0],
               f1[K >= 10 ? 9 : K - 1], f1[K - 1]);
        pl_topk_free(&t);
        pl_threadpool_destroy(pool);
        free(nbl); free(pred); free(nbs); free(scratch); free(f1);
    }
    free(ref); free(qry); free(cent); free(rl); free(ql);
    return 0;
}
