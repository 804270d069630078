// libFuzzer target for the checkpoint parser (build: CC=clang cmake -DPROTLOC_FUZZ=ON; see docs/models.md).
#include "fuzz_entries.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return pl_fuzz_checkpoint_one(data, size); }
