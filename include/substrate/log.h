/* Logging with levels. Library code logs only at DEBUG (tracing); anything a
 * user must see is returned as an error or reported via callbacks. The
 * library never prints: lines go to the sink the program installs (the CLI
 * writes them to stderr); without a sink they are dropped. Level:
 * SUBSTRATE_LOG=error|warn|info|debug, or sub_log_set_level(). Default: info. */
#pragma once
#include "macro.h"

typedef enum { SUB_LOG_ERROR = 0, SUB_LOG_WARN, SUB_LOG_INFO, SUB_LOG_DEBUG } sub_log_level;

#define SUB_LOG_LEVELS "error, warn, info or debug"

/* Reads SUBSTRATE_LOG (unset or empty: keep the level): 0, or -EINVAL when
 * it names no level (SUB_LOG_LEVELS are the valid ones). */
int sub_log_init(void);
void sub_log_set_level(sub_log_level l);
sub_log_level sub_log_get_level(void);
typedef void (*sub_log_sink)(sub_log_level l, const char *msg);
void sub_log_set_sink(sub_log_sink fn);
void sub_log(sub_log_level l, const char *fmt, ...) _printf_(2, 3);

#define log_error(...) sub_log(SUB_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) sub_log(SUB_LOG_WARN, __VA_ARGS__)
#define log_info(...) sub_log(SUB_LOG_INFO, __VA_ARGS__)
#define log_debug(...) sub_log(SUB_LOG_DEBUG, __VA_ARGS__)
