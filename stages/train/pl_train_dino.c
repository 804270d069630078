// DINO's self-distillation objective: the micro-batch (teacher forward, student views, head, DINOLoss, backward) and
// the after-step center / teacher update (see pl_train_dino.h).
#include "pl_train_dino.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_dino_loss.h"
#include "pl_optim.h"

struct PlTrainDino {
    PlVitTrain *student, *teacher;
    PlTrainDinoOptions o;
    int m, N, V, K, D;          // images per micro-batch, local views, views, head outputs, features
    int C, gh, gw, lh, lw;      // channels, global and local view sizes
    int64_t step;               // the step the next begin_step prepares
    double temp;                // the teacher temperature of the current step
    float *center;              // (K)
    float *slab;                // per worker: feat (m V, D), dfeat (m V, D), the loss's scratch
    size_t worker_floats;
    int workers;
    double entropy;             // the mean entropy of the teacher's targets over the last step's global views
};

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

void pl_train_dino_options_default(PlTrainDinoOptions *o) {
    *o = (PlTrainDinoOptions){.local_views = 8, .student_temp = 0.1, .warmup_teacher_temp = 0.04,
                              .teacher_temp = 0.04, .warmup_teacher_temp_epochs = 0, .nepochs = 100,
                              .center_momentum = 0.9, .momentum_teacher = 0.996, .steps_per_epoch = 1,
                              .total_steps = 100, .global_batch = 1};
}

static PlStatus check_models(const PlVitTrain *s, const PlVitTrain *t, const PlTrainDinoOptions *o) {
    const PlVitTrainSpec *ss = pl_vit_train_spec(s), *ts = pl_vit_train_spec(t);
    const int N = o->local_views;
    if (ss->head.kind != PL_HEAD_DINO || ts->head.kind != PL_HEAD_DINO)
        return PL_FAIL(PL_ERR_ARG, "DINO needs the DINO head on the student and the teacher");
    if (ss->micro_batch % 2) return PL_FAIL(PL_ERR_ARG, "the student's micro-batch %d is not 2 global views x images",
                                            ss->micro_batch);
    const int m = ss->micro_batch / 2;
    if (N < 0) return PL_FAIL(PL_ERR_ARG, "%d local views", N);
    if (N > 0 && (ss->ngroups < 2 || ss->groups[1].micro_batch != N * m))
        return PL_FAIL(PL_ERR_ARG, "the student's view group 1 must hold %d local views x %d images (has %d)", N, m,
                       ss->ngroups < 2 ? 0 : ss->groups[1].micro_batch);
    if (pl_vit_train_head_spec(s)->max_rows < (2 + N) * m)
        return PL_FAIL(PL_ERR_ARG, "the student's head rows %d are fewer than %d views x %d images",
                       pl_vit_train_head_spec(s)->max_rows, 2 + N, m);
    if (pl_vit_train_param_floats(s) != pl_vit_train_param_floats(t) || ss->classes != ts->classes ||
        ss->cfg.dim != ts->cfg.dim || ss->cfg.in_chans != ts->cfg.in_chans)
        return PL_FAIL(PL_ERR_ARG, "the teacher's layout differs from the student's");
    if (ts->micro_batch < 2 * m || ts->height != ss->height || ts->width != ss->width)
        return PL_FAIL(PL_ERR_ARG, "the teacher must take %d global views of %dx%d (micro-batch %d, %dx%d)", 2 * m,
                       ss->height, ss->width, ts->micro_batch, ts->height, ts->width);
    if (ts->workers < ss->workers)
        return PL_FAIL(PL_ERR_ARG, "the teacher has %d workers, the student %d", ts->workers, ss->workers);
    if (o->steps_per_epoch < 1 || o->total_steps < 1 || o->global_batch < 1)
        return PL_FAIL(PL_ERR_ARG, "steps per epoch, total steps and the global batch must be >= 1");
    return pl_dino_loss_check(2 + N, ss->classes, o->student_temp, o->warmup_teacher_temp, o->teacher_temp,
                              o->warmup_teacher_temp_epochs, o->nepochs);
}

