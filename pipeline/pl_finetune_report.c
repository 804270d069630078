// Reports, plots, the fine-tuned model card and the grid summary of `protloc finetune` (see pl_finetune_report.h).
#include "pl_finetune_report.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pl_digest.h"
#include "pl_fs.h"
#include "pl_log.h"
#include "pl_metrics.h"
#include "pl_plot.h"

// snprintf into a fixed buffer, failing (naming `what`) instead of cutting the text short.
static PlStatus fmt_into(char *buf, size_t size, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static PlStatus fmt_into(char *buf, size_t size, const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0) return PL_FAIL(PL_ERR_INTERNAL, "cannot format %s", what);
    if ((size_t)n >= size)
        return PL_FAIL(PL_ERR_LIMIT, "%s would be %d bytes, more than the %zu allowed: %s", what, n, size - 1, buf);
    return PL_OK;
}

static json_t *doubles(const double *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n && a; i++) json_array_append_new(a, isfinite(v[i]) ? json_real(v[i]) : json_null());
    return a;
}

static PlStatus write_json(const char *path, json_t *j) {
    if (!j) return PL_FAIL(PL_ERR_INTERNAL, "cannot build %s", path);
    char *text = json_dumps(j, JSON_INDENT(1));
    json_decref(j);
    if (!text) return PL_FAIL(PL_ERR_NOMEM, "cannot serialise %s", path);
    PlStatus st = pl_file_write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

PlStatus ft_fingerprint(const char *weights, const char *checkpoint_key, const char *head_init, const char *source,
                        const char *labels, FtFingerprint *fp) {
    memset(fp, 0, sizeof *fp);
    PlStatus st = pl_sha256_file(weights, fp->weights_sha256);
    if (st != PL_OK) pl_error_wrap("the fingerprint of the weights");
    if (st == PL_OK && head_init && (st = pl_sha256_file(head_init, fp->head_init_sha256)) != PL_OK)
        pl_error_wrap("the fingerprint of --head-init");
    if (st == PL_OK && (st = pl_sha256_file(source, fp->source_sha256)) != PL_OK)
        pl_error_wrap("the fingerprint of the training data");
    if (st == PL_OK && labels && (st = pl_sha256_file(labels, fp->labels_sha256)) != PL_OK)
        pl_error_wrap("the fingerprint of the labels");
    if (st != PL_OK) {
        memset(fp, 0, sizeof *fp);
        return st;
    }
    fp->checkpoint_key = checkpoint_key;
    fp->labels = labels;
    return PL_OK;
}

// report.json's model.{weights_sha256, checkpoint_key, head_init_sha256} and data.{source_sha256, labels,
// labels_sha256}: what ft_collect compares across the runs of a grid.
static PlStatus add_fingerprint(json_t *j, const FtFingerprint *fp, const char *path) {
    json_t *model = json_object_get(j, "model"), *data = json_object_get(j, "data");
    int bad = !json_is_object(model) || !json_is_object(data);
    if (!bad) bad |= json_object_set_new(model, "weights_sha256", json_string(fp->weights_sha256));
    if (!bad && fp->checkpoint_key)
        bad |= json_object_set_new(model, "checkpoint_key", json_string(fp->checkpoint_key));
    if (!bad && fp->head_init_sha256[0])
        bad |= json_object_set_new(model, "head_init_sha256", json_string(fp->head_init_sha256));
    if (!bad) bad |= json_object_set_new(data, "source_sha256", json_string(fp->source_sha256));
    if (!bad && fp->labels) bad |= json_object_set_new(data, "labels", json_string(fp->labels));
    if (!bad && fp->labels) bad |= json_object_set_new(data, "labels_sha256", json_string(fp->labels_sha256));
    return bad ? PL_FAIL(PL_ERR_INTERNAL, "cannot add the model and data fingerprint to %s", path) : PL_OK;
}

// execution.memory: the per-rank estimate's total and parts, in bytes (FtMemory).
static json_t *memory_json(const FtMemory *m) {
#define PL_B(x) (json_int_t)llround(x)
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "total", PL_B(m->total),
                     "baseline", PL_B(m->baseline), "runtime", PL_B(m->runtime), "weights", PL_B(m->weights),
                     "parameters", PL_B(m->parameters), "bf16", PL_B(m->bf16), "optimizer", PL_B(m->optimizer),
                     "gradients", PL_B(m->gradients), "best", PL_B(m->best), "activations", PL_B(m->activations),
                     "batches", PL_B(m->batches), "data", PL_B(m->data), "transient", PL_B(m->transient),
                     "peak_measured", PL_B(m->peak_measured), "slot", PL_B(m->slot), "slots", m->slots);
#undef PL_B
}

