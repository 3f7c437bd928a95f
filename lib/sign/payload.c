/* Cosign "simple signing" payloads: exact bytes out, strict parse in. */
#include "sign-internal.h"
#include "substrate/json.h"
#include "substrate/ref.h"
#include <string.h>

#define WHAT "signature payload"

int sub_cosign_payload_build(const char *reference, const char *digest, char **out, size_t *len,
                             sub_err *e) {
    int r = sub_digest_validate(digest, e);
    if (r < 0) return r;
    _cleanup_ref_ sub_ref ref = {0};
    r = sub_ref_parse(reference, NULL, &ref, e);
    if (r < 0) return r;
    _cleanup_free_ char *name = sub_ref_name(&ref);
    if (ref.tag || ref.digest || strcmp(name, reference))
        return sub_err_set(e, -EINVAL,
                           "the signed identity must be \"registry/repository\" without a tag or "
                           "digest (got \"%s\"; use \"%s\")",
                           reference, name);
    /* The reference grammar admits nothing JSON would escape, so this is
     * byte for byte what cosign's Go encoder writes. */
    char *s = xasprintf("{\"critical\":{\"identity\":{\"docker-reference\":\"%s\"},\"image\":{"
                        "\"docker-manifest-digest\":\"%s\"},\"type\":\"%s\"},\"optional\":null}",
                        reference, digest, SUB_COSIGN_PAYLOAD_TYPE);
    if (len) *len = strlen(s);
    *out = s;
    return 0;
}

void sub_cosign_payload_free(sub_cosign_payload *p) {
    if (!p) return;
    free(p->docker_reference);
    free(p->manifest_digest);
    memset(p, 0, sizeof *p);
}

int sub_cosign_payload_parse(const void *data, size_t len, sub_cosign_payload *out, sub_err *e) {
    memset(out, 0, sizeof *out);
    _cleanup_json_ json_t *j = NULL;
    int r = sub_json_parse(data, len, SUB_SIGN_MAX_PAYLOAD, WHAT, &j, e);
    if (r < 0) return r;
    if (!json_is_object(j)) return sub_err_set(e, -EBADMSG, WHAT " must be a JSON object");
    static const char *const top[] = {"critical", "optional", NULL};
    static const char *const crit_keys[] = {"identity", "image", "type", NULL};
    static const char *const id_keys[] = {"docker-reference", NULL};
    static const char *const img_keys[] = {"docker-manifest-digest", NULL};
    json_t *crit, *ident, *img;
    const char *type, *ref, *digest;
    if ((r = sub_json_check_keys(j, WHAT, top, e)) < 0 ||
        (r = sub_json_get_obj(j, WHAT, "critical", true, &crit, e)) < 0 ||
        (r = sub_json_check_keys(crit, WHAT ": critical", crit_keys, e)) < 0 ||
        (r = sub_json_get_str(crit, WHAT ": critical", "type", true, &type, e)) < 0 ||
        (r = sub_json_get_obj(crit, WHAT ": critical", "identity", true, &ident, e)) < 0 ||
        (r = sub_json_check_keys(ident, WHAT ": critical.identity", id_keys, e)) < 0 ||
        (r = sub_json_get_str(ident, WHAT ": critical.identity", "docker-reference", true, &ref,
                              e)) < 0 ||
        (r = sub_json_get_obj(crit, WHAT ": critical", "image", true, &img, e)) < 0 ||
        (r = sub_json_check_keys(img, WHAT ": critical.image", img_keys, e)) < 0 ||
        (r = sub_json_get_str(img, WHAT ": critical.image", "docker-manifest-digest", true,
                              &digest, e)) < 0)
        return r;
    json_t *opt = json_object_get(j, "optional");
    if (opt && !json_is_null(opt) && !json_is_object(opt))
        return sub_err_set(e, -EBADMSG, WHAT ": \"optional\" must be null or an object");
    if (strcmp(type, SUB_COSIGN_PAYLOAD_TYPE))
        return sub_err_set(e, -EBADMSG, WHAT ": critical.type is \"%s\", not \"%s\"", type,
                           SUB_COSIGN_PAYLOAD_TYPE);
    if (!*ref)
        return sub_err_set(e, -EBADMSG, WHAT ": critical.identity.docker-reference is empty");
    for (const char *q = ref; *q; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
            return sub_err_set(e, -EBADMSG,
                               WHAT ": critical.identity.docker-reference contains whitespace, a "
                               "control or a non-ASCII character (byte %zu)",
                               (size_t)(q - ref));
    sub_err de = {0};
    if (sub_digest_validate(digest, &de) < 0)
        return sub_err_set(e, -EBADMSG, WHAT ": critical.image.docker-manifest-digest: %s", de.msg);
    out->docker_reference = xstrdup(ref);
    out->manifest_digest = xstrdup(digest);
    return 0;
}
