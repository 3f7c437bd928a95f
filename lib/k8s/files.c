/* `render k8s` end to end (k8s.h): each file checked as at deploy time,
 * then mapped; output only once every file rendered. */
#include "substrate/admit.h"
#include "substrate/json.h"
#include "substrate/k8s.h"
#include "substrate/sign.h"
#include "substrate/tier1.h"
#include "substrate/tier2.h"
#include <string.h>

#define ZERO_DIGEST "sha256:0000000000000000000000000000000000000000000000000000000000000000"

/* The references ship with an all-zero digest: say so before asking a registry about it. */
static int placeholder(const char *path, const char *what, const sub_ref *ref, sub_err *e) {
    if (!streq(ref->digest, ZERO_DIGEST)) return 0;
    return sub_err_setr(e, streq(what, "jobspec") ? SUB_R_BAD_JOBSPEC : SUB_R_BAD_MANIFEST, SUB_KIND_INPUT, -EINVAL,
                        "%s: the image digest is the all-zero placeholder of the reference %s: pin the digest "
                        "build-sign-push printed for %s%s, then render again",
                        path, what, ref->repository,
                        streq(what, "jobspec") ? " and sign the result with `substrate sign-blob`" : "");
}

static const char *verified_key(const sub_admission *ad) {
    if (ad->sig.verified < 0 || (size_t)ad->sig.verified >= ad->sig.n_records) return "";
    return ad->sig.records[ad->sig.verified].key_id;
}

/* The keys admission tried (ad->keys): ids and PEMs. */
typedef struct key_list {
    sub_k8s_key *v;
    char **pems;
    size_t n;
} key_list;

static void key_list_fill(key_list *k, const sub_pubkey *const *keys, size_t n) {
    k->v = xcalloc(n ? n : 1, sizeof *k->v);
    k->pems = xcalloc(n + 1, sizeof *k->pems);
    for (size_t i = 0; i < n; i++) {
        k->pems[i] = sub_pubkey_to_pem(keys[i]);
        k->v[i] = (sub_k8s_key){.id = sub_pubkey_id(keys[i]), .pem = k->pems[i]};
    }
    k->n = n;
}

static void key_list_done(key_list *k) {
    strv_free(k->pems);
    free(k->v);
}

static int render_manifest(const char *path, const sub_k8s_opts *o, json_t *items, sub_err *e) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    int r = sub_svc_manifest_load(path, &m, e);
    if (r < 0) return r;
    if (m.network == SUB_NET_HOST) /* refused before anything is fetched */
        return sub_k8s_render_manifest(&m, &(sub_k8s_admitted){0}, o, items, e);
    if ((r = placeholder(path, "manifest", &m.ref, e)) < 0) return r;
    _cleanup_admission_ sub_admission ad = {0};
    r = sub_t1_admit_manifest(&m, NULL, NULL, &ad, e);
    if (r < 0) {
        sub_err_prefix(e, "%s: refused the image (as reconcile would)", path);
        return r;
    }
    key_list kl = {0};
    key_list_fill(&kl, ad.keys, ad.nkeys);
    sub_k8s_admitted a = {.doc_digest = m.source_digest, .key_id = verified_key(&ad), .keys = kl.v, .nkeys = kl.n};
    r = sub_k8s_render_manifest(&m, &a, o, items, e);
    key_list_done(&kl);
    return r;
}

static int render_jobspec(const char *path, const sub_k8s_opts *o, json_t *items, sub_err *e) {
    _cleanup_job_signed_ sub_job_signed s = {0};
    int r = sub_job_authorize(path, o->key_files, NULL, &s, e);
    /* the signature held: a host name in the allowlist gets the Kubernetes reason, whatever the parser said */
    if (s.key_id[0]) {
        int rn = sub_k8s_check_egress_names(s.data, s.len, path, e);
        if (rn < 0) return rn;
    }
    if (r < 0) return r;
    if ((r = placeholder(path, "jobspec", &s.spec.ref, e)) < 0) return r;
    _cleanup_admission_ sub_admission ad = {0};
    r = sub_job_admit_image(&s.spec, (const sub_pubkey *const *)s.keys, s.nkeys, NULL, &ad, e);
    if (r < 0) {
        sub_err_prefix(e, "%s", path);
        return r;
    }
    key_list kl = {0};
    key_list_fill(&kl, ad.keys, ad.nkeys);
    sub_k8s_admitted a = {.doc_digest = s.sha256, .doc_key_id = s.key_id, .key_id = verified_key(&ad),
                          .keys = kl.v, .nkeys = kl.n};
    r = sub_k8s_render_jobspec(&s.spec, &a, o, items, e);
    key_list_done(&kl);
    return r;
}

static bool is_jobspec(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && !strcmp(path + n - 5, ".json");
}

int sub_k8s_render_files(char *const *files, const sub_k8s_opts *o, sub_k8s_format f, char **out, sub_err *e) {
    *out = NULL;
    int r = sub_k8s_opts_check(o, e);
    if (r < 0) return r;
    if (!files || !files[0]) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "no file to render");
    _cleanup_json_ json_t *items = json_array();
    for (char *const *p = files; *p; p++) {
        r = is_jobspec(*p) ? render_jobspec(*p, o, items, e) : render_manifest(*p, o, items, e);
        if (r < 0) return r;
    }
    if ((r = sub_k8s_check_unique(items, e)) < 0) return r;
    if (o->with_runtime_class) {
        json_t *all = sub_k8s_runtime_classes(items, o);
        json_array_extend(all, items);
        json_decref(items);
        items = all;
    }
    *out = sub_k8s_emit(items, f);
    return 0;
}
