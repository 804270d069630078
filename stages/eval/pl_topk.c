// Bounded per-query heaps for exact top-K neighbour selection (see pl_topk.h for the tie rule).
#include "pl_topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

PlStatus pl_topk_init(PlTopK *t, int64_t n_queries, int k) {
    memset(t, 0, sizeof *t);
    if (n_queries < 0 || k < 1) return PL_FAIL(PL_ERR_ARG, "top-K: bad sizes (queries %lld, k %d)", (long long)n_queries, k);
    size_t n;
    if (pl_mul_overflows((size_t)n_queries, (size_t)k, &n) || pl_mul_overflows(n, sizeof(PlNeighbour), &n))
        return PL_FAIL(PL_ERR_LIMIT, "top-K: %lld queries x %d neighbours is too large", (long long)n_queries, k);
    t->items = pl_malloc(n ? n : 1);
    t->count = pl_calloc((size_t)n_queries + 1, sizeof(int));
    if (!t->items || !t->count) {
        pl_topk_free(t);
        return PL_ERR_NOMEM;
    }
    t->n_queries = n_queries;
    t->k = k;
    return PL_OK;
}

void pl_topk_free(PlTopK *t) {
    free(t->items);
    free(t->count);
    memset(t, 0, sizeof *t);
}

void pl_topk_reset(PlTopK *t) {
    memset(t->count, 0, (size_t)t->n_queries * sizeof(int));
}

// Min-heap on "better": the root is the worst element (no other element is worse).
static inline int topk_worse(const PlNeighbour *a, const PlNeighbour *b) {
    return pl_topk_better(b->score, b->index, a->score, a->index);
}

static void topk_sift_down(PlNeighbour *h, int n, int i) {
    PlNeighbour x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && topk_worse(&h[c + 1], &h[c])) c++;
        if (!topk_worse(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void topk_sift_up(PlNeighbour *h, int i) {
    PlNeighbour x = h[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!topk_worse(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

void pl_topk_push(PlTopK *t, int64_t q, float score, int64_t index) {
    PlNeighbour *h = t->items + q * t->k;
    int n = t->count[q];
    if (n < t->k) {
        h[n].score = score;
        h[n].pad = 0;
        h[n].index = index;
        t->count[q] = n + 1;
        topk_sift_up(h, n);
        return;
    }
    if (!pl_topk_better(score, index, h[0].score, h[0].index)) return;
    h[0].score = score;
    h[0].index = index;
    topk_sift_down(h, n, 0);
}

void pl_topk_finish(PlTopK *t) {
    for (int64_t q = 0; q < t->n_queries; q++) pl_topk_finish_query(t, q);
}

void pl_topk_finish_query(PlTopK *t, int64_t q) {
    {
        PlNeighbour *h = t->items + q * t->k;
        int n = t->count[q];
        // heap sort: repeatedly move the worst to the end → best-first order
        for (int end = n - 1; end > 0; end--) {
            PlNeighbour tmp = h[0];
            h[0] = h[end];
            h[end] = tmp;
            topk_sift_down(h, end, 0);
        }
        for (int j = n; j < t->k; j++) {
            h[j].score = -INFINITY;
            h[j].pad = 0;
            h[j].index = INT64_MAX;
        }
    }
}

void pl_topk_merge_lists(const PlNeighbour *a, const PlNeighbour *b, int k, PlNeighbour *out) {
    int i = 0, j = 0;
    for (int o = 0; o < k; o++) {
        if (pl_topk_better(b[j].score, b[j].index, a[i].score, a[i].index)) out[o] = b[j++];
        else out[o] = a[i++];
    }
}
