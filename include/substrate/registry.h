/* OCI distribution-API client over libcurl, for the local registry and for
 * remote ones (Harbor, cloud registries, a cluster-local registry).
 *
 * Integrity: every manifest and blob is hashed while it streams; content whose
 * digest differs from the one asked for (or the one the registry announced)
 * is an error (-EILSEQ, exit class "check") and is never returned or kept.
 * Sizes are capped.
 *
 * Transport (one rule): a loopback registry (127.0.0.0/8, localhost, [::1])
 * speaks plain http unless $SUBSTRATE_REGISTRY_TLS=1 (or opts.tls) asks for
 * https; any other registry speaks https, with the certificate verified
 * against the system CAs plus $SUBSTRATE_CA_FILE (opts.ca_file), unless its
 * host:port (or host) is listed in $SUBSTRATE_INSECURE_REGISTRIES
 * (comma-separated), which makes it plain http. The same rule applies to a
 * token realm and to a blob redirect target: https, or http only to loopback
 * or a listed host. Proxies come from http_proxy / https_proxy / no_proxy
 * (libcurl's rules), except that a loopback host never goes through a proxy.
 *
 * Authentication: anonymous until the registry answers 401. A Basic challenge
 * is answered with the configured credentials; a Bearer challenge
 * (realm, service, scope) with a token fetched from the realm (anonymously,
 * or with the credentials as HTTP basic), cached per scope until it expires
 * (expires_in, 60 s by default). Credentials: opts.username/password, else
 * $SUBSTRATE_REGISTRY_USER/PASSWORD, else the first auth file with an entry
 * for the registry's host:port: $REGISTRY_AUTH_FILE (or, when unset,
 * $SUBSTRATE_STATE/auth.json), ${XDG_RUNTIME_DIR}/containers/auth.json,
 * ~/.docker/config.json ({"auths": {"host:port": {"auth": base64(user:pass)}}}).
 *
 * Redirects: only blob GETs follow them (307/302/303/301/308, at most
 * SUB_REG_MAX_REDIRECTS hops; registries serve blobs from object storage, and
 * the bytes are digest-checked anyway); credentials are never sent to
 * another host:port. Manifests, uploads and everything else do not follow
 * redirects, and an upload Location that names another host:port is refused.
 *
 * Errors: HTTP failures set e->http_status and put the registry's error JSON
 * (errors[].code: message) in e->detail. A refused connection says the
 * registry is not reachable and to run `substrate registry start`; a
 * certificate that does not verify is an environment error (exit 3) naming
 * SUBSTRATE_CA_FILE.
 *
 * Ownership: sub_reg is opaque and freed with sub_reg_free(); strings returned
 * through char** are the caller's to free(). */
#pragma once
#include "digest.h"
#include "error.h"
#include "manifest.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUB_REG_MAX_BLOB ((uint64_t)8 << 30)
/* SUB_REG_MAX_MANIFEST and the SUB_MT_* media types live in manifest.h. */

typedef struct sub_reg sub_reg;

#define SUB_REG_MAX_REDIRECTS 5

typedef struct sub_reg_opts {
    const char *host;     /* "host:port" (required) */
    const char *username; /* NULL = $SUBSTRATE_REGISTRY_USER, then the auth files */
    const char *password; /* NULL = $SUBSTRATE_REGISTRY_PASSWORD, then the auth files */
    long timeout_s;       /* per-request total timeout, except blob bodies (they are bound by
                             the stall limit and the deadline only); 0 = 300 */
    uint64_t max_blob;    /* 0 = SUB_REG_MAX_BLOB */
    long stall_s;         /* a transfer slower than SUB_REG_LOW_SPEED bytes/s for this many
                             seconds is stopped (-ETIMEDOUT, "stalled"); 0 = $SUBSTRATE_STALL_SECONDS,
                             or SUB_REG_STALL_S */
    const char *ca_file;  /* PEM CA certificates trusted besides the system's;
                             NULL = $SUBSTRATE_CA_FILE */
    bool tls;             /* https even on loopback; false = $SUBSTRATE_REGISTRY_TLS=1 */
} sub_reg_opts;

#define SUB_REG_LOW_SPEED 1024 /* bytes/s */
#define SUB_REG_STALL_S 30

/* Chooses http or https by the rule above. Refuses a user without a
 * password, an unreadable CA file, a malformed auth file, a bad
 * SUBSTRATE_REGISTRY_TLS value and a bad SUBSTRATE_STALL_SECONDS. Nothing is
 * sent yet. */
int sub_reg_new(const sub_reg_opts *o, sub_reg **out, sub_err *e);
void sub_reg_free(sub_reg *r);
static inline void sub_reg_freep(sub_reg **r) {
    if (*r) sub_reg_free(*r);
}
#define _cleanup_reg_ _cleanup_(sub_reg_freep)

/* Progress of blob bodies (blob GETs into a file, blob PUTs): fn(ud, done,
 * total) as bytes move (total 0 when unknown). Called from inside the
 * transfer: keep it short. NULL stops it. */
typedef void (*sub_reg_bytes_fn)(void *ud, uint64_t done, uint64_t total);
void sub_reg_set_progress(sub_reg *r, sub_reg_bytes_fn fn, void *ud);

