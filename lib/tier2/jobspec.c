/* Tier-2 jobspecs: strict JSON (duplicate keys refused by sub_json_parse),
 * every field checked, every refusal naming the field. */
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/jobspec.h"
#include "substrate/json.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PROBES 16
#define MAX_EGRESS 64
#define MAX_INPUTS 64
#define MAX_OUTPUTS 64
#define OUTPUT_MAX_DEFAULT (1u << 20)
#define OUTPUT_MAX_CAP (64u << 20)

static int bad(sub_err *e, const char *path, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(sub_err *e, const char *path, const char *field, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sub_err_setr(e, SUB_R_BAD_JOBSPEC, SUB_KIND_INPUT, -EINVAL, "%s: %s: %s", path, field, msg);
}

uint32_t sub_job_timeout_max(void) {
    const char *s = getenv("SUBSTRATE_JOB_TIMEOUT_MAX");
    if (!s || !*s) return SUB_JOB_TIMEOUT_MAX_DEFAULT;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    return *end || v == 0 || v > 86400 * 7 ? SUB_JOB_TIMEOUT_MAX_DEFAULT : (uint32_t)v;
}

static bool valid_name(const char *s) {
    size_t n = strlen(s);
    if (!n || n > 63 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]))) return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-')) return false;
    return true;
}

/* "A.B.C.D:PORT", numeric IPv4 and a port 1-65535 */
static int hostport(const char *path, const char *field, const char *s, sub_hostport *out, sub_err *e) {
    const char *colon = strrchr(s, ':');
    struct in_addr a;
    char host[16];
    size_t hl = colon ? (size_t)(colon - s) : 0;
    if (!colon || hl == 0 || hl >= sizeof host)
        return bad(e, path, field, "\"%.64s\" is not HOST:PORT (a numeric IPv4 address and a port)", s);
    memcpy(host, s, hl);
    host[hl] = 0;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (inet_pton(AF_INET, host, &a) != 1)
        return bad(e, path, field, "\"%.64s\": the host must be a numeric IPv4 address (no names: the guest "
                   "resolves nothing)", s);
    if (!colon[1] || *end || port < 1 || port > 65535)
        return bad(e, path, field, "\"%.64s\": the port must be 1-65535", s);
    memcpy(out->host, host, hl + 1);
    out->port = (uint16_t)port;
    return 0;
}

static int hostports(const char *path, const char *what, json_t *arr, size_t max, sub_hostport **out, size_t *n,
                     sub_err *e) {
    size_t k = json_array_size(arr);
    if (k > max) return bad(e, path, what, "%zu entries; at most %zu", k, max);
    *out = xcalloc(k ? k : 1, sizeof **out);
    *n = 0;
    for (size_t i = 0; i < k; i++) {
        char field[64];
        snprintf(field, sizeof field, "%s[%zu]", what, i);
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s) return bad(e, path, field, "must be a string \"HOST:PORT\"");
        int r = hostport(path, field, s, &(*out)[i], e);
        if (r < 0) return r;
        (*n)++;
    }
    return 0;
}

static int uint_field(const char *path, json_t *o, const char *key, bool required, uint32_t lo, uint32_t hi,
                      uint32_t dflt, uint32_t *out, sub_err *e) {
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required) return bad(e, path, key, "missing (a whole number from %u to %u)", lo, hi);
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v)) return bad(e, path, key, "must be a whole number from %u to %u", lo, hi);
    json_int_t x = json_integer_value(v);
    if (x < (json_int_t)lo || x > (json_int_t)hi)
        return bad(e, path, key, "%lld is out of range: %u to %u", (long long)x, lo, hi);
    *out = (uint32_t)x;
    return 0;
}

static int str_field(const char *path, json_t *o, const char *key, char **out, sub_err *e) {
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_string(v)) return bad(e, path, key, "must be a string");
    *out = xstrdup(json_string_value(v));
    return 0;
}

static int strv_field(const char *path, json_t *o, const char *key, char ***out, sub_err *e) {
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_array(v)) return bad(e, path, key, "must be a list of strings");
    char **r = xcalloc(json_array_size(v) + 1, sizeof *r);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (!s) {
            strv_free(r);
            char field[64];
            snprintf(field, sizeof field, "%s[%zu]", key, i);
            return bad(e, path, field, "must be a string");
        }
        r[i] = xstrdup(s);
    }
    *out = r;
    return 0;
}

