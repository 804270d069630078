// DINO self-supervised pretraining over fixed views on the training loop (see pl_pretrain.h).
#include "pl_pretrain.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_rng.h"
#include "pl_train_augment.h"
#include "pl_train_ckpt.h"

void pl_pretrain_freeze(PlOptim *op, int64_t step, int64_t steps_per_epoch, int64_t freeze_last_layer,
                        int norm_last_layer) {
    const int64_t epoch = step / (steps_per_epoch > 0 ? steps_per_epoch : 1);
    pl_optim_set_frozen_matching(op, "last_layer", epoch < freeze_last_layer, NULL);
    if (norm_last_layer) pl_optim_set_frozen_matching(op, "last_layer.weight_g", 1, NULL);
}

uint64_t pl_pretrain_view_key(uint64_t seed, int64_t epoch, int64_t row) {
    return pl_rng_mix(pl_rng_mix(pl_rng_mix(seed, 0xa06u), (uint64_t)epoch), (uint64_t)row);
}

void pl_pretrain_result_free(PlPretrainResult *r) {
    free(r->epoch_loss);
    free(r->epoch_entropy);
    free(r->epoch_temp);
    free(r->epoch_knn);
    memset(r, 0, sizeof *r);
}

// ---- the batch source: this rank's images of a step, their views copied into a slot, one drop-path key a view ----

typedef struct ViewSource {
    const PlPretrainViews *v;
    const PlPretrainOptions *o;
    int64_t steps_per_epoch;
    int first, count, slots;
    int32_t *perm;             // (n) the order of epoch perm_epoch (shuffle only)
    int64_t perm_epoch;
    float *sample, *scratch;   // images: one image read from the samples; the augmentation's scratch
    float *g[PL_BATCH_SLOTS_MAX], *l[PL_BATCH_SLOTS_MAX];           // (count, 2 | n_local, C, H, W)
    uint64_t *gk[PL_BATCH_SLOTS_MAX], *lk[PL_BATCH_SLOTS_MAX];      // (count, 2 | n_local)
    PlDinoBatch batch[PL_BATCH_SLOTS_MAX];
} ViewSource;

// Image `row`'s views for `epoch`: DINO's multi-crop augmentation keyed by (seed, epoch, row), each view
// standardised per channel.
static PlStatus views_augment(ViewSource *s, int64_t epoch, int64_t row, float *gd, float *ld) {
    const PlPretrainViews *v = s->v;
    const PlPretrainImages *im = v->images;
    const size_t chw = (size_t)v->C * im->H * im->W;
    const float *src = im->x ? im->x + (size_t)row * chw : s->sample;
    if (!im->x) PL_TRY(im->samples->read(im->samples->ctx, row, im->samples->lanes - 1, s->sample));
    const uint64_t key = pl_pretrain_view_key(s->o->seed, epoch, row);
    pl_dino_augment_views(&im->aug, key, src, v->C, im->H, im->W, im->rgb, gd, v->n_local ? ld : NULL, s->scratch);
    for (int k = 0; k < 2; k++) pl_standardise_channels(gd + (size_t)k * v->C * v->Hg * v->Wg, v->C, v->Hg, v->Wg);
    for (int k = 0; k < v->n_local; k++)
        pl_standardise_channels(ld + (size_t)k * v->C * v->Hl * v->Wl, v->C, v->Hl, v->Wl);
    return PL_OK;
}

