// Blocked exact kNN search: a thread pool over query blocks, single-threaded sgemm per block, heap updates,
// then a deterministic rescoring so that scores (and the tie order) do not depend on block or shard layout.
//
// Why rescoring: sgemm may round a dot product differently depending on where the pair falls in a block, so
// two ranks (or block sizes) could order near-equal neighbours differently. Each query therefore collects the
// best K + S candidates by sgemm score; the candidates are rescored with a fixed-order dot product and the
// best K by (rescored value, index) are kept. This is exact when every candidate that could enter the top K
// was collected: all items within 2 eps of the K-th sgemm score fit in the K + S slots (eps bounds sgemm's
// rounding error). When they do not (large groups of near-duplicates), that query is rescanned with the
// fixed-order dot product over the whole shard.
// Collection: each thread keeps, for the queries of the block in flight only, an append buffer of 2 (K + S)
// candidates above a running threshold; when it fills, a quickselect keeps the best K + S and raises the
// threshold (amortised O(1) per candidate, no per-candidate heap operations).
#include "pl_knn.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct KnnShared {
    const PlKnnSearch *s;
    PlTopK *out;              // (Q, K) final lists
    int ks, cap;              // K + S kept candidates, buffer capacity 2 (K + S)
    int qb, rb;
    int64_t n_qblocks;
    struct KnnWorker *workers;   // (pool threads) one scratch set per thread of the pool
    float *qnorm;             // (Q) squared query norms (euclidean)
    float ref_max_sqnorm;     // for the rounding bound
    atomic_llong rescans;     // queries that needed a full fixed-order rescan
} KnnShared;

typedef struct KnnWorker {
    float *S;                 // (qb, rb) similarity block
    PlNeighbour *buf;         // (qb, cap) candidates of the block's queries
    int *n;                   // (qb) candidates held
    float *thr;               // (qb) running threshold
    PlTopK one;               // (1, K) final selection of one query
} KnnWorker;

static inline int knn_better(const PlNeighbour *a, const PlNeighbour *b) {
    return pl_topk_better(a->score, a->index, b->score, b->index);
}

static inline void knn_swap(PlNeighbour *a, PlNeighbour *b) {
    PlNeighbour t = *a;
    *a = *b;
    *b = t;
}

// Quickselect: reorder a[0..n) so that a[kth] is the element that sorts there best-first, better ones before it.
static void knn_nth(PlNeighbour *a, int n, int kth) {
    int lo = 0, hi = n - 1;
    while (hi > lo) {
        int mid = lo + (hi - lo) / 2;
        if (knn_better(&a[mid], &a[lo])) knn_swap(&a[mid], &a[lo]);   // median of three as pivot
        if (knn_better(&a[hi], &a[lo])) knn_swap(&a[hi], &a[lo]);
        if (knn_better(&a[hi], &a[mid])) knn_swap(&a[hi], &a[mid]);
        PlNeighbour pv = a[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (knn_better(&a[i], &pv)) i++;
            while (knn_better(&pv, &a[j])) j--;
            if (i <= j) knn_swap(&a[i++], &a[j--]);
        }
        if (kth <= j) hi = j;
        else if (kth >= i) lo = i;
        else break;
    }
}

static int knn_cmp_best_first(const void *x, const void *y) {
    const PlNeighbour *a = x, *b = y;
    return knn_better(a, b) ? -1 : knn_better(b, a) ? 1 : 0;
}

// Fixed-order score of one pair: identical on every rank and for every block layout (16 lanes accumulated
// in a fixed order, then a fixed reduction tree; GCC vector extensions keep it vectorised without reordering).
typedef float KnnV16 __attribute__((vector_size(64)));

