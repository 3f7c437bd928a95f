/* JSON helpers over jansson. Parsing always rejects duplicate keys and input
 * larger than a caller-given cap. Returned json_t references belong to the
 * caller (json_decref). Serialisation is canonical: sorted keys, compact,
 * so equal documents give equal bytes (and equal digests). */
#pragma once
#include "error.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* jansson >= 2.9 provides json_decrefp() for cleanup attributes. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Parse `len` bytes; `what` names the document in error messages. */
int sub_json_parse(const char *data, size_t len, size_t max, const char *what, json_t **out,
                   sub_err *e);
int sub_json_load_file(const char *path, size_t max, json_t **out, sub_err *e);
/* A JSON string of s for output, whatever bytes s holds: bytes that are not
 * well-formed UTF-8 (a path, text from a registry) become U+FFFD, so the
 * value always exists (json_string() returns NULL there). NULL -> null. */
json_t *sub_json_str(const char *s);
/* Canonical compact serialisation (sorted keys). Caller frees. */
char *sub_json_dump(const json_t *j, size_t *len);
/* Pretty, sorted, for humans (trailing newline). Caller frees. */
char *sub_json_dump_pretty(const json_t *j);

/* Typed member access. Each returns 0 when found with the right type,
 * -ENOENT (no error recorded) when absent and !required, or an error
 * naming `what`.`key` and the expected type. Pointers returned borrow from obj. */
int sub_json_get_str(const json_t *obj, const char *what, const char *key, bool required,
                     const char **out, sub_err *e);
int sub_json_get_int(const json_t *obj, const char *what, const char *key, bool required,
                     int64_t *out, sub_err *e);
int sub_json_get_obj(const json_t *obj, const char *what, const char *key, bool required,
                     json_t **out, sub_err *e);
int sub_json_get_arr(const json_t *obj, const char *what, const char *key, bool required,
                     json_t **out, sub_err *e);
/* An array whose members are all strings -> NULL-terminated strv (caller frees). */
int sub_json_get_strv(const json_t *obj, const char *what, const char *key, bool required,
                      char ***out, sub_err *e);
/* Fail naming the first member of obj not in the NULL-terminated `allowed`. */
int sub_json_check_keys(const json_t *obj, const char *what, const char *const *allowed,
                        sub_err *e);
