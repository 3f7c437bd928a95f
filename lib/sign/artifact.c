/* Cosign signature artifacts in the registry: build the sha256-<hex>.sig
 * manifest, sign into the registry, verify from it. See cosign-registry.h. */
#include "sign-internal.h"
#include "substrate/cosign-registry.h"
#include "substrate/json.h"
#include "substrate/manifest.h"
#include "substrate/strbuf.h"
#include <string.h>

#define ZERO_TIME "0001-01-01T00:00:00Z" /* Go's zero time.Time, as cosign writes it */

/* Serialise in insertion order. cosign (Go structs) writes fields in struct
 * order, not sorted, and a one-signature artifact should be byte-identical to
 * cosign's; sub_json_dump() is canonical (sorted), so it cannot be used for
 * this one document type. The input is built here, never parsed from outside
 * except for existing layer descriptors, which were parsed with
 * sub_json_parse (duplicate keys refused, size capped). */
static char *dump_ordered(const json_t *j, size_t *len) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) abort();
    if (len) *len = strlen(s);
    return s;
}

static bool is_simplesigning(const char *mt) {
    _cleanup_free_ char *n = sub_mt_normalize(mt);
    return streq(n, SUB_MT_COSIGN_SIMPLESIGNING);
}

int sub_cosign_artifact_add(const char *existing, size_t existing_len, const char *payload_digest,
                            uint64_t payload_size, const char *sig_b64, char **manifest,
                            size_t *manifest_len, char **config, size_t *config_len, sub_err *e) {
    int r = sub_digest_validate(payload_digest, e);
    if (r < 0) {
        sub_err_prefix(e, "the signature payload digest");
        return r;
    }
    if (!sig_b64 || !*sig_b64)
        return sub_err_set(e, -EINVAL, "internal error: an empty signature cannot be stored");
    json_t *layer = json_pack("{s:s, s:I, s:s, s:{s:s}}", "mediaType", SUB_MT_COSIGN_SIMPLESIGNING,
                              "size", (json_int_t)payload_size, "digest", payload_digest,
                              "annotations", SUB_COSIGN_SIG_ANNOTATION, sig_b64);
    if (!layer) abort();
    return sign_artifact_add_layer(existing, existing_len, layer, manifest, manifest_len, config,
                                   config_len, e);
}