PlStatus pl_train_dino_create(PlVitTrain *student, PlVitTrain *teacher, const PlTrainDinoOptions *o,
                              PlTrainDino **out) {
    *out = NULL;
    PL_TRY(check_models(student, teacher, o));
    const PlVitTrainSpec *ss = pl_vit_train_spec(student);
    PlTrainDino *d = pl_calloc(1, sizeof *d);
    if (!d) return PL_ERR_NOMEM;
    *d = (PlTrainDino){.student = student, .teacher = teacher, .o = *o, .m = ss->micro_batch / 2,
                       .N = o->local_views, .V = 2 + o->local_views, .K = ss->classes, .D = ss->cfg.dim,
                       .C = ss->cfg.in_chans, .gh = ss->height, .gw = ss->width, .workers = ss->workers};
    if (d->N > 0) {
        d->lh = ss->groups[1].height;
        d->lw = ss->groups[1].width;
    }
    const size_t rows = (size_t)d->m * d->V;
    d->worker_floats = 2 * round16(rows * d->D) + round16(pl_dino_loss_scratch_floats(d->K));
    d->center = pl_train_alloc_slab((size_t)d->K);
    d->slab = pl_train_alloc_slab(d->worker_floats * d->workers);
    if (!d->center || !d->slab) {
        pl_train_dino_destroy(d);
        return PL_FAIL(PL_ERR_NOMEM, "cannot allocate DINO's center and view buffers");
    }
    memset(d->center, 0, (size_t)d->K * sizeof(float));
    memset(d->slab, 0, d->worker_floats * d->workers * sizeof(float));
    d->temp = pl_dino_teacher_temp(0, o->warmup_teacher_temp, o->teacher_temp, o->warmup_teacher_temp_epochs,
                                   o->nepochs);
    *out = d;
    return PL_OK;
}

void pl_train_dino_destroy(PlTrainDino *d) {
    if (!d) return;
    free(d->center);
    free(d->slab);
    free(d);
}

float *pl_train_dino_center(PlTrainDino *d) { return d->center; }
void pl_train_dino_set_step(PlTrainDino *d, int64_t step) { d->step = step; }
double pl_train_dino_teacher_temp(const PlTrainDino *d) { return d->temp; }
double pl_train_dino_teacher_entropy(const PlTrainDino *d) { return d->entropy; }
double pl_train_dino_momentum(const PlTrainDino *d, int64_t step) {
    return pl_cosine_schedule_at(step, d->o.total_steps, 0, d->o.momentum_teacher, 1.0, 0.0);
}

static void dino_begin_step(void *ctx) {
    PlTrainDino *d = ctx;
    const PlTrainDinoOptions *o = &d->o;
    d->temp = pl_dino_teacher_temp(d->step / o->steps_per_epoch, o->warmup_teacher_temp, o->teacher_temp,
                                   o->warmup_teacher_temp_epochs, o->nepochs);
    pl_vit_train_sync(d->student);
    pl_vit_train_sync(d->teacher);   // no-op after pl_train_dino_after_step
}

// The sum over `rows` teacher rows of the entropy of DINO's targets q = softmax((t - center) / temp), in nats:
// H = log Z - sum q z with z = (t - center) / temp (log K: uniform; 0: one prototype). Fixed order, in double.
static double teacher_entropy_sum(const float *t, const float *center, int rows, int K, double temp) {
    double total = 0.0;
    for (int r = 0; r < rows; r++) {
        const float *x = t + (size_t)r * K;
        double zmax = -INFINITY;
        for (int k = 0; k < K; k++) {
            double z = ((double)x[k] - center[k]) / temp;
            if (z > zmax) zmax = z;
        }
        double sum = 0.0, wz = 0.0;
        for (int k = 0; k < K; k++) {
            double z = ((double)x[k] - center[k]) / temp - zmax, e = exp(z);
            sum += e;
            wz += e * z;
        }
        total += log(sum) - wz / sum;
    }
    return total;
}

