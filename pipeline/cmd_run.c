// `protloc run`: parse options, run the distributed embedding pipeline, print the summary (rank 0) and exit status.
#include <float.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_process.h"
#include "pl_run.h"

void cmd_run_usage(FILE *out) {
    fprintf(out,
            "Usage: [mpirun -np N] protloc run --manifest M.tsv --model CARD.json --out STORE.h5 [options]\n\n"
            "Embed every manifest item with the model card's ViT and write an HDF5 store (docs/formats.md).\n"
            "Re-running resumes after a crash (STORE.h5.journal/) and recomputes only new or changed items.\n\n"
            "Options:\n"
            "  --manifest FILE        manifest TSV (docs/manifests.md)\n"
            "  --model FILE           model card JSON (manifests/models/)\n"
            "  --out FILE             output store (.h5), replaced atomically\n"
            "  --root DIR             resolve manifest paths against DIR (default: the manifest's folder)\n"
            "  --allow-outside-root   accept manifest paths outside the root\n"
            "  --level LIST           fov, tiles, cells or a comma list (default fov)\n"
            "  --align MODE           channel alignment: map (natural) | replicate | random | duplicate\n"
            "                         (default: the card's input_mode)\n"
            "  --fill LIST            duplicate: fills for empty slots, e.g. '*=nucleus' or 'er=nucleus'\n"
            "  --seed N               random: seed of the per-item slot shuffle (default 0)\n"
            "  --fov-size N           centre-crop / zero-pad each FOV to N x N (default: native size)\n"
            "  --tile N               tile side in pixels (default 224)\n"
            "  --tile-stride N        tile step (default = tile)\n"
            "  --crop N               cell crop side in pixels (default: --crop-um, else 224)\n"
            "  --crop-um X            cell crop side in micrometres\n"
            "  --cell-border MODE     skip | pad | shift (default shift)\n"
            "  --min-cell-area N      smallest cell kept, in pixels of its label image (default 50)\n"
            "  --cell-labels FILE     TSV (id, mask_label, label) of hand-labelled cells: stored per cell row;\n"
            "                         only these cells score in knn/probe --level cells (docs/manifests.md)\n"
            "  --pixel-size X         source pixel size in um of items without pixel_size_um (default: the\n"
            "                         card's pixel_size_um, i.e. no rescaling; docs/stages.md \"Pixel sizes\")\n"
            "  --batch N              ViT batch for tiles and cells (default 16)\n"
            "  --threads N            ViT threads per rank (default: cores of the node / ranks on the node)\n"
            "  --prefetch N           items prepared ahead of the embedding (default 2)\n"
            "  --verify               digest inputs by content SHA-256 instead of size + mtime\n"
            "  --strict               any failed item fails the run (the store is not replaced)\n"
            "  --no-progress          no progress bar / progress lines\n\n"
            "Exit status: 0 all items embedded, 3 some items failed (listed in /failures), 1 error, 2 usage.\n");
}

