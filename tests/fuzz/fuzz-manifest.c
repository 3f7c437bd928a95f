/* OCI image manifests, indexes and Docker v2 manifests / lists, as a
 * registry or a layout hands them over (lib/oci/manifest.c). */
#include "fuzz.h"
#include "substrate/json.h"
#include "substrate/manifest.h"

static void check_desc(const sub_desc *d) {
    FUZZ_ASSERT(d->media_type != NULL);
    sub_err e = {0};
    FUZZ_ASSERT(sub_digest_validate(d->digest, &e) == 0);
    for (size_t i = 1; i < d->n_annotations; i++)
        FUZZ_ASSERT(strcmp(d->annotations[i - 1].key, d->annotations[i].key) < 0);
    /* what we parsed, written out, parses back to the same descriptor */
    json_t *j = sub_desc_to_json(d);
    FUZZ_ASSERT(j != NULL);
    sub_desc back = {0};
    FUZZ_ASSERT(sub_desc_parse(j, "descriptor", &back, &e) == 0);
    FUZZ_ASSERT(!strcmp(back.media_type, d->media_type) && !strcmp(back.digest, d->digest) &&
                back.size == d->size && back.n_annotations == d->n_annotations);
    sub_desc_free(&back);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_manifest m = {0};
    sub_err e = {0};
    int r = sub_manifest_parse(data, size, NULL, &m, &e);
    fuzz_check_err(&e);
    if (r < 0) {
        FUZZ_ASSERT(r == -EBADMSG || r == -E2BIG);
        return 0;
    }
    FUZZ_ASSERT(m.kind == SUB_MANIFEST_IMAGE || m.kind == SUB_MANIFEST_INDEX);
    FUZZ_ASSERT(m.media_type && sub_mt_is_manifest(m.media_type));
    if (m.kind == SUB_MANIFEST_IMAGE) check_desc(&m.config);
    for (size_t i = 0; i < m.n_layers; i++) check_desc(&m.layers[i]);
    for (size_t i = 0; i < m.n_manifests; i++) check_desc(&m.manifests[i]);
    if (m.subject) check_desc(m.subject);
    /* the type it was recognised as, given as the Content-Type, agrees */
    sub_manifest again = {0};
    _cleanup_free_ char *ct = xasprintf("%s; charset=utf-8", m.media_type);
    FUZZ_ASSERT(sub_manifest_parse(data, size, ct, &again, &e) == 0);
    FUZZ_ASSERT(again.kind == m.kind && !strcmp(again.media_type, m.media_type));
    sub_manifest_free(&again);
    sub_manifest_free(&m);
    sub_manifest_free(&m); /* documented as harmless */
    return 0;
}
