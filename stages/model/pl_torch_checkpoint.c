// PyTorch zip checkpoint loader: finds <folder>/data.pkl, unpickles it (restricted), picks the state dict
// (flat, or a training checkpoint's key), reads DINO `args`, and materialises tensors from stored storages.
#include "pl_torch_checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_dtype.h"
#include "pl_log.h"
#include "pl_unpickle.h"
#include "pl_zip.h"

#define PKL_MAX_BYTES ((uint64_t)256 << 20)

typedef struct TorchCtx {
    const char *path;
    PlZip zip;
    char prefix[256];     // archive folder including the trailing '/', or ""
    unsigned char *scratch;   // storage bytes for converted / strided tensors, reused across tensors
    size_t scratch_cap;
} TorchCtx;

static PlStatus torch_find_prefix(TorchCtx *c, const PlZipEntry **pkl) {
    *pkl = NULL;
    for (size_t i = 0; i < c->zip.count; i++) {
        const char *n = c->zip.entries[i].name;
        const char *slash = strchr(n, '/');
        if (strcmp(n, "data.pkl") == 0 || (slash && strcmp(slash, "/data.pkl") == 0)) {
            size_t plen = slash ? (size_t)(slash - n) + 1 : 0;
            if (plen >= sizeof c->prefix) continue;
            memcpy(c->prefix, n, plen);
            c->prefix[plen] = '\0';
            *pkl = &c->zip.entries[i];
            return PL_OK;
        }
    }
    return PL_FAIL(PL_ERR_FORMAT, "%s: zip archive has no <folder>/data.pkl: not a torch.save checkpoint", c->path);
}

static PlStatus torch_check_byteorder(TorchCtx *c) {
    char name[300];
    snprintf(name, sizeof name, "%sbyteorder", c->prefix);
    const PlZipEntry *e = pl_zip_find(&c->zip, name);
    if (!e) return PL_OK;   // older torch versions omit it: little-endian
    char buf[17] = {0};
    if (e->size > 16) return PL_FAIL(PL_ERR_FORMAT, "%s: malformed %s entry", c->path, name);
    PL_TRY(pl_zip_read(&c->zip, e, buf));
    if (strcmp(buf, "little") != 0)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: tensors are stored %s-endian; only little-endian is supported",
                       c->path, buf);
    return PL_OK;
}

static float elem_to_float(PlDtype t, const unsigned char *p) {
    float f;
    pl_dtype_convert(t, p, &f, 1);
    return f;
}

static PlStatus torch_load_tensor(TorchCtx *c, const char *key, const char *name, const PlPyTensor *t,
                                  PlWeights *out) {
    const PlPyValue *storage = t->storage;
    if (!pl_dtype_is_float_convertible(storage->dtype))
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: tensor %s is stored as %s; only float32, float16 and bfloat16 are "
                       "supported", c->path, key, storage->storage_type);
    char ename[600];
    snprintf(ename, sizeof ename, "%sdata/%s", c->prefix, storage->s);
    const PlZipEntry *e = pl_zip_find(&c->zip, ename);
    if (!e) return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: storage %s is missing from the archive", c->path, key, ename);
    size_t es = pl_dtype_size(storage->dtype);
    if (e->size % es != 0 || e->size / es != (uint64_t)storage->i)
        return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: storage %s holds %llu bytes, but the pickle says %lld elements "
                       "of %zu bytes", c->path, key, ename, (unsigned long long)e->size, (long long)storage->i, es);
    uint64_t selems = e->size / es;
    // the largest element index the view touches must lie inside the storage
    int64_t numel = 1, last = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        if (__builtin_mul_overflow(numel, t->shape[i], &numel))
            return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: shape overflows", c->path, key);
    }
    if (numel > 0) {
        for (int i = 0; i < t->ndim; i++) {
            int64_t reach;
            if (__builtin_mul_overflow(t->shape[i] - 1, t->stride[i], &reach) ||
                __builtin_add_overflow(last, reach, &last))
                return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: strides overflow", c->path, key);
        }
        if ((uint64_t)last >= selems)
            return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: view (offset %lld) reaches element %lld of a %llu-element "
                           "storage", c->path, key, (long long)t->offset, (long long)last,
                           (unsigned long long)selems);
    }
    // broadcast (stride-0) views may expand a storage, but not into a memory bomb
    if ((uint64_t)numel > 4 * selems + ((uint64_t)1 << 24))
        return PL_FAIL(PL_ERR_LIMIT, "%s: tensor %s: a view expands a %llu-element storage to %lld elements", c->path,
                       key, (unsigned long long)selems, (long long)numel);
    float *dst;
    PlStatus st = pl_weights_add(out, name, t->ndim, t->shape, &dst);
    if (st != PL_OK) return pl_error_wrap("%s", c->path);
    snprintf(out->tensors[out->count - 1].dtype, sizeof out->tensors[0].dtype, "%s", pl_dtype_name(storage->dtype));
    if (numel == 0) return PL_OK;
    int contiguous = 1;
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) contiguous = 0;
        expect *= t->shape[i];
    }
    if (contiguous && t->offset == 0 && (uint64_t)numel == selems && storage->dtype == PL_DTYPE_F32)
        return pl_zip_read(&c->zip, e, dst);   // straight into place
    if (c->scratch_cap < e->size) {
        free(c->scratch);
        c->scratch_cap = 0;
        c->scratch = pl_malloc((size_t)e->size);
        if (!c->scratch) return pl_error_wrap("%s: tensor %s", c->path, key);
        c->scratch_cap = (size_t)e->size;
    }
    unsigned char *buf = c->scratch;
    st = pl_zip_read(&c->zip, e, buf);
    if (st == PL_OK && contiguous) {
        pl_dtype_convert(storage->dtype, buf + (size_t)t->offset * es, dst, (size_t)numel);
    } else if (st == PL_OK) {
        // strided view: odometer over the outer dims, stride walk along the innermost one
        int64_t idx[PL_WEIGHTS_MAX_DIMS] = {0};
        int nd = t->ndim;
        int64_t inner = t->shape[nd - 1], istride = t->stride[nd - 1];
        for (int64_t done = 0; done < numel; done += inner) {
            int64_t base = t->offset;
            for (int i = 0; i < nd - 1; i++) base += idx[i] * t->stride[i];
            for (int64_t j = 0; j < inner; j++) dst[done + j] = elem_to_float(storage->dtype, buf + (size_t)(base + j * istride) * es);
            for (int i = nd - 2; i >= 0; i--) {
                if (++idx[i] < t->shape[i]) break;
                idx[i] = 0;
            }
        }
    }
    return st;
}

