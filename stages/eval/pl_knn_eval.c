// kNN protocols: select query/reference rows, shard references over ranks, search, merge, vote, score every k.
#include "pl_knn_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_clock.h"
#include "pl_metrics.h"
#include "pl_mpi.h"
#include "pl_rng.h"

void pl_knn_options_default(PlKnnOptions *o) {
    memset(o, 0, sizeof *o);
    o->metric = PL_KNN_COSINE;
    o->vote = PL_KNN_VOTE_WEIGHTED;
    o->temperature = 0.07f;
    o->k_max = 200;
    o->protocol = PL_KNN_TRAIN_TEST;
    o->train_split = "train";
    o->test_split = "test";
    o->exclude = PL_KNN_EXCLUDE_NONE;
    o->folds = 5;
    o->seeds = 1;
    o->seed = 0;
    o->multilabel = PL_MULTILABEL_SKIP;
    o->precision = PL_PRECISION_FP32;
    o->comm = MPI_COMM_NULL;
}

void pl_knn_result_free(PlKnnResult *r) {
    if (r->classes)
        for (int c = 0; c < r->n_classes; c++) free(r->classes[c]);
    free(r->classes);
    free(r->macro_f1);
    free(r->accuracy);
    free(r->f1_mean);
    free(r->f1_std);
    free(r->acc_mean);
    free(r->acc_std);
    free(r->per_class_f1);
    free(r->class_present);
    free(r->confusion);
    free(r->support);
    free(r->query_rows);
    free(r->neighbours);
    free(r->neighbour_scores);
    free(r->pred);
    free(r->truth);
    memset(r, 0, sizeof *r);
}

static int knn_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Class index per row (-1 unlabelled, -2 dropped) from the shared label encoder; r takes the class names.
static PlStatus knn_encode_labels(const PlFeatureSet *fs, const PlKnnOptions *o, PlKnnResult *r, int32_t *cls) {
    PlLabelCoding lc;
    PL_TRY(pl_features_encode_labels(fs, o->multilabel, 100000, &lc));
    memcpy(cls, lc.cls, (size_t)fs->n * sizeof *cls);
    r->classes = lc.classes;
    r->n_classes = lc.n_classes;
    r->n_unlabelled = lc.n_unlabelled;
    r->n_multilabel_skipped = lc.n_multilabel_skipped;
    lc.classes = NULL;
    lc.n_classes = 0;
    pl_label_coding_free(&lc);
    return PL_OK;
}

// Group id per row for exclusion: equal ids = same group; rows with an empty group get unique ids.
static PlStatus knn_group_ids(const PlFeatureSet *fs, PlKnnExclude ex, int32_t *gid) {
    if (fs->n > INT32_MAX / 2) return PL_FAIL(PL_ERR_LIMIT, "too many rows for group exclusion");
    if (ex == PL_KNN_EXCLUDE_ITEM) {
        for (int64_t i = 0; i < fs->n; i++) gid[i] = (int32_t)fs->item[i];
        return PL_OK;
    }
    // distinct group strings, sorted; a row's group id is its position
    char **keys = pl_malloc(((size_t)fs->n + 1) * sizeof(char *));
    if (!keys) return PL_ERR_NOMEM;
    for (int64_t i = 0; i < fs->n; i++) keys[i] = fs->group[i];
    qsort(keys, (size_t)fs->n, sizeof(char *), knn_cmp_str);
    int64_t u = 0;
    for (int64_t i = 0; i < fs->n; i++)
        if (keys[i][0] && (u == 0 || strcmp(keys[u - 1], keys[i]) != 0)) keys[u++] = keys[i];
    for (int64_t i = 0; i < fs->n; i++) {
        if (!fs->group[i][0]) { gid[i] = (int32_t)(u + i); continue; }
        char **hit = bsearch(&fs->group[i], keys, (size_t)u, sizeof(char *), knn_cmp_str);
        gid[i] = (int32_t)(hit - keys);
    }
    free(keys);
    return PL_OK;
}

typedef struct KnnRun {
    int64_t *qrows, nq;    // feature rows of scored queries
    int64_t *rrows, nr;    // feature rows of references
} KnnRun;

#define KNN_GATHER_ROWS 512   // rows per task of the gather

typedef struct KnnGather {
    const PlFeatureSet *fs;
    const KnnRun *run;
    int64_t r0, nrl;          // this rank's references: run->rrows[r0 .. r0 + nrl)
    float *Q, *R;
    int normalise;            // cosine: rows L2-normalised on the way
} KnnGather;

