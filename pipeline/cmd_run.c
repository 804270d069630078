// `protloc run`: parse options, run the distributed embedding pipeline, print the summary (rank 0) and exit status.
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_prep.h"
#include "pl_cmds.h"
#include "pl_fs.h"
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
            "  --tile N               tile side in pixels (default " PL_PREP_TILE_DEFAULT_TEXT ")\n"
            "  --tile-stride N        tile step (default = tile)\n"
            "  --crop N               cell crop side in pixels (default: --crop-um, else " PL_PREP_CROP_DEFAULT_TEXT ")\n"
            "  --crop-um X            cell crop side in micrometres\n"
            "  --cell-border MODE     skip | pad | shift (default shift)\n"
            "  --min-cell-area N      smallest cell kept, in pixels of its label image (default " PL_PREP_MIN_CELL_AREA_DEFAULT_TEXT ")\n"
            "  --cell-labels FILE     TSV (id, mask_label, label) of hand-labelled cells: stored per cell row;\n"
            "                         only these cells score in knn/probe --level cells (docs/manifests.md)\n"
            "  --pixel-size X         source pixel size in um of items without pixel_size_um (default: the\n"
            "                         card's pixel_size_um, i.e. no rescaling; docs/stages.md \"Pixel sizes\")\n"
            "  --batch N              ViT batch for tiles and cells (default 16)\n"
            "  --threads N            ViT threads per rank (default: cores of the node / ranks on the node)\n");
    pl_cli_usage_kernels(out, "kernel backend", " (recorded in the store)");
    fprintf(out,
            "  --precision P          fp32 (default) or bf16 GEMM and attention inputs (recorded in the store)\n"
            "  --prefetch N           items prepared ahead of the embedding (default 2)\n"
            "  --verify               digest inputs by content SHA-256 instead of size + mtime\n"
            "  --strict               any failed item fails the run (the store is not replaced)\n"
            "  --max-failed N|F|P%%   failures that may still replace the store: a count, a fraction (0.05) or a\n"
            "                         percentage (5%%) of the items (default: none of the items the previous\n"
            "                         store had a row for may fail; new items may)\n"
            "  --accept-failures      replace the store whatever failed (it still needs one row)\n"
            "  --max-pixels N         per item: decoded pixels per channel (default 268435456 = 2^28)\n"
            "  --max-memory SIZE      per item: bytes of its model inputs and ViT activations, e.g. 8G\n"
            "                         (default: a quarter of this rank's share of the machine's memory)\n"
            "  --max-tokens N         per item: ViT tokens of a whole-FOV input; time grows with their square\n"
            "                         (default 65536 = a 4096 x 4096 input at patch 16)\n"
            "  --no-progress          no progress bar / progress lines\n\n"
            "Exit status: 0 all items embedded; 3 some items failed (listed in /failures and STORE.h5.failures.tsv);\n"
            "4 the failures keep the previous store (unchanged; see STORE.h5.failures.tsv); 5 no item produced a\n"
            "row (previous store unchanged); 6 another run holds STORE.h5.lock; 128+N stopped by signal N (a re-run\n"
            "resumes); 1 error; 2 usage. Details: docs/guide.md \"Exit statuses\".\n");
}

// --max-failed: "N" a count, "0.F" a fraction of the items, "P%" a percentage. 0 on success.
static int run_parse_max_failed(const char *text, double *out) {
    size_t n = strlen(text);
    double v;
    if (n > 1 && text[n - 1] == '%') {
        char buf[64];
        if (n >= sizeof buf) return -1;
        memcpy(buf, text, n - 1);
        buf[n - 1] = '\0';
        if (!pl_cli_parse_double(buf, 0, 100, &v)) return -1;
        *out = v / 100.0 < 1 ? v / 100.0 : 0.999999999;
        return 0;
    }
    long c;
    if (pl_cli_parse_long(text, 0, LONG_MAX, &c)) {   // a count (0: no failure at all)
        *out = (double)c;
        return 0;
    }
    if (!pl_cli_parse_double(text, 0, 1, &v) || v >= 1) return -1;
    *out = v;
    return 0;
}

