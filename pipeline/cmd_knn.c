// `protloc knn`: exact distributed kNN evaluation (macro F1 for every k) of store or .npy embeddings, with reports.
#include <float.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_cli.h"
#include "pl_clock.h"
#include "pl_dispatch.h"
#include "pl_cmds.h"
#include "pl_eval_cli.h"
#include "pl_fs.h"
#include "pl_knn_eval.h"
#include "pl_log.h"
#include "pl_mpi.h"
#include "pl_npy.h"
#include "pl_plot.h"
#include "pl_process.h"
#include "pl_report.h"

void cmd_knn_usage(FILE *out) {
    fprintf(out,
            "Usage: protloc knn (--store S.h5 [--level fov|tiles|cells] | --features F.npy --meta M.tsv) [options]\n"
            "       mpirun -np N protloc knn ...   (references sharded over ranks; identical results)\n\n"
            "Exact kNN classification of embeddings, scored for every k = 1..K: macro F1, accuracy, per-class F1.\n\n"
            "Input:\n"
            "  --store FILE           HDF5 store from 'protloc run' (layout: docs/formats.md)\n"
            "  --level L              fov (default), tiles or cells\n"
            "  --features F.npy       (N, D) float32 embeddings ...\n"
            "  --meta M.tsv           ... with a TSV header naming id, label [, split, group]; one line per row\n"
            "Protocol:\n"
            "  --protocol P           train-test (default): split column train -> test\n"
            "                         loo: leave-one-out within one set; kfold: grouped k-fold over seeds\n"
            "  --train-split S        reference split for train-test (default train)\n"
            "  --test-split S         query split for train-test (default test)\n"
            "  --set S                loo/kfold: only rows whose split is S (default: all rows)\n"
            "  --exclude-same W       none (default), group (same protein/gene) or item (same FOV, tiles/cells)\n"
            "  --folds N              kfold folds (default 5), grouped by the group column\n"
            "  --seeds N              kfold repetitions (default 1); figures are mean ± std over folds x seeds\n"
            "  --seed N               base random seed (default 0)\n"
            "  --multilabel M         skip (default: drop items with several labels) or first (use the first)\n"
            "  --unlabelled-refs      keep unlabelled items as references (they occupy neighbour slots, never vote)\n"
            "Neighbours and vote:\n"
            "  -k, --k K              largest k (default 200; capped by the reference count)\n"
            "  --metric M             cosine (default; L2-normalised features) or euclidean\n"
            "  --vote V               weighted (default; DINO: sum exp(sim/T)) or majority\n"
            "  --temperature T        weighted-vote temperature (default 0.07)\n"
            "  --threads N            threads per rank (default: the cores of this rank / ranks on the node)\n"
            "  --query-block N        queries per GEMM block (default 256)\n"
            "  --ref-block N          references per GEMM block (default 2048)\n");
    pl_cli_usage_kernels(out, "similarity GEMM backend", NULL);
    fprintf(out,
            "  --precision P          auto (default), fp32 or bf16. bf16: BF16 similarities (about 2x the GEMM rate),\n"
            "                         every candidate near the k-th rescored in FP32: the same neighbours, scores and\n"
            "                         F1 as fp32. auto: bf16 where the CPU has AVX512-BF16 and the kernels compute it,\n"
            "                         else fp32\n"
            "Output (written by rank 0; a summary is printed on stdout; a FILE's folder must exist, DIR is created):\n"
            "  --json FILE            all figures + configuration + provenance\n"
            "  --csv FILE             F1 vs k table\n"
            "  --report-dir DIR       knn.json, knn_f1_vs_k.csv, knn_per_class.csv, PNG+SVG plots\n"
            "  --neighbours FILE.npy  (train-test/loo) (queries, K) int64 feature rows of each query's neighbours\n"
            "  --predictions FILE.tsv id, true label, predicted label at the best k\n"
            "See docs/evaluation.md.\n");
}

enum { O_STORE = 256, O_LEVEL, O_FEATURES, O_META, O_PROTOCOL, O_TRAIN, O_TEST, O_SET, O_EXCLUDE, O_FOLDS, O_SEEDS,
       O_SEED, O_MULTI, O_UNLAB, O_METRIC, O_VOTE, O_TEMP, O_THREADS, O_QB, O_RB, O_JSON, O_CSV, O_DIR, O_NB, O_PRED,
       O_KERNELS, O_PRECISION };

