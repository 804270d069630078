// `protloc version`: the same report as `protloc --version`.
#include "pl_cli.h"
#include "pl_cmds.h"

void cmd_version_usage(FILE *out) {
    fprintf(out, "Usage: protloc version\n\nPrint protloc's version, git revision and the versions of the libraries it uses.\n");
}

int cmd_version_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_version_usage(stdout);
        return PL_EXIT_OK;
    }
    if (argc > 1) return pl_cli_usage_error("version", "unexpected argument '%s'", argv[1]);
    pl_print_versions(stdout);
    return PL_EXIT_OK;
}
