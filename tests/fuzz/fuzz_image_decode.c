// libFuzzer target for the TIFF/PNG decoders: each input is written to a temp file and decoded in full
// (build: CC=clang cmake -DPROTLOC_FUZZ=ON; seeds: tests/fixtures/images and tests/fixtures/images/bad).
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pl_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/pl_fuzz_image_%d", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    if (size && fwrite(data, 1, size, fp) != size) {
        fclose(fp);
        return 0;
    }
    fclose(fp);
    PlDecodeLimits lim;
    pl_decode_limits_default(&lim);
    lim.max_pixels = (uint64_t)1 << 22;   // keep each run fast; the limit path is itself under test
    lim.max_channels = 64;
    PlImageInfo info;
    if (pl_image_probe(path, &lim, &info) == PL_OK) {
        PlImage img;
        if (pl_image_read_all(path, &lim, &img) == PL_OK) pl_image_free(&img);
        char ref[96];
        snprintf(ref, sizeof ref, "%s#%d", path, info.channels > 0 ? info.channels - 1 : 0);
        if (pl_image_read(ref, &lim, &img) == PL_OK) pl_image_free(&img);
    }
    return 0;
}
