// `protloc pretrain`: DINO self-supervised pretraining of a ViT in C, data-parallel over MPI ranks, on fixed views
// (--global-views G.npy [--local-views L.npy]); the training itself is stages/train/pl_pretrain.c.
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_batch_reader.h"
#include "pl_cli.h"
#include "pl_cli_outputs.h"
#include "pl_cmds.h"
#include "pl_finetune_data.h"
#include "pl_finetune_report.h"
#include "pl_fs.h"
#include "pl_image_write.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_npy.h"
#include "pl_plot.h"
#include "pl_pretrain.h"
#include "pl_process.h"
#include "pl_report.h"
#include "pl_safetensors.h"
#include "pl_train_head.h"
#include "pl_vit.h"
#include "pl_weights.h"
#include "pl_weights_init.h"

void cmd_pretrain_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc pretrain (--global-views G.npy [--local-views L.npy] | --input X.npy |\n"
            "                        --manifest M.tsv [--cache DIR]) (--model S.safetensors|CARD.json [--heads H] |\n"
            "                        --arch vit_tiny|vit_small|vit_base --patch 8|16 --in-chans C) --out DIR [options]\n"
            "       mpirun -np R protloc pretrain ...   (data-parallel; bit-identical for any R and --threads)\n"
            "\n"
            "DINO self-supervised pretraining exactly as facebookresearch/dino main_dino.py (commit 7c446df): a student\n"
            "ViT + DINOHead trained to match a teacher (the student's EMA) over 2 global and N local views of each image;\n"
            "DINOLoss with centering and the teacher-temperature warm-up, AdamW or SGD with DINO's parameter groups, the\n"
            "learning rate warmed up from 0 then cosine, the weight-decay cosine, the teacher-momentum cosine, per-tensor\n"
            "gradient clipping, the last layer frozen for the first epochs. Fixed views are used as given; the images of\n"
            "--input or --manifest get DINO's multi-crop augmentation (2 global + N local crops, flips, 90-degree\n"
            "rotations, per-channel brightness/contrast, blur; docs/guide.md \"Pretraining\"), each view standardised.\n"
            "\n"
            "Data:\n"
            "  --global-views G.npy   float32 (N, 2, C, Hg, Wg): the two global views of each image\n"
            "  --local-views L.npy    float32 (N, Lc, C, Hl, Wl): its local views (omitted: none)\n"
            "  --input X.npy          float32 (N, C, H, W) images, or\n"
            "  --manifest M.tsv       every item of a manifest (no labels needed), prepared as `protloc run` does with\n"
            "                         the card (--model CARD.json, or --card CARD.json with --model CHECKPOINT or --arch):\n"
            "                         --level fov|tiles|cells, --tile N, --crop N, each sample resized to --size S\n"
            "                         (default: the model's native size; 512 for DINO4Cells-style fields of view);\n"
            "                         --cache DIR streams them from a training cache (as finetune --cache)\n"
            "  --global-size G (224)  --local-size L (96)  --local-crops N (8)  --rgb (3-channel colour images: the\n"
            "                         RGB-only steps: saturation, grayscale, solarization)\n"
            "Models:\n"
            "  --model S.safetensors  the starting backbone (DINO tensor names); --heads H its attention heads\n"
            "  --arch A --patch P --in-chans C   without --model: DINO's random init of vit_tiny|vit_small|vit_base\n"
            "                         (--seed); the position grid covers the global views\n"
            "  --head-init H.safetensors  DINOHead's weights (mlp.0.weight ... last_layer.weight_g, last_layer.weight_v)\n"
            "  --out-dim K --hidden-dim D --bottleneck-dim B --nlayers L   without --head-init: DINO's init of a head\n"
            "                         (defaults 65536, 2048, 256, 3)\n"
            "  --norm-last-layer true|false  weight_g frozen at 1 (default true)\n"
            "Training (main_dino.py's defaults):\n"
            "  --epochs E (100)  --batch B global batch (64)  --no-shuffle  --seed S (0)  --drop-path P (0.1, student)\n"
            "  --optimizer adamw|sgd (adamw)  --momentum M (SGD, 0.9)\n"
            "  --lr LR (5e-4 x B / 256; given: used as is)  --min-lr (1e-6)  --warmup-epochs (10)\n"
            "  --weight-decay (0.04)  --weight-decay-end (0.4)  --clip-grad (3.0; 0 = off)  --freeze-last-layer (1)\n"
            "  --momentum-teacher (0.996)  --teacher-temp (0.04)  --warmup-teacher-temp (0.04)\n"
            "  --warmup-teacher-temp-epochs (0)  --student-temp (0.1)  --center-momentum (0.9)\n"
            "Execution:\n"
            "  --out DIR              student.safetensors, teacher.safetensors (backbone.* / head.* names),\n"
            "                         teacher_backbone.safetensors (DINO names), dino_loss.safetensors (center),\n"
            "                         checkpoint.safetensors, train.jsonl, report.json (DIR may exist, empty), and\n"
            "                         model.json (the input card with the teacher's backbone: protloc run embeds with it)\n"
            "  --preview N            write DIR/preview.png (the crops of the first N images in epoch 0, per channel,\n"
            "                         as training draws them) and stop, without training\n"
            "  --eval-every E         every E epochs, the teacher backbone's kNN macro F1 on the manifest's labelled\n"
            "                         images (train split as the bank, test as queries; leave-one-out without a test\n"
            "                         split) into train.jsonl, report.json and pretrain_knn_f1.png (default 0: off).\n"
            "                         Every epoch: the teacher's target entropy, with a warning when it collapses\n"
            "  --threads T            worker threads per rank (default: the cores this process may use)\n"
            "  --kernels K, --precision fp32|bf16   GEMM backend and precision, as for finetune (bf16: BF16 GEMM and\n"
            "                         attention inputs with FP32 accumulation; weights, moments, the loss stay FP32)\n"
            "  --profile              time every phase of the steps after the first (as finetune --profile; the\n"
            "                         teacher's forward counts in its layers' phases, its EMA as the after-step hook)\n"
            "  --checkpoint-every S   steps between checkpoints (default 100; also at every epoch end)\n"
            "  --resume               continue DIR's checkpoint (bit-identical); --force starts over\n"
            "  -h, --help             this help\n"
            "\n"
            "Exit status: 0 done; 1 failed (a NaN/Inf loss names the step and keeps the last checkpoint); 2 bad command\n"
            "line; 3 done, but some manifest items failed to prepare (skipped, listed in DIR/failures.tsv); 6 another run\n"
            "holds DIR/pretrain.lock or the cache's lock; 128+N stopped by signal N after a checkpoint (--resume).\n");
}

typedef struct PtArgs {
    const char *global_views, *local_views, *model, *arch, *head_init, *out, *kernels;
    const char *input, *manifest, *card, *cache;   // the images the multi-crop augmentation reads
    int level, tile, crop, size, global_size, local_size, local_crops, rgb, preview;
    PlPrecision precision;
    const PlKernels *backend;   // --kernels, found once when the command line is read
    int heads, patch, in_chans, out_dim, hidden_dim, bottleneck_dim, nlayers, norm_last_layer;
    int batch, shuffle, threads, resume, force, sgd, have_lr, profile;
    long epochs, warmup_epochs, freeze_last_layer, warmup_teacher_temp_epochs, checkpoint_every, eval_every;
    double lr, min_lr, weight_decay, weight_decay_end, clip_grad, momentum, momentum_teacher, teacher_temp,
        warmup_teacher_temp, student_temp, center_momentum, drop_path;
    long seed;
} PtArgs;

