// PNG decoding with libpng (8/16-bit grey, grey+alpha, RGB, RGBA); the only setjmp lives in png_run.
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_decode_priv.h"
#include "pl_fs.h"

// Everything png_run touches after setjmp lives here (never in non-volatile locals).
typedef struct PngJob {
    const char *path;
    const PlDecodeLimits *lim;
    int channel;          // >= 0: one channel; < 0: all
    int header_only;
    PlImage *io;
    PlImageInfo *info;
    FILE *fp;
    png_structp png;
    png_infop pinfo;
    unsigned char *rows;  // one row, or the whole image when interlaced
    PlStatus status;      // our own (non-libpng) failure, recorded before returning
    char msg[256];        // libpng's error text
} PngJob;

static void png_on_error(png_structp png, png_const_charp text) {
    PngJob *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", text ? text : "libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp text) { (void)png, (void)text; }

static void png_row_to_planar(const unsigned char *row, int bits, int nch, int c0, int ncopy, size_t W,
                              float *dst, size_t plane) {
    for (int k = 0; k < ncopy; k++) {
        float *d = dst + (size_t)k * plane;
        if (bits == 8) {
            const uint8_t *s = row + (c0 + k);
            for (size_t x = 0; x < W; x++) d[x] = (float)s[x * (size_t)nch];
        } else {
            const uint16_t *s = (const uint16_t *)(const void *)row + (c0 + k);
            for (size_t x = 0; x < W; x++) d[x] = (float)s[x * (size_t)nch];
        }
    }
}

// All libpng calls for one file. Returns 0 on success, 1 when libpng raised an error (job->msg) or
// job->status was set.
static int png_run(PngJob *job) {
    if (setjmp(png_jmpbuf(job->png))) return 1;
    png_init_io(job->png, job->fp);
    png_uint_32 side = job->lim->max_side > 0x7fffffffu ? 0x7fffffffu : (png_uint_32)job->lim->max_side;
    png_set_user_limits(job->png, side, side);
    png_set_chunk_malloc_max(job->png, (png_alloc_size_t)64 << 20);
    png_read_info(job->png, job->pinfo);
    png_uint_32 W = 0, H = 0;
    int depth = 0, ctype = 0, interlace = 0;
    png_get_IHDR(job->png, job->pinfo, &W, &H, &depth, &ctype, &interlace, NULL, NULL);
    int nch = png_get_channels(job->png, job->pinfo);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        job->status = PL_FAIL(PL_ERR_UNSUPPORTED, "%s: palette (colour-mapped) PNG; microscopy channels must be greyscale or RGB sample values", job->path);
        return 1;
    }
    if (depth != 8 && depth != 16) {
        job->status = PL_FAIL(PL_ERR_UNSUPPORTED, "%s: %d-bit PNG; only 8 and 16-bit samples are supported", job->path, depth);
        return 1;
    }
    PlStatus st = pl_decode_check_size(job->path, job->lim, W, H, (uint64_t)nch);
    if (st != PL_OK) {
        job->status = st;
        return 1;
    }
    if (job->info) {
        job->info->format = PL_FORMAT_PNG;
        job->info->channels = nch;
        job->info->pages = 1;
        job->info->height = (int)H;
        job->info->width = (int)W;
        job->info->bits = depth;
        job->info->is_float = 0;
        job->info->uniform = 1;
    }
    if (job->header_only) return 0;
    if (job->channel >= nch) {
        job->status = PL_FAIL(PL_ERR_ARG, "%s: channel #%d requested but the PNG has %d channel%s", job->path,
                              job->channel, nch, nch == 1 ? "" : "s");
        return 1;
    }
    if (depth == 16) png_set_swap(job->png);   // host little-endian uint16
    int passes = png_set_interlace_handling(job->png);
    png_read_update_info(job->png, job->pinfo);
    size_t rowbytes = png_get_rowbytes(job->png, job->pinfo);
    int c0 = job->channel >= 0 ? job->channel : 0, ncopy = job->channel >= 0 ? 1 : nch;
    st = pl_image_reshape(job->io, ncopy, (int)H, (int)W);
    if (st != PL_OK) {
        job->status = st;
        return 1;
    }
    job->io->bits = depth;
    job->io->is_float = 0;
    size_t plane = (size_t)W * H;
    if (passes == 1) {
        job->rows = pl_malloc(rowbytes);
        if (!job->rows) {
            job->status = PL_ERR_NOMEM;
            return 1;
        }
        for (png_uint_32 y = 0; y < H; y++) {
            png_read_row(job->png, job->rows, NULL);
            png_row_to_planar(job->rows, depth, nch, c0, ncopy, W, job->io->data + (size_t)y * W, plane);
        }
    } else {
        job->rows = pl_malloc(rowbytes * H);
        if (!job->rows) {
            job->status = PL_ERR_NOMEM;
            return 1;
        }
        for (int pass = 0; pass < passes; pass++)
            for (png_uint_32 y = 0; y < H; y++) png_read_row(job->png, job->rows + (size_t)y * rowbytes, NULL);
        for (png_uint_32 y = 0; y < H; y++)
            png_row_to_planar(job->rows + (size_t)y * rowbytes, depth, nch, c0, ncopy, W,
                              job->io->data + (size_t)y * W, plane);
    }
    png_read_end(job->png, NULL);
    return 0;
}

static PlStatus png_job(PngJob *job) {
    PL_TRY(pl_fopen_regular(job->path, &job->fp));
    job->status = PL_OK;
    job->msg[0] = '\0';
    job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, png_on_error, png_on_warning);
    if (job->png) job->pinfo = png_create_info_struct(job->png);
    PlStatus st = PL_OK;
    if (!job->png || !job->pinfo) {
        st = PL_FAIL(PL_ERR_NOMEM, "%s: cannot create libpng reader", job->path);
    } else if (png_run(job) != 0) {
        if (job->status != PL_OK)
            st = job->status;
        else
            st = PL_FAIL(PL_ERR_FORMAT, "%s: corrupt or truncated PNG: %s", job->path, job->msg);
    }
    png_destroy_read_struct(&job->png, job->pinfo ? &job->pinfo : NULL, NULL);
    free(job->rows);
    job->rows = NULL;
    fclose(job->fp);
    return st;
}

PlStatus pl_png_probe(const char *path, const PlDecodeLimits *lim, PlImageInfo *info) {
    PngJob job = {.path = path, .lim = lim, .channel = -1, .header_only = 1, .info = info};
    return png_job(&job);
}

PlStatus pl_png_decode(const char *path, const PlDecodeLimits *lim, int channel, PlImage *io) {
    PngJob job = {.path = path, .lim = lim, .channel = channel, .io = io};
    return png_job(&job);
}
