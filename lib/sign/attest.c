/* SLSA provenance as an in-toto statement in a DSSE envelope, stored the way
 * `cosign attest` stores it. See attest.h. */
#include "sign-internal.h"
#include "substrate/attest.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/manifest.h"
#include "substrate/strbuf.h"
#include <string.h>

#define MAX_ATTESTATIONS 64

/* "pkg=ver,pkg2=ver2" -> purl resolvedDependencies entries with a role */
static void add_packages(json_t *deps, const char *list, const char *role) {
    if (!list || !*list) return;
    _cleanup_free_ char *copy = xstrdup(list);
    char *save = NULL;
    for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(it, '=');
        if (!eq) continue;
        *eq = 0;
        sub_buf ver = SUB_BUF_INIT; /* purl: percent-encode ':' (Debian epochs) */
        for (const char *c = eq + 1; *c; c++) {
            if (*c == ':') sub_buf_puts(&ver, "%3A");
            else sub_buf_putc(&ver, *c);
        }
        json_array_append_new(deps, json_pack("{s:s+++, s:{s:s, s:s}}", "uri", "pkg:deb/debian/", it,
                                              "@", sub_buf_str(&ver), "annotations", "role", role,
                                              "debianVersion", eq + 1));
        sub_buf_free(&ver);
    }
}

int sub_provenance_statement(const sub_provenance *p, char **out, size_t *len, sub_err *e) {
    int r = sub_digest_validate(p->digest, e);
    if (r < 0) return r;
    if (!p->subject || !p->commit || strlen(p->commit) != 40)
        return sub_err_set(e, -EINVAL, "provenance needs a subject and a full commit SHA");
    json_t *cmd = json_array();
    for (char *const *a = p->build_command; a && *a; a++) json_array_append_new(cmd, json_string(*a));
    json_t *deps = json_array();
    /* no configured source: no URI at all (never a made-up one), the commit still names it */
    const char *source = p->source && *p->source ? p->source : NULL;
    json_t *srcdep = json_pack("{s:{s:s}, s:{s:s}}", "digest", "gitCommit", p->commit,
                               "annotations", "role", "source");
    if (source) json_object_set_new(srcdep, "uri", json_sprintf("git+%s", source));
    json_array_append_new(deps, srcdep);
    add_packages(deps, p->host_inputs, "host-input");
    add_packages(deps, p->build_inputs, "toolchain");
    _cleanup_json_ json_t *st = json_pack(
        "{s:s, s:[{s:s, s:{s:s}}], s:s, s:{"
        "s:{s:s, s:{s:{s:s, s:{s:s}}, s:s, s:s, s:s, s:s, s:s}, s:{s:o, s:I, s:[s, s, s, s]}, s:o},"
        "s:{s:{s:s}}}}",
        "_type", SUB_INTOTO_STATEMENT_V1, "subject", "name", p->subject, "digest", "sha256",
        sub_digest_hex(p->digest), "predicateType", SUB_SLSA_PROVENANCE_V1, "predicate",
        "buildDefinition", "buildType", SUB_SUBSTRATE_BUILD_TYPE, "externalParameters", "source",
        "uri", source ? source : "", "digest", "gitCommit", p->commit, "revision", p->revision ? p->revision : p->commit,
        "image", p->image ? p->image : "", "version", p->version ? p->version : "", "spec",
        p->spec_path ? p->spec_path : "", "specDigest", p->spec_digest ? p->spec_digest : "",
        "internalParameters", "buildCommand", cmd, "sourceDateEpoch",
        (json_int_t)p->source_date_epoch, "environment", "TZ=UTC", "LC_ALL=C", "umask=022",
        "export=git archive", "resolvedDependencies", deps, "runDetails", "builder", "id",
        p->builder_version ? p->builder_version : "substrate");
    if (!st) abort();
    if (!source) {
        json_t *bd = json_object_get(json_object_get(st, "predicate"), "buildDefinition");
        json_object_del(json_object_get(json_object_get(bd, "externalParameters"), "source"), "uri");
    }
    *out = sub_json_dump(st, len);
    return 0;
}

char *sub_dsse_pae(const char *type, const void *payload, size_t len, size_t *out_len) {
    sub_buf b = SUB_BUF_INIT;
    sub_buf_printf(&b, "DSSEv1 %zu %s %zu ", strlen(type), type, len);
    sub_buf_append(&b, payload, len);
    return sub_buf_detach(&b, out_len);
}

