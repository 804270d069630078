// Dynamic self-scheduling for `protloc run`: a [next, done] counter on rank 0 advanced with MPI fetch-and-add.
//
// Tasks are handed out one at a time, largest first (the caller orders them by cost), so a rank that drew a
// slow item simply takes fewer: the slowest rank finishes at most about one item after the others. The window
// is allocated with MPI_Win_allocate so Open MPI can use its shared-memory one-sided component on one node
// (no progress needed from rank 0 while it computes).
#include <string.h>

#include "pl_mpi.h"
#include "pl_run_priv.h"

PlStatus run_scheduler_create(RunScheduler *s, int64_t total, MPI_Comm comm) {
    memset(s, 0, sizeof *s);
    s->total = total;
    int rank = 0;
    PL_MPI_TRY(MPI_Comm_rank(comm, &rank));
    MPI_Aint bytes = rank == 0 ? (MPI_Aint)(2 * sizeof(int64_t)) : 0;
    PL_MPI_TRY(MPI_Win_allocate(bytes, sizeof(int64_t), MPI_INFO_NULL, comm, &s->base, &s->win));
    PL_MPI_TRY(MPI_Win_set_errhandler(s->win, MPI_ERRORS_RETURN));
    if (rank == 0) {
        PL_MPI_TRY(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, s->win));
        s->base[0] = 0;
        s->base[1] = 0;
        PL_MPI_TRY(MPI_Win_unlock(0, s->win));
    }
    PL_MPI_TRY(MPI_Barrier(comm));
    PL_MPI_TRY(MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win));
    s->active = 1;
    return PL_OK;
}

PlStatus run_scheduler_next(RunScheduler *s, int64_t *task) {
    int64_t one = 1, got = 0;
    PL_MPI_TRY(MPI_Fetch_and_op(&one, &got, MPI_INT64_T, 0, 0, MPI_SUM, s->win));
    PL_MPI_TRY(MPI_Win_flush(0, s->win));
    *task = got < s->total ? got : -1;
    return PL_OK;
}

PlStatus run_scheduler_stop(RunScheduler *s) {
    int64_t past = s->total + 1, got = 0;   // push the counter past the end: every later next() gets -1
    PL_MPI_TRY(MPI_Fetch_and_op(&past, &got, MPI_INT64_T, 0, 0, MPI_SUM, s->win));
    PL_MPI_TRY(MPI_Win_flush(0, s->win));
    return PL_OK;
}

PlStatus run_scheduler_done(RunScheduler *s, int64_t n) {
    int64_t got = 0;
    PL_MPI_TRY(MPI_Fetch_and_op(&n, &got, MPI_INT64_T, 0, 1, MPI_SUM, s->win));
    PL_MPI_TRY(MPI_Win_flush(0, s->win));
    return PL_OK;
}

PlStatus run_scheduler_progress(RunScheduler *s, int64_t *handed, int64_t *done) {
    int64_t zero = 0;
    PL_MPI_TRY(MPI_Fetch_and_op(&zero, handed, MPI_INT64_T, 0, 0, MPI_NO_OP, s->win));
    PL_MPI_TRY(MPI_Fetch_and_op(&zero, done, MPI_INT64_T, 0, 1, MPI_NO_OP, s->win));
    PL_MPI_TRY(MPI_Win_flush(0, s->win));
    if (*handed > s->total) *handed = s->total;
    return PL_OK;
}

PlStatus run_scheduler_free(RunScheduler *s) {
    if (s->active) {
        PL_MPI_TRY(MPI_Win_unlock_all(s->win));
        s->active = 0;
    }
    PL_MPI_TRY(MPI_Win_free(&s->win));
    return PL_OK;
}
