/* Small helpers shared by every module: allocation that aborts on out-of-memory (decided once,
 * here), checked integer parsing, clocks, and a growable byte buffer with a hard cap. */
#ifndef CDCACHE_UTIL_H
#define CDCACHE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation wrappers: never return NULL; print a message and abort when memory runs out. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* Returns a new string; release with free(). */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Parses all of s[0..len) as a base-10 signed 64-bit integer (optional leading '-', no spaces, no
 * '+'). Returns true and writes *out only on success. */
bool parse_i64(const char *s, size_t len, int64_t *out);
/* Same, for a NUL-terminated string. */
bool parse_i64_str(const char *s, int64_t *out);

/* Test hook (CDCACHE_TEST_FILL_GATE), never reached in production: while the file <dir>/<key>
 * exists, waits (up to 30 s), with <dir>/<key>.waiting present meanwhile, so a test can land a
 * change between a fill's query and its install. Keys holding '/' never wait. */
void test_gate_wait(const char *dir, const char *key);

/* Milliseconds from CLOCK_MONOTONIC and from the wall clock (CLOCK_REALTIME). */
int64_t now_mono_ms(void);
int64_t now_wall_ms(void);
int64_t now_mono_ns(void);

/* A growable buffer. `cap` bounds its length; appending past it fails with CDC_ETOOBIG and leaves
 * the buffer unchanged. Always NUL-terminated after the first append. Release with buf_free(). */
struct buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap;
};

void buf_init(struct buf *b, size_t cap);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const char *s, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as the body of a JSON string (no quotes), escaping as RFC 8259 requires. */
int buf_json_escape(struct buf *b, const char *s, size_t n);
/* The same for text that may not be UTF-8 (a message quoting a client's bytes, cut anywhere): every
 * byte that does not start a valid sequence becomes U+FFFD, so the result is always valid JSON. */
int buf_json_escape_text(struct buf *b, const char *s, size_t n);
/* The next item of a comma-separated list at *p (config values such as tokens and origins): its
 * start, with its length in *len and the spaces around it trimmed, or NULL when none is left. *p
 * moves past it. Empty items are skipped. */
const char *csv_next(const char **p, size_t *len);
/* Hands the bytes to the caller: returns the data (a new allocation, release with free()) and
 * leaves b empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