static PlStatus views_prepare(void *ctx, int64_t step, int slot) {
    ViewSource *s = ctx;
    const PlPretrainViews *v = s->v;
    const int B = s->o->batch;
    const int64_t epoch = step / s->steps_per_epoch, it = step % s->steps_per_epoch;
    if (s->o->shuffle && s->perm_epoch != epoch) {   // epoch e's order: a permutation from (seed, e)
        PlRng r;
        pl_rng_seed(&r, pl_rng_mix(pl_rng_mix(s->o->seed, 0xd1a0u), (uint64_t)epoch));
        for (int64_t i = 0; i < v->n; i++) s->perm[i] = (int32_t)i;
        pl_rng_shuffle_i32(&r, s->perm, v->n);
        s->perm_epoch = epoch;
    }
    const size_t gsz = (size_t)v->C * v->Hg * v->Wg, lsz = (size_t)v->C * v->Hl * v->Wl;
    const uint64_t key0 = pl_rng_mix(pl_rng_mix(s->o->seed, 0xd0d0u), (uint64_t)step);
    for (int i = 0; i < s->count; i++) {
        const int64_t place = s->first + i, j = it * B + place;   // its place in the global batch; in the epoch
        const int64_t row = s->o->shuffle ? s->perm[j] : j;
        float *gd = s->g[slot] + (size_t)i * 2 * gsz, *ld = s->l[slot] + (size_t)i * v->n_local * lsz;
        if (v->images) {
            PL_TRY(views_augment(s, epoch, row, gd, ld));
        } else {
            memcpy(gd, v->globals + (size_t)row * 2 * gsz, 2 * gsz * sizeof(float));
            if (v->n_local)
                memcpy(ld, v->locals + (size_t)row * v->n_local * lsz, (size_t)v->n_local * lsz * sizeof(float));
        }
        const uint64_t key = pl_rng_mix(key0, (uint64_t)place);
        for (int k = 0; k < 2; k++) s->gk[slot][i * 2 + k] = pl_rng_mix(key, (uint64_t)k);
        for (int k = 0; k < v->n_local; k++) s->lk[slot][i * v->n_local + k] = pl_rng_mix(key, (uint64_t)(2 + k));
    }
    return PL_OK;
}

static const void *views_batch(void *ctx, int slot) { return &((ViewSource *)ctx)->batch[slot]; }

static void views_free(ViewSource *s) {
    for (int k = 0; k < PL_BATCH_SLOTS_MAX; k++) {
        free(s->g[k]);
        free(s->l[k]);
        free(s->gk[k]);
        free(s->lk[k]);
    }
    free(s->perm);
    free(s->sample);
    free(s->scratch);
    memset(s, 0, sizeof *s);
}

static PlStatus views_init(ViewSource *s, const PlPretrainViews *v, const PlPretrainOptions *o, int64_t spe,
                           int first, int count, int slots) {
    memset(s, 0, sizeof *s);
    s->v = v;
    s->o = o;
    s->steps_per_epoch = spe;
    s->first = first;
    s->count = count;
    s->slots = slots;
    s->perm_epoch = -1;
    if (v->n > INT32_MAX) return PL_FAIL(PL_ERR_LIMIT, "%lld images; at most %d are supported", (long long)v->n,
                                         INT32_MAX);
    s->perm = pl_malloc(((size_t)v->n + 1) * sizeof *s->perm);
    if (!s->perm) return PL_ERR_NOMEM;
    if (v->images) {
        const PlPretrainImages *im = v->images;
        s->scratch = pl_malloc((pl_dino_augment_scratch_floats(&im->aug, v->C, im->H, im->W) + 1) * sizeof(float));
        s->sample = im->x ? NULL : pl_malloc(((size_t)v->C * im->H * im->W + 1) * sizeof(float));
        if (!s->scratch || (!im->x && !s->sample)) return PL_ERR_NOMEM;
    }
    const size_t n = (size_t)count + 1, gsz = (size_t)v->C * v->Hg * v->Wg, lsz = (size_t)v->C * v->Hl * v->Wl;
    for (int k = 0; k < slots; k++) {
        s->g[k] = pl_malloc(n * 2 * gsz * sizeof(float));
        s->gk[k] = pl_malloc(n * 2 * sizeof(uint64_t));
        s->l[k] = pl_malloc(n * ((size_t)v->n_local * lsz + 1) * sizeof(float));
        s->lk[k] = pl_malloc(n * ((size_t)v->n_local + 1) * sizeof(uint64_t));
        if (!s->g[k] || !s->gk[k] || !s->l[k] || !s->lk[k]) return PL_ERR_NOMEM;
        s->batch[k] = (PlDinoBatch){.globals = s->g[k], .locals = v->n_local ? s->l[k] : NULL, .global_keys = s->gk[k],
                                    .local_keys = v->n_local ? s->lk[k] : NULL};
    }
    return PL_OK;
}

