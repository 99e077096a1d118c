/* Query strings (the part of a request target after '?') checked against the parameters a route
 * takes, in the manner of body.c for body fields: an unknown parameter, or one given twice, is
 * refused by name, never ignored.
 *
 * Contract: the input is untrusted bytes (civetweb caps the request line). Parameters are separated
 * by '&'; empty segments ("a=1&&b=2", a trailing '&') are skipped. Names and values are
 * form-URL-decoded ('+' is a space, %XX a byte); names are compared byte for byte (case matters).
 * A parameter without '=' has the empty value. Reentrant; allocates nothing. */
#ifndef CDCACHE_QUERY_H
#define CDCACHE_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/* Most parameters one route takes, and the longest value kept (with its NUL). */
#define QUERY_MAX_PARAMS 4
#define QUERY_VALUE_MAX  64

/* The parameters found, indexed like the names given to query_parse(). */
struct query_values {
    bool present[QUERY_MAX_PARAMS];
    char value[QUERY_MAX_PARAMS][QUERY_VALUE_MAX]; /* decoded, NUL-terminated ("" if absent) */
};

/* Parses qs[0..len) (qs may be NULL: no query) against names[0..count), count <=
 * QUERY_MAX_PARAMS. On success returns 0 and fills *out. On failure returns CDC_EINVAL, writes a
 * reason to err and the parameter's decoded name (control bytes shown as '?', cut to fieldlen) to
 * field; *out is then unspecified. Failures: an unknown name, a name given twice, a malformed %
 * escape, a value longer than QUERY_VALUE_MAX - 1 bytes. */
int query_parse(const char *qs, size_t len, const char *const *names, size_t count,
                struct query_values *out, char *err, size_t errlen, char *field, size_t fieldlen);

/* Form-URL-decodes s[0..n) ('+' is a space, %XX a byte) into out (outlen bytes with the NUL;
 * outlen > 0; n + 1 always suffices). Returns the decoded length, -1 on a malformed escape, -2
 * when the result does not fit. Also used by filter.c for the list queries of every resource. */
long query_decode(const char *s, size_t n, char *out, size_t outlen);

#endif
