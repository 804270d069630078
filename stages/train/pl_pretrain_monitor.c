// Monitoring a DINO pretraining run: the teacher backbone's kNN macro F1 and the collapse check (pl_pretrain_monitor.h).
#include "pl_pretrain_monitor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_dino_augment.h"
#include "pl_features.h"
#include "pl_knn_eval.h"
#include "pl_train_augment.h"

typedef struct EmbedCtx {
    PlVitTrain *teacher;
    const PlPretrainImageSet *im;
    int size, D;
    const int64_t *rows;
    float *feat;          // (n, D)
    float *scratch;       // per thread: the image, the view, the resize's scratch
    size_t per_thread;
} EmbedCtx;

static PlStatus embed_one(void *ctx, int task, int thread) {
    EmbedCtx *e = ctx;
    const PlPretrainImageSet *im = e->im;
    const size_t chw = (size_t)im->C * im->H * im->W;
    float *img = e->scratch + (size_t)thread * e->per_thread, *view = img + chw,
          *rs = view + (size_t)im->C * e->size * e->size;
    const int64_t row = e->rows[task];
    const float *src = im->x ? im->x + (size_t)row * chw : img;
    if (!im->x) PL_TRY(im->samples->read(im->samples->ctx, row, thread, img));
    for (int c = 0; c < im->C; c++)
        pl_dino_resize_bicubic(src + (size_t)c * im->H * im->W, im->W, 0, 0, im->H, im->W, e->size,
                               view + (size_t)c * e->size * e->size, rs);
    pl_standardise_channels(view, im->C, e->size, e->size);
    const float *f;
    PL_TRY(pl_vit_train_backbone_forward(e->teacher, thread, 0, view, 1, e->size, e->size, NULL, &f));
    memcpy(e->feat + (size_t)task * e->D, f, (size_t)e->D * sizeof(float));
    return PL_OK;
}

PlStatus pl_pretrain_knn(PlVitTrain *teacher, const PlPretrainImageSet *im, int size, const PlPretrainLabels *lab,
                         PlThreadPool *pool, double *best_f1, int *best_k, double *f1_k20) {
    *best_f1 = NAN;
    *best_k = 0;
    *f1_k20 = NAN;
    const int64_t n = lab->n_train + lab->n_test;
    if (lab->n_train < 2 || lab->n_classes < 2) return PL_OK;   // nothing to score
    const int D = pl_vit_train_spec(teacher)->cfg.dim, threads = pool ? pl_threadpool_size(pool) : 1;
    EmbedCtx e = {.teacher = teacher, .im = im, .size = size, .D = D};
    e.per_thread = (size_t)im->C * im->H * im->W + (size_t)im->C * size * size + (size_t)im->H * size + 10 * (size_t)size;
    e.rows = NULL;
    int64_t *rows = pl_malloc(((size_t)n + 1) * sizeof *rows);
    e.feat = pl_malloc(((size_t)n * D + 1) * sizeof(float));
    e.scratch = pl_malloc(((size_t)threads * e.per_thread + 1) * sizeof(float));
    PlFeatureSet fs = {0};
    fs.label = pl_calloc((size_t)n + 1, sizeof *fs.label);
    fs.split = pl_calloc((size_t)n + 1, sizeof *fs.split);
    fs.id = pl_calloc((size_t)n + 1, sizeof *fs.id);
    PlStatus st = rows && e.feat && e.scratch && fs.label && fs.split && fs.id ? PL_OK : PL_ERR_NOMEM;
    for (int64_t i = 0; st == PL_OK && i < n; i++) {
        int64_t row = i < lab->n_train ? lab->train[i] : lab->test[i - lab->n_train];
        rows[i] = row;
        int32_t c = lab->cls[row];
        fs.label[i] = (char *)(c >= 0 && c < lab->n_classes ? lab->class_names[c] : "");
        fs.split[i] = (char *)(i < lab->n_train ? "train" : "test");
        fs.id[i] = (char *)"";
    }
    e.rows = rows;
    if (st == PL_OK) st = pl_threadpool_run_checked(pool, embed_one, &e, (int)n);
    PlKnnResult r = {0};
    if (st == PL_OK) {
        fs.n = n;
        fs.dim = D;
        fs.x = e.feat;
        PlKnnOptions o;
        pl_knn_options_default(&o);
        o.pool = pool;
        if (lab->n_test == 0) o.protocol = PL_KNN_LOO;
        st = pl_knn_evaluate(&fs, &o, &r);
    }
    if (st == PL_OK) {
        *best_k = r.best_k;
        *best_f1 = r.f1_mean[r.best_k - 1];
        *f1_k20 = r.K >= 20 ? r.f1_mean[19] : r.f1_mean[r.K - 1];
    }
    pl_knn_result_free(&r);
    free(fs.label);
    free(fs.split);
    free(fs.id);
    free(rows);
    free(e.feat);
    free(e.scratch);
    return st;
}

int pl_pretrain_collapse(double entropy, int K) {
    const double logk = log((double)K);
    if (!(entropy == entropy)) return 0;
    if (entropy > 0.97 * logk) return 1;
    if (entropy < 0.03 * logk) return 2;
    return 0;
}
