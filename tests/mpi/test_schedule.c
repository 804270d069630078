// MPI test (2 and 3 ranks): the one-sided self-scheduler hands out every task exactly once, counts finished
// tasks, and a rank that is slow takes fewer tasks (dynamic balance).
#include "pl_testutil.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pl_mpi.h"
#include "pl_run_priv.h"

static void test_every_task_once(void **state) {
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    enum { TOTAL = 240 };
    int mine[TOTAL], all[TOTAL];
    memset(mine, 0, sizeof mine);
    RunScheduler s;
    assert_int_equal(run_scheduler_create(&s, TOTAL, MPI_COMM_WORLD), PL_OK);
    int taken = 0;
    for (;;) {
        int64_t t = -2;
        assert_int_equal(run_scheduler_next(&s, &t), PL_OK);
        if (t < 0) break;
        assert_true(t < TOTAL);
        mine[t]++;
        taken++;
        if (rank == 0) {   // rank 0 is slow: 2 ms per task
            struct timespec ts = {0, 2000000L};
            nanosleep(&ts, NULL);
        }
        assert_int_equal(run_scheduler_done(&s, 1), PL_OK);
    }
    assert_int_equal(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
    int64_t handed = 0, done = 0;
    assert_int_equal(run_scheduler_progress(&s, &handed, &done), PL_OK);
    assert_int_equal(handed, TOTAL);
    assert_int_equal(done, TOTAL);
    assert_int_equal(run_scheduler_free(&s), PL_OK);
    assert_int_equal(MPI_Allreduce(mine, all, TOTAL, MPI_INT, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
    for (int i = 0; i < TOTAL; i++) assert_int_equal(all[i], 1);
    int max_other = 0, taken0 = taken;
    assert_int_equal(MPI_Bcast(&taken0, 1, MPI_INT, 0, MPI_COMM_WORLD), MPI_SUCCESS);
    assert_int_equal(MPI_Allreduce(&taken, &max_other, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), MPI_SUCCESS);
    assert_true(taken0 < max_other);   // the slow rank drew fewer tasks than the fastest
}

int main(int argc, char **argv) {
    int rank, size;
    if (pl_mpi_start(&argc, &argv, &rank, &size) != PL_OK) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_task_once)};
    return pl_test_mpi_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