// Pool task: rows [b * KNN_GATHER_ROWS, ...) of (queries, then this rank's references) from the feature matrix into
// the search's layout in one pass, L2-normalised on the way for cosine (pl_knn_normalise_row): the same bits as
// copying and normalising in two passes, once over the data and on every thread of the pool.
static void knn_task_gather(void *ctx, int b, int thread) {
    (void)thread;
    const KnnGather *g = ctx;
    int D = g->fs->dim;
    int64_t nq = g->run->nq, total = nq + g->nrl, i0 = (int64_t)b * KNN_GATHER_ROWS;
    int64_t i1 = total - i0 < KNN_GATHER_ROWS ? total : i0 + KNN_GATHER_ROWS;
    for (int64_t i = i0; i < i1; i++) {
        int64_t row = i < nq ? g->run->qrows[i] : g->run->rrows[g->r0 + i - nq];
        float *dst = i < nq ? g->Q + (size_t)i * D : g->R + (size_t)(i - nq) * D;
        const float *src = g->fs->x + (size_t)row * D;
        if (g->normalise)
            pl_knn_normalise_row(dst, src, D);
        else
            memcpy(dst, src, (size_t)D * sizeof(float));
    }
}

// Search + merge for one run; returns the merged lists in t (global index = position in run->rrows).
static PlStatus knn_run_search(const PlFeatureSet *fs, const PlKnnOptions *o, const KnnRun *run, const int32_t *gid,
                               int self_in_refs, PlTopK *t) {
    int rank = 0, size = 1;
    if (o->comm != MPI_COMM_NULL) {
        PL_MPI_TRY(MPI_Comm_rank(o->comm, &rank));
        PL_MPI_TRY(MPI_Comm_size(o->comm, &size));
    }
    int64_t r0 = run->nr * rank / size, r1 = run->nr * (rank + 1) / size;
    int64_t nrl = r1 - r0;
    int D = fs->dim;
    // one slab: queries (nq, D) | refs (nrl, D) | ref norms (nrl) | qgroup (nq) | rgroup (nrl) | qself (nq)
    size_t bytes = ((size_t)run->nq + (size_t)nrl) * D * sizeof(float) + (size_t)nrl * sizeof(float) +
                   ((size_t)run->nq + nrl) * sizeof(int32_t) + (size_t)run->nq * sizeof(int64_t) + 64;
    char *slab = pl_malloc(bytes);
    if (!slab)   // every rank learns it at the agreement the others reach after their search
        return pl_mpi_agree_comm(o->comm, pl_error_wrap("kNN working set (%lld queries, %lld references)",
                                                        (long long)run->nq, (long long)nrl), "the kNN search");
    int64_t *qself = (int64_t *)slab;
    float *Q = (float *)(qself + run->nq);
    float *R = Q + (size_t)run->nq * D;
    float *rn = R + (size_t)nrl * D;
    int32_t *qg = (int32_t *)(rn + nrl);
    int32_t *rg = qg + run->nq;
    KnnGather gather = {fs, run, r0, nrl, Q, R, o->metric == PL_KNN_COSINE};
    int64_t tasks = (run->nq + nrl + KNN_GATHER_ROWS - 1) / KNN_GATHER_ROWS;
    if (tasks > INT32_MAX) {
        free(slab);
        PlStatus st = PL_FAIL(PL_ERR_LIMIT, "kNN working set of %lld rows", (long long)(run->nq + nrl));
        return pl_mpi_agree_comm(o->comm, st, "the kNN search");
    }
    pl_threadpool_run(o->pool, knn_task_gather, &gather, (int)tasks);
    for (int64_t i = 0; i < run->nq; i++) {
        if (gid) qg[i] = gid[run->qrows[i]];
        qself[i] = -1;
    }
    for (int64_t j = 0; gid && j < nrl; j++) rg[j] = gid[run->rrows[r0 + j]];
    if (self_in_refs) {
        // queries are a subsequence of refs (both ascending rows): find each query's position
        int64_t j = 0;
        for (int64_t i = 0; i < run->nq; i++) {
            while (j < run->nr && run->rrows[j] < run->qrows[i]) j++;
            qself[i] = (j < run->nr && run->rrows[j] == run->qrows[i]) ? j : -1;
        }
    }
    if (o->metric == PL_KNN_EUCLIDEAN) {
        for (int64_t j = 0; j < nrl; j++) {
            float a = 0;
            for (int d = 0; d < D; d++) a += R[(size_t)j * D + d] * R[(size_t)j * D + d];
            rn[j] = a;
        }
    }
    PlKnnSearch s = {.queries = Q, .n_queries = run->nq, .refs = R, .n_refs = nrl, .dim = D, .ref_offset = r0,
                     .metric = o->metric, .ref_sqnorm = o->metric == PL_KNN_EUCLIDEAN ? rn : NULL,
                     .query_group = gid ? qg : NULL, .ref_group = gid ? rg : NULL,
                     .query_self = self_in_refs ? qself : NULL, .pool = o->pool,
                     .query_block = o->query_block, .ref_block = o->ref_block, .kernels = o->kernels,
                     .precision = o->precision};
    PlStatus st = pl_knn_search(&s, t);
    free(slab);
    st = pl_mpi_agree_comm(o->comm, st, "the kNN search");   // before the merge's collectives
    if (st == PL_OK && o->comm != MPI_COMM_NULL) st = pl_knn_mpi_merge(t, o->comm);
    return st;
}

