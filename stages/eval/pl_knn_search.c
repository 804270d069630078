// Blocked exact kNN search: a thread pool over query blocks, one single-threaded GEMM per block (the kernel
// interface: FP32, or BF16 operands with FP32 accumulation), candidate collection, then a deterministic rescoring so
// that scores (and the tie order) depend neither on the block or shard layout nor on the backend or precision.
//
// Why rescoring: a GEMM may round a dot product differently depending on where the pair falls in a block (and BF16
// rounds its inputs), so two ranks, block sizes or backends could order near-equal neighbours differently. Each
// query therefore collects candidates by GEMM score; the candidates are rescored with a fixed-order FP32 dot product
// (knn_score_fixed) and the best K by (rescored value, index) are kept. This is exact when every candidate that
// could enter the top K was collected: with eps bounding |GEMM score - fixed-order score|, every reference within
// 2 eps of the K-th GEMM score. So each query keeps every candidate within 2 eps of its running K-th score (a
// window, not a fixed count), up to 3/4 of its buffer; when near-ties overflow that (large groups of
// near-duplicates), the query is rescanned with the fixed-order dot product over the whole shard. Both precisions
// thus return the same lists, bit for bit.
//   FP32: eps is sgemm's rounding and the rescoring's, (D + 8) 2^-23 times the magnitudes (knn_fp32_bounds): the
//         window holds the K candidates and hardly more.
//   BF16: queries and references are rounded to BF16 once per search (one allocation); eps bounds the BF16
//         rounding of the inputs as well (knn_bf16_bounds, about 2^-8 for unit rows).
// Collection: each thread keeps, for the queries of the block in flight only, an append buffer of candidates above
// a running threshold; when it fills, a quickselect keeps what may still matter and raises the threshold
// (knn_buffer_full; amortised O(1) per candidate, no per-candidate heap operations).
#include "pl_knn.h"

#include <math.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_dispatch.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define KNN_CONVERT_ROWS 256   // rows per task of the BF16 conversion

typedef float (*KnnScoreFn)(const float *a, const float *b, int D, PlKnnMetric metric);

typedef struct KnnShared {
    const PlKnnSearch *s;
    PlTopK *out;              // (Q, K) final lists
    const PlKernels *k;       // the similarity GEMM's backend
    KnnScoreFn score;         // knn_score_fixed for this CPU (every variant gives the same bits)
    int bf16;                 // 1: BF16 similarities (0: FP32)
    int cap;                  // candidates a query's buffer holds
    int keep;                 // most candidates kept by a compaction (3/4 of the capacity)
    int qb, rb;
    int64_t n_qblocks;
    struct KnnWorker *workers;   // (pool threads) one scratch set per thread of the pool
    float *qnorm;             // (Q) squared query norms (euclidean)
    float ref_max_sqnorm;     // for the rounding bound
    void *bf16_slab;          // BF16: one allocation for everything below
    double *row_norms;        // (Q + R, 3) ||x||, ||bf16(x)||, ||x - bf16(x)|| of every query, then reference
    float *eps2;              // (Q) twice the bound on |GEMM score - fixed-order score| (in bf16_slab or fp32_eps2)
    float *fp32_eps2;         // FP32: the allocation of eps2 (knn_fp32_bounds)
    double *fp32_norms;       // FP32, cosine: (Q + R) ||x|| while knn_fp32_bounds runs
    uint16_t *qh, *rh;        // (Q, D), (R, D) the queries and references rounded to BF16
    atomic_llong rescans;     // queries that needed a full fixed-order rescan
    atomic_llong rescored;    // candidates rescored
} KnnShared;

