// TIFF (multi-page, one page per channel) and PNG writers for PlImage; temp file + rename, per-file handlers.
#include "pl_image_write.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#include "pl_fs.h"

PlStatus pl_tiff_compression_parse(const char *name, PlTiffCompression *out) {
    static const struct { const char *name; PlTiffCompression c; } table[] = {
        {"none", PL_TIFF_NONE}, {"lzw", PL_TIFF_LZW}, {"deflate", PL_TIFF_DEFLATE}, {"zip", PL_TIFF_DEFLATE},
        {"zstd", PL_TIFF_ZSTD}, {"packbits", PL_TIFF_PACKBITS}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (name && strcmp(name, table[i].name) == 0) {
            *out = table[i].c;
            return PL_OK;
        }
    return PL_FAIL(PL_ERR_ARG, "unknown TIFF compression '%s' (none, lzw, deflate, zstd, packbits)", name ? name : "");
}

const char *pl_tiff_compression_name(PlTiffCompression c) {
    switch (c) {
    case PL_TIFF_NONE: return "none";
    case PL_TIFF_LZW: return "lzw";
    case PL_TIFF_DEFLATE: return "deflate";
    case PL_TIFF_ZSTD: return "zstd";
    case PL_TIFF_PACKBITS: return "packbits";
    }
    return "?";
}

static uint16_t tiff_codec(PlTiffCompression c) {
    switch (c) {
    case PL_TIFF_LZW: return COMPRESSION_LZW;
    case PL_TIFF_DEFLATE: return COMPRESSION_ADOBE_DEFLATE;
    case PL_TIFF_ZSTD: return COMPRESSION_ZSTD;
    case PL_TIFF_PACKBITS: return COMPRESSION_PACKBITS;
    default: return COMPRESSION_NONE;
    }
}

// Round-to-nearest and clamp a float sample into [0, maxv]; NaN → 0.
static inline uint32_t to_uint(float v, double maxv) {
    if (!(v > 0.0f)) return 0;
    double r = floor((double)v + 0.5);
    return r >= maxv ? (uint32_t)maxv : (uint32_t)r;
}

static void pack_row(const float *src, size_t n, int bits, unsigned char *dst) {
    if (bits == 8) {
        for (size_t i = 0; i < n; i++) dst[i] = (uint8_t)to_uint(src[i], 255.0);
    } else if (bits == 16) {
        uint16_t *d = (uint16_t *)(void *)dst;
        for (size_t i = 0; i < n; i++) d[i] = (uint16_t)to_uint(src[i], 65535.0);
    } else {
        memcpy(dst, src, n * sizeof(float));
    }
}

typedef struct TiffWMsg {
    char text[512];
} TiffWMsg;

static int tiffw_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    TiffWMsg *m = user;
    if (m->text[0] == '\0') {
        char body[448];
        vsnprintf(body, sizeof body, fmt, ap);
        snprintf(m->text, sizeof m->text, "%s%s%s", module ? module : "", module ? ": " : "", body);
    }
    return 1;
}

static int tiffw_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

static PlStatus check_image(const char *path, const PlImage *img) {
    if (!img || !img->data || img->channels <= 0 || img->height <= 0 || img->width <= 0)
        return PL_FAIL(PL_ERR_ARG, "%s: nothing to write (empty image)", path);
    return PL_OK;
}

