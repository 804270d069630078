// The classification objective: one micro-batch of the trainer's forward, loss and backward (see pl_train_classify.h).
#include "pl_train_classify.h"

#include "pl_train_layers.h"

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
    const int NC = sp->classes;
    const float *logits;
    float *dlogits;
    PL_TRY(pl_vit_train_forward(t, worker, b->x + off * chw, n, b->keys + off, &logits, &dlogits));
    if (sp->loss == PL_LOSS_XENT) {
        if (!b->y) return PL_FAIL(PL_ERR_ARG, "cross-entropy needs class ids");
        *loss_sum = pl_softmax_xent(dlogits, logits, b->y + off, n, NC, scale);
    } else {
        if (!b->targets) return PL_FAIL(PL_ERR_ARG, "BCE-with-logits needs targets");
        *loss_sum = pl_bce_logits(dlogits, logits, b->targets + off * (size_t)NC, n, NC, scale);
    }
    return pl_vit_train_backward(t, worker, grad);
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
