// Monitoring a DINO pretraining run (pl_pretrain.h): the teacher backbone's kNN macro F1 on labelled images (DINO's
// eval_knn protocol through protloc's kNN, stages/eval/pl_knn_eval.h: train split as the reference bank, test split as
// queries, cosine similarity, weighted vote at temperature 0.07, every k up to 200; leave-one-out over the labelled
// images when there is no test split), and the collapse check on the teacher's target entropy.
//
// Features: each image (C, H, W) resized to the global view size by the augmentation's bicubic resize (the whole
// image, each channel), standardised per channel as the training views are, then the teacher backbone's CLS feature.
// One task per image over the pool (thread t uses the teacher's worker t), so the features are the same for any
// thread count. Ownership: everything is borrowed; scratch is allocated per call and freed.
#ifndef PL_PRETRAIN_MONITOR_H
#define PL_PRETRAIN_MONITOR_H

#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"
#include "pl_trainer.h"
#include "pl_vit_train.h"

// Labelled images for the kNN monitor: rows of the images, their classes and splits.
typedef struct PlPretrainLabels {
    const int32_t *cls;          // (rows of the images) class index, < 0 unlabelled
    int n_classes;
    char *const *class_names;    // (n_classes)
    const int64_t *train, *test; // row lists (test may be empty: leave-one-out over train)
    int64_t n_train, n_test;
} PlPretrainLabels;

// The images the monitor embeds: (C, H, W) each, in memory or read through samples (lane = the pool thread).
typedef struct PlPretrainImageSet {
    int C, H, W;
    const float *x;
    const PlSampleSource *samples;
} PlPretrainImageSet;

// kNN macro F1 of the teacher backbone's features (best over k, and at k = 20 as DINO reports); *best_k the k.
PlStatus pl_pretrain_knn(PlVitTrain *teacher, const PlPretrainImageSet *im, int size, const PlPretrainLabels *lab,
                         PlThreadPool *pool, double *best_f1, int *best_k, double *f1_k20);

// The collapse check of one epoch's mean target entropy H (nats) for out_dim K: 1 near uniform (H > 0.97 log K), 2 near
// one prototype (H < 0.03 log K), else 0.
int pl_pretrain_collapse(double entropy, int K);

#endif
