// Deterministic random DINO ViT weights (`protloc model init`): DINO's init, optionally jittered.
// Ownership: fills a caller-owned, empty PlWeights (free with pl_weights_free).
#ifndef PL_WEIGHTS_INIT_H
#define PL_WEIGHTS_INIT_H

#include <stdint.h>
#include "pl_weights.h"

typedef struct PlVitInitSpec {
    int dim, depth, heads, patch, in_chans;
    int img_size;          // position embedding covers (img_size / patch)^2 patches + CLS (DINO default 224)
    int mlp_ratio;         // fc1 width = mlp_ratio * dim (DINO: 4)
    uint64_t seed;
    float jitter;          // 0 = DINO init (LayerNorm 1/0, zero biases); > 0 adds N(0, jitter) to those
} PlVitInitSpec;

// Validate `spec` (PL_ERR_ARG naming the bad field) and fill `out` with DINO-ordered tensors:
// trunc-normal(std 0.02, truncated at ±2 as DINO's trunc_normal_) for cls_token, pos_embed, patch and
// linear weights; zero biases; LayerNorm weight 1, bias 0 (plus jitter when asked).
PlStatus pl_weights_init_vit(const PlVitInitSpec *spec, PlWeights *out);
// "vit_tiny" / "vit_small" / "vit_base" when (dim, depth, heads) match DINO's constructors, else "vit_custom".
const char *pl_vit_arch_name(int dim, int depth, int heads);

#endif
