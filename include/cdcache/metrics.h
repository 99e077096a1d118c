/* Request metrics, and the writers every module renders its own figures with (Prometheus text).
 * Counters are C11 atomics (relaxed): many HTTP workers bump them, /metrics sums them.
 *
 * Arrows point one way: modules that publish figures (cache, cdc, db) include this header and
 * expose <mod>_metrics_render(); /metrics (http.c) composes them. This module includes none of
 * them. */
#ifndef CDCACHE_METRICS_H
#define CDCACHE_METRICS_H

#include "cdcache/util.h"

#include <stdint.h>

/* The fixed routes. */
#define METRICS_ROUTES(X)                                                                          \
    X(HEALTH, "GET /health")                                                                       \
    X(READY, "GET /ready")                                                                         \
    X(METRICS, "GET /metrics")                                                                     \
    X(INDEX, "GET /")                                                                              \
    X(OPENAPI, "GET /openapi.{yaml,json}")                                                         \
    X(OTHER, "other")

enum metrics_route {
#define METRICS_ROUTE_ENUM(name, label) ROUTE_##name,
    METRICS_ROUTES(METRICS_ROUTE_ENUM)
#undef METRICS_ROUTE_ENUM
        ROUTE_COUNT
};

/* Every resource's routes: the method, and whether the path names a row. A label is
 * "<method> /<name>" or "<method> /<name>/{<key column>}" ("GET /items/{id}"). */
#define METRICS_RESOURCE_ROUTES(X)                                                                 \
    X(GET, "GET", true)                                                                            \
    X(LIST, "GET", false)                                                                          \
    X(CREATE, "POST", false)                                                                       \
    X(UPSERT, "PUT", false)                                                                        \
    X(REPLACE, "PUT", true)                                                                        \
    X(PATCH, "PATCH", true)                                                                        \
    X(DELETE, "DELETE", true)

enum metrics_resource_route {
#define METRICS_RESOURCE_ROUTE_ENUM(name, method, row) RROUTE_##name,
    METRICS_RESOURCE_ROUTES(METRICS_RESOURCE_ROUTE_ENUM)
#undef METRICS_RESOURCE_ROUTE_ENUM
        RROUTE_COUNT
};

enum metrics_xcache { XCACHE_HIT, XCACHE_MISS, XCACHE_BYPASS, XCACHE_COUNT };

struct metrics;

/* Returns new zeroed metrics for nresources resources; release with metrics_destroy(). */
struct metrics *metrics_create(size_t nresources);
void metrics_destroy(struct metrics *m);

/* Records one request: route, status and duration. Thread-safe, lock-free. */
void metrics_request(struct metrics *m, enum metrics_route route, int status, int64_t ns);
/* Records one request to resource res's route rr. Thread-safe, lock-free. */
void metrics_resource_request(struct metrics *m, enum metrics_resource_route rr, unsigned res,
                              int status, int64_t ns);
/* The route's label ("GET /health"), as in the metrics. */
const char *metrics_route_label(enum metrics_route route);
/* A resource route's label, from the resource's name and key column ("GET /items/{id}"), into
 * out[0..cap). Returns out. */
const char *metrics_resource_route_label(enum metrics_resource_route rr, const char *name,
                                         const char *key, char *out, size_t cap);
/* Records how an item read was served. */
void metrics_xcache(struct metrics *m, enum metrics_xcache kind);
/* Records commit-to-applied time of a change event (CDC thread). Any value is safe: negative
 * times count as 0, times beyond the largest bucket land in +Inf. */
void metrics_propagation(struct metrics *m, int64_t ms);

/* A page of Prometheus text being written. The first failed append (the page's cap) sticks in rc.
 */
struct metrics_page {
    struct buf *out;
    int rc;
};
/* Starts a metric family: HELP (when help is not NULL) and TYPE. */
void metrics_family(struct metrics_page *p, const char *name, const char *type, const char *help);
/* One sample; labels is `key="value"` text or NULL. */
void metrics_sample(struct metrics_page *p, const char *name, const char *labels, double v);
/* A family of one unlabelled sample. */
void metrics_scalar(struct metrics_page *p, const char *name, const char *type, const char *help,
                    double v);

/* Appends m's own figures: requests, latency, how reads were served, CDC propagation. names[i] and
 * keys[i] (borrowed) label resource i's routes (the descriptors can change with DDL, so the caller
 * passes the current ones). */
void metrics_render(struct metrics *m, struct metrics_page *p, const char *const *names,
                    const char *const *keys);

#endif
