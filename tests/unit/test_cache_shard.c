// Unit tests of training-cache shards: round trip, identical bytes on rewrite, rejected headers, truncations and
// tables, a corrupt sample frame named by item, and failed writes or commits that leave no temporary file behind.
#include "pl_testutil.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "pl_cache_shard.h"
#include "pl_fs.h"

#define TC 2
#define TS 9
#define TN (TC * TS * TS)   // floats per sample

// The samples of the standard test shard: "a" (none), "b" (1), "c" (failed), "d" (3), "e" (none); 4 in all.
typedef struct TestData {
    float b[TN], d[3 * TN];
} TestData;

static void make_data(TestData *td) {
    uint64_t rng = 12345;
    for (int i = 0; i < TN; i++) td->b[i] = 100.0f * pl_test_urand(&rng);    // negative and positive
    for (int i = 0; i < 3 * TN; i++) {
        int p = i % (TS * TS), y = p / TS, x = p % TS;                        // a smooth image plus noise in [0, 1]
        td->d[i] = 0.5f + 0.25f * (float)(x + y) / TS + 0.01f * pl_test_urand(&rng);
    }
    td->d[7] = -0.0f;
    td->d[8] = 3.0e38f;
}

static void write_shard(const char *path, const TestData *td, int level) {
    PlCacheShardWriter *w;
    PL_ASSERT_OK(pl_cache_shard_create(&w, path, TC, TS, level));
    PL_ASSERT_OK(pl_cache_shard_add_item(w, "a", "s:0a", 0, NULL));
    PL_ASSERT_OK(pl_cache_shard_add_item(w, "b", "s:0b", 1, td->b));
    PL_ASSERT_OK(pl_cache_shard_add_failure(w, "c", "s:0c", "decode", "c.tif: truncated strip 3"));
    PL_ASSERT_OK(pl_cache_shard_add_item(w, "ABC", "s:0d", 3, td->d));
    PL_ASSERT_OK(pl_cache_shard_add_item(w, "e", "", 0, NULL));
    PL_ASSERT_OK(pl_cache_shard_commit(w));
}

static unsigned char *slurp(const char *path, size_t *n) {
    char *data;
    PL_ASSERT_OK(pl_file_read_all(path, (size_t)1 << 30, &data, n));
    return (unsigned char *)data;
}

