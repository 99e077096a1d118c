/* The warm-up: a replica that starts fills its cache with what its peers hold hot, in rate-limited
 * batches from PostgreSQL, before it turns ready (within a deadline).
 *
 * Samples. Every warm.publish_interval_ms each replica writes, on its consumer's Redis connection,
 * `<cdc.group_prefix>:hot:<its group>` = a JSON object {"<resource>": ["<key>", ...], ...} holding
 * at most warm.sample_keys keys per resource that the eviction policy counts as re-used
 * (cache_hot_keys()), with a TTL of warm.sample_ttl_ms: a replica that is gone leaves no sample
 * behind for long. Only keys travel, never rows: a row always comes from PostgreSQL.
 *
 * The rule. A warmed entry is a fill like any other: a lease (cache_lease_absent()) is taken
 * before the batch is read from PostgreSQL and the row installed under it (cache_fill()), so a
 * change event or a flush between the two voids it. And the warm-up starts only once the consumer
 * has positioned its groups (warm_collect() is called by the consumer thread right after that):
 * every lease, hence every query, comes after the position, so any change committed after the
 * query reaches the consumer and either voids the lease or finds the entry and refreshes it. No
 * warmed entry can be older than a change the replica will not see.
 *
 * Threads: warm_publish() and warm_collect() run on the consumer thread (its redisContext); the
 * fills run on the warm-up's own thread, one statement at a time from the db pool; the status
 * functions from any thread. `lock` guards the plan and the state (below). */
#ifndef CDCACHE_WARM_H
#define CDCACHE_WARM_H

#include "cdcache/cache.h"
#include "cdcache/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct warm;
struct catalog;
struct db;
struct metrics_page;
struct redisContext;

enum warm_state {
    WARM_WAITING, /* for the consumer to position its groups and read the samples */
    WARM_FILLING, /* batches in flight */
    WARM_DONE,    /* every planned key tried (or nothing to warm, or stopped) */
};
const char *warm_state_name(enum warm_state s);

struct warm_stats {
    enum warm_state state;
    uint64_t planned;    /* distinct keys read from the samples, over every resource */
    uint64_t warmed;     /* entries installed */
    uint64_t skipped;    /* keys already cached, or being filled by a read */
    uint64_t missing;    /* keys no longer in PostgreSQL */
    uint64_t rejected;   /* fills refused by the cache (a change or flush voided the lease, ...) */
    uint64_t batches;    /* statements run */
    uint64_t failed;     /* batches whose statement failed */
    uint64_t published;  /* samples written */
    uint64_t peers;      /* samples read at the start */
    int64_t duration_ms; /* from warm_create() until done; -1 not done */
};

/* Returns a new, stopped warm-up; cfg, catalog, cache and db are borrowed and must outlive it. Its
 * ready deadline (warm.ready_deadline_ms) counts from here. Release with warm_destroy(). */
struct warm *warm_create(const struct config *cfg, struct catalog *catalog, struct cache *cache,
                         struct db *db);
/* Starts the fill thread, which waits for warm_collect(). Returns 0 or CDC_EINVAL. */
int warm_start(struct warm *w);
/* Stops and joins the thread (a batch in flight finishes). NULL-safe, like warm_destroy(). */
void warm_stop(struct warm *w);
void warm_destroy(struct warm *w);

/* Consumer thread: writes this replica's sample (group: its consumer group's name). Returns 0 or
 * CDC_EREDIS. */
int warm_publish(struct warm *w, struct redisContext *ctx, const char *group);
/* Consumer thread, right after its groups are positioned (every time; only the first call that
 * reads the samples does anything): reads every registered replica's sample (its own previous one
 * included) and hands the keys to the fill thread. When the connection breaks meanwhile, the next
 * call (after the reconnect) tries again; when Redis refuses, the warm-up ends with nothing to do.
 * Returns 0 or CDC_EREDIS. */
int warm_collect(struct warm *w, struct redisContext *ctx);
/* True when /ready need not wait for the warm-up any longer: done, or its deadline passed. */
bool warm_ready(struct warm *w);
void warm_stats(struct warm *w, struct warm_stats *out);
/* Appends the warm-up's figures (cdcache_warm_*) to a /metrics page. */
void warm_metrics_render(struct warm *w, struct metrics_page *p);

/* --- pure parts, exposed for unit tests --- */

/* One batch's protocol: takes a lease on each of keys[0..n) (canonical keys of resource res) that
 * the cache holds nothing for, then calls fetch once with the keys leased; fetch calls row() for
 * each row it found, which installs it under its lease (before_fill, when not NULL, runs first:
 * a test's hook). Leases of keys fetch did not report are ended. Counts into *st (warmed, skipped,
 * missing, rejected, batches, failed). Returns what fetch returned (0 when nothing was leased). */
typedef void (*warm_row_fn)(void *row_arg, const char *key, const char *body, size_t len,
                            int64_t version);
struct warm_source {
    int (*fetch)(void *arg, unsigned res, const char *const *keys, size_t n, warm_row_fn row,
                 void *row_arg);
    void (*before_fill)(void *arg, unsigned res, const char *key);
    void *arg;
};
int warm_fill_batch(struct cache *c, unsigned res, const char *const *keys, size_t n,
                    const struct warm_source *src, struct warm_stats *st);

/* A sample's payload from decoded key lists: names[i] is resource i's name, keys[i][0..nkeys[i])
 * its keys. Appends JSON to out (util.h buf). Returns 0 or CDC_ETOOBIG. */
struct buf;
int warm_sample_encode(struct buf *out, size_t nres, const char *const *names,
                       const char *const *const *keys, const size_t *nkeys);

/* The plan: the keys to warm, per resource, merged from several samples. */
struct warm_plan {
    size_t nres;
    struct warm_plan_keys {
        char **keys; /* owned, NUL-terminated */
        size_t n;
    } * res; /* [nres], owned */
};
/* Merges the sample payloads json[0..nsamples) (each one replica's; NULL entries skipped) into a
 * new plan over the resources names[0..nres): keys taken in turn from each sample, duplicates
 * dropped, at most max_keys per resource; a resource the replica does not serve, a key longer than
 * CACHE_MAX_KEY, a malformed payload are ignored. Release with warm_plan_free(). */
struct warm_plan *warm_plan_merge(const char *const *json, size_t nsamples, size_t nres,
                                  const char *const *names, size_t max_keys);
void warm_plan_free(struct warm_plan *p);
/* The delay before the next batch so that batches stay at most per_second (a steady pace, no
 * burst): given when the previous batch was allowed (prev_ms, 0 none) and now, returns the time the
 * next one may run. */
int64_t warm_pace_next(int64_t prev_ms, int64_t now_ms, int64_t per_second);

#endif
