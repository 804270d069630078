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
// The driver does not know what it trains: an objective (pl_train_objective.h) computes each micro-batch; its
// per-step statistics ride in the same buffers after the gradient and are summed by the same tree.
//
// Ownership: a PlTrainStep borrows the objective and the pool, and owns one leaf buffer per thread, the tree's node
// buffers, the summed gradient and every per-step array, all allocated at create (a step allocates nothing). The
// batch belongs to the caller (the objective's batch type).
#ifndef PL_TRAIN_STEP_H
#define PL_TRAIN_STEP_H

#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"
#include "pl_train_objective.h"
#include "pl_train_profile.h"

typedef struct PlTrainStepOptions {
    int global_batch;          // images per optimizer step, across all ranks
    int allreduce;             // 1: MPI_Allreduce instead of the fixed-order tree
    int use_mpi;               // 1: ranks of MPI_COMM_WORLD share the batch (MPI must be started)
    PlTrainProfile *profile;   // optional (borrowed): each micro-batch's time goes to its worker's slot, the
                               // gradient sums and MPI reduce to the loop thread's
} PlTrainStepOptions;

typedef struct PlTrainStep PlTrainStep;

PlStatus pl_train_step_create(const PlTrainObjective *obj, PlThreadPool *pool, const PlTrainStepOptions *o,
                              PlTrainStep **out);
void pl_train_step_destroy(PlTrainStep *s);
// Forward + backward of one global batch (`batch`: this rank's samples, in the objective's batch type). On return
// *grad is the summed gradient (of the mean loss) on every rank, *stats (may be NULL) the summed statistics
// (obj->stat_floats floats, NULL when 0) and *loss the mean loss of the global batch, identical on every rank.
PlStatus pl_train_step_run(PlTrainStep *s, const void *batch, float **grad, const float **stats, double *loss);
// The global batch positions this rank computes: [*first, *first + *count).
void pl_train_step_rank_samples(const PlTrainStep *s, int *first, int *count);
// Bytes the step pl_train_step_create(obj, pool of `threads`, o) would hold on rank `rank` of `ranks` (ignored
// without o->use_mpi), without allocating, for the memory report: one leaf buffer per thread, the tree's node buffers
// (the deepest stack of this rank's binary counter), and with several ranks the summed gradient and the pages of the
// gather buffers the tree combine writes (one chunk per node; rank 0 receives every rank's nodes). *samples (may be
// NULL) receives this rank's samples per global batch (the count of pl_train_step_rank_samples).
double pl_train_step_bytes_for(const PlTrainObjective *obj, int threads, const PlTrainStepOptions *o, int rank,
                               int ranks, int *samples);

#endif
