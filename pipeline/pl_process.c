// The program's thread pool and the kernel libraries' thread count (see pl_process.h).
#include "pl_process.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pl_kernels.h"
#include "pl_mpi.h"

static PlThreadPool *process_pool;
static int process_started;

// Ranks on this node (1 without MPI).
static int process_local_ranks(void) {
    int local_size = 1;
    if (pl_mpi_active()) {
        MPI_Comm local;
        if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
            if (MPI_Comm_size(local, &local_size) != MPI_SUCCESS || local_size < 1) local_size = 1;
            MPI_Comm_free(&local);
        }
    }
    return local_size;
}

int64_t pl_process_memory_share(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    int64_t total = pages > 0 && page > 0 ? (int64_t)pages * page : (int64_t)4 << 30;
    return total / process_local_ranks();
}

int pl_process_default_threads(void) {
    int local_size = process_local_ranks();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int per_rank = (int)(online > 0 ? online : 1) / local_size;   // the node's cores shared by its ranks ...
    int mine = pl_threadpool_cores_available();                  // ... within what this rank may run on
    if (mine < per_rank) per_rank = mine;
    return per_rank > 0 ? per_rank : 1;
}

PlStatus pl_process_start_pool(int threads, PlThreadPool **pool) {
    *pool = NULL;
    if (process_started) return PL_FAIL(PL_ERR_INTERNAL, "the process's compute resources were already started");
    PL_TRY(pl_threadpool_create(threads > 0 ? threads : pl_process_default_threads(), &process_pool));
    pl_kernels_single_thread();   // every kernel library computes on its caller's thread only
    process_started = 1;
    *pool = process_pool;
    return PL_OK;
}

PlThreadPool *pl_process_pool(void) { return process_pool; }

void pl_process_stop(void) {
    pl_threadpool_destroy(process_pool);
    process_pool = NULL;
}

static volatile sig_atomic_t process_stop_signal;

static void process_on_signal(int sig) {
    if (!process_stop_signal) process_stop_signal = sig;
    // A second Ctrl-C ends the process at once. SIGTERM and SIGHUP may arrive twice without anyone asking twice
    // (Slurm signals both srun, which forwards, and the tasks): those repeat harmlessly; SIGKILL still ends it.
    if (sig == SIGINT) signal(sig, SIG_DFL);
}

void pl_process_catch_signals(void) {
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = process_on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(sigs[i], &sa, NULL);
    }
}

const volatile sig_atomic_t *pl_process_stop_signal(void) { return &process_stop_signal; }

double pl_process_peak_rss_bytes(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss * 1024.0 : 0.0;
}

double pl_process_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb >= 0 ? (double)kb * 1024.0 : pl_process_peak_rss_bytes();
}