typedef struct KnnWorker {
    float *S;                 // (qb, rb) similarity block
    PlNeighbour *buf;         // (qb, cap) candidates of the block's queries
    float *sel;               // (cap) scores for knn_kth_largest
    int *n;                   // (qb) candidates held
    float *thr;               // (qb) running threshold
    float *drop;              // (qb) best score a truncation dropped (-inf: none)
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

// The kth largest (0-based) of v[0..n) (v is reordered): quickselect on plain floats, for the BF16 window, which
// needs the K-th score but not the order of ties.
static float knn_kth_largest(float *v, int n, int kth) {
    int lo = 0, hi = n - 1;
    while (hi > lo) {
        float pv = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pv) i++;
            while (pv > v[j]) j--;
            if (i <= j) {
                float t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (kth <= j) hi = j;
        else if (kth >= i) lo = i;
        else break;
    }
    return v[kth];
}

// Fixed-order score of one pair: identical on every rank and for every block layout (16 lanes accumulated
// in a fixed order, then a fixed reduction tree; GCC vector extensions keep it vectorised without reordering).
typedef float KnnV16 __attribute__((vector_size(64)));

// The body is compiled twice: for the baseline and, where the CPU has it, for AVX-512 (one register per 16 lanes
// instead of four SSE registers and spills; the rescoring is ~5 % faster). GCC's C11 mode is -ffp-contract=off
// (the pragma at the top of this file tells clang), so neither fuses the multiply and the add: both compute the
// same IEEE operations in the same order, bit for bit.
static inline __attribute__((always_inline)) float knn_score_body(const float *a, const float *b, int D,
                                                                  PlKnnMetric metric) {
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

static float knn_score_fixed(const float *a, const float *b, int D, PlKnnMetric metric) {
    return knn_score_body(a, b, D, metric);
}

#if PL_DISPATCH_X86
__attribute__((target("avx512f"))) static float knn_score_fixed_avx512(const float *a, const float *b, int D,
                                                                      PlKnnMetric metric) {
    return knn_score_body(a, b, D, metric);
}
#endif

// The largest float <= t - two_eps (computed in double, rounded down: the window never loses a candidate to the
// rounding of its own bound).
static float knn_lower(float t, float two_eps) {
    double lo = (double)t - (double)two_eps;
    float f = (float)lo;
    return (double)f > lo ? nextafterf(f, -INFINITY) : f;
}

// Query q's candidate buffer (row i of the block) is full: keep what may still enter its top K, raise its threshold:
// every candidate within 2 eps of the K-th GEMM score so far (nothing below can enter the top K: the K-th score only
// rises). When near-ties leave too little room (more than `keep`), the best `keep` stay and the best dropped score
// is remembered in drop[i]; knn_finalise_query rescans the query unless that score ends up below the final window.
static void knn_buffer_full(const KnnShared *sh, KnnWorker *w, int64_t q, int i, PlNeighbour *buf, int *n, float *thr) {
    int K = sh->out->k, m = 0;
    for (int j = 0; j < *n; j++) w->sel[j] = buf[j].score;
    float lower = knn_lower(knn_kth_largest(w->sel, *n, K - 1), sh->eps2[q]);
    for (int j = 0; j < *n; j++)
        if (buf[j].score >= lower) buf[m++] = buf[j];
    if (m > sh->keep) {
        knn_nth(buf, m, sh->keep - 1);
        float cut = buf[sh->keep - 1].score;   // every dropped candidate scores <= cut
        if (cut > w->drop[i]) w->drop[i] = cut;
        if (cut > lower) lower = cut;
        m = sh->keep;
    }
    *n = m;
    *thr = lower;
}

// Bit l of the result set when row[l] >= thr, l < 16 (SSE2 is x86-64's baseline; a plain loop elsewhere).
static inline unsigned knn_mask16(const float *row, float thr) {
#if defined(__SSE2__)
    __m128 t = _mm_set1_ps(thr);
    unsigned m = (unsigned)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(row), t));
    m |= (unsigned)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(row + 4), t)) << 4;
    m |= (unsigned)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(row + 8), t)) << 8;
    m |= (unsigned)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(row + 12), t)) << 12;
    return m;
#else
    unsigned m = 0;
    for (int l = 0; l < 16; l++) m |= (unsigned)(row[l] >= thr) << l;
    return m;
#endif
}