static json_t *options_json(const PlFinetuneOptions *o, const PlVitTrainSpec *sp, const PlFinetuneResult *r) {
    json_t *opts = json_pack("{s:s, s:f, s:f, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:I, s:I, s:i, s:i, s:i, s:f, "
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
                     sp->width, "head", sp->head.kind == PL_HEAD_MLP ? "mlp" : "linear", "head_dropout",
                     (double)sp->head.dropout);
    // DINO's wd_schedule end value, or null: constant weight decay
    if (opts && json_object_set_new(opts, "weight_decay_end", o->weight_decay_end >= 0 ? json_real(o->weight_decay_end)
                                                                                     : json_null()) != 0) {
        json_decref(opts);
        return NULL;
    }
    return opts;
}

// DIR/confusion.* and DIR/class_f1.* of the kept weights.
static PlStatus report_plots(const char *dir, const PlVitTrainSpec *sp, const PlFinetuneResult *r, const FtRunInfo *info) {
    const int C = sp->classes;
    char base[4096], title[256];
    char **names = pl_calloc((size_t)C, sizeof(char *));
    char (*ids)[16] = pl_malloc((size_t)C * 16);
    PlStatus st = names && ids ? PL_OK : PL_ERR_NOMEM;
    for (int c = 0; c < C && st == PL_OK; c++) {
        snprintf(ids[c], 16, "%d", c);   // an int fits
        names[c] = info->classes ? info->classes[c] : ids[c];
    }
    if (st == PL_OK)
        st = fmt_into(title, sizeof title, "the plot title", "Fine-tuned, %s split: macro F1 %.3f",
                      r->eval_split ? r->eval_split : "train", r->eval_macro_f1);
    if (st == PL_OK && r->confusion && (st = fmt_into(base, sizeof base, "the plot path", "%s/confusion", dir)) == PL_OK)
        st = pl_plot_confusion(base, r->confusion, C, names, title);
    if (st == PL_OK && r->per_class_f1 && (st = fmt_into(base, sizeof base, "the plot path", "%s/class_f1", dir)) == PL_OK)
        st = pl_plot_class_f1(base, r->per_class_f1, C, names, title);
    free(names);
    free(ids);
    return st;
}

json_t *ft_profile_json(const PlTrainProfile *p) {
    const double step = p->steps > 0 ? p->step_sec / (double)p->steps : 0.0;
    json_t *phases = json_array(), *j = NULL;
    if (!phases) return NULL;
    for (int ph = 0; ph <= PL_PROF_PHASES; ph++) {   // PL_PROF_PHASES: the rest of the step
        double sec = ph < PL_PROF_PHASES ? pl_train_profile_phase_sec(p, (PlProfPhase)ph) : pl_train_profile_rest_sec(p);
        double fl = ph < PL_PROF_PHASES ? pl_train_profile_phase_flop(p, (PlProfPhase)ph) : 0.0;
        json_t *e = json_pack("{s:s, s:f, s:f, s:f}", "phase",
                              ph < PL_PROF_PHASES ? pl_prof_phase_name((PlProfPhase)ph) : "rest of the step",
                              "ms_per_step", 1e3 * sec, "share", step > 0 ? sec / step : 0.0, "gflop_per_s",
                              sec > 0 && fl > 0 ? fl / sec * 1e-9 : 0.0);
        if (!e || json_array_append_new(phases, e) != 0) {
            json_decref(phases);
            return NULL;
        }
    }
    j = json_pack("{s:I, s:i, s:f, s:o}", "steps", (json_int_t)p->steps, "workers", p->workers, "ms_per_step",
                  1e3 * step, "phases", phases);
    return j;
}

