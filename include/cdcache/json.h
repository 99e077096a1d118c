/* A strict, non-allocating JSON scanner (RFC 8259) for the two places that read JSON: request
 * bodies and Debezium stream entries. It does not build a tree: it validates one value at a time
 * and hands back spans that borrow the input, so a reader extracts the few members it needs and
 * skips the rest.
 *
 * Strict means: no trailing commas, no leading zeros or '+' on numbers, no control characters in
 * strings, valid UTF-8, valid escapes with paired surrogates, and no escaped NUL (neither a request
 * nor PostgreSQL text can hold one). Containers nest at most JSON_MAX_DEPTH deep.
 *
 * Pure functions over caller-owned memory: thread-safe, and safe on any input (fuzzed through
 * both callers). Nothing reads past the length given. */
#ifndef CDCACHE_JSON_H
#define CDCACHE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

enum json_kind {
    JSON_NONE, /* a member that was not present */
    JSON_STRING,
    JSON_NUMBER,
    JSON_OBJECT,
    JSON_ARRAY,
    JSON_TRUE,
    JSON_FALSE,
    JSON_NULL,
};

/* A validated value, borrowed from the input. For a string, p/len are the bytes between the quotes
 * (still escaped when `escaped`); for a number, its text; for a container, the whole text from the
 * opening to the closing bracket; for a literal, its text. */
struct json_span {
    enum json_kind kind;
    const char *p;
    size_t len;
    bool escaped;
};

/* A read position in s[0..len). */
struct json_cursor {
    const char *s;
    size_t len;
    size_t pos;
};

/* Iterates the members of one object. */
struct json_members {
    struct json_cursor c;
    unsigned count;
    bool done;
};

void json_cursor_init(struct json_cursor *c, const char *s, size_t len);
/* True when only whitespace remains. */
bool json_at_end(struct json_cursor *c);

/* Scans one value at the cursor (after whitespace) and validates all of it. Returns 0 and fills *v,
 * or CDC_EINVAL with a static reason in *why; on failure the cursor is where the problem is. */
int json_value(struct json_cursor *c, struct json_span *v, const char **why);

/* Starts iterating the object at the cursor (after whitespace): consumes '{'. Returns 0 or
 * CDC_EINVAL. The iterator copies the cursor; json_members_cursor() gives the position back. */
int json_members_open(struct json_members *it, const struct json_cursor *c, const char **why);
/* Reads the next member. Returns 1 with its name (a JSON_STRING span) and value, 0 after the
 * closing '}', or CDC_EINVAL with a reason. */
int json_members_next(struct json_members *it, struct json_span *name, struct json_span *value,
                      const char **why);

/* The same in steps, for a reader that walks into a member's object without scanning it twice:
 * json_members_name() reads the name and the ':' (1, 0 at the end, or CDC_EINVAL); then either
 * json_members_value() scans the value, or, when json_members_at_object(), json_members_enter()
 * starts *sub on it and, once sub has returned 0, json_members_leave() continues after it and gives
 * the object's span. Depth is bounded by the caller's nesting of iterators, plus JSON_MAX_DEPTH. */
int json_members_name(struct json_members *it, struct json_span *name, const char **why);
int json_members_value(struct json_members *it, struct json_span *value, const char **why);
bool json_members_at_object(const struct json_members *it);
void json_members_enter(const struct json_members *it, struct json_members *sub);
int json_members_leave(struct json_members *it, const struct json_members *sub,
                       struct json_span *value, const char **why);

/* Decodes a string span into out[0..cap): UTF-8, NUL-terminated. cap must exceed s->len (decoding
 * never lengthens a string). Returns the decoded length, or -1 when s is not a string or cap is too
 * small. */
long json_string_decode(const struct json_span *s, char *out, size_t cap);

/* True when span s is a string whose decoded text equals lit[0..n). */
bool json_string_equals_n(const struct json_span *s, const char *lit, size_t n);

/* The same for a NUL-terminated lit; inline so that a literal's length is known at compile time
 * (member names are compared for every member of every event). */
static inline bool json_string_equals(const struct json_span *s, const char *lit)
{
    size_t n = strlen(lit);
    if (s->kind == JSON_STRING && !s->escaped)
        return s->len == n && memcmp(s->p, lit, n) == 0;
    return json_string_equals_n(s, lit, n);
}

/* Reads an integer: a number with an integral value (exact to 2^53 when written with a fraction or
 * an exponent) or a string holding a plain base-10 integer. */
bool json_span_i64(const struct json_span *s, int64_t *out);

#endif
