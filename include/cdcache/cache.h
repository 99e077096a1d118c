/* The per-replica row cache: sharded, bounded in bytes (one bound for every resource), S3-FIFO
 * eviction (small, main and ghost queues per shard), refcounted values, and fill leases that CDC
 * invalidations void (no stale fill).
 *
 * Keys are (resource, key bytes): the resource's index (resource.h, 0..CACHE_MAX_RESOURCES-1) and
 * the canonical text of the row's key (codec_key_canon(): "42", a lower-case uuid, a text key's
 * bytes), at most CACHE_MAX_KEY bytes. A resource is flushed in O(1) (cache_flush_resource: its
 * generation moves on, so its entries and leases are dead at once and swept lazily).
 *
 * Thread-safety: every function may be called from any thread. Each shard has one mutex; no
 * function holds two shard locks at once, so there is no lock order to respect. */
#ifndef CDCACHE_CACHE_H
#define CDCACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;

#define CACHE_MAX_RESOURCES 256
#define CACHE_MAX_KEY       512
/* The default least share of max_bytes per shard (struct cache_options.min_shard_bytes). */
#define CACHE_MIN_SHARD_BYTES (64 * 1024)

/* A key, borrowed: p[0..len) are the key's canonical bytes; res the resource's index. */
struct cache_key {
    uint32_t res;
    uint32_t len;
    const char *p;
};

/* An immutable cached response: the pre-rendered row JSON and its version. Refcounted: a reader
 * that got it from cache_lookup() may write body to a socket while the CDC thread evicts the entry.
 */
struct cache_value;

/* Why a fill was not installed. Every fill is either installed or counted under one of these. */
#define CACHE_REJECT_REASONS(X)                                                                    \
    X(LEASE_VOID, "lease_void")     /* an invalidation for the key arrived while the fill ran */   \
    X(NOT_NEWER, "not_newer")       /* the cache already holds this version or a newer one */      \
    X(TOO_LARGE, "too_large")       /* larger than a shard's share of the bound (or than 16 MiB,   \
                                       a key past CACHE_MAX_KEY, or a version past 2^39 - 1,       \
                                       which the header cannot hold) */                            \
    X(NO_ROOM, "no_room")           /* nothing could be evicted to make room */                    \
    X(NEGATIVE_OFF, "negative_off") /* negative entries are disabled */

enum cache_reject {
#define CACHE_REJECT_ENUM(name, text) CACHE_REJECT_##name,
    CACHE_REJECT_REASONS(CACHE_REJECT_ENUM)
#undef CACHE_REJECT_ENUM
        CACHE_REJECT_COUNT
};
const char *cache_reject_name(enum cache_reject r);

struct cache_options {
    size_t max_bytes;       /* bound on keys + bodies + per-entry overhead */
    unsigned shards;        /* rounded up to a power of two, then halved while a shard's share of
                               max_bytes is below min_shard_bytes (each shard evicts on its own, so
                               a share of a few entries would make a poor cache) */
    unsigned resources;     /* 1..CACHE_MAX_RESOURCES: keys' res is below it */
    bool negative_entries;  /* cache "not found" answers */
    int fill_wait_ms;       /* how long a miss waits for another thread's fill of the same key */
    size_t min_shard_bytes; /* 0: CACHE_MIN_SHARD_BYTES */
};

struct cache_stats {
    uint64_t hits, misses, negative_hits, evictions, invalidations, flushes, fills, refreshes;
    uint64_t stale_ignored, fill_waits, fill_wait_timeouts;
    uint64_t rejected[CACHE_REJECT_COUNT];
    uint64_t entries, bytes, max_bytes;
};

/* Returns a new cache; release with cache_destroy(). */
struct cache *cache_create(const struct cache_options *opt);
/* Frees the cache. Values still referenced by readers stay valid until released. */
void cache_destroy(struct cache *c);

enum cache_lookup_result {
    CACHE_HIT,  /* *out holds a new reference (maybe a negative entry); release with
                   cache_value_release() */
    CACHE_MISS, /* *lease is a fill lease: call cache_fill() or cache_fill_abort() with it. Or 0:
                   another fill holds the key and did not finish in time; serve from the database,
                   do not fill. */
};

/* Looks key up. An entry whose version is below min_version counts as a miss (read-your-writes),
 * and so does a negative entry when min_version >= 1 (the row exists at that version); pass 0 for
 * any version. When another thread is filling the same key, waits up to fill_wait_ms for
 * it (stampede protection) rather than querying the database again. */
enum cache_lookup_result cache_lookup(struct cache *c, struct cache_key key, int64_t min_version,
                                      struct cache_value **out, uint64_t *lease);

/* Takes a fill lease on key unconditionally (the write path, before it writes the database),
 * replacing any lease another thread holds. Returns the lease (never 0). */
uint64_t cache_lease(struct cache *c, struct cache_key key);

/* The invalidation epoch: a counter that every change event, eviction and flush advances. */
uint64_t cache_epoch(struct cache *c);
/* Takes a fill lease on key unless an invalidation touched key after epoch `since` (or the cache
 * can no longer tell). Returns the lease, or 0: do not fill. For writes whose key did not exist
 * before the write (creates): read cache_epoch() before writing, then call this with the new key.
 */
