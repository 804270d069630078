// `protloc finetune`: fine-tune a DINO ViT backbone together with a linear head on (N, C, H, W) float32 arrays with
// class ids or multi-hot labels; MPI data-parallel, checkpointed, bit-identical for any rank and thread count.
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_batch_reader.h"
#include "pl_cli.h"
#include "pl_cli_outputs.h"
#include "pl_cmds.h"
#include "pl_digest.h"
#include "pl_error.h"
#include "pl_finetune.h"
#include "pl_finetune_data.h"
#include "pl_finetune_report.h"
#include "pl_fs.h"
#include "pl_kernels.h"
#include "pl_lock.h"
#include "pl_log.h"
#include "pl_modelcard.h"
#include "pl_mpi.h"
#include "pl_npy.h"
#include "pl_probe.h"
#include "pl_prep.h"
#include "pl_process.h"
#include "pl_safetensors.h"
#include "pl_train_ckpt.h"
#include "pl_train_classify.h"
#include "pl_train_step.h"
#include "pl_vit_train.h"
#include "pl_weights.h"

void cmd_finetune_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc finetune --manifest M.tsv --model CARD.json --out DIR [options]\n"
            "       protloc finetune --model FILE --input X.npy --labels Y.npy --out DIR [options]\n"
            "       protloc finetune --collect DIR [--probe PROBE.json]\n"
            "       mpirun -np R protloc finetune ...   (ranks split every global batch)\n"
            "\n"
            "Train the whole DINO ViT backbone together with a linear classification head (one optimizer,\n"
            "same lr, nothing frozen: DINO4Cells' end-to-end recipe) and write DIR/backbone.safetensors,\n"
            "DIR/head.safetensors, DIR/train.jsonl, DIR/report.json (and DIR/model.json when --model is a card).\n"
            "The final weights are bit-identical for any --threads and rank count (--reduce tree).\n"
            "\n"
            "Inputs:\n"
            "  --manifest M.tsv       labelled items of the train / val / test splits, preprocessed as `run --level fov`\n"
            "                         and resized to --size x --size canvases; best epoch on val, test scored at the end\n"
            "  --level fov|tiles|cells  what each training sample is (default fov): the whole field of view, its\n"
            "                         --tile x --tile tiles (default " PL_PREP_TILE_DEFAULT_TEXT "), or --crop x --crop single-cell crops\n"
            "                         (default " PL_PREP_CROP_DEFAULT_TEXT "; label mask or built-in nucleus segmentation); tiles and\n"
            "                         cells take the item's label\n"
            "  --size S               canvas side every sample is resized to (default: the checkpoint's native size)\n"
            "  --cache DIR            keep the prepared samples in the training cache DIR (built or updated first, by\n"
            "                         every rank; reused by later runs) and read each rank's samples from it a few\n"
            "                         batches ahead, instead of holding every canvas in memory (docs/formats.md)\n"
            "  --verify               with --cache: decide which items changed by content SHA-256, not size + mtime\n"
            "  --model FILE           backbone: checkpoint (safetensors, .pth, DINO training checkpoint) or model card .json\n"
            "  --card CARD.json       with --model CHECKPOINT: the card that says how to feed it (slots, normalisation,\n"
            "                         pixel size); its own weights are not used (e.g. a checkpoint written by finetune)\n"
            "  --heads H              attention heads (default: checkpoint metadata/card, else dim/64)\n"
            "  --checkpoint-key K     teacher (default) or student, for DINO training checkpoints\n"
            "  --input X.npy          float32 (N, C, H, W), already normalised (every image trains at H x W)\n"
            "  --labels Y.npy         int64/int32 (N) class ids -> softmax cross-entropy, or float (N, K) multi-hot\n"
            "                         -> BCE-with-logits\n"
            "  --head linear|mlp      linear (default) or the DINO4Cells MLP head Linear(dim,512)-ReLU-Dropout-\n"
            "                         Linear(512,256)-ReLU-Dropout-Linear(256,K)\n"
            "  --head-dropout P       MLP head dropout in training (default 0.5)\n"
            "  --head-init H.safetensors  linear head: weight (K, dim), bias (K) (default: N(0, 0.01) weights, 0 bias);\n"
            "                         MLP head: 0.weight, 0.bias, 3.weight, 3.bias, 6.weight, 6.bias (default: torch's init)\n"
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
            "  --weight-decay-end W   weight decay cosine from --weight-decay to W over the steps, set every step\n"
            "                         (DINO's wd_schedule; default: constant)\n"
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
            "  --balanced             class-balanced sampling (each epoch: N draws with replacement, weight 1/class size)\n"
            "  --seed S               shuffling, augmentation, drop path, head init (default 0)\n"
            "Data fractions (paired with `protloc probe --fraction LIST --seeds S --seed X`):\n"
            "  --fraction LIST        e.g. 0.01,0.1,0.25,0.5,1: per-class stratified subsets of the training split\n"
            "  --seeds S              repetitions per fraction (default 1); runs go to DIR/f<fraction>_s<k>/ and\n"
            "                         DIR/grid.{tsv,json,png,svg} aggregates them\n"
            "  --task K               only run K = fraction index x S + repetition (one Slurm array task)\n"
            "  --probe PROBE.json     draw the frozen probe's logreg curve next to the fine-tuned one\n"
            "  --collect DIR          only aggregate DIR/*/report.json into DIR/grid.* (the reduce after an array)\n"
            "Execution:\n"
            "  --threads T            worker threads per rank (default: the cores this process may use)\n"
            "  --reduce tree|allreduce  fixed-order gradient tree (bit-identical for any rank count; default) or\n"
            "                         MPI_Allreduce (faster, not bit-identical across rank counts)\n"
            "  --prefetch K           global batches prepared ahead of the step (default 2, at most 7)\n"
            "  --cache-memory MiB     bound of those prepared batches per rank (default 1024): fewer are read ahead when\n"
            "                         they would not fit\n"
            "  --recompute            keep only each block's input and recompute it in the backward pass (less memory)\n"
            "  --profile              time every phase of the steps after the first (GEMMs per layer forward and\n"
            "                         backward, attention, LayerNorm, GELU, BF16 conversions, head, reduce, optimizer,\n"
            "                         data): a table in the log and execution.profile in report.json (rank 0)\n"
            "  --checkpoint-every S   steps between checkpoints (default 100; also at every epoch end)\n"
            "  --resume               continue from DIR/checkpoint.safetensors (same arguments, architecture and inputs\n"
            "                         required; its digest is verified)\n"
            "  --force                start over although DIR holds a checkpoint (it is removed); without --resume or\n"
            "                         --force an existing checkpoint is never replaced\n");
    pl_cli_usage_kernels(out, "kernel backend", NULL);
    fprintf(out,
            "  --precision P          fp32 (default) or bf16: BF16 GEMM and attention inputs with FP32 accumulation;\n"
            "                         weights, gradients and optimizer state stay FP32\n"
            "  -h, --help             this help\n"
            "\n"
            "Exit status: 0 done; 1 failed (a NaN/Inf loss names the step and keeps the last checkpoint;\n"
            "under MPI every rank ends with the failing rank's message); 2 bad command line; 3 done, but some\n"
            "manifest items failed to preprocess (skipped, listed in DIR/failures.tsv); 6 another process holds\n"
            "DIR/finetune.lock or the cache's lock (nothing was done); 128+N stopped by signal N after a checkpoint\n"
            "(--resume continues).\n");
}

