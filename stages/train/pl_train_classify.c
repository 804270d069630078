// The classification objective: one micro-batch of the trainer's forward, loss and backward (see pl_train_classify.h).
#include "pl_train_classify.h"

static void classify_begin_step(void *ctx) {
    pl_vit_train_sync(ctx);   // BF16: the parameters the optimizer changed, rounded once for every micro-batch
}

static PlStatus classify_microbatch(void *ctx, int worker, const void *batch, int first, int n, float scale,
                                    float *grad, float *stats, double *loss_sum) {
    (void)stats;
    PlVitTrain *t = ctx;
    const PlVitTrainSpec *sp = pl_vit_train_spec(t);
    const PlTrainBatch *b = batch;
    const size_t off = (size_t)first, chw = (size_t)sp->cfg.in_chans * sp->height * sp->width;
    return pl_vit_train_microbatch(t, worker, b->x + off * chw, b->y ? b->y + off : NULL,
                                   b->targets ? b->targets + off * (size_t)sp->classes : NULL, n, b->keys + off,
                                   scale, grad, loss_sum);
}

void pl_train_classify_objective(PlVitTrain *t, PlTrainObjective *out) {
    const PlVitTrainSpec *sp = pl_vit_train_spec(t);
    *out = (PlTrainObjective){
        .name = "classification",
        .ctx = t,
        .param_floats = pl_vit_train_param_floats(t),
        .stat_floats = 0,
        .workers = sp->workers,
        .micro_batch = sp->micro_batch,
        .loss_norm = sp->loss == PL_LOSS_BCE ? sp->classes : 1,
        .begin_step = classify_begin_step,
        .microbatch = classify_microbatch,
    };
}
