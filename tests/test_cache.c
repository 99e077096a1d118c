/* The cache through its public header: hits, leases (no stale fill), versions, negative entries,
 * the byte bound, refcounting across eviction, SIEVE, and stampede protection. */
#include "cdcache/cache.h"
#include "cdcache/error.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct cache *mk(size_t bytes, unsigned shards)
{
    struct cache_options o = {bytes, shards, true, 2000};
    return cache_create(&o);
}

static void fill_ok(struct cache *c, int64_t key, int64_t version, const char *body)
{
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, key, 0, &v, &lease), CACHE_MISS);
    cr_assert_neq(lease, 0);
    cr_assert_eq(cache_fill(c, key, lease, version, body, strlen(body), NULL), 0);
}

static void expect_body(struct cache *c, int64_t key, int64_t version, const char *body)
{
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    size_t len;
    const char *b;
    cr_assert_eq(cache_lookup(c, key, 0, &v, &lease), CACHE_HIT, "key %lld should hit",
                 (long long)key);
    cr_assert_eq(cache_value_version(v), version);
    b = cache_value_body(v, &len);
    cr_assert_eq(len, strlen(body));
    cr_assert_eq(memcmp(b, body, len), 0);
    cache_value_release(v);
}

static bool is_miss(struct cache *c, int64_t key)
{
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    if (cache_lookup(c, key, 0, &v, &lease) == CACHE_HIT) {
        cache_value_release(v);
        return false;
    }
    cache_fill_abort(c, key, lease);
    return true;
}

Test(cache, miss_fill_then_hit)
{
    struct cache *c = mk(1 << 20, 4);
    fill_ok(c, 7, 3, "{\"id\":7}");
    expect_body(c, 7, 3, "{\"id\":7}");
    cache_destroy(c);
}

/* Guarantee 1: the race is forced deterministically. The read took its lease and queried the
 * database (version 1); before it installs, the change event for version 2 is applied. The fill
 * must be refused. */
static struct cache *race_cache;
static uint64_t second_lease;
static void apply_update_before_fill(int64_t key)
{
    struct cache_value *v = NULL;
    cache_apply(race_cache, key, 2, "v2", 2);
    /* and a second reader misses and starts its own fill, so the key is leased again */
    cr_assert_eq(cache_lookup(race_cache, key, 0, &v, &second_lease), CACHE_MISS);
}

Test(cache, no_stale_fill_when_event_races_the_fill)
{
    struct cache_stats st;
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    enum cache_reject why;

    race_cache = mk(1 << 20, 4);
    cr_assert_eq(cache_lookup(race_cache, 1, 0, &v, &lease), CACHE_MISS);
    cache_test_before_fill = apply_update_before_fill;
    cr_assert_eq(cache_fill(race_cache, 1, lease, 1, "v1", 2, &why), CDC_EREJECTED);
    cache_test_before_fill = NULL;
    cr_assert_eq(why, CACHE_REJECT_LEASE_VOID);
    cache_stats(race_cache, &st);
    cr_assert_eq(st.rejected[CACHE_REJECT_LEASE_VOID], 1);
    /* the second reader queried after the change: its fill is the one that lands */
    cr_assert_eq(cache_fill(race_cache, 1, second_lease, 2, "v2", 2, NULL), 0);
    expect_body(race_cache, 1, 2, "v2");
    cache_destroy(race_cache);
}

Test(cache, event_for_leased_key_voids_lease)
{
    struct cache *c = mk(1 << 20, 1);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, 5, 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_apply(c, 5, 9, "x", 1), CACHE_EVICTED);
    cr_assert_eq(cache_fill(c, 5, lease, 8, "old", 3, NULL), CDC_EREJECTED);
    cr_assert(is_miss(c, 5));
    cache_destroy(c);
}

Test(cache, delete_in_the_window_voids_the_fill)
{
    struct cache *c = mk(1 << 20, 2);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    fill_ok(c, 6, 1, "v1");
    cr_assert_eq(cache_lookup(c, 6, 2, &v, &lease), CACHE_MISS); /* read-your-writes miss */
    cr_assert(cache_evict(c, 6));                                /* the row is deleted */
    cr_assert_eq(cache_fill(c, 6, lease, 2, "v2", 2, NULL), CDC_EREJECTED);
    cr_assert(is_miss(c, 6), "a deleted row must not come back");
    cache_destroy(c);
}

Test(cache, flush_voids_every_lease)
{
    struct cache *c = mk(1 << 20, 8);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, 11, 0, &v, &lease), CACHE_MISS);
    cache_flush(c);
    cr_assert_eq(cache_fill(c, 11, lease, 1, "old", 3, NULL), CDC_EREJECTED);
    cache_destroy(c);
}

