// Safetensors checkpoint reader (F32/F16/BF16 → float32, every header field bounds-checked) and writer.
// Ownership: the reader appends tensors to a caller-owned PlWeights; the writer borrows everything it is given.
#ifndef PL_SAFETENSORS_H
#define PL_SAFETENSORS_H

#include "pl_bytesource.h"
#include "pl_weights.h"

// Largest JSON header accepted (bytes).
#define PL_SAFETENSORS_MAX_HEADER ((uint64_t)100 << 20)

// Parse `src` as safetensors and append its tensors (names canonicalised, "head.*" dropped) to `out`.
// "__metadata__" entries go to out->args_text; "heads", "patch_size", "arch" also to args_heads etc.
PlStatus pl_safetensors_load(const PlByteSource *src, PlWeights *out);

// Write every tensor of `w` as F32 to `path` (temp file + rename). `metadata` is NULL or a NULL-terminated
// array of key, value string pairs stored in "__metadata__": {"heads", "6", "arch", "vit_small", NULL}.
PlStatus pl_safetensors_write(const char *path, const PlWeights *w, const char *const *metadata);

#endif
