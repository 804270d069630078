// Output locks: a lock file beside an output (e.g. STORE.h5.lock) held with a POSIX record lock (fcntl F_SETLK), so
// two runs never write the same output, and the lock dies with its process (a crashed or killed run leaves no stale
// lock; the file itself stays, holding the last exclusive holder's description). A shared lock lets several runs read
// an output (the training cache) while none may rewrite it; a holder may change between shared and exclusive.
//
// Ownership: a PlLock owns its descriptor and path; pl_lock_release releases both (safe on a zeroed lock).
#ifndef PL_LOCK_H
#define PL_LOCK_H

#include "pl_error.h"

typedef struct PlLock {
    int fd;          // -1 when not held
    char *path;
} PlLock;

// Take the lock without waiting and write "host pid started-at what" into the file. When another process holds it,
// PL_ERR_BUSY with a message naming the holder (and saying when that holder's pid is not running on this host,
// e.g. a lock kept by a file server for a node that died). Other failures: PL_ERR_IO naming the file.
PlStatus pl_lock_acquire(PlLock *lock, const char *path, const char *what);
// A shared (read) lock: any number of processes hold it together; an exclusive one is refused (PL_ERR_BUSY) while
// any does. Nothing is written into the file.
PlStatus pl_lock_acquire_shared(PlLock *lock, const char *path);
// Change a held lock to exclusive (writing `what` as pl_lock_acquire does; PL_ERR_BUSY, still holding the shared
// lock, while another process holds one) or back to shared (never refused). Atomic: the lock is never let go between.
PlStatus pl_lock_set_exclusive(PlLock *lock, int exclusive, const char *what);
void pl_lock_release(PlLock *lock);
// While holding the lock that guards the outputs `finals[0..n)`: remove the temporary files that dead runs left
// beside them ("<final>.tmp.<pid>.<n>", pl_temp_path_for), logging each; returns how many were removed.
int pl_lock_remove_stale_temps(const char *const *finals, int n);

#endif
