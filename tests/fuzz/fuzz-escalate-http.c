/* The escalation broker's HTTP request head (lib/tier1/escalate.c), what a
 * service's container sends on /run/substrate/escalate.sock: whatever the
 * bytes, the parser asks for more (no blank line yet, head not too large),
 * refuses with 400/411/413 and a reason, or returns a request whose method
 * and target are single words, whose body starts right after the first
 * CRLF CRLF and whose Content-Length is within the limit. The broker parses
 * the bytes read so far again after each read, so any prefix of the input
 * gives "more" before the blank line and the whole input's answer after it;
 * a smaller body limit changes nothing but a 413. */
#include "fuzz.h"
#include "../../lib/tier1/escalate-internal.h"
#include "substrate/jobspec.h"
#include <ctype.h>
#include <strings.h>

#define BIG_MAX ((size_t)SUB_JOB_INPUTS_MAX + (64u << 10)) /* the broker's limit before a policy is read */
#define SMALL_MAX ((size_t)16)

typedef struct res {
    int r, status;
    const char *reason;
    char msg[1024];
    esc_http_head h;
} res;

/* Parse a copy of the first len bytes (so that reading past len is an ASan report). */
static res parse(const uint8_t *data, size_t len, size_t body_max) {
    res o = {.status = -1};
    memset(o.msg, 'x', sizeof o.msg);
    char *copy = xmalloc(len ? len : 1);
    if (len) memcpy(copy, data, len);
    o.r = esc_http_parse_head(copy, len, body_max, &o.h, &o.status, &o.reason, o.msg, sizeof o.msg);
    FUZZ_ASSERT(!memcmp(copy, data, len)); /* the input is never changed */
    free(copy);
    return o;
}

static bool word(const char *s, size_t n) {
    size_t l = strnlen(s, n);
    if (l == 0 || l == n) return false;
    for (size_t i = 0; i < l; i++)
        if (isspace((unsigned char)s[i])) return false;
    return true;
}

static bool same(const res *a, const res *b) {
    if (a->r != b->r) return false;
    if (a->r < 0) return a->status == b->status && !strcmp(a->reason, b->reason) && !strcmp(a->msg, b->msg);
    if (a->r == 0) return true;
    return !strcmp(a->h.method, b->h.method) && !strcmp(a->h.target, b->h.target) && a->h.length == b->h.length &&
           a->h.expect_continue == b->h.expect_continue && a->h.body_off == b->h.body_off;
}

/* The promises of one answer for the first len bytes; blank is the offset
 * of the first CRLF CRLF in the whole input (SIZE_MAX: none). */
static void check(const res *o, const uint8_t *data, size_t len, size_t blank, size_t body_max) {
    bool complete = blank != SIZE_MAX && blank + 4 <= len;
    FUZZ_ASSERT(o->r >= -1 && o->r <= 1);
    if (!complete) {
        if (len <= ESC_HTTP_HEAD_MAX) FUZZ_ASSERT(o->r == 0);
        else FUZZ_ASSERT(o->r < 0 && o->status == 413 && !strcmp(o->reason, "too_large"));
    }
    if (o->r < 0) {
        FUZZ_ASSERT(o->status == 400 || o->status == 411 || o->status == 413);
        const char *want = o->status == 400 ? "bad_request" : o->status == 411 ? "length_required" : "too_large";
        FUZZ_ASSERT(o->reason && !strcmp(o->reason, want));
        FUZZ_ASSERT(memchr(o->msg, 0, sizeof o->msg) && o->msg[0]);
        return;
    }
    if (o->r == 0) {
        FUZZ_ASSERT(!complete && o->status == -1 && o->msg[0] == 'x'); /* nothing reported */
        return;
    }
    FUZZ_ASSERT(complete && o->h.body_off == blank + 4 && o->h.body_off <= len);
    /* the head limit holds however the bytes arrived, and a parsed head has no NUL */
    FUZZ_ASSERT(o->h.body_off <= ESC_HTTP_HEAD_MAX && !memchr(data, 0, blank));
    FUZZ_ASSERT(word(o->h.method, sizeof o->h.method) && word(o->h.target, sizeof o->h.target));
    FUZZ_ASSERT(o->h.length == -1 || (o->h.length >= 0 && (unsigned long long)o->h.length <= body_max));
    FUZZ_ASSERT(strcmp(o->h.method, "POST") || o->h.length >= 0);
    FUZZ_ASSERT(o->status == -1 && o->msg[0] == 'x');
    /* a header line Transfer-Encoding (before any NUL in the head) is always refused */
    size_t hl = strnlen((const char *)data, blank);
    static const char te[] = "\r\ntransfer-encoding:";
    for (size_t i = 0; i + sizeof te - 1 <= hl; i++)
        FUZZ_ASSERT(strncasecmp((const char *)data + i, te, sizeof te - 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *b = size ? memmem(data, size, "\r\n\r\n", 4) : NULL;
    size_t blank = b ? (size_t)(b - data) : SIZE_MAX;

    res whole = parse(data, size, BIG_MAX);
    check(&whole, data, size, blank, BIG_MAX);

    /* a smaller body limit: the same answer, or 413 for a longer Content-Length */
    res small = parse(data, size, SMALL_MAX);
    check(&small, data, size, blank, SMALL_MAX);
    if (whole.r == 1 && whole.h.length > (long long)SMALL_MAX)
        FUZZ_ASSERT(small.r < 0 && small.status == 413 && !strcmp(small.reason, "too_large"));
    else if (whole.r < 0)
        FUZZ_ASSERT(small.r < 0 && small.status == whole.status && !strcmp(small.reason, whole.reason));
    else
        FUZZ_ASSERT(same(&small, &whole));

    /* prefixes, as the broker sees them between reads: one chosen by the
     * input's bytes, the one just short of the blank line and the one ending
     * with it; once the blank line is in, the answer is the whole input's */
    uint32_t hsh = 2166136261u;
    for (size_t i = 0; i < size; i++) hsh = (hsh ^ data[i]) * 16777619u;
    size_t cuts[3] = {size ? hsh % (size + 1) : 0, blank != SIZE_MAX ? blank + 3 : 0,
                      blank != SIZE_MAX ? blank + 4 : size};
    for (size_t c = 0; c < ARRAY_SIZE(cuts); c++) {
        size_t p = cuts[c];
        res pre = parse(data, p, BIG_MAX);
        check(&pre, data, p, blank, BIG_MAX);
        if (blank != SIZE_MAX && p >= blank + 4) {
            FUZZ_ASSERT(same(&pre, &whole));
        }
    }
    return 0;
}
