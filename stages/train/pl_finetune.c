// The fine-tuning loop over in-memory data (see pl_finetune.h).
#include "pl_finetune.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_log.h"
#include "pl_finetune_eval.h"
#include "pl_mpi.h"
#include "pl_rng.h"
#include "pl_safetensors.h"
#include "pl_train_augment.h"
#include "pl_train_ckpt.h"
#include "pl_train_classify.h"
#include "pl_train_step.h"
#include "pl_trainer.h"


void pl_finetune_options_default(PlFinetuneOptions *o) {
    memset(o, 0, sizeof *o);
    pl_optim_options_default(&o->optim);
    o->base_lr = 1e-4;
    o->epochs = 10;
    o->batch = 32;
    o->augment = o->shuffle = 1;
    o->checkpoint_every = 100;
    o->weight_decay_end = -1.0;
}

double pl_finetune_peak_lr(const PlFinetuneOptions *o) {
    if (o->lr > 0) return o->lr;
    return o->no_lr_scaling ? o->base_lr : o->base_lr * o->batch / 256.0;
}

typedef struct FetchCtx {
    const PlFinetuneData *d;
    const PlFinetuneOptions *o;
    int32_t *perms;            // (nperms, n) row orders of epochs perm_epoch0 ... (4 bytes a row: n < 2^31)
    int64_t perm_epoch0;
    int nperms;
    float *scratch;            // (C, H, W) augmentation scratch (one prepare runs at a time)
    float *sample;             // (C, H, W) an image read from d->samples before its augmentation
    double *cw;                // --balanced: cumulative sampling weights (n), 1 / images of the row's class
    PlAugmentOptions aug;
    int first, count;          // this rank's positions [first, first + count) of every global batch
    int slots;                 // the ring: (count + 1, C, H, W) images, (count + 1, classes) targets per slot
    float *x[PL_BATCH_SLOTS_MAX], *t[PL_BATCH_SLOTS_MAX];
    int32_t *y[PL_BATCH_SLOTS_MAX];
    uint64_t *keys[PL_BATCH_SLOTS_MAX];
    PlTrainBatch batch[PL_BATCH_SLOTS_MAX];
} FetchCtx;

static void ensure_perms(FetchCtx *f, int64_t step) {
    const int64_t n = f->d->n, B = f->o->batch;
    int64_t e0 = step * B / n;
    if (!f->o->shuffle || (f->perm_epoch0 == e0 && f->nperms > 0 && f->perms[0] >= 0)) return;
    f->perm_epoch0 = e0;
    for (int k = 0; k < f->nperms; k++) {
        int32_t *p = f->perms + (size_t)k * n;
        PlRng r;
        pl_rng_seed(&r, pl_rng_mix(pl_rng_mix(f->o->seed, 0x5eed5u), (uint64_t)(e0 + k)));
        if (f->cw) {   // torch WeightedRandomSampler(1 / class count, n, replacement=True): inverse CDF
            for (int64_t i = 0; i < n; i++) {
                double u = pl_rng_uniform(&r) * f->cw[n - 1];
                int64_t lo = 0, hi = n - 1;
                while (lo < hi) {
                    int64_t mid = (lo + hi) / 2;
                    if (f->cw[mid] > u) hi = mid; else lo = mid + 1;
                }
                p[i] = (int32_t)lo;
            }
            continue;
        }
        for (int64_t i = 0; i < n; i++) p[i] = (int32_t)i;
        pl_rng_shuffle_i32(&r, p, n);
    }
}

// Cumulative class-balanced weights of the set's rows (each class gets the same total weight).
static PlStatus balanced_weights(const PlFinetuneData *d, double **out) {
    *out = NULL;
    if (!d->y) return PL_FAIL(PL_ERR_ARG, "--balanced needs class ids (multi-hot targets have no single class)");
    int64_t *count = pl_calloc((size_t)d->classes, sizeof(int64_t));
    double *cw = pl_malloc((size_t)d->n * sizeof(double));
    if (!count || !cw) {
        free(count);
        free(cw);
        return PL_ERR_NOMEM;
    }
    for (int64_t i = 0; i < d->n; i++) count[d->y[pl_finetune_row(d, i)]]++;
    double acc = 0.0;
    for (int64_t i = 0; i < d->n; i++) {
        acc += 1.0 / (double)count[d->y[pl_finetune_row(d, i)]];
        cw[i] = acc;
    }
    free(count);
    *out = cw;
    return PL_OK;
}