static int dict_has_tensor(const PlPyValue *d) {
    for (size_t i = 1; i < d->n; i += 2)
        if (d->items[i]->kind == PL_PY_TENSOR) return 1;
    return 0;
}

static void dict_key_list(const PlPyValue *d, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < d->n && used + 4 < size; i += 2) {
        const PlPyValue *k = d->items[i];
        char item[128];
        if (k->kind == PL_PY_STR) snprintf(item, sizeof item, "%s", k->s);
        else pl_py_format(k, item, sizeof item);
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", item);
    }
    if (!buf[0]) snprintf(buf, size, "(none)");
}

static PlStatus torch_read_args(TorchCtx *c, const PlPyValue *root, PlWeights *out) {
    const PlPyValue *args = pl_py_dict_get(root, "args");
    if (!args) return PL_OK;
    const PlPyValue *fields = args;
    if (args->kind == PL_PY_RECORD) {
        fields = args->state;
        if (fields && fields->kind == PL_PY_TUPLE && fields->n >= 1) fields = fields->items[0];
    }
    if (!fields || fields->kind != PL_PY_DICT) {
        pl_log_debug("%s: `args` is not a namespace or dict; ignored", c->path);
        return PL_OK;
    }
    for (size_t i = 0; i + 1 < fields->n; i += 2) {
        const PlPyValue *k = fields->items[i], *v = fields->items[i + 1];
        if (k->kind != PL_PY_STR) continue;
        char text[1024];
        if (v->kind == PL_PY_STR) snprintf(text, sizeof text, "%s", v->s);
        else pl_py_format(v, text, sizeof text);
        for (char *p = text; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        PL_TRY(pl_weights_add_arg(out, k->s, text));
        if (strcmp(k->s, "patch_size") == 0 && v->kind == PL_PY_INT && v->i > 0 && v->i <= 4096)
            out->args_patch_size = (int)v->i;
        else if (strcmp(k->s, "arch") == 0 && v->kind == PL_PY_STR)
            snprintf(out->args_arch, sizeof out->args_arch, "%s", v->s);
        else if ((strcmp(k->s, "heads") == 0 || strcmp(k->s, "num_heads") == 0) && v->kind == PL_PY_INT &&
                 v->i > 0 && v->i <= 4096)
            out->args_heads = (int)v->i;
    }
    return PL_OK;
}

static PlStatus torch_load_pickle(TorchCtx *c, const PlPickle *pk, const PlWeightsOptions *options, PlWeights *out) {
    const PlPyValue *root = pk->root;
    if (root->kind == PL_PY_RECORD)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: the file holds a pickled %s object, not a state dict; save "
                       "model.state_dict() instead", c->path,
                       root->type && root->type->kind == PL_PY_GLOBAL ? root->type->s : "Python");
    if (root->kind != PL_PY_DICT)
        return PL_FAIL(PL_ERR_FORMAT, "%s: the pickled object is a %s, not a state dict or training checkpoint",
                       c->path, pl_py_kind_name(root->kind));
    const char *key = options && options->checkpoint_key && options->checkpoint_key[0] ? options->checkpoint_key
                                                                                        : "teacher";
    const PlPyValue *sd = pl_py_dict_get(root, key);
    char keys[1024];
    if (sd && sd->kind == PL_PY_DICT) {
        pl_log_debug("%s: using the \"%s\" state dict of a training checkpoint", c->path, key);
        snprintf(out->state_dict_key, sizeof out->state_dict_key, "%s", key);
    } else if (dict_has_tensor(root)) {
        sd = root;   // a flat state dict: the key does not apply
    } else {
        dict_key_list(root, keys, sizeof keys);
        return PL_FAIL(PL_ERR_FORMAT, "%s: checkpoint has no \"%s\" state dict; available keys: %s (choose one with "
                       "--checkpoint-key)", c->path, key, keys);
    }
    PL_TRY(torch_read_args(c, root, out));
    size_t total = 0;   // one slab for every tensor that will be kept
    for (size_t i = 0; i + 1 < sd->n; i += 2) {
        const PlPyValue *k = sd->items[i], *v = sd->items[i + 1];
        if (k->kind != PL_PY_STR || v->kind != PL_PY_TENSOR || !pl_weights_canonical_name(k->s)) continue;
        uint64_t numel = 1;
        for (int d = 0; d < v->tensor->ndim && numel <= PL_WEIGHTS_MAX_FILE_BYTES; d++)
            numel = v->tensor->shape[d] > 0 && numel > PL_WEIGHTS_MAX_FILE_BYTES / (uint64_t)v->tensor->shape[d]
                        ? PL_WEIGHTS_MAX_FILE_BYTES + 1 : numel * (uint64_t)v->tensor->shape[d];
        if (numel > PL_WEIGHTS_MAX_FILE_BYTES) break;   // torch_load_tensor reports it
        total += pl_weights_slab_floats((size_t)numel);
    }
    // a view may claim more elements than its storage holds: never reserve more than the archive could fill
    if ((uint64_t)total * sizeof(float) <= 4 * c->zip.src->size + (1 << 20)) PL_TRY(pl_weights_reserve(out, total));
    size_t skipped = 0;
    for (size_t i = 0; i + 1 < sd->n; i += 2) {
        const PlPyValue *k = sd->items[i], *v = sd->items[i + 1];
        if (k->kind != PL_PY_STR || v->kind != PL_PY_TENSOR) {
            skipped++;
            continue;
        }
        const char *name = pl_weights_canonical_name(k->s);
        if (!name) continue;
        PL_TRY(torch_load_tensor(c, k->s, name, v->tensor, out));
    }
    if (out->count == 0) {
        dict_key_list(sd, keys, sizeof keys);
        return PL_FAIL(PL_ERR_FORMAT, "%s: the %s%s%s dict holds no backbone tensors (keys: %s)", c->path,
                       sd == root ? "top-level" : "\"", sd == root ? "" : key, sd == root ? "" : "\"", keys);
    }
    if (skipped) pl_log_debug("%s: ignored %zu non-tensor entries of the state dict", c->path, skipped);
    return PL_OK;
}

