// Benchmark: checkpoint loading throughput (pl_weights_load) for the files given, best of N runs, plus peak RSS.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "pl_clock.h"
#include "pl_error.h"
#include "pl_weights.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_weights_load [--repeats N] FILE...\n");
        return 2;
    }
    int repeats = 5, first = 1;
    if (argc > 3 && strcmp(argv[1], "--repeats") == 0) {
        repeats = atoi(argv[2]);
        first = 3;
    }
    printf("%-48s %10s %10s %10s %8s\n", "file", "MB", "best_s", "MB/s", "tensors");
    for (int f = first; f < argc; f++) {
        struct stat sb;
        if (stat(argv[f], &sb) != 0) {
            fprintf(stderr, "cannot stat %s\n", argv[f]);
            return 1;
        }
        double best = 1e30;
        size_t count = 0;
        for (int r = 0; r < repeats; r++) {
            PlWeights w;
            double t0 = pl_clock_now();
            if (pl_weights_load(argv[f], NULL, &w) != PL_OK) {
                fprintf(stderr, "%s\n", pl_error_message());
                return 1;
            }
            double t = pl_clock_now() - t0;
            count = w.count;
            pl_weights_free(&w);
            if (t < best) best = t;
        }
        double mb = (double)sb.st_size / 1e6;
        printf("%-48s %10.1f %10.4f %10.0f %8zu\n", argv[f], mb, best, mb / best, count);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS: %.1f MB\n", (double)ru.ru_maxrss / 1024.0);
    return 0;
}