// ---- the after-step hook: DINO's center and teacher update, then the next step's freeze ----

typedef struct Hook {
    PlTrainDino *d;
    PlOptim *op;
    PlVitTrain *teacher;
    const PlPretrainOptions *o;
    const PlPretrainViews *v;
    int64_t steps_per_epoch;
    int K, rank;
    double entropy_sum;         // this epoch's steps so far
    int64_t entropy_steps;
    float *epoch_entropy, *epoch_temp, *epoch_knn;   // (cap epochs), saved in the checkpoints
    int collapse_warnings, last_collapse;   // epochs that ended collapsed; the last epoch's state (0, 1, 2)
} Hook;

static PlStatus after_step(void *ctx, int64_t step, const float *stats) {
    Hook *h = ctx;
    PL_TRY(pl_train_dino_after_step(h->d, step, stats));
    h->entropy_sum += pl_train_dino_teacher_entropy(h->d);
    h->entropy_steps++;
    pl_pretrain_freeze(h->op, step + 1, h->steps_per_epoch, h->o->freeze_last_layer, h->o->norm_last_layer);
    return PL_OK;
}

// Epoch e ended: its mean target entropy and temperature, the collapse check, and (every eval_every epochs, rank 0)
// the teacher's kNN macro F1.
static PlStatus epoch_end(void *ctx, int e, PlTrainState *fs) {
    Hook *h = ctx;
    (void)fs;
    const double H = h->entropy_steps ? h->entropy_sum / (double)h->entropy_steps : NAN;
    h->entropy_sum = 0.0;
    h->entropy_steps = 0;
    h->epoch_entropy[e] = H == H ? (float)H : -1.0f;   // -1: none (a checkpoint holds finite values only)
    h->epoch_temp[e] = (float)pl_train_dino_teacher_temp(h->d);
    h->epoch_knn[e] = -1.0f;                            // -1: not evaluated
    const int c = pl_pretrain_collapse(H, h->K);
    if (c) h->collapse_warnings++;
    // warned when the targets collapse, and every 10th epoch while they stay collapsed
    const int warn = c && (c != h->last_collapse || (e + 1) % 10 == 0);
    h->last_collapse = c;
    if (warn && h->rank == 0)
        pl_log_warn("epoch %d: the teacher's targets are near %s (mean entropy %.3f nats, log(out_dim) = %.3f): DINO "
                    "has collapsed or is collapsing; DINO's remedies: %s", e + 1, c == 1 ? "uniform" : "one prototype",
                    H, log((double)h->K),
                    c == 1 ? "a lower teacher temperature (--teacher-temp, --warmup-teacher-temp), a slower center "
                             "(--center-momentum nearer 1), a lower --lr or a larger --batch"
                           : "a higher teacher temperature, check the centering (--center-momentum below 1), a larger "
                             "--batch");
    const PlPretrainOptions *o = h->o;
    if (h->rank == 0 && o->eval_every > 0 && o->labels && (e + 1) % o->eval_every == 0) {
        const PlPretrainImageSet *im = o->eval_images;
        double best, at20;
        int k;
        PL_TRY(pl_pretrain_knn(h->teacher, im, h->v->Hg, o->labels, o->pool, &best, &k, &at20));
        h->epoch_knn[e] = best == best ? (float)best : -1.0f;
        if (!o->quiet && best == best)
            pl_log_info("epoch %d: teacher kNN macro F1 %.4f (best k %d), %.4f at k = 20", e + 1, best, k, at20);
    }
    return PL_OK;
}