static const char *const pt_run_files[] = {"checkpoint.safetensors", "train.jsonl", "report.json",
                                           "student.safetensors", "teacher.safetensors",
                                           "teacher_backbone.safetensors", "dino_loss.safetensors", "model.json",
                                           "failures.tsv", "preview.png", "pretrain_loss.png", "pretrain_loss.svg",
                                           "pretrain_lr.png", "pretrain_lr.svg", "pretrain_teacher_temp.png",
                                           "pretrain_teacher_temp.svg",
                                           "pretrain_teacher.png", "pretrain_teacher.svg", "pretrain_knn_f1.png",
                                           "pretrain_knn_f1.svg", NULL};

// The views: float32 arrays of consistent shapes, every value finite.
static PlStatus load_views(const PtArgs *a, PlNpyArray *g, PlNpyArray *l, PlPretrainViews *v) {
    memset(v, 0, sizeof *v);
    PL_TRY(pl_npy_read_f32(a->global_views, 5, g));
    if (g->shape[1] != 2 || g->shape[0] < 1 || g->shape[2] < 1)
        return PL_FAIL(PL_ERR_ARG, "--global-views %s is (%lld, %lld, %lld, %lld, %lld); want (N, 2, C, Hg, Wg)",
                       a->global_views, (long long)g->shape[0], (long long)g->shape[1], (long long)g->shape[2],
                       (long long)g->shape[3], (long long)g->shape[4]);
    *v = (PlPretrainViews){.n = g->shape[0], .C = (int)g->shape[2], .Hg = (int)g->shape[3], .Wg = (int)g->shape[4],
                           .globals = g->data};
    if (a->local_views) {
        PL_TRY(pl_npy_read_f32(a->local_views, 5, l));
        if (l->shape[0] != v->n || l->shape[2] != v->C || l->shape[1] < 1)
            return PL_FAIL(PL_ERR_ARG, "--local-views %s is (%lld, %lld, %lld, %lld, %lld); want (%lld, Lc, %d, Hl, Wl) "
                           "to match --global-views", a->local_views, (long long)l->shape[0], (long long)l->shape[1],
                           (long long)l->shape[2], (long long)l->shape[3], (long long)l->shape[4], (long long)v->n,
                           v->C);
        if (l->shape[3] > v->Hg || l->shape[4] > v->Wg)
            return PL_FAIL(PL_ERR_ARG, "--local-views %s: local views of %lld x %lld are larger than the global views "
                           "(%d x %d)", a->local_views, (long long)l->shape[3], (long long)l->shape[4], v->Hg, v->Wg);
        v->n_local = (int)l->shape[1];
        v->Hl = (int)l->shape[3];
        v->Wl = (int)l->shape[4];
        v->locals = l->data;
    }
    const PlNpyArray *arr[2] = {g, a->local_views ? l : NULL};
    const char *names[2] = {a->global_views, a->local_views};
    for (int k = 0; k < 2; k++) {
        if (!arr[k]) continue;
        const float *x = arr[k]->data;
        size_t n = pl_npy_count(arr[k]);
        for (size_t i = 0; i < n; i++)
            if (!isfinite(x[i])) {
                size_t per = n / (size_t)arr[k]->shape[0];
                return PL_FAIL(PL_ERR_ARG, "%s holds %s at element %zu (image %zu): views must be finite", names[k],
                               isnan(x[i]) ? "NaN" : "Inf", i, i / per);
            }
    }
    return PL_OK;
}

// The backbone: --model's weights (a checkpoint, or a model card: its weights, and the card feeds the manifest), or
// DINO's init of --arch for `chans` channels and a position grid of `img` pixels. *have_card: card was loaded
// (--model CARD.json or --card CARD.json).
static PlStatus load_backbone(const PtArgs *a, int chans, int img, PlWeights *w, PlVitConfig *cfg, PlModelCard *card,
                              int *have_card) {
    memset(w, 0, sizeof *w);
    *have_card = 0;
    if (a->model) {
        int heads = a->heads;
        const char *key = NULL, *weights = NULL;
        PL_TRY(ft_backbone_load(a->model, a->card, &heads, &key, w, card, have_card, cfg, &weights));
    } else {
        if (a->card) {
            PL_TRY(pl_modelcard_load(a->card, card));
            *have_card = 1;
            if (a->in_chans > 0 && a->in_chans != card->n_slots)
                return PL_FAIL(PL_ERR_ARG, "--in-chans %d, but the card %s names %d input slots", a->in_chans,
                               a->card, card->n_slots);
            chans = card->n_slots;
        }
        static const char *const archs[] = {"vit_tiny", "vit_small", "vit_base"};
        static const int dims[] = {192, 384, 768}, heads[] = {3, 6, 12};
        int k = 0;
        while (k < 3 && strcmp(archs[k], a->arch) != 0) k++;
        PlVitInitSpec sp = {.dim = dims[k], .depth = 12, .heads = heads[k], .patch = a->patch, .in_chans = chans,
                            .img_size = img, .mlp_ratio = 4, .seed = (uint64_t)a->seed};
        PL_TRY(pl_weights_init_vit(&sp, w));
        PL_TRY(pl_vit_config_infer(w, heads[k], cfg));
    }
    return PL_OK;
}

// The head's shape from --head-init (mlp.0.weight (hidden, dim), mlp.<2 (n-1)>.weight (bottleneck, hidden),
// last_layer.weight_v (out_dim, bottleneck)), or the options.
static PlStatus head_shape(const PtArgs *a, const PlWeights *h, int dim, PlVitTrainHead *head, int *out_dim) {
    *head = pl_vit_train_head_dino();
    head->norm_last_layer = a->norm_last_layer;
    if (!h) {
        head->hidden_dim = a->hidden_dim;
        head->bottleneck_dim = a->bottleneck_dim;
        head->nlayers = a->nlayers;
        *out_dim = a->out_dim;
        return PL_OK;
    }
    const PlWeightTensor *v = pl_weights_find(h, "last_layer.weight_v"), *m0 = pl_weights_find(h, "mlp.0.weight");
    if (!v || v->ndim != 2 || !m0 || m0->ndim != 2)
        return PL_FAIL(PL_ERR_ARG, "--head-init %s is not a DINOHead: it needs mlp.0.weight and last_layer.weight_v",
                       a->head_init);
    if (m0->shape[1] != dim)
        return PL_FAIL(PL_ERR_ARG, "--head-init %s: mlp.0.weight takes %lld features, the backbone gives %d",
                       a->head_init, (long long)m0->shape[1], dim);
    int nlayers = 1;
    while (nlayers < 16) {
        char name[64];
        snprintf(name, sizeof name, "mlp.%d.weight", 2 * nlayers);
        if (!pl_weights_find(h, name)) break;
        nlayers++;
    }
    head->nlayers = nlayers;
    head->hidden_dim = nlayers > 1 ? (int)m0->shape[0] : 0;
    head->bottleneck_dim = (int)v->shape[1];
    *out_dim = (int)v->shape[0];
    return PL_OK;
}

// Images per micro-batch: enough global views for about 256 token rows, at most the batch (a function of the shapes
// only, so the micro-batch sequence, and the result, is the same for any rank and thread count).
static int micro_images(const PlVitConfig *cfg, const PlPretrainViews *v, int batch) {
    const int tokens = (v->Hg / cfg->patch) * (v->Wg / cfg->patch) + 1;
    int m = 256 / (2 * tokens);
    return m < 1 ? 1 : m > batch ? batch : m;
}