#define FT_MAX_FRACTIONS 64

typedef struct FtArgs {
    const char *model, *key, *input, *labels, *manifest, *head_init, *kernels, *collect, *probe, *card, *cache;
    int verify;                 // --verify: content digests of the cache's inputs
    int profile;                // --profile: per-phase step times in the log and report.json
    double cache_memory;        // --cache-memory MiB: the ring of prepared batches, per rank
    PlPrecision precision;
    const PlKernels *backend;   // --kernels, found once when the command line is read
    int heads, classes, threads, micro_batch, recompute, size, seeds, task, head_mlp, level, tile, crop, force;
    float drop_path, head_dropout;
    double fractions[FT_MAX_FRACTIONS];
    int n_fractions;
    PlFinetuneOptions o;
} FtArgs;

static PlStatus check_head(const char *path, const PlWeights *h, int dim, int mlp, int *classes) {
    if (mlp) {   // DINO4Cells MLP: 0.weight (512, dim) ... 6.weight (classes, 256); every shape is checked at load
        const PlWeightTensor *w0 = pl_weights_find(h, "0.weight"), *w6 = pl_weights_find(h, "6.weight");
        if (!w0 || !w6 || w0->ndim != 2 || w6->ndim != 2)
            return PL_FAIL(PL_ERR_FORMAT, "%s is not a DINO4Cells MLP head (needs 0.weight, 0.bias, 3.weight, 3.bias, "
                                          "6.weight, 6.bias as nn.Sequential names them)", path);
        if (w0->shape[1] != dim)
            return PL_FAIL(PL_ERR_ARG, "%s: head 0.weight has shape (%lld, %lld); the backbone's dim is %d", path,
                           (long long)w0->shape[0], (long long)w0->shape[1], dim);
        if (*classes > 0 && *classes != w6->shape[0])
            return PL_FAIL(PL_ERR_ARG, "%s has %lld classes but --classes says %d", path, (long long)w6->shape[0], *classes);
        *classes = (int)w6->shape[0];
        return PL_OK;
    }
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

// Options that change the result, as text: a checkpoint only resumes a run with the same text.
static void args_fingerprint(const PlFinetuneOptions *o, const PlVitTrainSpec *sp, const PlKernels *kernels,
                             double fraction, int si, char *buf, size_t size) {
    int n = snprintf(buf, size,
             "optimizer=%d lr=%.17g base_lr=%.17g no_lr_scaling=%d min_lr=%.17g momentum=%.17g weight_decay=%.17g "
             "layer_decay=%.17g clip=%.17g schedule_constant=%d warmup=%lld steps=%lld epochs=%d batch=%d micro_batch=%d "
             "drop_path=%.9g augment=%d shuffle=%d balanced=%d seed=%llu reduce=%d classes=%d fraction=%.17g seed_index=%d "
             "head_mlp=%d head_dropout=%.9g arch=dim%d,depth%d,heads%d,patch%d,in%d,pos%d,%dx%d",
             (int)o->optim.kind, o->lr, o->base_lr, o->no_lr_scaling, o->min_lr, o->optim.momentum,
             o->optim.weight_decay, o->optim.layer_decay, o->optim.clip, o->schedule_constant,
             (long long)o->warmup_steps, (long long)o->steps, o->epochs, o->batch, sp->micro_batch,
             (double)sp->drop_path, o->augment, o->shuffle, o->balanced, (unsigned long long)o->seed, o->allreduce,
             sp->classes, fraction, si, sp->head.kind == PL_HEAD_MLP, (double)sp->head.dropout, sp->cfg.dim, sp->cfg.depth,
             sp->cfg.heads, sp->cfg.patch, sp->cfg.in_chans, sp->cfg.pos_grid, sp->height, sp->width);
    if (o->weight_decay_end >= 0 && n >= 0 && (size_t)n < size)   // only when set: older checkpoints keep resuming
        n += snprintf(buf + n, size - (size_t)n, " weight_decay_end=%.17g", o->weight_decay_end);
    // the arithmetic: another backend or precision gives other bits, so it resumes only with the same ones
    if (n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " kernels=%s precision=%s", kernels->name, pl_precision_name(sp->precision));
}

typedef struct FtModel {
    PlWeights w, head;
    PlModelCard card;
    int have_card, have_head;
    PlVitConfig cfg;
    const char *weights;
    FtFingerprint fp;   // rank 0: the digests report.json records (ft_collect compares them across runs)
} FtModel;

// The files a fine-tune writes into its folder (each atomically: a dead run leaves "<name>.tmp.<pid>.<n>"), those a
// grid's summary writes into --out, and the rest of what may stand in a fine-tune's --out (lock, plots, temporaries,
// the grid's run folders): pl_cli_claim_train_dir removes the run files' stale temporaries, ft_check_outputs refuses inputs
// among all of them.
static const char *const ft_run_files[] = {PL_TRAIN_CKPT_NAME, "train.jsonl", "report.json", "backbone.safetensors",
                                           "head.safetensors", "model.json", "failures.tsv", NULL};
static const char *const ft_grid_files[] = {"grid.tsv", "grid.json", "grid.png", "grid.svg", NULL};
static const char *const ft_other_files[] = {"finetune.lock", "training_loss.*", "training_val_f1.*", "confusion.*",
                                             "class_f1.*", "*.tmp.*", "f*_s*/*", NULL};

// Bytes of a loaded checkpoint: its slab and any tensor allocated on its own.
static double ft_weights_bytes(const PlWeights *w) {
    double b = (double)w->slab_floats * sizeof(float);
    for (size_t i = 0; i < w->count; i++) {
        const float *p = w->tensors[i].data;
        if (!w->slab || p < w->slab || p >= w->slab + w->slab_floats)
            b += (double)pl_weight_tensor_numel(&w->tensors[i]) * sizeof(float);
    }
    return b;
}

// What starts only with the training, per thread (the pool's and the reader): the thread's stack, its malloc arena
// and the GEMM library's packing buffers. Measured with /usr/bin/time -v (Debian 12, OpenBLAS 0.3.21, oneDNN 2.6):
// 0.3 to 2 MiB per thread, growing with the GEMM sizes (tests/cli/test_finetune_memory.sh checks the total).
#define FT_RUNTIME_BYTES (1.5 * 1048576.0)

// Memory per rank of one fine-tune (FtMemory): the trainer t (created) and the model and data are asked for their
// bytes; the optimizer and the step, which pl_finetune_run creates, say what they will hold (*_bytes_for); the
// reader's buffers, sample orders and evaluation buffers follow pl_finetune.c / pl_finetune_eval.c. rss0: resident
// bytes measured before t was created (the baseline is what it holds besides the weights and data).
static void ft_memory(const FtModel *m, const FtData *d, PlVitTrain *t, const PlFinetuneOptions *o, int threads,
                      int rank, int ranks, int64_t m_rows, double rss0, FtMemory *mem) {
    memset(mem, 0, sizeof *mem);
    if (!t) return;
    const PlVitTrainSpec *sp = pl_vit_train_spec(t);
    const double img = (double)d->C * d->H * d->W * sizeof(float), K = sp->classes;
    const int mb = sp->micro_batch;
    mem->weights = ft_weights_bytes(&m->w) + (m->have_head ? ft_weights_bytes(&m->head) : 0.0);
    // a cached sample: its map entry (4 bytes) and its frame's entry in the shard tables (offset 8 + size 4)
    const double per_row = (d->samples ? 16.0 : img) + (d->cls ? 4.0 : 0.0) + (d->targets ? K * 4.0 : 0.0);
    mem->data = (double)d->n * per_row +   // images (or the cache's sample map) and labels
                (double)(d->is_manifest ? d->ntr + d->nva + d->nte : d->n) * 8.0 +   // split row lists
                (m_rows < d->ntr ? ((double)d->ntr + 1.0) * 2.0 * 8.0 : 0.0);       // run_task's subset rows
    mem->baseline = rss0 > mem->weights + mem->data ? rss0 - mem->weights - mem->data : 0.0;
    mem->runtime = (threads + 1.0) * FT_RUNTIME_BYTES;
    pl_vit_train_bytes(t, &mem->parameters, &mem->bf16, &mem->activations);
    mem->optimizer = pl_optim_bytes_for(t, &o->optim);
    PlTrainStepOptions so = {.global_batch = o->batch, .allreduce = o->allreduce,
                             .use_mpi = pl_mpi_active() && ranks > 1};
    int count = 0;
    PlTrainObjective obj;
    pl_train_classify_objective(t, &obj);
    mem->gradients = pl_train_step_bytes_for(&obj, threads, &so, rank, ranks, &count);
    mem->best = d->nva > 0 ? (double)pl_vit_train_param_floats(t) * sizeof(float) : 0.0;   // no derived state
    // the batch source (pl_finetune.c): a ring of prefetch + 1 slots of (count + 1) images, labels, targets and
    // keys, one augmentation scratch (and a sample buffer with a cache), (batch / n + 2) sample orders when
    // shuffling, cumulative weights with --balanced
    mem->slot = (count + 1) * (img + 4.0 + K * 4.0 + 8.0);
    mem->slots = o->prefetch + 1;
    mem->slot_images = count;
    mem->batches = mem->slots * mem->slot + img * (d->samples ? 2.0 : 1.0) +
                   (o->shuffle ? (double)(o->batch / m_rows + 2) * m_rows * 4.0 : 0.0) +
                   (o->balanced ? (double)m_rows * 8.0 : 0.0);
    // on top, one at a time: the backbone copy write_weights exports, or an evaluation (logits, predictions,
    // labels, and with a row list one micro-batch of gathered images per thread)
    int nt;
    const PlTrainTensor *tt = pl_vit_train_tensors(t, &nt);
    double backbone = 0.0;
    for (int i = 0; i < nt; i++)
        if (!tt[i].head) backbone += (double)pl_weights_slab_floats(tt[i].numel) * sizeof(float);
    const int64_t n_eval[2] = {d->nva, d->nte > 0 ? d->nte : m_rows};
    const double huge = 2.0 * 1048576.0;   // pl_weights_reserve: the export's slab is whole 2 MiB (huge) pages
    mem->transient = ceil(backbone / huge) * huge;
    for (int i = 0; i < 2; i++) {
        double e = n_eval[i] > 0 ? (double)n_eval[i] * (K * 4.0 + 8.0) + (double)threads * mb * img : 0.0;
        if (e > mem->transient) mem->transient = e;
    }
    mem->total = mem->baseline + mem->runtime + mem->weights + mem->parameters + mem->bf16 + mem->optimizer +
                 mem->gradients + mem->best + mem->activations + mem->batches + mem->data + mem->transient;
}

// One fine-tune: fraction index fi, repetition si, into dir.
static PlStatus run_task(FtArgs *a, FtModel *m, const FtData *d, const PlKernels *kernels, PlThreadPool *pool,
                         const PlBatchReader *reader, int fi, int si, const char *dir, int rank, int ranks) {
    const double frac = a->fractions[fi];
    const int C = d->classes;
    uint64_t subset_seed = pl_probe_subset_seed(a->o.seed, si, fi), train_seed = a->o.seed + 1000003ULL * (uint64_t)si;
    // the training rows: the whole split at fraction 1 (borrowed), else this fraction's subset (and its scratch)
    int64_t *sub = NULL;
    const int64_t *rows = d->train;
    int64_t m_rows = d->ntr;
    PlStatus st = PL_OK;
    if (frac < 1.0) {
        if (!d->cls) st = PL_FAIL(PL_ERR_ARG, "--fraction below 1 needs class ids (multi-label targets have no strata)");
        if (st == PL_OK && !(sub = pl_malloc(((size_t)d->ntr + 1) * 2 * sizeof(int64_t)))) st = PL_ERR_NOMEM;
        if (st == PL_OK) m_rows = pl_probe_subset(d->train, d->ntr, d->cls, C, frac, subset_seed, sub, sub + d->ntr + 1);
        rows = sub;
    }
    if (st == PL_OK && d->cls) {   // classes without a training image: a warning; an error when the subset lost it
        char *seen = pl_calloc((size_t)C * 2, 1);   // (C) in the whole train split | (C) in this fraction's subset
        if (!seen) st = PL_ERR_NOMEM;
        for (int64_t i = 0; i < d->ntr && st == PL_OK; i++) seen[d->cls[d->train[i]]] = 1;
        for (int64_t i = 0; i < m_rows && st == PL_OK; i++) seen[C + d->cls[rows[i]]] = 1;
        for (int c = 0; c < C && st == PL_OK; c++) {
            char id[16];
            snprintf(id, sizeof id, "%d", c);
            const char *name = d->class_names ? d->class_names[c] : id;
            if (!seen[c] && rank == 0)   // as in PyTorch: its head row still trains (the softmax pushes it down)
                pl_log_warn("class '%s' has no training image (the train split holds none of it); its head row is "
                            "trained only through the other classes", name);
            else if (seen[c] && !seen[C + c])   // a guard: pl_probe_subset keeps >= 1 image of every class
                st = PL_FAIL(PL_ERR_ARG, "class '%s' has training images but none in the subset at fraction %g "
                                         "(repetition %d); use a larger fraction or add training items of that class",
                             name, frac, si);
        }
        free(seen);
    }
    PlVitTrain *t = NULL;
    int T = 1 + (d->H / m->cfg.patch) * (d->W / m->cfg.patch);
    int mb = a->micro_batch > 0 ? a->micro_batch : (256 + T - 1) / T;
    if (mb > a->o.batch) mb = a->o.batch;
    int threads = pl_threadpool_size(pool);
    PlVitTrainSpec sp = {.cfg = m->cfg, .classes = C, .loss = d->targets ? PL_LOSS_BCE : PL_LOSS_XENT, .height = d->H,
                         .width = d->W, .micro_batch = mb, .recompute = a->recompute, .drop_path = a->drop_path,
                         .workers = threads, .precision = a->precision,
                         .head = {.kind = a->head_mlp ? PL_HEAD_MLP : PL_HEAD_LINEAR, .dropout = a->head_dropout}};
    PlLock lock = {.fd = -1};
    if (st == PL_OK) st = pl_mkdir_p(dir);
    if (st == PL_OK && rank == 0)
        st = pl_cli_claim_train_dir(dir, "finetune", ft_run_files, a->o.resume, a->force, &lock);
    double rss0 = pl_process_rss_bytes();   // the baseline of the memory estimate: before the trainer exists
    if (st == PL_OK) st = pl_vit_train_create(&sp, kernels, &t);
    if (st == PL_OK) st = pl_vit_train_load(t, &m->w, m->have_head ? &m->head : NULL, train_seed);
    PlTrainProfile *prof = NULL;
    if (st == PL_OK && a->profile && (st = pl_train_profile_create(threads, &prof)) == PL_OK)
        pl_vit_train_set_profile(t, prof);
    PlFinetuneOptions o = a->o;
    o.profile = prof;
    char fp[4096];
    args_fingerprint(&a->o, &sp, kernels, frac, si, fp, sizeof fp);
    o.args_text = fp;
    o.out_dir = dir;
    o.seed = train_seed;
    o.pool = pool;
    o.reader = reader;
    o.use_mpi = pl_mpi_active() && ranks > 1;
    o.stop = pl_process_stop_signal();
    PlFinetuneData tr = {m_rows, d->C, d->H, d->W, d->x, d->cls, d->targets, C, rows, d->samples};
    PlFinetuneData va = {d->nva, d->C, d->H, d->W, d->x, d->cls, d->targets, C, d->val, d->samples};
    PlFinetuneData te = {d->nte, d->C, d->H, d->W, d->x, d->cls, d->targets, C, d->test, d->samples};
    double act = pl_vit_train_activation_bytes(&sp), P = t ? (double)pl_vit_train_param_floats(t) * 4 : 0.0;
    FtMemory mem;
    ft_memory(m, d, t, &o, threads, rank, ranks, m_rows, rss0, &mem);
    if (st == PL_OK && t) {   // --cache-memory bounds the ring of prepared batches: fewer read ahead when needed
        const double bound = a->cache_memory * 1048576.0;
        int fit = (int)floor(bound / mem.slot);
        if (fit < 2)
            st = PL_FAIL(PL_ERR_ARG, "--cache-memory %g MiB holds fewer than 2 prepared batches of this rank (%.1f MiB "
                                     "each); give at least %.0f", a->cache_memory, mem.slot / 1048576.0,
                         ceil(2.0 * mem.slot / 1048576.0));
        else if (fit - 1 < o.prefetch) {
            if (rank == 0)
                pl_log_warn("--cache-memory %g MiB holds %d prepared batches of %.1f MiB: reading %d batch(es) ahead "
                            "instead of %d", a->cache_memory, fit, mem.slot / 1048576.0, fit - 1, o.prefetch);
            o.prefetch = fit - 1;
            ft_memory(m, d, t, &o, threads, rank, ranks, m_rows, rss0, &mem);
        }
    }
    if (st == PL_OK && rank == 0) {
        const double MiB = 1048576.0;
        pl_log_info("fine-tuning %s on %lld of %lld training images (fraction %g, repetition %d): dim %d, depth %d, "
                    "heads %d, patch %d, %dx%d, %d classes (%s), batch %d (micro-batch %d), %d rank(s) x %d thread(s), "
                    "kernels %s, precision %s; activations %.1f MiB per thread, parameters %.1f MiB -> %s",
                    m->weights, (long long)m_rows, (long long)d->ntr, frac, si, m->cfg.dim, m->cfg.depth, m->cfg.heads,
                    m->cfg.patch, d->H, d->W, C, d->targets ? "BCE" : "cross-entropy", a->o.batch, mb, ranks, threads,
                    kernels->name, pl_precision_name(a->precision), act / MiB, P / MiB, dir);
        pl_log_info("memory per rank: %.1f MiB = baseline %.1f + runtime %.1f + weights loaded %.1f + parameters "
                    "%.1f + bf16 copy %.1f + optimizer %.1f + gradients %.1f + best epoch %.1f + activations %.1f "
                    "(%d x %.1f) + batches %.1f (%d x %.1f) + data %.1f + transient %.1f", mem.total / MiB, mem.baseline / MiB,
                    mem.runtime / MiB, mem.weights / MiB, mem.parameters / MiB, mem.bf16 / MiB, mem.optimizer / MiB,
                    mem.gradients / MiB, mem.best / MiB, mem.activations / MiB, threads,
                    mem.activations / (threads > 0 ? threads : 1) / MiB, mem.batches / MiB, mem.slots, mem.slot / MiB,
                    mem.data / MiB,
                    mem.transient / MiB);
    }
    PlFinetuneResult r = {0};
    st = pl_mpi_agree(st, "preparing the fine-tune");
    // every failure inside pl_finetune_run is known to every rank (agreed, or the job is aborted)
    int trained = st == PL_OK && (st = pl_finetune_run(t, &tr, d->nva ? &va : NULL, d->nte ? &te : NULL, &o, &r)) == PL_OK;
    if (trained && rank == 0) {
        mem.peak_measured = pl_process_peak_rss_bytes();
        FtRunInfo info = {.model = m->weights, .data = d->source, .head_init = a->head_init, .fraction = frac,
                          .fraction_index = fi, .seed_index = si, .subset_seed = subset_seed, .train_seed = train_seed,
                          .n_train = m_rows, .n_train_total = d->ntr, .n_val = d->nva, .n_test = d->nte,
                          .n_failed = d->n_failed, .classes = d->class_names, .n_classes = C, .ranks = ranks,
                          .threads = threads, .kernels = kernels->name, .precision = pl_precision_name(a->precision),
                          .memory = mem,
                          .activation_bytes = act, .params = pl_vit_train_param_floats(t), .fingerprint = &m->fp,
                          .cache = a->cache, .profile = prof};
        if (reader) reader->stats(reader->self, &info.reader_batches, &info.reader_prepare_s, &info.reader_wait_s);
        if (info.reader_batches > 0)
            pl_log_info("reader: %lld batches of %d images, %.0f images/s prepared (%.2f s), the loop waited %.2f s "
                        "for them", (long long)info.reader_batches, mem.slot_images,
                        info.reader_prepare_s > 0 ? info.reader_batches * mem.slot_images / info.reader_prepare_s : 0.0,
                        info.reader_prepare_s, info.reader_wait_s);
        if (prof && pl_train_profile_print(prof, "profile (rank 0)", stderr) != 0) pl_log_warn("cannot print the profile");
        st = ft_report_write(dir, &o, &sp, &r, &info);
        if (st == PL_OK && m->have_card) st = ft_card_write(&m->card, dir, "backbone.safetensors", "finetuned");
        if (st == PL_OK)
            pl_log_info("done: %lld steps, loss %.5f -> %.5f, %.2f img/s; best epoch %d; %s macro F1 %.4f, accuracy "
                        "%.4f; weights in %s", (long long)r.steps, r.first_loss, r.last_loss, r.img_per_s, r.best_epoch,
                        r.eval_split, r.eval_macro_f1, r.eval_accuracy, dir);
    }
    if (trained) st = pl_mpi_agree(st, "writing the report");   // rank 0 wrote alone
    pl_finetune_result_free(&r);
    pl_vit_train_destroy(t);
    pl_train_profile_destroy(prof);
    pl_lock_release(&lock);
    free(sub);
    return st;
}

static PlStatus load_model(FtArgs *a, FtModel *m) {
    return ft_backbone_load(a->model, a->card, &a->heads, &a->key, &m->w, &m->card, &m->have_card, &m->cfg, &m->weights);
}

static PlStatus finetune_run(FtArgs *a, int *partial) {
    int rank = 0, ranks = 1;
    if (pl_mpi_active()) {
        PL_TRY(PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
        PL_TRY(PL_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &ranks)));
    }
    if (a->collect) return pl_mpi_agree(rank == 0 ? ft_collect(a->collect, a->probe) : PL_OK, "collecting the runs");
    const PlKernels *kernels = a->backend;
    // --out first: an unwritable folder fails before any work (every rank checks; they agree)
    PlStatus os = pl_mkdir_p(a->o.out_dir);
    if (os != PL_OK) pl_error_wrap("--out %s", a->o.out_dir);
    else if (access(a->o.out_dir, W_OK) != 0) os = PL_FAIL(PL_ERR_IO, "--out %s is not writable", a->o.out_dir);
    PL_TRY(pl_mpi_agree(os, "creating --out"));
    // --probe is read at the end of a grid: a bad one fails now, before any training
    int grid = a->n_fractions * a->seeds > 1 && a->task < 0;
    if (a->probe && grid) PL_TRY(pl_mpi_agree(rank == 0 ? ft_probe_check(a->probe, a->fractions, a->n_fractions) : PL_OK,
                                              "reading --probe"));
    FtModel m;
    memset(&m, 0, sizeof m);
    FtData d;
    memset(&d, 0, sizeof d);
    PlThreadPool *pool = NULL;
    PlReaderThread *reader = NULL;   // prepares each fine-tune's next batch while the pool computes
    PlBatchReader reader_if = {0};
    int classes = a->classes;
    PlStatus st = load_model(a, &m);
    if (st == PL_OK && a->manifest && !m.have_card)
        st = PL_FAIL(PL_ERR_ARG, "--manifest needs --model CARD.json, or --model CHECKPOINT with --card CARD.json (the card "
                                 "says how to feed the model)");
    if (st == PL_OK && a->head_init) {
        if ((st = pl_weights_load(a->head_init, NULL, &m.head)) == PL_OK) {
            m.have_head = 1;
            st = check_head(a->head_init, &m.head, m.cfg.dim, a->head_mlp, &classes);
        }
    }
    if (st == PL_OK) st = pl_process_start_pool(a->threads, &pool);
    if (st == PL_OK) st = pl_batch_reader_start(&reader, &reader_if);
    if (st == PL_OK) {
        FtDataOptions fo = {.size = a->size, .level = (PlStoreLevel)a->level, .tile = a->tile, .crop = a->crop};
        FtCacheUse cu = {.dir = a->cache, .lanes = pl_threadpool_size(pool) + 1, .verify = a->verify};
        st = a->manifest ? ft_data_load_manifest(a->manifest, &m.card, &m.cfg, &fo, &cu, a->o.out_dir, pool, rank, ranks,
                                                 &classes, &d)
                         : ft_data_load_arrays(a->input, a->labels, &m.cfg, &classes, &d);
    }
    if (st == PL_OK && rank == 0)
        st = ft_fingerprint(m.weights, a->key, a->head_init, d.source, a->manifest ? NULL : a->labels, &m.fp);
    st = pl_mpi_agree(st, "loading the model and data");
    int tasks = a->n_fractions * a->seeds, first = 0, end = tasks;
    if (a->task >= 0) {   // range-checked with the command line
        first = a->task;
        end = a->task + 1;
    }
    for (int k = first; k < end && st == PL_OK; k++) {
        int fi = k / a->seeds, si = k % a->seeds;
        char dir[4096];
        if (tasks == 1)
            snprintf(dir, sizeof dir, "%s", a->o.out_dir);
        else
            snprintf(dir, sizeof dir, "%s/f%g_s%d", a->o.out_dir, a->fractions[fi], si);
        st = run_task(a, &m, &d, kernels, pool, &reader_if, fi, si, dir, rank, ranks);
    }
    if (st == PL_OK && tasks > 1 && a->task < 0)
        st = pl_mpi_agree(rank == 0 ? ft_collect(a->o.out_dir, a->probe) : PL_OK, "collecting the runs");
    *partial = d.n_failed > 0;
    pl_batch_reader_stop(reader);
    ft_data_free(&d);
    pl_weights_free(&m.w);
    if (m.have_head) pl_weights_free(&m.head);
    if (m.have_card) pl_modelcard_free(&m.card);
    return st;
}

