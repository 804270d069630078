// What `protloc finetune` writes besides the weights: report.json and its plots for one run, model.json (the input
// card pointing at the fine-tuned backbone), and the grid summary (grid.tsv, grid.json, grid.png/svg: macro F1 mean
// ± std per fraction, fine-tuned next to the frozen-backbone probe when its report is given).
#ifndef PL_FINETUNE_REPORT_H
#define PL_FINETUNE_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pl_error.h"
#include "pl_finetune.h"
#include "pl_modelcard.h"
#include "pl_vit_train.h"

// What the runs of one grid must share (ft_collect refuses a mix), recorded in report.json as model.weights_sha256,
// model.checkpoint_key, model.head_init_sha256, data.source_sha256, data.labels and data.labels_sha256.
typedef struct FtFingerprint {
    char weights_sha256[65], head_init_sha256[65], source_sha256[65], labels_sha256[65];   // "" where no such file
    const char *checkpoint_key, *labels;   // borrowed; NULL: none
} FtFingerprint;

// SHA-256 of the weights file, the head init (NULL: none), the data source (manifest or X.npy) and the labels file
// (NULL: none, e.g. a manifest). On failure *fp is zeroed and the error names the file.
PlStatus ft_fingerprint(const char *weights, const char *checkpoint_key, const char *head_init, const char *source,
                        const char *labels, FtFingerprint *fp);

// Memory per rank of one fine-tune in bytes, as logged at its start and written to report.json (execution.memory):
// what the code allocates, asked of the objects that allocate it where they exist (cmd_finetune.c ft_memory).
typedef struct FtMemory {
    double total;         // the sum of the parts below: the expected peak resident memory of the rank
    double baseline;      // the process itself (libraries, MPI, oneDNN, thread stacks, heap): measured resident
                          // memory before the trainer is created, less the weights and data below
    double runtime;       // what starts with the training: each thread's stack, malloc arena and GEMM packing
                          // buffers, the reader thread's included (1.5 MiB per thread, measured: FT_RUNTIME_BYTES)
    double weights;       // the checkpoint (and --head-init) as loaded, kept for the whole command
    double parameters;    // the trainer's FP32 parameter slab
    double bf16;          // --precision bf16: the parameters' resident BF16 copy (0 for fp32)
    double optimizer;     // moments: 2 slabs for AdamW, 1 for SGD with momentum, 0 for plain SGD
    double gradients;     // leaf gradient per thread + tree node buffers (+ summed gradient and gather chunks with MPI)
    double best;          // the best epoch's weights (with a validation split)
    double activations;   // one activation slab per thread
    double batches;       // the ring of prepared batches (slots x slot), augmentation scratch, sample orders
    double slot;          // one prepared batch of this rank (images, labels, targets, keys)
    int slots;            // batches in the ring: --prefetch + 1, fewer when --cache-memory bounds them
    int slot_images;      // images in a slot: this rank's share of a global batch
    double data;          // the samples in memory (X.npy and labels, or the canvases; with --cache only the index of
                          // the cached samples) and the row lists
    double transient;     // the largest short-lived allocation on top of the rest: the backbone copy written at the
                          // end, or an evaluation's logits and gathered images
    double peak_measured; // not a part: this process's peak resident memory so far (getrusage), when the report is
                          // written (0 where unknown)
} FtMemory;

typedef struct FtRunInfo {
    const char *model, *data, *head_init;   // what was trained on (manifest or arrays)
    double fraction;
    int fraction_index, seed_index;
    uint64_t subset_seed, train_seed;
    int64_t n_train, n_train_total, n_val, n_test, n_failed;
    char *const *classes;                   // (n_classes) or NULL (class ids)
    int n_classes;
    int ranks, threads;
    const char *kernels, *precision;
    FtMemory memory;                        // per rank
    double activation_bytes;                // per thread
    size_t params;
    const FtFingerprint *fingerprint;       // borrowed; NULL: not recorded (ft_collect then compares the paths)
    const char *cache;                      // --cache DIR, or NULL (samples in memory)
    int64_t reader_batches;                 // batches the reader prepared (this rank)
    double reader_prepare_s, reader_wait_s; // its time preparing them; the time the loop waited for one
    const PlTrainProfile *profile;          // --profile: rank 0's per-phase step times (NULL: not profiled)
} FtRunInfo;

// execution.profile of report.json from a training profile (finetune and pretrain): steps, ms per step, and per
// phase its ms per step, share of the step and GEMM GFLOP/s (0 where it runs no GEMM). NULL when out of memory.
json_t *ft_profile_json(const PlTrainProfile *p);

// DIR/report.json, DIR/training.{png,svg} (loss and validation macro F1 per epoch), DIR/confusion.{png,svg} and
// DIR/class_f1.{png,svg} (scores of the kept weights).
PlStatus ft_report_write(const char *dir, const PlFinetuneOptions *o, const PlVitTrainSpec *sp,
                         const PlFinetuneResult *r, const FtRunInfo *info);
// DIR/model.json: the card with "weights": `weights` (a file in DIR: finetune's "backbone.safetensors", pretrain's
// "teacher_backbone.safetensors"), its sha256, and the name + "-" + suffix ("finetuned", "dino").
PlStatus ft_card_write(const PlModelCard *card, const char *dir, const char *weights, const char *suffix);
// Aggregate every DIR/*/report.json (one per fraction and seed) into DIR/grid.tsv, DIR/grid.json and
// DIR/grid.{png,svg}; probe_json (or NULL): a `protloc probe` report whose logreg curve is drawn alongside.
// Every input is read only when it is a regular file, and checked before anything is written: a report of another
// kind, a number out of range (F1 and accuracy in [0, 1], fraction in (0, 1], seeds and counts non-negative
// integers), runs of another model or data (the fingerprint above; paths where older reports have no digests), the
// same (fraction, repetition) twice, or a probe report without the grid's fractions is an error naming the file.
// A folder without report.json (a run still going or failed) is skipped with a warning.
PlStatus ft_collect(const char *dir, const char *probe_json);
// Check a `--probe` report up front (before any training): a `protloc probe` report with logreg results at each of
// the grid's fractions fr[0..n), as ft_collect will need.
PlStatus ft_probe_check(const char *probe_json, const double *fr, int n);

#endif
