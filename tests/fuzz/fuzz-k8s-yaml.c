/* render k8s's YAML emitter (lib/k8s/emit.c). Every string it writes comes
 * from a manifest or jobspec (env values, args, paths, names), so a string
 * the emitter leaves unquoted or escapes wrongly could add fields to the
 * Kubernetes object (a newline and "privileged: true"). Whatever strings it
 * is given, as values, keys and nested, the YAML must read back through
 * libyaml (the library's own reader, lib/core/yamltree.c) as exactly the
 * JSON it was made from, be plain ASCII, and leave a scalar unquoted only
 * when it starts with a letter, '_' or '/' (so no YAML 1.1 resolver can take
 * it for a number, a date or a special float). */
#include "fuzz.h"
#include "../yaml-back.h"
#include "substrate/k8s.h"

static void check_plain(const sub_ynode *n) {
    if (!n) return;
    if (n->type == SUB_Y_SCALAR) {
        if (n->plain && n->value[0])
            FUZZ_ASSERT(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_/", n->value[0]) ||
                        strchr("-0123456789", n->value[0])); /* numbers the fuzzer's doc holds */
        return;
    }
    for (size_t i = 0; i < n->n; i++) check_plain(n->kids[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *doc = json_object(), *list = json_array(), *map = json_object();
    size_t i = 0, n = 0;
    while (i <= size && n < 64) {
        const uint8_t *z = memchr(data + i, 0, size - i);
        size_t len = z ? (size_t)(z - (data + i)) : size - i;
        json_t *s = json_stringn((const char *)data + i, len); /* NULL: not UTF-8, as no manifest holds */
        if (s) {
            json_array_append(list, s);
            json_object_setn(map, (const char *)data + i, len, s);
            json_decref(s);
        }
        n++;
        i += len + 1;
    }
    json_object_set_new(doc, "list", list);
    json_object_set_new(doc, "map", map);
    json_object_set_new(doc, "nested", json_pack("[[O],{s:[O]},i]", list, "k", map, -7));
    char *y = sub_k8s_yaml_doc(doc);
    for (const char *p = y; *p; p++) FUZZ_ASSERT((unsigned char)*p < 0x80 && (*p == '\n' || (unsigned char)*p >= 0x20));
    sub_err e = {0};
    sub_yctx c = {.file = "emitted", .doc = "YAML", .e = &e};
    sub_ynode *root = NULL;
    int r = sub_yaml_load(&c, y, strlen(y), &root);
    if (r < 0) fprintf(stderr, "not read back: %s\n%s\n", e.msg, y);
    FUZZ_ASSERT(r == 0);
    check_plain(root);
    json_t *back = tree_json(root);
    if (!json_equal(back, doc)) {
        char *a = json_dumps(doc, JSON_SORT_KEYS | JSON_ENSURE_ASCII), *b = json_dumps(back, JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        fprintf(stderr, "YAML:\n%s\nwant %s\ngot  %s\n", y, a, b);
        free(a);
        free(b);
    }
    FUZZ_ASSERT(json_equal(back, doc));
    json_decref(back);
    sub_ynode_free(root);
    free(y);
    json_decref(doc);
    return 0;
}