int sign_artifact_add_layer(const char *existing, size_t existing_len, json_t *layer,
                            char **manifest, size_t *manifest_len, char **config,
                            size_t *config_len, sub_err *e) {
    int r;
    _cleanup_json_ json_t *owned_layer = layer;
    _cleanup_json_ json_t *layers = json_array();
    if (existing) {
        /* validate with the strict model, then keep the descriptors as written */
        _cleanup_manifest_ sub_manifest m = {0};
        r = sub_manifest_parse(existing, existing_len, NULL, &m, e);
        if (r < 0) {
            sub_err_prefix(e, "the existing signature manifest is malformed (not touched)");
            return r;
        }
        if (m.kind != SUB_MANIFEST_IMAGE)
            return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                                "the existing signature manifest is an index, not an image "
                                "manifest; refusing to replace it");
        _cleanup_json_ json_t *doc = NULL;
        r = sub_json_parse(existing, existing_len, SUB_REG_MAX_MANIFEST, "artifact manifest",
                           &doc, e);
        if (r < 0) return r;
        json_t *old = json_object_get(doc, "layers");
        size_t i;
        json_t *v;
        json_array_foreach(old, i, v) json_array_append(layers, v);
        if (json_array_size(layers) >= SUB_COSIGN_MAX_SIGNATURES)
            return sub_err_setk(e, SUB_KIND_INPUT, -E2BIG,
                                "the signature manifest already holds %zu layers (the limit is "
                                "%d); prune old signatures first",
                                json_array_size(layers), SUB_COSIGN_MAX_SIGNATURES);
    }
    json_array_append_new(layers, TAKE_PTR(owned_layer));

    /* config: cosign's empty image config with one diff_id and one history
     * entry per layer (a simple-signing layer is its own diff_id) */
    json_t *diff_ids = json_array(), *history = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(layers, i, v) {
        json_t *d = json_object_get(v, "digest");
        json_array_append(diff_ids, d);
        json_array_append_new(history, json_pack("{s:s}", "created", ZERO_TIME));
    }
    _cleanup_json_ json_t *cfg = json_pack(
        "{s:s, s:{}, s:s, s:o, s:s, s:{s:s, s:o}}", "architecture", "", "config", "created",
        ZERO_TIME, "history", history, "os", "", "rootfs", "type", "layers", "diff_ids", diff_ids);
    if (!cfg) abort();
    size_t clen;
    _cleanup_free_ char *cbytes = dump_ordered(cfg, &clen);
    char cdigest[SUB_DIGEST_MAX];
    if ((r = sub_sha256_buf(cbytes, clen, cdigest, e)) < 0) return r;

    _cleanup_json_ json_t *man = json_pack(
        "{s:i, s:s, s:{s:s, s:I, s:s}, s:O}", "schemaVersion", 2, "mediaType", SUB_MT_OCI_MANIFEST,
        "config", "mediaType", SUB_MT_OCI_CONFIG, "size", (json_int_t)clen, "digest", cdigest,
        "layers", layers);
    if (!man) abort();
    *manifest = dump_ordered(man, manifest_len);
    *config = TAKE_PTR(cbytes);
    *config_len = clen;
    return 0;
}

/* ---- sign ------------------------------------------------------------------ */

int sign_tag_unchanged(sub_reg *r, const char *repo, const char *tag, const char *old_digest,
                       const char *what, const char *image_digest, sub_err *e) {
    char now[SUB_DIGEST_MAX] = "";
    int rr = sub_reg_manifest_head(r, repo, tag, now, NULL, NULL, e);
    if (rr < 0) return rr;
    if ((rr == 0 && old_digest[0]) || (rr == 1 && strcmp(now, old_digest)))
        return sub_err_setk(e, SUB_KIND_ENV, -EAGAIN,
                            "the %s of %s@%s changed meanwhile (another signer?); nothing was "
                            "replaced: run the command again",
                            what, repo, image_digest);
    return 0;
}

static int fill_tag(const char *image_digest, char out[SUB_COSIGN_SIG_TAG_MAX], sub_err *e) {
    _cleanup_free_ char *tag = NULL;
    int r = sub_cosign_sig_tag(image_digest, &tag, e);
    if (r < 0) return r;
    if (strlen(tag) >= SUB_COSIGN_SIG_TAG_MAX)
        return sub_err_set(e, -ENAMETOOLONG, "signature tag %s is too long", tag);
    memcpy(out, tag, strlen(tag) + 1);
    return 0;
}

/* Does `m` already hold this payload signed by k? */
static bool already_signed(const sub_manifest *m, const char *payload_digest, const char *payload,
                           size_t plen, const sub_privkey *k, const char *image_digest,
                           const char *identity) {
    _cleanup_pubkey_ sub_pubkey *pub = NULL;
    if (sub_privkey_public(k, &pub, NULL) < 0) return false;
    const sub_pubkey *keys[] = {pub};
    for (size_t i = 0; i < m->n_layers; i++) {
        const sub_desc *d = &m->layers[i];
        if (!is_simplesigning(d->media_type) || strcmp(d->digest, payload_digest)) continue;
        const char *sig = sub_desc_annotation(d, SUB_COSIGN_SIG_ANNOTATION);
        if (!sig) continue;
        sub_verify_record rec;
        if (sub_cosign_verify(keys, 1, payload, plen, sig, image_digest, identity,
                              SUB_IDENTITY_EXACT, &rec, NULL) == 0)
            return true;
    }
    return false;
}