static int knn_in_split(const char *split, const char *want) { return want == NULL || strcmp(split, want) == 0; }

// K = min(k_max, the smallest reference count of any run). PL_ERR_EMPTY without references.
static PlStatus knn_choose_k(const PlFeatureSet *fs, const PlKnnOptions *o, const int32_t *cls, int *K) {
    int64_t refs = 0;
    const char *split = o->protocol == PL_KNN_TRAIN_TEST ? o->train_split : o->set_split;
    for (int64_t i = 0; i < fs->n; i++)
        if (knn_in_split(fs->split[i], split) && (cls[i] >= 0 || (cls[i] == -1 && o->unlabelled_refs))) refs++;
    // loo/kfold: a query is not its own reference (k-fold folds vary in size: a query with fewer references
    // votes with all it has)
    int64_t min_refs = o->protocol == PL_KNN_TRAIN_TEST ? refs : refs - 1;
    if (min_refs < 1) return PL_FAIL(PL_ERR_EMPTY, "no reference items for the kNN protocol (check --train-split/--set)");
    *K = o->k_max < min_refs ? o->k_max : (int)min_refs;
    return PL_OK;
}

static PlStatus knn_result_alloc(PlKnnResult *r, int n_runs, int K, int C) {
    size_t RK = (size_t)n_runs * K;
    r->macro_f1 = pl_calloc(RK, sizeof(double));
    r->accuracy = pl_calloc(RK, sizeof(double));
    r->f1_mean = pl_calloc((size_t)K, sizeof(double));
    r->f1_std = pl_calloc((size_t)K, sizeof(double));
    r->acc_mean = pl_calloc((size_t)K, sizeof(double));
    r->acc_std = pl_calloc((size_t)K, sizeof(double));
    r->per_class_f1 = pl_calloc((size_t)K * C, sizeof(double));
    r->class_present = pl_calloc((size_t)K * C, sizeof(int));
    r->confusion = pl_calloc((size_t)K * C * (C + 1), sizeof(int64_t));
    r->support = pl_calloc((size_t)C, sizeof(int64_t));
    if (!r->macro_f1 || !r->accuracy || !r->f1_mean || !r->f1_std || !r->acc_mean || !r->acc_std ||
        !r->per_class_f1 || !r->class_present || !r->confusion || !r->support)
        return PL_ERR_NOMEM;
    return PL_OK;
}

// Grouped folds of repetition seed_i: the distinct groups (rows without a group count alone) are shuffled with
// the seed and dealt round-robin to the folds. fold: (n) the fold of every row.
static PlStatus knn_assign_folds(const PlFeatureSet *fs, const PlKnnOptions *o, int seed_i, int64_t *fold) {
    size_t n = (size_t)fs->n + 1;
    int32_t *g = pl_malloc(n * sizeof(int32_t));
    int64_t *order = pl_malloc(n * sizeof(int64_t)), *pos = pl_malloc(n * sizeof(int64_t));
    PlStatus st = g && order && pos ? knn_group_ids(fs, PL_KNN_EXCLUDE_GROUP, g) : PL_ERR_NOMEM;
    if (st == PL_OK) {
        int64_t ng = 0;   // group ids are < n: a permutation of them gives fold = position % folds
        for (int64_t i = 0; i < fs->n; i++) if (g[i] + 1 > ng) ng = g[i] + 1;
        for (int64_t i = 0; i < ng; i++) order[i] = i;
        PlRng rng;
        pl_rng_seed(&rng, o->seed + (uint64_t)seed_i * 0x9e3779b97f4a7c15ULL);
        pl_rng_shuffle_i64(&rng, order, ng);
        for (int64_t i = 0; i < ng; i++) pos[order[i]] = i % o->folds;
        for (int64_t i = 0; i < fs->n; i++) fold[i] = pos[g[i]];
    }
    free(g);
    free(order);
    free(pos);
    return st;
}

