// Decoding TIFF and PNG files (and "file#k" channel references) into PlImage, with limits against bombs.
//
// Supported: TIFF (libtiff, classic and BigTIFF) 8/16/32-bit unsigned integer and 32-bit float samples,
// single- and multi-page, contiguous (interleaved) and planar (separate) multi-sample, strips and tiles,
// compression none/LZW/deflate/zstd/packbits (whatever the installed libtiff decodes); PNG (libpng)
// 8/16-bit grey, grey+alpha, RGB, RGBA. Rejected with a clear error naming the file: zero-byte, truncated,
// 1/2/4-bit, palette images, signed or 64-bit samples, NaN/Inf floats (unless the policy replaces them),
// images larger than the limits (checked from the header BEFORE any pixel buffer is allocated).
//
// Channels of a file are numbered in "flattened" order: for each page (TIFF directory) in file order,
// each sample of that page. So an OpenCell-style 2-page TIFF has channels #0 (page 0) and #1 (page 1);
// an RGB PNG has #0 red, #1 green, #2 blue; a 1-page 3-sample TIFF has #0..#2. All channels of one file
// must share width and height to be read together (pl_image_read_all); a single channel can always be read.
//
// Values are raw sample values as float (no scaling): uint16 65535 → 65535.0f. PlImage.bits /
// is_float record the source depth for later [0,1] scaling (pl_normalise.h).
// Ownership: every function fills a caller-provided PlImage that the caller later frees with
// pl_image_free (the _reuse variants keep and grow the existing buffer).
// Thread safety: all functions are reentrant (per-file libtiff/libpng error handlers, no globals).
#ifndef PL_DECODE_H
#define PL_DECODE_H

#include <stdint.h>
#include "pl_error.h"
#include "pl_image.h"

typedef enum PlNanPolicy {
    PL_NAN_ERROR = 0,   // a NaN/Inf float sample is an error naming the file, channel, row and column
    PL_NAN_ZERO = 1     // NaN/Inf samples are replaced by 0 silently
} PlNanPolicy;

typedef struct PlDecodeLimits {
    uint64_t max_pixels;     // max width*height of one channel (default 1<<28 = 268 Mpx, i.e. 16384²)
    uint64_t max_channels;   // max channels in one file (pages × samples) (default 4096)
    uint64_t max_side;       // max width or height (default 1<<20)
    PlNanPolicy nan_policy;  // default PL_NAN_ERROR
} PlDecodeLimits;

// Fill `limits` with the defaults above. Passing limits = NULL to any function means these defaults.
void pl_decode_limits_default(PlDecodeLimits *limits);

typedef enum PlImageFormat { PL_FORMAT_UNKNOWN = 0, PL_FORMAT_TIFF = 1, PL_FORMAT_PNG = 2 } PlImageFormat;

// Header information of a file (no pixels decoded).
typedef struct PlImageInfo {
    PlImageFormat format;
    int channels;      // total channels in flattened order (pages × samples)
    int pages;         // TIFF directories (1 for PNG)
    int height, width; // of the first page
    int bits;          // bits per sample of the first page
    int is_float;
    int uniform;       // 1 when every page has the same size, depth and sample count
} PlImageInfo;

// Split "path#k" into a malloc'd path and channel index (k = 0 when there is no '#k' suffix; a '#' not
// followed by only digits is part of the path). Caller frees *path.
PlStatus pl_image_ref_parse(const char *ref, char **path, int *channel);

// Read the header of `path` (no '#' suffix) and fill `info`.
PlStatus pl_image_probe(const char *path, const PlDecodeLimits *limits, PlImageInfo *info);

// Decode one channel selected by a reference "file.tif#1" / "file.png#2" / "file.tif" (= #0) into
// `out` as (1, H, W). `out` is overwritten (not freed first): pass a zeroed or already-freed PlImage.
PlStatus pl_image_read(const char *ref, const PlDecodeLimits *limits, PlImage *out);
// Decode every channel of `path` (flattened order) into `out` as (C, H, W); all must share H, W, depth.
PlStatus pl_image_read_all(const char *path, const PlDecodeLimits *limits, PlImage *out);

// As pl_image_read, but `io` is either zeroed or a PlImage from a previous read whose buffer is reused
// when large enough (no allocation in steady state; see PlImage.capacity).
PlStatus pl_image_read_reuse(const char *ref, const PlDecodeLimits *limits, PlImage *io);

#endif
