// `protloc manifest scan DIR --layout opencell|hpa`: write a manifest for a folder of OpenCell or HPA images.
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_cli.h"
#include "pl_cli_outputs.h"
#include "pl_cmds.h"
#include "pl_error.h"
#include "pl_fs.h"
#include "pl_log.h"
#include "pl_manifest_scan.h"

void cmd_manifest_scan_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc manifest scan DIR --layout opencell|hpa [--labels CSV] [--out M.tsv] [options]\n\n"
            "Write a manifest (TSV, docs/manifests.md) for every image set found below DIR.\n\n"
            "Layouts:\n"
            "  opencell   each *_proj.tif is one item: page 0 = nucleus, page 1 = protein; id = the path below DIR\n"
            "             without _proj.tif; target = first '_'-separated name token that is an ENSG id or a target\n"
            "             name of the labels CSV (else the first ENSG token, else the token after OC-FOV, else the\n"
            "             first token); group = target\n"
            "  hpa        {id}_{red,green,blue,yellow}.png (or .tif) = microtubules, protein, nucleus, er; an optional\n"
            "             {id}_cellmask.png fills the mask column; ids missing a channel are skipped (and listed);\n"
            "             group = {plate}_{well} for {plate}_{well}_{field} ids, else the id\n\n"
            "Options:\n"
            "  --layout L           opencell or hpa (required)\n"
            "  --labels CSV         OpenCell annotations (ensg_id,target_name,annotation_name,annotation_grade:\n"
            "                       the single grade-3 class of each target, empty when it has 0 or several) or an\n"
            "                       id,labels[,group][,split] CSV (HPA style; labels separated by ' ', ';' or '|')\n"
            "  --out FILE           write the manifest here (atomically); default: stdout\n"
            "  --root DIR           write paths relative to DIR (default: the --out file's folder; with stdout:\n"
            "                       absolute paths). Files outside it are written as absolute paths.\n"
            "  --absolute           write absolute paths\n"
            "  --dataset NAME       dataset column (default: opencell / hpa)\n"
            "  --pixel-size UM      pixel_size_um column (default: 0.206 for opencell, none for hpa)\n"
            "  --test-fraction F    share of groups put in split 'test' (default 0.2), by a hash of the group:\n"
            "                       stable when images are added, never splits a group\n"
            "  --val-fraction F     share of groups put in split 'val' (default 0)\n"
            "  --folds K            split = fold number 0..K-1 (hash of the group) instead of train/val/test\n"
            "  --labelled-only      leave out items whose label is empty\n");
}

