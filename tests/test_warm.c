/* The warm-up's pure parts through its public header, against a real cache and a fake database:
 * what counts as hot (and that sampling disturbs nothing), one batch's lease protocol (a change or
 * flush between the query and the fill voids it), the plan merged from several samples, the pace.
 */
#include "cdcache/cache.h"
#include "cdcache/error.h"
#include "cdcache/util.h"
#include "cdcache/warm.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cache *mk(size_t bytes, unsigned shards)
{
    struct cache_options o = {.max_bytes = bytes,
                              .shards = shards,
                              .resources = 2,
                              .negative_entries = true,
                              .fill_wait_ms = 100};
    return cache_create(&o);
}

static struct cache_key key_of(unsigned res, const char *k)
{
    return (struct cache_key){res, (uint32_t)strlen(k), k};
}

/* Installs key with a body "row-<key>" at version v through the ordinary miss path. */
static void put(struct cache *c, unsigned res, const char *k, int64_t v)
{
    struct cache_value *val = NULL;
    uint64_t lease = 0;
    char body[64];
    int n = snprintf(body, sizeof(body), "row-%s", k);

    cr_assert_eq(cache_lookup(c, key_of(res, k), 0, &val, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, key_of(res, k), lease, v, body, (size_t)n, NULL), 0);
}

static bool hit(struct cache *c, unsigned res, const char *k, int64_t *version)
{
    struct cache_value *val = NULL;
    uint64_t lease = 0;

    if (cache_lookup(c, key_of(res, k), 0, &val, &lease) != CACHE_HIT) {
        cache_fill_abort(c, key_of(res, k), lease);
        return false;
    }
    if (version)
        *version = cache_value_version(val);
    cache_value_release(val);
    return true;
}

struct seen {
    char keys[64][CACHE_MAX_KEY + 1];
    size_t n;
};

static void seen_key(void *arg, const char *key, size_t len)
{
    struct seen *s = arg;
    cr_assert_lt(s->n, 64);
    memcpy(s->keys[s->n], key, len);
    s->keys[s->n][len] = '\0';
    s->n++;
}

static bool seen_has(const struct seen *s, const char *k)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], k) == 0)
            return true;
    return false;
}

Test(warm, hot_keys_are_the_reused_entries_of_the_resource_short_and_long_keys)
{
    struct cache *c = mk(1 << 20, 4);
    const char *keys[] = {"1",     "22",       "333",       "4444",
                          "55555", "12345678", "123456789", "a-text-key-longer-than-eight-bytes"};
    struct seen s = {0};

    for (size_t i = 0; i < 8; i++)
        put(c, 0, keys[i], 1);
    put(c, 1, "1", 1);    /* another resource's key */
    put(c, 0, "cold", 1); /* never read again */
    for (size_t i = 0; i < 8; i++)
        cr_assert(hit(c, 0, keys[i], NULL));
    cr_assert(hit(c, 1, "1", NULL));
    cr_assert_eq(cache_hot_keys(c, 0, 100, seen_key, &s), 8);
    for (size_t i = 0; i < 8; i++)
        cr_assert(seen_has(&s, keys[i]), "key %s (rebuilt from the entry) missing", keys[i]);
    cr_assert_not(seen_has(&s, "cold"));
    cache_destroy(c);
}

Test(warm, hot_keys_are_bounded)
{
    struct cache *c = mk(1 << 20, 1);
    struct seen s = {0};
    char k[16];

    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "%d", i);
        put(c, 0, k, 1);
        cr_assert(hit(c, 0, k, NULL));
    }
    cr_assert_eq(cache_hot_keys(c, 0, 10, seen_key, &s), 10);
    cr_assert_eq(s.n, 10);
    cache_destroy(c);
}

/* Sampling changes nothing eviction decides with: the same cache filled twice, one sampled, evicts
 * the same entries. */
Test(warm, sampling_does_not_disturb_eviction)
{
    size_t bytes = 40 * cache_entry_cost(3, 7);
    struct cache *a = mk(bytes, 1), *b = mk(bytes, 1);
    struct seen s = {0};
    char k[16];

    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "%d", i);
        put(a, 0, k, 1);
        put(b, 0, k, 1);
        if (i % 3 == 0) {
            hit(a, 0, k, NULL);
            hit(b, 0, k, NULL);
        }
    }
    cache_hot_keys(a, 0, 64, seen_key, &s);
    cr_assert_gt(s.n, 0);
    for (int i = 40; i < 70; i++) {
        snprintf(k, sizeof(k), "%d", i);
        put(a, 0, k, 1);
        put(b, 0, k, 1);
    }
    for (int i = 0; i < 70; i++) {
        snprintf(k, sizeof(k), "%d", i);
        cr_assert_eq(hit(a, 0, k, NULL), hit(b, 0, k, NULL), "key %d fared differently", i);
    }
    cache_destroy(a);
    cache_destroy(b);
}

