// Helpers every C benchmark shares: the comma-separated integer lists of their options and the best-of-batches
// timing of one call. Header-only, for tests/bench programs (fma_peak.h gives the machine's FMA peak).
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdlib.h>

#include "pl_clock.h"

// "1,2,8" -> out (at most max values). Returns the count, or -1 for anything but positive integers separated by
// commas.
static inline int bench_parse_ints(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

// Seconds per call of fn(ctx): one warm-up call, then batches of calls of >= 20 ms until `seconds` have passed; the
// fastest batch's mean (the figure least disturbed by other load on the machine).
static inline double bench_best_seconds(void (*fn)(void *), void *ctx, double seconds) {
    double t0 = pl_clock_now();
    fn(ctx);
    double best = pl_clock_now() - t0, start = pl_clock_now();
    do {
        int n = 0;
        double b0 = pl_clock_now(), t;
        do {
            fn(ctx);
            n++;
            t = pl_clock_now() - b0;
        } while (t < 0.02);
        best = t / n < best ? t / n : best;
    } while (pl_clock_now() - start < seconds);
    return best;
}

#endif