static float knn_score_fixed(const float *a, const float *b, int D, PlKnnMetric metric) {
    KnnV16 acc = {0};
    int d = 0;
    if (metric == PL_KNN_COSINE) {
        for (; d + 16 <= D; d += 16) {
            KnnV16 x, y;
            memcpy(&x, a + d, sizeof x);
            memcpy(&y, b + d, sizeof y);
            acc += x * y;
        }
    } else {
        for (; d + 16 <= D; d += 16) {
            KnnV16 x, y;
            memcpy(&x, a + d, sizeof x);
            memcpy(&y, b + d, sizeof y);
            KnnV16 t = x - y;
            acc += t * t;
        }
    }
    float tail = 0;
    for (; d < D; d++) tail += metric == PL_KNN_COSINE ? a[d] * b[d] : (a[d] - b[d]) * (a[d] - b[d]);
    float l[16];
    memcpy(l, &acc, sizeof l);
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) l[i] += l[i + w];
    float v = l[0] + tail;
    return metric == PL_KNN_COSINE ? v : -v;
}

// Scan one (nq, nr) similarity block row by row: only candidates at or above the threshold are kept.
static void knn_scan_block(KnnShared *sh, KnnWorker *w, const float *S, int64_t q0, int nq, int64_t r0, int nr) {
    const PlKnnSearch *s = sh->s;
    int euclid = s->metric == PL_KNN_EUCLIDEAN;
    int ks = sh->ks, cap = sh->cap;
    for (int i = 0; i < nq; i++) {
        int64_t q = q0 + i;
        const float *row = S + (size_t)i * nr;
        PlNeighbour *buf = w->buf + (size_t)i * cap;
        int n = w->n[i];
        float thr = w->thr[i];
        int32_t qg = s->query_group ? s->query_group[q] : 0;
        int64_t self = s->query_self ? s->query_self[q] : -1;
        float qn = euclid ? sh->qnorm[q] : 0.0f;
        const float *rn = euclid ? s->ref_sqnorm + r0 : NULL;
        for (int j = 0; j < nr; j++) {
            if (!euclid && (j & 15) == 0 && j + 16 <= nr) {
                // cosine fast path: skip 16 scores at once when none reaches the threshold
                int any = 0;
                for (int l = 0; l < 16; l++) any |= row[j + l] >= thr;
                if (!any) {
                    j += 15;
                    continue;
                }
            }
            float v = euclid ? row[j] - rn[j] - qn : row[j];
            if (v < thr) continue;
            int64_t g = s->ref_offset + r0 + j;
            if (g == self) continue;
            if (s->query_group && s->ref_group[r0 + j] == qg) continue;
            buf[n].score = v;
            buf[n].pad = 0;
            buf[n].index = g;
            if (++n == cap) {
                knn_nth(buf, n, ks - 1);
                n = ks;
                thr = buf[ks - 1].score;
            }
        }
        w->n[i] = n;
        w->thr[i] = thr;
    }
}

// Turn query q's candidates (cl, n) into its exact final top-K (see the file comment).
static void knn_finalise_query(KnnShared *sh, KnnWorker *w, int64_t q, PlNeighbour *cl, int n) {
    const PlKnnSearch *s = sh->s;
    PlTopK *out = sh->out;
    int K = out->k, KS = sh->ks, D = s->dim;
    if (n > KS) {
        knn_nth(cl, n, KS - 1);
        n = KS;
    }
    qsort(cl, (size_t)n, sizeof *cl, knn_cmp_best_first);
    const float *qv = s->queries + (size_t)q * D;
    // rounding bound of sgemm scores (generous: (D + 8) units of 2^-23 times the magnitudes involved)
    double mag = s->metric == PL_KNN_COSINE ? 1.0 : 4.0 * ((double)sh->qnorm[q] + sh->ref_max_sqnorm);
    float eps = (float)((D + 8) * 0x1.0p-23 * mag);
    int safe = n < KS || cl[KS - 1].score < cl[K - 1].score - 2 * eps;
    PlTopK *dst = &w->one;
    pl_topk_reset(dst);
    if (safe) {
        enum { AHEAD = 6 };   // reference rows are scattered in memory: prefetch a few candidates ahead
        for (int j = 0; j < n && j < AHEAD; j++) {
            const char *p = (const char *)(s->refs + (size_t)(cl[j].index - s->ref_offset) * D);
            for (size_t off = 0; off < (size_t)D * sizeof(float); off += 64) __builtin_prefetch(p + off);
        }
        for (int j = 0; j < n; j++) {
            if (j + AHEAD < n) {
                const char *p = (const char *)(s->refs + (size_t)(cl[j + AHEAD].index - s->ref_offset) * D);
                for (size_t off = 0; off < (size_t)D * sizeof(float); off += 64) __builtin_prefetch(p + off);
            }
            int64_t r = cl[j].index - s->ref_offset;
            pl_topk_push(dst, 0, knn_score_fixed(qv, s->refs + (size_t)r * D, D, s->metric), cl[j].index);
        }
    } else {
        atomic_fetch_add(&sh->rescans, 1);
        int32_t qg = s->query_group ? s->query_group[q] : 0;
        int64_t self = s->query_self ? s->query_self[q] : -1;
        for (int64_t r = 0; r < s->n_refs; r++) {
            int64_t g = s->ref_offset + r;
            if (g == self || (s->query_group && s->ref_group[r] == qg)) continue;
            pl_topk_push(dst, 0, knn_score_fixed(qv, s->refs + (size_t)r * D, D, s->metric), g);
        }
    }
    pl_topk_finish_query(dst, 0);
    memcpy(out->items + (size_t)q * K, dst->items, (size_t)K * sizeof(PlNeighbour));
    out->count[q] = dst->count[0];
}