/* Guarantee 2 at the cache level: equal and older versions never replace. */
Test(cache, versions_only_go_forward)
{
    struct cache *c = mk(1 << 20, 4);
    fill_ok(c, 3, 5, "v5");
    cr_assert_eq(cache_apply(c, 3, 5, "dup", 3), CACHE_OLD);
    cr_assert_eq(cache_apply(c, 3, 4, "old", 3), CACHE_OLD);
    expect_body(c, 3, 5, "v5");
    cr_assert_eq(cache_apply(c, 3, 6, "v6", 2), CACHE_APPLIED);
    expect_body(c, 3, 6, "v6");
    cr_assert_eq(cache_apply(c, 3, 5, "v5", 2), CACHE_OLD);
    expect_body(c, 3, 6, "v6");
    cr_assert_eq(cache_apply(c, 99, 1, "absent", 6), CACHE_ABSENT);
    cr_assert(is_miss(c, 99), "events never insert keys nobody read");
    cache_destroy(c);
}

Test(cache, fill_older_than_cached_is_rejected)
{
    struct cache *c = mk(1 << 20, 4);
    enum cache_reject why;
    uint64_t lease;
    fill_ok(c, 3, 5, "v5");
    lease = cache_lease(c, 3);
    cr_assert_eq(cache_fill(c, 3, lease, 4, "v4", 2, &why), CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_NOT_NEWER);
    expect_body(c, 3, 5, "v5");
    cache_destroy(c);
}

Test(cache, min_version_turns_older_entry_into_a_miss)
{
    struct cache *c = mk(1 << 20, 4);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    fill_ok(c, 4, 2, "v2");
    cr_assert_eq(cache_lookup(c, 4, 3, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, 4, lease, 3, "v3", 2, NULL), 0);
    expect_body(c, 4, 3, "v3");
    cr_assert_eq(cache_lookup(c, 4, 3, &v, &lease), CACHE_HIT);
    cache_value_release(v);
    cache_destroy(c);
}

Test(cache, negative_entry_then_insert_replaces_it)
{
    struct cache *c = mk(1 << 20, 4);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, 8, 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, 8, lease, -1, NULL, 0, NULL), 0);
    cr_assert_eq(cache_lookup(c, 8, 0, &v, &lease), CACHE_HIT);
    cr_assert(cache_value_negative(v));
    cache_value_release(v);
    /* the insert's event drops the negative entry; the next read fills the row */
    cr_assert_eq(cache_apply(c, 8, 1, "row", 3), CACHE_EVICTED);
    fill_ok(c, 8, 1, "row");
    expect_body(c, 8, 1, "row");
    cache_destroy(c);
}

Test(cache, negative_fill_never_hides_a_row)
{
    struct cache *c = mk(1 << 20, 4);
    uint64_t lease;
    enum cache_reject why;
    fill_ok(c, 9, 1, "row");
    lease = cache_lease(c, 9);
    cr_assert_eq(cache_fill(c, 9, lease, -1, NULL, 0, &why), CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_NOT_NEWER);
    cache_destroy(c);
}

Test(cache, byte_bound_is_enforced_and_counts_overhead)
{
    size_t max = 256 * 1024;
    struct cache *c = mk(max, 4);
    struct cache_stats st;
    char body[1000];
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    for (int64_t k = 1; k <= 5000; k++) {
        struct cache_value *v = NULL;
        uint64_t lease = 0;
        if (cache_lookup(c, k, 0, &v, &lease) == CACHE_MISS)
            cache_fill(c, k, lease, 1, body, strlen(body), NULL);
        else
            cache_value_release(v);
        cache_stats(c, &st);
        cr_assert_leq(st.bytes, max, "bytes %llu over the bound", (unsigned long long)st.bytes);
    }
    cr_assert_gt(st.evictions, 4000);
    cr_assert_eq(st.bytes, st.entries * cache_entry_cost(strlen(body)));
    cache_destroy(c);
}

Test(cache, entry_larger_than_a_shard_is_rejected_and_counted)
{
    struct cache *c = mk(64 * 1024, 4); /* 16 KiB per shard */
    static char big[32 * 1024];
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    enum cache_reject why;
    struct cache_stats st;
    memset(big, 'y', sizeof(big));
    cr_assert_eq(cache_lookup(c, 1, 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, 1, lease, 1, big, sizeof(big), &why), CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_TOO_LARGE);
    cache_stats(c, &st);
    cr_assert_eq(st.rejected[CACHE_REJECT_TOO_LARGE], 1);
    cr_assert_eq(st.entries, 0, "a rejected fill leaves nothing behind");
    cache_destroy(c);
}

