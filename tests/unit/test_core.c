// Unit tests for the core conventions: error messages, atomic files, .npy round trips.
#include "pl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_error.h"
#include "pl_fs.h"
#include "pl_npy.h"

static PlStatus failing_function(const char *path) { return PL_FAIL(PL_ERR_IO, "cannot open %s", path); }

static void test_error_message_has_file_line_and_context(void **state) {
    (void)state;
    pl_error_clear();
    PlStatus st = failing_function("x.tif");
    assert_int_equal(st, PL_ERR_IO);
    assert_non_null(strstr(pl_error_message(), "test_core.c:"));
    assert_non_null(strstr(pl_error_message(), "cannot open x.tif"));
    pl_error_wrap("item %s", "FOV_1");
    assert_true(strncmp(pl_error_message(), "item FOV_1: ", 12) == 0);
    assert_int_equal(pl_error_code(), PL_ERR_IO);
    assert_string_equal(pl_status_name(PL_ERR_FORMAT), "format");
}

static void test_mul_overflow_detected(void **state) {
    (void)state;
    size_t out;
    assert_int_equal(pl_mul_overflows((size_t)1 << 40, (size_t)1 << 40, &out), 1);
    assert_int_equal(pl_error_code(), PL_ERR_LIMIT);
    assert_int_equal(pl_mul_overflows(3, 5, &out), 0);
    assert_int_equal(out, 15);
}

static void test_atomic_write_leaves_no_temp(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    assert_int_equal(pl_file_write_atomic(path, "hello", 5), PL_OK);
    char *data;
    size_t size;
    assert_int_equal(pl_file_read_all(path, 1 << 20, &data, &size), PL_OK);
    assert_int_equal(size, 5);
    assert_memory_equal(data, "hello", 5);
    free(data);
    // an aborted file leaves neither the final nor a temp file
    PlAtomicFile af;
    snprintf(path, sizeof path, "%s/aborted.bin", dir);
    assert_int_equal(pl_atomic_open(&af, path), PL_OK);
    fputs("partial", af.fp);
    char temp[4096];
    snprintf(temp, sizeof temp, "%s", af.temp_path);
    pl_atomic_abort(&af);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_not_equal(access(temp, F_OK), 0);
    // read limit enforced
    snprintf(path, sizeof path, "%s/out.bin", dir);
    assert_int_equal(pl_file_read_all(path, 2, &data, &size), PL_ERR_LIMIT);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_npy_roundtrip_and_errors(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    float values[6] = {1, -2, 3.5f, 0, 1e-7f, 42};
    int64_t shape[2] = {2, 3};
    assert_int_equal(pl_npy_write_f32(path, 2, shape, values), PL_OK);
    PlNpyArray a;
    assert_int_equal(pl_npy_read_f32(path, 2, &a), PL_OK);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_memory_equal(a.data, values, sizeof values);
    pl_npy_free(&a);
    // wrong ndim is a clear error naming the file
    assert_int_equal(pl_npy_read_f32(path, 4, &a), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "a.npy"));
    // truncated data
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(ftruncate(fileno(fp), 130), 0);
    fclose(fp);
    assert_int_equal(pl_npy_read(path, &a), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "header's shape needs"));
    // not an npy at all
    snprintf(path, sizeof path, "%s/b.npy", dir);
    assert_int_equal(pl_file_write_atomic(path, "garbage-bytes", 13), PL_OK);
    assert_int_equal(pl_npy_read(path, &a), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "bad magic"));
    pl_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message_has_file_line_and_context),
        cmocka_unit_test(test_mul_overflow_detected),
        cmocka_unit_test(test_atomic_write_leaves_no_temp),
        cmocka_unit_test(test_npy_roundtrip_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
