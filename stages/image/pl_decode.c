// Decode dispatcher: "file#k" references, format sniffing by magic bytes, limits, NaN policy (see pl_decode.h).
#include "pl_decode.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pl_decode_priv.h"
#include "pl_fs.h"

void pl_decode_limits_default(PlDecodeLimits *limits) {
    limits->max_pixels = (uint64_t)1 << 28;
    limits->max_channels = 4096;
    limits->max_side = (uint64_t)1 << 20;
    limits->nan_policy = PL_NAN_ERROR;
}

PlStatus pl_image_ref_parse(const char *ref, char **path, int *channel) {
    *path = NULL;
    *channel = 0;
    if (!ref || !*ref) return PL_FAIL(PL_ERR_ARG, "empty image reference");
    const char *hash = strrchr(ref, '#');
    size_t len = strlen(ref);
    if (hash && hash[1]) {
        const char *p = hash + 1;
        while (*p && isdigit((unsigned char)*p)) p++;
        if (*p == '\0') {
            if (hash - ref == 0) return PL_FAIL(PL_ERR_ARG, "image reference '%s' has no file name", ref);
            errno = 0;
            long k = strtol(hash + 1, NULL, 10);
            if (errno || k > 1000000) return PL_FAIL(PL_ERR_ARG, "image reference '%s': channel index too large", ref);
            len = (size_t)(hash - ref);
            *channel = (int)k;
        }
    }
    *path = pl_malloc(len + 1);
    if (!*path) return PL_ERR_NOMEM;
    memcpy(*path, ref, len);
    (*path)[len] = '\0';
    return PL_OK;
}

PlStatus pl_decode_check_size(const char *path, const PlDecodeLimits *lim, uint64_t width, uint64_t height,
                              uint64_t channels) {
    if (width == 0 || height == 0)
        return PL_FAIL(PL_ERR_FORMAT, "%s: declared image size %llu x %llu is empty", path,
                       (unsigned long long)width, (unsigned long long)height);
    if (width > lim->max_side || height > lim->max_side)
        return PL_FAIL(PL_ERR_LIMIT, "%s: declared image size %llu x %llu exceeds the limit of %llu pixels per side",
                       path, (unsigned long long)width, (unsigned long long)height,
                       (unsigned long long)lim->max_side);
    if (width * height > lim->max_pixels)
        return PL_FAIL(PL_ERR_LIMIT, "%s: declared image size %llu x %llu = %llu pixels exceeds the limit of %llu pixels (--max-pixels)",
                       path, (unsigned long long)width, (unsigned long long)height,
                       (unsigned long long)(width * height), (unsigned long long)lim->max_pixels);
    if (channels > lim->max_channels)
        return PL_FAIL(PL_ERR_LIMIT, "%s: %llu channels exceed the limit of %llu", path,
                       (unsigned long long)channels, (unsigned long long)lim->max_channels);
    if (width * height * channels > lim->max_pixels * 16)
        return PL_FAIL(PL_ERR_LIMIT, "%s: %llu channels of %llu x %llu exceed the total limit of %llu samples", path,
                       (unsigned long long)channels, (unsigned long long)width, (unsigned long long)height,
                       (unsigned long long)(lim->max_pixels * 16));
    return PL_OK;
}

