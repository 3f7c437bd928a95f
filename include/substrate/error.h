/* Error context. Library functions return 0 (or a positive count) on success
 * and a negative errno-style int on failure; when given a non-NULL sub_err
 * they also fill it with a human message (what went wrong and, where we know
 * it, what to do) plus optional detail from OpenSSL, curl or HTTP.
 * Only the CLI prints errors. The struct is caller-owned and fixed-size, so
 * there is nothing to free. */
#pragma once
#include "macro.h"
#include <errno.h>
#include <stdbool.h>

/* Process exit codes, identical for every command (documented in README). */
enum {
    SUB_EXIT_OK = 0,
    SUB_EXIT_CHECK = 1, /* a check said no: verification failed, DRIFT, digest mismatch */
    SUB_EXIT_USAGE = 2, /* usage or input error */
    SUB_EXIT_ENV = 3,   /* environment or operational error */
};

typedef enum {
    SUB_KIND_DEFAULT = 0, /* derive the exit class from the errno */
    SUB_KIND_CHECK,
    SUB_KIND_INPUT,
    SUB_KIND_ENV,
} sub_err_kind;

typedef struct sub_err {
    int code;          /* negative errno; 0 when no error was recorded */
    sub_err_kind kind; /* exit class; DEFAULT derives it from code */
    long http_status;  /* last HTTP status involved, 0 if none */
    char msg[1024];    /* what went wrong, and what to do */
    char detail[1024]; /* OpenSSL / curl / HTTP body detail, may be empty */
} sub_err;

/* Record an error and return -|code|. `e` may be NULL. */
int sub_err_set(sub_err *e, int code, const char *fmt, ...) _printf_(3, 4);
/* Same, with an explicit exit class. */
int sub_err_setk(sub_err *e, sub_err_kind kind, int code, const char *fmt, ...) _printf_(4, 5);
/* Record an error whose detail is the drained OpenSSL error queue. */
int sub_err_ssl(sub_err *e, int code, const char *fmt, ...) _printf_(3, 4);
/* Add or replace the detail text. */
void sub_err_detail(sub_err *e, const char *fmt, ...) _printf_(2, 3);
/* Prefix the message with context ("pushing hello: ..."). */
void sub_err_prefix(sub_err *e, const char *fmt, ...) _printf_(2, 3);
void sub_err_clear(sub_err *e);
/* The exit code this error maps to (1, 2 or 3). */
int sub_err_exit_code(const sub_err *e);
