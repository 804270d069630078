// Unit tests for the core conventions: error messages, atomic files, .npy round trips.
#include "pl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <math.h>

#include "pl_clock.h"
#include "pl_error.h"
#include "pl_fs.h"
#include "pl_idindex.h"
#include "pl_npy.h"
#include "pl_rng.h"
#include "pl_threadpool.h"

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

typedef struct PoolCheck {
    int counts[1000];
    int bad_thread;
    int threads;
} PoolCheck;

static void pool_task(void *ctx, int task, int thread) {
    PoolCheck *c = ctx;
    __atomic_add_fetch(&c->counts[task], 1, __ATOMIC_RELAXED);
    if (thread < 0 || thread >= c->threads) __atomic_store_n(&c->bad_thread, 1, __ATOMIC_RELAXED);
}

static void test_threadpool_runs_every_task_once(void **state) {
    (void)state;
    for (int threads = 1; threads <= 4; threads++) {
        PlThreadPool *pool = NULL;
        assert_int_equal(pl_threadpool_create(threads, &pool), PL_OK);
        assert_int_equal(pl_threadpool_size(pool), threads);
        static PoolCheck c;
        for (int run = 0; run < 200; run++) {
            int n = (run * 37) % 1000;   // includes 0 tasks and 1 task
            memset(&c, 0, sizeof c);
            c.threads = threads;
            pl_threadpool_run(pool, pool_task, &c, n);
            for (int i = 0; i < 1000; i++) assert_int_equal(c.counts[i], i < n ? 1 : 0);
            assert_int_equal(c.bad_thread, 0);
        }
        pl_threadpool_destroy(pool);
    }
    PlThreadPool *pool = NULL;
    assert_int_equal(pl_threadpool_create(0, &pool), PL_ERR_ARG);
    assert_null(pool);
    assert_true(pl_threadpool_cores_available() >= 1);
}

// Tasks fail where bad[task] is set (with a message naming the task); the others count themselves.
typedef struct PoolFail {
    const unsigned char *bad;
    int ran[600];
} PoolFail;

static PlStatus pool_failing_task(void *ctx, int task, int thread) {
    PoolFail *c = ctx;
    __atomic_add_fetch(&c->ran[task], 1, __ATOMIC_RELAXED);
    if (c->bad[task]) {
        PL_FAIL(PL_ERR_IO, "an earlier message of thread %d", thread);   // overwritten below: never reported
        return PL_FAIL(task % 2 ? PL_ERR_FORMAT : PL_ERR_IO, "task %d failed on purpose", task);
    }
    if (task % 7 == 3) return PL_OK;
    volatile double x = 0;   // unequal task lengths, so that threads finish out of order
    for (int i = 0; i < (task % 5) * 2000; i++) x += i;
    return PL_OK;
}

static void test_threadpool_checked_returns_the_lowest_failure(void **state) {
    (void)state;
    enum { N = 600 };
    static unsigned char bad[N];
    static PoolFail c;
    for (int threads = 1; threads <= 8; threads++) {
        PlThreadPool *pool = NULL;
        assert_int_equal(pl_threadpool_create(threads, &pool), PL_OK);
        for (int run = 0; run < 40; run++) {
            memset(bad, 0, sizeof bad);
            memset(&c, 0, sizeof c);
            c.bad = bad;
            int lowest = run == 0 ? -1 : (run * 131) % N;   // run 0: nothing fails
            if (lowest >= 0)
                for (int t = lowest; t < N; t += 1 + run % 9) bad[t] = 1;   // more failures after the lowest
            PlStatus st = pl_threadpool_run_checked(pool, pool_failing_task, &c, N);
            if (lowest < 0) {
                assert_int_equal(st, PL_OK);
                for (int t = 0; t < N; t++) assert_int_equal(c.ran[t], 1);
                continue;
            }
            assert_int_equal(st, lowest % 2 ? PL_ERR_FORMAT : PL_ERR_IO);
            assert_int_equal(pl_error_code(), st);
            char want[64];
            snprintf(want, sizeof want, "task %d failed on purpose", lowest);
            const char *msg = pl_error_message();
            assert_non_null(strstr(msg, want));
            assert_null(strstr(msg, "earlier message"));
            for (int t = 0; t <= lowest; t++) assert_int_equal(c.ran[t], 1);   // every task up to the lowest ran once
            for (int t = lowest + 1; t < N; t++) assert_true(c.ran[t] <= 1);
        }
        assert_int_equal(pl_threadpool_run_checked(pool, pool_failing_task, &c, 0), PL_OK);
        pl_threadpool_destroy(pool);
    }
    memset(bad, 0, sizeof bad);   // no pool: the calling thread runs every task
    bad[5] = bad[2] = 1;
    memset(&c, 0, sizeof c);
    c.bad = bad;
    assert_int_equal(pl_threadpool_run_checked(NULL, pool_failing_task, &c, N), PL_ERR_IO);
    assert_non_null(strstr(pl_error_message(), "task 2 failed on purpose"));
}

