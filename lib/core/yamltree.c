/* YAML text -> a tree of positioned nodes, and the getters that read fields
 * from it (yamltree.h). The shape is the service manifest reader's
 * (lib/tier1/svc-manifest.c), made independent of any one document. */
#include "substrate/yamltree.h"
#include "substrate/strbuf.h"
#include <stdarg.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 16

void sub_ynode_free(sub_ynode *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n; i++) sub_ynode_free(n->kids[i]);
    free(n->kids);
    free(n->value);
    free(n);
}

const char *sub_yshow(sub_yctx *c, const char *s) {
    char *slot = c->show[c->nshow++ % 2];
    _cleanup_free_ char *esc = sub_str_escape(s);
    if (strlen(esc) > SUB_YSHOW_MAX - 8)
        snprintf(slot, SUB_YSHOW_MAX + 8, "\"%.*s...\"", (int)sub_utf8_cut(esc, SUB_YSHOW_MAX - 8),
                 esc);
    else
        snprintf(slot, SUB_YSHOW_MAX + 8, "\"%s\"", esc);
    return slot;
}

_printf_(5, 0) static int failv(sub_yctx *c, size_t line, size_t col, const char *field,
                                const char *fmt, va_list ap) {
    char what[800];
    vsnprintf(what, sizeof what, fmt, ap);
    char where[48] = "";
    if (line) snprintf(where, sizeof where, ":%zu:%zu", line, col);
    return sub_err_setr(c->e, c->reason, SUB_KIND_INPUT, -EINVAL, "%s%s: %s%s%s", c->file, where,
                        field ? field : "", field ? ": " : "", what);
}

int sub_yfail_at(sub_yctx *c, size_t line, size_t col, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = failv(c, line, col, field, fmt, ap);
    va_end(ap);
    return r;
}

int sub_ybad(sub_yctx *c, const sub_ynode *at, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = failv(c, at ? at->line : 0, at ? at->col : 0, field, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- loading ------------------------------------------------------------------------------- */

static void offset_pos(const char *text, size_t len, size_t off, size_t *line, size_t *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

static int check_text(sub_yctx *c, const char *text, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t k = text[i] ? sub_utf8_char(text + i, len - i, NULL) : 0;
        if (k) {
            i += k;
            continue;
        }
        size_t line, col;
        offset_pos(text, len, i, &line, &col);
        if (!text[i]) return sub_yfail_at(c, line, col, NULL, "a NUL byte: a %s is UTF-8 text", c->doc);
        return sub_yfail_at(c, line, col, NULL,
                            "byte 0x%02x is not valid UTF-8: a %s is UTF-8 text (re-save the file "
                            "as UTF-8)",
                            (unsigned char)text[i], c->doc);
    }
    return 0;
}

static int syntax_error(sub_yctx *c, const yaml_parser_t *p, const char *text, size_t len) {
    if (p->error == YAML_MEMORY_ERROR)
        return sub_err_setk(c->e, SUB_KIND_ENV, -ENOMEM, "%s: out of memory reading YAML", c->file);
    const char *problem = p->problem ? p->problem : "cannot be parsed";
    if (p->error == YAML_READER_ERROR) {
        size_t line, col;
        offset_pos(text, len, p->problem_offset, &line, &col);
        return sub_yfail_at(c, line, col, NULL, "not valid YAML text: %s", problem);
    }
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->context)
        return sub_yfail_at(c, line, col, NULL, "YAML syntax error: %s (%s at line %zu, column %zu)",
                            problem, p->context, p->context_mark.line + 1,
                            p->context_mark.column + 1);
    return sub_yfail_at(c, line, col, NULL, "YAML syntax error: %s", problem);
}

static int attach(sub_yctx *c, sub_ynode **stack, size_t depth, sub_ynode **root, sub_ynode *n) {
    if (depth == 0) {
        *root = n;
        return 0;
    }
    sub_ynode *p = stack[depth - 1];
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->kids = xrealloc(p->kids, p->cap * sizeof *p->kids);
    }
    p->kids[p->n++] = n;
    if (p->type == SUB_Y_MAP && p->n % 2 == 1 && n->type != SUB_Y_SCALAR)
        return sub_ybad(c, n, NULL, "a mapping key must be a plain string, not a %s",
                        n->type == SUB_Y_SEQ ? "list" : "mapping");
    return 0;
}

static int check_props(sub_yctx *c, size_t line, size_t col, const yaml_char_t *anchor,
                       const yaml_char_t *tag) {
    /* libyaml allows only [0-9A-Za-z_-] in anchor names: they print as they are */
    if (anchor)
        return sub_yfail_at(c, line, col, NULL,
                            "YAML anchors (&%s) are not allowed: write each value out in full",
                            (const char *)anchor);
    if (tag)
        return sub_yfail_at(c, line, col, NULL,
                            "YAML tags (here %s) are not allowed: quote a value to make it a string",
                            sub_yshow(c, (const char *)tag));
    return 0;
}

static sub_ynode *new_node(sub_ynode_type t, const yaml_event_t *ev) {
    sub_ynode *n = xcalloc(1, sizeof *n);
    n->type = t;
    n->line = ev->start_mark.line + 1;
    n->col = ev->start_mark.column + 1;
    return n;
}

