// AdamW / SGD steps as torch.optim does them, DINO parameter groups, clipping, and the lr schedule (pl_optim.h).
#include "pl_optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PL_OPTIM_CHUNK 65536

struct PlOptim {
    PlOptimOptions o;
    const PlTrainTensor *tensors;
    int ntensors, depth;
    size_t floats;
    float *m, *v;
    int64_t steps;
    // per-step state read by the tasks
    float *params, *grad;
    double lr, clip_coef, bc1, bc2;
    double *partial;     // (chunks) squared-norm partial sums
    size_t nchunks;
};

void pl_optim_options_default(PlOptimOptions *o) {
    memset(o, 0, sizeof *o);
    o->kind = PL_OPTIM_ADAMW;
    o->weight_decay = 0.04;
    o->momentum = 0.9;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->layer_decay = 1.0;
}

int64_t pl_optim_steps_taken(const PlOptim *op) { return op->steps; }
void pl_optim_set_steps_taken(PlOptim *op, int64_t steps) { op->steps = steps; }
float *pl_optim_moment(PlOptim *op, int which) { return which ? op->v : op->m; }
size_t pl_optim_floats(const PlOptim *op) { return op->floats; }

static double moment_bytes(size_t floats, const PlOptimOptions *o) {
    int slabs = o->kind == PL_OPTIM_ADAMW ? 2 : o->momentum != 0.0 ? 1 : 0;   // as update_tensor writes them
    double partial = (double)((floats + PL_OPTIM_CHUNK - 1) / PL_OPTIM_CHUNK) * sizeof(double);   // norm sums
    return (double)slabs * floats * sizeof(float) + partial;
}
double pl_optim_bytes(const PlOptim *op) { return moment_bytes(op->floats, &op->o); }
double pl_optim_bytes_for(const PlVitTrain *t, const PlOptimOptions *o) {
    return moment_bytes(pl_vit_train_param_floats(t), o);
}

void pl_optim_destroy(PlOptim *op) {
    if (!op) return;
    free(op->m);
    free(op->v);
    free(op->partial);
    free(op);
}

PlStatus pl_optim_create(const PlVitTrain *t, const PlOptimOptions *o, PlOptim **out) {
    *out = NULL;
    if (o->kind == PL_OPTIM_ADAMW && !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1 && o->eps > 0))
        return PL_FAIL(PL_ERR_ARG, "AdamW betas must lie in [0, 1) and eps > 0");
    if (!(o->weight_decay >= 0) || !(o->momentum >= 0 && o->momentum < 1) || !(o->layer_decay > 0 && o->layer_decay <= 1) ||
        !(o->clip >= 0))
        return PL_FAIL(PL_ERR_ARG, "optimizer options out of range (weight decay >= 0, 0 <= momentum < 1, "
                                   "0 < layer decay <= 1, clip >= 0)");
    PlOptim *op = pl_calloc(1, sizeof *op);
    if (!op) return PL_ERR_NOMEM;
    op->o = *o;
    op->tensors = pl_vit_train_tensors(t, &op->ntensors);
    op->depth = pl_vit_train_spec(t)->cfg.depth;
    op->floats = pl_vit_train_param_floats(t);
    op->m = pl_calloc(op->floats, sizeof(float));
    if (o->kind == PL_OPTIM_ADAMW) op->v = pl_calloc(op->floats, sizeof(float));
    op->nchunks = (op->floats + PL_OPTIM_CHUNK - 1) / PL_OPTIM_CHUNK;
    op->partial = pl_calloc(op->nchunks, sizeof(double));
    if (!op->m || (o->kind == PL_OPTIM_ADAMW && !op->v) || !op->partial) {
        size_t mib = op->floats * 8 >> 20;
        pl_optim_destroy(op);
        return PL_FAIL(PL_ERR_NOMEM, "cannot allocate optimizer state (%zu MiB)", mib);
    }
    *out = op;
    return PL_OK;
}

