// .npy parsing and writing (see pl_npy.h). The header dict is parsed strictly; sizes are overflow-checked.
#include "pl_npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"

static size_t npy_itemsize(const char *descr) {
    static const struct { const char *d; size_t n; } types[] = {
        {"<f4", 4}, {"<f8", 8}, {"<i4", 4}, {"<i8", 8}, {"<u2", 2}, {"<u4", 4}, {"|u1", 1}, {"|b1", 1}, {"|i1", 1}, {"<i2", 2}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(descr, types[i].d) == 0) return types[i].n;
    return 0;
}

size_t pl_npy_count(const PlNpyArray *a) {
    size_t n = 1;
    for (int i = 0; i < a->ndim; i++) n *= (size_t)a->shape[i];
    return n;
}

void pl_npy_free(PlNpyArray *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

// Find `'key':` in the header and return a pointer just after the colon (skipping spaces).
static const char *npy_find_key(const char *header, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "'%s'", key);
    const char *p = strstr(header, pattern);
    if (!p) return NULL;
    p += strlen(pattern);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static PlStatus npy_parse_header(const char *path, const char *header, PlNpyArray *out) {
    const char *d = npy_find_key(header, "descr");
    if (!d || *d != '\'') return PL_FAIL(PL_ERR_FORMAT, "%s: .npy header has no 'descr'", path);
    d++;
    const char *end = strchr(d, '\'');
    if (!end || end - d >= (long)sizeof out->descr || end == d)
        return PL_FAIL(PL_ERR_FORMAT, "%s: bad 'descr' in .npy header", path);
    memcpy(out->descr, d, (size_t)(end - d));
    out->descr[end - d] = '\0';
    if (strcmp(out->descr, "<f4") && (out->descr[0] == '>' || !strcmp(out->descr, ">f4")))
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: big-endian dtype %s is not supported", path, out->descr);
    out->itemsize = npy_itemsize(out->descr);
    if (!out->itemsize)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: dtype %s is not supported", path, out->descr);
    const char *f = npy_find_key(header, "fortran_order");
    if (!f) return PL_FAIL(PL_ERR_FORMAT, "%s: .npy header has no 'fortran_order'", path);
    if (strncmp(f, "False", 5) != 0)
        return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: Fortran-ordered arrays are not supported (save with C order)", path);
    const char *s = npy_find_key(header, "shape");
    if (!s || *s != '(') return PL_FAIL(PL_ERR_FORMAT, "%s: .npy header has no 'shape' tuple", path);
    s++;
    out->ndim = 0;
    while (1) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        if (*s < '0' || *s > '9') return PL_FAIL(PL_ERR_FORMAT, "%s: bad 'shape' in .npy header", path);
        if (out->ndim >= PL_NPY_MAX_DIMS)
            return PL_FAIL(PL_ERR_UNSUPPORTED, "%s: more than %d dimensions", path, PL_NPY_MAX_DIMS);
        errno = 0;
        char *e;
        long long v = strtoll(s, &e, 10);
        if (errno || v < 0) return PL_FAIL(PL_ERR_FORMAT, "%s: bad dimension in .npy 'shape'", path);
        out->shape[out->ndim++] = v;
        s = e;
        while (*s == 'L') s++;
    }
    return PL_OK;
}