int sub_dsse_sign(const sub_privkey *k, const char *type, const void *payload, size_t len,
                  char **envelope, size_t *envelope_len, sub_err *e) {
    size_t plen;
    _cleanup_free_ char *pae = sub_dsse_pae(type, payload, len, &plen);
    _cleanup_free_ char *sig = NULL;
    int r = sub_cosign_sign(k, pae, plen, &sig, e);
    if (r < 0) return r;
    _cleanup_free_ char *b64 = sub_b64_encode(payload, len);
    _cleanup_json_ json_t *env = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "payloadType", type,
                                           "payload", b64, "signatures", "keyid",
                                           sub_privkey_id(k), "sig", sig);
    if (!env) abort();
    *envelope = sub_json_dump(env, envelope_len);
    return 0;
}

int sub_dsse_verify(const sub_pubkey *const *keys, size_t nkeys, const void *envelope,
                    size_t envelope_len, const char *want_type, char **payload, size_t *payload_len,
                    char key_id[SUB_DIGEST_MAX], sub_err *e) {
    _cleanup_json_ json_t *env = NULL;
    sub_err pe = {0};
    if (sub_json_parse(envelope, envelope_len, SUB_ATTEST_MAX_ENVELOPE, "DSSE envelope", &env, &pe) < 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED, "malformed envelope: %s", pe.msg);
    const char *type, *b64;
    json_t *sigs;
    if (sub_json_get_str(env, "DSSE envelope", "payloadType", true, &type, &pe) < 0 ||
        sub_json_get_str(env, "DSSE envelope", "payload", true, &b64, &pe) < 0 ||
        sub_json_get_arr(env, "DSSE envelope", "signatures", true, &sigs, &pe) < 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED, "malformed envelope: %s", pe.msg);
    if (strcmp(type, want_type))
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED,
                            "envelope payloadType is \"%s\", expected \"%s\"", type, want_type);
    _cleanup_free_ unsigned char *body = NULL;
    size_t blen = 0;
    if (sub_b64_decode(b64, strlen(b64), NULL, "the envelope payload", &body, &blen, &pe) < 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED, "malformed envelope: %s", pe.msg);
    size_t plen;
    _cleanup_free_ char *pae = sub_dsse_pae(type, body, blen, &plen);
    size_t i;
    json_t *s;
    json_array_foreach(sigs, i, s) {
        const char *sig;
        if (i >= 16) break;
        if (sub_json_get_str(s, "DSSE signature", "sig", true, &sig, &pe) < 0) continue;
        _cleanup_free_ unsigned char *der = NULL;
        size_t dlen = 0;
        char why[256];
        if (sub_b64_decode(sig, strlen(sig), NULL, "a DSSE signature", &der, &dlen, NULL) < 0 ||
            sign_check_sig_der(der, dlen, why, sizeof why) < 0)
            continue;
        for (size_t k = 0; k < nkeys; k++)
            if (sign_verify_der(keys[k]->pkey, der, dlen, pae, plen)) {
                if (key_id) snprintf(key_id, SUB_DIGEST_MAX, "%s", keys[k]->id);
                *payload = (char *)xmalloc(blen + 1);
                memcpy(*payload, body, blen);
                (*payload)[blen] = 0;
                if (payload_len) *payload_len = blen;
                return 0;
            }
    }
    return sub_err_setr(e, SUB_R_NO_TRUSTED_KEY, SUB_KIND_CHECK, -EKEYREJECTED,
                        "no trusted key matched: none of the envelope's %zu signature(s) verifies "
                        "over its payload with the %zu trusted key(s)",
                        json_array_size(sigs), nkeys);
}

int sub_attest_tag(const char *image_digest, char **tag, sub_err *e) {
    int r = sub_digest_validate(image_digest, e);
    if (r < 0) return r;
    const char *colon = strchr(image_digest, ':');
    *tag = xasprintf("%.*s-%s.att", (int)(colon - image_digest), image_digest, colon + 1);
    return 0;
}

/* Does `m` already hold a DSSE layer whose envelope this key signed over
 * exactly these statement bytes? ECDSA signatures are randomised, so the
 * same statement signed again is another envelope with another digest:
 * comparing layer digests would add a copy on every run. */
