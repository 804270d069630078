// PyTorch zip checkpoints (.pth/.pt written by torch.save): zip archive + restricted unpickler → PlWeights.
// Ownership: appends tensors and args to a caller-owned PlWeights; borrows the byte source.
#ifndef PL_TORCH_CHECKPOINT_H
#define PL_TORCH_CHECKPOINT_H

#include "pl_bytesource.h"
#include "pl_weights.h"

// Load the state dict from a torch.save zip archive. A training checkpoint (dict of dicts) uses
// options->checkpoint_key (default "teacher"); a flat state dict ignores it. Reads DINO `args` when present.
PlStatus pl_torch_checkpoint_load(const PlByteSource *src, const PlWeightsOptions *options, PlWeights *out);

#endif
