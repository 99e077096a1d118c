/* The change-data-capture consumer: one thread per replica with its own hiredis connection. It
 * reads the Debezium streams (every resource's changes, the watermark row's changes, Debezium's
 * heartbeats, the DDL signal) with XREADGROUP (one consumer group per replica, positioned at `$` on
 * start), applies each entry to the cache, then XACKs it.
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

/* Breaks in continuity: each is a reason the replica can no longer show that it has seen every
 * change committed since its entries were filled. Every one ends in the same policy (cdc.c,
 * continuity_break): stop vouching, flush the cache, and vouch again only on a watermark read after
 * the flush. */
#define CDC_BREAKS(X)                                                                              \
    X(GROUP_MISSING, "group_missing")     /* NOGROUP, or the group had to be created again */      \
    X(PENDING_GONE, "pending_gone")       /* a pending entry was deleted before it was re-read */  \
    X(REDIS_RESTARTED, "redis_restarted") /* a new Redis run id */                                 \
    X(ENTRIES_REMOVED, "entries_removed") /* entries removed past the group's position */          \
    X(SOURCE_GAP, "source_gap")       /* the watermark chain skipped: WAL was never streamed */    \
    X(SOURCE_ORIGIN, "source_origin") /* PostgreSQL restarted or failed over */                    \
    X(SOURCE_FRESH, "source_fresh")   /* Debezium started without offsets */

enum cdc_break {
#define CDC_BREAK_ENUM(name, text) CDC_BREAK_##name,
    CDC_BREAKS(CDC_BREAK_ENUM)
#undef CDC_BREAK_ENUM
        CDC_BREAK_COUNT
};
const char *cdc_break_name(enum cdc_break b);

struct cdc_status {
    bool enabled;
    bool attached;        /* connected to Redis with its groups in place */
    bool vouching;        /* the cache may serve reads */
    int64_t staleness_ms; /* since the pipeline was last heard from; -1 never */
    int64_t max_staleness_ms;
    uint64_t results[CDC_RESULT_COUNT];
    uint64_t heartbeats, watermarks, reconnects, batches;
    uint64_t ddl_reloads;     /* DDL signals for a declared table: flushed and reloaded */
    uint64_t gap_flushes;     /* continuity breaks, every reason (the sum of breaks[]) */
    int64_t heartbeat_age_ms; /* since Debezium's last heartbeat (liveness); -1 never */
    uint64_t trims, trimmed, groups_removed, consumers_removed; /* stream retention */
    int64_t stream_length;                                      /* -1 unknown */
    int64_t group_lag;                /* entries not yet delivered to our group; -1 unknown */
    uint64_t breaks[CDC_BREAK_COUNT]; /* continuity breaks by reason (each flushed the cache) */
    bool chain_known;                 /* a watermark since the last break set the chain's base */
    int64_t chain_seq;                /* the watermark chain's last sequence number */
    const char *slot_state;           /* Debezium's slot: unknown, missing, reserved, extended,
                                         unreserved, lost (static string) */
    int64_t slot_retained_bytes;      /* WAL the slot retains; -1 unknown */
    char group[160];
    char last_error[200];
};

struct cdc;
struct db;
struct metrics;
struct metrics_page;

/* Applies one decoded event of resource res to the cache. Pure logic, no I/O: exposed for unit
 * tests. */
enum cdc_result cdc_apply(struct cache *c, unsigned res, const struct dbz_event *ev);

/* Returns a new, stopped consumer; cfg, catalog (the resources, reloaded on a DDL signal), cache,
 * db (may be NULL: no watermark ticks) and metrics are borrowed and must outlive it. */
struct catalog;
struct cdc *cdc_create(const struct config *cfg, struct catalog *catalog, struct cache *cache,
                       struct db *db, struct metrics *m);
/* Starts the consumer thread, and the watermark ticker thread when there is a db. Returns 0 or
 * CDC_EINVAL. */
int cdc_start(struct cdc *cdc);
/* Gives the consumer a warm-up (warm.h), before cdc_start(): it calls warm_collect() once its
 * groups are first positioned and warm_publish() every warm.publish_interval_ms. warm is borrowed
 * and must outlive the consumer. cdc_warm() returns it (NULL: none, or cdc NULL). */
struct warm;
void cdc_set_warm(struct cdc *cdc, struct warm *warm);
struct warm *cdc_warm(struct cdc *cdc);
/* Stops and joins the thread (within about block_ms). */
void cdc_stop(struct cdc *cdc);
void cdc_destroy(struct cdc *cdc);

/* True when reads may be answered from the cache. Thread-safe, lock-free. */
bool cdc_vouching(struct cdc *cdc);
/* Snapshot for /ready and /metrics. Thread-safe. */
void cdc_status(struct cdc *cdc, struct cdc_status *out);
/* Appends the consumer's figures to a /metrics page (metrics.h). Thread-safe. */
void cdc_metrics_render(struct cdc *cdc, struct metrics_page *p);

#endif