static bool env_name_ok(const char *s, size_t n) {
    if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return false;
    return true;
}

static int env_field(const char *path, json_t *o, char ***out, sub_err *e) {
    json_t *v = json_object_get(o, "env");
    if (!v) return 0;
    char **r = NULL;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            if (!json_is_string(x) || !env_name_ok(k, strlen(k))) {
                strv_free(r);
                return bad(e, path, "env", "\"%.64s\": names are [A-Za-z_][A-Za-z0-9_]*, values strings", k);
            }
            _cleanup_free_ char *kv = xasprintf("%s=%s", k, json_string_value(x));
            strv_push(&r, kv);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *s = json_string_value(json_array_get(v, i));
            const char *eq = s ? strchr(s, '=') : NULL;
            if (!eq || !env_name_ok(s, (size_t)(eq - s))) {
                strv_free(r);
                return bad(e, path, "env", "entry %zu: \"KEY=VALUE\" with KEY [A-Za-z_][A-Za-z0-9_]*", i);
            }
            for (char **p = r; p && *p; p++)
                if (!strncmp(*p, s, (size_t)(eq - s) + 1)) {
                    strv_free(r);
                    return bad(e, path, "env", "%.*s is given twice", (int)(eq - s), s);
                }
            strv_push(&r, s);
        }
    } else {
        return bad(e, path, "env", "must be {\"KEY\": \"value\"} or [\"KEY=value\"]");
    }
    if (r) qsort(r, strv_len(r), sizeof *r, strcmp_ptr);
    *out = r;
    return 0;
}

static bool abs_path_ok(const char *s) {
    if (s[0] != '/' || strlen(s) > 4096) return false;
    for (const char *p = s; (p = strstr(p, "/..")); p += 3)
        if (p[3] == '/' || p[3] == 0) return false;
    return true;
}

static int user_field(const char *path, json_t *o, char **out, sub_err *e) {
    int r = str_field(path, o, "user", out, e);
    if (r < 0 || !*out) return r;
    const char *s = *out;
    bool colon = false;
    for (const char *p = s; *p; p++) {
        if (*p == ':' && !colon && p != s && p[1]) colon = true;
        else if (!isdigit((unsigned char)*p))
            return bad(e, path, "user", "\"%.32s\" is not \"UID\" or \"UID:GID\" (numbers only)", s);
    }
    if (!*s) return bad(e, path, "user", "empty");
    return 0;
}

static int inputs_field(const char *path, json_t *o, sub_jobspec *j, sub_err *e) {
    json_t *v = json_object_get(o, "inputs");
    if (!v) return 0;
    if (!json_is_array(v)) return bad(e, path, "inputs", "must be a list of {path, content[, mode]}");
    size_t n = json_array_size(v), total = 0;
    if (n > MAX_INPUTS) return bad(e, path, "inputs", "%zu files; at most %d", n, MAX_INPUTS);
    j->inputs = xcalloc(n ? n : 1, sizeof *j->inputs);
    static const char *const keys[] = {"path", "content", "mode", NULL};
    for (size_t i = 0; i < n; i++) {
        char field[64];
        snprintf(field, sizeof field, "inputs[%zu]", i);
        json_t *x = json_array_get(v, i);
        if (!json_is_object(x)) return bad(e, path, field, "must be {path, content[, mode]}");
        sub_err ke = {0};
        if (sub_json_check_keys(x, field, keys, &ke) < 0) return bad(e, path, field, "%s", ke.msg);
        const char *p = json_string_value(json_object_get(x, "path"));
        const char *c = json_string_value(json_object_get(x, "content"));
        const char *m = json_string_value(json_object_get(x, "mode"));
        if (!p || !abs_path_ok(p)) return bad(e, path, field, "path: an absolute path without \"..\" is required");
        if (!c) return bad(e, path, field, "content: a string is required");
        unsigned mode = 0644;
        if (json_object_get(x, "mode")) {
            char *end;
            unsigned long mv = m ? strtoul(m, &end, 8) : 0;
            if (!m || !*m || *end || mv > 0777) return bad(e, path, field, "mode: an octal string such as \"0644\"");
            mode = (unsigned)mv;
        }
        size_t cl = json_string_length(json_object_get(x, "content"));
        total += cl;
        if (total > SUB_JOB_INPUTS_MAX)
            return bad(e, path, "inputs", "more than %u bytes in all", SUB_JOB_INPUTS_MAX);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(j->inputs[k].path, p)) return bad(e, path, field, "%.128s is given twice", p);
        j->inputs[i] = (sub_job_input){.path = xstrdup(p), .content = xstrndup(c, cl), .len = cl, .mode = mode};
        j->ninputs++;
    }
    return 0;
}

