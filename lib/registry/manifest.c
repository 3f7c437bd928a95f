/* The distribution API's manifests, tags and ping (see registry.h). Every
 * manifest is hashed as it arrives and checked against the digest asked for
 * and the one the registry claims. */
#include "client-internal.h"
#include "substrate/json.h"
#include "substrate/ref.h"
#include <string.h>

#define MAX_TAG_PAGES 1000

int sub_reg_ping(sub_reg *r, sub_err *e) {
    xfer x;
    xfer_init(&x, "GET");
    x.url = reg_url(r, "/v2/");
    x.what = xasprintf("registry %s", r->host);
    x.out_max = 65536;
    int rr = reg_perform(r, &x, e);
    if (rr == 0 && x.status != 200) {
        rr = reg_status_error(r, &x, e);
        sub_err_prefix(e, "%s does not answer as a distribution (OCI) registry", r->host);
    }
    xfer_done(&x);
    return rr;
}

int sub_reg_manifest_head(sub_reg *r, const char *repo, const char *ref,
                          char digest_out[SUB_DIGEST_MAX], char **media_type, uint64_t *size,
                          sub_err *e) {
    bool isd;
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0 || (rr = reg_check_ref(ref, &isd, e)) < 0) return rr;
    xfer x;
    xfer_init(&x, "HEAD");
    x.url = reg_url(r, "/v2/%s/manifests/%s", repo, ref);
    x.what = xasprintf("manifest %s%s%s", repo, isd ? "@" : ":", ref);
    x.accept = SUB_MT_ACCEPT_MANIFESTS;
    rr = reg_perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status == 404) {
        rr = 0;
        goto out;
    }
    if (x.status != 200) {
        rr = reg_status_error(r, &x, e);
        goto out;
    }
    const char *hd;
    if ((rr = reg_header_digest(r, &x, &hd, e)) < 0) goto out;
    if (isd && hd && strcmp(hd, ref) != 0) {
        rr = sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                          "digest mismatch for %s: expected %s, the registry at %s says %s", x.what,
                          ref, r->host, hd);
        goto out;
    }
    if (digest_out) snprintf(digest_out, SUB_DIGEST_MAX, "%s", hd ? hd : (isd ? ref : ""));
    if (media_type) *media_type = x.ctype ? sub_mt_normalize(x.ctype) : NULL;
    if (size) *size = x.clen >= 0 ? (uint64_t)x.clen : 0;
    rr = 1;
out:
    xfer_done(&x);
    return rr;
}

int sub_reg_manifest_get(sub_reg *r, const char *repo, const char *ref, char **body, size_t *len,
                         char **media_type, char digest_out[SUB_DIGEST_MAX], sub_err *e) {
    bool isd;
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0 || (rr = reg_check_ref(ref, &isd, e)) < 0) return rr;
    if (isd && (rr = reg_check_sha256(ref, e)) < 0) return rr;
    xfer x;
    xfer_init(&x, "GET");
    x.url = reg_url(r, "/v2/%s/manifests/%s", repo, ref);
    x.what = xasprintf("manifest %s%s%s", repo, isd ? "@" : ":", ref);
    x.accept = SUB_MT_ACCEPT_MANIFESTS;
    x.out_max = SUB_REG_MAX_MANIFEST;
    x.hash_out = true;
    rr = reg_perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status == 404) {
        rr = sub_err_setk(e, SUB_KIND_INPUT, -ENOENT, "%s: no such manifest in the registry at %s",
                          x.what, r->host);
        reg_http_detail(&x, e);
        goto out;
    }
    if (x.status != 200) {
        rr = reg_status_error(r, &x, e);
        goto out;
    }
    char got[SUB_DIGEST_MAX];
    sub_sha256_final(&x.out_hash, got);
    const char *hd;
    if ((rr = reg_header_digest(r, &x, &hd, e)) < 0) goto out;
    const char *want = isd ? ref : hd;
    if (want && strcmp(want, got) != 0) {
        rr = sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch for %s from %s: expected %s, but the content hashes to %s; "
            "refused",
            x.what, r->host, want, got);
        goto out;
    }
    if (isd && hd && strcmp(hd, got) != 0) {
        rr = sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                          "digest mismatch for %s from %s: the registry says %s, but the content "
                          "hashes to %s; refused",
                          x.what, r->host, hd, got);
        goto out;
    }
    if (digest_out) memcpy(digest_out, got, strlen(got) + 1);
    if (media_type) *media_type = x.ctype ? sub_mt_normalize(x.ctype) : NULL;
    *body = sub_buf_detach(&x.mem, len);
    rr = 0;
