/* The golden VM spec: YAML -> sub_vm_spec, its canonical JSON form, the two
 * cache keys and the diff between two specs (vmspec.h). The YAML is read
 * through lib/core/yamltree.c; value checks are "why" functions: NULL when
 * the value is fine, else a phrase saying what is wrong. */
#include "substrate/vmspec.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/sign.h"
#include "substrate/strbuf.h"
#include "substrate/yamltree.h"
#include <dirent.h>
#include <string.h>

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define TIB (1ull << 40)
#define USER_NAME_MAX 32
#define SSH_KEY_MAX 16384 /* a 16384-bit RSA key is about 2.8 KB of base64 */
#define IMAGE_KEY_SCHEME "substrate-vm-image/1"
#define BOOT_KEY_SCHEME "substrate-vm-boot/1"

static const char *const suites[] = {"bookworm", "trixie"};
static const char *const key_types[] = {
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
};

/* ---- the struct ---------------------------------------------------------------------------- */

static void set_defaults(sub_vm_spec *s) {
    memset(s, 0, sizeof *s);
    s->cpus = 2;
    s->memory_bytes = 4 * GIB;
    s->disk_bytes = 16 * GIB;
    s->ssh_port = 2222;
}

static void user_done(sub_vm_user *u) {
    free(u->name);
    strv_free(u->ssh_keys);
    memset(u, 0, sizeof *u);
}

void sub_vm_spec_done(sub_vm_spec *s) {
    if (!s) return;
    free(s->path);
    free(s->name);
    free(s->suite);
    strv_free(s->base_packages);
    strv_free(s->packages);
    for (size_t i = 0; i < s->nusers; i++) user_done(&s->users[i]);
    free(s->users);
    strv_free(s->services);
    memset(s, 0, sizeof *s);
}

/* Sort a vector and drop repeats, in place. */
static void strv_sort_uniq(char **v) {
    size_t n = strv_len(v), k = 0;
    qsort(v, n, sizeof *v, strcmp_ptr);
    for (size_t i = 0; i < n; i++) {
        if (k && streq(v[k - 1], v[i]))
            free(v[i]);
        else
            v[k++] = v[i];
    }
    v[k] = NULL;
}

char **sub_vm_spec_all_packages(const sub_vm_spec *s) {
    char **v = xcalloc(strv_len(s->base_packages) + strv_len(s->packages) + 1, sizeof *v);
    size_t n = 0;
    for (char **p = s->base_packages; p && *p; p++) v[n++] = xstrdup(*p);
    for (char **p = s->packages; p && *p; p++) v[n++] = xstrdup(*p);
    strv_sort_uniq(v);
    return v;
}

/* "4Gi", "512Mi", "1536Mi", or bytes when not a whole number of KiB */
static char *size_str(uint64_t b) {
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {{"Ti", TIB}, {"Gi", GIB}, {"Mi", MIB}, {"Ki", KIB}};
    for (size_t i = 0; i < ARRAY_SIZE(units); i++)
        if (b && b % units[i].mul == 0)
            return xasprintf("%llu%s", (unsigned long long)(b / units[i].mul), units[i].unit);
    return xasprintf("%llu", (unsigned long long)b);
}

/* ---- value checks -------------------------------------------------------------------------- */

static const char *why_vm_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0) return "is empty";
    if (n > SUB_VM_NAME_MAX) return "is longer than 63 characters";
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || (*p == '-' && p != s)))
            return "is not a name (lowercase letters, digits and '-', not starting with '-')";
    return NULL;
}

/* Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+ */
static const char *why_package(const char *s) {
    if (strlen(s) < 2) return "is not a Debian package name (at least two characters)";
    if (strlen(s) > 128) return "is longer than 128 characters";
    for (const char *p = s; *p; p++) {
        bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (!alnum && (p == s || !strchr("+.-", *p)))
            return "is not a Debian package name ([a-z0-9][a-z0-9+.-]+, e.g. htop or g++)";
    }
    return NULL;
}

