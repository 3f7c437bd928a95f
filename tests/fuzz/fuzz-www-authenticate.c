/* A WWW-Authenticate challenge value (lib/registry/client.c
 * reg_parse_challenge): scheme, realm, service, scope. */
#include "fuzz.h"
#include "../../lib/registry/client-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    _cleanup_free_ char *s = fuzz_str(data, size);
    challenge c;
    memset(&c, 0xa5, sizeof c);
    reg_parse_challenge(s, &c);
    FUZZ_ASSERT(memchr(c.scheme, 0, sizeof c.scheme));
    FUZZ_ASSERT(memchr(c.realm, 0, sizeof c.realm));
    FUZZ_ASSERT(memchr(c.service, 0, sizeof c.service));
    FUZZ_ASSERT(memchr(c.scope, 0, sizeof c.scope));
    FUZZ_ASSERT(!strchr(c.scheme, ' ') && !strchr(c.scheme, '\t'));
    return 0;
}
