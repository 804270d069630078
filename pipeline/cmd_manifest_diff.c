// `protloc manifest diff OLD NEW`: list the item ids added, changed and removed between two manifests.
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_error.h"
#include "pl_log.h"
#include "pl_manifest_diff.h"

// Exit status when the manifests differ (0 = identical, 1 = error, 2 = usage).
#define DIFF_EXIT_DIFFERENT 3

void cmd_manifest_diff_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc manifest diff OLD.tsv NEW.tsv [--summary]\n\n"
            "Compare two manifests item by item (matched by id) and print one line per difference:\n"
            "  added<TAB>ID              in NEW only\n"
            "  changed<TAB>ID<TAB>FIELDS in both, with different FIELDS (dataset, label, split, group,\n"
            "                            pixel_size_um, sha256, mask or a channel role: resolved path and page)\n"
            "  removed<TAB>ID            in OLD only\n"
            "then a summary line '# added A, changed C, removed R, unchanged U'.\n\n"
            "Options:\n"
            "  --summary   print only the summary line\n\n"
            "Exit status: 0 = no differences, 3 = differences found, 1 = a manifest cannot be read or is\n"
            "invalid (the error names file:line:column), 2 = bad command line.\n");
}

int cmd_manifest_diff_run(int argc, char **argv) {
    const char *cmd = "manifest diff";
    if (pl_cli_wants_help(argc, argv)) {
        cmd_manifest_diff_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option longopts[] = {{"summary", no_argument, 0, 's'}, {0, 0, 0, 0}};
    int summary_only = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c == 's') summary_only = 1;
        else return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
    }
    if (argc - optind != 2) return pl_cli_usage_error(cmd, "expected two manifests OLD and NEW");
    PlManifest old_m, new_m;
    PlStatus st = pl_manifest_load_any_roles(argv[optind], &old_m);
    if (st != PL_OK) {
        pl_manifest_free(&old_m);
        return PL_EXIT_FAIL;
    }
    st = pl_manifest_load_any_roles(argv[optind + 1], &new_m);
    if (st != PL_OK) {
        pl_manifest_free(&old_m);
        pl_manifest_free(&new_m);
        return PL_EXIT_FAIL;
    }
    PlManifestDiff d;
    st = pl_manifest_diff(&old_m, &new_m, &d);
    if (st == PL_OK) {
        if (!summary_only) {
            for (size_t i = 0; i < d.count; i++) {
                const PlManifestDiffEntry *e = &d.entries[i];
                if (e->kind == PL_DIFF_ADDED) printf("added\t%s\n", e->id);
                else if (e->kind == PL_DIFF_REMOVED) printf("removed\t%s\n", e->id);
                else printf("changed\t%s\t%s\n", e->id, e->fields);
            }
        }
        printf("# added %zu, changed %zu, removed %zu, unchanged %zu\n", d.n_added, d.n_changed, d.n_removed,
               d.n_unchanged);
        if (fflush(stdout) != 0) st = PL_FAIL(PL_ERR_IO, "cannot write to stdout");
    }
    int different = st == PL_OK && d.count > 0;
    pl_manifest_diff_free(&d);
    pl_manifest_free(&old_m);
    pl_manifest_free(&new_m);
    if (st != PL_OK) return PL_EXIT_FAIL;
    return different ? DIFF_EXIT_DIFFERENT : PL_EXIT_OK;
}