// Write every page of the image into the open TIFF; returns PL_OK or a message naming `path`.
static PlStatus tiff_write_pages(TIFF *tif, const char *path, const PlImage *img, int bits, PlTiffCompression comp,
                                 TiffWMsg *msg) {
    const size_t W = (size_t)img->width, H = (size_t)img->height, bytes = (size_t)bits / 8;
    const size_t row_bytes = W * bytes;
    uint32_t rps = (uint32_t)((64u * 1024u) / (row_bytes ? row_bytes : 1));
    if (rps < 1) rps = 1;
    if (rps > H) rps = (uint32_t)H;
    unsigned char *strip = pl_malloc(row_bytes * rps);
    if (!strip) return PL_ERR_NOMEM;
    PlStatus st = PL_OK;
    for (int c = 0; c < img->channels && st == PL_OK; c++) {
        const float *plane = pl_image_channel(img, c);
        int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)W) && TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)H) &&
                 TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)1) &&
                 TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)bits) &&
                 TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, (uint16_t)(bits == 32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT)) &&
                 TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (uint16_t)PHOTOMETRIC_MINISBLACK) &&
                 TIFFSetField(tif, TIFFTAG_PLANARCONFIG, (uint16_t)PLANARCONFIG_CONTIG) &&
                 TIFFSetField(tif, TIFFTAG_COMPRESSION, tiff_codec(comp)) &&
                 TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rps);
        if (ok && img->channels > 1)
            ok = TIFFSetField(tif, TIFFTAG_SUBFILETYPE, (uint32_t)FILETYPE_PAGE) &&
                 TIFFSetField(tif, TIFFTAG_PAGENUMBER, (uint16_t)c, (uint16_t)img->channels);
        if (ok && bits != 32 && (comp == PL_TIFF_LZW || comp == PL_TIFF_DEFLATE || comp == PL_TIFF_ZSTD))
            ok = TIFFSetField(tif, TIFFTAG_PREDICTOR, (uint16_t)PREDICTOR_HORIZONTAL);
        if (!ok) {
            st = PL_FAIL(PL_ERR_IO, "%s: cannot set TIFF tags for page %d: %s", path, c, msg->text);
            break;
        }
        for (size_t y0 = 0, s = 0; y0 < H; y0 += rps, s++) {
            size_t rows = y0 + rps > H ? H - y0 : rps;
            for (size_t r = 0; r < rows; r++) pack_row(plane + (y0 + r) * W, W, bits, strip + r * row_bytes);
            if (TIFFWriteEncodedStrip(tif, (uint32_t)s, strip, (tmsize_t)(rows * row_bytes)) < 0) {
                st = PL_FAIL(PL_ERR_IO, "%s: writing page %d strip %zu failed: %s", path, c, s, msg->text);
                break;
            }
        }
        if (st == PL_OK && !TIFFWriteDirectory(tif))
            st = PL_FAIL(PL_ERR_IO, "%s: writing page %d directory failed: %s", path, c, msg->text);
    }
    free(strip);
    return st;
}

PlStatus pl_tiff_write(const char *path, const PlImage *img, int bits, PlTiffCompression compression) {
    PL_TRY(check_image(path, img));
    if (bits != 8 && bits != 16 && bits != 32)
        return PL_FAIL(PL_ERR_ARG, "%s: TIFF bits must be 8, 16 or 32 (float), not %d", path, bits);
    if (!TIFFIsCODECConfigured(tiff_codec(compression)))
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: this libtiff cannot write %s compression", path,
                       pl_tiff_compression_name(compression));
    double total = (double)img->channels * img->height * img->width * (bits / 8);
    const char *mode = total > 3.5 * 1024.0 * 1024.0 * 1024.0 ? "w8" : "w";
    char *temp = pl_temp_path_for(path);
    if (!temp) return PL_ERR_NOMEM;
    TiffWMsg msg = {{0}};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) {
        free(temp);
        return PL_FAIL(PL_ERR_NOMEM, "%s: cannot allocate libtiff options", path);
    }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiffw_on_error, &msg);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiffw_on_warning, &msg);
    TIFF *tif = TIFFOpenExt(temp, mode, opts);
    TIFFOpenOptionsFree(opts);
    PlStatus st;
    if (!tif) {
        st = PL_FAIL(PL_ERR_IO, "%s: cannot create %s: %s", path, temp, msg.text[0] ? msg.text : strerror(errno));
        unlink(temp);
        free(temp);
        return st;
    }
    st = tiff_write_pages(tif, path, img, bits, compression, &msg);
    TIFFClose(tif);
    if (st == PL_OK && msg.text[0]) st = PL_FAIL(PL_ERR_IO, "%s: %s", path, msg.text);
    if (st == PL_OK) st = pl_file_commit_rename(temp, path);
    if (st != PL_OK) unlink(temp);
    free(temp);
    return st;
}

