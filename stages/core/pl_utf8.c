// UTF-8 validation (see pl_utf8.h), following the well-formed byte sequences of Unicode's Table 3-7.
#include "pl_utf8.h"

int pl_utf8_valid(const char *s, size_t n, size_t *bad) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        if (ok && len >= 2) {
            unsigned char lo = 0x80, hi = 0xbf;   // the second byte's range depends on the first
            if (c == 0xe0) lo = 0xa0;
            else if (c == 0xed) hi = 0x9f;        // no UTF-16 surrogates
            else if (c == 0xf0) lo = 0x90;
            else if (c == 0xf4) hi = 0x8f;        // <= U+10FFFF
            ok = u[i + 1] >= lo && u[i + 1] <= hi;
            for (size_t k = 2; ok && k < len; k++) ok = u[i + k] >= 0x80 && u[i + k] <= 0xbf;
        }
        if (!ok) {
            if (bad) *bad = i;
            return 0;
        }
        i += len;
    }
    return 1;
}
