// Private interface between the decode dispatcher (pl_decode.c) and the TIFF / PNG readers; not for other modules.
#ifndef PL_DECODE_PRIV_H
#define PL_DECODE_PRIV_H

#include "pl_decode.h"

// Read the header of a TIFF / PNG file into `info` (channels counted over all pages for TIFF).
PlStatus pl_tiff_probe(const char *path, const PlDecodeLimits *lim, PlImageInfo *info);
PlStatus pl_png_probe(const char *path, const PlDecodeLimits *lim, PlImageInfo *info);
// Decode channel `channel` (>= 0) or, when channel < 0, every channel into `io` (reused buffer).
PlStatus pl_tiff_decode(const char *path, const PlDecodeLimits *lim, int channel, PlImage *io);
PlStatus pl_png_decode(const char *path, const PlDecodeLimits *lim, int channel, PlImage *io);
// Shared limit check (before allocating): names the file and the declared size.
PlStatus pl_decode_check_size(const char *path, const PlDecodeLimits *lim, uint64_t width, uint64_t height,
                              uint64_t channels);

#endif
