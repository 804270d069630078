// Per-query top-K neighbour lists: bounded heaps ordered by (score desc, global index asc), and their merge.
//
// Tie rule (documented in docs/evaluation.md): a candidate ranks before another when its score is larger,
// or when the scores are equal and its global reference index is smaller. This is a total order, so the
// top-K set of a query is unique and the merge of per-rank lists is exact and rank-count independent.
// Ownership: a PlTopK owns its arrays (one slab); pl_topk_free releases it.
#ifndef PL_TOPK_H
#define PL_TOPK_H

#include <stdint.h>
#include "pl_error.h"

// A pair as stored in lists and exchanged between ranks (16 bytes, padding explicit).
typedef struct PlNeighbour {
    float score;        // similarity (cosine) or negated distance (euclidean): larger is better
    int32_t pad;        // always 0
    int64_t index;      // global reference row; INT64_MAX marks an empty slot
} PlNeighbour;

typedef struct PlTopK {
    int64_t n_queries;
    int k;
    PlNeighbour *items;   // (n_queries, k): a min-heap while collecting, sorted best-first after finish
    int *count;           // (n_queries) filled slots
} PlTopK;

PlStatus pl_topk_init(PlTopK *t, int64_t n_queries, int k);
void pl_topk_free(PlTopK *t);
void pl_topk_reset(PlTopK *t);

// 1 when (sa, ia) ranks strictly before (sb, ib).
static inline int pl_topk_better(float sa, int64_t ia, float sb, int64_t ib) {
    return sa > sb || (sa == sb && ia < ib);
}
// Offer a candidate to query q's heap.
void pl_topk_push(PlTopK *t, int64_t q, float score, int64_t index);
// Sort every heap best-first and pad empty slots with (-INFINITY, INT64_MAX).
void pl_topk_finish(PlTopK *t);
// The same for one query.
void pl_topk_finish_query(PlTopK *t, int64_t q);
// Merge two best-first lists of length k into `out` (best-first, length k). `out` may alias neither input.
void pl_topk_merge_lists(const PlNeighbour *a, const PlNeighbour *b, int k, PlNeighbour *out);

#endif