// ---- PNG ----

typedef struct PngWJob {
    const char *path;
    const PlImage *img;
    int first, nch, bits;
    FILE *fp;
    png_structp png;
    png_infop pinfo;
    unsigned char *row;
    char msg[256];
} PngWJob;

static void pngw_on_error(png_structp png, png_const_charp text) {
    PngWJob *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", text ? text : "libpng error");
    png_longjmp(png, 1);
}

static void pngw_on_warning(png_structp png, png_const_charp text) { (void)png, (void)text; }

// All libpng write calls; the only setjmp of the writer. Returns 0 on success.
static int pngw_run(PngWJob *job) {
    if (setjmp(png_jmpbuf(job->png))) return 1;
    const size_t W = (size_t)job->img->width, H = (size_t)job->img->height, plane = W * H;
    static const int ctypes[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                  PNG_COLOR_TYPE_RGB_ALPHA};
    png_init_io(job->png, job->fp);
    png_set_IHDR(job->png, job->pinfo, (png_uint_32)W, (png_uint_32)H, job->bits, ctypes[job->nch],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(job->png, 6);
    png_write_info(job->png, job->pinfo);
    if (job->bits == 16) png_set_swap(job->png);
    for (size_t y = 0; y < H; y++) {
        for (int k = 0; k < job->nch; k++) {
            const float *src = job->img->data + (size_t)(job->first + k) * plane + y * W;
            if (job->bits == 8) {
                for (size_t x = 0; x < W; x++) job->row[x * (size_t)job->nch + (size_t)k] = (uint8_t)to_uint(src[x], 255.0);
            } else {
                uint16_t *d = (uint16_t *)(void *)job->row;
                for (size_t x = 0; x < W; x++) d[x * (size_t)job->nch + (size_t)k] = (uint16_t)to_uint(src[x], 65535.0);
            }
        }
        png_write_row(job->png, job->row);
    }
    png_write_end(job->png, NULL);
    return 0;
}

PlStatus pl_png_write_color(const char *path, const PlImage *img, int first, int n_channels, int bits) {
    PL_TRY(check_image(path, img));
    if (bits != 8 && bits != 16) return PL_FAIL(PL_ERR_ARG, "%s: PNG bits must be 8 or 16, not %d", path, bits);
    if (n_channels < 1 || n_channels > 4 || first < 0 || first + n_channels > img->channels)
        return PL_FAIL(PL_ERR_ARG, "%s: cannot write channels %d..%d of a %d-channel image as PNG", path, first,
                       first + n_channels - 1, img->channels);
    if ((uint64_t)img->width > 0x7fffffffu || (uint64_t)img->height > 0x7fffffffu)
        return PL_FAIL(PL_ERR_ARG, "%s: image too large for PNG", path);
    PngWJob job = {.path = path, .img = img, .first = first, .nch = n_channels, .bits = bits};
    job.row = pl_malloc((size_t)img->width * (size_t)n_channels * (size_t)(bits / 8));
    if (!job.row) return PL_ERR_NOMEM;
    PlAtomicFile af = {0};
    PlStatus st = pl_atomic_open(&af, path);
    if (st != PL_OK) {
        free(job.row);
        return st;
    }
    job.fp = af.fp;
    job.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, pngw_on_error, pngw_on_warning);
    if (job.png) job.pinfo = png_create_info_struct(job.png);
    if (!job.png || !job.pinfo)
        st = PL_FAIL(PL_ERR_NOMEM, "%s: cannot create libpng writer", path);
    else if (pngw_run(&job) != 0)
        st = PL_FAIL(PL_ERR_IO, "%s: writing PNG failed: %s", path, job.msg);
    png_destroy_write_struct(&job.png, job.pinfo ? &job.pinfo : NULL);
    free(job.row);
    if (st == PL_OK)
        st = pl_atomic_commit(&af);
    else
        pl_atomic_abort(&af);
    return st;
}

PlStatus pl_png_write(const char *path, const PlImage *img, int channel, int bits) {
    return pl_png_write_color(path, img, channel, 1, bits);
}
