/* YAML and JSON output of rendered objects (k8s.h). The YAML is block
 * style, keys in insertion order; a string is written plain only when no
 * YAML 1.1 or 1.2 reader can take it for anything but that string, else
 * JSON-style double-quoted (every non-ASCII or control character escaped),
 * or as a literal block when it is multi-line printable ASCII (a PEM key). */
#include "substrate/k8s.h"
#include "substrate/strbuf.h"
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Words YAML 1.1 (booleans, null) or 1.2 reads as something else, any case. */
static const char *const special_words[] = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", NULL};

static bool plain_char(char c) {
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '/';
}

/* Plain only when: [A-Za-z_/] first, then [A-Za-z0-9-_./]; not a special
 * word; and nothing number-like (a leading digit is refused above). */
static bool plain_ok(const char *s) {
    if (!*s) return false;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == '/')) return false;
    for (const char *p = s; *p; p++)
        if (!plain_char(*p)) return false;
    for (const char *const *w = special_words; *w; w++)
        if (!strcasecmp(s, *w)) return false;
    return true;
}

static void put_quoted(sub_buf *b, const char *s) {
    sub_buf_putc(b, '"');
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) {
            if (c == '"' || c == '\\') sub_buf_putc(b, '\\');
            sub_buf_putc(b, (char)c);
            i++;
            continue;
        }
        uint32_t cp = 0;
        size_t k = c < 0x80 ? 1 : sub_utf8_char(s + i, n - i, &cp);
        if (c < 0x80) cp = c;
        if (!k) { /* not UTF-8 (jansson strings always are): the replacement character */
            cp = 0xfffd;
            k = 1;
        }
        switch (cp) {
        case '\n': sub_buf_puts(b, "\\n"); break;
        case '\t': sub_buf_puts(b, "\\t"); break;
        case '\r': sub_buf_puts(b, "\\r"); break;
        default:
            if (cp > 0xffff) sub_buf_printf(b, "\\U%08x", (unsigned)cp);
            else sub_buf_printf(b, "\\u%04x", (unsigned)cp);
        }
        i += k;
    }
    sub_buf_putc(b, '"');
}

/* Multi-line printable ASCII with no blanks at line ends and a first line
 * that does not start with a blank: a literal block reads back exactly. */
static bool literal_ok(const char *s) {
    if (!strchr(s, '\n') || s[0] == ' ' || s[0] == '\n') return false;
    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            if (p > s && p[-1] == ' ') return false;
            continue;
        }
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) return false;
    }
    size_t n = strlen(s);
    return s[n - 1] != ' ';
}

static void indent_to(sub_buf *b, int n) {
    for (int i = 0; i < n; i++) sub_buf_putc(b, ' ');
}

/* A scalar after "key:" or "-" (the caller wrote that); ends the line. */
static void put_scalar(sub_buf *b, const json_t *v, int indent) {
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        if (literal_ok(s)) {
            size_t n = strlen(s), nl = 0;
            while (nl < n && s[n - 1 - nl] == '\n') nl++;
            sub_buf_puts(b, nl == 0 ? " |-\n" : nl == 1 ? " |\n" : " |+\n");
            for (const char *p = s; *p;) {
                const char *e = strchr(p, '\n');
                size_t len = e ? (size_t)(e - p) : strlen(p);
                if (len) {
                    indent_to(b, indent);
                    sub_buf_append(b, p, len);
                }
                sub_buf_putc(b, '\n');
                if (!e) break;
                p = e + 1;
            }
            return;
        }
        sub_buf_putc(b, ' ');
        if (plain_ok(s)) sub_buf_puts(b, s);
        else put_quoted(b, s);
        break;
    }
    case JSON_INTEGER: sub_buf_printf(b, " %lld", (long long)json_integer_value(v)); break;
    case JSON_REAL: sub_buf_printf(b, " %.17g", json_real_value(v)); break;
    case JSON_TRUE: sub_buf_puts(b, " true"); break;
    case JSON_FALSE: sub_buf_puts(b, " false"); break;
    default: sub_buf_puts(b, " null"); break;
    }
    sub_buf_putc(b, '\n');
}

