/* The log facility: SUBSTRATE_LOG levels (a wrong one is an error, not
 * ignored), and lines reach only the sink the program installed. */
#include "substrate/log.h"
#include "unit.h"
#include <stdio.h>
#include <stdlib.h>

static char last[256];
static int lines;
static void capture(sub_log_level l, const char *msg) {
    (void)l;
    snprintf(last, sizeof last, "%s", msg);
    lines++;
}

TEST(log_levels_and_sink) {
    const char *saved = getenv("SUBSTRATE_LOG");
    char *keep = saved ? strdup(saved) : NULL;
    sub_log_level before = sub_log_get_level();

    setenv("SUBSTRATE_LOG", "debug", 1);
    CHECK_INT(sub_log_init(), 0);
    CHECK_INT(sub_log_get_level(), SUB_LOG_DEBUG);
    setenv("SUBSTRATE_LOG", "bogus", 1);
    CHECK_INT(sub_log_init(), -EINVAL);
    CHECK_INT(sub_log_get_level(), SUB_LOG_DEBUG); /* unchanged */
    setenv("SUBSTRATE_LOG", "", 1);
    CHECK_INT(sub_log_init(), 0);

    lines = 0;
    sub_log_set_sink(NULL);
    log_debug("dropped %d", 1); /* no sink: the library never prints */
    CHECK_INT(lines, 0);
    sub_log_set_sink(capture);
    log_debug("GET %s -> %d", "/v2/", 200);
    CHECK_INT(lines, 1);
    CHECK_STREQ(last, "GET /v2/ -> 200");
    sub_log_set_level(SUB_LOG_INFO);
    log_debug("below the level");
    CHECK_INT(lines, 1);
    sub_log_set_sink(NULL);

    sub_log_set_level(before);
    if (keep) setenv("SUBSTRATE_LOG", keep, 1);
    else unsetenv("SUBSTRATE_LOG");
    free(keep);
}
