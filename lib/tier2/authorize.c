/* Tier-2 steps 1 and 2 (tier2.h): the jobspec's blob signature, then its
 * parse; the image's admission. Shared by the runner and `render k8s`. */
#include "t2-internal.h"
#include "substrate/admit.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/sign.h"
#include <string.h>

#define ZERO_DIGEST "sha256:0000000000000000000000000000000000000000000000000000000000000000"

int t2_load_keys(char *const *key_files, sub_pubkey ***keys, size_t *n, sub_err *e) {
    size_t nf = strv_len(key_files);
    if (!nf) return sub_admit_trusted_keys(NULL, keys, n, e);
    sub_pubkey **v = xcalloc(nf + 1, sizeof *v);
    for (size_t i = 0; i < nf; i++) {
        int r = sub_pubkey_load_file(key_files[i], &v[i], e);
        if (r < 0) {
            sub_pubkeys_free(v);
            return r;
        }
    }
    *keys = v;
    *n = nf;
    return 0;
}

void sub_job_signed_done(sub_job_signed *s) {
    if (!s) return;
    free(s->signature_path);
    sub_pubkeys_free(s->keys);
    free(s->data);
    sub_jobspec_done(&s->spec);
    memset(s, 0, sizeof *s);
}

int sub_job_authorize(const char *path, char *const *key_files, const char *signature_path, sub_job_signed *out,
                      sub_err *e) {
    memset(out, 0, sizeof *out);
    out->signature_path = signature_path ? xstrdup(signature_path) : xasprintf("%s.sig", path);
    int r = sub_read_file(path, SUB_JOBSPEC_MAX, &out->data, &out->len, e);
    if (r < 0) {
        if (r == -ENOENT) sub_err_setr(e, SUB_R_BAD_JOBSPEC, SUB_KIND_INPUT, r, "no such jobspec: %s", path);
        return r;
    }
    (void)sub_sha256_buf(out->data, out->len, out->sha256, NULL);
    _cleanup_free_ char *sig = NULL;
    size_t slen = 0;
    r = sub_read_file(out->signature_path, 4096, &sig, &slen, e);
    if (r < 0) {
        bool placeholder = memmem(out->data, out->len, ZERO_DIGEST, strlen(ZERO_DIGEST)) != NULL;
        return sub_err_setr(e, SUB_R_NO_SIGNATURE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "%s is not signed: no %s (sign it with `substrate sign-blob %s --key KEY`)%s", path,
                            out->signature_path, path,
                            placeholder ? "; its image digest is also the all-zero placeholder of the reference: "
                                          "scripts/demo pins it to the job image it builds and signs it" : "");
    }
    r = t2_load_keys(key_files, &out->keys, &out->nkeys, e);
    char by[SUB_DIGEST_MAX] = "";
    if (r == 0)
        r = sub_blob_verify((const sub_pubkey *const *)out->keys, out->nkeys, out->data, out->len, sig, by, e);
    if (r < 0) {
        sub_err_prefix(e, "refused the jobspec %s (its signature does not verify with a trusted key; the "
                       "keys a jobspec names are never used)", path);
        return r;
    }
    snprintf(out->key_id, sizeof out->key_id, "%s", by);
    r = sub_jobspec_parse(out->data, out->len, path, sub_job_timeout_max(), &out->spec, e);
    if (r < 0) return r;
    out->parsed = true;
    return 0;
}

int sub_job_admit_image(const sub_jobspec *j, const sub_pubkey *const *keys, size_t nkeys, sub_reg *reg,
                        sub_admission *ad, sub_err *e) {
    sub_admit_opts ao = {.ref = &j->ref, .reg = reg, .keys = keys, .nkeys = nkeys, .identity = j->identity,
                         .policy = j->policy};
    int r = sub_admit_image(&ao, ad, e);
    if (r < 0) sub_err_prefix(e, "refused the job's image");
    return r;
}