static PlStatus dino_microbatch(void *ctx, int worker, const void *batch, int first, int n, float scale, float *grad,
                                float *stats, double *loss_sum) {
    PlTrainDino *d = ctx;
    const PlDinoBatch *b = batch;
    const int N = d->N, V = d->V, K = d->K;
    const size_t D = (size_t)d->D, gsz = (size_t)d->C * d->gh * d->gw, lsz = (size_t)d->C * d->lh * d->lw;
    float *feat = d->slab + (size_t)worker * d->worker_floats;
    float *dfeat = feat + round16((size_t)d->m * V * D);
    float *scratch = dfeat + round16((size_t)d->m * V * D);
    const float *gx = b->globals + (size_t)first * 2 * gsz;
    // the teacher: its outputs of the global views (n, 2, K), no drop path
    const float *tout, *f0, *f1 = NULL;
    PL_TRY(pl_vit_train_forward(d->teacher, worker, gx, 2 * n, NULL, &tout, NULL));
    // the student's backbone per view group, then its head over every view, image-major (n, V) rows
    PL_TRY(pl_vit_train_backbone_forward(d->student, worker, 0, gx, 2 * n, d->gh, d->gw,
                                         b->global_keys ? b->global_keys + (size_t)first * 2 : NULL, &f0));
    if (N > 0) {
        if (!b->locals) return PL_FAIL(PL_ERR_ARG, "DINO's batch has no local views (%d expected per image)", N);
        PL_TRY(pl_vit_train_backbone_forward(d->student, worker, 1, b->locals + (size_t)first * N * lsz, N * n,
                                             d->lh, d->lw, b->local_keys ? b->local_keys + (size_t)first * N : NULL,
                                             &f1));
    }
    for (int i = 0; i < n; i++) {
        memcpy(feat + (size_t)i * V * D, f0 + (size_t)i * 2 * D, 2 * D * sizeof(float));
        if (N > 0) memcpy(feat + ((size_t)i * V + 2) * D, f1 + (size_t)i * N * D, (size_t)N * D * sizeof(float));
    }
    const float *sout, *dsf;
    float *dsout;
    PL_TRY(pl_vit_train_head_forward(d->student, worker, feat, n * V, NULL, &sout, &dsout));
    *loss_sum = pl_dino_loss(dsout, sout, tout, d->center, n, V, K, d->o.student_temp, d->temp, scale, scratch);
    pl_dino_teacher_sum(stats, tout, n, K);
    stats[K] = (float)teacher_entropy_sum(tout, d->center, 2 * n, K, d->temp);   // overwritten, as the sum
    // backward: the head (its tensors), then the backbone per group (group 0 overwrites, group 1 adds)
    PL_TRY(pl_vit_train_head_backward(d->student, worker, grad, &dsf));
    float *dg1 = dfeat + (size_t)2 * n * D;
    for (int i = 0; i < n; i++) {
        memcpy(dfeat + (size_t)i * 2 * D, dsf + (size_t)i * V * D, 2 * D * sizeof(float));
        if (N > 0) memcpy(dg1 + (size_t)i * N * D, dsf + ((size_t)i * V + 2) * D, (size_t)N * D * sizeof(float));
    }
    PL_TRY(pl_vit_train_backbone_backward(d->student, worker, 0, dfeat, grad, 0));
    if (N > 0) PL_TRY(pl_vit_train_backbone_backward(d->student, worker, 1, dg1, grad, 1));
    return PL_OK;
}

void pl_train_dino_objective(PlTrainDino *d, PlTrainObjective *out) {
    *out = (PlTrainObjective){
        .name = "dino",
        .ctx = d,
        .param_floats = pl_vit_train_param_floats(d->student),
        .stat_floats = (size_t)d->K + 1,   // the teacher outputs' sum (the center's), then the targets' entropy
        .workers = d->workers,
        .micro_batch = d->m,
        .loss_norm = 1.0,
        .begin_step = dino_begin_step,
        .microbatch = dino_microbatch,
    };
}

PlStatus pl_train_dino_after_step(void *ctx, int64_t step, const float *stats) {
    PlTrainDino *d = ctx;
    if (!stats) return PL_FAIL(PL_ERR_ARG, "DINO's after-step needs the step's teacher sum");
    d->entropy = (double)stats[d->K] / (2.0 * (double)d->o.global_batch);
    pl_dino_center_update(d->center, stats, 2 * (int64_t)d->o.global_batch, d->o.center_momentum, d->K);
    pl_optim_ema(pl_vit_train_params(d->teacher), pl_vit_train_params(d->student),
                 pl_vit_train_param_floats(d->student), pl_train_dino_momentum(d, step), d->o.pool);
    pl_vit_train_sync(d->teacher);
    d->step = step + 1;
    return PL_OK;
}