// Pool task: query block b, on the scratch of the thread that runs it.
static void knn_task_block(void *ctx, int b, int thread) {
    KnnShared *sh = ctx;
    KnnWorker *w = &sh->workers[thread];
    const PlKnnSearch *s = sh->s;
    float alpha = s->metric == PL_KNN_EUCLIDEAN ? 2.0f : 1.0f;
    int64_t q0 = (int64_t)b * sh->qb;
    int nq = (int)(s->n_queries - q0 < sh->qb ? s->n_queries - q0 : sh->qb);
    for (int i = 0; i < nq; i++) {
        w->n[i] = 0;
        w->thr[i] = -INFINITY;
    }
    for (int64_t r0 = 0; r0 < s->n_refs; r0 += sh->rb) {
        int nr = (int)(s->n_refs - r0 < sh->rb ? s->n_refs - r0 : sh->rb);
        // S (nq, nr) = alpha * Q[q0:q0+nq] (nq, D) . R[r0:r0+nr]^T (D, nr)
        const PlKernels *k = s->kernels ? s->kernels : pl_kernels_openblas();
        k->gemm(0, 1, nq, nr, s->dim, alpha, s->queries + (size_t)q0 * s->dim, s->dim, s->refs + (size_t)r0 * s->dim,
                s->dim, 0.0f, w->S, nr);
        knn_scan_block(sh, w, w->S, q0, nq, r0, nr);
    }
    for (int i = 0; i < nq; i++) knn_finalise_query(sh, w, q0 + i, w->buf + (size_t)i * sh->cap, w->n[i]);
}

