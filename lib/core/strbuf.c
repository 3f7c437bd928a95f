#include "substrate/strbuf.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

void sub_buf_grow(sub_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) abort();
        cap *= 2;
    }
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void sub_buf_append(sub_buf *b, const void *data, size_t len) {
    sub_buf_grow(b, len);
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

void sub_buf_puts(sub_buf *b, const char *s) { sub_buf_append(b, s, strlen(s)); }
void sub_buf_putc(sub_buf *b, char c) { sub_buf_append(b, &c, 1); }

void sub_buf_printf(sub_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    sub_buf_grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sub_buf_reset(sub_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

void sub_buf_free(sub_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sub_buf_detach(sub_buf *b, size_t *len) {
    char *d = b->data ? b->data : xstrdup("");
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

const char *sub_buf_str(const sub_buf *b) { return b->data ? b->data : ""; }

size_t sub_utf8_char(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) return 0;
    uint32_t c = u[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        if (cp) *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, min = 0x80, c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, min = 0x800, c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    if (cp) *cp = c;
    return len;
}

size_t sub_utf8_cut(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    /* find the last lead byte among the last 4; if its sequence runs past n, cut before it */
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = u[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: keep looking */
        size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return want > back ? n - back : n;
    }
    return n;
}

void sub_buf_put_escaped(sub_buf *b, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = sub_utf8_char(s + i, n - i, &cp);
        bool control = k == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
        if (!control) {
            sub_buf_append(b, s + i, k);
            i += k;
            continue;
        }
        if (k == 0) k = 1;
        for (size_t j = 0; j < k; j++) sub_buf_printf(b, "\\x%02x", (unsigned char)s[i + j]);
        i += k;
    }
    sub_buf_grow(b, 0);
    b->data[b->len] = 0;
}

char *sub_str_escape(const char *s) {
    sub_buf b = SUB_BUF_INIT;
    if (s) sub_buf_put_escaped(&b, s, strlen(s));
    return sub_buf_detach(&b, NULL);
}

char *sub_utf8_sanitize(const char *s) {
    sub_buf b = SUB_BUF_INIT;
    size_t n = s ? strlen(s) : 0;
    for (size_t i = 0; i < n;) {
        size_t k = sub_utf8_char(s + i, n - i, NULL);
        if (k) {
            sub_buf_append(&b, s + i, k);
            i += k;
        } else {
            sub_buf_puts(&b, "\xEF\xBF\xBD");
            i++;
        }
    }
    return sub_buf_detach(&b, NULL);
}

size_t sub_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}
