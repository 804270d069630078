// Output locks with fcntl record locks (see pl_lock.h).
#include "pl_lock.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_clock.h"
#include "pl_log.h"

// The holder's description from the file (what the holder wrote), with its pid checked when on this host.
static void lock_describe_holder(int fd, const char *path, char *out, size_t size) {
    char buf[512] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    char host[256] = "", me[256] = "";
    long pid = 0;
    if (sscanf(buf, "host=%255s pid=%ld", host, &pid) == 2 && gethostname(me, sizeof me - 1) == 0 &&
        strcmp(host, me) == 0 && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        snprintf(out, size, "%s (that pid is not running on this host: if no run is active, the file system keeps a "
                 "stale lock; remove %s)", buf, path);
    else
        snprintf(out, size, "%s", buf[0] ? buf : "a process that has not written its name yet");
}

// Set the record lock of the whole file (F_WRLCK exclusive, F_RDLCK shared) without waiting. When another process
// holds a conflicting lock: PL_ERR_BUSY naming it (a reader's pid, or the writer's description from the file).
static PlStatus lock_set(int fd, const char *path, short type) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLK, &fl) == 0) return PL_OK;
    int e = errno;
    if (e != EAGAIN && e != EACCES) return PL_FAIL(PL_ERR_IO, "cannot lock %s: %s", path, strerror(e));
    struct flock who = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type == F_RDLCK)
        return PL_FAIL(PL_ERR_BUSY, "%s is in use by another run that reads it (pid %ld%s)", path, (long)who.l_pid,
                       who.l_pid > 0 ? " on this host, or a process on another node" : "");
    char holder[1024];
    lock_describe_holder(fd, path, holder, sizeof holder);
    return PL_FAIL(PL_ERR_BUSY, "%s is locked by another run: %s", path, holder);
}

// Write "host pid started-at what" into the held lock's file.
static PlStatus lock_write_holder(int fd, const char *path, const char *what) {
    char host[256] = "?", when[64], line[768];
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "?");
    int n = snprintf(line, sizeof line, "host=%s pid=%ld since=%s %s\n", host, (long)getpid(),
                     pl_clock_iso_utc(when, sizeof when), what ? what : "");
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n)
        return PL_FAIL(PL_ERR_IO, "cannot write the lock file %s: %s", path, strerror(errno));
    return PL_OK;
}

// Open (create) the lock file and take the lock of `type`; `what` (exclusive only) goes into the file.
static PlStatus lock_take(PlLock *lock, const char *path, short type, const char *what) {
    lock->fd = -1;
    lock->path = pl_strdup(path);
    if (!lock->path) return PL_ERR_NOMEM;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    PlStatus st = fd >= 0 ? PL_OK : PL_FAIL(PL_ERR_IO, "cannot open the lock file %s: %s", path, strerror(errno));
    if (st == PL_OK) st = lock_set(fd, path, type);
    if (st == PL_OK && type == F_WRLCK) st = lock_write_holder(fd, path, what);
    if (st != PL_OK) {
        if (fd >= 0) close(fd);
        pl_lock_release(lock);
        return st;
    }
    lock->fd = fd;
    return PL_OK;
}

PlStatus pl_lock_acquire(PlLock *lock, const char *path, const char *what) {
    return lock_take(lock, path, F_WRLCK, what);
}

PlStatus pl_lock_acquire_shared(PlLock *lock, const char *path) { return lock_take(lock, path, F_RDLCK, NULL); }

PlStatus pl_lock_set_exclusive(PlLock *lock, int exclusive, const char *what) {
    if (lock->fd < 0) return PL_FAIL(PL_ERR_INTERNAL, "pl_lock_set_exclusive on a lock not held");
    PL_TRY(lock_set(lock->fd, lock->path, exclusive ? F_WRLCK : F_RDLCK));
    return exclusive ? lock_write_holder(lock->fd, lock->path, what) : PL_OK;
}

void pl_lock_release(PlLock *lock) {
    if (lock->fd >= 0) close(lock->fd);   // closing drops the record lock
    free(lock->path);
    lock->fd = -1;
    lock->path = NULL;
}

int pl_lock_remove_stale_temps(const char *const *finals, int n) {
    int removed = 0;
    for (int i = 0; i < n; i++) {
        char *copy = pl_strdup(finals[i]), *copy2 = pl_strdup(finals[i]);
        DIR *d = copy && copy2 ? opendir(dirname(copy)) : NULL;
        const char *dir = copy, *base = copy2 ? basename(copy2) : "";
        char prefix[1024];
        snprintf(prefix, sizeof prefix, "%s.tmp.", base);
        size_t pl = strlen(prefix);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            // "<base>.tmp.<pid>.<n>": digits and one dot after the prefix, so "<base>.tmp.x" of a user is kept
            const char *t = e->d_name + pl;
            if (strncmp(e->d_name, prefix, pl) != 0 || strspn(t, "0123456789.") != strlen(t) || !strchr(t, '.')) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) == 0) {
                pl_log_info("removed %s, left by a run that did not finish", path);
                removed++;
            }
        }
        if (d) closedir(d);
        free(copy);
        free(copy2);
    }
    return removed;
}
