/* Internal to lib/registry: the registry handle, one HTTP transfer and the
 * helpers the client's parts share. transport.c owns the transfer (curl
 * options, streaming callbacks, error mapping, retries) and the handle's
 * lifecycle; auth.c answers 401 challenges; manifest.c and blob.c are the
 * distribution API on top. Not a public header: nothing outside
 * lib/registry/ (and its unit tests) includes it. */
#pragma once
#include "substrate/digest.h"
#include "substrate/registry.h"
#include "substrate/strbuf.h"
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#define ERR_BODY_MAX (64u << 10) /* how much of an error response we keep */

typedef enum {
    AUTH_ANON = 0, /* nothing sent yet */
    AUTH_BASIC,    /* credentials sent with every request */
    AUTH_BEARER,   /* r->token sent as "Authorization: Bearer <token>" (auth.c) */
} auth_mode;

/* A bearer token from a realm, cached per realm+service+scope (auth.c). */
typedef struct reg_token {
    char *key;   /* "realm service scope" */
    char *token;
    int64_t expires; /* CLOCK_MONOTONIC seconds */
} reg_token;
#define REG_TOKEN_CACHE 16

struct sub_reg {
    CURL *curl;
    char *host; /* "host:port" as given */
    char *base; /* "https://host:port" or "http://host:port" */
    bool tls;   /* base is https */
    char *ca_file; /* extra trust anchors (PEM), or NULL */
    char *username;
    char *password;
    char *cred_source; /* where username/password came from, for messages */
    bool creds_files_read; /* the auth files were consulted (at the first 401) */
    long timeout_s;
    uint64_t max_blob;
    auth_mode auth;
    /* progress of blob bodies (x->report), the overall deadline, the stall window */
    sub_reg_bytes_fn progress;
    void *progress_ud;
    int64_t deadline_ms; /* CLOCK_MONOTONIC; 0 = none */
    long deadline_s;     /* as given, for messages */
    long stall_s;        /* below SUB_REG_LOW_SPEED bytes/s for this long: stalled */
    const char *token; /* AUTH_BEARER: borrowed from tokens[] */
    reg_token tokens[REG_TOKEN_CACHE];
};

typedef enum {
    ABORT_NONE = 0,
    ABORT_TOO_BIG, /* over the cap */
    ABORT_SIZE,    /* Content-Length differs from the expected size */
    ABORT_LONGER,  /* more bytes than expected */
    ABORT_WRITE,   /* local write failed (out_errno) */
    ABORT_DEADLINE, /* the overall deadline (sub_reg_set_deadline) passed */
} abort_reason;

typedef struct xfer {
    /* request */
    sub_reg *reg;       /* set by reg_perform */
    const char *method; /* GET HEAD PUT POST */
    bool report;        /* a blob body: progress reported, no total timeout (only the stall limit) */
    uint64_t reported;  /* last byte count reported */
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
    long timeout_used; /* CURLOPT_TIMEOUT of the attempt, 0 = none */
    char *ctype, *location, *docker_digest, *www_auth, *link;
    char errbuf[CURL_ERROR_SIZE];
    /* redirects (blob GETs only): where the last hop went; url stays the original */
    bool follow_redirects;
    char *hop_url;
    bool token_fetched; /* auth.c fetched a token for this request */
} xfer;

/* ---- transport.c ---- */
void xfer_init(xfer *x, const char *method);
void xfer_done(xfer *x);
/* curl's header callback: one header line (with its CRLF) of the response to
 * the request in `ud` (an xfer). A status line resets the response fields;
 * the blank line ends a response (and refuses an announced oversize body).
 * Exposed for the fuzz harnesses (tests/fuzz). */
size_t reg_on_header(char *buf, size_t sz, size_t nm, void *ud);
bool reg_ok2xx(long status);
/* Sends x's request (with the retry rules of transport.c and the 401
 * challenge answered through auth.c); on 0, x->status holds the answer. */
int reg_perform(sub_reg *r, xfer *x, sub_err *e);
/* "HTTP 404: MANIFEST_UNKNOWN: ..." from the registry's error body into e's detail. */
void reg_http_detail(xfer *x, sub_err *e);
/* An unexpected HTTP status: errno from the status, message naming the request. */
int reg_status_error(sub_reg *r, xfer *x, sub_err *e);
char *reg_url(sub_reg *r, const char *fmt, ...) _printf_(2, 3);
int reg_check_repo(const char *repo, sub_err *e);
int reg_check_ref(const char *ref, bool *is_digest, sub_err *e);
int reg_check_sha256(const char *digest, sub_err *e);
/* The validated Docker-Content-Digest header of x, or *out = NULL when absent. */
int reg_header_digest(sub_reg *r, xfer *x, const char **out, sub_err *e);
/* An upload or next-page URL from a Location/Link value; it must stay on r's host:port. */
int reg_resolve_location(sub_reg *r, const char *repo, const char *loc, char **out, sub_err *e);
/* The network policy for one request to url (a registry, token realm or redirect
 * target): https, or plain http only to loopback or a host listed in
 * $SUBSTRATE_INSECURE_REGISTRIES; the CA file; proxies from the environment
 * except for loopback hosts. Sets the curl options on c, or refuses. */
int reg_net_opts(sub_reg *r, CURL *c, const char *url, sub_err *e);
/* Is "host:port" (or its host) listed in $SUBSTRATE_INSECURE_REGISTRIES? */
bool reg_insecure_listed(const char *addr);
/* A TLS failure in words (certificate, handshake), or NULL for other curl codes. */
const char *reg_tls_problem(CURLcode cc);

/* ---- auth.c ---- */
typedef struct challenge {
    char scheme[16];
    char realm[512];
    char service[512];
    char scope[512];
    char error[64]; /* e.g. "insufficient_scope", "invalid_token" */
} challenge;

/* Parses a WWW-Authenticate value (the first challenge); never fails. */
void reg_parse_challenge(const char *h, challenge *c);
/* A 401 arrived. *retry = true when the request should be sent again with
 * the authentication now configured on r. */
int reg_handle_challenge(sub_reg *r, xfer *x, bool *retry, sub_err *e);
/* A scope parameter with its actions and scopes sorted (caller frees). */
char *reg_scope_canonical(const char *scope);
/* The bearer token cache: the live entry for key ("realm service scope") or
 * NULL (an expired one is dropped); store a token (taken) for ttl seconds,
 * renewed a little early; free every entry. */
reg_token *reg_token_find(sub_reg *r, const char *key);
reg_token *reg_token_put(sub_reg *r, const char *key, char *token, long ttl);
void reg_tokens_free(sub_reg *r);
/* A token response ({"token"|"access_token", "expires_in"}): *token (caller
 * frees) and its lifetime in seconds (60 when not given). */
int reg_parse_token_response(const char *body, size_t len, char **token, long *expires_in,
                             sub_err *e);

/* ---- credentials.c ---- */
/* Credentials for "host:port": SUBSTRATE_REGISTRY_USER/PASSWORD (_env), the
 * auth files (see registry.h; _files), or both in that order (_find). 0 with
 * *user NULL when none; *source names where they came from. Caller frees all
 * three. The files are read only when a registry asks for credentials, so a
 * broken ~/.docker/config.json does not stop anonymous pulls. */
int reg_creds_env(char **user, char **pass, char **source, sub_err *e);
int reg_creds_files(const char *host, char **user, char **pass, char **source, sub_err *e);
int reg_creds_find(const char *host, char **user, char **pass, char **source, sub_err *e);

/* ---- manifest.c ---- */
/* The target of a Link header with rel="next", or NULL (caller frees). */
char *reg_next_link(const char *link);