/* One event: 1 at the end of the stream, 0 to go on, or an error. */
static int on_event(sub_yctx *c, const yaml_event_t *ev, sub_ynode **stack, size_t *depth,
                    sub_ynode **root, int *docs) {
    size_t line = ev->start_mark.line + 1, col = ev->start_mark.column + 1;
    sub_ynode *n;
    int r;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT: return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1)
            return sub_yfail_at(c, line, col, NULL,
                                "a second YAML document: a %s is one document%s", c->doc,
                                c->one_doc_hint ? c->one_doc_hint : "");
        return 0;
    case YAML_ALIAS_EVENT:
        return sub_yfail_at(c, line, col, NULL,
                            "YAML aliases (*%s) are not allowed: write each value out in full",
                            (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        if ((r = check_props(c, line, col, ev->data.scalar.anchor, ev->data.scalar.tag)) < 0)
            return r;
        if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
            return sub_yfail_at(c, line, col, NULL, "a value holds a NUL character (\\0)");
        n = new_node(SUB_Y_SCALAR, ev);
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->value = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        return attach(c, stack, *depth, root, n);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        r = seq ? check_props(c, line, col, ev->data.sequence_start.anchor,
                              ev->data.sequence_start.tag)
                : check_props(c, line, col, ev->data.mapping_start.anchor,
                              ev->data.mapping_start.tag);
        if (r < 0) return r;
        if (*depth >= MAX_DEPTH)
            return sub_yfail_at(c, line, col, NULL, "nested more than %d levels deep", MAX_DEPTH);
        n = new_node(seq ? SUB_Y_SEQ : SUB_Y_MAP, ev);
        r = attach(c, stack, *depth, root, n);
        stack[(*depth)++] = n;
        return r;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (*depth) (*depth)--;
        return 0;
    default: return 0;
    }
}

int sub_yaml_load(sub_yctx *c, const char *text, size_t len, sub_ynode **root) {
    *root = NULL;
    int r = check_text(c, text, len);
    if (r < 0) return r;
    /* a UTF-8 byte order mark: libyaml, told the encoding, would take it for text */
    size_t bom = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return sub_err_setk(c->e, SUB_KIND_ENV, -ENOMEM, "%s: out of memory reading YAML", c->file);
    yaml_parser_set_input_string(&p, (const unsigned char *)text + bom, len - bom);
    yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
    sub_ynode *stack[MAX_DEPTH];
    size_t depth = 0;
    int docs = 0;
    while (r == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            r = syntax_error(c, &p, text + bom, len - bom);
            break;
        }
        r = on_event(c, &ev, stack, &depth, root, &docs);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (r < 0) {
        sub_ynode_free(*root);
        *root = NULL;
        return r;
    }
    return 0;
}

/* ---- reading nodes ------------------------------------------------------------------------- */

bool sub_ynull(const sub_ynode *n) {
    return n->type == SUB_Y_SCALAR && n->plain &&
           (!n->value[0] || streq(n->value, "~") || streq(n->value, "null") ||
            streq(n->value, "Null") || streq(n->value, "NULL"));
}

const char *sub_ykind(const sub_ynode *n) {
    switch (n->type) {
    case SUB_Y_SEQ: return "a list";
    case SUB_Y_MAP: return "a mapping";
    case SUB_Y_SCALAR: break;
    }
    return sub_ynull(n) ? "no value" : "a string";
}

const char *sub_yfield(char *buf, size_t n, const char *parent, const char *key) {
    if (parent)
        snprintf(buf, n, "%s.%s", parent, key);
    else
        snprintf(buf, n, "%s", key);
    return buf;
}

const char *sub_yindex(char *buf, size_t n, const char *parent, size_t i) {
    snprintf(buf, n, "%s[%zu]", parent, i);
    return buf;
}

/* "parent.key" for a key from the file: escaped, and cut when long. */
const char *sub_ykey_field(char *buf, size_t n, const char *parent, const char *key) {
    _cleanup_free_ char *esc = sub_str_escape(key);
    if (strlen(esc) > 48) memcpy(esc + sub_utf8_cut(esc, 45), "...", 4);
    return sub_yfield(buf, n, parent, esc);
}

int sub_yget_str(sub_yctx *c, const sub_ynode *n, const char *field, const char **out) {
    if (n->type != SUB_Y_SCALAR || sub_ynull(n))
        return sub_ybad(c, n, field, "expected a string, found %s", sub_ykind(n));
    *out = n->value;
    return 0;
}

int sub_yget_map(sub_yctx *c, const sub_ynode *n, const char *field) {
    if (n->type != SUB_Y_MAP)
        return sub_ybad(c, n, field, "expected a mapping, found %s", sub_ykind(n));
    return 0;
}

int sub_yget_seq(sub_yctx *c, const sub_ynode *n, const char *field) {
    if (n->type != SUB_Y_SEQ) return sub_ybad(c, n, field, "expected a list, found %s", sub_ykind(n));
    return 0;
}

