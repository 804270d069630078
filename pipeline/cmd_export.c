// `protloc export STORE --format h5ad|npy|tsv [--level fov|tiles|cells] --out PATH`: store → AnnData / NumPy / TSV.
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cli_outputs.h"
#include "pl_cmds.h"
#include "pl_error.h"
#include "pl_fs.h"
#include "pl_export.h"
#include "pl_log.h"

void cmd_export_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc export STORE.h5 --format h5ad|npy|tsv [--level fov|tiles|cells] --out PATH [--meta M.tsv]\n\n"
            "Write one level of an embedding store (docs/formats.md) in a format other tools read directly.\n"
            "One row per observation: a field of view (fov), a tile or a cell, with its item's id, dataset, label,\n"
            "split and group (tiles add y, x; cells add cy, cx, area).\n\n"
            "Formats:\n"
            "  h5ad   AnnData file: X = embeddings (float32), obs = id, dataset, label, split, group (+ extras),\n"
            "         obs_names = item id (fov) or <id>/<k> (k-th tile/cell), var_names e0..e{D-1};\n"
            "         read with: python3 -c 'import anndata; print(anndata.read_h5ad(\"PATH\"))'\n"
            "  npy    PATH = embeddings (N, D) float32 .npy; metadata TSV (id, dataset, label, split, group, extras)\n"
            "         next to it (PATH with .npy replaced by .tsv, or --meta): the input of\n"
            "         'protloc knn --features PATH --meta M.tsv'\n"
            "  tsv    one TSV: obs, id, dataset, label, split, group, extras, e0..e{D-1}\n\n"
            "Options:\n"
            "  --format F    h5ad, npy or tsv (default: from the --out extension)\n"
            "  --level L     fov (default), tiles or cells\n"
            "  --out PATH    output file (written to a temporary name, then renamed)\n"
            "  --meta FILE   npy only: where the metadata TSV goes\n");
}

int cmd_export_run(int argc, char **argv) {
    const char *cmd = "export";
    if (pl_cli_wants_help(argc, argv)) {
        cmd_export_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option longopts[] = {{"format", required_argument, 0, 'f'},
                                             {"level", required_argument, 0, 'l'},
                                             {"out", required_argument, 0, 'o'},
                                             {"meta", required_argument, 0, 'm'},
                                             {0, 0, 0, 0}};
    const char *format = NULL, *out_path = NULL, *meta = NULL;
    PlStoreLevel level = PL_STORE_FOV;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'o': out_path = optarg; break;
        case 'm': meta = optarg; break;
        case 'l':
            if (pl_store_level_parse(optarg, &level) != PL_OK)
                return pl_cli_usage_error(cmd, "--level must be fov, tiles or cells, not '%s'", optarg);
            break;
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1) return pl_cli_usage_error(cmd, "expected one STORE argument");
    if (!out_path) return pl_cli_usage_error(cmd, "--out PATH is required");
    if (!format) {
        const char *dot = strrchr(out_path, '.');
        if (dot && (!strcmp(dot, ".h5ad") || !strcmp(dot, ".npy") || !strcmp(dot, ".tsv"))) format = dot + 1;
        else return pl_cli_usage_error(cmd, "--format h5ad|npy|tsv is required (cannot tell from '%s')", out_path);
    }
    if (strcmp(format, "h5ad") && strcmp(format, "npy") && strcmp(format, "tsv"))
        return pl_cli_usage_error(cmd, "--format must be h5ad, npy or tsv, not '%s'", format);
    if (meta && strcmp(format, "npy")) return pl_cli_usage_error(cmd, "--meta only applies to --format npy");
    const char *store = argv[optind];

    char *meta_buf = NULL;
    if (!strcmp(format, "npy") && !meta) {   // default: the .npy's name with .tsv
        size_t n = strlen(out_path);
        meta_buf = malloc(n + 8);
        if (!meta_buf) return PL_EXIT_FAIL;
        memcpy(meta_buf, out_path, n + 1);
        if (n > 4 && !strcmp(out_path + n - 4, ".npy")) strcpy(meta_buf + n - 4, ".tsv");
        else strcat(meta_buf, ".tsv");
        meta = meta_buf;
    }
    // outputs never overwrite the input store (nor each other); export reports it as a usage error (exit 2)
    const PlCliPath outputs[] = {{"--out", out_path, NULL, 0},
                                 {meta_buf ? "the metadata file of --out" : "--meta", meta, NULL, 0}};
    const PlCliPath inputs[] = {{"the STORE argument", store, NULL, 0}};
    if (pl_cli_check_outputs(outputs, 2, inputs, 1) != PL_OK) {
        free(meta_buf);
        int rc = pl_cli_usage_error(cmd, "%s", pl_error_message());
        pl_error_clear();
        return rc;
    }
    // their folders must exist (docs/guide.md "Output paths"): refused before the store is read
    if (pl_output_file_check(out_path, "--out") != PL_OK ||
        (meta && pl_output_file_check(meta, meta_buf ? "the metadata file of --out" : "--meta") != PL_OK)) {
        free(meta_buf);
        return PL_EXIT_FAIL;
    }
    PlStoreTable t;
    if (pl_store_table_load(store, level, &t) != PL_OK) {
        pl_error_wrap("exporting %s", store);
        free(meta_buf);
        return PL_EXIT_FAIL;
    }
    PlStatus st;
    if (!strcmp(format, "h5ad")) st = pl_export_write_h5ad(&t, out_path);
    else if (!strcmp(format, "tsv")) st = pl_export_write_tsv(&t, out_path);
    else st = pl_export_write_npy(&t, out_path, meta);
    if (st == PL_OK)
        pl_log_info("export: %lld %s rows x %lld dims -> %s%s%s", (long long)t.n, pl_store_level_name(level),
                    (long long)t.d, out_path, meta ? " + " : "", meta ? meta : "");
    free(meta_buf);
    pl_store_table_free(&t);
    return st == PL_OK ? PL_EXIT_OK : PL_EXIT_FAIL;
}
