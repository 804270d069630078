// Random-access byte sources (a file read with pread, or a memory buffer) that checkpoint parsers read from.
// Ownership: a file source owns its descriptor (closed by pl_bytesource_close); a memory source borrows its bytes.
#ifndef PL_BYTESOURCE_H
#define PL_BYTESOURCE_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"

typedef struct PlByteSource {
    const char *name;                   // file path or a label, for messages (borrowed)
    uint64_t size;
    int fd;                             // -1 for memory sources
    const unsigned char *mem;           // NULL for file sources
} PlByteSource;

PlStatus pl_bytesource_open_file(PlByteSource *src, const char *path);
void pl_bytesource_open_memory(PlByteSource *src, const void *data, size_t size, const char *name);
// Read exactly n bytes at `offset`; fails (naming the source) when the range lies outside it.
PlStatus pl_bytesource_read(const PlByteSource *src, uint64_t offset, void *buf, size_t n);
void pl_bytesource_close(PlByteSource *src);

#endif