int sub_yget_bool(sub_yctx *c, const sub_ynode *n, const char *field, bool *out) {
    const char *s;
    int r = sub_yget_str(c, n, field, &s);
    if (r < 0) return r;
    if (n->plain && (streq(s, "true") || streq(s, "True") || streq(s, "TRUE")))
        *out = true;
    else if (n->plain && (streq(s, "false") || streq(s, "False") || streq(s, "FALSE")))
        *out = false;
    else
        return sub_ybad(c, n, field, "%s is not a boolean: write true or false", sub_yshow(c, s));
    return 0;
}

const char *sub_yparse_uint(const char *s, uint64_t max, uint64_t *out) {
    if (!*s) return "is empty";
    if (*s == '-') return "must not be negative";
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return "is not a whole number";
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10) return "is too large";
        v = v * 10 + d;
    }
    *out = v;
    return NULL;
}

int sub_yget_uint(sub_yctx *c, const sub_ynode *n, const char *field, uint64_t min, uint64_t max,
                  uint64_t *out) {
    const char *s;
    int r = sub_yget_str(c, n, field, &s);
    if (r < 0) return r;
    const char *why = sub_yparse_uint(s, max, out);
    if (!why && *out < min) why = "is too small";
    if (why)
        return sub_ybad(c, n, field, "%s %s (expected a whole number from %llu to %llu)",
                        sub_yshow(c, s), why, (unsigned long long)min, (unsigned long long)max);
    return 0;
}

int sub_yfind_name(const char *s, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (streq(s, names[i])) return (int)i;
    return -1;
}

static void list_names(char *buf, size_t n, const char *const *names, size_t count) {
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < count && off < n; i++) {
        int k = snprintf(buf + off, n - off, "%s%s", i ? ", " : "", names[i]);
        if (k < 0) break;
        off += (size_t)k;
    }
}

int sub_yget_enum(sub_yctx *c, const sub_ynode *n, const char *field, const char *const *names,
                  size_t count, int *out) {
    const char *s;
    int r = sub_yget_str(c, n, field, &s);
    if (r < 0) return r;
    int i = sub_yfind_name(s, names, count);
    if (i < 0) {
        char opts[256];
        list_names(opts, sizeof opts, names, count);
        return sub_ybad(c, n, field, "%s is not one of %s", sub_yshow(c, s), opts);
    }
    *out = i;
    return 0;
}

int sub_yread_map(sub_yctx *c, const sub_ynode *map, const char *field, const char *const *known,
                  size_t nknown, const sub_ynode **vals) {
    int r = sub_yget_map(c, map, field);
    if (r < 0) return r;
    const sub_ynode *keys[32] = {0};
    if (nknown > ARRAY_SIZE(keys)) nknown = ARRAY_SIZE(keys);
    for (size_t i = 0; i < nknown; i++) vals[i] = NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const sub_ynode *k = map->kids[i];
        char f[96];
        int j = sub_yfind_name(k->value, known, nknown);
        if (j < 0) {
            char opts[512];
            for (size_t g = 0; g < nknown; g++)
                if (sub_edit_distance(k->value, known[g]) <= (strlen(known[g]) > 4 ? 2u : 1u))
                    return sub_ybad(c, k, sub_ykey_field(f, sizeof f, field, k->value),
                                    "unknown key; did you mean %s?", known[g]);
            list_names(opts, sizeof opts, known, nknown);
            return sub_ybad(c, k, sub_ykey_field(f, sizeof f, field, k->value),
                            "unknown key (known %s: %s)", field ? "here" : "keys", opts);
        }
        if (keys[j])
            return sub_ybad(c, k, sub_yfield(f, sizeof f, field, k->value),
                            "given twice (first at line %zu)", keys[j]->line);
        keys[j] = k;
        vals[j] = map->kids[i + 1];
    }
    return 0;
}

const char *sub_parse_size(const char *s, uint64_t *out) {
    static const char *const msg = "is not a size (write a number of bytes, or one with K, M, G, "
                                   "T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), "
                                   "e.g. 256Mi or 4Gi)";
    if (*s == '-') return "must not be negative";
    const char *p = s;
    while (*p >= '0' && *p <= '9') p++;
    if (p == s || p - s > 20) return p == s ? msg : "is too large";
    static const struct {
        const char *suffix;
        uint64_t mul;
    } units[] = {
        {"", 1}, {"K", 1000}, {"k", 1000}, {"M", 1000000}, {"G", 1000000000}, {"T", 1000000000000},
        {"Ki", 1ull << 10}, {"Mi", 1ull << 20}, {"Gi", 1ull << 30}, {"Ti", 1ull << 40},
    };
    uint64_t mul = 0;
    for (size_t i = 0; i < ARRAY_SIZE(units); i++)
        if (streq(p, units[i].suffix)) mul = units[i].mul;
    if (!mul) return msg;
    _cleanup_free_ char *num = xstrndup(s, (size_t)(p - s));
    uint64_t v;
    if (sub_yparse_uint(num, (uint64_t)INT64_MAX, &v) || v > (uint64_t)INT64_MAX / mul)
        return "is too large";
    *out = v * mul;
    return NULL;
}
