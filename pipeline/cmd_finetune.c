// `protloc finetune`: fine-tune a DINO ViT backbone together with a linear head on (N, C, H, W) float32 arrays with
// class ids or multi-hot labels; MPI data-parallel, checkpointed, bit-identical for any rank and thread count.
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_digest.h"
#include "pl_error.h"
#include "pl_finetune.h"
#include "pl_fs.h"
#include "pl_kernels.h"
#include "pl_log.h"
#include "pl_modelcard.h"
#include "pl_mpi.h"
#include "pl_npy.h"
#include "pl_process.h"
#include "pl_safetensors.h"
#include "pl_vit_train.h"
#include "pl_weights.h"

void cmd_finetune_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc finetune --model FILE --input X.npy --labels Y.npy --out DIR [options]\n"
            "       mpirun -np R protloc finetune ...   (ranks split every global batch)\n"
            "\n"
            "Train the whole DINO ViT backbone together with a linear classification head (one optimizer,\n"
            "same lr, nothing frozen: DINO4Cells' end-to-end recipe) and write DIR/backbone.safetensors,\n"
            "DIR/head.safetensors, DIR/train.jsonl, DIR/report.json (and DIR/model.json when --model is a card).\n"
            "The final weights are bit-identical for any --threads and rank count (--reduce tree).\n"
            "\n"
            "Inputs:\n"
            "  --model FILE           backbone: checkpoint (safetensors, .pth, DINO training checkpoint) or model card .json\n"
            "  --heads H              attention heads (default: checkpoint metadata/card, else dim/64)\n"
            "  --checkpoint-key K     teacher (default) or student, for DINO training checkpoints\n"
            "  --input X.npy          float32 (N, C, H, W), already normalised (every image trains at H x W)\n"
            "  --labels Y.npy         int64/int32 (N) class ids -> softmax cross-entropy, or float (N, K) multi-hot\n"
            "                         -> BCE-with-logits\n"
            "  --head-init H.safetensors  linear head: weight (K, dim), bias (K) (default: N(0, 0.01) weights, 0 bias)\n"
            "  --classes K            head outputs for class ids without --head-init (default: max id + 1)\n"
            "  --out DIR              output folder (created)\n"
            "Optimisation (defaults: DINO4Cells end-to-end):\n"
            "  --optimizer adamw|sgd  adamw (default; betas 0.9/0.999, eps 1e-8) or sgd (torch.optim.SGD)\n"
            "  --lr LR                peak learning rate, used as given (no batch scaling)\n"
            "  --base-lr LR           without --lr: lr = base-lr x batch / 256 (default 1e-4)\n"
            "  --no-lr-scaling        without --lr: lr = base-lr\n"
            "  --min-lr LR            cosine end value (default 0)\n"
            "  --momentum M           SGD momentum (default 0.9)\n"
            "  --weight-decay W       decoupled (AdamW) / L2 (SGD) decay of weights; biases and 1-D tensors are\n"
            "                         never decayed (DINO's parameter groups) (default 0.04)\n"
            "  --layer-decay F        layer-wise lr decay (default 1 = off)\n"
            "  --clip NORM            clip the global gradient norm (default 0 = off)\n"
            "  --schedule cosine|constant  per-step lr schedule after the warm-up (default cosine)\n"
            "  --warmup-steps S       linear warm-up from 0 (default 0)\n"
            "  --steps S              optimizer steps (overrides --epochs)\n"
            "  --epochs E             passes over the data (default 10)\n"
            "  --batch B              global batch, all ranks together (default 32)\n"
            "  --micro-batch M        images per micro-batch (default: enough for ~256 token rows); part of the\n"
            "                         fixed summation order, so it changes the last bits of the result\n"
            "  --drop-path P          stochastic depth of the last block (default 0.1)\n"
            "  --no-augment           no random resized crop / flips / rotations / jitter\n"
            "  --no-shuffle           batch i = rows i*B ... i*B+B-1 modulo N, in file order\n"
            "  --seed S               shuffling, augmentation, drop path, head init (default 0)\n"
            "Execution:\n"
            "  --threads T            worker threads per rank (default: the cores this process may use)\n"
            "  --reduce tree|allreduce  fixed-order gradient tree (bit-identical for any rank count; default) or\n"
            "                         MPI_Allreduce (faster, not bit-identical across rank counts)\n"
            "  --recompute            keep only each block's input and recompute it in the backward pass (less memory)\n"
            "  --checkpoint-every S   steps between checkpoints (default 100; also at every epoch end)\n"
            "  --resume               continue from DIR/checkpoint.safetensors (same arguments and inputs required)\n"
            "  --kernels NAME         kernel backend: auto (default) or openblas\n"
            "  -h, --help             this help\n"
            "\n"
            "Exit status: 0 done; 1 failed (a NaN/Inf loss names the step and keeps the last checkpoint);\n"
            "2 bad command line; 128+N stopped by signal N after a checkpoint (--resume continues).\n");
}

