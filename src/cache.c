/* The item cache.
 *
 * Layout: N shards (a power of two), picked by a mixed hash of the key. Each shard has one mutex
 * that guards its hash table, its SIEVE queue, its byte count and its counters. A hit holds the
 * lock only to find the node, take a reference on the value and set the visited bit; the body is
 * copied to the socket after the lock is dropped.
 *
 * One allocation per entry (struct cache_value): its links, guarded by the shard lock while it is
 * in the shard, and its response (key, version, body), immutable once created. Entries are
 * refcounted: the shard holds one reference while the entry is linked, each reader one more. A
 * refresh links a new entry in the old one's place and drops the shard's reference to the old one,
 * so a worker still writing an old body keeps it alive until it calls cache_value_release(). A
 * single allocation keeps the overhead per entry at one 48-byte header (version and length share a
 * word; the lease and both flags share another) plus one malloc chunk header, and the hash chains
 * run at load factor 2 (one bucket pointer per two entries).
 *
 * Eviction is SIEVE (Zhang et al., NSDI '24): one FIFO queue per shard and one visited bit per
 * entry. A hit only sets the bit, so hits never reorder a list (unlike LRU) and the lock is held
 * briefly; the hand sweeps from the tail, sparing visited entries once. It matches or beats LRU and
 * ARC on web cache traces and resists scans better than LRU, with less state than W-TinyLFU or
 * S3-FIFO's three queues.
 *
 * Fill leases (after "Scaling Memcache at Facebook"): a miss takes a lease on the key, stored on
 * the node. Any CDC event for the key voids it, so a fill whose query raced a change is rejected
 * instead of installing a row older than the change. Other misses of a leased key wait on the
 * shard's condition variable for the fill (at most one database fill per key per replica). Versions
 * are checked as well: a value never replaces one with a higher or equal version.
 */
#include "cdcache/cache.h"
#include "cdcache/error.h"
#include "cdcache/metrics.h"
#include "cdcache/util.h"
#include <stdio.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void (*cache_test_before_fill)(int64_t key);

#define TOUCH_RING 64

#define VERSION_BITS 40 /* versions up to 2^39 - 1: a row updated every microsecond for 6 days */
#define LEN_BITS     24 /* bodies under 16 MiB */
#define LEASE_BITS   30
#define VERSION_MAX  ((INT64_C(1) << (VERSION_BITS - 1)) - 1)
#define LEN_MAX      ((UINT64_C(1) << LEN_BITS) - 1)
#define LEASE_MASK   ((UINT32_C(1) << LEASE_BITS) - 1)

struct cache_value {
    struct cache_value *hnext;         /* hash chain (shard lock) */
    struct cache_value *newer, *older; /* SIEVE queue, newest at head (shard lock) */
    int64_t key;
    int64_t version : VERSION_BITS; /* immutable; < 0: a negative entry ("not found") */
    uint64_t len : LEN_BITS;        /* immutable; body is not NUL-terminated */
    _Atomic uint32_t refs;
    uint32_t lease : LEASE_BITS; /* fill lease, 0 = none (shard lock, like the two flags) */
    uint32_t visited : 1;
    uint32_t pending : 1; /* a lease only, no response yet */
    char body[];
};
_Static_assert(sizeof(struct cache_value) == 48, "the entry header is part of the memory budget");

struct cache_shard {
    pthread_mutex_t lock;      /* guards every field below */
    pthread_cond_t lease_done; /* broadcast when a lease on any key of the shard ends */
    struct cache_value **buckets;
    size_t nbuckets;
    size_t count;
    struct cache_value *head, *tail, *hand;
    size_t bytes, max_bytes;
    uint32_t next_lease;
    /* The keys most recently touched by invalidations, with the epoch of each, so a write that
     * could not take its lease before the key existed can still ask "did an event touch it since?".
     */
    struct {
        int64_t key;
        uint64_t epoch;
    } touched[TOUCH_RING];
    unsigned touched_next;
    uint64_t touched_floor; /* epoch of the newest record pushed out of the ring */
    struct cache_stats st;  /* per-shard counters, summed on read */
} __attribute__((aligned(64)));

