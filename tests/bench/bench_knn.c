// kNN benchmark: exact top-K search (blocked GEMM + candidate scan + fixed-order rescoring) and per-k scoring for
// k = 1..K, under each kernel backend and precision side by side (openblas FP32, onednn FP32, onednn BF16: identical
// neighbour lists, checked here), compared with OpenBLAS's large-GEMM rate. Optionally writes its data and protloc's
// neighbour lists for tests/bench/knn_vs_python.sh (with features.npy + meta.tsv for `protloc knn`; --data-only:
// write them and stop).
//
//   build/bench/bench_knn [--refs 50000] [--queries 10000] [--dim 384] [--k 200] [--classes 20]
//                         [--threads 2] [--query-block 256] [--ref-block 2048] [--repeat 1] [--write-data DIR]
//                         [--data-only] [--modes openblas-fp32,onednn-fp32,onednn-bf16]
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fma_peak.h"
#include "pl_bf16.h"
#include "pl_clock.h"
#include "pl_knn.h"
#include "pl_metrics.h"
#include "pl_npy.h"
#include "pl_rng.h"
#include "pl_threadpool.h"
#include "pl_topk.h"

typedef struct Bench {
    long R, Q, D, K, C, threads, qb, rb, repeat;
    float *ref, *qry;
    int32_t *rl, *ql;
    double gemm_rate, gemm_cpu_rate;   // OpenBLAS large GEMM, GFLOP/s (wall, per CPU-second)
    PlThreadPool *pool;
} Bench;

static double gauss(PlRng *r) {
    double u1 = pl_rng_uniform(r) + 1e-300, u2 = pl_rng_uniform(r);
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

// Clustered data: class centres + noise, L2-normalised (as cosine kNN sees it).
static int make_data(Bench *b) {
    long R = b->R, Q = b->Q, D = b->D, C = b->C;
    b->ref = malloc(sizeof(float) * R * D), b->qry = malloc(sizeof(float) * Q * D);
    float *cent = malloc(sizeof(float) * C * D);
    b->rl = malloc(sizeof(int32_t) * R), b->ql = malloc(sizeof(int32_t) * Q);
    if (!b->ref || !b->qry || !cent || !b->rl || !b->ql) return -1;
    PlRng rng;
    pl_rng_seed(&rng, 2026);
    for (long i = 0; i < C * D; i++) cent[i] = (float)gauss(&rng);
    for (long i = 0; i < R + Q; i++) {
        int32_t c = (int32_t)pl_rng_below(&rng, (uint64_t)C);
        float *x = i < R ? b->ref + i * D : b->qry + (i - R) * D;
        for (long d = 0; d < D; d++) x[d] = cent[c * D + d] * 0.35f + (float)gauss(&rng);
        if (i < R) b->rl[i] = c;
        else b->ql[i - R] = c;
    }
    free(cent);
    pl_knn_normalise_rows(b->ref, R, (int)D);
    pl_knn_normalise_rows(b->qry, Q, (int)D);
    return 0;
}

// The same data as `protloc knn --features DIR/features.npy --meta DIR/meta.tsv` reads it (train-test protocol):
// features.npy (R + Q, D), references first, so a neighbour's feature row is its reference index; meta.tsv: id,
// label (class00..), split (train for references, test for queries).
static PlStatus write_features(const Bench *b, const char *dir) {
    char p[4096];
    size_t rd = (size_t)b->R * (size_t)b->D, qd = (size_t)b->Q * (size_t)b->D;
    float *x = malloc(sizeof(float) * (rd + qd));
    if (!x) return PL_FAIL(PL_ERR_NOMEM, "features.npy: out of memory");
    memcpy(x, b->ref, sizeof(float) * rd);
    memcpy(x + rd, b->qry, sizeof(float) * qd);
    int64_t s2[2] = {b->R + b->Q, b->D};
    snprintf(p, sizeof p, "%s/features.npy", dir);
    PlStatus st = pl_npy_write_f32(p, 2, s2, x);
    free(x);
    PL_TRY(st);
    snprintf(p, sizeof p, "%s/meta.tsv", dir);
    FILE *f = fopen(p, "w");
    if (!f) return PL_FAIL(PL_ERR_IO, "cannot write %s", p);
    int ok = fprintf(f, "id\tlabel\tsplit\n") > 0;
    for (long i = 0; ok && i < b->R + b->Q; i++)
        ok = fprintf(f, "%s%ld\tclass%02d\t%s\n", i < b->R ? "r" : "q", i < b->R ? i : i - b->R,
                     (int)(i < b->R ? b->rl[i] : b->ql[i - b->R]), i < b->R ? "train" : "test") > 0;
    if (fclose(f) != 0 || !ok) return PL_FAIL(PL_ERR_IO, "cannot write %s", p);
    return PL_OK;
}

static PlStatus write_data(const Bench *b, const char *dir) {
    char p[4096];
    int64_t s2[2] = {b->R, b->D}, s1[1] = {b->R};
    snprintf(p, sizeof p, "%s/refs.npy", dir);
    PL_TRY(pl_npy_write_f32(p, 2, s2, b->ref));
    s2[0] = b->Q;
    snprintf(p, sizeof p, "%s/queries.npy", dir);
    PL_TRY(pl_npy_write_f32(p, 2, s2, b->qry));
    snprintf(p, sizeof p, "%s/ref_labels.npy", dir);
    PL_TRY(pl_npy_write(p, "<i4", 1, s1, b->rl));
    s1[0] = b->Q;
    snprintf(p, sizeof p, "%s/query_labels.npy", dir);
    PL_TRY(pl_npy_write(p, "<i4", 1, s1, b->ql));
    return write_features(b, dir);
}

// 1. OpenBLAS large-GEMM rate (its own threads), best of 2.
static void bench_large_gemm(Bench *b) {
    openblas_set_num_threads((int)b->threads);
    int n = 3072;
    float *a = malloc(sizeof(float) * n * n), *bb = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !bb || !c) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (long i = 0; i < (long)n * n; i++) a[i] = bb[i] = (float)(i % 7) * 0.1f;
    memset(c, 0, sizeof(float) * n * n);
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < 2; r++) {
        double t0 = pl_clock_now(), c0 = pl_clock_cpu();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, bb, n, 0.0f, c, n);
        double t = pl_clock_now() - t0, tc = pl_clock_cpu() - c0;
        if (t < best) best = t;
        if (tc < best_cpu) best_cpu = tc;
    }
    printf("openblas_large_gemm  %dx%dx%d  %.3f s wall (%.1f GFLOP/s), %.3f s CPU (%.1f GFLOP per CPU-second)\n", n, n, n,
           best, 2.0 * n * n * n / best / 1e9, best_cpu, 2.0 * n * n * n / best_cpu / 1e9);
    b->gemm_cpu_rate = 2.0 * n * n * n / best_cpu / 1e9;
    b->gemm_rate = 2.0 * n * n * n / best / 1e9;
    free(a); free(bb); free(c);
    openblas_set_num_threads(1);   // the program's setting: one-threaded GEMMs inside the pool's tasks
}

