// `protloc embed`: DINO ViT embeddings of a float32 (N, C, H, W) .npy array into a float32 (N, D) .npy.
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cli_outputs.h"
#include "pl_clock.h"
#include "pl_cmds.h"
#include "pl_error.h"
#include "pl_fs.h"
#include "pl_kernels.h"
#include "pl_log.h"
#include "pl_npy.h"
#include "pl_process.h"
#include "pl_vit.h"
#include "pl_weights.h"

void cmd_embed_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc embed --model FILE --input X.npy --output Y.npy [options]\n"
            "\n"
            "Run a DINO Vision Transformer on every image of X (float32, shape (N, C, H, W), already\n"
            "normalised) and write the embeddings Y (float32, shape (N, D)). The checkpoint may be\n"
            "safetensors, a PyTorch state dict (.pth) or a DINO training checkpoint.\n"
            "\n"
            "Options:\n"
            "  --model FILE           checkpoint (architecture inferred from its tensors)\n"
            "  --checkpoint-key K     for DINO training checkpoints: teacher (default) or student\n"
            "  --heads H              attention heads (default: from the checkpoint's args/metadata, else dim/64)\n"
            "  --input X.npy          float32 (N, C, H, W); C must equal the model's input channels\n"
            "  --output Y.npy         written atomically: float32 (N, D)\n"
            "  --batch B              images per forward pass (default 8)\n"
            "  --threads T            worker threads (default: the cores this process may use)\n");
    pl_cli_usage_kernels(out, "kernel backend", NULL);
    fprintf(out,
            "  --precision P          fp32 (default) or bf16 (BF16 GEMM and attention inputs, FP32 accumulation)\n"
            "  --last-n N             concatenate the CLS tokens of the last N blocks (D = N x dim)\n"
            "  --avgpool              DINO linear-eval features: CLS and mean patch token (D = 2 x dim,\n"
            "                         interleaved as DINO's eval_linear.py lays them out)\n"
            "  -h, --help             this help\n"
            "\n"
            "Default output: the CLS token after the final LayerNorm (DINO's VisionTransformer.forward).\n");
}

static PlStatus embed_run(const char *model, const char *key, int heads, const char *input, const char *output, int batch,
                          int threads, int last_n, int avgpool, const char *kernels_name, PlPrecision precision) {
    PlWeights w = {0};
    PlNpyArray x = {0};
    PlVit *vit = NULL;
    float *y = NULL;
    PlStatus st;
    PlWeightsOptions wopt = {.checkpoint_key = key};
    if ((st = pl_weights_load(model, &wopt, &w)) != PL_OK) goto done;
    PlVitConfig cfg;
    if ((st = pl_vit_config_infer(&w, heads, &cfg)) != PL_OK) {
        pl_error_wrap("%s", model);
        goto done;
    }
    pl_log_info("model %s: %s, dim %d, depth %d, heads %d, patch %d, %d input channels, position grid %dx%d", model,
                w.format, cfg.dim, cfg.depth, cfg.heads, cfg.patch, cfg.in_chans, cfg.pos_grid, cfg.pos_grid);

    if ((st = pl_npy_read(input, &x)) != PL_OK) goto done;
    if (strcmp(x.descr, "<f4") != 0 || x.ndim != 4) {
        char shape[128] = "";
        size_t used = 0;
        for (int d = 0; d < x.ndim && used < sizeof shape; d++)
            used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%lld", d ? ", " : "", (long long)x.shape[d]);
        st = PL_FAIL(PL_ERR_FORMAT, "%s: array is %s with shape (%s); expected float32 (<f4) with shape (N, C, H, W)", input,
                     x.descr, shape);
        goto done;
    }
    int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
    if (c != cfg.in_chans) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: images have %lld channels but the model takes %d", input, (long long)c, cfg.in_chans);
        goto done;
    }
    if (h < cfg.patch || wd < cfg.patch || h > 65536 || wd > 65536) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: image size %lldx%lld must be between one %dx%d patch and 65536", input, (long long)h,
                     (long long)wd, cfg.patch, cfg.patch);
        goto done;
    }
    size_t per = (size_t)c * (size_t)h * (size_t)wd;
    const float *xd = x.data;
    for (int64_t i = 0; i < n; i++)
        for (size_t k = 0; k < per; k++)
            if (!isfinite(xd[(size_t)i * per + k])) {
                st = PL_FAIL(PL_ERR_NUMERIC, "%s: image %lld holds a non-finite value (%g) at channel %zu, y %zu, x %zu", input,
                             (long long)i, (double)xd[(size_t)i * per + k], k / ((size_t)h * wd), k / (size_t)wd % (size_t)h,
                             k % (size_t)wd);
                goto done;
            }
    if (n > 0 && batch > n) batch = (int)n;
    PlThreadPool *pool = NULL;
    if ((st = pl_process_start_pool(threads, &pool)) != PL_OK) goto done;
    const PlKernels *kernels = NULL;
    if ((st = pl_kernels_find(kernels_name, precision, &kernels)) != PL_OK) goto done;
    PlVitOptions opt = {.max_batch = batch, .height = (int)h, .width = (int)wd, .pool = pool, .last_n = last_n,
                        .avgpool = avgpool, .kernels = kernels, .precision = precision};
    if ((st = pl_vit_create(&w, &cfg, &opt, &vit)) != PL_OK) goto done;
    int dim = pl_vit_output_dim(vit);
    if (h % cfg.patch || wd % cfg.patch)
        pl_log_warn("%s: %lldx%lld is not a multiple of the patch size %d: the last %lld rows / %lld columns are ignored, as DINO does",
                    input, (long long)h, (long long)wd, cfg.patch, (long long)(h % cfg.patch), (long long)(wd % cfg.patch));
    y = pl_calloc(n > 0 ? (size_t)n * (size_t)dim : 1, sizeof(float));
    if (!y) {
        st = PL_ERR_NOMEM;
        goto done;
    }
    double t0 = pl_clock_now();
    for (int64_t b0 = 0; b0 < n; b0 += batch) {
        int nb = n - b0 < batch ? (int)(n - b0) : batch;
        if ((st = pl_vit_forward(vit, xd + (size_t)b0 * per, nb, y + (size_t)b0 * dim)) != PL_OK) goto done;
    }
    double dt = pl_clock_now() - t0;
    pl_log_info("embedded %lld images of %lldx%lld in %.3f s (%.1f images/s, %d threads, batch %d, kernels %s, precision %s) -> "
                "(%lld, %d)", (long long)n, (long long)h, (long long)wd, dt, dt > 0 ? (double)n / dt : 0.0,
                pl_vit_threads(vit), batch, kernels->name, pl_precision_name(precision), (long long)n, dim);
    int64_t shape[2] = {n, dim};
    st = pl_npy_write_f32(output, 2, shape, y);