PlStatus pl_torch_checkpoint_load(const PlByteSource *src, const PlWeightsOptions *options, PlWeights *out) {
    TorchCtx c;
    memset(&c, 0, sizeof c);
    c.path = src->name;
    PL_TRY(pl_zip_open(&c.zip, src));
    const PlZipEntry *pkl = NULL;
    unsigned char *data = NULL;
    PlPickle pk = {0};
    PlStatus st = torch_find_prefix(&c, &pkl);
    if (st == PL_OK) st = torch_check_byteorder(&c);
    if (st == PL_OK && pkl->size > PKL_MAX_BYTES)
        st = PL_FAIL(PL_ERR_LIMIT, "%s: data.pkl is %llu bytes (limit %llu)", c.path, (unsigned long long)pkl->size,
                     (unsigned long long)PKL_MAX_BYTES);
    if (st == PL_OK) {
        data = pl_malloc((size_t)pkl->size);
        st = data ? pl_zip_read(&c.zip, pkl, data) : PL_ERR_NOMEM;
    }
    if (st == PL_OK) {
        char label[4200];
        snprintf(label, sizeof label, "%s: %s", c.path, pkl->name);
        st = pl_unpickle(data, (size_t)pkl->size, label, &pk);
    }
    free(data);
    if (st == PL_OK) st = torch_load_pickle(&c, &pk, options, out);
    pl_pickle_free(&pk);
    free(c.scratch);
    pl_zip_close(&c.zip);
    return st;
}
