/* The cache through its public header: hits, leases (no stale fill), versions, negative entries,
 * the byte bound, refcounting across eviction, the S3-FIFO policy (and its hit ratio against one
 * shard), and stampede protection. */
#include "cdcache/cache.h"
#include "cdcache/error.h"
#include "cdcache/metrics.h"
#include "cdcache/util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct cache *mk_res(size_t bytes, unsigned shards, unsigned resources)
{
    struct cache_options o = {.max_bytes = bytes,
                              .shards = shards,
                              .resources = resources,
                              .negative_entries = true,
                              .fill_wait_ms = 2000};
    return cache_create(&o);
}

static struct cache *mk(size_t bytes, unsigned shards)
{
    return mk_res(bytes, shards, 4);
}

/* Key n of resource 0 as its canonical text ("42"), in a ring of buffers so that a test may hold
 * a few at once. */
static struct cache_key ikr(unsigned res, int64_t n)
{
    static _Thread_local char ring[16][24];
    static _Thread_local unsigned next;
    char *b = ring[next++ % 16];
    int len = snprintf(b, 24, "%lld", (long long)n);
    return (struct cache_key){res, (uint32_t)len, b};
}

static struct cache_key ik(int64_t n)
{
    return ikr(0, n);
}

/* A key over bytes p[0..len) of resource res. */
static struct cache_key kb(unsigned res, const char *p, size_t len)
{
    return (struct cache_key){res, (uint32_t)len, p};
}

static void fill_ok(struct cache *c, struct cache_key key, int64_t version, const char *body)
{
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, key, 0, &v, &lease), CACHE_MISS);
    cr_assert_neq(lease, 0);
    cr_assert_eq(cache_fill(c, key, lease, version, body, strlen(body), NULL), 0);
}

static void expect_body(struct cache *c, struct cache_key key, int64_t version, const char *body)
{
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    size_t len;
    const char *b;
    cr_assert_eq(cache_lookup(c, key, 0, &v, &lease), CACHE_HIT, "key %u/%.*s should hit", key.res,
                 (int)key.len, key.p);
    cr_assert_eq(cache_value_version(v), version);
    b = cache_value_body(v, &len);
    cr_assert_eq(len, strlen(body));
    cr_assert_eq(memcmp(b, body, len), 0);
    cache_value_release(v);
}

static bool is_miss(struct cache *c, struct cache_key key)
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
    fill_ok(c, ik(7), 3, "{\"id\":7}");
    expect_body(c, ik(7), 3, "{\"id\":7}");
    cache_destroy(c);
}

/* Guarantee 1: the race is forced deterministically. The read took its lease and queried the
 * database (version 1); before it installs, the change event for version 2 is applied. The fill
 * must be refused. */
static struct cache *race_cache;
static uint64_t second_lease;
static void apply_update_before_fill(struct cache_key key)
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
    cr_assert_eq(cache_lookup(race_cache, ik(1), 0, &v, &lease), CACHE_MISS);
    cache_test_before_fill = apply_update_before_fill;
    cr_assert_eq(cache_fill(race_cache, ik(1), lease, 1, "v1", 2, &why), CDC_EREJECTED);
    cache_test_before_fill = NULL;
    cr_assert_eq(why, CACHE_REJECT_LEASE_VOID);
    cache_stats(race_cache, &st);
    cr_assert_eq(st.rejected[CACHE_REJECT_LEASE_VOID], 1);
    /* the second reader queried after the change: its fill is the one that lands */
    cr_assert_eq(cache_fill(race_cache, ik(1), second_lease, 2, "v2", 2, NULL), 0);
    expect_body(race_cache, ik(1), 2, "v2");
    cache_destroy(race_cache);
}

Test(cache, event_for_leased_key_voids_lease)
{
    struct cache *c = mk(1 << 20, 1);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, ik(5), 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_apply(c, ik(5), 9, "x", 1), CACHE_EVICTED);
    cr_assert_eq(cache_fill(c, ik(5), lease, 8, "old", 3, NULL), CDC_EREJECTED);
    cr_assert(is_miss(c, ik(5)));
    cache_destroy(c);
}

Test(cache, delete_in_the_window_voids_the_fill)
{
    struct cache *c = mk(1 << 20, 2);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    fill_ok(c, ik(6), 1, "v1");
    cr_assert_eq(cache_lookup(c, ik(6), 2, &v, &lease), CACHE_MISS); /* read-your-writes miss */
    cr_assert(cache_evict(c, ik(6)));                                /* the row is deleted */
    cr_assert_eq(cache_fill(c, ik(6), lease, 2, "v2", 2, NULL), CDC_EREJECTED);
    cr_assert(is_miss(c, ik(6)), "a deleted row must not come back");
    cache_destroy(c);
}

Test(cache, flush_voids_every_lease)
{
    struct cache *c = mk(1 << 20, 8);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, ik(11), 0, &v, &lease), CACHE_MISS);
    cache_flush(c);
    cr_assert_eq(cache_fill(c, ik(11), lease, 1, "old", 3, NULL), CDC_EREJECTED);
    cache_destroy(c);
}

/* Guarantee 2 at the cache level: equal and older versions never replace. */
Test(cache, versions_only_go_forward)
{
    struct cache *c = mk(1 << 20, 4);
    fill_ok(c, ik(3), 5, "v5");
    cr_assert_eq(cache_apply(c, ik(3), 5, "dup", 3), CACHE_OLD);
    cr_assert_eq(cache_apply(c, ik(3), 4, "old", 3), CACHE_OLD);
    expect_body(c, ik(3), 5, "v5");
    cr_assert_eq(cache_apply(c, ik(3), 6, "v6", 2), CACHE_APPLIED);
    expect_body(c, ik(3), 6, "v6");
    cr_assert_eq(cache_apply(c, ik(3), 5, "v5", 2), CACHE_OLD);
    expect_body(c, ik(3), 6, "v6");
    cr_assert_eq(cache_apply(c, ik(99), 1, "absent", 6), CACHE_ABSENT);
    cr_assert(is_miss(c, ik(99)), "events never insert keys nobody read");
    cache_destroy(c);
}

