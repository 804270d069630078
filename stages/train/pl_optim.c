// AdamW / SGD steps as torch.optim does them over any tensor table: DINO parameter groups, both clipping kinds, the
// per-step weight decay, frozen tensors, the teacher EMA and DINO's cosine schedule (pl_optim.h).
#include "pl_optim.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PL_OPTIM_CHUNK 65536

// One chunk of a tensor's gradient for the per-tensor norms.
typedef struct PlOptimChunk {
    int tensor;
    size_t a, b;   // floats into the slab
} PlOptimChunk;

struct PlOptim {
    PlOptimOptions o;
    const PlTrainTensor *tensors;
    int ntensors, layers;
    size_t floats;
    float *m, *v;
    int64_t steps;       // calls of pl_optim_step (or the value set)
    int64_t *tsteps;     // (ntensors) torch's per-parameter state['step']
    int *frozen;         // (ntensors)
    int *nonfinite;      // (ntensors) the last step wrote a NaN or Inf into the tensor's parameters or moments
    // per-step state read by the tasks
    float *params, *grad;
    double lr, clip_coef;
    double *partial;     // (nchunks) squared-norm partial sums: slab chunks (GLOBAL) or tensor chunks (PER_TENSOR)
    size_t nchunks;
    PlOptimChunk *chunks;   // PER_TENSOR: (nchunks), tensor by tensor
    double *tnorm;          // PER_TENSOR: (ntensors) norms before clipping
    float *tcoef;           // PER_TENSOR: (ntensors) clip coefficients (1 = none)
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
    o->clip_mode = PL_OPTIM_CLIP_GLOBAL;
}

int64_t pl_optim_steps_taken(const PlOptim *op) { return op->steps; }
void pl_optim_set_steps_taken(PlOptim *op, int64_t steps) {
    op->steps = steps;
    for (int i = 0; i < op->ntensors; i++) op->tsteps[i] = steps;
}
int64_t pl_optim_tensor_steps(const PlOptim *op, int tensor) {
    return tensor >= 0 && tensor < op->ntensors ? op->tsteps[tensor] : -1;
}
PlStatus pl_optim_set_tensor_steps(PlOptim *op, int tensor, int64_t steps) {
    if (tensor < 0 || tensor >= op->ntensors || steps < 0)
        return PL_FAIL(PL_ERR_ARG, "tensor %d's step count %lld: the optimizer has %d tensors, counts are >= 0",
                       tensor, (long long)steps, op->ntensors);
    op->tsteps[tensor] = steps;
    return PL_OK;
}
float *pl_optim_moment(PlOptim *op, int which) { return which ? op->v : op->m; }
size_t pl_optim_floats(const PlOptim *op) { return op->floats; }
int pl_optim_tensor_count(const PlOptim *op) { return op->ntensors; }
const double *pl_optim_tensor_norms(const PlOptim *op) { return op->tnorm; }
double pl_optim_weight_decay(const PlOptim *op) { return op->o.weight_decay; }

PlStatus pl_optim_set_weight_decay(PlOptim *op, double wd) {
    if (!(wd >= 0) || isinf(wd)) return PL_FAIL(PL_ERR_ARG, "weight decay %g: must be finite and >= 0", wd);
    op->o.weight_decay = wd;
    return PL_OK;
}

PlStatus pl_optim_set_frozen(PlOptim *op, int tensor, int frozen) {
    if (tensor < 0 || tensor >= op->ntensors)
        return PL_FAIL(PL_ERR_ARG, "cannot freeze tensor %d: the optimizer has %d tensors", tensor, op->ntensors);
    op->frozen[tensor] = frozen != 0;
    return PL_OK;
}

void pl_optim_set_frozen_matching(PlOptim *op, const char *substring, int frozen, int *matched) {
    int n = 0;
    for (int i = 0; i < op->ntensors; i++)
        if (strstr(op->tensors[i].name, substring)) op->frozen[i] = frozen != 0, n++;
    if (matched) *matched = n;
}