// k-fold deals whole groups to the folds, so every fold needs a group of labelled rows in the set: the number of such
// groups (rows without a group count alone) must be at least --folds. PL_ERR_ARG naming both and what to change.
static PlStatus knn_check_folds(const PlFeatureSet *fs, const PlKnnOptions *o, const int32_t *cls, int64_t *n_groups) {
    int32_t *g = pl_malloc(((size_t)fs->n + 1) * sizeof(int32_t));
    char *seen = pl_calloc((size_t)fs->n * 2 + 1, 1);   // group ids are < 2n (knn_group_ids)
    PlStatus st = g && seen ? knn_group_ids(fs, PL_KNN_EXCLUDE_GROUP, g) : PL_ERR_NOMEM;
    int64_t ng = 0;
    for (int64_t i = 0; i < fs->n && st == PL_OK; i++)
        if (cls[i] >= 0 && knn_in_split(fs->split[i], o->set_split) && !seen[g[i]]) {
            seen[g[i]] = 1;
            ng++;
        }
    free(g);
    free(seen);
    *n_groups = ng;
    if (st != PL_OK || ng >= o->folds) return st;
    char set[300] = "", hint[160];
    if (o->set_split) snprintf(set, sizeof set, " of split '%s' (--set)", o->set_split);
    if (ng >= 2) snprintf(hint, sizeof hint, "give fewer --folds (at most %lld), or use --protocol loo", (long long)ng);
    else snprintf(hint, sizeof hint, "use --protocol loo or train-test, or give the rows more groups");
    return PL_FAIL(PL_ERR_ARG, "--protocol kfold --folds %d: the labelled rows%s form %lld group%s (the group column; a "
                   "row without a group is a group of its own), and every fold needs one: %s", o->folds, set,
                   (long long)ng, ng == 1 ? "" : "s", hint);
}

// The query and reference rows of fold f (train-test and loo have one run, f = 0).
static void knn_select_rows(const PlFeatureSet *fs, const PlKnnOptions *o, const int32_t *cls, const int64_t *fold,
                            int f, KnnRun *run) {
    run->nq = run->nr = 0;
    for (int64_t i = 0; i < fs->n; i++) {
        int usable_ref = cls[i] >= 0 || (cls[i] == -1 && o->unlabelled_refs);
        if (o->protocol == PL_KNN_TRAIN_TEST) {
            if (cls[i] >= 0 && knn_in_split(fs->split[i], o->test_split)) run->qrows[run->nq++] = i;
            if (usable_ref && knn_in_split(fs->split[i], o->train_split)) run->rrows[run->nr++] = i;
        } else if (knn_in_split(fs->split[i], o->set_split)) {
            int in_fold = o->protocol == PL_KNN_LOO || fold[i] == f;
            if (cls[i] >= 0 && in_fold) run->qrows[run->nq++] = i;
            if (usable_ref && (o->protocol == PL_KNN_LOO || !in_fold)) run->rrows[run->nr++] = i;
        }
    }
}

