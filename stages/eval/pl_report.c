// JSON / CSV / printed summaries of kNN and probe evaluations (see pl_report.h).
#include "pl_report.h"

#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"

PlStatus pl_report_write_json(const char *path, json_t *root) {
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (!text) return PL_FAIL(PL_ERR_NOMEM, "%s: cannot serialise the JSON report", path);
    size_t len = strlen(text);
    PlStatus st = pl_file_write_atomic(path, text, len);
    free(text);
    return st;
}

static json_t *report_doubles(const double *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static json_t *report_classes(char **classes, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(classes[i]));
    return a;
}

static json_t *report_confusion(const int64_t *conf, int C) {
    json_t *m = json_array();
    for (int a = 0; a < C; a++) {
        json_t *row = json_array();
        for (int b = 0; b <= C; b++) json_array_append_new(row, json_integer(conf[(size_t)a * (C + 1) + b]));
        json_array_append_new(m, row);
    }
    return m;
}

json_t *pl_report_knn_json(const PlKnnResult *r, const json_t *config) {
    json_t *o = json_object();
    int K = r->K, C = r->n_classes;
    json_t *ks = json_array();
    for (int k = 1; k <= K; k++) json_array_append_new(ks, json_integer(k));
    json_object_set_new(o, "k", ks);
    json_object_set_new(o, "macro_f1", report_doubles(r->f1_mean, K));
    json_object_set_new(o, "accuracy", report_doubles(r->acc_mean, K));
    json_object_set_new(o, "macro_f1_mean", report_doubles(r->f1_mean, K));
    json_object_set_new(o, "macro_f1_std", report_doubles(r->f1_std, K));
    json_object_set_new(o, "accuracy_mean", report_doubles(r->acc_mean, K));
    json_object_set_new(o, "accuracy_std", report_doubles(r->acc_std, K));
    json_object_set_new(o, "n_runs", json_integer(r->n_runs));
    if (r->n_runs > 1) {
        json_t *runs = json_array();
        for (int i = 0; i < r->n_runs; i++) json_array_append_new(runs, report_doubles(r->macro_f1 + (size_t)i * K, K));
        json_object_set_new(o, "runs_macro_f1", runs);
    }
    json_object_set_new(o, "best_k", json_integer(r->best_k));
    json_object_set_new(o, "best_macro_f1", json_real(r->f1_mean[r->best_k - 1]));
    json_object_set_new(o, "min_macro_f1", json_real(0));
    double mn = r->f1_mean[0];
    for (int k = 1; k < K; k++) if (r->f1_mean[k] < mn) mn = r->f1_mean[k];
    json_object_set_new(o, "min_macro_f1", json_real(mn));
    json_object_set_new(o, "classes", report_classes(r->classes, C));
    json_t *sup = json_array();
    for (int c = 0; c < C; c++) json_array_append_new(sup, json_integer(r->support[c]));
    json_object_set_new(o, "support", sup);
    json_object_set_new(o, "per_class_f1_best_k", report_doubles(r->per_class_f1 + (size_t)(r->best_k - 1) * C, C));
    json_object_set_new(o, "confusion_best_k", report_confusion(r->confusion + (size_t)(r->best_k - 1) * C * (C + 1), C));
    json_object_set_new(o, "n_queries", json_integer(r->n_queries));
    json_object_set_new(o, "n_references", json_integer(r->n_refs));
    json_object_set_new(o, "n_multilabel_skipped", json_integer(r->n_multilabel_skipped));
    json_object_set_new(o, "n_unlabelled", json_integer(r->n_unlabelled));
    json_object_set_new(o, "seconds_search", json_real(r->seconds_search));
    json_object_set_new(o, "seconds_score", json_real(r->seconds_score));
    if (config) json_object_set_new(o, "config", json_deep_copy(config));
    return o;
}

PlStatus pl_report_knn_csv(const char *path, const PlKnnResult *r) {
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, path));
    fprintf(af.fp, "k,macro_f1,macro_f1_std,accuracy,accuracy_std\n");
    for (int k = 0; k < r->K; k++)
        fprintf(af.fp, "%d,%.6f,%.6f,%.6f,%.6f\n", k + 1, r->f1_mean[k], r->f1_std[k], r->acc_mean[k], r->acc_std[k]);
    if (ferror(af.fp)) {
        pl_atomic_abort(&af);
        return PL_FAIL(PL_ERR_IO, "%s: write failed", path);
    }
    return pl_atomic_commit(&af);
}

// CSV field: quote when it contains a comma, quote or newline.
static void report_csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

PlStatus pl_report_knn_class_csv(const char *path, const PlKnnResult *r) {
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, path));
    int C = r->n_classes;
    fprintf(af.fp, "class,support,f1_at_best_k\n");
    for (int c = 0; c < C; c++) {
        report_csv_field(af.fp, r->classes[c]);
        fprintf(af.fp, ",%lld,%.6f\n", (long long)r->support[c], r->per_class_f1[(size_t)(r->best_k - 1) * C + c]);
    }
    if (ferror(af.fp)) {
        pl_atomic_abort(&af);
        return PL_FAIL(PL_ERR_IO, "%s: write failed", path);
    }
    return pl_atomic_commit(&af);
}