PlStatus ft_report_write(const char *dir, const PlFinetuneOptions *o, const PlVitTrainSpec *sp,
                         const PlFinetuneResult *r, const FtRunInfo *info) {
    const int C = sp->classes;
    char path[4096], base[4096];
    PL_TRY(fmt_into(path, sizeof path, "the report path", "%s/report.json", dir));
    json_t *classes = json_array();
    for (int c = 0; c < C && classes; c++) {
        char id[16];
        snprintf(id, sizeof id, "%d", c);   // an int fits
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
        " s:{s:i, s:i, s:s, s:s, s:f, s:o, s:f, s:I}}",
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
        "memory_bytes_per_rank", info->memory.total, "memory", memory_json(&info->memory),
        "activation_bytes_per_thread", info->activation_bytes, "parameters",
        (json_int_t)info->params);
    if (j) {   // execution.reader: what the reader delivered and how long the loop waited for it (rank 0)
        const double imgs = (double)info->reader_batches * info->memory.slot_images;
        json_t *rd = json_pack("{s:s?, s:I, s:i, s:i, s:f, s:f, s:f}", "cache", info->cache, "batches",
                               (json_int_t)info->reader_batches, "images_per_batch", info->memory.slot_images,
                               "prefetch", info->memory.slots - 1, "prepare_seconds", info->reader_prepare_s,
                               "images_per_second", info->reader_prepare_s > 0 ? imgs / info->reader_prepare_s : 0.0,
                               "loop_wait_seconds", info->reader_wait_s);
        if (!rd || json_object_set_new(json_object_get(j, "execution"), "reader", rd) != 0) {
            json_decref(j);
            return PL_FAIL(PL_ERR_NOMEM, "%s: cannot build the report", path);
        }
    }
    if (j && info->profile) {
        json_t *pj = ft_profile_json(info->profile);
        if (!pj || json_object_set_new(json_object_get(j, "execution"), "profile", pj) != 0) {
            json_decref(j);
            return PL_FAIL(PL_ERR_NOMEM, "%s: cannot build the report", path);
        }
    }
    if (j && info->fingerprint) {
        PlStatus st = add_fingerprint(j, info->fingerprint, path);
        if (st != PL_OK) {
            json_decref(j);
            return st;
        }
    }
    PL_TRY(write_json(path, j));
    PL_TRY(fmt_into(base, sizeof base, "the plot path", "%s/training_loss", dir));
    PL_TRY(pl_plot_curve(base, r->epoch_loss, r->n_epochs, r->best_epoch, "epoch", "training loss", "Fine-tuning loss"));
    if (r->epoch_val_f1) {
        PL_TRY(fmt_into(base, sizeof base, "the plot path", "%s/training_val_f1", dir));
        PL_TRY(pl_plot_curve(base, r->epoch_val_f1, r->n_epochs, r->best_epoch, "epoch", "validation macro F1",
                             "Validation macro F1 (best epoch marked)"));
    }
    return report_plots(dir, sp, r, info);
}

PlStatus ft_card_write(const PlModelCard *card, const char *dir, const char *weights, const char *suffix) {
    char path[4096], hex[65];
    PL_TRY(fmt_into(path, sizeof path, "the weights path", "%s/%s", dir, weights));
    PL_TRY(pl_sha256_file(path, hex));
    json_error_t err;
    json_t *j = json_loads(card->json, 0, &err);
    if (!j) return PL_FAIL(PL_ERR_INTERNAL, "cannot re-read the model card's JSON: %s", err.text);
    PlStatus st = fmt_into(path, sizeof path, "the model card path", "%s/model.json", dir);
    json_t *name = st == PL_OK ? json_sprintf("%s-%s", card->name ? card->name : "model", suffix) : NULL;
    if (st == PL_OK && !name)
        st = PL_FAIL(PL_ERR_FORMAT, "%s: cannot build the new model's name (is the name valid UTF-8?)", card->path);
    if (st == PL_OK) {
        int bad = json_object_set_new(j, "weights", json_string(weights));
        bad |= json_object_set_new(j, "sha256", json_string(hex));
        bad |= json_object_set_new(j, "name", name);   // takes `name`, also when it fails
        if (bad) st = PL_FAIL(PL_ERR_NOMEM, "cannot build %s", path);
    }
    if (st != PL_OK) {
        json_decref(j);
        return st;
    }
    json_object_del(j, "checkpoint_key");   // absent in most cards: nothing to check
    return write_json(path, j);
}

// ---------------------------------------------------------------- --collect: DIR/*/report.json -> DIR/grid.*

#define FT_REPORT_MAX_BYTES ((size_t)1 << 30)   // a report.json (its confusion matrix grows as classes^2)

// A growing text (grid.tsv, paths): every piece is measured before it is written, so nothing is cut short.
typedef struct FtText {
    char *s;
    size_t len, cap;
} FtText;

static PlStatus text_add(FtText *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static PlStatus text_add(FtText *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return PL_FAIL(PL_ERR_INTERNAL, "cannot format '%s'", fmt);
    PL_TRY(pl_grow((void **)&t->s, &t->cap, t->len + (size_t)n + 1, 1));
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
    return PL_OK;
}

// One run of the grid: DIR/name/report.json, checked.
typedef struct FtRun {
    char *name;        // the folder under DIR (owned)
    double fraction, f1, acc, n_train;
    int64_t seed_index;
    json_t *fp;        // what every run must share: {"model.dim": ..., "data.source_sha256": ...} (owned)
} FtRun;

static void runs_free(FtRun *runs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(runs[i].name);
        json_decref(runs[i].fp);
    }
    free(runs);
}

