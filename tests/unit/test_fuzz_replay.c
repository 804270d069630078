// Replays the checkpoint fuzz corpora (fixtures + tests/fuzz/corpus/{safetensors,pickle,checkpoint}, the minimised
// corpora of the libFuzzer runs in docs/models.md) and deterministic mutations of the fixtures through the same
// entry points the libFuzzer targets use, so every CI run (and the ASan build) exercises them. A missing or empty
// corpus folder fails the test.
#include "pl_testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz_entries.h"
#include "pl_fs.h"

typedef int (*FuzzEntry)(const uint8_t *, size_t);
static const FuzzEntry entries[] = {pl_fuzz_safetensors_one, pl_fuzz_pickle_one, pl_fuzz_checkpoint_one};

static uint64_t rng_state = 0x1234567;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void run_all(const uint8_t *d, size_t n) {
    for (size_t e = 0; e < sizeof entries / sizeof entries[0]; e++) entries[e](d, n);
}

// The input, then `mutations` variants: flipped bytes, "interesting" values, truncation, duplication.
static void replay_file(const char *path, int mutations) {
    char *data;
    size_t size;
    assert_int_equal(pl_file_read_all(path, 4 << 20, &data, &size), PL_OK);
    run_all((const uint8_t *)data, size);
    uint8_t *m = malloc(size * 2 + 16);
    static const uint8_t interesting[] = {0x00, 0xff, 0x7f, 0x80, 0x01, 'K', 'h', 'q', '(', 't', 'R', 'b', '.'};
    for (int i = 0; i < mutations && size > 0; i++) {
        memcpy(m, data, size);
        size_t n = size;
        switch (rng() % 4) {
        case 0:
            for (int k = 0; k < 4; k++) m[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
            break;
        case 1: m[rng() % n] = interesting[rng() % sizeof interesting]; break;
        case 2: n = rng() % n; break;
        default: {   // duplicate a slice in place (shifts later offsets)
            size_t at = rng() % n, len = rng() % (n - at < 64 ? n - at : 64) + 1;
            memmove(m + at + len, m + at, n - at);
            n += len;
            break;
        }
        }
        run_all(m, n);
    }
    free(m);
    free(data);
}

static int replay_dir(const char *rel, int mutations) {
    char dir[4096];
    pl_test_source_path(rel, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) fail_msg("corpus folder %s cannot be opened: every replayed folder must exist", dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".npy") || strstr(e->d_name, ".md")) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        replay_file(path, mutations);
        files++;
    }
    closedir(d);
    if (files == 0) fail_msg("corpus folder %s holds no input", dir);
    return files;
}

static void test_replay_corpus(void **state) {
    (void)state;
    const char *san = getenv("PROTLOC_SANITIZE");
    int mutations = san && strcmp(san, "1") == 0 ? 60 : 150;
    int files = replay_dir("tests/fixtures/checkpoints/valid", mutations);
    files += replay_dir("tests/fixtures/checkpoints/malformed", mutations);
    files += replay_dir("tests/fixtures/checkpoints/pickles", mutations * 4);
    files += replay_dir("tests/fuzz/corpus/safetensors", 0);
    files += replay_dir("tests/fuzz/corpus/pickle", 0);
    files += replay_dir("tests/fuzz/corpus/checkpoint", 0);
    print_message("replayed %d files with %d mutations each\n", files, mutations);
    assert_true(files >= 25);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_replay_corpus)};
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
