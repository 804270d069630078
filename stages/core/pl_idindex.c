// String id → row hash index (see pl_idindex.h).
#include "pl_idindex.h"

#include <stdlib.h>
#include <string.h>

#include "pl_rng.h"

static PlStatus idindex_grow(PlIdIndex *ix) {
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    PlIdIndexSlot *slots = pl_calloc(cap, sizeof *slots);
    if (!slots) return pl_error_wrap("id index of %zu entries", ix->count + 1);
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->slots[i].key) continue;
        size_t k = ix->slots[i].hash & (cap - 1);
        while (slots[k].key) k = (k + 1) & (cap - 1);
        slots[k] = ix->slots[i];
    }
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return PL_OK;
}

PlStatus pl_idindex_add(PlIdIndex *ix, const char *key, int64_t value, int64_t *existing) {
    if (existing) *existing = -1;
    if ((ix->count + 1) * 2 > ix->cap) PL_TRY(idindex_grow(ix));
    uint64_t h = pl_rng_hash_string(key);
    size_t k = h & (ix->cap - 1);
    for (; ix->slots[k].key; k = (k + 1) & (ix->cap - 1)) {
        if (ix->slots[k].hash == h && strcmp(ix->slots[k].key, key) == 0) {
            if (existing) *existing = ix->slots[k].value;
            return PL_OK;
        }
    }
    ix->slots[k].key = key;
    ix->slots[k].hash = h;
    ix->slots[k].value = value;
    ix->count++;
    return PL_OK;
}

int64_t pl_idindex_find(const PlIdIndex *ix, const char *key) {
    if (!ix->cap) return -1;
    uint64_t h = pl_rng_hash_string(key);
    for (size_t k = h & (ix->cap - 1); ix->slots[k].key; k = (k + 1) & (ix->cap - 1))
        if (ix->slots[k].hash == h && strcmp(ix->slots[k].key, key) == 0) return ix->slots[k].value;
    return -1;
}

PlStatus pl_idindex_build(PlIdIndex *ix, const char *const *keys, size_t n, const char *what) {
    memset(ix, 0, sizeof *ix);
    for (size_t i = 0; i < n; i++) {
        int64_t prev;
        PlStatus st = pl_idindex_add(ix, keys[i], (int64_t)i, &prev);
        if (st == PL_OK && prev >= 0)
            st = PL_FAIL(PL_ERR_FORMAT, "%s: id '%s' appears twice (rows %lld and %zu)", what, keys[i], (long long)prev, i);
        if (st != PL_OK) {
            pl_idindex_free(ix);
            return st;
        }
    }
    return PL_OK;
}

void pl_idindex_free(PlIdIndex *ix) {
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}
