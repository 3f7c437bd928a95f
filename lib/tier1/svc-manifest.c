/* Tier-1 service manifests: YAML -> sub_svc_manifest, and its canonical JSON
 * form both ways.
 *
 * libyaml's event parser builds a small tree first (each node keeps its line
 * and column), refusing what we never accept before any field is read:
 * anchors and aliases, tags, a second document, a key that is not a string.
 * The fields are then read from the tree by name. Value checks that the JSON
 * form shares (names, the image, ports, probe URLs, ...) are "why" functions:
 * NULL when the value is fine, else a static phrase saying what is wrong. */
#include "substrate/svc-manifest.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/jobspec.h"
#include "substrate/json.h"
#include "substrate/strbuf.h"
#include "substrate/yamltree.h"
#include <arpa/inet.h>
#include <stdarg.h>
#include <string.h>

#define DURATION_MAX_MS (24u * 86400u * 1000u) /* 24 days: fits a signed 32-bit timeout */
#define DURATION_HINT "write 500ms, 2s, 1m, 1h, 1d or a whole number of seconds"

/* ---- names --------------------------------------------------------------------------------- */

static const char *const network_names[] = {"private", "none", "host"};
static const char *const restart_names[] = {"always", "on-failure", "never"};
static const char *const drift_names[] = {"flag", "halt"};
static const char *const runtime_names[] = {"runc", "runsc", "crun"};
static const char *const probe_names[] = {"none", "http", "tcp", "exec"};
static const char *const policy_names[] = {"exact", "repo-prefix", "any-repo"};

/* capabilities(7), in kernel order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40) */
static const char *const cap_names[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};
_Static_assert(ARRAY_SIZE(cap_names) == 41, "the 41 Linux capabilities");

const char *sub_svc_network_str(sub_svc_network n) {
    return (unsigned)n < ARRAY_SIZE(network_names) ? network_names[n] : "?";
}
const char *sub_svc_runtime_str(sub_svc_runtime r) {
    return (unsigned)r < ARRAY_SIZE(runtime_names) ? runtime_names[r] : "?";
}
const char *sub_svc_restart_str(sub_svc_restart r) {
    return (unsigned)r < ARRAY_SIZE(restart_names) ? restart_names[r] : "?";
}

/* ---- the struct ---------------------------------------------------------------------------- */

static void probe_defaults(sub_probe_spec *p) {
    memset(p, 0, sizeof *p);
    p->interval_ms = 2000;
    p->timeout_ms = 1000;
    p->failure_threshold = 3;
}

static void set_defaults(sub_svc_manifest *m) {
    memset(m, 0, sizeof *m);
    probe_defaults(&m->health);
    probe_defaults(&m->readiness);
    m->readiness.deadline_ms = 3 * 2000;
    m->backoff_initial_ms = 500;
    m->backoff_max_ms = 30000;
    m->stop_grace_ms = 10000;
    m->align_interval_ms = 60000;
    m->verify_max_age_ms = 86400000;
    m->escalate = (sub_svc_escalate){.max_timeout_s = 30, .max_memory_mb = 256, .max_vcpus = 1,
                                     .max_input = 1u << 20, .max_output = 1u << 20, .concurrency = 1,
                                     .queue = 4, .queue_wait_ms = 60000, .per_minute = 60};
}

static void probe_done(sub_probe_spec *p) {
    free(p->url);
    free(p->address);
    strv_free(p->exec);
    memset(p, 0, sizeof *p);
}

void sub_svc_manifest_done(sub_svc_manifest *m) {
    if (!m) return;
    free(m->path);
    free(m->dir);
    free(m->name);
    free(m->image);
    sub_ref_free(&m->ref);
    free(m->identity);
    strv_free(m->keys);
    strv_free(m->command);
    strv_free(m->args);
    strv_free(m->env);
    free(m->workdir);
    free(m->user);
    free(m->ports);
    probe_done(&m->health);
    probe_done(&m->readiness);
    strv_free(m->capabilities);
    free(m->escalate.image);
    sub_ref_free(&m->escalate.ref);
    strv_free(m->escalate.egress);
    memset(m, 0, sizeof *m);
}

/* ---- the YAML tree: lib/core/yamltree.c (shared with the golden VM spec) ---- */


/* "500ms", "2s", "1m", "1h", "1d", or whole seconds; at most 24 days. */
static const char *parse_duration(const char *s, uint32_t *ms) {
    if (!*s) return "is empty (" DURATION_HINT ")";
    if (*s == '-') return "must not be negative";
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > DURATION_MAX_MS) return "is too long (at most 24 days)";
    }
    if (p == s) return "is not a duration (" DURATION_HINT ")";
    uint64_t mul;
    if (!*p || streq(p, "s"))
        mul = 1000;
    else if (streq(p, "ms"))
        mul = 1;
    else if (streq(p, "m"))
        mul = 60000;
    else if (streq(p, "h"))
        mul = 3600000;
    else if (streq(p, "d"))
        mul = 86400000;
    else
        return "is not a duration (" DURATION_HINT ")";
    if (v > DURATION_MAX_MS / mul) return "is too long (at most 24 days)";
    *ms = (uint32_t)(v * mul);
    return NULL;
}

static int get_duration(sub_yctx *c, const sub_ynode *n, const char *field, uint32_t *out) {
    const char *s;
    int r = sub_yget_str(c, n, field, &s);
    if (r < 0) return r;
    const char *why = parse_duration(s, out);
    return why ? sub_ybad(c, n, field, "%s %s", sub_yshow(c, s), why) : 0;
}

static int get_strv(sub_yctx *c, const sub_ynode *n, const char *field, char ***out) {
    int r = sub_yget_seq(c, n, field);
    if (r < 0) return r;
    _cleanup_strv_ char **v = xcalloc(n->n + 1, sizeof *v);
    for (size_t i = 0; i < n->n; i++) {
        char f[96];
        const char *s;
        if ((r = sub_yget_str(c, n->kids[i], sub_yindex(f, sizeof f, field, i), &s)) < 0) return r;
        v[i] = xstrdup(s);
    }
    *out = TAKE_PTR(v);
    return 0;
}

/* ---- value checks shared with the JSON form ------------------------------------------------ */

static const char *why_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0) return "is empty";
    if (n > SUB_SVC_NAME_MAX) return "is longer than 63 characters";
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return "must start with a lowercase letter or digit ([a-z0-9][a-z0-9-]*)";
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return "may hold only lowercase letters, digits and '-' ([a-z0-9][a-z0-9-]*)";
    return NULL;
}

/* Parses s into ref: a registry, a repository and a sha256 digest, no tag. */
static int check_image_ref(sub_yctx *c, const sub_ynode *at, const char *field, const char *s, sub_ref *ref) {
    sub_err re = {0};
    sub_ref_free(ref);
    if (sub_ref_parse(s, NULL, ref, &re) < 0) return sub_ybad(c, at, field, "%s", re.msg);
    if (ref->tag && ref->digest)
        return sub_ybad(c, at, field,
                   "%s: a tag plus digest is ambiguous; give only REGISTRY/REPO@sha256:...",
                   sub_yshow(c, s));
    if (ref->tag)
        return sub_ybad(c, at, field,
                   "%s names a tag, but the manifest must pin the image by digest: write "
                   "REGISTRY/REPO@sha256:<64 hex>, with the digest build-sign-push printed or "
                   "that `substrate inspect %s` shows",
                   sub_yshow(c, s), s);
    if (!ref->digest)
        return sub_ybad(c, at, field,
                   "%s has no digest, but the manifest must pin the image by digest: write "
                   "REGISTRY/REPO@sha256:<64 hex>, with the digest build-sign-push printed or "
                   "that `substrate inspect REF` shows",
                   sub_yshow(c, s));
    if (!str_has_prefix(ref->digest, "sha256:") || sub_digest_validate(ref->digest, NULL) < 0)
        return sub_ybad(c, at, field, "%s: the digest must be sha256:<64 lowercase hex>", sub_yshow(c, s));
    return 0;
}

static int check_image(sub_yctx *c, const sub_ynode *at, const char *s, sub_svc_manifest *m) {
    return check_image_ref(c, at, "image", s, &m->ref);
}

/* A "registry/repository" without tag or digest. */
static const char *why_identity(const char *s) {
    sub_ref r = {0};
    if (sub_ref_parse(s, NULL, &r, NULL) < 0)
        return "is not a repository name (write REGISTRY/REPOSITORY, e.g. "
               "127.0.0.1:5000/substrate/hello)";
    bool extra = r.tag || r.digest;
    sub_ref_free(&r);
    return extra ? "must name a repository only, without a tag or digest" : NULL;
}

/* A prefix of repository names: a name (as above) or a registry alone. */
static const char *why_prefix(const char *s) {
    if (!*s) return "is empty";
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '@')
            return "must be REGISTRY or REGISTRY/PATH (no spaces, '@' or non-ASCII)";
    if (str_has_suffix(s, "/")) return "must not end in '/'";
    if (!strchr(s, '/')) return NULL; /* a registry alone */
    return why_identity(s);
}

