// Evaluation plots drawn with cairo, each written as BASE.png and BASE.svg (atomically, via temp + rename).
#ifndef PL_PLOT_H
#define PL_PLOT_H

#include <stdint.h>
#include "pl_error.h"

// Macro F1 (mean, with a ±std band when std != NULL) against k = 1..K; the best k is marked.
PlStatus pl_plot_f1_vs_k(const char *base, const double *mean, const double *std, int K, int best_k, const char *title);
// Row-normalised confusion heatmap; conf is (C, C+1) counts (last column = no vote, drawn when non-zero).
PlStatus pl_plot_confusion(const char *base, const int64_t *conf, int C, char *const *classes, const char *title);
// Horizontal bars of per-class F1.
PlStatus pl_plot_class_f1(const char *base, const double *f1, int C, char *const *classes, const char *title);
// Macro F1 mean ± std (error bars) against training fraction (log x axis), one line per series.
// mean/std are (n_series, F).
PlStatus pl_plot_f1_vs_fraction(const char *base, const double *fractions, int F, int n_series,
                                const char *const *names, const double *mean, const double *std, const char *title);

// A curve y[0..n) against x = 1..n (e.g. loss or validation macro F1 per epoch); mark (1-based, 0 = none) is
// highlighted. y may hold NaN for missing points (skipped).
PlStatus pl_plot_curve(const char *base, const double *y, int n, int mark, const char *xlabel, const char *ylabel,
                       const char *title);

#endif
