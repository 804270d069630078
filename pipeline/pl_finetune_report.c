// Reports, plots, the fine-tuned model card and the grid summary of `protloc finetune` (see pl_finetune_report.h).
#include "pl_finetune_report.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_digest.h"
#include "pl_fs.h"
#include "pl_metrics.h"
#include "pl_plot.h"

static json_t *doubles(const double *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n && a; i++) json_array_append_new(a, isfinite(v[i]) ? json_real(v[i]) : json_null());
    return a;
}

static PlStatus write_json(const char *path, json_t *j) {
    if (!j) return PL_FAIL(PL_ERR_INTERNAL, "cannot build %s", path);
    char *text = json_dumps(j, JSON_INDENT(1));
    json_decref(j);
    if (!text) return PL_ERR_NOMEM;
    PlStatus st = pl_file_write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

static json_t *options_json(const PlFinetuneOptions *o, const PlVitTrainSpec *sp, const PlFinetuneResult *r) {
    return json_pack("{s:s, s:f, s:f, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:I, s:I, s:i, s:i, s:i, s:f, "
                     "s:b, s:b, s:b, s:I, s:s, s:b, s:I, s:s, s:i, s:i, s:s, s:f}",
                     "optimizer", o->optim.kind == PL_OPTIM_SGD ? "sgd" : "adamw", "lr", r->peak_lr, "base_lr",
                     o->base_lr, "lr_scaling", o->lr <= 0 && !o->no_lr_scaling, "min_lr", o->min_lr, "momentum",
                     o->optim.momentum, "weight_decay", o->optim.weight_decay, "betas_0", o->optim.beta1, "betas_1",
                     o->optim.beta2, "eps", o->optim.eps, "layer_decay", o->optim.layer_decay, "clip", o->optim.clip,
                     "schedule", o->schedule_constant ? "constant" : "cosine", "warmup_steps", (json_int_t)o->warmup_steps,
                     "steps", (json_int_t)r->steps, "epochs", o->epochs, "batch", o->batch, "micro_batch",
                     sp->micro_batch, "drop_path", (double)sp->drop_path, "augment", o->augment, "shuffle", o->shuffle,
                     "balanced", o->balanced, "seed", (json_int_t)o->seed, "reduce", o->allreduce ? "allreduce" : "tree", "recompute",
                     sp->recompute, "checkpoint_every", (json_int_t)o->checkpoint_every, "loss",
                     sp->loss == PL_LOSS_BCE ? "bce_with_logits" : "cross_entropy", "height", sp->height, "width",
                     sp->width, "head", sp->head_mlp ? "mlp" : "linear", "head_dropout", (double)sp->head_dropout);
}

PlStatus ft_report_write(const char *dir, const PlFinetuneOptions *o, const PlVitTrainSpec *sp,
                         const PlFinetuneResult *r, const FtRunInfo *info) {
    const int C = sp->classes;
    json_t *classes = json_array();
    for (int c = 0; c < C && classes; c++) {
        char id[16];
        snprintf(id, sizeof id, "%d", c);
        json_array_append_new(classes, json_string(info->classes ? info->classes[c] : id));
    }
    json_t *conf = json_null();
    if (r->confusion) {
        conf = json_array();
        for (int i = 0; i < C; i++) {
            json_t *row = json_array();
            for (int j = 0; j <= C; j++) json_array_append_new(row, json_integer(r->confusion[(size_t)i * (C + 1) + j]));
            json_array_append_new(conf, row);
        }
    }
    json_t *j = json_pack(
        "{s:s, s:o, s:{s:s, s:s?, s:i, s:i, s:i, s:i, s:i, s:i}, s:{s:s, s:f, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:o},"
        " s:{s:I, s:I, s:f, s:f, s:f, s:i, s:o, s:o, s:i, s:o, s:s, s:I, s:f, s:f, s:o, s:o},"
        " s:{s:i, s:i, s:s, s:s, s:f, s:f, s:I}}",
        "command", "finetune", "options", options_json(o, sp, r), "model", "weights", info->model, "head_init",
        info->head_init, "dim", sp->cfg.dim, "depth", sp->cfg.depth, "heads", sp->cfg.heads, "patch", sp->cfg.patch,
        "in_chans", sp->cfg.in_chans, "classes", C, "data", "source", info->data, "fraction", info->fraction,
        "fraction_index", info->fraction_index, "seed_index", info->seed_index, "subset_seed",
        (json_int_t)info->subset_seed, "train_seed", (json_int_t)info->train_seed, "n_train", (json_int_t)info->n_train,
        "n_train_total", (json_int_t)info->n_train_total, "n_val", (json_int_t)info->n_val, "n_test",
        (json_int_t)info->n_test, "class_names", classes, "results", "steps", (json_int_t)r->steps, "start_step",
        (json_int_t)r->start_step, "first_loss", r->first_loss, "last_loss", r->last_loss, "img_per_s", r->img_per_s,
        "epochs", r->n_epochs, "epoch_loss", doubles(r->epoch_loss, r->n_epochs), "epoch_val_macro_f1",
        r->epoch_val_f1 ? doubles(r->epoch_val_f1, r->n_epochs) : json_null(), "best_epoch", r->best_epoch,
        "best_val_macro_f1", isfinite(r->best_val_f1) ? json_real(r->best_val_f1) : json_null(), "eval_split",
        r->eval_split ? r->eval_split : "train", "n_eval", (json_int_t)r->n_eval, "macro_f1", r->eval_macro_f1,
        "accuracy", r->eval_accuracy, "per_class_f1", doubles(r->per_class_f1, r->per_class_f1 ? C : 0), "confusion",
        conf, "execution", "ranks", info->ranks, "threads", info->threads, "kernels", info->kernels,
        "precision", info->precision,
        "memory_bytes_per_rank", info->memory_bytes, "activation_bytes_per_thread", info->activation_bytes, "parameters",
        (json_int_t)info->params);
    char path[4096];
    snprintf(path, sizeof path, "%s/report.json", dir);
    PL_TRY(write_json(path, j));
    char base[4096], title[256];
    snprintf(base, sizeof base, "%s/training_loss", dir);
    PL_TRY(pl_plot_curve(base, r->epoch_loss, r->n_epochs, r->best_epoch, "epoch", "training loss", "Fine-tuning loss"));
    if (r->epoch_val_f1) {
        snprintf(base, sizeof base, "%s/training_val_f1", dir);
        PL_TRY(pl_plot_curve(base, r->epoch_val_f1, r->n_epochs, r->best_epoch, "epoch", "validation macro F1",
                             "Validation macro F1 (best epoch marked)"));
    }
    char **names = pl_calloc((size_t)C, sizeof(char *));
    char (*ids)[16] = pl_malloc((size_t)C * 16);
    PlStatus st = names && ids ? PL_OK : PL_ERR_NOMEM;
    for (int c = 0; c < C && st == PL_OK; c++) {
        snprintf(ids[c], 16, "%d", c);
        names[c] = info->classes ? info->classes[c] : ids[c];
    }
    snprintf(title, sizeof title, "Fine-tuned, %s split: macro F1 %.3f", r->eval_split ? r->eval_split : "train",
             r->eval_macro_f1);
    if (st == PL_OK && r->confusion) {
        snprintf(base, sizeof base, "%s/confusion", dir);
        st = pl_plot_confusion(base, r->confusion, C, names, title);
    }
    if (st == PL_OK && r->per_class_f1) {
        snprintf(base, sizeof base, "%s/class_f1", dir);
        st = pl_plot_class_f1(base, r->per_class_f1, C, names, title);
    }
    free(names);
    free(ids);
    return st;
}

PlStatus ft_card_write(const PlModelCard *card, const char *dir) {
    char path[4096], hex[65];
    snprintf(path, sizeof path, "%s/backbone.safetensors", dir);
    PL_TRY(pl_sha256_file(path, hex));
    json_error_t err;
    json_t *j = json_loads(card->json, 0, &err);
    if (!j) return PL_FAIL(PL_ERR_INTERNAL, "cannot re-read the model card's JSON: %s", err.text);
    char name[512];
    snprintf(name, sizeof name, "%s-finetuned", card->name ? card->name : "model");
    json_object_set_new(j, "weights", json_string("backbone.safetensors"));
    json_object_set_new(j, "sha256", json_string(hex));
    json_object_set_new(j, "name", json_string(name));
    json_object_del(j, "checkpoint_key");
    snprintf(path, sizeof path, "%s/model.json", dir);
    return write_json(path, j);
}

#define FT_MAX_FRACTIONS 64

typedef struct GridCell {
    double fraction;
    int n;
    double f1[256], acc[256], ntrain[256];
} GridCell;

static int cmp_cell(const void *a, const void *b) {
    double x = ((const GridCell *)a)->fraction, y = ((const GridCell *)b)->fraction;
    return x < y ? -1 : x > y;
}

// The logreg macro F1 mean/std of a probe report at the given fractions (NaN where the probe lacks a fraction).
static PlStatus probe_series(const char *path, const GridCell *cells, int F, double *mean, double *std) {
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) return PL_FAIL(PL_ERR_FORMAT, "%s:%d: %s", path, err.line, err.text);
    json_t *root = json_object_get(j, "fractions") ? j : json_object_get(j, "probe");
    json_t *fr = root ? json_object_get(root, "fractions") : NULL;
    json_t *lr = root ? json_object_get(json_object_get(root, "heads"), "logreg") : NULL;
    json_t *mu = lr ? json_object_get(lr, "macro_f1_mean") : NULL, *sd = lr ? json_object_get(lr, "macro_f1_std") : NULL;
    if (!json_is_array(fr) || !json_is_array(mu) || !json_is_array(sd)) {
        json_decref(j);
        return PL_FAIL(PL_ERR_FORMAT, "%s is not a `protloc probe` report with a logreg head (fractions, "
                                      "heads.logreg.macro_f1_mean/std)", path);
    }
    for (int f = 0; f < F; f++) {
        mean[f] = std[f] = NAN;
        for (size_t i = 0; i < json_array_size(fr); i++)
            if (fabs(json_number_value(json_array_get(fr, i)) - cells[f].fraction) < 1e-9) {
                mean[f] = json_number_value(json_array_get(mu, i));
                std[f] = json_number_value(json_array_get(sd, i));
            }
    }
    json_decref(j);
    return PL_OK;
}