Test(cache, fill_older_than_cached_is_rejected)
{
    struct cache *c = mk(1 << 20, 4);
    enum cache_reject why;
    uint64_t lease;
    fill_ok(c, ik(3), 5, "v5");
    lease = cache_lease(c, ik(3));
    cr_assert_eq(cache_fill(c, ik(3), lease, 4, "v4", 2, &why), CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_NOT_NEWER);
    expect_body(c, ik(3), 5, "v5");
    cache_destroy(c);
}

Test(cache, min_version_turns_older_entry_into_a_miss)
{
    struct cache *c = mk(1 << 20, 4);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    fill_ok(c, ik(4), 2, "v2");
    cr_assert_eq(cache_lookup(c, ik(4), 3, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, ik(4), lease, 3, "v3", 2, NULL), 0);
    expect_body(c, ik(4), 3, "v3");
    cr_assert_eq(cache_lookup(c, ik(4), 3, &v, &lease), CACHE_HIT);
    cache_value_release(v);
    cache_destroy(c);
}

Test(cache, negative_entry_then_insert_replaces_it)
{
    struct cache *c = mk(1 << 20, 4);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, ik(8), 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, ik(8), lease, -1, NULL, 0, NULL), 0);
    cr_assert_eq(cache_lookup(c, ik(8), 0, &v, &lease), CACHE_HIT);
    cr_assert(cache_value_negative(v));
    cache_value_release(v);
    /* the insert's event drops the negative entry; the next read fills the row */
    cr_assert_eq(cache_apply(c, ik(8), 1, "row", 3), CACHE_EVICTED);
    fill_ok(c, ik(8), 1, "row");
    expect_body(c, ik(8), 1, "row");
    cache_destroy(c);
}

Test(cache, negative_fill_never_hides_a_row)
{
    struct cache *c = mk(1 << 20, 4);
    uint64_t lease;
    enum cache_reject why;
    fill_ok(c, ik(9), 1, "row");
    lease = cache_lease(c, ik(9));
    cr_assert_eq(cache_fill(c, ik(9), lease, -1, NULL, 0, &why), CDC_EREJECTED);
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
        if (cache_lookup(c, ik(k), 0, &v, &lease) == CACHE_MISS)
            cache_fill(c, ik(k), lease, 1, body, strlen(body), NULL);
        else
            cache_value_release(v);
        cache_stats(c, &st);
        cr_assert_leq(st.bytes, max, "bytes %llu over the bound", (unsigned long long)st.bytes);
    }
    cr_assert_gt(st.evictions, 4000);
    cr_assert_eq(st.bytes, st.entries * cache_entry_cost(ik(1).len, strlen(body)));
    cache_destroy(c);
}

Test(cache, entry_larger_than_a_shard_is_rejected_and_counted)
{
    struct cache *c = mk(4 * CACHE_MIN_SHARD_BYTES, 4); /* 4 shards of 64 KiB */
    static char big[96 * 1024];
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    enum cache_reject why;
    struct cache_stats st;
    memset(big, 'y', sizeof(big));
    cr_assert_eq(cache_lookup(c, ik(1), 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, ik(1), lease, 1, big, sizeof(big), &why), CDC_EREJECTED);
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
    fill_ok(c, ik(1), 1, "still readable");
    cr_assert_eq(cache_lookup(c, ik(1), 0, &v, &lease), CACHE_HIT);
    cr_assert(cache_evict(c, ik(1)));
    cr_assert_eq(cache_apply(c, ik(1), 2, "x", 1), CACHE_ABSENT);
    /* ASan would flag this read if eviction had freed the value under the reader */
    cr_assert_eq(memcmp(cache_value_body(v, &len), "still readable", 14), 0);
    cr_assert_eq(len, 14);
    cache_value_release(v);
    cache_destroy(c);
}

Test(cache, entries_read_again_outlive_unread_ones)
{
    size_t per = cache_entry_cost(2, 100);
    struct cache *c = mk(per * 10, 1); /* room for 10 */
    char body[101];
    memset(body, 'z', 100);
    body[100] = '\0';
    for (int64_t k = 1; k <= 10; k++)
        fill_ok(c, ik(k), 1, body);
    /* read the oldest five again; inserting five more must evict the five unread */
    for (int64_t k = 1; k <= 5; k++)
        expect_body(c, ik(k), 1, body);
    for (int64_t k = 11; k <= 15; k++)
        fill_ok(c, ik(k), 1, body);
    for (int64_t k = 1; k <= 5; k++)
        expect_body(c, ik(k), 1, body);
    for (int64_t k = 6; k <= 10; k++)
        cr_assert(is_miss(c, ik(k)), "key %lld should have been evicted", (long long)k);
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
    if (cache_lookup(w->c, ik(42), 0, &v, &lease) == CACHE_HIT) {
        atomic_fetch_add(w->hits, 1);
        cache_value_release(v);
    } else {
        cache_fill_abort(w->c, ik(42), lease);
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

    cr_assert_eq(cache_lookup(c, ik(42), 0, &v, &lease), CACHE_MISS);
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, wait_lookup, &w);
    /* the waiters block on the lease until the fill lands, however long that takes */
    for (;;) {
        cache_stats(c, &st);
        if (st.fill_waits == 8)
            break;
        usleep(1000);
    }
    cr_assert_eq(cache_fill(c, ik(42), lease, 1, "one", 3, NULL), 0);
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

    cache_evict(
        c, ik(30)); /* the new row's delete event was applied before the writer could install */
    cr_assert_eq(cache_lease_since(c, ik(30), before), 0);
    cr_assert_eq(cache_fill(c, ik(30), 0, 1, "v1", 2, NULL), CDC_EREJECTED);
    lease = cache_lease_since(c, ik(31), before);
    cr_assert_neq(lease, 0, "an untouched key may be filled");
    cr_assert_eq(cache_fill(c, ik(31), lease, 1, "v1", 2, NULL), 0);
    cache_flush(c);
    cr_assert_eq(cache_lease_since(c, ik(32), before), 0, "a flush touches every key");
    /* when the ring has forgotten that far back, the answer is no */
    before = cache_epoch(c);
    for (int64_t k = 1000; k < 1000 + 64 * 4 * 2; k++)
        cache_evict(c, ik(k));
    cr_assert_eq(cache_lease_since(c, ik(33), before), 0);
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

    fill_ok(c, ik(1), max, "at the limit");
    expect_body(c, ik(1), max, "at the limit");
    cr_assert_eq(cache_lookup(c, ik(2), 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, ik(2), lease, max + 1, "past it", 7, &why), CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_TOO_LARGE);
    cr_assert(is_miss(c, ik(2)));
    fill_ok(c, ik(3), 5, "cached");
    cr_assert_eq(cache_apply(c, ik(3), max + 1, "newer", 5), CACHE_EVICTED,
                 "an event the header cannot hold evicts the old entry");
    cr_assert(is_miss(c, ik(3)));
    cache_destroy(c);
}

