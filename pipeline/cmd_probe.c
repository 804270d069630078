// `protloc probe`: logistic-regression and DINO4Cells-MLP heads on frozen embeddings, macro F1 per data fraction.
#include <float.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli.h"
#include "pl_cmds.h"
#include "pl_eval_cli.h"
#include "pl_features.h"
#include "pl_fs.h"
#include "pl_log.h"
#include "pl_plot.h"
#include "pl_probe.h"
#include "pl_process.h"
#include "pl_report.h"

void cmd_probe_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc probe (--store S.h5 [--level fov|tiles|cells] | --features F.npy --meta M.tsv) [options]\n\n"
            "Train classifier heads on frozen embeddings (split column: train / val / test) and report macro F1\n"
            "on the test split, for stratified seeded fractions of the training data.\n\n"
            "Input:\n"
            "  --store FILE, --level L, --features F.npy, --meta M.tsv   as for 'protloc knn'\n"
            "  --train-split S / --val-split S / --test-split S          (default train / val / test)\n"
            "  --multilabel M         skip (default) or first\n"
            "Heads and protocol:\n"
            "  --head H               logreg, mlp or both (default both)\n"
            "  --fraction LIST        training fractions, e.g. 0.01,0.1,0.25,0.5,1 (default 1)\n"
            "  --seeds N              repetitions per fraction (default 1): mean ± std\n"
            "  --seed N               base seed (default 0)\n"
            "Logistic regression (multinomial, L2, L-BFGS, standardised features):\n"
            "  --C X                  inverse regularisation strength (default 1, as sklearn)\n"
            "  --max-iter N           L-BFGS iterations (default 1000)\n"
            "MLP (DINO4Cells: 512-256 hidden, ReLU, dropout, AdamW, cosine schedules, class-balanced batches):\n"
            "  --epochs N             at most N epochs (default 100)\n"
            "  --patience N           early stopping on validation macro F1 (default 10)\n"
            "  --batch N              batch size (default 128)\n"
            "  --lr X / --lr-min X    cosine learning rate (default 1e-4 -> 1e-6)\n"
            "  --wd X / --wd-end X    cosine weight decay (default 0.04 -> 0.4)\n"
            "  --dropout X            (default 0.5)\n"
            "  --val-fraction X       without a val split: stratified share of train held out (default 0.1)\n"
            "Compute (results are bit-identical for any thread count with one backend):\n"
            "  --threads N            threads (default: the cores of this process)\n");
    pl_cli_usage_kernels(out, "GEMM backend of the heads", " (FP32)");
    fprintf(out,
            "Output (a summary is printed on stdout; a FILE's folder must exist, DIR is created):\n"
            "  --json FILE, --csv FILE (F1 vs fraction), --report-dir DIR (probe.json, probe_f1_vs_fraction.csv,\n"
            "  PNG+SVG plots: F1 vs fraction, confusion and per-class F1 per head)\n"
            "See docs/evaluation.md.\n");
}

enum { O_STORE = 256, O_LEVEL, O_FEATURES, O_META, O_TRAIN, O_VAL, O_TEST, O_MULTI, O_HEAD, O_FRACTION, O_SEEDS,
       O_SEED, O_C, O_MAXIT, O_EPOCHS, O_PATIENCE, O_BATCH, O_LR, O_LRMIN, O_WD, O_WDEND, O_DROPOUT, O_VALFRAC,
       O_JSON, O_CSV, O_DIR, O_THREADS, O_KERNELS };