struct cache {
    _Atomic uint64_t epoch;       /* counts invalidations (events, evictions by writes, flushes) */
    _Atomic uint64_t flush_epoch; /* epoch of the last flush */
    struct cache_shard *shards;
    unsigned nshards;
    bool negative_entries;
    int fill_wait_ms;
    size_t max_bytes;
};

static const char *const reject_names[] = {
#define CACHE_REJECT_NAME(name, text) text,
    CACHE_REJECT_REASONS(CACHE_REJECT_NAME)
#undef CACHE_REJECT_NAME
};

const char *cache_reject_name(enum cache_reject r)
{
    return (unsigned)r < CACHE_REJECT_COUNT ? reject_names[r] : "unknown";
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

size_t cache_entry_cost(size_t len)
{
    /* What the entry really takes: its malloc chunk (glibc: the request plus an 8-byte header,
     * rounded up to 16, at least 32) and its share of the hash buckets (between a half and one
     * pointer per entry at load factor 2; the upper end is charged). Charging this rather than the
     * struct size keeps RSS within the configured bound. */
    size_t chunk = (sizeof(struct cache_value) + len + 8 + 15) & ~(size_t)15;
    return (chunk < 32 ? 32 : chunk) + sizeof(struct cache_value *);
}

/* True when the header's packed fields can hold version and len (see fits()). */
static bool fits(int64_t version, size_t len)
{
    return version <= VERSION_MAX && len <= LEN_MAX;
}

/* A new entry holding one reference (the shard's, once linked). A pending entry has no body.
 * Callers check fits() first. */
static struct cache_value *entry_new(int64_t key, int64_t version, bool pending, const char *body,
                                     size_t len)
{
    struct cache_value *v = xmalloc(sizeof(*v) + len);
    memset(v, 0, sizeof(*v));
    atomic_init(&v->refs, 1);
    v->key = key;
    v->version = version;
    v->pending = pending;
    v->len = len;
    if (len)
        memcpy(v->body, body, len);
    return v;
}

void cache_value_release(struct cache_value *v)
{
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
        free(v);
}

const char *cache_value_body(const struct cache_value *v, size_t *len)
{
    *len = v->len;
    return v->body;
}

int64_t cache_value_version(const struct cache_value *v)
{
    return v->version;
}

bool cache_value_negative(const struct cache_value *v)
{
    return v->version < 0;
}

struct cache *cache_create(const struct cache_options *opt)
{
    struct cache *c = xcalloc(1, sizeof(*c));
    unsigned n = 1;

    while (n < opt->shards && n < 4096)
        n <<= 1;
    c->nshards = n;
    c->negative_entries = opt->negative_entries;
    c->fill_wait_ms = opt->fill_wait_ms;
    c->max_bytes = opt->max_bytes;
    c->shards = xcalloc(n, sizeof(*c->shards));
    for (unsigned i = 0; i < n; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_condattr_t ca;
        pthread_mutexattr_t ma;
        pthread_mutexattr_init(&ma);
        /* adaptive: spin briefly before sleeping; shard critical sections are a few dozen ns, and
         * with hundreds of worker threads a sleeping waiter costs a scheduler round trip */
        pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
        pthread_mutex_init(&s->lock, &ma);
        pthread_mutexattr_destroy(&ma);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->lease_done, &ca);
        pthread_condattr_destroy(&ca);
        s->nbuckets = 64;
        s->buckets = xcalloc(s->nbuckets, sizeof(*s->buckets));
        s->max_bytes = opt->max_bytes / n;
        s->next_lease = 1;
    }
    return c;
}

void cache_destroy(struct cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *s = &c->shards[i];
        struct cache_value *nd = s->head;
        while (nd) {
            struct cache_value *next = nd->older;
            cache_value_release(nd);
            nd = next;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->lease_done);
    }
    free(c->shards);
    free(c);
}

static struct cache_shard *shard_of(struct cache *c, int64_t key, uint64_t *h)
{
    *h = mix64((uint64_t)key);
    return &c->shards[(*h >> 40) & (c->nshards - 1)];
}

/* --- the functions below require the shard lock (suffix _locked) --- */

/* Finds key's node and moves it to the front of its chain, so that at load factor 2 the keys
 * being read sit first and a hit on a hot key does not walk through cold nodes (each a cache
 * miss). */
