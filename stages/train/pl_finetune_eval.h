// Scoring a trainer's current weights on a labelled set (validation each epoch, test at the end): predictions on
// the unaugmented images, then macro F1 and accuracy with scikit-learn's conventions (pl_metrics.h).
// Single-label sets: argmax of the logits. Multi-label sets (targets): a class is predicted when its logit > 0
// (sigmoid > 0.5, as DINO4Cells); macro F1 over the classes with tp + fp + fn > 0, accuracy = exact matches.
// Ownership: callers own every output array; the function allocates scratch and frees it.
#ifndef PL_FINETUNE_EVAL_H
#define PL_FINETUNE_EVAL_H

#include <stdint.h>

#include "pl_error.h"
#include "pl_finetune.h"
#include "pl_threadpool.h"
#include "pl_vit_train.h"

// per_class_f1 (classes) and confusion (classes, classes + 1; single-label only) may be NULL.
PlStatus pl_finetune_evaluate(PlVitTrain *t, PlThreadPool *pool, const PlFinetuneData *d, double *macro_f1,
                              double *accuracy, double *per_class_f1, int64_t *confusion);

#endif