static void test_idindex_finds_every_key_and_rejects_duplicates(void **state) {
    (void)state;
    enum { N = 5000 };
    static char keys[N][16];
    const char *ptrs[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "item%05d", i * 7);
        ptrs[i] = keys[i];
    }
    PlIdIndex ix;
    assert_int_equal(pl_idindex_build(&ix, ptrs, N, "test"), PL_OK);
    assert_int_equal((int)ix.count, N);
    for (int i = 0; i < N; i++) assert_int_equal(pl_idindex_find(&ix, keys[i]), i);
    assert_int_equal(pl_idindex_find(&ix, "item00001"), -1);
    assert_int_equal(pl_idindex_find(&ix, ""), -1);
    int64_t prev = 0;
    assert_int_equal(pl_idindex_add(&ix, keys[10], 99, &prev), PL_OK);   // present: unchanged, reports the first
    assert_int_equal(prev, 10);
    assert_int_equal(pl_idindex_find(&ix, keys[10]), 10);
    pl_idindex_free(&ix);
    assert_int_equal(pl_idindex_find(&ix, keys[0]), -1);   // a freed (zeroed) index is empty
    const char *dup[3] = {"a", "b", "a"};
    assert_int_equal(pl_idindex_build(&ix, dup, 3, "ids.tsv"), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "ids.tsv: id 'a' appears twice (rows 0 and 2)"));
}

static void test_grow_keeps_contents_and_capacity(void **state) {
    (void)state;
    int *v = NULL;
    size_t cap = 0;
    assert_int_equal(pl_grow((void **)&v, &cap, 4, sizeof *v), PL_OK);
    assert_int_equal((int)cap, 4);
    for (int i = 0; i < 4; i++) v[i] = i + 1;
    int *before = v;
    assert_int_equal(pl_grow((void **)&v, &cap, 3, sizeof *v), PL_OK);   // enough already: no change
    assert_ptr_equal(v, before);
    assert_int_equal(pl_grow((void **)&v, &cap, 1000, sizeof *v), PL_OK);
    assert_int_equal((int)cap, 1000);
    for (int i = 0; i < 4; i++) assert_int_equal(v[i], i + 1);
    assert_int_equal(pl_grow((void **)&v, &cap, SIZE_MAX / 2, 4), PL_ERR_LIMIT);   // overflow: unchanged
    assert_int_equal((int)cap, 1000);
    free(v);
}

static void test_rng_reference_values(void **state) {
    (void)state;
    // splitmix64 from 0 and xoshiro256** seeded by it: reference values of the published algorithms
    uint64_t x = 0;
    assert_true(pl_rng_splitmix(&x) == 0xe220a8397b1dcdafULL);
    assert_true(pl_rng_splitmix(&x) == 0x6e789e6aa1b965f4ULL);
    PlRng r, r2;
    pl_rng_seed(&r, 1234);
    pl_rng_seed(&r2, 1234);
    for (int i = 0; i < 100; i++) assert_true(pl_rng_next(&r) == pl_rng_next(&r2));
    double lo = 1, hi = 0, sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = pl_rng_uniform_open(&r);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        sum += pl_rng_normal(&r);
    }
    assert_true(lo > 0 && hi < 1);
    assert_true(fabs(sum / 100000) < 0.02);
    int64_t v[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, seen = 0;
    pl_rng_shuffle_i64(&r, v, 10);
    for (int i = 0; i < 10; i++) seen |= (int64_t)1 << v[i];
    assert_int_equal(seen, 1023);
    assert_true(pl_rng_hash_string("") == 0xcbf29ce484222325ULL);
    assert_true(pl_rng_hash_string("a") == 0xaf63dc4c8601ec8cULL);
}

static void test_clock(void **state) {
    (void)state;
    char buf[32];
    assert_int_equal((int)strlen(pl_clock_iso_utc(buf, sizeof buf)), 20);
    assert_true(buf[4] == '-' && buf[10] == 'T' && buf[19] == 'Z');
    double a = pl_clock_now(), b = pl_clock_now();
    assert_true(b >= a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message_has_file_line_and_context),
        cmocka_unit_test(test_mul_overflow_detected),
        cmocka_unit_test(test_atomic_write_leaves_no_temp),
        cmocka_unit_test(test_npy_roundtrip_and_errors),
        cmocka_unit_test(test_threadpool_runs_every_task_once),
        cmocka_unit_test(test_threadpool_checked_returns_the_lowest_failure),
        cmocka_unit_test(test_idindex_finds_every_key_and_rejects_duplicates),
        cmocka_unit_test(test_grow_keeps_contents_and_capacity),
        cmocka_unit_test(test_rng_reference_values),
        cmocka_unit_test(test_clock),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
