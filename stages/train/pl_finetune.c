// The fine-tuning loop over in-memory data (see pl_finetune.h).
#include "pl_finetune.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pl_clock.h"
#include "pl_fs.h"
#include "pl_log.h"
#include "pl_finetune_eval.h"
#include "pl_mpi.h"
#include "pl_rng.h"
#include "pl_safetensors.h"
#include "pl_train_augment.h"
#include "pl_train_ckpt.h"
#include "pl_train_classify.h"
#include "pl_train_step.h"


void pl_finetune_options_default(PlFinetuneOptions *o) {
    memset(o, 0, sizeof *o);
    pl_optim_options_default(&o->optim);
    o->base_lr = 1e-4;
    o->epochs = 10;
    o->batch = 32;
    o->augment = o->shuffle = 1;
    o->checkpoint_every = 100;
}

double pl_finetune_peak_lr(const PlFinetuneOptions *o) {
    if (o->lr > 0) return o->lr;
    return o->no_lr_scaling ? o->base_lr : o->base_lr * o->batch / 256.0;
}

typedef struct FetchCtx {
    const PlFinetuneData *d;
    const PlFinetuneOptions *o;
    int64_t *perms;            // (nperms, n) row orders of epochs perm_epoch0 ...
    int64_t perm_epoch0;
    int nperms;
    float **scratch;           // per thread (C, H, W)
    double *cw;                // --balanced: cumulative sampling weights (n), 1 / images of the row's class
    int threads;
    PlAugmentOptions aug;
} FetchCtx;

static void ensure_perms(FetchCtx *f, int64_t step) {
    const int64_t n = f->d->n, B = f->o->batch;
    int64_t e0 = step * B / n;
    if (!f->o->shuffle || (f->perm_epoch0 == e0 && f->nperms > 0 && f->perms[0] >= 0)) return;
    f->perm_epoch0 = e0;
    for (int k = 0; k < f->nperms; k++) {
        int64_t *p = f->perms + (size_t)k * n;
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
                p[i] = lo;
            }
            continue;
        }
        for (int64_t i = 0; i < n; i++) p[i] = i;
        pl_rng_shuffle_i64(&r, p, n);
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

static PlStatus fetch(void *ctx, int thread, int64_t step, int first, int n, float *x, int32_t *y, float *targets,
                      uint64_t *keys) {
    FetchCtx *f = ctx;
    const PlFinetuneData *d = f->d;
    const size_t chw = (size_t)d->C * d->H * d->W;
    for (int i = 0; i < n; i++) {
        int64_t pos = step * f->o->batch + first + i, epoch = pos / d->n, j = pos % d->n;
        int64_t row = pl_finetune_row(d, f->o->shuffle ? f->perms[(size_t)(epoch - f->perm_epoch0) * d->n + j] : j);
        const float *src = d->x + (size_t)row * chw;
        if (f->o->augment)
            pl_augment_image(&f->aug, pl_rng_mix(pl_rng_mix(f->o->seed, (uint64_t)epoch), (uint64_t)row), src, d->C,
                             d->H, d->W, x + (size_t)i * chw, f->scratch[thread]);
        else
            memcpy(x + (size_t)i * chw, src, chw * sizeof(float));
        if (d->y) y[i] = d->y[row];
        if (d->targets)
            memcpy(targets + (size_t)i * d->classes, d->targets + (size_t)row * d->classes, (size_t)d->classes * sizeof(float));
        keys[i] = pl_rng_mix(pl_rng_mix(f->o->seed, 0xd0d0u), (uint64_t)pos);
    }
    return PL_OK;
}

// ---- the reader thread: prepares the next global batch (shuffled order, augmentation) while this one computes ----

typedef struct Prefetch {
    FetchCtx *f;
    int first, count;                 // this rank's positions [first, first + count) of every global batch
    float *x[2], *t[2];
    int32_t *y[2];
    uint64_t *keys[2];
    int64_t want[2], have[2];         // step requested / ready in each slot (-1: none)
    PlStatus st[2];
    char msg[2][512];
    int quit, started;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} Prefetch;