static void spit(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

// Number of entries of dir whose name contains ".tmp." (left-over temporary files).
static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void expect_format(const char *path, const char *what) {
    PlCacheShard s;
    PlStatus st = pl_cache_shard_open(&s, path);
    if (st != PL_ERR_FORMAT) fail_msg("%s: open gave %s, not format: %s", what, pl_status_name(st), pl_error_message());
    assert_non_null(strstr(pl_error_message(), path));
    assert_int_equal(s.fd, -1);   // closed and zeroed
    assert_null(s.items);
}

static void test_round_trip(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/shard.plc", dir);
    TestData td;
    make_data(&td);
    write_shard(path, &td, 3);
    assert_int_equal(count_temps(dir), 0);

    PlCacheShard s;
    PL_ASSERT_OK(pl_cache_shard_open(&s, path));
    assert_int_equal(s.C, TC);
    assert_int_equal(s.S, TS);
    assert_int_equal(s.n_items, 5);
    assert_int_equal(s.n_samples, 4);
    const char *ids[5] = {"a", "b", "c", "ABC", "e"}, *digests[5] = {"s:0a", "s:0b", "s:0c", "s:0d", ""};
    int n[5] = {0, 1, 0, 3, 0}, first[5] = {0, 0, 1, 1, 4};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(s.items[i].id, ids[i]);
        assert_string_equal(s.items[i].digest, digests[i]);
        assert_int_equal(s.items[i].failed, i == 2);
        assert_int_equal(s.items[i].n_samples, n[i]);
        assert_int_equal(s.items[i].first_sample, first[i]);
    }
    assert_string_equal(s.items[2].stage, "decode");
    assert_string_equal(s.items[2].message, "c.tif: truncated strip 3");
    assert_string_equal(s.items[0].stage, "");

    PlCacheDecoder *d;
    PL_ASSERT_OK(pl_cache_decoder_create(&d, TC, TS));
    float out[TN];
    PL_ASSERT_OK(pl_cache_shard_read(&s, 0, d, out));
    assert_memory_equal(out, td.b, sizeof out);
    for (int k = 3; k >= 1; k--) {   // any order, one decoder
        PL_ASSERT_OK(pl_cache_shard_read(&s, k, d, out));
        assert_memory_equal(out, td.d + (size_t)(k - 1) * TN, sizeof out);
    }
    assert_int_equal(pl_cache_shard_read(&s, 4, d, out), PL_ERR_ARG);
    assert_int_equal(pl_cache_shard_read(&s, -1, d, out), PL_ERR_ARG);
    pl_cache_decoder_free(d);
    PL_ASSERT_OK(pl_cache_decoder_create(&d, TC, TS - 1));   // too small a decoder is refused, not overrun
    assert_int_equal(pl_cache_shard_read(&s, 0, d, out), PL_ERR_ARG);
    pl_cache_decoder_free(d);
    pl_cache_shard_close(&s);
    pl_cache_shard_close(&s);   // twice is harmless

    // an empty shard
    PlCacheShardWriter *w;
    PL_ASSERT_OK(pl_cache_shard_create(&w, path, TC, TS, 1));
    PL_ASSERT_OK(pl_cache_shard_commit(w));
    PL_ASSERT_OK(pl_cache_shard_open(&s, path));
    assert_int_equal(s.n_items, 0);
    assert_int_equal(s.n_samples, 0);
    pl_cache_shard_close(&s);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_deterministic(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/one.plc", dir);
    snprintf(p2, sizeof p2, "%s/two.plc", dir);
    TestData td;
    make_data(&td);
    for (int level = 1; level <= 3; level += 2) {
        write_shard(p1, &td, level);
        write_shard(p2, &td, level);
        size_t n1, n2;
        unsigned char *a = slurp(p1, &n1), *b = slurp(p2, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(a, b, n1);
        free(a);
        free(b);
    }
    pl_test_rmtree(dir);
    free(dir);
}

static void test_rejects_headers_and_truncation(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), path[4096], bad[4096];
    snprintf(path, sizeof path, "%s/shard.plc", dir);
    snprintf(bad, sizeof bad, "%s/bad.plc", dir);
    TestData td;
    make_data(&td);
    write_shard(path, &td, 3);
    size_t n;
    unsigned char *f = slurp(path, &n);
    uint64_t table_offset;
    memcpy(&table_offset, f + 40, 8);

    unsigned char *g = malloc(n);
    assert_non_null(g);
    memcpy(g, f, n);
    g[0] ^= 1;
    spit(bad, g, n);
    expect_format(bad, "wrong magic");
    assert_non_null(strstr(pl_error_message(), "not a protloc cache shard"));
    struct { size_t at; const char *what; } fields[] = {{8, "version"}, {12, "C"}, {16, "S"}, {20, "dtype"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(g, f, n);
        uint32_t v = fields[i].at == 8 ? 1 : 0;   // version 1 (the byte-shuffled shards), C = 0, S = 0, dtype 0
        memcpy(g + fields[i].at, &v, 4);
        spit(bad, g, n);
        expect_format(bad, fields[i].what);
    }
    memcpy(g, f, n);
    uint64_t huge = (uint64_t)1 << 40;
    memcpy(g + 24, &huge, 8);   // n_items
    spit(bad, g, n);
    expect_format(bad, "n_items");

    size_t cuts[] = {0, 10, 63, 64, 70, (size_t)table_offset - 1, (size_t)table_offset, (size_t)table_offset + 3,
                     n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(bad, f, cuts[i]);
        expect_format(bad, "truncated");
    }
    memcpy(g, f, n);   // one byte too many
    spit(bad, g, n);
    FILE *fp = fopen(bad, "ab");
    assert_non_null(fp);
    fputc(0, fp);
    fclose(fp);
    expect_format(bad, "trailing byte");
    // a flipped bit in the table frame fails its checksum or its frame header, unless zstd does not read that bit
    // (bit 4 of the frame header descriptor, RFC 8878 "Unused bit", padding of an entropy-coded stream): then the
    // table decompresses to the very same bytes, which the checksum confirms
    int unread = 0;
    for (size_t at = (size_t)table_offset; at < n; at++) {
        memcpy(g, f, n);
        g[at] ^= 0x10;
        spit(bad, g, n);
        PlCacheShard s;
        PlStatus st = pl_cache_shard_open(&s, bad);
        if (st == PL_OK) {
            unread++;
            assert_int_equal(s.n_items, 5);
            assert_int_equal(s.n_samples, 4);
            assert_string_equal(s.items[3].id, "ABC");
            assert_string_equal(s.items[2].message, "c.tif: truncated strip 3");
            pl_cache_shard_close(&s);
        } else if (st != PL_ERR_FORMAT || !strstr(pl_error_message(), bad)) {
            fail_msg("table byte %zu: %s: %s", at, pl_status_name(st), pl_error_message());
        }
    }
    assert_true(unread * 10 < (int)(n - (size_t)table_offset));
    free(g);
    free(f);
    pl_test_rmtree(dir);
    free(dir);
}

// Every byte of the decompressed table replaced by 0xFF and 0x00 in turn, recompressed with a valid checksum: open
// either accepts the shard or says PL_ERR_FORMAT; it never reads outside its buffers (ASan builds check).
static void test_corrupt_table_contents(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), path[4096], bad[4096];
    snprintf(path, sizeof path, "%s/shard.plc", dir);
    snprintf(bad, sizeof bad, "%s/bad.plc", dir);
    TestData td;
    make_data(&td);
    write_shard(path, &td, 1);
    size_t n;
    unsigned char *f = slurp(path, &n);
    uint64_t table_offset, table_bytes, raw_bytes;
    memcpy(&table_offset, f + 40, 8);
    memcpy(&table_bytes, f + 48, 8);
    memcpy(&raw_bytes, f + 56, 8);
    unsigned char *raw = malloc(raw_bytes), *mod = malloc(raw_bytes);
    size_t cap = ZSTD_compressBound(raw_bytes);
    unsigned char *g = malloc(table_offset + cap);
    assert_true(raw && mod && g);
    assert_int_equal(ZSTD_decompress(raw, raw_bytes, f + table_offset, table_bytes), raw_bytes);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1)));
    int accepted = 0;
    for (size_t at = 0; at < raw_bytes; at++) {
        for (int v = 0; v < 2; v++) {
            memcpy(mod, raw, raw_bytes);
            mod[at] = v ? 0xFF : 0x00;
            memcpy(g, f, table_offset);
            size_t c = ZSTD_compress2(cc, g + table_offset, cap, mod, raw_bytes);
            assert_false(ZSTD_isError(c));
            uint64_t c64 = c;
            memcpy(g + 48, &c64, 8);
            spit(bad, g, table_offset + c);
            PlCacheShard s;
            PlStatus st = pl_cache_shard_open(&s, bad);
            if (st == PL_OK) {
                accepted++;   // e.g. a changed character of an id or message
                pl_cache_shard_close(&s);
            } else if (st != PL_ERR_FORMAT) {
                fail_msg("table byte %zu = %d: %s: %s", at, v, pl_status_name(st), pl_error_message());
            }
        }
    }
    assert_true(accepted > 0);
    ZSTD_freeCCtx(cc);
    free(raw);
    free(mod);
    free(g);
    free(f);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_corrupt_sample(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/shard.plc", dir);
    TestData td;
    make_data(&td);
    write_shard(path, &td, 3);
    size_t n;
    unsigned char *f = slurp(path, &n);
    PlCacheShard s;
    PL_ASSERT_OK(pl_cache_shard_open(&s, path));
    uint64_t off = s.offset[2];
    uint32_t len = s.bytes[2];   // sample 2 = item ABC's 2nd sample
    pl_cache_shard_close(&s);
    size_t spots[] = {off + len / 2, off + len - 1, off + 4};   // data, checksum, frame header
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        f[spots[i]] ^= 0x04;
        spit(path, f, n);
        f[spots[i]] ^= 0x04;
        PL_ASSERT_OK(pl_cache_shard_open(&s, path));
        PlCacheDecoder *d;
        PL_ASSERT_OK(pl_cache_decoder_create(&d, TC, TS));
        float out[TN], before[TN];
        memset(out, 0x5a, sizeof out);
        memcpy(before, out, sizeof out);
        assert_int_equal(pl_cache_shard_read(&s, 2, d, out), PL_ERR_FORMAT);
        const char *msg = pl_error_message();
        if (!strstr(msg, path) || !strstr(msg, "sample 2 (item ABC, its 2nd sample)"))
            fail_msg("spot %zu: message does not name the shard, sample and item: %s", i, msg);
        assert_memory_equal(out, before, sizeof out);   // nothing partial
        PL_ASSERT_OK(pl_cache_shard_read(&s, 0, d, out));
        assert_memory_equal(out, td.b, sizeof out);
        for (int k = 1; k <= 3; k += 2) {
            PL_ASSERT_OK(pl_cache_shard_read(&s, k, d, out));
            assert_memory_equal(out, td.d + (size_t)(k - 1) * TN, sizeof out);
        }
        pl_cache_decoder_free(d);
        pl_cache_shard_close(&s);
    }
    free(f);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_bad_arguments(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/shard.plc", dir);
    PlCacheShardWriter *w;
    assert_int_equal(pl_cache_shard_create(&w, path, 0, TS, 1), PL_ERR_ARG);
    assert_int_equal(pl_cache_shard_create(&w, path, TC, 0, 1), PL_ERR_ARG);
    assert_int_equal(pl_cache_shard_create(&w, path, TC, TS, 0), PL_ERR_ARG);
    PlCacheDecoder *d;
    assert_int_equal(pl_cache_decoder_create(&d, TC, -1), PL_ERR_ARG);
    PL_ASSERT_OK(pl_cache_shard_create(&w, path, TC, TS, 1));
    float x[TN] = {0};
    assert_int_equal(pl_cache_shard_add_item(w, "", "s:1", 1, x), PL_ERR_ARG);
    assert_int_equal(pl_cache_shard_add_item(w, "a", "s:1", 1, NULL), PL_ERR_ARG);
    assert_int_equal(pl_cache_shard_add_item(w, "a", "s:1", -1, x), PL_ERR_ARG);
    PL_ASSERT_OK(pl_cache_shard_add_item(w, "a", "s:1", 1, x));   // refused calls left nothing behind
    PL_ASSERT_OK(pl_cache_shard_commit(w));
    PlCacheShard s;
    PL_ASSERT_OK(pl_cache_shard_open(&s, path));
    assert_int_equal(s.n_items, 1);
    pl_cache_shard_close(&s);
    PL_ASSERT_OK(pl_cache_shard_create(&w, path, TC, TS, 1));
    pl_cache_shard_abort(w);
    pl_cache_shard_abort(NULL);
    assert_int_equal(count_temps(dir), 0);
    // a folder that does not exist: nothing is created
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no/such/shard.plc", dir);
    assert_int_equal(pl_cache_shard_create(&w, missing, TC, TS, 1), PL_ERR_IO);
    assert_non_null(strstr(pl_error_message(), missing));
    pl_test_rmtree(dir);
    free(dir);
}

