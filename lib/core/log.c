#include "substrate/log.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sub_log_level level = SUB_LOG_INFO;

void sub_log_init(void) {
    const char *s = getenv("SUBSTRATE_LOG");
    if (!s) return;
    if (!strcmp(s, "error")) level = SUB_LOG_ERROR;
    else if (!strcmp(s, "warn")) level = SUB_LOG_WARN;
    else if (!strcmp(s, "info")) level = SUB_LOG_INFO;
    else if (!strcmp(s, "debug")) level = SUB_LOG_DEBUG;
}

void sub_log_set_level(sub_log_level l) { level = l; }
sub_log_level sub_log_get_level(void) { return level; }

void sub_log(sub_log_level l, const char *fmt, ...) {
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (l > level) return;
    va_list ap;
    va_start(ap, fmt);
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (l == SUB_LOG_INFO) fprintf(stderr, "substrate: %s\n", buf);
    else fprintf(stderr, "substrate: %s: %s\n", names[l], buf);
}
