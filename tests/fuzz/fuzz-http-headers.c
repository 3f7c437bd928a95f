/* Response headers as the registry client's curl header callback sees them
 * (lib/registry/client.c reg_on_header), then what the client derives from
 * them: the challenge, the next page and the upload location. The input is
 * split into lines at '\n'; each is handed over with its line end, as curl
 * does. */
#include "fuzz.h"
#include "../../lib/registry/client-internal.h"

static sub_reg *reg;

static void resp_free(xfer *x) {
    free(x->ctype);
    free(x->location);
    free(x->docker_digest);
    free(x->www_auth);
    free(x->link);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!reg) {
        sub_reg_opts o = {.host = "127.0.0.1:5000", .username = "", .password = ""};
        if (sub_reg_new(&o, &reg, NULL) < 0) abort();
    }
    static const char *const methods[] = {"GET", "HEAD", "PUT", "POST"};
    xfer x;
    memset(&x, 0, sizeof x);
    x.method = methods[size % 4];
    x.in_fd = x.out_fd = -1;
    x.clen = -1;
    x.out_max = 1024;
    x.out_expect = size % 3 ? 0 : 100;
    size_t off = 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t n = nl ? (size_t)(nl - (data + off)) + 1 : size - off;
        /* curl hands over a buffer it owns; give each line its own allocation
         * so a read past its end is caught */
        char *line = xmalloc(n);
        memcpy(line, data + off, n);
        size_t got = reg_on_header(line, 1, n, &x);
        free(line);
        FUZZ_ASSERT(got == n || got == 0);
        off += n;
        if (got == 0) {
            FUZZ_ASSERT(x.abort == ABORT_SIZE || x.abort == ABORT_TOO_BIG);
            break;
        }
    }
    FUZZ_ASSERT(x.clen >= -1);
    challenge c;
    reg_parse_challenge(x.www_auth, &c);
    _cleanup_free_ char *next = reg_next_link(x.link);
    _cleanup_free_ char *u1 = NULL, *u2 = NULL;
    sub_err e = {0};
    if (next) (void)reg_resolve_location(reg, "fuzz/repo", next, &u1, &e);
    (void)reg_resolve_location(reg, "fuzz/repo", x.location, &u2, &e);
    fuzz_check_err(&e);
    resp_free(&x);
    return 0;
}
