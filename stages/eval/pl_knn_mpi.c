// Exact distributed top-K: each rank searches its reference shard; a custom MPI reduction merges the lists.
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "pl_knn_eval.h"
#include "pl_mpi.h"

// MPI_User_function: merge `len` queries' best-first lists (each one element of the K-pair datatype).
// The order (score desc, index asc) is total, so the reduction is associative and commutative: any rank
// count and any reduction tree give the same lists.
static void knn_mpi_merge_op(void *in, void *inout, int *len, MPI_Datatype *type) {
    int bytes = 0;
    MPI_Type_size(*type, &bytes);
    int k = bytes / (int)sizeof(PlNeighbour);
    PlNeighbour tmp[1024];
    PlNeighbour *buf = k <= 1024 ? tmp : malloc((size_t)k * sizeof(PlNeighbour));
    if (!buf) return;   // cannot happen for the K values protloc allows (<= 1024 use the stack)
    PlNeighbour *a = in, *b = inout;
    for (int q = 0; q < *len; q++) {
        pl_topk_merge_lists(a + (size_t)q * k, b + (size_t)q * k, k, buf);
        memcpy(b + (size_t)q * k, buf, (size_t)k * sizeof(PlNeighbour));
    }
    if (buf != tmp) free(buf);
}

PlStatus pl_knn_mpi_merge(PlTopK *t, MPI_Comm comm) {
    int size = 1;
    PL_MPI_TRY(MPI_Comm_size(comm, &size));
    if (size <= 1) return PL_OK;
    if (t->k > 1024) return PL_FAIL(PL_ERR_LIMIT, "distributed kNN supports K <= 1024 (got %d)", t->k);
    MPI_Datatype pair_list;
    MPI_Op op;
    PL_MPI_TRY(MPI_Type_contiguous(t->k * (int)sizeof(PlNeighbour), MPI_BYTE, &pair_list));
    PL_MPI_TRY(MPI_Type_commit(&pair_list));
    PlStatus st = PL_MPI_CHECK(MPI_Op_create(knn_mpi_merge_op, 1, &op));
    if (st != PL_OK) {
        MPI_Type_free(&pair_list);
        return st;
    }
    // Reduce in chunks of queries so the message buffers stay bounded (chunk * K * 16 bytes).
    int64_t chunk = (int64_t)((64u << 20) / ((size_t)t->k * sizeof(PlNeighbour)));
    if (chunk < 1) chunk = 1;
    for (int64_t q0 = 0; q0 < t->n_queries && st == PL_OK; q0 += chunk) {
        int n = (int)(t->n_queries - q0 < chunk ? t->n_queries - q0 : chunk);
        st = PL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t->items + (size_t)q0 * t->k, n, pair_list, op, comm));
    }
    // counts: number of real entries after the merge
    for (int64_t q = 0; q < t->n_queries; q++) {
        int c = 0;
        while (c < t->k && t->items[(size_t)q * t->k + c].index != INT64_MAX) c++;
        t->count[q] = c;
    }
    MPI_Op_free(&op);
    MPI_Type_free(&pair_list);
    return st;
}
