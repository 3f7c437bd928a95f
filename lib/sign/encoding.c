/* base64, PEM, secret buffers and no-overwrite file creation for lib/sign. */
#include "sign-internal.h"
#include "substrate/fs.h"
#include "substrate/strbuf.h"
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sign_sodium_init(sub_err *e) {
    if (sodium_init() < 0)
        return sub_err_setk(e, SUB_KIND_ENV, -EIO,
                            "libsodium failed to initialise (no usable random source?)");
    return 0;
}

int sub_sign_file_error(int r, sub_err *e) {
    switch (-r) {
    case ENOENT:
    case ENOTDIR:
    case EISDIR:
    case EACCES:
    case EPERM:
    case ELOOP:
    case ENAMETOOLONG:
    case EFBIG:
        if (e) e->kind = SUB_KIND_INPUT;
        break;
    default: break;
    }
    return r;
}

void sub_secret_free(void *p, size_t len) {
    if (!p) return;
    sodium_memzero(p, len);
    free(p);
}

char *sub_b64_encode(const void *data, size_t len) {
    size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = xmalloc(n);
    sodium_bin2base64(out, n, data, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

int sub_b64_decode(const char *b64, size_t len, const char *ignore, const char *what,
                   unsigned char **out, size_t *outlen, sub_err *e) {
    /* libsodium 1.0.18 decodes every byte >= 0x80 as '/': check the alphabet
     * here (found by tests/fuzz) */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)b64[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '+' || c == '/' || c == '=' || (ignore && c && strchr(ignore, c)))
            continue;
        return sub_err_set(e, -EBADMSG,
                           "%s is not valid base64 (standard alphabet, '=' padding): it goes "
                           "wrong at byte %zu of %zu",
                           what, i, len);
    }
    size_t cap = len / 4 * 3 + 3;
    unsigned char *buf = xmalloc(cap);
    size_t n = 0;
    const char *end = NULL;
    if (sodium_base642bin(buf, cap, b64, len, ignore, &n, &end, sodium_base64_VARIANT_ORIGINAL) <
            0 ||
        end != b64 + len) {
        size_t at = end ? (size_t)(end - b64) : 0;
        sub_secret_free(buf, cap);
        return sub_err_set(e, -EBADMSG,
                           "%s is not valid base64 (standard alphabet, '=' padding): it goes "
                           "wrong at byte %zu of %zu",
                           what, at, len);
    }
    *out = buf;
    *outlen = n;
    return 0;
}

static const char *find_line_end(const char *p, const char *end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : end;
}

int sign_pem_decode(const char *text, size_t len, const char *what, char **label,
                    unsigned char **der, size_t *derlen, sub_err *e) {
    const char *end = text + len;
    const char *begin = NULL;
    for (const char *p = text; p < end;) {
        const char *le = find_line_end(p, end);
        if ((size_t)(le - p) >= 11 && !memcmp(p, "-----BEGIN ", 11)) {
            begin = p;
            break;
        }
        p = le < end ? le + 1 : end;
    }
    if (!begin)
        return sub_err_set(e, -EBADMSG, "%s is not a PEM file (no \"-----BEGIN ...-----\" line)",
                           what);
    const char *le = find_line_end(begin, end);
    const char *lstart = begin + 11, *lend = le;
    if (lend > lstart && lend[-1] == '\r') lend--;
    if (lend - lstart < 6 || memcmp(lend - 5, "-----", 5))
        return sub_err_set(e, -EBADMSG, "%s: malformed PEM BEGIN line", what);
    _cleanup_free_ char *lab = xstrndup(lstart, (size_t)(lend - 5 - lstart));
    _cleanup_free_ char *endline = xasprintf("-----END %s-----", lab);
    size_t el = strlen(endline);
    const char *body = le < end ? le + 1 : end;
    const char *p = body, *body_end = NULL, *after = NULL;
    while (p < end) {
        const char *q = find_line_end(p, end);
        const char *qe = q;
        if (qe > p && qe[-1] == '\r') qe--;
        if ((size_t)(qe - p) == el && !memcmp(p, endline, el)) {
            body_end = p;
            after = q < end ? q + 1 : end;
            break;
        }
        if (memchr(p, ':', (size_t)(qe - p)))
            return sub_err_set(e, -EBADMSG,
                               "%s: PEM block \"%s\" has headers (\"%.*s\"); this is not a key "
                               "format Substrate or cosign reads",
                               what, lab, (int)(qe - p > 60 ? 60 : qe - p), p);
        p = q < end ? q + 1 : end;
    }
    if (!body_end)
        return sub_err_set(e, -EBADMSG, "%s: PEM block \"%s\" has no \"%s\" line", what, lab,
                           endline);
    for (const char *t = after; t < end; t++)
        if (!strchr(" \t\r\n", *t))
            return sub_err_set(e, -EBADMSG,
                               "%s: unexpected content after the PEM block \"%s\" (one key per "
                               "file)",
                               what, lab);
    _cleanup_free_ char *bwhat = xasprintf("%s (PEM body)", what);
    int r = sub_b64_decode(body, (size_t)(body_end - body), " \t\r\n", bwhat, der, derlen, e);
    if (r < 0) return r;
    *label = TAKE_PTR(lab);
    return 0;
}

char *sign_pem_encode(const char *label, const void *der, size_t len) {
    _cleanup_free_ char *b64 = sub_b64_encode(der, len);
    size_t n = strlen(b64);
    sub_buf b = SUB_BUF_INIT;
    sub_buf_printf(&b, "-----BEGIN %s-----\n", label);
    for (size_t i = 0; i < n; i += 64) {
        sub_buf_append(&b, b64 + i, n - i < 64 ? n - i : 64);
        sub_buf_putc(&b, '\n');
    }
    sub_buf_printf(&b, "-----END %s-----\n", label);
    return sub_buf_detach(&b, NULL);
}

