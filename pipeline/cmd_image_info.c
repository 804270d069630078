// `protloc image info`: decode image files fully and print their format, size, depth and value range (TSV).
#include <float.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_decode.h"
#include "pl_error.h"
#include "pl_log.h"

void cmd_image_info_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc image info [--header-only] [--max-pixels N] FILE...\n\n"
            "Check TIFF/PNG files the way the pipeline reads them: every channel (pages x samples) is decoded\n"
            "and one TSV row per file is printed on stdout:\n"
            "  file  format  pages  channels  height  width  bits  float  min  max\n"
            "A file that cannot be read gets a one-line error on stderr naming the file and the reason\n"
            "(truncated, 1-bit, palette, NaN samples, declared size over the limit, ...); the others are still\n"
            "listed. Exit status: 0 all readable, 3 some unreadable, 1 none readable.\n\n"
            "Options:\n"
            "  --header-only    read headers only (min and max are printed as '-')\n"
            "  --max-pixels N   decompression-bomb limit per channel (default 268435456)\n");
}

// Decode every channel of `path` and print its row; returns PL_OK or the decoding error.
static PlStatus info_one(const char *path, const PlDecodeLimits *lim, int header_only, PlImage *buf) {
    PlImageInfo info;
    PL_TRY(pl_image_probe(path, lim, &info));
    double lo = DBL_MAX, hi = -DBL_MAX;
    if (!header_only) {
        for (int c = 0; c < info.channels; c++) {
            char ref[4200];
            if ((size_t)snprintf(ref, sizeof ref, "%s#%d", path, c) >= sizeof ref)
                return PL_FAIL(PL_ERR_ARG, "%s: path too long", path);
            PL_TRY(pl_image_read_reuse(ref, lim, buf));
            size_t n = (size_t)buf->height * (size_t)buf->width;
            for (size_t i = 0; i < n; i++) {
                double v = buf->data[i];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
    }
    printf("%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t", path, info.format == PL_FORMAT_TIFF ? "tiff" : "png", info.pages,
           info.channels, info.height, info.width, info.bits, info.is_float);
    if (header_only) printf("-\t-\n");
    else printf("%.9g\t%.9g\n", lo, hi);
    return PL_OK;
}

int cmd_image_info_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_image_info_usage(stdout);
        return PL_EXIT_OK;
    }
    PlDecodeLimits lim;
    pl_decode_limits_default(&lim);
    int header_only = 0, first = 1;
    for (; first < argc && argv[first][0] == '-' && argv[first][1]; first++) {
        if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        } else if (strcmp(argv[first], "--header-only") == 0) {
            header_only = 1;
        } else if (strcmp(argv[first], "--max-pixels") == 0) {
            if (first + 1 >= argc) return pl_cli_usage_error("image info", "option '--max-pixels' needs a value");
            long v = 0;
            int rc = pl_cli_option_long("image info", "--max-pixels", argv[++first], 1, 1L << 40, &v);
            if (rc) return rc;
            lim.max_pixels = (uint64_t)v;
        } else {
            return pl_cli_usage_error("image info", "unknown option '%s'", argv[first]);
        }
    }
    if (first >= argc) return pl_cli_usage_error("image info", "no files given");
    printf("file\tformat\tpages\tchannels\theight\twidth\tbits\tfloat\tmin\tmax\n");
    PlImage buf = {0};
    int ok = 0, bad = 0;
    for (int i = first; i < argc; i++) {
        if (info_one(argv[i], &lim, header_only, &buf) == PL_OK) {
            ok++;
        } else {
            bad++;
            pl_log_error("%s", pl_error_message());
        }
        fflush(stdout);
    }
    pl_image_free(&buf);
    pl_error_clear();
    if (bad == 0) return PL_EXIT_OK;
    return ok ? PL_EXIT_PARTIAL : PL_EXIT_FAIL;
}