// 2. The similarity phase alone: the search's blocked GEMM loop, a few query blocks on one thread (each search
//    thread runs exactly these calls). Returns GFLOP/s per thread.
static double bench_blocked_gemm(const Bench *b, const PlKernels *k, PlPrecision prec, const uint16_t *qh,
                                 const uint16_t *rh) {
    long qb = b->qb, rb = b->rb, D = b->D, Q = b->Q, R = b->R;
    float *S = malloc(sizeof(float) * qb * rb);
    if (!S) { fprintf(stderr, "out of memory\n"); exit(1); }
    long nqb = (Q + qb - 1) / qb, sample = nqb < 4 ? nqb : 4;
    double t0 = 0;
    for (long b0 = -1; b0 < sample; b0++) {   // block -1: warm-up (oneDNN creates its primitives)
        if (b0 == 0) t0 = pl_clock_now();
        long q0 = (b0 < 0 ? 0 : b0) * qb, nq = Q - q0 < qb ? Q - q0 : qb;
        for (long r0 = 0; r0 < R; r0 += rb) {
            long nr = R - r0 < rb ? R - r0 : rb;
            if (prec == PL_PRECISION_BF16)
                k->gemm_bf16(0, 1, (int)nq, (int)nr, (int)D, 1.0f, qh + q0 * D, (int)D, rh + r0 * D, (int)D, 0.0f, S, (int)nr);
            else
                k->gemm(0, 1, (int)nq, (int)nr, (int)D, 1.0f, b->qry + q0 * D, (int)D, b->ref + r0 * D, (int)D, 0.0f, S, (int)nr);
        }
    }
    double t1 = pl_clock_now() - t0;
    free(S);
    return 2.0 * (double)(sample * qb < Q ? sample * qb : Q) * (double)R * (double)D / t1 / 1e9;
}

