// Exact k-nearest-neighbour search (blocked sgemm + bounded heaps) and the kNN vote / per-k scoring.
//
// Search: queries (Q, D) against references (R, D) in row blocks; the process's thread pool (borrowed) runs one
// task per query block, each running a single-threaded GEMM of the kernel interface on (qb, D) x (D, rb) and feeding
// its own queries' candidate lists, which are rescored with a fixed-order FP32 dot product: the result is exact and
// the same, bit for bit, for every backend, precision, block size and shard layout. Precision BF16 computes the
// block similarities from BF16 copies of the rows (FP32 accumulation; about 2x the FP32 GEMM rate) and rescores
// every candidate within a rigorous bound of the BF16 rounding. Memory beyond inputs and results: pool threads *
// qb * rb * 4 bytes of similarity scratch plus the candidate buffers; BF16 adds (Q + R) * (2 D + 28) bytes (see
// docs/evaluation.md).
// Ownership: the caller owns every array passed in and the pool; results go into a caller-initialised PlTopK.
#ifndef PL_KNN_H
#define PL_KNN_H

#include <stdint.h>
#include "pl_error.h"
#include "pl_kernels.h"
#include "pl_threadpool.h"
#include "pl_topk.h"

typedef enum PlKnnMetric { PL_KNN_COSINE = 0, PL_KNN_EUCLIDEAN = 1 } PlKnnMetric;
typedef enum PlKnnVote { PL_KNN_VOTE_WEIGHTED = 0, PL_KNN_VOTE_MAJORITY = 1 } PlKnnVote;

// What a search did (optional output): how much exact work the candidate pass left.
typedef struct PlKnnStats {
    int64_t rescored;            // candidates rescored with the fixed-order dot product
    int64_t rescans;             // queries rescanned over the whole shard (their candidate set overflowed)
} PlKnnStats;

typedef struct PlKnnSearch {
    const float *queries;        // (Q, D), already L2-normalised for cosine
    int64_t n_queries;
    const float *refs;           // (R, D) this rank's shard, already L2-normalised for cosine
    int64_t n_refs;
    int dim;
    int64_t ref_offset;          // global index of refs row 0 (shard start)
    PlKnnMetric metric;
    const float *ref_sqnorm;     // (R) squared norms, required for euclidean (NULL for cosine)
    const int32_t *query_group;  // (Q) or NULL: skip references with the same group id ...
    const int32_t *ref_group;    // (R) ... (both given or both NULL)
    const int64_t *query_self;   // (Q) or NULL: global reference index of the query itself (or -1), skipped
    PlThreadPool *pool;          // borrowed; NULL = run on the calling thread
    int query_block;             // 0 = default (256)
    int ref_block;               // 0 = default (2048)
    const PlKernels *kernels;    // the similarity GEMM's backend (pl_kernels.h); NULL = pl_kernels_default() (FP32)
                                 // or pl_kernels_find("auto") (BF16)
    PlPrecision precision;       // FP32 (default) or BF16 similarities (needs kernels with gemm_bf16); same results
    PlKnnStats *stats;           // NULL, or filled by pl_knn_search
} PlKnnSearch;

// Fill `out` (n_queries, k; initialised by the caller, reset here) with each query's best-first top-k among
// this shard. Scores: cosine = dot product; euclidean = -||q - r||^2 (converted from 2 q.r - ||r||^2 - ||q||^2).
PlStatus pl_knn_search(const PlKnnSearch *s, PlTopK *out);

// L2-normalise rows in place ((N, D)); rows with zero norm stay zero. Returns the count of zero rows.
int64_t pl_knn_normalise_rows(float *x, int64_t n, int dim);
// One row: dst (dim) = src L2-normalised (the sum of squares in double, in order, then the float inverse), or src
// unchanged when its norm is zero (returns 1 then, else 0). dst may equal src.
int pl_knn_normalise_row(float *dst, const float *src, int dim);

// Predictions for every k = 1..K from best-first neighbour lists.
//   nb_label: (Q, K) class of each neighbour (-1 = unlabelled reference: occupies a slot, casts no vote)
//   nb_score: (Q, K) neighbour scores; nb_count: (Q) valid neighbours per query
//   pred: (Q, K) output, pred[q*K + k-1] = predicted class with the k best neighbours (-1 = no vote)
// Weighted vote: class score = sum exp((s - s_best) / T) (the same argmax as DINO's sum exp(s/T)).
// Vote ties go to the smallest class index. `scratch` holds n_classes doubles.
void pl_knn_vote_all_k(const int32_t *nb_label, const float *nb_score, const int *nb_count, int64_t n_queries,
                       int K, int n_classes, PlKnnVote vote, float temperature, double *scratch, int32_t *pred);

#endif
