// `protloc run`: the output lock and the end of a run — whether the new store may replace the previous one, the
// store commit (temporary name, fsync, rename, fsync the folder), the failure report, and stop requests.
//
// Commit rules (docs/guide.md "Exit statuses"): a run replaces the store at --out only when it produced at least one
// row and its failures are acceptable: within --max-failed when given, else none of the failed items had a row in
// the previous store (a regression), unless --accept-failures. Otherwise the previous store stays byte-identical,
// the journal keeps every finished item, and STORE.h5.failures.tsv lists the failures.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_failures.h"
#include "pl_fs.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_process.h"
#include "pl_run_priv.h"

PlStatus run_lock_output(const RunContext *ctx, PlLock *lock) {
    lock->fd = -1;
    lock->path = NULL;
    if (ctx->rank != 0) return PL_OK;
    size_t n = strlen(ctx->opt->out) + 8;
    char *path = pl_malloc(n);
    if (!path) return PL_ERR_NOMEM;
    snprintf(path, n, "%s.lock", ctx->opt->out);
    PlStatus st = pl_lock_acquire(lock, path, "protloc run");
    free(path);
    if (st == PL_OK) {   // temporaries of dead runs: OUT.tmp.<pid>.<n>, OUT.failures.tsv.tmp.<pid>.<n>
        char failures[4096];
        snprintf(failures, sizeof failures, "%s.failures.tsv", ctx->opt->out);
        const char *finals[] = {ctx->opt->out, failures};
        pl_lock_remove_stale_temps(finals, 2);
    }
    return st;
}

