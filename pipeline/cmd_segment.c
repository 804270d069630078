// `protloc segment`: built-in nucleus segmentation of one image channel → count, 16-bit label TIFF, JSON.
#include <float.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cells.h"
#include "pl_cli.h"
#include "pl_cli_outputs.h"
#include "pl_cmds.h"
#include "pl_decode.h"
#include "pl_fs.h"
#include "pl_image_write.h"
#include "pl_log.h"
#include "pl_segment.h"

void cmd_segment_usage(FILE *out) {
    PlSegmentParams p;
    pl_segment_params_default(&p);
    fprintf(out,
            "Usage: protloc segment --nucleus IMG[#k] [--pixel-size UM] [--mask-out FILE.tif] [--json FILE.json]\n"
            "                       [--sigma UM] [--min-area UM2] [--max-area UM2] [--max-hole UM2] [--split UM]\n"
            "                       [--min-contrast K] [--keep-border]\n\n"
            "Segment nuclei in a nucleus (Hoechst/DAPI) channel: Gaussian smoothing, Otsu threshold, a contrast\n"
            "rule that returns zero nuclei for background-and-noise images, hole filling, distance-transform\n"
            "watershed that splits touching nuclei, size filter and border exclusion (docs/stages.md).\n"
            "Prints the nucleus count on stdout.\n\n"
            "Options:\n"
            "  --nucleus IMG[#k]   the nucleus channel: TIFF/PNG file, page/sample k (default 0)\n"
            "  --pixel-size UM     pixel size in µm (default %.3g, OpenCell)\n"
            "  --mask-out FILE     write the label image (0 = background, 1..N) as a 16-bit TIFF\n"
            "  --json FILE         write {\"count\", \"nuclei\": [{\"label\",\"cy\",\"cx\",\"area\",\"area_um2\"}], ...}\n"
            "  --sigma UM          Gaussian smoothing sigma (default %.3g µm)\n"
            "  --min-area UM2      smallest nucleus kept (default %.3g µm²)\n"
            "  --max-area UM2      largest object kept (default %.3g µm²)\n"
            "  --max-hole UM2      fill enclosed holes up to this area (default %.3g µm²)\n"
            "  --split UM          watershed dynamics needed to split touching nuclei (default %.3g µm; 0 = off)\n"
            "  --min-contrast K    foreground/background difference needed, in noise sigmas (default %.3g)\n"
            "  --keep-border       keep nuclei touching the image border\n",
            p.pixel_size_um, p.sigma_um, p.min_area_um2, p.max_area_um2, p.max_hole_um2, p.split_h_um,
            p.min_contrast);
}

static PlStatus segment_write_json(const char *path, const char *input, const PlSegmentParams *p, int H, int W,
                                   const PlSegmentStats *st, const PlCellSet *set) {
    json_t *root = json_object(), *nuclei = json_array();
    if (!root || !nuclei) {
        json_decref(root);
        json_decref(nuclei);
        return PL_FAIL(PL_ERR_NOMEM, "%s: cannot build JSON", path);
    }
    double px2 = p->pixel_size_um * p->pixel_size_um;
    int bad = 0;
    bad |= json_object_set_new(root, "file", json_string(input));
    bad |= json_object_set_new(root, "height", json_integer(H));
    bad |= json_object_set_new(root, "width", json_integer(W));
    bad |= json_object_set_new(root, "pixel_size_um", json_real(p->pixel_size_um));
    bad |= json_object_set_new(root, "threshold", json_real(st->threshold));
    bad |= json_object_set_new(root, "noise_sigma", json_real(st->noise_sigma));
    bad |= json_object_set_new(root, "contrast", isfinite(st->contrast) ? json_real(st->contrast) : json_null());
    bad |= json_object_set_new(root, "empty", json_boolean(st->empty));
    bad |= json_object_set_new(root, "count", json_integer(set->count));
    for (int i = 0; i < set->count && !bad; i++) {
        const PlCell *c = &set->cells[i];
        json_t *o = json_pack("{s:i, s:f, s:f, s:I, s:f}", "label", (int)c->label, "cy", (double)c->cy, "cx",
                              (double)c->cx, "area", (json_int_t)c->area, "area_um2", (double)c->area * px2);
        if (!o || json_array_append_new(nuclei, o)) bad = 1;
    }
    bad |= json_object_set_new(root, "nuclei", nuclei);
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(7));
    json_decref(root);
    if (!text) return PL_FAIL(PL_ERR_NOMEM, "%s: cannot serialise JSON", path);
    size_t len = strlen(text);
    PlStatus s = PL_OK;
    char *with_nl = malloc(len + 2);
    if (!with_nl) s = PL_FAIL(PL_ERR_NOMEM, "%s: no memory", path);
    else {
        memcpy(with_nl, text, len);
        with_nl[len] = '\n';
        s = pl_file_write_atomic(path, with_nl, len + 1);
        free(with_nl);
    }
    free(text);
    return s;
}

