// Intensity normalisation of channel planes: self (per-image z-score), fixed (model-card mean/std), percentile clip.
//
// Each mode is an affine map applied after optional clipping, y = (clamp(x, lo, hi) - shift) * scale:
//   self   per image and per channel: shift = mean, scale = 1 / (std + eps) with the POPULATION std
//          (ddof 0) and eps = 1e-7, as DINO4Cells. Mean/std are taken over the (clipped) values, in double.
//   fixed  per model slot: x is first scaled to [0,1] by the source depth (÷255, ÷65535, ÷(2^32-1);
//          float sources are taken as already in [0,1]), then (x01 - mean[slot]) / std[slot]. Without
//          mean/std in the model card the ImageNet defaults 0.485/0.456/0.406, 0.229/0.224/0.225 apply
//          (3 slots only).
//   none   raw values (shift 0, scale 1).
// Clipping (any mode): lo/hi are the clip_low / clip_high percentiles of the channel (NumPy's default
// "linear" definition), applied before the statistics; off when clip_low <= 0 and clip_high >= 100.
// Ownership: plain value structs; pl_norm_stats needs caller scratch (pl_norm_scratch_bytes) when clipping.
#ifndef PL_NORMALISE_H
#define PL_NORMALISE_H

#include <stddef.h>
#include "pl_error.h"

#define PL_NORM_MAX_SLOTS 16

typedef enum PlNormMode { PL_NORM_SELF = 0, PL_NORM_FIXED = 1, PL_NORM_NONE = 2 } PlNormMode;

typedef struct PlNormSpec {
    PlNormMode mode;
    int n_stats;                      // fixed: number of mean/std entries (0 = ImageNet defaults)
    float mean[PL_NORM_MAX_SLOTS];    // fixed: per slot, in [0,1] units
    float std[PL_NORM_MAX_SLOTS];
    double clip_low, clip_high;       // percentiles (0 and 100 = no clipping)
    double eps;                       // self: added to the std (1e-7)
} PlNormSpec;

// Per-channel statistics of one plane (the part of normalisation that depends on the image).
typedef struct PlChannelStats {
    double lo, hi;       // clip bounds (-inf/+inf when not clipping), kept in double like NumPy
    double mean, std;    // of the clipped values (population std)
    double max_value;    // value that maps to 1.0 in fixed mode (255, 65535, 2^32-1, or 1 for floats)
} PlChannelStats;

// mode + eps 1e-7, no clipping, no fixed stats.
void pl_norm_spec_default(PlNormSpec *spec, PlNormMode mode);
// "self" | "fixed" | "none".
PlStatus pl_norm_mode_parse(const char *name, PlNormMode *out);
// Parse comma-separated floats "0.485,0.456,0.406" into mean or std (fixed mode); std must be > 0.
PlStatus pl_norm_spec_set_fixed(PlNormSpec *spec, const char *mean_csv, const char *std_csv);
// Check the spec against the model's slot count (fixed needs n_stats == n_slots, or 3 slots for defaults).
PlStatus pl_norm_spec_validate(const PlNormSpec *spec, int n_slots);

// Scratch bytes pl_norm_stats needs for a plane of n values (0 when the spec does not clip).
size_t pl_norm_scratch_bytes(const PlNormSpec *spec, size_t n);
// Statistics of plane x (n values) from a source of `bits` depth (is_float for float sources).
PlStatus pl_norm_stats(const PlNormSpec *spec, const float *x, size_t n, int bits, int is_float, void *scratch,
                       PlChannelStats *st);
// The affine map (shift, scale) for a channel with stats `st` placed in model slot `slot`.
void pl_norm_affine(const PlNormSpec *spec, const PlChannelStats *st, int slot, double *shift, double *scale);
// y[i] = (clamp(x[i], lo, hi) - shift) * scale; x and y may alias.
void pl_norm_apply(const float *x, size_t n, double lo, double hi, double shift, double scale, float *y);

// Percentile p in [0,100] of x (NumPy "linear"); `scratch` holds n floats (x is not modified).
double pl_percentile(const float *x, size_t n, double p, float *scratch);

#endif