// The kind a report says it is: "command" (finetune runs and grids) or "config.command" (knn, probe); NULL if none.
static const char *report_kind(const json_t *j) {
    const json_t *c = json_object_get(j, "command");
    if (!c) c = json_object_get(json_object_get(j, "config"), "command");
    return json_string_value(c);
}

// What a JSON value is, for a message: "a string (\"0.5\")", "null", "an array", ...
static void json_what(const json_t *v, char *out, size_t size) {
    if (json_is_string(v) && json_string_length(v) <= 40)
        snprintf(out, size, "a string (\"%s\")", json_string_value(v));   // fits: 40 bytes + 13 < size
    else
        snprintf(out, size, "%s", json_is_string(v) ? "a string" : json_is_null(v) ? "null"
                                  : json_is_boolean(v) ? "a boolean" : json_is_array(v) ? "an array"
                                  : json_is_object(v) ? "an object" : "a number");
}

// sec.key of report `path` (section sec of j): a finite number in [lo, hi] ((lo, hi] when lo_open).
static PlStatus get_real(const json_t *j, const char *sec, const char *key, const char *path, double lo, double hi,
                         int lo_open, double *out) {
    const json_t *o = json_object_get(j, sec), *v = json_object_get(o, key);
    char what[64];
    if (!json_is_object(o)) return PL_FAIL(PL_ERR_FORMAT, "%s has no \"%s\" object", path, sec);
    if (!v) return PL_FAIL(PL_ERR_FORMAT, "%s: %s.%s is missing", path, sec, key);
    if (!json_is_number(v)) {
        json_what(v, what, sizeof what);
        return PL_FAIL(PL_ERR_FORMAT, "%s: %s.%s is %s, not a number", path, sec, key, what);
    }
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi || (lo_open && x <= lo))
        return PL_FAIL(PL_ERR_FORMAT, "%s: %s.%s = %g is outside %s%g, %g]", path, sec, key, x, lo_open ? "(" : "[",
                       lo, hi);
    *out = x;
    return PL_OK;
}