static int outputs_field(const char *path, json_t *o, sub_jobspec *j, sub_err *e) {
    j->output_max_bytes = OUTPUT_MAX_DEFAULT;
    json_t *v = json_object_get(o, "outputs");
    if (!v) return 0;
    static const char *const keys[] = {"paths", "max_bytes", NULL};
    if (!json_is_object(v)) return bad(e, path, "outputs", "must be {\"paths\": [...], \"max_bytes\": N}");
    sub_err ke = {0};
    if (sub_json_check_keys(v, "outputs", keys, &ke) < 0) return bad(e, path, "outputs", "%s", ke.msg);
    int r = strv_field(path, v, "paths", &j->outputs, e);
    if (r < 0) return r;
    if (!j->outputs) return bad(e, path, "outputs.paths", "missing (a list of absolute paths)");
    if (strv_len(j->outputs) > MAX_OUTPUTS) return bad(e, path, "outputs.paths", "at most %d paths", MAX_OUTPUTS);
    for (char **p = j->outputs; *p; p++)
        if (!abs_path_ok(*p)) return bad(e, path, "outputs.paths", "\"%.128s\" is not an absolute path without \"..\"", *p);
    json_t *mb = json_object_get(v, "max_bytes");
    if (mb) {
        if (!json_is_integer(mb) || json_integer_value(mb) < 1 || json_integer_value(mb) > OUTPUT_MAX_CAP)
            return bad(e, path, "outputs.max_bytes", "a whole number from 1 to %u", OUTPUT_MAX_CAP);
        j->output_max_bytes = (uint64_t)json_integer_value(mb);
    }
    return 0;
}

static int image_field(const char *path, json_t *o, sub_jobspec *j, sub_err *e) {
    int r = str_field(path, o, "image", &j->image, e);
    if (r < 0) return r;
    if (!j->image) return bad(e, path, "image", "missing: the job's image, pinned by digest (REGISTRY/REPO@sha256:...)");
    sub_err re = {0};
    if (sub_ref_parse(j->image, NULL, &j->ref, &re) < 0) return bad(e, path, "image", "%s", re.msg);
    if (j->ref.tag)
        return bad(e, path, "image", "\"%.200s\" names a tag; a jobspec pins its image by digest only "
                   "(REGISTRY/REPO@sha256:...): a tag can move", j->image);
    if (!j->ref.digest || !str_has_prefix(j->ref.digest, "sha256:"))
        return bad(e, path, "image", "\"%.200s\" has no sha256 digest (REGISTRY/REPO@sha256:...)", j->image);
    return 0;
}

/* The secret rule (jobspec.h): a name holding PASSWORD, SECRET or TOKEN, or
 * ending in _KEY (any case); a value holding "-----BEGIN" and "PRIVATE KEY". */
static bool ci_contains(const char *s, size_t n, const char *word) {
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (!strncasecmp(s + i, word, w)) return true;
    return false;
}

