// A trained thing's parameter table: named tensors carved out of one 64-byte aligned float slab (llm.c's
// ParameterTensors), with DINO's parameter-group facts per tensor, and the slab allocator every training buffer uses.
// Shared by the backbone, the heads, the optimizer, the step and the checkpoints, so none of them needs the others.
//
// Ownership (pl_train_tensor.c): a table belongs to the module that built it (the trainer, a probe head); the slab to its allocator's
// caller (free() it).
#ifndef PL_TRAIN_TENSOR_H
#define PL_TRAIN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct PlTrainTensor {
    char name[64];      // DINO backbone name, or "head.weight" / "head.bias"
    int ndim;
    int64_t shape[4];
    size_t offset;      // floats into the slab (64-byte aligned)
    size_t numel;
    int decay;          // DINO utils.get_params_groups: 0 for names ending ".bias" and 1-D tensors
    int layer;          // layer-wise lr decay id: 0 patch/cls/pos, i + 1 block i, depth + 1 final norm and head
    int head;           // 1 for the head's tensors
} PlTrainTensor;

// Append tensor `name` (ndim dims of shape) to table[*count] at *off floats into the slab; *count and *off advance
// (each tensor starts 64-byte aligned). decay follows DINO's rule from the name and ndim; layer and head as given.
void pl_train_tensor_add(PlTrainTensor *table, int *count, size_t *off, const char *name, int ndim,
                         const int64_t *shape, int layer, int head);

// A 64-byte aligned, zeroed float slab with every page touched (parameters, activations, gradients); NULL when the
// allocation fails. Free with free().
float *pl_train_alloc_slab(size_t floats);

#endif
