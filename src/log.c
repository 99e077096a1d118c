/* Logging. The level is an atomic so the CDC thread and HTTP workers can read it without a lock;
 * the format and the replica id are set once at start, before any other thread runs. Each line is
 * built in a buffer and written with one write(2), so lines from different threads never
 * interleave. */
#include "cdcache/log.h"
#include "cdcache/error.h"
#include "cdcache/util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;
static char log_replica[80];
static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"auto", "json", "text"};

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return CDC_EINVAL;
}

int log_parse_format(const char *s, enum log_format *out)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, format_names[i]) == 0) {
            *out = (enum log_format)i;
            return 0;
        }
    }
    return CDC_EINVAL;
}

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

void log_set_format(enum log_format format)
{
    if (format == LOG_FORMAT_AUTO)
        format = isatty(STDERR_FILENO) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
    log_format = format;
}

void log_set_replica(const char *replica_id)
{
    snprintf(log_replica, sizeof(log_replica), "%s", replica_id ? replica_id : "");
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load(&log_level);
}

/* A JSON string member; bytes that are not UTF-8 (a message may quote a client's input) become
 * U+FFFD, so every line stays valid JSON. */
static void put_json_str(struct buf *b, const char *key, const char *s)
{
    buf_printf(b, ",\"%s\":\"", key);
    buf_json_escape_text(b, s, strlen(s));
    buf_puts(b, "\"");
}

/* Text values with a space, a quote or a control character are quoted, so key=value stays
 * parseable; quotes and backslashes inside are escaped. */
static void put_text_value(struct buf *b, const char *s)
{
    bool plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = (unsigned char)*p > ' ' && *p != '"' && *p != '\\' && *p != 0x7f;
    if (plain) {
        buf_puts(b, s);
        return;
    }
    buf_puts(b, "\"");
    buf_json_escape(b, s, strlen(s));
    buf_puts(b, "\"");
}

static void emit(enum log_level level, const char *msg, const struct log_field *f, int n)
{
    char stamp[40];
    struct timespec ts;
    struct tm tm;
    struct buf b;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        stamp[0] = '\0';
    buf_init(&b, 512);
    if (log_format == LOG_FORMAT_JSON) {
        buf_printf(&b, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\"", stamp, ts.tv_nsec / 1000000,
                   level_names[level]);
        put_json_str(&b, "msg", msg);
        if (log_replica[0])
            put_json_str(&b, "replica", log_replica);
        for (int i = 0; i < n; i++) {
            if (f[i].str)
                put_json_str(&b, f[i].key, f[i].str);
            else
                buf_printf(&b, ",\"%s\":%lld", f[i].key, (long long)f[i].num);
        }
        buf_puts(&b, "}\n");
    } else {
        buf_printf(&b, "%s.%03ldZ %-5s %s", stamp, ts.tv_nsec / 1000000, level_names[level], msg);
        for (int i = 0; i < n; i++) {
            buf_printf(&b, " %s=", f[i].key);
            if (f[i].str)
                put_text_value(&b, f[i].str);
            else
                buf_printf(&b, "%lld", (long long)f[i].num);
        }
        buf_puts(&b, "\n");
    }
    for (size_t off = 0; off < b.len;) {
        ssize_t w = write(STDERR_FILENO, b.data + off, b.len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    buf_free(&b);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emit(level, line, NULL, 0);
}

void log_fields(enum log_level level, const char *msg, const struct log_field *fields, int n)
{
    if (log_enabled(level))
        emit(level, msg, fields, n);
}
