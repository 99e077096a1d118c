/* Bearer-token authorization (auth.write_tokens, auth.read_tokens). Tokens are compared in constant
 * time: how long a comparison takes says nothing about how much of a guess was right. A token is
 * never logged or echoed.
 *
 * Rules: when write tokens are set, writes need one of them. When read tokens are set, reads need
 * one of them or a write token. Operations endpoints (/health, /ready, /metrics) stay open.
 * Thread-safety: immutable after auth_create(); every function may be called from any thread. */
#ifndef CDCACHE_AUTH_H
#define CDCACHE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct auth;

enum auth_result {
    AUTH_OK,
    AUTH_MISSING, /* no Authorization: Bearer header */
    AUTH_INVALID, /* a token that is not one of the configured ones */
};

/* Parses two comma-separated token lists (spaces around tokens ignored; either may be empty).
 * Returns a new authorizer (release with auth_destroy()), or NULL with a message naming the key in
 * err when a token is unusable (it holds a character a header cannot carry). */
struct auth *auth_create(const char *write_tokens, const char *read_tokens, char *err,
                         size_t errlen);
void auth_destroy(struct auth *a);

/* Checks the Authorization header value (NULL when absent) for a write (write=true) or a read. */
enum auth_result auth_check(const struct auth *a, const char *authorization, bool write);
/* True when the request kind needs a token at all. */
bool auth_required(const struct auth *a, bool write);

#endif