static void put_node(sub_buf *b, const json_t *v, int indent, bool inline_first);

/* An object's keys at indent; with inline_first the first key goes where
 * the cursor is (after "- "). */
static void put_map(sub_buf *b, const json_t *o, int indent, bool inline_first) {
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)o, k, v) {
        if (!(first && inline_first)) indent_to(b, indent);
        first = false;
        sub_buf key = SUB_BUF_INIT;
        if (plain_ok(k)) sub_buf_puts(&key, k);
        else put_quoted(&key, k);
        /* YAML allows an implicit key of at most 1024 characters (found by
         * tests/fuzz/fuzz-k8s-yaml): a longer one is an explicit "? KEY"
         * with its value after ":" on the next line */
        bool explicit_key = key.len > 1000;
        if (explicit_key) {
            sub_buf_puts(b, "? ");
            sub_buf_append(b, key.data, key.len);
            sub_buf_putc(b, '\n');
            indent_to(b, indent);
        } else {
            sub_buf_append(b, key.data, key.len);
        }
        sub_buf_free(&key);
        sub_buf_putc(b, ':');
        if (json_is_object(v) && json_object_size(v)) {
            sub_buf_putc(b, '\n');
            put_map(b, v, indent + 2, false);
        } else if (json_is_array(v) && json_array_size(v)) {
            sub_buf_putc(b, '\n');
            /* a sequence under a key: "- " at the key's column */
            put_node(b, v, explicit_key ? indent + 2 : indent, false);
        } else {
            put_node(b, v, indent + 2, true);
        }
    }
}

static void put_seq(sub_buf *b, const json_t *a, int indent, bool inline_first) {
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (!(i == 0 && inline_first)) indent_to(b, indent);
        sub_buf_putc(b, '-');
        if ((json_is_object(v) && json_object_size(v)) || (json_is_array(v) && json_array_size(v))) {
            sub_buf_putc(b, ' ');
            put_node(b, v, indent + 2, true);
        } else {
            put_node(b, v, indent + 2, true);
        }
    }
}

/* v after "key:" / "- " (inline_first) or on lines of its own. */
static void put_node(sub_buf *b, const json_t *v, int indent, bool inline_first) {
    if (json_is_object(v)) {
        if (!json_object_size(v)) sub_buf_puts(b, " {}\n");
        else put_map(b, v, indent, inline_first);
    } else if (json_is_array(v)) {
        if (!json_array_size(v)) sub_buf_puts(b, " []\n");
        else put_seq(b, v, indent, inline_first);
    } else {
        put_scalar(b, v, indent);
    }
}

char *sub_k8s_yaml_doc(const json_t *v) {
    sub_buf b = SUB_BUF_INIT;
    if (json_is_object(v) && json_object_size(v)) put_map(&b, v, 0, false);
    else if (json_is_array(v) && json_array_size(v)) put_seq(&b, v, 0, false);
    else {
        put_node(&b, v, 0, true);
        /* a top-level scalar: drop the separating blank */
        if (b.len && b.data[0] == ' ') memmove(b.data, b.data + 1, b.len--); /* the NUL moves too */
    }
    return sub_buf_detach(&b, NULL);
}

char *sub_k8s_emit(const json_t *items, sub_k8s_format f) {
    if (f == SUB_K8S_JSON) {
        json_t *list = json_pack("{s:s,s:s,s:O}", "apiVersion", "v1", "kind", "List", "items", items);
        char *s = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        json_decref(list);
        sub_buf b = SUB_BUF_INIT;
        sub_buf_puts(&b, s ? s : "");
        sub_buf_putc(&b, '\n');
        free(s);
        return sub_buf_detach(&b, NULL);
    }
    sub_buf b = SUB_BUF_INIT;
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) {
        if (i) sub_buf_puts(&b, "---\n");
        _cleanup_free_ char *d = sub_k8s_yaml_doc(v);
        sub_buf_puts(&b, d);
    }
    return sub_buf_detach(&b, NULL);
}
