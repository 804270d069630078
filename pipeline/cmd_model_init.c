// `protloc model init`: write deterministic random DINO ViT weights to a safetensors file.
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_error.h"
#include "pl_fs.h"
#include "pl_log.h"
#include "pl_safetensors.h"
#include "pl_weights_init.h"

void cmd_model_init_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc model init --dim D --depth L --heads H --patch P --in-chans C --out FILE.safetensors\n"
            "                          [--img-size 224] [--seed S] [--jitter J]\n"
            "\n"
            "Write random DINO ViT weights (deterministic for a given seed) as safetensors, with the\n"
            "architecture in __metadata__ (heads, arch, patch_size, seed). Initialisation as DINO's\n"
            "vision_transformer.py: truncated normal (std 0.02) for cls_token, pos_embed, patch and linear\n"
            "weights; zero biases; LayerNorm weight 1, bias 0.\n"
            "\n"
            "Options:\n"
            "  --dim D          embedding dim (ViT-S 384, ViT-B 768)\n"
            "  --depth L        number of blocks (12 for DINO's models)\n"
            "  --heads H        attention heads; must divide D (ViT-S 6, ViT-B 12)\n"
            "  --patch P        patch size in pixels (8 or 16)\n"
            "  --in-chans C     input channels (3 ImageNet, 4 HPA)\n"
            "  --img-size N     position embedding for N x N pixels (default 224)\n"
            "  --seed S         random seed (default 0)\n"
            "  --jitter J       add N(0, J) noise to LayerNorm weights/biases and all biases (default 0),\n"
            "                   so tests exercise every parameter\n"
            "  --out FILE       output .safetensors (written atomically)\n"
            "  -h, --help       this help\n"
            "\n"
            "Example (ViT-S/16 for HPA's 4 channels):\n"
            "  protloc model init --dim 384 --depth 12 --heads 6 --patch 16 --in-chans 4 --out vits16.safetensors\n");
}

int cmd_model_init_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_model_init_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option opts[] = {
        {"dim", required_argument, 0, 'd'},   {"depth", required_argument, 0, 'l'},
        {"heads", required_argument, 0, 'H'}, {"patch", required_argument, 0, 'p'},
        {"in-chans", required_argument, 0, 'c'}, {"img-size", required_argument, 0, 'i'},
        {"seed", required_argument, 0, 's'},  {"jitter", required_argument, 0, 'j'},
        {"out", required_argument, 0, 'o'},   {0, 0, 0, 0}};
    long dim = 0, depth = 0, heads = 0, patch = 0, chans = 0, img = 224;
    unsigned long long seed = 0;
    double jitter = 0;
    const char *out = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = PL_EXIT_OK;
        switch (c) {
        case 'd': rc = pl_cli_option_long("model init", "--dim", optarg, 1, 8192, &dim); break;
        case 'l': rc = pl_cli_option_long("model init", "--depth", optarg, 1, 128, &depth); break;
        case 'H': rc = pl_cli_option_long("model init", "--heads", optarg, 1, 8192, &heads); break;
        case 'p': rc = pl_cli_option_long("model init", "--patch", optarg, 1, 256, &patch); break;
        case 'c': rc = pl_cli_option_long("model init", "--in-chans", optarg, 1, 64, &chans); break;
        case 'i': rc = pl_cli_option_long("model init", "--img-size", optarg, 1, 8192, &img); break;
        case 's': {
            char *end = NULL;
            errno = 0;
            seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return pl_cli_usage_error("model init", "--seed expects a non-negative integer, got '%s'", optarg);
            break;
        }
        case 'j': rc = pl_cli_option_double("model init", "--jitter", optarg, 0, 10, &jitter); break;
        case 'o': out = optarg; break;
        default:
            return pl_cli_usage_error("model init", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (rc != PL_EXIT_OK) return rc;
    }
    if (optind < argc) return pl_cli_usage_error("model init", "unexpected argument '%s'", argv[optind]);
    if (!dim || !depth || !heads || !patch || !chans || !out)
        return pl_cli_usage_error("model init", "--dim, --depth, --heads, --patch, --in-chans and --out are required");
    if (dim % heads) return pl_cli_usage_error("model init", "--heads %ld does not divide --dim %ld", heads, dim);
    if (img < patch) return pl_cli_usage_error("model init", "--img-size %ld is smaller than --patch %ld", img, patch);
    // --out's folder must exist (docs/guide.md "Output paths"): refused before the weights are drawn
    if (pl_output_file_check(out, "--out") != PL_OK) return PL_EXIT_FAIL;

    PlVitInitSpec spec = {.dim = (int)dim, .depth = (int)depth, .heads = (int)heads, .patch = (int)patch,
                          .in_chans = (int)chans, .img_size = (int)img, .mlp_ratio = 4, .seed = seed,
                          .jitter = (float)jitter};
    PlWeights w;
    if (pl_weights_init_vit(&spec, &w) != PL_OK) return PL_EXIT_FAIL;
    char s_heads[32], s_patch[32], s_seed[32], s_img[32], s_chans[32], s_jitter[32];
    snprintf(s_heads, sizeof s_heads, "%ld", heads);
    snprintf(s_patch, sizeof s_patch, "%ld", patch);
    snprintf(s_seed, sizeof s_seed, "%llu", seed);
    snprintf(s_img, sizeof s_img, "%ld", img);
    snprintf(s_chans, sizeof s_chans, "%ld", chans);
    snprintf(s_jitter, sizeof s_jitter, "%g", jitter);
    const char *meta[] = {"heads", s_heads, "arch", w.args_arch, "patch_size", s_patch,
                          "generator", "protloc model init", "seed", s_seed, "img_size", s_img,
                          "in_chans", s_chans, "jitter", s_jitter, NULL};
    size_t params = 0;
    for (size_t i = 0; i < w.count; i++) params += (size_t)pl_weight_tensor_numel(&w.tensors[i]);
    PlStatus st = pl_safetensors_write(out, &w, meta);
    if (st == PL_OK)
        pl_log_info("wrote %s: %s, %zu tensors, %zu parameters (%.1f MB)", out, w.args_arch, w.count, params,
                    (double)params * 4 / 1e6);
    pl_weights_free(&w);
    return st == PL_OK ? PL_EXIT_OK : PL_EXIT_FAIL;
}