/* --- keys of (resource, bytes) --- */

/* The header is 56 bytes (48 before resources and text keys, plus the 8-byte word for res, key
 * length and generation): glibc's chunk of header + out-of-line key + body + 8, rounded to 16,
 * plus a bucket pointer and a 16-bit ghost slot. A key of at most 8 bytes costs nothing beyond
 * that. */
Test(cache, entry_header_is_56_bytes_and_long_keys_are_charged)
{
    for (size_t klen = 0; klen <= CACHE_MAX_KEY; klen += (klen < 20 ? 1 : 61)) {
        for (size_t len = 0; len < 300; len += 7) {
            size_t out = klen > 8 ? klen : 0;
            size_t chunk = (56 + out + len + 8 + 15) & ~(size_t)15;
            cr_assert_eq(cache_entry_cost(klen, len),
                         (chunk < 32 ? 32 : chunk) + sizeof(void *) + sizeof(uint16_t),
                         "key %zu body %zu", klen, len);
        }
    }
    /* items' ids: 8 bytes more than under the 48-byte header, on average over body sizes (malloc
     * rounds to 16, so one size may pay 0 or 16), and the ghost's 2 */
    {
        size_t grew = 0;
        for (size_t len = 100; len < 500; len++)
            grew += cache_entry_cost(5, len) - (((48 + len + 8 + 15) & ~(size_t)15) + 8);
        cr_assert_eq(grew, (8 + 2) * 400);
    }
}

Test(cache, keys_that_differ_only_in_resource_are_distinct)
{
    struct cache *c = mk_res(1 << 20, 4, 3);
    struct cache_stats st;

    fill_ok(c, kb(0, "42", 2), 1, "items 42");
    cr_assert(is_miss(c, kb(1, "42", 2)), "another resource's key 42 is another key");
    fill_ok(c, kb(1, "42", 2), 7, "orders 42");
    fill_ok(c, kb(2, "42", 2), 3, "customers 42");
    expect_body(c, kb(0, "42", 2), 1, "items 42");
    expect_body(c, kb(1, "42", 2), 7, "orders 42");
    expect_body(c, kb(2, "42", 2), 3, "customers 42");
    cr_assert_eq(cache_apply(c, kb(1, "42", 2), 8, "orders 42 v8", 12), CACHE_APPLIED);
    expect_body(c, kb(0, "42", 2), 1, "items 42");
    expect_body(c, kb(1, "42", 2), 8, "orders 42 v8");
    cr_assert(cache_evict(c, kb(0, "42", 2)));
    cr_assert(is_miss(c, kb(0, "42", 2)));
    expect_body(c, kb(1, "42", 2), 8, "orders 42 v8");
    expect_body(c, kb(2, "42", 2), 3, "customers 42");
    cache_stats(c, &st);
    cr_assert_eq(st.entries, 2);
    cache_destroy(c);
}

/* Keys that share a prefix, a suffix or an inline word's halves, at the lengths where the layout
 * changes: 8 (the last inline length), 9 (the first stored out of line), 64 and CACHE_MAX_KEY. */
Test(cache, keys_of_8_9_64_and_max_bytes)
{
    static const size_t lens[] = {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 64, CACHE_MAX_KEY};
    static char keys[sizeof(lens) / sizeof(lens[0])][4][CACHE_MAX_KEY];
    struct cache *c = mk_res(8 << 20, 4, 2);
    size_t n = sizeof(lens) / sizeof(lens[0]);
    char body[64];

    for (size_t i = 0; i < n; i++) {
        size_t L = lens[i];
        for (int v = 0; v < 4; v++) {
            memset(keys[i][v], 'a', L);
            /* v = 1 differs in the first byte, 2 in the last, 3 in the middle */
            if (v == 1)
                keys[i][v][0] = 'b';
            else if (v == 2)
                keys[i][v][L - 1] = L > 1 ? 'b' : 'd';
            else if (v == 3 && L > 2)
                keys[i][v][L / 2] = 'b';
            else if (v == 3)
                keys[i][v][0] = 'c';
        }
    }
    for (unsigned res = 0; res < 2; res++)
        for (size_t i = 0; i < n; i++)
            for (int v = 0; v < 4; v++) {
                snprintf(body, sizeof(body), "r%u len %zu v%d", res, lens[i], v);
                fill_ok(c, kb(res, keys[i][v], lens[i]), (int64_t)(i * 4 + (size_t)v + 1), body);
            }
    for (unsigned res = 0; res < 2; res++)
        for (size_t i = 0; i < n; i++)
            for (int v = 0; v < 4; v++) {
                snprintf(body, sizeof(body), "r%u len %zu v%d", res, lens[i], v);
                expect_body(c, kb(res, keys[i][v], lens[i]), (int64_t)(i * 4 + (size_t)v + 1),
                            body);
            }
    /* the same bytes, one byte shorter: another key */
    cr_assert(is_miss(c, kb(0, keys[n - 1][2], CACHE_MAX_KEY - 1)));
    cr_assert(is_miss(c, kb(0, keys[5][0], 7)) == false, "'aaaaaaa' (7) was filled above");
    cache_destroy(c);
}

