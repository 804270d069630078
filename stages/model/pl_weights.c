// Checkpoint loading front door: format detection, the PlWeights container, key canonicalisation.
#include "pl_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pl_bytesource.h"
#include "pl_safetensors.h"
#include "pl_torch_checkpoint.h"

const char *pl_weights_canonical_name(const char *raw) {
    const char *p = raw;
    for (;;) {
        if (strncmp(p, "module.", 7) == 0) p += 7;
        else if (strncmp(p, "backbone.", 9) == 0) p += 9;
        else break;
    }
    if (strncmp(p, "head.", 5) == 0 || strcmp(p, "head") == 0) return NULL;
    return p;
}

int64_t pl_weight_tensor_numel(const PlWeightTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

PlStatus pl_weights_add(PlWeights *w, const char *name, int ndim, const int64_t *shape, float **data) {
    *data = NULL;
    if (ndim < 0 || ndim > PL_WEIGHTS_MAX_DIMS)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "tensor %s has %d dimensions (at most %d supported)", name, ndim,
                       PL_WEIGHTS_MAX_DIMS);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return PL_FAIL(PL_ERR_FORMAT, "tensor %s has a negative dimension %lld", name,
                                         (long long)shape[i]);
        if (pl_mul_overflows(numel, (size_t)shape[i], &numel))
            return pl_error_wrap("tensor %s", name);
    }
    size_t bytes;
    if (pl_mul_overflows(numel, sizeof(float), &bytes) || bytes > PL_WEIGHTS_MAX_FILE_BYTES)
        return PL_FAIL(PL_ERR_LIMIT, "tensor %s is too large (%zu elements)", name, numel);
    if (pl_weights_find(w, name)) return PL_FAIL(PL_ERR_FORMAT, "duplicate tensor name %s", name);
    if (w->count == w->capacity) {
        size_t cap = w->capacity ? w->capacity * 2 : 64;
        PlWeightTensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t) return PL_FAIL(PL_ERR_NOMEM, "out of memory growing the tensor list to %zu", cap);
        w->tensors = t;
        w->capacity = cap;
    }
    PlWeightTensor *t = &w->tensors[w->count];
    memset(t, 0, sizeof *t);
    t->name = pl_strdup(name);
    if (!t->name) return PL_ERR_NOMEM;
    size_t need = pl_weights_slab_floats(numel);
    if (w->slab && w->slab_floats - w->slab_used >= need) {
        t->data = w->slab + w->slab_used;
        w->slab_used += need;
    } else {
        t->data = pl_malloc(bytes);
    }
    if (!t->data) {
        free(t->name);
        return pl_error_wrap("tensor %s", name);
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    w->count++;
    *data = t->data;
    return PL_OK;
}

size_t pl_weights_slab_floats(size_t numel) { return (numel + 15) & ~(size_t)15; }

PlStatus pl_weights_reserve(PlWeights *w, size_t floats) {
    if (w->slab || floats == 0) return PL_OK;
    size_t huge = (size_t)2 << 20, bytes;
    if (pl_mul_overflows(floats, sizeof(float), &bytes) || bytes > PL_WEIGHTS_MAX_FILE_BYTES)
        return PL_FAIL(PL_ERR_LIMIT, "weights of %zu floats exceed the checkpoint limit", floats);
    bytes = (bytes + huge - 1) / huge * huge;
    float *slab = aligned_alloc(huge, bytes);
    if (!slab) return PL_FAIL(PL_ERR_NOMEM, "out of memory allocating %zu bytes of weights", bytes);
    (void)madvise(slab, bytes, MADV_HUGEPAGE);   // advisory: fewer page faults where THP is available
    w->slab = slab;
    w->slab_floats = bytes / sizeof(float);
    w->slab_used = 0;
    return PL_OK;
}

PlStatus pl_weights_add_arg(PlWeights *w, const char *name, const char *value) {
    size_t old = w->args_text ? strlen(w->args_text) : 0;
    size_t add = strlen(name) + strlen(value) + 2;
    char *text = realloc(w->args_text, old + add + 1);
    if (!text) return PL_FAIL(PL_ERR_NOMEM, "out of memory storing args");
    snprintf(text + old, add + 1, "%s=%s\n", name, value);
    w->args_text = text;
    return PL_OK;
}

