// The input digests of a manifest's items, shared out over the ranks and gathered (pl_item_digests.h).
#include "pl_item_digests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pl_mpi.h"

PlStatus pl_item_digests(const PlManifest *m, const int64_t *items, size_t n, int verify, int rank, int ranks,
                         char (*digests)[PL_DIGEST_LEN], char **reason, double *cost) {
    char (*mine)[PL_DIGEST_LEN] = ranks > 1 ? pl_calloc(n + 1, sizeof *mine) : digests;
    double *mycost = cost && ranks > 1 ? pl_calloc(n + 1, sizeof *mycost) : cost;
    if (!mine || (cost && !mycost)) {
        if (mine != digests) free(mine);
        if (mycost != cost) free(mycost);
        return PL_ERR_NOMEM;
    }
    if (mine == digests) memset(digests, 0, n * sizeof *digests);
    if (cost) memset(mycost, 0, n * sizeof *mycost);
    for (size_t i = (size_t)rank; i < n; i += (size_t)ranks) {
        const PlManifestItem *it = &m->items[items ? (size_t)items[i] : i];
        if (pl_digest_item(m, it, verify, mine[i]) != PL_OK)
            snprintf(mine[i], PL_DIGEST_LEN, "!unreadable");   // recorded as a failure by whoever prepares the item
        for (int r = 0; cost && r < m->n_roles; r++) {
            struct stat sb;
            if (it->channels[r].path && stat(it->channels[r].path, &sb) == 0) mycost[i] += (double)sb.st_size;
        }
    }
    PlStatus st = PL_OK;
    if (ranks > 1) {
        if (cost) st = PL_MPI_CHECK(MPI_Allreduce(mycost, cost, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
        // each digest slot is written by exactly one rank, the others are zero bytes: a bytewise max merges them
        if (st == PL_OK)
            st = PL_MPI_CHECK(MPI_Allreduce(mine, digests, (int)(n * PL_DIGEST_LEN), MPI_UNSIGNED_CHAR, MPI_MAX,
                                            MPI_COMM_WORLD));
        free(mine);
        if (mycost != cost) free(mycost);
    }
    for (size_t i = 0; reason && i < n && st == PL_OK; i++) {
        reason[i] = NULL;
        if (digests[i][0] != '!') continue;
        // recompute the reason locally (cheap: a stat or a read that fails)
        char tmp[PL_DIGEST_LEN];
        const PlManifestItem *it = &m->items[items ? (size_t)items[i] : i];
        if (pl_digest_item(m, it, verify, tmp) != PL_OK) reason[i] = pl_strdup(pl_error_message());
        else reason[i] = pl_strdup("input files changed while the run started");
    }
    return st;
}