int cmd_manifest_scan_run(int argc, char **argv) {
    const char *cmd = "manifest scan";
    if (pl_cli_wants_help(argc, argv)) {
        cmd_manifest_scan_usage(stdout);
        return PL_EXIT_OK;
    }
    enum { O_LAYOUT = 1, O_LABELS, O_OUT, O_ROOT, O_ABS, O_DATASET, O_PIXEL, O_TEST, O_VAL, O_FOLDS, O_LABELLED };
    static const struct option longopts[] = {
        {"layout", required_argument, 0, O_LAYOUT},   {"labels", required_argument, 0, O_LABELS},
        {"out", required_argument, 0, O_OUT},         {"root", required_argument, 0, O_ROOT},
        {"absolute", no_argument, 0, O_ABS},          {"dataset", required_argument, 0, O_DATASET},
        {"pixel-size", required_argument, 0, O_PIXEL}, {"test-fraction", required_argument, 0, O_TEST},
        {"val-fraction", required_argument, 0, O_VAL}, {"folds", required_argument, 0, O_FOLDS},
        {"labelled-only", no_argument, 0, O_LABELLED}, {0, 0, 0, 0}};
    PlScanOptions opt = {.test_fraction = 0.2};
    const char *out_path = NULL, *root = NULL;
    int absolute = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        double v;
        switch (c) {
        case O_LAYOUT:
            if (!strcmp(optarg, "opencell")) opt.layout = PL_SCAN_OPENCELL;
            else if (!strcmp(optarg, "hpa")) opt.layout = PL_SCAN_HPA;
            else return pl_cli_usage_error(cmd, "--layout must be opencell or hpa, not '%s'", optarg);
            break;
        case O_LABELS: opt.labels_csv = optarg; break;
        case O_OUT: out_path = optarg; break;
        case O_ROOT: root = optarg; break;
        case O_ABS: absolute = 1; break;
        case O_DATASET:
            if (!optarg[0] || strpbrk(optarg, "\t\n\r")) return pl_cli_usage_error(cmd, "bad --dataset '%s'", optarg);
            opt.dataset = optarg;
            break;
        case O_PIXEL:
            if (!pl_cli_parse_double(optarg, 1e-6, 1e6, &opt.pixel_size_um))
                return pl_cli_usage_error(cmd, "--pixel-size wants a positive number, not '%s'", optarg);
            break;
        case O_TEST:
        case O_VAL:
            if (!pl_cli_parse_double(optarg, 0, 1, &v))
                return pl_cli_usage_error(cmd, "--%s wants a number in [0, 1], not '%s'",
                                          c == O_TEST ? "test-fraction" : "val-fraction", optarg);
            if (c == O_TEST) opt.test_fraction = v;
            else opt.val_fraction = v;
            break;
        case O_FOLDS:
            if (!pl_cli_parse_double(optarg, 2, 1000, &v) || v != (int)v)
                return pl_cli_usage_error(cmd, "--folds wants an integer 2..1000, not '%s'", optarg);
            opt.folds = (int)v;
            break;
        case O_LABELLED: opt.labelled_only = 1; break;
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return pl_cli_usage_error(cmd, optind >= argc ? "missing folder DIR" : "expected one folder, got '%s' too",
                                  optind >= argc ? "" : argv[argc - 1]);
    if (!opt.layout) return pl_cli_usage_error(cmd, "--layout opencell|hpa is required");
    if (opt.test_fraction + opt.val_fraction > 1)
        return pl_cli_usage_error(cmd, "--test-fraction + --val-fraction must not exceed 1");
    if (absolute && root) return pl_cli_usage_error(cmd, "--absolute and --root exclude each other");
    const char *dir = argv[optind];
    const PlCliPath outputs[] = {{"--out", out_path, NULL, 0}};
    const PlCliPath inputs[] = {{"--labels", opt.labels_csv, NULL, 0}, {"the scanned folder", dir, NULL, 0}};
    if (pl_cli_check_outputs(outputs, 1, inputs, 2) != PL_OK) return PL_EXIT_FAIL;
    // --out's folder must exist: it is not created (docs/guide.md "Output paths"); refused before the scan
    if (out_path && pl_output_file_check(out_path, "--out") != PL_OK) return PL_EXIT_FAIL;

    // Paths relative to --root, else to the output file's folder, else absolute.
    char *out_dir_copy = NULL;
    if (!absolute) {
        if (root) opt.paths_relative_to = root;
        else if (out_path) {
            out_dir_copy = pl_strdup(out_path);
            if (!out_dir_copy) return PL_EXIT_FAIL;
            opt.paths_relative_to = dirname(out_dir_copy);
        }
    }
    PlScanResult r;
    PlStatus st = pl_manifest_scan(dir, &opt, &r);
    free(out_dir_copy);
    if (st != PL_OK) return PL_EXIT_FAIL;
    for (size_t i = 0; i < r.n_skipped && i < 20; i++) pl_log_warn("skipped %s", r.skipped[i]);
    if (r.n_skipped > 20) pl_log_warn("... and %zu more skipped", r.n_skipped - 20);
    if (r.count == 0) {
        PL_FAIL(PL_ERR_EMPTY, "%s: no %s found%s", dir,
                opt.layout == PL_SCAN_OPENCELL ? "*_proj.tif files" : "complete {id}_{red,green,blue,yellow}.png sets",
                r.n_dropped ? " with a label (--labelled-only)" : "");
        pl_manifest_scan_free(&r);
        return PL_EXIT_FAIL;
    }
    st = pl_manifest_scan_write(&r, out_path, stdout);
    if (st == PL_OK)
        pl_log_info("manifest scan: %zu items from %zu files (%zu unlabelled%s, %zu dropped, %zu skipped)%s%s", r.count,
                    r.n_files, r.n_unlabelled, opt.labels_csv ? "" : ": no --labels", r.n_dropped, r.n_skipped,
                    out_path ? " -> " : "", out_path ? out_path : "");
    pl_manifest_scan_free(&r);
    return st == PL_OK ? PL_EXIT_OK : PL_EXIT_FAIL;
}