int pl_optim_frozen(const PlOptim *op, int tensor) {
    return tensor >= 0 && tensor < op->ntensors && op->frozen[tensor];
}

// Chunks of the per-tensor norms: each tensor cut into PL_OPTIM_CHUNK-float pieces; out may be NULL (count only).
static size_t tensor_chunks(const PlTrainTensor *tensors, int count, PlOptimChunk *out) {
    size_t n = 0;
    for (int i = 0; i < count; i++)
        for (size_t a = 0; a < tensors[i].numel; a += PL_OPTIM_CHUNK, n++)
            if (out) {
                size_t b = a + PL_OPTIM_CHUNK < tensors[i].numel ? a + PL_OPTIM_CHUNK : tensors[i].numel;
                out[n] = (PlOptimChunk){.tensor = i, .a = tensors[i].offset + a, .b = tensors[i].offset + b};
            }
    return n;
}

static double moment_bytes(size_t floats, const PlOptimOptions *o) {
    int slabs = o->kind == PL_OPTIM_ADAMW ? 2 : o->momentum != 0.0 ? 1 : 0;   // as update_tensor writes them
    double partial = (double)((floats + PL_OPTIM_CHUNK - 1) / PL_OPTIM_CHUNK) * sizeof(double);   // norm sums
    return (double)slabs * floats * sizeof(float) + partial;
}
// The PER_TENSOR mode's chunk table, partial sums, norms and coefficients instead of the slab chunks' sums.
static double table_bytes(const PlTrainTensor *tensors, int count, size_t floats, const PlOptimOptions *o) {
    if (o->clip_mode != PL_OPTIM_CLIP_PER_TENSOR) return moment_bytes(floats, o);
    size_t chunks = tensor_chunks(tensors, count, NULL);
    double slab_partial = (double)((floats + PL_OPTIM_CHUNK - 1) / PL_OPTIM_CHUNK) * sizeof(double);
    return moment_bytes(floats, o) - slab_partial + (double)chunks * (sizeof(double) + sizeof(PlOptimChunk)) +
           (double)count * (sizeof(double) + sizeof(float));
}
double pl_optim_bytes(const PlOptim *op) { return table_bytes(op->tensors, op->ntensors, op->floats, &op->o); }
double pl_optim_bytes_for_table(const PlTrainTensor *tensors, int count, size_t floats, const PlOptimOptions *o) {
    return table_bytes(tensors, count, floats, o);
}
double pl_optim_bytes_for(const PlVitTrain *t, const PlOptimOptions *o) {
    int count = 0;
    const PlTrainTensor *tensors = pl_vit_train_tensors(t, &count);
    return table_bytes(tensors, count, pl_vit_train_param_floats(t), o);
}

void pl_optim_destroy(PlOptim *op) {
    if (!op) return;
    free(op->m);
    free(op->v);
    free(op->tsteps);
    free(op->frozen);
    free(op->nonfinite);
    free(op->partial);
    free(op->chunks);
    free(op->tnorm);
    free(op->tcoef);
    free(op);
}

