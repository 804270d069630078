// SHA-256 digests: files, manifest items (what decides "changed" on re-runs) and run-settings keys.
// Ownership: pure functions over caller buffers.
#ifndef PL_DIGEST_H
#define PL_DIGEST_H

#include "pl_error.h"
#include "pl_manifest.h"

#define PL_DIGEST_LEN 68   // "s:" or "c:" + 64 hex + NUL (fits in 68)

// Digest of every channel (and the mask) of `item`: paths, pages and either size + mtime of each file
// (verify = 0, prefix "s:") or the SHA-256 of each file's contents (verify = 1, prefix "c:").
// A missing or unreadable file is an error naming it.
PlStatus pl_digest_item(const PlManifest *m, const PlManifestItem *item, int verify, char out[PL_DIGEST_LEN]);
// SHA-256 of a whole file's contents as 64 hex chars (weights, inputs).
PlStatus pl_sha256_file(const char *path, char hex[65]);
// SHA-256 of a text as 64 hex chars (settings keys).
void pl_digest_text(const char *text, char out[65]);

// Streaming SHA-256 over several buffers (e.g. every tensor of a checkpoint). Ownership: begin allocates the state,
// end (or abort) frees it; a failed add leaves the state for end/abort to free.
typedef struct PlSha256 { void *ctx; } PlSha256;
PlStatus pl_sha256_begin(PlSha256 *h);
PlStatus pl_sha256_add(PlSha256 *h, const void *data, size_t size);
PlStatus pl_sha256_end(PlSha256 *h, char hex[65]);
void pl_sha256_abort(PlSha256 *h);

#endif