Test(cache, value_outlives_eviction_while_referenced)
{
    struct cache *c = mk(1 << 20, 1);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    size_t len;
    fill_ok(c, 1, 1, "still readable");
    cr_assert_eq(cache_lookup(c, 1, 0, &v, &lease), CACHE_HIT);
    cr_assert(cache_evict(c, 1));
    cr_assert_eq(cache_apply(c, 1, 2, "x", 1), CACHE_ABSENT);
    /* ASan would flag this read if eviction had freed the value under the reader */
    cr_assert_eq(memcmp(cache_value_body(v, &len), "still readable", 14), 0);
    cr_assert_eq(len, 14);
    cache_value_release(v);
    cache_destroy(c);
}

Test(cache, sieve_spares_visited_entries)
{
    size_t per = cache_entry_cost(100);
    struct cache *c = mk(per * 10, 1); /* room for 10 */
    char body[101];
    memset(body, 'z', 100);
    body[100] = '\0';
    for (int64_t k = 1; k <= 10; k++)
        fill_ok(c, k, 1, body);
    /* visit the oldest five; inserting five more must evict the five unvisited */
    for (int64_t k = 1; k <= 5; k++)
        expect_body(c, k, 1, body);
    for (int64_t k = 11; k <= 15; k++)
        fill_ok(c, k, 1, body);
    for (int64_t k = 1; k <= 5; k++)
        expect_body(c, k, 1, body);
    for (int64_t k = 6; k <= 10; k++)
        cr_assert(is_miss(c, k), "key %lld should have been evicted", (long long)k);
    cache_destroy(c);
}

/* Stampede: while one thread holds the lease, other misses wait and are served by its fill. */
struct waiter {
    struct cache *c;
    atomic_int *hits;
};

static void *wait_lookup(void *arg)
{
    struct waiter *w = arg;
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    if (cache_lookup(w->c, 42, 0, &v, &lease) == CACHE_HIT) {
        atomic_fetch_add(w->hits, 1);
        cache_value_release(v);
    } else {
        cache_fill_abort(w->c, 42, lease);
    }
    return NULL;
}

Test(cache, concurrent_misses_wait_for_one_fill)
{
    struct cache *c = mk(1 << 20, 4);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    atomic_int hits = 0;
    struct waiter w = {c, &hits};
    pthread_t t[8];
    struct cache_stats st;

    cr_assert_eq(cache_lookup(c, 42, 0, &v, &lease), CACHE_MISS);
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, wait_lookup, &w);
    /* the waiters block on the lease until the fill lands, however long that takes */
    for (;;) {
        cache_stats(c, &st);
        if (st.fill_waits == 8)
            break;
        usleep(1000);
    }
    cr_assert_eq(cache_fill(c, 42, lease, 1, "one", 3, NULL), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&hits), 8);
    cache_stats(c, &st);
    cr_assert_eq(st.misses, 1, "one miss, one database query");
    cache_destroy(c);
}

/* A create cannot take its lease before the id exists: the epoch read before the insert stands in.
 */
Test(cache, lease_since_refuses_keys_touched_after_the_epoch)
{
    struct cache *c = mk(1 << 20, 4);
    uint64_t before = cache_epoch(c), lease;

    cache_evict(c, 30); /* the new row's delete event was applied before the writer could install */
    cr_assert_eq(cache_lease_since(c, 30, before), 0);
    cr_assert_eq(cache_fill(c, 30, 0, 1, "v1", 2, NULL), CDC_EREJECTED);
    lease = cache_lease_since(c, 31, before);
    cr_assert_neq(lease, 0, "an untouched key may be filled");
    cr_assert_eq(cache_fill(c, 31, lease, 1, "v1", 2, NULL), 0);
    cache_flush(c);
    cr_assert_eq(cache_lease_since(c, 32, before), 0, "a flush touches every key");
    /* when the ring has forgotten that far back, the answer is no */
    before = cache_epoch(c);
    for (int64_t k = 1000; k < 1000 + 64 * 4 * 2; k++)
        cache_evict(c, k);
    cr_assert_eq(cache_lease_since(c, 33, before), 0);
    cache_destroy(c);
}

Test(cache, versions_the_header_cannot_hold_are_not_cached)
{
    /* Versions share a word with the body length (40 bits, so up to 2^39 - 1). A version past that
     * must never be stored truncated, where it would compare as older than the row it is. */
    struct cache *c = mk(1u << 20, 1);
    const int64_t max = (INT64_C(1) << 39) - 1;
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    enum cache_reject why = CACHE_REJECT_COUNT;

    fill_ok(c, 1, max, "at the limit");
    expect_body(c, 1, max, "at the limit");
    cr_assert_eq(cache_lookup(c, 2, 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, 2, lease, max + 1, "past it", 7, &why), CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_TOO_LARGE);
    cr_assert(is_miss(c, 2));
    fill_ok(c, 3, 5, "cached");
    cr_assert_eq(cache_apply(c, 3, max + 1, "newer", 5), CACHE_EVICTED,
                 "an event the header cannot hold evicts the old entry");
    cr_assert(is_miss(c, 3));
    cache_destroy(c);
}