static PlVitTrainSpec model_spec(const PlVitConfig *cfg, const PlVitTrainHead *head, int out_dim,
                                 const PlPretrainViews *v, int m, int threads, PlPrecision precision, int student,
                                 float drop_path) {
    PlVitTrainSpec sp = {.cfg = *cfg, .classes = out_dim, .height = v->Hg, .width = v->Wg, .micro_batch = 2 * m,
                         .workers = threads, .head = *head, .precision = precision};
    if (student) {
        sp.drop_path = drop_path;
        if (v->n_local) {
            sp.ngroups = 2;
            sp.groups[1] = (PlViewGroup){.height = v->Hl, .width = v->Wl, .micro_batch = v->n_local * m};
        }
        sp.head_rows = (2 + v->n_local) * m;
    }
    return sp;
}

// A copy of t's tensors (backbone, then the head with "head." added) with MultiCropWrapper's names (backbone.*).
static PlStatus write_wrapper(const PlVitTrain *t, const char *path) {
    PlWeights b, h, all;
    memset(&all, 0, sizeof all);
    PL_TRY(pl_vit_train_export(t, 0, &b));
    PlStatus st = pl_vit_train_export(t, 1, &h);
    if (st != PL_OK) {
        pl_weights_free(&b);
        return st;
    }
    all.tensors = pl_calloc(b.count + h.count + 1, sizeof *all.tensors);
    if (!all.tensors) st = PL_ERR_NOMEM;
    for (int k = 0; k < 2 && st == PL_OK; k++) {
        const PlWeights *w = k ? &h : &b;
        for (size_t i = 0; i < w->count && st == PL_OK; i++) {
            PlWeightTensor *x = &all.tensors[all.count];
            char name[160];
            snprintf(name, sizeof name, "%s%s", k ? "head." : "backbone.", w->tensors[i].name);
            *x = w->tensors[i];   // borrows the data
            if (!(x->name = pl_strdup(name))) st = PL_ERR_NOMEM;
            else all.count++;
        }
    }
    if (st == PL_OK) st = pl_safetensors_write(path, &all, NULL);
    for (size_t i = 0; i < all.count; i++) free(all.tensors[i].name);
    free(all.tensors);
    pl_weights_free(&b);
    pl_weights_free(&h);
    return st == PL_OK ? PL_OK : pl_error_wrap("writing %s", path);
}

// Rank 0: the outputs (docs/formats.md "Pretraining outputs").
static PlStatus write_outputs(const PtArgs *a, const PlVitTrain *student, const PlVitTrain *teacher,
                              const float *center, int out_dim) {
    char path[4200], heads[16], patch[16];
    snprintf(path, sizeof path, "%s/student.safetensors", a->out);
    PL_TRY(write_wrapper(student, path));
    snprintf(path, sizeof path, "%s/teacher.safetensors", a->out);
    PL_TRY(write_wrapper(teacher, path));
    const PlVitConfig *c = &pl_vit_train_spec(teacher)->cfg;
    snprintf(heads, sizeof heads, "%d", c->heads);
    snprintf(patch, sizeof patch, "%d", c->patch);
    const char *meta[] = {"heads", heads, "patch_size", patch, "arch", "protloc_dino_teacher", NULL};
    PlWeights w;
    PL_TRY(pl_vit_train_export(teacher, 0, &w));
    snprintf(path, sizeof path, "%s/teacher_backbone.safetensors", a->out);
    PlStatus st = pl_safetensors_write(path, &w, meta);
    pl_weights_free(&w);
    if (st != PL_OK) return pl_error_wrap("writing %s", path);
    PlWeightTensor ct = {.name = "center", .ndim = 2, .shape = {1, out_dim}, .data = (float *)center};
    PlWeights cw = {.tensors = &ct, .count = 1};
    snprintf(path, sizeof path, "%s/dino_loss.safetensors", a->out);
    st = pl_safetensors_write(path, &cw, NULL);
    return st == PL_OK ? PL_OK : pl_error_wrap("writing %s", path);
}

// The options that change the result, and the architecture: what a checkpoint must match to be resumed.
static void args_fingerprint(const PtArgs *a, const PlVitTrainSpec *sp, const PlPretrainViews *v, char *buf,
                             size_t size) {
    snprintf(buf, size,
             "pretrain epochs=%ld batch=%d shuffle=%d seed=%ld optimizer=%s momentum=%.17g lr=%.17g min_lr=%.17g "
             "warmup_epochs=%ld wd=%.17g wd_end=%.17g clip=%.17g freeze_last_layer=%ld norm_last_layer=%d "
             "momentum_teacher=%.17g teacher_temp=%.17g warmup_teacher_temp=%.17g warmup_teacher_temp_epochs=%ld "
             "student_temp=%.17g center_momentum=%.17g drop_path=%.9g dim=%d depth=%d heads=%d patch=%d chans=%d "
             "grid=%d out_dim=%d hidden=%d bottleneck=%d nlayers=%d views=%dx%d+%dx%dx%d micro=%d images=%dx%d rgb=%d "
             "level=%d tile=%d crop=%d kernels=%s precision=%s",
             a->epochs, a->batch, a->shuffle, a->seed, a->sgd ? "sgd" : "adamw", a->momentum, a->lr, a->min_lr,
             a->warmup_epochs, a->weight_decay, a->weight_decay_end, a->clip_grad, a->freeze_last_layer,
             a->norm_last_layer, a->momentum_teacher, a->teacher_temp, a->warmup_teacher_temp,
             a->warmup_teacher_temp_epochs, a->student_temp, a->center_momentum, a->drop_path, sp->cfg.dim,
             sp->cfg.depth, sp->cfg.heads, sp->cfg.patch, sp->cfg.in_chans, sp->cfg.pos_grid,
             sp->classes, sp->head.hidden_dim, sp->head.bottleneck_dim, sp->head.nlayers, v->Hg, v->Wg, v->n_local,
             v->Hl, v->Wl, sp->micro_batch / 2, v->images ? v->images->H : 0, v->images ? v->images->W : 0, a->rgb,
             a->level, a->tile, a->crop, a->backend->name, pl_precision_name(a->precision));
}