// PlBatchSource.prepare: this rank's samples of global batch `step` (shuffled order, augmentation) into `slot`.
static PlStatus fetch_prepare(void *ctx, int64_t step, int slot) {
    FetchCtx *f = ctx;
    const PlFinetuneData *d = f->d;
    const size_t chw = (size_t)d->C * d->H * d->W;
    ensure_perms(f, step);
    float *x = f->x[slot], *targets = f->t[slot];
    int32_t *y = f->y[slot];
    uint64_t *keys = f->keys[slot];
    for (int i = 0; i < f->count; i++) {
        int64_t pos = step * f->o->batch + f->first + i, epoch = pos / d->n, j = pos % d->n;
        int64_t row = pl_finetune_row(d, f->o->shuffle ? f->perms[(size_t)(epoch - f->perm_epoch0) * d->n + j] : j);
        float *dst = x + (size_t)i * chw;
        const float *src = d->x ? d->x + (size_t)row * chw : NULL;
        if (!d->x) {   // from the cache: straight into the slot, or into the sample buffer the augmentation reads
            float *into = f->o->augment ? f->sample : dst;
            PL_TRY(d->samples->read(d->samples->ctx, row, d->samples->lanes - 1, into));
            src = into;
        }
        if (f->o->augment)
            pl_augment_image(&f->aug, pl_rng_mix(pl_rng_mix(f->o->seed, (uint64_t)epoch), (uint64_t)row), src, d->C,
                             d->H, d->W, dst, f->scratch);
        else if (src != dst)
            memcpy(dst, src, chw * sizeof(float));
        if (d->y) y[i] = d->y[row];
        if (d->targets)
            memcpy(targets + (size_t)i * d->classes, d->targets + (size_t)row * d->classes, (size_t)d->classes * sizeof(float));
        keys[i] = pl_rng_mix(pl_rng_mix(f->o->seed, 0xd0d0u), (uint64_t)pos);
    }
    return PL_OK;
}

static const void *fetch_batch(void *ctx, int slot) { return &((FetchCtx *)ctx)->batch[slot]; }

// The source's buffers: the sample orders, the scratch, the ring's slots, and --balanced's weights.
static PlStatus fetch_init(FetchCtx *f, const PlFinetuneData *d, const PlFinetuneOptions *o, int first, int count) {
    memset(f, 0, sizeof *f);
    f->d = d;
    f->o = o;
    f->perm_epoch0 = -1;
    f->first = first;
    f->count = count;
    f->nperms = (int)(o->batch / d->n) + 2;
    pl_augment_options_default(&f->aug);
    const size_t n = (size_t)count + 1, chw = (size_t)d->C * d->H * d->W;
    if (d->n > INT32_MAX)
        return PL_FAIL(PL_ERR_LIMIT, "%lld training images; at most %d are supported", (long long)d->n, INT32_MAX);
    f->perms = pl_malloc((size_t)f->nperms * d->n * sizeof *f->perms);
    f->scratch = pl_malloc(chw * sizeof(float));
    f->sample = d->x ? NULL : pl_malloc(chw * sizeof(float));
    if (!f->perms || !f->scratch || (!d->x && !f->sample)) return PL_ERR_NOMEM;
    f->perms[0] = -1;
    f->slots = o->prefetch < 1 ? 2 : o->prefetch + 1 > PL_BATCH_SLOTS_MAX ? PL_BATCH_SLOTS_MAX : o->prefetch + 1;
    for (int k = 0; k < f->slots; k++) {
        f->x[k] = pl_malloc(n * chw * sizeof(float));
        f->y[k] = pl_malloc(n * sizeof(int32_t));
        f->t[k] = pl_malloc(n * (size_t)d->classes * sizeof(float));
        f->keys[k] = pl_malloc(n * sizeof(uint64_t));
        if (!f->x[k] || !f->y[k] || !f->t[k] || !f->keys[k]) return PL_ERR_NOMEM;
        f->batch[k] = (PlTrainBatch){f->x[k], d->y ? f->y[k] : NULL, d->targets ? f->t[k] : NULL, f->keys[k]};
    }
    return o->balanced ? balanced_weights(d, &f->cw) : PL_OK;
}

static void fetch_free(FetchCtx *f) {
    for (int k = 0; k < f->slots; k++) {
        free(f->x[k]);
        free(f->y[k]);
        free(f->t[k]);
        free(f->keys[k]);
    }
    free(f->scratch);
    free(f->sample);
    free(f->perms);
    free(f->cw);
    memset(f, 0, sizeof *f);
}

// ---- checkpoints: p/<name>, m/<name>, v/<name> + metadata (step, args, init and data hashes) ----

