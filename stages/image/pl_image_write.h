// Writing PlImage as TIFF (one page per channel) or PNG (one channel), atomically (temp file + rename).
//
// Sample conversion: for integer outputs each float value is rounded to nearest and clamped to
// [0, 2^bits - 1] (NaN → 0); 32-bit output writes IEEE float32 samples unchanged. Pixel values are
// written as they are: no rescaling, so a mask with labels 1..N written at 16 bits reads back exactly.
// On any failure nothing is left at `path` (the temp file is removed) and the error names the file.
// Thread safety: reentrant (per-file libtiff handlers; libpng setjmp confined to one function).
#ifndef PL_IMAGE_WRITE_H
#define PL_IMAGE_WRITE_H

#include "pl_error.h"
#include "pl_image.h"

typedef enum PlTiffCompression {
    PL_TIFF_NONE = 0,
    PL_TIFF_LZW = 1,
    PL_TIFF_DEFLATE = 2,   // zlib/Adobe deflate, with horizontal predictor for integers
    PL_TIFF_ZSTD = 3,
    PL_TIFF_PACKBITS = 4
} PlTiffCompression;

// "none", "lzw", "deflate" (or "zip"), "zstd", "packbits" → enum; unknown names → PL_ERR_ARG.
PlStatus pl_tiff_compression_parse(const char *name, PlTiffCompression *out);
const char *pl_tiff_compression_name(PlTiffCompression c);

// Write all channels of `img` as a multi-page TIFF (page k = channel k, single sample, strips),
// `bits` = 8 or 16 (unsigned integer) or 32 (float32). BigTIFF is used automatically above 3.5 GiB.
PlStatus pl_tiff_write(const char *path, const PlImage *img, int bits, PlTiffCompression compression);

// Write channel `channel` of `img` as a greyscale PNG with `bits` = 8 or 16.
PlStatus pl_png_write(const char *path, const PlImage *img, int channel, int bits);
// Write 3 (RGB) or 4 (RGBA) channels of `img`, starting at channel `first`, as one colour PNG.
PlStatus pl_png_write_color(const char *path, const PlImage *img, int first, int n_channels, int bits);

#endif
