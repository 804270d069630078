// Strict number parsing for command-line options, and the output-folder check, shared by every command.
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_cli.h"
#include "pl_fs.h"

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

static const char *cli_kind(mode_t m) {
    return S_ISREG(m) ? "a file" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a folder";
}

// May the command write into `dir` (an existing folder)? Root passes access() except on a read-only file system.
static PlStatus cli_dir_writable(const char *dir, const char *opt, const char *path) {
    if (access(dir, W_OK | X_OK) == 0) return PL_OK;
    int err = errno;
    char probe[4200], note[512];
    snprintf(probe, sizeof probe, "%s/.", dir);   // the space note describes the folder holding its argument
    pl_fs_space_note(probe, note, sizeof note);
    if (strcmp(dir, path) == 0)
        return PL_FAIL(PL_ERR_IO, "%s %s: cannot write into it: %s%s", opt, path, strerror(err), note);
    return PL_FAIL(PL_ERR_IO, "%s %s cannot be created in %s: %s%s", opt, path, dir, strerror(err), note);
}

PlStatus pl_cli_output_dir_check(const char *path, const char *opt) {
    if (!path) return PL_OK;
    if (!path[0]) return PL_FAIL(PL_ERR_ARG, "%s is empty: name the folder to write into", opt);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return PL_FAIL(PL_ERR_ARG, "%s %s is %s: name a folder (it is created when missing)", opt, path,
                           cli_kind(sb.st_mode));
        return cli_dir_writable(path, opt, path);
    }
    if (errno != ENOENT && errno != ENOTDIR) return PL_FAIL(PL_ERR_IO, "%s %s: %s", opt, path, strerror(errno));
    // missing: walk up to the nearest existing path; the folder and its missing parents are made there
    char *dir = pl_strdup(path);
    if (!dir) return PL_ERR_NOMEM;
    PlStatus st = PL_OK;
    for (;;) {
        char *slash = strrchr(dir, '/');
        while (slash && slash > dir && slash[1] == '\0') {   // "a/b/" -> "a/b"
            *slash = '\0';
            slash = strrchr(dir, '/');
        }
        if (!slash) snprintf(dir, strlen(dir) + 1, ".");
        else if (slash == dir) dir[1] = '\0';   // "/x" -> "/"
        else *slash = '\0';
        if (stat(dir, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode))
                st = PL_FAIL(PL_ERR_ARG, "%s %s cannot be created: %s is %s, not a folder", opt, path, dir,
                             cli_kind(sb.st_mode));
            else
                st = cli_dir_writable(dir, opt, path);
            break;
        }
        if (errno != ENOENT && errno != ENOTDIR) {   // ENOTDIR: a file above; the walk reaches it and names it
            st = PL_FAIL(PL_ERR_IO, "%s %s: %s: %s", opt, path, dir, strerror(errno));
            break;
        }
        if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0) break;   // cannot happen: "." and "/" exist
    }
    free(dir);
    return st;
}
