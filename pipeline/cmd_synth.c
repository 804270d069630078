// `protloc synth`: write a synthetic OpenCell- or HPA-style dataset (images, optional masks, manifest.tsv).
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_fs.h"
#include "pl_synth.h"

void cmd_synth_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc synth --kind opencell|hpa --classes N --per-class M --seed S --out DIR [--size PX]\n"
            "                     [--masks] [--fovs-per-protein K]\n\n"
            "Write realistic synthetic fields of view: textured nuclei plus a per-class protein pattern (OpenCell\n"
            "annotation classes: nucleoplasm, cytoplasmic, nucleolus_gc, membrane, vesicles, er, golgi,\n"
            "mitochondria, centrosome, nuclear_membrane, nuclear_punctae, cytoskeleton, big_aggregates, chromatin,\n"
            "nucleolus_fc_dfc, focal_adhesions, cell_contact), shot and read noise, varying cell counts and\n"
            "intensities. Same seed -> byte-identical files.\n\n"
            "  opencell: DIR/{id}_proj.tif, 2-page uint16 (page 0 nucleus, page 1 protein), 0.206 um/px, default 1024 px\n"
            "  hpa:      DIR/{id}_{red,green,blue,yellow}.png, 8-bit (microtubules, protein, nucleus, ER), 0.32 um/px,\n"
            "            default 512 px\n"
            "and DIR/manifest.tsv (id, dataset, label, split, group, channel roles, pixel_size_um[, mask]) with splits by\n"
            "group (synthetic protein), plus DIR/synth.json (the parameters).\n\n"
            "Options:\n"
            "  --kind K               opencell or hpa (required)\n"
            "  --classes N            number of classes, 1..17, taken in the order above (required)\n"
            "  --per-class M          fields of view per class (required)\n"
            "  --seed S               random seed, a non-negative integer (required)\n"
            "  --out DIR              output folder, created if needed (required)\n"
            "  --size PX              field side in pixels, 16..8192 (default 1024 opencell, 512 hpa)\n"
            "  --masks                also write a 16-bit cell label mask per field ({id}_cellmask.tif|png)\n"
            "  --fovs-per-protein K   fields per synthetic protein / group (default 2)\n");
}

int cmd_synth_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_synth_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option longopts[] = {
        {"kind", required_argument, 0, 'k'},    {"classes", required_argument, 0, 'c'},
        {"per-class", required_argument, 0, 'm'}, {"seed", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},     {"size", required_argument, 0, 'z'},
        {"masks", no_argument, 0, 'M'},         {"fovs-per-protein", required_argument, 0, 'f'},
        {0, 0, 0, 0}};
    PlSynthParams p;
    pl_synth_params_default(&p);
    const char *kind = NULL, *out = NULL;
    int have_classes = 0, have_per_class = 0, have_seed = 0;
    int c;
    long v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': kind = optarg; break;
        case 'o': out = optarg; break;
        case 'M': p.masks = 1; break;
        case 'c':
            if (!pl_cli_parse_long(optarg, 1, PL_SYNTH_MAX_CLASSES, &v))
                return pl_cli_usage_error(argv[0], "--classes wants an integer in 1..%d, got '%s'", PL_SYNTH_MAX_CLASSES,
                                          optarg);
            p.classes = (int)v;
            have_classes = 1;
            break;
        case 'm':
            if (!pl_cli_parse_long(optarg, 1, 100000, &v))
                return pl_cli_usage_error(argv[0], "--per-class wants an integer in 1..100000, got '%s'", optarg);
            p.per_class = (int)v;
            have_per_class = 1;
            break;
        case 's': {
            char *end = NULL;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno || optarg[0] == '-')
                return pl_cli_usage_error(argv[0], "--seed wants a non-negative integer, got '%s'", optarg);
            p.seed = (uint64_t)s;
            have_seed = 1;
            break;
        }
        case 'z':
            if (!pl_cli_parse_long(optarg, 16, 8192, &v))
                return pl_cli_usage_error(argv[0], "--size wants an integer in 16..8192, got '%s'", optarg);
            p.size = (int)v;
            break;
        case 'f':
            if (!pl_cli_parse_long(optarg, 1, 100000, &v))
                return pl_cli_usage_error(argv[0], "--fovs-per-protein wants a positive integer, got '%s'", optarg);
            p.fovs_per_protein = (int)v;
            break;
        case ':': return pl_cli_usage_error(argv[0], "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(argv[0], "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc) return pl_cli_usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
    if (!kind) return pl_cli_usage_error(argv[0], "--kind opencell|hpa is required");
    if (pl_synth_kind_parse(kind, &p.kind) != PL_OK) {
        pl_error_clear();
        return pl_cli_usage_error(argv[0], "--kind wants opencell or hpa, got '%s'", kind);
    }
    if (!have_classes || !have_per_class || !have_seed || !out)
        return pl_cli_usage_error(argv[0], "--classes, --per-class, --seed and --out are required");
    // --out DIR is made with its missing parents (docs/guide.md "Output paths"): may it be?
    if (pl_output_dir_check(out, "--out") != PL_OK) return PL_EXIT_FAIL;
    int n = 0;
    if (pl_synth_write_dataset(&p, out, &n) != PL_OK) return PL_EXIT_FAIL;
    printf("wrote %d fields (%d classes x %d) to %s/manifest.tsv\n", n, p.classes, p.per_class, out);
    return PL_EXIT_OK;
}
