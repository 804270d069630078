// TIFF decoding with libtiff: pages × samples as channels, strips/tiles, planar/contiguous, per-file error handlers.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <zlib.h>

#include "pl_decode_priv.h"

// libtiff messages for one open file (first error kept: it is usually the root cause).
typedef struct TiffMsg {
    char text[512];
} TiffMsg;

static int tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif;
    TiffMsg *m = user;
    if (m && m->text[0] == '\0') {
        char body[448];
        vsnprintf(body, sizeof body, fmt, ap);
        snprintf(m->text, sizeof m->text, "%s%s%s", module ? module : "", module ? ": " : "", body);
    }
    return 1;   // handled: never reach the global handler
}

static int tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;   // unknown tags and similar: ignore silently
}

static PlStatus tiff_open(const char *path, TiffMsg *msg, TIFF **out) {
    msg->text[0] = '\0';
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return PL_FAIL(PL_ERR_NOMEM, "%s: cannot allocate libtiff options", path);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_on_error, msg);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_on_warning, msg);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)1 << 31);
    TIFF *tif = TIFFOpenExt(path, "r", opts);
    TIFFOpenOptionsFree(opts);
    if (!tif) return PL_FAIL(PL_ERR_FORMAT, "%s: not a readable TIFF: %s", path, msg->text[0] ? msg->text : "libtiff failed to open it");
    *out = tif;
    return PL_OK;
}

typedef struct TiffPage {
    uint32_t width, height;
    uint16_t spp, bps, format, planar, photometric, compression;
    int tiled;
} TiffPage;

// Read and validate the current directory's layout; `page` is for messages.
static PlStatus tiff_page_info(TIFF *tif, const char *path, int page, const PlDecodeLimits *lim, TiffPage *p) {
    memset(p, 0, sizeof *p);
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &p->width) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &p->height))
        return PL_FAIL(PL_ERR_FORMAT, "%s: page %d has no image width/length tags", path, page);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &p->spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &p->bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &p->format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &p->planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &p->compression);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &p->photometric)) p->photometric = PHOTOMETRIC_MINISBLACK;
    p->tiled = TIFFIsTiled(tif);
    if (p->photometric == PHOTOMETRIC_PALETTE)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: page %d is a palette (colour-mapped) image; microscopy channels must be greyscale sample values", path, page);
    if (p->bps == 1)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: page %d is a 1-bit (bilevel) image; only 8/16/32-bit samples are supported", path, page);
    if (p->spp == 0) return PL_FAIL(PL_ERR_FORMAT, "%s: page %d declares 0 samples per pixel", path, page);
    if (p->format == SAMPLEFORMAT_VOID) p->format = SAMPLEFORMAT_UINT;
    if (p->format == SAMPLEFORMAT_UINT) {
        if (p->bps != 8 && p->bps != 16 && p->bps != 32)
            return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: page %d has %u-bit unsigned samples; only 8, 16 and 32 are supported", path, page, p->bps);
    } else if (p->format == SAMPLEFORMAT_IEEEFP) {
        if (p->bps != 32)
            return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: page %d has %u-bit floating-point samples; only float32 is supported", path, page, p->bps);
    } else {
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: page %d has %s samples; only unsigned integers and float32 are supported",
                       path, page, p->format == SAMPLEFORMAT_INT ? "signed integer" : "complex or unknown-format");
    }
    if (p->compression == COMPRESSION_JPEG || p->compression == COMPRESSION_OJPEG)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: page %d is JPEG-compressed (lossy); not supported for quantitative images", path, page);
    if (!TIFFIsCODECConfigured(p->compression))
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: page %d uses compression scheme %u, which this libtiff cannot decode", path, page, p->compression);
    PL_TRY(pl_decode_check_size(path, lim, p->width, p->height, p->spp));
    return PL_OK;
}

