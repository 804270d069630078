// Per-phase profile of training steps (`--profile`): seconds and GEMM FLOPs per phase (patch embedding, each
// linear layer's forward / input-gradient / weight-gradient GEMMs, attention, LayerNorm, GELU, residual and bias
// work, BF16 conversions, head and loss, gradient reduce, optimizer, data), summed over the profiled steps.
//
// One slot per micro-batch worker (a pool thread writes only its own slot) plus one for the loop's own thread.
// Phases nest: a phase timed inside another (a BF16 conversion inside a GEMM phase, the layers inside the
// micro-batch) is subtracted from the enclosing one, so every second is counted once (self time). Worker slots hold
// thread-seconds; the report divides them by the worker count to put them beside the loop thread's wall seconds.
// With a NULL slot every call is a no-op: the layers call these unconditionally.
//
// Ownership: the program creates the profile (pl_train_profile_create) and hands borrowed pointers to the trainer,
// the step and the models (pl_vit_train_set_profile); it frees it after the run.
#ifndef PL_TRAIN_PROFILE_H
#define PL_TRAIN_PROFILE_H

#include <stdio.h>

#include "pl_error.h"

typedef enum PlProfPhase {
    PL_PROF_DATA,                                     // the loop waits for the batch (loop thread)
    PL_PROF_PATCH_FWD, PL_PROF_PATCH_BWD,             // patch embedding: unfold + GEMM, its weight gradient
    PL_PROF_QKV_FWD, PL_PROF_QKV_DX, PL_PROF_QKV_DW,  // each linear layer: forward, input-gradient, weight-gradient GEMM
    PL_PROF_PROJ_FWD, PL_PROF_PROJ_DX, PL_PROF_PROJ_DW,
    PL_PROF_FC1_FWD, PL_PROF_FC1_DX, PL_PROF_FC1_DW,
    PL_PROF_FC2_FWD, PL_PROF_FC2_DX, PL_PROF_FC2_DW,
    PL_PROF_ATTN_FWD, PL_PROF_ATTN_BWD,               // fused attention
    PL_PROF_LN_FWD, PL_PROF_LN_BWD,                   // LayerNorm (incl. its parameter gradients)
    PL_PROF_GELU_FWD, PL_PROF_GELU_BWD,
    PL_PROF_RESIDUAL,                                 // residual adds, drop-path scaling, bias adds and sums, copies
    PL_PROF_BF16,                                     // FP32 -> BF16 operand conversions
    PL_PROF_HEAD,                                     // head, loss and the rest of the micro-batch
    PL_PROF_REDUCE,                                   // gradient tree sums and MPI (loop thread)
    PL_PROF_OPTIM,                                    // optimizer step incl. the gradient norm (loop thread)
    PL_PROF_HOOKS,                                    // after-step hooks: DINO's teacher EMA (loop thread)
    PL_PROF_PHASES
} PlProfPhase;

typedef struct PlProfSlot {
    double sec[PL_PROF_PHASES];
    double flop[PL_PROF_PHASES];
    double inner;        // seconds of phases timed so far (for self time)
    int linear;          // PL_PROF_*_FWD of the linear layer the next pl_linear_* call belongs to; PL_PROF_HEAD: none
    int on;              // 1 while a training step runs (evaluation passes between steps are not counted)
} PlProfSlot;

typedef struct PlProfMark {
    double t, inner;
} PlProfMark;

typedef struct PlTrainProfile {
    int workers;
    PlProfSlot *slot;    // workers + 1: the workers', then the loop thread's
    double step_sec;     // wall seconds of the profiled steps (loop thread)
    long steps;
} PlTrainProfile;

PlStatus pl_train_profile_create(int workers, PlTrainProfile **out);
void pl_train_profile_destroy(PlTrainProfile *p);
// Forget everything measured so far (the loop calls it after the first, warm-up step).
void pl_train_profile_reset(PlTrainProfile *p);
// Count (1) or ignore (0) what the slots time from now on; the loop turns it on for its steps only. Starts off.
void pl_train_profile_enable(PlTrainProfile *p, int on);
// The loop thread's slot; NULL for a NULL profile.
PlProfSlot *pl_train_profile_main(PlTrainProfile *p);
PlProfSlot *pl_train_profile_worker(PlTrainProfile *p, int worker);

PlProfMark pl_prof_begin(const PlProfSlot *s);
// Adds the self time since m to `phase`, and flop (GEMM FLOPs, 0 for none).
void pl_prof_end(PlProfSlot *s, PlProfMark m, PlProfPhase phase, double flop);
// The linear layer the next pl_linear_* calls of this slot belong to (PL_PROF_HEAD after the backbone).
void pl_prof_linear(PlProfSlot *s, PlProfPhase fwd_phase);

// The phase's name as printed, e.g. "qkv weight grad".
const char *pl_prof_phase_name(PlProfPhase phase);
// Seconds per step of a phase as the report shows it (worker thread-seconds / workers; the loop's wall), its GEMM
// FLOPs per step, and the rest of the step no phase claims (pool waits, logging, idle workers of a short round).
double pl_train_profile_phase_sec(const PlTrainProfile *p, PlProfPhase phase);
double pl_train_profile_phase_flop(const PlTrainProfile *p, PlProfPhase phase);
double pl_train_profile_rest_sec(const PlTrainProfile *p);
// The table (phase, ms/step, share, GFLOP/s) as Markdown to f.
int pl_train_profile_print(const PlTrainProfile *p, const char *title, FILE *f);

#endif