// sec.key of report `path`: an integer in [lo, hi].
static PlStatus get_int(const json_t *j, const char *sec, const char *key, const char *path, int64_t lo, int64_t hi,
                        int64_t *out) {
    const json_t *o = json_object_get(j, sec), *v = json_object_get(o, key);
    char what[64];
    if (!json_is_object(o)) return PL_FAIL(PL_ERR_FORMAT, "%s has no \"%s\" object", path, sec);
    if (!v) return PL_FAIL(PL_ERR_FORMAT, "%s: %s.%s is missing", path, sec, key);
    if (!json_is_integer(v)) {
        json_what(v, what, sizeof what);
        if (json_is_real(v)) snprintf(what, sizeof what, "%g", json_real_value(v));
        return PL_FAIL(PL_ERR_FORMAT, "%s: %s.%s is %s, not an integer", path, sec, key, what);
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return PL_FAIL(PL_ERR_FORMAT, "%s: %s.%s = %lld is outside [%lld, %lld]", path, sec, key, (long long)x,
                       (long long)lo, (long long)hi);
    *out = (int64_t)x;
    return PL_OK;
}

// The fields every run of one grid must share, as "section.key". A path (model.weights, model.head_init,
// data.source) counts only where its digest (the same key + "_sha256") is absent: a report written before digests.
static const char *const fp_keys[] = {
    "model.weights_sha256", "model.weights", "model.checkpoint_key", "model.head_init_sha256", "model.head_init",
    "model.dim", "model.depth", "model.heads", "model.patch", "model.in_chans", "model.classes", "options.head",
    "options.loss", "options.height", "options.width", "data.source_sha256", "data.source", "data.labels_sha256",
    "data.class_names", "data.n_train_total", "data.n_val", "data.n_test"};
#define FT_FP_KEYS (sizeof fp_keys / sizeof fp_keys[0])

// 1 when a fingerprint key describes the model (the backbone, its head and loss), 0 when the data.
static int fp_model_key(const char *key) {
    return strncmp(key, "model.", 6) == 0 || strcmp(key, "options.head") == 0 || strcmp(key, "options.loss") == 0;
}

static const json_t *get_dotted(const json_t *j, const char *dotted) {
    const char *dot = strchr(dotted, '.');
    char sec[16];
    if (!dot || (size_t)(dot - dotted) >= sizeof sec) return NULL;
    memcpy(sec, dotted, (size_t)(dot - dotted));
    sec[dot - dotted] = '\0';
    return json_object_get(json_object_get(j, sec), dot + 1);
}

static PlStatus run_fingerprint(const json_t *j, const char *path, json_t **out) {
    json_t *fp = json_object();
    int bad = !fp;
    for (size_t k = 0; k < FT_FP_KEYS && !bad; k++) {
        const json_t *v = get_dotted(j, fp_keys[k]);
        char digest[64];
        if (fmt_into(digest, sizeof digest, "a fingerprint key", "%s_sha256", fp_keys[k]) != PL_OK) {
            bad = 1;
            break;
        }
        if (get_dotted(j, digest)) v = NULL;   // the digest says it all
        bad = json_object_set_new(fp, fp_keys[k], v ? json_deep_copy(v) : json_null());
    }
    if (bad) {
        json_decref(fp);
        return PL_FAIL(PL_ERR_NOMEM, "cannot hold the fingerprint of %s", path);
    }
    *out = fp;
    return PL_OK;
}

// A JSON report read only when it is a regular file (pl_file_read_all), duplicate keys refused; caller decrefs.
static PlStatus json_read_report(const char *path, json_t **out) {
    char *text = NULL;
    size_t size = 0;
    PL_TRY(pl_file_read_all(path, FT_REPORT_MAX_BYTES, &text, &size));
    json_error_t err;
    *out = json_loadb(text, size, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!*out) return PL_FAIL(PL_ERR_FORMAT, "%s:%d: %s", path, err.line, err.text);
    return PL_OK;
}

// Read and check DIR/name/report.json (path) into *run.
static PlStatus read_run(const char *path, FtRun *run) {
    json_t *j;
    PL_TRY(json_read_report(path, &j));
    const char *kind = report_kind(j);
    PlStatus st = PL_OK;
    if (!kind || strcmp(kind, "finetune") != 0)
        st = !kind ? PL_FAIL(PL_ERR_FORMAT, "%s is not a fine-tuning run's report (no \"command\": \"finetune\")", path)
             : strcmp(kind, "finetune grid") == 0
                 ? PL_FAIL(PL_ERR_FORMAT, "%s is a grid summary, not a fine-tuning run's report", path)
                 : PL_FAIL(PL_ERR_FORMAT, "%s is a `protloc %.40s` report, not a fine-tuning run's report", path, kind);
    int64_t fi = 0, subset_seed = 0, train_seed = 0, n_train = 0, n_total = 0;
    if (st == PL_OK) st = get_real(j, "data", "fraction", path, 0, 1, 1, &run->fraction);
    if (st == PL_OK) st = get_int(j, "data", "fraction_index", path, 0, INT_MAX, &fi);
    if (st == PL_OK) st = get_int(j, "data", "seed_index", path, 0, INT_MAX, &run->seed_index);
    if (st == PL_OK) st = get_int(j, "data", "subset_seed", path, 0, INT64_MAX, &subset_seed);
    if (st == PL_OK) st = get_int(j, "data", "train_seed", path, 0, INT64_MAX, &train_seed);
    if (st == PL_OK) st = get_int(j, "data", "n_train_total", path, 1, INT64_MAX, &n_total);
    if (st == PL_OK) st = get_int(j, "data", "n_train", path, 1, n_total, &n_train);
    if (st == PL_OK) st = get_real(j, "results", "macro_f1", path, 0, 1, 0, &run->f1);
    if (st == PL_OK) st = get_real(j, "results", "accuracy", path, 0, 1, 0, &run->acc);
    if (st == PL_OK) st = run_fingerprint(j, path, &run->fp);
    run->n_train = (double)n_train;
    json_decref(j);
    return st;
}

// DIR/name: 1 in *is_run when it is a folder holding report.json (then read into *run), 0 when not a run folder.
static PlStatus scan_entry(const char *dir, const char *name, FtRun *run, int *is_run) {
    *is_run = 0;
    FtText p = {0};
    PlStatus st = text_add(&p, "%s/%s", dir, name);
    struct stat sb;
    if (st == PL_OK && stat(p.s, &sb) != 0) {
        if (errno != ENOENT) st = PL_FAIL(PL_ERR_IO, "cannot stat %s: %s", p.s, strerror(errno));
        else pl_log_warn("%s is a link to nothing: not counted", p.s);
    } else if (st == PL_OK && S_ISDIR(sb.st_mode)) {
        size_t folder = p.len;
        st = text_add(&p, "/report.json");
        if (st == PL_OK && lstat(p.s, &sb) != 0) {
            if (errno != ENOENT) {
                st = PL_FAIL(PL_ERR_IO, "cannot stat %s: %s", p.s, strerror(errno));
            } else {
                p.s[folder] = '\0';
                pl_log_warn("%s has no report.json (a run still going, or one that failed): not counted", p.s);
            }
        } else if (st == PL_OK) {
            run->name = pl_strdup(name);
            st = run->name ? read_run(p.s, run) : PL_ERR_NOMEM;
            *is_run = 1;
        }
    }
    free(p.s);
    return st;
}

// Every run folder of dir, in name order, checked; *n_runs >= 1 on success.
static PlStatus scan_runs(const char *dir, FtRun **out, size_t *n_runs) {
    *out = NULL;
    *n_runs = 0;
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) return PL_FAIL(PL_ERR_IO, "cannot read the folder %s: %s", dir, strerror(errno));
    FtRun *runs = NULL;
    size_t cap = 0, count = 0;
    PlStatus st = PL_OK;
    for (int i = 0; i < n && st == PL_OK; i++) {
        if (names[i]->d_name[0] == '.') continue;
        FtRun run = {0};
        int is_run = 0;
        st = scan_entry(dir, names[i]->d_name, &run, &is_run);
        if (st == PL_OK && is_run) st = pl_grow((void **)&runs, &cap, count + 1, sizeof *runs);
        if (st == PL_OK && is_run) {
            runs[count++] = run;
        } else {
            free(run.name);
            json_decref(run.fp);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (st == PL_OK && count == 0) st = PL_FAIL(PL_ERR_EMPTY, "no run reports (*/report.json) in %s", dir);
    if (st != PL_OK) {
        runs_free(runs, count);
        return st;
    }
    *out = runs;
    *n_runs = count;
    return PL_OK;
}

static int same_value(const json_t *a, const json_t *b) { return json_equal((json_t *)a, (json_t *)b); }

// A value for a message: its JSON text when short, else a note that it is long.
static void show_value(const json_t *v, char *out, size_t size) {
    char *t = v && !json_is_null(v) ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (!v || json_is_null(v))
        snprintf(out, size, "absent");
    else if (t && strlen(t) < size)
        snprintf(out, size, "%s", t);
    else
        snprintf(out, size, "a different %s", json_is_array(v) ? "list" : "value");   // too long for one line
    free(t);
}

// Every run of a grid must fine-tune the same model on the same data: the first field where a run differs from
// the others names the odd one out (the run whose value fewer runs hold) and a run it differs from.
static PlStatus check_fingerprints(const char *dir, const FtRun *runs, size_t n) {
    for (size_t r = 1; r < n; r++)
        for (size_t k = 0; k < FT_FP_KEYS; k++) {
            const json_t *a = json_object_get(runs[0].fp, fp_keys[k]), *b = json_object_get(runs[r].fp, fp_keys[k]);
            if (same_value(a, b)) continue;
            size_t with_a = 0, with_b = 0;
            for (size_t i = 0; i < n; i++) {
                const json_t *v = json_object_get(runs[i].fp, fp_keys[k]);
                with_a += same_value(v, a);
                with_b += same_value(v, b);
            }
            size_t odd = with_b < with_a ? r : 0, other = odd ? 0 : r;
            char odd_v[160], other_v[160];
            show_value(json_object_get(runs[odd].fp, fp_keys[k]), odd_v, sizeof odd_v);
            show_value(json_object_get(runs[other].fp, fp_keys[k]), other_v, sizeof other_v);
            return PL_FAIL(PL_ERR_FORMAT, "%s/%s/report.json was trained on %s than the other runs: its %s is %s, "
                           "but %s in %zu other run(s) such as %s/%s/report.json (every run of a grid must fine-tune "
                           "the same model on the same data)", dir, runs[odd].name,
                           fp_model_key(fp_keys[k]) ? "another model" : "other data", fp_keys[k], odd_v,
                           other_v, odd ? with_a : with_b, dir, runs[other].name);
        }
    return PL_OK;
}

static int cmp_run(const void *pa, const void *pb) {
    const FtRun *a = pa, *b = pb;
    if (a->fraction != b->fraction) return a->fraction < b->fraction ? -1 : 1;
    if (a->seed_index != b->seed_index) return a->seed_index < b->seed_index ? -1 : 1;
    return strcmp(a->name, b->name);
}

// Fractions closer than this are one fraction (the same --fraction text always gives the same double).
static int same_fraction(double a, double b) { return fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b)); }