static PlStatus knn_write_predictions(const char *path, const PlFeatureSet *fs, const PlKnnResult *r) {
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, path));
    fprintf(af.fp, "id\ttrue\tpredicted\tk\n");
    for (int64_t q = 0; q < r->n_queries; q++) {
        int32_t p = r->pred[(size_t)q * r->K + r->best_k - 1];
        fprintf(af.fp, "%s\t%s\t%s\t%d\n", r->query_rows ? fs->id[r->query_rows[q]] : "", r->classes[r->truth[q]],
                p >= 0 ? r->classes[p] : "", r->best_k);
    }
    if (ferror(af.fp)) {
        pl_atomic_abort(&af);
        return PL_FAIL(PL_ERR_IO, "%s: write failed", path);
    }
    return pl_atomic_commit(&af);
}

static PlStatus knn_write_reports(const char *json_path, const char *csv_path, const char *dir, const char *nb_path,
                                  const char *pred_path, const PlFeatureSet *fs, const PlKnnResult *r, json_t *config) {
    json_t *root = NULL;   // only where a JSON is written
    if ((json_path || dir) && !(root = pl_report_knn_json(r, config)))
        return PL_FAIL(PL_ERR_NOMEM, "building the JSON report");
    PlStatus st = PL_OK;
    if (json_path) st = pl_report_write_json(json_path, root);
    if (st == PL_OK && csv_path) st = pl_report_knn_csv(csv_path, r);
    if (st == PL_OK && nb_path) {
        int64_t shape[2] = {r->n_queries, r->K};
        st = pl_npy_write(nb_path, "<i8", 2, shape, r->neighbours);
    }
    if (st == PL_OK && pred_path) st = knn_write_predictions(pred_path, fs, r);
    if (st == PL_OK && dir) {
        char p[4096];
        st = pl_mkdir_p(dir);
        if (st == PL_OK) { snprintf(p, sizeof p, "%s/knn.json", dir); st = pl_report_write_json(p, root); }
        if (st == PL_OK) { snprintf(p, sizeof p, "%s/knn_f1_vs_k.csv", dir); st = pl_report_knn_csv(p, r); }
        if (st == PL_OK) { snprintf(p, sizeof p, "%s/knn_per_class.csv", dir); st = pl_report_knn_class_csv(p, r); }
        if (st == PL_OK && r->pred) { snprintf(p, sizeof p, "%s/knn_predictions.tsv", dir); st = knn_write_predictions(p, fs, r); }
        char title[256];
        if (st == PL_OK) {
            snprintf(p, sizeof p, "%s/knn_f1_vs_k", dir);
            snprintf(title, sizeof title, "kNN macro F1 vs k (best k = %d: %.3f)", r->best_k, r->f1_mean[r->best_k - 1]);
            st = pl_plot_f1_vs_k(p, r->f1_mean, r->n_runs > 1 ? r->f1_std : NULL, r->K, r->best_k, title);
        }
        if (st == PL_OK) {
            snprintf(p, sizeof p, "%s/knn_confusion", dir);
            snprintf(title, sizeof title, "kNN confusion (row-normalised), k = %d", r->best_k);
            st = pl_plot_confusion(p, r->confusion + (size_t)(r->best_k - 1) * r->n_classes * (r->n_classes + 1),
                                   r->n_classes, r->classes, title);
        }
        if (st == PL_OK) {
            snprintf(p, sizeof p, "%s/knn_per_class_f1", dir);
            snprintf(title, sizeof title, "kNN per-class F1, k = %d", r->best_k);
            st = pl_plot_class_f1(p, r->per_class_f1 + (size_t)(r->best_k - 1) * r->n_classes, r->n_classes,
                                  r->classes, title);
        }
    }
    json_decref(root);
    return st;
}

// The words of each enumerated option, in the order of its enum (PlKnnProtocol, PlKnnExclude, ...).
static const char *const knn_protocols[] = {"train-test", "loo", "kfold"}, *const knn_excludes[] = {"none", "group", "item"};
static const char *const knn_metrics[] = {"cosine", "euclidean"}, *const knn_votes[] = {"weighted", "majority"};
static const char *const knn_multis[] = {"skip", "first"};

// The configuration block of the kNN report: every option as used, the input and the machine layout.
// --precision auto: BF16 similarities with exact FP32 rescoring (the same neighbours, scores and F1 as FP32, and
// faster: docs/performance.md) where the CPU multiplies BF16 natively and the kernels named compute BF16; FP32
// elsewhere. Every rank of a job decides alike (the results do not depend on the choice).
static PlPrecision knn_auto_precision(const char *kernels) {
    const PlKernels *k;
    if (pl_cpu_level() >= PL_CPU_AVX512_BF16 && pl_kernels_find(kernels, PL_PRECISION_BF16, &k) == PL_OK)
        return PL_PRECISION_BF16;
    pl_error_clear();
    return PL_PRECISION_FP32;
}