/* An overall deadline, `seconds` from now, for every request that follows
 * (0: none). A request running when it passes is stopped; later ones are not
 * sent (-ETIMEDOUT). */
void sub_reg_set_deadline(sub_reg *r, long seconds);

/* The "host:port" this client talks to (borrowed). */
const char *sub_reg_host(const sub_reg *r);
/* "https" or "http". */
const char *sub_reg_scheme(const sub_reg *r);
/* Were credentials sent (as Basic, or to get a token) and accepted so far? */
bool sub_reg_credentials_used(const sub_reg *r);

/* GET /v2/: 0 when the registry answers as a distribution registry. */
int sub_reg_ping(sub_reg *r, sub_err *e);

/* HEAD a manifest by tag or digest. Returns 1 and fills the outputs when it
 * exists, 0 when the registry says it does not (404), < 0 on error.
 * digest_out gets the Docker-Content-Digest header. Any output may be NULL. */
int sub_reg_manifest_head(sub_reg *r, const char *repo, const char *ref,
                          char digest_out[SUB_DIGEST_MAX], char **media_type, uint64_t *size,
                          sub_err *e);

/* GET a manifest (Accept: OCI manifest/index and Docker v2 manifest/list).
 * When ref is a digest the body must hash to it; when ref is a tag the body
 * must hash to the Docker-Content-Digest the registry sent (if any).
 * Returns 0, or -ENOENT (error recorded) when the registry has no such manifest. */
int sub_reg_manifest_get(sub_reg *r, const char *repo, const char *ref, char **body,
                         size_t *len, char **media_type, char digest_out[SUB_DIGEST_MAX],
                         sub_err *e);

/* PUT a manifest under ref (tag or digest). The registry's returned digest
 * must equal sha256(body); digest_out (may be NULL) receives it. */
int sub_reg_manifest_put(sub_reg *r, const char *repo, const char *ref, const char *media_type,
                         const void *body, size_t len, char digest_out[SUB_DIGEST_MAX], sub_err *e);

/* HEAD a blob: 1 exists (size filled if non-NULL), 0 absent, < 0 error. */
int sub_reg_blob_exists(sub_reg *r, const char *repo, const char *digest, uint64_t *size,
                        sub_err *e);

/* GET a blob into `path`: written to a temp file beside it while hashing,
 * renamed into place only when the digest (and expected_size, if non-zero)
 * match. On any failure nothing is left at path (nor the temp file). */
int sub_reg_blob_get_file(sub_reg *r, const char *repo, const char *digest,
                          uint64_t expected_size, const char *path, sub_err *e);
/* The same, with flags: SUB_REG_FETCH_NO_DIR_SYNC leaves the fsync of path's
 * directory to the caller, who syncs it once after many blobs (the file
 * itself is still fsynced before its rename). */
#define SUB_REG_FETCH_NO_DIR_SYNC 1u
int sub_reg_blob_fetch(sub_reg *r, const char *repo, const char *digest, uint64_t expected_size,
                       const char *path, unsigned flags, sub_err *e);
/* GET a small blob into memory (at most max bytes), digest-checked. */
int sub_reg_blob_get_buf(sub_reg *r, const char *repo, const char *digest, size_t max,
                         char **out, size_t *len, sub_err *e);

/* Upload a blob (POST then monolithic PUT ?digest=), skipping it when the
 * registry already has it. The data is hashed as it is sent and must match. */
int sub_reg_blob_put_file(sub_reg *r, const char *repo, const char *digest, const char *path,
                          sub_err *e);
int sub_reg_blob_put_buf(sub_reg *r, const char *repo, const char *digest, const void *data,
                         size_t len, sub_err *e);

/* Split "host:port", "[v6]:port" or "host" into a host (no brackets; caller
 * frees) and a port (0 when absent). */
int sub_reg_addr_split(const char *addr, char **host, int *port, sub_err *e);
/* Is the host part of addr loopback: 127.0.0.0/8, "localhost" or [::1]? */
bool sub_reg_addr_is_loopback(const char *addr);

/* GET /v2/<repo>/tags/list -> NULL-terminated vector (caller strv_free()s). */
int sub_reg_tags(sub_reg *r, const char *repo, char ***tags, sub_err *e);

/* ---- stored credentials (substrate login / logout) ---- */

/* The file login writes and logout edits: $REGISTRY_AUTH_FILE, else
 * $SUBSTRATE_STATE/auth.json. Caller frees. */
char *sub_reg_auth_file(void);
/* Credentials for host ("host:port") in an auth.json / docker config.json
 * document. 1 found (*user, *pass set; caller frees), 0 no entry,
 * < 0 malformed (what names the file in the message). Keys may carry a
 * scheme and a path ("https://host:port/v1/"); the entry's "auth" is
 * base64(user:password), or "username" and "password" fields. */
int sub_reg_auth_parse(const char *json, size_t len, const char *what, const char *host,
                       char **user, char **pass, sub_err *e);
/* Store (replacing) host's credentials in sub_reg_auth_file(), mode 0600,
 * keeping every other entry and key. *path_out (may be NULL) gets the file. */
int sub_reg_auth_store(const char *host, const char *user, const char *pass, char **path_out,
                       sub_err *e);
/* Remove host's entry: 1 removed, 0 there was none. */
int sub_reg_auth_remove(const char *host, char **path_out, sub_err *e);
