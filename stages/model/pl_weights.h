// Named float32 tensors loaded from a model checkpoint (safetensors or PyTorch zip), plus stored training args.
// Ownership: a PlWeights owns every tensor name and data buffer and args_text; pl_weights_free releases them all.
// Owner: loader engineer (pl_weights.c, pl_safetensors.c, pl_zip.c, pl_unpickle.c, pl_torch_checkpoint.c).
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
    char dtype[8];                      // element type in the file: "F32", "F16", "BF16" ("" when built in memory)
} PlWeightTensor;

typedef struct PlWeights {
    PlWeightTensor *tensors;
    size_t count;
    // From a DINO training checkpoint's `args` (argparse.Namespace) or safetensors `__metadata__`, when present;
    // 0 / "" otherwise.
    int args_patch_size;
    char args_arch[64];
    char *args_text;                    // every stored arg as "name=value" lines (malloc'd) or NULL
    char format[32];                    // "safetensors", "pytorch-zip"
    int args_heads;                     // "heads" from safetensors __metadata__ (or args), 0 when absent
    size_t capacity;                    // allocated slots in `tensors` (internal)
    float *slab;                        // one allocation holding tensor data (internal; see pl_weights_reserve)
    size_t slab_floats, slab_used;
    char state_dict_key[64];            // training checkpoint key whose state dict was loaded ("" = flat file)
} PlWeights;

typedef struct PlWeightsOptions {
    const char *checkpoint_key;         // for training checkpoints: "teacher" (default) or "student"; NULL = default
} PlWeightsOptions;

// Largest checkpoint accepted (bytes); bigger files fail with PL_ERR_LIMIT.
#define PL_WEIGHTS_MAX_FILE_BYTES ((uint64_t)1 << 36)

// Load a checkpoint; the format is detected from the file's contents. Prefixes "module." and "backbone."
// are stripped and "head.*" tensors dropped. Never executes code from the file.
PlStatus pl_weights_load(const char *path, const PlWeightsOptions *options, PlWeights *out);
// Same, from bytes in memory (`name` is used in messages). Used by the fuzz targets and tests.
PlStatus pl_weights_load_memory(const void *data, size_t size, const char *name, const PlWeightsOptions *options,
                                PlWeights *out);
const PlWeightTensor *pl_weights_find(const PlWeights *w, const char *name);
void pl_weights_free(PlWeights *w);

// Number of elements of a tensor (product of its shape; 1 for a scalar).
int64_t pl_weight_tensor_numel(const PlWeightTensor *t);
// Append a tensor named `name` with the given shape; *data receives its (uninitialised) float32 buffer,
// owned by `w`. Fails on a duplicate name, a negative dimension or more than PL_WEIGHTS_MAX_DIMS dims.
PlStatus pl_weights_add(PlWeights *w, const char *name, int ndim, const int64_t *shape, float **data);
// Pre-allocate one slab for `floats` float32 values (huge-page advised, 64-byte aligned per tensor) that
// later pl_weights_add calls carve their buffers from; fewer page faults than one malloc per tensor.
// Optional: without it (or once it is full) pl_weights_add allocates each tensor on its own.
PlStatus pl_weights_reserve(PlWeights *w, size_t floats);
// Floats a tensor of `numel` elements takes in the slab (rounded up to 64 bytes).
size_t pl_weights_slab_floats(size_t numel);
// Append "name=value\n" to w->args_text.
PlStatus pl_weights_add_arg(PlWeights *w, const char *name, const char *value);
// The one reader of w->args_text. pl_weights_arg: the value of `key` (*len bytes, not NUL-terminated: it ends at the
// line's end), or NULL when no line is "key=...". pl_weights_arg_next: the stored lines one after the other (*cursor
// NULL to start; *len bytes each, without the newline); NULL after the last.
const char *pl_weights_arg(const PlWeights *w, const char *key, size_t *len);
const char *pl_weights_arg_next(const PlWeights *w, const char **cursor, size_t *len);
// The name a checkpoint key gets in PlWeights: "module." and "backbone." prefixes removed (repeatedly);
// returns NULL when the tensor is dropped ("head.*"). The result points into `raw`.
const char *pl_weights_canonical_name(const char *raw);

#endif