uint64_t cache_lease_since(struct cache *c, struct cache_key key, uint64_t since);

/* Installs a fill made under lease. body[0..len) is copied. version < 0 installs a negative entry
 * ("not found"). Returns 0 when installed, or CDC_EREJECTED with the reason counted (and written to
 * *why when why is not NULL). Always ends the lease. */
int cache_fill(struct cache *c, struct cache_key key, uint64_t lease, int64_t version,
               const char *body, size_t len, enum cache_reject *why);
/* Ends a lease without installing (the fill failed). */
void cache_fill_abort(struct cache *c, struct cache_key key, uint64_t lease);

enum cache_apply_result { CACHE_APPLIED, CACHE_ABSENT, CACHE_OLD, CACHE_EVICTED };
/* A change event's whole after-image for key (CDC thread). Voids any fill lease on key. When the
 * key is cached with a lower version, replaces the body; with an equal or higher version, ignores
 * it; when the key is cached as negative, evicts it (the next read fills the row); when absent,
 * does nothing. */
enum cache_apply_result cache_apply(struct cache *c, struct cache_key key, int64_t version,
                                    const char *body, size_t len);
/* Removes key and voids its lease. Returns true when something was removed. */
bool cache_evict(struct cache *c, struct cache_key key);
/* Removes every entry and voids every lease (a continuity break). */
void cache_flush(struct cache *c);
/* The same for one resource only, in O(1) (a truncate, a poison entry without a key, DDL): its
 * generation moves on; entries of the old generation are never served again and are unlinked when
 * met (lookups, eviction, the sweep). Leases taken before it are void (their fills are rejected as
 * LEASE_VOID), and cache_lease_since() with an epoch before it returns 0. */
void cache_flush_resource(struct cache *c, unsigned res);

void cache_stats(struct cache *c, struct cache_stats *out);
/* One resource's figures: hits, misses, negative_hits, fills, refreshes, evictions, invalidations,
 * flushes, entries and bytes (the others are 0). res < the resources given to cache_create().
 * flushes counts the resource's own flushes and whole-cache ones; entries and bytes count its
 * entries of the current generation (a flushed entry not yet unlinked still counts in
 * cache_stats()'s totals and against the bound, not here). */
void cache_stats_resource(struct cache *c, unsigned res, struct cache_stats *out);
struct metrics_page;
/* Appends the cache's figures to a /metrics page (metrics.h): the totals, unlabelled, then the
 * per-resource families labelled resource="<name>", resource_names[i] naming resource i (borrowed;
 * NULL, or a NULL name, writes the index). Resources from nresources on are not labelled. */
void cache_metrics_render(struct cache *c, struct metrics_page *p,
                          const char *const *resource_names, unsigned nresources);

/* The shards the cache really has (see struct cache_options.shards). */
unsigned cache_shards(const struct cache *c);

/* Accessors for a value obtained from cache_lookup(). Borrowed while the reference is held; the
 * body is len bytes, not NUL-terminated. */
const char *cache_value_body(const struct cache_value *v, size_t *len);
int64_t cache_value_version(const struct cache_value *v);
bool cache_value_negative(const struct cache_value *v);
/* Drops a reference; frees the value when it was the last. NULL-safe. */
void cache_value_release(struct cache_value *v);

/* The bytes one entry is charged for a key of key_len bytes and a body of len bytes (the header,
 * a key longer than 8 bytes, the body, malloc's, the hash table's and the ghost's overhead). */
size_t cache_entry_cost(size_t key_len, size_t len);

/* Warm-up support (warm.c). Calls up to max times fn(arg, key, len) with the canonical key of an
 * entry of resource res that the eviction policy counts as re-used (S3-FIFO's read count: read
 * again since it was linked or last passed over; main's entries first), spread evenly over the
 * shards and found by a bounded walk. Read-only: it changes no bit, order or counter, so eviction
 * decides as without it. fn runs under a shard lock: it must copy the key (borrowed for the call)
 * and must not call the cache. Returns how many keys were given. */
size_t cache_hot_keys(struct cache *c, unsigned res, size_t max,
                      void (*fn)(void *arg, const char *key, size_t len), void *arg);
/* A fill lease on key only when the cache holds nothing for it (no entry, negative or not, and no
 * other fill in flight); 0 otherwise. Unlike cache_lookup() it counts no miss and never waits.
 * Like any lease, an invalidation of key or a flush voids it. */
uint64_t cache_lease_absent(struct cache *c, struct cache_key key);

/* Test hook, NULL in production: called by cache_fill() before it takes the shard lock, so a test
 * can force an invalidation between a fill's query and its install deterministically. */
extern void (*cache_test_before_fill)(struct cache_key key);
/* Test hook, NULL in production: set before cache_create() and kept until cache_destroy(), it
 * replaces each key's hash h with its result, so a test can make every key collide (return a
 * constant) and check that keys are still told apart by their resource and bytes. */
extern uint64_t (*cache_test_hash)(uint64_t h);

#endif
