// Number parsing and provenance for the evaluation commands (see pl_eval_cli.h).
#include "pl_eval_cli.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pl_cli.h"

int pl_eval_parse_long(const char *s, long *out) { return pl_cli_parse_long(s, LONG_MIN, LONG_MAX, out) ? 0 : -1; }

int pl_eval_parse_double(const char *s, double *out) {
    return pl_cli_parse_double(s, -DBL_MAX, DBL_MAX, out) ? 0 : -1;
}

int pl_eval_parse_fractions(const char *s, double *out, int max) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double v;
        if (n >= max || pl_eval_parse_double(tok, &v) != 0 || !(v > 0) || v > 1) return -1;
        out[n++] = v;
    }
    return n > 0 ? n : -1;
}

static int eval_sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    unsigned char buf[1 << 16];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0) ok = EVP_DigestUpdate(ctx, buf, n) == 1;
    if (ferror(f)) ok = 0;
    unsigned char md[32];
    unsigned int len = 0;
    if (ok) ok = EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 32;
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (!ok) return -1;
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

void pl_eval_add_provenance(json_t *config, const char *input) {
    char t[64];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    json_object_set_new(config, "created", json_string(t));
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) json_object_set_new(config, "host", json_string(host));
    char hex[65];
    if (input && eval_sha256_file(input, hex) == 0) json_object_set_new(config, "input_sha256", json_string(hex));
}
