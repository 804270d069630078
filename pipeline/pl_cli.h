// The command table and exit-status conventions of the `protloc` executable.
//
// A command is a plain function `int run(int argc, char **argv)` where argv[0] is the command name
// (e.g. "embed" or "model inspect") and the rest are its options. It returns one of PL_EXIT_*.
// To add a command: write pipeline/cmd_<name>.c with its run and usage functions and add one row to
// the table in pl_commands.c. Register only commands that work.
#ifndef PL_CLI_H
#define PL_CLI_H

#include <stdio.h>

#include "pl_error.h"
#include "pl_kernels.h"

// Exit statuses (docs/guide.md "Exit statuses"; slurm/*.sbatch and slurm/nightly.sh act on each).
enum {
    PL_EXIT_OK = 0,       // everything succeeded
    PL_EXIT_FAIL = 1,     // failed; pl_error_message() says why (main prints it)
    PL_EXIT_USAGE = 2,    // bad command line (the command printed a short usage)
    PL_EXIT_PARTIAL = 3,  // finished and the output was written, but some items failed and were recorded
    PL_EXIT_KEPT = 4,     // `run`: finished, but the failures exceed what may replace the store: the previous store
                          // is kept unchanged; the failures are in STORE.h5.failures.tsv
    PL_EXIT_NO_ROWS = 5,  // `run`: no item produced a row: the previous store is kept unchanged
    PL_EXIT_LOCKED = 6,   // `run`: another run holds the output (STORE.h5.lock names it); nothing was done
    PL_EXIT_SIGNAL = 128, // + the signal number: stopped by SIGTERM / SIGINT / SIGHUP; the journal keeps the work
    PL_EXIT_ABORT = 255   // internal: under MPI this rank cannot continue; main calls MPI_Abort and exits 1
};

enum {
    PL_CMD_MPI = 1,         // main initialises MPI before run()
    PL_CMD_STOPPABLE = 2,   // main catches SIGTERM/SIGINT/SIGHUP before anything else (pl_process_catch_signals):
                            // the command polls pl_process_stop_signal() and stops cleanly
    PL_CMD_MPI_LAUNCHED = 4,   // with PL_CMD_MPI: MPI only under an MPI launcher (pl_main_launched_by_mpi); a plain
                               // process runs as one rank without MPI (a singleton MPI_Init starts a daemon: ~0.4 s)
};

// 1 when this process was started by an MPI launcher (mpirun/mpiexec of Open MPI, MPICH, Intel MPI, MVAPICH, or
// Slurm's srun), from the variables they set; PROTLOC_MPI=1 forces 1, PROTLOC_MPI=0 forces 0.
int pl_main_launched_by_mpi(void);

typedef struct PlCommand {
    const char *name;       // "embed", "model inspect", ...
    const char *summary;    // one line for `protloc --help`
    int flags;              // PL_CMD_* bits
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);   // full help for `protloc <name> --help`
} PlCommand;

extern const PlCommand pl_commands[];
extern const int pl_command_count;

// Print the dependency versions (for --version and store provenance) to `out`.
void pl_print_versions(FILE *out);
// One-line version string "protloc X.Y.Z (git REV)".
const char *pl_version_string(void);

// Helper for commands: returns 1 when argv contains -h/--help (the command then prints usage, exits 0).
int pl_cli_wants_help(int argc, char **argv);
// The exit status of a command that trains or builds (finetune, pretrain, cache build) from its final status:
// PL_ERR_INTERRUPTED -> 128 + the stop signal (the message logged here), PL_ERR_BUSY -> PL_EXIT_LOCKED, another
// failure -> PL_EXIT_FAIL (main prints it), success -> PL_EXIT_PARTIAL when items failed, else PL_EXIT_OK.
int pl_cli_exit_status(PlStatus st, int partial);

// Helper: print "protloc <cmd>: <msg>\nTry 'protloc <cmd> --help'." and return PL_EXIT_USAGE.
int pl_cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Strict option parsing (pl_cli_parse.c): the whole text must be a decimal integer / finite number within
// [lo, hi]. Return 1 on success, 0 otherwise; they print nothing (the command words its own usage error).
int pl_cli_parse_long(const char *text, long lo, long hi, long *out);
int pl_cli_parse_double(const char *text, double lo, double hi, double *out);
// Option values: parse `text` (the value of option `opt` of command `cmd`) strictly within [lo, hi] into *out;
// a bad value prints the usage error naming the option, the value and the range and returns PL_EXIT_USAGE,
// else PL_EXIT_OK. Use as: if ((rc = pl_cli_option_int(cmd, "--batch", optarg, 1, 4096, &batch))) return rc;
int pl_cli_option_int(const char *cmd, const char *opt, const char *text, long lo, long hi, int *out);
int pl_cli_option_long(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out);
int pl_cli_option_double(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out);
// A word from a fixed list: *out = its index in names[0..n); otherwise the usage error lists the choices.
int pl_cli_option_choice(const char *cmd, const char *opt, const char *text, const char *const *names, int n, int *out);
// --kernels: the backend named by `text` for `precision` (pl_kernels_find): *out, or the usage error naming --kernels,
// the value and why (an unknown name, a backend that cannot run the precision); PL_EXIT_USAGE or PL_EXIT_OK.
int pl_cli_option_kernels(const char *cmd, const char *text, PlPrecision precision, const PlKernels **out);
// --kernels' help line, the same in every command's usage: "  --kernels NAME         <what>: auto (default),
// <every registered backend><note>" (the names from the registry; note may be NULL).
void pl_cli_usage_kernels(FILE *out, const char *what, const char *note);

// Test-only hooks: NULL in the protloc executable; tests/tools programs set them before calling pl_main.
typedef struct PlCliTestHooks {
    void (*after_item)(void *ctx, long item);   // `run`: after each item is journaled; item -1: temporary store written
    void *after_item_ctx;
} PlCliTestHooks;
extern PlCliTestHooks pl_cli_test_hooks;

// The whole program (pipeline/pl_main.c): global options, command dispatch, MPI start/stop, process resources,
// exit status. pipeline/main.c is `return pl_main(argc, argv);`.
int pl_main(int argc, char **argv);

#endif
