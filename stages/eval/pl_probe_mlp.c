// The probe's DINO4Cells MLP on the training modules: the head (pl_train_head.h, PL_HEAD_MLP), the loss
// (pl_softmax_xent), AdamW with DINO's parameter groups (pl_optim.h) and the cosine lr / weight-decay schedules
// (pl_cosine_schedule_at); this file only adds the probe's data handling: class-balanced sampling with replacement,
// early stopping on validation macro F1 (best weights kept) and chunked prediction.
#include "pl_probe_mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_metrics.h"
#include "pl_optim.h"
#include "pl_rng.h"
#include "pl_train_head.h"
#include "pl_train_layers.h"

enum { MLP_CHUNK = 512 };   // rows per prediction chunk

// Predictions for n rows in chunks of at most s->max_rows (inference: dropout scales all 1).
static void mlp_predict(const PlHeadSpec *s, const PlHeadParams *p, PlHeadActs *a, const PlTrainGemm *g,
                        const float *x, int64_t n, int32_t *pred) {
    const int F = s->in_dim, C = s->out_dim;
    for (int64_t i0 = 0; i0 < n; i0 += s->max_rows) {
        int m = (int)(n - i0 < s->max_rows ? n - i0 : s->max_rows);
        pl_head_set_dropout(s, a, m, NULL);
        pl_head_forward(s, p, a, g, x + (size_t)i0 * F, m);
        for (int i = 0; i < m; i++) {
            const float *z = a->out + (size_t)i * C;
            int best = 0;
            for (int c = 1; c < C; c++)
                if (z[c] > z[best]) best = c;
            pred[i0 + i] = best;
        }
    }
}

static double mlp_macro_f1(const int32_t *y, const int32_t *pred, int64_t n, int C, int64_t *counts) {
    PlClassCounts cc = {C, counts, counts + C, counts + 2 * C};
    pl_metrics_count(y, pred, n, 1, &cc);
    return pl_metrics_macro_f1(&cc, NULL, NULL);
}