static void epoch_log(void *ctx, int e, char *line, size_t size) {
    const Hook *h = ctx;
    int n = snprintf(line, size, "\"teacher_entropy\": %.6g, \"teacher_temp\": %.6g", h->epoch_entropy[e],
                     h->epoch_temp[e]);
    if (n > 0 && (size_t)n < size && h->epoch_knn[e] >= 0.0f)
        snprintf(line + n, size - (size_t)n, ", \"knn_macro_f1\": %.6g", h->epoch_knn[e]);
}

static uint64_t views_hash(const PlPretrainViews *v) {
    const PlPretrainImages *im = v->images;
    int64_t dims[10] = {v->n, v->C, v->Hg, v->Wg, v->n_local, v->Hl, v->Wl, im ? im->H : 0, im ? im->W : 0, 0};
    uint64_t h = pl_rng_hash_bytes(dims, sizeof dims, PL_RNG_FNV_OFFSET);
    if (im && im->x) return pl_rng_hash_bytes(im->x, (size_t)v->n * v->C * im->H * im->W * sizeof(float), h);
    if (im) return pl_rng_hash_bytes(&im->samples->digest, sizeof im->samples->digest, h);
    h = pl_rng_hash_bytes(v->globals, (size_t)v->n * 2 * v->C * v->Hg * v->Wg * sizeof(float), h);
    if (v->n_local)
        h = pl_rng_hash_bytes(v->locals, (size_t)v->n * v->n_local * v->C * v->Hl * v->Wl * sizeof(float), h);
    return h;
}

