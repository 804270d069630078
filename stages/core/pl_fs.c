// Crash-safe output files and small file-system helpers (see pl_fs.h).
#include "pl_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_uint temp_counter;

char *pl_temp_path_for(const char *final_path) {
    size_t n = strlen(final_path) + 64;
    char *p = pl_malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s.tmp.%ld.%u", final_path, (long)getpid(), atomic_fetch_add(&temp_counter, 1));
    return p;
}

PlStatus pl_fsync_parent_dir(const char *path) {
    char *copy = pl_strdup(path);
    if (!copy) return PL_ERR_NOMEM;
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
        free(copy);
        return st;
    }
    PlStatus st = PL_OK;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        st = PL_FAIL(PL_ERR_IO, "fsync of directory %s failed: %s", dir, strerror(errno));
    close(fd);
    free(copy);
    return st;
}

PlStatus pl_atomic_open(PlAtomicFile *af, const char *final_path) {
    memset(af, 0, sizeof *af);
    af->final_path = pl_strdup(final_path);
    af->temp_path = pl_temp_path_for(final_path);
    if (!af->final_path || !af->temp_path) {
        pl_atomic_abort(af);
        return PL_ERR_NOMEM;
    }
    af->fp = fopen(af->temp_path, "wb");
    if (!af->fp) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot create %s: %s", af->temp_path, strerror(errno));
        pl_atomic_abort(af);
        return st;
    }
    return PL_OK;
}

PlStatus pl_atomic_commit(PlAtomicFile *af) {
    PlStatus st = PL_OK;
    if (fflush(af->fp) != 0) st = PL_FAIL(PL_ERR_IO, "cannot write %s: %s", af->temp_path, strerror(errno));
    if (st == PL_OK && fsync(fileno(af->fp)) != 0)
        st = PL_FAIL(PL_ERR_IO, "fsync of %s failed: %s", af->temp_path, strerror(errno));
    if (fclose(af->fp) != 0 && st == PL_OK)
        st = PL_FAIL(PL_ERR_IO, "cannot close %s: %s", af->temp_path, strerror(errno));
    af->fp = NULL;
    if (st == PL_OK && rename(af->temp_path, af->final_path) != 0)
        st = PL_FAIL(PL_ERR_IO, "cannot rename %s to %s: %s", af->temp_path, af->final_path, strerror(errno));
    if (st == PL_OK) st = pl_fsync_parent_dir(af->final_path);
    if (st != PL_OK) unlink(af->temp_path);
    free(af->final_path);
    free(af->temp_path);
    memset(af, 0, sizeof *af);
    return st;
}

void pl_atomic_abort(PlAtomicFile *af) {
    if (af->fp) fclose(af->fp);
    if (af->temp_path) unlink(af->temp_path);
    free(af->final_path);
    free(af->temp_path);
    memset(af, 0, sizeof *af);
}

PlStatus pl_file_write_atomic(const char *path, const void *data, size_t size) {
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, path));
    if (size && fwrite(data, 1, size, af.fp) != size) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot write %s: %s", af.temp_path, strerror(errno));
        pl_atomic_abort(&af);
        return st;
    }
    return pl_atomic_commit(&af);
}

PlStatus pl_file_commit_rename(const char *temp_path, const char *final_path) {
    int fd = open(temp_path, O_RDONLY);
    if (fd < 0) return PL_FAIL(PL_ERR_IO, "cannot open %s: %s", temp_path, strerror(errno));
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0) return PL_FAIL(PL_ERR_IO, "fsync of %s failed: %s", temp_path, strerror(saved));
    if (rename(temp_path, final_path) != 0)
        return PL_FAIL(PL_ERR_IO, "cannot rename %s to %s: %s", temp_path, final_path, strerror(errno));
    return pl_fsync_parent_dir(final_path);
}

PlStatus pl_file_read_all(const char *path, size_t max_size, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return PL_FAIL(PL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return PL_FAIL(PL_ERR_IO, "%s is not a regular file", path);
    }
    if ((size_t)sb.st_size > max_size) {
        fclose(fp);
        return PL_FAIL(PL_ERR_LIMIT, "%s is %lld bytes, more than the limit of %zu", path, (long long)sb.st_size,
                       max_size);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = pl_malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return PL_ERR_NOMEM;
    }
    if (n && fread(buf, 1, n, fp) != n) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot read %s: %s", path, ferror(fp) ? strerror(errno) : "short read");
        free(buf);
        fclose(fp);
        return st;
    }
    fclose(fp);
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return PL_OK;
}

PlStatus pl_mkdir_p(const char *path) {
    char *copy = pl_strdup(path);
    if (!copy) return PL_ERR_NOMEM;
    for (char *p = copy + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
                PlStatus st = PL_FAIL(PL_ERR_IO, "cannot create directory %s: %s", copy, strerror(errno));
                free(copy);
                return st;
            }
            *p = saved;
            if (saved == '\0') break;
        }
    }
    free(copy);
    return PL_OK;
}