static const char *why_user_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0) return "is empty";
    if (n > USER_NAME_MAX) return "is longer than 32 characters";
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_' ||
              (p != s && ((*p >= '0' && *p <= '9') || *p == '-'))))
            return "is not a user name ([a-z_][a-z0-9_-]*, e.g. substrate)";
    if (streq(s, "root")) return "is root, which every image has (name another user)";
    return NULL;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* "TYPE BASE64 [comment]" on one line; the blob must name the same type. */
static const char *why_ssh_key(const char *s) {
    static const char *const form = "is not an SSH public key (one line \"TYPE AAAA... comment\", "
                                    "TYPE ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521, "
                                    "as in a .pub file)";
    if (strlen(s) > SSH_KEY_MAX) return "is longer than 16384 characters";
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return *p == '\n' || *p == '\r' ? "spans more than one line (give one key per item)"
                                            : "holds a control character";
    const char *sp = strchr(s, ' ');
    if (!sp) return form;
    size_t tlen = (size_t)(sp - s);
    bool known = false;
    for (size_t i = 0; i < ARRAY_SIZE(key_types); i++)
        if (strlen(key_types[i]) == tlen && !memcmp(s, key_types[i], tlen)) known = true;
    if (!known) return form;
    const char *b = sp + 1, *end = strchr(b, ' ');
    size_t blen = end ? (size_t)(end - b) : strlen(b);
    if (blen < 8 || memcmp(b, "AAAA", 4) != 0) return form;
    _cleanup_free_ unsigned char *raw = NULL;
    size_t n = 0;
    if (sub_b64_decode(b, blen, NULL, "key", &raw, &n, NULL) < 0)
        return "is not an SSH public key: its key data is not valid base64";
    if (n < 4 || be32(raw) != tlen || n < 4 + tlen || memcmp(raw + 4, s, tlen) != 0)
        return "is not an SSH public key: its key data is not a key of the type it names";
    return NULL;
}

/* ---- the base package list ----------------------------------------------------------------- */

static int read_base_packages(const char *repo, sub_vm_spec *s, sub_err *e) {
    _cleanup_free_ char *path = xasprintf("%s/%s", repo, SUB_VM_PACKAGE_LIST);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_VM_SPEC_MAX, &text, &len, e);
    if (r < 0) {
        sub_err_prefix(e, "the golden VM's base package list");
        return r;
    }
    char **v = xcalloc(1, sizeof *v);
    size_t line = 1;
    for (char *p = text; *p;) {
        if (*p == '#') {
            while (*p && *p != '\n') p++;
            continue;
        }
        if (*p == '\n') line++;
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            p++;
            continue;
        }
        size_t k = strcspn(p, " \t\r\n#");
        _cleanup_free_ char *w = xstrndup(p, k);
        const char *why = why_package(w);
        if (why) {
            strv_free(v);
            return sub_err_setk(e, SUB_KIND_ENV, -EINVAL, "%s:%zu: \"%s\" %s", path, line, w, why);
        }
        strv_push(&v, w);
        p += k;
    }
    strv_sort_uniq(v);
    s->base_packages = v;
    return 0;
}

/* ---- reading the tree ---------------------------------------------------------------------- */

enum { K_NAME, K_SUITE, K_CPUS, K_MEMORY, K_DISK, K_PACKAGES, K_USERS, K_SERVICES, K_SSH_PORT, K_MAX };
static const char *const top_keys[K_MAX] = {
    "name", "suite", "cpus", "memory", "disk", "packages", "users", "services", "ssh_port",
};
enum { U_NAME, U_SSH_KEYS, U_SUDO, U_MAX };
static const char *const user_keys[U_MAX] = {"name", "ssh_keys", "sudo"};

typedef struct pctx {
    sub_yctx y;
    const char *repo; /* may be NULL */
} pctx;

