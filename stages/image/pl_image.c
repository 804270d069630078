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
