/* Private to lib/registry: the response-header parsers of the client
 * (client.c), shared with the fuzz harnesses in tests/fuzz. Everything a
 * registry sends in headers goes through these. */
#pragma once
#include "substrate/registry.h"
#include "substrate/digest.h"
#include "substrate/strbuf.h"
#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ABORT_NONE = 0,
    ABORT_TOO_BIG, /* over the cap */
    ABORT_SIZE,    /* Content-Length differs from the expected size */
    ABORT_LONGER,  /* more bytes than expected */
    ABORT_WRITE,   /* local write failed (out_errno) */
} abort_reason;

typedef struct xfer {
    /* request */
    const char *method; /* GET HEAD PUT POST */
    char *url;          /* owned */
    char *what;         /* owned: "manifest repo:tag", "blob sha256:..." for messages */
    const char *accept;
    const char *content_type;
    const void *body; /* in-memory request body */
    size_t body_len, body_off;
    int in_fd; /* or a file body */
    uint64_t in_len, in_off;
    int in_errno;
    bool hash_in;
    sub_sha256 in_hash;
    /* response body sink (2xx only; other bodies go to err_body) */
    int out_fd;       /* >= 0: write here */
    sub_buf mem;      /* out_fd < 0: keep in memory */
    uint64_t out_max; /* cap, 0 = no body expected */
    uint64_t out_expect;
    bool hash_out;
    sub_sha256 out_hash;
    uint64_t received;
    int out_errno;
    abort_reason abort;
    sub_buf err_body;
    /* response */
    long status;
    int64_t clen;
    char *ctype, *location, *docker_digest, *www_auth, *link;
    char errbuf[CURL_ERROR_SIZE];
} xfer;

/* curl's header callback: one header line (with its CRLF) of the response to
 * the request in `ud` (an xfer). A status line resets the response fields;
 * the blank line ends a response (and refuses an announced oversize body). */
size_t reg_on_header(char *buf, size_t sz, size_t nm, void *ud);

typedef struct challenge {
    char scheme[16];
    char realm[512];
    char service[512];
    char scope[512];
} challenge;

/* Parse a WWW-Authenticate value (NULL: none) into c; fields are cut to
 * their size. Never fails: what is not understood is left empty. */
void reg_parse_challenge(const char *h, challenge *c);

/* The URL an upload Location (or a tag list's next Link) names, which must
 * stay on r's host:port: *out (caller frees), or -EPROTO/-EPERM. */
int reg_resolve_location(sub_reg *r, const char *repo, const char *loc, char **out, sub_err *e);

/* The target of a Link header's rel="next" ("</v2/x/tags/list?last=a>; rel=\"next\""),
 * or NULL (caller frees). */
char *reg_next_link(const char *link);