static bool key_is_path(const char *s) { return strchr(s, '/') || str_has_suffix(s, ".pub"); }

/* Key ids as the trust store names them: sha256:<64 hex>, or the 64 hex alone. */
static const char *why_keyid(const char *s) {
    _cleanup_free_ char *d = str_has_prefix(s, "sha256:") ? xstrdup(s) : xasprintf("sha256:%s", s);
    if (sub_digest_validate(d, NULL) < 0 || !str_has_prefix(d, "sha256:"))
        return "is neither a key id (sha256:<64 hex>, as `substrate key list` shows) nor a path "
               "to a public key (FILE.pub, or a path with '/')";
    return NULL;
}

static bool env_name_ok(const char *s, size_t n) {
    if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static const char *why_env(const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq) return "is not KEY=VALUE";
    if (!env_name_ok(kv, (size_t)(eq - kv)))
        return "has a variable name that is not [A-Za-z_][A-Za-z0-9_]*";
    return NULL;
}

static const char *why_abs_path(const char *s) {
    if (s[0] != '/') return "must be an absolute path";
    for (const char *p = s; *p;) {
        while (*p == '/') p++;
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') return "must not contain \"..\"";
        p += n;
    }
    return NULL;
}

/* "uid" or "uid:gid", numbers up to 4294967294 ((uid_t)-1 means "unchanged" to the kernel). */
static const char *why_user(const char *s) {
    static const char *const msg = "must be numeric, \"UID\" or \"UID:GID\" (e.g. \"65534:65534\"; "
                                   "a name would need the image's /etc/passwd)";
    _cleanup_free_ char *u = xstrdup(s);
    char *g = strchr(u, ':');
    if (g) *g++ = 0;
    uint64_t v;
    if (sub_yparse_uint(u, 4294967294u, &v) || (g && sub_yparse_uint(g, 4294967294u, &v))) return msg;
    return NULL;
}

static const char *why_ipv4(const char *s) {
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1) return "is not a numeric IPv4 address";
    return NULL;
}

/* "PORT" 1-65535 of n bytes */
static bool port_ok(const char *s, size_t n, uint16_t *out) {
    char buf[8];
    uint64_t v;
    if (n == 0 || n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (sub_yparse_uint(buf, 65535, &v) || v == 0) return false;
    *out = (uint16_t)v;
    return true;
}

/* "IPV4:PORT" of n bytes */
static bool hostport_ok(const char *s, size_t n, char addr[64], uint16_t *port) {
    const char *colon = memchr(s, ':', n);
    if (!colon || (size_t)(colon - s) >= 64) return false;
    memcpy(addr, s, (size_t)(colon - s));
    addr[colon - s] = 0;
    return !why_ipv4(addr) && port_ok(colon + 1, n - (size_t)(colon - s) - 1, port);
}

static const char *why_tcp(const char *s) {
    char addr[64];
    uint16_t port;
    return hostport_ok(s, strlen(s), addr, &port) ? NULL
                                                  : "is not IPV4:PORT (e.g. \"127.0.0.1:8080\")";
}

static const char *why_http(const char *s) {
    static const char *const msg =
        "is not http://IPV4:PORT/PATH (e.g. \"http://127.0.0.1:8080/healthz\")";
    if (!str_has_prefix(s, "http://"))
        return str_has_prefix(s, "https://") ? "must be plain http:// (the probe runs beside the "
                                               "service, in its network namespace)"
                                             : msg;
    const char *host = s + strlen("http://");
    const char *path = strchr(host, '/');
    char addr[64];
    uint16_t port;
    if (!path || !hostport_ok(host, (size_t)(path - host), addr, &port)) return msg;
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '#')
            return "has a path with a space, '#', a control or non-ASCII character "
                   "(percent-encode it)";
    return NULL;
}

/* "HOSTADDR:HOSTPORT:CONTAINERPORT" or "HOSTPORT:CONTAINERPORT" (on 127.0.0.1) */
static const char *parse_port(const char *s, sub_svc_port *out) {
    static const char *const msg = "is not HOSTADDR:HOSTPORT:CONTAINERPORT or "
                                   "HOSTPORT:CONTAINERPORT (numeric IPv4, ports 1-65535)";
    const char *last = strrchr(s, ':');
    if (!last) return msg;
    memset(out, 0, sizeof *out);
    if (!port_ok(last + 1, strlen(last + 1), &out->container_port)) return msg;
    const char *first = strchr(s, ':');
    if (first == last) {
        snprintf(out->host_addr, sizeof out->host_addr, "127.0.0.1");
        return port_ok(s, (size_t)(last - s), &out->host_port) ? NULL : msg;
    }
    return hostport_ok(s, (size_t)(last - s), out->host_addr, &out->host_port) ? NULL : msg;
}

static int cap_index(const char *s) { return sub_yfind_name(s, cap_names, ARRAY_SIZE(cap_names)); }

