// Random-access byte sources for checkpoint parsers: pread on a file descriptor or memcpy from a buffer.
#include "pl_bytesource.h"

#include "pl_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

PlStatus pl_bytesource_open_file(PlByteSource *src, const char *path) {
    memset(src, 0, sizeof *src);
    src->fd = -1;
    src->name = path;
    int fd;
    PL_TRY(pl_open_regular(path, &fd));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    src->fd = fd;
    src->size = (uint64_t)sb.st_size;
    return PL_OK;
}

void pl_bytesource_open_memory(PlByteSource *src, const void *data, size_t size, const char *name) {
    memset(src, 0, sizeof *src);
    src->fd = -1;
    src->name = name ? name : "<memory>";
    src->mem = data;
    src->size = size;
}

PlStatus pl_bytesource_read(const PlByteSource *src, uint64_t offset, void *buf, size_t n) {
    if (offset > src->size || n > src->size - offset)
        return PL_FAIL(PL_ERR_FORMAT, "%s: truncated: needs bytes %llu..%llu but the file has %llu", src->name,
                       (unsigned long long)offset, (unsigned long long)offset + n, (unsigned long long)src->size);
    if (n == 0) return PL_OK;
    if (src->mem) {
        memcpy(buf, src->mem + offset, n);
        return PL_OK;
    }
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = pread(src->fd, p, n, (off_t)offset);
        if (got < 0) {
            if (errno == EINTR) continue;
            return PL_FAIL(PL_ERR_IO, "%s: read failed at offset %llu: %s", src->name, (unsigned long long)offset,
                           strerror(errno));
        }
        if (got == 0)
            return PL_FAIL(PL_ERR_IO, "%s: file shrank while reading (offset %llu)", src->name,
                           (unsigned long long)offset);
        p += got;
        n -= (size_t)got;
        offset += (uint64_t)got;
    }
    return PL_OK;
}

void pl_bytesource_close(PlByteSource *src) {
    if (src->fd >= 0) close(src->fd);
    src->fd = -1;
}