// runs sorted by cmp_run: the same (fraction, repetition) twice is an error naming both folders.
static PlStatus check_duplicates(const char *dir, const FtRun *runs, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (same_fraction(runs[i - 1].fraction, runs[i].fraction) && runs[i - 1].seed_index == runs[i].seed_index)
            return PL_FAIL(PL_ERR_FORMAT, "%s/%s and %s/%s are the same run twice (fraction %g, repetition %lld): "
                                          "remove one of them", dir, runs[i - 1].name, dir, runs[i].name,
                           runs[i].fraction, (long long)runs[i].seed_index);
    return PL_OK;
}

// The arrays of a probe report's logreg head, checked: fractions in (0, 1], mean and std in [0, 1], one per fraction.
static PlStatus probe_arrays(const char *path, const json_t *root, const json_t **fj, const json_t **mu,
                             const json_t **sd) {
    const json_t *lr = json_object_get(json_object_get(root, "heads"), "logreg");
    *fj = json_object_get(root, "fractions");
    *mu = json_object_get(lr, "macro_f1_mean");
    *sd = json_object_get(lr, "macro_f1_std");
    if (!json_is_array(*fj) || !json_is_array(*mu) || !json_is_array(*sd))
        return PL_FAIL(PL_ERR_FORMAT, "%s is not a `protloc probe` report with a logreg head (fractions, "
                                      "heads.logreg.macro_f1_mean/std)", path);
    size_t P = json_array_size(*fj);
    if (json_array_size(*mu) != P || json_array_size(*sd) != P)
        return PL_FAIL(PL_ERR_FORMAT, "%s: heads.logreg.macro_f1_mean has %zu values and macro_f1_std %zu, for %zu "
                                      "fractions", path, json_array_size(*mu), json_array_size(*sd), P);
    static const char *const names[3] = {"fractions", "heads.logreg.macro_f1_mean", "heads.logreg.macro_f1_std"};
    const json_t *arrays[3] = {*fj, *mu, *sd};
    for (int a = 0; a < 3; a++)
        for (size_t i = 0; i < P; i++) {
            const json_t *v = json_array_get(arrays[a], i);
            double x = json_number_value(v);
            char what[64];
            if (!json_is_number(v)) {
                json_what(v, what, sizeof what);
                return PL_FAIL(PL_ERR_FORMAT, "%s: %s[%zu] is %s, not a number", path, names[a], i, what);
            }
            if (!isfinite(x) || x < 0 || x > 1 || (a == 0 && x <= 0))
                return PL_FAIL(PL_ERR_FORMAT, "%s: %s[%zu] = %g is outside %s", path, names[a], i, x,
                               a == 0 ? "(0, 1]" : "[0, 1]");
        }
    return PL_OK;
}