static void task_norm(void *ctx, int task, int thread) {
    (void)thread;
    PlOptim *op = ctx;
    size_t a = (size_t)task * PL_OPTIM_CHUNK, b = a + PL_OPTIM_CHUNK < op->floats ? a + PL_OPTIM_CHUNK : op->floats;
    double s = 0.0;
    for (size_t i = a; i < b; i++) s += (double)op->grad[i] * op->grad[i];
    op->partial[task] = s;
}

static void update_tensor(PlOptim *op, const PlTrainTensor *x) {
    const PlOptimOptions *o = &op->o;
    double lr = op->lr;
    if (o->layer_decay != 1.0) lr *= pow(o->layer_decay, op->depth + 1 - x->layer);
    double wd = x->decay ? o->weight_decay : 0.0;
    float *p = op->params + x->offset, *g = op->grad + x->offset, *m = op->m + x->offset;
    size_t n = x->numel;
    if (op->clip_coef < 1.0) {
        float c = (float)op->clip_coef;
        for (size_t i = 0; i < n; i++) g[i] *= c;
    }
    if (o->kind == PL_OPTIM_ADAMW) {   // torch.optim.AdamW (single-tensor path)
        float *v = op->v + x->offset;
        float decay = (float)(1.0 - lr * wd), b1 = (float)o->beta1, b2 = (float)o->beta2;
        float step_size = (float)(lr / op->bc1), bc2_sqrt = (float)sqrt(op->bc2), eps = (float)o->eps;
        for (size_t i = 0; i < n; i++) {
            p[i] *= decay;
            m[i] += (g[i] - m[i]) * (1.0f - b1);   // exp_avg.lerp_(grad, 1 - beta1)
            v[i] = v[i] * b2 + (1.0f - b2) * g[i] * g[i];
            float denom = sqrtf(v[i]) / bc2_sqrt + eps;
            p[i] -= step_size * (m[i] / denom);
        }
    } else {   // torch.optim.SGD: d_p = g + wd p; buf = d_p (first step) or momentum buf + d_p; p -= lr buf
        float fwd = (float)wd, mom = (float)o->momentum, flr = (float)lr;
        for (size_t i = 0; i < n; i++) {
            float d = wd != 0.0 ? g[i] + fwd * p[i] : g[i];
            if (o->momentum != 0.0) {
                m[i] = op->steps == 0 ? d : m[i] * mom + d;
                d = m[i];
            }
            p[i] -= flr * d;
        }
    }
}

static void task_update(void *ctx, int task, int thread) {
    (void)thread;
    PlOptim *op = ctx;
    update_tensor(op, &op->tensors[task]);
}

void pl_optim_step(PlOptim *op, float *params, float *grad, double lr, PlThreadPool *pool, double *grad_norm) {
    op->params = params;
    op->grad = grad;
    op->lr = lr;
    pl_threadpool_run(pool, task_norm, op, (int)op->nchunks);
    double s = 0.0;
    for (size_t i = 0; i < op->nchunks; i++) s += op->partial[i];
    double norm = sqrt(s);
    if (grad_norm) *grad_norm = norm;
    op->clip_coef = 1.0;
    if (op->o.clip > 0.0) {   // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when < 1
        double c = op->o.clip / (norm + 1e-6);
        if (c < 1.0) op->clip_coef = c;
    }
    double t = (double)(op->steps + 1);
    op->bc1 = 1.0 - pow(op->o.beta1, t);
    op->bc2 = 1.0 - pow(op->o.beta2, t);
    pl_threadpool_run(pool, task_update, op, op->ntensors);
    op->steps++;
}

double pl_lr_at(int64_t step, int64_t total, int64_t warmup, double base, double final, int constant) {
    if (step < warmup) return warmup > 1 ? base * (double)step / (double)(warmup - 1) : base * 0.0;
    if (constant) return base;
    int64_t n = total - warmup;
    if (n <= 0) return base;
    return final + 0.5 * (base - final) * (1.0 + cos(M_PI * (double)(step - warmup) / (double)n));
}