// Convert `n` samples starting at `src` (stride `step` samples) of the given type into floats.
static void convert_samples(const unsigned char *src, const TiffPage *p, size_t step, size_t n, float *dst) {
    if (p->bps == 8) {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i * step];
    } else if (p->bps == 16) {
        const uint16_t *s = (const uint16_t *)(const void *)src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i * step];
    } else if (p->format == SAMPLEFORMAT_IEEEFP) {
        const float *s = (const float *)(const void *)src;
        for (size_t i = 0; i < n; i++) dst[i] = s[i * step];
    } else {
        const uint32_t *s = (const uint32_t *)(const void *)src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i * step];
    }
}

// Deflate strips and tiles carry a zlib checksum, which libtiff never reaches: it stops inflating as soon as the
// block is full, so a corrupt stream can decode into plausible garbage. Inflate the raw block once more to its end;
// 0 when the stream is complete and its Adler-32 matches, else -1 with the reason in msg.
typedef struct TiffScratch {
    unsigned char *raw, *out;
    size_t raw_cap, out_cap;
} TiffScratch;

static int tiff_deflate_intact(TIFF *tif, uint32_t idx, int tiled, size_t out_bytes, TiffScratch *sc, TiffMsg *msg) {
    uint64_t *counts = NULL;
    if (!TIFFGetField(tif, tiled ? TIFFTAG_TILEBYTECOUNTS : TIFFTAG_STRIPBYTECOUNTS, &counts) || !counts) return 0;
    size_t n = (size_t)counts[idx];
    if (pl_grow((void **)&sc->raw, &sc->raw_cap, n ? n : 1, 1) != PL_OK ||
        pl_grow((void **)&sc->out, &sc->out_cap, out_bytes + 1, 1) != PL_OK)
        return 0;   // no memory for the check: libtiff's own decode stands
    tmsize_t got = tiled ? TIFFReadRawTile(tif, idx, sc->raw, (tmsize_t)n) : TIFFReadRawStrip(tif, idx, sc->raw, (tmsize_t)n);
    if (got < 0 || (size_t)got != n) return 0;   // libtiff reported the read itself
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return 0;
    z.next_in = sc->raw;
    z.avail_in = (uInt)n;
    z.next_out = sc->out;
    z.avail_out = (uInt)(out_bytes + 1);
    int rc = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if (rc == Z_STREAM_END) return 0;
    snprintf(msg->text, sizeof msg->text, "deflate stream %s (zlib: %s)",
             rc == Z_DATA_ERROR ? "is corrupt: its data or Adler-32 checksum does not match" : "is incomplete",
             z.msg ? z.msg : "no detail");
    return -1;
}