PlStatus pl_optim_create_for(const PlTrainTensor *tensors, int count, size_t floats, int layers,
                             const PlOptimOptions *o, PlOptim **out) {
    *out = NULL;
    if (o->kind != PL_OPTIM_ADAMW && o->kind != PL_OPTIM_SGD)
        return PL_FAIL(PL_ERR_ARG, "unknown optimizer kind %d", (int)o->kind);
    if (o->kind == PL_OPTIM_ADAMW && !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1 && o->eps > 0))
        return PL_FAIL(PL_ERR_ARG, "AdamW betas must lie in [0, 1) and eps > 0");
    if (!(o->weight_decay >= 0) || !(o->momentum >= 0 && o->momentum < 1) || !(o->layer_decay > 0 && o->layer_decay <= 1) ||
        !(o->clip >= 0))
        return PL_FAIL(PL_ERR_ARG, "optimizer options out of range (weight decay >= 0, 0 <= momentum < 1, "
                                   "0 < layer decay <= 1, clip >= 0)");
    if (o->clip_mode != PL_OPTIM_CLIP_GLOBAL && o->clip_mode != PL_OPTIM_CLIP_PER_TENSOR)
        return PL_FAIL(PL_ERR_ARG, "unknown clipping mode %d", (int)o->clip_mode);
    if (!tensors || count <= 0 || layers < 0)
        return PL_FAIL(PL_ERR_ARG, "an optimizer needs a tensor table (%d tensors, highest layer %d)", count, layers);
    for (int i = 0; i < count; i++) {
        const PlTrainTensor *x = &tensors[i];
        if (x->offset > floats || x->numel > floats - x->offset || x->layer < 0 || x->layer > layers)
            return PL_FAIL(PL_ERR_ARG, "tensor %d (%s): floats [%zu, +%zu) or layer %d outside the slab of %zu floats "
                           "and layers 0..%d", i, x->name, x->offset, x->numel, x->layer, floats, layers);
    }
    PlOptim *op = pl_calloc(1, sizeof *op);
    if (!op) return PL_ERR_NOMEM;
    op->o = *o;
    op->tensors = tensors;
    op->ntensors = count;
    op->layers = layers;
    op->floats = floats;
    op->m = pl_calloc(floats ? floats : 1, sizeof(float));
    if (o->kind == PL_OPTIM_ADAMW) op->v = pl_calloc(floats ? floats : 1, sizeof(float));
    op->tsteps = pl_calloc((size_t)count, sizeof(int64_t));
    op->frozen = pl_calloc((size_t)count, sizeof(int));
    op->nonfinite = pl_calloc((size_t)count, sizeof(int));
    int per_tensor = o->clip_mode == PL_OPTIM_CLIP_PER_TENSOR;
    op->nchunks = per_tensor ? tensor_chunks(tensors, count, NULL) : (floats + PL_OPTIM_CHUNK - 1) / PL_OPTIM_CHUNK;
    op->partial = pl_calloc(op->nchunks ? op->nchunks : 1, sizeof(double));
    if (per_tensor) {
        op->chunks = pl_calloc(op->nchunks ? op->nchunks : 1, sizeof(PlOptimChunk));
        op->tnorm = pl_calloc((size_t)count, sizeof(double));
        op->tcoef = pl_calloc((size_t)count, sizeof(float));
        if (op->chunks) tensor_chunks(tensors, count, op->chunks);
    }
    if (!op->m || (o->kind == PL_OPTIM_ADAMW && !op->v) || !op->tsteps || !op->frozen || !op->nonfinite || !op->partial ||
        (per_tensor && (!op->chunks || !op->tnorm || !op->tcoef))) {
        size_t mib = floats * 8 >> 20;
        pl_optim_destroy(op);
        return PL_FAIL(PL_ERR_NOMEM, "cannot allocate optimizer state (%zu MiB)", mib);
    }
    *out = op;
    return PL_OK;
}

PlStatus pl_optim_create(const PlVitTrain *t, const PlOptimOptions *o, PlOptim **out) {
    int count = 0;
    const PlTrainTensor *tensors = pl_vit_train_tensors(t, &count);
    return pl_optim_create_for(tensors, count, pl_vit_train_param_floats(t), pl_vit_train_spec(t)->cfg.depth + 1, o,
                               out);
}

static void task_norm(void *ctx, int task, int thread) {
    (void)thread;
    PlOptim *op = ctx;
    size_t a = (size_t)task * PL_OPTIM_CHUNK, b = a + PL_OPTIM_CHUNK < op->floats ? a + PL_OPTIM_CHUNK : op->floats;
    double s = 0.0;
    for (size_t i = a; i < b; i++) s += (double)op->grad[i] * op->grad[i];
    op->partial[task] = s;
}