static struct cache_value *find_locked(struct cache_shard *s, uint64_t h, int64_t key)
{
    struct cache_value **head = &s->buckets[h & (s->nbuckets - 1)];
    struct cache_value **pp = head;
    struct cache_value *nd;

    while ((nd = *pp) && nd->key != key)
        pp = &nd->hnext;
    if (nd && pp != head) {
        *pp = nd->hnext;
        nd->hnext = *head;
        *head = nd;
    }
    return nd;
}

static void grow_locked(struct cache_shard *s)
{
    size_t n = s->nbuckets * 2;
    struct cache_value **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct cache_value *nd = s->buckets[i];
        while (nd) {
            struct cache_value *next = nd->hnext;
            size_t j = mix64((uint64_t)nd->key) & (n - 1);
            nd->hnext = b[j];
            b[j] = nd;
            nd = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static struct cache_value *insert_locked(struct cache_shard *s, uint64_t h, int64_t key)
{
    struct cache_value *nd = entry_new(key, 0, true, NULL, 0);
    size_t j;

    if (s->count >= 2 * s->nbuckets)
        grow_locked(s);
    j = h & (s->nbuckets - 1);
    nd->hnext = s->buckets[j];
    s->buckets[j] = nd;
    nd->older = s->head;
    if (s->head)
        s->head->newer = nd;
    s->head = nd;
    if (!s->tail)
        s->tail = nd;
    s->count++;
    s->bytes += cache_entry_cost(0);
    return nd;
}

static void remove_locked(struct cache_shard *s, struct cache_value *nd)
{
    struct cache_value **pp = &s->buckets[mix64((uint64_t)nd->key) & (s->nbuckets - 1)];
    while (*pp != nd)
        pp = &(*pp)->hnext;
    *pp = nd->hnext;
    if (s->hand == nd)
        s->hand = nd->newer;
    if (nd->newer)
        nd->newer->older = nd->older;
    else
        s->head = nd->older;
    if (nd->older)
        nd->older->newer = nd->newer;
    else
        s->tail = nd->newer;
    s->count--;
    s->bytes -= cache_entry_cost(nd->len);
    if (nd->lease)
        pthread_cond_broadcast(&s->lease_done);
    cache_value_release(nd);
}

/* SIEVE: evicts unvisited entries from the hand towards the head until need more bytes fit. Nodes
 * with a fill in flight are skipped. Returns false when nothing more can be evicted. */
static bool make_room_locked(struct cache_shard *s, size_t need, const struct cache_value *keep)
{
    size_t budget = 2 * s->count + 2;

    while (s->bytes + need > s->max_bytes) {
        struct cache_value *nd = s->hand ? s->hand : s->tail;
        if (!nd || budget-- == 0)
            return false;
        if (nd->visited || nd->lease || nd == keep) {
            nd->visited = false;
            s->hand = nd->newer;
            continue;
        }
        s->hand = nd->newer;
        remove_locked(s, nd);
        s->st.evictions++;
    }
    return true;
}

/* Links v in nd's place (same hash chain slot, same queue position, same visited bit and lease) and
 * drops the shard's reference to nd, after evicting others to make room. Takes ownership of v; on
 * failure frees it and returns the reason, leaving nd in place. On success *out is v. */
static int replace_locked(struct cache_shard *s, struct cache_value *nd, struct cache_value *v,
                          struct cache_value **out, enum cache_reject *why)
{
    struct cache_value **pp;

    if (cache_entry_cost(v->len) > s->max_bytes) {
        *why = CACHE_REJECT_TOO_LARGE;
        goto fail;
    }
    if (cache_entry_cost(v->len) > cache_entry_cost(nd->len) &&
        !make_room_locked(s, cache_entry_cost(v->len) - cache_entry_cost(nd->len), nd)) {
        *why = CACHE_REJECT_NO_ROOM;
        goto fail;
    }
    pp = &s->buckets[mix64((uint64_t)nd->key) & (s->nbuckets - 1)];
    while (*pp != nd)
        pp = &(*pp)->hnext;
    *pp = v;
    v->hnext = nd->hnext;
    v->newer = nd->newer;
    v->older = nd->older;
    v->visited = nd->visited;
    v->lease = nd->lease;
    if (v->newer)
        v->newer->older = v;
    else
        s->head = v;
    if (v->older)
        v->older->newer = v;
    else
        s->tail = v;
    if (s->hand == nd)
        s->hand = v;
    s->bytes = s->bytes - cache_entry_cost(nd->len) + cache_entry_cost(v->len);
    cache_value_release(nd);
    *out = v;
    return 0;
fail:
    cache_value_release(v);
    return CDC_EREJECTED;
}

/* Ends nd's fill lease, waking its waiters; a lease-only entry goes with it. */
static void end_lease_locked(struct cache_shard *s, struct cache_value *nd)
{
    if (nd->lease) {
        nd->lease = 0;
        pthread_cond_broadcast(&s->lease_done);
    }
    if (nd->pending)
        remove_locked(s, nd);
}

/* Removes an entry because its row changed (counted apart from capacity evictions). */
static void invalidate_locked(struct cache_shard *s, struct cache_value *nd)
{
    remove_locked(s, nd);
    s->st.invalidations++;
}

/* Gives key a new fill lease (creating its node), replacing any other; returns it. */
static uint64_t lease_locked(struct cache_shard *s, uint64_t h, int64_t key)
{
    struct cache_value *nd = find_locked(s, h, key);
    if (!nd)
        nd = insert_locked(s, h, key);
    s->next_lease = (s->next_lease + 1) & LEASE_MASK;
    if (s->next_lease == 0) /* 0 means "no lease": skip it when the counter wraps */
        s->next_lease = 1;
    nd->lease = s->next_lease;
    return nd->lease;
}

static void touch_locked(struct cache *c, struct cache_shard *s, int64_t key)
{
    unsigned i = s->touched_next++ % TOUCH_RING;
    uint64_t e = atomic_fetch_add(&c->epoch, 1) + 1;
    if (s->touched[i].epoch > s->touched_floor)
        s->touched_floor = s->touched[i].epoch;
    s->touched[i].key = key;
    s->touched[i].epoch = e;
}

static bool touched_since_locked(struct cache *c, struct cache_shard *s, int64_t key,
                                 uint64_t since)
{
    if (s->touched_floor > since || atomic_load(&c->flush_epoch) > since)
        return true; /* the ring no longer reaches back that far: assume the worst */
    for (unsigned i = 0; i < TOUCH_RING; i++)
        if (s->touched[i].key == key && s->touched[i].epoch > since)
            return true;
    return false;
}

/* --- public functions: each takes the shard lock --- */

enum cache_lookup_result cache_lookup(struct cache *c, int64_t key, int64_t min_version,
                                      struct cache_value **out, uint64_t *lease)
{
    uint64_t h;
    struct cache_shard *s = shard_of(c, key, &h);
    struct timespec deadline;
    bool waited = false;
    enum cache_lookup_result res;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct cache_value *nd = find_locked(s, h, key);
        if (nd && !nd->pending &&
            (nd->version < 0 ? min_version <= 0 : nd->version >= min_version)) {
            /* A negative entry says "no row". A minimum version of 1 or more proves the row exists
             * (the client saw a write's ETag), so it is a miss like an older version. */
            nd->visited = true;
            atomic_fetch_add_explicit(&nd->refs, 1, memory_order_relaxed);
            *out = nd;
            if (nd->version < 0)
                s->st.negative_hits++;
            else
                s->st.hits++;
            res = CACHE_HIT;
            break;
        }
        if (nd && nd->lease) {
            /* Someone is filling this key: wait for that fill instead of querying again. */
            int rc;
            if (!waited) {
                int64_t ns = now_mono_ns() + (int64_t)c->fill_wait_ms * 1000000;
                deadline.tv_sec = ns / 1000000000;
                deadline.tv_nsec = ns % 1000000000;
                waited = true;
                s->st.fill_waits++;
            }
            rc = pthread_cond_timedwait(&s->lease_done, &s->lock, &deadline);
            if (rc == ETIMEDOUT) {
                s->st.fill_wait_timeouts++;
                s->st.misses++;
                *lease = 0;
                res = CACHE_MISS;
                break;
            }
            continue;
        }
        *lease = lease_locked(s, h, key);
        s->st.misses++;
        res = CACHE_MISS;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    return res;
}

uint64_t cache_lease(struct cache *c, int64_t key)
{
    uint64_t h, lease;
    struct cache_shard *s = shard_of(c, key, &h);

    pthread_mutex_lock(&s->lock);
    lease = lease_locked(s, h, key);
    pthread_mutex_unlock(&s->lock);
    return lease;
}

int cache_fill(struct cache *c, int64_t key, uint64_t lease, int64_t version, const char *body,
               size_t len, enum cache_reject *why)
{
    uint64_t h;
    struct cache_shard *s = shard_of(c, key, &h);
    struct cache_value *nd;
    enum cache_reject reason = CACHE_REJECT_LEASE_VOID;
    bool negative = version < 0;
    int rc = CDC_EREJECTED;

    if (cache_test_before_fill)
        cache_test_before_fill(key);
    pthread_mutex_lock(&s->lock);
    nd = find_locked(s, h, key);
    if (!nd || lease == 0 || nd->lease != (uint32_t)lease)
        goto out_unlock; /* voided: an invalidation or a newer lease came in between */
    if (negative && !c->negative_entries) {
        reason = CACHE_REJECT_NEGATIVE_OFF;
    } else if (!fits(version, len)) {
        reason = CACHE_REJECT_TOO_LARGE;
    } else if (!nd->pending && (negative || (nd->version >= 0 && nd->version >= version))) {
        reason = CACHE_REJECT_NOT_NEWER;
    } else {
        rc = replace_locked(s, nd, entry_new(key, negative ? -1 : version, false, body, len), &nd,
                            &reason);
        if (rc == 0)
            s->st.fills++;
    }
    end_lease_locked(s, nd);
out_unlock:
    if (rc)
        s->st.rejected[reason]++;
    pthread_mutex_unlock(&s->lock);
    if (rc && why)
        *why = reason;
    return rc;
}

void cache_fill_abort(struct cache *c, int64_t key, uint64_t lease)
{
    uint64_t h;
    struct cache_shard *s = shard_of(c, key, &h);
    struct cache_value *nd;

    if (lease == 0)
        return;
    pthread_mutex_lock(&s->lock);
    nd = find_locked(s, h, key);
    if (nd && nd->lease == (uint32_t)lease)
        end_lease_locked(s, nd);
    pthread_mutex_unlock(&s->lock);
}

uint64_t cache_epoch(struct cache *c)
{
    return atomic_load(&c->epoch);
}

uint64_t cache_lease_since(struct cache *c, int64_t key, uint64_t since)
{
    uint64_t h, lease = 0;
    struct cache_shard *s = shard_of(c, key, &h);

    pthread_mutex_lock(&s->lock);
    if (!touched_since_locked(c, s, key, since))
        lease = lease_locked(s, h, key);
    pthread_mutex_unlock(&s->lock);
    return lease;
}

enum cache_apply_result cache_apply(struct cache *c, int64_t key, int64_t version, const char *body,
                                    size_t len)
{
    uint64_t h;
    struct cache_shard *s = shard_of(c, key, &h);
    struct cache_value *nd;
    enum cache_apply_result res;
    enum cache_reject why;

    pthread_mutex_lock(&s->lock);
    touch_locked(c, s, key);
    nd = find_locked(s, h, key);
    if (!nd) {
        res = CACHE_ABSENT;
    } else if (nd->pending || nd->version < 0) {
        /* Only a lease, or "not found": drop it; the next read fills the committed row. */
        invalidate_locked(s, nd);
        res = CACHE_EVICTED;
    } else if (nd->version >= version) {
        end_lease_locked(s, nd); /* any fill in flight raced this event: void it */
        s->st.stale_ignored++;
        res = CACHE_OLD;
    } else if (!fits(version, len)) {
        invalidate_locked(s, nd); /* cannot hold it: the next read goes to the database */
        res = CACHE_EVICTED;
    } else if (replace_locked(s, nd, entry_new(key, version, false, body, len), &nd, &why) == 0) {
        end_lease_locked(s, nd);
        s->st.refreshes++;
        res = CACHE_APPLIED;
    } else {
        invalidate_locked(s, nd);
        res = CACHE_EVICTED;
    }
    pthread_mutex_unlock(&s->lock);
    return res;
}

bool cache_evict(struct cache *c, int64_t key)
{
    uint64_t h;
    struct cache_shard *s = shard_of(c, key, &h);
    struct cache_value *nd;

    pthread_mutex_lock(&s->lock);
    touch_locked(c, s, key);
    nd = find_locked(s, h, key);
    if (nd)
        invalidate_locked(s, nd);
    pthread_mutex_unlock(&s->lock);
    return nd != NULL;
}

void cache_flush(struct cache *c)
{
    atomic_store(&c->flush_epoch, atomic_fetch_add(&c->epoch, 1) + 1);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        while (s->head)
            remove_locked(s, s->head);
        s->st.flushes++;
        pthread_mutex_unlock(&s->lock);
    }
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        out->hits += s->st.hits;
        out->misses += s->st.misses;
        out->negative_hits += s->st.negative_hits;
        out->evictions += s->st.evictions;
        out->invalidations += s->st.invalidations;
        out->fills += s->st.fills;
        out->refreshes += s->st.refreshes;
        out->stale_ignored += s->st.stale_ignored;
        out->fill_waits += s->st.fill_waits;
        out->fill_wait_timeouts += s->st.fill_wait_timeouts;
        for (int r = 0; r < CACHE_REJECT_COUNT; r++)
            out->rejected[r] += s->st.rejected[r];
        out->entries += s->count;
        out->bytes += s->bytes;
        if (i == 0)
            out->flushes = s->st.flushes;
        pthread_mutex_unlock(&s->lock);
    }
    out->max_bytes = c->max_bytes;
}