static int bad_cap(sub_yctx *c, const sub_ynode *at, const char *field, const char *s) {
    /* "net_bind_service", "NET_BIND_SERVICE", "cap_net_bind_service" */
    _cleanup_free_ char *up = str_has_prefix(s, "CAP_") || str_has_prefix(s, "cap_")
                                  ? xstrdup(s)
                                  : xasprintf("CAP_%s", s);
    for (char *p = up; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    if (cap_index(up) >= 0)
        return sub_ybad(c, at, field, "%s is not a capability name as the kernel spells it; write %s",
                   sub_yshow(c, s), up);
    return sub_ybad(c, at, field,
               "%s is not a Linux capability (names as in capabilities(7), e.g. "
               "CAP_NET_BIND_SERVICE)",
               sub_yshow(c, s));
}

/* ---- whole-manifest checks (both forms) ---------------------------------------------------- */

/* Where the whole-manifest checks point (NULL in the JSON form). */
typedef struct locs {
    const sub_ynode *ports, *backoff;
} locs;

static int check_probe(sub_yctx *c, const sub_ynode *at, const char *field, const sub_probe_spec *p,
                       bool readiness) {
    char f[96];
    if (p->interval_ms == 0)
        return sub_ybad(c, at, sub_yfield(f, sizeof f, field, "interval"), "must be more than 0");
    if (p->timeout_ms == 0)
        return sub_ybad(c, at, sub_yfield(f, sizeof f, field, "timeout"), "must be more than 0");
    if (p->failure_threshold == 0)
        return sub_ybad(c, at, sub_yfield(f, sizeof f, field, "failure_threshold"),
                   "must be at least 1");
    if (readiness && p->deadline_ms == 0)
        return sub_ybad(c, at, sub_yfield(f, sizeof f, field, "deadline"), "must be more than 0");
    return 0;
}

static int check_whole(sub_yctx *c, const sub_svc_manifest *m, const locs *l) {
    if (m->nports && m->network == SUB_NET_NONE)
        return sub_ybad(c, l->ports, "ports",
                   "a service with network: none has no network to publish ports from (remove "
                   "ports, or use network: private)");
    uint8_t seen[65536 / 8] = {0};
    for (size_t i = 0; i < m->nports; i++) {
        const sub_svc_port *p = &m->ports[i];
        const sub_ynode *at = l->ports && i < l->ports->n ? l->ports->kids[i] : NULL;
        char f[32];
        sub_yindex(f, sizeof f, "ports", i);
        if (seen[p->host_port / 8] & (1u << (p->host_port % 8)))
            return sub_ybad(c, at, f, "host port %u is published twice", p->host_port);
        seen[p->host_port / 8] |= (uint8_t)(1u << (p->host_port % 8));
        if (m->network == SUB_NET_HOST && p->host_port != p->container_port)
            return sub_ybad(c, at, f,
                       "with network: host the service listens on the host itself, so the host "
                       "port (%u) and the container port (%u) must be the same",
                       p->host_port, p->container_port);
    }
    if (m->backoff_initial_ms == 0)
        return sub_ybad(c, l->backoff, "backoff.initial", "must be more than 0");
    if (m->backoff_initial_ms > m->backoff_max_ms)
        return sub_ybad(c, l->backoff, "backoff",
                   "initial (%ums) is larger than max (%ums): raise max or lower initial",
                   m->backoff_initial_ms, m->backoff_max_ms);
    return 0;
}

/* ---- the YAML fields ----------------------------------------------------------------------- */

enum {
    K_NAME,
    K_IMAGE,
    K_IDENTITY,
    K_REPO_PREFIX,
    K_ANY_REPO,
    K_KEYS,
    K_COMMAND,
    K_ARGS,
    K_ENV,
    K_WORKDIR,
    K_USER,
    K_NETWORK,
    K_PORTS,
    K_HEALTH,
    K_READINESS,
    K_RESTART,
    K_BACKOFF,
    K_STOP_GRACE,
    K_ON_DRIFT,
    K_ALIGN_INTERVAL,
    K_DEEP_ALIGN_INTERVAL,
    K_VERIFY_MAX_AGE,
    K_RESOURCES,
    K_RUNTIME,
    K_CAPABILITIES,
    K_ESCALATE,
    K_MAX
};
static const char *const top_keys[K_MAX] = {
    "name",           "image",          "identity",
    "repo_prefix",    "any_repo",       "keys",
    "command",        "args",           "env",
    "workdir",        "user",           "network",
    "ports",          "health",         "readiness",
    "restart",        "backoff",        "stop_grace",
    "on_drift",       "align_interval", "deep_align_interval",
    "verify_max_age", "resources",      "runtime",
    "capabilities",   "escalate",
};

enum {
    P_HTTP,
    P_TCP,
    P_EXEC,
    P_INTERVAL,
    P_TIMEOUT,
    P_START_PERIOD,
    P_THRESHOLD,
    P_DEADLINE,
    P_MAX
};
static const char *const probe_keys[P_MAX] = {
    "http", "tcp", "exec", "interval", "timeout", "start_period", "failure_threshold", "deadline",
};

static int parse_probe(sub_yctx *c, const sub_ynode *v, const char *field, bool readiness,
                       sub_probe_spec *p) {
    const sub_ynode *vals[P_MAX];
    /* health has no deadline: leaving it out of the known keys refuses it */
    int r = sub_yread_map(c, v, field, probe_keys, readiness ? P_MAX : P_DEADLINE, vals);
    if (r < 0) return r;
    if (!readiness) vals[P_DEADLINE] = NULL;
    const sub_ynode *kind = NULL;
    char f[96];
    for (int k = P_HTTP; k <= P_EXEC; k++) {
        if (!vals[k]) continue;
        if (kind)
            return sub_ybad(c, vals[k], sub_yfield(f, sizeof f, field, probe_keys[k]),
                       "give only one of http, tcp or exec");
        kind = vals[k];
        p->kind = (sub_probe_kind)(SUB_PROBE_HTTP + (k - P_HTTP));
    }
    if (!kind) return sub_ybad(c, v, field, "give one of http, tcp or exec (what to probe)");
    const char *s, *why;
    if (vals[P_HTTP]) {
        sub_yfield(f, sizeof f, field, "http");
        if ((r = sub_yget_str(c, vals[P_HTTP], f, &s)) < 0) return r;
        if ((why = why_http(s))) return sub_ybad(c, vals[P_HTTP], f, "%s %s", sub_yshow(c, s), why);
        p->url = xstrdup(s);
    } else if (vals[P_TCP]) {
        sub_yfield(f, sizeof f, field, "tcp");
        if ((r = sub_yget_str(c, vals[P_TCP], f, &s)) < 0) return r;
        if ((why = why_tcp(s))) return sub_ybad(c, vals[P_TCP], f, "%s %s", sub_yshow(c, s), why);
        p->address = xstrdup(s);
    } else {
        sub_yfield(f, sizeof f, field, "exec");
        if ((r = get_strv(c, vals[P_EXEC], f, &p->exec)) < 0) return r;
        if (!p->exec[0] || !p->exec[0][0])
            return sub_ybad(c, vals[P_EXEC], f, "needs a program to run (e.g. [\"/bin/check\"])");
    }
    uint32_t *durs[] = {[P_INTERVAL] = &p->interval_ms,
                        [P_TIMEOUT] = &p->timeout_ms,
                        [P_START_PERIOD] = &p->start_period_ms,
                        [P_DEADLINE] = &p->deadline_ms};
    for (int k = P_INTERVAL; k < P_MAX; k++) {
        if (k == P_THRESHOLD || !vals[k]) continue;
        if ((r = get_duration(c, vals[k], sub_yfield(f, sizeof f, field, probe_keys[k]), durs[k])) <
            0)
            return r;
    }
    if (vals[P_THRESHOLD]) {
        uint64_t t;
        sub_yfield(f, sizeof f, field, "failure_threshold");
        if ((r = sub_yget_uint(c, vals[P_THRESHOLD], f, 1, 1000000, &t)) < 0) return r;
        p->failure_threshold = (uint32_t)t;
    }
    if (readiness && !vals[P_DEADLINE]) {
        uint64_t d = (uint64_t)p->start_period_ms + (uint64_t)p->failure_threshold * p->interval_ms;
        if (d > DURATION_MAX_MS)
            return sub_ybad(c, v, field,
                       "the default deadline (start_period + failure_threshold x interval) is "
                       "over 24 days: give a deadline");
        p->deadline_ms = (uint32_t)d;
    }
    return check_probe(c, v, field, p, readiness);
}

typedef struct envent {
    const char *kv;
    size_t klen;
    const sub_ynode *at;
} envent;

static int cmp_envent(const void *a, const void *b) {
    const envent *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int d = memcmp(x->kv, y->kv, n);
    if (d) return d;
    if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
    return x->at->line < y->at->line ? -1 : x->at->line > y->at->line;
}

/* env: {KEY: VALUE} or ["KEY=VALUE"]; stored sorted by name, a name given twice refused. */
static int parse_env(sub_yctx *c, const sub_ynode *v, sub_svc_manifest *m) {
    if (v->type == SUB_Y_SCALAR)
        return sub_ybad(c, v, "env",
                   "expected a mapping (KEY: VALUE) or a list (\"KEY=VALUE\"), "
                   "found %s",
                   sub_ykind(v));
    bool map = v->type == SUB_Y_MAP;
    size_t n = map ? v->n / 2 : v->n;
    _cleanup_strv_ char **env = xcalloc(n + 1, sizeof *env);
    _cleanup_free_ envent *ents = xcalloc(n ? n : 1, sizeof *ents);
    int r;
    for (size_t i = 0; i < n; i++) {
        char f[160];
        const char *s, *why;
        if (map) {
            const sub_ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
            sub_ykey_field(f, sizeof f, "env", k->value);
            if (!env_name_ok(k->value, strlen(k->value)))
                return sub_ybad(c, k, f, "%s is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                           sub_yshow(c, k->value));
            if (val->type != SUB_Y_SCALAR || sub_ynull(val))
                return sub_ybad(c, val, f, "expected a string, found %s (write \"\" for an empty value)",
                           sub_ykind(val));
            env[i] = xasprintf("%s=%s", k->value, val->value);
            ents[i] = (envent){env[i], strlen(k->value), k};
        } else {
            sub_yindex(f, sizeof f, "env", i);
            if ((r = sub_yget_str(c, v->kids[i], f, &s)) < 0) return r;
            if ((why = why_env(s))) return sub_ybad(c, v->kids[i], f, "%s %s", sub_yshow(c, s), why);
            env[i] = xstrdup(s);
            ents[i] = (envent){env[i], (size_t)(strchr(s, '=') - s), v->kids[i]};
        }
    }
    qsort(ents, n, sizeof *ents, cmp_envent);
    for (size_t i = 0; i + 1 < n; i++)
        if (ents[i].klen == ents[i + 1].klen && !memcmp(ents[i].kv, ents[i + 1].kv, ents[i].klen))
            return sub_ybad(c, ents[i + 1].at, "env", "%.*s is set twice (first at line %zu)",
                       (int)ents[i].klen, ents[i].kv, ents[i].at->line);
    m->env = xcalloc(n + 1, sizeof *m->env);
    for (size_t i = 0; i < n; i++) m->env[i] = xstrdup(ents[i].kv);
    return 0;
}

/* dir + "/" + p without "." or empty components (".." kept: only the kernel knows where it
 * leads through symlinks). */
static char *path_clean_join(const char *dir, const char *p) {
    _cleanup_free_ char *full = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", dir, p);
    sub_buf b = SUB_BUF_INIT;
    for (const char *q = full; *q;) {
        while (*q == '/') q++;
        size_t n = strcspn(q, "/");
        if (n && !(n == 1 && q[0] == '.')) {
            sub_buf_putc(&b, '/');
            sub_buf_append(&b, q, n);
        }
        q += n;
    }
    if (!b.len) sub_buf_putc(&b, '/');
    return sub_buf_detach(&b, NULL);
}

static int parse_keys(sub_yctx *c, const sub_ynode *v, sub_svc_manifest *m) {
    _cleanup_strv_ char **keys = NULL;
    int r = get_strv(c, v, "keys", &keys);
    if (r < 0) return r;
    if (!keys[0])
        return sub_ybad(c, v, "keys",
                   "an empty list trusts no key; leave keys out to use the whole "
                   "trust store");
    for (size_t i = 0; keys[i]; i++) {
        char f[32];
        sub_yindex(f, sizeof f, "keys", i);
        if (key_is_path(keys[i])) {
            char *abs = path_clean_join(m->dir, keys[i]);
            free(keys[i]);
            keys[i] = abs;
        } else {
            const char *why = why_keyid(keys[i]);
            if (why) return sub_ybad(c, v->kids[i], f, "%s %s", sub_yshow(c, keys[i]), why);
        }
    }
    m->nkeys = strv_len(keys);
    m->keys = TAKE_PTR(keys);
    return 0;
}

static int parse_ports(sub_yctx *c, const sub_ynode *v, sub_svc_manifest *m) {
    int r = sub_yget_seq(c, v, "ports");
    if (r < 0) return r;
    m->ports = xcalloc(v->n ? v->n : 1, sizeof *m->ports);
    for (size_t i = 0; i < v->n; i++) {
        char f[32];
        const char *s, *why;
        sub_yindex(f, sizeof f, "ports", i);
        if ((r = sub_yget_str(c, v->kids[i], f, &s)) < 0) return r;
        if ((why = parse_port(s, &m->ports[i])))
            return sub_ybad(c, v->kids[i], f, "%s %s", sub_yshow(c, s), why);
        m->nports++;
    }
    return 0;
}

static int parse_caps(sub_yctx *c, const sub_ynode *v, sub_svc_manifest *m) {
    int r = get_strv(c, v, "capabilities", &m->capabilities);
    if (r < 0) return r;
    uint64_t seen = 0;
    for (size_t i = 0; m->capabilities[i]; i++) {
        char f[48];
        sub_yindex(f, sizeof f, "capabilities", i);
        int k = cap_index(m->capabilities[i]);
        if (k < 0) return bad_cap(c, v->kids[i], f, m->capabilities[i]);
        if (seen & (UINT64_C(1) << k))
            return sub_ybad(c, v->kids[i], f, "%s is listed twice", m->capabilities[i]);
        seen |= UINT64_C(1) << k;
    }
    return 0;
}


/* "0.5" / "2" (CPUs, at most 3 decimals) or "500m" (thousandths) -> millis */
static const char *parse_cpu(const char *s, uint32_t *out) {
    static const char *const msg = "is not a CPU amount (write CPUs as \"0.5\" or \"2\", or "
                                   "thousandths as \"500m\")";
    if (*s == '-') return "must not be negative";
    const char *p = s;
    uint64_t whole = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > UINT32_MAX) return "is too large";
    }
    if (p == s) return msg;
    if (streq(p, "m")) {
        *out = (uint32_t)whole;
        return NULL;
    }
    uint64_t frac = 0;
    if (*p == '.') {
        const char *f = ++p;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (p - f >= 3) return "is finer than a thousandth of a CPU (1m)";
            frac = frac * 10 + (uint64_t)(*p - '0');
        }
        if (p == f) return msg;
        for (ptrdiff_t k = p - f; k < 3; k++) frac *= 10;
    }
    if (*p) return msg;
    if (whole * 1000 + frac > UINT32_MAX) return "is too large";
    *out = (uint32_t)(whole * 1000 + frac);
    return NULL;
}

