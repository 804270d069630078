// Zip reader for torch.save archives: EOCD / zip64 EOCD, central directory, local headers, CRC-32 check.
#include "pl_zip.h"

#include <stdlib.h>
#include <string.h>

#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define SIG_CDH 0x02014b50u
#define SIG_LFH 0x04034b50u

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

static uint32_t crc_table[16][256];
static int crc_ready;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 16; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    crc_ready = 1;   // idempotent: racing initialisers write identical values
}

uint32_t pl_crc32(uint32_t crc, const void *data, size_t n) {
    if (!crc_ready) crc_init();
    const unsigned char *p = data;
    uint32_t c = ~crc;
    while (n >= 16) {   // slicing-by-16
        uint32_t a = c ^ rd32(p), b = rd32(p + 4), d = rd32(p + 8), e = rd32(p + 12);
        c = crc_table[15][a & 0xff] ^ crc_table[14][(a >> 8) & 0xff] ^ crc_table[13][(a >> 16) & 0xff] ^
            crc_table[12][a >> 24] ^ crc_table[11][b & 0xff] ^ crc_table[10][(b >> 8) & 0xff] ^
            crc_table[9][(b >> 16) & 0xff] ^ crc_table[8][b >> 24] ^ crc_table[7][d & 0xff] ^
            crc_table[6][(d >> 8) & 0xff] ^ crc_table[5][(d >> 16) & 0xff] ^ crc_table[4][d >> 24] ^
            crc_table[3][e & 0xff] ^ crc_table[2][(e >> 8) & 0xff] ^ crc_table[1][(e >> 16) & 0xff] ^
            crc_table[0][e >> 24];
        p += 16;
        n -= 16;
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

// Locate the end-of-central-directory record; fills cd offset/size/count (zip64-aware) and where the
// central directory must end.
static PlStatus zip_find_directory(const PlByteSource *src, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count) {
    const char *name = src->name;
    if (src->size < 22) return PL_FAIL(PL_ERR_FORMAT, "%s: truncated zip archive (%llu bytes)", name,
                                       (unsigned long long)src->size);
    uint64_t tail = src->size < 22 + 65535 ? src->size : 22 + 65535;
    unsigned char *buf = pl_malloc((size_t)tail);
    if (!buf) return PL_ERR_NOMEM;
    PlStatus st = pl_bytesource_read(src, src->size - tail, buf, (size_t)tail);
    if (st != PL_OK) {
        free(buf);
        return st;
    }
    int64_t at = -1;
    for (int64_t i = (int64_t)tail - 22; i >= 0; i--) {
        if (rd32(buf + i) == SIG_EOCD && (uint64_t)i + 22 + rd16(buf + i + 20) == tail) {
            at = i;
            break;
        }
    }
    if (at < 0) {
        free(buf);
        return PL_FAIL(PL_ERR_FORMAT,
                       "%s: no zip end-of-central-directory record (the archive is truncated or not a zip file)",
                       name);
    }
    const unsigned char *e = buf + at;
    uint64_t eocd_pos = src->size - tail + (uint64_t)at;
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0) {
        free(buf);
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", name);
    }
    *count = rd16(e + 10);
    *cd_size = rd32(e + 12);
    *cd_off = rd32(e + 16);
    free(buf);
    if (*count == 0xffff || *cd_size == 0xffffffffu || *cd_off == 0xffffffffu) {
        unsigned char loc[20], rec[56];
        if (eocd_pos < 20) return PL_FAIL(PL_ERR_FORMAT, "%s: zip64 locator missing", name);
        PL_TRY(pl_bytesource_read(src, eocd_pos - 20, loc, 20));
        if (rd32(loc) != SIG_EOCD64_LOC) return PL_FAIL(PL_ERR_FORMAT, "%s: zip64 locator missing", name);
        uint64_t rec_off = rd64(loc + 8);
        if (rec_off > eocd_pos - 20 || eocd_pos - 20 - rec_off < 56)
            return PL_FAIL(PL_ERR_FORMAT, "%s: zip64 end record offset %llu is out of range", name,
                           (unsigned long long)rec_off);
        PL_TRY(pl_bytesource_read(src, rec_off, rec, 56));
        if (rd32(rec) != SIG_EOCD64) return PL_FAIL(PL_ERR_FORMAT, "%s: bad zip64 end record signature", name);
        *count = rd64(rec + 32);
        *cd_size = rd64(rec + 40);
        *cd_off = rd64(rec + 48);
        eocd_pos = rec_off;
    }
    if (*cd_off > eocd_pos || *cd_size > eocd_pos - *cd_off)
        return PL_FAIL(PL_ERR_FORMAT, "%s: zip central directory (offset %llu, %llu bytes) lies outside the file",
                       name, (unsigned long long)*cd_off, (unsigned long long)*cd_size);
    if (*count > PL_ZIP_MAX_ENTRIES || *count > *cd_size / 46)
        return PL_FAIL(PL_ERR_FORMAT, "%s: zip claims %llu entries in a %llu-byte central directory", name,
                       (unsigned long long)*count, (unsigned long long)*cd_size);
    return PL_OK;
}

// Parse one central-directory header at cd[pos]; advance pos.
static PlStatus zip_parse_cdh(const PlByteSource *src, const unsigned char *cd, uint64_t cd_size, uint64_t *pos,
                              uint64_t cd_off, PlZipEntry *e) {
    const char *name = src->name;
    if (cd_size - *pos < 46 || rd32(cd + *pos) != SIG_CDH)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt zip central directory at offset %llu", name,
                       (unsigned long long)(cd_off + *pos));
    const unsigned char *h = cd + *pos;
    uint16_t flags = rd16(h + 8), method = rd16(h + 10);
    uint32_t crc = rd32(h + 16);
    uint64_t csize = rd32(h + 20), usize = rd32(h + 24), lho = rd32(h + 42);
    size_t nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
    if (cd_size - *pos - 46 < (uint64_t)nlen + xlen + clen)
        return PL_FAIL(PL_ERR_FORMAT, "%s: corrupt zip central directory (entry runs past its end)", name);
    e->name = pl_malloc(nlen + 1);
    if (!e->name) return PL_ERR_NOMEM;
    memcpy(e->name, h + 46, nlen);
    e->name[nlen] = '\0';
    if (memchr(e->name, '\0', nlen)) return PL_FAIL(PL_ERR_FORMAT, "%s: zip entry name contains NUL", name);
    // zip64 extended information: only the fields whose 32-bit value is saturated, in this order
    const unsigned char *x = h + 46 + nlen, *xend = x + xlen;
    while (xend - x >= 4) {
        uint16_t id = rd16(x), sz = rd16(x + 2);
        if ((size_t)(xend - x - 4) < sz) return PL_FAIL(PL_ERR_FORMAT, "%s: zip entry %s: bad extra field", name,
                                                      e->name);
        if (id == 0x0001) {
            const unsigned char *q = x + 4, *qend = x + 4 + sz;
            uint64_t *fields[3] = {&usize, &csize, &lho};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != 0xffffffffu) continue;
                if (qend - q < 8)
                    return PL_FAIL(PL_ERR_FORMAT, "%s: zip entry %s: truncated zip64 extra field", name, e->name);
                *fields[k] = rd64(q);
                q += 8;
            }
        }
        x += 4 + sz;
    }
    if (flags & 1) return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: zip entry %s is encrypted", name, e->name);
    if (method != 0)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: zip entry %s is compressed (method %u); torch.save writes stored entries",
                       name, e->name, method);
    if (csize != usize)
        return PL_FAIL(PL_ERR_FORMAT, "%s: zip entry %s: stored sizes differ (%llu vs %llu)", name, e->name,
                       (unsigned long long)csize, (unsigned long long)usize);
    // local header: only its name/extra lengths matter (sizes and CRC come from the central directory)
    unsigned char lh[30];
    if (lho > cd_off || cd_off - lho < 30)
        return PL_FAIL(PL_ERR_FORMAT, "%s: zip entry %s: local header offset %llu out of range", name, e->name,
                       (unsigned long long)lho);
    PL_TRY(pl_bytesource_read(src, lho, lh, 30));
    if (rd32(lh) != SIG_LFH) return PL_FAIL(PL_ERR_FORMAT, "%s: zip entry %s: bad local header signature", name,
                                            e->name);
    uint64_t data = lho + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (data > cd_off || usize > cd_off - data)
        return PL_FAIL(PL_ERR_FORMAT, "%s: zip entry %s: data (%llu bytes at %llu) runs past the archive's data area",
                       name, e->name, (unsigned long long)usize, (unsigned long long)data);
    e->data_offset = data;
    e->size = usize;
    e->crc32 = crc;
    *pos += 46 + nlen + xlen + clen;
    return PL_OK;
}