static bool already_attested(sub_reg *r, const char *repo, const sub_manifest *m,
                             const sub_privkey *k, const char *st, size_t stlen) {
    _cleanup_pubkey_ sub_pubkey *pub = NULL;
    if (sub_privkey_public(k, &pub, NULL) < 0) return false;
    const sub_pubkey *keys[] = {pub};
    for (size_t i = 0; i < m->n_layers && i < MAX_ATTESTATIONS; i++) {
        const sub_desc *d = &m->layers[i];
        _cleanup_free_ char *mt = sub_mt_normalize(d->media_type);
        if (!streq(mt, SUB_MT_DSSE_ENVELOPE) || d->size > SUB_ATTEST_MAX_ENVELOPE) continue;
        _cleanup_free_ char *env = NULL, *body = NULL;
        size_t elen = 0, blen = 0;
        if (sub_reg_blob_get_buf(r, repo, d->digest, SUB_ATTEST_MAX_ENVELOPE, &env, &elen, NULL) < 0 ||
            sub_dsse_verify(keys, 1, env, elen, SUB_INTOTO_PAYLOAD_TYPE, &body, &blen, NULL, NULL) < 0)
            continue;
        if (blen == stlen && memcmp(body, st, stlen) == 0) return true;
    }
    return false;
}

static int image_present(sub_reg *r, const char *repo, const char *digest, sub_err *e) {
    int rr = sub_reg_manifest_head(r, repo, digest, NULL, NULL, NULL, e);
    if (rr < 0) return rr;
    if (rr == 0)
        return sub_err_setr(e, SUB_R_NO_SUCH_IMAGE, SUB_KIND_INPUT, -ENOENT,
                            "image %s@%s is not in the registry: push it before attesting it", repo,
                            digest);
    return 0;
}

/* Sign the statement bytes `st` (exactly as given) into a DSSE envelope and
 * add it to the image's .att artifact, unless this key already attested these
 * bytes there. The image was checked to exist. res (may be NULL) gets the
 * manifest digest now tagged, the layer count and whether anything was pushed. */
static int attest_push(sub_reg *r, const char *repo, const char *digest, const char *st,
                       size_t stlen, const char *ptype, const sub_privkey *k,
                       sub_attest_push_result *res, sub_err *e) {
    _cleanup_free_ char *tag = NULL;
    int rr = sub_attest_tag(digest, &tag, e);
    if (rr < 0) return rr;
    if (res) {
        snprintf(res->key_id, sizeof res->key_id, "%s", sub_privkey_id(k));
        snprintf(res->att_tag, sizeof res->att_tag, "%s", tag);
        snprintf(res->predicate_type, sizeof res->predicate_type, "%s", ptype);
        if ((rr = sub_sha256_buf(st, stlen, res->statement_digest, e)) < 0) return rr;
    }
    _cleanup_free_ char *env = NULL;
    size_t elen;
    if ((rr = sub_dsse_sign(k, SUB_INTOTO_PAYLOAD_TYPE, st, stlen, &env, &elen, e)) < 0) return rr;
    char edigest[SUB_DIGEST_MAX];
    if ((rr = sub_sha256_buf(env, elen, edigest, e)) < 0) return rr;

    _cleanup_free_ char *old = NULL;
    size_t oldlen = 0;
    char old_digest[SUB_DIGEST_MAX] = "";
    sub_err ge = {0};
    rr = sub_reg_manifest_get(r, repo, tag, &old, &oldlen, NULL, old_digest, &ge);
    if (rr < 0 && rr != -ENOENT) {
        *e = ge;
        sub_err_prefix(e, "reading the existing attestations %s:%s", repo, tag);
        return rr;
    }
    if (rr == -ENOENT) old_digest[0] = 0;
    if (rr == 0) {
        _cleanup_manifest_ sub_manifest m = {0};
        if ((rr = sub_manifest_parse(old, oldlen, NULL, &m, e)) < 0) {
            sub_err_prefix(e, "the existing attestation manifest %s:%s is malformed; refusing to "
                              "replace it", repo, tag);
            return rr;
        }
        if (already_attested(r, repo, &m, k, st, stlen)) {
            if (res) {
                memcpy(res->att_manifest, old_digest, SUB_DIGEST_MAX);
                res->n_layers = m.n_layers;
                res->already = true;
            }
            return 0;
        }
    }
    json_t *layer = json_pack("{s:s, s:I, s:s, s:{s:s, s:s}}", "mediaType", SUB_MT_DSSE_ENVELOPE,
                              "size", (json_int_t)elen, "digest", edigest, "annotations",
                              SUB_COSIGN_SIG_ANNOTATION, "", "predicateType", ptype);
    if (!layer) abort();
    _cleanup_free_ char *man = NULL, *cfg = NULL;
    size_t mlen, clen;
    if ((rr = sign_artifact_add_layer(old, oldlen, layer, &man, &mlen, &cfg, &clen, e)) < 0) return rr;
    char cdigest[SUB_DIGEST_MAX], mdigest[SUB_DIGEST_MAX];
    if ((rr = sub_sha256_buf(cfg, clen, cdigest, e)) < 0) return rr;
    if ((rr = sub_reg_blob_put_buf(r, repo, edigest, env, elen, e)) < 0 ||
        (rr = sub_reg_blob_put_buf(r, repo, cdigest, cfg, clen, e)) < 0 ||
        (rr = sign_tag_unchanged(r, repo, tag, old_digest, "attestations", digest, e)) < 0 ||
        (rr = sub_reg_manifest_put(r, repo, tag, SUB_MT_OCI_MANIFEST, man, mlen, mdigest, e)) < 0) {
        sub_err_prefix(e, "pushing the attestation of %s@%s", repo, digest);
        return rr;
    }
    if (res) {
        memcpy(res->att_manifest, mdigest, SUB_DIGEST_MAX);
        _cleanup_manifest_ sub_manifest nm = {0};
        if (sub_manifest_parse(man, mlen, NULL, &nm, NULL) == 0) res->n_layers = nm.n_layers;
    }
    return 0;
}