enum { R_MEMORY, R_PIDS, R_CPU, R_MAX };
static const char *const res_keys[R_MAX] = {"memory", "pids", "cpu"};

static int parse_resources(sub_yctx *c, const sub_ynode *v, sub_svc_manifest *m) {
    const sub_ynode *vals[R_MAX];
    int r = sub_yread_map(c, v, "resources", res_keys, R_MAX, vals);
    if (r < 0) return r;
    const char *s, *why;
    if (vals[R_MEMORY]) {
        if ((r = sub_yget_str(c, vals[R_MEMORY], "resources.memory", &s)) < 0) return r;
        if ((why = sub_parse_size(s, &m->memory_bytes)))
            return sub_ybad(c, vals[R_MEMORY], "resources.memory", "%s %s", sub_yshow(c, s), why);
    }
    if (vals[R_PIDS]) {
        uint64_t n;
        if ((r = sub_yget_uint(c, vals[R_PIDS], "resources.pids", 0, UINT32_MAX, &n)) < 0) return r;
        m->pids = (uint32_t)n;
    }
    if (vals[R_CPU]) {
        if ((r = sub_yget_str(c, vals[R_CPU], "resources.cpu", &s)) < 0) return r;
        if ((why = parse_cpu(s, &m->cpu_millis)))
            return sub_ybad(c, vals[R_CPU], "resources.cpu", "%s %s", sub_yshow(c, s), why);
    }
    return 0;
}

/* ---- escalate ---- */
enum {
    E_IMAGE, E_EGRESS, E_MAX_TIMEOUT, E_MAX_MEMORY, E_MAX_VCPUS, E_MAX_INPUT, E_MAX_OUTPUT,
    E_CONCURRENCY, E_QUEUE, E_QUEUE_WAIT, E_PER_MINUTE, E_MAX
};
static const char *const esc_keys[E_MAX] = {
    "image", "egress", "max_timeout", "max_memory", "max_vcpus", "max_input", "max_output",
    "concurrency", "queue", "queue_wait", "per_minute",
};

/* The limits, checked alike for the YAML and the JSON form; at (may be NULL)
 * gives each field's place. */
static int check_escalate(sub_yctx *c, const sub_ynode *const *at, const sub_svc_escalate *x) {
#define AT(k) (at ? at[k] : NULL)
    uint32_t cap = sub_job_timeout_max();
    if (x->max_timeout_s < 1 || x->max_timeout_s > cap)
        return sub_ybad(c, AT(E_MAX_TIMEOUT), "escalate.max_timeout",
                   "%us is outside 1s..%us (the host's cap on job timeouts, $SUBSTRATE_JOB_TIMEOUT_MAX)",
                   x->max_timeout_s, cap);
    if (x->max_memory_mb < 128 || x->max_memory_mb > 16384)
        return sub_ybad(c, AT(E_MAX_MEMORY), "escalate.max_memory",
                   "%u MiB is outside 128Mi..16Gi (a microVM's kernel alone takes 66 MB)", x->max_memory_mb);
    if (x->max_vcpus < 1 || x->max_vcpus > 16)
        return sub_ybad(c, AT(E_MAX_VCPUS), "escalate.max_vcpus", "%u is outside 1..16", x->max_vcpus);
    if (x->max_input > SUB_JOB_INPUTS_MAX)
        return sub_ybad(c, AT(E_MAX_INPUT), "escalate.max_input", "is more than 4Mi (what a job may carry in)");
    if (x->max_output > (64u << 20))
        return sub_ybad(c, AT(E_MAX_OUTPUT), "escalate.max_output", "is more than 64Mi");
    if (x->concurrency < 1 || x->concurrency > 64)
        return sub_ybad(c, AT(E_CONCURRENCY), "escalate.concurrency", "%u is outside 1..64", x->concurrency);
    if (x->queue > 1024) return sub_ybad(c, AT(E_QUEUE), "escalate.queue", "%u is more than 1024", x->queue);
    if (x->per_minute < 1 || x->per_minute > 100000)
        return sub_ybad(c, AT(E_PER_MINUTE), "escalate.per_minute", "%u is outside 1..100000", x->per_minute);
    size_t n = strv_len(x->egress);
    if (n > SUB_ESC_EGRESS_MAX)
        return sub_ybad(c, AT(E_EGRESS), "escalate.egress", "lists %zu destinations; at most %d", n, SUB_ESC_EGRESS_MAX);
    for (size_t i = 0; i < n; i++) {
        char f[48];
        sub_yindex(f, sizeof f, "escalate.egress", i);
        const sub_ynode *a = AT(E_EGRESS) && AT(E_EGRESS)->type == SUB_Y_SEQ && i < AT(E_EGRESS)->n ? AT(E_EGRESS)->kids[i] : NULL;
        if (why_tcp(x->egress[i]))
            return sub_ybad(c, a, f, "%s is not IPV4:PORT (a numeric destination a job may be allowed to reach, "
                       "e.g. \"127.0.0.1:8443\")", sub_yshow(c, x->egress[i]));
        for (size_t k = 0; k < i; k++)
            if (streq(x->egress[k], x->egress[i])) return sub_ybad(c, a, f, "%s is listed twice", sub_yshow(c, x->egress[i]));
    }
    return 0;
#undef AT
}

