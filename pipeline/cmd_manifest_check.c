// `protloc manifest check`: validate a manifest and print a summary (stdout) or every problem found (stderr).
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_manifest.h"

void cmd_manifest_check_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc manifest check MANIFEST.tsv [--root DIR] [--roles r1,r2,...] [--allow-outside-root]\n"
            "                              [--no-files] [--max-errors N]\n\n"
            "Validate a manifest (spec: docs/manifests.md): header, required columns, duplicate ids, splits,\n"
            "channel roles, path[#page] syntax, paths escaping the root, missing files. Prints a summary on\n"
            "success (exit 0) or every problem as FILE:LINE:COLUMN: message (exit 1).\n\n"
            "Options:\n"
            "  --root DIR             resolve relative paths against DIR (default: the manifest's folder)\n"
            "  --roles LIST           allowed channel roles (default nucleus,protein,microtubules,er)\n"
            "  --allow-outside-root   accept paths outside the root folder\n"
            "  --no-files             do not check that channel files exist\n"
            "  --max-errors N         report at most N problems (default 100)\n");
}

// Split "a,b,c" into role names (pointers into `buf`). Returns the count or -1 when too many.
static int manifest_check_split_roles(char *buf, const char **roles, int max) {
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!tok[0]) continue;
        if (n >= max) return -1;
        roles[n++] = tok;
    }
    return n;
}

int cmd_manifest_check_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_manifest_check_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option longopts[] = {
        {"root", required_argument, 0, 'r'},       {"roles", required_argument, 0, 'R'},
        {"allow-outside-root", no_argument, 0, 'o'}, {"no-files", no_argument, 0, 'n'},
        {"max-errors", required_argument, 0, 'm'}, {0, 0, 0, 0}};
    PlManifestOptions opt;
    memset(&opt, 0, sizeof opt);
    opt.check_files = 1;
    char roles_buf[1024] = "";
    const char *roles[PL_MANIFEST_MAX_ROLES];
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': opt.root = optarg; break;
        case 'R':
            snprintf(roles_buf, sizeof roles_buf, "%s", optarg);
            opt.n_roles = manifest_check_split_roles(roles_buf, roles, PL_MANIFEST_MAX_ROLES);
            if (opt.n_roles <= 0)
                return pl_cli_usage_error(argv[0], "--roles wants 1 to %d comma-separated names, got '%s'",
                                          PL_MANIFEST_MAX_ROLES, optarg);
            opt.roles = roles;
            break;
        case 'o': opt.allow_outside_root = 1; break;
        case 'n': opt.check_files = 0; break;
        case 'm': {
            long v = 0;
            int rc = pl_cli_option_long(argv[0], "--max-errors", optarg, 1, 100000000L, &v);
            if (rc) return rc;
            opt.max_errors = (size_t)v;
            break;
        }
        case ':': return pl_cli_usage_error(argv[0], "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(argv[0], "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return pl_cli_usage_error(argv[0], "expected exactly one MANIFEST argument");
    const char *path = argv[optind];
    PlManifest m;
    PlStatus st = pl_manifest_load(path, &opt, &m);
    if (st != PL_OK) {
        if (m.n_errors == 0) {   // not a validation problem (e.g. unreadable file): main prints it
            pl_manifest_free(&m);
            return PL_EXIT_FAIL;
        }
        for (size_t i = 0; i < m.n_errors; i++) fprintf(stderr, "%s\n", m.errors[i]);
        if (m.n_errors_total > m.n_errors)
            fprintf(stderr, "... and %zu more problems\n", m.n_errors_total - m.n_errors);
        fprintf(stderr, "%s: %zu problem%s found\n", path, m.n_errors_total, m.n_errors_total == 1 ? "" : "s");
        pl_manifest_free(&m);
        pl_error_clear();
        return PL_EXIT_FAIL;
    }
    size_t labelled = 0, with_mask = 0, n_train = 0, n_val = 0, n_test = 0, n_fold = 0, n_unassigned = 0;
    size_t per_role[PL_MANIFEST_MAX_ROLES] = {0};
    for (size_t i = 0; i < m.count; i++) {
        const PlManifestItem *it = &m.items[i];
        if (it->label[0]) labelled++;
        if (it->mask.path) with_mask++;
        if (!strcmp(it->split, "train")) n_train++;
        else if (!strcmp(it->split, "val")) n_val++;
        else if (!strcmp(it->split, "test")) n_test++;
        else if (!it->split[0]) n_unassigned++;
        else n_fold++;
        for (int r = 0; r < m.n_roles; r++)
            if (it->channels[r].path) per_role[r]++;
    }
    printf("manifest %s: OK\n", path);
    printf("items\t%zu\n", m.count);
    printf("labelled\t%zu\n", labelled);
    printf("splits\ttrain=%zu val=%zu test=%zu fold=%zu unassigned=%zu\n", n_train, n_val, n_test, n_fold,
           n_unassigned);
    printf("roles");
    for (int r = 0; r < m.n_roles; r++) printf("\t%s=%zu", m.roles[r], per_role[r]);
    printf("\n");
    printf("masks\t%zu\n", with_mask);
    printf("root\t%s\n", m.root);
    pl_manifest_free(&m);
    return PL_EXIT_OK;
}