const char *pl_weights_arg_next(const PlWeights *w, const char **cursor, size_t *len) {
    const char *p = *cursor ? *cursor : w->args_text;
    if (!p || !*p) return NULL;
    const char *eol = strchr(p, '\n');
    *len = eol ? (size_t)(eol - p) : strlen(p);
    *cursor = p + *len + (eol ? 1 : 0);
    return p;
}

const char *pl_weights_arg(const PlWeights *w, const char *key, size_t *len) {
    const size_t kl = strlen(key);
    const char *cursor = NULL, *line;
    size_t n;
    while ((line = pl_weights_arg_next(w, &cursor, &n)))
        if (n > kl && strncmp(line, key, kl) == 0 && line[kl] == '=') {
            *len = n - kl - 1;
            return line + kl + 1;
        }
    return NULL;
}

const PlWeightTensor *pl_weights_find(const PlWeights *w, const char *name) {
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return &w->tensors[i];
    return NULL;
}

void pl_weights_free(PlWeights *w) {
    if (!w) return;
    for (size_t i = 0; i < w->count; i++) {
        free(w->tensors[i].name);
        float *d = w->tensors[i].data;
        if (!(w->slab && d >= w->slab && d < w->slab + w->slab_floats)) free(d);
    }
    free(w->slab);
    free(w->tensors);
    free(w->args_text);
    memset(w, 0, sizeof *w);
}

static PlStatus weights_load_source(const PlByteSource *src, const PlWeightsOptions *options, PlWeights *out) {
    memset(out, 0, sizeof *out);
    if (src->size > PL_WEIGHTS_MAX_FILE_BYTES)
        return PL_FAIL(PL_ERR_LIMIT, "%s: %llu bytes is larger than the %llu-byte checkpoint limit", src->name,
                       (unsigned long long)src->size, (unsigned long long)PL_WEIGHTS_MAX_FILE_BYTES);
    unsigned char head[9] = {0};
    size_t nhead = src->size < sizeof head ? (size_t)src->size : sizeof head;
    PL_TRY(pl_bytesource_read(src, 0, head, nhead));
    PlStatus st;
    if (nhead >= 4 && memcmp(head, "PK\x03\x04", 4) == 0) {
        snprintf(out->format, sizeof out->format, "pytorch-zip");
        st = pl_torch_checkpoint_load(src, options, out);
    } else if (nhead == 9 && head[8] == '{') {
        snprintf(out->format, sizeof out->format, "safetensors");
        st = pl_safetensors_load(src, out);
    } else if (nhead >= 2 && head[0] == 0x80 && head[1] <= 5) {
        st = PL_FAIL(PL_ERR_UNSUPPORTED,
                     "%s: a legacy (pre-1.6, non-zip) PyTorch pickle file; re-save it with torch.save() from a "
                     "current PyTorch or export it to safetensors",
                     src->name);
    } else {
        st = PL_FAIL(PL_ERR_FORMAT,
                     "%s: not a model checkpoint: neither a safetensors file (8-byte header length, then '{') "
                     "nor a PyTorch zip archive (starts with \"PK\")",
                     src->name);
    }
    if (st != PL_OK) {
        pl_weights_free(out);
        return st;
    }
    if (out->count == 0) {
        pl_weights_free(out);
        return PL_FAIL(PL_ERR_FORMAT, "%s: the checkpoint holds no tensors", src->name);
    }
    return PL_OK;
}

PlStatus pl_weights_load(const char *path, const PlWeightsOptions *options, PlWeights *out) {
    memset(out, 0, sizeof *out);
    PlByteSource src;
    PL_TRY(pl_bytesource_open_file(&src, path));
    PlStatus st = weights_load_source(&src, options, out);
    pl_bytesource_close(&src);
    return st;
}

PlStatus pl_weights_load_memory(const void *data, size_t size, const char *name, const PlWeightsOptions *options,
                                PlWeights *out) {
    PlByteSource src;
    pl_bytesource_open_memory(&src, data, size, name);
    return weights_load_source(&src, options, out);
}