static int get_size(pctx *c, const sub_ynode *n, const char *field, uint64_t min, uint64_t max,
                    uint64_t *out) {
    const char *s, *why;
    int r = sub_yget_str(&c->y, n, field, &s);
    if (r < 0) return r;
    if (!(why = sub_parse_size(s, out)) && (*out < min || *out > max))
        why = *out < min ? "is too small" : "is too large";
    if (why) {
        _cleanup_free_ char *lo = size_str(min), *hi = size_str(max);
        return sub_ybad(&c->y, n, field, "%s %s (expected a size from %s to %s, e.g. %s)",
                        sub_yshow(&c->y, s), why, lo, hi, field[0] == 'm' ? "4Gi" : "16Gi");
    }
    return 0;
}

/* A list of names, each checked by why; a name twice is refused. Result sorted. */
static int get_names(pctx *c, const sub_ynode *n, const char *field,
                     const char *(*why)(const char *), bool dups_ok, char ***out) {
    int r = sub_yget_seq(&c->y, n, field);
    if (r < 0) return r;
    _cleanup_strv_ char **v = xcalloc(n->n + 1, sizeof *v);
    for (size_t i = 0; i < n->n; i++) {
        char f[96];
        const char *s, *w;
        sub_yindex(f, sizeof f, field, i);
        if ((r = sub_yget_str(&c->y, n->kids[i], f, &s)) < 0) return r;
        if ((w = why(s))) return sub_ybad(&c->y, n->kids[i], f, "%s %s", sub_yshow(&c->y, s), w);
        for (size_t j = 0; j < i && !dups_ok; j++)
            if (streq(v[j], s))
                return sub_ybad(&c->y, n->kids[i], f, "%s is listed twice (first at line %zu)",
                                sub_yshow(&c->y, s), n->kids[j]->line);
        v[i] = xstrdup(s);
    }
    strv_sort_uniq(v);
    *out = TAKE_PTR(v);
    return 0;
}

static int filter_service_yaml(const struct dirent *d) {
    size_t n = strlen(d->d_name), k = strlen(".service.yaml");
    return n > k && streq(d->d_name + n - k, ".service.yaml");
}

/* "agent, hello" (what REPO/platform/manifests holds), or a phrase when nothing */
static char *available_services(const char *repo) {
    _cleanup_free_ char *dir = xasprintf("%s/%s", repo, SUB_VM_MANIFEST_DIR);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, filter_service_yaml, alphasort);
    if (n <= 0) {
        free(list);
        return xasprintf("none: %s holds no <name>.service.yaml", dir);
    }
    _cleanup_(sub_buf_freep) sub_buf b = {0};
    for (int i = 0; i < n; i++) {
        size_t len = strlen(list[i]->d_name) - strlen(".service.yaml");
        sub_buf_printf(&b, "%s%.*s", i ? ", " : "", (int)len, list[i]->d_name);
        free(list[i]);
    }
    free(list);
    return sub_buf_detach(&b, NULL);
}

static int parse_services(pctx *c, const sub_ynode *n, sub_vm_spec *s) {
    int r = get_names(c, n, "services", why_vm_name, false, &s->services);
    if (r < 0 || !c->repo) return r;
    for (size_t i = 0; i < n->n; i++) {
        const char *name = n->kids[i]->value;
        _cleanup_free_ char *p =
            xasprintf("%s/%s/%s.service.yaml", c->repo, SUB_VM_MANIFEST_DIR, name);
        if (sub_path_exists(p)) continue;
        char f[96];
        _cleanup_free_ char *avail = available_services(c->repo);
        return sub_ybad(&c->y, n->kids[i], sub_yindex(f, sizeof f, "services", i),
                        "no service %s: there is no %s/%s.service.yaml (available: %s)",
                        sub_yshow(&c->y, name), SUB_VM_MANIFEST_DIR, name, avail);
    }
    return 0;
}