static json_t *knn_config_json(const PlKnnOptions *o, const PlFeatureSet *fs, const char *store, const char *features,
                               const char *meta, const char *level_s, int size, int n_threads) {
    json_t *config = json_object();
    json_object_set_new(config, "command", json_string("knn"));
    json_object_set_new(config, "software", json_string(pl_version_string()));
    json_object_set_new(config, "input", json_string(store ? store : features));
    if (meta) json_object_set_new(config, "meta", json_string(meta));
    if (store) json_object_set_new(config, "level", json_string(level_s));
    json_object_set_new(config, "protocol", json_string(knn_protocols[o->protocol]));
    json_object_set_new(config, "train_split", json_string(o->train_split));
    json_object_set_new(config, "test_split", json_string(o->test_split));
    json_object_set_new(config, "set", o->set_split ? json_string(o->set_split) : json_null());
    json_object_set_new(config, "exclude_same", json_string(knn_excludes[o->exclude]));
    json_object_set_new(config, "folds", json_integer(o->folds));
    json_object_set_new(config, "seeds", json_integer(o->seeds));
    json_object_set_new(config, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(config, "multilabel", json_string(knn_multis[o->multilabel]));
    json_object_set_new(config, "unlabelled_refs", json_boolean(o->unlabelled_refs));
    json_object_set_new(config, "k_max", json_integer(o->k_max));
    json_object_set_new(config, "metric", json_string(knn_metrics[o->metric]));
    json_object_set_new(config, "vote", json_string(knn_votes[o->vote]));
    json_object_set_new(config, "temperature", json_real(o->temperature));
    json_object_set_new(config, "kernels", json_string((o->kernels ? o->kernels : pl_kernels_default())->name));
    json_object_set_new(config, "precision", json_string(pl_precision_name(o->precision)));
    json_object_set_new(config, "ranks", json_integer(size));
    json_object_set_new(config, "threads_per_rank", json_integer(n_threads));
    json_object_set_new(config, "rows", json_integer(fs->n));
    json_object_set_new(config, "dim", json_integer(fs->dim));
    json_object_set_new(config, "rows_skipped", json_integer(fs->n_skipped));
    pl_eval_add_provenance(config, store ? store : features);
    return config;
}

int cmd_knn_run(int argc, char **argv) {
    if (pl_cli_wants_help(argc, argv)) {
        cmd_knn_usage(stdout);
        return PL_EXIT_OK;
    }
    static const struct option longopts[] = {
        {"store", required_argument, 0, O_STORE}, {"level", required_argument, 0, O_LEVEL},
        {"features", required_argument, 0, O_FEATURES}, {"meta", required_argument, 0, O_META},
        {"protocol", required_argument, 0, O_PROTOCOL}, {"train-split", required_argument, 0, O_TRAIN},
        {"test-split", required_argument, 0, O_TEST}, {"set", required_argument, 0, O_SET},
        {"exclude-same", required_argument, 0, O_EXCLUDE}, {"folds", required_argument, 0, O_FOLDS},
        {"seeds", required_argument, 0, O_SEEDS}, {"seed", required_argument, 0, O_SEED},
        {"multilabel", required_argument, 0, O_MULTI}, {"unlabelled-refs", no_argument, 0, O_UNLAB},
        {"k", required_argument, 0, 'k'}, {"metric", required_argument, 0, O_METRIC},
        {"vote", required_argument, 0, O_VOTE}, {"temperature", required_argument, 0, O_TEMP},
        {"threads", required_argument, 0, O_THREADS}, {"query-block", required_argument, 0, O_QB},
        {"ref-block", required_argument, 0, O_RB}, {"json", required_argument, 0, O_JSON},
        {"csv", required_argument, 0, O_CSV}, {"report-dir", required_argument, 0, O_DIR},
        {"neighbours", required_argument, 0, O_NB}, {"predictions", required_argument, 0, O_PRED},
        {"kernels", required_argument, 0, O_KERNELS}, {"precision", required_argument, 0, O_PRECISION}, {0, 0, 0, 0}};
    const char *cmd = argv[0];
    PlKnnOptions o;
    pl_knn_options_default(&o);
    const char *store = NULL, *level_s = "fov", *features = NULL, *meta = NULL;
    const char *json_path = NULL, *csv_path = NULL, *dir = NULL, *nb_path = NULL, *pred_path = NULL;
    const char *protocol_s = "train-test", *exclude_s = "none", *metric_s = "cosine", *vote_s = "weighted",
               *multi_s = "skip", *kernels_s = "auto";
    long threads = 0, v;
    double d;
    int c, rc, precision_auto = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:", longopts, NULL)) != -1) {
        switch (c) {
        case O_STORE: store = optarg; break;
        case O_LEVEL: level_s = optarg; break;
        case O_FEATURES: features = optarg; break;
        case O_META: meta = optarg; break;
        case O_PROTOCOL: protocol_s = optarg; break;
        case O_TRAIN: o.train_split = optarg; break;
        case O_TEST: o.test_split = optarg; break;
        case O_SET: o.set_split = optarg; break;
        case O_EXCLUDE: exclude_s = optarg; break;
        case O_MULTI: multi_s = optarg; break;
        case O_UNLAB: o.unlabelled_refs = 1; break;
        case O_METRIC: metric_s = optarg; break;
        case O_VOTE: vote_s = optarg; break;
        case O_JSON: json_path = optarg; break;
        case O_CSV: csv_path = optarg; break;
        case O_DIR: dir = optarg; break;
        case O_NB: nb_path = optarg; break;
        case O_PRED: pred_path = optarg; break;
        case O_KERNELS: kernels_s = optarg; break;
        case O_PRECISION:
            precision_auto = strcmp(optarg, "auto") == 0;
            if (!precision_auto && pl_precision_parse(optarg, &o.precision) != PL_OK)
                return pl_cli_usage_error(cmd, "--precision must be auto, fp32 or bf16, not '%s'", optarg);
            break;
        case O_TEMP:
            if ((rc = pl_cli_option_double(cmd, "--temperature", optarg, DBL_MIN, 1e6, &d))) return rc;
            o.temperature = (float)d;
            break;
        // each integer option under its own name (argv[optind - 1] is the value when it was given apart)
        case 'k': if ((rc = pl_cli_option_int(cmd, "-k/--k", optarg, 1, 1024, &o.k_max))) return rc; break;
        case O_FOLDS: if ((rc = pl_cli_option_int(cmd, "--folds", optarg, 2, 100000, &o.folds))) return rc; break;
        case O_SEEDS: if ((rc = pl_cli_option_int(cmd, "--seeds", optarg, 1, 1000, &o.seeds))) return rc; break;
        case O_SEED:
            if ((rc = pl_cli_option_long(cmd, "--seed", optarg, 0, LONG_MAX, &v))) return rc;
            o.seed = (uint64_t)v;
            break;
        case O_THREADS: if ((rc = pl_cli_option_long(cmd, "--threads", optarg, 1, 1024, &threads))) return rc; break;
        case O_QB: if ((rc = pl_cli_option_int(cmd, "--query-block", optarg, 1, 8192, &o.query_block))) return rc; break;
        case O_RB: if ((rc = pl_cli_option_int(cmd, "--ref-block", optarg, 1, 131072, &o.ref_block))) return rc; break;
        case ':': return pl_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return pl_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return pl_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!store == !features) return pl_cli_usage_error(cmd, "give either --store or --features (with --meta)");
    if (features && !meta) return pl_cli_usage_error(cmd, "--features needs --meta M.tsv");
    if (!features && meta) return pl_cli_usage_error(cmd, "--meta goes with --features");
    int choice[5];   // the enums follow the name order of each list
    if ((rc = pl_cli_option_choice(cmd, "--protocol", protocol_s, knn_protocols, 3, &choice[0])) ||
        (rc = pl_cli_option_choice(cmd, "--exclude-same", exclude_s, knn_excludes, 3, &choice[1])) ||
        (rc = pl_cli_option_choice(cmd, "--metric", metric_s, knn_metrics, 2, &choice[2])) ||
        (rc = pl_cli_option_choice(cmd, "--vote", vote_s, knn_votes, 2, &choice[3])) ||
        (rc = pl_cli_option_choice(cmd, "--multilabel", multi_s, knn_multis, 2, &choice[4])))
        return rc;
    o.protocol = (PlKnnProtocol)choice[0];
    o.exclude = (PlKnnExclude)choice[1];
    o.metric = (PlKnnMetric)choice[2];
    o.vote = (PlKnnVote)choice[3];
    o.multilabel = (PlMultilabel)choice[4];
    PlStoreLevel level;
    if (pl_store_level_parse(level_s, &level) != PL_OK) {
        rc = pl_cli_usage_error(cmd, "--level %s: %s", level_s, pl_error_message());
        pl_error_clear();
        return rc;
    }
    if (nb_path && o.protocol == PL_KNN_KFOLD) return pl_cli_usage_error(cmd, "--neighbours is for train-test and loo");
    if (pred_path && o.protocol == PL_KNN_KFOLD) return pl_cli_usage_error(cmd, "--predictions is for train-test and loo");
    if (pl_eval_check_outputs("knn", store, features, meta, json_path, csv_path, dir, nb_path, pred_path) != PL_OK)
        return PL_EXIT_FAIL;   // every rank sees the same paths and refuses alike

    int rank = 0, size = 1;
    if (pl_mpi_active()) {
        if (PL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank)) != PL_OK ||
            PL_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size)) != PL_OK)
            return PL_EXIT_ABORT;
        o.comm = MPI_COMM_WORLD;
    }
    if (precision_auto) o.precision = knn_auto_precision(kernels_s);
    if ((rc = pl_cli_option_kernels(cmd, kernels_s, o.precision, &o.kernels))) return rc;   // alike on every rank
    // output paths before any input is read (docs/guide.md "Output paths"); rank 0 checks, every rank agrees
    PlStatus st = PL_OK;
    if (rank == 0) {
        const char *files[][2] = {{"--json", json_path}, {"--csv", csv_path}, {"--neighbours", nb_path},
                                  {"--predictions", pred_path}};
        for (int i = 0; i < 4 && st == PL_OK; i++)
            if (files[i][1]) st = pl_output_file_check(files[i][1], files[i][0]);
        if (st == PL_OK) st = pl_output_dir_check(dir, "--report-dir");
    }
    if (pl_mpi_agree(st, "checking the output paths") != PL_OK) {
        if (rank != 0) pl_error_clear();   // rank 0 prints the reason
        return PL_EXIT_FAIL;
    }
    st = pl_mpi_agree(pl_process_start_pool((int)threads, &o.pool), "starting the thread pool");
    if (st != PL_OK) return PL_EXIT_FAIL;
    int n_threads = pl_threadpool_size(o.pool);
    o.keep_neighbours = 1;

    double t_read = pl_clock_now();
    PlFeatureSet fs;
    st = store ? pl_features_read_store(store, level, &fs) : pl_features_read_npy_tsv(features, meta, &fs);
    if (pl_mpi_agree(st, "reading the features") != PL_OK) {
        if (st == PL_OK) pl_features_free(&fs);
        return PL_EXIT_FAIL;
    }
    if (fs.n_skipped > 0 && rank == 0)
        pl_log_warn("%s: skipped %lld rows with non-finite embeddings (failed items)", store, (long long)fs.n_skipped);
    pl_log_info("knn: %lld rows x %d dims, %d rank(s) x %d thread(s), kernels %s, precision %s", (long long)fs.n, fs.dim,
                size, n_threads, o.kernels->name, pl_precision_name(o.precision));
    double t_eval = pl_clock_now();
    PlKnnResult r;
    st = pl_knn_evaluate(&fs, &o, &r);
    if (st != PL_OK) {
        // a check of the options against the data fails alike on every rank before any collective, and a failed
        // search is agreed inside: every rank is at this point; an MPI failure is not (main then ends every rank)
        if (st != PL_ERR_MPI) pl_mpi_agree(st, "the kNN evaluation");
        pl_features_free(&fs);
        return PL_EXIT_FAIL;
    }
    double t_reports = pl_clock_now();
    if (rank == 0) {
        // the configuration (with the input's SHA-256: a second pass over the features) only goes into a JSON
        json_t *config = json_path || dir ? knn_config_json(&o, &fs, store, features, meta, level_s, size, n_threads)
                                          : NULL;
        st = knn_write_reports(json_path, csv_path, dir, nb_path, pred_path, &fs, &r, config);
        json_decref(config);
        if (st == PL_OK) pl_report_knn_summary(stdout, &r);
    }
    double t_end = pl_clock_now();
    pl_log_debug("knn: seconds: read features %.3f, evaluation %.3f (search %.3f, scoring %.3f), reports %.3f",
                 t_eval - t_read, t_reports - t_eval, r.seconds_search, r.seconds_score, t_end - t_reports);
    pl_knn_result_free(&r);
    pl_features_free(&fs);
    return pl_mpi_agree(st, "writing the kNN reports") == PL_OK ? PL_EXIT_OK : PL_EXIT_FAIL;
}