// The logreg macro F1 mean/std of a `protloc probe` report at the grid's fractions fr[0..F): a fraction the probe
// lacks is an error (the two curves are drawn at the same fractions).
static PlStatus probe_series(const char *path, const double *fr, int F, double *mean, double *std) {
    json_t *j;
    PL_TRY(json_read_report(path, &j));
    const json_t *root = json_object_get(j, "fractions") ? j : json_object_get(j, "probe");
    const char *kind = report_kind(root ? root : j);
    const json_t *fj = NULL, *mu = NULL, *sd = NULL;
    PlStatus st = PL_OK;
    if (kind && strcmp(kind, "probe") != 0)
        st = PL_FAIL(PL_ERR_FORMAT, "--probe %s is a `protloc %.40s` report, not a `protloc probe` report", path, kind);
    if (st == PL_OK) st = probe_arrays(path, root, &fj, &mu, &sd);
    for (int f = 0; f < F && st == PL_OK; f++) {
        mean[f] = std[f] = NAN;
        for (size_t i = 0; i < json_array_size(fj); i++)
            if (same_fraction(json_number_value(json_array_get(fj, i)), fr[f])) {
                mean[f] = json_number_value(json_array_get(mu, i));
                std[f] = json_number_value(json_array_get(sd, i));
            }
        if (isnan(mean[f]))
            st = PL_FAIL(PL_ERR_FORMAT, "--probe %s has no logreg result at fraction %g, one of the grid's fractions "
                                        "(run `protloc probe` with the same --fraction list)", path, fr[f]);
    }
    json_decref(j);
    return st;
}

PlStatus ft_probe_check(const char *probe_json, const double *fr, int n) {
    double *mean = pl_malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof(double));
    if (!mean) return PL_ERR_NOMEM;
    PlStatus st = probe_series(probe_json, fr, n, mean, mean + n);
    free(mean);
    return st;
}

static PlStatus path_in(FtText *t, const char *dir, const char *name) {
    t->len = 0;
    return text_add(t, "%s/%s", dir, name);
}

