// Process-wide compute resources, owned by the program and never by library objects: the one thread pool and
// the kernel libraries' thread count.
//
// A command that computes calls pl_process_start_pool once, before it creates anything that computes; main() calls
// pl_process_stop() after the command returns. protloc's own threads do all the parallel work (ViT, training, kNN,
// probe heads); every kernel backend (pl_kernels.h) runs one thread inside each task, so nothing fights over the cores.
// Ownership: this module owns the pool; callers borrow it until pl_process_stop.
#ifndef PL_PROCESS_H
#define PL_PROCESS_H

#include <signal.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_threadpool.h"

// Threads per process by default: the node's cores shared evenly among the MPI ranks on this node (when MPI is
// running), and no more than the cores this process may run on (sched_getaffinity); at least 1.
int pl_process_default_threads(void);
// This process's share of the node's physical memory in bytes: the node's memory divided by the MPI ranks on it.
int64_t pl_process_memory_share(void);
// This process's resident memory now (VmRSS; where /proc is not there, the peak so far), and its peak resident
// memory so far (getrusage), in bytes; 0 when unknown.
double pl_process_rss_bytes(void);
double pl_process_peak_rss_bytes(void);
// Create the process's thread pool (threads >= 1; 0 = pl_process_default_threads) and set every kernel
// backend's library to one thread (pl_kernels_single_thread).
PlStatus pl_process_start_pool(int threads, PlThreadPool **pool);
// The pool started by pl_process_start_pool, or NULL.
PlThreadPool *pl_process_pool(void);
// Destroy the pool (idempotent).
void pl_process_stop(void);

// Stop requests: after pl_process_catch_signals, SIGTERM (Slurm's warning before a time limit), SIGINT and SIGHUP
// set a flag instead of killing the process; long-running commands poll it (PlRunOptions.stop_signal) and end
// cleanly with exit status 128 + the signal. A second SIGINT kills as usual; repeated SIGTERM/SIGHUP are ignored
// (Slurm can deliver one through srun and one directly).
void pl_process_catch_signals(void);
// The flag: 0, or the number of the first stop signal received.
const volatile sig_atomic_t *pl_process_stop_signal(void);

#endif