// 3. Full exact search + per-k scoring on one pool, as protloc knn runs it; best of `repeat`. The lists go to t.
static void bench_search(Bench *b, const char *mode, const PlKernels *k, PlPrecision prec, double gemm_1t, PlTopK *t,
                         double *f1) {
    long Q = b->Q, K = b->K, C = b->C;
    int32_t *nbl = malloc(sizeof(int32_t) * Q * K), *pred = malloc(sizeof(int32_t) * Q * K);
    float *nbs = malloc(sizeof(float) * Q * K);
    double *scratch = malloc(sizeof(double) * (C + 1));
    int64_t *tp = malloc(sizeof(int64_t) * 3 * C);
    if (!nbl || !pred || !nbs || !scratch || !tp) { fprintf(stderr, "out of memory\n"); exit(1); }
    double best_search = 1e30, best_score = 1e30, cpu_search = 0, cpu_score = 0;
    for (long rep = 0; rep < b->repeat; rep++) {
        PlKnnSearch s = {.queries = b->qry, .n_queries = Q, .refs = b->ref, .n_refs = b->R, .dim = (int)b->D,
                         .metric = PL_KNN_COSINE, .pool = b->pool, .query_block = (int)b->qb, .ref_block = (int)b->rb,
                         .kernels = k, .precision = prec};
        double a0 = pl_clock_now(), c0 = pl_clock_cpu();
        if (pl_knn_search(&s, t) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); exit(1); }
        double a1 = pl_clock_now(), c1 = pl_clock_cpu();
        for (long q = 0; q < Q; q++)
            for (long j = 0; j < K; j++) {
                nbl[q * K + j] = b->rl[t->items[q * K + j].index];
                nbs[q * K + j] = t->items[q * K + j].score;
            }
        pl_knn_vote_all_k(nbl, nbs, t->count, Q, (int)K, (int)C, PL_KNN_VOTE_WEIGHTED, 0.07f, scratch, pred);
        PlClassCounts cc = {(int)C, tp, tp + C, tp + 2 * C};
        for (long j = 0; j < K; j++) {
            pl_metrics_count(b->ql, pred + j, Q, K, &cc);
            f1[j] = pl_metrics_macro_f1(&cc, NULL, NULL);
        }
        double a2 = pl_clock_now(), c2 = pl_clock_cpu();
        if (a1 - a0 < best_search) best_search = a1 - a0, cpu_search = c1 - c0;
        if (a2 - a1 < best_score) best_score = a2 - a1, cpu_score = c2 - c1;
    }
    double flops = 2.0 * (double)Q * (double)b->R * (double)b->D;
    double gemm_s = flops / (gemm_1t * 1e9 * (double)b->threads);   // the GEMM phase's share, from section 2's rate
    printf("protloc_%-13s search %6.3f s (GEMM ~%.2f s + scan/rescoring ~%.2f s)  scoring %.3f s  total %6.3f s wall, "
           "%6.3f s CPU  %6.1f GFLOP/s effective  macro_f1@1 %.4f @10 %.4f @%ld %.4f\n",
           mode, best_search, gemm_s, best_search - gemm_s, best_score, best_search + best_score, cpu_search + cpu_score,
           flops / best_search / 1e9, f1[0], f1[K >= 10 ? 9 : K - 1], K, f1[K - 1]);
    free(nbl); free(pred); free(nbs); free(scratch); free(tp);
}

static int parse_args(int argc, char **argv, Bench *b, const char **write_dir, const char **modes) {
    for (int i = 1; i < argc; i++) {
        long *dst = NULL;
        if (strcmp(argv[i], "--refs") == 0) dst = &b->R;
        else if (strcmp(argv[i], "--queries") == 0) dst = &b->Q;
        else if (strcmp(argv[i], "--dim") == 0) dst = &b->D;
        else if (strcmp(argv[i], "--k") == 0) dst = &b->K;
        else if (strcmp(argv[i], "--classes") == 0) dst = &b->C;
        else if (strcmp(argv[i], "--threads") == 0) dst = &b->threads;
        else if (strcmp(argv[i], "--query-block") == 0) dst = &b->qb;
        else if (strcmp(argv[i], "--ref-block") == 0) dst = &b->rb;
        else if (strcmp(argv[i], "--repeat") == 0) dst = &b->repeat;
        else if (strcmp(argv[i], "--write-data") == 0 && i + 1 < argc) { *write_dir = argv[++i]; continue; }
        else if (strcmp(argv[i], "--modes") == 0 && i + 1 < argc) { *modes = argv[++i]; continue; }
        else if (strcmp(argv[i], "--data-only") == 0) { *modes = NULL; continue; }
        if (!dst || i + 1 >= argc || (*dst = strtol(argv[++i], NULL, 10)) <= 0) {
            fprintf(stderr, "usage: %s [--refs N] [--queries N] [--dim D] [--k K] [--classes C] [--threads T] "
                            "[--query-block N] [--ref-block N] [--repeat N] [--write-data DIR] [--data-only] "
                            "[--modes openblas-fp32,onednn-fp32,onednn-bf16]\n", argv[0]);
            return -1;
        }
    }
    if (b->K > b->R) b->K = b->R;
    if (b->qb > b->Q) b->qb = b->Q;
    if (b->rb > b->R) b->rb = b->R;
    return 0;
}