static int parse_escalate(sub_yctx *c, const sub_ynode *v, sub_svc_manifest *m) {
    const sub_ynode *vals[E_MAX];
    sub_svc_escalate *x = &m->escalate;
    int r = sub_yread_map(c, v, "escalate", esc_keys, E_MAX, vals);
    if (r < 0) return r;
    const char *s, *why;
    if (!vals[E_IMAGE])
        return sub_ybad(c, v, "escalate.image",
                   "missing: the job image escalated jobs run, pinned by digest (the service cannot "
                   "choose another): image: REGISTRY/REPO@sha256:<64 hex>");
    if ((r = sub_yget_str(c, vals[E_IMAGE], "escalate.image", &s)) < 0) return r;
    if ((r = check_image_ref(c, vals[E_IMAGE], "escalate.image", s, &x->ref)) < 0) return r;
    x->image = xstrdup(s);
    if (vals[E_EGRESS]) {
        if ((r = get_strv(c, vals[E_EGRESS], "escalate.egress", &x->egress)) < 0) return r;
        if (x->egress && !x->egress[0]) {
        strv_free(x->egress);
        x->egress = NULL;
    }
    }
    uint32_t ms;
    if (vals[E_MAX_TIMEOUT]) {
        if ((r = get_duration(c, vals[E_MAX_TIMEOUT], "escalate.max_timeout", &ms)) < 0) return r;
        if (ms % 1000)
            return sub_ybad(c, vals[E_MAX_TIMEOUT], "escalate.max_timeout", "must be whole seconds (job timeouts are)");
        x->max_timeout_s = ms / 1000;
    }
    uint64_t b, n;
    if (vals[E_MAX_MEMORY]) {
        if ((r = sub_yget_str(c, vals[E_MAX_MEMORY], "escalate.max_memory", &s)) < 0) return r;
        if ((why = sub_parse_size(s, &b)))
            return sub_ybad(c, vals[E_MAX_MEMORY], "escalate.max_memory", "%s %s", sub_yshow(c, s), why);
        if (b % (1u << 20))
            return sub_ybad(c, vals[E_MAX_MEMORY], "escalate.max_memory", "%s is not whole MiB (e.g. 256Mi)", sub_yshow(c, s));
        x->max_memory_mb = b >> 20 > UINT32_MAX ? UINT32_MAX : (uint32_t)(b >> 20);
    }
    if (vals[E_MAX_INPUT]) {
        if ((r = sub_yget_str(c, vals[E_MAX_INPUT], "escalate.max_input", &s)) < 0) return r;
        if ((why = sub_parse_size(s, &x->max_input)))
            return sub_ybad(c, vals[E_MAX_INPUT], "escalate.max_input", "%s %s", sub_yshow(c, s), why);
    }
    if (vals[E_MAX_OUTPUT]) {
        if ((r = sub_yget_str(c, vals[E_MAX_OUTPUT], "escalate.max_output", &s)) < 0) return r;
        if ((why = sub_parse_size(s, &x->max_output)))
            return sub_ybad(c, vals[E_MAX_OUTPUT], "escalate.max_output", "%s %s", sub_yshow(c, s), why);
    }
    static const struct {
        int k;
        uint64_t max;
        size_t off;
    } nums[] = {
        {E_MAX_VCPUS, 1000, offsetof(sub_svc_escalate, max_vcpus)},
        {E_CONCURRENCY, 100000, offsetof(sub_svc_escalate, concurrency)},
        {E_QUEUE, 100000, offsetof(sub_svc_escalate, queue)},
        {E_PER_MINUTE, 10000000, offsetof(sub_svc_escalate, per_minute)},
    };
    for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
        char f[48];
        if (!vals[nums[i].k]) continue;
        sub_yfield(f, sizeof f, "escalate", esc_keys[nums[i].k]);
        if ((r = sub_yget_uint(c, vals[nums[i].k], f, 0, nums[i].max, &n)) < 0) return r;
        *(uint32_t *)((char *)x + nums[i].off) = (uint32_t)n;
    }
    if (vals[E_QUEUE_WAIT] && (r = get_duration(c, vals[E_QUEUE_WAIT], "escalate.queue_wait", &x->queue_wait_ms)) < 0)
        return r;
    x->enabled = true;
    return check_escalate(c, vals, x);
}

static const char *const backoff_keys[] = {"initial", "max"};

static int parse_backoff(sub_yctx *c, const sub_ynode *v, sub_svc_manifest *m) {
    const sub_ynode *vals[2];
    int r = sub_yread_map(c, v, "backoff", backoff_keys, 2, vals);
    if (r == 0 && vals[0]) r = get_duration(c, vals[0], "backoff.initial", &m->backoff_initial_ms);
    if (r == 0 && vals[1]) r = get_duration(c, vals[1], "backoff.max", &m->backoff_max_ms);
    return r;
}

/* identity, repo_prefix, any_repo: at most one of them. */
static int parse_identity(sub_yctx *c, const sub_ynode *const *vals, sub_svc_manifest *m) {
    const char *s, *why;
    int r;
    const sub_ynode *given[3];
    const char *gname[3];
    size_t ngiven = 0;
    if (vals[K_IDENTITY]) {
        if ((r = sub_yget_str(c, vals[K_IDENTITY], "identity", &s)) < 0) return r;
        if ((why = why_identity(s)))
            return sub_ybad(c, vals[K_IDENTITY], "identity", "%s %s", sub_yshow(c, s), why);
        m->identity = xstrdup(s);
        gname[ngiven] = "identity";
        given[ngiven++] = vals[K_IDENTITY];
    }
    if (vals[K_REPO_PREFIX]) {
        if ((r = sub_yget_str(c, vals[K_REPO_PREFIX], "repo_prefix", &s)) < 0) return r;
        if ((why = why_prefix(s)))
            return sub_ybad(c, vals[K_REPO_PREFIX], "repo_prefix", "%s %s", sub_yshow(c, s), why);
        free(m->identity);
        m->identity = xstrdup(s);
        m->policy = SUB_IDENTITY_REPO_PREFIX;
        gname[ngiven] = "repo_prefix";
        given[ngiven++] = vals[K_REPO_PREFIX];
    }
    if (vals[K_ANY_REPO]) {
        bool any = false;
        if ((r = sub_yget_bool(c, vals[K_ANY_REPO], "any_repo", &any)) < 0) return r;
        if (any) {
            free(m->identity);
            m->identity = NULL;
            m->policy = SUB_IDENTITY_ANY_REPO;
            gname[ngiven] = "any_repo";
            given[ngiven++] = vals[K_ANY_REPO];
        }
    }
    if (ngiven > 1)
        return sub_ybad(c, given[1], gname[1],
                   "give at most one of identity, repo_prefix and any_repo: true (which "
                   "repository the image's signature must name)");
    return 0;
}

static int parse_root(sub_yctx *c, const sub_ynode *root, sub_svc_manifest *m) {
    if (!root || sub_ynull(root))
        return sub_yfail_at(c, 1, 1, NULL, "the manifest is empty: it needs at least name and image");
    if (root->type != SUB_Y_MAP)
        return sub_ybad(c, root, NULL,
                   "a manifest is a mapping of fields (name: ..., image: ...), not %s",
                   sub_ykind(root));
    const sub_ynode *vals[K_MAX];
    int r = sub_yread_map(c, root, NULL, top_keys, K_MAX, vals);
    if (r < 0) return r;
    locs l = {.ports = vals[K_PORTS], .backoff = vals[K_BACKOFF]};
    const char *s, *why;
    int e;

    if (!vals[K_NAME])
        return sub_ybad(c, root, "name", "missing: every service needs a name (e.g. name: hello)");
    if (!vals[K_IMAGE])
        return sub_ybad(c, root, "image",
                   "missing: every service needs its image, pinned by digest "
                   "(image: REGISTRY/REPO@sha256:<64 hex>)");
    if ((r = sub_yget_str(c, vals[K_NAME], "name", &s)) < 0) return r;
    if ((why = why_name(s))) return sub_ybad(c, vals[K_NAME], "name", "%s %s", sub_yshow(c, s), why);
    m->name = xstrdup(s);
    if ((r = sub_yget_str(c, vals[K_IMAGE], "image", &s)) < 0) return r;
    if ((r = check_image(c, vals[K_IMAGE], s, m)) < 0) return r;
    m->image = xstrdup(s);

    if ((r = parse_identity(c, vals, m)) < 0) return r;
    if (vals[K_KEYS] && (r = parse_keys(c, vals[K_KEYS], m)) < 0) return r;
    if (vals[K_COMMAND] && (r = get_strv(c, vals[K_COMMAND], "command", &m->command)) < 0) return r;
    if (vals[K_ARGS] && (r = get_strv(c, vals[K_ARGS], "args", &m->args)) < 0) return r;
    if (vals[K_ENV] && (r = parse_env(c, vals[K_ENV], m)) < 0) return r;
    if (vals[K_WORKDIR]) {
        if ((r = sub_yget_str(c, vals[K_WORKDIR], "workdir", &s)) < 0) return r;
        if ((why = why_abs_path(s)))
            return sub_ybad(c, vals[K_WORKDIR], "workdir", "%s %s", sub_yshow(c, s), why);
        m->workdir = xstrdup(s);
    }
    if (vals[K_USER]) {
        if ((r = sub_yget_str(c, vals[K_USER], "user", &s)) < 0) return r;
        if ((why = why_user(s))) return sub_ybad(c, vals[K_USER], "user", "%s %s", sub_yshow(c, s), why);
        m->user = xstrdup(s);
    }
    if (vals[K_NETWORK]) {
        if ((r = sub_yget_enum(c, vals[K_NETWORK], "network", network_names, 3, &e)) < 0) return r;
        m->network = (sub_svc_network)e;
    }
    if (vals[K_PORTS] && (r = parse_ports(c, vals[K_PORTS], m)) < 0) return r;
    if (vals[K_HEALTH] && (r = parse_probe(c, vals[K_HEALTH], "health", false, &m->health)) < 0)
        return r;
    if (vals[K_READINESS] &&
        (r = parse_probe(c, vals[K_READINESS], "readiness", true, &m->readiness)) < 0)
        return r;
    if (vals[K_RESTART]) {
        if ((r = sub_yget_enum(c, vals[K_RESTART], "restart", restart_names, 3, &e)) < 0) return r;
        m->restart = (sub_svc_restart)e;
    }
    if (vals[K_BACKOFF] && (r = parse_backoff(c, vals[K_BACKOFF], m)) < 0) return r;
    static const struct {
        int key;
        size_t off;
    } durs[] = {
        {K_STOP_GRACE, offsetof(sub_svc_manifest, stop_grace_ms)},
        {K_ALIGN_INTERVAL, offsetof(sub_svc_manifest, align_interval_ms)},
        {K_DEEP_ALIGN_INTERVAL, offsetof(sub_svc_manifest, deep_align_interval_ms)},
        {K_VERIFY_MAX_AGE, offsetof(sub_svc_manifest, verify_max_age_ms)},
    };
    for (size_t i = 0; i < ARRAY_SIZE(durs); i++) {
        const sub_ynode *v = vals[durs[i].key];
        if (v && (r = get_duration(c, v, top_keys[durs[i].key],
                                   (uint32_t *)((char *)m + durs[i].off))) < 0)
            return r;
    }
    if (vals[K_ON_DRIFT]) {
        if ((r = sub_yget_enum(c, vals[K_ON_DRIFT], "on_drift", drift_names, 2, &e)) < 0) return r;
        m->on_drift = (sub_svc_on_drift)e;
    }
    if (vals[K_RESOURCES] && (r = parse_resources(c, vals[K_RESOURCES], m)) < 0) return r;
    if (vals[K_RUNTIME]) {
        if ((r = sub_yget_enum(c, vals[K_RUNTIME], "runtime", runtime_names, 3, &e)) < 0) return r;
        m->runtime = (sub_svc_runtime)e;
    }
    if (vals[K_CAPABILITIES] && (r = parse_caps(c, vals[K_CAPABILITIES], m)) < 0) return r;
    if (vals[K_ESCALATE] && !sub_ynull(vals[K_ESCALATE]) && (r = parse_escalate(c, vals[K_ESCALATE], m)) < 0)
        return r;
    return check_whole(c, m, &l);
}

