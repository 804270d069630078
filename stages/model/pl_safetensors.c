// Safetensors reader and writer: 8-byte little-endian header length, JSON header (jansson), raw tensor bytes.
#include "pl_safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_dtype.h"
#include "pl_fs.h"

typedef struct StEntry {
    const char *key;            // borrowed from the JSON document
    PlDtype dtype;
    int ndim;
    int64_t shape[PL_WEIGHTS_MAX_DIMS];
    uint64_t begin, end;        // relative to the data section
} StEntry;

static int st_entry_cmp(const void *a, const void *b) {
    const StEntry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static PlStatus st_parse_int(const char *path, const char *key, const char *field, json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: %s must hold non-negative integers", path, key, field);
    *out = (uint64_t)json_integer_value(v);
    return PL_OK;
}

static PlStatus st_parse_entry(const char *path, const char *key, json_t *obj, uint64_t data_size, StEntry *e) {
    memset(e, 0, sizeof *e);
    e->key = key;
    if (!json_is_object(obj)) return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: header entry is not an object", path, key);
    json_t *dtype = json_object_get(obj, "dtype"), *shape = json_object_get(obj, "shape");
    json_t *offs = json_object_get(obj, "data_offsets");
    if (!json_is_string(dtype)) return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: missing string \"dtype\"", path, key);
    if (!json_is_array(shape)) return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: missing array \"shape\"", path, key);
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: \"data_offsets\" must be [begin, end]", path, key);
    e->dtype = pl_dtype_from_safetensors(json_string_value(dtype));
    if (e->dtype == PL_DTYPE_UNKNOWN)
        return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: unknown dtype \"%s\"", path, key, json_string_value(dtype));
    if (json_array_size(shape) > PL_WEIGHTS_MAX_DIMS)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: tensor %s: %zu dimensions (at most %d supported)", path, key,
                       json_array_size(shape), PL_WEIGHTS_MAX_DIMS);
    e->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        uint64_t d = 0;
        PL_TRY(st_parse_int(path, key, "shape", json_array_get(shape, (size_t)i), &d));
        if (d != 0 && numel > UINT64_MAX / 4 / d)
            return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: shape is absurdly large", path, key);
        numel *= d;
        e->shape[i] = (int64_t)d;
    }
    e->begin = e->end = 0;
    PL_TRY(st_parse_int(path, key, "data_offsets", json_array_get(offs, 0), &e->begin));
    PL_TRY(st_parse_int(path, key, "data_offsets", json_array_get(offs, 1), &e->end));
    if (e->begin > e->end || e->end > data_size)
        return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] outside the %llu-byte data section",
                       path, key, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)data_size);
    uint64_t want = numel * pl_dtype_size(e->dtype);
    if (e->end - e->begin != want)
        return PL_FAIL(PL_ERR_FORMAT, "%s: tensor %s: shape x dtype size is %llu bytes but data_offsets span %llu",
                       path, key, (unsigned long long)want, (unsigned long long)(e->end - e->begin));
    return PL_OK;
}

static PlStatus st_read_metadata(const char *path, json_t *meta, PlWeights *out) {
    if (!json_is_object(meta)) return PL_FAIL(PL_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return PL_FAIL(PL_ERR_FORMAT, "%s: \"__metadata__\" value of \"%s\" is not a string", path, k);
        const char *s = json_string_value(v);
        PL_TRY(pl_weights_add_arg(out, k, s));
        if (strcmp(k, "heads") == 0 || strcmp(k, "patch_size") == 0) {
            char *end;
            long n = strtol(s, &end, 10);
            if (end == s || *end || n <= 0 || n > 100000)
                return PL_FAIL(PL_ERR_FORMAT, "%s: \"__metadata__\" %s=\"%s\" is not a positive integer", path, k, s);
            if (k[0] == 'h') out->args_heads = (int)n;
            else out->args_patch_size = (int)n;
        } else if (strcmp(k, "arch") == 0) {
            snprintf(out->args_arch, sizeof out->args_arch, "%s", s);
        }
    }
    return PL_OK;
}

// Convert one tensor's bytes to float32 in `dst`, reading in bounded chunks (F32 straight into dst).
static PlStatus st_read_tensor(const PlByteSource *src, uint64_t offset, PlDtype dtype, size_t numel, float *dst) {
    if (dtype == PL_DTYPE_F32) return pl_bytesource_read(src, offset, dst, numel * sizeof(float));
    enum { CHUNK = 1 << 16 };
    uint16_t buf[CHUNK];
    for (size_t i = 0; i < numel; i += CHUNK) {
        size_t n = numel - i < CHUNK ? numel - i : CHUNK;
        PL_TRY(pl_bytesource_read(src, offset + 2 * (uint64_t)i, buf, 2 * n));
        pl_dtype_convert(dtype, buf, dst + i, n);
    }
    return PL_OK;
}

