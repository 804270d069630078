// Unit tests of output locks (pl_lock): exclusive against exclusive and shared, shared beside shared, the change of a
// held shared lock to exclusive (refused while another process reads, the shared lock kept) and back, the holder's
// description in the file and in the refusal. Record locks belong to processes, so the other holder is a child.
#include "pl_testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pl_error.h"
#include "pl_lock.h"

// A child that holds `path` shared (exclusive = 0) or exclusively until killed; returns once it holds it.
static pid_t spawn_holder(const char *path, int exclusive) {
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        PlLock l;
        PlStatus st = exclusive ? pl_lock_acquire(&l, path, "test holder") : pl_lock_acquire_shared(&l, path);
        char ok = st == PL_OK ? 'y' : 'n';
        if (write(pipefd[1], &ok, 1) != 1) _exit(2);
        for (;;) pause();
    }
    close(pipefd[1]);
    char ok = 0;
    assert_int_equal(read(pipefd[0], &ok, 1), 1);
    close(pipefd[0]);
    assert_int_equal(ok, 'y');
    return pid;
}

static void stop_holder(pid_t pid) {
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
}

static void test_exclusive_and_shared(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/lock", dir);
    // another process reads: more readers are welcome, a writer is refused naming a reader
    pid_t reader = spawn_holder(path, 0);
    PlLock me = {.fd = -1};
    PL_ASSERT_OK(pl_lock_acquire_shared(&me, path));
    PlLock w = {.fd = -1};
    assert_int_equal(pl_lock_acquire(&w, path, "writer"), PL_ERR_BUSY);
    assert_non_null(strstr(pl_error_message(), "in use by another run that reads it"));
    assert_int_equal(w.fd, -1);
    // my shared lock cannot become exclusive while the other reads, and stays held
    assert_int_equal(pl_lock_set_exclusive(&me, 1, "upgrade"), PL_ERR_BUSY);
    assert_true(me.fd >= 0);
    stop_holder(reader);
    // alone now: the change succeeds and writes my description; a second process is refused naming it
    PL_ASSERT_OK(pl_lock_set_exclusive(&me, 1, "protloc test upgrade"));
    FILE *f = fopen(path, "r");
    char line[512] = "";
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "protloc test upgrade"));
    pl_error_clear();
    // back to shared: readers may come in again
    PL_ASSERT_OK(pl_lock_set_exclusive(&me, 0, NULL));
    pid_t reader2 = spawn_holder(path, 0);
    stop_holder(reader2);
    pl_lock_release(&me);
    assert_int_equal(me.fd, -1);
    // a writer elsewhere: shared and exclusive are refused, naming its description
    pid_t writer = spawn_holder(path, 1);
    assert_int_equal(pl_lock_acquire_shared(&me, path), PL_ERR_BUSY);
    assert_non_null(strstr(pl_error_message(), "test holder"));
    assert_int_equal(pl_lock_acquire(&me, path, "x"), PL_ERR_BUSY);
    stop_holder(writer);
    PL_ASSERT_OK(pl_lock_acquire(&me, path, "after the writer died"));
    pl_lock_release(&me);
    pl_lock_release(&me);   // twice is safe
    assert_int_equal(pl_lock_set_exclusive(&me, 1, "x"), PL_ERR_INTERNAL);   // not held
    pl_error_clear();
    pl_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_exclusive_and_shared)};
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
