/* Image config documents (lib/oci/manifest.c sub_image_config_parse). */
#include "fuzz.h"
#include "substrate/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_image_config c = {0};
    sub_err e = {0};
    int r = sub_image_config_parse(data, size, &c, &e);
    fuzz_check_err(&e);
    if (r < 0) return 0;
    FUZZ_ASSERT(c.architecture && c.os);
    FUZZ_ASSERT(c.n_diff_ids == strv_len(c.diff_ids));
    for (size_t i = 0; i < c.n_diff_ids; i++) FUZZ_ASSERT(sub_digest_validate(c.diff_ids[i], &e) == 0);
    for (size_t i = 1; i < c.n_labels; i++)
        FUZZ_ASSERT(strcmp(c.labels[i - 1].key, c.labels[i].key) < 0);
    for (size_t i = 0; i < c.n_labels; i++)
        FUZZ_ASSERT(sub_image_config_label(&c, c.labels[i].key) == c.labels[i].value);
    sub_image_config_free(&c);
    return 0;
}