// Votes and scores of one run from its merged neighbour lists: macro F1 / accuracy for every k, the pooled
// confusion and support; a single run also keeps predictions and (keep_neighbours) the neighbour rows.
static PlStatus knn_score_run(const PlKnnOptions *o, const KnnRun *run, const int32_t *cls, const PlTopK *t,
                              int run_index, PlKnnResult *r) {
    int K = r->K, C = r->n_classes;
    int32_t *nb_label = pl_malloc((size_t)run->nq * K * sizeof(int32_t));
    float *nb_score = pl_malloc((size_t)run->nq * K * sizeof(float));
    int32_t *pred = pl_malloc((size_t)run->nq * K * sizeof(int32_t));
    int32_t *truth = pl_malloc((size_t)run->nq * sizeof(int32_t));
    double *scratch = pl_malloc((size_t)(C + 1) * sizeof(double));
    PlStatus st = nb_label && nb_score && pred && truth && scratch ? PL_OK : PL_ERR_NOMEM;
    for (int64_t q = 0; st == PL_OK && q < run->nq; q++) {
        truth[q] = cls[run->qrows[q]];
        for (int k = 0; k < K; k++) {
            const PlNeighbour *nb = &t->items[(size_t)q * K + k];
            nb_label[(size_t)q * K + k] = k < t->count[q] ? cls[run->rrows[nb->index]] : -1;
            nb_score[(size_t)q * K + k] = nb->score;
        }
    }
    if (st == PL_OK) {
        pl_knn_vote_all_k(nb_label, nb_score, t->count, run->nq, K, C, o->vote, o->temperature, scratch, pred);
        int64_t tp[C], fp[C], fn[C];
        PlClassCounts cc = {C, tp, fp, fn};
        for (int k = 0; k < K; k++) {
            pl_metrics_count(truth, pred + k, run->nq, K, &cc);
            r->macro_f1[(size_t)run_index * K + k] = pl_metrics_macro_f1(&cc, NULL, NULL);
            r->accuracy[(size_t)run_index * K + k] = pl_metrics_accuracy(&cc, run->nq);
            int64_t *conf = r->confusion + (size_t)k * C * (C + 1);
            for (int64_t q = 0; q < run->nq; q++) {
                int32_t p = pred[(size_t)q * K + k];
                conf[(size_t)truth[q] * (C + 1) + (p >= 0 ? p : C)]++;
            }
        }
        for (int64_t q = 0; q < run->nq; q++) r->support[truth[q]]++;
    }
    if (st == PL_OK && r->n_runs == 1) {
        r->pred = pred, pred = NULL;
        r->truth = truth, truth = NULL;
        if (o->keep_neighbours) {
            r->query_rows = pl_malloc((size_t)run->nq * sizeof(int64_t));
            r->neighbours = pl_malloc((size_t)run->nq * K * sizeof(int64_t));
            r->neighbour_scores = nb_score, nb_score = NULL;
            if (!r->query_rows || !r->neighbours) st = PL_ERR_NOMEM;
            for (int64_t q = 0; st == PL_OK && q < run->nq; q++) {
                r->query_rows[q] = run->qrows[q];
                for (int k = 0; k < K; k++)
                    r->neighbours[(size_t)q * K + k] = k < t->count[q] ? run->rrows[t->items[(size_t)q * K + k].index] : -1;
            }
        }
    }
    free(nb_label); free(nb_score); free(pred); free(truth); free(scratch);
    return st;
}

// Mean / std over runs, per-class F1 from the pooled confusion, and the best k (the smallest with the highest mean).
static PlStatus knn_summarise(PlKnnResult *r) {
    int K = r->K, C = r->n_classes, n_runs = r->n_runs;
    double *col = pl_malloc((size_t)n_runs * sizeof(double));
    if (!col) return PL_ERR_NOMEM;
    r->best_k = 1;
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < n_runs; i++) col[i] = r->macro_f1[(size_t)i * K + k];
        pl_metrics_mean_std(col, n_runs, &r->f1_mean[k], &r->f1_std[k]);
        for (int i = 0; i < n_runs; i++) col[i] = r->accuracy[(size_t)i * K + k];
        pl_metrics_mean_std(col, n_runs, &r->acc_mean[k], &r->acc_std[k]);
        if (r->f1_mean[k] > r->f1_mean[r->best_k - 1]) r->best_k = k + 1;
        int64_t tp[C], fp[C], fn[C];
        const int64_t *conf = r->confusion + (size_t)k * C * (C + 1);
        for (int c = 0; c < C; c++) tp[c] = fp[c] = fn[c] = 0;
        for (int a = 0; a < C; a++)
            for (int b = 0; b <= C; b++) {
                int64_t v = conf[(size_t)a * (C + 1) + b];
                if (a == b) tp[a] += v;
                else { fn[a] += v; if (b < C) fp[b] += v; }
            }
        PlClassCounts cc = {C, tp, fp, fn};
        pl_metrics_macro_f1(&cc, r->per_class_f1 + (size_t)k * C, r->class_present + (size_t)k * C);
    }
    free(col);
    return PL_OK;
}