int cmd_run_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_run_usage(stdout);
        return PL_EXIT_OK;
    }
    enum { O_MANIFEST = 256, O_MODEL, O_OUT, O_ROOT, O_OUTSIDE, O_LEVEL, O_ALIGN, O_FOV, O_TILE, O_STRIDE, O_CROP,
           O_CROPUM, O_BORDER, O_MINAREA, O_PIXEL, O_BATCH, O_THREADS, O_PREFETCH, O_VERIFY, O_STRICT, O_NOPROG, O_FILL, O_SEED,
           O_CELL_LABELS };
    static const struct option longopts[] = {
        {"manifest", required_argument, 0, O_MANIFEST}, {"model", required_argument, 0, O_MODEL},
        {"out", required_argument, 0, O_OUT}, {"root", required_argument, 0, O_ROOT},
        {"allow-outside-root", no_argument, 0, O_OUTSIDE}, {"level", required_argument, 0, O_LEVEL},
        {"align", required_argument, 0, O_ALIGN}, {"fov-size", required_argument, 0, O_FOV},
        {"tile", required_argument, 0, O_TILE}, {"tile-stride", required_argument, 0, O_STRIDE},
        {"crop", required_argument, 0, O_CROP}, {"crop-um", required_argument, 0, O_CROPUM},
        {"cell-border", required_argument, 0, O_BORDER}, {"min-cell-area", required_argument, 0, O_MINAREA},
        {"pixel-size", required_argument, 0, O_PIXEL}, {"batch", required_argument, 0, O_BATCH},
        {"threads", required_argument, 0, O_THREADS}, {"prefetch", required_argument, 0, O_PREFETCH},
        {"verify", no_argument, 0, O_VERIFY}, {"strict", no_argument, 0, O_STRICT},
        {"no-progress", no_argument, 0, O_NOPROG}, {"fill", required_argument, 0, O_FILL},
        {"seed", required_argument, 0, O_SEED}, {"cell-labels", required_argument, 0, O_CELL_LABELS}, {0, 0, 0, 0}};
    PlRunOptions o;
    pl_run_options_default(&o);
    const char *cmd = argv[0];
    int c, rc = 0, threads = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case O_MANIFEST: o.manifest = optarg; break;
        case O_MODEL: o.model = optarg; break;
        case O_OUT: o.out = optarg; break;
        case O_ROOT: o.root = optarg; break;
        case O_OUTSIDE: o.allow_outside_root = 1; break;
        case O_LEVEL:
            if (pl_run_parse_levels(optarg, &o.levels) != PL_OK) return pl_cli_usage_error(cmd, "%s", pl_error_message());
            break;
        case O_ALIGN:
            if (strcmp(optarg, "map") && strcmp(optarg, "natural") && strcmp(optarg, "replicate") &&
                strcmp(optarg, "random") && strcmp(optarg, "duplicate"))
                return pl_cli_usage_error(cmd, "--align wants map, replicate, random or duplicate");
            o.align = optarg;
            break;
        case O_FILL: o.fill = optarg; break;
        case O_CELL_LABELS: o.cell_labels = optarg; break;
        case O_SEED: {
            int seed = 0;
            rc = pl_cli_option_int(cmd, "--seed", optarg, 0, 2147483647, &seed);
            o.seed = seed;
            break;
        }
        case O_FOV: rc = pl_cli_option_int(cmd, "--fov-size", optarg, 1, 65536, &o.fov_size); break;
        case O_TILE: rc = pl_cli_option_int(cmd, "--tile", optarg, 8, 65536, &o.tile); break;
        case O_STRIDE: rc = pl_cli_option_int(cmd, "--tile-stride", optarg, 1, 65536, &o.tile_stride); break;
        case O_CROP: rc = pl_cli_option_int(cmd, "--crop", optarg, 8, 8192, &o.crop); break;
        case O_CROPUM: rc = pl_cli_option_double(cmd, "--crop-um", optarg, DBL_MIN, 1e6, &o.crop_um); break;
        case O_BORDER:
            if (strcmp(optarg, "skip") && strcmp(optarg, "pad") && strcmp(optarg, "shift"))
                return pl_cli_usage_error(cmd, "--cell-border wants skip, pad or shift");
            o.cell_border = optarg;
            break;
        case O_MINAREA: rc = pl_cli_option_int(cmd, "--min-cell-area", optarg, 1, 1 << 30, &o.min_cell_area); break;
        case O_PIXEL: rc = pl_cli_option_double(cmd, "--pixel-size", optarg, DBL_MIN, 1e6, &o.pixel_size_um); break;
        case O_BATCH: rc = pl_cli_option_int(cmd, "--batch", optarg, 1, 4096, &o.batch); break;
        case O_THREADS: rc = pl_cli_option_int(cmd, "--threads", optarg, 1, 1024, &threads); break;
        case O_PREFETCH: rc = pl_cli_option_int(cmd, "--prefetch", optarg, 1, 7, &o.prefetch); break;
        case O_VERIFY: o.verify = 1; break;
        case O_STRICT: o.strict = 1; break;
        case O_NOPROG: o.no_progress = 1; break;
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc) return rc;
    }
    if (optind < argc) return pl_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.manifest || !o.model || !o.out) return pl_cli_usage_error(cmd, "--manifest, --model and --out are required");
    if (o.cell_labels && !(o.levels & PL_RUN_CELLS)) return pl_cli_usage_error(cmd, "--cell-labels needs --level cells");
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (pl_process_start_pool(threads, &o.pool) != PL_OK) return PL_EXIT_ABORT;
    o.after_item = pl_cli_test_hooks.after_item;
    o.after_item_ctx = pl_cli_test_hooks.after_item_ctx;
    PlRunSummary s;
    PlStatus st = pl_run(&o, &s);
    if (st != PL_OK) {
        if (rank != 0) pl_error_clear();   // every rank agreed; rank 0 prints the reason
        return PL_EXIT_FAIL;
    }
    if (rank == 0) {
        printf("summary: items=%ld added=%ld changed=%ld removed=%ld reused=%ld resumed=%ld computed=%ld failed=%ld "
               "tiles=%ld cells=%ld dim=%d seconds=%.2f\n",
               s.items, s.added, s.changed, s.removed, s.reused, s.resumed, s.computed, s.failed, s.tiles, s.cells,
               s.dim, s.seconds);
        fflush(stdout);
        pl_log_info("timings (summed over ranks): prepare %.2fs (reader thread), embed %.2fs, journal %.2fs, waiting "
                    "for input %.2fs; store write %.2fs; rank busy min/mean/max %.2f/%.2f/%.2fs",
                    s.t_prep, s.t_embed, s.t_journal, s.t_wait, s.t_store, s.rank_busy_min, s.rank_busy_mean,
                    s.rank_busy_max);
    }
    return s.failed > 0 ? PL_EXIT_PARTIAL : PL_EXIT_OK;
}
