/* Request metrics and the Prometheus text rendering of everything a replica counts.
 * Counters are C11 atomics (relaxed): many HTTP workers bump them, /metrics sums them. */
#ifndef CDCACHE_METRICS_H
#define CDCACHE_METRICS_H

#include "cdcache/cache.h"
#include "cdcache/util.h"

#include <stdint.h>

#define METRICS_ROUTES(X)                                                                          \
    X(ITEM_GET, "GET /items/{id}")                                                                 \
    X(ITEM_LIST, "GET /items")                                                                     \
    X(ITEM_CREATE, "POST /items")                                                                  \
    X(ITEM_UPSERT, "PUT /items")                                                                   \
    X(ITEM_REPLACE, "PUT /items/{id}")                                                             \
    X(ITEM_PATCH, "PATCH /items/{id}")                                                             \
    X(ITEM_DELETE, "DELETE /items/{id}")                                                           \
    X(HEALTH, "GET /health")                                                                       \
    X(READY, "GET /ready")                                                                         \
    X(METRICS, "GET /metrics")                                                                     \
    X(OTHER, "other")

enum metrics_route {
#define METRICS_ROUTE_ENUM(name, label) ROUTE_##name,
    METRICS_ROUTES(METRICS_ROUTE_ENUM)
#undef METRICS_ROUTE_ENUM
        ROUTE_COUNT
};

enum metrics_xcache { XCACHE_HIT, XCACHE_MISS, XCACHE_BYPASS, XCACHE_COUNT };

struct metrics;
struct cdc_status;
struct db_stats;

/* Returns new zeroed metrics; release with metrics_destroy(). */
struct metrics *metrics_create(void);
void metrics_destroy(struct metrics *m);

/* Records one request: route, status and duration. Thread-safe, lock-free. */
void metrics_request(struct metrics *m, enum metrics_route route, int status, int64_t ns);
/* Records how an item read was served. */
void metrics_xcache(struct metrics *m, enum metrics_xcache kind);
/* Records commit-to-applied time of a change event (CDC thread). */
void metrics_propagation(struct metrics *m, int64_t ms);

/* Appends the Prometheus text exposition of m, the cache stats, the CDC status and the database
 * counters to out. */
int metrics_render(struct metrics *m, const struct cache_stats *cs, const struct cdc_status *cdc,
                   const struct db_stats *db, struct buf *out);

#endif