typedef struct FtArgs {
    const char *model, *key, *input, *labels, *out, *head_init, *kernels;
    int heads, classes, threads, micro_batch, recompute;
    float drop_path;
    PlFinetuneOptions o;
} FtArgs;

// Labels: (N) integer class ids or (N, K) float multi-hot targets. Fills y or targets (malloc'd) and *classes.
static PlStatus load_labels(const char *path, int64_t n, int *classes, int32_t **y, float **targets) {
    PlNpyArray a = {0};
    PL_TRY(pl_npy_read(path, &a));
    PlStatus st = PL_OK;
    int is_int = strcmp(a.descr, "<i8") == 0 || strcmp(a.descr, "<i4") == 0;
    int is_float = strcmp(a.descr, "<f4") == 0 || strcmp(a.descr, "<f8") == 0;
    if (a.ndim < 1 || a.shape[0] != n) {
        st = PL_FAIL(PL_ERR_ARG, "%s has %lld labels but the input has %lld images", path,
                     a.ndim ? (long long)a.shape[0] : 0LL, (long long)n);
    } else if (a.ndim == 1 && is_int) {
        *y = pl_malloc((size_t)n * sizeof(int32_t));
        if (!*y) st = PL_ERR_NOMEM;
        int64_t mx = -1;
        for (int64_t i = 0; i < n && st == PL_OK; i++) {
            int64_t v = a.descr[2] == '8' ? ((const int64_t *)a.data)[i] : ((const int32_t *)a.data)[i];
            if (v < 0 || v > 1000000 || (*classes > 0 && v >= *classes))
                st = PL_FAIL(PL_ERR_ARG, "%s: label %lld of row %lld is out of range 0..%d", path, (long long)v,
                             (long long)i, *classes > 0 ? *classes - 1 : 1000000);
            else
                (*y)[i] = (int32_t)v;
            if (v > mx) mx = v;
        }
        if (st == PL_OK && *classes <= 0) *classes = (int)mx + 1;
    } else if (a.ndim == 2 && is_float) {
        int k = (int)a.shape[1];
        if (*classes > 0 && k != *classes)
            st = PL_FAIL(PL_ERR_ARG, "%s has %d label columns but the head has %d classes", path, k, *classes);
        *classes = k;
        *targets = pl_malloc((size_t)n * k * sizeof(float));
        if (!*targets && st == PL_OK) st = PL_ERR_NOMEM;
        for (int64_t i = 0; i < n * k && st == PL_OK; i++) {
            double v = a.descr[2] == '4' ? ((const float *)a.data)[i] : ((const double *)a.data)[i];
            if (!(v >= 0.0 && v <= 1.0))
                st = PL_FAIL(PL_ERR_ARG, "%s: target (%lld, %lld) = %g is not in [0, 1]", path, (long long)(i / k),
                             (long long)(i % k), v);
            else
                (*targets)[i] = (float)v;
        }
    } else {
        st = PL_FAIL(PL_ERR_ARG, "%s must hold int64/int32 class ids of shape (N) or float multi-hot targets of "
                                 "shape (N, K); it holds %s with %d dimensions", path, a.descr, a.ndim);
    }
    pl_npy_free(&a);
    return st;
}