/* path as given; dir: its directory, absolute (relative paths are taken from the cwd). */
static int set_path(sub_yctx *c, const char *path, sub_svc_manifest *m) {
    _cleanup_free_ char *cwd = NULL;
    if (!path || path[0] != '/') {
        cwd = getcwd(NULL, 0);
        if (!cwd)
            return sub_err_set(c->e, -errno,
                               "%s: cannot find the current directory (to resolve "
                               "key paths): %m",
                               c->file);
    }
    if (!path) {
        m->dir = xstrdup(cwd);
        return 0;
    }
    m->path = xstrdup(path);
    const char *slash = strrchr(path, '/');
    _cleanup_free_ char *d = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    if (slash == path) d[0] = 0; /* "/x.yaml" */
    m->dir = path_clean_join(cwd ? cwd : "/", d[0] ? d : "/");
    return 0;
}

int sub_svc_manifest_parse(const char *text, size_t len, const char *path, sub_svc_manifest *out,
                           sub_err *e) {
    set_defaults(out);
    sub_yctx c = {.file = path ? path : "<manifest>", .doc = "manifest", .reason = SUB_R_BAD_MANIFEST, .e = e,
             .one_doc_hint = " (one service per file)"};
    if (len > SUB_SVC_MANIFEST_MAX)
        return sub_yfail_at(&c, 0, 0, NULL, "the manifest is %zu bytes; the limit is %u", len,
                       SUB_SVC_MANIFEST_MAX);
    _cleanup_ynode_ sub_ynode *root = NULL;
    int r = sub_yaml_load(&c, text, len, &root);
    if (r == 0) r = set_path(&c, path, out);
    if (r == 0) r = parse_root(&c, root, out);
    if (r == 0) (void)sub_sha256_buf(text, len, out->source_digest, NULL);
    if (r < 0) sub_svc_manifest_done(out);
    return r;
}

int sub_svc_manifest_load(const char *path, sub_svc_manifest *out, sub_err *e) {
    set_defaults(out);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_SVC_MANIFEST_MAX, &text, &len, e);
    if (r == -EFBIG)
        return sub_err_setr(e, SUB_R_BAD_MANIFEST, SUB_KIND_INPUT, -EINVAL,
                            "%s: the manifest is larger than %u bytes", path, SUB_SVC_MANIFEST_MAX);
    if (r < 0) {
        if (r == -ENOENT && e) e->kind = SUB_KIND_INPUT;
        return r;
    }
    return sub_svc_manifest_parse(text, len, path, out, e);
}

/* ---- canonical JSON ------------------------------------------------------------------------ */

static json_t *strv_json(char *const *v) {
    if (!v) return json_null();
    json_t *a = json_array();
    for (; *v; v++) json_array_append_new(a, sub_json_str(*v));
    return a;
}

static json_t *probe_json(const sub_probe_spec *p) {
    json_t *o = json_object();
    json_object_set_new(
        o, "kind",
        json_string((unsigned)p->kind < ARRAY_SIZE(probe_names) ? probe_names[p->kind] : "?"));
    json_object_set_new(o, "url", sub_json_str(p->url));
    json_object_set_new(o, "address", sub_json_str(p->address));
    json_object_set_new(o, "exec", strv_json(p->exec));
    json_object_set_new(o, "interval_ms", json_integer(p->interval_ms));
    json_object_set_new(o, "timeout_ms", json_integer(p->timeout_ms));
    json_object_set_new(o, "failure_threshold", json_integer(p->failure_threshold));
    json_object_set_new(o, "start_period_ms", json_integer(p->start_period_ms));
    json_object_set_new(o, "deadline_ms", json_integer(p->deadline_ms));
    return o;
}

char *sub_svc_manifest_to_json(const sub_svc_manifest *m) {
    _cleanup_json_ json_t *o = json_object();
    json_object_set_new(o, "path", sub_json_str(m->path));
    json_object_set_new(o, "dir", sub_json_str(m->dir));
    json_object_set_new(o, "name", sub_json_str(m->name));
    json_object_set_new(o, "image", sub_json_str(m->image));
    json_object_set_new(o, "identity_policy",
                        json_string((unsigned)m->policy < 3 ? policy_names[m->policy] : "?"));
    json_object_set_new(o, "identity", sub_json_str(m->identity));
    json_object_set_new(o, "keys", strv_json(m->keys));
    json_object_set_new(o, "command", strv_json(m->command));
    json_object_set_new(o, "args", strv_json(m->args));
    json_object_set_new(o, "env", strv_json(m->env));
    json_object_set_new(o, "workdir", sub_json_str(m->workdir));
    json_object_set_new(o, "user", sub_json_str(m->user));
    json_object_set_new(o, "network", json_string(sub_svc_network_str(m->network)));
    json_t *ports = json_array();
    for (size_t i = 0; i < m->nports; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "host_addr", sub_json_str(m->ports[i].host_addr));
        json_object_set_new(p, "host_port", json_integer(m->ports[i].host_port));
        json_object_set_new(p, "container_port", json_integer(m->ports[i].container_port));
        json_array_append_new(ports, p);
    }
    json_object_set_new(o, "ports", ports);
    json_object_set_new(o, "health", probe_json(&m->health));
    json_object_set_new(o, "readiness", probe_json(&m->readiness));
    json_object_set_new(o, "restart", json_string(sub_svc_restart_str(m->restart)));
    json_object_set_new(o, "backoff_initial_ms", json_integer(m->backoff_initial_ms));
    json_object_set_new(o, "backoff_max_ms", json_integer(m->backoff_max_ms));
    json_object_set_new(o, "stop_grace_ms", json_integer(m->stop_grace_ms));
    json_object_set_new(o, "on_drift",
                        json_string((unsigned)m->on_drift < 2 ? drift_names[m->on_drift] : "?"));
    json_object_set_new(o, "align_interval_ms", json_integer(m->align_interval_ms));
    json_object_set_new(o, "deep_align_interval_ms", json_integer(m->deep_align_interval_ms));
    json_object_set_new(o, "verify_max_age_ms", json_integer(m->verify_max_age_ms));
    json_object_set_new(o, "memory_bytes", json_integer((json_int_t)m->memory_bytes));
    json_object_set_new(o, "pids", json_integer(m->pids));
    json_object_set_new(o, "cpu_millis", json_integer(m->cpu_millis));
    json_object_set_new(o, "runtime", json_string(sub_svc_runtime_str(m->runtime)));
    json_object_set_new(o, "capabilities", strv_json(m->capabilities));
    const sub_svc_escalate *x = &m->escalate;
    json_object_set_new(
        o, "escalate",
        !x->enabled ? json_null()
                    : json_pack("{s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "image", sub_json_str(x->image),
                                "egress", x->egress ? strv_json(x->egress) : json_array(), "max_timeout_s",
                                (json_int_t)x->max_timeout_s, "max_memory_mb", (json_int_t)x->max_memory_mb,
                                "max_vcpus", (json_int_t)x->max_vcpus, "max_input", (json_int_t)x->max_input,
                                "max_output", (json_int_t)x->max_output, "concurrency", (json_int_t)x->concurrency,
                                "queue", (json_int_t)x->queue, "queue_wait_ms", (json_int_t)x->queue_wait_ms,
                                "per_minute", (json_int_t)x->per_minute));
    char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    return s ? s : xstrdup("null");
}