int sub_attest_registry(sub_reg *r, const char *repo, const sub_provenance *p,
                        const sub_privkey *k, char att_manifest[SUB_DIGEST_MAX], sub_err *e) {
    int rr = sub_digest_validate(p->digest, e);
    if (rr < 0) return rr;
    if ((rr = image_present(r, repo, p->digest, e)) < 0) return rr;
    _cleanup_free_ char *st = NULL;
    size_t stlen;
    if ((rr = sub_provenance_statement(p, &st, &stlen, e)) < 0) return rr;
    sub_attest_push_result res = {0};
    if ((rr = attest_push(r, repo, p->digest, st, stlen, SUB_SLSA_PROVENANCE_V1, k, &res, e)) < 0)
        return rr;
    if (att_manifest) memcpy(att_manifest, res.att_manifest, SUB_DIGEST_MAX);
    return 0;
}

void sub_attest_result_free(sub_attest_result *res) {
    if (!res) return;
    free(res->build_command);
    if (res->statement) json_decref(res->statement);
    res->build_command = NULL;
    res->statement = NULL;
}

/* A verified statement: in-toto v1, SLSA provenance v1, subject names digest. */
int sign_check_statement(const char *body, size_t len, const char *image_digest,
                         sub_attest_result *res, sub_err *e) {
    _cleanup_json_ json_t *st = NULL;
    sub_err pe = {0};
    if (sub_json_parse(body, len, SUB_ATTEST_MAX_ENVELOPE, "in-toto statement", &st, &pe) < 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED, "malformed statement: %s", pe.msg);
    const char *type = NULL, *ptype = NULL;
    json_t *subjects = NULL, *pred = NULL;
    if (sub_json_get_str(st, "statement", "_type", true, &type, &pe) < 0 ||
        sub_json_get_str(st, "statement", "predicateType", true, &ptype, &pe) < 0 ||
        sub_json_get_arr(st, "statement", "subject", true, &subjects, &pe) < 0 ||
        sub_json_get_obj(st, "statement", "predicate", true, &pred, &pe) < 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED, "malformed statement: %s", pe.msg);
    if (strcmp(type, SUB_INTOTO_STATEMENT_V1))
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED, "statement _type is \"%s\", not %s",
                            type, SUB_INTOTO_STATEMENT_V1);
    if (strcmp(ptype, SUB_SLSA_PROVENANCE_V1))
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED,
                            "predicateType is \"%s\", not SLSA provenance v1", ptype);
    bool names = false;
    size_t i;
    json_t *s;
    json_array_foreach(subjects, i, s) {
        const char *hex = json_string_value(json_object_get(json_object_get(s, "digest"), "sha256"));
        if (hex && !strcmp(hex, sub_digest_hex(image_digest))) names = true;
    }
    if (!names)
        return sub_err_setr(e, SUB_R_DIGEST_MISMATCH, SUB_KIND_CHECK, -EKEYREJECTED,
                            "the provenance is about another image: no subject names %s",
                            image_digest);
    json_t *bd = json_object_get(pred, "buildDefinition");
    json_t *ext = json_object_get(bd, "externalParameters");
    json_t *src = json_object_get(ext, "source");
    const char *commit = json_string_value(json_object_get(json_object_get(src, "digest"), "gitCommit"));
    if (!commit)
        return sub_err_setk(e, SUB_KIND_CHECK, -EKEYREJECTED,
                            "the provenance names no source commit "
                            "(buildDefinition.externalParameters.source.digest.gitCommit)");
    snprintf(res->commit, sizeof res->commit, "%s", commit);
    const char *v;
    if ((v = json_string_value(json_object_get(src, "uri")))) snprintf(res->source, sizeof res->source, "%s", v);
    if ((v = json_string_value(json_object_get(ext, "spec")))) snprintf(res->spec_path, sizeof res->spec_path, "%s", v);
    if ((v = json_string_value(json_object_get(ext, "specDigest")))) snprintf(res->spec_digest, sizeof res->spec_digest, "%s", v);
    sub_buf cmd = SUB_BUF_INIT;
    json_t *a = json_object_get(json_object_get(bd, "internalParameters"), "buildCommand");
    json_array_foreach(a, i, s) if (json_is_string(s))
        sub_buf_printf(&cmd, "%s%s", cmd.len ? " " : "", json_string_value(s));
    free(res->build_command);
    res->build_command = sub_buf_detach(&cmd, NULL);
    if (res->statement) json_decref(res->statement);
    res->statement = TAKE_PTR(st);
    return 0;
}

