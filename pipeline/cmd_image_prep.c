// `protloc image prep`: run the FOV preprocessing stages on one item and write the model-input tensor (.npy).
#include <float.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cli_outputs.h"
#include "pl_cmds.h"
#include "pl_error.h"
#include "pl_fs.h"
#include "pl_npy.h"
#include "pl_prep.h"

#define PREP_MAX_CHANNELS 16

void cmd_image_prep_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc image prep --channel ROLE=IMG[#k] [--channel ...] --out FILE.npy [options]\n\n"
            "Decode one item's channels and run the preprocessing stages exactly as `protloc run` does:\n"
            "rescale -> normalise -> align channels to the model's input slots -> FOV tiles (docs/stages.md).\n"
            "Writes a float32 .npy of shape (views*tiles, slots, H, W), view-major, and optionally the tile\n"
            "origins; prints one summary line on stdout.\n\n"
            "Channels and alignment:\n"
            "  --channel ROLE=IMG[#k]   a source channel and its role (nucleus, protein, ...); repeat, in role order\n"
            "  --slots LIST             the model's input slots in order (default protein,nucleus,microtubules,er)\n"
            "  --strategy S             map | replicate | random | duplicate (default map)\n"
            "  --map SLOT=ROLE,...      map: declared sources, e.g. green=protein,blue=nucleus (ImageNet)\n"
            "  --fill SLOT=ROLE,...     duplicate: fill empty slots, e.g. microtubules=nucleus or '*=nucleus'\n"
            "  --seed N                 random: seed (with --id, decides the assignment; default 0)\n"
            "  --id ID                  item id for messages and the random strategy (default: item)\n"
            "Normalisation:\n"
            "  --norm M                 self | fixed | none (default self: per-channel z-score, std + 1e-7)\n"
            "  --mean LIST --std LIST   fixed: per-slot mean/std in [0,1] units (default ImageNet, 3 slots)\n"
            "  --clip LOW,HIGH          percentile clipping before normalising, e.g. 0.1,99.9\n"
            "Geometry:\n"
            "  --scale F                rescale by F (area average when shrinking, bilinear when enlarging)\n"
            "  --pixel-size UM          source pixel size; with --model-pixel-size rescales by their ratio\n"
            "  --model-pixel-size UM    the model's pixel size (e.g. 0.08 for HPA models)\n"
            "  --fov M                  whole | tiles | center (default whole)\n"
            "  --tile N                 tiles/center: tile side (default 224)\n"
            "  --stride N               tiles: step (default = tile)\n"
            "  --border B               tiles: drop | pad | shift (default shift)\n"
            "  --patch N                whole: crop to a multiple of N (default 16)\n"
            "  --max-pixels N           decode limit per channel (default 268435456)\n"
            "Output:\n"
            "  --out FILE.npy           the tensor (written atomically)\n"
            "  --tiles-out FILE.tsv     rows: index view tile y x (origins in the rescaled image)\n");
}

static PlStatus write_tiles_tsv(const char *path, const PlPrepResult *res) {
    PlAtomicFile af = {0};
    PL_TRY(pl_atomic_open(&af, path));
    int bad = fprintf(af.fp, "index\tview\ttile\ty\tx\n") < 0;
    for (int v = 0; v < res->n_views && !bad; v++)
        for (int t = 0; t < res->n_tiles && !bad; t++)
            bad = fprintf(af.fp, "%d\t%d\t%d\t%d\t%d\n", v * res->n_tiles + t, v, t, res->tiles[t].y, res->tiles[t].x) < 0;
    if (bad) {
        pl_atomic_abort(&af);
        return PL_FAIL(PL_ERR_IO, "%s: write failed", path);
    }
    return pl_atomic_commit(&af);
}

// Outputs never overwrite inputs: --out and --tiles-out against every --channel image.
static PlStatus prep_check_outputs(const char *out, const char *tiles_out, const PlChannelSource *src, int n_src) {
    char *paths[PREP_MAX_CHANNELS] = {0};
    PlCliPath inputs[PREP_MAX_CHANNELS];
    PlStatus st = PL_OK;
    for (int i = 0; i < n_src && st == PL_OK; i++) {
        int page;
        st = pl_image_ref_parse(src[i].ref, &paths[i], &page);
        inputs[i] = (PlCliPath){"--channel", paths[i], NULL, 0};
    }
    const PlCliPath outputs[] = {{"--out", out, NULL, 0}, {"--tiles-out", tiles_out, NULL, 0}};
    if (st == PL_OK) st = pl_cli_check_outputs(outputs, 2, inputs, n_src);
    for (int i = 0; i < n_src; i++) free(paths[i]);
    return st;
}