// Decode samples [s0, s0+ns) of the current directory into planar dst (ns, H, W).
static PlStatus tiff_decode_page(TIFF *tif, const char *path, int page, const TiffPage *p, int s0, int ns,
                                 TiffMsg *msg, float *dst) {
    const size_t W = p->width, H = p->height, bytes = p->bps / 8u;
    const int contig = p->planar == PLANARCONFIG_CONTIG || p->spp == 1;
    const size_t pix_samples = contig ? p->spp : 1;   // samples per pixel within one decoded block
    size_t plane = W * H;
    unsigned char *buf = NULL;
    PlStatus st = PL_OK;
    const int deflate = p->compression == COMPRESSION_ADOBE_DEFLATE || p->compression == COMPRESSION_DEFLATE;
    TiffScratch sc = {0};
    if (!p->tiled) {
        uint32_t rps = 0;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
        if (rps == 0 || rps > H) rps = (uint32_t)H;
        uint32_t strips_per_plane = (uint32_t)((H + rps - 1) / rps);
        uint32_t nstrips = TIFFNumberOfStrips(tif);
        uint32_t need_strips = contig ? strips_per_plane : strips_per_plane * p->spp;
        if (nstrips < need_strips)
            return PL_FAIL(PL_ERR_FORMAT, "%s: page %d declares %u strips, expected %u for %zu rows", path, page, nstrips, need_strips, H);
        size_t row_bytes = W * pix_samples * bytes;
        size_t strip_bytes = row_bytes * rps;
        buf = pl_malloc(strip_bytes);
        if (!buf) return PL_ERR_NOMEM;
        int planes = contig ? 1 : ns;
        for (int pl = 0; pl < planes && st == PL_OK; pl++) {
            int sample = contig ? 0 : s0 + pl;
            for (uint32_t s = 0; s < strips_per_plane; s++) {
                size_t y0 = (size_t)s * rps, rows = (y0 + rps > H) ? H - y0 : rps;
                uint32_t idx = (uint32_t)sample * strips_per_plane + s;
                msg->text[0] = '\0';
                tmsize_t got = TIFFReadEncodedStrip(tif, idx, buf, (tmsize_t)(rows * row_bytes));
                if (got < 0 || (size_t)got < rows * row_bytes || msg->text[0] ||
                    (deflate && tiff_deflate_intact(tif, idx, 0, strip_bytes, &sc, msg) != 0)) {
                    st = PL_FAIL(PL_ERR_FORMAT, "%s: page %d strip %u (rows %zu-%zu) is truncated or corrupt: %s", path,
                                 page, idx, y0, y0 + rows - 1, msg->text[0] ? msg->text : "short read");
                    break;
                }
                if (contig) {
                    for (int k = 0; k < ns; k++)
                        convert_samples(buf + (size_t)(s0 + k) * bytes, p, pix_samples, rows * W,
                                        dst + (size_t)k * plane + y0 * W);
                } else {
                    convert_samples(buf, p, 1, rows * W, dst + (size_t)pl * plane + y0 * W);
                }
            }
        }
    } else {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        if (tw == 0 || th == 0 || tw > 65536 || th > 65536)
            return PL_FAIL(PL_ERR_FORMAT, "%s: page %d has invalid tile size %u x %u", path, page, tw, th);
        size_t tile_row_bytes = (size_t)tw * pix_samples * bytes;
        size_t tile_bytes = tile_row_bytes * th;
        buf = pl_malloc(tile_bytes);
        if (!buf) return PL_ERR_NOMEM;
        int planes = contig ? 1 : ns;
        for (int pl = 0; pl < planes && st == PL_OK; pl++) {
            int sample = contig ? 0 : s0 + pl;
            for (size_t ty = 0; ty < H && st == PL_OK; ty += th) {
                for (size_t tx = 0; tx < W; tx += tw) {
                    uint32_t idx = TIFFComputeTile(tif, (uint32_t)tx, (uint32_t)ty, 0, (uint16_t)sample);
                    msg->text[0] = '\0';
                    tmsize_t got = TIFFReadEncodedTile(tif, idx, buf, (tmsize_t)tile_bytes);
                    if (got < 0 || (size_t)got < tile_bytes || msg->text[0] ||
                        (deflate && tiff_deflate_intact(tif, idx, 1, tile_bytes, &sc, msg) != 0)) {
                        st = PL_FAIL(PL_ERR_FORMAT, "%s: page %d tile %u (y %zu, x %zu) is truncated or corrupt: %s", path,
                                     page, idx, ty, tx, msg->text[0] ? msg->text : "short read");
                        break;
                    }
                    size_t rows = ty + th > H ? H - ty : th, cols = tx + tw > W ? W - tx : tw;
                    for (size_t r = 0; r < rows; r++) {
                        const unsigned char *row = buf + r * tile_row_bytes;
                        if (contig) {
                            for (int k = 0; k < ns; k++)
                                convert_samples(row + (size_t)(s0 + k) * bytes, p, pix_samples, cols,
                                                dst + (size_t)k * plane + (ty + r) * W + tx);
                        } else {
                            convert_samples(row, p, 1, cols, dst + (size_t)pl * plane + (ty + r) * W + tx);
                        }
                    }
                }
            }
        }
    }
    free(buf);
    free(sc.raw);
    free(sc.out);
    return st;
}