// Scan one (nq, nr) similarity block row by row: only candidates at or above the threshold are kept. Cosine tests
// 16 scores at once and visits only those at or above the threshold (it only rises, so the mask stays a superset).
static void knn_scan_block(KnnShared *sh, KnnWorker *w, const float *S, int64_t q0, int nq, int64_t r0, int nr) {
    const PlKnnSearch *s = sh->s;
    int euclid = s->metric == PL_KNN_EUCLIDEAN;
    int cap = sh->cap;
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
        for (int j0 = 0; j0 < nr; j0 += 16) {
            int len = nr - j0 < 16 ? nr - j0 : 16;
            unsigned mask = !euclid && len == 16 ? knn_mask16(row + j0, thr) : (1u << len) - 1;
            while (mask) {
                int j = j0 + __builtin_ctz(mask);
                mask &= mask - 1;
                float v = euclid ? row[j] - rn[j] - qn : row[j];
                if (v < thr) continue;
                int64_t g = s->ref_offset + r0 + j;
                if (g == self) continue;
                if (s->query_group && s->ref_group[r0 + j] == qg) continue;
                buf[n].score = v;
                buf[n].pad = 0;
                buf[n].index = g;
                if (++n == cap) knn_buffer_full(sh, w, q, i, buf, &n, &thr);
            }
        }
        w->n[i] = n;
        w->thr[i] = thr;
    }
}

// Rescore query q's candidates (cl, n) with the fixed-order dot product into w->one.
static void knn_rescore(KnnShared *sh, KnnWorker *w, int64_t q, const PlNeighbour *cl, int n) {
    const PlKnnSearch *s = sh->s;
    int D = s->dim;
    const float *qv = s->queries + (size_t)q * D;
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
        pl_topk_push(&w->one, 0, sh->score(qv, s->refs + (size_t)r * D, D, s->metric), cl[j].index);
    }
    atomic_fetch_add_explicit(&sh->rescored, n, memory_order_relaxed);
}

// Query q's exact top K from a fixed-order scan of the whole shard (its candidate set may be incomplete).
static void knn_rescan(KnnShared *sh, KnnWorker *w, int64_t q) {
    const PlKnnSearch *s = sh->s;
    int D = s->dim;
    const float *qv = s->queries + (size_t)q * D;
    atomic_fetch_add(&sh->rescans, 1);
    int32_t qg = s->query_group ? s->query_group[q] : 0;
    int64_t self = s->query_self ? s->query_self[q] : -1;
    for (int64_t r = 0; r < s->n_refs; r++) {
        int64_t g = s->ref_offset + r;
        if (g == self || (s->query_group && s->ref_group[r] == qg)) continue;
        pl_topk_push(&w->one, 0, sh->score(qv, s->refs + (size_t)r * D, D, s->metric), g);
    }
}

// w->one, finished, becomes query q's final list.
static void knn_store_query(KnnShared *sh, KnnWorker *w, int64_t q) {
    PlTopK *out = sh->out;
    pl_topk_finish_query(&w->one, 0);
    memcpy(out->items + (size_t)q * out->k, w->one.items, (size_t)out->k * sizeof(PlNeighbour));
    out->count[q] = w->one.count[0];
}

// Query q's exact final top K: rescore every candidate (cl, n) of row i of the block within 2 eps of its K-th GEMM
// score; rescan the query when a truncation dropped a candidate that could be in that window.
static void knn_finalise_query(KnnShared *sh, KnnWorker *w, int64_t q, int i, PlNeighbour *cl, int n) {
    int K = sh->out->k;
    float lower = -INFINITY;
    if (n > K) {
        for (int j = 0; j < n; j++) w->sel[j] = cl[j].score;
        lower = knn_lower(knn_kth_largest(w->sel, n, K - 1), sh->eps2[q]);
        int m = 0;
        for (int j = 0; j < n; j++)
            if (cl[j].score >= lower) cl[m++] = cl[j];
        n = m;
    }
    pl_topk_reset(&w->one);
    if (w->drop[i] == -INFINITY || w->drop[i] < lower) knn_rescore(sh, w, q, cl, n);
    else knn_rescan(sh, w, q);
    knn_store_query(sh, w, q);
}

