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
// buffers, the summed gradient and per-thread input buffers, all allocated at create.
#ifndef PL_TRAIN_STEP_H
#define PL_TRAIN_STEP_H

#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"
#include "pl_vit_train.h"

// Fill one micro-batch: the samples at positions [first, first + n) of this step's global batch. x (n, C, H, W);
// y (n) class ids or targets (n, classes) by the loss kind; keys (n) one 64-bit key per sample (drop path).
// Called concurrently from several threads (distinct buffers; `thread` < the pool size names the caller's thread).
typedef PlStatus (*PlTrainFetch)(void *ctx, int thread, int64_t step, int first, int n, float *x, int32_t *y,
                                 float *targets, uint64_t *keys);

typedef struct PlTrainStepOptions {
    int global_batch;          // images per optimizer step, across all ranks
    int allreduce;             // 1: MPI_Allreduce instead of the fixed-order tree
    int use_mpi;               // 1: ranks of MPI_COMM_WORLD share the batch (MPI must be started)
} PlTrainStepOptions;

typedef struct PlTrainStep PlTrainStep;

PlStatus pl_train_step_create(PlVitTrain *t, PlThreadPool *pool, const PlTrainStepOptions *o, PlTrainStep **out);
void pl_train_step_destroy(PlTrainStep *s);
// Forward + backward of global batch `step`; on return *grad is the summed gradient (the mean-loss gradient) on every
// rank and *loss the mean loss of the global batch (identical on every rank).
PlStatus pl_train_step_run(PlTrainStep *s, int64_t step, PlTrainFetch fetch, void *ctx, float **grad, double *loss);
// Bytes this object holds (gradient buffers and inputs), for the memory report.
double pl_train_step_bytes(const PlTrainStep *s);
int pl_train_step_micro_batches(const PlTrainStep *s);   // per global batch
int pl_train_step_rank_range(const PlTrainStep *s, int *first, int *end);   // this rank's micro-batches

#endif
