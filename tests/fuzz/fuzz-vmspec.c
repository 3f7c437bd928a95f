/* The golden VM spec (lib/vm/spec.c, on lib/core/yamltree.c). A spec that
 * parses must keep the parser's promises: every value inside its range, the
 * package and service lists sorted without repeats, each user named with a
 * key list, a canonical JSON form and keys that do not move between two
 * calls, and a diff of the spec with itself that says "no change". A refusal
 * names the file and leaves nothing behind. No repo is given: the harness
 * must not depend on the working directory. */
#include "fuzz.h"
#include "substrate/vmspec.h"

#define PATH "/fuzz/vm/golden.yaml"
#define RELEASE "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static void check_sorted(char *const *v) {
    FUZZ_ASSERT(v != NULL);
    for (size_t i = 0; v[i]; i++) {
        FUZZ_ASSERT(strlen(v[i]) >= 1);
        if (i) FUZZ_ASSERT(strcmp(v[i - 1], v[i]) < 0);
    }
}

static void check_parsed(const sub_vm_spec *s) {
    FUZZ_ASSERT(s->name && s->name[0] && strlen(s->name) <= SUB_VM_NAME_MAX);
    FUZZ_ASSERT(strcmp(s->suite, "bookworm") == 0 || strcmp(s->suite, "trixie") == 0);
    FUZZ_ASSERT(s->cpus >= 1 && s->cpus <= 64);
    FUZZ_ASSERT(s->memory_bytes >= (512ull << 20) && s->memory_bytes <= (256ull << 30));
    FUZZ_ASSERT(s->disk_bytes >= (4ull << 30) && s->disk_bytes <= (2ull << 40));
    FUZZ_ASSERT(s->ssh_port >= 1024);
    FUZZ_ASSERT(s->base_packages && !s->base_packages[0]);
    check_sorted(s->packages);
    check_sorted(s->services);
    for (size_t i = 0; i < s->nusers; i++) {
        FUZZ_ASSERT(s->users[i].name && s->users[i].name[0] && s->users[i].ssh_keys);
        FUZZ_ASSERT(strcmp(s->users[i].name, "root") != 0);
        for (char **k = s->users[i].ssh_keys; *k; k++)
            FUZZ_ASSERT(!strchr(*k, '\n') && !strchr(*k, '\r'));
        for (size_t j = 0; j < i; j++) FUZZ_ASSERT(strcmp(s->users[i].name, s->users[j].name) != 0);
    }
    char *j1 = sub_vm_spec_to_json(s), *j2 = sub_vm_spec_to_json(s);
    FUZZ_ASSERT(strcmp(j1, j2) == 0);
    free(j1);
    free(j2);
    char k1[SUB_DIGEST_MAX], k2[SUB_DIGEST_MAX], b1[SUB_DIGEST_MAX], b2[SUB_DIGEST_MAX];
    sub_err e = {0};
    FUZZ_ASSERT(sub_vm_spec_image_key(s, RELEASE, "7e1aa97", k1, &e) == 0);
    FUZZ_ASSERT(sub_vm_spec_image_key(s, RELEASE, "7e1aa97", k2, &e) == 0);
    FUZZ_ASSERT(strcmp(k1, k2) == 0 && strlen(k1) == 71);
    sub_vm_spec_boot_key(s, b1);
    sub_vm_spec_boot_key(s, b2);
    FUZZ_ASSERT(strcmp(b1, b2) == 0 && strlen(b1) == 71);
    char *why = NULL;
    FUZZ_ASSERT(sub_vm_spec_diff(s, NULL, s, NULL, &why) == SUB_VM_SAME);
    FUZZ_ASSERT(why && strcmp(why, "no change") == 0);
    free(why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_vm_spec s;
    sub_err e = {0};
    int r = sub_vm_spec_parse((const char *)data, size, PATH, NULL, &s, &e);
    fuzz_check_err(&e);
    if (r < 0) {
        FUZZ_ASSERT(s.name == NULL && s.suite == NULL && s.users == NULL && s.packages == NULL);
        if (r == -EINVAL) {
            FUZZ_ASSERT(e.reason == SUB_R_BAD_VM_SPEC && e.kind == SUB_KIND_INPUT);
            FUZZ_ASSERT(strncmp(e.msg, PATH ":", strlen(PATH ":")) == 0);
        }
    } else {
        check_parsed(&s);
    }
    sub_vm_spec_done(&s);
    return 0;
}