PlStatus pl_probe_mlp_run(const PlProbeOptions *o, int C, int F, const float *xtr, const int32_t *ytr, int64_t n_tr,
                          const float *xva, const int32_t *yva, int64_t n_va, const float *xte, int64_t n_te,
                          uint64_t seed, int32_t *pred, int *best_epoch) {
    const int B = o->batch;
    if (n_tr < 1 || n_va < 1 || C < 2 || B < 1) return PL_FAIL(PL_ERR_ARG, "MLP head: needs training and validation rows and 2+ classes");
    if (o->hidden1 != PL_HEAD_MLP_H1 || o->hidden2 != PL_HEAD_MLP_H2)
        return PL_FAIL(PL_ERR_ARG, "MLP head: the DINO4Cells head is %d-%d wide (asked for %d-%d)", PL_HEAD_MLP_H1,
                       PL_HEAD_MLP_H2, o->hidden1, o->hidden2);
    const PlHeadSpec spec = {.kind = PL_HEAD_MLP, .in_dim = F, .out_dim = C, .dropout = (float)o->dropout,
                             .max_rows = B > MLP_CHUNK ? B : MLP_CHUNK};
    PL_TRY(pl_head_spec_check(&spec));
    PlTrainTensor table[PL_HEAD_MAX_TENSORS];
    int ntensors = 0;
    size_t np = 0;
    pl_head_tensors(&spec, "", 0, table, &ntensors, &np);
    PlOptimOptions oo;
    pl_optim_options_default(&oo);   // AdamW, betas 0.9 / 0.999, eps 1e-8, no clipping, no layer decay
    oo.weight_decay = o->wd_start;
    PlOptim *op = NULL;
    PL_TRY(pl_optim_create_for(table, ntensors, np, 0, &oo, &op));

    // one float slab: parameters, gradients, best parameters | the head's activations | batch rows, d(logits)
    const size_t nacts = pl_head_acts_carve(NULL, &spec, NULL);
    float *slab = pl_train_alloc_slab(3 * np + nacts + (size_t)B * F + (size_t)B * C);
    // one integer block: rows by class, class starts and counts | counters | batch labels, validation predictions |
    // dropout keys
    size_t ni = ((size_t)n_tr + 2 * (size_t)C + 1 + 3 * (size_t)C) * sizeof(int64_t) +
                ((size_t)B + (size_t)n_va) * sizeof(int32_t) + (size_t)B * sizeof(uint64_t);
    int64_t *byclass = pl_malloc(ni);
    if (!slab || !byclass) {
        free(slab);
        free(byclass);
        pl_optim_destroy(op);
        return pl_error_wrap("MLP head working memory");
    }
    float *theta = slab, *grad = theta + np, *best = grad + np, *acts_base = best + np, *xb = acts_base + nacts,
          *dz = xb + (size_t)B * F;
    int64_t *cstart = byclass + n_tr, *ccount = cstart + C + 1, *counts = ccount + C;
    uint64_t *keys = (uint64_t *)(counts + 3 * C);
    int32_t *yb = (int32_t *)(keys + B), *pva = yb + B;
    PlHeadParams P, G;
    PlHeadActs A;
    pl_head_point(&P, &spec, table, theta);
    pl_head_point(&G, &spec, table, grad);
    pl_head_acts_carve(&A, &spec, acts_base);
    A.dinp = NULL;   // stored features: no input gradient (pl_head_backward skips that GEMM)
    const PlTrainGemm g = {.k = o->kernels, .precision = PL_PRECISION_FP32, .pool = o->pool};
    pl_head_init(&spec, &P, seed, 0);
    PlRng rng;   // the probe's stream: sampling and the rows' dropout keys
    pl_rng_seed(&rng, seed);

    // rows grouped by class for balanced sampling
    for (int c = 0; c <= C; c++) cstart[c] = 0;
    for (int64_t i = 0; i < n_tr; i++) cstart[ytr[i] + 1]++;
    for (int c = 0; c < C; c++) { ccount[c] = cstart[c + 1]; cstart[c + 1] += cstart[c]; }
    {
        int64_t fill[C];
        for (int c = 0; c < C; c++) fill[c] = cstart[c];
        for (int64_t i = 0; i < n_tr; i++) byclass[fill[ytr[i]]++] = i;
    }
    int present[C], n_present = 0;
    for (int c = 0; c < C; c++) if (ccount[c] > 0) present[n_present++] = c;

    const int64_t steps_per_epoch = (n_tr + B - 1) / B, total = steps_per_epoch * o->epochs;
    int64_t step = 0;
    double best_f1 = -1;
    int since = 0;
    PlStatus st = PL_OK;
    *best_epoch = 0;
    memcpy(best, theta, np * sizeof(float));
    for (int epoch = 1; epoch <= o->epochs && st == PL_OK; epoch++) {
        for (int64_t s = 0; s < steps_per_epoch && st == PL_OK; s++, step++) {
            // class-balanced batch: class uniform over present classes, row uniform within the class; one dropout
            // key per row
            for (int i = 0; i < B; i++) {
                int c = present[pl_rng_below(&rng, n_present)];
                int64_t r = byclass[cstart[c] + pl_rng_below(&rng, ccount[c])];
                memcpy(xb + (size_t)i * F, xtr + (size_t)r * F, (size_t)F * sizeof(float));
                yb[i] = ytr[r];
                keys[i] = pl_rng_next(&rng);
            }
            pl_head_set_dropout(&spec, &A, B, keys);
            pl_head_forward(&spec, &P, &A, &g, xb, B);
            pl_softmax_xent(dz, A.out, yb, B, C, 1.0f / (float)B);
            pl_head_backward(&spec, &P, &G, &A, &g, dz, xb, B);
            // DINO's cosine schedules over all steps: lr (lr -> lr_min), weight decay (wd_start -> wd_end)
            st = pl_optim_set_weight_decay(op, pl_cosine_schedule_at(step, total, 0, o->wd_start, o->wd_end, 0.0));
            if (st == PL_OK)
                pl_optim_step(op, theta, grad, pl_cosine_schedule_at(step, total, 0, o->lr, o->lr_min, 0.0), o->pool,
                              NULL);
        }
        if (st != PL_OK) break;
        mlp_predict(&spec, &P, &A, &g, xva, n_va, pva);
        double f1 = mlp_macro_f1(yva, pva, n_va, C, counts);
        if (!isfinite(theta[0])) break;
        if (f1 > best_f1) {
            best_f1 = f1;
            *best_epoch = epoch;
            memcpy(best, theta, np * sizeof(float));
            since = 0;
        } else if (++since >= o->patience) {
            break;
        }
    }
    for (size_t i = 0; i < np && st == PL_OK; i++)
        if (!isfinite(best[i])) st = PL_FAIL(PL_ERR_NUMERIC, "MLP head: weights became non-finite");
    if (st == PL_OK) {
        PlHeadParams Bp;
        pl_head_point(&Bp, &spec, table, best);
        mlp_predict(&spec, &Bp, &A, &g, xte, n_te, pred);
    }
    pl_optim_destroy(op);
    free(slab);
    free(byclass);
    return st;
}
