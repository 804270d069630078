// Evaluation reports: JSON (figures + configuration + provenance), CSV tables and printed summaries.
//
// Every file is written atomically (temp + rename). `config` is a JSON object owned by the caller that is
// copied into the report under "config" (options, inputs, software version).
#ifndef PL_REPORT_H
#define PL_REPORT_H

#include <jansson.h>
#include <stdio.h>
#include "pl_error.h"
#include "pl_knn_eval.h"
#include "pl_probe.h"

// Write a JSON value (indent 2) atomically; `what` names it in errors.
PlStatus pl_report_write_json(const char *path, json_t *root);
// kNN: {"k": [...], "macro_f1": [...], "accuracy": [...], "macro_f1_mean"/"_std", "accuracy_mean"/"_std",
// "runs": [[...]...] (kfold), "best_k", "classes", "per_class_f1_best_k", "confusion_best_k", "support", "config"}.
json_t *pl_report_knn_json(const PlKnnResult *r, const json_t *config);
// kNN CSVs: F1 vs k (k,macro_f1,macro_f1_std,accuracy,accuracy_std) and per-class (class,support,f1 at best k).
PlStatus pl_report_knn_csv(const char *path, const PlKnnResult *r);
PlStatus pl_report_knn_class_csv(const char *path, const PlKnnResult *r);
void pl_report_knn_summary(FILE *out, const PlKnnResult *r);

json_t *pl_report_probe_json(const PlProbeResult *r, const json_t *config);
// F1 vs fraction (head,fraction,n_train_mean,macro_f1_mean,macro_f1_std,accuracy_mean,accuracy_std,runs).
PlStatus pl_report_probe_csv(const char *path, const PlProbeResult *r);
void pl_report_probe_summary(FILE *out, const PlProbeResult *r);

#endif
