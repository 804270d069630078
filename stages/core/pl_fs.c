// Crash-safe output files and small file-system helpers (see pl_fs.h).
#include "pl_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static atomic_uint temp_counter;

char *pl_temp_path_for(const char *final_path) {
    size_t n = strlen(final_path) + 64;
    char *p = pl_malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s.tmp.%ld.%u", final_path, (long)getpid(), atomic_fetch_add(&temp_counter, 1));
    return p;
}

void pl_fs_space_note(const char *path, char *note, size_t size) {
    if (size) note[0] = '\0';
    char *copy = pl_strdup(path);
    if (!copy) return;
    const char *dir = dirname(copy);
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0) {
        unsigned long long free_bytes = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
        if (vfs.f_flag & ST_RDONLY)
            snprintf(note, size, "; %s is on a read-only file system", dir);
        else if (free_bytes < (1ull << 20))   // less than 1 MiB left: the write ran out of space
            snprintf(note, size, "; the file system holding %s is full (%llu KiB free)", dir, free_bytes >> 10);
    }
    free(copy);
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

PlStatus pl_fs_write_fail(const char *file, int line, const char *verb, const char *path, int err) {
    char note[512];
    pl_fs_space_note(path, note, sizeof note);   // statvfs may change errno: `err` was saved by the caller
    return pl_error_set(PL_ERR_IO, file, line, "%s %s: %s%s", verb, path, err ? strerror(err) : "write failed",
                        note);
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
        PlStatus st = PL_FS_WRITE_FAIL("cannot create", af->temp_path, errno);
        pl_atomic_abort(af);
        return st;
    }
    return PL_OK;
}

PlStatus pl_atomic_sync(PlAtomicFile *af) {
    if (fflush(af->fp) != 0) return PL_FS_WRITE_FAIL("cannot write", af->temp_path, errno);
    if (ferror(af->fp)) return PL_FS_WRITE_FAIL("cannot write", af->temp_path, 0);   // an earlier unchecked write
    if (fsync(fileno(af->fp)) != 0) return PL_FS_WRITE_FAIL("cannot sync", af->temp_path, errno);
    return PL_OK;
}

PlStatus pl_atomic_commit(PlAtomicFile *af) {
    PlStatus st = pl_atomic_sync(af);
    if (fclose(af->fp) != 0 && st == PL_OK) st = PL_FS_WRITE_FAIL("cannot close", af->temp_path, errno);
    af->fp = NULL;
    if (st == PL_OK && rename(af->temp_path, af->final_path) != 0) {
        int err = errno;
        char note[512];
        pl_fs_space_note(af->final_path, note, sizeof note);
        st = PL_FAIL(PL_ERR_IO, "cannot rename %s to %s: %s%s", af->temp_path, af->final_path, strerror(err), note);
    }
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
        PlStatus st = PL_FS_WRITE_FAIL("cannot write", af.temp_path, errno);
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
    if (rc != 0) return PL_FS_WRITE_FAIL("cannot sync", temp_path, saved);
    if (rename(temp_path, final_path) != 0) {
        int err = errno;
        char note[512];
        pl_fs_space_note(final_path, note, sizeof note);
        return PL_FAIL(PL_ERR_IO, "cannot rename %s to %s: %s%s", temp_path, final_path, strerror(err), note);
    }
    return pl_fsync_parent_dir(final_path);
}

static const char *fs_kind(mode_t m) {
    return S_ISREG(m) ? "a file" : S_ISFIFO(m) ? "a FIFO (named pipe)" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

PlStatus pl_open_regular(const char *path, int *fd) {
    *fd = -1;
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (f < 0) return PL_FAIL(PL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(f, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "%s is %s, not a regular file", path, fs_kind(sb.st_mode));
        close(f);
        return st;
    }
    int flags = fcntl(f, F_GETFL);
    if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        close(f);
        return st;
    }
    *fd = f;
    return PL_OK;
}

PlStatus pl_fopen_regular(const char *path, FILE **fp) {
    int fd;
    PL_TRY(pl_open_regular(path, &fd));
    *fp = fdopen(fd, "rb");
    if (!*fp) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    return PL_OK;
}