// Pool task: query block b, on the scratch of the thread that runs it.
static void knn_task_block(void *ctx, int b, int thread) {
    KnnShared *sh = ctx;
    KnnWorker *w = &sh->workers[thread];
    const PlKnnSearch *s = sh->s;
    int D = s->dim;
    float alpha = s->metric == PL_KNN_EUCLIDEAN ? 2.0f : 1.0f;
    int64_t q0 = (int64_t)b * sh->qb;
    int nq = (int)(s->n_queries - q0 < sh->qb ? s->n_queries - q0 : sh->qb);
    for (int i = 0; i < nq; i++) {
        w->n[i] = 0;
        w->thr[i] = -INFINITY;
        w->drop[i] = -INFINITY;
    }
    for (int64_t r0 = 0; r0 < s->n_refs; r0 += sh->rb) {
        int nr = (int)(s->n_refs - r0 < sh->rb ? s->n_refs - r0 : sh->rb);
        // S (nq, nr) = alpha * Q[q0:q0+nq] (nq, D) . R[r0:r0+nr]^T (D, nr)
        if (sh->bf16)
            sh->k->gemm_bf16(0, 1, nq, nr, D, alpha, sh->qh + (size_t)q0 * D, D, sh->rh + (size_t)r0 * D, D, 0.0f,
                             w->S, nr);
        else
            sh->k->gemm(0, 1, nq, nr, D, alpha, s->queries + (size_t)q0 * D, D, s->refs + (size_t)r0 * D, D, 0.0f,
                        w->S, nr);
        knn_scan_block(sh, w, w->S, q0, nq, r0, nr);
    }
    for (int i = 0; i < nq; i++) knn_finalise_query(sh, w, q0 + i, i, w->buf + (size_t)i * sh->cap, w->n[i]);
}

// Row r of (queries, then references).
static const float *knn_row(const PlKnnSearch *s, int64_t r) {
    return r < s->n_queries ? s->queries + (size_t)r * s->dim : s->refs + (size_t)(r - s->n_queries) * s->dim;
}

// eps2[q] = 2 (extra + (D + 8) 2^-23 mag) enlarged by 2^-20 for the rounding of the bound's own arithmetic and
// rounded up to a float: extra bounds what the GEMM's inputs add to its error (BF16 rounding; 0 for FP32), the second
// term sgemm's and the fixed-order rescoring's rounding, mag the magnitude of q's scores (cosine: ||q|| max ||r||,
// given as qr, at least 1, so rows that are not exactly unit length stay covered; euclidean: the squared norms).
static void knn_set_eps2(KnnShared *sh, int64_t q, double extra, double qr) {
    const PlKnnSearch *s = sh->s;
    double mag = s->metric == PL_KNN_EUCLIDEAN ? 4.0 * ((double)sh->qnorm[q] + sh->ref_max_sqnorm) : fmax(1.0, qr);
    double eps2 = 2.0 * (extra + (s->dim + 8) * 0x1.0p-23 * mag) * (1.0 + 0x1.0p-20);
    float f = (float)eps2;
    sh->eps2[q] = (double)f < eps2 ? nextafterf(f, INFINITY) : f;
}

// Pool task: BF16 copies of rows [b * KNN_CONVERT_ROWS, ...) of (queries, then references) and their norms.
static void knn_task_convert(void *ctx, int b, int thread) {
    (void)thread;
    KnnShared *sh = ctx;
    const PlKnnSearch *s = sh->s;
    int D = s->dim;
    int64_t total = s->n_queries + s->n_refs, r0 = (int64_t)b * KNN_CONVERT_ROWS;
    int64_t r1 = total - r0 < KNN_CONVERT_ROWS ? total : r0 + KNN_CONVERT_ROWS;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = knn_row(s, r);
        uint16_t *h = sh->qh + (size_t)r * D;   // rh follows qh: row r of (queries, then references)
        pl_bf16_from_f32_n(h, x, (size_t)D);
        double xx = 0, hh = 0, dd = 0;
        for (int d = 0; d < D; d++) {
            double xv = x[d], hv = pl_bf16_to_f32(h[d]);
            xx += xv * xv;
            hh += hv * hv;
            dd += (xv - hv) * (xv - hv);
        }
        double *nr = sh->row_norms + (size_t)r * 3;
        nr[0] = sqrt(xx);
        nr[1] = sqrt(hh);
        nr[2] = sqrt(dd);
    }
}