static uint64_t hash_data_into(const PlFinetuneData *d, uint64_t h) {
    const size_t chw = (size_t)d->C * d->H * d->W;
    if (!d->x) h = pl_rng_hash_bytes(&d->samples->digest, sizeof d->samples->digest, h);   // what the cache serves
    for (int64_t i = 0; i < d->n; i++) {
        int64_t r = pl_finetune_row(d, i);
        if (d->x) h = pl_rng_hash_bytes(d->x + (size_t)r * chw, chw * sizeof(float), h);
        else h = pl_rng_hash_bytes(&r, sizeof r, h);
        if (d->y) h = pl_rng_hash_bytes(d->y + r, sizeof(int32_t), h);
        if (d->targets) h = pl_rng_hash_bytes(d->targets + (size_t)r * d->classes, (size_t)d->classes * sizeof(float), h);
    }
    return h;
}

static uint64_t hash_data(const PlFinetuneData *d) { return hash_data_into(d, PL_RNG_FNV_OFFSET); }

static PlStatus write_weights(PlVitTrain *t, const char *dir) {
    const PlVitConfig *c = &pl_vit_train_spec(t)->cfg;
    char path[4096], heads[16], patch[16];
    snprintf(heads, sizeof heads, "%d", c->heads);
    snprintf(patch, sizeof patch, "%d", c->patch);
    const char *meta[] = {"heads", heads, "patch_size", patch, "arch", "protloc_finetuned", NULL};
    for (int head = 0; head < 2; head++) {
        PlWeights w;
        PL_TRY(pl_vit_train_export(t, head, &w));
        snprintf(path, sizeof path, "%s/%s", dir, head ? "head.safetensors" : "backbone.safetensors");
        PlStatus st = pl_safetensors_write(path, &w, head ? NULL : meta);
        pl_weights_free(&w);
        if (st != PL_OK) return pl_error_wrap("writing %s", path);
    }
    return PL_OK;
}

void pl_finetune_result_free(PlFinetuneResult *r) {
    free(r->epoch_loss);
    free(r->epoch_val_f1);
    free(r->per_class_f1);
    free(r->confusion);
    memset(r, 0, sizeof *r);
}

typedef struct EpochHook {
    PlVitTrain *t;
    const PlFinetuneData *val;
    const PlFinetuneOptions *o;
    int rank;
} EpochHook;

// The trainer's epoch-end hook: with validation, the epoch's macro F1 and (when better) a copy of the weights.
static PlStatus epoch_validate(void *ctx, int e, PlTrainState *fs) {
    const EpochHook *h = ctx;
    if (!h->val) {
        fs->best_epoch = e + 1;
        return PL_OK;
    }
    double f1, acc;
    PL_TRY(pl_finetune_evaluate(h->t, h->o->pool, h->val, &f1, &acc, NULL, NULL));
    fs->epoch_val_f1[e] = f1;
    if (fs->best_epoch == 0 || f1 > fs->best_val_f1) {
        fs->best_epoch = e + 1;
        fs->best_val_f1 = f1;
        memcpy(fs->best, pl_vit_train_params(h->t), pl_vit_train_param_floats(h->t) * sizeof(float));
    }
    if (!h->o->quiet && h->rank == 0)
        pl_log_info("epoch %d: loss %.5f, validation macro F1 %.4f (accuracy %.4f)%s", e + 1, fs->epoch_loss[e], f1,
                    acc, fs->best_epoch == e + 1 ? " (best so far)" : "");
    return PL_OK;
}

static PlStatus finish_scores(PlVitTrain *t, const PlFinetuneData *train, const PlFinetuneData *test,
                              const PlFinetuneOptions *o, PlFinetuneResult *r) {
    const PlFinetuneData *e = test ? test : train;
    r->eval_split = test ? "test" : "train";
    r->n_eval = e->n;
    r->per_class_f1 = pl_calloc((size_t)e->classes, sizeof(double));
    if (e->y) r->confusion = pl_calloc((size_t)e->classes * (e->classes + 1), sizeof(int64_t));
    if (!r->per_class_f1 || (e->y && !r->confusion)) return PL_ERR_NOMEM;
    return pl_finetune_evaluate(t, o->pool, e, &r->eval_macro_f1, &r->eval_accuracy, r->per_class_f1, r->confusion);
}

