// The parameter table's two helpers (see pl_train_tensor.h): appending a named tensor and allocating a slab.
#include "pl_train_tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pl_train_tensor_add(PlTrainTensor *table, int *count, size_t *off, const char *name, int ndim,
                         const int64_t *shape, int layer, int head) {
    PlTrainTensor *x = &table[(*count)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = ndim;
    x->numel = 1;
    for (int i = 0; i < ndim; i++) {
        x->shape[i] = shape[i];
        x->numel *= (size_t)shape[i];
    }
    x->offset = *off;
    *off += (x->numel + 15) & ~(size_t)15;
    size_t len = strlen(name);
    x->decay = !(len >= 5 && strcmp(name + len - 5, ".bias") == 0) && ndim != 1;
    x->layer = layer;
    x->head = head;
}

float *pl_train_alloc_slab(size_t floats) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, floats * sizeof(float)) != 0) return NULL;
    memset(p, 0, floats * sizeof(float));   // zero (padding stays 0) and touch every page now, not in a hot loop
    return p;
}