/* Member key of o, present (null counts as present). */
static int j_member(sub_yctx *c, const json_t *o, const char *field, const char *key, json_t **out) {
    *out = json_object_get(o, key);
    char f[96];
    if (!*out) return sub_ybad(c, NULL, sub_yfield(f, sizeof f, field, key), "missing");
    return 0;
}

static int j_str(sub_yctx *c, const json_t *o, const char *field, const char *key, bool nullable,
                 char **out) {
    json_t *v;
    char f[96];
    int r = j_member(c, o, field, key, &v);
    if (r < 0) return r;
    if (nullable && json_is_null(v)) return 0;
    if (!json_is_string(v))
        return sub_ybad(c, NULL, sub_yfield(f, sizeof f, field, key), "must be a string%s",
                   nullable ? " or null" : "");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return sub_ybad(c, NULL, sub_yfield(f, sizeof f, field, key), "holds a NUL character");
    *out = xstrdup(json_string_value(v));
    return 0;
}

static int j_strv(sub_yctx *c, const json_t *o, const char *field, const char *key, bool nullable,
                  char ***out) {
    json_t *v;
    char f[96];
    int r = j_member(c, o, field, key, &v);
    if (r < 0) return r;
    sub_yfield(f, sizeof f, field, key);
    if (nullable && json_is_null(v)) return 0;
    if (!json_is_array(v)) return sub_ybad(c, NULL, f, "must be a list%s", nullable ? " or null" : "");
    _cleanup_strv_ char **sv = xcalloc(json_array_size(v) + 1, sizeof *sv);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s))
            return sub_ybad(c, NULL, f, "item %zu must be a string", i);
        sv[i] = xstrdup(json_string_value(s));
    }
    *out = TAKE_PTR(sv);
    return 0;
}