const char *sub_jobspec_secret_like(const char *kv) {
    const char *eq = strchr(kv, '=');
    size_t nl = eq ? (size_t)(eq - kv) : strlen(kv);
    static const char *const words[] = {"PASSWORD", "SECRET", "TOKEN"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (ci_contains(kv, nl, words[i])) return words[i];
    if (nl >= 4 && !strncasecmp(kv + nl - 4, "_KEY", 4)) return "_KEY";
    if (eq && strstr(eq + 1, "-----BEGIN") && strstr(eq + 1, "PRIVATE KEY")) return "PRIVATE KEY";
    return NULL;
}

static int tier_field(const char *path, json_t *o, sub_jobspec *j, sub_err *e) {
    uint32_t tier = 2;
    json_t *t = json_object_get(o, "tier");
    if (t && (!json_is_integer(t) || (json_integer_value(t) != 0 && json_integer_value(t) != 2)))
        return bad(e, path, "tier", "must be 0 (a process boundary) or 2 (a microVM, the default)");
    if (t) tier = (uint32_t)json_integer_value(t);
    j->tier = (uint8_t)tier;
    if (tier != 0) return 0;
    if (j->negress)
        return bad(e, path, "egress.allow", "tier 0 has no egress: loopback only; use tier 2 for allowed egress");
    if (j->user)
        return bad(e, path, "user", "tier 0 runs every job as its own per-job uid (never root); remove \"user\"");
    for (char **kv = j->env; kv && *kv; kv++) {
        const char *why = sub_jobspec_secret_like(*kv);
        if (!why) continue;
        const char *eq = strchr(*kv, '=');
        return bad(e, path, "env", "%.*s looks like a secret (%s): tier 0 refuses secret-like entries (a name "
                   "holding PASSWORD, SECRET or TOKEN or ending in _KEY, any case; a value with a PEM private "
                   "key); a tier-0 job gets no secrets", eq ? (int)(eq - *kv) : 64, *kv,
                   streq(why, "PRIVATE KEY") ? "its value holds a PEM private key" : why);
    }
    return 0;
}

static int policy_fields(const char *path, json_t *o, sub_jobspec *j, sub_err *e) {
    json_t *id = json_object_get(o, "identity"), *rp = json_object_get(o, "repo_prefix"),
           *any = json_object_get(o, "any_repo");
    if (any && !json_is_boolean(any)) return bad(e, path, "any_repo", "must be true or false");
    int n = !!id + !!rp + (any && json_is_true(any));
    if (n > 1) return bad(e, path, "identity", "give at most one of identity, repo_prefix and any_repo: true");
    j->policy = SUB_IDENTITY_EXACT;
    if (id) return str_field(path, o, "identity", &j->identity, e);
    if (rp) {
        j->policy = SUB_IDENTITY_REPO_PREFIX;
        return str_field(path, o, "repo_prefix", &j->identity, e);
    }
    if (any && json_is_true(any)) j->policy = SUB_IDENTITY_ANY_REPO;
    return 0;
}

int sub_jobspec_parse(const char *text, size_t len, const char *path, uint32_t timeout_max_s, sub_jobspec *out,
                      sub_err *e) {
    *out = (sub_jobspec){0};
    out->path = xstrdup(path ? path : "jobspec");
    path = out->path;
    _cleanup_json_ json_t *o = NULL;
    sub_err pe = {0};
    if (sub_json_parse(text, len, SUB_JOBSPEC_MAX, path, &o, &pe) < 0)
        return sub_err_setr(e, SUB_R_BAD_JOBSPEC, SUB_KIND_INPUT, -EINVAL, "%s", pe.msg);
    if (!json_is_object(o)) return bad(e, path, "(top)", "a jobspec is a JSON object");
    static const char *const keys[] = {"name", "image", "identity", "repo_prefix", "any_repo", "command", "args",
                                       "env", "workdir", "user", "stdin", "timeout", "vcpus", "memory_mb",
                                       "egress", "probes", "inputs", "outputs", "tier", NULL};
    sub_err ke = {0};
    if (sub_json_check_keys(o, path, keys, &ke) < 0) return bad(e, path, "(top)", "%s", ke.msg);
    int r;
    if ((r = str_field(path, o, "name", &out->name, e)) < 0) return r;
    if (!out->name) return bad(e, path, "name", "missing");
    if (!valid_name(out->name)) return bad(e, path, "name", "\"%.64s\": [a-z0-9][a-z0-9-]*, at most 63 characters", out->name);
    if ((r = image_field(path, o, out, e)) < 0 || (r = policy_fields(path, o, out, e)) < 0 ||
        (r = strv_field(path, o, "command", &out->command, e)) < 0 ||
        (r = strv_field(path, o, "args", &out->args, e)) < 0 || (r = env_field(path, o, &out->env, e)) < 0 ||
        (r = str_field(path, o, "workdir", &out->workdir, e)) < 0 || (r = user_field(path, o, &out->user, e)) < 0)
        return r;
    if (out->workdir && !abs_path_ok(out->workdir))
        return bad(e, path, "workdir", "an absolute path without \"..\"");
    json_t *in = json_object_get(o, "stdin");
    if (in) {
        if (!json_is_string(in)) return bad(e, path, "stdin", "must be a string");
        out->stdin_len = json_string_length(in);
        if (out->stdin_len > SUB_JOB_STDIN_MAX) return bad(e, path, "stdin", "more than %u bytes", SUB_JOB_STDIN_MAX);
        out->stdin_data = xstrndup(json_string_value(in), out->stdin_len);
    }
    if (!timeout_max_s) timeout_max_s = SUB_JOB_TIMEOUT_MAX_DEFAULT;
    json_t *t = json_object_get(o, "timeout");
    if (t && json_is_integer(t) && json_integer_value(t) > (json_int_t)timeout_max_s)
        return bad(e, path, "timeout", "%lld s is past this host's cap of %u s ($SUBSTRATE_JOB_TIMEOUT_MAX)",
                   (long long)json_integer_value(t), timeout_max_s);
    if ((r = uint_field(path, o, "timeout", true, 1, timeout_max_s, 0, &out->timeout_s, e)) < 0 ||
        (r = uint_field(path, o, "vcpus", false, 1, 16, 1, &out->vcpus, e)) < 0 ||
        (r = uint_field(path, o, "memory_mb", false, 128, 16384, 256, &out->memory_mb, e)) < 0)
        return r;
    json_t *eg = json_object_get(o, "egress");
    if (eg) {
        static const char *const ekeys[] = {"allow", NULL};
        if (!json_is_object(eg)) return bad(e, path, "egress", "must be {\"allow\": [\"HOST:PORT\", ...]}");
        if (sub_json_check_keys(eg, "egress", ekeys, &ke) < 0) return bad(e, path, "egress", "%s", ke.msg);
        json_t *al = json_object_get(eg, "allow");
        if (al && !json_is_array(al)) return bad(e, path, "egress.allow", "must be a list of \"HOST:PORT\"");
        if (al && (r = hostports(path, "egress.allow", al, MAX_EGRESS, &out->egress, &out->negress, e)) < 0) return r;
    }
    json_t *pr = json_object_get(o, "probes");
    if (pr) {
        if (!json_is_array(pr)) return bad(e, path, "probes", "must be a list of \"HOST:PORT\"");
        if ((r = hostports(path, "probes", pr, MAX_PROBES, &out->probes, &out->nprobes, e)) < 0) return r;
    }
    if ((r = inputs_field(path, o, out, e)) < 0 || (r = outputs_field(path, o, out, e)) < 0) return r;
    return tier_field(path, o, out, e);
}

int sub_jobspec_load(const char *path, uint32_t timeout_max_s, sub_jobspec *out, sub_err *e) {
    *out = (sub_jobspec){0};
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_JOBSPEC_MAX, &text, &len, e);
    if (r < 0) {
        sub_err_prefix(e, "jobspec %s", path);
        return r;
    }
    return sub_jobspec_parse(text, len, path, timeout_max_s, out, e);
}

void sub_jobspec_done(sub_jobspec *j) {
    free(j->path);
    free(j->name);
    free(j->image);
    sub_ref_free(&j->ref);
    free(j->identity);
    strv_free(j->command);
    strv_free(j->args);
    strv_free(j->env);
    free(j->workdir);
    free(j->user);
    free(j->stdin_data);
    free(j->egress);
    free(j->probes);
    for (size_t i = 0; i < j->ninputs; i++) {
        free(j->inputs[i].path);
        free(j->inputs[i].content);
    }
    free(j->inputs);
    strv_free(j->outputs);
    *j = (sub_jobspec){0};
}