static void task_tensor_norm(void *ctx, int task, int thread) {
    (void)thread;
    PlOptim *op = ctx;
    const PlOptimChunk *c = &op->chunks[task];
    double s = 0.0;
    for (size_t i = c->a; i < c->b; i++) s += (double)op->grad[i] * op->grad[i];
    op->partial[task] = s;
}

static void update_tensor(PlOptim *op, int index) {
    const PlTrainTensor *x = &op->tensors[index];
    const PlOptimOptions *o = &op->o;
    float *p = op->params + x->offset, *g = op->grad + x->offset, *m = op->m + x->offset;
    size_t n = x->numel;
    if (o->clip_mode == PL_OPTIM_CLIP_PER_TENSOR) {   // utils.clip_gradients: p.grad.data.mul_(clip_coef)
        if (op->tcoef[index] < 1.0f) {
            float c = op->tcoef[index];
            for (size_t i = 0; i < n; i++) g[i] *= c;
        }
    } else if (op->clip_coef < 1.0) {
        float c = (float)op->clip_coef;
        for (size_t i = 0; i < n; i++) g[i] *= c;
    }
    op->nonfinite[index] = 0;
    if (op->frozen[index]) return;   // p.grad = None: torch skips the parameter, state['step'] included
    double lr = op->lr;
    if (o->layer_decay != 1.0) lr *= pow(o->layer_decay, op->layers - x->layer);
    double wd = x->decay ? o->weight_decay : 0.0;
    int64_t steps = op->tsteps[index];
    // `bad` collects, branch-free, whether a written value is NaN or infinite (the comparison is false for NaN), so
    // the finiteness check after the step costs no extra pass over the state (pl_optim_nonfinite)
    int bad = 0;
    if (o->kind == PL_OPTIM_ADAMW) {   // torch.optim.AdamW (single-tensor path)
        double t = (double)(steps + 1), bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
        float *v = op->v + x->offset;
        float decay = (float)(1.0 - lr * wd), b1 = (float)o->beta1, b2 = (float)o->beta2;
        float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->eps;
        for (size_t i = 0; i < n; i++) {
            float pi = p[i] * decay, mi = m[i], vi = v[i], gi = g[i];
            mi += (gi - mi) * (1.0f - b1);   // exp_avg.lerp_(grad, 1 - beta1)
            vi = vi * b2 + (1.0f - b2) * gi * gi;
            float denom = sqrtf(vi) / bc2_sqrt + eps;
            pi -= step_size * (mi / denom);
            p[i] = pi;
            m[i] = mi;
            v[i] = vi;
            bad |= !(fabsf(pi) <= FLT_MAX) | !(fabsf(mi) <= FLT_MAX) | !(vi <= FLT_MAX);
        }
    } else {   // torch.optim.SGD: d_p = g + wd p; buf = d_p (first step) or momentum buf + d_p; p -= lr buf
        float fwd = (float)wd, mom = (float)o->momentum, flr = (float)lr;
        for (size_t i = 0; i < n; i++) {
            float d = wd != 0.0 ? g[i] + fwd * p[i] : g[i];
            if (o->momentum != 0.0) {
                m[i] = steps == 0 ? d : m[i] * mom + d;
                d = m[i];
            }
            p[i] -= flr * d;
            bad |= !(fabsf(p[i]) <= FLT_MAX) | !(fabsf(m[i]) <= FLT_MAX);
        }
    }
    op->nonfinite[index] = bad;
    op->tsteps[index] = steps + 1;
}

static void task_update(void *ctx, int task, int thread) {
    (void)thread;
    update_tensor(ctx, task);
}