int cmd_image_prep_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_image_prep_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option opts[] = {
        {"channel", required_argument, 0, 'c'},    {"slots", required_argument, 0, 's'},
        {"strategy", required_argument, 0, 'a'},   {"map", required_argument, 0, 'm'},
        {"fill", required_argument, 0, 'f'},       {"seed", required_argument, 0, 'S'},
        {"id", required_argument, 0, 'i'},         {"norm", required_argument, 0, 'n'},
        {"mean", required_argument, 0, 'M'},       {"std", required_argument, 0, 'D'},
        {"clip", required_argument, 0, 'C'},       {"scale", required_argument, 0, 'x'},
        {"pixel-size", required_argument, 0, 'p'}, {"model-pixel-size", required_argument, 0, 'P'},
        {"fov", required_argument, 0, 'v'},        {"tile", required_argument, 0, 't'},
        {"stride", required_argument, 0, 'r'},     {"border", required_argument, 0, 'b'},
        {"patch", required_argument, 0, 'k'},      {"max-pixels", required_argument, 0, 'L'},
        {"out", required_argument, 0, 'o'},        {"tiles-out", required_argument, 0, 'T'},
        {0, 0, 0, 0}};
    const char *slots = "protein,nucleus,microtubules,er", *strategy = "map", *map = NULL, *fill = NULL;
    const char *id = "item", *norm = "self", *mean = NULL, *std = NULL, *clip = NULL, *fov = "whole";
    const char *border = "shift", *out = NULL, *tiles_out = NULL;
    double scale = 0, pixel = 0, model_pixel = 0;
    int tile = 224, stride = 0, patch = 16;
    unsigned long long seed = 0, max_pixels = 0;
    PlChannelSource src[PREP_MAX_CHANNELS];
    char roles[PREP_MAX_CHANNELS][64];
    int n_src = 0, c, rc = PL_EXIT_OK;
    long lv;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1] || (size_t)(eq - optarg) >= sizeof roles[0])
                return pl_cli_usage_error("image prep", "--channel needs ROLE=IMG[#k], got '%s'", optarg);
            if (n_src == PREP_MAX_CHANNELS) return pl_cli_usage_error("image prep", "at most %d channels", PREP_MAX_CHANNELS);
            memcpy(roles[n_src], optarg, (size_t)(eq - optarg));
            roles[n_src][eq - optarg] = '\0';
            src[n_src].role = roles[n_src];
            src[n_src].ref = eq + 1;
            n_src++;
            break;
        }
        case 's': slots = optarg; break;
        case 'a': strategy = optarg; break;
        case 'm': map = optarg; break;
        case 'f': fill = optarg; break;
        case 'S':
            if ((rc = pl_cli_option_long("image prep", "--seed", optarg, 0, LONG_MAX, &lv))) return rc;
            seed = (unsigned long long)lv;
            break;
        case 'i': id = optarg; break;
        case 'n': norm = optarg; break;
        case 'M': mean = optarg; break;
        case 'D': std = optarg; break;
        case 'C': clip = optarg; break;
        case 'x': rc = pl_cli_option_double("image prep", "--scale", optarg, DBL_MIN, DBL_MAX, &scale); break;
        case 'p': rc = pl_cli_option_double("image prep", "--pixel-size", optarg, DBL_MIN, DBL_MAX, &pixel); break;
        case 'P': rc = pl_cli_option_double("image prep", "--model-pixel-size", optarg, DBL_MIN, DBL_MAX, &model_pixel); break;
        case 'v': fov = optarg; break;
        case 't': if ((rc = pl_cli_option_int("image prep", "--tile", optarg, 1, 1 << 20, &tile))) return rc; break;
        case 'r': if ((rc = pl_cli_option_int("image prep", "--stride", optarg, 1, 1 << 20, &stride))) return rc; break;
        case 'b': border = optarg; break;
        case 'k': if ((rc = pl_cli_option_int("image prep", "--patch", optarg, 1, 1 << 20, &patch))) return rc; break;
        case 'L':
            if ((rc = pl_cli_option_long("image prep", "--max-pixels", optarg, 1, 1L << 40, &lv))) return rc;
            max_pixels = (unsigned long long)lv;
            break;
        case 'o': out = optarg; break;
        case 'T': tiles_out = optarg; break;
        default:
            return pl_cli_usage_error("image prep", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (rc) return rc;
    }
    if (optind < argc) return pl_cli_usage_error("image prep", "unexpected argument '%s'", argv[optind]);
    if (n_src == 0) return pl_cli_usage_error("image prep", "give at least one --channel ROLE=IMG");
    if (!out) return pl_cli_usage_error("image prep", "--out FILE.npy is required");
    if (prep_check_outputs(out, tiles_out, src, n_src) != PL_OK) return PL_EXIT_FAIL;
    // their folders must exist (docs/guide.md "Output paths"): refused before any image is read
    if (pl_output_file_check(out, "--out") != PL_OK ||
        (tiles_out && pl_output_file_check(tiles_out, "--tiles-out") != PL_OK))
        return PL_EXIT_FAIL;

    PlPrepConfig cfg;
    PlAlignStrategy strat;
    if (pl_align_strategy_parse(strategy, &strat) != PL_OK) return pl_cli_usage_error("image prep", "%s", pl_error_message());
    if (pl_prep_config_default(&cfg, slots) != PL_OK) return pl_cli_usage_error("image prep", "--slots: %s", pl_error_message());
    cfg.align.strategy = strat;
    cfg.align.seed = seed;
    if (map && pl_align_spec_set_mapping(&cfg.align, map) != PL_OK) return pl_cli_usage_error("image prep", "--map: %s", pl_error_message());
    if (fill && pl_align_spec_set_fill(&cfg.align, fill) != PL_OK) return pl_cli_usage_error("image prep", "--fill: %s", pl_error_message());
    PlNormMode mode;
    if (pl_norm_mode_parse(norm, &mode) != PL_OK) return pl_cli_usage_error("image prep", "%s", pl_error_message());
    pl_norm_spec_default(&cfg.norm, mode);
    if ((mean != NULL) != (std != NULL)) return pl_cli_usage_error("image prep", "--mean and --std go together");
    if (mean && pl_norm_spec_set_fixed(&cfg.norm, mean, std) != PL_OK) return pl_cli_usage_error("image prep", "%s", pl_error_message());
    if (clip) {
        double lo = 0, hi = 0;
        char low[64];
        const char *comma = strchr(clip, ',');
        size_t nl = comma ? (size_t)(comma - clip) : sizeof low;
        if (nl < sizeof low) {
            memcpy(low, clip, nl);
            low[nl] = '\0';
        }
        if (nl >= sizeof low || !pl_cli_parse_double(low, 0, 100, &lo) || !pl_cli_parse_double(comma + 1, 0, 100, &hi) ||
            !(lo < hi))
            return pl_cli_usage_error("image prep", "--clip needs LOW,HIGH percentiles, 0 <= LOW < HIGH <= 100, "
                                      "got '%s'", clip);
        cfg.norm.clip_low = lo;
        cfg.norm.clip_high = hi;
    }
    if (pl_fov_mode_parse(fov, &cfg.fov.mode) != PL_OK || pl_tile_border_parse(border, &cfg.fov.border) != PL_OK)
        return pl_cli_usage_error("image prep", "%s", pl_error_message());
    cfg.fov.size = tile;
    cfg.fov.stride = stride ? stride : tile;
    cfg.fov.patch = patch;
    cfg.scale = scale;
    cfg.model_pixel_um = model_pixel;
    if (max_pixels) cfg.limits.max_pixels = max_pixels;
    if (pl_prep_config_validate(&cfg) != PL_OK) return pl_cli_usage_error("image prep", "%s", pl_error_message());

    PlPrepResult res = {0};
    PlStatus st = pl_prep_fov(&cfg, id, pixel, src, n_src, &res);
    if (st == PL_OK) {
        int64_t shape[4] = {(int64_t)res.n_views * res.n_tiles, res.n_slots, res.tile_h, res.tile_w};
        st = pl_npy_write_f32(out, 4, shape, res.data);
    }
    if (st == PL_OK && tiles_out) st = write_tiles_tsv(tiles_out, &res);
    if (st == PL_OK)
        printf("%s\tviews=%d\ttiles=%d\tslots=%d\theight=%d\twidth=%d\tscale=%.6g\timage=%dx%d\n", out, res.n_views,
               res.n_tiles, res.n_slots, res.tile_h, res.tile_w, res.scale, res.height, res.width);
    pl_prep_result_free(&res);
    return st == PL_OK ? PL_EXIT_OK : PL_EXIT_FAIL;
}
