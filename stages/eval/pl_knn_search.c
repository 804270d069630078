// Blocked exact kNN search: a thread pool over query blocks, single-threaded sgemm per block, heap updates.
#include "pl_knn.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct KnnShared {
    const PlKnnSearch *s;
    PlTopK *out;
    int qb, rb;
    int64_t n_qblocks;
    atomic_llong next;        // next query block to take
    float *scratch;           // threads * qb * rb
    float *qnorm;             // (Q) squared query norms (euclidean)
} KnnShared;

typedef struct KnnWorker {
    KnnShared *sh;
    int id;
} KnnWorker;

// Scan one (nq, nr) similarity block row by row: only candidates above the heap threshold are examined.
static void knn_scan_block(KnnShared *sh, const float *S, int64_t q0, int nq, int64_t r0, int nr) {
    const PlKnnSearch *s = sh->s;
    PlTopK *t = sh->out;
    int euclid = s->metric == PL_KNN_EUCLIDEAN;
    for (int i = 0; i < nq; i++) {
        int64_t q = q0 + i;
        const float *row = S + (size_t)i * nr;
        float thr = pl_topk_threshold(t, q);
        int32_t qg = s->query_group ? s->query_group[q] : 0;
        int64_t self = s->query_self ? s->query_self[q] : -1;
        float qn = euclid ? sh->qnorm[q] : 0.0f;
        for (int j = 0; j < nr; j++) {
            float v = row[j];
            if (euclid) v = v - s->ref_sqnorm[r0 + j] - qn;
            if (v < thr) continue;
            int64_t g = s->ref_offset + r0 + j;
            if (g == self) continue;
            if (s->query_group && s->ref_group[r0 + j] == qg) continue;
            pl_topk_push(t, q, v, g);
            thr = pl_topk_threshold(t, q);
        }
    }
}

static void *knn_worker(void *arg) {
    KnnWorker *w = arg;
    KnnShared *sh = w->sh;
    const PlKnnSearch *s = sh->s;
    float *S = sh->scratch + (size_t)w->id * sh->qb * sh->rb;   // (qb, rb)
    float alpha = s->metric == PL_KNN_EUCLIDEAN ? 2.0f : 1.0f;
    for (;;) {
        int64_t b = atomic_fetch_add(&sh->next, 1);
        if (b >= sh->n_qblocks) break;
        int64_t q0 = b * sh->qb;
        int nq = (int)(s->n_queries - q0 < sh->qb ? s->n_queries - q0 : sh->qb);
        for (int64_t r0 = 0; r0 < s->n_refs; r0 += sh->rb) {
            int nr = (int)(s->n_refs - r0 < sh->rb ? s->n_refs - r0 : sh->rb);
            // S (nq, nr) = alpha * Q[q0:q0+nq] (nq, D) . R[r0:r0+nr]^T (D, nr)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nr, s->dim, alpha,
                        s->queries + (size_t)q0 * s->dim, s->dim, s->refs + (size_t)r0 * s->dim, s->dim,
                        0.0f, S, nr);
            knn_scan_block(sh, S, q0, nq, r0, nr);
        }
    }
    return NULL;
}

PlStatus pl_knn_search(const PlKnnSearch *s, PlTopK *out) {
    if (s->dim < 1 || s->n_queries < 0 || s->n_refs < 0 || s->threads < 1)
        return PL_FAIL(PL_ERR_ARG, "knn search: bad sizes (Q %lld, R %lld, D %d, threads %d)",
                       (long long)s->n_queries, (long long)s->n_refs, s->dim, s->threads);
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
    int threads = s->threads;
    if (threads > sh.n_qblocks) threads = (int)sh.n_qblocks;
    atomic_init(&sh.next, 0);
    size_t scratch_n = (size_t)threads * sh.qb * sh.rb;
    sh.scratch = pl_malloc(scratch_n * sizeof(float));
    if (!sh.scratch) return pl_error_wrap("knn similarity scratch (%d threads x %d x %d)", threads, sh.qb, sh.rb);
    if (s->metric == PL_KNN_EUCLIDEAN) {
        sh.qnorm = pl_malloc((size_t)s->n_queries * sizeof(float));
        if (!sh.qnorm) {
            free(sh.scratch);
            return PL_ERR_NOMEM;
        }
        for (int64_t q = 0; q < s->n_queries; q++) {
            const float *x = s->queries + (size_t)q * s->dim;
            float a = 0;
            for (int d = 0; d < s->dim; d++) a += x[d] * x[d];
            sh.qnorm[q] = a;
        }
    }
    // One pool: our threads each run single-threaded BLAS.
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    KnnWorker workers[64];
    pthread_t tids[64];
    if (threads > 64) threads = 64;
    int started = 0;   // a thread that cannot start leaves its blocks to the others (results are the same)
    for (int i = 1; i < threads; i++) {
        workers[i].sh = &sh;
        workers[i].id = i;
        if (pthread_create(&tids[i], NULL, knn_worker, &workers[i]) != 0) break;
        started = i;
    }
    workers[0].sh = &sh;
    workers[0].id = 0;
    knn_worker(&workers[0]);   // the calling thread works too (and finishes the blocks if a start failed)
    for (int i = 1; i <= started; i++) pthread_join(tids[i], NULL);
    openblas_set_num_threads(blas_threads);
    free(sh.scratch);
    free(sh.qnorm);
    pl_topk_finish(out);
    return PL_OK;
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

PlStatus pl_knn_check_finite(const float *x, int64_t n, int dim, const char *what) {
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < dim; d++)
            if (!isfinite(x[(size_t)i * dim + d]))
                return PL_FAIL(PL_ERR_NUMERIC, "%s: row %lld column %d is %s", what, (long long)i, d,
                               isnan(x[(size_t)i * dim + d]) ? "NaN" : "infinite");
    return PL_OK;
}