out:
    xfer_done(&x);
    return rr;
}

int sub_reg_manifest_put(sub_reg *r, const char *repo, const char *ref, const char *media_type,
                         const void *body, size_t len, char digest_out[SUB_DIGEST_MAX],
                         sub_err *e) {
    bool isd;
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0 || (rr = reg_check_ref(ref, &isd, e)) < 0) return rr;
    if (!sub_mt_is_manifest(media_type))
        return sub_err_set(e, -EINVAL, "cannot push a manifest of media type \"%s\"",
                           media_type ? media_type : "(none)");
    if (len > SUB_REG_MAX_MANIFEST)
        return sub_err_set(e, -E2BIG, "manifest is too large to push (%zu bytes; the limit is %u)",
                           len, SUB_REG_MAX_MANIFEST);
    char want[SUB_DIGEST_MAX];
    if ((rr = sub_sha256_buf(body, len, want, e)) < 0) return rr;
    if (isd && strcmp(ref, want) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "cannot push a manifest as %s: its content hashes to %s", ref, want);
    xfer x;
    xfer_init(&x, "PUT");
    x.url = reg_url(r, "/v2/%s/manifests/%s", repo, ref);
    x.what = xasprintf("manifest %s%s%s", repo, isd ? "@" : ":", ref);
    x.content_type = media_type;
    x.body = body;
    x.body_len = len;
    x.out_max = 65536;
    rr = reg_perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status != 201 && x.status != 200) {
        rr = reg_status_error(r, &x, e);
        sub_err_prefix(e, "pushing the manifest failed");
        goto out;
    }
    const char *hd;
    if ((rr = reg_header_digest(r, &x, &hd, e)) < 0) goto out;
    if (hd && strcmp(hd, want) != 0) {
        rr = sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch after pushing %s: expected %s, the registry at %s stored %s", x.what,
            want, r->host, hd);
        goto out;
    }
    if (digest_out) memcpy(digest_out, want, strlen(want) + 1);
    rr = 0;
out:
    xfer_done(&x);
    return rr;
}

/* Link: </v2/x/tags/list?last=a&n=100>; rel="next" */
char *reg_next_link(const char *link) {
    if (!link || !strstr(link, "rel=\"next\"")) return NULL;
    const char *lt = strchr(link, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt) return NULL;
    return xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

int sub_reg_tags(sub_reg *r, const char *repo, char ***tags, sub_err *e) {
    int rr;
    if ((rr = reg_check_repo(repo, e)) < 0) return rr;
    _cleanup_strv_ char **v = xcalloc(1, sizeof(char *));
    char *u = reg_url(r, "/v2/%s/tags/list", repo);
    for (int page = 0; u; page++) {
        if (page >= MAX_TAG_PAGES) {
            free(u);
            return sub_err_set(e, -E2BIG, "tag list of %s is longer than %d pages", repo,
                               MAX_TAG_PAGES);
        }
        xfer x;
        xfer_init(&x, "GET");
        x.url = u;
        u = NULL;
        x.what = xasprintf("tag list of %s", repo);
        x.out_max = SUB_REG_MAX_MANIFEST;
        rr = reg_perform(r, &x, e);
        if (rr == 0 && x.status == 404) {
            rr = sub_err_setk(e, SUB_KIND_INPUT, -ENOENT,
                              "repository %s does not exist in the registry at %s", repo, r->host);
            reg_http_detail(&x, e);
        } else if (rr == 0 && x.status != 200) rr = reg_status_error(r, &x, e);
        json_t *j = NULL;
        if (rr == 0)
            rr = sub_json_parse(x.mem.data ? x.mem.data : "", x.mem.len, SUB_REG_MAX_MANIFEST,
                                "tag list", &j, e);
        if (rr == 0) {
            json_t *t = json_object_get(j, "tags");
            size_t i;
            json_t *it;
            if (t && !json_is_null(t) && !json_is_array(t))
                rr = sub_err_set(e, -EPROTO, "tag list of %s: \"tags\" is not an array", repo);
            json_array_foreach(t, i, it) {
                if (json_is_string(it)) strv_push(&v, json_string_value(it));
            }
            json_decref(j);
        }
        if (rr == 0) {
            _cleanup_free_ char *nl = reg_next_link(x.link);
            if (nl && (rr = reg_resolve_location(r, repo, nl, &u, e)) < 0) u = NULL;
        }
        xfer_done(&x);
        if (rr < 0) {
            free(u);
            return rr;
        }
    }
    *tags = TAKE_PTR(v);
    return 0;
}
