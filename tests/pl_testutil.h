// Shared helpers for protloc's cmocka tests: locating real samples/golden fixtures and temporary folders.
#ifndef PL_TESTUTIL_H
#define PL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

// Path of a file under the shared folder (../shared next to the source tree, or $PROTLOC_SHARED_DIR):
// writes it into buf and returns buf, or returns NULL when the file is absent. Thread-unsafe static use is fine.
const char *pl_test_shared_path(const char *relative, char *buf, size_t size);
// Like pl_test_shared_path, but when absent prints "SKIP: <relative> not found (...)" and calls cmocka skip().
#define PL_TEST_REQUIRE_SHARED(relative, buf)                                                   \
    do {                                                                                        \
        if (!pl_test_shared_path((relative), (buf), sizeof(buf))) {                             \
            print_message("SKIP: shared file %s not found (set PROTLOC_SHARED_DIR)\n", (relative)); \
            skip();                                                                             \
        }                                                                                       \
    } while (0)
// A fresh temporary directory (malloc'd path; removed with pl_test_rmtree).
char *pl_test_tmpdir(void);
void pl_test_rmtree(const char *path);
// Path under the source tree (writes into buf).
const char *pl_test_source_path(const char *relative, char *buf, size_t size);

#endif
