/* Minimal TAP unit-test harness. Each TEST() is one test point; CHECK*
 * record failures with file:line and keep going within the test. */
#pragma once
#include "substrate/error.h"
#include <stdbool.h>
#include <string.h>

typedef void (*unit_fn)(void);
void unit_register(const char *name, unit_fn fn);
void unit_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Skip the whole test (TAP "ok N # SKIP reason"); checks that failed before
 * it still make the test "not ok". */
void unit_skip(const char *reason);
/* Skip one part of a test (e.g. a root-only block) while the rest runs: an
 * extra "ok N - test: what # SKIP reason" point after the test's own. */
void unit_skip_part(const char *what, const char *reason);
/* Absolute path of a file in the source tree / shared vectors. Caller frees. */
char *unit_src(const char *rel);
char *unit_shared(const char *rel);
/* Contents of a fixture (unit_shared path); a read failure fails the test
 * and yields "". Caller frees. The _line form drops the first newline on. */
char *unit_read_shared(const char *rel, size_t *len);
char *unit_read_shared_line(const char *rel);
/* A fresh temp dir for this test, removed after it (unless UNIT_KEEP=1). */
const char *unit_tmpdir(void);

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void reg_##name(void) { unit_register(#name, test_##name); } \
    static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) unit_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                            \
    } while (0)
#define CHECK_STREQ(a, b)                                                                          \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (!_a || !_b || strcmp(_a, _b) != 0)                                                     \
            unit_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, _a ? _a : "(null)", \
                      _b ? _b : "(null)");                                                         \
    } while (0)
#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b) unit_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, _a, _b);     \
    } while (0)
/* expr returns an int; < 0 is a failure reported with the sub_err text. */
#define CHECK_OK(expr, err)                                                                        \
    do {                                                                                           \
        int _r = (expr);                                                                           \
        if (_r < 0) unit_fail(__FILE__, __LINE__, "%s failed (%d): %s", #expr, _r, (err)->msg);    \
    } while (0)
#define CHECK_FAILS(expr, code)                                                                    \
    do {                                                                                           \
        int _r = (expr);                                                                           \
        if (_r != (code))                                                                          \
            unit_fail(__FILE__, __LINE__, "%s returned %d, expected %d", #expr, _r, (code));       \
    } while (0)
/* The error carries this reason (and is an error at all). */
#define CHECK_REASON(err, want)                                                                    \
    do {                                                                                           \
        const sub_err *_e = (err);                                                                 \
        sub_reason _w = (want);                                                                    \
        if (_e->code == 0 || _e->reason != _w)                                                     \
            unit_fail(__FILE__, __LINE__, "%s: reason %s (code %d), expected %s: %s", #err,        \
                      sub_reason_to_string(_e->reason), _e->code, sub_reason_to_string(_w),        \
                      _e->msg);                                                                    \
    } while (0)