// Outputs never overwrite inputs: every file finetune writes into --out (and its grid folders) against every input.
// With --collect the runs' report.json files are inputs, so only the summary files count as outputs.
static PlStatus ft_check_outputs(const FtArgs *a) {
    char *weights = a->model ? pl_cli_card_weights(a->model) : NULL, *card_weights = a->card ? pl_cli_card_weights(a->card) : NULL;
    const char *dir = a->collect ? a->collect : a->o.out_dir;   // --collect writes only the grid's summary
    PlCliPath outs[] = {{"--out", dir, ft_grid_files, 0}, {"--out", a->collect ? NULL : dir, ft_run_files, 0},
                        {"--out", a->collect ? NULL : dir, ft_other_files, 0}};
    PlCliPath ins[] = {{"--manifest", a->manifest, NULL, 0}, {"--model", a->model, NULL, 0},
                       {"the weights named by --model", weights, NULL, 0}, {"--card", a->card, NULL, 0},
                       {"the weights named by --card", card_weights, NULL, 0}, {"--input", a->input, NULL, 0},
                       {"--labels", a->labels, NULL, 0}, {"--head-init", a->head_init, NULL, 0},
                       {"--probe", a->probe, NULL, 0}};
    PlStatus st = pl_cli_check_outputs(outs, 3, ins, (int)(sizeof ins / sizeof ins[0]));
    free(weights);
    free(card_weights);
    return st;   // main prints the message
}

