/* Upload Location and tag-list Link headers (lib/registry/client.c
 * reg_resolve_location, reg_next_link). The security promise: whatever the
 * registry sends, the URL we go on to use is on the registry we were given.
 * Checked with curl's own URL parser, the one that will send the request. */
#include "fuzz.h"
#include "../../lib/registry/client-internal.h"

static sub_reg *reg;

static void check_url(const char *u) {
    CURLU *h = curl_url();
    FUZZ_ASSERT(h);
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLUcode uc = curl_url_set(h, CURLUPART_URL, u, 0);
    if (uc == CURLUE_OK) {
        FUZZ_ASSERT(curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK);
        FUZZ_ASSERT(curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK);
        FUZZ_ASSERT(curl_url_get(h, CURLUPART_PORT, &port, 0) == CURLUE_OK);
        FUZZ_ASSERT(!strcmp(scheme, "http"));
        FUZZ_ASSERT(!strcmp(host, "127.0.0.1"));
        FUZZ_ASSERT(!strcmp(port, "5000"));
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
    }
    curl_url_cleanup(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!reg) {
        sub_reg_opts o = {.host = "127.0.0.1:5000", .username = "", .password = ""};
        if (sub_reg_new(&o, &reg, NULL) < 0) abort();
    }
    _cleanup_free_ char *s = fuzz_str(data, size);
    sub_err e = {0};
    _cleanup_free_ char *u = NULL;
    if (reg_resolve_location(reg, "fuzz/repo", s, &u, &e) == 0) check_url(u);
    fuzz_check_err(&e);
    _cleanup_free_ char *next = reg_next_link(s);
    _cleanup_free_ char *u2 = NULL;
    if (next && reg_resolve_location(reg, "fuzz/repo", next, &u2, &e) == 0) check_url(u2);
    return 0;
}
