// Number parsing, provenance and the output check of the evaluation commands (see pl_eval_cli.h).
#include "pl_eval_cli.h"

#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_cli.h"
#include "pl_cli_outputs.h"
#include "pl_clock.h"
#include "pl_digest.h"

int pl_eval_parse_fractions(const char *s, double *out, int max) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double v;
        if (n >= max || !pl_cli_parse_double(tok, DBL_MIN, 1.0, &v)) return -1;
        out[n++] = v;
    }
    return n > 0 ? n : -1;
}

void pl_eval_add_provenance(json_t *config, const char *input) {
    char t[64];
    json_object_set_new(config, "created", json_string(pl_clock_iso_utc(t, sizeof t)));
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) json_object_set_new(config, "host", json_string(host));
    char hex[65];
    if (input && pl_sha256_file(input, hex) == PL_OK) json_object_set_new(config, "input_sha256", json_string(hex));
}

PlStatus pl_eval_check_outputs(const char *command, const char *store, const char *features, const char *meta,
                               const char *json, const char *csv, const char *report_dir, const char *neighbours,
                               const char *predictions) {
    // the files knn_write_reports / probe_write_reports (pipeline/cmd_knn.c, cmd_probe.c) write into --report-dir
    static const char *const knn_names[] = {"knn.json", "knn_f1_vs_k.csv", "knn_per_class.csv", "knn_predictions.tsv",
                                            "knn_f1_vs_k.png", "knn_f1_vs_k.svg", "knn_confusion.png",
                                            "knn_confusion.svg", "knn_per_class_f1.png", "knn_per_class_f1.svg", NULL};
    static const char *const probe_names[] = {
        "probe.json", "probe_f1_vs_fraction.csv", "probe_f1_vs_fraction.png", "probe_f1_vs_fraction.svg",
        "probe_logreg_confusion.png", "probe_logreg_confusion.svg", "probe_logreg_per_class_f1.png",
        "probe_logreg_per_class_f1.svg", "probe_mlp_confusion.png", "probe_mlp_confusion.svg",
        "probe_mlp_per_class_f1.png", "probe_mlp_per_class_f1.svg", NULL};
    const PlCliPath outputs[] = {{"--json", json, NULL, 0},
                                 {"--csv", csv, NULL, 0},
                                 {"--neighbours", neighbours, NULL, 0},
                                 {"--predictions", predictions, NULL, 0},
                                 {"--report-dir", report_dir, strcmp(command, "knn") ? probe_names : knn_names, 0}};
    const PlCliPath inputs[] = {{"--store", store, NULL, 0}, {"--features", features, NULL, 0},
                                {"--meta", meta, NULL, 0}};
    return pl_cli_check_outputs(outputs, 5, inputs, 3);
}