/* sub_attest_verify_registry; on success *body (may be NULL) gets the exact
 * statement bytes that verified (caller frees). */
static int find_provenance(sub_reg *r, const char *repo, const char *image_digest,
                           const sub_pubkey *const *keys, size_t nkeys, sub_attest_result *res,
                           char **body_out, size_t *body_len, sub_err *e) {
    memset(res, 0, sizeof *res);
    _cleanup_free_ char *tag = NULL;
    int rr = sub_attest_tag(image_digest, &tag, e);
    if (rr < 0) return rr;
    _cleanup_free_ char *man = NULL;
    size_t mlen = 0;
    sub_err ge = {0};
    rr = sub_reg_manifest_get(r, repo, tag, &man, &mlen, NULL, NULL, &ge);
    if (rr == -ENOENT)
        return sub_err_setr(e, SUB_R_NO_PROVENANCE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "no provenance: %s has no attestation tag %s", repo, tag);
    if (rr < 0) {
        *e = ge;
        return rr;
    }
    res->found = true;
    _cleanup_manifest_ sub_manifest m = {0};
    sub_err pe = {0};
    if (sub_manifest_parse(man, mlen, NULL, &m, &pe) < 0)
        return sub_err_setr(e, SUB_R_NO_PROVENANCE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "no provenance: the attestation manifest %s:%s is malformed: %s", repo,
                            tag, pe.msg);
    sub_err last = {0};
    for (size_t i = 0; i < m.n_layers && i < MAX_ATTESTATIONS; i++) {
        const sub_desc *d = &m.layers[i];
        _cleanup_free_ char *mt = sub_mt_normalize(d->media_type);
        if (!streq(mt, SUB_MT_DSSE_ENVELOPE)) continue;
        res->n_layers++;
        _cleanup_free_ char *env = NULL, *body = NULL;
        size_t elen = 0, blen = 0;
        sub_err le = {0};
        if (sub_reg_blob_get_buf(r, repo, d->digest, SUB_ATTEST_MAX_ENVELOPE, &env, &elen, &le) < 0 ||
            sub_dsse_verify(keys, nkeys, env, elen, SUB_INTOTO_PAYLOAD_TYPE, &body, &blen,
                            res->key_id, &le) < 0 ||
            sign_check_statement(body, blen, image_digest, res, &le) < 0) {
            last = le;
            continue;
        }
        res->verified = true;
        if (body_out) {
            *body_out = TAKE_PTR(body);
            *body_len = blen;
        }
        return 0;
    }
    if (!res->n_layers)
        return sub_err_setr(e, SUB_R_NO_PROVENANCE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "no provenance: %s:%s holds no DSSE attestation layer", repo, tag);
    return sub_err_setr(e, SUB_R_BAD_PROVENANCE, SUB_KIND_CHECK, -EKEYREJECTED,
                        "no attestation of %s@%s verifies (%zu examined): %s", repo, image_digest,
                        res->n_layers, last.msg);
}