// PER_TENSOR: every tensor's norm from its chunks in order, its float32 clip coefficient as DINO's torch code has it
// (clip / (norm + 1e-6) on float32 tensors), and the global norm from the tensors' squared norms in table order.
static double tensor_norms(PlOptim *op) {
    double total = 0.0;
    size_t c = 0;
    for (int t = 0; t < op->ntensors; t++) {
        double s = 0.0;
        for (; c < op->nchunks && op->chunks[c].tensor == t; c++) s += op->partial[c];
        total += s;
        op->tnorm[t] = sqrt(s);
        float norm = (float)op->tnorm[t], coef = (float)op->o.clip / (norm + 1e-6f);
        op->tcoef[t] = op->o.clip > 0.0 && coef < 1.0f ? coef : 1.0f;
    }
    return sqrt(total);
}

void pl_optim_step(PlOptim *op, float *params, float *grad, double lr, PlThreadPool *pool, double *grad_norm) {
    op->params = params;
    op->grad = grad;
    op->lr = lr;
    op->clip_coef = 1.0;
    double norm;
    if (op->o.clip_mode == PL_OPTIM_CLIP_PER_TENSOR) {
        pl_threadpool_run(pool, task_tensor_norm, op, (int)op->nchunks);
        norm = tensor_norms(op);
    } else {
        pl_threadpool_run(pool, task_norm, op, (int)op->nchunks);
        double s = 0.0;
        for (size_t i = 0; i < op->nchunks; i++) s += op->partial[i];
        norm = sqrt(s);
        if (op->o.clip > 0.0) {   // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when < 1
            double c = op->o.clip / (norm + 1e-6);
            if (c < 1.0) op->clip_coef = c;
        }
    }
    if (grad_norm) *grad_norm = norm;
    pl_threadpool_run(pool, task_update, op, op->ntensors);
    op->steps++;
}

int pl_optim_nonfinite(const PlOptim *op) {
    for (int i = 0; i < op->ntensors; i++)
        if (op->nonfinite[i]) return 1;
    return 0;
}

// The EMA's blocks: teacher / student and the float32 factors.
typedef struct EmaCtx {
    float *teacher;
    const float *student;
    size_t n;
    float m, one_minus_m;
} EmaCtx;

static void task_ema(void *ctx, int task, int thread) {
    (void)thread;
    EmaCtx *e = ctx;
    size_t a = (size_t)task * PL_OPTIM_CHUNK, b = a + PL_OPTIM_CHUNK < e->n ? a + PL_OPTIM_CHUNK : e->n;
    for (size_t i = a; i < b; i++) {
        float k = e->teacher[i] * e->m, q = e->student[i] * e->one_minus_m;   // mul_(m); (1 - m) * param_q
        e->teacher[i] = k + q;                                                // add_
    }
}

void pl_optim_ema(float *teacher, const float *student, size_t n, double momentum, PlThreadPool *pool) {
    EmaCtx e = {.teacher = teacher, .student = student, .n = n, .m = (float)momentum,
                .one_minus_m = (float)(1.0 - momentum)};
    if (n) pl_threadpool_run(pool, task_ema, &e, (int)((n + PL_OPTIM_CHUNK - 1) / PL_OPTIM_CHUNK));
}

double pl_cosine_schedule_at(int64_t step, int64_t total, int64_t warmup, double base, double final,
                             double start_warmup) {
    if (step < warmup) {   // np.linspace(start, base, warmup): y = arange * (delta / div) + start, y[-1] = base
        double delta = base - start_warmup;
        if (warmup == 1) return 0.0 * delta + start_warmup;
        if (step == warmup - 1) return base;
        double div = (double)(warmup - 1), by = delta / div;
        if (by == 0.0) return (double)step / div * delta + start_warmup;   // numpy's denormal-step branch
        return (double)step * by + start_warmup;
    }
    int64_t n = total - warmup;
    if (n <= 0) return base;
    return final + 0.5 * (base - final) * (1.0 + cos(M_PI * (double)(step - warmup) / (double)n));
}

double pl_lr_at(int64_t step, int64_t total, int64_t warmup, double base, double final, int constant) {
    if (constant && step >= warmup) return base;
    return pl_cosine_schedule_at(step, total, warmup, base, final, 0.0);
}
