/* The HTTP API (civetweb): routes, request parsing, problem+json errors, and the cache-aside read
 * path. Handlers run on civetweb's worker threads; everything they share (cache, db, cdc, metrics)
 * is thread-safe. */
#ifndef CDCACHE_HTTP_H
#define CDCACHE_HTTP_H

#include "cdcache/cache.h"
#include "cdcache/cdc.h"
#include "cdcache/config.h"
#include "cdcache/db.h"
#include "cdcache/metrics.h"

#include <stddef.h>

struct http_server;

/* Starts listening. cfg, cache (may be NULL: caching disabled), db, cdc (may be NULL: CDC disabled)
 * and metrics are borrowed and must outlive the server. Returns a new server (stop with
 * http_stop()) or NULL with the reason in err. */
struct catalog;
struct http_server *http_start(const struct config *cfg, struct catalog *catalog,
                               struct cache *cache, struct db *db, struct cdc *cdc,
                               struct metrics *metrics, char *err, size_t errlen);
/* http.shared_listen: joins the port every replica of the host shares (SO_REUSEPORT), from now on
 * served by the main listener; the kernel spreads new connections over the replicas that joined.
 * Call once the replica is ready to serve (its stream position established), from the thread that
 * started it. Does nothing when http.shared_listen is empty, already joined or draining. Returns
 * 0, or CDC_EINVAL with the reason in err (the port is held by a program that does not share
 * it). */
int http_share(struct http_server *srv, char *err, size_t errlen);
/* Marks the server as draining: /ready answers 503 from now on, everything else is still served,
 * each answer closing its connection. Thread-safe. NULL-safe. */
void http_drain(struct http_server *srv);
/* Drains (http_drain), stops accepting (connects are refused), waits up to
 * http.keep_alive_timeout_ms + 1 s for the open connections to end, stops (in-flight requests
 * finish) and frees the server. NULL-safe. */
void http_stop(struct http_server *srv);

#endif
