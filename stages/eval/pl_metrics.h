// Classification metrics with scikit-learn's conventions: accuracy, per-class F1 and macro F1.
//
// Macro F1 averages the F1 of every class that occurs in y_true or y_pred (sklearn's default label set);
// a class with tp + fp + fn = 0 never enters, a class with tp = 0 scores 0. Predictions of -1 ("no vote")
// are wrong answers that belong to no class. Ownership: the caller owns all arrays.
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include <stdint.h>

typedef struct PlClassCounts {
    int n_classes;
    int64_t *tp, *fp, *fn;     // (C) each; caller-provided storage
} PlClassCounts;

// Count tp/fp/fn over n items (y_true in [0, C), y_pred in [-1, C)); `stride` steps through y_pred
// (1 for a plain array, K for one column of a (Q, K) prediction table).
void pl_metrics_count(const int32_t *y_true, const int32_t *y_pred, int64_t n, int64_t stride, PlClassCounts *c);
// Macro F1 over classes present in y_true or y_pred; per_class (C) receives each class's F1 (may be NULL),
// present (C) receives 1 for classes that enter the average (may be NULL).
double pl_metrics_macro_f1(const PlClassCounts *c, double *per_class, int *present);
double pl_metrics_accuracy(const PlClassCounts *c, int64_t n);
// Confusion matrix (C, C+1): row = true class, column = predicted class, last column = no vote.
void pl_metrics_confusion(const int32_t *y_true, const int32_t *y_pred, int64_t n, int64_t stride, int n_classes,
                          int64_t *conf);
// Mean and sample standard deviation (ddof = 1; 0 when n < 2).
void pl_metrics_mean_std(const double *x, int n, double *mean, double *std);

#endif
