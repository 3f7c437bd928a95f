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
    e->reason = SUB_R_NONE;
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

int sub_err_setr(sub_err *e, sub_reason reason, sub_err_kind kind, int code, const char *fmt,
                 ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vset(e, kind, code, fmt, ap);
    va_end(ap);
    if (e) e->reason = reason;
    return r;
}

int sub_err_reason(sub_err *e, sub_reason reason) {
    if (!e) return -EIO;
    e->reason = reason;
    return e->code;
}

static const char *const reason_names[_SUB_R_MAX] = {
    [SUB_R_NONE] = "none",
    [SUB_R_NO_SIGNATURE] = "no_signature",
    [SUB_R_NO_TRUSTED_KEY] = "no_trusted_key",
    [SUB_R_MALFORMED_SIGNATURE] = "malformed_signature",
    [SUB_R_MALFORMED_PAYLOAD] = "malformed_payload",
    [SUB_R_DIGEST_MISMATCH] = "digest_mismatch",
    [SUB_R_IDENTITY_MISMATCH] = "identity_mismatch",
    [SUB_R_LAYER_MISMATCH] = "layer_digest_mismatch",
    [SUB_R_SIGNATURES_REFUSED] = "signatures_refused",
    [SUB_R_TOO_MANY_SIGNATURES] = "too_many_signatures",
    [SUB_R_NO_PROVENANCE] = "no_provenance",
    [SUB_R_BAD_PROVENANCE] = "bad_provenance",
    [SUB_R_WRONG_PASSPHRASE] = "wrong_passphrase",
    [SUB_R_NO_PASSPHRASE] = "no_passphrase",
    [SUB_R_NO_KEY_FILE] = "no_key_file",
    [SUB_R_PUBLIC_KEY_GIVEN] = "public_key_given",
    [SUB_R_NOT_A_PRIVATE_KEY] = "not_a_private_key",
    [SUB_R_KEY_NOT_TRUSTED] = "key_not_trusted",
    [SUB_R_NO_TRUST_STORE] = "no_trust_store",
    [SUB_R_NO_SUCH_IMAGE] = "no_such_image",
    [SUB_R_UNKNOWN_IMAGE] = "unknown_image",
    [SUB_R_UNKNOWN_REVISION] = "unknown_revision",
    [SUB_R_INVALID_TAG] = "invalid_tag",
    [SUB_R_DIRTY_TREE] = "dirty_tree",
    [SUB_R_NOT_REPRODUCIBLE] = "not_reproducible",
    [SUB_R_HOSTILE_LAYER] = "hostile_layer",
    [SUB_R_BAD_MANIFEST] = "bad_manifest",
    [SUB_R_NOT_READY] = "not_ready",
    [SUB_R_NOT_RECONCILED] = "not_reconciled",
    [SUB_R_DRIFT] = "drift",
    [SUB_R_VERIFY_STALE] = "verify_stale",
    [SUB_R_BAD_JOBSPEC] = "bad_jobspec",
    [SUB_R_BAD_VM_SPEC] = "bad_vm_spec",
    [SUB_R_BAD_POD_LIST] = "bad_pod_list",
};

const char *sub_reason_to_string(sub_reason r) {
    if (r < 0 || r >= _SUB_R_MAX) return NULL;
    return reason_names[r];
}

sub_reason sub_reason_from_string(const char *s) {
    if (!s) return _SUB_R_INVALID;
    for (int i = 0; i < _SUB_R_MAX; i++)
        if (reason_names[i] && !strcmp(reason_names[i], s)) return (sub_reason)i;
    return _SUB_R_INVALID;
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