// Identify the container from its first bytes; names the file on every failure.
static PlStatus sniff_format(const char *path, PlImageFormat *fmt) {
    *fmt = PL_FORMAT_UNKNOWN;
    FILE *fp;
    PL_TRY(pl_fopen_regular(path, &fp));   // a FIFO or device is an error, never a hang
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || sb.st_size == 0) {
        fclose(fp);
        return PL_FAIL(PL_ERR_FORMAT, "%s: empty file (0 bytes)", path);
    }
    unsigned char b[8] = {0};
    size_t n = fread(b, 1, sizeof b, fp);
    fclose(fp);
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 4 && ((b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0) ||
                   (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43)))) {
        if (n < 8) return PL_FAIL(PL_ERR_FORMAT, "%s: truncated TIFF header (%zu bytes)", path, n);
        *fmt = PL_FORMAT_TIFF;
        return PL_OK;
    }
    if (n == 8 && memcmp(b, png_sig, 8) == 0) {
        *fmt = PL_FORMAT_PNG;
        return PL_OK;
    }
    if (n < 8 && n >= 1 && (b[0] == 0x89 || b[0] == 'I' || b[0] == 'M'))
        return PL_FAIL(PL_ERR_FORMAT, "%s: truncated file (%zu bytes, no complete TIFF/PNG signature)", path, n);
    return PL_FAIL(PL_ERR_FORMAT, "%s: not a TIFF or PNG file (first bytes %02x %02x %02x %02x)", path, b[0], b[1],
                   b[2], b[3]);
}

static const PlDecodeLimits *limits_or_default(const PlDecodeLimits *lim, PlDecodeLimits *tmp) {
    if (lim) return lim;
    pl_decode_limits_default(tmp);
    return tmp;
}

PlStatus pl_image_probe(const char *path, const PlDecodeLimits *limits, PlImageInfo *info) {
    PlDecodeLimits tmp;
    const PlDecodeLimits *lim = limits_or_default(limits, &tmp);
    memset(info, 0, sizeof *info);
    PlImageFormat fmt;
    PL_TRY(sniff_format(path, &fmt));
    if (fmt == PL_FORMAT_TIFF) return pl_tiff_probe(path, lim, info);
    return pl_png_probe(path, lim, info);
}

// Apply the NaN/Inf policy to a float-sourced image; names the file, channel and position of the first bad one.
static PlStatus check_finite(const char *path, const PlDecodeLimits *lim, int channel_base, PlImage *img) {
    if (!img->is_float) return PL_OK;
    size_t plane = (size_t)img->height * (size_t)img->width;
    for (int c = 0; c < img->channels; c++) {
        float *x = img->data + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++) {
            if (isfinite(x[i])) continue;
            if (lim->nan_policy == PL_NAN_ZERO) {
                x[i] = 0.0f;
                continue;
            }
            return PL_FAIL(PL_ERR_NUMERIC, "%s#%d: non-finite float sample (%s) at row %zu, column %zu", path,
                           channel_base + c, isnan(x[i]) ? "NaN" : "Inf", i / (size_t)img->width,
                           i % (size_t)img->width);
        }
    }
    return PL_OK;
}

static PlStatus decode_path(const char *path, const PlDecodeLimits *limits, int channel, PlImage *io) {
    PlDecodeLimits tmp;
    const PlDecodeLimits *lim = limits_or_default(limits, &tmp);
    PlImageFormat fmt;
    PL_TRY(sniff_format(path, &fmt));
    if (fmt == PL_FORMAT_TIFF)
        PL_TRY(pl_tiff_decode(path, lim, channel, io));
    else
        PL_TRY(pl_png_decode(path, lim, channel, io));
    return check_finite(path, lim, channel < 0 ? 0 : channel, io);
}

PlStatus pl_image_read_reuse(const char *ref, const PlDecodeLimits *limits, PlImage *io) {
    char *path = NULL;
    int channel = 0;
    PL_TRY(pl_image_ref_parse(ref, &path, &channel));
    PlStatus st = decode_path(path, limits, channel, io);
    free(path);
    return st;
}

PlStatus pl_image_read(const char *ref, const PlDecodeLimits *limits, PlImage *out) {
    memset(out, 0, sizeof *out);
    PlStatus st = pl_image_read_reuse(ref, limits, out);
    if (st != PL_OK) pl_image_free(out);
    return st;
}

PlStatus pl_image_read_all(const char *path, const PlDecodeLimits *limits, PlImage *out) {
    memset(out, 0, sizeof *out);
    PlStatus st = decode_path(path, limits, -1, out);
    if (st != PL_OK) pl_image_free(out);
    return st;
}
