/* Reason codes on the error context: every reason has a stable name, the
 * setters record it, and plain sub_err_set* clears a stale one. */
#include "unit.h"

TEST(reason_names_complete_and_round_trip) {
    for (int i = 0; i < _SUB_R_MAX; i++) {
        const char *n = sub_reason_to_string((sub_reason)i);
        if (!n) {
            unit_fail(__FILE__, __LINE__, "reason %d has no name", i);
            continue;
        }
        for (const char *c = n; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || *c == '_')) {
                unit_fail(__FILE__, __LINE__, "reason name \"%s\" is not snake_case", n);
                break;
            }
        CHECK_INT(sub_reason_from_string(n), i);
    }
    CHECK(sub_reason_to_string(_SUB_R_MAX) == NULL);
    CHECK(sub_reason_to_string(_SUB_R_INVALID) == NULL);
    CHECK_INT(sub_reason_from_string("no-such-reason"), _SUB_R_INVALID);
    CHECK_STREQ(sub_reason_to_string(SUB_R_NO_TRUSTED_KEY), "no_trusted_key");
}

TEST(reason_set_and_cleared) {
    sub_err e = {0};
    CHECK_INT(sub_err_setr(&e, SUB_R_NO_SIGNATURE, SUB_KIND_CHECK, -EKEYREJECTED, "no signature: %s",
                           "x"),
              -EKEYREJECTED);
    CHECK_REASON(&e, SUB_R_NO_SIGNATURE);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_CHECK);
    sub_err_prefix(&e, "verifying");
    CHECK_REASON(&e, SUB_R_NO_SIGNATURE); /* context keeps the reason */
    CHECK_STREQ(e.msg, "verifying: no signature: x");
    sub_err_set(&e, -EIO, "later trouble");
    CHECK_INT(e.reason, SUB_R_NONE); /* a new error does not inherit the old reason */
    CHECK_INT(sub_err_reason(&e, SUB_R_NO_PROVENANCE), -EIO);
    CHECK_REASON(&e, SUB_R_NO_PROVENANCE);
    CHECK_INT(sub_err_reason(NULL, SUB_R_NONE), -EIO);
}
