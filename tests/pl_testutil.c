// Test helpers (see pl_testutil.h).
#define _GNU_SOURCE
#include "pl_testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_dispatch.h"
#include "pl_mpi.h"

int pl_test_skipped;

void pl_test_skip_part(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("SKIP: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    pl_test_skipped = 1;
}

const PlKernels *pl_test_bf16_kernels(const char *what) {
    const PlKernels *k = NULL;
    PlStatus st = pl_kernels_find("onednn", PL_PRECISION_BF16, &k);
    if (st == PL_OK) return k;
    PlCpuLevel level = pl_cpu_level();
    if (st == PL_ERR_UNSUPPORTED && level < PL_CPU_AVX512_BF16) {
        pl_test_skip_part("%s: this CPU (level %s) has no AVX512-BF16 and oneDNN refuses BF16 here (%s)", what,
                          pl_cpu_level_name(level), pl_error_message());
        return NULL;
    }
    fail_msg("%s: onednn BF16 kernels unavailable (%s) on a CPU of level %s: %s", what, pl_status_name(st),
             pl_cpu_level_name(level), pl_error_message());
    return NULL;
}

int pl_test_exit(int failed) {
    if (failed) return 1;
    return pl_test_skipped ? 77 : 0;
}

int pl_test_mpi_finish(int failed) {
    int mine[2] = {failed != 0, pl_test_skipped}, all[2] = {1, 0};
    if (MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) all[0] = 1;
    pl_mpi_stop();
    pl_test_skipped = all[1];
    return pl_test_exit(all[0]);
}

const char *pl_test_shared_path(const char *relative, char *buf, size_t size) {
    const char *root = getenv("PROTLOC_SHARED_DIR");
    if (!root || !*root) root = PROTLOC_SHARED_DIR;
    snprintf(buf, size, "%s/%s", root, relative);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

const char *pl_test_source_path(const char *relative, char *buf, size_t size) {
    snprintf(buf, size, "%s/%s", PROTLOC_SOURCE_DIR, relative);
    return buf;
}

char *pl_test_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/protloc-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static int rmtree_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void pl_test_rmtree(const char *path) {
    if (path) nftw(path, rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

float pl_test_urand(uint64_t *state) {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*state >> 40) / 8388608.0 - 1.0);
}

float *pl_test_rand_buf(uint64_t *state, size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = scale * pl_test_urand(state);
    return x;
}