void pl_report_knn_summary(FILE *out, const PlKnnResult *r) {
    int K = r->K;
    double mn = r->f1_mean[0];
    int kmin = 1;
    for (int k = 1; k < K; k++)
        if (r->f1_mean[k] < mn) mn = r->f1_mean[k], kmin = k + 1;
    fprintf(out, "kNN: %lld scored queries, %lld references, %d classes, k = 1..%d, %d run(s)\n",
            (long long)r->n_queries, (long long)r->n_refs, r->n_classes, K, r->n_runs);
    fprintf(out, "  best   k = %-4d macro F1 %.4f ± %.4f  accuracy %.4f\n", r->best_k, r->f1_mean[r->best_k - 1],
            r->f1_std[r->best_k - 1], r->acc_mean[r->best_k - 1]);
    fprintf(out, "  lowest k = %-4d macro F1 %.4f ± %.4f (every k >= %.4f)\n", kmin, mn, r->f1_std[kmin - 1], mn);
    static const int show[] = {1, 5, 10, 20, 50, 100, 200};
    for (size_t i = 0; i < sizeof show / sizeof show[0]; i++)
        if (show[i] <= K)
            fprintf(out, "  k = %-4d macro F1 %.4f ± %.4f  accuracy %.4f\n", show[i], r->f1_mean[show[i] - 1],
                    r->f1_std[show[i] - 1], r->acc_mean[show[i] - 1]);
}

json_t *pl_report_probe_json(const PlProbeResult *r, const json_t *config) {
    json_t *o = json_object();
    int F = r->n_fractions, S = r->seeds, C = r->n_classes;
    json_object_set_new(o, "fractions", report_doubles(r->fractions, F));
    json_object_set_new(o, "seeds", json_integer(S));
    json_object_set_new(o, "classes", report_classes(r->classes, C));
    json_t *sup = json_array();
    for (int c = 0; c < C; c++) json_array_append_new(sup, json_integer(r->support[c]));
    json_object_set_new(o, "support", sup);
    json_t *heads = json_object();
    for (int h = 0; h < r->n_heads; h++) {
        json_t *x = json_object();
        json_object_set_new(x, "macro_f1_mean", report_doubles(r->f1_mean + (size_t)h * F, F));
        json_object_set_new(x, "macro_f1_std", report_doubles(r->f1_std + (size_t)h * F, F));
        json_object_set_new(x, "accuracy_mean", report_doubles(r->acc_mean + (size_t)h * F, F));
        json_object_set_new(x, "accuracy_std", report_doubles(r->acc_std + (size_t)h * F, F));
        json_t *runs = json_array(), *ntr = json_array(), *ep = json_array();
        for (int f = 0; f < F; f++) {
            json_array_append_new(runs, report_doubles(r->macro_f1 + ((size_t)h * F + f) * S, S));
            json_t *a = json_array(), *b = json_array();
            for (int s = 0; s < S; s++) {
                json_array_append_new(a, json_integer(r->n_train[((size_t)h * F + f) * S + s]));
                json_array_append_new(b, json_integer(r->epochs_run[((size_t)h * F + f) * S + s]));
            }
            json_array_append_new(ntr, a);
            json_array_append_new(ep, b);
        }
        json_object_set_new(x, "runs_macro_f1", runs);
        json_object_set_new(x, "n_train", ntr);
        json_object_set_new(x, r->heads[h] == PL_PROBE_MLP ? "best_epoch" : "iterations", ep);
        json_object_set_new(x, "per_class_f1", report_doubles(r->per_class_f1 + (size_t)h * C, C));
        json_object_set_new(x, "confusion", report_confusion(r->confusion + (size_t)h * C * (C + 1), C));
        json_object_set_new(heads, pl_probe_head_name(r->heads[h]), x);
    }
    json_object_set_new(o, "heads", heads);
    json_object_set_new(o, "n_train", json_integer(r->n_train_total));
    json_object_set_new(o, "n_val", json_integer(r->n_val));
    json_object_set_new(o, "n_test", json_integer(r->n_test));
    json_object_set_new(o, "n_skipped", json_integer(r->n_skipped));
    if (config) json_object_set_new(o, "config", json_deep_copy(config));
    return o;
}

PlStatus pl_report_probe_csv(const char *path, const PlProbeResult *r) {
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, path));
    int F = r->n_fractions, S = r->seeds;
    fprintf(af.fp, "head,fraction,n_train_mean,macro_f1_mean,macro_f1_std,accuracy_mean,accuracy_std,runs\n");
    for (int h = 0; h < r->n_heads; h++)
        for (int f = 0; f < F; f++) {
            double nt = 0;
            for (int s = 0; s < S; s++) nt += (double)r->n_train[((size_t)h * F + f) * S + s];
            size_t i = (size_t)h * F + f;
            fprintf(af.fp, "%s,%g,%.1f,%.6f,%.6f,%.6f,%.6f,%d\n", pl_probe_head_name(r->heads[h]), r->fractions[f],
                    nt / S, r->f1_mean[i], r->f1_std[i], r->acc_mean[i], r->acc_std[i], S);
        }
    if (ferror(af.fp)) {
        pl_atomic_abort(&af);
        return PL_FAIL(PL_ERR_IO, "%s: write failed", path);
    }
    return pl_atomic_commit(&af);
}

void pl_report_probe_summary(FILE *out, const PlProbeResult *r) {
    int F = r->n_fractions;
    fprintf(out, "probe: %lld train, %lld val, %lld test rows, %d classes, %d seed(s)\n", (long long)r->n_train_total,
            (long long)r->n_val, (long long)r->n_test, r->n_classes, r->seeds);
    for (int h = 0; h < r->n_heads; h++)
        for (int f = 0; f < F; f++) {
            size_t i = (size_t)h * F + f;
            fprintf(out, "  %-6s fraction %-5g macro F1 %.4f ± %.4f  accuracy %.4f ± %.4f\n",
                    pl_probe_head_name(r->heads[h]), r->fractions[f], r->f1_mean[i], r->f1_std[i], r->acc_mean[i],
                    r->acc_std[i]);
        }
}