static int parse_user(pctx *c, const sub_ynode *n, const char *field, sub_vm_user *u) {
    const sub_ynode *vals[U_MAX];
    int r = sub_yread_map(&c->y, n, field, user_keys, U_MAX, vals);
    if (r < 0) return r;
    char f[128];
    const char *s, *why;
    if (!vals[U_NAME])
        return sub_ybad(&c->y, n, sub_yfield(f, sizeof f, field, "name"),
                        "missing: every user needs a name (e.g. name: substrate)");
    if ((r = sub_yget_str(&c->y, vals[U_NAME], sub_yfield(f, sizeof f, field, "name"), &s)) < 0)
        return r;
    if ((why = why_user_name(s))) return sub_ybad(&c->y, vals[U_NAME], f, "%s %s", sub_yshow(&c->y, s), why);
    u->name = xstrdup(s);
    if (vals[U_SUDO] &&
        (r = sub_yget_bool(&c->y, vals[U_SUDO], sub_yfield(f, sizeof f, field, "sudo"), &u->sudo)) < 0)
        return r;
    if (!vals[U_SSH_KEYS] || sub_ynull(vals[U_SSH_KEYS])) {
        u->ssh_keys = xcalloc(1, sizeof *u->ssh_keys);
        return 0;
    }
    /* keys keep their order: it is authorized_keys' order */
    const sub_ynode *ks = vals[U_SSH_KEYS];
    if ((r = sub_yget_seq(&c->y, ks, sub_yfield(f, sizeof f, field, "ssh_keys"))) < 0) return r;
    u->ssh_keys = xcalloc(ks->n + 1, sizeof *u->ssh_keys);
    for (size_t i = 0; i < ks->n; i++) {
        char fk[160];
        sub_yindex(fk, sizeof fk, f, i);
        if ((r = sub_yget_str(&c->y, ks->kids[i], fk, &s)) < 0) return r;
        if ((why = why_ssh_key(s))) return sub_ybad(&c->y, ks->kids[i], fk, "%s %s", sub_yshow(&c->y, s), why);
        for (size_t j = 0; j < i; j++)
            if (streq(u->ssh_keys[j], s))
                return sub_ybad(&c->y, ks->kids[i], fk, "the same key as ssh_keys[%zu]", j);
        u->ssh_keys[i] = xstrdup(s);
    }
    return 0;
}

static int parse_users(pctx *c, const sub_ynode *n, sub_vm_spec *s) {
    int r = sub_yget_seq(&c->y, n, "users");
    if (r < 0) return r;
    s->users = xcalloc(n->n ? n->n : 1, sizeof *s->users);
    for (size_t i = 0; i < n->n; i++) {
        char f[96];
        sub_yindex(f, sizeof f, "users", i);
        r = parse_user(c, n->kids[i], f, &s->users[i]);
        s->nusers = i + 1; /* done() frees what parse_user set, even on failure */
        if (r < 0) return r;
        for (size_t j = 0; j < i; j++)
            if (streq(s->users[j].name, s->users[i].name))
                return sub_ybad(&c->y, n->kids[i], f, "user %s is listed twice (first users[%zu])",
                                sub_yshow(&c->y, s->users[i].name), j);
    }
    return 0;
}