PlStatus pl_finetune_run(PlVitTrain *t, const PlFinetuneData *d, const PlFinetuneData *val, const PlFinetuneData *test,
                         const PlFinetuneOptions *o, PlFinetuneResult *r) {
    memset(r, 0, sizeof *r);
    const PlVitTrainSpec *sp = pl_vit_train_spec(t);
    if (d->n < 1) return PL_FAIL(PL_ERR_ARG, "no training images");
    if (d->C != sp->cfg.in_chans || d->H != sp->height || d->W != sp->width)
        return PL_FAIL(PL_ERR_ARG, "images are (%d, %d, %d), the trainer was built for (%d, %d, %d)", d->C, d->H, d->W,
                       sp->cfg.in_chans, sp->height, sp->width);
    if (val && val->n < 1) val = NULL;
    if (test && test->n < 1) test = NULL;
    int rank = 0;
    if (o->use_mpi) PL_TRY(PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
    // --epochs E: enough fixed-size global batches to cover E passes over the data (the last batch of a pass
    // continues into the next pass, so every step has the same batch size and micro-batch decomposition)
    const int64_t total = o->steps > 0 ? o->steps : ((int64_t)o->epochs * d->n + o->batch - 1) / o->batch;
    r->peak_lr = pl_finetune_peak_lr(o);
    uint64_t init_hash =
        pl_rng_hash_bytes(pl_vit_train_params(t), pl_vit_train_param_floats(t) * sizeof(float), PL_RNG_FNV_OFFSET);
    uint64_t data_hash = hash_data(d);
    if (val) data_hash = hash_data_into(val, data_hash);

    PlOptim *op = NULL;
    PlTrainStep *step = NULL;
    FetchCtx f = {0};
    PlTrainState fs = {0};
    fs.cap_epochs = (int)((total * o->batch) / d->n + 2);
    fs.epoch_loss = pl_calloc((size_t)fs.cap_epochs, sizeof(double));
    if (val) fs.epoch_val_f1 = pl_calloc((size_t)fs.cap_epochs, sizeof(double));
    if (val) fs.best = pl_malloc(pl_vit_train_param_floats(t) * sizeof(float));
    if (fs.best) memcpy(fs.best, pl_vit_train_params(t), pl_vit_train_param_floats(t) * sizeof(float));   // no garbage
    PlStatus st = fs.epoch_loss && (!val || (fs.epoch_val_f1 && fs.best)) ? PL_OK : PL_ERR_NOMEM;
    if (st == PL_OK) st = pl_optim_create(t, &o->optim, &op);
    PlTrainStepOptions so = {.global_batch = o->batch, .allreduce = o->allreduce, .use_mpi = o->use_mpi,
                             .profile = o->profile};
    PlTrainObjective obj;
    pl_train_classify_objective(t, &obj);
    if (st == PL_OK) st = pl_train_step_create(&obj, o->pool, &so, &step);
    if (st == PL_OK) {
        int first = 0, count = 0;
        pl_train_step_rank_samples(step, &first, &count);
        st = fetch_init(&f, d, o, first, count);
    }
    PlTrainerResult tr = {0};
    if (st == PL_OK) {
        const PlBatchSource src = {&f, fetch_prepare, fetch_batch, f.slots};
        EpochHook eh = {t, val, o, rank};
        const PlTrainerHooks hooks = {.ctx = &eh, .epoch_end = epoch_validate};
        const PlTrainerOptions to = {
            .out_dir = o->out_dir, .total_steps = total, .batch = o->batch, .epoch_samples = d->n,
            .peak_lr = r->peak_lr, .min_lr = o->min_lr, .warmup_steps = o->warmup_steps,
            .schedule_constant = o->schedule_constant, .wd_schedule = o->weight_decay_end >= 0,
            .wd_base = o->optim.weight_decay, .wd_final = o->weight_decay_end, .checkpoint_every = o->checkpoint_every, .resume = o->resume,
            .keys = {.args_text = o->args_text, .init_hash = init_hash, .data_hash = data_hash, .total_steps = total},
            .stop = o->stop, .pool = o->pool, .use_mpi = o->use_mpi, .quiet = o->quiet,
            .profile = o->profile};
        st = pl_trainer_run(t, step, op, &src, o->reader, &hooks, &to, &fs, &tr);
    } else if (o->use_mpi) {
        st = pl_mpi_agree(st, "setting up the training");
    }
    r->start_step = tr.start_step;
    r->first_loss = tr.first_loss;
    r->last_loss = tr.last_loss;
    r->img_per_s = tr.img_per_s;
    r->steps = total;
    if (st == PL_OK && fs.best) memcpy(pl_vit_train_params(t), fs.best, pl_vit_train_param_floats(t) * sizeof(float));
    if (st == PL_OK) st = finish_scores(t, d, test, o, r);
    if (st == PL_OK && rank == 0) st = write_weights(t, o->out_dir);
    if (o->use_mpi) st = pl_mpi_agree(st, "writing the fine-tuned weights");
    r->n_epochs = fs.n_epochs;
    r->epoch_loss = fs.epoch_loss;
    r->epoch_val_f1 = fs.epoch_val_f1;
    r->best_epoch = fs.best_epoch;
    r->best_val_f1 = val ? fs.best_val_f1 : NAN;
    free(fs.best);
    fetch_free(&f);
    pl_train_step_destroy(step);
    pl_optim_destroy(op);
    return st;
}
