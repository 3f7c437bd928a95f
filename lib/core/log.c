#include "substrate/log.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sub_log_level level = SUB_LOG_INFO;
static sub_log_sink sink;

int sub_log_init(void) {
    const char *s = getenv("SUBSTRATE_LOG");
    if (!s || !*s) return 0;
    if (!strcmp(s, "error")) level = SUB_LOG_ERROR;
    else if (!strcmp(s, "warn")) level = SUB_LOG_WARN;
    else if (!strcmp(s, "info")) level = SUB_LOG_INFO;
    else if (!strcmp(s, "debug")) level = SUB_LOG_DEBUG;
    else return -EINVAL;
    return 0;
}

void sub_log_set_level(sub_log_level l) { level = l; }
sub_log_level sub_log_get_level(void) { return level; }
void sub_log_set_sink(sub_log_sink fn) { sink = fn; }

void sub_log(sub_log_level l, const char *fmt, ...) {
    if (l > level || !sink) return;
    va_list ap;
    va_start(ap, fmt);
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sink(l, buf);
}
