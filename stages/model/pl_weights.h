// Named float32 tensors loaded from a model checkpoint (safetensors or PyTorch zip), plus stored training args.
// Ownership: a PlWeights owns every tensor name and data buffer; pl_weights_free releases them all.
#ifndef PL_WEIGHTS_H
#define PL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"

#define PL_WEIGHTS_MAX_DIMS 8

typedef struct PlWeightTensor {
    char *name;                         // after prefix stripping, e.g. "blocks.0.attn.qkv.weight"
    int ndim;
    int64_t shape[PL_WEIGHTS_MAX_DIMS];
    float *data;                        // contiguous C order, converted to float32
} PlWeightTensor;

typedef struct PlWeights {
    PlWeightTensor *tensors;
    size_t count;
    // From a DINO training checkpoint's `args` (argparse.Namespace), when present; 0 / "" otherwise.
    int args_patch_size;
    char args_arch[64];
    char *args_text;                    // every stored arg as "name=value" lines (malloc'd) or NULL
    char format[32];                    // "safetensors", "pytorch-zip"
} PlWeights;

typedef struct PlWeightsOptions {
    const char *checkpoint_key;         // for training checkpoints: "teacher" (default) or "student"; NULL = default
} PlWeightsOptions;

// Load a checkpoint; the format is detected from the file's contents. Prefixes "module." and "backbone."
// are stripped and "head.*" tensors dropped. Never executes code from the file.
PlStatus pl_weights_load(const char *path, const PlWeightsOptions *options, PlWeights *out);
const PlWeightTensor *pl_weights_find(const PlWeights *w, const char *name);
void pl_weights_free(PlWeights *w);

#endif