// A size in bytes with an optional K, M, G or T suffix (powers of 1024). 0 on success.
static int run_parse_size(const char *text, int64_t *out) {
    char buf[64];
    size_t n = strlen(text);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, text, n + 1);
    int shift = 0;
    char last = buf[n - 1];
    if (last == 'K' || last == 'k') shift = 10;
    else if (last == 'M' || last == 'm') shift = 20;
    else if (last == 'G' || last == 'g') shift = 30;
    else if (last == 'T' || last == 't') shift = 40;
    if (shift) buf[n - 1] = '\0';
    long v;
    if (!pl_cli_parse_long(buf, 1, LONG_MAX >> shift, &v)) return -1;
    *out = (int64_t)v << shift;
    return 0;
}

int cmd_run_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_run_usage(stdout);
        return PL_EXIT_OK;
    }
    enum { O_MANIFEST = 256, O_MODEL, O_OUT, O_ROOT, O_OUTSIDE, O_LEVEL, O_ALIGN, O_FOV, O_TILE, O_STRIDE, O_CROP,
           O_CROPUM, O_BORDER, O_MINAREA, O_PIXEL, O_BATCH, O_THREADS, O_PREFETCH, O_VERIFY, O_STRICT, O_NOPROG, O_FILL, O_SEED,
           O_CELL_LABELS, O_MAXFAILED, O_ACCEPT, O_MAXPIX, O_MAXMEM, O_MAXTOK, O_KERNELS, O_PRECISION };
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
        {"seed", required_argument, 0, O_SEED}, {"cell-labels", required_argument, 0, O_CELL_LABELS},
        {"max-failed", required_argument, 0, O_MAXFAILED}, {"accept-failures", no_argument, 0, O_ACCEPT},
        {"max-pixels", required_argument, 0, O_MAXPIX}, {"max-memory", required_argument, 0, O_MAXMEM},
        {"max-tokens", required_argument, 0, O_MAXTOK}, {"kernels", required_argument, 0, O_KERNELS},
        {"precision", required_argument, 0, O_PRECISION}, {0, 0, 0, 0}};
    PlRunOptions o;
    pl_run_options_default(&o);
    const char *cmd = argv[0];
    int c, rc = 0, threads = 0;
    const char *kernels = "auto";
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case O_MANIFEST: o.manifest = optarg; break;
        case O_MODEL: o.model = optarg; break;
        case O_OUT: o.out = optarg; break;
        case O_ROOT: o.root = optarg; break;
        case O_OUTSIDE: o.allow_outside_root = 1; break;
        case O_LEVEL:
            if (pl_run_parse_levels(optarg, &o.levels) != PL_OK) {
                rc = pl_cli_usage_error(cmd, "--level %s: %s", optarg, pl_error_message());
                pl_error_clear();
                return rc;
            }
            break;
        case O_ALIGN:
            if (strcmp(optarg, "map") && strcmp(optarg, "natural") && strcmp(optarg, "replicate") &&
                strcmp(optarg, "random") && strcmp(optarg, "duplicate"))
                return pl_cli_usage_error(cmd, "--align wants map, replicate, random or duplicate (got '%s')", optarg);
            o.align = optarg;
            break;
        case O_FILL: o.fill = optarg; break;
        case O_CELL_LABELS: o.cell_labels = optarg; break;
        case O_ACCEPT: o.accept_failures = 1; break;
        case O_MAXFAILED:
            if (run_parse_max_failed(optarg, &o.max_failed) != 0)
                return pl_cli_usage_error(cmd, "--max-failed wants a count (3), a fraction (0.05) or a percentage (5%%), "
                                          "got '%s'", optarg);
            break;
        case O_MAXPIX: {
            long v = 0;
            rc = pl_cli_option_long(cmd, "--max-pixels", optarg, 1, 1L << 40, &v);
            o.max_pixels = v;
            break;
        }
        case O_MAXTOK: {
            long v = 0;
            rc = pl_cli_option_long(cmd, "--max-tokens", optarg, 1, 1L << 31, &v);
            o.max_tokens = v;
            break;
        }
        case O_MAXMEM:
            if (run_parse_size(optarg, &o.max_memory) != 0)
                return pl_cli_usage_error(cmd, "--max-memory wants a size such as 512M, 8G or 1073741824, got '%s'", optarg);
            break;
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
                return pl_cli_usage_error(cmd, "--cell-border wants skip, pad or shift (got '%s')", optarg);
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
        case O_KERNELS: kernels = optarg; break;
        case O_PRECISION:
            if (pl_precision_parse(optarg, &o.precision) != PL_OK)
                return pl_cli_usage_error(cmd, "--precision must be fp32 or bf16, not '%s'", optarg);
            break;
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc) return rc;
    }
    if (optind < argc) return pl_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.manifest || !o.model || !o.out) return pl_cli_usage_error(cmd, "--manifest, --model and --out are required");
    if (o.cell_labels && !(o.levels & PL_RUN_CELLS)) return pl_cli_usage_error(cmd, "--cell-labels needs --level cells");
    int rank = 0;
    if (PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)) != PL_OK) return PL_EXIT_ABORT;
    // every rank sees the same paths and refuses alike (agreed, so the job ends normally); rank 0 says why
    if (pl_mpi_agree(pl_run_check_outputs(&o), "checking the outputs") != PL_OK) {
        if (rank != 0) pl_error_clear();
        return PL_EXIT_FAIL;
    }
    if ((rc = pl_cli_option_kernels(cmd, kernels, o.precision, &o.kernels))) return rc;   // alike on every rank
    // --out before any work: a directory, FIFO or device there, or a missing folder, would otherwise fail only when
    // the finished store is renamed into place (the folder must exist: run does not create it)
    if (pl_mpi_agree(rank == 0 ? pl_output_file_check(o.out, "--out") : PL_OK, "checking --out") != PL_OK) {
        if (rank != 0) pl_error_clear();   // rank 0 prints the reason
        return PL_EXIT_FAIL;
    }
    if (pl_process_start_pool(threads, &o.pool) != PL_OK) return PL_EXIT_ABORT;
    if (o.max_memory == 0) o.max_memory = pl_process_memory_share() / 4;
    o.stop_signal = pl_process_stop_signal();
    o.after_item = pl_cli_test_hooks.after_item;
    o.after_item_ctx = pl_cli_test_hooks.after_item_ctx;
    PlRunSummary s;
    PlStatus st = pl_run(&o, &s);
    if (st == PL_ERR_INTERRUPTED) {   // every rank agreed; the journal keeps the finished items
        if (rank != 0) pl_error_clear();
        else pl_log_error("protloc run: %s", pl_error_message()), pl_error_clear();
        return PL_EXIT_SIGNAL + s.stop_signal;
    }
    if (st == PL_ERR_BUSY) {
        if (rank != 0) pl_error_clear();
        else pl_log_error("protloc run: %s", pl_error_message()), pl_error_clear();
        return PL_EXIT_LOCKED;
    }
    if (st != PL_OK) {
        if (rank != 0) pl_error_clear();   // every rank agreed; rank 0 prints the reason
        return PL_EXIT_FAIL;
    }
    if (rank == 0) {
        static const char *const outcome[] = {"replaced", "kept", "kept"};
        // the store is decided already: a closed or full stdout only loses the summary line (a warning), never the
        // run's exit status (SIGPIPE is ignored by the program)
        int w = printf("summary: items=%ld added=%ld changed=%ld removed=%ld reused=%ld resumed=%ld computed=%ld "
                       "failed=%ld tiles=%ld cells=%ld dim=%d seconds=%.2f store=%s regressions=%ld\n",
                       s.items, s.added, s.changed, s.removed, s.reused, s.resumed, s.computed, s.failed, s.tiles,
                       s.cells, s.dim, s.seconds, outcome[s.outcome], s.regressions);
        if (w < 0 || fflush(stdout) != 0 || ferror(stdout)) {
            pl_log_warn("protloc run: cannot print the summary to stdout (%s); the store at %s is %s", strerror(errno),
                        o.out, outcome[s.outcome]);
            clearerr(stdout);
        }
        pl_log_info("timings (summed over ranks): prepare %.2fs (reader thread), embed %.2fs, journal %.2fs, waiting "
                    "for input %.2fs; store write %.2fs; rank busy min/mean/max %.2f/%.2f/%.2fs; peak RSS per rank "
                    "(largest) %.1f MiB",
                    s.t_prep, s.t_embed, s.t_journal, s.t_wait, s.t_store, s.rank_busy_min, s.rank_busy_mean,
                    s.rank_busy_max, s.peak_rss_mib);
    }
    if (s.outcome == PL_RUN_NO_ROWS) return PL_EXIT_NO_ROWS;
    if (s.outcome == PL_RUN_KEPT) return PL_EXIT_KEPT;
    return s.failed > 0 ? PL_EXIT_PARTIAL : PL_EXIT_OK;
}
