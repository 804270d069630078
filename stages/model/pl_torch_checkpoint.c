// PyTorch zip checkpoint loader (placeholder until the zip reader and unpickler land).
#include "pl_torch_checkpoint.h"

PlStatus pl_torch_checkpoint_load(const PlByteSource *src, const PlWeightsOptions *options, PlWeights *out) {
    return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: PyTorch zip checkpoints are not supported yet", src->name);
}