// DIR/grid.tsv, grid.json and grid.{png,svg} from runs sorted by fraction (F distinct ones).
static PlStatus grid_write(const char *dir, const char *probe_json, const FtRun *runs, size_t n, size_t F) {
    if (n > INT_MAX)
        return PL_FAIL(PL_ERR_LIMIT, "%s holds %zu runs, more than the %d a grid can summarise", dir, n, INT_MAX);
    double *v = pl_calloc(3 * n + 5 * F, sizeof(double));
    if (!v) return PL_ERR_NOMEM;
    double *f1 = v, *acc = v + n, *ntr = v + 2 * n, *fr = v + 3 * n, *mean = fr + F, *std = mean + 2 * F;
    for (size_t i = 0; i < n; i++) f1[i] = runs[i].f1, acc[i] = runs[i].acc, ntr[i] = runs[i].n_train;
    FtText tsv = {0}, path = {0};
    json_t *rows = json_array();
    PlStatus st = rows ? text_add(&tsv, "fraction\truns\tn_train_mean\tmacro_f1_mean\tmacro_f1_std\taccuracy_mean\t"
                                        "accuracy_std\n")
                       : PL_FAIL(PL_ERR_NOMEM, "cannot build grid.json");
    for (size_t i = 0, f = 0; i < n && st == PL_OK; f++) {
        size_t e = i + 1;
        while (e < n && runs[e].fraction == runs[i].fraction) e++;
        int m = (int)(e - i);
        double am, as, nm, ns;
        fr[f] = runs[i].fraction;
        pl_metrics_mean_std(f1 + i, m, &mean[f], &std[f]);
        pl_metrics_mean_std(acc + i, m, &am, &as);
        pl_metrics_mean_std(ntr + i, m, &nm, &ns);
        st = text_add(&tsv, "%g\t%d\t%.1f\t%.6f\t%.6f\t%.6f\t%.6f\n", fr[f], m, nm, mean[f], std[f], am, as);
        json_t *row = NULL;
        if (st == PL_OK)
            row = json_pack("{s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:o}", "fraction", fr[f], "runs", m, "n_train_mean",
                            nm, "macro_f1_mean", mean[f], "macro_f1_std", std[f], "accuracy_mean", am, "accuracy_std",
                            as, "macro_f1_runs", doubles(f1 + i, m));
        if (st == PL_OK && (!row || json_array_append_new(rows, row)))
            st = PL_FAIL(PL_ERR_NOMEM, "cannot build the grid.json row of fraction %g", fr[f]);
        i = e;
    }
    int series = 1;
    if (st == PL_OK && probe_json) {
        st = probe_series(probe_json, fr, (int)F, mean + F, std + F);
        series = 2;
    }
    if (st == PL_OK && (st = path_in(&path, dir, "grid.tsv")) == PL_OK)
        st = pl_file_write_atomic(path.s, tsv.s, tsv.len);
    if (st == PL_OK && (st = path_in(&path, dir, "grid.json")) == PL_OK) {
        json_t *j = json_pack("{s:s, s:o, s:s?}", "command", "finetune grid", "fractions", rows, "probe_report",
                              probe_json);
        rows = NULL;   // json_pack took it, also when it failed
        st = write_json(path.s, j);
    }
    if (st == PL_OK && (st = path_in(&path, dir, "grid")) == PL_OK) {
        const char *names[2] = {"fine-tuned", "frozen + logreg"};
        st = pl_plot_f1_vs_fraction(path.s, fr, (int)F, series, names, mean, std,
                                    "Macro F1 vs fine-tuning data fraction");
    }
    json_decref(rows);
    free(tsv.s);
    free(path.s);
    free(v);
    return st;
}

PlStatus ft_collect(const char *dir, const char *probe_json) {
    FtRun *runs = NULL;
    size_t n = 0, F = 0;
    PL_TRY(scan_runs(dir, &runs, &n));
    PlStatus st = check_fingerprints(dir, runs, n);
    if (st == PL_OK) {   // one value per fraction, then (fraction, repetition) order
        qsort(runs, n, sizeof *runs, cmp_run);
        for (size_t i = 1; i < n; i++)
            if (same_fraction(runs[i - 1].fraction, runs[i].fraction)) runs[i].fraction = runs[i - 1].fraction;
        qsort(runs, n, sizeof *runs, cmp_run);
        st = check_duplicates(dir, runs, n);
    }
    for (size_t i = 0; i < n; i++) F += i == 0 || runs[i].fraction != runs[i - 1].fraction;
    if (st == PL_OK) st = grid_write(dir, probe_json, runs, n, F);
    runs_free(runs, n);
    return st;
}