PlStatus ft_collect(const char *dir, const char *probe_json) {
    DIR *d = opendir(dir);
    if (!d) return PL_FAIL(PL_ERR_IO, "cannot read the folder %s", dir);
    GridCell *cells = pl_calloc(FT_MAX_FRACTIONS, sizeof *cells);
    if (!cells) {
        closedir(d);
        return PL_ERR_NOMEM;
    }
    int F = 0, runs = 0;
    PlStatus st = PL_OK;
    struct dirent *e;
    while ((e = readdir(d)) && st == PL_OK) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/report.json", dir, e->d_name);
        json_error_t err;
        json_t *j = json_load_file(path, 0, &err);
        if (!j) continue;   // not a run folder (or a run still going)
        json_t *data = json_object_get(j, "data"), *res = json_object_get(j, "results");
        double frac = json_number_value(json_object_get(data, "fraction"));
        int c = 0;
        while (c < F && fabs(cells[c].fraction - frac) > 1e-12) c++;
        if (c == F && F == FT_MAX_FRACTIONS) st = PL_FAIL(PL_ERR_LIMIT, "more than %d fractions in %s", F, dir);
        if (st == PL_OK && c == F) cells[F++].fraction = frac;
        if (st == PL_OK && cells[c].n < 256) {
            GridCell *g = &cells[c];
            g->f1[g->n] = json_number_value(json_object_get(res, "macro_f1"));
            g->acc[g->n] = json_number_value(json_object_get(res, "accuracy"));
            g->ntrain[g->n] = (double)json_integer_value(json_object_get(data, "n_train"));
            g->n++;
            runs++;
        }
        json_decref(j);
    }
    closedir(d);
    if (st == PL_OK && runs == 0) st = PL_FAIL(PL_ERR_EMPTY, "no run reports (*/report.json) in %s", dir);
    if (st != PL_OK) {
        free(cells);
        return st;
    }
    qsort(cells, (size_t)F, sizeof *cells, cmp_cell);
    double fr[FT_MAX_FRACTIONS], mean[2 * FT_MAX_FRACTIONS], std[2 * FT_MAX_FRACTIONS];
    char *tsv = pl_malloc((size_t)F * 160 + 256);
    json_t *rows = json_array();
    if (!tsv || !rows) st = PL_ERR_NOMEM;
    size_t u = 0;
    if (st == PL_OK)
        u += (size_t)sprintf(tsv, "fraction\truns\tn_train_mean\tmacro_f1_mean\tmacro_f1_std\taccuracy_mean\taccuracy_std\n");
    for (int f = 0; f < F && st == PL_OK; f++) {
        double am, as, nm, ns;
        fr[f] = cells[f].fraction;
        pl_metrics_mean_std(cells[f].f1, cells[f].n, &mean[f], &std[f]);
        pl_metrics_mean_std(cells[f].acc, cells[f].n, &am, &as);
        pl_metrics_mean_std(cells[f].ntrain, cells[f].n, &nm, &ns);
        u += (size_t)sprintf(tsv + u, "%g\t%d\t%.1f\t%.6f\t%.6f\t%.6f\t%.6f\n", fr[f], cells[f].n, nm, mean[f], std[f], am, as);
        json_array_append_new(rows, json_pack("{s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:o}", "fraction", fr[f], "runs",
                                              cells[f].n, "n_train_mean", nm, "macro_f1_mean", mean[f], "macro_f1_std",
                                              std[f], "accuracy_mean", am, "accuracy_std", as, "macro_f1_runs",
                                              doubles(cells[f].f1, cells[f].n)));
    }
    int series = 1;
    if (st == PL_OK && probe_json) {
        st = probe_series(probe_json, cells, F, mean + F, std + F);
        series = 2;
    }
    char path[4096];
    if (st == PL_OK) {
        snprintf(path, sizeof path, "%s/grid.tsv", dir);
        st = pl_file_write_atomic(path, tsv, u);
    }
    if (st == PL_OK) {
        json_t *j = json_pack("{s:s, s:o, s:s?}", "command", "finetune grid", "fractions", rows, "probe_report", probe_json);
        rows = NULL;
        snprintf(path, sizeof path, "%s/grid.json", dir);
        st = write_json(path, j);
    }
    if (st == PL_OK) {
        const char *names[2] = {"fine-tuned", "frozen + logreg"};
        snprintf(path, sizeof path, "%s/grid", dir);
        st = pl_plot_f1_vs_fraction(path, fr, F, series, names, mean, std, "Macro F1 vs fine-tuning data fraction");
    }
    json_decref(rows);
    free(tsv);
    free(cells);
    return st;
}
