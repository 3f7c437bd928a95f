#include "substrate/error.h"
#include "substrate/strbuf.h"
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

/* After a vsnprintf of n bytes into buf[cap]: when the text was cut, cut it
 * at a character boundary, so a message stays valid UTF-8 when its source was
 * (a multi-byte character split in half is not). */
static void fit(char *buf, size_t cap, int n) {
    if (n < 0) {
        buf[0] = 0;
        return;
    }
    if ((size_t)n < cap) return;
    buf[sub_utf8_cut(buf, cap - 1)] = 0;
}

static int neg(int code) { return code > 0 ? -code : (code == 0 ? -EIO : code); }

static int vset(sub_err *e, sub_err_kind kind, int code, const char *fmt, va_list ap) {
    code = neg(code);
    if (!e) return code;
    e->code = code;
    e->kind = kind;
    fit(e->msg, sizeof e->msg, vsnprintf(e->msg, sizeof e->msg, fmt, ap));
    e->detail[0] = 0;
    return code;
}

int sub_err_set(sub_err *e, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vset(e, SUB_KIND_DEFAULT, code, fmt, ap);
    va_end(ap);
    return r;
}

int sub_err_setk(sub_err *e, sub_err_kind kind, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vset(e, kind, code, fmt, ap);
    va_end(ap);
    return r;
}

int sub_err_ssl(sub_err *e, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vset(e, SUB_KIND_DEFAULT, code, fmt, ap);
    va_end(ap);
    if (!e) {
        ERR_clear_error();
        return r;
    }
    size_t off = 0;
    unsigned long err;
    while ((err = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(err, buf, sizeof buf);
        int n = snprintf(e->detail + off, sizeof e->detail - off, "%s%s", off ? "; " : "", buf);
        if (n < 0 || (size_t)n >= sizeof e->detail - off) {
            fit(e->detail + off, sizeof e->detail - off, n);
            break;
        }
        off += (size_t)n;
    }
    return r;
}

void sub_err_detail(sub_err *e, const char *fmt, ...) {
    if (!e) return;
    va_list ap;
    va_start(ap, fmt);
    fit(e->detail, sizeof e->detail, vsnprintf(e->detail, sizeof e->detail, fmt, ap));
    va_end(ap);
}

void sub_err_prefix(sub_err *e, const char *fmt, ...) {
    if (!e) return;
    va_list ap;
    va_start(ap, fmt);
    char *pre = xvasprintf(fmt, ap);
    va_end(ap);
    char *full = xasprintf("%s: %s", pre, e->msg);
    size_t n = strlen(full);
    if (n >= sizeof e->msg) n = sub_utf8_cut(full, sizeof e->msg - 1);
    memcpy(e->msg, full, n);
    e->msg[n] = 0;
    free(pre);
    free(full);
}

void sub_err_clear(sub_err *e) {
    if (e) memset(e, 0, sizeof *e);
}

int sub_err_exit_code(const sub_err *e) {
    if (!e || e->code == 0) return SUB_EXIT_OK;
    switch (e->kind) {
    case SUB_KIND_CHECK: return SUB_EXIT_CHECK;
    case SUB_KIND_INPUT: return SUB_EXIT_USAGE;
    case SUB_KIND_ENV: return SUB_EXIT_ENV;
    case SUB_KIND_DEFAULT: break;
    }
    switch (-e->code) {
    case EINVAL:
    case EBADMSG:
    case E2BIG:
    case ENAMETOOLONG:
    case EDOM:
        return SUB_EXIT_USAGE;
    case EKEYREJECTED:
    case EILSEQ: /* digest mismatch: content is not what it claims */
        return SUB_EXIT_CHECK;
    default:
        return SUB_EXIT_ENV;
    }
}
