// MPI test (2 and 3 ranks): checked MPI calls, error translation, and collective agreement on a status.
#include "pl_testutil.h"

#include <string.h>

#include "pl_mpi.h"

static void test_allreduce_and_error_translation(void **state) {
    (void)state;
    int rank, size;
    assert_int_equal(PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)), PL_OK);
    assert_int_equal(PL_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size)), PL_OK);
    assert_true(size >= 2);
    long mine = rank + 1, total = 0;
    assert_int_equal(PL_MPI_CHECK(MPI_Allreduce(&mine, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD)), PL_OK);
    assert_int_equal(total, (long)size * (size + 1) / 2);
    // an invalid call returns an error (MPI_ERRORS_RETURN) that becomes a readable message
    int bogus = 0;
    PlStatus st = PL_MPI_CHECK(MPI_Send(&bogus, 1, MPI_INT, size + 5, 0, MPI_COMM_WORLD));
    assert_int_equal(st, PL_ERR_MPI);
    assert_non_null(strstr(pl_error_message(), "MPI_Send"));
}

int main(int argc, char **argv) {
    int rank, size;
    if (pl_mpi_start(&argc, &argv, &rank, &size) != PL_OK) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_allreduce_and_error_translation)};
    return pl_test_mpi_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
