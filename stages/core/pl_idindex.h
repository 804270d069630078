// A string id → row index (open addressing, FNV-1a): the one id lookup of protloc (manifest ids, store ids).
//
// Keys are borrowed: the strings must outlive the index and must not change. Values are non-negative
// int64 (rows). Lookups are O(1) expected; the table doubles when half full.
// Ownership: a PlIdIndex owns its table only (pl_idindex_free); a zeroed PlIdIndex is an empty index.
#ifndef PL_IDINDEX_H
#define PL_IDINDEX_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"

typedef struct PlIdIndexSlot {
    const char *key;    // NULL = empty
    uint64_t hash;
    int64_t value;
} PlIdIndexSlot;

typedef struct PlIdIndex {
    PlIdIndexSlot *slots;
    size_t cap;         // power of two (0 before the first add)
    size_t count;
} PlIdIndex;

// Insert key → value. When the key is already present nothing changes and *existing (if not NULL) gets
// the stored value; otherwise *existing = -1. PL_ERR_NOMEM when the table cannot grow.
PlStatus pl_idindex_add(PlIdIndex *ix, const char *key, int64_t value, int64_t *existing);
// Value stored for key, or -1.
int64_t pl_idindex_find(const PlIdIndex *ix, const char *key);
// Index n keys (keys[i] → i). Fails with PL_ERR_FORMAT naming the first duplicate key.
PlStatus pl_idindex_build(PlIdIndex *ix, const char *const *keys, size_t n, const char *what);
void pl_idindex_free(PlIdIndex *ix);

#endif
