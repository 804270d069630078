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

PlStatus pl_lock_acquire(PlLock *lock, const char *path, const char *what) {
    lock->fd = -1;
    lock->path = pl_strdup(path);
    if (!lock->path) return PL_ERR_NOMEM;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot open the lock file %s: %s", path, strerror(errno));
        pl_lock_release(lock);
        return st;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int e = errno;
        PlStatus st;
        if (e == EAGAIN || e == EACCES) {
            char holder[1024];
            lock_describe_holder(fd, path, holder, sizeof holder);
            st = PL_FAIL(PL_ERR_BUSY, "%s is locked by another run: %s", path, holder);
        } else {
            st = PL_FAIL(PL_ERR_IO, "cannot lock %s: %s", path, strerror(e));
        }
        close(fd);
        pl_lock_release(lock);
        return st;
    }
    char host[256] = "?", when[64], line[768];
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "?");
    int n = snprintf(line, sizeof line, "host=%s pid=%ld since=%s %s\n", host, (long)getpid(),
                     pl_clock_iso_utc(when, sizeof when), what ? what : "");
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot write the lock file %s: %s", path, strerror(errno));
        close(fd);
        pl_lock_release(lock);
        return st;
    }
    lock->fd = fd;
    return PL_OK;
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