PlStatus pl_file_read_all(const char *path, size_t max_size, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *fp;
    PL_TRY(pl_fopen_regular(path, &fp));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        fclose(fp);
        return PL_FAIL(PL_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
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

PlStatus pl_output_file_check(const char *path, const char *what) {
    struct stat sb;
    if (!path[0]) return PL_FAIL(PL_ERR_ARG, "%s is empty: name the file to write", what);
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return PL_FAIL(PL_ERR_ARG, "%s %s is a directory: name the file to write, e.g. %s/out.h5", what, path, path);
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return PL_FAIL(PL_ERR_ARG, "%s %s is %s, not a regular file: name a file to write (it is replaced "
                       "atomically)", what, path, fs_kind(sb.st_mode));
    char *copy = pl_strdup(path);
    if (!copy) return PL_ERR_NOMEM;
    const char *dir = dirname(copy);
    PlStatus st = PL_OK;
    if (stat(dir, &sb) != 0)
        st = errno == ENOENT ? PL_FAIL(PL_ERR_ARG, "the folder %s of %s %s does not exist; it is not created: make it "
                                       "first (mkdir -p %s)", dir, what, path, dir)
                             : PL_FAIL(PL_ERR_IO, "the folder %s of %s %s: %s", dir, what, path, strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        st = PL_FAIL(PL_ERR_ARG, "%s %s: %s is %s, not a folder", what, path, dir, fs_kind(sb.st_mode));
    free(copy);
    return st;
}

// May the command write into `dir` (an existing folder)? Root passes access() except on a read-only file system.
static PlStatus fs_dir_writable(const char *dir, const char *what, const char *path) {
    if (access(dir, W_OK | X_OK) == 0) return PL_OK;
    int err = errno;
    char probe[4200], note[512];
    snprintf(probe, sizeof probe, "%s/.", dir);   // the space note describes the folder holding its argument
    pl_fs_space_note(probe, note, sizeof note);
    if (strcmp(dir, path) == 0)
        return PL_FAIL(PL_ERR_IO, "%s %s: cannot write into it: %s%s", what, path, strerror(err), note);
    return PL_FAIL(PL_ERR_IO, "%s %s cannot be created in %s: %s%s", what, path, dir, strerror(err), note);
}

PlStatus pl_output_dir_check(const char *path, const char *what) {
    if (!path) return PL_OK;
    if (!path[0]) return PL_FAIL(PL_ERR_ARG, "%s is empty: name the folder to write into", what);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return PL_FAIL(PL_ERR_ARG, "%s %s is %s: name a folder (it is created when missing)", what, path,
                           fs_kind(sb.st_mode));
        return fs_dir_writable(path, what, path);
    }
    if (errno != ENOENT && errno != ENOTDIR) return PL_FAIL(PL_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    // missing: walk up to the nearest existing path; the folder and its missing parents are made there
    char *dir = pl_strdup(path);
    if (!dir) return PL_ERR_NOMEM;
    PlStatus st = PL_OK;
    for (;;) {
        char *slash = strrchr(dir, '/');
        while (slash && slash > dir && slash[1] == '\0') {   // "a/b/" -> "a/b"
            *slash = '\0';
            slash = strrchr(dir, '/');
        }
        if (!slash) snprintf(dir, strlen(dir) + 1, ".");
        else if (slash == dir) dir[1] = '\0';   // "/x" -> "/"
        else *slash = '\0';
        if (stat(dir, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode))
                st = PL_FAIL(PL_ERR_ARG, "%s %s cannot be created: %s is %s, not a folder", what, path, dir,
                             fs_kind(sb.st_mode));
            else
                st = fs_dir_writable(dir, what, path);
            break;
        }
        if (errno != ENOENT && errno != ENOTDIR) {   // ENOTDIR: a file above; the walk reaches it and names it
            st = PL_FAIL(PL_ERR_IO, "%s %s: %s: %s", what, path, dir, strerror(errno));
            break;
        }
        if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0) break;   // cannot happen: "." and "/" exist
    }
    free(dir);
    return st;
}

PlStatus pl_mkdir_p(const char *path) {
    char *copy = pl_strdup(path);
    if (!copy) return PL_ERR_NOMEM;
    for (char *p = copy + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
                PlStatus st = PL_FS_WRITE_FAIL("cannot create directory", copy, errno);
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

// The resolved path of a file that may not exist yet: realpath of its folder + its name (malloc'd, or NULL).
static char *fs_resolve(const char *path) {
    char *r = realpath(path, NULL);
    if (r) return r;
    char *d = pl_strdup(path), *b = pl_strdup(path);
    char *dir = d ? realpath(dirname(d), NULL) : NULL;
    char *out = NULL;
    if (dir && b) {
        const char *name = basename(b);
        size_t n = strlen(dir) + strlen(name) + 2;
        out = malloc(n);
        if (out) snprintf(out, n, "%s/%s", dir, name);
    }
    free(dir);
    free(d);
    free(b);
    return out;
}

int pl_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *ra = fs_resolve(a), *rb = fs_resolve(b);
    int same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

char *pl_path_resolve(const char *path) {
    return fs_resolve(path);
}