PlStatus pl_zip_open(PlZip *z, const PlByteSource *src) {
    memset(z, 0, sizeof *z);
    z->src = src;
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    PL_TRY(zip_find_directory(src, &cd_off, &cd_size, &count));
    unsigned char *cd = pl_malloc((size_t)cd_size);
    if (!cd) return PL_ERR_NOMEM;
    PlStatus st = pl_bytesource_read(src, cd_off, cd, (size_t)cd_size);
    if (st == PL_OK) {
        z->entries = pl_calloc(count ? (size_t)count : 1, sizeof *z->entries);
        if (!z->entries) st = PL_ERR_NOMEM;
    }
    uint64_t pos = 0;
    for (uint64_t i = 0; st == PL_OK && i < count; i++) {
        st = zip_parse_cdh(src, cd, cd_size, &pos, cd_off, &z->entries[i]);
        z->count = (size_t)i + 1;   // so close() frees a partially filled name
    }
    free(cd);
    if (st != PL_OK) pl_zip_close(z);
    return st;
}

const PlZipEntry *pl_zip_find(const PlZip *z, const char *name) {
    for (size_t i = 0; i < z->count; i++)
        if (z->entries[i].name && strcmp(z->entries[i].name, name) == 0) return &z->entries[i];
    return NULL;
}

PlStatus pl_zip_read(const PlZip *z, const PlZipEntry *e, void *buf) {
    // read and checksum in cache-sized chunks, so the CRC pass finds the bytes still in cache
    enum { CHUNK = 256 << 10 };
    unsigned char *p = buf;
    uint32_t crc = 0;
    for (uint64_t off = 0; off < e->size; off += CHUNK) {
        size_t n = e->size - off < CHUNK ? (size_t)(e->size - off) : CHUNK;
        PL_TRY(pl_bytesource_read(z->src, e->data_offset + off, p + off, n));
        crc = pl_crc32(crc, p + off, n);
    }
    if (crc != e->crc32)
        return PL_FAIL(PL_ERR_FORMAT, "%s: zip entry %s is corrupt (CRC-32 %08x, expected %08x)", z->src->name,
                       e->name, crc, e->crc32);
    return PL_OK;
}

void pl_zip_close(PlZip *z) {
    for (size_t i = 0; i < z->count; i++) free(z->entries[i].name);
    free(z->entries);
    z->entries = NULL;
    z->count = 0;
}