void cache_metrics_render(struct cache *c, struct metrics_page *p)
{
    struct cache_stats cs;
    char lab[64];

    cache_stats(c, &cs);
    metrics_scalar(p, "cdcache_cache_hits_total", "counter", "Reads answered from a cached item.",
                   (double)cs.hits);
    metrics_scalar(p, "cdcache_cache_negative_hits_total", "counter",
                   "Reads answered 404 from a cached absence (negative entry).",
                   (double)cs.negative_hits);
    metrics_scalar(p, "cdcache_cache_misses_total", "counter",
                   "Reads the cache could not answer (filled from PostgreSQL).", (double)cs.misses);
    metrics_scalar(p, "cdcache_cache_evictions_total", "counter",
                   "Entries evicted to stay within the byte bound.", (double)cs.evictions);
    metrics_scalar(p, "cdcache_cache_invalidations_total", "counter",
                   "Entries removed by change events, deletes and writes.",
                   (double)cs.invalidations);
    metrics_scalar(p, "cdcache_cache_flushes_total", "counter",
                   "Whole-cache flushes (truncates and continuity breaks).", (double)cs.flushes);
    metrics_scalar(p, "cdcache_cache_fills_total", "counter",
                   "Entries installed from PostgreSQL after a miss.", (double)cs.fills);
    metrics_scalar(p, "cdcache_cache_refreshes_total", "counter",
                   "Entries replaced by a newer after-image from the change stream.",
                   (double)cs.refreshes);
    metrics_scalar(p, "cdcache_cache_fill_waits_total", "counter",
                   "Misses that waited for another fill of the same key.", (double)cs.fill_waits);
    metrics_scalar(p, "cdcache_cache_fill_wait_timeouts_total", "counter",
                   "Misses that gave up waiting for another fill and read PostgreSQL.",
                   (double)cs.fill_wait_timeouts);
    metrics_scalar(p, "cdcache_cache_entries", "gauge",
                   "Entries in the cache, negative ones included.", (double)cs.entries);
    metrics_scalar(p, "cdcache_cache_bytes", "gauge",
                   "Bytes the cache's entries take (counted against cache.max_bytes).",
                   (double)cs.bytes);
    metrics_scalar(p, "cdcache_cache_max_bytes", "gauge",
                   "The cache's byte bound (cache.max_bytes).", (double)cs.max_bytes);
    metrics_family(p, "cdcache_cache_fill_rejections_total", "counter",
                   "Fills not installed, by reason.");
    for (int k = 0; k < CACHE_REJECT_COUNT; k++) {
        snprintf(lab, sizeof(lab), "reason=\"%s\"", cache_reject_name((enum cache_reject)k));
        metrics_sample(p, "cdcache_cache_fill_rejections_total", lab, (double)cs.rejected[k]);
    }
}