PlStatus run_check_stop(const RunContext *ctx, PlRunSummary *sum) {
    int mine = ctx->opt->stop_signal ? (int)*ctx->opt->stop_signal : 0, any = 0;
    PL_MPI_TRY(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    if (!any) return PL_OK;
    sum->stop_signal = any;
    return PL_FAIL(PL_ERR_INTERRUPTED, "stopped by signal %d: the journal %s keeps the finished items; run the same "
                   "command again to resume", any, ctx->journal_dir);
}

// Rank 0: may the new store replace the previous one? Sets the outcome and a reason for the log.
static PlRunOutcome commit_decide(const RunContext *ctx, const RunStorePlan *plan, char *why, size_t size) {
    const PlRunOptions *o = ctx->opt;
    long N = (long)ctx->manifest.count;
    why[0] = '\0';
    if (plan->n_ok == 0) {
        snprintf(why, size, "no item produced a row (%ld failed)", plan->n_fail);
        return PL_RUN_NO_ROWS;
    }
    if (o->accept_failures || plan->n_fail == 0) return PL_RUN_COMMITTED;
    if (o->max_failed >= 0) {
        double limit = o->max_failed >= 1 ? o->max_failed : o->max_failed * (double)N;
        if ((double)plan->n_fail > limit) {
            snprintf(why, size, "%ld of %ld items failed, more than --max-failed allows (%g)", plan->n_fail, N, limit);
            return PL_RUN_KEPT;
        }
        return PL_RUN_COMMITTED;
    }
    if (plan->regressions > 0) {
        snprintf(why, size, "%ld failed item%s had a row in the previous store (regressions; --accept-failures or "
                 "--max-failed replace it anyway)", plan->regressions, plan->regressions > 1 ? "s" : "");
        return PL_RUN_KEPT;
    }
    return PL_RUN_COMMITTED;
}

// Rank 0: STORE.h5.failures.tsv lists the failures of this run, or is removed when there were none.
static PlStatus commit_failure_report(const RunContext *ctx, const RunStorePlan *plan) {
    size_t n = strlen(ctx->opt->out) + 16;
    char *path = pl_malloc(n);
    if (!path) return PL_ERR_NOMEM;
    snprintf(path, n, "%s.failures.tsv", ctx->opt->out);
    PlStatus st = PL_OK;
    int removed = 0;
    if (plan->n_fail > 0) st = run_write_failure_report(ctx, plan, path);
    else st = pl_failures_remove(path, &removed);
    free(path);
    return st;
}

// Collective: the temporary store, then (rank 0) the rename over --out and the journal's removal.
static PlStatus commit_store(const RunContext *ctx, const RunStorePlan *plan, PlRunSummary *sum) {
    char temp[4096] = "";
    PlStatus st = PL_OK;
    if (ctx->rank == 0) {
        char *t = pl_temp_path_for(ctx->opt->out);
        if (t) snprintf(temp, sizeof temp, "%s", t);
        else st = PL_ERR_NOMEM;
        free(t);
    }
    st = pl_mpi_agree(st, "naming the temporary store");
    if (st == PL_OK) st = PL_MPI_CHECK(MPI_Bcast(temp, sizeof temp, MPI_CHAR, 0, MPI_COMM_WORLD));
    if (st == PL_OK) st = pl_mpi_agree(run_write_store(ctx, plan, temp), "writing the store");
    if (st == PL_OK && ctx->opt->after_item) ctx->opt->after_item(ctx->opt->after_item_ctx, -1);
    if (st == PL_OK) st = run_check_stop(ctx, sum);   // a stop request during the write: nothing is replaced
    if (ctx->rank == 0 && st == PL_OK) {
        st = pl_file_commit_rename(temp, ctx->opt->out);
        if (st == PL_OK) st = pl_journal_remove(ctx->journal_dir);
    } else if ((ctx->rank == 0 || pl_mpi_desynced()) && st != PL_OK && temp[0]) {
        unlink(temp);   // out of step, rank 0 may never return: the failing rank removes the temporary store
    }
    return st;
}

// Largest peak resident set size (MiB) of any rank.
static double commit_peak_rss(void) {
    double mine = pl_process_peak_rss_bytes() / 1048576.0, max = mine;
    if (!pl_mpi_desynced() && MPI_Allreduce(&mine, &max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) max = mine;
    return max;
}

PlStatus run_finish(const RunContext *ctx, PlRunSummary *sum) {
    RunStorePlan plan;
    PlStatus st = pl_mpi_agree(run_store_plan(ctx, &plan), "planning the store");
    int decision[2] = {PL_RUN_COMMITTED, 0};
    char why[512] = "";
    if (st == PL_OK && ctx->rank == 0) {
        decision[0] = (int)commit_decide(ctx, &plan, why, sizeof why);
        decision[1] = ctx->opt->strict && plan.n_fail > 0;
    }
    if (st == PL_OK) st = PL_MPI_CHECK(MPI_Bcast(decision, 2, MPI_INT, 0, MPI_COMM_WORLD));
    sum->outcome = (PlRunOutcome)decision[0];
    sum->failed = plan.n_fail;
    sum->regressions = plan.regressions;
    sum->tiles = (long)plan.n_tiles;
    sum->cells = (long)plan.n_cells;
    double ts = pl_clock_now();
    if (st == PL_OK) st = pl_mpi_agree(ctx->rank == 0 ? commit_failure_report(ctx, &plan) : PL_OK, "writing the failure report");
    if (st == PL_OK && decision[1])
        st = PL_FAIL(PL_ERR_FORMAT, "%ld item%s failed and --strict is set: the store was not replaced (the journal "
                     "%s keeps the finished items)", plan.n_fail, plan.n_fail > 1 ? "s" : "", ctx->journal_dir);
    else if (st == PL_OK && sum->outcome == PL_RUN_COMMITTED)
        st = commit_store(ctx, &plan, sum);
    else if (st == PL_OK && ctx->rank == 0)
        pl_log_error("the store %s was NOT replaced: %s. The previous store is unchanged; the journal %s keeps the "
                     "finished items; the failures are listed in %s.failures.tsv", ctx->opt->out, why,
                     ctx->journal_dir, ctx->opt->out);
    st = pl_mpi_agree(st, "committing the store");
    sum->t_store = pl_clock_now() - ts;
    sum->peak_rss_mib = commit_peak_rss();
    run_store_plan_free(&plan);
    return st;
}
