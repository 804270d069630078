// The DINO4Cells classifier head (Linear-ReLU-Dropout x2, Linear) trained with AdamW on standardised features, built
// on the training modules (pl_train_head.h, pl_softmax_xent, pl_optim.h and its cosine schedule).
// Ownership: the caller owns all arrays; the function allocates and frees one float slab, one index block and the
// optimizer's moments internally, nothing per step.
#ifndef PL_PROBE_MLP_H
#define PL_PROBE_MLP_H

#include <stdint.h>
#include "pl_error.h"
#include "pl_probe.h"

// Train on (xtr, ytr), early-stop on validation macro F1 (xva, yva; n_va > 0), then predict the n_te rows of
// xte into pred. Deterministic for `seed`. best_epoch receives the epoch whose weights were kept (1-based).
PlStatus pl_probe_mlp_run(const PlProbeOptions *o, int C, int d, const float *xtr, const int32_t *ytr, int64_t n_tr,
                          const float *xva, const int32_t *yva, int64_t n_va, const float *xte, int64_t n_te,
                          uint64_t seed, int32_t *pred, int *best_epoch);

#endif
