/* Image references and registry addresses (lib/oci/ref.c, and the address
 * split of lib/registry/client.c), as given on a command line or found in a
 * signature payload. */
#include "fuzz.h"
#include "substrate/ref.h"
#include "substrate/registry.h"

static void roundtrip(const sub_ref *r) {
    FUZZ_ASSERT(r->registry && r->repository);
    /* the full form parses back to the same reference without a default */
    _cleanup_free_ char *s = sub_ref_str(r);
    sub_ref b = {0};
    sub_err e = {0};
    FUZZ_ASSERT(sub_ref_parse(s, NULL, &b, &e) == 0);
    FUZZ_ASSERT(!strcmp(b.registry, r->registry) && !strcmp(b.repository, r->repository));
    FUZZ_ASSERT((!b.tag && !r->tag) || (b.tag && r->tag && !strcmp(b.tag, r->tag)));
    FUZZ_ASSERT((!b.digest && !r->digest) || (b.digest && r->digest && !strcmp(b.digest, r->digest)));
    FUZZ_ASSERT(sub_repo_validate(b.repository, &e) == 0);
    if (b.tag) FUZZ_ASSERT(sub_tag_validate(b.tag, &e) == 0);
    if (b.digest) FUZZ_ASSERT(sub_digest_validate(b.digest, &e) == 0);
    sub_ref_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    _cleanup_free_ char *s = fuzz_str(data, size);
    sub_err e = {0};
    sub_ref r = {0};
    if (sub_ref_parse(s, "127.0.0.1:5000", &r, &e) == 0) roundtrip(&r);
    fuzz_check_err(&e);
    sub_ref_free(&r);
    if (sub_ref_parse(s, NULL, &r, &e) == 0) roundtrip(&r);
    sub_ref_free(&r);
    (void)sub_tag_validate(s, &e);
    (void)sub_repo_validate(s, &e);
    (void)sub_digest_validate(s, &e);
    fuzz_check_err(&e);

    _cleanup_free_ char *host = NULL;
    int port = -1;
    if (sub_reg_addr_split(s, &host, &port, &e) == 0) {
        FUZZ_ASSERT(host && *host);
        FUZZ_ASSERT(port >= 0 && port <= 65535);
    }
    bool lo = sub_reg_addr_is_loopback(s);
    /* loopback means the host, not some prefix of the address */
    if (lo) FUZZ_ASSERT(host != NULL);
    return 0;
}
