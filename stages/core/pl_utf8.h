// UTF-8 validation of text that ends up in stores and reports (HDF5 UTF-8 strings, h5py, anndata reject bad bytes).
#ifndef PL_UTF8_H
#define PL_UTF8_H

#include <stddef.h>

// 1 when s[0..n) is well-formed UTF-8 (no overlong forms, no surrogates, code points <= U+10FFFF); else 0 with
// *bad (when not NULL) = the byte offset of the first invalid sequence.
int pl_utf8_valid(const char *s, size_t n, size_t *bad);

#endif
