/* Applying recorded events to the cache: replays and reordering never move an entry backwards,
 * deletes evict, truncates flush, tombstones are skipped, incomplete after-images evict. */
#include "cdcache/cdc.h"
#include "fixtures.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static struct fixture_entry *ev;
static size_t nev;
static struct cache *c;
static struct resource *items;

#define OTHER 0 /* another resource's index: items is resource 1 */

static void setup(void)
{
    struct cache_options o = {1 << 24, 8, 2, true, 1000, 0};
    ev = fixtures_load_events("items-events.jsonl", &nev);
    c = cache_create(&o);
    items = fixtures_items_resource(1);
}
static void teardown(void)
{
    fixtures_free(ev, nev);
    cache_destroy(c);
    fixtures_resource_free(items);
}
TestSuite(cdc_apply, .init = setup, .fini = teardown);

static enum cdc_result apply(size_t i)
{
    struct dbz_event e;
    char err[128];
    enum cdc_result r;
    cr_assert_eq(dbz_decode(items, ev[i].fields, ev[i].nfields, &e, err, sizeof(err)), 0);
    r = cdc_apply(c, items->index, &e);
    dbz_event_clear(&e);
    return r;
}

static struct cache_key key_of(unsigned res, int64_t id)
{
    static char k[16][24];
    static unsigned n;
    char *s = k[n++ % 16];
    snprintf(s, 24, "%lld", (long long)id);
    return (struct cache_key){res, (uint32_t)strlen(s), s};
}

static void seed_in(unsigned res, int64_t id, int64_t version, const char *body)
{
    struct cache_key key = key_of(res, id);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    cr_assert_eq(cache_lookup(c, key, 0, &v, &lease), CACHE_MISS);
    cr_assert_eq(cache_fill(c, key, lease, version, body, strlen(body), NULL), 0);
}

static void seed(int64_t id, int64_t version, const char *body)
{
    seed_in(1, id, version, body);
}

static int64_t cached_version_in(unsigned res, int64_t id)
{
    struct cache_key key = key_of(res, id);
    struct cache_value *v = NULL;
    uint64_t lease = 0;
    int64_t ver;
    if (cache_lookup(c, key, 0, &v, &lease) != CACHE_HIT) {
        cache_fill_abort(c, key, lease);
        return 0;
    }
    ver = cache_value_version(v);
    cache_value_release(v);
    return ver;
}

static int64_t cached_version(int64_t id)
{
    return cached_version_in(1, id);
}

Test(cdc_apply, replayed_twice_and_out_of_order_never_goes_back)
{
    seed(2, 1, "v1"); /* the recorded insert's row, as a read would have cached it */
    cr_assert_eq(apply(1), CDC_RESULT_REFRESHED);
    cr_assert_eq(cached_version(2), 2);
    /* Debezium replays after a restart: the same batch again, and the older event after the newer
     */
    cr_assert_eq(apply(0), CDC_RESULT_STALE);
    cr_assert_eq(apply(1), CDC_RESULT_STALE);
    cr_assert_eq(apply(0), CDC_RESULT_STALE);
    cr_assert_eq(cached_version(2), 2);
}

Test(cdc_apply, incomplete_after_image_evicts)
{
    seed(3, 1, "toast v1");
    cr_assert_eq(apply(3), CDC_RESULT_INCOMPLETE);
    cr_assert_eq(cached_version(3), 0, "the placeholder must never be served");
}

Test(cdc_apply, delete_evicts_and_tombstone_is_skipped)
{
    seed(2, 2, "v2");
    cr_assert_eq(apply(4), CDC_RESULT_EVICTED);
    cr_assert_eq(cached_version(2), 0);
    cr_assert_eq(apply(5), CDC_RESULT_TOMBSTONE);
}

Test(cdc_apply, truncate_flushes)
{
    seed(2, 1, "a");
    seed(3, 1, "b");
    seed(77, 1, "c");
    seed_in(OTHER, 2, 5, "another resource's row 2");
    cr_assert_eq(apply(7), CDC_RESULT_TRUNCATE);
    cr_assert_eq(cached_version(2) + cached_version(3) + cached_version(77), 0);
    cr_assert_eq(cached_version_in(OTHER, 2), 5, "a truncate flushes only its own resource");
}

Test(cdc_apply, event_for_uncached_key_is_absent)
{
    cr_assert_eq(apply(6), CDC_RESULT_ABSENT);
    cr_assert_eq(cached_version(4), 0);
}
