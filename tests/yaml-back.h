/* What a YAML reader makes of emitted YAML, as JSON: the check that
 * render k8s's emitter (lib/k8s/emit.c) writes what it was given. Shared by
 * tests/unit/test-k8s.c and tests/fuzz/fuzz-k8s-yaml.c; the tree comes from
 * the library's libyaml reader (lib/core/yamltree.c). */
#pragma once
#include "substrate/yamltree.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* YAML 1.1's reading of a plain scalar (the wider of 1.1 and 1.2: PyYAML's
 * and kubectl's). A quoted scalar is always a string. */
static inline json_t *plain_value(const char *s) {
    static const char *const t[] = {"y", "yes", "on", "true", NULL}, *const f[] = {"n", "no", "off", "false", NULL};
    for (size_t i = 0; t[i]; i++)
        if (!strcasecmp(s, t[i])) return json_true();
    for (size_t i = 0; f[i]; i++)
        if (!strcasecmp(s, f[i])) return json_false();
    if (!*s || !strcmp(s, "~") || !strcasecmp(s, "null")) return json_null();
    char *end;
    long long v = strtoll(s, &end, 0);
    if (*s && !*end && strchr("+-0123456789", s[0])) return json_integer(v);
    double d = strtod(s, &end);
    if (!*end && (strchr("+-.0123456789", s[0]))) return json_real(d);
    return json_string(s);
}

static inline json_t *tree_json(const sub_ynode *n) {
    if (!n) return json_null();
    if (n->type == SUB_Y_SCALAR) return n->plain ? plain_value(n->value) : json_string(n->value);
    if (n->type == SUB_Y_SEQ) {
        json_t *a = json_array();
        for (size_t i = 0; i < n->n; i++) json_array_append_new(a, tree_json(n->kids[i]));
        return a;
    }
    json_t *o = json_object();
    for (size_t i = 0; i + 1 < n->n; i += 2) json_object_set_new(o, n->kids[i]->value, tree_json(n->kids[i + 1]));
    return o;
}

