// MPI start/stop and error translation (see pl_mpi.h).
#include "pl_mpi.h"

#include <stdio.h>
#include "pl_log.h"

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