int sub_cosign_sign_registry(sub_reg *r, const char *repo, const char *identity,
                             const char *image_digest, const sub_privkey *k,
                             sub_cosign_sign_result *res, sub_err *e) {
    memset(res, 0, sizeof *res);
    int rr;
    if ((rr = fill_tag(image_digest, res->sig_tag, e)) < 0) return rr;
    snprintf(res->key_id, sizeof res->key_id, "%s", sub_privkey_id(k));
    snprintf(res->identity, sizeof res->identity, "%s", identity);

    /* 1. the image must be there: a signature for nothing helps no one */
    rr = sub_reg_manifest_head(r, repo, image_digest, NULL, NULL, NULL, e);
    if (rr < 0) return rr;
    if (rr == 0)
        return sub_err_setr(e, SUB_R_NO_SUCH_IMAGE, SUB_KIND_INPUT, -ENOENT,
                            "image %s@%s is not in the registry at %s: push it first (substrate "
                            "push / substrate build), then sign it",
                            repo, image_digest, sub_reg_host(r));

    /* 2. the payload and its signature */
    _cleanup_free_ char *payload = NULL, *sig = NULL;
    size_t plen = 0;
    if ((rr = sub_cosign_sign_image(k, identity, image_digest, &payload, &plen, &sig, e)) < 0)
        return rr;
    if ((rr = sub_sha256_buf(payload, plen, res->payload_digest, e)) < 0) return rr;

    /* 3. what is there already */
    _cleanup_free_ char *old = NULL;
    size_t oldlen = 0;
    char old_digest[SUB_DIGEST_MAX] = "";
    sub_err ge = {0};
    rr = sub_reg_manifest_get(r, repo, res->sig_tag, &old, &oldlen, NULL, old_digest, &ge);
    if (rr == -ENOENT) {
        old_digest[0] = 0;
    } else if (rr < 0) {
        *e = ge;
        sub_err_prefix(e, "reading the existing signatures %s:%s", repo, res->sig_tag);
        return rr;
    } else {
        _cleanup_manifest_ sub_manifest m = {0};
        if ((rr = sub_manifest_parse(old, oldlen, NULL, &m, e)) < 0) {
            sub_err_prefix(e, "the existing signature manifest %s:%s is malformed; refusing to "
                              "replace it",
                           repo, res->sig_tag);
            return rr;
        }
        if (already_signed(&m, res->payload_digest, payload, plen, k, image_digest, identity)) {
            res->already_signed = true;
            res->n_layers = m.n_layers;
            memcpy(res->sig_manifest, old_digest, sizeof res->sig_manifest);
            return 0;
        }
    }

    /* 4. the new artifact: blobs first, the tag last */
    _cleanup_free_ char *man = NULL, *cfg = NULL;
    size_t mlen = 0, clen = 0;
    if ((rr = sub_cosign_artifact_add(old, oldlen, res->payload_digest, plen, sig, &man, &mlen,
                                      &cfg, &clen, e)) < 0)
        return rr;
    char cdigest[SUB_DIGEST_MAX];
    if ((rr = sub_sha256_buf(cfg, clen, cdigest, e)) < 0) return rr;
    if ((rr = sub_reg_blob_put_buf(r, repo, res->payload_digest, payload, plen, e)) < 0 ||
        (rr = sub_reg_blob_put_buf(r, repo, cdigest, cfg, clen, e)) < 0) {
        sub_err_prefix(e, "pushing the signature of %s@%s", repo, image_digest);
        return rr;
    }
    /* another signer in between would lose its layer: check the tag has not moved */
    if ((rr = sign_tag_unchanged(r, repo, res->sig_tag, old_digest, "signatures", image_digest, e)) < 0)
        return rr;
    if ((rr = sub_reg_manifest_put(r, repo, res->sig_tag, SUB_MT_OCI_MANIFEST, man, mlen,
                                   res->sig_manifest, e)) < 0) {
        sub_err_prefix(e, "pushing the signature manifest %s:%s", repo, res->sig_tag);
        return rr;
    }
    _cleanup_manifest_ sub_manifest nm = {0};
    if (sub_manifest_parse(man, mlen, NULL, &nm, NULL) == 0) res->n_layers = nm.n_layers;
    return 0;
}