static int parse_root(pctx *c, const sub_ynode *root, sub_vm_spec *s) {
    s->name = xstrdup("golden");
    s->suite = xstrdup(suites[0]);
    s->packages = xcalloc(1, sizeof *s->packages);
    s->services = xcalloc(1, sizeof *s->services);
    if (!root || sub_ynull(root)) return 0; /* an empty spec: every default */
    if (root->type != SUB_Y_MAP)
        return sub_ybad(&c->y, root, NULL,
                        "a VM spec is a mapping of fields (suite: ..., cpus: ...), not %s",
                        sub_ykind(root));
    const sub_ynode *vals[K_MAX];
    int r = sub_yread_map(&c->y, root, NULL, top_keys, K_MAX, vals);
    if (r < 0) return r;
    const char *str, *why;
    uint64_t u;
    int e;
    if (vals[K_NAME]) {
        if ((r = sub_yget_str(&c->y, vals[K_NAME], "name", &str)) < 0) return r;
        if ((why = why_vm_name(str))) return sub_ybad(&c->y, vals[K_NAME], "name", "%s %s", sub_yshow(&c->y, str), why);
        free(s->name);
        s->name = xstrdup(str);
    }
    if (vals[K_SUITE]) {
        if ((r = sub_yget_enum(&c->y, vals[K_SUITE], "suite", suites, ARRAY_SIZE(suites), &e)) < 0)
            return r;
        free(s->suite);
        s->suite = xstrdup(suites[e]);
    }
    if (vals[K_CPUS]) {
        if ((r = sub_yget_uint(&c->y, vals[K_CPUS], "cpus", 1, 64, &u)) < 0) return r;
        s->cpus = (uint32_t)u;
    }
    if (vals[K_MEMORY] && (r = get_size(c, vals[K_MEMORY], "memory", 512 * MIB, 256 * GIB, &s->memory_bytes)) < 0)
        return r;
    if (vals[K_DISK] && (r = get_size(c, vals[K_DISK], "disk", 4 * GIB, 2 * TIB, &s->disk_bytes)) < 0)
        return r;
    if (vals[K_PACKAGES]) {
        strv_free(s->packages);
        s->packages = NULL;
        if ((r = get_names(c, vals[K_PACKAGES], "packages", why_package, true, &s->packages)) < 0)
            return r;
    }
    if (vals[K_USERS] && (r = parse_users(c, vals[K_USERS], s)) < 0) return r;
    if (vals[K_SERVICES]) {
        strv_free(s->services);
        s->services = NULL;
        if ((r = parse_services(c, vals[K_SERVICES], s)) < 0) return r;
    }
    if (vals[K_SSH_PORT]) {
        if ((r = sub_yget_uint(&c->y, vals[K_SSH_PORT], "ssh_port", 1024, 65535, &u)) < 0) return r;
        s->ssh_port = (uint16_t)u;
    }
    return 0;
}

int sub_vm_spec_parse(const char *text, size_t len, const char *path, const char *repo_dir,
                      sub_vm_spec *out, sub_err *e) {
    set_defaults(out);
    pctx c = {.y = {.file = path ? path : "<vm spec>", .doc = "VM spec", .reason = SUB_R_BAD_VM_SPEC,
                    .e = e},
              .repo = repo_dir};
    if (len > SUB_VM_SPEC_MAX)
        return sub_yfail_at(&c.y, 0, 0, NULL, "the spec is %zu bytes; the limit is %u", len,
                            SUB_VM_SPEC_MAX);
    _cleanup_ynode_ sub_ynode *root = NULL;
    int r = sub_yaml_load(&c.y, text, len, &root);
    if (r == 0) r = parse_root(&c, root, out);
    if (r == 0 && repo_dir) r = read_base_packages(repo_dir, out, e);
    if (r == 0 && !out->base_packages) out->base_packages = xcalloc(1, sizeof *out->base_packages);
    if (r == 0 && path) out->path = xstrdup(path);
    if (r < 0) sub_vm_spec_done(out);
    return r;
}

int sub_vm_spec_load(const char *path, const char *repo_dir, sub_vm_spec *out, sub_err *e) {
    set_defaults(out);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_VM_SPEC_MAX, &text, &len, e);
    if (r == -EFBIG)
        return sub_err_setr(e, SUB_R_BAD_VM_SPEC, SUB_KIND_INPUT, -EINVAL,
                            "%s: the spec is larger than %u bytes", path, SUB_VM_SPEC_MAX);
    if (r < 0) {
        if (r == -ENOENT && e) e->kind = SUB_KIND_INPUT;
        return r;
    }
    return sub_vm_spec_parse(text, len, path, repo_dir, out, e);
}

/* ---- canonical JSON and keys --------------------------------------------------------------- */

static json_t *strv_json(char *const *v) {
    json_t *a = json_array();
    for (; v && *v; v++) json_array_append_new(a, sub_json_str(*v));
    return a;
}