// A commit whose rename fails (a folder in the way of the final path) leaves the folder and no temporary file.
static void test_commit_fails_cleanly(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), path[4096], inner[4200];
    snprintf(path, sizeof path, "%s/shard.plc", dir);
    snprintf(inner, sizeof inner, "%s/keep", path);
    assert_int_equal(mkdir(path, 0755), 0);
    spit(inner, "x", 1);
    TestData td;
    make_data(&td);
    PlCacheShardWriter *w;
    PL_ASSERT_OK(pl_cache_shard_create(&w, path, TC, TS, 1));
    PL_ASSERT_OK(pl_cache_shard_add_item(w, "b", "s:0b", 1, td.b));
    assert_int_equal(count_temps(dir), 1);
    assert_int_equal(pl_cache_shard_commit(w), PL_ERR_IO);
    assert_non_null(strstr(pl_error_message(), path));
    assert_int_equal(count_temps(dir), 0);
    struct stat sb;
    assert_int_equal(stat(inner, &sb), 0);
    pl_test_rmtree(dir);
    free(dir);
}

// Writes refused by the file system (a file size limit: EFBIG, as ENOSPC would be) are PL_ERR_IO naming the file,
// in add_item and in commit; no temporary file is left and the final path is never created.
static void test_write_failures(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir(), path[4096], ref[4096];
    snprintf(path, sizeof path, "%s/shard.plc", dir);
    snprintf(ref, sizeof ref, "%s/ref.plc", dir);
    TestData td;
    make_data(&td);
    write_shard(ref, &td, 3);
    PlCacheShard s;
    PL_ASSERT_OK(pl_cache_shard_open(&s, ref));
    rlim_t frames_end = (rlim_t)(s.offset[3] + s.bytes[3]);
    pl_cache_shard_close(&s);

    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    rlim_t limits[] = {100, frames_end + 1};   // inside the samples; inside the table
    for (int i = 0; i < 2; i++) {
        struct rlimit lim = {limits[i], old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        PlCacheShardWriter *w;
        PL_ASSERT_OK(pl_cache_shard_create(&w, path, TC, TS, 3));
        PL_ASSERT_OK(pl_cache_shard_add_item(w, "a", "s:0a", 0, NULL));
        PlStatus st = pl_cache_shard_add_item(w, "b", "s:0b", 1, td.b);
        if (i == 0) {
            assert_int_equal(st, PL_ERR_IO);
            assert_non_null(strstr(pl_error_message(), ".tmp."));
            assert_int_equal(pl_cache_shard_add_item(w, "e", "", 0, NULL), PL_ERR_ARG);   // the writer is spent
            pl_cache_shard_abort(w);
        } else {
            PL_ASSERT_OK(st);
            PL_ASSERT_OK(pl_cache_shard_add_failure(w, "c", "s:0c", "decode", "c.tif: truncated strip 3"));
            PL_ASSERT_OK(pl_cache_shard_add_item(w, "ABC", "s:0d", 3, td.d));
            PL_ASSERT_OK(pl_cache_shard_add_item(w, "e", "", 0, NULL));
            assert_int_equal(pl_cache_shard_commit(w), PL_ERR_IO);
            assert_non_null(strstr(pl_error_message(), path));
        }
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(count_temps(dir), 0);
        assert_int_equal(access(path, F_OK), -1);
    }
    signal(SIGXFSZ, old_handler);
    pl_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),          cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_rejects_headers_and_truncation), cmocka_unit_test(test_corrupt_table_contents),
        cmocka_unit_test(test_corrupt_sample),      cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_commit_fails_cleanly), cmocka_unit_test(test_write_failures)};
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