static PlStatus write_report(const PtArgs *a, double lr, const PlPretrainResult *r, const PlTrainProfile *prof,
                             const PlVitTrainSpec *sp,
                             const PlPretrainViews *v, int ranks, int threads) {
    // the learning rate at each epoch's last step, from the loop's own schedule (pl_lr_at, as pl_trainer_run sets it)
    double *lr_epoch = pl_calloc((size_t)r->n_epochs + 1, sizeof(double));
    if (!lr_epoch) return PL_ERR_NOMEM;
    for (int e = 0; e < r->n_epochs; e++)
        lr_epoch[e] = pl_lr_at((e + 1) * r->steps_per_epoch - 1, r->steps, a->warmup_epochs * r->steps_per_epoch, lr,
                               a->min_lr, 0);
    json_t *loss = json_array(), *ent = json_array(), *temp = json_array(), *knn = json_array();
    for (int e = 0; loss && ent && temp && knn && e < r->n_epochs; e++) {
        json_array_append_new(loss, json_real(r->epoch_loss[e]));
        json_array_append_new(ent, r->epoch_entropy[e] >= 0 ? json_real(r->epoch_entropy[e]) : json_null());
        json_array_append_new(temp, json_real(r->epoch_temp[e]));
        json_array_append_new(knn, r->epoch_knn[e] >= 0 ? json_real(r->epoch_knn[e]) : json_null());
    }
    json_t *root = json_pack(
        "{s:s, s:{s:s?, s:s?, s:s?, s:s?, s:I, s:I, s:b, s:I, s:s, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:I, s:b, s:f, "
        "s:f, s:f, s:I, s:f, s:f, s:f}, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, "
        "s:{s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:{s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o, s:o, s:o, s:f, s:i}, "
        "s:{s:i, s:i}}",
        "command", "pretrain",
        "options", "global_views", a->global_views, "local_views", a->local_views, "model", a->model, "head_init",
        a->head_init, "epochs", (json_int_t)a->epochs, "batch", (json_int_t)a->batch, "shuffle", a->shuffle, "seed",
        (json_int_t)a->seed, "optimizer", a->sgd ? "sgd" : "adamw", "momentum", a->momentum, "lr", lr, "min_lr",
        a->min_lr, "warmup_epochs", (json_int_t)a->warmup_epochs, "weight_decay", a->weight_decay,
        "weight_decay_end", a->weight_decay_end, "clip_grad", a->clip_grad, "freeze_last_layer",
        (json_int_t)a->freeze_last_layer, "norm_last_layer", a->norm_last_layer, "momentum_teacher",
        a->momentum_teacher, "teacher_temp", a->teacher_temp, "warmup_teacher_temp", a->warmup_teacher_temp,
        "warmup_teacher_temp_epochs", (json_int_t)a->warmup_teacher_temp_epochs, "student_temp", a->student_temp,
        "center_momentum", a->center_momentum, "drop_path", a->drop_path,
        "model_shape", "dim", sp->cfg.dim, "depth", sp->cfg.depth, "heads", sp->cfg.heads, "patch", sp->cfg.patch,
        "in_chans", sp->cfg.in_chans, "out_dim", sp->classes, "hidden_dim", sp->head.hidden_dim, "bottleneck_dim",
        sp->head.bottleneck_dim, "nlayers", sp->head.nlayers,
        "data", "images", (json_int_t)v->n, "channels", v->C, "global_height", v->Hg, "global_width", v->Wg,
        "local_views", v->n_local, "local_height", v->Hl, "local_width", v->Wl, "micro_batch_images",
        sp->micro_batch / 2,
        "results", "steps", (json_int_t)r->steps, "steps_per_epoch", (json_int_t)r->steps_per_epoch, "start_step",
        (json_int_t)r->start_step, "first_loss", r->first_loss, "last_loss", r->last_loss, "img_per_s", r->img_per_s,
        "epoch_loss", loss ? loss : json_array(), "epoch_teacher_entropy", ent ? ent : json_array(),
        "epoch_teacher_temp", temp ? temp : json_array(), "epoch_knn_macro_f1", knn ? knn : json_array(),
        "log_out_dim", log((double)sp->classes), "collapse_warnings", r->collapse_warnings,
        "execution", "ranks", ranks, "threads", threads);
    if (!root) return PL_FAIL(PL_ERR_NOMEM, "building report.json");
    if (prof) {
        json_t *pj = ft_profile_json(prof);
        if (!pj || json_object_set_new(json_object_get(root, "execution"), "profile", pj) != 0) {
            json_decref(root);
            return PL_FAIL(PL_ERR_NOMEM, "building report.json");
        }
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/report.json", a->out);
    PlStatus st = pl_report_write_json(path, root);
    json_decref(root);
    // plots per epoch: the loss, the learning rate, the teacher's temperature and target entropy, and the kNN macro
    // F1 when it was evaluated
    double *y = st == PL_OK ? pl_calloc((size_t)r->n_epochs + 1, sizeof(double)) : NULL;
    if (st == PL_OK && !y) st = PL_ERR_NOMEM;
    if (st == PL_OK) {
        snprintf(path, sizeof path, "%s/pretrain_loss", a->out);
        st = pl_plot_curve(path, r->epoch_loss, r->n_epochs, 0, "epoch", "DINO loss", "DINO pretraining loss");
    }
    if (st == PL_OK) {
        snprintf(path, sizeof path, "%s/pretrain_lr", a->out);
        st = pl_plot_curve(path, lr_epoch, r->n_epochs, 0, "epoch", "learning rate (epoch's last step)",
                           "Learning rate: warm-up from 0, then cosine");
    }
    for (int e = 0; y && e < r->n_epochs; e++) y[e] = r->epoch_temp[e];
    if (st == PL_OK) {
        snprintf(path, sizeof path, "%s/pretrain_teacher_temp", a->out);
        st = pl_plot_curve(path, y, r->n_epochs, 0, "epoch", "teacher temperature", "Teacher temperature per epoch");
    }
    int have_knn = 0;
    for (int e = 0; y && e < r->n_epochs; e++) {
        y[e] = r->epoch_entropy[e] >= 0 ? r->epoch_entropy[e] : NAN;
        have_knn |= r->epoch_knn[e] >= 0;
    }
    if (st == PL_OK) {
        snprintf(path, sizeof path, "%s/pretrain_teacher", a->out);
        st = pl_plot_curve(path, y, r->n_epochs, 0, "epoch", "teacher target entropy (nats)",
                           "Teacher target entropy (log(out_dim): uniform, 0: one prototype)");
    }
    for (int e = 0; y && e < r->n_epochs; e++) y[e] = r->epoch_knn[e] >= 0 ? r->epoch_knn[e] : NAN;
    if (st == PL_OK && have_knn) {
        snprintf(path, sizeof path, "%s/pretrain_knn_f1", a->out);
        st = pl_plot_curve(path, y, r->n_epochs, 0, "epoch", "kNN macro F1 (best k)", "Teacher backbone kNN macro F1");
    }
    free(y);
    free(lr_epoch);
    return st;
}

// --preview N: DIR/preview.png, the views of the first N images in epoch 0 as training draws them: one row per image
// and channel, the 2 global views then the locals, each view's channel scaled from its own min to max (8-bit gray).
static PlStatus write_preview(const PtArgs *a, const PlPretrainViews *v) {
    const PlPretrainImages *im = v->images;
    const int n = (int)(a->preview < v->n ? a->preview : v->n), C = v->C, G = v->Hg, L = v->Hl, gap = 4;
    const int width = 2 * (G + gap) + v->n_local * (L + gap) + gap, height = n * C * (G + gap) + gap;
    PlImage canvas = {0};
    PL_TRY(pl_image_alloc(&canvas, 1, height, width));
    const size_t chw = (size_t)C * im->H * im->W, gsz = (size_t)C * G * G, lsz = (size_t)C * L * L;
    float *sample = pl_malloc((chw + 1) * sizeof(float)), *views = pl_malloc((2 * gsz + v->n_local * lsz + 1) * sizeof(float));
    float *scratch = pl_malloc((pl_dino_augment_scratch_floats(&im->aug, C, im->H, im->W) + 1) * sizeof(float));
    PlStatus st = sample && views && scratch ? PL_OK : PL_ERR_NOMEM;
    for (int64_t i = 0; i < canvas.height * (int64_t)canvas.width; i++) canvas.data[i] = 255.0f;   // white gaps
    for (int r = 0; r < n && st == PL_OK; r++) {
        const float *src = im->x ? im->x + (size_t)r * chw : sample;
        if (!im->x) st = im->samples->read(im->samples->ctx, r, im->samples->lanes - 1, sample);
        if (st != PL_OK) break;
        pl_dino_augment_views(&im->aug, pl_pretrain_view_key((uint64_t)a->seed, 0, r), src, C, im->H, im->W, im->rgb,
                              views, v->n_local ? views + 2 * gsz : NULL, scratch);
        for (int k = 0; k < 2 + v->n_local; k++) {
            const int S = k < 2 ? G : L, x0 = gap + (k < 2 ? k * (G + gap) : 2 * (G + gap) + (k - 2) * (L + gap));
            const float *view = k < 2 ? views + (size_t)k * gsz : views + 2 * gsz + (size_t)(k - 2) * lsz;
            for (int c = 0; c < C; c++) {
                const float *x = view + (size_t)c * S * S;
                float lo = x[0], hi = x[0];
                for (int j = 1; j < S * S; j++) {
                    lo = x[j] < lo ? x[j] : lo;
                    hi = x[j] > hi ? x[j] : hi;
                }
                const int y0 = gap + (r * C + c) * (G + gap);
                for (int yy = 0; yy < S; yy++)
                    for (int xx = 0; xx < S; xx++)
                        canvas.data[(size_t)(y0 + yy) * width + x0 + xx] =
                            hi > lo ? 255.0f * (x[yy * S + xx] - lo) / (hi - lo) : 0.0f;
            }
        }
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/preview.png", a->out);
    if (st == PL_OK) st = pl_png_write(path, &canvas, 0, 8);
    if (st == PL_OK)
        pl_log_info("preview: %s: %d image(s) x %d channel(s) (rows), 2 global %dx%d + %d local %dx%d views (columns)",
                    path, n, C, G, G, v->n_local, L, L);
    free(sample);
    free(views);
    free(scratch);
    pl_image_free(&canvas);
    return st;
}

// The images of --input or --manifest (all items, through the training cache with --cache) and the views the
// multi-crop augmentation draws from them.
static PlStatus load_images(const PtArgs *a, const PlVitConfig *cfg, const PlModelCard *card, PlThreadPool *pool,
                            int rank, int ranks, FtData *d, PlPretrainImages *im, PlPretrainViews *v) {
    int classes = 0;
    if (a->input) {
        PL_TRY(ft_data_load_arrays(a->input, NULL, cfg, &classes, d));
    } else {
        FtDataOptions level = {.level = (PlStoreLevel)a->level, .tile = a->tile, .crop = a->crop, .size = a->size,
                               .all_items = 1};
        FtCacheUse cu = {.dir = a->cache, .lanes = pl_threadpool_size(pool) + 1};
        PL_TRY(ft_data_load_manifest(a->manifest, card, cfg, &level, a->cache ? &cu : NULL, a->out, pool, rank, ranks,
                                     &classes, d));
    }
    pl_dino_augment_options_default(&im->aug);
    im->aug.global_size = a->global_size;
    im->aug.local_size = a->local_size;
    im->aug.n_local = a->local_crops;
    PL_TRY(pl_dino_augment_options_check(&im->aug));
    if (a->local_crops > 0 && a->local_size > a->global_size)
        return PL_FAIL(PL_ERR_ARG, "--local-size %d is larger than --global-size %d", a->local_size, a->global_size);
    if (a->rgb && d->C != 3) return PL_FAIL(PL_ERR_ARG, "--rgb needs 3-channel images; these have %d", d->C);
    im->H = d->H;
    im->W = d->W;
    im->x = d->x;
    im->samples = d->samples;
    im->rgb = a->rgb;
    *v = (PlPretrainViews){.n = d->n, .C = d->C, .Hg = a->global_size, .Wg = a->global_size,
                           .n_local = a->local_crops, .Hl = a->local_size, .Wl = a->local_size, .images = im};
    return PL_OK;
}

static PlStatus pretrain_run(const PtArgs *a, int *partial) {
    int rank = 0, ranks = 1;
    if (pl_mpi_active()) {
        PL_TRY(PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
        PL_TRY(PL_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &ranks)));
    }
    const int mpi = pl_mpi_active() && ranks > 1;
    PlStatus st = pl_mkdir_p(a->out);
    if (st != PL_OK) pl_error_wrap("--out %s", a->out);
    else if (access(a->out, W_OK) != 0) st = PL_FAIL(PL_ERR_IO, "--out %s is not writable", a->out);
    PL_TRY(pl_mpi_agree(st, "creating --out"));
    PlLock lock = {.fd = -1};
    st = rank == 0 ? pl_cli_claim_train_dir(a->out, "pretrain", pt_run_files, a->resume, a->force, &lock) : PL_OK;
    // agreed before anything collective (a manifest's cache build): a refused claim on rank 0 ends every rank
    if (mpi) st = pl_mpi_agree(st, "claiming --out");
    PlNpyArray g = {0}, l = {0};
    PlPretrainViews v = {0};
    PlPretrainImages im = {0};
    FtData d;
    memset(&d, 0, sizeof d);
    PlModelCard card;
    int have_card = 0;
    PlWeights w = {0}, hw = {0};
    int have_head = 0;
    PlVitConfig cfg = {0};
    PlThreadPool *pool = NULL;
    if (st == PL_OK) st = pl_process_start_pool(a->threads, &pool);
    if (st == PL_OK && a->global_views) {
        st = load_views(a, &g, &l, &v);
        if (st == PL_OK) st = load_backbone(a, v.C, v.Hg > v.Wg ? v.Hg : v.Wg, &w, &cfg, &card, &have_card);
    } else if (st == PL_OK) {
        st = load_backbone(a, a->in_chans, a->global_size, &w, &cfg, &card, &have_card);
        if (st == PL_OK) st = load_images(a, &cfg, have_card ? &card : NULL, pool, rank, ranks, &d, &im, &v);
    }
    if (st == PL_OK && cfg.in_chans != v.C)
        st = PL_FAIL(PL_ERR_ARG, "the backbone takes %d channels, the images have %d", cfg.in_chans, v.C);
    if (st == PL_OK && v.n < a->batch && a->preview == 0)
        st = PL_FAIL(PL_ERR_ARG, "%lld images, fewer than one --batch of %d", (long long)v.n, a->batch);
    if (st == PL_OK && a->head_init && (st = pl_weights_load(a->head_init, NULL, &hw)) == PL_OK) have_head = 1;
    PlVitTrainHead head;
    int out_dim = 0;
    if (st == PL_OK) st = head_shape(a, have_head ? &hw : NULL, cfg.dim, &head, &out_dim);
    if (st == PL_OK && out_dim < 2) st = PL_FAIL(PL_ERR_ARG, "the head's out_dim is %d; DINO needs at least 2", out_dim);
    if (st == PL_OK && a->preview > 0) {   // only the preview: no training
        if (rank == 0) st = write_preview(a, &v);
        if (mpi) st = pl_mpi_agree(st, "writing the preview");
        pl_weights_free(&w);
        if (have_head) pl_weights_free(&hw);
        ft_data_free(&d);
        if (have_card) pl_modelcard_free(&card);
        pl_lock_release(&lock);
        return st;
    }
    if (mpi) st = pl_mpi_agree(st, "reading the views and the models");
    PlReaderThread *reader = NULL;
    PlBatchReader reader_if = {0};
    if (st == PL_OK) st = pl_batch_reader_start(&reader, &reader_if);
    const int threads = pool ? pl_threadpool_size(pool) : 1;
    const int m = st == PL_OK ? micro_images(&cfg, &v, a->batch) : 1;
    PlVitTrain *student = NULL, *teacher = NULL;
    PlVitTrainSpec ss = model_spec(&cfg, &head, out_dim, &v, m, threads, a->precision, 1, (float)a->drop_path);
    PlVitTrainSpec ts = model_spec(&cfg, &head, out_dim, &v, m, threads, a->precision, 0, 0.0f);
    if (st == PL_OK) st = pl_vit_train_create(&ss, a->backend, &student);
    if (st == PL_OK) st = pl_vit_train_create(&ts, a->backend, &teacher);
    if (st == PL_OK) st = pl_vit_train_load(student, &w, have_head ? &hw : NULL, (uint64_t)a->seed);
    if (st == PL_OK) st = pl_vit_train_copy_params(teacher, student);
    PlTrainProfile *prof = NULL;
    if (st == PL_OK && a->profile && (st = pl_train_profile_create(threads, &prof)) == PL_OK) {
        pl_vit_train_set_profile(student, prof);
        pl_vit_train_set_profile(teacher, prof);   // the teacher runs on the same worker threads
    }
    if (mpi) st = pl_mpi_agree(st, "creating the student and the teacher");
    char fp[2048];
    args_fingerprint(a, &ss, &v, fp, sizeof fp);
    PlPretrainOptions o = {.batch = a->batch, .epochs = a->epochs, .shuffle = a->shuffle, .seed = (uint64_t)a->seed,
                           .lr = a->have_lr ? a->lr : 5e-4 * a->batch / 256.0, .min_lr = a->min_lr,
                           .warmup_epochs = a->warmup_epochs, .weight_decay = a->weight_decay,
                           .weight_decay_end = a->weight_decay_end, .freeze_last_layer = a->freeze_last_layer,
                           .norm_last_layer = a->norm_last_layer, .checkpoint_every = a->checkpoint_every,
                           .resume = a->resume, .out_dir = a->out, .args_text = fp,
                           .stop = pl_process_stop_signal(), .pool = pool, .reader = &reader_if, .use_mpi = mpi,
                           .profile = prof};
    pl_optim_options_default(&o.optim);
    o.optim.kind = a->sgd ? PL_OPTIM_SGD : PL_OPTIM_ADAMW;
    o.optim.momentum = a->momentum;
    o.optim.clip = a->clip_grad;
    o.optim.clip_mode = PL_OPTIM_CLIP_PER_TENSOR;
    pl_train_dino_options_default(&o.dino);
    o.dino.student_temp = a->student_temp;
    o.dino.teacher_temp = a->teacher_temp;
    o.dino.warmup_teacher_temp = a->warmup_teacher_temp;
    o.dino.warmup_teacher_temp_epochs = a->warmup_teacher_temp_epochs;
    o.dino.center_momentum = a->center_momentum;
    o.dino.momentum_teacher = a->momentum_teacher;
    // the kNN monitor: the labelled images of the manifest (train split as the bank, test as the queries)
    PlPretrainLabels lab = {0};
    PlPretrainImageSet eim = {0};
    if (st == PL_OK && a->eval_every > 0 && a->manifest) {
        lab = (PlPretrainLabels){.cls = d.cls, .n_classes = d.classes, .class_names = d.class_names,
                                 .train = d.train, .test = d.test, .n_train = d.ntr, .n_test = d.nte};
        eim = (PlPretrainImageSet){.C = d.C, .H = d.H, .W = d.W, .x = d.x, .samples = d.samples};
        o.labels = &lab;
        o.eval_images = &eim;
        o.eval_every = a->eval_every;
        if (rank == 0 && (d.ntr < 2 || d.classes < 2))
            pl_log_warn("--eval-every: %s has %lld labelled training image(s) in %d class(es): no kNN to score",
                        a->manifest, (long long)d.ntr, d.classes);
    }
    float *center = st == PL_OK ? pl_calloc((size_t)out_dim + 1, sizeof(float)) : NULL;
    if (st == PL_OK && !center) st = PL_ERR_NOMEM;
    PlPretrainResult r = {0};
    if (st == PL_OK && rank == 0)
        pl_log_info("pretrain: %lld images, 2 global views %dx%d + %d local %dx%d, %d channels; ViT dim %d depth %d "
                    "heads %d patch %d, DINO head %d -> %d -> %d -> %d; batch %d (%d image(s) a micro-batch), %ld "
                    "epochs, lr %g; %d rank(s) x %d thread(s) -> %s", (long long)v.n, v.Hg, v.Wg, v.n_local, v.Hl,
                    v.Wl, v.C, cfg.dim, cfg.depth, cfg.heads, cfg.patch, head.hidden_dim, head.bottleneck_dim,
                    head.bottleneck_dim, out_dim, a->batch, m, a->epochs, o.lr, ranks, threads, a->out);
    if (st == PL_OK) st = pl_pretrain_run(student, teacher, &v, &o, center, &r);
    if (st == PL_OK && rank == 0) st = write_outputs(a, student, teacher, center, out_dim);
    if (st == PL_OK && rank == 0 && have_card) st = ft_card_write(&card, a->out, "teacher_backbone.safetensors", "dino");
    if (st == PL_OK && rank == 0 && prof && pl_train_profile_print(prof, "profile (rank 0)", stderr) != 0)
        pl_log_warn("cannot print the profile");
    if (st == PL_OK && rank == 0) st = write_report(a, o.lr, &r, prof, &ss, &v, ranks, threads);
    if (mpi) st = pl_mpi_agree(st, "writing the pretrained weights");
    if (st == PL_OK && rank == 0)
        pl_log_info("pretrain: %lld steps, loss %.6f -> %.6f, %.1f img/s; %s/teacher_backbone.safetensors",
                    (long long)r.steps, r.first_loss, r.last_loss, r.img_per_s, a->out);
    pl_pretrain_result_free(&r);
    free(center);
    pl_vit_train_destroy(teacher);
    pl_vit_train_destroy(student);
    pl_train_profile_destroy(prof);
    pl_batch_reader_stop(reader);
    pl_weights_free(&w);
    if (have_head) pl_weights_free(&hw);
    pl_npy_free(&g);
    pl_npy_free(&l);
    *partial = d.n_failed > 0;
    ft_data_free(&d);
    if (have_card) pl_modelcard_free(&card);
    pl_lock_release(&lock);
    return st;
}

int cmd_pretrain_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_pretrain_usage(stdout);
        return PL_EXIT_OK;
    }
    PtArgs a = {.out_dim = 65536, .hidden_dim = 2048, .bottleneck_dim = 256, .nlayers = 3, .norm_last_layer = 1,
                .batch = 64, .shuffle = 1, .epochs = 100, .warmup_epochs = 10, .freeze_last_layer = 1,
                .checkpoint_every = 100, .lr = 5e-4, .min_lr = 1e-6, .weight_decay = 0.04, .weight_decay_end = 0.4,
                .clip_grad = 3.0, .momentum = 0.9, .momentum_teacher = 0.996, .teacher_temp = 0.04,
                .warmup_teacher_temp = 0.04, .student_temp = 0.1, .center_momentum = 0.9, .drop_path = 0.1,
                .patch = 16, .global_size = 224, .local_size = 96, .local_crops = 8, .tile = PL_PREP_TILE_DEFAULT,
                .crop = PL_PREP_CROP_DEFAULT, .kernels = "auto"};
    enum { O_GV = 256, O_LV, O_MODEL, O_HEADS, O_ARCH, O_PATCH, O_CHANS, O_HINIT, O_OUTDIM, O_HIDDEN, O_BOTTLE, O_NL,
           O_NORM, O_EPOCHS, O_BATCH, O_NOSHUF, O_SEED, O_DP, O_OPT, O_MOM, O_LR, O_MINLR, O_WARM, O_WD, O_WDE,
           O_CLIP, O_FREEZE, O_MT, O_TT, O_WTT, O_WTTE, O_ST, O_CM, O_OUT, O_THREADS, O_CKPT, O_RESUME, O_FORCE,
           O_INPUT, O_MANIFEST, O_CARD, O_CACHE, O_LEVEL, O_TILE, O_CROP, O_SIZE, O_GSIZE, O_LSIZE, O_LCROPS, O_RGB,
           O_KERNELS, O_PRECISION, O_EVAL, O_PREVIEW, O_PROFILE };
    static const struct option longopts[] = {
        {"global-views", 1, 0, O_GV}, {"local-views", 1, 0, O_LV}, {"model", 1, 0, O_MODEL},
        {"heads", 1, 0, O_HEADS}, {"arch", 1, 0, O_ARCH}, {"patch", 1, 0, O_PATCH}, {"in-chans", 1, 0, O_CHANS},
        {"head-init", 1, 0, O_HINIT}, {"out-dim", 1, 0, O_OUTDIM}, {"hidden-dim", 1, 0, O_HIDDEN},
        {"bottleneck-dim", 1, 0, O_BOTTLE}, {"nlayers", 1, 0, O_NL}, {"norm-last-layer", 1, 0, O_NORM},
        {"epochs", 1, 0, O_EPOCHS}, {"batch", 1, 0, O_BATCH}, {"no-shuffle", 0, 0, O_NOSHUF}, {"seed", 1, 0, O_SEED},
        {"drop-path", 1, 0, O_DP}, {"optimizer", 1, 0, O_OPT}, {"momentum", 1, 0, O_MOM}, {"lr", 1, 0, O_LR},
        {"min-lr", 1, 0, O_MINLR}, {"warmup-epochs", 1, 0, O_WARM}, {"weight-decay", 1, 0, O_WD},
        {"weight-decay-end", 1, 0, O_WDE}, {"clip-grad", 1, 0, O_CLIP}, {"freeze-last-layer", 1, 0, O_FREEZE},
        {"momentum-teacher", 1, 0, O_MT}, {"teacher-temp", 1, 0, O_TT}, {"warmup-teacher-temp", 1, 0, O_WTT},
        {"warmup-teacher-temp-epochs", 1, 0, O_WTTE}, {"student-temp", 1, 0, O_ST},
        {"center-momentum", 1, 0, O_CM}, {"out", 1, 0, O_OUT}, {"threads", 1, 0, O_THREADS},
        {"checkpoint-every", 1, 0, O_CKPT}, {"resume", 0, 0, O_RESUME}, {"force", 0, 0, O_FORCE},
        {"input", 1, 0, O_INPUT}, {"manifest", 1, 0, O_MANIFEST}, {"card", 1, 0, O_CARD}, {"cache", 1, 0, O_CACHE},
        {"level", 1, 0, O_LEVEL}, {"tile", 1, 0, O_TILE}, {"crop", 1, 0, O_CROP}, {"size", 1, 0, O_SIZE},
        {"global-size", 1, 0, O_GSIZE}, {"local-size", 1, 0, O_LSIZE}, {"local-crops", 1, 0, O_LCROPS},
        {"rgb", 0, 0, O_RGB}, {"kernels", 1, 0, O_KERNELS}, {"precision", 1, 0, O_PRECISION},
        {"eval-every", 1, 0, O_EVAL}, {"preview", 1, 0, O_PREVIEW},
        {"profile", 0, 0, O_PROFILE}, {0, 0, 0, 0}};
    static const char *const archs[] = {"vit_tiny", "vit_small", "vit_base"}, *const opts[] = {"adamw", "sgd"},
                             *const bools[] = {"false", "true"}, *const levels[] = {"fov", "tiles", "cells"};
    const char *cmd = "pretrain";
    int c, rc, k;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_GV: a.global_views = optarg; break;
        case O_LV: a.local_views = optarg; break;
        case O_MODEL: a.model = optarg; break;
        case O_HEADS: if ((rc = pl_cli_option_int(cmd, "--heads", optarg, 1, 256, &a.heads))) return rc; break;
        case O_ARCH:
            if ((rc = pl_cli_option_choice(cmd, "--arch", optarg, archs, 3, &k))) return rc;
            a.arch = archs[k];
            break;
        case O_PATCH: if ((rc = pl_cli_option_int(cmd, "--patch", optarg, 1, 64, &a.patch))) return rc; break;
        case O_CHANS: if ((rc = pl_cli_option_int(cmd, "--in-chans", optarg, 1, 64, &a.in_chans))) return rc; break;
        case O_HINIT: a.head_init = optarg; break;
        case O_OUTDIM: if ((rc = pl_cli_option_int(cmd, "--out-dim", optarg, 2, 1 << 20, &a.out_dim))) return rc; break;
        case O_HIDDEN: if ((rc = pl_cli_option_int(cmd, "--hidden-dim", optarg, 1, 1 << 16, &a.hidden_dim))) return rc; break;
        case O_BOTTLE: if ((rc = pl_cli_option_int(cmd, "--bottleneck-dim", optarg, 1, 1 << 16, &a.bottleneck_dim))) return rc; break;
        case O_NL: if ((rc = pl_cli_option_int(cmd, "--nlayers", optarg, 1, 8, &a.nlayers))) return rc; break;
        case O_NORM:
            if ((rc = pl_cli_option_choice(cmd, "--norm-last-layer", optarg, bools, 2, &a.norm_last_layer))) return rc;
            break;
        case O_EPOCHS: if ((rc = pl_cli_option_long(cmd, "--epochs", optarg, 1, 1000000, &a.epochs))) return rc; break;
        case O_BATCH: if ((rc = pl_cli_option_int(cmd, "--batch", optarg, 1, 1 << 20, &a.batch))) return rc; break;
        case O_NOSHUF: a.shuffle = 0; break;
        case O_SEED: if ((rc = pl_cli_option_long(cmd, "--seed", optarg, 0, 0x7fffffffL, &a.seed))) return rc; break;
        case O_DP: if ((rc = pl_cli_option_double(cmd, "--drop-path", optarg, 0, 0.999, &a.drop_path))) return rc; break;
        case O_OPT:
            if ((rc = pl_cli_option_choice(cmd, "--optimizer", optarg, opts, 2, &a.sgd))) return rc;
            break;
        case O_MOM: if ((rc = pl_cli_option_double(cmd, "--momentum", optarg, 0, 0.999999, &a.momentum))) return rc; break;
        case O_LR:
            if ((rc = pl_cli_option_double(cmd, "--lr", optarg, 0, 100, &a.lr))) return rc;
            a.have_lr = 1;
            break;
        case O_MINLR: if ((rc = pl_cli_option_double(cmd, "--min-lr", optarg, 0, 100, &a.min_lr))) return rc; break;
        case O_WARM: if ((rc = pl_cli_option_long(cmd, "--warmup-epochs", optarg, 0, 1000000, &a.warmup_epochs))) return rc; break;
        case O_WD: if ((rc = pl_cli_option_double(cmd, "--weight-decay", optarg, 0, 100, &a.weight_decay))) return rc; break;
        case O_WDE: if ((rc = pl_cli_option_double(cmd, "--weight-decay-end", optarg, 0, 100, &a.weight_decay_end))) return rc; break;
        case O_CLIP: if ((rc = pl_cli_option_double(cmd, "--clip-grad", optarg, 0, 1e9, &a.clip_grad))) return rc; break;
        case O_FREEZE: if ((rc = pl_cli_option_long(cmd, "--freeze-last-layer", optarg, 0, 1000000, &a.freeze_last_layer))) return rc; break;
        case O_MT: if ((rc = pl_cli_option_double(cmd, "--momentum-teacher", optarg, 0, 1, &a.momentum_teacher))) return rc; break;
        case O_TT: if ((rc = pl_cli_option_double(cmd, "--teacher-temp", optarg, 1e-6, 100, &a.teacher_temp))) return rc; break;
        case O_WTT: if ((rc = pl_cli_option_double(cmd, "--warmup-teacher-temp", optarg, 1e-6, 100, &a.warmup_teacher_temp))) return rc; break;
        case O_WTTE: if ((rc = pl_cli_option_long(cmd, "--warmup-teacher-temp-epochs", optarg, 0, 1000000, &a.warmup_teacher_temp_epochs))) return rc; break;
        case O_ST: if ((rc = pl_cli_option_double(cmd, "--student-temp", optarg, 1e-6, 100, &a.student_temp))) return rc; break;
        case O_CM: if ((rc = pl_cli_option_double(cmd, "--center-momentum", optarg, 0, 1, &a.center_momentum))) return rc; break;
        case O_OUT: a.out = optarg; break;
        case O_THREADS: if ((rc = pl_cli_option_int(cmd, "--threads", optarg, 1, 1024, &a.threads))) return rc; break;
        case O_CKPT: if ((rc = pl_cli_option_long(cmd, "--checkpoint-every", optarg, 0, 1L << 40, &a.checkpoint_every))) return rc; break;
        case O_RESUME: a.resume = 1; break;
        case O_FORCE: a.force = 1; break;
        case O_INPUT: a.input = optarg; break;
        case O_MANIFEST: a.manifest = optarg; break;
        case O_CARD: a.card = optarg; break;
        case O_CACHE: a.cache = optarg; break;
        case O_LEVEL: if ((rc = pl_cli_option_choice(cmd, "--level", optarg, levels, 3, &a.level))) return rc; break;
        case O_TILE: if ((rc = pl_cli_option_int(cmd, "--tile", optarg, 8, 65536, &a.tile))) return rc; break;
        case O_CROP: if ((rc = pl_cli_option_int(cmd, "--crop", optarg, 8, 65536, &a.crop))) return rc; break;
        case O_SIZE: if ((rc = pl_cli_option_int(cmd, "--size", optarg, 8, 65536, &a.size))) return rc; break;
        case O_GSIZE: if ((rc = pl_cli_option_int(cmd, "--global-size", optarg, 8, 4096, &a.global_size))) return rc; break;
        case O_LSIZE: if ((rc = pl_cli_option_int(cmd, "--local-size", optarg, 8, 4096, &a.local_size))) return rc; break;
        case O_LCROPS: if ((rc = pl_cli_option_int(cmd, "--local-crops", optarg, 0, 64, &a.local_crops))) return rc; break;
        case O_RGB: a.rgb = 1; break;
        case O_KERNELS: a.kernels = optarg; break;
        case O_PREVIEW: if ((rc = pl_cli_option_int(cmd, "--preview", optarg, 1, 1000, &a.preview))) return rc; break;
        case O_PROFILE: a.profile = 1; break;
        case O_EVAL: if ((rc = pl_cli_option_long(cmd, "--eval-every", optarg, 0, 1000000, &a.eval_every))) return rc; break;
        case O_PRECISION:
            if (pl_precision_parse(optarg, &a.precision) != PL_OK)
                return pl_cli_usage_error(cmd, "--precision must be fp32 or bf16, not '%s'", optarg);
            break;
        default: return pl_cli_usage_error(cmd, "unknown option (see protloc pretrain --help)");
        }
    }
    if (optind < argc) return pl_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!a.out) return pl_cli_usage_error(cmd, "--out DIR is required");
    if (!!a.global_views + !!a.input + !!a.manifest != 1)
        return pl_cli_usage_error(cmd, "give one of --global-views G.npy (fixed views), --input X.npy or --manifest M.tsv");
    if (a.local_views && !a.global_views) return pl_cli_usage_error(cmd, "--local-views goes with --global-views");
    if (a.cache && !a.manifest) return pl_cli_usage_error(cmd, "--cache keeps a manifest's prepared images: give --manifest");
    if (a.manifest && !a.card && !(a.model && strlen(a.model) > 5 && !strcmp(a.model + strlen(a.model) - 5, ".json")))
        return pl_cli_usage_error(cmd, "--manifest needs a model card: --model CARD.json, or --card CARD.json with "
                                  "--model CHECKPOINT or --arch");
    if (a.card && !a.manifest) return pl_cli_usage_error(cmd, "--card says how to feed a --manifest's images");
    if (a.preview > 0 && a.global_views)
        return pl_cli_usage_error(cmd, "--preview shows the augmentation of --input or --manifest images (fixed views "
                                  "are not augmented)");
    if (a.eval_every > 0 && !a.manifest)
        return pl_cli_usage_error(cmd, "--eval-every scores the teacher on a --manifest's labelled images");
    if (!a.model && !a.arch) return pl_cli_usage_error(cmd, "give --model S.safetensors or --arch A (with --in-chans)");
    if (a.model && a.arch) return pl_cli_usage_error(cmd, "--model and --arch exclude each other");
    if (a.arch && a.in_chans < 1 && !a.card && !a.input)
        return pl_cli_usage_error(cmd, "--arch needs --in-chans C (or --card, whose slots are the channels)");
    if (a.resume && a.force) return pl_cli_usage_error(cmd, "--resume and --force exclude each other");
    if ((rc = pl_cli_option_kernels(cmd, a.kernels, a.precision, &a.backend))) return rc;
    PlCliPath outs[] = {{"--out", a.out, pt_run_files, 0}};
    char *weights = a.model ? pl_cli_card_weights(a.model) : NULL;
    PlCliPath ins[] = {{"--global-views", a.global_views, NULL, 0}, {"--local-views", a.local_views, NULL, 0},
                       {"--model", a.model, NULL, 0}, {"--head-init", a.head_init, NULL, 0},
                       {"--input", a.input, NULL, 0}, {"--manifest", a.manifest, NULL, 0}, {"--card", a.card, NULL, 0},
                       {"the weights named by --model", weights, NULL, 0}};
    int rank = 0;
    if (pl_mpi_active() && MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS) return PL_EXIT_ABORT;
    PlStatus os = rank == 0 ? pl_cli_check_outputs(outs, 1, ins, (int)(sizeof ins / sizeof ins[0])) : PL_OK;
    free(weights);
    if (pl_mpi_agree(os, "checking the outputs") != PL_OK) {
        if (rank != 0) pl_error_clear();
        return PL_EXIT_FAIL;
    }
    int partial = 0;
    PlStatus st = pretrain_run(&a, &partial);   // sets partial: not in the same expression
    return pl_cli_exit_status(st, partial);
}