// eps2[q] = 2 eps(q), eps(q) bounding |BF16 score - fixed-order FP32 score| for query q and any reference.
// With q~ = bf16(q), dq = q - q~ (likewise r~, dr):
//   q.r - q~.r~ = q~.dr + dq.r  (exactly), so  |q.r - q~.r~| <= ||q~|| ||dr|| + ||dq|| ||r||  (Cauchy-Schwarz).
// Rounding to BF16 (8 significant bits, nearest) has relative error <= 2^-8 per element, so ||dq|| <= 2^-8 ||q|| and
// this is at most (2^-7 + 2^-16) ||q|| ||r|| (<= 2^-7 + 2^-16 for unit rows); the measured residual norms ||dq||,
// ||dr|| are used instead of that worst case (same rigour, about 2.5x tighter on real data).
// The BF16 GEMM multiplies exactly (8 x 8 bits fit FP32) and sums the D products in FP32 in whatever order it
// blocks them: error <= gamma_D sum |q~_i r~_i| <= gamma_D ||q~|| ||r~||, gamma_D = D u / (1 - D u), u = 2^-24.
// AVX512-BF16 treats denormal inputs and results as zero: < 2^-126 (1 + |q~_i| + |r~_i|) per product and sum, within
// the absolute D 2^-120 (1 + ||q~||)(1 + ||r~||).
// References: their maxima (the bound must hold for a candidate the search never kept). The score is alpha q.r
// (+ norms for euclidean), alpha = 1 (cosine) or 2 (euclidean); the fixed-order rescoring and the euclidean norm
// terms keep the FP32 path's own bound, (D + 8) 2^-23 times the magnitudes (with ||q|| max ||r|| for cosine, so
// rows that are not exactly unit length stay covered). eps is the sum, enlarged by 2^-20 for the rounding of the
// bound's own arithmetic.
static void knn_bf16_bounds(KnnShared *sh) {
    const PlKnnSearch *s = sh->s;
    const double *rnorm = sh->row_norms + (size_t)s->n_queries * 3;
    double r_max = 0, rt_max = 0, dr_max = 0;
    for (int64_t r = 0; r < s->n_refs; r++) {
        r_max = fmax(r_max, rnorm[r * 3]);
        rt_max = fmax(rt_max, rnorm[r * 3 + 1]);
        dr_max = fmax(dr_max, rnorm[r * 3 + 2]);
    }
    int euclid = s->metric == PL_KNN_EUCLIDEAN;
    double D = s->dim, gamma = D * 0x1.0p-24 / (1.0 - D * 0x1.0p-24), alpha = euclid ? 2.0 : 1.0;
    for (int64_t q = 0; q < s->n_queries; q++) {
        const double *qn = sh->row_norms + (size_t)q * 3;
        double dot = qn[1] * dr_max + qn[2] * r_max + gamma * qn[1] * rt_max + D * 0x1.0p-120 * (1 + qn[1]) * (1 + rt_max);
        knn_set_eps2(sh, q, alpha * dot, qn[0] * r_max);
    }
}

// Pool task (FP32, cosine): the norms of rows [b * KNN_CONVERT_ROWS, ...) of (queries, then references), in double.
static void knn_task_fp32_norms(void *ctx, int b, int thread) {
    (void)thread;
    KnnShared *sh = ctx;
    const PlKnnSearch *s = sh->s;
    int64_t rows = s->n_queries + s->n_refs, r0 = (int64_t)b * KNN_CONVERT_ROWS;
    int64_t r1 = r0 + KNN_CONVERT_ROWS < rows ? r0 + KNN_CONVERT_ROWS : rows;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = knn_row(s, r);
        double a[4] = {0, 0, 0, 0};
        int d = 0;
        for (; d + 4 <= s->dim; d += 4)
            for (int l = 0; l < 4; l++) a[l] += (double)x[d + l] * x[d + l];
        for (; d < s->dim; d++) a[0] += (double)x[d] * x[d];
        sh->fp32_norms[r] = sqrt((a[0] + a[1]) + (a[2] + a[3]));
    }
}