// --fraction LIST: comma-separated numbers in (0, 1].
static int parse_fractions(const char *text, FtArgs *a) {
    a->n_fractions = 0;
    char *copy = strdup(text), *save = NULL;
    if (!copy) return PL_EXIT_FAIL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double f;
        if (a->n_fractions == FT_MAX_FRACTIONS || !pl_cli_parse_double(tok, 1e-9, 1.0, &f)) {
            free(copy);
            return pl_cli_usage_error("finetune", "--fraction needs up to %d comma-separated numbers in (0, 1], got '%s'",
                                      FT_MAX_FRACTIONS, text);
        }
        for (int j = 0; j < a->n_fractions; j++) {   // each fraction names a folder f<fraction>_s<seed>
            char mine[64], other[64];
            snprintf(mine, sizeof mine, "f%g", f);
            snprintf(other, sizeof other, "f%g", a->fractions[j]);
            if (strcmp(mine, other) == 0) {
                free(copy);
                return pl_cli_usage_error("finetune", "--fraction lists %g %s (both would write the folders %s_s*); give "
                                          "each fraction once, distinct in 6 significant digits", f,
                                          f == a->fractions[j] ? "twice" : "and a fraction that prints the same", mine);
            }
        }
        a->fractions[a->n_fractions++] = f;
    }
    free(copy);
    if (a->n_fractions == 0) return pl_cli_usage_error("finetune", "--fraction needs at least one number");
    return PL_EXIT_OK;
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
    a.head_dropout = 0.5f;
    a.tile = PL_PREP_TILE_DEFAULT;
    a.crop = PL_PREP_CROP_DEFAULT;
    a.kernels = "auto";
    a.seeds = 1;
    a.task = -1;
    a.fractions[0] = 1.0;
    a.n_fractions = 1;
    a.o.prefetch = 2;
    a.cache_memory = 1024;
    enum { O_MODEL = 256, O_HEADS, O_KEY, O_INPUT, O_LABELS, O_HEADINIT, O_CLASSES, O_OUT, O_OPT, O_LR, O_BASELR,
           O_NOSCALE, O_MINLR, O_MOM, O_WD, O_WDEND, O_LD, O_CLIP, O_SCHED, O_WARM, O_STEPS, O_EPOCHS, O_BATCH, O_MICRO,
           O_DROP, O_NOAUG, O_NOSHUF, O_SEED, O_THREADS, O_REDUCE, O_RECOMP, O_CKPT, O_RESUME, O_KERNELS, O_PRECISION, O_MANIFEST, O_SIZE, O_FRACTION, O_SEEDS, O_TASK, O_COLLECT, O_PROBE, O_BALANCED, O_HEAD, O_HEADDROP, O_CARD, O_LEVEL, O_TILE, O_CROP, O_FORCE, O_CACHE, O_VERIFY, O_PREFETCH, O_CACHEMEM, O_PROFILE };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"heads", required_argument, 0, O_HEADS},
        {"checkpoint-key", required_argument, 0, O_KEY}, {"input", required_argument, 0, O_INPUT},
        {"labels", required_argument, 0, O_LABELS}, {"head-init", required_argument, 0, O_HEADINIT},
        {"classes", required_argument, 0, O_CLASSES}, {"out", required_argument, 0, O_OUT},
        {"optimizer", required_argument, 0, O_OPT}, {"lr", required_argument, 0, O_LR},
        {"base-lr", required_argument, 0, O_BASELR}, {"no-lr-scaling", no_argument, 0, O_NOSCALE},
        {"min-lr", required_argument, 0, O_MINLR}, {"momentum", required_argument, 0, O_MOM},
        {"weight-decay", required_argument, 0, O_WD}, {"weight-decay-end", required_argument, 0, O_WDEND}, {"layer-decay", required_argument, 0, O_LD},
        {"clip", required_argument, 0, O_CLIP}, {"schedule", required_argument, 0, O_SCHED},
        {"warmup-steps", required_argument, 0, O_WARM}, {"steps", required_argument, 0, O_STEPS},
        {"epochs", required_argument, 0, O_EPOCHS}, {"batch", required_argument, 0, O_BATCH},
        {"micro-batch", required_argument, 0, O_MICRO}, {"drop-path", required_argument, 0, O_DROP},
        {"no-augment", no_argument, 0, O_NOAUG}, {"no-shuffle", no_argument, 0, O_NOSHUF},
        {"seed", required_argument, 0, O_SEED}, {"threads", required_argument, 0, O_THREADS},
        {"reduce", required_argument, 0, O_REDUCE}, {"recompute", no_argument, 0, O_RECOMP},
        {"checkpoint-every", required_argument, 0, O_CKPT}, {"resume", no_argument, 0, O_RESUME},
        {"kernels", required_argument, 0, O_KERNELS}, {"precision", required_argument, 0, O_PRECISION}, {"manifest", required_argument, 0, O_MANIFEST},
        {"size", required_argument, 0, O_SIZE}, {"fraction", required_argument, 0, O_FRACTION},
        {"seeds", required_argument, 0, O_SEEDS}, {"task", required_argument, 0, O_TASK},
        {"collect", required_argument, 0, O_COLLECT}, {"probe", required_argument, 0, O_PROBE},
        {"balanced", no_argument, 0, O_BALANCED}, {"head", required_argument, 0, O_HEAD},
        {"head-dropout", required_argument, 0, O_HEADDROP}, {"card", required_argument, 0, O_CARD},
        {"level", required_argument, 0, O_LEVEL}, {"tile", required_argument, 0, O_TILE},
        {"crop", required_argument, 0, O_CROP}, {"force", no_argument, 0, O_FORCE},
        {"cache", required_argument, 0, O_CACHE}, {"verify", no_argument, 0, O_VERIFY},
        {"profile", no_argument, 0, O_PROFILE},
        {"prefetch", required_argument, 0, O_PREFETCH}, {"cache-memory", required_argument, 0, O_CACHEMEM},
        {0, 0, 0, 0}};
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
        case O_WDEND: if ((rc = pl_cli_option_double(cmd, "--weight-decay-end", optarg, 0, 10, &a.o.weight_decay_end))) return rc; break;
        case O_LD: if ((rc = pl_cli_option_double(cmd, "--layer-decay", optarg, 1e-6, 1, &a.o.optim.layer_decay))) return rc; break;
        case O_CLIP: if ((rc = pl_cli_option_double(cmd, "--clip", optarg, 0, 1e12, &a.o.optim.clip))) return rc; break;
        case O_SCHED:
            if ((rc = pl_cli_option_choice(cmd, "--schedule", optarg, schedules, 2, &choice))) return rc;
            a.o.schedule_constant = choice;
            break;
        case O_WARM: if ((rc = pl_cli_option_long(cmd, "--warmup-steps", optarg, 0, 1L << 40, &lv))) return rc; a.o.warmup_steps = lv; break;
        case O_STEPS: if ((rc = pl_cli_option_long(cmd, "--steps", optarg, 1, INT_MAX, &lv))) return rc; a.o.steps = lv; break;
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
        case O_FORCE: a.force = 1; break;
        case O_CACHE: a.cache = optarg; break;
        case O_VERIFY: a.verify = 1; break;
        case O_PROFILE: a.profile = 1; break;
        case O_PREFETCH:
            if ((rc = pl_cli_option_int(cmd, "--prefetch", optarg, 1, PL_BATCH_SLOTS_MAX - 1, &a.o.prefetch))) return rc;
            break;
        case O_CACHEMEM:
            if ((rc = pl_cli_option_double(cmd, "--cache-memory", optarg, 1, 1 << 24, &a.cache_memory))) return rc;
            break;
        case O_KERNELS: a.kernels = optarg; break;
        case O_PRECISION:
            if (pl_precision_parse(optarg, &a.precision) != PL_OK)
                return pl_cli_usage_error(cmd, "--precision must be fp32 or bf16, not '%s'", optarg);
            break;
        case O_MANIFEST: a.manifest = optarg; break;
        case O_SIZE: if ((rc = pl_cli_option_int(cmd, "--size", optarg, 8, 8192, &a.size))) return rc; break;
        case O_FRACTION: if ((rc = parse_fractions(optarg, &a))) return rc; break;
        case O_SEEDS: if ((rc = pl_cli_option_int(cmd, "--seeds", optarg, 1, 1000, &a.seeds))) return rc; break;
        case O_TASK: if ((rc = pl_cli_option_int(cmd, "--task", optarg, 0, 1000000, &a.task))) return rc; break;
        case O_COLLECT: a.collect = optarg; break;
        case O_PROBE: a.probe = optarg; break;
        case O_BALANCED: a.o.balanced = 1; break;
        case O_CARD: a.card = optarg; break;
        case O_LEVEL: {
            static const char *const levels[] = {"fov", "tiles", "cells"};
            if ((rc = pl_cli_option_choice(cmd, "--level", optarg, levels, 3, &a.level))) return rc;
            break;
        }
        case O_TILE: if ((rc = pl_cli_option_int(cmd, "--tile", optarg, 8, 65536, &a.tile))) return rc; break;
        case O_CROP: if ((rc = pl_cli_option_int(cmd, "--crop", optarg, 8, 65536, &a.crop))) return rc; break;
        case O_HEAD: {
            static const char *const heads[] = {"linear", "mlp"};
            if ((rc = pl_cli_option_choice(cmd, "--head", optarg, heads, 2, &a.head_mlp))) return rc;
            break;
        }
        case O_HEADDROP:
            if ((rc = pl_cli_option_double(cmd, "--head-dropout", optarg, 0, 0.99, &dv))) return rc;
            a.head_dropout = (float)dv;
            break;
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return pl_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!a.collect) {
        if (!a.model) return pl_cli_usage_error(cmd, "--model is required");
        if (!a.manifest && (!a.input || !a.labels))
            return pl_cli_usage_error(cmd, "give --manifest M.tsv (with --model CARD.json), or --input X.npy and --labels Y.npy");
        if (a.manifest && (a.input || a.labels)) return pl_cli_usage_error(cmd, "--manifest excludes --input/--labels");
        if (a.cache && !a.manifest) return pl_cli_usage_error(cmd, "--cache keeps a manifest's prepared samples: give --manifest");
        if (a.verify && !a.cache) return pl_cli_usage_error(cmd, "--verify goes with --cache DIR");
        size_t ml = strlen(a.model);   // load_model's rule: a model ending in .json is a card
        if (a.card && ml > 5 && strcmp(a.model + ml - 5, ".json") == 0)
            return pl_cli_usage_error(cmd, "--card %s goes with --model CHECKPOINT, not with the card --model %s", a.card,
                                      a.model);
        if (!a.o.out_dir) return pl_cli_usage_error(cmd, "--out is required");
        if (a.o.balanced && !a.o.shuffle) return pl_cli_usage_error(cmd, "--balanced draws a random order; drop --no-shuffle");
        if (a.force && a.o.resume) return pl_cli_usage_error(cmd, "--force starts over, --resume continues: give one");
        // the run counts its epochs (images drawn / training images) in an int: bound the images drawn up front
        const long long max_drawn = 1LL << 30;
        if (a.o.steps > 0 && (long long)a.o.steps * a.o.batch > max_drawn)
            return pl_cli_usage_error(cmd, "--steps %lld with --batch %d draws %lld images; at most %lld (2^30) are "
                                      "supported: give fewer --steps or a smaller --batch (or --epochs)",
                                      (long long)a.o.steps, a.o.batch, (long long)a.o.steps * a.o.batch, max_drawn);
        int tasks = a.n_fractions * a.seeds;
        if (a.task >= 0 && tasks == 1)
            return pl_cli_usage_error(cmd, "--task %d needs a grid (several --fraction values or --seeds > 1)", a.task);
        if (a.task >= tasks)
            return pl_cli_usage_error(cmd, "--task %d is out of range 0..%d (%d fraction%s x %d seed%s)", a.task, tasks - 1,
                                      a.n_fractions, a.n_fractions > 1 ? "s" : "", a.seeds, a.seeds > 1 ? "s" : "");
    }
    // --kernels is a command-line choice everywhere (also with --collect, which computes nothing)
    if ((rc = pl_cli_option_kernels(cmd, a.kernels, a.precision, &a.backend))) return rc;
    if (!a.collect) {   // --out DIR is made with its missing parents (docs/guide.md "Output paths"): may it be?
        int rank = 0;
        if (pl_mpi_active() && PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)) != PL_OK) return PL_EXIT_ABORT;
        if (pl_mpi_agree(rank == 0 ? pl_output_dir_check(a.o.out_dir, "--out") : PL_OK, "checking --out") != PL_OK) {
            if (rank != 0) pl_error_clear();   // rank 0 prints the reason
            return PL_EXIT_FAIL;
        }
    }
    if (pl_mpi_agree(ft_check_outputs(&a), "checking the outputs") != PL_OK) {   // every rank alike, before any compute
        int rank = 0;
        if (pl_mpi_active() && MPI_Comm_rank(MPI_COMM_WORLD, &rank) == MPI_SUCCESS && rank != 0) pl_error_clear();
        return PL_EXIT_FAIL;
    }
    int partial = 0;
    PlStatus st = finetune_run(&a, &partial);   // sets partial: not in the same expression
    return pl_cli_exit_status(st, partial);
}
