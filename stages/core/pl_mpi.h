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

// Every rank agrees on the outcome of work that may fail on one rank, before the next collective. Collective over
// MPI_COMM_WORLD: each rank passes its own status `st`; all return PL_OK when every rank succeeded. Otherwise every
// rank returns a failure: a failing rank keeps its own status and message; the others get the status and message of
// the lowest failing rank ("<what> failed on rank R: <its message>"), so every rank can end with the cause. Without
// MPI or with one rank it returns `st`. Returns PL_ERR_MPI when the agreement itself fails (then main aborts).
// Call it at a point every rank reaches by the same path (no rank may be inside another collective).
PlStatus pl_mpi_agree(PlStatus st, const char *what);
// The same over `comm` (MPI_COMM_NULL: returns st).
PlStatus pl_mpi_agree_comm(MPI_Comm comm, PlStatus st, const char *what);
// 1 once pl_mpi_agree has returned a failure on this rank: every rank knows, so main may end normally instead of
// aborting the job (main aborts a multi-rank job whose failure was not agreed: another rank may be waiting).
int pl_mpi_failure_agreed(void);
// This rank left a collective half done (e.g. a failed close of a parallel HDF5 file: the other ranks may still be
// inside it), so no later collective can be trusted: pl_mpi_agree then fails at once without communicating, and main
// aborts the job instead of waiting. The first reason is kept for the message.
void pl_mpi_mark_desynced(const char *why);
int pl_mpi_desynced(void);

#endif
