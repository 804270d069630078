// The protloc program: global options, command dispatch, MPI start/stop, process resources, and the only place that
// decides the exit status (main.c calls pl_main).
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_error.h"
#include "pl_h5.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_process.h"

static void main_print_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc [-v|-q] <command> [options]\n"
            "       protloc --help | --version\n\n"
            "Self-supervised embeddings of protein-localization microscopy, distributed with MPI.\n\n"
            "Commands:\n");
    for (int i = 0; i < pl_command_count; i++)
        fprintf(out, "  %-18s %s\n", pl_commands[i].name, pl_commands[i].summary);
    fprintf(out,
            "\nGlobal options:\n"
            "  -v, --verbose      more log output (debug)\n"
            "  -q, --quiet        only warnings and errors\n"
            "  -h, --help         this help; 'protloc <command> --help' for a command\n"
            "  -V, --version      version, git revision and library versions\n");
}

int pl_cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    }
    return 0;
}

int pl_cli_usage_error(const char *command, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "protloc %s: %s\nTry 'protloc %s --help'.\n", command, msg, command);
    return PL_EXIT_USAGE;
}

// Match argv[1] (and argv[2] for two-word commands such as "model inspect"); returns words consumed.
static const PlCommand *main_find_command(int argc, char **argv, int *words) {
    for (int i = 0; i < pl_command_count; i++) {
        const char *name = pl_commands[i].name;
        const char *space = strchr(name, ' ');
        if (!space) {
            if (strcmp(argv[1], name) == 0) { *words = 1; return &pl_commands[i]; }
        } else if (argc > 2 && strncmp(argv[1], name, (size_t)(space - name)) == 0 &&
                   argv[1][space - name] == '\0' && strcmp(argv[2], space + 1) == 0) {
            *words = 2;
            return &pl_commands[i];
        }
    }
    return NULL;
}

// Is argv[1] the first word of some two-word command (e.g. "model")? Print its subcommands if so.
static int main_print_group(const char *word, FILE *out) {
    size_t n = strlen(word);
    int found = 0;
    for (int i = 0; i < pl_command_count; i++) {
        const char *name = pl_commands[i].name;
        if (strncmp(name, word, n) == 0 && name[n] == ' ') {
            if (!found) fprintf(out, "Usage: protloc %s <subcommand> [options]\n\nSubcommands:\n", word);
            fprintf(out, "  %-18s %s\n", name, pl_commands[i].summary);
            found = 1;
        }
    }
    return found;
}

PlCliTestHooks pl_cli_test_hooks;

extern char **environ;

int pl_main_launched_by_mpi(void) {
    const char *force = getenv("PROTLOC_MPI");
    if (force && (strcmp(force, "0") == 0 || strcmp(force, "1") == 0)) return force[0] == '1';
    // Open MPI (mpirun, and direct launch under PMIx), MPICH/Intel MPI (Hydra: PMI_*), MVAPICH, Slurm's srun
    static const char *const prefixes[] = {"OMPI_COMM_WORLD_", "OMPI_MCA_ess", "PMIX_", "PMI_", "MPI_LOCALRANKID",
                                           "HYDI_", "MV2_COMM_WORLD_", "SLURM_STEP_ID", "SLURM_PROCID"};
    for (char **e = environ; e && *e; e++)
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
            if (strncmp(*e, prefixes[i], strlen(prefixes[i])) == 0) return 1;
    return 0;
}

int pl_main(int argc, char **argv) {
    // Strip global -v/-q wherever they appear before "--".
    int out = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc) argv[out++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) pl_log_set_level(PL_LOG_DEBUG);
        else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) pl_log_set_level(PL_LOG_WARN);
        else argv[out++] = argv[i];
    }
    argc = out;
    argv[argc] = NULL;

    if (argc < 2) {
        main_print_usage(stderr);
        return PL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        main_print_usage(stdout);
        return PL_EXIT_OK;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        pl_print_versions(stdout);
        return PL_EXIT_OK;
    }
    int words = 0;
    const PlCommand *cmd = main_find_command(argc, argv, &words);
    if (!cmd) {
        int asks_help = argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0);
        if (main_print_group(argv[1], asks_help ? stdout : stderr)) {
            if (argc > 2 && !asks_help) fprintf(stderr, "protloc %s: unknown subcommand '%s'\n", argv[1], argv[2]);
            return asks_help ? PL_EXIT_OK : PL_EXIT_USAGE;
        }
        fprintf(stderr, "protloc: unknown %s '%s'\n\n", argv[1][0] == '-' ? "option" : "command", argv[1]);
        main_print_usage(stderr);
        return PL_EXIT_USAGE;
    }
    // The command sees argv[0] = its name and the options after it.
    int cargc = argc - words;
    char **cargv = argv + words;
    cargv[0] = (char *)cmd->name;

    pl_h5_start();
    int rank = 0, size = 1;
    if (cmd->flags & PL_CMD_STOPPABLE) pl_process_catch_signals();   // a signal during MPI start-up stops it too
    if ((cmd->flags & PL_CMD_MPI) && !pl_cli_wants_help(cargc, cargv) &&
        (!(cmd->flags & PL_CMD_MPI_LAUNCHED) || pl_main_launched_by_mpi())) {
        if (pl_mpi_start(&argc, &argv, &rank, &size) != PL_OK) {
            fprintf(stderr, "protloc %s: error: %s\n", cmd->name, pl_error_message());
            return PL_EXIT_FAIL;
        }
    }
    // A closed stdout (`protloc run ... | head -1`) must not kill the process with SIGPIPE after its work is done
    // (a committed run would exit 141): writes fail with EPIPE instead, and each command decides what that means.
    signal(SIGPIPE, SIG_IGN);
    int rc = cmd->run(cargc, cargv);
    if ((rc == PL_EXIT_FAIL || rc == PL_EXIT_ABORT || rc == PL_EXIT_LOCKED) && pl_error_message()[0])
        pl_log_error("protloc %s: %s", cmd->name, pl_error_message());
    // A multi-rank failure that the ranks did not agree on (pl_mpi_agree) may leave another rank waiting in a
    // collective: end the whole job now, with this rank's message printed above.
    if (size > 1 && rc == PL_EXIT_FAIL && !pl_mpi_failure_agreed()) rc = PL_EXIT_ABORT;
    if (rc == PL_EXIT_ABORT) {
        if (size > 1) pl_mpi_abort(PL_EXIT_FAIL);
        rc = PL_EXIT_FAIL;
    }
    pl_process_stop();
    pl_h5_stop();
    pl_mpi_stop();
    return rc;
}
