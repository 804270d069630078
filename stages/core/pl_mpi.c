// MPI start/stop and error translation (see pl_mpi.h).
#include "pl_mpi.h"

#include <stdio.h>
#include <string.h>
#include "pl_log.h"

static int mpi_failure_agreed;
static int mpi_desynced;
static char mpi_desync_why[256];

void pl_mpi_mark_desynced(const char *why) {
    if (!mpi_desynced) snprintf(mpi_desync_why, sizeof mpi_desync_why, "%s", why ? why : "a collective failed");
    mpi_desynced = 1;
}

int pl_mpi_desynced(void) { return mpi_desynced; }

PlStatus pl_mpi_check(int rc, const char *what, const char *file, int line) {
    if (rc == MPI_SUCCESS) return PL_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error code %d", rc);
    return pl_error_set(PL_ERR_MPI, file, line, "%s failed: %s", what, text);
}

int pl_mpi_active(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

PlStatus pl_mpi_start(int *argc, char ***argv, int *rank, int *size) {
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return PL_FAIL(PL_ERR_MPI, "MPI_Init_thread failed (code %d)", rc);
    PL_MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    PL_MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, rank));
    PL_MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, size));
    pl_log_set_rank(*rank, *size);
    return PL_OK;
}

void pl_mpi_stop(void) {
    if (pl_mpi_active()) MPI_Finalize();
}

void pl_mpi_abort(int code) {
    if (pl_mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
}

int pl_mpi_failure_agreed(void) { return mpi_failure_agreed; }

PlStatus pl_mpi_agree(PlStatus st, const char *what) { return pl_mpi_agree_comm(MPI_COMM_WORLD, st, what); }

PlStatus pl_mpi_agree_comm(MPI_Comm comm, PlStatus st, const char *what) {
    if (!pl_mpi_active() || comm == MPI_COMM_NULL) return st;
    int rank = 0, size = 1;
    PL_MPI_TRY(MPI_Comm_rank(comm, &rank));
    PL_MPI_TRY(MPI_Comm_size(comm, &size));
    if (size == 1) return st;
    if (mpi_desynced)   // the ranks are no longer in step: a collective here could wait forever
        return st != PL_OK ? st : PL_FAIL(PL_ERR_MPI, "%s: the ranks are out of step after %s", what, mpi_desync_why);
    int mine = st != PL_OK ? rank : size, first = size;
    PL_MPI_TRY(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm));
    if (first == size) return PL_OK;
    // the lowest failing rank's status and message travel to every rank (one fixed-size broadcast)
    struct { int code; char text[PL_ERROR_MESSAGE_MAX]; } msg;
    memset(&msg, 0, sizeof msg);
    if (rank == first) {
        msg.code = (int)st;
        snprintf(msg.text, sizeof msg.text, "%s", pl_error_message());
    }
    PL_MPI_TRY(MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, first, comm));
    mpi_failure_agreed = 1;
    if (st != PL_OK) return st;
    PlStatus code = msg.code > 0 ? (PlStatus)msg.code : PL_ERR_INTERNAL;
    return pl_error_set(code, __FILE__, __LINE__, "%s failed on rank %d: %s", what, first, msg.text);
}