static json_t *users_json(const sub_vm_spec *s) {
    json_t *a = json_array();
    for (size_t i = 0; i < s->nusers; i++)
        json_array_append_new(a, json_pack("{s:o,s:o,s:b}", "name", sub_json_str(s->users[i].name),
                                           "ssh_keys", strv_json(s->users[i].ssh_keys), "sudo",
                                           s->users[i].sudo));
    return a;
}

static char *dump(json_t *o) {
    char *j = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(o);
    return j ? j : xstrdup("null");
}

char *sub_vm_spec_to_json(const sub_vm_spec *s) {
    json_t *o = json_object();
    json_object_set_new(o, "name", sub_json_str(s->name));
    json_object_set_new(o, "suite", sub_json_str(s->suite));
    json_object_set_new(o, "cpus", json_integer(s->cpus));
    json_object_set_new(o, "memory_bytes", json_integer((json_int_t)s->memory_bytes));
    json_object_set_new(o, "disk_bytes", json_integer((json_int_t)s->disk_bytes));
    json_object_set_new(o, "base_packages", strv_json(s->base_packages));
    json_object_set_new(o, "packages", strv_json(s->packages));
    json_object_set_new(o, "users", users_json(s));
    json_object_set_new(o, "services", strv_json(s->services));
    json_object_set_new(o, "ssh_port", json_integer(s->ssh_port));
    return dump(o);
}

static bool hexish(const char *s) {
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return false;
    return true;
}

int sub_vm_spec_image_key(const sub_vm_spec *s, const char *mirror_release_digest,
                          const char *commit, char out[SUB_DIGEST_MAX], sub_err *e) {
    out[0] = 0;
    if (!mirror_release_digest || sub_digest_validate(mirror_release_digest, NULL) < 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "the VM image key needs the digest of the mirror's Release file "
                            "(sha256:<64 hex>)");
    if (!commit || strlen(commit) < 7 || strlen(commit) > 64 || !hexish(commit))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "the VM image key needs Substrate's commit (hex, as git rev-parse "
                            "HEAD gives it)");
    _cleanup_strv_ char **all = sub_vm_spec_all_packages(s);
    json_t *o = json_object();
    json_object_set_new(o, "scheme", json_string(IMAGE_KEY_SCHEME));
    json_object_set_new(o, "suite", sub_json_str(s->suite));
    json_object_set_new(o, "disk_bytes", json_integer((json_int_t)s->disk_bytes));
    json_object_set_new(o, "packages", strv_json(all));
    json_object_set_new(o, "users", users_json(s));
    json_object_set_new(o, "services", strv_json(s->services));
    json_object_set_new(o, "mirror_release", json_string(mirror_release_digest));
    json_object_set_new(o, "commit", json_string(commit));
    _cleanup_free_ char *j = dump(o);
    return sub_sha256_buf(j, strlen(j), out, e);
}

void sub_vm_spec_boot_key(const sub_vm_spec *s, char out[SUB_DIGEST_MAX]) {
    _cleanup_free_ char *j =
        dump(json_pack("{s:s,s:I,s:I,s:I}", "scheme", BOOT_KEY_SCHEME, "cpus", (json_int_t)s->cpus,
                       "memory_bytes", (json_int_t)s->memory_bytes, "ssh_port",
                       (json_int_t)s->ssh_port));
    if (sub_sha256_buf(j, strlen(j), out, NULL) < 0) out[0] = 0;
}

/* ---- diff ---------------------------------------------------------------------------------- */

const char *sub_vm_change_str(sub_vm_change c) {
    switch (c) {
    case SUB_VM_SAME: return "same";
    case SUB_VM_RESTART: return "restart";
    case SUB_VM_REBUILD: return "rebuild";
    }
    return "?";
}

static bool strv_eq(char *const *a, char *const *b) {
    size_t n = strv_len(a);
    if (n != strv_len(b)) return false;
    for (size_t i = 0; i < n; i++)
        if (!streq(a[i], b[i])) return false;
    return true;
}