PlStatus pl_pretrain_run(PlVitTrain *student, PlVitTrain *teacher, const PlPretrainViews *v,
                         const PlPretrainOptions *o, float *center, PlPretrainResult *r) {
    memset(r, 0, sizeof *r);
    if (o->batch < 1 || v->n < o->batch)
        return PL_FAIL(PL_ERR_ARG, "%lld images do not make one global batch of %d", (long long)v->n, o->batch);
    if (o->epochs < 1) return PL_FAIL(PL_ERR_ARG, "--epochs must be >= 1");
    const int64_t spe = v->n / o->batch, total = spe * o->epochs;   // DINO's drop_last
    r->steps = total;
    r->steps_per_epoch = spe;
    PlTrainDinoOptions dopt = o->dino;
    dopt.local_views = v->n_local;
    dopt.nepochs = o->epochs;
    dopt.steps_per_epoch = spe;
    dopt.total_steps = total;
    dopt.global_batch = o->batch;
    dopt.pool = o->pool;
    PlOptimOptions oo = o->optim;
    oo.weight_decay = o->weight_decay;
    const int K = pl_vit_train_spec(student)->classes;
    const uint64_t init_hash = pl_rng_hash_bytes(pl_vit_train_params(student),
                                                 pl_vit_train_param_floats(student) * sizeof(float), PL_RNG_FNV_OFFSET);
    PlTrainDino *d = NULL;
    PlTrainStep *step = NULL;
    PlOptim *op = NULL;
    ViewSource src = {0};
    PlTrainState fs = {0};
    fs.cap_epochs = (int)o->epochs + 2;
    fs.epoch_loss = pl_calloc((size_t)fs.cap_epochs, sizeof(double));
    PlStatus st = fs.epoch_loss ? PL_OK : PL_ERR_NOMEM;
    if (st == PL_OK) st = pl_train_dino_create(student, teacher, &dopt, &d);
    PlTrainObjective obj;
    if (st == PL_OK) pl_train_dino_objective(d, &obj);
    PlTrainStepOptions so = {.global_batch = o->batch, .use_mpi = o->use_mpi, .profile = o->profile};
    if (st == PL_OK) st = pl_train_step_create(&obj, o->pool, &so, &step);
    if (st == PL_OK) st = pl_optim_create(student, &oo, &op);
    if (st == PL_OK) {
        int first = 0, count = 0;
        pl_train_step_rank_samples(step, &first, &count);
        st = views_init(&src, v, o, spe, first, count, 2);
    }
    // the teacher, the center and the per-epoch monitor values travel in the checkpoints; a resume starts the
    // schedules at the checkpoint's step
    Hook hk = {d, op, teacher, o, v, spe, K, 0, 0.0, 0, NULL, NULL, NULL, 0, 0};
    if (o->use_mpi && st == PL_OK) st = PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &hk.rank));
    hk.epoch_entropy = pl_calloc((size_t)fs.cap_epochs, sizeof(float));
    hk.epoch_temp = pl_calloc((size_t)fs.cap_epochs, sizeof(float));
    hk.epoch_knn = pl_calloc((size_t)fs.cap_epochs, sizeof(float));
    if (st == PL_OK && (!hk.epoch_entropy || !hk.epoch_temp || !hk.epoch_knn)) st = PL_ERR_NOMEM;
    const PlTrainExtra extra[5] = {
        {"teacher", pl_vit_train_params(teacher), pl_vit_train_param_floats(teacher)},
        {"center", d ? pl_train_dino_center(d) : NULL, (size_t)K},
        {"epoch_entropy", hk.epoch_entropy, (size_t)fs.cap_epochs},
        {"epoch_teacher_temp", hk.epoch_temp, (size_t)fs.cap_epochs},
        {"epoch_knn_f1", hk.epoch_knn, (size_t)fs.cap_epochs}};
    fs.extra = extra;
    fs.n_extra = 5;
    int64_t start = 0;
    if (st == PL_OK && o->resume && o->out_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", o->out_dir, PL_TRAIN_CKPT_NAME);
        int64_t s0 = pl_train_ckpt_step(path);
        start = s0 > 0 ? s0 : 0;
    }
    if (st == PL_OK) {
        pl_train_dino_set_step(d, start);
        pl_pretrain_freeze(op, start, spe, o->freeze_last_layer, o->norm_last_layer);
    }
    PlTrainerResult tr = {0};
    if (st == PL_OK) {
        const PlBatchSource bs = {&src, views_prepare, views_batch, src.slots};
        const PlTrainerHooks hooks = {.ctx = &hk, .after_step = after_step, .epoch_end = epoch_end,
                                      .epoch_log = epoch_log};
        const PlTrainerOptions to = {
            .out_dir = o->out_dir, .total_steps = total, .batch = o->batch, .epoch_samples = spe * o->batch,
            .peak_lr = o->lr, .min_lr = o->min_lr, .warmup_steps = o->warmup_epochs * spe, .wd_schedule = 1,
            .wd_base = o->weight_decay, .wd_final = o->weight_decay_end, .checkpoint_every = o->checkpoint_every,
            .resume = o->resume,
            .keys = {.args_text = o->args_text, .init_hash = init_hash, .data_hash = views_hash(v), .total_steps = total},
            .stop = o->stop, .pool = o->pool, .use_mpi = o->use_mpi, .quiet = o->quiet,
            .profile = o->profile};
        st = pl_trainer_run(student, step, op, &bs, o->reader, &hooks, &to, &fs, &tr);
    } else if (o->use_mpi) {
        st = pl_mpi_agree(st, "setting up the pretraining");
    }
    r->start_step = tr.start_step;
    r->first_loss = tr.first_loss;
    r->last_loss = tr.last_loss;
    r->img_per_s = tr.img_per_s;
    r->n_epochs = fs.n_epochs;
    r->epoch_loss = fs.epoch_loss;
    r->epoch_entropy = hk.epoch_entropy;
    r->epoch_temp = hk.epoch_temp;
    r->epoch_knn = hk.epoch_knn;
    r->collapse_warnings = hk.collapse_warnings;
    if (st == PL_OK && center) memcpy(center, pl_train_dino_center(d), (size_t)K * sizeof(float));
    views_free(&src);
    pl_optim_destroy(op);
    pl_train_step_destroy(step);
    pl_train_dino_destroy(d);
    return st;
}
