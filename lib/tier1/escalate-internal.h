/* The escalation broker's HTTP request-head parser (lib/tier1/escalate.c),
 * apart from the socket reads so that unit tests and tests/fuzz can reach it.
 * Not a public interface. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define ESC_HTTP_HEAD_MAX (16u << 10) /* request line + headers, while the blank line is still missing */

typedef struct esc_http_head {
    char method[16];
    char target[256];
    long long length;                  /* Content-Length, -1: none */
    bool expect_continue;              /* Expect: 100-continue */
    size_t body_off;                   /* where the body starts: just after the first CRLF CRLF */
} esc_http_head;

/* Parse the request line and headers at the start of buf (the len bytes read
 * so far; need not be NUL-terminated, never changed). 0: more bytes are
 * needed (no CRLF CRLF yet, and at most ESC_HTTP_HEAD_MAX bytes); 1: h is
 * filled (the body's first bytes, if any, are buf[h->body_off..len)); -1:
 * refused with an HTTP status (400, 411, 413), a reason and a message, what
 * the broker answers: not an HTTP/1.x request line, a Content-Length that is
 * not one whole number (or two that differ), Transfer-Encoding, a POST
 * without Content-Length, a head over ESC_HTTP_HEAD_MAX still without its
 * end, a Content-Length over body_max. Only the bytes up to the first CRLF
 * CRLF are read as the head (up to a NUL among them). */
int esc_http_parse_head(const char *buf, size_t len, size_t body_max, esc_http_head *h, int *http_status,
                        const char **reason, char *msg, size_t msgn);