static void *prefetch_main(void *arg) {
    Prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int k = -1;
        for (int j = 0; j < 2; j++)   // the lowest requested step first: steps are prepared in order
            if (p->want[j] >= 0 && p->want[j] != p->have[j] && (k < 0 || p->want[j] < p->want[k])) k = j;
        if (k < 0) {
            if (p->quit) break;
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        int64_t step = p->want[k];
        pthread_mutex_unlock(&p->mu);
        ensure_perms(p->f, step);
        PlStatus st = fetch(p->f, p->f->threads, step, p->first, p->count, p->x[k], p->y[k], p->t[k], p->keys[k]);
        pthread_mutex_lock(&p->mu);
        p->st[k] = st;
        if (st != PL_OK) snprintf(p->msg[k], sizeof p->msg[k], "%s", pl_error_message());
        p->have[k] = step;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void prefetch_request(Prefetch *p, int64_t step) {
    int k = (int)(step % 2);
    pthread_mutex_lock(&p->mu);
    if (p->want[k] != step) {
        p->want[k] = step;
        p->have[k] = -1;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

static PlStatus prefetch_wait(Prefetch *p, int64_t step, PlTrainBatch *b) {
    int k = (int)(step % 2);
    pthread_mutex_lock(&p->mu);
    while (p->have[k] != step) pthread_cond_wait(&p->cv, &p->mu);
    PlStatus st = p->st[k];
    pthread_mutex_unlock(&p->mu);
    if (st != PL_OK) return PL_FAIL(st, "%s", p->msg[k]);
    *b = (PlTrainBatch){p->x[k], p->y[k], p->t[k], p->keys[k]};
    return PL_OK;
}

static PlStatus prefetch_start(Prefetch *p, FetchCtx *f, int first, int count) {
    memset(p, 0, sizeof *p);
    p->f = f;
    p->first = first;
    p->count = count;
    const PlFinetuneData *d = f->d;
    size_t n = (size_t)count + 1, chw = (size_t)d->C * d->H * d->W;
    for (int k = 0; k < 2; k++) {
        p->want[k] = p->have[k] = -1;
        p->x[k] = pl_malloc(n * chw * sizeof(float));
        p->y[k] = pl_malloc(n * sizeof(int32_t));
        p->t[k] = pl_malloc(n * (size_t)d->classes * sizeof(float));
        p->keys[k] = pl_malloc(n * sizeof(uint64_t));
        if (!p->x[k] || !p->y[k] || !p->t[k] || !p->keys[k]) return PL_ERR_NOMEM;
        if (!d->y) p->y[k][0] = 0;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0 || pthread_cond_init(&p->cv, NULL) != 0)
        return PL_FAIL(PL_ERR_INTERNAL, "cannot create the reader thread's lock");
    if (pthread_create(&p->th, NULL, prefetch_main, p) != 0)
        return PL_FAIL(PL_ERR_INTERNAL, "cannot start the reader thread");
    p->started = 1;
    return PL_OK;
}

static void prefetch_stop(Prefetch *p) {
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        p->want[0] = p->want[1] = -1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->th, NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    for (int k = 0; k < 2; k++) {
        free(p->x[k]);
        free(p->y[k]);
        free(p->t[k]);
        free(p->keys[k]);
    }
    memset(p, 0, sizeof *p);
}

// ---- checkpoints: p/<name>, m/<name>, v/<name> + metadata (step, args, init and data hashes) ----

static uint64_t hash_data_into(const PlFinetuneData *d, uint64_t h) {
    const size_t chw = (size_t)d->C * d->H * d->W;
    for (int64_t i = 0; i < d->n; i++) {
        int64_t r = pl_finetune_row(d, i);
        h = pl_rng_hash_bytes(d->x + (size_t)r * chw, chw * sizeof(float), h);
        if (d->y) h = pl_rng_hash_bytes(d->y + r, sizeof(int32_t), h);
        if (d->targets) h = pl_rng_hash_bytes(d->targets + (size_t)r * d->classes, (size_t)d->classes * sizeof(float), h);
    }
    return h;
}

static uint64_t hash_data(const PlFinetuneData *d) { return hash_data_into(d, PL_RNG_FNV_OFFSET); }

static PlStatus log_write_failed(const PlFinetuneOptions *o) {
    char path[4096], note[512];
    snprintf(path, sizeof path, "%s/train.jsonl", o->out_dir);
    pl_fs_space_note(path, note, sizeof note);
    return PL_FAIL(PL_ERR_IO, "cannot write %s: %s%s", path, strerror(errno), note);
}

// train.jsonl: on a resume keep the lines of steps before `start` (rewritten atomically), then append.
static PlStatus log_open(const PlFinetuneOptions *o, int64_t start, FILE **fp) {
    char path[4096];
    snprintf(path, sizeof path, "%s/train.jsonl", o->out_dir);
    char *old = NULL;
    size_t size = 0;
    if (start > 0 && pl_file_read_all(path, (size_t)1 << 30, &old, &size) == PL_OK) {
        size_t keep = 0;
        for (char *p = old; p < old + size;) {
            char *eol = memchr(p, '\n', (size_t)(old + size - p));
            if (!eol) break;
            long long s;
            if (sscanf(p, "{\"step\": %lld", &s) != 1 || s >= start) break;
            keep = (size_t)(eol + 1 - old);
            p = eol + 1;
        }
        PlStatus st = pl_file_write_atomic(path, old, keep);
        free(old);
        PL_TRY(st);
    } else {
        free(old);
        PL_TRY(pl_file_write_atomic(path, "", 0));
    }
    *fp = fopen(path, "a");
    if (!*fp) return log_write_failed(o);
    return PL_OK;
}

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

// Every rank learns whether any got a stop request (SIGTERM before a time limit).
static PlStatus stop_requested(const PlFinetuneOptions *o, int *any) {
    int mine = o->stop && *o->stop;
    *any = mine;
    if (o->use_mpi) PL_TRY(PL_MPI_CHECK(MPI_Allreduce(&mine, any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD)));
    return PL_OK;
}

// "the last good checkpoint (step S) is kept in DIR/checkpoint.safetensors" (or that there is none yet).
static const char *kept_note(const PlFinetuneOptions *o, int64_t good_step) {
    static _Thread_local char note[4200];
    if (good_step > 0)
        snprintf(note, sizeof note, "the last good checkpoint (step %lld) is kept in %s/%s", (long long)good_step,
                 o->out_dir, PL_TRAIN_CKPT_NAME);
    else
        snprintf(note, sizeof note, "no checkpoint of this run was written (lower --lr, or --clip)");
    return note;
}

// One line of train.jsonl, flushed (a full file system is reported at the step it happens).
static PlStatus log_step(FILE *log, const PlFinetuneOptions *o, int64_t step, long long epoch, double loss, double lr,
                         double gnorm, double img_per_s) {
    errno = 0;
    int n = fprintf(log, "{\"step\": %lld, \"epoch\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                         "\"img_per_s\": %.4g}\n", (long long)step, epoch, loss, lr, gnorm, img_per_s);
    if (n < 0 || fflush(log) != 0 || ferror(log)) return log_write_failed(o);
    return PL_OK;
}

void pl_finetune_result_free(PlFinetuneResult *r) {
    free(r->epoch_loss);
    free(r->epoch_val_f1);
    free(r->per_class_f1);
    free(r->confusion);
    memset(r, 0, sizeof *r);
}

// End of an epoch: its mean loss; with validation, its macro F1 and (when better) a copy of the weights.
static PlStatus epoch_end(PlVitTrain *t, const PlFinetuneData *val, const PlFinetuneOptions *o, int rank, PlTrainState *fs) {
    if (fs->n_epochs >= fs->cap_epochs) return PL_FAIL(PL_ERR_INTERNAL, "epoch history overflow");
    int e = fs->n_epochs++;
    fs->epoch_loss[e] = fs->loss_steps ? fs->loss_sum / (double)fs->loss_steps : 0.0;
    fs->loss_sum = 0.0;
    fs->loss_steps = 0;
    if (!val) {
        fs->best_epoch = e + 1;
        return PL_OK;
    }
    double f1, acc;
    PL_TRY(pl_finetune_evaluate(t, o->pool, val, &f1, &acc, NULL, NULL));
    fs->epoch_val_f1[e] = f1;
    if (fs->best_epoch == 0 || f1 > fs->best_val_f1) {
        fs->best_epoch = e + 1;
        fs->best_val_f1 = f1;
        memcpy(fs->best, pl_vit_train_params(t), pl_vit_train_param_floats(t) * sizeof(float));
    }
    if (!o->quiet && rank == 0)
        pl_log_info("epoch %d: loss %.5f, validation macro F1 %.4f (accuracy %.4f)%s", e + 1, fs->epoch_loss[e], f1, acc,
                    fs->best_epoch == e + 1 ? " (best so far)" : "");
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
    const double peak = pl_finetune_peak_lr(o);
    r->peak_lr = peak;
    uint64_t init_hash =
        pl_rng_hash_bytes(pl_vit_train_params(t), pl_vit_train_param_floats(t) * sizeof(float), PL_RNG_FNV_OFFSET);
    uint64_t data_hash = hash_data(d);
    if (val) data_hash = hash_data_into(val, data_hash);

    PlOptim *op = NULL;
    PlTrainStep *step = NULL;
    FetchCtx f = {.d = d, .o = o, .perm_epoch0 = -1};
    FILE *log = NULL;
    PlTrainState fs = {0};
    fs.cap_epochs = (int)((total * o->batch) / d->n + 2);
    fs.epoch_loss = pl_calloc((size_t)fs.cap_epochs, sizeof(double));
    if (val) fs.epoch_val_f1 = pl_calloc((size_t)fs.cap_epochs, sizeof(double));
    if (val) fs.best = pl_malloc(pl_vit_train_param_floats(t) * sizeof(float));
    if (fs.best) memcpy(fs.best, pl_vit_train_params(t), pl_vit_train_param_floats(t) * sizeof(float));   // no garbage
    PlStatus st = fs.epoch_loss && (!val || (fs.epoch_val_f1 && fs.best)) ? PL_OK : PL_ERR_NOMEM;
    if (st == PL_OK) st = pl_optim_create(t, &o->optim, &op);
    PlTrainStepOptions so = {.global_batch = o->batch, .allreduce = o->allreduce, .use_mpi = o->use_mpi};
    PlTrainObjective obj;
    pl_train_classify_objective(t, &obj);
    if (st == PL_OK) st = pl_train_step_create(&obj, o->pool, &so, &step);
    f.threads = pl_threadpool_size(o->pool);
    f.nperms = (int)(o->batch / d->n) + 2;
    pl_augment_options_default(&f.aug);
    if (st == PL_OK) {
        f.perms = pl_malloc((size_t)f.nperms * d->n * sizeof(int64_t));
        f.scratch = pl_calloc((size_t)f.threads + 1, sizeof *f.scratch);   // + 1: the reader thread's
        if (!f.perms || !f.scratch) st = PL_ERR_NOMEM;
        for (int i = 0; i <= f.threads && st == PL_OK; i++)
            if (!(f.scratch[i] = pl_malloc((size_t)d->C * d->H * d->W * sizeof(float)))) st = PL_ERR_NOMEM;
        if (f.perms) f.perms[0] = -1;
        if (st == PL_OK && o->balanced) st = balanced_weights(d, &f.cw);
    }
    int64_t s0 = 0;
    char ckpt_path[4096];
    snprintf(ckpt_path, sizeof ckpt_path, "%s/%s", o->out_dir, PL_TRAIN_CKPT_NAME);
    const PlTrainCkptKeys keys = {.args_text = o->args_text, .init_hash = init_hash, .data_hash = data_hash,
                                  .total_steps = total};
    if (st == PL_OK && o->resume && access(ckpt_path, F_OK) == 0) {   // every rank reads it (a shared file system)
        st = pl_train_ckpt_read(ckpt_path, t, op, &keys, &s0, &fs);
        if (st == PL_OK && !o->quiet && rank == 0)
            pl_log_info("resuming %s at step %lld of %lld", ckpt_path, (long long)s0, (long long)total);
    }
    r->start_step = s0;
    Prefetch pf = {0};
    if (st == PL_OK) {
        int first = 0, count = 0;
        pl_train_step_rank_samples(step, &first, &count);
        st = prefetch_start(&pf, &f, first, count);
    }
    if (st == PL_OK && rank == 0) st = log_open(o, s0, &log);
    if (o->use_mpi) st = pl_mpi_agree(st, "setting up the training");
    double t_start = pl_clock_now();
    int64_t done_here = 0, good_step = s0;   // good_step: the step of the newest checkpoint written
    for (int64_t s = s0; s < total && st == PL_OK; s++) {
        double t0 = pl_clock_now();
        prefetch_request(&pf, s);
        if (s + 1 < total) prefetch_request(&pf, s + 1);   // read while this step computes
        float *grad = NULL;
        double loss = 0.0, gnorm = 0.0;
        PlTrainBatch batch;
        st = prefetch_wait(&pf, s, &batch);
        if (o->use_mpi) st = pl_mpi_agree(st, "preparing the batch");
        if (st == PL_OK) st = pl_train_step_run(step, &batch, &grad, NULL, &loss);
        if (st != PL_OK) break;
        // every rank holds the same loss, gradient and weights, so these checks stop every rank at the same step
        if (!isfinite(loss)) {
            st = PL_FAIL(PL_ERR_NUMERIC, "the loss is %s at step %lld (epoch %lld); stopped, %s",
                         isnan(loss) ? "NaN" : "infinite", (long long)s, (long long)(s * o->batch / d->n),
                         kept_note(o, good_step));
            break;
        }
        double lr = pl_lr_at(s, total, o->warmup_steps, peak, o->min_lr, o->schedule_constant);
        pl_optim_step(op, pl_vit_train_params(t), grad, lr, o->pool, &gnorm);
        if (!isfinite(gnorm)) {
            st = PL_FAIL(PL_ERR_NUMERIC, "the gradient norm is not finite at step %lld; stopped, %s", (long long)s,
                         kept_note(o, good_step));
            break;
        }
        if ((st = pl_train_ckpt_check_finite(t, op, NULL)) != PL_OK) {   // e.g. AdamW's moments overflowed
            pl_error_wrap("after step %lld: stopped, %s", (long long)s, kept_note(o, good_step));
            break;
        }
        done_here++;
        if (s == s0) r->first_loss = loss;
        r->last_loss = loss;
        fs.loss_sum += loss;
        fs.loss_steps++;
        double dt = pl_clock_now() - t0;
        if (log)
            st = log_step(log, o, s, (long long)(s * o->batch / d->n), loss, lr, gnorm, o->batch / (dt > 0 ? dt : 1e-9));
        int is_epoch_end = (s + 1) * o->batch / d->n > s * o->batch / d->n;
        if (st == PL_OK && (is_epoch_end || s + 1 == total)) st = epoch_end(t, val, o, rank, &fs);
        int due = (o->checkpoint_every > 0 && (s + 1) % o->checkpoint_every == 0) || is_epoch_end || s + 1 == total;
        int stop = 0;
        PlStatus ss = stop_requested(o, &stop);
        if (st == PL_OK) st = ss;
        if (st == PL_OK && (due || stop) && rank == 0) st = pl_train_ckpt_write(ckpt_path, t, op, &keys, s + 1, &fs);
        // rank 0's log and checkpoint writes may fail alone: every rank learns it before the next step's collectives
        if (o->use_mpi) st = pl_mpi_agree(st, "writing the training log or checkpoint");
        if (st != PL_OK) break;
        if (due || stop) good_step = s + 1;
        if (stop && s + 1 < total) {
            st = PL_FAIL(PL_ERR_INTERRUPTED, "stopped by a signal after step %lld of %lld; the checkpoint in %s "
                         "resumes it (--resume)", (long long)(s + 1), (long long)total, o->out_dir);
        }
        if (!o->quiet && rank == 0 && (s % 10 == 0 || s + 1 == total))
            pl_log_info("step %lld/%lld loss %.5f lr %.3g %.2f img/s", (long long)s + 1, (long long)total, loss, lr,
                        o->batch / (dt > 0 ? dt : 1e-9));
    }
    double elapsed = pl_clock_now() - t_start;
    r->steps = total;
    r->img_per_s = done_here > 0 && elapsed > 0 ? (double)done_here * o->batch / elapsed : 0.0;
    if (log && fclose(log) != 0 && st == PL_OK) st = log_write_failed(o);
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
    prefetch_stop(&pf);
    if (f.scratch)
        for (int i = 0; i <= f.threads; i++) free(f.scratch[i]);
    free(f.scratch);
    free(f.perms);
    free(f.cw);
    pl_train_step_destroy(step);
    pl_optim_destroy(op);
    return st;
}