static bool users_eq(const sub_vm_spec *a, const sub_vm_spec *b) {
    if (a->nusers != b->nusers) return false;
    for (size_t i = 0; i < a->nusers; i++)
        if (!streq(a->users[i].name, b->users[i].name) || a->users[i].sudo != b->users[i].sudo ||
            !strv_eq(a->users[i].ssh_keys, b->users[i].ssh_keys))
            return false;
    return true;
}

static bool in_sorted(char *const *v, const char *s) {
    for (; v && *v; v++)
        if (streq(*v, s)) return true;
    return false;
}

/* "packages changed (added a, b; removed c)" for two sorted lists */
static void note_list(sub_buf *b, const char *what, char *const *old, char *const *new_) {
    if (strv_eq(old, new_)) return;
    sub_buf_printf(b, "%s%s changed (", b->len ? ", " : "", what);
    const char *sep = "added ";
    for (char *const *p = new_; p && *p; p++)
        if (!in_sorted(old, *p)) {
            sub_buf_printf(b, "%s%s", sep, *p);
            sep = " ";
        }
    const char *sep2 = streq(sep, " ") ? "; removed " : "removed ";
    for (char *const *p = old; p && *p; p++)
        if (!in_sorted(new_, *p)) {
            sub_buf_printf(b, "%s%s", sep2, *p);
            sep2 = " ";
        }
    sub_buf_putc(b, ')');
}

static void note_size(sub_buf *b, const char *what, uint64_t a, uint64_t c) {
    if (a == c) return;
    _cleanup_free_ char *x = size_str(a), *y = size_str(c);
    sub_buf_printf(b, "%s%s %s -> %s", b->len ? ", " : "", what, x, y);
}

static void note_uint(sub_buf *b, const char *what, uint64_t a, uint64_t c) {
    if (a != c)
        sub_buf_printf(b, "%s%s %llu -> %llu", b->len ? ", " : "", what, (unsigned long long)a,
                       (unsigned long long)c);
}

static void note_str(sub_buf *b, const char *what, const char *a, const char *c) {
    if (!streq(a, c) && (a || c))
        sub_buf_printf(b, "%s%s %s -> %s", b->len ? ", " : "", what, a ? a : "(none)",
                       c ? c : "(none)");
}

sub_vm_change sub_vm_spec_diff(const sub_vm_spec *old, const sub_vm_inputs *old_in,
                               const sub_vm_spec *new_, const sub_vm_inputs *new_in, char **why) {
    _cleanup_(sub_buf_freep) sub_buf b = {0};
    note_str(&b, "suite", old->suite, new_->suite);
    note_size(&b, "disk", old->disk_bytes, new_->disk_bytes);
    _cleanup_strv_ char **pa = sub_vm_spec_all_packages(old), **pb = sub_vm_spec_all_packages(new_);
    note_list(&b, "packages", pa, pb);
    if (!users_eq(old, new_)) sub_buf_printf(&b, "%susers changed", b.len ? ", " : "");
    note_list(&b, "services", old->services, new_->services);
    if (old_in || new_in) {
        const sub_vm_inputs none = {0}, *x = old_in ? old_in : &none, *y = new_in ? new_in : &none;
        note_str(&b, "commit", x->commit, y->commit);
        if (!streq(x->release_digest, y->release_digest) && (x->release_digest || y->release_digest))
            sub_buf_printf(&b, "%sthe mirror's Release file changed", b.len ? ", " : "");
    }
    bool rebuild = b.len > 0;
    note_uint(&b, "cpus", old->cpus, new_->cpus);
    note_size(&b, "memory", old->memory_bytes, new_->memory_bytes);
    note_uint(&b, "ssh_port", old->ssh_port, new_->ssh_port);
    sub_vm_change c = rebuild ? SUB_VM_REBUILD : b.len ? SUB_VM_RESTART : SUB_VM_SAME;
    if (why) {
        if (c == SUB_VM_SAME)
            sub_buf_puts(&b, "no change");
        else
            sub_buf_puts(&b, rebuild ? ": rebuild" : ": restart without rebuild");
        *why = sub_buf_detach(&b, NULL);
    }
    return c;
}