// FP32: eps2 of every query (knn_set_eps2 with nothing for the GEMM's inputs).
static PlStatus knn_fp32_bounds(KnnShared *sh) {
    const PlKnnSearch *s = sh->s;
    int cosine = s->metric != PL_KNN_EUCLIDEAN;
    size_t rows = (size_t)s->n_queries + (size_t)s->n_refs;
    sh->eps2 = sh->fp32_eps2 = pl_malloc((size_t)s->n_queries * sizeof(float) + 1);
    sh->fp32_norms = cosine ? pl_malloc(rows * sizeof(double)) : NULL;
    if (!sh->eps2 || (cosine && !sh->fp32_norms)) {
        free(sh->fp32_norms);
        sh->fp32_norms = NULL;
        return pl_error_wrap("knn search: bounds of %lld queries", (long long)s->n_queries);
    }
    double r_max = 0;
    if (cosine) {
        int64_t tasks = ((int64_t)rows + KNN_CONVERT_ROWS - 1) / KNN_CONVERT_ROWS;
        if (tasks > INT32_MAX) return PL_FAIL(PL_ERR_LIMIT, "knn search: %zu rows", rows);
        pl_threadpool_run(s->pool, knn_task_fp32_norms, sh, (int)tasks);
        for (size_t r = (size_t)s->n_queries; r < rows; r++) r_max = fmax(r_max, sh->fp32_norms[r]);
    }
    for (int64_t q = 0; q < s->n_queries; q++) knn_set_eps2(sh, q, 0.0, cosine ? sh->fp32_norms[q] * r_max : 0.0);
    free(sh->fp32_norms);
    sh->fp32_norms = NULL;
    return PL_OK;
}

// BF16: the one allocation of the search's BF16 data (converted once, here), and the bounds.
static PlStatus knn_bf16_prepare(KnnShared *sh) {
    const PlKnnSearch *s = sh->s;
    size_t rows = (size_t)s->n_queries + (size_t)s->n_refs, bytes;
    if (pl_mul_overflows(rows, (size_t)s->dim * sizeof(uint16_t) + 3 * sizeof(double) + sizeof(float), &bytes))
        return PL_FAIL(PL_ERR_LIMIT, "knn search: BF16 copies of %zu rows x %d", rows, s->dim);
    sh->bf16_slab = pl_malloc(bytes + 64);
    if (!sh->bf16_slab) return pl_error_wrap("knn search: BF16 copies of %zu rows x %d", rows, s->dim);
    sh->row_norms = sh->bf16_slab;
    sh->eps2 = (float *)(sh->row_norms + rows * 3);
    uintptr_t at = (uintptr_t)(sh->eps2 + s->n_queries);
    sh->qh = (uint16_t *)((at + 63) & ~(uintptr_t)63);   // the GEMM's operands start on a cache line
    sh->rh = sh->qh + (size_t)s->n_queries * s->dim;
    int64_t tasks = ((int64_t)rows + KNN_CONVERT_ROWS - 1) / KNN_CONVERT_ROWS;
    if (tasks > INT32_MAX) return PL_FAIL(PL_ERR_LIMIT, "knn search: %zu rows", rows);
    pl_threadpool_run(s->pool, knn_task_convert, sh, (int)tasks);
    knn_bf16_bounds(sh);
    return PL_OK;
}