static PlStatus check_head(const char *path, const PlWeights *h, int dim, int *classes) {
    const PlWeightTensor *w = pl_weights_find(h, "weight"), *b = pl_weights_find(h, "bias");
    if (!w || !b) return PL_FAIL(PL_ERR_FORMAT, "%s needs tensors 'weight' (classes, dim) and 'bias' (classes)", path);
    if (w->ndim != 2 || w->shape[1] != dim)
        return PL_FAIL(PL_ERR_ARG, "%s: head weight has shape (%lld, %lld); the backbone's dim is %d, so it must be "
                                   "(classes, %d)", path, (long long)w->shape[0], w->ndim > 1 ? (long long)w->shape[1] : 0LL,
                       dim, dim);
    if (b->ndim != 1 || b->shape[0] != w->shape[0])
        return PL_FAIL(PL_ERR_ARG, "%s: head bias has %lld entries, the weight has %lld rows", path,
                       (long long)b->shape[0], (long long)w->shape[0]);
    if (*classes > 0 && *classes != w->shape[0])
        return PL_FAIL(PL_ERR_ARG, "%s has %lld classes but --classes says %d", path, (long long)w->shape[0], *classes);
    *classes = (int)w->shape[0];
    return PL_OK;
}

// model.json next to the fine-tuned weights: the input card with weights, sha256 and name replaced.
static PlStatus write_card(const PlModelCard *card, const char *dir) {
    char path[4096], hex[65];
    snprintf(path, sizeof path, "%s/backbone.safetensors", dir);
    PL_TRY(pl_sha256_file(path, hex));
    json_error_t err;
    json_t *j = json_loads(card->json, 0, &err);
    if (!j) return PL_FAIL(PL_ERR_INTERNAL, "cannot re-read the model card's JSON: %s", err.text);
    char name[512];
    snprintf(name, sizeof name, "%s-finetuned", card->name ? card->name : "model");
    json_object_set_new(j, "weights", json_string("backbone.safetensors"));
    json_object_set_new(j, "sha256", json_string(hex));
    json_object_set_new(j, "name", json_string(name));
    json_object_del(j, "checkpoint_key");
    char *text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(j);
    if (!text) return PL_ERR_NOMEM;
    snprintf(path, sizeof path, "%s/model.json", dir);
    PlStatus st = pl_file_write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

static PlStatus write_report(const FtArgs *a, const PlVitTrainSpec *sp, const PlFinetuneResult *r, int ranks,
                             int threads, double mem_bytes, double act_bytes, size_t params, const char *kernels) {
    const PlFinetuneOptions *o = &a->o;
    json_t *opt = json_pack("{s:s, s:s?, s:s, s:s, s:f, s:f, s:b, s:f, s:f, s:f, s:f, s:f, s:s, s:I, s:I, s:i, s:i, s:i, "
                            "s:f, s:b, s:b, s:I, s:s, s:b, s:I, s:s}",
                            "model", a->model, "head_init", a->head_init, "input", a->input, "optimizer",
                            o->optim.kind == PL_OPTIM_SGD ? "sgd" : "adamw", "lr", r->peak_lr, "base_lr", o->base_lr,
                            "lr_scaling", o->lr <= 0 && !o->no_lr_scaling, "min_lr", o->min_lr, "momentum",
                            o->optim.momentum, "weight_decay", o->optim.weight_decay, "layer_decay", o->optim.layer_decay,
                            "clip", o->optim.clip, "schedule", o->schedule_constant ? "constant" : "cosine",
                            "warmup_steps", (json_int_t)o->warmup_steps, "steps", (json_int_t)r->steps, "epochs",
                            o->epochs, "batch", o->batch, "micro_batch", sp->micro_batch, "drop_path",
                            (double)sp->drop_path, "augment", o->augment, "shuffle", o->shuffle, "seed",
                            (json_int_t)o->seed, "reduce", o->allreduce ? "allreduce" : "tree", "recompute",
                            sp->recompute, "checkpoint_every", (json_int_t)o->checkpoint_every, "loss",
                            sp->loss == PL_LOSS_BCE ? "bce_with_logits" : "cross_entropy");
    json_t *j = json_pack("{s:s, s:o, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:{s:I, s:f, s:f, s:f, s:f, s:f}, "
                          "s:{s:i, s:i, s:s, s:f, s:f, s:I}}",
                          "command", "finetune", "options", opt, "model", "dim", sp->cfg.dim, "depth", sp->cfg.depth,
                          "heads", sp->cfg.heads, "patch", sp->cfg.patch, "in_chans", sp->cfg.in_chans, "classes",
                          sp->classes, "height", sp->height, "width", sp->width, "results", "start_step",
                          (json_int_t)r->start_step, "first_loss", r->first_loss, "last_loss", r->last_loss,
                          "img_per_s", r->img_per_s, "train_accuracy", isnan(r->train_accuracy) ? -1.0 : r->train_accuracy,
                          "train_macro_f1", isnan(r->train_macro_f1) ? -1.0 : r->train_macro_f1, "execution", "ranks",
                          ranks, "threads", threads, "kernels", kernels, "memory_bytes_per_rank", mem_bytes,
                          "activation_bytes_per_thread", act_bytes, "parameters", (json_int_t)params);
    if (!j) return PL_FAIL(PL_ERR_INTERNAL, "cannot build the report JSON");
    char *text = json_dumps(j, JSON_INDENT(1));
    json_decref(j);
    if (!text) return PL_ERR_NOMEM;
    char path[4096];
    snprintf(path, sizeof path, "%s/report.json", o->out_dir);
    PlStatus st = pl_file_write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

// Options that change the result, as text: a checkpoint only resumes a run with the same text.
static void args_fingerprint(const FtArgs *a, const PlVitTrainSpec *sp, char *buf, size_t size) {
    const PlFinetuneOptions *o = &a->o;
    snprintf(buf, size,
             "optimizer=%d lr=%.17g base_lr=%.17g no_lr_scaling=%d min_lr=%.17g momentum=%.17g weight_decay=%.17g "
             "layer_decay=%.17g clip=%.17g schedule_constant=%d warmup=%lld steps=%lld epochs=%d batch=%d micro_batch=%d "
             "drop_path=%.9g augment=%d shuffle=%d seed=%llu reduce=%d classes=%d",
             (int)o->optim.kind, o->lr, o->base_lr, o->no_lr_scaling, o->min_lr, o->optim.momentum,
             o->optim.weight_decay, o->optim.layer_decay, o->optim.clip, o->schedule_constant,
             (long long)o->warmup_steps, (long long)o->steps, o->epochs, o->batch, sp->micro_batch,
             (double)sp->drop_path, o->augment, o->shuffle, (unsigned long long)o->seed, o->allreduce, sp->classes);
}

static PlStatus finetune_run(FtArgs *a) {
    PlWeights w = {0}, head = {0};
    PlModelCard card = {0};
    int have_card = 0, have_head = 0, rank = 0, ranks = 1;
    PlNpyArray x = {0};
    int32_t *y = NULL;
    float *targets = NULL;
    PlVitTrain *t = NULL;
    PlStatus st = PL_OK;
    if (pl_mpi_active()) {
        PL_TRY(PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
        PL_TRY(PL_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &ranks)));
    }
    const PlKernels *kernels;
    PL_TRY(pl_kernels_find(a->kernels, &kernels));
    // --out first: an unwritable folder fails before any work
    if ((st = pl_mkdir_p(a->o.out_dir)) != PL_OK) return pl_error_wrap("--out %s", a->o.out_dir);
    if (access(a->o.out_dir, W_OK) != 0) return PL_FAIL(PL_ERR_IO, "--out %s is not writable", a->o.out_dir);
    const char *weights = a->model;
    size_t ml = strlen(a->model);
    if (ml > 5 && strcmp(a->model + ml - 5, ".json") == 0) {
        if ((st = pl_modelcard_load(a->model, &card)) != PL_OK) goto done;
        have_card = 1;
        char hex[65];
        if ((st = pl_modelcard_verify_weights(&card, hex)) != PL_OK) goto done;
        weights = card.weights;
        if (a->heads == 0) a->heads = card.heads;
        if (!a->key) a->key = card.checkpoint_key;
    }
    PlWeightsOptions wopt = {.checkpoint_key = a->key};
    if ((st = pl_weights_load(weights, &wopt, &w)) != PL_OK) goto done;
    PlVitConfig cfg;
    if ((st = pl_vit_config_infer(&w, a->heads, &cfg)) != PL_OK) {
        pl_error_wrap("%s", weights);
        goto done;
    }
    if ((st = pl_npy_read_f32(a->input, 4, &x)) != PL_OK) goto done;
    int64_t n = x.shape[0];
    if (n < 1 || x.shape[1] != cfg.in_chans || x.shape[2] < cfg.patch || x.shape[3] < cfg.patch) {
        st = PL_FAIL(PL_ERR_ARG, "%s has shape (%lld, %lld, %lld, %lld); the model needs (N >= 1, %d, >= %d, >= %d)",
                     a->input, (long long)x.shape[0], (long long)x.shape[1], (long long)x.shape[2],
                     (long long)x.shape[3], cfg.in_chans, cfg.patch, cfg.patch);
        goto done;
    }
    const float *xd = x.data;
    size_t count = pl_npy_count(&x);
    for (size_t i = 0; i < count; i++)
        if (!isfinite(xd[i])) {
            size_t chw = count / (size_t)n;
            st = PL_FAIL(PL_ERR_NUMERIC, "%s: image %zu holds %s (element %zu)", a->input, i / chw,
                         isnan(xd[i]) ? "NaN" : "Inf", i % chw);
            goto done;
        }
    int classes = a->classes;
    if (a->head_init) {
        if ((st = pl_weights_load(a->head_init, NULL, &head)) != PL_OK) goto done;
        have_head = 1;
        if ((st = check_head(a->head_init, &head, cfg.dim, &classes)) != PL_OK) goto done;
    }
    if ((st = load_labels(a->labels, n, &classes, &y, &targets)) != PL_OK) goto done;

    PlThreadPool *pool;
    if ((st = pl_process_start_pool(a->threads, &pool)) != PL_OK) goto done;
    int threads = pl_threadpool_size(pool);
    int T = 1 + (int)(x.shape[2] / cfg.patch) * (int)(x.shape[3] / cfg.patch);
    int mb = a->micro_batch > 0 ? a->micro_batch : (256 + T - 1) / T;
    if (mb > a->o.batch) mb = a->o.batch;
    PlVitTrainSpec sp = {.cfg = cfg, .classes = classes, .loss = targets ? PL_LOSS_BCE : PL_LOSS_XENT,
                         .height = (int)x.shape[2], .width = (int)x.shape[3], .micro_batch = mb,
                         .recompute = a->recompute, .drop_path = a->drop_path, .workers = threads};
    if ((st = pl_vit_train_create(&sp, kernels, &t)) != PL_OK) goto done;
    if ((st = pl_vit_train_load(t, &w, have_head ? &head : NULL, a->o.seed)) != PL_OK) goto done;
    pl_weights_free(&w);   // the trainer holds its own copy
    char fp[2048];
    args_fingerprint(a, &sp, fp, sizeof fp);
    a->o.args_text = fp;
    a->o.pool = pool;
    a->o.use_mpi = pl_mpi_active() && ranks > 1;
    a->o.stop = pl_process_stop_signal();
    double act = pl_vit_train_activation_bytes(&sp), P = (double)pl_vit_train_param_floats(t) * sizeof(float);
    int moments = a->o.optim.kind == PL_OPTIM_ADAMW ? 2 : 1;
    // params + moments + (threads leaves + tree nodes + summed gradient) + activations per thread
    double mem = P * (1 + moments) + act * threads;
    if (rank == 0)
        pl_log_info("fine-tuning %s: dim %d, depth %d, heads %d, patch %d, %lld images %dx%d, %d classes (%s), batch %d "
                    "(micro-batch %d), %d rank(s) x %d thread(s); activations %.1f MiB per thread, parameters %.1f MiB",
                    weights, cfg.dim, cfg.depth, cfg.heads, cfg.patch, (long long)n, sp.height, sp.width, classes,
                    targets ? "BCE" : "cross-entropy", a->o.batch, mb, ranks, threads, act / 1048576.0, P / 1048576.0);
    PlFinetuneData d = {.n = n, .C = cfg.in_chans, .H = sp.height, .W = sp.width, .x = xd, .y = y,
                        .targets = targets, .classes = classes};
    PlFinetuneResult r;
    st = pl_finetune_run(t, &d, &a->o, &r);
    if (st == PL_OK && rank == 0) {
        double grad_bufs = P * (threads + 2 + (ranks > 1));
        st = write_report(a, &sp, &r, ranks, threads, mem + grad_bufs, act, pl_vit_train_param_floats(t), kernels->name);
        if (st == PL_OK && have_card) st = write_card(&card, a->o.out_dir);
        if (st == PL_OK)
            pl_log_info("done: %lld steps, loss %.5f -> %.5f, %.2f img/s, training accuracy %.4f; weights in %s",
                        (long long)r.steps, r.first_loss, r.last_loss, r.img_per_s, r.train_accuracy, a->o.out_dir);
    }
done:
    pl_vit_train_destroy(t);
    pl_weights_free(&w);
    if (have_head) pl_weights_free(&head);
    if (have_card) pl_modelcard_free(&card);
    pl_npy_free(&x);
    free(y);
    free(targets);
    return st;
}

int cmd_finetune_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_finetune_usage(stdout);
        return PL_EXIT_OK;
    }
    FtArgs a;
    memset(&a, 0, sizeof a);
    pl_finetune_options_default(&a.o);
    a.drop_path = 0.1f;
    a.kernels = "auto";
    enum { O_MODEL = 256, O_HEADS, O_KEY, O_INPUT, O_LABELS, O_HEADINIT, O_CLASSES, O_OUT, O_OPT, O_LR, O_BASELR,
           O_NOSCALE, O_MINLR, O_MOM, O_WD, O_LD, O_CLIP, O_SCHED, O_WARM, O_STEPS, O_EPOCHS, O_BATCH, O_MICRO,
           O_DROP, O_NOAUG, O_NOSHUF, O_SEED, O_THREADS, O_REDUCE, O_RECOMP, O_CKPT, O_RESUME, O_KERNELS };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"heads", required_argument, 0, O_HEADS},
        {"checkpoint-key", required_argument, 0, O_KEY}, {"input", required_argument, 0, O_INPUT},
        {"labels", required_argument, 0, O_LABELS}, {"head-init", required_argument, 0, O_HEADINIT},
        {"classes", required_argument, 0, O_CLASSES}, {"out", required_argument, 0, O_OUT},
        {"optimizer", required_argument, 0, O_OPT}, {"lr", required_argument, 0, O_LR},
        {"base-lr", required_argument, 0, O_BASELR}, {"no-lr-scaling", no_argument, 0, O_NOSCALE},
        {"min-lr", required_argument, 0, O_MINLR}, {"momentum", required_argument, 0, O_MOM},
        {"weight-decay", required_argument, 0, O_WD}, {"layer-decay", required_argument, 0, O_LD},
        {"clip", required_argument, 0, O_CLIP}, {"schedule", required_argument, 0, O_SCHED},
        {"warmup-steps", required_argument, 0, O_WARM}, {"steps", required_argument, 0, O_STEPS},
        {"epochs", required_argument, 0, O_EPOCHS}, {"batch", required_argument, 0, O_BATCH},
        {"micro-batch", required_argument, 0, O_MICRO}, {"drop-path", required_argument, 0, O_DROP},
        {"no-augment", no_argument, 0, O_NOAUG}, {"no-shuffle", no_argument, 0, O_NOSHUF},
        {"seed", required_argument, 0, O_SEED}, {"threads", required_argument, 0, O_THREADS},
        {"reduce", required_argument, 0, O_REDUCE}, {"recompute", no_argument, 0, O_RECOMP},
        {"checkpoint-every", required_argument, 0, O_CKPT}, {"resume", no_argument, 0, O_RESUME},
        {"kernels", required_argument, 0, O_KERNELS}, {0, 0, 0, 0}};
    static const char *const optimizers[] = {"adamw", "sgd"}, *const schedules[] = {"cosine", "constant"},
                             *const reduces[] = {"tree", "allreduce"};
    const char *cmd = "finetune";
    int c, rc, choice;
    long lv;
    double dv;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: a.model = optarg; break;
        case O_HEADS: if ((rc = pl_cli_option_int(cmd, "--heads", optarg, 1, 4096, &a.heads))) return rc; break;
        case O_KEY: a.key = optarg; break;
        case O_INPUT: a.input = optarg; break;
        case O_LABELS: a.labels = optarg; break;
        case O_HEADINIT: a.head_init = optarg; break;
        case O_CLASSES: if ((rc = pl_cli_option_int(cmd, "--classes", optarg, 1, 1000000, &a.classes))) return rc; break;
        case O_OUT: a.o.out_dir = optarg; break;
        case O_OPT:
            if ((rc = pl_cli_option_choice(cmd, "--optimizer", optarg, optimizers, 2, &choice))) return rc;
            a.o.optim.kind = choice ? PL_OPTIM_SGD : PL_OPTIM_ADAMW;
            break;
        case O_LR: if ((rc = pl_cli_option_double(cmd, "--lr", optarg, 1e-12, 100, &a.o.lr))) return rc; break;
        case O_BASELR: if ((rc = pl_cli_option_double(cmd, "--base-lr", optarg, 1e-12, 100, &a.o.base_lr))) return rc; break;
        case O_NOSCALE: a.o.no_lr_scaling = 1; break;
        case O_MINLR: if ((rc = pl_cli_option_double(cmd, "--min-lr", optarg, 0, 100, &a.o.min_lr))) return rc; break;
        case O_MOM: if ((rc = pl_cli_option_double(cmd, "--momentum", optarg, 0, 0.999999, &a.o.optim.momentum))) return rc; break;
        case O_WD: if ((rc = pl_cli_option_double(cmd, "--weight-decay", optarg, 0, 10, &a.o.optim.weight_decay))) return rc; break;
        case O_LD: if ((rc = pl_cli_option_double(cmd, "--layer-decay", optarg, 1e-6, 1, &a.o.optim.layer_decay))) return rc; break;
        case O_CLIP: if ((rc = pl_cli_option_double(cmd, "--clip", optarg, 0, 1e12, &a.o.optim.clip))) return rc; break;
        case O_SCHED:
            if ((rc = pl_cli_option_choice(cmd, "--schedule", optarg, schedules, 2, &choice))) return rc;
            a.o.schedule_constant = choice;
            break;
        case O_WARM: if ((rc = pl_cli_option_long(cmd, "--warmup-steps", optarg, 0, 1L << 40, &lv))) return rc; a.o.warmup_steps = lv; break;
        case O_STEPS: if ((rc = pl_cli_option_long(cmd, "--steps", optarg, 1, 1L << 40, &lv))) return rc; a.o.steps = lv; break;
        case O_EPOCHS: if ((rc = pl_cli_option_int(cmd, "--epochs", optarg, 1, 1000000, &a.o.epochs))) return rc; break;
        case O_BATCH: if ((rc = pl_cli_option_int(cmd, "--batch", optarg, 1, 1 << 20, &a.o.batch))) return rc; break;
        case O_MICRO: if ((rc = pl_cli_option_int(cmd, "--micro-batch", optarg, 1, 1 << 16, &a.micro_batch))) return rc; break;
        case O_DROP:
            if ((rc = pl_cli_option_double(cmd, "--drop-path", optarg, 0, 0.99, &dv))) return rc;
            a.drop_path = (float)dv;
            break;
        case O_NOAUG: a.o.augment = 0; break;
        case O_NOSHUF: a.o.shuffle = 0; break;
        case O_SEED: if ((rc = pl_cli_option_long(cmd, "--seed", optarg, 0, LONG_MAX, &lv))) return rc; a.o.seed = (uint64_t)lv; break;
        case O_THREADS: if ((rc = pl_cli_option_int(cmd, "--threads", optarg, 1, 1024, &a.threads))) return rc; break;
        case O_REDUCE:
            if ((rc = pl_cli_option_choice(cmd, "--reduce", optarg, reduces, 2, &choice))) return rc;
            a.o.allreduce = choice;
            break;
        case O_RECOMP: a.recompute = 1; break;
        case O_CKPT: if ((rc = pl_cli_option_long(cmd, "--checkpoint-every", optarg, 0, 1L << 40, &lv))) return rc; a.o.checkpoint_every = lv; break;
        case O_RESUME: a.o.resume = 1; break;
        case O_KERNELS: a.kernels = optarg; break;
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return pl_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!a.model) return pl_cli_usage_error(cmd, "--model is required");
    if (!a.input) return pl_cli_usage_error(cmd, "--input is required (images as a float32 (N, C, H, W) .npy)");
    if (!a.labels) return pl_cli_usage_error(cmd, "--labels is required");
    if (!a.o.out_dir) return pl_cli_usage_error(cmd, "--out is required");
    PlStatus st = finetune_run(&a);
    if (st == PL_ERR_INTERRUPTED) {
        const volatile sig_atomic_t *sig = pl_process_stop_signal();
        pl_log_error("%s", pl_error_message());
        return PL_EXIT_SIGNAL + (*sig ? *sig : 15);
    }
    return st == PL_OK ? PL_EXIT_OK : PL_EXIT_FAIL;
}
