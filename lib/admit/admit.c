/* The deploy-time admission check: signature first, then provenance. */
#include "substrate/admit.h"
#include <string.h>

int sub_admit_trusted_keys(const char *dir, sub_pubkey ***keys, size_t *n, sub_err *e) {
    _cleanup_free_ char *own = dir ? NULL : sub_trust_dir();
    if (!dir) dir = own;
    sub_pubkey **v = NULL;
    size_t nv = 0;
    int r = sub_trust_load(dir, &v, &nv, e);
    if (r < 0) return r;
    if (nv == 0) {
        sub_pubkeys_free(v);
        return sub_err_setr(e, SUB_R_NO_TRUST_STORE, SUB_KIND_INPUT, -ENOKEY,
                            "the trust store %s holds no keys (*.pub): pass --key FILE.pub or "
                            "add the public keys you trust with `substrate key trust FILE.pub`",
                            dir);
    }
    *keys = v;
    *n = nv;
    return 0;
}

void sub_admission_free(sub_admission *a) {
    if (!a) return;
    free(a->image);
    sub_pubkeys_free(a->owned_keys);
    sub_cosign_verify_result_free(&a->sig);
    sub_attest_result_free(&a->prov);
    memset(a, 0, sizeof *a);
}

int sub_admit_image(const sub_admit_opts *o, sub_admission *res, sub_err *e) {
    memset(res, 0, sizeof *res);
    res->sig_rc = res->prov_rc = -EAGAIN; /* not decided */
    const sub_ref *ref = o->ref;
    if (!ref || !ref->registry || !ref->repository || !ref->digest)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "admission needs an image named by digest (REF@sha256:<hex>)");
    _cleanup_free_ char *name = sub_ref_name(ref);
    res->image = xasprintf("%s@%s", name, ref->digest);
    int r;
    if (o->keys) {
        res->keys = o->keys;
        res->nkeys = o->nkeys;
    } else {
        if ((r = sub_admit_trusted_keys(o->trust_dir, &res->owned_keys, &res->nkeys, e)) < 0)
            return r;
        res->keys = (const sub_pubkey *const *)res->owned_keys;
    }
    const char *identity = o->identity;
    if (o->policy == SUB_IDENTITY_EXACT && !identity) identity = name;
    _cleanup_reg_ sub_reg *own = NULL;
    sub_reg *reg = o->reg;
    if (!reg) {
        sub_reg_opts ro = {.host = ref->registry};
        if ((r = sub_reg_new(&ro, &own, e)) < 0) return r;
        reg = own;
    }

    /* 1. the signature */
    res->sig_rc = sub_cosign_verify_registry(reg, ref->repository, ref->digest, res->keys,
                                             res->nkeys, identity, o->policy, &res->sig,
                                             &res->sig_err);
    if (res->sig_rc == -EKEYREJECTED && !res->sig.found) {
        /* no signature tag: say so plainly when there is no image either */
        sub_err he = {0};
        if (sub_reg_manifest_head(reg, ref->repository, ref->digest, NULL, NULL, NULL, &he) == 0)
            res->sig_rc = sub_err_setr(&res->sig_err, SUB_R_NO_SUCH_IMAGE, SUB_KIND_INPUT, -ENOENT,
                                       "no such image: %s is not in the registry at %s, so there "
                                       "is nothing to verify (check the digest: `substrate "
                                       "inspect %s:TAG` shows a tag's digest)",
                                       res->image, ref->registry, name);
    }
    if (res->sig_rc < 0) {
        if (e) *e = res->sig_err;
        return res->sig_rc;
    }
    if (!o->provenance) return 0;

    /* 2. the provenance, only once the signature holds */
    res->provenance_checked = true;
    res->prov_rc = sub_attest_verify_registry(reg, ref->repository, ref->digest, res->keys,
                                              res->nkeys, &res->prov, &res->prov_err);
    if (res->prov_rc < 0) {
        if (e) {
            *e = res->prov_err;
            sub_err_prefix(e, "%s: the signature verifies, but the provenance does not",
                           res->image);
        }
        return res->prov_rc;
    }
    return 0;
}
