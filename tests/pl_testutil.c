// Test helpers (see pl_testutil.h).
#define _GNU_SOURCE
#include "pl_testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
