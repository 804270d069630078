// kNN evaluation protocols (train -> test, leave-one-out, grouped k-fold over seeds) with macro F1 for every k.
//
// Classes come from pl_features_encode_labels (the same classes and rows as the probes): the distinct usable
// labels, sorted bytewise. Multi-label items ("a;b") are dropped by default or reduced to their first label;
// unlabelled items are never scored and
// serve as (non-voting) references only with unlabelled_refs. Under MPI every rank passes the same feature
// set; references are sharded by rank and the per-rank top-K lists are merged exactly (pl_knn_mpi_merge),
// so every rank ends with the same result. Ownership: a PlKnnResult owns all its arrays.
#ifndef PL_KNN_EVAL_H
#define PL_KNN_EVAL_H

#include <mpi.h>
#include <stdint.h>
#include "pl_error.h"
#include "pl_features.h"
#include "pl_knn.h"
#include "pl_topk.h"

typedef enum PlKnnProtocol { PL_KNN_TRAIN_TEST = 0, PL_KNN_LOO = 1, PL_KNN_KFOLD = 2 } PlKnnProtocol;
typedef enum PlKnnExclude { PL_KNN_EXCLUDE_NONE = 0, PL_KNN_EXCLUDE_GROUP = 1, PL_KNN_EXCLUDE_ITEM = 2 } PlKnnExclude;

typedef struct PlKnnOptions {
    PlKnnMetric metric;          // cosine (default) or euclidean
    PlKnnVote vote;              // weighted (DINO) or majority
    float temperature;           // 0.07
    int k_max;                   // 200 (capped by the reference count)
    PlKnnProtocol protocol;
    const char *train_split;     // "train"
    const char *test_split;      // "test"
    const char *set_split;       // loo/kfold: only rows with this split (NULL = all rows)
    PlKnnExclude exclude;        // skip neighbours of the query's group / item (FOV)
    int folds;                   // kfold: 5
    int seeds;                   // kfold: repetitions
    uint64_t seed;
    int unlabelled_refs;
    PlMultilabel multilabel;
    PlThreadPool *pool;          // borrowed: the process's pool (NULL = the calling thread only)
    int query_block, ref_block;
    const PlKernels *kernels;    // the similarity GEMM's backend (NULL: the default for FP32, auto for BF16)
    PlPrecision precision;       // FP32 (default) or BF16 similarities: identical results (pl_knn.h)
    MPI_Comm comm;               // MPI_COMM_NULL or a communicator (references sharded over its ranks)
    int keep_neighbours;         // train_test/loo: keep the neighbour lists (feature rows)
} PlKnnOptions;

void pl_knn_options_default(PlKnnOptions *o);

typedef struct PlKnnResult {
    int n_classes;
    char **classes;              // (C) sorted
    int K;                       // k = 1..K were evaluated
    int n_runs;                  // 1, or folds * seeds
    int64_t n_queries, n_refs;   // first run (kfold: totals over the folds of one seed)
    int64_t n_multilabel_skipped, n_unlabelled;
    double *macro_f1, *accuracy; // (n_runs, K)
    double *f1_mean, *f1_std, *acc_mean, *acc_std;  // (K) over runs
    double *per_class_f1;        // (K, C) from counts pooled over runs
    int *class_present;          // (K, C) 1 when the class entered the macro average at that k
    int64_t *confusion;          // (K, C, C+1) pooled over runs; last column = no vote
    int64_t *support;            // (C) scored queries per true class (pooled)
    int best_k;                  // k with the highest mean macro F1 (smallest such k)
    int64_t *query_rows;         // keep_neighbours: (n_queries) feature-set rows of the queries
    int64_t *neighbours;         // keep_neighbours: (n_queries, K) feature-set rows, -1 = empty
    float *neighbour_scores;     // keep_neighbours: (n_queries, K)
    int32_t *pred;               // single run: (n_queries, K) predicted class per k
    int32_t *truth;              // single run: (n_queries)
    double seconds_search, seconds_score;
} PlKnnResult;

PlStatus pl_knn_evaluate(const PlFeatureSet *fs, const PlKnnOptions *o, PlKnnResult *r);
void pl_knn_result_free(PlKnnResult *r);

// Merge every rank's top-K lists into the exact global ones on all ranks (no-op for one rank).
PlStatus pl_knn_mpi_merge(PlTopK *t, MPI_Comm comm);

#endif
