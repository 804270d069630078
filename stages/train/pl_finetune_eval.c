// Scoring a trainer's weights on a labelled set (see pl_finetune_eval.h).
#include "pl_finetune_eval.h"

#include <stdlib.h>
#include <string.h>

#include "pl_metrics.h"

typedef struct PredictCtx {
    PlVitTrain *t;
    const PlFinetuneData *d;
    float *logits;     // (n, classes)
    int mb;
    float *gather;     // (threads, mb, C, H, W) when the set picks rows
} PredictCtx;

static PlStatus task_predict(void *ctx, int task, int thread) {
    PredictCtx *p = ctx;
    const PlFinetuneData *d = p->d;
    int64_t first = (int64_t)task * p->mb;
    int n = d->n - first < p->mb ? (int)(d->n - first) : p->mb;
    const size_t chw = (size_t)d->C * d->H * d->W;
    const float *x = d->x && !d->rows ? d->x + (size_t)first * chw : NULL;
    if (!x) {   // gather the rows, from memory or from the sample source (lane = the pool thread)
        float *g = p->gather + (size_t)thread * p->mb * chw;
        for (int i = 0; i < n; i++) {
            int64_t row = pl_finetune_row(d, first + i);
            if (d->x) memcpy(g + (size_t)i * chw, d->x + (size_t)row * chw, chw * sizeof(float));
            else PL_TRY(d->samples->read(d->samples->ctx, row, thread, g + (size_t)i * chw));
        }
        x = g;
    }
    PlStatus st = pl_vit_train_predict(p->t, thread, x, n, p->logits + (size_t)first * d->classes);
    return st == PL_OK ? PL_OK : pl_error_wrap("predicting evaluation images %lld..%lld", (long long)first,
                                               (long long)(first + n - 1));
}

PlStatus pl_finetune_evaluate(PlVitTrain *t, PlThreadPool *pool, const PlFinetuneData *d, double *macro_f1,
                              double *accuracy, double *per_class_f1, int64_t *confusion) {
    const int C = d->classes;
    int mb = pl_vit_train_spec(t)->micro_batch, ntasks = (int)((d->n + mb - 1) / mb);
    float *logits = pl_malloc((size_t)d->n * C * sizeof(float));
    int32_t *pred = pl_malloc((size_t)d->n * sizeof(int32_t));
    int64_t *cnt = pl_calloc((size_t)C * 3, sizeof(int64_t));
    int32_t *yt = d->y ? pl_malloc((size_t)d->n * sizeof(int32_t)) : NULL;
    const int gathers = d->rows || !d->x;
    float *gather = gathers ? pl_malloc((size_t)pl_threadpool_size(pool) * mb * d->C * d->H * d->W * sizeof(float)) : NULL;
    PlStatus rc = logits && pred && cnt && (!d->y || yt) && (!gathers || gather) ? PL_OK : PL_ERR_NOMEM;
    if (rc == PL_OK) {
        PredictCtx p = {t, d, logits, mb, gather};
        pl_vit_train_sync(t);
        rc = pl_threadpool_run_checked(pool, task_predict, &p, ntasks);
    }
    if (rc == PL_OK && d->y) {
        for (int64_t i = 0; i < d->n; i++) {
            const float *l = logits + (size_t)i * C;
            int best = 0;
            for (int c = 1; c < C; c++)
                if (l[c] > l[best]) best = c;
            pred[i] = best;
        }
        for (int64_t i = 0; i < d->n; i++) yt[i] = d->y[pl_finetune_row(d, i)];
        PlClassCounts c = {C, cnt, cnt + C, cnt + 2 * C};
        pl_metrics_count(yt, pred, d->n, 1, &c);
        *macro_f1 = pl_metrics_macro_f1(&c, per_class_f1, NULL);
        *accuracy = pl_metrics_accuracy(&c, d->n);
        if (confusion) pl_metrics_confusion(yt, pred, d->n, 1, C, confusion);
    } else if (rc == PL_OK) {   // multi-label: logit > 0
        int64_t *tp = cnt, *fp = cnt + C, *fn = cnt + 2 * C, exact = 0;
        for (int64_t i = 0; i < d->n; i++) {
            int all = 1;
            for (int c = 0; c < C; c++) {
                int p = logits[(size_t)i * C + c] > 0.0f;
                int y = d->targets[(size_t)pl_finetune_row(d, i) * C + c] >= 0.5f;
                tp[c] += p && y;
                fp[c] += p && !y;
                fn[c] += !p && y;
                all &= p == y;
            }
            exact += all;
        }
        PlClassCounts c = {C, tp, fp, fn};
        *macro_f1 = pl_metrics_macro_f1(&c, per_class_f1, NULL);   // classes with tp + fp + fn > 0
        *accuracy = d->n ? (double)exact / (double)d->n : 0.0;
    }
    free(logits);
    free(pred);
    free(cnt);
    free(yt);
    free(gather);
    return rc;
}