done:
    free(y);
    pl_vit_destroy(vit);
    pl_npy_free(&x);
    pl_weights_free(&w);
    return st;
}

int cmd_embed_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_embed_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},  {"checkpoint-key", required_argument, NULL, 'k'},
        {"heads", required_argument, NULL, 'H'},  {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'}, {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'}, {"last-n", required_argument, NULL, 'n'},
        {"avgpool", no_argument, NULL, 'a'},      {"kernels", required_argument, NULL, 'K'},
        {"precision", required_argument, NULL, 'P'}, {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *key = NULL, *input = NULL, *output = NULL, *kernels = "auto";
    int heads = 0, batch = 8, threads = 0, last_n = 1, avgpool = 0, rc;
    PlPrecision precision = PL_PRECISION_FP32;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': key = optarg; break;
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'H': if ((rc = pl_cli_option_int("embed", "--heads", optarg, 1, 4096, &heads))) return rc; break;
        case 'b': if ((rc = pl_cli_option_int("embed", "--batch", optarg, 1, 4096, &batch))) return rc; break;
        case 't': if ((rc = pl_cli_option_int("embed", "--threads", optarg, 1, 1024, &threads))) return rc; break;
        case 'n': if ((rc = pl_cli_option_int("embed", "--last-n", optarg, 1, 1024, &last_n))) return rc; break;
        case 'a': avgpool = 1; break;
        case 'K': kernels = optarg; break;
        case 'P':
            if (pl_precision_parse(optarg, &precision) != PL_OK)
                return pl_cli_usage_error("embed", "--precision must be fp32 or bf16, not '%s'", optarg);
            break;
        case ':': return pl_cli_usage_error("embed", "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error("embed", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return pl_cli_usage_error("embed", "unexpected argument '%s'", argv[optind]);
    if (!model) return pl_cli_usage_error("embed", "--model is required");
    if (!input) return pl_cli_usage_error("embed", "--input is required");
    if (!output) return pl_cli_usage_error("embed", "--output is required");
    if (key && key[0] == '\0')
        return pl_cli_usage_error("embed", "--checkpoint-key must not be empty");
    if (avgpool && last_n > 1)
        return pl_cli_usage_error("embed", "--avgpool works with --last-n 1 only (as DINO's eval_linear.py)");
    const PlKernels *k;   // --kernels is a command-line choice: refused before any input is read
    if ((rc = pl_cli_option_kernels("embed", kernels, precision, &k))) return rc;
    const PlCliPath outputs[] = {{"--output", output, NULL, 0}};
    const PlCliPath inputs[] = {{"--model", model, NULL, 0}, {"--input", input, NULL, 0}};
    if (pl_cli_check_outputs(outputs, 1, inputs, 2) != PL_OK) return PL_EXIT_FAIL;
    // its folder must exist (docs/guide.md "Output paths"): refused now, not after the embedding
    if (pl_output_file_check(output, "--output") != PL_OK) return PL_EXIT_FAIL;
    return embed_run(model, key, heads, input, output, batch, threads, last_n, avgpool, kernels, precision) == PL_OK
               ? PL_EXIT_OK
               : PL_EXIT_FAIL;
}
