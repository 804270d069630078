// `protloc model inspect`: print a checkpoint's format, inferred ViT architecture, stored args and tensor table.
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_error.h"
#include "pl_vit.h"
#include "pl_weights.h"

void cmd_model_inspect_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc model inspect FILE [--checkpoint-key K] [--heads H]\n"
            "\n"
            "Load a checkpoint (safetensors, PyTorch state dict .pth/.pt, or DINO training checkpoint) the\n"
            "way `protloc embed` does, and print its format, the ViT architecture inferred from its tensors,\n"
            "the stored training args / metadata, and a table of tensors (name, shape, dtype in the file,\n"
            "min, max, mean). Exits 1 with a message naming the file and tensor when the file cannot be\n"
            "used (malformed, unsafe pickle, missing / mis-shaped / NaN tensors).\n"
            "\n"
            "Options:\n"
            "  --checkpoint-key K   state dict of a training checkpoint: teacher (default) or student\n"
            "  --heads H            attention heads (default: stored args / metadata, else dim/64)\n"
            "  -h, --help           this help\n");
}

static void print_tensor_row(const PlWeightTensor *t) {
    char shape[128];
    size_t used = (size_t)snprintf(shape, sizeof shape, "(");
    for (int d = 0; d < t->ndim && used < sizeof shape; d++)
        used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (used < sizeof shape) snprintf(shape + used, sizeof shape - used, "%s)", t->ndim == 1 ? "," : "");
    int64_t n = pl_weight_tensor_numel(t), bad = 0;
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = t->data[i];
        if (!isfinite(v)) {
            bad++;
            continue;
        }
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
    }
    if (n - bad > 0)
        printf("  %-40s %-22s %-5s %12.5g %12.5g %12.5g%s\n", t->name, shape, t->dtype[0] ? t->dtype : "F32", lo, hi,
               sum / (double)(n - bad), bad ? "  (has NaN/Inf)" : "");
    else
        printf("  %-40s %-22s %-5s %12s %12s %12s%s\n", t->name, shape, t->dtype[0] ? t->dtype : "F32", "-", "-", "-",
               bad ? "  (all NaN/Inf)" : "");
}

int cmd_model_inspect_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_model_inspect_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option opts[] = {
        {"checkpoint-key", required_argument, 0, 'k'}, {"heads", required_argument, 0, 'H'}, {0, 0, 0, 0}};
    const char *key = NULL, *file = NULL;
    int heads = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'k') {
            key = optarg;
        } else if (c == 'H') {
            char *end = NULL;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 8192)
                return pl_cli_usage_error("model inspect", "--heads expects an integer in 1..8192, got '%s'", optarg);
            heads = (int)v;
        } else {
            return pl_cli_usage_error("model inspect", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return pl_cli_usage_error("model inspect", "missing the checkpoint FILE");
    if (optind + 1 < argc) return pl_cli_usage_error("model inspect", "unexpected argument '%s'", argv[optind + 1]);
    file = argv[optind];

    PlWeights w;
    PlWeightsOptions wopt = {.checkpoint_key = key};
    if (pl_weights_load(file, &wopt, &w) != PL_OK) return PL_EXIT_FAIL;
    size_t params = 0;
    for (size_t i = 0; i < w.count; i++) params += (size_t)pl_weight_tensor_numel(&w.tensors[i]);
    printf("file: %s\n", file);
    if (w.state_dict_key[0])
        printf("format: %s (training checkpoint; state dict \"%s\")\n", w.format, w.state_dict_key);
    else
        printf("format: %s\n", w.format);
    printf("tensors: %zu (%zu parameters, %.2f MB as float32)\n", w.count, params, (double)params * 4 / 1e6);
    PlVitConfig cfg;
    PlStatus arch = pl_vit_config_infer(&w, heads, &cfg);
    if (arch == PL_OK) {
        const char *src = heads ? "--heads" : w.args_heads ? "stored metadata" : "stored args or dim/64";
        printf("architecture: DINO ViT, in_chans %d, patch %d, dim %d, depth %d, heads %d (%s), mlp_hidden %d, "
               "position grid %dx%d (%d px), ln_eps %g\n",
               cfg.in_chans, cfg.patch, cfg.dim, cfg.depth, cfg.heads, src, cfg.mlp_hidden, cfg.pos_grid,
               cfg.pos_grid, cfg.pos_grid * cfg.patch, cfg.ln_eps);
    } else {
        printf("architecture: not a usable DINO ViT (see the error below)\n");
    }
    printf("stored args:%s\n", w.args_text ? "" : " (none)");
    const char *cursor = NULL, *line;
    size_t len;
    while ((line = pl_weights_arg_next(&w, &cursor, &len))) printf("  %.*s\n", (int)len, line);
    printf("tensor table:\n  %-40s %-22s %-5s %12s %12s %12s\n", "name", "shape", "dtype", "min", "max", "mean");
    for (size_t i = 0; i < w.count; i++) print_tensor_row(&w.tensors[i]);
    fflush(stdout);
    if (arch != PL_OK) pl_error_wrap("%s", file);
    pl_weights_free(&w);
    return arch == PL_OK ? PL_EXIT_OK : PL_EXIT_FAIL;
}
