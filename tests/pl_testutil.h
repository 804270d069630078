// Shared helpers for protloc's cmocka tests: locating real samples/golden fixtures and temporary folders.
#ifndef PL_TESTUTIL_H
#define PL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pl_error.h"
#include "pl_kernels.h"

// Path of a file under the shared folder (../shared next to the source tree, or $PROTLOC_SHARED_DIR):
// writes it into buf and returns buf, or returns NULL when the file is absent. Thread-unsafe static use is fine.
const char *pl_test_shared_path(const char *relative, char *buf, size_t size);
// Like pl_test_shared_path, but when absent prints "SKIP: <relative> not found (...)", records the skip and calls
// cmocka skip(): the program then exits 77 (pl_test_exit), which ctest reports as skipped, never as passed.
#define PL_TEST_REQUIRE_SHARED(relative, buf)                                                   \
    do {                                                                                        \
        if (!pl_test_shared_path((relative), (buf), sizeof(buf))) {                             \
            print_message("SKIP: shared file %s not found (set PROTLOC_SHARED_DIR)\n", (relative)); \
            pl_test_skipped = 1;                                                                \
            skip();                                                                             \
        }                                                                                       \
    } while (0)
// Set when a test of this program was skipped.
extern int pl_test_skipped;
// A part of a test cannot run here (e.g. a CPU without the instructions it needs): prints "SKIP: <why>" and records
// the skip, so the program exits 77 (pl_test_exit) after running everything else, never 0. The test itself goes on
// (call cmocka's skip() after it when nothing more of the test can run).
void pl_test_skip_part(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// The onednn backend in BF16 for `what` (a test or part of one), decided by asking the program (pl_kernels_find) and
// the CPU (pl_cpu_level), never by reading an error message: the kernels when they are there; NULL after
// pl_test_skip_part when oneDNN refuses BF16 (PL_ERR_UNSUPPORTED) on a CPU without AVX512-BF16. Fails the running
// test when BF16 is refused on a CPU that has AVX512-BF16, or for any other status.
const PlKernels *pl_test_bf16_kernels(const char *what);
// The program's exit status after cmocka_run_group_tests returned `failed`: 1 on failures, else 77 when a test
// was skipped (ctest's SKIP_RETURN_CODE), else 0. Use as: return pl_test_exit(cmocka_run_group_tests(...));
int pl_test_exit(int failed);
// For MPI test programs: agree on failures and skips over MPI_COMM_WORLD, stop MPI, and return pl_test_exit's status.
int pl_test_mpi_finish(int failed);
// Assert that a call returning PlStatus succeeded; otherwise fail the test with the call, its status and message.
#define PL_ASSERT_OK(expr)                                                                                      \
    do {                                                                                                        \
        PlStatus pl_assert_st_ = (expr);                                                                        \
        if (pl_assert_st_ != PL_OK)                                                                             \
            fail_msg("%s failed (%s): %s", #expr, pl_status_name(pl_assert_st_), pl_error_message());          \
    } while (0)
// Test data: a 64-bit LCG stream (*state, seeded by the test) of floats uniform in [-1, 1), and a malloc'd buffer of
// n of them times scale (the test fails when the allocation does).
float pl_test_urand(uint64_t *state);
float *pl_test_rand_buf(uint64_t *state, size_t n, float scale);
// A fresh temporary directory (malloc'd path; removed with pl_test_rmtree).
char *pl_test_tmpdir(void);
void pl_test_rmtree(const char *path);
// Path under the source tree (writes into buf).
const char *pl_test_source_path(const char *relative, char *buf, size_t size);

#endif
