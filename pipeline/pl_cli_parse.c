// Strict option parsing for the command line, shared by every command (numbers, word choices, --kernels and its
// help line).
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_log.h"
#include "pl_process.h"

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

int pl_cli_option_long(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out) {
    if (pl_cli_parse_long(text, lo, hi, out)) return PL_EXIT_OK;
    return pl_cli_usage_error(cmd, "%s expects an integer in %ld..%ld, got '%s'", opt, lo, hi, text);
}

int pl_cli_option_int(const char *cmd, const char *opt, const char *text, long lo, long hi, int *out) {
    long v = 0;
    if (lo < INT_MIN || hi > INT_MAX) return pl_cli_usage_error(cmd, "%s: internal range error", opt);
    int rc = pl_cli_option_long(cmd, opt, text, lo, hi, &v);
    if (rc == PL_EXIT_OK) *out = (int)v;
    return rc;
}

int pl_cli_option_double(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out) {
    if (pl_cli_parse_double(text, lo, hi, out)) return PL_EXIT_OK;
    char range[96];   // DBL_MIN as a lower bound means "> 0", DBL_MAX as an upper bound means "no limit"
    if (lo == DBL_MIN && hi == DBL_MAX) snprintf(range, sizeof range, "> 0");
    else if (hi == DBL_MAX) snprintf(range, sizeof range, ">= %g", lo);
    else if (lo == DBL_MIN) snprintf(range, sizeof range, "in (0, %g]", hi);
    else snprintf(range, sizeof range, "in [%g, %g]", lo, hi);
    return pl_cli_usage_error(cmd, "%s expects a number %s, got '%s'", opt, range, text);
}

int pl_cli_option_choice(const char *cmd, const char *opt, const char *text, const char *const *names, int n, int *out) {
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return PL_EXIT_OK;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    }
    return pl_cli_usage_error(cmd, "%s wants %s (got '%s')", opt, list, text);
}

int pl_cli_option_kernels(const char *cmd, const char *text, PlPrecision precision, const PlKernels **out) {
    if (pl_kernels_find(text, precision, out) == PL_OK) return PL_EXIT_OK;
    const char *why = pl_error_message();   // a precision error already names "--kernels X --precision P"
    int rc = strstr(why, "--kernels ") ? pl_cli_usage_error(cmd, "%s", why)
                                       : pl_cli_usage_error(cmd, "--kernels %s: %s", text, why);
    pl_error_clear();
    return rc;
}

void pl_cli_usage_kernels(FILE *out, const char *what, const char *note) {
    char names[256];
    pl_kernels_names(names, sizeof names, 0);
    const char *rest = strncmp(names, "auto", 4) == 0 ? names + 4 : names;   // "auto" carries "(default)"
    fprintf(out, "  --kernels NAME         %s: auto (default)%s%s\n", what, rest, note ? note : "");
}

int pl_cli_exit_status(PlStatus st, int partial) {
    if (st == PL_ERR_INTERRUPTED) {
        const volatile sig_atomic_t *sig = pl_process_stop_signal();
        pl_log_error("%s", pl_error_message());
        return PL_EXIT_SIGNAL + (*sig ? *sig : 15);
    }
    if (st == PL_ERR_BUSY) return PL_EXIT_LOCKED;
    if (st != PL_OK) return PL_EXIT_FAIL;
    return partial ? PL_EXIT_PARTIAL : PL_EXIT_OK;
}
