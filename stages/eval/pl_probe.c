// Probe driver: label encoding, splits, stratified seeded fractions, standardisation, heads, macro F1 per fraction.
#include "pl_probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pl_metrics.h"
#include "pl_probe_mlp.h"
#include "pl_rng.h"
#include "pl_train_head.h"

uint64_t pl_probe_subset_seed(uint64_t seed, int s, int f) {
    return seed + 1000003ULL * (uint64_t)s + 7919ULL * (uint64_t)f;
}

const char *pl_probe_head_name(PlProbeHead h) { return h == PL_PROBE_MLP ? "mlp" : "logreg"; }

void pl_probe_options_default(PlProbeOptions *o) {
    memset(o, 0, sizeof *o);
    o->use_logreg = 1;
    o->use_mlp = 1;
    static const double one[1] = {1.0};
    o->fractions = one;
    o->n_fractions = 1;
    o->seeds = 1;
    o->train_split = "train";
    o->val_split = "val";
    o->test_split = "test";
    o->val_fraction = 0.1;
    o->C = 1.0;
    o->max_iter = 1000;
    o->tol = 1e-6;
    o->hidden1 = PL_HEAD_MLP_H1;
    o->hidden2 = PL_HEAD_MLP_H2;
    o->dropout = 0.5;
    o->epochs = 100;
    o->batch = 128;
    o->lr = 1e-4;
    o->lr_min = 1e-6;
    o->kernels = pl_kernels_default();
    o->wd_start = 0.04;
    o->wd_end = 0.4;
    o->patience = 10;
}

void pl_probe_result_free(PlProbeResult *r) {
    if (r->classes)
        for (int c = 0; c < r->n_classes; c++) free(r->classes[c]);
    free(r->classes);
    free(r->fractions);
    free(r->macro_f1);
    free(r->accuracy);
    free(r->n_train);
    free(r->epochs_run);
    free(r->f1_mean);
    free(r->f1_std);
    free(r->acc_mean);
    free(r->acc_std);
    free(r->per_class_f1);
    free(r->confusion);
    free(r->support);
    memset(r, 0, sizeof *r);
}

// Class per row (-1 unlabelled, -2 dropped multi-label) from the shared label encoder; r takes the class names.
static PlStatus probe_encode(const PlFeatureSet *fs, PlMultilabel multilabel, PlProbeResult *r, int32_t *cls) {
    PlLabelCoding lc;
    PL_TRY(pl_features_encode_labels(fs, multilabel, 4096, &lc));
    memcpy(cls, lc.cls, (size_t)fs->n * sizeof *cls);
    r->classes = lc.classes;
    r->n_classes = lc.n_classes;
    r->n_skipped = lc.n_multilabel_skipped;
    lc.classes = NULL;
    lc.n_classes = 0;
    pl_label_coding_free(&lc);
    return PL_OK;
}

int64_t pl_probe_subset(const int64_t *pool, int64_t n, const int32_t *cls, int C, double f, uint64_t seed,
                            int64_t *out, int64_t *tmp) {
    PlRng rng;
    pl_rng_seed(&rng, seed);
    int64_t total = 0;
    for (int c = 0; c < C; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++) if (cls[pool[i]] == c) tmp[m++] = pool[i];
        if (m == 0) continue;
        pl_rng_shuffle_i64(&rng, tmp, m);
        int64_t take = f >= 1.0 ? m : (int64_t)llround(f * (double)m);
        if (take < 1) take = 1;
        if (take > m) take = m;
        memcpy(out + total, tmp, (size_t)take * sizeof(int64_t));
        total += take;
    }
    // ascending rows: the subset is independent of class order
    for (int64_t i = 1; i < total; i++) {
        int64_t v = out[i], j = i - 1;
        while (j >= 0 && out[j] > v) { out[j + 1] = out[j]; j--; }
        out[j + 1] = v;
    }
    return total;
}

static int probe_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

// Gather rows into (m, d) standardised with the mean/std of the fitting rows (population std; 0 -> 1).
static void probe_fit_scaler(const float *x, int d, const int64_t *rows, int64_t m, double *mean, double *sd) {
    for (int j = 0; j < d; j++) mean[j] = sd[j] = 0;
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < d; j++) mean[j] += x[(size_t)rows[i] * d + j];
    for (int j = 0; j < d; j++) mean[j] /= (double)m;
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < d; j++) {
            double v = x[(size_t)rows[i] * d + j] - mean[j];
            sd[j] += v * v;
        }
    for (int j = 0; j < d; j++) {
        sd[j] = sqrt(sd[j] / (double)m);
        if (sd[j] < 1e-12) sd[j] = 1;
    }
}

