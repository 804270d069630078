// Input digests of manifest items and settings keys (SHA-256 via OpenSSL EVP). See pl_digest.h.
#include "pl_digest.h"

#include "pl_fs.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

PlStatus pl_sha256_file(const char *path, char hex[65]) {
    FILE *fp;
    PL_TRY(pl_fopen_regular(path, &fp));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        fclose(fp);
        EVP_MD_CTX_free(ctx);
        return PL_FAIL(PL_ERR_INTERNAL, "OpenSSL SHA-256 initialisation failed");
    }
    static _Thread_local unsigned char buf[1 << 16];
    size_t n;
    PlStatus st = PL_OK;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) {
        if (EVP_DigestUpdate(ctx, buf, n) != 1) { st = PL_FAIL(PL_ERR_INTERNAL, "SHA-256 update failed"); break; }
    }
    if (st == PL_OK && ferror(fp)) st = PL_FAIL(PL_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (st == PL_OK && EVP_DigestFinal_ex(ctx, md, &len) != 1) st = PL_FAIL(PL_ERR_INTERNAL, "SHA-256 final failed");
    EVP_MD_CTX_free(ctx);
    fclose(fp);
    if (st != PL_OK) return st;
    for (unsigned i = 0; i < len && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = '\0';
    return PL_OK;
}

static void digest_hex(const unsigned char *md, unsigned len, char *out) {
    for (unsigned i = 0; i < len; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void pl_digest_text(const char *text, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL);
    digest_hex(md, len < 32 ? len : 32, out);
    out[64] = '\0';
}

PlStatus pl_sha256_begin(PlSha256 *h) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    h->ctx = ctx;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        pl_sha256_abort(h);
        return PL_FAIL(PL_ERR_INTERNAL, "OpenSSL SHA-256 initialisation failed");
    }
    return PL_OK;
}

PlStatus pl_sha256_add(PlSha256 *h, const void *data, size_t size) {
    if (size && EVP_DigestUpdate((EVP_MD_CTX *)h->ctx, data, size) != 1)
        return PL_FAIL(PL_ERR_INTERNAL, "SHA-256 update failed");
    return PL_OK;
}

PlStatus pl_sha256_end(PlSha256 *h, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    int ok = EVP_DigestFinal_ex((EVP_MD_CTX *)h->ctx, md, &len) == 1 && len >= 32;
    pl_sha256_abort(h);
    if (!ok) return PL_FAIL(PL_ERR_INTERNAL, "SHA-256 final failed");
    digest_hex(md, 32, hex);
    hex[64] = '\0';
    return PL_OK;
}

void pl_sha256_abort(PlSha256 *h) {
    EVP_MD_CTX_free((EVP_MD_CTX *)h->ctx);
    h->ctx = NULL;
}

static PlStatus digest_add_file(EVP_MD_CTX *ctx, const char *role, const PlManifestChannel *ch, int verify) {
    char line[8192];
    if (verify) {
        char hex[65];
        PlStatus st = pl_sha256_file(ch->path, hex);
        if (st != PL_OK) return pl_error_wrap("%s channel", role);
        snprintf(line, sizeof line, "%s\t%s#%d\t%s\n", role, ch->path, ch->page, hex);
    } else {
        struct stat sb;
        if (stat(ch->path, &sb) != 0)
            return PL_FAIL(PL_ERR_IO, "%s channel: cannot stat %s: %s", role, ch->path, strerror(errno));
        snprintf(line, sizeof line, "%s\t%s#%d\t%lld\t%lld.%09ld\n", role, ch->path, ch->page, (long long)sb.st_size,
                 (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec);
    }
    EVP_DigestUpdate(ctx, line, strlen(line));
    return PL_OK;
}

PlStatus pl_digest_item(const PlManifest *m, const PlManifestItem *item, int verify, char out[PL_DIGEST_LEN]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return PL_FAIL(PL_ERR_INTERNAL, "OpenSSL SHA-256 initialisation failed");
    }
    PlStatus st = PL_OK;
    for (int r = 0; r < m->n_roles && st == PL_OK; r++)
        if (item->channels[r].path) st = digest_add_file(ctx, m->roles[r], &item->channels[r], verify);
    if (st == PL_OK && item->mask.path) st = digest_add_file(ctx, "mask", &item->mask, verify);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (st == PL_OK) EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    if (st != PL_OK) return st;
    out[0] = verify ? 'c' : 's';
    out[1] = ':';
    digest_hex(md, 32, out + 2);
    out[66] = '\0';
    return PL_OK;
}
