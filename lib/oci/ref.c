#include "substrate/ref.h"
#include "substrate/digest.h"
#include <ctype.h>
#include <string.h>

#define NAME_MAX_LEN 255

void sub_ref_free(sub_ref *r) {
    if (!r) return;
    free(r->registry);
    free(r->repository);
    free(r->tag);
    free(r->digest);
    memset(r, 0, sizeof *r);
}

char *sub_ref_name(const sub_ref *r) { return xasprintf("%s/%s", r->registry, r->repository); }

char *sub_ref_str(const sub_ref *r) {
    return xasprintf("%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
                     r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "");
}

static bool is_alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static bool is_alnum(char c) { return isalnum((unsigned char)c) != 0; }

int sub_tag_validate(const char *tag, sub_err *e) {
    size_t n = strlen(tag);
    if (n == 0) return sub_err_setr(e, SUB_R_INVALID_TAG, SUB_KIND_DEFAULT, -EINVAL, "empty tag");
    if (n > 128)
        return sub_err_setr(e, SUB_R_INVALID_TAG, SUB_KIND_DEFAULT, -EINVAL,
                            "tag \"%.40s...\" is %zu characters long; the limit is 128",
                           tag, n);
    if (!(is_alnum(tag[0]) || tag[0] == '_'))
        return sub_err_setr(e, SUB_R_INVALID_TAG, SUB_KIND_DEFAULT, -EINVAL,
                           "tag \"%s\" must start with a letter, digit or '_' (not '%c')", tag,
                           tag[0]);
    for (size_t i = 0; i < n; i++) {
        char c = tag[i];
        if (is_alnum(c) || c == '_' || c == '.' || c == '-') continue;
        if (c == '+')
            return sub_err_setr(e, SUB_R_INVALID_TAG, SUB_KIND_DEFAULT, -EINVAL,
                               "tag \"%s\" contains '+': OCI tags cannot carry semver build "
                               "metadata; use '-' or '_' instead (e.g. \"%.*s_%s\")",
                               tag, (int)i, tag, tag + i + 1);
        return sub_err_setr(e, SUB_R_INVALID_TAG, SUB_KIND_DEFAULT, -EINVAL,
                           "tag \"%s\" contains '%c'; tags may only use letters, digits, '_', '.' "
                           "and '-'",
                           tag, c);
    }
    return 0;
}

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.]|__|[-]+ */
static int check_component(const char *full, const char *c, size_t n, sub_err *e) {
    if (n == 0)
        return sub_err_set(e, -EINVAL, "repository \"%s\" has an empty path component", full);
    for (size_t i = 0; i < n; i++)
        if (isupper((unsigned char)c[i]))
            return sub_err_set(e, -EINVAL,
                               "repository \"%s\": uppercase letters are not allowed in repository "
                               "names (\"%.*s\")",
                               full, (int)n, c);
    if (!is_alnum_lower(c[0]) || !is_alnum_lower(c[n - 1]))
        return sub_err_set(e, -EINVAL,
                           "repository \"%s\": component \"%.*s\" must start and end with a "
                           "lowercase letter or digit",
                           full, (int)n, c);
    size_t i = 0;
    while (i < n) {
        if (is_alnum_lower(c[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !is_alnum_lower(c[j])) j++;
        size_t sl = j - i;
        const char *s = c + i;
        bool ok = (sl == 1 && (s[0] == '.' || s[0] == '_')) || (sl == 2 && s[0] == '_' && s[1] == '_');
        if (!ok) {
            ok = true;
            for (size_t k = 0; k < sl; k++)
                if (s[k] != '-') ok = false;
        }
        if (!ok)
            return sub_err_set(e, -EINVAL,
                               "repository \"%s\": \"%.*s\" is not a valid separator in \"%.*s\" "
                               "(use '.', '_', '__' or dashes; only [a-z0-9] otherwise)",
                               full, (int)sl, s, (int)n, c);
        i = j;
    }
    return 0;
}

int sub_repo_validate(const char *repo, sub_err *e) {
    if (!*repo) return sub_err_set(e, -EINVAL, "empty repository name");
    const char *p = repo;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        int r = check_component(repo, p, n, e);
        if (r < 0) return r;
        if (!slash) break;
        p = slash + 1;
    }
    return 0;
}

/* domain := host[:port]; host := domain-name | IPv4 | [IPv6] */
static int check_registry(const char *d, sub_err *e) {
    const char *port = NULL;
    size_t hl;
    if (d[0] == '[') {
        const char *close = strchr(d, ']');
        if (!close) return sub_err_set(e, -EINVAL, "registry \"%s\": unterminated '[' in IPv6 address", d);
        for (const char *q = d + 1; q < close; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
                return sub_err_set(e, -EINVAL, "registry \"%s\": bad IPv6 address", d);
        if (close[1] == ':') port = close + 2;
        else if (close[1]) return sub_err_set(e, -EINVAL, "registry \"%s\": junk after ']'", d);
        hl = 0;
    } else {
        const char *colon = strchr(d, ':');
        hl = colon ? (size_t)(colon - d) : strlen(d);
        if (colon) port = colon + 1;
        if (hl == 0) return sub_err_set(e, -EINVAL, "registry \"%s\" has an empty host name", d);
        /* dot-separated components of [A-Za-z0-9-], no leading/trailing '-' */
        size_t i = 0;
        while (i < hl) {
            size_t j = i;
            while (j < hl && d[j] != '.') j++;
            if (j == i)
                return sub_err_set(e, -EINVAL, "registry \"%s\": empty host name component", d);
            for (size_t k = i; k < j; k++)
                if (!is_alnum(d[k]) && d[k] != '-')
                    return sub_err_set(e, -EINVAL,
                                       "registry \"%s\": '%c' is not allowed in a host name", d,
                                       d[k]);
            if (d[i] == '-' || d[j - 1] == '-')
                return sub_err_set(e, -EINVAL,
                                   "registry \"%s\": host name components cannot start or end "
                                   "with '-'",
                                   d);
            i = j + 1;
            if (j < hl && j + 1 == hl)
                return sub_err_set(e, -EINVAL, "registry \"%s\": host name ends with '.'", d);
        }
    }
    if (port) {
        if (!*port) return sub_err_set(e, -EINVAL, "registry \"%s\": empty port after ':'", d);
        long v = 0;
        for (const char *q = port; *q; q++) {
            if (!isdigit((unsigned char)*q))
                return sub_err_set(e, -EINVAL, "registry \"%s\": port must be a number", d);
            v = v * 10 + (*q - '0');
            if (v > 65535) break;
        }
        if (v < 1 || v > 65535)
            return sub_err_set(e, -EINVAL, "registry \"%s\": port must be 1-65535", d);
    }
    return 0;
}

static bool looks_like_registry(const char *c, size_t n) {
    if (n == 9 && !memcmp(c, "localhost", 9)) return true;
    for (size_t i = 0; i < n; i++)
        if (c[i] == '.' || c[i] == ':' || c[i] == '[') return true;
    for (size_t i = 0; i < n; i++)
        if (isupper((unsigned char)c[i])) return true; /* as distribution does */
    return false;
}

int sub_ref_parse(const char *s, const char *default_registry, sub_ref *out, sub_err *e) {
    memset(out, 0, sizeof *out);
    if (!s || !*s) return sub_err_set(e, -EINVAL, "empty image reference");
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
            return sub_err_set(e, -EINVAL,
                               "image reference \"%s\" contains whitespace or a control/non-ASCII "
                               "character",
                               s);
    sub_ref r = {0};
    _cleanup_free_ char *work = xstrdup(s);
    char *at = strchr(work, '@');
    if (at) {
        *at = 0;
        const char *d = at + 1;
        if (strchr(d, '@'))
            return sub_err_set(e, -EINVAL, "image reference \"%s\" has more than one '@'", s);
        sub_err de = {0};
        if (sub_digest_validate(d, &de) < 0)
            return sub_err_set(e, -EINVAL, "image reference \"%s\": %s", s, de.msg);
        r.digest = xstrdup(d);
    }
    /* tag: after the last ':' that follows the last '/' */
    char *slash = strrchr(work, '/');
    char *colon = strrchr(slash ? slash : work, ':');
    if (colon) {
        *colon = 0;
        sub_err te = {0};
        if (sub_tag_validate(colon + 1, &te) < 0) {
            sub_ref_free(&r);
            return sub_err_set(e, -EINVAL, "image reference \"%s\": %s", s, te.msg);
        }
        r.tag = xstrdup(colon + 1);
    }
    char *name = work;
    if (!*name) {
        sub_ref_free(&r);
        return sub_err_set(e, -EINVAL, "image reference \"%s\" has no repository name", s);
    }
    char *first = strchr(name, '/');
    const char *repo;
    if (first && looks_like_registry(name, (size_t)(first - name))) {
        *first = 0;
        int rr = check_registry(name, e);
        if (rr < 0) {
            sub_ref_free(&r);
            sub_err_prefix(e, "image reference \"%s\"", s);
            return rr;
        }
        r.registry = xstrdup(name);
        repo = first + 1;
    } else {
        if (!default_registry) {
            sub_ref_free(&r);
            return sub_err_set(e, -EINVAL,
                               "image reference \"%s\" names no registry (write host:port/%s)", s,
                               s);
        }
        r.registry = xstrdup(default_registry);
        repo = name;
    }
    int rr = sub_repo_validate(repo, e);
    if (rr < 0) {
        sub_ref_free(&r);
        sub_err_prefix(e, "image reference \"%s\"", s);
        return rr;
    }
    size_t full = strlen(r.registry) + 1 + strlen(repo);
    if (full > NAME_MAX_LEN) {
        sub_ref_free(&r);
        return sub_err_set(e, -EINVAL,
                           "image reference \"%.60s...\": name is %zu characters; the limit is %d",
                           s, full, NAME_MAX_LEN);
    }
    r.repository = xstrdup(repo);
    *out = r;
    return 0;
}