/* ---- verify ---------------------------------------------------------------- */

static void record_refusal(sub_verify_record *rec, const sub_cosign_verify_result *res,
                           const char *layer_digest, sub_verify_failure f, sub_check_result layer,
                           sub_check_result signature, const char *fmt, ...) _printf_(7, 8);
static void record_refusal(sub_verify_record *rec, const sub_cosign_verify_result *res,
                           const char *layer_digest, sub_verify_failure f, sub_check_result layer,
                           sub_check_result signature, const char *fmt, ...) {
    memset(rec, 0, sizeof *rec);
    rec->policy = res->policy;
    rec->failure = f;
    rec->layer = layer;
    rec->signature = signature;
    snprintf(rec->layer_digest, sizeof rec->layer_digest, "%s", layer_digest);
    snprintf(rec->expected_digest, sizeof rec->expected_digest, "%s", res->image_digest);
    snprintf(rec->expected_identity, sizeof rec->expected_identity, "%s", res->identity);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rec->reason, sizeof rec->reason, fmt, ap);
    va_end(ap);
}

/* Check one simple-signing layer into rec. < 0 only for trouble that is not
 * a verdict about this signature (registry unreachable, bad arguments). */
static int check_layer(sub_reg *r, const char *repo, const sub_desc *d,
                       const sub_pubkey *const *keys, size_t nkeys,
                       const sub_cosign_verify_result *res, sub_verify_record *rec, sub_err *e) {
    const char *sig = sub_desc_annotation(d, SUB_COSIGN_SIG_ANNOTATION);
    if (!sig) {
        record_refusal(rec, res, d->digest, SUB_VERIFY_MALFORMED_SIGNATURE, SUB_CHECK_NOT_RUN,
                       SUB_CHECK_FAIL,
                       "malformed signature: layer %s has no %s annotation", d->digest,
                       SUB_COSIGN_SIG_ANNOTATION);
        return 0;
    }
    if (d->size > SUB_SIGN_MAX_PAYLOAD) {
        record_refusal(rec, res, d->digest, SUB_VERIFY_MALFORMED_PAYLOAD, SUB_CHECK_NOT_RUN,
                       SUB_CHECK_NOT_RUN,
                       "malformed payload: layer %s says %llu bytes, more than a simple-signing "
                       "payload may have (%u); not fetched",
                       d->digest, (unsigned long long)d->size, SUB_SIGN_MAX_PAYLOAD);
        return 0;
    }
    _cleanup_free_ char *payload = NULL;
    size_t plen = 0;
    sub_err fe = {0};
    int rr = sub_reg_blob_get_buf(r, repo, d->digest, SUB_SIGN_MAX_PAYLOAD, &payload, &plen, &fe);
    if (rr == -EILSEQ) {
        record_refusal(rec, res, d->digest, SUB_VERIFY_LAYER_MISMATCH, SUB_CHECK_FAIL,
                       SUB_CHECK_NOT_RUN, "layer digest mismatch: %s", fe.msg);
        return 0;
    }
    if (rr == -ENOENT || rr == -EFBIG) {
        record_refusal(rec, res, d->digest, SUB_VERIFY_MALFORMED_PAYLOAD, SUB_CHECK_NOT_RUN,
                       SUB_CHECK_NOT_RUN, "malformed payload: cannot use the payload blob: %s",
                       fe.msg);
        return 0;
    }
    if (rr < 0) {
        *e = fe;
        return rr;
    }
    sub_err ve = {0};
    rr = sub_cosign_verify_layer(keys, nkeys, d->digest, payload, plen, sig, res->image_digest,
                                 res->policy == SUB_IDENTITY_ANY_REPO ? NULL : res->identity,
                                 res->policy, rec, &ve);
    if (rr < 0 && rr != -EKEYREJECTED) {
        *e = ve;
        return rr;
    }
    return 0;
}

