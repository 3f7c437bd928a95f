/* Content digests (OCI "algorithm:hex"). SHA-256 via OpenSSL EVP, streaming. */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUB_DIGEST_MAX 136 /* "sha512:" + 128 hex + NUL, rounded */
#define SUB_SHA256_STRLEN 71 /* "sha256:" + 64 hex */

typedef struct sub_sha256 {
    void *ctx; /* EVP_MD_CTX*, owned */
} sub_sha256;

int sub_sha256_init(sub_sha256 *h, sub_err *e);
void sub_sha256_update(sub_sha256 *h, const void *data, size_t len);
/* Writes "sha256:<64 hex>" into out and releases the context. */
void sub_sha256_final(sub_sha256 *h, char out[SUB_DIGEST_MAX]);
void sub_sha256_free(sub_sha256 *h); /* safe after final, or on abandon */
int sub_sha256_buf(const void *data, size_t len, char out[SUB_DIGEST_MAX], sub_err *e);
/* Hash everything readable from fd; `what` names it in errors; *size may be NULL. */
int sub_sha256_fd(int fd, const char *what, char out[SUB_DIGEST_MAX], uint64_t *size, sub_err *e);
/* Hash a file; *size gets its length when non-NULL. */
int sub_sha256_file(const char *path, char out[SUB_DIGEST_MAX], size_t *size, sub_err *e);

/* Validate "algorithm:encoded" per the OCI image spec; we accept sha256 (64
 * lower-hex) and sha512 (128 lower-hex). Errors say what is wrong. */
int sub_digest_validate(const char *d, sub_err *e);
/* The hex part of a validated digest (borrowed pointer into d). */
const char *sub_digest_hex(const char *d);