static PlStatus probe_write_reports(const char *json_path, const char *csv_path, const char *dir, const PlProbeResult *r,
                                    json_t *config) {
    json_t *root = pl_report_probe_json(r, config);
    if (!root) return PL_FAIL(PL_ERR_NOMEM, "building the JSON report");
    PlStatus st = PL_OK;
    if (json_path) st = pl_report_write_json(json_path, root);
    if (st == PL_OK && csv_path) st = pl_report_probe_csv(csv_path, r);
    if (st == PL_OK && dir) {
        char p[4096], title[256];
        st = pl_mkdir_p(dir);
        if (st == PL_OK) { snprintf(p, sizeof p, "%s/probe.json", dir); st = pl_report_write_json(p, root); }
        if (st == PL_OK) { snprintf(p, sizeof p, "%s/probe_f1_vs_fraction.csv", dir); st = pl_report_probe_csv(p, r); }
        if (st == PL_OK) {
            const char *names[2];
            for (int h = 0; h < r->n_heads; h++) names[h] = r->heads[h] == PL_PROBE_MLP ? "MLP (DINO4Cells)" : "logistic regression";
            snprintf(p, sizeof p, "%s/probe_f1_vs_fraction", dir);
            snprintf(title, sizeof title, "Macro F1 vs training fraction (%d seed%s, mean ± std)", r->seeds, r->seeds > 1 ? "s" : "");
            st = pl_plot_f1_vs_fraction(p, r->fractions, r->n_fractions, r->n_heads, names, r->f1_mean, r->f1_std, title);
        }
        for (int h = 0; h < r->n_heads && st == PL_OK; h++) {
            const char *hn = pl_probe_head_name(r->heads[h]);
            int C = r->n_classes;
            snprintf(p, sizeof p, "%s/probe_%s_confusion", dir, hn);
            snprintf(title, sizeof title, "%s confusion (row-normalised), fraction %g", hn, r->fractions[r->n_fractions - 1]);
            st = pl_plot_confusion(p, r->confusion + (size_t)h * C * (C + 1), C, r->classes, title);
            if (st != PL_OK) break;
            snprintf(p, sizeof p, "%s/probe_%s_per_class_f1", dir, hn);
            snprintf(title, sizeof title, "%s per-class F1, fraction %g", hn, r->fractions[r->n_fractions - 1]);
            st = pl_plot_class_f1(p, r->per_class_f1 + (size_t)h * C, C, r->classes, title);
        }
    }
    json_decref(root);
    return st;
}