PlStatus pl_npy_read(const char *path, PlNpyArray *out) {
    memset(out, 0, sizeof *out);
    FILE *fp;
    PL_TRY(pl_fopen_regular(path, &fp));
    unsigned char pre[12];
    PlStatus st = PL_OK;
    char *header = NULL;
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s is not a .npy file (bad magic)", path);
        goto done;
    }
    size_t header_len;
    if (pre[6] == 1) {
        header_len = (size_t)pre[8] | ((size_t)pre[9] << 8);
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s: truncated .npy header", path);
            goto done;
        }
        header_len = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) | ((size_t)pre[11] << 24);
    } else {
        st = PL_FAIL(PL_ERR_UNSUPPORTED, "%s: .npy format version %d is not supported", path, pre[6]);
        goto done;
    }
    if (header_len > (1u << 20)) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: .npy header length %zu is absurd", path, header_len);
        goto done;
    }
    header = pl_malloc(header_len + 1);
    if (!header) { st = PL_ERR_NOMEM; goto done; }
    if (fread(header, 1, header_len, fp) != header_len) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    header[header_len] = '\0';
    st = npy_parse_header(path, header, out);
    if (st) goto done;
    size_t count = 1, bytes;
    for (int i = 0; i < out->ndim; i++)
        if (pl_mul_overflows(count, (size_t)out->shape[i], &count)) { st = pl_error_wrap("%s", path); goto done; }
    if (pl_mul_overflows(count, out->itemsize, &bytes)) { st = pl_error_wrap("%s", path); goto done; }
    long pos = ftell(fp);
    if (fseek(fp, 0, SEEK_END) != 0) { st = PL_FAIL(PL_ERR_IO, "%s: cannot seek", path); goto done; }
    long end = ftell(fp);
    if (pos < 0 || end < 0 || (size_t)(end - pos) != bytes) {
        st = PL_FAIL(PL_ERR_FORMAT, "%s: data is %ld bytes but the header's shape needs %zu", path, end - pos, bytes);
        goto done;
    }
    fseek(fp, pos, SEEK_SET);
    out->data = pl_malloc(bytes);
    if (!out->data) { st = PL_ERR_NOMEM; goto done; }
    if (bytes && fread(out->data, 1, bytes, fp) != bytes) {
        st = PL_FAIL(PL_ERR_IO, "%s: short read", path);
        goto done;
    }
done:
    free(header);
    fclose(fp);
    if (st != PL_OK) pl_npy_free(out);
    return st;
}

PlStatus pl_npy_read_f32(const char *path, int ndim_required, PlNpyArray *out) {
    PL_TRY(pl_npy_read(path, out));
    if (strcmp(out->descr, "<f4") != 0) {
        PlStatus st = PL_FAIL(PL_ERR_FORMAT, "%s: dtype is %s, expected float32 (<f4)", path, out->descr);
        pl_npy_free(out);
        return st;
    }
    if (ndim_required > 0 && out->ndim != ndim_required) {
        PlStatus st = PL_FAIL(PL_ERR_FORMAT, "%s: array has %d dimensions, expected %d", path, out->ndim, ndim_required);
        pl_npy_free(out);
        return st;
    }
    return PL_OK;
}

PlStatus pl_npy_write(const char *path, const char *descr, int ndim, const int64_t *shape, const void *data) {
    size_t itemsize = npy_itemsize(descr);
    if (!itemsize) return PL_FAIL(PL_ERR_ARG, "unsupported dtype %s", descr);
    if (ndim < 0 || ndim > PL_NPY_MAX_DIMS) return PL_FAIL(PL_ERR_ARG, "bad ndim %d", ndim);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[i], (i + 1 < ndim) ? " " : "");
        count *= (size_t)shape[i];
    }
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t header_len = (size_t)n + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(header_len & 0xff),
                             (unsigned char)(header_len >> 8)};
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, path));
    int ok = fwrite(pre, 1, 10, af.fp) == 10 && fwrite(dict, 1, (size_t)n, af.fp) == (size_t)n;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', af.fp) != EOF;
    ok = ok && fputc('\n', af.fp) != EOF;
    size_t bytes = count * itemsize;
    ok = ok && (bytes == 0 || fwrite(data, 1, bytes, af.fp) == bytes);
    if (!ok) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        pl_atomic_abort(&af);
        return st;
    }
    return pl_atomic_commit(&af);
}

PlStatus pl_npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data) {
    return pl_npy_write(path, "<f4", ndim, shape, data);
}