// The GEMM backend and the candidate buffer sizes for s's precision.
static PlStatus knn_setup(KnnShared *sh, int K) {
    const PlKnnSearch *s = sh->s;
    if (s->precision != PL_PRECISION_FP32 && s->precision != PL_PRECISION_BF16)
        return PL_FAIL(PL_ERR_ARG, "knn search: unknown precision %d", (int)s->precision);
    sh->bf16 = s->precision == PL_PRECISION_BF16;
    sh->score = knn_score_fixed;
#if PL_DISPATCH_X86
    if (pl_cpu_level() >= PL_CPU_AVX512) sh->score = knn_score_fixed_avx512;
#endif
    sh->k = s->kernels;
    if (sh->bf16 && !sh->k) PL_TRY(pl_kernels_find("auto", PL_PRECISION_BF16, &sh->k));
    if (!sh->k) sh->k = pl_kernels_default();
    if (sh->bf16 && !sh->k->gemm_bf16) {
        char bf16[128];
        pl_kernels_names(bf16, sizeof bf16, 1);
        return PL_FAIL(PL_ERR_UNSUPPORTED, "knn search: the %s kernels have no BF16 GEMM (use %s, or fp32)",
                       sh->k->name, bf16);
    }
    sh->cap = 3 * K + 128;   // room for the window of near-ties below the K-th score
    sh->keep = sh->cap - sh->cap / 4;
    return PL_OK;
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
    KnnShared sh;
    memset(&sh, 0, sizeof sh);
    sh.s = s;
    sh.out = out;
    PL_TRY(knn_setup(&sh, out->k));
    if (s->stats) memset(s->stats, 0, sizeof *s->stats);
    pl_topk_reset(out);
    if (s->n_queries == 0 || s->n_refs == 0) {
        pl_topk_finish(out);
        return PL_OK;
    }
    sh.qb = s->query_block > 0 ? s->query_block : 256;
    sh.rb = s->ref_block > 0 ? s->ref_block : 2048;
    if (sh.qb > s->n_queries) sh.qb = (int)s->n_queries;
    if (sh.rb > s->n_refs) sh.rb = (int)s->n_refs;
    sh.n_qblocks = (s->n_queries + sh.qb - 1) / sh.qb;
    if (sh.n_qblocks > INT32_MAX) return PL_FAIL(PL_ERR_LIMIT, "knn search: %lld query blocks", (long long)sh.n_qblocks);
    atomic_init(&sh.rescans, 0);
    atomic_init(&sh.rescored, 0);
    // every thread of the pool may take a block: one scratch set each
    int threads = pl_threadpool_size(s->pool);
    sh.workers = pl_calloc((size_t)threads, sizeof *sh.workers);
    if (!sh.workers) return pl_error_wrap("knn scratch for %d threads", threads);
    PlStatus st = PL_OK;
    // one slab per thread: candidate buffers | similarity block | thresholds | drops | selection | counts
    size_t per = (size_t)sh.qb * sh.cap * sizeof(PlNeighbour) + (size_t)sh.qb * sh.rb * sizeof(float) +
                 (size_t)sh.qb * (sizeof(int) + 2 * sizeof(float)) + (size_t)sh.cap * sizeof(float);
    for (int i = 0; i < threads && st == PL_OK; i++) {
        KnnWorker *w = &sh.workers[i];
        st = pl_topk_init(&w->one, 1, out->k);
        char *slab = st == PL_OK ? pl_malloc(per) : NULL;
        if (st == PL_OK && !slab) st = pl_error_wrap("knn scratch (%d x %d similarities, %d candidates)", sh.qb, sh.rb, sh.cap);
        if (slab) {
            w->buf = (PlNeighbour *)slab;
            w->S = (float *)(w->buf + (size_t)sh.qb * sh.cap);
            w->thr = w->S + (size_t)sh.qb * sh.rb;
            w->drop = w->thr + sh.qb;
            w->sel = w->drop + sh.qb;
            w->n = (int *)(w->sel + sh.cap);
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
    if (st == PL_OK) st = sh.bf16 ? knn_bf16_prepare(&sh) : knn_fp32_bounds(&sh);
    if (st == PL_OK) {
        // the pool's threads each run a single-threaded GEMM (the program set OpenBLAS to one thread; oneDNN runs
        // single-threaded on the calling thread)
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
    free(sh.bf16_slab);
    free(sh.fp32_eps2);
    if (st == PL_OK && s->stats) {
        s->stats->rescored = atomic_load(&sh.rescored);
        s->stats->rescans = atomic_load(&sh.rescans);
    }
    return st;
}

int pl_knn_normalise_row(float *dst, const float *src, int dim) {
    double a = 0;
    for (int d = 0; d < dim; d++) a += (double)src[d] * src[d];
    if (a <= 0) {
        if (dst != src) memcpy(dst, src, (size_t)dim * sizeof(float));
        return 1;
    }
    float inv = (float)(1.0 / sqrt(a));
    for (int d = 0; d < dim; d++) dst[d] = src[d] * inv;
    return 0;
}

int64_t pl_knn_normalise_rows(float *x, int64_t n, int dim) {
    int64_t zero = 0;
    for (int64_t i = 0; i < n; i++) zero += pl_knn_normalise_row(x + (size_t)i * dim, x + (size_t)i * dim, dim);
    return zero;
}