int sub_attest_verify_registry(sub_reg *r, const char *repo, const char *image_digest,
                               const sub_pubkey *const *keys, size_t nkeys, sub_attest_result *res,
                               sub_err *e) {
    return find_provenance(r, repo, image_digest, keys, nkeys, res, NULL, NULL, e);
}

/* cosign attest's --type shorthands (cosign/pkg/cosign/attestation). */
static const struct {
    const char *name, *uri;
} predicate_types[] = {
    {"slsaprovenance", "https://slsa.dev/provenance/v0.2"},
    {"slsaprovenance02", "https://slsa.dev/provenance/v0.2"},
    {"slsaprovenance1", SUB_SLSA_PROVENANCE_V1},
    {"link", "https://in-toto.io/Link/v1"},
    {"spdx", "https://spdx.dev/Document"},
    {"spdxjson", "https://spdx.dev/Document"},
    {"cyclonedx", "https://cyclonedx.org/bom"},
    {"vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"},
    {"openvex", "https://openvex.dev/ns"},
    {"custom", "https://cosign.sigstore.dev/attestation/v1"},
};

int sub_attest_predicate_type(const char *type, const char **uri, sub_err *e) {
    if (!type || !*type) type = "custom";
    for (size_t i = 0; i < ARRAY_SIZE(predicate_types); i++)
        if (streq(type, predicate_types[i].name)) {
            *uri = predicate_types[i].uri;
            return 0;
        }
    const char *colon = strchr(type, ':');
    bool ok = colon && colon > type && strlen(type) < 512;
    for (const char *c = type; ok && c < colon; c++)
        ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
             (c > type && ((*c >= '0' && *c <= '9') || strchr("+-.", *c)));
    for (const char *c = type; ok && *c; c++) ok = (unsigned char)*c > 0x20 && *c != 0x7f;
    if (!ok)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "predicate type \"%s\" is neither a URI (e.g. %s) nor one of cosign's "
                            "names (slsaprovenance1, slsaprovenance, link, spdx, spdxjson, "
                            "cyclonedx, vuln, openvex, custom)",
                            type, SUB_SLSA_PROVENANCE_V1);
    *uri = type;
    return 0;
}

/* An in-toto v1 statement about subject@digest with the predicate read from
 * path (a JSON object). */
static int predicate_statement(const sub_attest_opts *o, const char *ptype, char **st,
                               size_t *stlen, sub_err *e) {
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = sub_read_file(o->predicate_path, SUB_ATTEST_MAX_PREDICATE, &data, &len, e);
    if (r < 0) return sub_sign_file_error(r, e);
    _cleanup_json_ json_t *pred = NULL;
    if ((r = sub_json_parse(data, len, SUB_ATTEST_MAX_PREDICATE, o->predicate_path, &pred, e)) < 0) {
        if (e) e->kind = SUB_KIND_INPUT;
        return r;
    }
    if (!json_is_object(pred))
        return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                            "%s: a predicate is a JSON object (in-toto), not a %s",
                            o->predicate_path, json_is_array(pred) ? "list" : "scalar");
    _cleanup_json_ json_t *stj = json_pack("{s:s, s:[{s:s, s:{s:s}}], s:s, s:O}", "_type",
                                           SUB_INTOTO_STATEMENT_V1, "subject", "name", o->subject,
                                           "digest", "sha256", sub_digest_hex(o->image_digest),
                                           "predicateType", ptype, "predicate", pred);
    if (!stj) return sub_err_set(e, -EINVAL, "cannot build the statement (invalid subject name?)");
    *st = sub_json_dump(stj, stlen);
    if (streq(ptype, SUB_SLSA_PROVENANCE_V1)) {
        /* what verify --provenance will require, checked before anything is pushed */
        sub_attest_result chk = {0};
        sub_err ce = {0};
        r = sign_check_statement(*st, *stlen, o->image_digest, &chk, &ce);
        sub_attest_result_free(&chk);
        if (r < 0) {
            free(TAKE_PTR(*st));
            return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                                "%s is not SLSA provenance v1 as `verify --provenance` reads it: %s",
                                o->predicate_path, ce.msg);
        }
    }
    return 0;
}