int cmd_segment_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_segment_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option longopts[] = {
        {"nucleus", required_argument, 0, 'n'},    {"pixel-size", required_argument, 0, 'p'},
        {"mask-out", required_argument, 0, 'm'},   {"json", required_argument, 0, 'j'},
        {"sigma", required_argument, 0, 's'},      {"min-area", required_argument, 0, 'a'},
        {"max-area", required_argument, 0, 'A'},   {"max-hole", required_argument, 0, 'H'},
        {"split", required_argument, 0, 'S'},      {"min-contrast", required_argument, 0, 'c'},
        {"keep-border", no_argument, 0, 'k'},      {0, 0, 0, 0}};
    PlSegmentParams p;
    pl_segment_params_default(&p);
    const char *nucleus = NULL, *mask_out = NULL, *json_out = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        double *target = NULL;
        const char *name = NULL;   // the option's own name (argv[optind - 1] is its value when given apart)
        switch (c) {
        case 'n': nucleus = optarg; break;
        case 'm': mask_out = optarg; break;
        case 'j': json_out = optarg; break;
        case 'k': p.exclude_border = 0; break;
        case 'p': target = &p.pixel_size_um, name = "--pixel-size"; break;
        case 's': target = &p.sigma_um, name = "--sigma"; break;
        case 'a': target = &p.min_area_um2, name = "--min-area"; break;
        case 'A': target = &p.max_area_um2, name = "--max-area"; break;
        case 'H': target = &p.max_hole_um2, name = "--max-hole"; break;
        case 'S': target = &p.split_h_um, name = "--split"; break;
        case 'c': target = &p.min_contrast, name = "--min-contrast"; break;
        case ':': return pl_cli_usage_error(argv[0], "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(argv[0], "unknown option '%s'", argv[optind - 1]);
        }
        int rc;
        if (target && (rc = pl_cli_option_double(argv[0], name, optarg, c == 'p' ? DBL_MIN : 0, DBL_MAX, target)))
            return rc;
    }
    if (optind != argc) return pl_cli_usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
    if (!nucleus) return pl_cli_usage_error(argv[0], "--nucleus IMG is required");
    if (!(p.pixel_size_um > 0)) return pl_cli_usage_error(argv[0], "--pixel-size must be > 0 (got %g)", p.pixel_size_um);
    if (p.sigma_um / p.pixel_size_um > 50)   // the options together, as pl_segment checks them, before any input
        return pl_cli_usage_error(argv[0], "--sigma %g µm is %.4g px at --pixel-size %g µm; at most 50 px", p.sigma_um,
                                  p.sigma_um / p.pixel_size_um, p.pixel_size_um);
    if (!(p.max_area_um2 > p.min_area_um2))
        return pl_cli_usage_error(argv[0], "--min-area %g µm² must be below --max-area %g µm²", p.min_area_um2,
                                  p.max_area_um2);
    char *nucleus_path = NULL;
    int page = 0;
    if (pl_image_ref_parse(nucleus, &nucleus_path, &page) != PL_OK) return PL_EXIT_FAIL;
    const PlCliPath outputs[] = {{"--mask-out", mask_out, NULL, 0}, {"--json", json_out, NULL, 0}};
    const PlCliPath inputs[] = {{"--nucleus", nucleus_path, NULL, 0}};
    PlStatus guard = pl_cli_check_outputs(outputs, 2, inputs, 1);
    free(nucleus_path);
    if (guard != PL_OK) return PL_EXIT_FAIL;
    // their folders must exist (docs/guide.md "Output paths"): refused before the image is read
    if ((mask_out && pl_output_file_check(mask_out, "--mask-out") != PL_OK) ||
        (json_out && pl_output_file_check(json_out, "--json") != PL_OK))
        return PL_EXIT_FAIL;

    PlImage img;
    memset(&img, 0, sizeof img);
    if (pl_image_read(nucleus, NULL, &img) != PL_OK) return PL_EXIT_FAIL;
    int H = img.height, W = img.width;
    int32_t *labels = malloc((size_t)H * W * sizeof(int32_t));
    PlCellSet set = {0};
    PlSegmentStats st;
    PlImage mask;
    memset(&mask, 0, sizeof mask);
    int rc = PL_EXIT_FAIL;
    if (!labels) {
        PL_FAIL(PL_ERR_NOMEM, "%s: no memory for a %d x %d label image", nucleus, H, W);
        goto done;
    }
    if (pl_segment_nuclei(img.data, H, W, &p, labels, &st) != PL_OK) {
        pl_error_wrap("%s", nucleus);
        goto done;
    }
    pl_log_info("%s: threshold %.1f, background %.1f, foreground %.1f, noise sigma %.2f, contrast %.1f%s; "
                "removed %d small, %d large, %d on the border",
                nucleus, st.threshold, st.background, st.foreground, st.noise_sigma, st.contrast,
                st.empty ? " (below --min-contrast: no nuclei)" : "", st.removed_small, st.removed_large,
                st.removed_border);
    if (pl_cells_measure(labels, H, W, 1, &set) != PL_OK) goto done;
    if (mask_out) {
        if (st.count > 65535) {
            PL_FAIL(PL_ERR_LIMIT, "%s: %d nuclei do not fit a 16-bit label TIFF", mask_out, st.count);
            goto done;
        }
        if (pl_image_alloc(&mask, 1, H, W) != PL_OK) goto done;
        for (size_t i = 0; i < (size_t)H * W; i++) mask.data[i] = (float)labels[i];
        if (pl_tiff_write(mask_out, &mask, 16, PL_TIFF_DEFLATE) != PL_OK) goto done;
    }
    if (json_out && segment_write_json(json_out, nucleus, &p, H, W, &st, &set) != PL_OK) goto done;
    printf("%d\n", st.count);
    rc = PL_EXIT_OK;
done:
    pl_image_free(&mask);
    pl_cell_set_free(&set);
    free(labels);
    pl_image_free(&img);
    return rc;
}