int cmd_probe_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_probe_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option longopts[] = {
        {"store", required_argument, 0, O_STORE}, {"level", required_argument, 0, O_LEVEL},
        {"features", required_argument, 0, O_FEATURES}, {"meta", required_argument, 0, O_META},
        {"train-split", required_argument, 0, O_TRAIN}, {"val-split", required_argument, 0, O_VAL},
        {"test-split", required_argument, 0, O_TEST}, {"multilabel", required_argument, 0, O_MULTI},
        {"head", required_argument, 0, O_HEAD}, {"fraction", required_argument, 0, O_FRACTION},
        {"seeds", required_argument, 0, O_SEEDS}, {"seed", required_argument, 0, O_SEED},
        {"C", required_argument, 0, O_C}, {"max-iter", required_argument, 0, O_MAXIT},
        {"epochs", required_argument, 0, O_EPOCHS}, {"patience", required_argument, 0, O_PATIENCE},
        {"batch", required_argument, 0, O_BATCH}, {"lr", required_argument, 0, O_LR},
        {"lr-min", required_argument, 0, O_LRMIN}, {"wd", required_argument, 0, O_WD},
        {"wd-end", required_argument, 0, O_WDEND}, {"dropout", required_argument, 0, O_DROPOUT},
        {"val-fraction", required_argument, 0, O_VALFRAC}, {"json", required_argument, 0, O_JSON},
        {"csv", required_argument, 0, O_CSV}, {"report-dir", required_argument, 0, O_DIR},
        {"threads", required_argument, 0, O_THREADS}, {"kernels", required_argument, 0, O_KERNELS}, {0, 0, 0, 0}};
    const char *cmd = argv[0];
    PlProbeOptions o;
    pl_probe_options_default(&o);
    double fractions[64] = {1.0};
    const char *store = NULL, *level_s = "fov", *features = NULL, *meta = NULL, *head_s = "both", *multi_s = "skip";
    const char *json_path = NULL, *csv_path = NULL, *dir = NULL, *kernels_s = "auto";
    long v, threads = 0;
    double d;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case O_STORE: store = optarg; break;
        case O_LEVEL: level_s = optarg; break;
        case O_FEATURES: features = optarg; break;
        case O_META: meta = optarg; break;
        case O_TRAIN: o.train_split = optarg; break;
        case O_VAL: o.val_split = optarg; break;
        case O_TEST: o.test_split = optarg; break;
        case O_MULTI: multi_s = optarg; break;
        case O_HEAD: head_s = optarg; break;
        case O_JSON: json_path = optarg; break;
        case O_CSV: csv_path = optarg; break;
        case O_DIR: dir = optarg; break;
        case O_KERNELS: kernels_s = optarg; break;
        case O_THREADS:
            if ((rc = pl_cli_option_long(cmd, "--threads", optarg, 1, 1024, &threads))) return rc;
            break;
        case O_FRACTION:
            o.n_fractions = pl_eval_parse_fractions(optarg, fractions, 64);
            if (o.n_fractions < 1)
                return pl_cli_usage_error(cmd, "--fraction wants up to 64 comma-separated values in (0, 1], got '%s'",
                                          optarg);
            break;
        // each numeric option under its own name (argv[optind - 1] is the value when it was given apart)
        case O_SEEDS: if ((rc = pl_cli_option_int(cmd, "--seeds", optarg, 1, 1000, &o.seeds))) return rc; break;
        case O_SEED:
            if ((rc = pl_cli_option_long(cmd, "--seed", optarg, 0, LONG_MAX, &v))) return rc;
            o.seed = (uint64_t)v;
            break;
        case O_MAXIT: if ((rc = pl_cli_option_int(cmd, "--max-iter", optarg, 1, 100000000, &o.max_iter))) return rc; break;
        case O_EPOCHS: if ((rc = pl_cli_option_int(cmd, "--epochs", optarg, 1, 1000000, &o.epochs))) return rc; break;
        case O_PATIENCE: if ((rc = pl_cli_option_int(cmd, "--patience", optarg, 1, 1000000, &o.patience))) return rc; break;
        case O_BATCH: if ((rc = pl_cli_option_int(cmd, "--batch", optarg, 1, 1 << 20, &o.batch))) return rc; break;
        case O_C: case O_LR: case O_LRMIN: case O_WD: case O_WDEND: case O_DROPOUT: case O_VALFRAC: {
            const char *name = c == O_C ? "--C" : c == O_LR ? "--lr" : c == O_LRMIN ? "--lr-min" : c == O_WD ? "--wd"
                             : c == O_WDEND ? "--wd-end" : c == O_DROPOUT ? "--dropout" : "--val-fraction";
            if (c == O_DROPOUT || c == O_VALFRAC) {   // below 1: a range the shared message cannot word
                if (!pl_cli_parse_double(optarg, c == O_VALFRAC ? DBL_MIN : 0, nextafter(1.0, 0.0), &d))
                    return pl_cli_usage_error(cmd, "%s expects a number in %s, got '%s'", name,
                                              c == O_VALFRAC ? "(0, 1)" : "[0, 1)", optarg);
            } else if ((rc = pl_cli_option_double(cmd, name, optarg, c == O_C || c == O_LR ? DBL_MIN : 0, DBL_MAX, &d))) {
                return rc;
            }
            if (c == O_C) o.C = d;
            else if (c == O_LR) o.lr = d;
            else if (c == O_LRMIN) o.lr_min = d;
            else if (c == O_WD) o.wd_start = d;
            else if (c == O_WDEND) o.wd_end = d;
            else if (c == O_DROPOUT) o.dropout = d;
            else o.val_fraction = d;
            break;
        }
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    o.fractions = fractions;
    if (optind < argc) return pl_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!store == !features) return pl_cli_usage_error(cmd, "give either --store or --features (with --meta)");
    if (features && !meta) return pl_cli_usage_error(cmd, "--features needs --meta M.tsv");
    if (!features && meta) return pl_cli_usage_error(cmd, "--meta goes with --features");
    static const char *const heads[] = {"logreg", "mlp", "both"}, *const multis[] = {"skip", "first"};
    int head = 0, multi = 0;
    if ((rc = pl_cli_option_choice(cmd, "--head", head_s, heads, 3, &head)) ||
        (rc = pl_cli_option_choice(cmd, "--multilabel", multi_s, multis, 2, &multi)))
        return rc;
    o.use_logreg = head != 1;
    o.use_mlp = head != 0;
    o.multilabel = (PlMultilabel)multi;   // PlMultilabel follows the order of multis
    PlStoreLevel level;
    if (pl_store_level_parse(level_s, &level) != PL_OK) {
        rc = pl_cli_usage_error(cmd, "--level %s: %s", level_s, pl_error_message());
        pl_error_clear();
        return rc;
    }
    if ((rc = pl_cli_option_kernels(cmd, kernels_s, PL_PRECISION_FP32, &o.kernels))) return rc;
    if (pl_eval_check_outputs("probe", store, features, meta, json_path, csv_path, dir, NULL, NULL) != PL_OK)
        return PL_EXIT_FAIL;
    // output paths before any input is read (docs/guide.md "Output paths")
    if ((json_path && pl_output_file_check(json_path, "--json") != PL_OK) ||
        (csv_path && pl_output_file_check(csv_path, "--csv") != PL_OK) ||
        pl_output_dir_check(dir, "--report-dir") != PL_OK)
        return PL_EXIT_FAIL;

    if (pl_process_start_pool((int)threads, &o.pool) != PL_OK) return PL_EXIT_FAIL;
    int n_threads = pl_threadpool_size(o.pool);
    PlFeatureSet fs;
    PlStatus st = store ? pl_features_read_store(store, level, &fs) : pl_features_read_npy_tsv(features, meta, &fs);
    if (st != PL_OK) return PL_EXIT_FAIL;
    if (fs.n_skipped > 0) pl_log_warn("%s: skipped %lld rows with non-finite embeddings", store, (long long)fs.n_skipped);
    pl_log_info("probe: %lld rows x %d dims, %d thread(s), kernels %s", (long long)fs.n, fs.dim, n_threads,
                o.kernels->name);
    PlProbeResult r;
    st = pl_probe_evaluate(&fs, &o, &r);
    if (st != PL_OK) {
        pl_features_free(&fs);
        return PL_EXIT_FAIL;
    }
    json_t *config = json_object();
    json_object_set_new(config, "command", json_string("probe"));
    json_object_set_new(config, "software", json_string(pl_version_string()));
    json_object_set_new(config, "input", json_string(store ? store : features));
    if (meta) json_object_set_new(config, "meta", json_string(meta));
    if (store) json_object_set_new(config, "level", json_string(level_s));
    json_object_set_new(config, "head", json_string(head_s));
    json_object_set_new(config, "train_split", json_string(o.train_split));
    json_object_set_new(config, "val_split", json_string(o.val_split));
    json_object_set_new(config, "test_split", json_string(o.test_split));
    json_object_set_new(config, "multilabel", json_string(multi_s));
    json_object_set_new(config, "seeds", json_integer(o.seeds));
    json_object_set_new(config, "seed", json_integer((json_int_t)o.seed));
    json_object_set_new(config, "C", json_real(o.C));
    json_object_set_new(config, "max_iter", json_integer(o.max_iter));
    json_object_set_new(config, "epochs", json_integer(o.epochs));
    json_object_set_new(config, "patience", json_integer(o.patience));
    json_object_set_new(config, "batch", json_integer(o.batch));
    json_object_set_new(config, "lr", json_real(o.lr));
    json_object_set_new(config, "lr_min", json_real(o.lr_min));
    json_object_set_new(config, "weight_decay", json_real(o.wd_start));
    json_object_set_new(config, "weight_decay_end", json_real(o.wd_end));
    json_object_set_new(config, "dropout", json_real(o.dropout));
    json_object_set_new(config, "val_fraction", json_real(o.val_fraction));
    json_object_set_new(config, "hidden", json_pack("[ii]", o.hidden1, o.hidden2));
    json_object_set_new(config, "rows", json_integer(fs.n));
    json_object_set_new(config, "dim", json_integer(fs.dim));
    json_object_set_new(config, "kernels", json_string(o.kernels->name));
    json_object_set_new(config, "threads", json_integer(n_threads));
    pl_eval_add_provenance(config, store ? store : features);
    st = probe_write_reports(json_path, csv_path, dir, &r, config);
    json_decref(config);
    if (st == PL_OK) pl_report_probe_summary(stdout, &r);
    pl_probe_result_free(&r);
    pl_features_free(&fs);
    return st == PL_OK ? PL_EXIT_OK : PL_EXIT_FAIL;
}
