/* Shared by the libFuzzer harnesses in tests/fuzz (one target per
 * fuzz-<target>.c; corpus in corpus/<target>/). Built with clang and
 * -fsanitize=fuzzer,address,undefined against the library sources compiled
 * with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION (see the Makefile's fuzz
 * section). A harness aborts (FUZZ_ASSERT) when a parser breaks one of its
 * own promises, so libFuzzer reports it like a crash. */
#pragma once
#include "substrate/macro.h"
#include "substrate/error.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a NUL-terminated string (caller frees); an input holding a
 * NUL ends there as a C string. */
static inline char *fuzz_str(const uint8_t *data, size_t size) {
    char *s = xmalloc(size + 1);
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* An error message is always a terminated string inside its buffer. */
static inline void fuzz_check_err(const sub_err *e) {
    FUZZ_ASSERT(memchr(e->msg, 0, sizeof e->msg) != NULL);
    FUZZ_ASSERT(memchr(e->detail, 0, sizeof e->detail) != NULL);
}

/* The test key of tests/fixtures/cosign (TEST KEY ONLY): cosign.pub. */
#define FUZZ_TEST_PUB                                                                              \
    "-----BEGIN PUBLIC KEY-----\n"                                                                 \
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWy38KWJuEqdI/1prFTFuBvHNCf97\n"                         \
    "3oUVD2troqBPd5mBwTua+NXJZLOApooyfcW3Kw8wysgxbQJX1DHGjRpuDA==\n"                             \
    "-----END PUBLIC KEY-----\n"

/* tests/fixtures/cosign/image-manifest.digest: the image payload.json signs. */
#define FUZZ_IMAGE_DIGEST "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455"
