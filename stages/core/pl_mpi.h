// Checked MPI calls: errors are returned (MPI_ERRORS_RETURN) and translated into PlStatus messages.
#ifndef PL_MPI_H
#define PL_MPI_H

#include <mpi.h>
#include "pl_error.h"

// Evaluate an MPI call; on failure record "MPI_Xxx(...) failed: <MPI error string>" and yield PL_ERR_MPI.
#define PL_MPI_CHECK(call) pl_mpi_check((call), #call, __FILE__, __LINE__)
// Same, and return from the current function on failure.
#define PL_MPI_TRY(call) PL_TRY(PL_MPI_CHECK(call))

PlStatus pl_mpi_check(int rc, const char *what, const char *file, int line);
// MPI_Init_thread (FUNNELED) + MPI_ERRORS_RETURN on MPI_COMM_WORLD + log rank prefix.
PlStatus pl_mpi_start(int *argc, char ***argv, int *rank, int *size);
// MPI_Finalize when initialised and not yet finalised.
void pl_mpi_stop(void);
// Abort the whole job with `code` (only main may call this).
void pl_mpi_abort(int code);
int pl_mpi_active(void);   // MPI initialised and not finalised

#endif
