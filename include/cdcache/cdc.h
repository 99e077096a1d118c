/* The change-data-capture consumer: one thread per replica with its own hiredis connection. It
 * reads the Debezium streams (the items' changes, the watermark row's changes, Debezium's
 * heartbeats) with XREADGROUP (one consumer group per replica, positioned at `$` on start), applies
 * each entry to the cache, then XACKs it.
 *
 * It also decides whether the replica can vouch for its cache: only while it is attached to Redis
 * and has applied, within max_staleness, an entry committed within max_staleness with nothing older
 * still in flight (see heard() in cdc.c). */
#ifndef CDCACHE_CDC_H
#define CDCACHE_CDC_H

#include "cdcache/cache.h"
#include "cdcache/config.h"
#include "cdcache/debezium.h"

#include <stdbool.h>
#include <stdint.h>

#define CDC_RESULTS(X)                                                                             \
    X(REFRESHED, "refreshed")   /* a cached entry took the newer after-image */                    \
    X(EVICTED, "evicted")       /* delete, or an entry that could not be refreshed */              \
    X(ABSENT, "absent")         /* the key was not cached: nothing to do */                        \
    X(STALE, "stale")           /* version older than or equal to the cached one: ignored */       \
    X(INCOMPLETE, "incomplete") /* after-image without every column: evicted */                    \
    X(TOMBSTONE, "tombstone")   /* null value after a delete: skipped */                           \
    X(TRUNCATE, "truncate")     /* the resource was flushed */                                     \
    X(POISON, "poison")         /* undecodable: counted, logged, acked, key or resource evicted */

enum cdc_result {
#define CDC_RESULT_ENUM(name, text) CDC_RESULT_##name,
    CDC_RESULTS(CDC_RESULT_ENUM)
#undef CDC_RESULT_ENUM
        CDC_RESULT_COUNT
};
const char *cdc_result_name(enum cdc_result r);

struct cdc_status {
    bool enabled;
    bool attached;        /* connected to Redis with its groups in place */
    bool vouching;        /* the cache may serve reads */
    int64_t staleness_ms; /* since the pipeline was last heard from; -1 never */
    int64_t max_staleness_ms;
    uint64_t results[CDC_RESULT_COUNT];
    uint64_t heartbeats, watermarks, reconnects, gap_flushes, batches;
    int64_t heartbeat_age_ms; /* since Debezium's last heartbeat (liveness); -1 never */
    uint64_t trims, trimmed, groups_removed, consumers_removed; /* stream retention */
    int64_t stream_length;                                      /* -1 unknown */
    char group[160];
    char last_error[200];
};

struct cdc;
struct metrics;

/* Applies one decoded event to the cache. Pure logic, no I/O: exposed for unit tests. */
enum cdc_result cdc_apply(struct cache *c, const struct dbz_event *ev);

/* Returns a new, stopped consumer; cfg, cache and metrics are borrowed and must outlive it. */
struct cdc *cdc_create(const struct config *cfg, struct cache *cache, struct metrics *m);
/* Starts the thread. Returns 0 or CDC_EINVAL. */
int cdc_start(struct cdc *cdc);
/* Stops and joins the thread (within about block_ms). */
void cdc_stop(struct cdc *cdc);
void cdc_destroy(struct cdc *cdc);

/* True when reads may be answered from the cache. Thread-safe, lock-free. */
bool cdc_vouching(struct cdc *cdc);
/* Snapshot for /ready and /metrics. Thread-safe. */
void cdc_status(struct cdc *cdc, struct cdc_status *out);

#endif
