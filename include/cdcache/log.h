/* Leveled logging to stderr, one line per call (one write per line, so lines never interleave).
 * Two formats: JSON lines (time, level, msg, replica, then the call's fields) for collectors, and a
 * readable line for terminals. log.format "auto" picks JSON unless stderr is a terminal. */
#ifndef CDCACHE_LOG_H
#define CDCACHE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_AUTO, LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

/* One field of a line: a string (str != NULL) or an integer. */
struct log_field {
    const char *key;
    const char *str;
    int64_t num;
};

/* Parses "debug", "info", "warn", "error". Returns 0 or CDC_EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
/* Parses "auto", "json", "text". Returns 0 or CDC_EINVAL. */
int log_parse_format(const char *s, enum log_format *out);
void log_set_level(enum log_level level);
/* Set once at start, before any other thread logs. AUTO is resolved here (isatty(stderr)). */
void log_set_format(enum log_format format);
/* The replica id every line carries (copied; set once at start, before any other thread logs). */
void log_set_replica(const char *replica_id);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line with a fixed message and n fields. */
void log_fields(enum log_level level, const char *msg, const struct log_field *fields, int n);

#define LOG_DEBUG(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