/* The reason shared by every refused record, else SUB_R_SIGNATURES_REFUSED. */
static sub_reason same_failure(const sub_cosign_verify_result *res) {
    for (size_t i = 1; i < res->n_records; i++)
        if (res->records[i].failure != res->records[0].failure) return SUB_R_SIGNATURES_REFUSED;
    return sub_verify_failure_reason(res->records[0].failure);
}

int sub_cosign_verify_registry(sub_reg *r, const char *repo, const char *image_digest,
                               const sub_pubkey *const *keys, size_t nkeys, const char *identity,
                               sub_identity_policy policy, sub_cosign_verify_result *res,
                               sub_err *e) {
    memset(res, 0, sizeof *res);
    res->verified = -1;
    res->policy = policy;
    int rr;
    if ((rr = sub_digest_validate(image_digest, e)) < 0) return rr;
    snprintf(res->image_digest, sizeof res->image_digest, "%s", image_digest);
    if (policy != SUB_IDENTITY_ANY_REPO) {
        if (!identity || !*identity)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "an identity is required with the %s policy",
                                sub_identity_policy_name(policy));
        /* checked against res->identity: it must hold all of it */
        if (strlen(identity) >= sizeof res->identity)
            return sub_err_setk(e, SUB_KIND_INPUT, -ENAMETOOLONG,
                                "the identity to verify against is %zu bytes; a repository name "
                                "is at most 255 (give \"registry/repository\")",
                                strlen(identity));
        snprintf(res->identity, sizeof res->identity, "%s", identity);
    }
    if (!keys || nkeys == 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "no trusted public keys to verify with: pass --key FILE.pub or put "
                            ".pub files in the trust store");
    if ((rr = fill_tag(image_digest, res->sig_tag, e)) < 0) return rr;

    _cleanup_free_ char *body = NULL, *ctype = NULL;
    size_t len = 0;
    sub_err ge = {0};
    rr = sub_reg_manifest_get(r, repo, res->sig_tag, &body, &len, &ctype, res->sig_manifest, &ge);
    if (rr == -ENOENT)
        return sub_err_setr(e, SUB_R_NO_SIGNATURE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "no signature: %s/%s@%s is not signed (no tag %s in its "
                            "repository)",
                            sub_reg_host(r), repo, image_digest, res->sig_tag);
    if (rr < 0) {
        *e = ge;
        return rr;
    }
    res->found = true;
    _cleanup_manifest_ sub_manifest m = {0};
    sub_err pe = {0};
    if (sub_manifest_parse(body, len, ctype, &m, &pe) < 0 || m.kind != SUB_MANIFEST_IMAGE)
        return sub_err_setr(e, SUB_R_NO_SIGNATURE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "no signature: the signature artifact %s/%s:%s (%s) is not an image "
                            "manifest: %s",
                            sub_reg_host(r), repo, res->sig_tag, res->sig_manifest,
                            pe.msg[0] ? pe.msg : "it is an index");
    res->n_layers = m.n_layers;
    size_t nss = 0;
    for (size_t i = 0; i < m.n_layers; i++) nss += is_simplesigning(m.layers[i].media_type);
    if (nss == 0)
        return sub_err_setr(e, SUB_R_NO_SIGNATURE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "no signature: the signature artifact %s/%s:%s holds no %s layer",
                            sub_reg_host(r), repo, res->sig_tag, SUB_MT_COSIGN_SIMPLESIGNING);
    if (nss > SUB_COSIGN_MAX_SIGNATURES)
        return sub_err_setr(e, SUB_R_TOO_MANY_SIGNATURES, SUB_KIND_CHECK, -EKEYREJECTED,
                            "the signature artifact %s:%s holds %zu signatures, more than the %d "
                            "checked; refused",
                            repo, res->sig_tag, nss, SUB_COSIGN_MAX_SIGNATURES);
    res->records = xcalloc(nss, sizeof *res->records);
    for (size_t i = 0; i < m.n_layers; i++) {
        if (!is_simplesigning(m.layers[i].media_type)) continue;
        sub_verify_record *rec = &res->records[res->n_records++];
        if ((rr = check_layer(r, repo, &m.layers[i], keys, nkeys, res, rec, e)) < 0) return rr;
        if (rec->verified && res->verified < 0) res->verified = (long)(res->n_records - 1);
    }
    if (res->verified >= 0) return 0;
    if (res->n_records == 1)
        return sub_err_setr(e, sub_verify_failure_reason(res->records[0].failure), SUB_KIND_CHECK,
                            -EKEYREJECTED, "%s", res->records[0].reason);
    sub_buf b = SUB_BUF_INIT;
    for (size_t i = 0; i < res->n_records; i++)
        sub_buf_printf(&b, "%s%zu: %s", i ? "; " : "", i + 1,
                       sub_verify_failure_name(res->records[i].failure));
    _cleanup_free_ char *list = sub_buf_detach(&b, NULL);
    return sub_err_setr(e, same_failure(res), SUB_KIND_CHECK, -EKEYREJECTED,
                        "none of the %zu signatures of %s/%s@%s verified (%s)", res->n_records,
                        sub_reg_host(r), repo, image_digest, list);
}