Test(warm, lease_absent_only_when_nothing_is_cached_and_counts_no_miss)
{
    struct cache *c = mk(1 << 20, 2);
    struct cache_stats st;
    uint64_t l, other = 0;
    struct cache_value *val = NULL;

    put(c, 0, "7", 1);
    cr_assert_eq(cache_lease_absent(c, key_of(0, "7")), 0, "a cached key is not warmed");
    cr_assert_eq(cache_lookup(c, key_of(0, "8"), 0, &val, &other), CACHE_MISS);
    cr_assert_eq(cache_lease_absent(c, key_of(0, "8")), 0, "a read's fill in flight is not taken");
    cache_fill_abort(c, key_of(0, "8"), other);
    cache_stats(c, &st);
    l = cache_lease_absent(c, key_of(0, "9"));
    cr_assert_neq(l, 0);
    {
        struct cache_stats st2;
        cache_stats(c, &st2);
        cr_assert_eq(st2.misses, st.misses);
    }
    cr_assert_eq(cache_fill(c, key_of(0, "9"), l, 3, "row", 3, NULL), 0);
    cache_destroy(c);
}

/* --- one batch against a fake database --- */

struct fake_db {
    struct cache *c;
    int64_t version;    /* every row's version in the database */
    const char *absent; /* a key the database no longer has */
    int fail;           /* fetch returns this */
    /* what happens between the query and a fill: 0 nothing, 1 a change event for race_key, 2 a
     * flush, 3 a delete event */
    int race;
    const char *race_key;
    size_t fetched;
};

static int fake_fetch(void *arg, unsigned res, const char *const *keys, size_t n, warm_row_fn row,
                      void *row_arg)
{
    struct fake_db *db = arg;
    char body[64];

    db->fetched += n;
    if (db->fail)
        return db->fail;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(body, sizeof(body), "row-%s-v%lld", keys[i], (long long)db->version);
        if (db->absent && strcmp(keys[i], db->absent) == 0)
            continue;
        (void)res;
        row(row_arg, keys[i], body, (size_t)len, db->version);
    }
    return 0;
}

static void fake_before_fill(void *arg, unsigned res, const char *key)
{
    struct fake_db *db = arg;

    if (!db->race_key || strcmp(key, db->race_key) != 0)
        return;
    if (db->race == 1)
        cache_apply(db->c, key_of(res, key), db->version + 1, "newer", 5);
    else if (db->race == 2)
        cache_flush(db->c);
    else if (db->race == 3)
        cache_evict(db->c, key_of(res, key));
}

Test(warm, a_batch_installs_what_the_database_has)
{
    struct cache *c = mk(1 << 20, 4);
    struct fake_db db = {.c = c, .version = 5, .absent = "3"};
    struct warm_source src = {fake_fetch, fake_before_fill, &db};
    const char *keys[] = {"1", "2", "3", "4"};
    struct warm_stats st = {0};
    int64_t v = 0;

    put(c, 0, "4", 9); /* already cached: skipped, not asked for */
    cr_assert_eq(warm_fill_batch(c, 0, keys, 4, &src, &st), 0);
    cr_assert_eq(db.fetched, 3);
    cr_assert_eq(st.warmed, 2);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.missing, 1);
    cr_assert_eq(st.batches, 1);
    cr_assert(hit(c, 0, "1", &v));
    cr_assert_eq(v, 5);
    cr_assert_not(hit(c, 0, "3", NULL), "a key the database lacks leaves no lease behind");
    cr_assert(hit(c, 0, "4", &v));
    cr_assert_eq(v, 9);
    cache_destroy(c);
}

Test(warm, a_change_event_between_query_and_fill_voids_the_warm_fill)
{
    struct cache *c = mk(1 << 20, 4);
    struct fake_db db = {.c = c, .version = 1, .race = 1, .race_key = "2"};
    struct warm_source src = {fake_fetch, fake_before_fill, &db};
    const char *keys[] = {"1", "2"};
    struct warm_stats st = {0};

    cr_assert_eq(warm_fill_batch(c, 0, keys, 2, &src, &st), 0);
    cr_assert_eq(st.warmed, 1);
    cr_assert_eq(st.rejected, 1);
    cr_assert_not(hit(c, 0, "2", NULL), "the row read before the change was installed");
    cache_destroy(c);
}

Test(warm, a_delete_event_between_query_and_fill_voids_the_warm_fill)
{
    struct cache *c = mk(1 << 20, 4);
    struct fake_db db = {.c = c, .version = 1, .race = 3, .race_key = "1"};
    struct warm_source src = {fake_fetch, fake_before_fill, &db};
    const char *keys[] = {"1"};
    struct warm_stats st = {0};

    warm_fill_batch(c, 0, keys, 1, &src, &st);
    cr_assert_eq(st.rejected, 1);
    cr_assert_not(hit(c, 0, "1", NULL), "a deleted row was installed");
    cache_destroy(c);
}

