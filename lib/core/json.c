#include "substrate/json.h"
#include "substrate/fs.h"
#include "substrate/strbuf.h"
#include <string.h>

int sub_json_parse(const char *data, size_t len, size_t max, const char *what, json_t **out,
                   sub_err *e) {
    if (len > max)
        return sub_err_set(e, -E2BIG, "%s is too large (%zu bytes; the limit is %zu)", what, len,
                           max);
    json_error_t je;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        int r = sub_err_set(e, -EBADMSG, "%s is not valid JSON: %s (line %d, column %d)", what,
                            je.text, je.line, je.column);
        return r;
    }
    *out = j;
    return 0;
}

int sub_json_load_file(const char *path, size_t max, json_t **out, sub_err *e) {
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = sub_read_file(path, max, &data, &len, e);
    if (r < 0) return r;
    return sub_json_parse(data, len, max, path, out, e);
}

json_t *sub_json_str(const char *s) {
    if (!s) return json_null();
    json_t *j = json_string(s);
    if (j) return j;
    _cleanup_free_ char *v = sub_utf8_sanitize(s);
    j = json_string(v);
    return j ? j : json_null(); /* only when out of memory */
}

/* jansson refuses to dump only a NULL document or when out of memory; output
 * formatting must not abort the program, so that becomes "null". */
char *sub_json_dump(const json_t *j, size_t *len) {
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    if (!s) s = xstrdup("null");
    if (len) *len = strlen(s);
    return s;
}

char *sub_json_dump_pretty(const json_t *j) {
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    if (!s) s = xstrdup("null");
    char *r = xasprintf("%s\n", s);
    free(s);
    return r;
}

static const char *type_name(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static int get(const json_t *obj, const char *what, const char *key, bool required, json_type t,
               const char *tname, json_t **out, sub_err *e) {
    if (!json_is_object(obj)) return sub_err_set(e, -EBADMSG, "%s must be a JSON object", what);
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (!required) return -ENOENT;
        return sub_err_set(e, -EBADMSG, "%s: required field \"%s\" is missing", what, key);
    }
    if (json_typeof(v) != t && !(t == JSON_TRUE && json_is_boolean(v)))
        return sub_err_set(e, -EBADMSG, "%s: field \"%s\" must be %s, not %s", what, key, tname,
                           type_name(v));
    *out = v;
    return 0;
}

int sub_json_get_str(const json_t *obj, const char *what, const char *key, bool required,
                     const char **out, sub_err *e) {
    json_t *v;
    int r = get(obj, what, key, required, JSON_STRING, "a string", &v, e);
    if (r < 0) return r;
    *out = json_string_value(v);
    return 0;
}

int sub_json_get_int(const json_t *obj, const char *what, const char *key, bool required,
                     int64_t *out, sub_err *e) {
    json_t *v;
    int r = get(obj, what, key, required, JSON_INTEGER, "an integer", &v, e);
    if (r < 0) return r;
    *out = json_integer_value(v);
    return 0;
}

int sub_json_get_obj(const json_t *obj, const char *what, const char *key, bool required,
                     json_t **out, sub_err *e) {
    return get(obj, what, key, required, JSON_OBJECT, "an object", out, e);
}

int sub_json_get_arr(const json_t *obj, const char *what, const char *key, bool required,
                     json_t **out, sub_err *e) {
    return get(obj, what, key, required, JSON_ARRAY, "an array", out, e);
}

int sub_json_get_strv(const json_t *obj, const char *what, const char *key, bool required,
                      char ***out, sub_err *e) {
    json_t *a;
    int r = sub_json_get_arr(obj, what, key, required, &a, e);
    if (r < 0) return r;
    _cleanup_strv_ char **v = xcalloc(1, sizeof(char *));
    size_t i;
    json_t *it;
    json_array_foreach(a, i, it) {
        if (!json_is_string(it))
            return sub_err_set(e, -EBADMSG, "%s: \"%s\"[%zu] must be a string, not %s", what, key,
                               i, type_name(it));
        strv_push(&v, json_string_value(it));
    }
    *out = TAKE_PTR(v);
    return 0;
}

int sub_json_check_keys(const json_t *obj, const char *what, const char *const *allowed,
                        sub_err *e) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, k)) ok = true;
        if (!ok) {
            sub_buf known = SUB_BUF_INIT;
            for (const char *const *a = allowed; *a; a++)
                sub_buf_printf(&known, "%s%s", a == allowed ? "" : ", ", *a);
            int r = sub_err_set(e, -EBADMSG, "%s: unknown field \"%s\" (known fields: %s)", what,
                                k, sub_buf_str(&known));
            sub_buf_free(&known);
            return r;
        }
    }
    return 0;
}
