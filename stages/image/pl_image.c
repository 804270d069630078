// PlImage allocation (see pl_image.h).
#include "pl_image.h"

#include <stdlib.h>
#include <string.h>

PlStatus pl_image_alloc(PlImage *img, int channels, int height, int width) {
    memset(img, 0, sizeof *img);
    if (channels <= 0 || height <= 0 || width <= 0)
        return PL_FAIL(PL_ERR_ARG, "bad image size %d x %d x %d", channels, height, width);
    size_t n;
    if (pl_mul_overflows((size_t)channels * (size_t)height, (size_t)width, &n)) return PL_ERR_LIMIT;
    img->data = pl_calloc(n, sizeof(float));
    if (!img->data) return PL_ERR_NOMEM;
    img->capacity = n;
    img->channels = channels;
    img->height = height;
    img->width = width;
    img->bits = 32;
    img->is_float = 1;
    return PL_OK;
}

PlStatus pl_image_reshape(PlImage *img, int channels, int height, int width) {
    if (channels <= 0 || height <= 0 || width <= 0)
        return PL_FAIL(PL_ERR_ARG, "bad image size %d x %d x %d", channels, height, width);
    size_t n;
    if (pl_mul_overflows((size_t)channels * (size_t)height, (size_t)width, &n)) return PL_ERR_LIMIT;
    if (!img->data || img->capacity < n) {
        float *p = pl_malloc(n * sizeof(float));
        if (!p) return PL_ERR_NOMEM;
        free(img->data);
        img->data = p;
        img->capacity = n;
    }
    img->channels = channels;
    img->height = height;
    img->width = width;
    return PL_OK;
}

float *pl_image_channel(const PlImage *img, int c) {
    return img->data + (size_t)c * (size_t)img->height * (size_t)img->width;
}

void pl_image_free(PlImage *img) {
    free(img->data);
    memset(img, 0, sizeof *img);
}

void pl_image_blur_separable(const float *in, float *out, float *tmp, int H, int W, const float *kc, int r) {
    for (int y = 0; y < H; y++) {   // along x, into tmp
        const float *row = in + (size_t)y * W;
        float *o = tmp + (size_t)y * W;
        for (int x = 0; x < W; x++) {
            float acc = 0;
            if (x >= r && x + r < W) {
                for (int j = -r; j <= r; j++) acc += kc[j] * row[x + j];
            } else {
                for (int j = -r; j <= r; j++) {
                    int xx = x + j;
                    xx = xx < 0 ? 0 : (xx >= W ? W - 1 : xx);
                    acc += kc[j] * row[xx];
                }
            }
            o[x] = acc;
        }
    }
    for (int y = 0; y < H; y++) {   // along y, from tmp
        float *o = out + (size_t)y * W;
        for (int x = 0; x < W; x++) o[x] = 0;
        for (int j = -r; j <= r; j++) {
            int yy = y + j;
            yy = yy < 0 ? 0 : (yy >= H ? H - 1 : yy);
            const float *src = tmp + (size_t)yy * W;
            float w = kc[j];
            for (int x = 0; x < W; x++) o[x] += w * src[x];
        }
    }
}
