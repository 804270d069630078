// Classifier heads on frozen embeddings: multinomial logistic regression (L-BFGS, L2) and the DINO4Cells MLP,
// trained on stratified, seeded fractions of the training split, scored by macro F1 on the test split.
//
// The heads' GEMMs go through the kernel interface (pl_kernels.h), cut into fixed row blocks over the process's pool
// (pl_kernels_gemm_pooled), so results are bit-identical for any thread count with a given backend.
// Ownership: PlProbeResult owns its arrays (pl_probe_result_free); the options borrow the kernels and the pool.
#ifndef PL_PROBE_H
#define PL_PROBE_H

#include <stdint.h>
#include "pl_error.h"
#include "pl_features.h"
#include "pl_kernels.h"
#include "pl_threadpool.h"

typedef enum PlProbeHead { PL_PROBE_LOGREG = 0, PL_PROBE_MLP = 1 } PlProbeHead;

typedef struct PlProbeOptions {
    int use_logreg, use_mlp;
    const double *fractions;     // e.g. {0.01, 0.1, 0.25, 0.5, 1}
    int n_fractions;
    int seeds;                   // repetitions per fraction (subset + initialisation seeds)
    uint64_t seed;
    const char *train_split, *val_split, *test_split;   // "train", "val", "test"
    double val_fraction;         // MLP: when no row has val_split, this share of train (stratified) validates
    PlMultilabel multilabel;     // SKIP: drop multi-label rows; FIRST: use their first label
    // logistic regression: minimise sum_i CE_i + 0.5/C ||W||^2 (bias unpenalised) on standardised features
    double C;                    // 1.0 (sklearn's default)
    int max_iter;                // 1000
    double tol;                  // 1e-6 (gradient inf-norm relative)
    // MLP (DINO4Cells head: pl_train_head.h's PL_HEAD_MLP, AdamW and cosine schedules from pl_optim.h)
    int hidden1, hidden2;        // PL_HEAD_MLP_H1, PL_HEAD_MLP_H2 (pl_train_head.h; the only sizes the head takes)
    double dropout;              // 0.5
    int epochs;                  // 100
    int batch;                   // 128
    double lr, lr_min;           // 1e-4 -> 1e-6 cosine (pl_cosine_schedule_at over all steps, no warm-up)
    double wd_start, wd_end;     // 0.04 -> 0.4 cosine (weight matrices only: DINO's parameter groups)
    int patience;                // early stopping: epochs without validation macro-F1 gain (10)
    // compute: the GEMM backend (default pl_kernels_default(); FP32) and the process's pool (borrowed; NULL = the calling
    // thread only)
    const PlKernels *kernels;
    PlThreadPool *pool;
} PlProbeOptions;

void pl_probe_options_default(PlProbeOptions *o);

typedef struct PlProbeResult {
    int n_classes;
    char **classes;
    int n_heads;
    PlProbeHead heads[2];
    int n_fractions;
    double *fractions;           // (F)
    int seeds;
    double *macro_f1, *accuracy; // (H, F, S)
    int64_t *n_train;            // (H, F, S) training rows used
    int *epochs_run;             // (H, F, S) MLP epochs (best epoch); L-BFGS iterations for logreg
    double *f1_mean, *f1_std, *acc_mean, *acc_std;   // (H, F)
    double *per_class_f1;        // (H, C) at the last fraction, seed 0
    int64_t *confusion;          // (H, C, C+1) at the last fraction, seed 0
    int64_t *support;            // (C) test rows per class
    int64_t n_train_total, n_val, n_test, n_skipped;
} PlProbeResult;

PlStatus pl_probe_evaluate(const PlFeatureSet *fs, const PlProbeOptions *o, PlProbeResult *r);
void pl_probe_result_free(PlProbeResult *r);
const char *pl_probe_head_name(PlProbeHead h);   // "logreg", "mlp"

// ---- building blocks (exposed for tests)
// Fit multinomial logistic regression on x (n, d) standardised, y in [0, C): W (d, C) and b (C) out. GEMMs on
// kernels k over pool (NULL: the calling thread).
PlStatus pl_probe_logreg_fit(const PlKernels *k, PlThreadPool *pool, const float *x, const int32_t *y, int64_t n, int d,
                             int C, double Creg, int max_iter, double tol, float *W, float *b, int *iters);
// Stratified seeded subset of `pool` (n rows with classes cls in [0, C), -1 = none): per class max(1, round(f * n_c))
// rows, returned in ascending row order in out (tmp: n scratch); returns the count. `protloc finetune --fraction`
// draws its training subsets with this function and pl_probe_subset_seed, so frozen and fine-tuned runs are paired.
int64_t pl_probe_subset(const int64_t *pool, int64_t n, const int32_t *cls, int C, double f, uint64_t seed, int64_t *out,
                        int64_t *tmp);
// The subset seed of repetition s (0-based) of the f-th fraction of the list, for base seed `seed`.
uint64_t pl_probe_subset_seed(uint64_t seed, int s, int f);
// Predict argmax(x W + b) for n rows (GEMMs as for pl_probe_logreg_fit).
void pl_probe_linear_predict(const PlKernels *k, PlThreadPool *pool, const float *x, int64_t n, int d, int C,
                             const float *W, const float *b, int32_t *pred);

#endif
