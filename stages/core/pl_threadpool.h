// A small persistent pthread pool that runs "task i of n" callbacks; the calling thread takes part.
//
// One pool per process: the program (pipeline/pl_process.h) creates it and every library object that computes in
// parallel (the ViT, the kNN search) borrows it; a library object never creates threads of its own.
// Ownership: the pool owns its worker threads; pl_threadpool_destroy joins them. One run at a time
// (pl_threadpool_run is not re-entrant). Workers spin briefly after a run, then sleep on a condition
// variable, so an idle pool costs no CPU. Tasks are handed out dynamically (atomic counter).
#ifndef PL_THREADPOOL_H
#define PL_THREADPOOL_H

#include "pl_error.h"

// fn(ctx, task, thread): task in [0, ntasks), thread in [0, pl_threadpool_size).
typedef void (*PlPoolFn)(void *ctx, int task, int thread);

typedef struct PlThreadPool PlThreadPool;

// threads >= 1 (1 = no worker threads: everything runs on the caller).
PlStatus pl_threadpool_create(int threads, PlThreadPool **out);
int pl_threadpool_size(const PlThreadPool *pool);
// Run fn for every task and return when all have finished.
void pl_threadpool_run(PlThreadPool *pool, PlPoolFn fn, void *ctx, int ntasks);

// The one way pool tasks report errors: fn returns PlStatus (its message recorded with PL_FAIL in the worker's
// thread-local buffer). Returns PL_OK when every task succeeded, else the status of the LOWEST failing task index
// with that task's message, re-raised on the calling thread: the same failure whatever the thread count or timing.
// Once a task failed, tasks of higher index may be skipped (they cannot be the lowest failure); every task below the
// lowest failing one has run. Not re-entrant, as pl_threadpool_run.
typedef PlStatus (*PlPoolCheckedFn)(void *ctx, int task, int thread);
PlStatus pl_threadpool_run_checked(PlThreadPool *pool, PlPoolCheckedFn fn, void *ctx, int ntasks);
void pl_threadpool_destroy(PlThreadPool *pool);
// Cores this process may run on (sched_getaffinity), at least 1.
int pl_threadpool_cores_available(void);

#endif