PlStatus pl_tiff_probe(const char *path, const PlDecodeLimits *lim, PlImageInfo *info) {
    TiffMsg msg;
    TIFF *tif = NULL;
    PL_TRY(tiff_open(path, &msg, &tif));
    memset(info, 0, sizeof *info);
    info->format = PL_FORMAT_TIFF;
    info->uniform = 1;
    PlStatus st = PL_OK;
    TiffPage first, p;
    memset(&first, 0, sizeof first);
    uint64_t channels = 0;
    int page = 0;
    do {
        st = tiff_page_info(tif, path, page, lim, &p);
        if (st != PL_OK) break;
        if (page == 0) first = p;
        else if (p.width != first.width || p.height != first.height || p.bps != first.bps ||
                 p.format != first.format || p.spp != first.spp)
            info->uniform = 0;
        channels += p.spp;
        page++;
        if (channels > lim->max_channels) {
            st = PL_FAIL(PL_ERR_LIMIT, "%s: more than %llu channels (pages × samples)", path,
                         (unsigned long long)lim->max_channels);
            break;
        }
    } while (TIFFReadDirectory(tif));
    if (st == PL_OK && msg.text[0] && page == 0)
        st = PL_FAIL(PL_ERR_FORMAT, "%s: %s", path, msg.text);
    if (st == PL_OK) {
        info->pages = page;
        info->channels = (int)channels;
        info->width = (int)first.width;
        info->height = (int)first.height;
        info->bits = first.bps;
        info->is_float = first.format == SAMPLEFORMAT_IEEEFP;
    }
    TIFFClose(tif);
    return st;
}

PlStatus pl_tiff_decode(const char *path, const PlDecodeLimits *lim, int channel, PlImage *io) {
    PlImageInfo info;
    if (channel < 0) {
        // all channels: size the buffer once from the header walk (every page must match page 0)
        PL_TRY(pl_tiff_probe(path, lim, &info));
        if (!info.uniform)
            return PL_FAIL(PL_ERR_FORMAT, "%s: pages differ in size, depth or samples; read channels one by one (file#k)", path);
        PL_TRY(pl_image_reshape(io, info.channels, info.height, info.width));
        io->bits = info.bits;
        io->is_float = info.is_float;
    }
    TiffMsg msg;
    TIFF *tif = NULL;
    PL_TRY(tiff_open(path, &msg, &tif));
    PlStatus st = PL_OK;
    TiffPage p;
    int page = 0, base = 0, done = 0;
    do {
        st = tiff_page_info(tif, path, page, lim, &p);
        if (st != PL_OK) break;
        if (channel >= 0) {
            if (channel < base + p.spp) {
                st = pl_image_reshape(io, 1, (int)p.height, (int)p.width);
                if (st == PL_OK) st = tiff_decode_page(tif, path, page, &p, channel - base, 1, &msg, io->data);
                if (st == PL_OK) {
                    io->bits = p.bps;
                    io->is_float = p.format == SAMPLEFORMAT_IEEEFP;
                }
                done = 1;
                break;
            }
        } else {
            if (base + p.spp > info.channels || (int)p.width != info.width || (int)p.height != info.height) {
                st = PL_FAIL(PL_ERR_FORMAT, "%s: page %d changed while reading", path, page);
                break;
            }
            size_t plane = (size_t)p.width * p.height;
            st = tiff_decode_page(tif, path, page, &p, 0, p.spp, &msg, io->data + (size_t)base * plane);
            if (st != PL_OK) break;
        }
        base += p.spp;
        page++;
    } while (TIFFReadDirectory(tif));
    if (st == PL_OK && channel >= 0 && !done)
        st = PL_FAIL(PL_ERR_ARG, "%s: channel #%d requested but the file has %d channel%s (pages × samples)", path,
                     channel, base, base == 1 ? "" : "s");
    TIFFClose(tif);
    return st;
}
