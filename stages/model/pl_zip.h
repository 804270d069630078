// Minimal bounds-checked reader for the stored (uncompressed) zip archives that torch.save writes.
// Ownership: a PlZip owns its entry table (names included); it borrows the byte source, which must outlive it.
#ifndef PL_ZIP_H
#define PL_ZIP_H

#include <stddef.h>
#include <stdint.h>
#include "pl_bytesource.h"

#define PL_ZIP_MAX_ENTRIES 1000000

typedef struct PlZipEntry {
    char *name;             // full name inside the archive, e.g. "archive/data/0"
    uint64_t data_offset;   // where the stored bytes start in the source
    uint64_t size;          // uncompressed (= stored) size
    uint32_t crc32;         // from the central directory
} PlZipEntry;

typedef struct PlZip {
    const PlByteSource *src;
    PlZipEntry *entries;
    size_t count;
} PlZip;

// Parse the end-of-central-directory record (zip64 too), the central directory and every local header.
// Fails on compressed or encrypted entries, on any offset or size outside the file, and on overlaps with
// the central directory.
PlStatus pl_zip_open(PlZip *z, const PlByteSource *src);
const PlZipEntry *pl_zip_find(const PlZip *z, const char *name);
// Read a whole entry into `buf` (entry->size bytes) and verify its CRC-32.
PlStatus pl_zip_read(const PlZip *z, const PlZipEntry *e, void *buf);
void pl_zip_close(PlZip *z);

// CRC-32 (IEEE 802.3, as zip uses): pass 0 to start, feed chunks, the return value is the running CRC.
uint32_t pl_crc32(uint32_t crc, const void *data, size_t n);

#endif