PlStatus pl_knn_evaluate(const PlFeatureSet *fs, const PlKnnOptions *o, PlKnnResult *r) {
    memset(r, 0, sizeof *r);
    if (o->k_max < 1 || o->k_max > 1024) return PL_FAIL(PL_ERR_ARG, "k must be in 1..1024 (got %d)", o->k_max);
    if (!(o->temperature > 0)) return PL_FAIL(PL_ERR_ARG, "temperature must be > 0");
    if (o->protocol == PL_KNN_KFOLD && (o->folds < 2 || o->seeds < 1))
        return PL_FAIL(PL_ERR_ARG, "k-fold needs >= 2 folds and >= 1 seed (got %d, %d)", o->folds, o->seeds);
    size_t n = (size_t)fs->n + 1;
    int32_t *cls = pl_malloc(n * sizeof(int32_t));
    int32_t *gid = o->exclude != PL_KNN_EXCLUDE_NONE ? pl_malloc(n * sizeof(int32_t)) : NULL;
    int64_t *rows = pl_malloc(2 * n * sizeof(int64_t));
    int64_t *fold = pl_calloc(n, sizeof(int64_t));
    PlStatus st = cls && rows && fold && (o->exclude == PL_KNN_EXCLUDE_NONE || gid) ? PL_OK : PL_ERR_NOMEM;
    if (st == PL_OK) st = knn_encode_labels(fs, o, r, cls);
    if (st == PL_OK && gid) st = knn_group_ids(fs, o->exclude, gid);
    if (st == PL_OK && r->n_classes < 1) st = PL_FAIL(PL_ERR_EMPTY, "no usable labels in the feature set");
    int64_t n_groups = 0;
    if (st == PL_OK && o->protocol == PL_KNN_KFOLD) st = knn_check_folds(fs, o, cls, &n_groups);
    int K = 0;
    if (st == PL_OK) st = knn_choose_k(fs, o, cls, &K);
    r->K = K;
    r->n_runs = o->protocol == PL_KNN_KFOLD ? o->folds * o->seeds : 1;
    if (st == PL_OK) st = knn_result_alloc(r, r->n_runs, K, r->n_classes);
    int run_index = 0;
    for (int seed_i = 0; seed_i < (o->protocol == PL_KNN_KFOLD ? o->seeds : 1) && st == PL_OK; seed_i++) {
        if (o->protocol == PL_KNN_KFOLD) st = knn_assign_folds(fs, o, seed_i, fold);
        for (int f = 0; f < (o->protocol == PL_KNN_KFOLD ? o->folds : 1) && st == PL_OK; f++, run_index++) {
            KnnRun run = {rows, 0, rows + n, 0};
            knn_select_rows(fs, o, cls, fold, f, &run);
            if (run.nq == 0 && o->protocol == PL_KNN_KFOLD) {   // the groups of other rows filled this fold
                st = PL_FAIL(PL_ERR_EMPTY, "--protocol kfold --folds %d: fold %d of seed %d holds no labelled row%s%s%s: "
                             "the %lld groups of labelled rows are dealt at random together with the groups of the other "
                             "rows; give fewer --folds", o->folds, f + 1, seed_i + 1, o->set_split ? " of split '" : "",
                             o->set_split ? o->set_split : "", o->set_split ? "'" : "", (long long)n_groups);
                break;
            }
            if (run.nq == 0) {
                st = PL_FAIL(PL_ERR_EMPTY, "no labelled query items (split '%s')",
                             o->protocol == PL_KNN_TRAIN_TEST ? o->test_split : (o->set_split ? o->set_split : "any"));
                break;
            }
            if (run_index == 0) { r->n_queries = run.nq; r->n_refs = run.nr; }
            else if (o->protocol == PL_KNN_KFOLD && seed_i == 0) { r->n_queries += run.nq; }
            PlTopK t;
            double t0 = pl_clock_now();
            st = pl_topk_init(&t, run.nq, K);
            if (st != PL_OK) break;
            st = knn_run_search(fs, o, &run, gid, o->protocol == PL_KNN_LOO, &t);
            double t1 = pl_clock_now();
            r->seconds_search += t1 - t0;
            if (st == PL_OK) st = knn_score_run(o, &run, cls, &t, run_index, r);
            r->seconds_score += pl_clock_now() - t1;
            pl_topk_free(&t);
        }
    }
    if (st == PL_OK) st = knn_summarise(r);
    free(cls);
    free(gid);
    free(rows);
    free(fold);
    if (st != PL_OK) pl_knn_result_free(r);
    return st;
}
