#include "substrate/digest.h"
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>

int sub_sha256_init(sub_sha256 *h, sub_err *e) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return sub_err_ssl(e, -ENOMEM, "cannot allocate a SHA-256 context");
    if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return sub_err_ssl(e, -EIO, "cannot initialise SHA-256");
    }
    h->ctx = c;
    return 0;
}

void sub_sha256_update(sub_sha256 *h, const void *data, size_t len) {
    if (len && EVP_DigestUpdate(h->ctx, data, len) != 1) abort();
}

void sub_sha256_final(sub_sha256 *h, char out[SUB_DIGEST_MAX]) {
    unsigned char md[32];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32) abort();
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 64] = 0;
    sub_sha256_free(h);
}

void sub_sha256_free(sub_sha256 *h) {
    if (h->ctx) EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

int sub_sha256_buf(const void *data, size_t len, char out[SUB_DIGEST_MAX], sub_err *e) {
    sub_sha256 h = {0};
    int r = sub_sha256_init(&h, e);
    if (r < 0) return r;
    sub_sha256_update(&h, data, len);
    sub_sha256_final(&h, out);
    return 0;
}

int sub_sha256_fd(int fd, const char *what, char out[SUB_DIGEST_MAX], uint64_t *size, sub_err *e) {
    sub_sha256 h = {0};
    int r = sub_sha256_init(&h, e);
    if (r < 0) return r;
    uint64_t total = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            r = sub_err_set(e, -errno, "cannot read %s: %m", what);
            sub_sha256_free(&h);
            return r;
        }
        if (n == 0) break;
        sub_sha256_update(&h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    sub_sha256_final(&h, out);
    if (size) *size = total;
    return 0;
}

int sub_sha256_file(const char *path, char out[SUB_DIGEST_MAX], size_t *size, sub_err *e) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sub_err_set(e, -errno, "cannot open %s: %m", path);
    uint64_t n = 0;
    int r = sub_sha256_fd(fd, path, out, &n, e);
    if (r == 0 && size) *size = (size_t)n;
    return r;
}

static int is_lower_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

int sub_digest_validate(const char *d, sub_err *e) {
    if (!d || !*d) return sub_err_set(e, -EINVAL, "empty digest");
    const char *colon = strchr(d, ':');
    if (!colon)
        return sub_err_set(e, -EINVAL,
                           "digest \"%s\" has no algorithm (expected sha256:<64 hex digits>)", d);
    size_t alen = (size_t)(colon - d);
    const char *hex = colon + 1;
    size_t hlen = strlen(hex);
    size_t want;
    if (alen == 6 && !memcmp(d, "sha256", 6)) want = 64;
    else if (alen == 6 && !memcmp(d, "sha512", 6)) want = 128;
    else
        return sub_err_set(e, -EINVAL, "digest \"%s\": unsupported algorithm \"%.*s\" (use sha256)",
                           d, (int)alen, d);
    if (hlen != want)
        return sub_err_set(e, -EINVAL, "digest \"%s\": %.*s needs %zu hex digits, found %zu", d,
                           (int)alen, d, want, hlen);
    if (!is_lower_hex(hex, hlen))
        return sub_err_set(e, -EINVAL,
                           "digest \"%s\": encoded part must be lowercase hex [0-9a-f]", d);
    return 0;
}

const char *sub_digest_hex(const char *d) {
    const char *c = strchr(d, ':');
    return c ? c + 1 : d;
}
