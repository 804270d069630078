// One data-parallel training step: the global batch is cut into a fixed sequence of micro-batches (independent of
// ranks and threads), each rank computes a contiguous range of them (one micro-batch per thread at a time), and the
// micro-batch gradients are summed over a fixed binary tree on the micro-batch index, so the summed gradient - and
// so the weights after the optimizer step - are bit-identical for any rank and thread count.
//
// The tree: node (s, k) covers micro-batches [s, s + k) (k a power of two, s a multiple of k); its value is
// left + right, or left alone when the right half lies beyond the last micro-batch. Each rank forms every node inside
// its range (a binary counter over its leaves), then rank 0 combines the ranks' nodes along the same tree, parameter
// chunk by chunk (MPI_Gatherv), and broadcasts the sum. `allreduce` mode instead sums locally and calls
// MPI_Allreduce (faster, not bit-identical across rank counts).
//
// Ownership: a PlTrainStep borrows the trainer and the pool, and owns one leaf gradient per thread, the tree's node
// buffers and the summed gradient, all allocated at create. The inputs belong to the caller (PlTrainBatch).
#ifndef PL_TRAIN_STEP_H
#define PL_TRAIN_STEP_H

#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"
#include "pl_vit_train.h"

// This rank's share of one global batch: the samples of its micro-batches, in order (global batch positions
// [first, first + count) of pl_train_step_rank_samples).
typedef struct PlTrainBatch {
    const float *x;            // (count, C, H, W)
    const int32_t *y;          // (count) class ids (cross-entropy), or NULL
    const float *targets;      // (count, classes) targets (BCE), or NULL
    const uint64_t *keys;      // (count) one 64-bit key per sample (drop path, head dropout)
} PlTrainBatch;

typedef struct PlTrainStepOptions {
    int global_batch;          // images per optimizer step, across all ranks
    int allreduce;             // 1: MPI_Allreduce instead of the fixed-order tree
    int use_mpi;               // 1: ranks of MPI_COMM_WORLD share the batch (MPI must be started)
} PlTrainStepOptions;

typedef struct PlTrainStep PlTrainStep;

PlStatus pl_train_step_create(PlVitTrain *t, PlThreadPool *pool, const PlTrainStepOptions *o, PlTrainStep **out);
void pl_train_step_destroy(PlTrainStep *s);
// Forward + backward of one global batch (this rank's samples in `batch`); on return *grad is the summed gradient (the mean-loss gradient) on every
// rank and *loss the mean loss of the global batch (identical on every rank).
PlStatus pl_train_step_run(PlTrainStep *s, const PlTrainBatch *batch, float **grad, double *loss);
// The global batch positions this rank computes: [*first, *first + *count).
void pl_train_step_rank_samples(const PlTrainStep *s, int *first, int *count);
// Bytes this object holds in memory (gradient buffers), for the memory report: one leaf gradient per thread, the
// tree's node buffers (the deepest stack of this rank's binary counter), and with several ranks the summed gradient
// and the pages of the gather buffers the tree combine writes (one parameter chunk per node; rank 0 receives every
// rank's nodes).
double pl_train_step_bytes(const PlTrainStep *s);
// The same for the step pl_train_step_create(t, pool of `threads`, o) would build on rank `rank` of `ranks`
// (ignored without o->use_mpi), without allocating; *samples (may be NULL) receives this rank's samples per global
// batch (the count of pl_train_step_rank_samples).
double pl_train_step_bytes_for(const PlVitTrain *t, int threads, const PlTrainStepOptions *o, int rank, int ranks,
                               int *samples);
int pl_train_step_micro_batches(const PlTrainStep *s);   // per global batch
int pl_train_step_rank_range(const PlTrainStep *s, int *first, int *end);   // this rank's micro-batches

#endif
