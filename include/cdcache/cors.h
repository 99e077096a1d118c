/* Cross-origin resource sharing (http.cors_origins). Off unless origins are configured. One answer
 * for a preflight and the request that follows it: an Origin that is allowed gets
 * Access-Control-Allow-Origin (the origin, or "*" when "*" is configured) on every response,
 * preflights included, and responses carry Vary: Origin whenever CORS is on.
 * Thread-safety: immutable after cors_create(); every function may be called from any thread. */
#ifndef CDCACHE_CORS_H
#define CDCACHE_CORS_H

#include <stdbool.h>
#include <stddef.h>

/* What a browser may read of a response, and what a request may send. */
#define CORS_EXPOSE_HEADERS                                                                        \
    "ETag, X-Cache, Link, Location, Retry-After, WWW-Authenticate, X-Request-Id"
#define CORS_ALLOW_HEADERS                                                                         \
    "Authorization, Content-Type, If-Match, If-None-Match, X-Min-Version, Cache-Control, "         \
    "X-Request-Id"
/* Seconds a browser may keep a preflight's answer. */
#define CORS_MAX_AGE "600"
/* Most origins, and the longest one. */
#define CORS_MAX_ORIGINS 64
#define CORS_ORIGIN_MAX  255

struct cors;

/* Parses a comma-separated list of origins ("https://app.example.com, http://localhost:3000") or
 * "*" (spaces around items ignored; empty: CORS off). An origin is http or https, a host, an
 * optional port, and nothing else (no path, no trailing '/'). Returns a new policy (release with
 * cors_destroy()), or NULL with a message naming http.cors_origins in err. */
struct cors *cors_create(const char *origins, char *err, size_t errlen);
void cors_destroy(struct cors *c);

/* True when any origin is configured (then every response carries Vary: Origin). */
bool cors_enabled(const struct cors *c);

/* The Access-Control-Allow-Origin value for a request's Origin header (NULL: none), or NULL when
 * that origin may not read the answer. The result is borrowed from c (valid until
 * cors_destroy()). The configured origins are kept in lower case, as browsers send them, and
 * compared exactly. */
const char *cors_allow_origin(const struct cors *c, const char *origin);

#endif
