// Shared entry points of the checkpoint fuzz targets, so ctest can replay the corpus through the same code
// (tests/unit/test_fuzz_replay.c) that libFuzzer drives (tests/fuzz/fuzz_*.c). Header-only: static functions.
#ifndef PL_FUZZ_ENTRIES_H
#define PL_FUZZ_ENTRIES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pl_bytesource.h"
#include "pl_safetensors.h"
#include "pl_unpickle.h"
#include "pl_weights.h"

// Every input goes to the safetensors parser; a success must give consistent tensors.
static inline int pl_fuzz_safetensors_one(const uint8_t *data, size_t size) {
    PlByteSource src;
    pl_bytesource_open_memory(&src, data, size, "fuzz.safetensors");
    PlWeights w;
    memset(&w, 0, sizeof w);
    if (pl_safetensors_load(&src, &w) == PL_OK) {
        volatile float sink = 0;
        for (size_t i = 0; i < w.count; i++) {
            int64_t n = pl_weight_tensor_numel(&w.tensors[i]);
            if (n > 0) sink += w.tensors[i].data[n - 1];
        }
        (void)sink;
    }
    pl_weights_free(&w);
    return 0;
}

// Every input goes to the restricted unpickler; a result is rendered and searched like the loader does.
static inline int pl_fuzz_pickle_one(const uint8_t *data, size_t size) {
    PlPickle p;
    if (pl_unpickle(data, size, "fuzz.pkl", &p) == PL_OK) {
        char buf[512];
        pl_py_format(p.root, buf, sizeof buf);
        (void)pl_py_dict_get(p.root, "teacher");
        const PlPyValue *args = pl_py_dict_get(p.root, "args");
        if (args) pl_py_format(args, buf, sizeof buf);
        pl_pickle_free(&p);
    }
    return 0;
}

// Whole-checkpoint path: format detection, zip, unpickler, tensor views (as `protloc model inspect` loads).
static inline int pl_fuzz_checkpoint_one(const uint8_t *data, size_t size) {
    PlWeights w;
    if (pl_weights_load_memory(data, size, "fuzz.pth", NULL, &w) == PL_OK) pl_weights_free(&w);
    PlWeightsOptions opt = {.checkpoint_key = "student"};
    if (pl_weights_load_memory(data, size, "fuzz.pth", &opt, &w) == PL_OK) pl_weights_free(&w);
    return 0;
}

#endif