PlStatus pl_knn_search(const PlKnnSearch *s, PlTopK *out) {
    if (s->dim < 1 || s->n_queries < 0 || s->n_refs < 0)
        return PL_FAIL(PL_ERR_ARG, "knn search: bad sizes (Q %lld, R %lld, D %d)", (long long)s->n_queries,
                       (long long)s->n_refs, s->dim);
    if (out->n_queries != s->n_queries) return PL_FAIL(PL_ERR_INTERNAL, "knn search: result sized for %lld queries, not %lld",
                                                      (long long)out->n_queries, (long long)s->n_queries);
    if ((s->query_group == NULL) != (s->ref_group == NULL))
        return PL_FAIL(PL_ERR_ARG, "knn search: query and reference groups must both be given");
    if (s->metric == PL_KNN_EUCLIDEAN && !s->ref_sqnorm && s->n_refs > 0)
        return PL_FAIL(PL_ERR_ARG, "knn search: euclidean metric needs reference norms");
    pl_topk_reset(out);
    if (s->n_queries == 0 || s->n_refs == 0) {
        pl_topk_finish(out);
        return PL_OK;
    }
    KnnShared sh;
    memset(&sh, 0, sizeof sh);
    sh.s = s;
    sh.out = out;
    sh.qb = s->query_block > 0 ? s->query_block : 256;
    sh.rb = s->ref_block > 0 ? s->ref_block : 2048;
    if (sh.qb > s->n_queries) sh.qb = (int)s->n_queries;
    if (sh.rb > s->n_refs) sh.rb = (int)s->n_refs;
    sh.n_qblocks = (s->n_queries + sh.qb - 1) / sh.qb;
    if (sh.n_qblocks > INT32_MAX) return PL_FAIL(PL_ERR_LIMIT, "knn search: %lld query blocks", (long long)sh.n_qblocks);
    atomic_init(&sh.rescans, 0);
    sh.ks = out->k + 16 + out->k / 8;
    sh.cap = 2 * sh.ks;
    // every thread of the pool may take a block: one scratch set each
    int threads = pl_threadpool_size(s->pool);
    sh.workers = pl_calloc((size_t)threads, sizeof *sh.workers);
    if (!sh.workers) return pl_error_wrap("knn scratch for %d threads", threads);
    PlStatus st = PL_OK;
    // one slab per thread: candidate buffers | similarity block | thresholds | counts
    size_t per = (size_t)sh.qb * sh.cap * sizeof(PlNeighbour) + (size_t)sh.qb * sh.rb * sizeof(float) +
                 (size_t)sh.qb * (sizeof(int) + sizeof(float));
    for (int i = 0; i < threads && st == PL_OK; i++) {
        KnnWorker *w = &sh.workers[i];
        st = pl_topk_init(&w->one, 1, out->k);
        char *slab = st == PL_OK ? pl_malloc(per) : NULL;
        if (st == PL_OK && !slab) st = pl_error_wrap("knn scratch (%d x %d similarities, %d candidates)", sh.qb, sh.rb, sh.cap);
        if (slab) {
            w->buf = (PlNeighbour *)slab;
            w->S = (float *)(w->buf + (size_t)sh.qb * sh.cap);
            w->thr = w->S + (size_t)sh.qb * sh.rb;
            w->n = (int *)(w->thr + sh.qb);
        }
    }
    if (st == PL_OK && s->metric == PL_KNN_EUCLIDEAN) {
        sh.qnorm = pl_malloc((size_t)s->n_queries * sizeof(float));
        if (!sh.qnorm) st = PL_ERR_NOMEM;
        for (int64_t q = 0; st == PL_OK && q < s->n_queries; q++) {
            const float *x = s->queries + (size_t)q * s->dim;
            float a = 0;
            for (int d = 0; d < s->dim; d++) a += x[d] * x[d];
            sh.qnorm[q] = a;
        }
        for (int64_t r = 0; st == PL_OK && r < s->n_refs; r++)
            if (s->ref_sqnorm[r] > sh.ref_max_sqnorm) sh.ref_max_sqnorm = s->ref_sqnorm[r];
    }
    if (st == PL_OK) {
        // the pool's threads each run single-threaded BLAS (the program set OpenBLAS to one thread)
        pl_threadpool_run(s->pool, knn_task_block, &sh, (int)sh.n_qblocks);
        for (int64_t q = 0; q < s->n_queries; q++)   // pad the empty slots
            for (int j = out->count[q]; j < out->k; j++) {
                out->items[(size_t)q * out->k + j].score = -INFINITY;
                out->items[(size_t)q * out->k + j].pad = 0;
                out->items[(size_t)q * out->k + j].index = INT64_MAX;
            }
    }
    for (int i = 0; i < threads; i++) {
        pl_topk_free(&sh.workers[i].one);
        free(sh.workers[i].buf);
    }
    free(sh.workers);
    free(sh.qnorm);
    return st;
}

int64_t pl_knn_normalise_rows(float *x, int64_t n, int dim) {
    int64_t zero = 0;
    for (int64_t i = 0; i < n; i++) {
        float *r = x + (size_t)i * dim;
        double a = 0;
        for (int d = 0; d < dim; d++) a += (double)r[d] * r[d];
        if (a <= 0) {
            zero++;
            continue;
        }
        float inv = (float)(1.0 / sqrt(a));
        for (int d = 0; d < dim; d++) r[d] *= inv;
    }
    return zero;
}