int sub_attest_image(sub_reg *r, const sub_attest_opts *o, sub_attest_push_result *res,
                     sub_err *e) {
    memset(res, 0, sizeof *res);
    int rr = sub_digest_validate(o->image_digest, e);
    if (rr < 0) return rr;
    if (!o->key || !o->repo || !o->subject)
        return sub_err_set(e, -EINVAL, "attest: a key, a repository and a subject are required");
    const char *ptype = NULL;
    if (o->predicate_path && (rr = sub_attest_predicate_type(o->predicate_type, &ptype, e)) < 0)
        return rr;
    if (!o->predicate_path && o->predicate_type)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "a predicate type goes with a predicate file; without one the image's "
                            "existing SLSA provenance is re-signed");
    if ((rr = image_present(r, o->repo, o->image_digest, e)) < 0) return rr;

    _cleanup_free_ char *st = NULL;
    size_t stlen = 0;
    if (o->predicate_path) {
        if ((rr = predicate_statement(o, ptype, &st, &stlen, e)) < 0) return rr;
    } else {
        /* re-sign: only a statement a currently trusted key vouches for */
        _cleanup_pubkeys_ sub_pubkey **store = NULL;
        const sub_pubkey *const *keys = o->trusted;
        size_t nkeys = o->ntrusted;
        if (!nkeys) {
            _cleanup_free_ char *dir = sub_trust_dir();
            if ((rr = sub_trust_load(dir, &store, &nkeys, e)) < 0) return rr;
            if (nkeys == 0)
                return sub_err_setk(e, SUB_KIND_INPUT, -ENOKEY,
                                    "the trust store %s holds no keys: the provenance to re-sign "
                                    "must verify with a trusted key (`substrate key trust "
                                    "FILE.pub`)",
                                    dir);
            keys = (const sub_pubkey *const *)store;
        }
        sub_attest_result ar = {0};
        rr = find_provenance(r, o->repo, o->image_digest, keys, nkeys, &ar, &st, &stlen, e);
        if (rr == 0) snprintf(res->resigned_from, sizeof res->resigned_from, "%s", ar.key_id);
        sub_attest_result_free(&ar);
        if (rr == -EKEYREJECTED)
            sub_err_prefix(e, "nothing to re-sign: no provenance of %s@%s verifies with a trusted "
                              "key (re-attest before untrusting the old key, or attest a statement "
                              "with --predicate FILE)",
                           o->repo, o->image_digest);
        if (rr < 0) return rr;
        ptype = SUB_SLSA_PROVENANCE_V1;
    }
    if ((rr = attest_push(r, o->repo, o->image_digest, st, stlen, ptype, o->key, res, e)) < 0)
        return rr;
    return 0;
}

/* Output only: strings from the statement go through sub_json_str. */
json_t *sub_attest_result_json(const sub_attest_result *res) {
    json_t *j = json_object();
    json_object_set_new(j, "found", json_boolean(res->found));
    json_object_set_new(j, "verified", json_boolean(res->verified));
    json_object_set_new(j, "attestations_examined", json_integer((json_int_t)res->n_layers));
    if (res->verified) {
        json_object_set_new(j, "key_id", sub_json_str(res->key_id));
        json_object_set_new(j, "source", res->source[0] ? sub_json_str(res->source) : json_null());
        json_object_set_new(j, "commit", sub_json_str(res->commit));
        json_object_set_new(j, "spec", sub_json_str(res->spec_path));
        json_object_set_new(j, "spec_digest", sub_json_str(res->spec_digest));
        json_object_set_new(j, "build_command", sub_json_str(res->build_command ? res->build_command : ""));
        json_object_set_new(j, "statement", json_incref(res->statement));
    }
    return j;
}
