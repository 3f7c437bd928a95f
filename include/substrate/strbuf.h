/* Growable byte buffer, in the spirit of git's strbuf.
 * Ownership: the sub_buf owns `data`; sub_buf_free() releases it and
 * sub_buf_detach() hands it to the caller (who must free() it).
 * `data` is always NUL-terminated once anything has been appended, so it can
 * be used as a C string when the content has no embedded NULs.
 * Appending never fails: allocation failure aborts (see macro.h). */
#pragma once
#include "macro.h"
#include <stddef.h>
#include <stdint.h>

typedef struct sub_buf {
    char *data;
    size_t len;
    size_t cap;
} sub_buf;

#define SUB_BUF_INIT {NULL, 0, 0}

void sub_buf_grow(sub_buf *b, size_t extra);
void sub_buf_append(sub_buf *b, const void *data, size_t len);
void sub_buf_puts(sub_buf *b, const char *s);
void sub_buf_putc(sub_buf *b, char c);
void sub_buf_printf(sub_buf *b, const char *fmt, ...) _printf_(2, 3);
void sub_buf_reset(sub_buf *b);
void sub_buf_free(sub_buf *b);
/* Returns the data (never NULL: an empty buffer yields "") and resets b. */
char *sub_buf_detach(sub_buf *b, size_t *len);
/* Return the contents as a C string ("" when empty); still owned by b. */
const char *sub_buf_str(const sub_buf *b);

static inline void sub_buf_freep(sub_buf *b) { sub_buf_free(b); }
#define _cleanup_buf_ _cleanup_(sub_buf_freep)

/* UTF-8. sub_utf8_char: the length (1-4) of the well-formed UTF-8 sequence at
 * s (at most n bytes; no overlongs, surrogates or code points past U+10FFFF),
 * with its code point in *cp; 0 when the bytes there are not one. */
size_t sub_utf8_char(const char *s, size_t n, uint32_t *cp);
/* The largest m <= n such that s[0..m) does not end inside a multi-byte
 * sequence: where to cut a string that must be cut at n bytes. */
size_t sub_utf8_cut(const char *s, size_t n);
/* Append s (n bytes) for a terminal: every byte of a control character (C0,
 * DEL, C1, so ESC too) and every byte that is not well-formed UTF-8 becomes
 * the four characters \xNN; the rest is copied. For strings that come from
 * outside (a registry, a file), which must not drive the terminal. */
void sub_buf_put_escaped(sub_buf *b, const char *s, size_t n);
/* sub_buf_put_escaped of a C string into a new string (caller frees). */
char *sub_str_escape(const char *s);
/* s made well-formed UTF-8: each byte that is not part of a well-formed
 * sequence becomes U+FFFD. A new string (caller frees). */
char *sub_utf8_sanitize(const char *s);
/* Levenshtein distance of two short strings (for "did you mean"); SIZE_MAX
 * when either is longer than 64 bytes. */
size_t sub_edit_distance(const char *a, const char *b);