PlStatus pl_safetensors_load(const PlByteSource *src, PlWeights *out) {
    const char *path = src->name;
    if (src->size < 8) return PL_FAIL(PL_ERR_FORMAT, "%s: too short for a safetensors file (%llu bytes)", path,
                                      (unsigned long long)src->size);
    unsigned char lenbuf[8];
    PL_TRY(pl_bytesource_read(src, 0, lenbuf, 8));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenbuf[i];
    if (hlen > src->size - 8 || hlen > PL_SAFETENSORS_MAX_HEADER || hlen < 2)
        return PL_FAIL(PL_ERR_FORMAT,
                       "%s: absurd safetensors header length %llu (file is %llu bytes, limit %llu): not a valid "
                       "safetensors file",
                       path, (unsigned long long)hlen, (unsigned long long)src->size,
                       (unsigned long long)PL_SAFETENSORS_MAX_HEADER);
    char *header = pl_malloc((size_t)hlen);
    if (!header) return PL_ERR_NOMEM;
    PlStatus st = pl_bytesource_read(src, 8, header, (size_t)hlen);
    if (st != PL_OK) {
        free(header);
        return st;
    }
    json_error_t jerr;
    json_t *root = json_loadb(header, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    free(header);
    if (!root)
        return PL_FAIL(PL_ERR_FORMAT, "%s: safetensors header is not valid JSON (line %d column %d: %s)", path,
                       jerr.line, jerr.column, jerr.text);
    StEntry *entries = NULL;
    st = PL_OK;
    if (!json_is_object(root)) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
        goto done;
    }
    uint64_t data_start = 8 + hlen, data_size = src->size - data_start;
    size_t n = json_object_size(root), count = 0;
    entries = pl_calloc(n ? n : 1, sizeof *entries);
    if (!entries) {
        st = PL_ERR_NOMEM;
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((st = st_read_metadata(path, val, out)) != PL_OK) goto done;
            continue;
        }
        if ((st = st_parse_entry(path, key, val, data_size, &entries[count])) != PL_OK) goto done;
        count++;
    }
    // no two tensors may share bytes
    StEntry *sorted = pl_malloc((count ? count : 1) * sizeof *sorted);
    if (!sorted) {
        st = PL_ERR_NOMEM;
        goto done;
    }
    memcpy(sorted, entries, count * sizeof *sorted);
    qsort(sorted, count, sizeof *sorted, st_entry_cmp);
    for (size_t i = 1; i < count; i++) {
        if (sorted[i].begin < sorted[i - 1].end) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s: tensors %s and %s overlap in the data section", path,
                         sorted[i - 1].key, sorted[i].key);
            break;
        }
    }
    free(sorted);
    if (st != PL_OK) goto done;
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        if (pl_weights_canonical_name(entries[i].key))
            total += pl_weights_slab_floats((size_t)((entries[i].end - entries[i].begin) / pl_dtype_size(entries[i].dtype)));
    if ((st = pl_weights_reserve(out, total)) != PL_OK) goto done;
    for (size_t i = 0; i < count; i++) {
        const StEntry *e = &entries[i];
        const char *name = pl_weights_canonical_name(e->key);
        if (!name) continue;
        if (!pl_dtype_is_float_convertible(e->dtype)) {
            st = PL_FAIL(PL_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s; only F32, F16 and BF16 are supported",
                         path, e->key, pl_dtype_name(e->dtype));
            goto done;
        }
        float *data;
        if ((st = pl_weights_add(out, name, e->ndim, e->shape, &data)) != PL_OK) {
            pl_error_wrap("%s", path);
            goto done;
        }
        snprintf(out->tensors[out->count - 1].dtype, sizeof out->tensors[0].dtype, "%s", pl_dtype_name(e->dtype));
        size_t numel = (size_t)pl_weight_tensor_numel(&out->tensors[out->count - 1]);
        if ((st = st_read_tensor(src, data_start + e->begin, e->dtype, numel, data)) != PL_OK) goto done;
    }
done:
    free(entries);
    json_decref(root);
    return st;
}

PlStatus pl_safetensors_write(const char *path, const PlWeights *w, const char *const *metadata) {
    json_t *root = json_object();
    if (!root) return PL_FAIL(PL_ERR_NOMEM, "out of memory building the safetensors header");
    PlStatus st = PL_OK;
    char *text = NULL;
    if (metadata && metadata[0]) {
        json_t *meta = json_object();
        for (size_t i = 0; meta && metadata[i] && metadata[i + 1]; i += 2)
            json_object_set_new(meta, metadata[i], json_string(metadata[i + 1]));
        if (!meta || json_object_set_new(root, "__metadata__", meta) != 0) {
            st = PL_FAIL(PL_ERR_NOMEM, "out of memory building the safetensors header");
            goto done;
        }
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->count; i++) {
        const PlWeightTensor *t = &w->tensors[i];
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        uint64_t bytes = (uint64_t)pl_weight_tensor_numel(t) * sizeof(float);
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape, "data_offsets",
                              (json_int_t)offset, (json_int_t)(offset + bytes));
        if (!e || json_object_set_new(root, t->name, e) != 0) {
            st = PL_FAIL(PL_ERR_NOMEM, "cannot add tensor %s to the safetensors header", t->name);
            goto done;
        }
        offset += bytes;
    }
    text = json_dumps(root, JSON_COMPACT);
    if (!text) {
        st = PL_FAIL(PL_ERR_NOMEM, "cannot serialise the safetensors header");
        goto done;
    }
    size_t tlen = strlen(text), padded = (tlen + 7) & ~(size_t)7;
    PlAtomicFile af;
    if ((st = pl_atomic_open(&af, path)) != PL_OK) goto done;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(lenbuf, 1, 8, af.fp) == 8 && fwrite(text, 1, tlen, af.fp) == tlen;
    for (size_t i = tlen; ok && i < padded; i++) ok = fputc(' ', af.fp) != EOF;
    for (size_t i = 0; ok && i < w->count; i++) {
        size_t numel = (size_t)pl_weight_tensor_numel(&w->tensors[i]);
        ok = fwrite(w->tensors[i].data, sizeof(float), numel, af.fp) == numel;
    }
    if (!ok) {
        st = PL_FS_WRITE_FAIL("cannot write", af.temp_path, errno);   // before the abort frees the space
        pl_atomic_abort(&af);
        goto done;
    }
    st = pl_atomic_commit(&af);
done:
    free(text);
    json_decref(root);
    return st;
}
