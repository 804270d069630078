// Accuracy, per-class and macro F1, confusion matrices (sklearn conventions, see pl_metrics.h).
#include "pl_metrics.h"

#include <math.h>
#include <string.h>

void pl_metrics_count(const int32_t *y_true, const int32_t *y_pred, int64_t n, int64_t stride, PlClassCounts *c) {
    memset(c->tp, 0, (size_t)c->n_classes * sizeof(int64_t));
    memset(c->fp, 0, (size_t)c->n_classes * sizeof(int64_t));
    memset(c->fn, 0, (size_t)c->n_classes * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        int32_t t = y_true[i], p = y_pred[i * stride];
        if (t == p) {
            c->tp[t]++;
        } else {
            c->fn[t]++;
            if (p >= 0) c->fp[p]++;
        }
    }
}

double pl_metrics_macro_f1(const PlClassCounts *c, double *per_class, int *present) {
    double sum = 0;
    int m = 0;
    for (int k = 0; k < c->n_classes; k++) {
        int64_t den = 2 * c->tp[k] + c->fp[k] + c->fn[k];
        double f = den > 0 ? 2.0 * (double)c->tp[k] / (double)den : 0.0;
        if (per_class) per_class[k] = f;
        if (present) present[k] = den > 0;
        if (den > 0) {
            sum += f;
            m++;
        }
    }
    return m > 0 ? sum / m : 0.0;
}

double pl_metrics_accuracy(const PlClassCounts *c, int64_t n) {
    int64_t tp = 0;
    for (int k = 0; k < c->n_classes; k++) tp += c->tp[k];
    return n > 0 ? (double)tp / (double)n : 0.0;
}

void pl_metrics_confusion(const int32_t *y_true, const int32_t *y_pred, int64_t n, int64_t stride, int n_classes,
                          int64_t *conf) {
    memset(conf, 0, (size_t)n_classes * (n_classes + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        int32_t p = y_pred[i * stride];
        conf[(size_t)y_true[i] * (n_classes + 1) + (p >= 0 ? p : n_classes)]++;
    }
}

void pl_metrics_mean_std(const double *x, int n, double *mean, double *std) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    double m = n > 0 ? s / n : 0.0;
    double v = 0;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = n > 1 ? sqrt(v / (n - 1)) : 0.0;
}