static void probe_gather(const float *x, int d, const int64_t *rows, int64_t m, const double *mean, const double *sd,
                         const int32_t *cls, float *out, int32_t *y) {
    for (int64_t i = 0; i < m; i++) {
        for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)((x[(size_t)rows[i] * d + j] - mean[j]) / sd[j]);
        y[i] = cls[rows[i]];
    }
}

PlStatus pl_probe_evaluate(const PlFeatureSet *fs, const PlProbeOptions *o, PlProbeResult *r) {
    memset(r, 0, sizeof *r);
    if (!o->use_logreg && !o->use_mlp) return PL_FAIL(PL_ERR_ARG, "no probe head selected");
    if (o->n_fractions < 1 || o->seeds < 1) return PL_FAIL(PL_ERR_ARG, "need >= 1 fraction and >= 1 seed");
    if (!o->kernels) return PL_FAIL(PL_ERR_ARG, "probe: no kernel backend (pl_probe_options_default sets the default one)");
    int d = fs->dim;
    size_t n1 = (size_t)fs->n + 1;
    int32_t *cls = pl_malloc(n1 * sizeof(int32_t));
    int64_t *idx = pl_malloc(6 * n1 * sizeof(int64_t));
    double *mean = pl_malloc(2 * (size_t)d * sizeof(double));
    PlStatus st = PL_OK;
    float *xtr = NULL, *xva = NULL, *xte = NULL, *W = NULL;
    int32_t *y = NULL;
    if (!cls || !idx || !mean) { st = PL_ERR_NOMEM; goto done; }
    double *sd = mean + d;
    st = probe_encode(fs, o->multilabel, r, cls);
    if (st != PL_OK) goto done;
    int C = r->n_classes;
    if (C < 2) { st = PL_FAIL(PL_ERR_EMPTY, "the probe needs at least 2 classes (found %d)", C); goto done; }
    int64_t *tr = idx, *va = tr + n1, *te = va + n1, *mlp_tr = te + n1, *sub = mlp_tr + n1, *tmp = sub + n1;
    int64_t ntr = 0, nva = 0, nte = 0;
    for (int64_t i = 0; i < fs->n; i++) {
        if (cls[i] < 0) continue;
        if (strcmp(fs->split[i], o->train_split) == 0) tr[ntr++] = i;
        else if (strcmp(fs->split[i], o->val_split) == 0) va[nva++] = i;
        else if (strcmp(fs->split[i], o->test_split) == 0) te[nte++] = i;
    }
    if (ntr == 0 || nte == 0) {
        st = PL_FAIL(PL_ERR_EMPTY, "the probe needs labelled rows in split '%s' (found %lld) and '%s' (found %lld)",
                     o->train_split, (long long)ntr, o->test_split, (long long)nte);
        goto done;
    }
    // MLP validation rows: the val split, or a stratified share of train (seeded by --seed) held out for the MLP
    int64_t nmlp = ntr;
    memcpy(mlp_tr, tr, (size_t)ntr * sizeof(int64_t));
    if (o->use_mlp && nva == 0) {
        nva = pl_probe_subset(tr, ntr, cls, C, o->val_fraction, o->seed ^ 0x5eedULL, va, tmp);
        nmlp = 0;
        int64_t j = 0;
        for (int64_t i = 0; i < ntr; i++) {
            while (j < nva && va[j] < tr[i]) j++;
            if (!(j < nva && va[j] == tr[i])) mlp_tr[nmlp++] = tr[i];
        }
        if (nmlp == 0) { st = PL_FAIL(PL_ERR_EMPTY, "too few training rows to hold out an MLP validation set"); goto done; }
    }
    r->n_train_total = ntr;
    r->n_val = o->use_mlp ? nva : 0;
    r->n_test = nte;
    int H = o->use_logreg + o->use_mlp, F = o->n_fractions, S = o->seeds;
    r->n_heads = 0;
    if (o->use_logreg) r->heads[r->n_heads++] = PL_PROBE_LOGREG;
    if (o->use_mlp) r->heads[r->n_heads++] = PL_PROBE_MLP;
    r->n_fractions = F;
    r->seeds = S;
    size_t HFS = (size_t)H * F * S;
    r->fractions = pl_malloc((size_t)F * sizeof(double));
    r->macro_f1 = pl_calloc(HFS, sizeof(double));
    r->accuracy = pl_calloc(HFS, sizeof(double));
    r->n_train = pl_calloc(HFS, sizeof(int64_t));
    r->epochs_run = pl_calloc(HFS, sizeof(int));
    r->f1_mean = pl_calloc((size_t)H * F, sizeof(double));
    r->f1_std = pl_calloc((size_t)H * F, sizeof(double));
    r->acc_mean = pl_calloc((size_t)H * F, sizeof(double));
    r->acc_std = pl_calloc((size_t)H * F, sizeof(double));
    r->per_class_f1 = pl_calloc((size_t)H * C, sizeof(double));
    r->confusion = pl_calloc((size_t)H * C * (C + 1), sizeof(int64_t));
    r->support = pl_calloc((size_t)C, sizeof(int64_t));
    xtr = pl_malloc((ntr + 1) * (size_t)d * sizeof(float));
    xva = pl_malloc((nva + 1) * (size_t)d * sizeof(float));
    xte = pl_malloc((nte + 1) * (size_t)d * sizeof(float));
    y = pl_malloc((size_t)(ntr + nva + 2 * nte + 4) * sizeof(int32_t));
    W = pl_malloc(((size_t)d * C + C) * sizeof(float));
    if (!r->fractions || !r->macro_f1 || !r->accuracy || !r->n_train || !r->epochs_run || !r->f1_mean || !r->f1_std ||
        !r->acc_mean || !r->acc_std || !r->per_class_f1 || !r->confusion || !r->support || !xtr || !xva || !xte || !y || !W) {
        st = PL_ERR_NOMEM;
        goto done;
    }
    memcpy(r->fractions, o->fractions, (size_t)F * sizeof(double));
    qsort(va, (size_t)nva, sizeof(int64_t), probe_cmp_i64);
    int32_t *ytr = y, *yva = ytr + ntr, *yte = yva + nva, *pred = yte + nte;
    for (int64_t i = 0; i < nte; i++) r->support[cls[te[i]]]++;
    for (int h = 0; h < H && st == PL_OK; h++) {
        PlProbeHead head = r->heads[h];
        const int64_t *pool = head == PL_PROBE_MLP ? mlp_tr : tr;
        int64_t npool = head == PL_PROBE_MLP ? nmlp : ntr;
        for (int f = 0; f < F && st == PL_OK; f++)
            for (int s = 0; s < S && st == PL_OK; s++) {
                uint64_t seed = o->seed + 1000003ULL * (uint64_t)s;
                int64_t m = pl_probe_subset(pool, npool, cls, C, o->fractions[f], pl_probe_subset_seed(o->seed, s, f),
                                            sub, tmp);
                probe_fit_scaler(fs->x, d, sub, m, mean, sd);
                probe_gather(fs->x, d, sub, m, mean, sd, cls, xtr, ytr);
                probe_gather(fs->x, d, te, nte, mean, sd, cls, xte, yte);
                int iters = 0;
                if (head == PL_PROBE_LOGREG) {
                    st = pl_probe_logreg_fit(o->kernels, o->pool, xtr, ytr, m, d, C, o->C, o->max_iter, o->tol, W,
                                             W + (size_t)d * C, &iters);
                    if (st == PL_OK)
                        pl_probe_linear_predict(o->kernels, o->pool, xte, nte, d, C, W, W + (size_t)d * C, pred);
                } else {
                    probe_gather(fs->x, d, va, nva, mean, sd, cls, xva, yva);
                    st = pl_probe_mlp_run(o, C, d, xtr, ytr, m, xva, yva, nva, xte, nte, seed, pred, &iters);
                }
                if (st != PL_OK) break;
                size_t at = ((size_t)h * F + f) * S + s;
                int64_t cnt[3 * C];
                PlClassCounts cc = {C, cnt, cnt + C, cnt + 2 * C};
                pl_metrics_count(yte, pred, nte, 1, &cc);
                r->macro_f1[at] = pl_metrics_macro_f1(&cc, f == F - 1 && s == 0 ? r->per_class_f1 + (size_t)h * C : NULL, NULL);
                r->accuracy[at] = pl_metrics_accuracy(&cc, nte);
                r->n_train[at] = m;
                r->epochs_run[at] = iters;
                if (f == F - 1 && s == 0) pl_metrics_confusion(yte, pred, nte, 1, C, r->confusion + (size_t)h * C * (C + 1));
            }
        for (int f = 0; f < F; f++) {
            size_t at = ((size_t)h * F + f) * S;
            pl_metrics_mean_std(r->macro_f1 + at, S, &r->f1_mean[(size_t)h * F + f], &r->f1_std[(size_t)h * F + f]);
            pl_metrics_mean_std(r->accuracy + at, S, &r->acc_mean[(size_t)h * F + f], &r->acc_std[(size_t)h * F + f]);
        }
    }
done:
    free(cls); free(idx); free(mean); free(xtr); free(xva); free(xte); free(y); free(W);
    if (st != PL_OK) pl_probe_result_free(r);
    return st;
}