Test(cache, key_longer_than_the_max_is_never_cached)
{
    static char big[CACHE_MAX_KEY + 1];
    struct cache *c = mk(1 << 20, 2);
    struct cache_value *v = NULL;
    uint64_t lease = 1;
    enum cache_reject why;

    memset(big, 'k', sizeof(big));
    cr_assert_eq(cache_lookup(c, kb(0, big, sizeof(big)), 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(lease, 0, "serve from the database, do not fill");
    lease = cache_lease(c, kb(0, big, sizeof(big)));
    cr_assert_neq(lease, 0);
    cr_assert_eq(cache_fill(c, kb(0, big, sizeof(big)), lease, 1, "x", 1, &why), CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_TOO_LARGE);
    {
        struct cache_stats st;
        cache_stats(c, &st);
        cr_assert_eq(st.rejected[CACHE_REJECT_TOO_LARGE], 1, "every fill is installed or counted");
        cr_assert_eq(st.entries, 0);
    }
    cr_assert_eq(cache_lease_since(c, kb(0, big, sizeof(big)), cache_epoch(c)), 0);
    cr_assert_eq(cache_apply(c, kb(0, big, sizeof(big)), 2, "y", 1), CACHE_ABSENT);
    cache_destroy(c);
}

/* Text keys are bytes: embedded NULs, high bytes, a key that is another's prefix plus a NUL (the
 * same inline word once zero-padded), the empty key. */
Test(cache, text_keys_with_embedded_bytes)
{
    static const struct {
        const char *p;
        size_t len;
    } k[] = {
        {"a\0b", 3},
        {"a\0c", 3},
        {"a", 1},
        {"a\0", 2},
        {"abc", 3},
        {"abc\0", 4},
        {"\xff\xfe", 2},
        {"\xff\xfe\0", 3},
        {"", 0},
        {"\0", 1},
        {"\0\0", 2},
        {"12345678", 8},
        {"12345678\0", 9},
        {"1234567", 7},
        {"x\0y\0z\0w\0v", 9},
        {"x\0y\0z\0w\0u", 9},
    };
    struct cache *c = mk(1 << 20, 4);
    char body[32];
    size_t n = sizeof(k) / sizeof(k[0]);

    for (size_t i = 0; i < n; i++) {
        snprintf(body, sizeof(body), "key #%zu", i);
        fill_ok(c, kb(0, k[i].p, k[i].len), (int64_t)i + 1, body);
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(body, sizeof(body), "key #%zu", i);
        expect_body(c, kb(0, k[i].p, k[i].len), (int64_t)i + 1, body);
    }
    /* a copy of the bytes, not the same pointer, finds it */
    {
        char copy[3] = {'a', '\0', 'b'};
        expect_body(c, kb(0, copy, 3), 1, "key #0");
    }
    cache_destroy(c);
}

/* --- cache_flush_resource --- */

Test(cache, flush_resource_kills_only_its_own_entries)
{
    struct cache *c = mk_res(1 << 20, 8, 3);
    struct cache_stats st;
    char longkey[100];

    memset(longkey, 'L', sizeof(longkey));
    for (int64_t n = 1; n <= 50; n++) {
        fill_ok(c, ikr(0, n), 1, "items");
        fill_ok(c, ikr(1, n), 1, "orders");
        fill_ok(c, ikr(2, n), 1, "customers");
    }
    fill_ok(c, kb(1, longkey, sizeof(longkey)), 1, "orders long");
    fill_ok(c, kb(2, longkey, sizeof(longkey)), 1, "customers long");
    cache_flush_resource(c, 1);
    for (int64_t n = 1; n <= 50; n++) {
        expect_body(c, ikr(0, n), 1, "items");
        expect_body(c, ikr(2, n), 1, "customers");
        cr_assert(is_miss(c, ikr(1, n)), "orders %lld survived its flush", (long long)n);
    }
    cr_assert(is_miss(c, kb(1, longkey, sizeof(longkey))));
    expect_body(c, kb(2, longkey, sizeof(longkey)), 1, "customers long");
    /* an event for a flushed key finds nothing to refresh */
    cr_assert_eq(cache_apply(c, kb(1, "7", 1), 2, "v2", 2), CACHE_ABSENT);
    cache_stats_resource(c, 1, &st);
    cr_assert_eq(st.entries, 0);
    cr_assert_eq(st.bytes, 0);
    cr_assert_eq(st.flushes, 1);
    cache_stats_resource(c, 0, &st);
    cr_assert_eq(st.entries, 50);
    cr_assert_eq(st.flushes, 0);
    cache_stats_resource(c, 2, &st);
    cr_assert_eq(st.entries, 51);
    /* refilled after the flush: served again */
    fill_ok(c, ikr(1, 3), 4, "orders again");
    expect_body(c, ikr(1, 3), 4, "orders again");
    cache_stats_resource(c, 1, &st);
    cr_assert_eq(st.entries, 1);
    cache_destroy(c);
}

Test(cache, flush_resource_voids_leases_taken_before_it)
{
    struct cache *c = mk_res(1 << 20, 4, 2);
    struct cache_value *v = NULL;
    uint64_t l_own = 0, l_other = 0, l_own2 = 0, l_after = 0;
    enum cache_reject why = CACHE_REJECT_COUNT;
    struct cache_stats st;

    cr_assert_eq(cache_lookup(c, ikr(1, 5), 0, &v, &l_own), CACHE_MISS);
    cr_assert_eq(cache_lookup(c, ikr(0, 5), 0, &v, &l_other), CACHE_MISS);
    cr_assert_eq(cache_lookup(c, kb(1, "a-long-text-key-of-resource-1", 29), 0, &v, &l_own2),
                 CACHE_MISS);
    cache_flush_resource(c, 1);
    /* nothing met the dead lease nodes in between: the fills themselves must refuse */
    cr_assert_eq(cache_fill(c, ikr(1, 5), l_own, 1, "old", 3, &why), CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_LEASE_VOID);
    why = CACHE_REJECT_COUNT;
    cr_assert_eq(
        cache_fill(c, kb(1, "a-long-text-key-of-resource-1", 29), l_own2, 1, "old", 3, &why),
        CDC_EREJECTED);
    cr_assert_eq(why, CACHE_REJECT_LEASE_VOID);
    cr_assert(is_miss(c, ikr(1, 5)));
    cr_assert_eq(cache_fill(c, ikr(0, 5), l_other, 1, "other resource", 14, NULL), 0);
    expect_body(c, ikr(0, 5), 1, "other resource");

    /* a lease from before the flush, and a reader's new lease after it: only the new one fills */
    cr_assert_eq(cache_lookup(c, ikr(1, 6), 0, &v, &l_own), CACHE_MISS);
    cache_flush_resource(c, 1);
    cr_assert_eq(cache_lookup(c, ikr(1, 6), 0, &v, &l_after), CACHE_MISS,
                 "a dead lease is not waited for");
    cr_assert_eq(cache_fill(c, ikr(1, 6), l_own, 1, "old", 3, NULL), CDC_EREJECTED);
    cr_assert_eq(cache_fill(c, ikr(1, 6), l_after, 2, "new", 3, NULL), 0);
    expect_body(c, ikr(1, 6), 2, "new");

    /* cache_lease() (the write path) before the flush: void as well */
    l_own = cache_lease(c, ikr(1, 9));
    cache_flush_resource(c, 1);
    cr_assert_eq(cache_fill(c, ikr(1, 9), l_own, 1, "old", 3, NULL), CDC_EREJECTED);
    cache_stats(c, &st);
    cr_assert_eq(st.rejected[CACHE_REJECT_LEASE_VOID], 4);
    cache_destroy(c);
}

Test(cache, lease_since_before_a_resource_flush_is_refused)
{
    struct cache *c = mk_res(1 << 20, 4, 2);
    uint64_t before = cache_epoch(c), lease;

    cache_flush_resource(c, 1);
    cr_assert_eq(cache_lease_since(c, ikr(1, 77), before), 0,
                 "a flush of the resource touches each of its keys");
    lease = cache_lease_since(c, ikr(0, 77), before);
    cr_assert_neq(lease, 0, "another resource's untouched key may be filled");
    cr_assert_eq(cache_fill(c, ikr(0, 77), lease, 1, "v1", 2, NULL), 0);
    /* an epoch read after the flush is fine */
    before = cache_epoch(c);
    lease = cache_lease_since(c, ikr(1, 77), before);
    cr_assert_neq(lease, 0);
    cr_assert_eq(cache_fill(c, ikr(1, 77), lease, 1, "v1", 2, NULL), 0);
    expect_body(c, ikr(1, 77), 1, "v1");
    cache_destroy(c);
}

/* The touched ring tells keys apart by resource too: an event on (0, "30") says nothing about
 * (1, "30"). And a long key touched is refused. */
Test(cache, lease_since_compares_resource_and_long_keys)
{
    struct cache *c = mk_res(1 << 20, 1, 2);
    char a[40], b[40];
    uint64_t before = cache_epoch(c);

    memset(a, 'u', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[39] = 'v';
    cache_evict(c, ikr(0, 30));
    cache_evict(c, kb(1, a, sizeof(a)));
    cr_assert_eq(cache_lease_since(c, ikr(0, 30), before), 0);
    cr_assert_eq(cache_lease_since(c, kb(1, a, sizeof(a)), before), 0);
    cr_assert_neq(cache_lease_since(c, ikr(1, 30), before), 0);
    cr_assert_neq(cache_lease_since(c, kb(1, b, sizeof(b)), before), 0);
    cr_assert_neq(cache_lease_since(c, kb(0, a, sizeof(a)), before), 0);
    cache_destroy(c);
}

/* After a flush, the dead entries go before any live one, however old or unread the live ones
 * are: FIFO order would otherwise evict the older resource-1 entries first. */
Test(cache, flushed_entries_are_evicted_first)
{
    size_t per = cache_entry_cost(1, 100);
    struct cache *c = mk_res(per * 10, 1, 2);
    char body[101];
    struct cache_stats st;

    memset(body, 'z', 100);
    body[100] = '\0';
    for (int64_t k = 0; k < 5; k++)
        fill_ok(c, ikr(1, k), 1, body); /* the oldest */
    for (int64_t k = 0; k < 5; k++) {
        fill_ok(c, ikr(0, k), 1, body);
        expect_body(c, ikr(0, k), 1, body); /* read again */
    }
    cache_flush_resource(c, 0);
    for (int64_t k = 5; k < 10; k++)
        fill_ok(c, ikr(1, k), 1, body);
    for (int64_t k = 0; k < 10; k++)
        expect_body(c, ikr(1, k), 1, body);
    cache_stats(c, &st);
    cr_assert_eq(st.entries, 10);
    cr_assert_eq(st.evictions, 0, "dropping flushed entries is not an eviction");
    cache_destroy(c);
}

/* Without any pressure, inserts sweep a flushed resource's entries so its memory comes back. */
Test(cache, flushed_entries_are_swept_without_pressure)
{
    struct cache *c = mk_res(1 << 24, 1, 2);
    struct cache_stats st;

    for (int64_t k = 0; k < 200; k++)
        fill_ok(c, ikr(0, k), 1, "flushed soon");
    cache_flush_resource(c, 0);
    for (int64_t k = 0; k < 100; k++)
        fill_ok(c, ikr(1, k), 1, "live");
    cache_stats(c, &st);
    cr_assert_eq(st.entries, 100, "%llu entries", (unsigned long long)st.entries);
    cache_destroy(c);
}

Test(cache, per_resource_stats)
{
    struct cache *c = mk_res(1 << 20, 4, 3);
    struct cache_stats st, all;
    struct cache_value *v = NULL;
    uint64_t lease = 0;

    fill_ok(c, ikr(0, 1), 1, "a");                                       /* 0: miss, fill */
    expect_body(c, ikr(0, 1), 1, "a");                                   /* 0: hit */
    expect_body(c, ikr(0, 1), 1, "a");                                   /* 0: hit */
    fill_ok(c, ikr(1, 1), 1, "b");                                       /* 1: miss, fill */
    cache_apply(c, ikr(1, 1), 2, "b2", 2);                               /* 1: refresh */
    cr_assert(cache_evict(c, ikr(1, 1)));                                /* 1: invalidation */
    cr_assert_eq(cache_lookup(c, ikr(2, 1), 0, &v, &lease), CACHE_MISS); /* 2: miss */
    cr_assert_eq(cache_fill(c, ikr(2, 1), lease, -1, NULL, 0, NULL), 0); /* 2: fill (negative) */
    cr_assert_eq(cache_lookup(c, ikr(2, 1), 0, &v, &lease), CACHE_HIT);  /* 2: negative hit */
    cache_value_release(v);

    cache_stats_resource(c, 0, &st);
    cr_assert_eq(st.hits, 2);
    cr_assert_eq(st.misses, 1);
    cr_assert_eq(st.fills, 1);
    cr_assert_eq(st.refreshes, 0);
    cr_assert_eq(st.invalidations, 0);
    cr_assert_eq(st.entries, 1);
    cr_assert_eq(st.bytes, cache_entry_cost(1, 1));
    cache_stats_resource(c, 1, &st);
    cr_assert_eq(st.hits, 0);
    cr_assert_eq(st.misses, 1);
    cr_assert_eq(st.fills, 1);
    cr_assert_eq(st.refreshes, 1);
    cr_assert_eq(st.invalidations, 1);
    cr_assert_eq(st.entries, 0);
    cr_assert_eq(st.bytes, 0);
    cache_stats_resource(c, 2, &st);
    cr_assert_eq(st.negative_hits, 1);
    cr_assert_eq(st.hits, 0);
    cr_assert_eq(st.misses, 1);
    cr_assert_eq(st.entries, 1);
    cache_stats(c, &all);
    cr_assert_eq(all.hits, 2);
    cr_assert_eq(all.misses, 3);
    cr_assert_eq(all.fills, 3);
    cr_assert_eq(all.entries, 2);
    cr_assert_eq(all.bytes, cache_entry_cost(1, 1) + cache_entry_cost(1, 0));

    /* evictions are the evicted entry's resource's */
    cache_flush(c);
    cache_stats_resource(c, 2, &st);
    cr_assert_eq(st.flushes, 1, "a whole flush flushes every resource");
    cr_assert_eq(st.entries, 0);
    cache_flush_resource(c, 2);
    cache_stats_resource(c, 2, &st);
    cr_assert_eq(st.flushes, 2);
    cache_stats(c, &all);
    cr_assert_eq(all.flushes, 2, "the total counts every flush, whole or of one resource");
    cache_destroy(c);
}

Test(cache, per_resource_evictions)
{
    size_t per = cache_entry_cost(2, 100);
    struct cache *c = mk_res(per * 4, 1, 2);
    char body[101];
    struct cache_stats st0, st1;

    memset(body, 'e', 100);
    body[100] = '\0';
    for (int64_t k = 10; k < 14; k++)
        fill_ok(c, ikr(0, k), 1, body);
    for (int64_t k = 10; k < 13; k++)
        fill_ok(c, ikr(1, k), 1, body); /* evicts three of resource 0 */
    cache_stats_resource(c, 0, &st0);
    cache_stats_resource(c, 1, &st1);
    cr_assert_eq(st0.evictions, 3);
    cr_assert_eq(st1.evictions, 0);
    cr_assert_eq(st0.entries, 1);
    cr_assert_eq(st1.entries, 3);
    cache_destroy(c);
}

/* One byte bound for every resource, whatever the keys' lengths. */
Test(cache, byte_bound_holds_with_long_keys)
{
    size_t max = 128 * 1024;
    struct cache *c = mk_res(max, 4, 3);
    struct cache_stats st;
    static char key[CACHE_MAX_KEY];
    char body[200];
    uint64_t charged = 0;

    memset(body, 'b', sizeof(body));
    for (int64_t n = 1; n <= 4000; n++) {
        struct cache_value *v = NULL;
        uint64_t lease = 0;
        size_t klen = 9 + (size_t)(n * 37) % (CACHE_MAX_KEY - 8);
        unsigned res = (unsigned)(n % 3);
        memset(key, 'k', klen);
        snprintf(key, 24, "%lld-", (long long)n);
        if (cache_lookup(c, kb(res, key, klen), 0, &v, &lease) == CACHE_MISS)
            cache_fill(c, kb(res, key, klen), lease, 1, body, (size_t)(n % 200), NULL);
        else
            cache_value_release(v);
        cache_stats(c, &st);
        cr_assert_leq(st.bytes, max, "bytes %llu over the bound", (unsigned long long)st.bytes);
        if (n % 500 == 0)
            cache_flush_resource(c, res);
    }
    cr_assert_gt(st.evictions, 1000);
    /* the per-resource bytes add up to at most the total (the rest: flushed, not yet swept) */
    for (unsigned r = 0; r < 3; r++) {
        struct cache_stats rs;
        cache_stats_resource(c, r, &rs);
        charged += rs.bytes;
    }
    cr_assert_leq(charged, st.bytes);
    cache_destroy(c);
}

Test(cache, long_key_entry_is_charged_its_key)
{
    struct cache *c = mk(1 << 20, 1);
    struct cache_stats st;
    char key[300];

    memset(key, 'q', sizeof(key));
    fill_ok(c, kb(0, key, sizeof(key)), 1, "body");
    cache_stats(c, &st);
    cr_assert_eq(st.bytes, cache_entry_cost(sizeof(key), 4));
    cr_assert_geq(st.bytes, 56 + sizeof(key) + 4);
    expect_body(c, kb(0, key, sizeof(key)), 1, "body");
    cr_assert_eq(cache_apply(c, kb(0, key, sizeof(key)), 2, "body two", 8), CACHE_APPLIED);
    expect_body(c, kb(0, key, sizeof(key)), 2, "body two");
    cache_stats(c, &st);
    cr_assert_eq(st.bytes, cache_entry_cost(sizeof(key), 8));
    cache_destroy(c);
}

Test(cache, metrics_keep_the_totals_and_label_each_resource)
{
    struct cache *c = mk_res(1 << 20, 4, 3);
    static const char *const names[] = {"items", "we\"ird\\name\nx", NULL};
    struct buf out;
    struct metrics_page p;

    buf_init(&out, 1 << 20);
    p.out = &out;
    p.rc = 0;
    fill_ok(c, ikr(0, 1), 1, "a");
    expect_body(c, ikr(0, 1), 1, "a");
    expect_body(c, ikr(0, 1), 1, "a");
    fill_ok(c, ikr(1, 1), 1, "b");
    cache_flush_resource(c, 1);
    cache_metrics_render(c, &p, names, 3);
    cr_assert_eq(p.rc, 0);
    /* the unlabelled families, as dashboards and alert rules know them */
    cr_assert(strstr(out.data, "\ncdcache_cache_hits_total 2\n"), "%s", out.data);
    cr_assert(strstr(out.data, "\ncdcache_cache_misses_total 2\n"));
    cr_assert(strstr(out.data, "# TYPE cdcache_cache_entries gauge\ncdcache_cache_entries "));
    cr_assert(strstr(out.data, "cdcache_cache_flushes_total 1\n"), "the resource's flush counts");
    cr_assert(strstr(out.data, "cdcache_cache_fill_rejections_total{reason=\"lease_void\"} 0\n"));
    /* per resource, HELP and TYPE once per family, label values escaped */
    cr_assert(strstr(out.data, "# HELP cdcache_cache_resource_hits_total "));
    cr_assert(strstr(out.data, "# TYPE cdcache_cache_resource_hits_total counter\n"));
    cr_assert(strstr(out.data, "# TYPE cdcache_cache_resource_entries gauge\n"));
    cr_assert(strstr(out.data, "# TYPE cdcache_cache_resource_bytes gauge\n"));
    cr_assert(strstr(out.data, "cdcache_cache_resource_hits_total{resource=\"items\"} 2\n"));
    cr_assert(strstr(
        out.data, "cdcache_cache_resource_misses_total{resource=\"we\\\"ird\\\\name\\nx\"} 1\n"));
    cr_assert(strstr(out.data, "cdcache_cache_resource_entries{resource=\"items\"} 1\n"));
    cr_assert(
        strstr(out.data, "cdcache_cache_resource_entries{resource=\"we\\\"ird\\\\name\\nx\"} 0\n"));
    cr_assert(strstr(
        out.data, "cdcache_cache_resource_flushes_total{resource=\"we\\\"ird\\\\name\\nx\"} 1\n"));
    cr_assert(strstr(out.data, "cdcache_cache_resource_evictions_total{resource=\"2\"} 0\n"),
              "a resource without a name is labelled by its index");
    cr_assert(strstr(out.data, "cdcache_cache_resource_bytes{resource=\"items\"} "));
    cr_assert_eq(strstr(out.data, "\n\n"), NULL);
    buf_free(&out);
    cache_destroy(c);
}

/* --- every key in one hash chain: equality must rest on resource and bytes, not on the hash --- */

static uint64_t one_hash(uint64_t h)
{
    (void)h;
    return 0x5eed;
}

static void collide(void)
{
    cache_test_hash = one_hash;
}

static void uncollide(void)
{
    cache_test_hash = NULL;
}

TestSuite(cache_collide, .init = collide, .fini = uncollide);

Test(cache_collide, resources_keys_and_lengths_are_told_apart)
{
    struct cache *c = mk_res(1 << 20, 4, 3);
    char a[CACHE_MAX_KEY], b[CACHE_MAX_KEY];
    static const size_t lens[] = {9, 16, 17, 64, CACHE_MAX_KEY};

    memset(a, 'x', sizeof(a));
    memcpy(b, a, sizeof(b));
    fill_ok(c, kb(0, "42", 2), 1, "r0 42");
    fill_ok(c, kb(1, "42", 2), 2, "r1 42");
    fill_ok(c, kb(0, "abc", 3), 3, "abc");
    fill_ok(c, kb(0, "abc\0", 4), 4, "abc nul");
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t L = lens[i];
        char body[32];
        b[L - 1] = 'y';
        snprintf(body, sizeof(body), "a %zu", L);
        fill_ok(c, kb(0, a, L), 10, body);
        snprintf(body, sizeof(body), "b %zu", L);
        fill_ok(c, kb(0, b, L), 11, body);
        snprintf(body, sizeof(body), "r2 a %zu", L);
        fill_ok(c, kb(2, a, L), 12, body);
        b[L - 1] = 'x';
    }
    expect_body(c, kb(0, "42", 2), 1, "r0 42");
    expect_body(c, kb(1, "42", 2), 2, "r1 42");
    expect_body(c, kb(0, "abc", 3), 3, "abc");
    expect_body(c, kb(0, "abc\0", 4), 4, "abc nul");
    cr_assert(is_miss(c, kb(2, "42", 2)));
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t L = lens[i];
        char body[32];
        b[L - 1] = 'y';
        snprintf(body, sizeof(body), "a %zu", L);
        expect_body(c, kb(0, a, L), 10, body);
        snprintf(body, sizeof(body), "b %zu", L);
        expect_body(c, kb(0, b, L), 11, body);
        snprintf(body, sizeof(body), "r2 a %zu", L);
        expect_body(c, kb(2, a, L), 12, body);
        cr_assert(is_miss(c, kb(1, a, L)));
        b[L - 1] = 'x';
    }
    /* evicting one of the colliding keys leaves the others */
    cr_assert(cache_evict(c, kb(1, "42", 2)));
    expect_body(c, kb(0, "42", 2), 1, "r0 42");
    cr_assert(cache_evict(c, kb(0, a, 64)));
    expect_body(c, kb(2, a, 64), 12, "r2 a 64");
    cache_destroy(c);
}

/* Under one hash, an event on (0, "30") still says nothing about (1, "30"); a key of the same
 * resource and hash may look touched (safe: it only refuses a fill). */
Test(cache_collide, lease_since_tells_resources_apart)
{
    struct cache *c = mk_res(1 << 20, 1, 2);
    uint64_t before = cache_epoch(c);

    cache_evict(c, ikr(0, 30));
    cr_assert_eq(cache_lease_since(c, ikr(0, 30), before), 0);
    cr_assert_neq(cache_lease_since(c, ikr(1, 30), before), 0);
    cache_destroy(c);
}

Test(cache_collide, flush_resource_and_the_bound_under_one_chain)
{
    size_t per = cache_entry_cost(20, 50);
    struct cache *c = mk_res(per * 16, 1, 2);
    char key[20], body[50];
    struct cache_stats st;

    memset(body, 'c', sizeof(body));
    for (int n = 0; n < 200; n++) {
        struct cache_value *v = NULL;
        uint64_t lease = 0;
        memset(key, 'k', sizeof(key));
        snprintf(key, sizeof(key), "%d", n);
        if (cache_lookup(c, kb((unsigned)n % 2, key, sizeof(key)), 0, &v, &lease) == CACHE_MISS)
            cache_fill(c, kb((unsigned)n % 2, key, sizeof(key)), lease, 1, body, sizeof(body),
                       NULL);
        else
            cache_value_release(v);
        if (n % 50 == 49)
            cache_flush_resource(c, 1);
        cache_stats(c, &st);
        cr_assert_leq(st.bytes, per * 16);
    }
    cache_stats_resource(c, 1, &st);
    cr_assert_eq(st.entries, 0);
    cache_destroy(c);
}

/* --- eviction quality --- */

/* The hit ratio of a Zipf(0.99) trace over nkeys keys (rank r is key r * 7919 % nkeys, so the hot
 * keys spread over the shards), replayed through a cache with room for cap entries and the given
 * shards. Deterministic trace (xorshift); the cache's own hash seed varies. */
static double zipf_hit_ratio(unsigned shards, int nkeys, long nreq, long cap)
{
    struct cache_options o = {.max_bytes = (size_t)cap * cache_entry_cost(8, 16),
                              .shards = shards,
                              .resources = 1,
                              .negative_entries = false,
                              .fill_wait_ms = 1000};
    struct cache *c = cache_create(&o);
    double *cdf = calloc((size_t)nkeys, sizeof(*cdf)), sum = 0;
    uint64_t x = 88172645463325252ULL;
    long hits = 0;

    cr_assert(c && cdf);
    for (int i = 0; i < nkeys; i++)
        sum += 1.0 / pow(i + 1, 0.99);
    for (int i = 0; i < nkeys; i++)
        cdf[i] = (i ? cdf[i - 1] : 0) + 1.0 / pow(i + 1, 0.99) / sum;
    for (long n = 0; n < nreq; n++) {
        double u;
        int lo = 0, hi = nkeys - 1;
        struct cache_value *v = NULL;
        uint64_t lease = 0;
        char kb[24];
        int kl;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        u = (double)(x >> 11) / 9007199254740992.0;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        kl = snprintf(kb, sizeof(kb), "%ld", (long)lo * 7919 % nkeys + 1);
        if (cache_lookup(c, (struct cache_key){0, (uint32_t)kl, kb}, 0, &v, &lease) == CACHE_HIT) {
            hits++;
            cache_value_release(v);
        } else {
            cache_fill(c, (struct cache_key){0, (uint32_t)kl, kb}, lease, 1, "0123456789abcdef", 16,
                       NULL);
        }
    }
    free(cdf);
    cache_destroy(c);
    return (double)hits / (double)nreq;
}

/* At the production shard count a small cache must not collapse: 64 shards of a 50-entry bound
 * held 0 or 1 entry each and lost about half the hits of one shard (0.19 against 0.40 at 0.1% of
 * 100k keys). Shard-aware sizing keeps each shard's share large enough. */
Test(cache_policy, a_small_cache_at_64_shards_keeps_the_hits_of_one_shard)
{
    double one = zipf_hit_ratio(1, 20000, 300000, 50);
    double many = zipf_hit_ratio(64, 20000, 300000, 50);

    cr_assert_gt(one, 0.30, "unsharded: %.3f", one);
    cr_assert_geq(many, one - 0.01, "64 shards: %.3f, unsharded: %.3f", many, one);
}

/* And where the bound does spread over 64 shards, each shard's own queues still give about the
 * hit ratio of one shard holding everything. */
Test(cache_policy, a_large_cache_at_64_shards_keeps_the_hits_of_one_shard)
{
    long cap = 64 * CACHE_MIN_SHARD_BYTES / cache_entry_cost(8, 16) + 64;
    double one = zipf_hit_ratio(1, 400000, 600000, cap);
    double many = zipf_hit_ratio(64, 400000, 600000, cap);

    cr_assert_geq(many, one - 0.01, "64 shards: %.3f, unsharded: %.3f", many, one);
}

/* S3-FIFO's small queue: a one-time scan of new keys passes through small and leaves the entries
 * that were read more than once in main. */
Test(cache_policy, a_scan_does_not_flush_the_entries_read_again)
{
    size_t per = cache_entry_cost(6, 100);
    struct cache *c = mk(per * 100, 1);
    char body[101];

    memset(body, 's', 100);
    body[100] = '\0';
    for (int64_t k = 1; k <= 50; k++) {
        fill_ok(c, ik(k), 1, body);
        expect_body(c, ik(k), 1, body); /* read again: they earn their place */
    }
    for (int64_t k = 100000; k < 101000; k++) /* ten times the cache, each read once */
        fill_ok(c, ik(k), 1, body);
    for (int64_t k = 1; k <= 50; k++)
        expect_body(c, ik(k), 1, body);
    cache_destroy(c);
}

/* The ghost: keys evicted from small unread, then read again soon, enter main, where a scan of
 * one-time keys (which only churns small) leaves them alone; without the ghost they would enter
 * small again and the scan would push them out. The ghost is a table of fingerprints with a
 * per-cache hash seed, so a later eviction may take a key's slot: most, not all, must stay. */
Test(cache_policy, keys_read_again_after_their_eviction_enter_main)
{
    size_t per = cache_entry_cost(6, 100);
    struct cache *c = mk(per * 2000, 1);
    char body[101];
    int kept = 0;

    memset(body, 'g', 100);
    body[100] = '\0';
    for (int64_t k = 1; k <= 20; k++)
        fill_ok(c, ik(k), 1, body);           /* read once: small */
    for (int64_t k = 100000; k < 102000; k++) /* fills the cache and pushes them out of small */
        fill_ok(c, ik(k), 1, body);
    for (int64_t k = 1; k <= 20; k++)
        fill_ok(c, ik(k), 1, body); /* a miss (evicted), and the ghost sends it to main */
    for (int64_t k = 200000; k < 204000; k++)
        fill_ok(c, ik(k), 1, body);
    for (int64_t k = 1; k <= 20; k++)
        kept += !is_miss(c, ik(k));
    cr_assert_geq(kept, 12, "%d of 20 kept", kept);
    cache_destroy(c);
}
