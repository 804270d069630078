// The protloc program with a test-only pause after every journaled item of `run`, so that a test can kill a rank
// in the middle of a run (tests/cli/test_run_resume.sh), and a pause of 5 x DELAY_MS once the temporary store is
// written (announced on stderr) before it is committed (tests/cli/test_faults.sh). The production executable has
// no such hook.
// Usage: protloc_slow_items DELAY_MS <protloc arguments...>   e.g. mpirun -np 2 protloc_slow_items 150 run --manifest ...
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pl_cli.h"

static void slow_after_item(void *ctx, long item) {
    long ms = *(const long *)ctx;
    if (item < 0) {   // the temporary store is written: say so and pause, so a test can signal this moment
        fprintf(stderr, "protloc_slow_items: temporary store written\n");
        ms *= 5;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int main(int argc, char **argv) {
    static long delay_ms;
    if (argc < 3 || !pl_cli_parse_long(argv[1], 0, 60000, &delay_ms)) {
        fprintf(stderr, "usage: %s DELAY_MS <protloc arguments...>\n", argv[0]);
        return 2;
    }
    pl_cli_test_hooks.after_item = slow_after_item;
    pl_cli_test_hooks.after_item_ctx = &delay_ms;
    argv[1] = argv[0];   // pl_main sees: program, command, options
    return pl_main(argc - 1, argv + 1);
}
