/* Helpers without state. Out-of-memory is decided here once: we abort, because every caller would
 * otherwise carry a half-tested recovery path. */
#include "cdcache/util.h"
#include "cdcache/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "cdcache: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;
    uint64_t limit;

    if (!s || len == 0)
        return false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (len == 1)
            return false;
    }
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return false;
        d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

bool parse_i64_str(const char *s, int64_t *out)
{
    return s && parse_i64(s, strlen(s), out);
}

int64_t now_mono_ms(void)
{
    return now_mono_ns() / 1000000;
}

int64_t now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void buf_init(struct buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int buf_reserve(struct buf *b, size_t extra)
{
    size_t need;
    if (extra > b->cap || b->len > b->cap - extra)
        return CDC_ETOOBIG;
    need = b->len + extra + 1;
    if (need > b->alloc) {
        size_t n = b->alloc ? b->alloc : 256;
        while (n < need)
            n *= 2;
        b->data = xrealloc(b->data, n);
        b->alloc = n;
    }
    return 0;
}

int buf_append(struct buf *b, const char *s, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    int rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CDC_EINVAL;
    rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *csv_next(const char **p, size_t *len)
{
    const char *s = *p, *item;
    size_t n;

    while (*s == ' ' || *s == ',')
        s++;
    n = strcspn(s, ",");
    item = s;
    *p = s + n;
    while (n > 0 && s[n - 1] == ' ')
        n--;
    if (n == 0)
        return NULL;
    *len = n;
    return item;
}

int buf_json_escape(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[7];
        size_t elen = 2;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        rc = buf_append(b, s + start, i - start);
        start = i + 1;
        esc[0] = '\\';
        switch (ch) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
        }
        if (rc == 0)
            rc = buf_append(b, esc, elen);
    }
    if (rc == 0)
        rc = buf_append(b, s + start, n - start);
    return rc;
}

char *buf_steal(struct buf *b, size_t *len)
{
    char *p = b->data ? b->data : xstrdup("");
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80                    ? 1
                 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
                 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
                 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((len == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (len == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (len == 4 && s[0] == 0xf0 && s[1] < 0x90) || (len == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0; /* overlong, a surrogate, or beyond U+10FFFF */
    return len;
}

int buf_json_escape_text(struct buf *b, const char *s, size_t n)
{
    size_t start = 0;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0;) {
        size_t len = utf8_len((const unsigned char *)s + i, n - i);
        if (len) {
            i += len;
            continue;
        }
        rc = buf_json_escape(b, s + start, i - start);
        if (rc == 0)
            rc = buf_puts(b, "\\ufffd");
        start = ++i;
    }
    return rc ? rc : buf_json_escape(b, s + start, n - start);
}

void test_gate_wait(const char *dir, const char *key)
{
    char gate[512], waiting[520];
    FILE *f;

    if (strchr(key, '/') || snprintf(gate, sizeof(gate), "%s/%s", dir, key) >= (int)sizeof(gate) ||
        access(gate, F_OK) != 0)
        return;
    snprintf(waiting, sizeof(waiting), "%s.waiting", gate);
    f = fopen(waiting, "w");
    if (f)
        fclose(f);
    for (int i = 0; i < 6000 && access(gate, F_OK) == 0; i++)
        usleep(5000);
    unlink(waiting);
}