int main(int argc, char **argv) {
    Bench b = {.R = 50000, .Q = 10000, .D = 384, .K = 200, .C = 20, .threads = 2, .qb = 256, .rb = 2048, .repeat = 1};
    const char *write_dir = NULL, *modes = "openblas-fp32,onednn-fp32,onednn-bf16";
    if (parse_args(argc, argv, &b, &write_dir, &modes) != 0) return 2;
    if (make_data(&b) != 0) { fprintf(stderr, "out of memory\n"); return 1; }
    if (write_dir && write_data(&b, write_dir) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
    if (!modes) {   // --data-only
        if (!write_dir) fprintf(stderr, "--data-only needs --write-data DIR\n");
        return write_dir ? 0 : 2;
    }
    printf("fma_peak  %d thread(s)  %.1f GFLOP/s FP32 (measured now; the figures below are shares of it)\n",
           (int)b.threads, fma_peak_gflops((int)b.threads));
    bench_large_gemm(&b);
    uint16_t *qh = malloc(sizeof(uint16_t) * b.Q * b.D), *rh = malloc(sizeof(uint16_t) * b.R * b.D);
    if (!qh || !rh) { fprintf(stderr, "out of memory\n"); return 1; }
    pl_bf16_from_f32_n(qh, b.qry, (size_t)(b.Q * b.D));
    pl_bf16_from_f32_n(rh, b.ref, (size_t)(b.R * b.D));
    if (pl_threadpool_create((int)b.threads, &b.pool) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
    PlTopK first, t;
    if (pl_topk_init(&first, b.Q, (int)b.K) != PL_OK || pl_topk_init(&t, b.Q, (int)b.K) != PL_OK) {
        fprintf(stderr, "%s\n", pl_error_message());
        return 1;
    }
    double *f1 = malloc(sizeof(double) * b.K);
    if (!f1) { fprintf(stderr, "out of memory\n"); return 1; }
    int n_done = 0, rc = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", modes);
    char *save = NULL;
    for (char *mode = strtok_r(list, ",", &save); mode; mode = strtok_r(NULL, ",", &save)) {
        char backend[64];
        const char *dash = strrchr(mode, '-');
        PlPrecision prec;
        const PlKernels *k;
        if (!dash || dash - mode >= (long)sizeof backend || pl_precision_parse(dash + 1, &prec) != PL_OK) {
            fprintf(stderr, "bad mode '%s' (BACKEND-PRECISION, e.g. onednn-bf16)\n", mode);
            return 2;
        }
        snprintf(backend, sizeof backend, "%.*s", (int)(dash - mode), mode);
        if (pl_kernels_find(backend, prec, &k) != PL_OK) {
            printf("protloc_%-13s unavailable: %s\n", mode, pl_error_message());
            continue;
        }
        double rate = bench_blocked_gemm(&b, k, prec, qh, rh);
        printf("blocked_gemm_1thread  %-13s %ldx%ldx%ld blocks  %.1f GFLOP/s per thread (x%ld threads = %.1f, %.0f%% of the "
               "large OpenBLAS GEMM)\n", mode, b.qb, b.rb, b.D, rate, b.threads, rate * b.threads,
               100.0 * rate * b.threads / b.gemm_rate);
        bench_search(&b, mode, k, prec, rate, n_done ? &t : &first, f1);
        if (n_done > 0) {
            int same = memcmp(first.items, t.items, sizeof(PlNeighbour) * (size_t)(b.Q * b.K)) == 0 &&
                       memcmp(first.count, t.count, sizeof(int) * (size_t)b.Q) == 0;
            printf("protloc_%-13s neighbour lists (indices and scores) %s the first mode's\n", mode,
                   same ? "bit-identical to" : "DIFFER from");
            if (!same) rc = 1;
        }
        n_done++;
    }
    if (write_dir && n_done > 0) {   // protloc's lists, for knn_vs_python.py's comparison
        char p[4096];
        int64_t *idx = malloc(sizeof(int64_t) * b.Q * b.K);
        if (!idx) { fprintf(stderr, "out of memory\n"); return 1; }
        for (long i = 0; i < b.Q * b.K; i++) idx[i] = first.items[i].index;
        int64_t s2[2] = {b.Q, b.K};
        snprintf(p, sizeof p, "%s/protloc_neighbours.npy", write_dir);
        if (pl_npy_write(p, "<i8", 2, s2, idx) != PL_OK) { fprintf(stderr, "%s\n", pl_error_message()); return 1; }
        free(idx);
    }
    pl_topk_free(&first);
    pl_topk_free(&t);
    pl_threadpool_destroy(b.pool);
    free(f1); free(qh); free(rh);
    free(b.ref); free(b.qry); free(b.rl); free(b.ql);
    return rc;
}