void sub_cosign_verify_result_free(sub_cosign_verify_result *res) {
    if (!res) return;
    free(res->records);
    res->records = NULL;
    res->n_records = 0;
}

static json_t *str_or_null(const char *s) { return s && *s ? sub_json_str(s) : json_null(); }

/* Output only: every string through sub_json_str (a refusal can quote the
 * registry's bytes), so building the document cannot fail. */
json_t *sub_cosign_verify_result_json(const sub_cosign_verify_result *res, const char *image,
                                      const sub_pubkey *const *keys, size_t nkeys,
                                      const sub_err *refusal) {
    bool ok = res->verified >= 0;
    json_t *sigs = json_array();
    for (size_t i = 0; i < res->n_records; i++)
        json_array_append_new(sigs, sub_verify_record_json(&res->records[i]));
    json_t *ids = json_array();
    for (size_t i = 0; i < nkeys; i++) json_array_append_new(ids, sub_json_str(sub_pubkey_id(keys[i])));
    json_t *j = json_object();
    json_object_set_new(j, "digest_ref", str_or_null(image));
    json_object_set_new(j, "digest", sub_json_str(res->image_digest));
    json_object_set_new(j, "verified", json_boolean(ok));
    json_object_set_new(j, "verified_by",
                        ok ? sub_json_str(res->records[res->verified].key_id) : json_null());
    json_object_set_new(j, "reason", ok || !refusal ? json_null()
                                                    : str_or_null(sub_reason_to_string(refusal->reason)));
    json_object_set_new(j, "message", ok || !refusal ? json_null() : str_or_null(refusal->msg));
    json_object_set_new(j, "signature_tag", sub_json_str(res->sig_tag));
    json_object_set_new(j, "signature_manifest", str_or_null(res->sig_manifest));
    json_object_set_new(j, "signature_layers", json_integer((json_int_t)res->n_layers));
    json_object_set_new(j, "policy", sub_json_str(sub_identity_policy_name(res->policy)));
    json_object_set_new(j, "identity", str_or_null(res->identity));
    json_object_set_new(j, "keys", ids);
    json_object_set_new(j, "signatures", sigs);
    return j;
}
