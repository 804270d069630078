// protloc's one clock: monotonic seconds for timings, UTC ISO-8601 text for provenance.
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#include <stddef.h>

// Seconds on the monotonic clock (only differences are meaningful).
double pl_clock_now(void);
// Seconds of CPU time used by this process (all threads).
double pl_clock_cpu(void);
// The current time as "YYYY-MM-DDTHH:MM:SSZ" (UTC) in buf; returns buf.
char *pl_clock_iso_utc(char *buf, size_t size);

#endif
