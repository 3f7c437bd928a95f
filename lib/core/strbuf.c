#include "substrate/strbuf.h"
#include <stdarg.h>
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