static int j_uint(sub_yctx *c, const json_t *o, const char *field, const char *key, uint64_t max,
                  uint64_t *out) {
    json_t *v;
    char f[96];
    int r = j_member(c, o, field, key, &v);
    if (r < 0) return r;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return sub_ybad(c, NULL, sub_yfield(f, sizeof f, field, key),
                   "must be a whole number from 0 to %llu", (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int j_u32(sub_yctx *c, const json_t *o, const char *field, const char *key, uint64_t max,
                 uint32_t *out) {
    uint64_t v;
    int r = j_uint(c, o, field, key, max, &v);
    if (r == 0) *out = (uint32_t)v;
    return r;
}

static int j_enum(sub_yctx *c, const json_t *o, const char *field, const char *key,
                  const char *const *names, size_t n, int *out) {
    json_t *v;
    char f[96];
    int r = j_member(c, o, field, key, &v);
    if (r < 0) return r;
    int i = json_is_string(v) ? sub_yfind_name(json_string_value(v), names, n) : -1;
    if (i < 0) return sub_ybad(c, NULL, sub_yfield(f, sizeof f, field, key), "is not a known value");
    *out = i;
    return 0;
}

static int j_only(sub_yctx *c, const json_t *o, const char *field, const char *const *known, size_t n) {
    if (!json_is_object(o)) return sub_ybad(c, NULL, field, "must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        char f[96];
        if (sub_yfind_name(key, known, n) < 0)
            return sub_ybad(c, NULL, sub_yfield(f, sizeof f, field, key), "unknown key");
    }
    return 0;
}

static const char *const jprobe_keys[] = {
    "kind",        "url",        "address",           "exec",
    "interval_ms", "timeout_ms", "failure_threshold", "start_period_ms",
    "deadline_ms",
};

static int j_probe(sub_yctx *c, const json_t *o, const char *key, bool readiness, sub_probe_spec *p) {
    json_t *v;
    int r = j_member(c, o, NULL, key, &v);
    if (r == 0) r = j_only(c, v, key, jprobe_keys, ARRAY_SIZE(jprobe_keys));
    if (r < 0) return r;
    int kind = 0;
    if ((r = j_enum(c, v, key, "kind", probe_names, 4, &kind)) < 0 ||
        (r = j_str(c, v, key, "url", true, &p->url)) < 0 ||
        (r = j_str(c, v, key, "address", true, &p->address)) < 0 ||
        (r = j_strv(c, v, key, "exec", true, &p->exec)) < 0 ||
        (r = j_u32(c, v, key, "interval_ms", DURATION_MAX_MS, &p->interval_ms)) < 0 ||
        (r = j_u32(c, v, key, "timeout_ms", DURATION_MAX_MS, &p->timeout_ms)) < 0 ||
        (r = j_u32(c, v, key, "failure_threshold", 1000000, &p->failure_threshold)) < 0 ||
        (r = j_u32(c, v, key, "start_period_ms", DURATION_MAX_MS, &p->start_period_ms)) < 0 ||
        (r = j_u32(c, v, key, "deadline_ms", DURATION_MAX_MS, &p->deadline_ms)) < 0)
        return r;
    p->kind = (sub_probe_kind)kind;
    if ((p->kind == SUB_PROBE_HTTP) != !!p->url || (p->kind == SUB_PROBE_TCP) != !!p->address ||
        (p->kind == SUB_PROBE_EXEC) != !!p->exec)
        return sub_ybad(c, NULL, key, "kind does not match url, address and exec");
    const char *why = p->url ? why_http(p->url) : p->address ? why_tcp(p->address) : NULL;
    if (why) return sub_ybad(c, NULL, key, "%s %s", sub_yshow(c, p->url ? p->url : p->address), why);
    if (p->exec && (!p->exec[0] || !p->exec[0][0]))
        return sub_ybad(c, NULL, key, "exec needs a program to run");
    if (!readiness && p->deadline_ms) return sub_ybad(c, NULL, key, "health has no deadline");
    return check_probe(c, NULL, key, p, readiness);
}

static const char *const jtop_keys[] = {
    "path",
    "dir",
    "name",
    "image",
    "identity_policy",
    "identity",
    "keys",
    "command",
    "args",
    "env",
    "workdir",
    "user",
    "network",
    "ports",
    "health",
    "readiness",
    "restart",
    "backoff_initial_ms",
    "backoff_max_ms",
    "stop_grace_ms",
    "on_drift",
    "align_interval_ms",
    "deep_align_interval_ms",
    "verify_max_age_ms",
    "memory_bytes",
    "pids",
    "cpu_millis",
    "runtime",
    "capabilities",
    "escalate",
};
static const char *const jesc_keys[] = {
    "image", "egress", "max_timeout_s", "max_memory_mb", "max_vcpus", "max_input",
    "max_output", "concurrency", "queue", "queue_wait_ms", "per_minute",
};

/* escalate: null (absent), or the limits; "escalate" may be missing in a
 * record written before the block existed. */
static int j_escalate(sub_yctx *c, const json_t *o, sub_svc_manifest *m) {
    json_t *v = json_object_get(o, "escalate");
    if (!v || json_is_null(v)) return 0;
    sub_svc_escalate *x = &m->escalate;
    int r;
    const char *F = "escalate";
    if ((r = j_only(c, v, F, jesc_keys, ARRAY_SIZE(jesc_keys))) < 0 || (r = j_str(c, v, F, "image", false, &x->image)) < 0 ||
        (r = j_strv(c, v, F, "egress", false, &x->egress)) < 0 ||
        (r = j_u32(c, v, F, "max_timeout_s", UINT32_MAX, &x->max_timeout_s)) < 0 ||
        (r = j_u32(c, v, F, "max_memory_mb", UINT32_MAX, &x->max_memory_mb)) < 0 ||
        (r = j_u32(c, v, F, "max_vcpus", UINT32_MAX, &x->max_vcpus)) < 0 ||
        (r = j_uint(c, v, F, "max_input", (uint64_t)INT64_MAX, &x->max_input)) < 0 ||
        (r = j_uint(c, v, F, "max_output", (uint64_t)INT64_MAX, &x->max_output)) < 0 ||
        (r = j_u32(c, v, F, "concurrency", UINT32_MAX, &x->concurrency)) < 0 ||
        (r = j_u32(c, v, F, "queue", UINT32_MAX, &x->queue)) < 0 ||
        (r = j_u32(c, v, F, "queue_wait_ms", DURATION_MAX_MS, &x->queue_wait_ms)) < 0 ||
        (r = j_u32(c, v, F, "per_minute", UINT32_MAX, &x->per_minute)) < 0)
        return r;
    if (x->egress && !x->egress[0]) {
        strv_free(x->egress);
        x->egress = NULL;
    }
    if ((r = check_image_ref(c, NULL, "escalate.image", x->image, &x->ref)) < 0) return r;
    x->enabled = true;
    return check_escalate(c, NULL, x);
}
static const char *const jport_keys[] = {"host_addr", "host_port", "container_port"};

static int j_ports(sub_yctx *c, const json_t *o, sub_svc_manifest *m) {
    json_t *a;
    int r = j_member(c, o, NULL, "ports", &a);
    if (r < 0) return r;
    if (!json_is_array(a)) return sub_ybad(c, NULL, "ports", "must be a list");
    m->ports = xcalloc(json_array_size(a) + 1, sizeof *m->ports);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *p = json_array_get(a, i);
        char f[32];
        sub_yindex(f, sizeof f, "ports", i);
        _cleanup_free_ char *addr = NULL;
        uint64_t hp, cp;
        if ((r = j_only(c, p, f, jport_keys, 3)) < 0 ||
            (r = j_str(c, p, f, "host_addr", false, &addr)) < 0 ||
            (r = j_uint(c, p, f, "host_port", 65535, &hp)) < 0 ||
            (r = j_uint(c, p, f, "container_port", 65535, &cp)) < 0)
            return r;
        if (why_ipv4(addr) || strlen(addr) >= sizeof m->ports[i].host_addr || !hp || !cp)
            return sub_ybad(c, NULL, f, "needs a numeric IPv4 host_addr and ports from 1 to 65535");
        snprintf(m->ports[i].host_addr, sizeof m->ports[i].host_addr, "%s", addr);
        m->ports[i].host_port = (uint16_t)hp;
        m->ports[i].container_port = (uint16_t)cp;
        m->nports++;
    }
    return 0;
}

/* The string-valued fields, checked as the YAML reader checks them. */
static int j_check(sub_yctx *c, sub_svc_manifest *m) {
    const char *why;
    if (!m->dir || m->dir[0] != '/') return sub_ybad(c, NULL, "dir", "must be an absolute path");
    if ((why = why_name(m->name))) return sub_ybad(c, NULL, "name", "%s %s", sub_yshow(c, m->name), why);
    int r = check_image(c, NULL, m->image, m);
    if (r < 0) return r;
    if ((m->policy == SUB_IDENTITY_ANY_REPO && m->identity) ||
        (m->policy == SUB_IDENTITY_REPO_PREFIX && !m->identity))
        return sub_ybad(c, NULL, "identity", "does not match identity_policy");
    if (m->identity && (why = m->policy == SUB_IDENTITY_EXACT ? why_identity(m->identity)
                                                              : why_prefix(m->identity)))
        return sub_ybad(c, NULL, "identity", "%s %s", sub_yshow(c, m->identity), why);
    if (m->keys && !m->keys[0]) return sub_ybad(c, NULL, "keys", "must not be an empty list");
    for (size_t i = 0; m->keys && m->keys[i]; i++)
        if (m->keys[i][0] != '/' && (why = why_keyid(m->keys[i])))
            return sub_ybad(c, NULL, "keys", "%s %s", sub_yshow(c, m->keys[i]), why);
    m->nkeys = strv_len(m->keys);
    for (size_t i = 0; m->env && m->env[i]; i++)
        if ((why = why_env(m->env[i])))
            return sub_ybad(c, NULL, "env", "%s %s", sub_yshow(c, m->env[i]), why);
    if (m->workdir && (why = why_abs_path(m->workdir)))
        return sub_ybad(c, NULL, "workdir", "%s %s", sub_yshow(c, m->workdir), why);
    if (m->user && (why = why_user(m->user)))
        return sub_ybad(c, NULL, "user", "%s %s", sub_yshow(c, m->user), why);
    uint64_t seen = 0;
    for (size_t i = 0; m->capabilities && m->capabilities[i]; i++) {
        int k = cap_index(m->capabilities[i]);
        if (k < 0) return bad_cap(c, NULL, "capabilities", m->capabilities[i]);
        if (seen & (UINT64_C(1) << k))
            return sub_ybad(c, NULL, "capabilities", "%s is listed twice", m->capabilities[i]);
        seen |= UINT64_C(1) << k;
    }
    return 0;
}

static int j_fields(sub_yctx *c, const json_t *o, sub_svc_manifest *m) {
    int pol = 0, net = 0, rst = 0, drift = 0, rt = 0, r;
    uint64_t mem = 0;
    if ((r = j_only(c, o, NULL, jtop_keys, ARRAY_SIZE(jtop_keys))) < 0) return r;
    if ((r = j_str(c, o, NULL, "path", true, &m->path)) < 0) return r;
    if ((r = j_str(c, o, NULL, "dir", false, &m->dir)) < 0) return r;
    if ((r = j_str(c, o, NULL, "name", false, &m->name)) < 0) return r;
    if ((r = j_str(c, o, NULL, "image", false, &m->image)) < 0) return r;
    if ((r = j_enum(c, o, NULL, "identity_policy", policy_names, 3, &pol)) < 0) return r;
    if ((r = j_str(c, o, NULL, "identity", true, &m->identity)) < 0) return r;
    if ((r = j_strv(c, o, NULL, "keys", true, &m->keys)) < 0) return r;
    if ((r = j_strv(c, o, NULL, "command", true, &m->command)) < 0) return r;
    if ((r = j_strv(c, o, NULL, "args", true, &m->args)) < 0) return r;
    if ((r = j_strv(c, o, NULL, "env", true, &m->env)) < 0) return r;
    if ((r = j_str(c, o, NULL, "workdir", true, &m->workdir)) < 0) return r;
    if ((r = j_str(c, o, NULL, "user", true, &m->user)) < 0) return r;
    if ((r = j_enum(c, o, NULL, "network", network_names, 3, &net)) < 0) return r;
    if ((r = j_ports(c, o, m)) < 0) return r;
    if ((r = j_probe(c, o, "health", false, &m->health)) < 0) return r;
    if ((r = j_probe(c, o, "readiness", true, &m->readiness)) < 0) return r;
    if ((r = j_enum(c, o, NULL, "restart", restart_names, 3, &rst)) < 0) return r;
    if ((r = j_u32(c, o, NULL, "backoff_initial_ms", DURATION_MAX_MS, &m->backoff_initial_ms)) < 0)
        return r;
    if ((r = j_u32(c, o, NULL, "backoff_max_ms", DURATION_MAX_MS, &m->backoff_max_ms)) < 0)
        return r;
    if ((r = j_u32(c, o, NULL, "stop_grace_ms", DURATION_MAX_MS, &m->stop_grace_ms)) < 0) return r;
    if ((r = j_enum(c, o, NULL, "on_drift", drift_names, 2, &drift)) < 0) return r;
    if ((r = j_u32(c, o, NULL, "align_interval_ms", DURATION_MAX_MS, &m->align_interval_ms)) < 0)
        return r;
    if ((r = j_u32(c, o, NULL, "deep_align_interval_ms", DURATION_MAX_MS,
                   &m->deep_align_interval_ms)) < 0)
        return r;
    if ((r = j_u32(c, o, NULL, "verify_max_age_ms", DURATION_MAX_MS, &m->verify_max_age_ms)) < 0)
        return r;
    if ((r = j_uint(c, o, NULL, "memory_bytes", (uint64_t)INT64_MAX, &mem)) < 0) return r;
    if ((r = j_u32(c, o, NULL, "pids", UINT32_MAX, &m->pids)) < 0) return r;
    if ((r = j_u32(c, o, NULL, "cpu_millis", UINT32_MAX, &m->cpu_millis)) < 0) return r;
    if ((r = j_enum(c, o, NULL, "runtime", runtime_names, 3, &rt)) < 0) return r;
    if ((r = j_strv(c, o, NULL, "capabilities", true, &m->capabilities)) < 0) return r;
    if ((r = j_escalate(c, o, m)) < 0) return r;
    m->policy = (sub_identity_policy)pol;
    m->network = (sub_svc_network)net;
    m->restart = (sub_svc_restart)rst;
    m->on_drift = (sub_svc_on_drift)drift;
    m->runtime = (sub_svc_runtime)rt;
    m->memory_bytes = mem;
    return 0;
}

int sub_svc_manifest_from_json(const char *json, size_t len, sub_svc_manifest *out, sub_err *e) {
    set_defaults(out);
    sub_yctx c = {.file = "service manifest JSON", .doc = "manifest", .reason = SUB_R_BAD_MANIFEST, .e = e};
    sub_svc_manifest *m = out;
    _cleanup_json_ json_t *o = NULL;
    int r = sub_json_parse(json, len, 4 * (size_t)SUB_SVC_MANIFEST_MAX, c.file, &o, e);
    if (r < 0) {
        sub_err_reason(e, SUB_R_BAD_MANIFEST);
        if (e) e->kind = SUB_KIND_INPUT, e->code = -EINVAL;
        return -EINVAL;
    }
    r = j_fields(&c, o, m);
    if (r == 0) r = j_check(&c, m);
    if (r == 0) {
        locs l = {0};
        r = check_whole(&c, m, &l);
    }
    if (r < 0) sub_svc_manifest_done(out);
    return r;
}
