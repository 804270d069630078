// The input digests of a manifest's items (pl_digest_item), computed by every rank for its share and gathered, so
// every rank holds all of them: `protloc run`'s reprocessing and the training cache decide "changed" with them.
// Ownership: the caller owns every array.
#ifndef PL_ITEM_DIGESTS_H
#define PL_ITEM_DIGESTS_H

#include <stdint.h>

#include "pl_digest.h"
#include "pl_error.h"
#include "pl_manifest.h"

// Digests of the items items[0..n) (NULL: items 0..n-1) of m: rank r computes entries r, r + ranks, ...; then all
// of them are gathered on every rank (MPI when ranks > 1). An entry that cannot be computed (a missing or unreadable
// file) is "!unreadable"; its reason is in reason[i] (malloc'd) when reason is not NULL. cost (optional): the bytes
// of each item's channel files. Collective when ranks > 1.
PlStatus pl_item_digests(const PlManifest *m, const int64_t *items, size_t n, int verify, int rank, int ranks,
                         char (*digests)[PL_DIGEST_LEN], char **reason, double *cost);

#endif
