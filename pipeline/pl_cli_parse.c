// Strict number parsing for command-line options, shared by every command.
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "pl_cli.h"

int pl_cli_parse_long(const char *text, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!text[0] || end == text || *end || errno || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int pl_cli_parse_double(const char *text, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (!text[0] || end == text || *end || errno || !isfinite(v) || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}