Test(warm, a_flush_between_query_and_fill_voids_every_warm_fill_after_it)
{
    struct cache *c = mk(1 << 20, 4);
    struct fake_db db = {.c = c, .version = 1, .race = 2, .race_key = "1"};
    struct warm_source src = {fake_fetch, fake_before_fill, &db};
    const char *keys[] = {"1", "2", "3"};
    struct warm_stats st = {0};

    warm_fill_batch(c, 0, keys, 3, &src, &st);
    cr_assert_geq(st.rejected, 1);
    cr_assert_not(hit(c, 0, "1", NULL));
    cache_destroy(c);
}

Test(warm, a_failed_batch_leaves_no_lease_behind)
{
    struct cache *c = mk(1 << 20, 4);
    struct fake_db db = {.c = c, .version = 1, .fail = CDC_EDB};
    struct warm_source src = {fake_fetch, NULL, &db};
    const char *keys[] = {"1", "2"};
    struct warm_stats st = {0};
    uint64_t lease;

    cr_assert_eq(warm_fill_batch(c, 0, keys, 2, &src, &st), CDC_EDB);
    cr_assert_eq(st.failed, 1);
    lease = cache_lease_absent(c, key_of(0, "1"));
    cr_assert_neq(lease, 0, "the failed batch's lease still holds the key");
    cache_fill_abort(c, key_of(0, "1"), lease);
    cache_destroy(c);
}

/* --- samples and the plan --- */

Test(warm, samples_round_trip_and_merge_in_turn_without_duplicates)
{
    const char *names[] = {"items", "customers"};
    const char *a_items[] = {"1", "2", "3"}, *a_cust[] = {"x\"y"};
    const char *b_items[] = {"3", "4"};
    const char *const *a_keys[] = {a_items, a_cust}, *const * b_keys[] = {b_items, NULL};
    size_t a_n[] = {3, 1}, b_n[] = {2, 0};
    struct buf a, b;
    struct warm_plan *p;

    buf_init(&a, 1 << 20);
    buf_init(&b, 1 << 20);
    cr_assert_eq(warm_sample_encode(&a, 2, names, a_keys, a_n), 0);
    cr_assert_eq(warm_sample_encode(&b, 1, names, b_keys, b_n), 0);
    {
        const char *json[] = {a.data, b.data, NULL, "not json", "{\"items\":[1,\"5\"]}"};
        p = warm_plan_merge(json, 5, 2, names, 100);
    }
    cr_assert_eq(p->nres, 2);
    cr_assert_eq(p->res[0].n, 5);
    /* a's first, b's first, then the second of each...; "3" only once; 1 (not a string) dropped */
    cr_assert_str_eq(p->res[0].keys[0], "1");
    cr_assert_str_eq(p->res[0].keys[1], "3");
    cr_assert_str_eq(p->res[0].keys[2], "2");
    cr_assert_str_eq(p->res[0].keys[3], "4");
    cr_assert_str_eq(p->res[0].keys[4], "5");
    cr_assert_eq(p->res[1].n, 1);
    cr_assert_str_eq(p->res[1].keys[0], "x\"y");
    warm_plan_free(p);
    buf_free(&a);
    buf_free(&b);
}

Test(warm, the_plan_is_bounded_and_ignores_unknown_resources_and_long_keys)
{
    const char *names[] = {"items"};
    char big[CACHE_MAX_KEY + 64];
    char json[2048];
    struct warm_plan *p;

    memset(big, 'k', CACHE_MAX_KEY + 1);
    big[CACHE_MAX_KEY + 1] = '\0';
    snprintf(json, sizeof(json), "{\"orders\":[\"1\"],\"items\":[\"%s\",\"1\",\"2\",\"3\"]}", big);
    {
        const char *docs[] = {json};
        p = warm_plan_merge(docs, 1, 1, names, 2);
    }
    cr_assert_eq(p->res[0].n, 2);
    cr_assert_str_eq(p->res[0].keys[0], "1");
    cr_assert_str_eq(p->res[0].keys[1], "2");
    warm_plan_free(p);
}

Test(warm, the_pace_spaces_batches_and_never_bursts_to_catch_up)
{
    cr_assert_eq(warm_pace_next(0, 1000, 50), 1000);
    cr_assert_eq(warm_pace_next(1000, 1001, 50), 1020);
    cr_assert_eq(warm_pace_next(1020, 1500, 50), 1500, "late: now, not a burst of the missed ones");
    cr_assert_eq(warm_pace_next(1000, 1000, 5000), 1000, "over 1000/s: no wait");
}
