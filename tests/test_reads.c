/* The read protocol (reads.h) against a fake database: each consistency rule has a fast,
 * deterministic test here beside the end-to-end one. */
#include "cdcache/cache.h"
#include "cdcache/error.h"
#include "cdcache/reads.h"
#include "cdcache/row.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* The fake database: one row per id (version 0 = absent), counts queries. */
#define NROWS 64
struct fake {
    int64_t version[NROWS];
    int queries;
    bool down;
    bool vouching;
    struct cache *cache;
    void (*during_fill)(struct fake *f, int64_t id); /* runs between query and fill */
    void (*during_create)(struct fake *f, int64_t id);
    int64_t next_id;
};

static void render(struct buf *out, int64_t id, int64_t version)
{
    buf_printf(out, "{\"id\":%lld,\"version\":%lld}", (long long)id, (long long)version);
}

/* The rules are the same for every resource: the tests use one, keyed by integers as text. */
static struct resource RES = {.index = 1};

static int64_t id_of(const char *key)
{
    int64_t id = -1;
    parse_i64_str(key, &id);
    return id;
}

static const char *key_text(int64_t id)
{
    static _Thread_local char k[8][24];
    static _Thread_local unsigned n;
    char *s = k[n++ % 8];
    snprintf(s, 24, "%lld", (long long)id);
    return s;
}

static struct cache_key CK(int64_t id) {
    const char *k = key_text(id);
    struct cache_key key = {RES.index, (uint32_t)strlen(k), k};
    return key;
}

static int
f_get(void *db, const struct resource *r, const char *key, struct buf *out, int64_t *version)
{
    struct fake *f = db;
    int64_t id = id_of(key);
    (void)r;
    f->queries++;
    if (f->down)
        return CDC_EDB;
    if (id >= NROWS || f->version[id] == 0)
        return CDC_ENOTFOUND;
    *version = f->version[id];
    render(out, id, *version);
    return 0;
}

static int f_create(void *db, const struct resource *r, const struct row_input *in, struct buf *out,
                    char *key, size_t keycap, int64_t *version, struct sql_error *e)
{
    struct fake *f = db;
    int64_t id = f->next_id++;
    (void)in;
    (void)r;
    (void)e;
    *version = f->version[id] = 1;
    snprintf(key, keycap, "%lld", (long long)id);
    if (f->during_create)
        f->during_create(f, id);
    render(out, id, 1);
    return 0;
}

static int f_update(void *db, const struct resource *r, const char *key, int64_t if_match,
                    const struct row_input *in, struct buf *out, int64_t *version,
                    struct sql_error *e)
{
    struct fake *f = db;
    int64_t id = id_of(key);
    (void)in;
    (void)r;
    (void)e;
    if (f->down)
        return CDC_EDB;
    if (f->version[id] == 0)
        return CDC_ENOTFOUND;
    if (if_match >= 0 && if_match != f->version[id])
        return CDC_ECONFLICT;
    *version = ++f->version[id];
    render(out, id, *version);
    return 0;
}

static int f_delete(void *db, const struct resource *r, const char *key, int64_t if_match,
                    int64_t *version, struct sql_error *e)
{
    struct fake *f = db;
    int64_t id = id_of(key);
    (void)if_match;
    (void)r;
    (void)e;
    if (f->version[id] == 0)
        return CDC_ENOTFOUND;
    *version = f->version[id];
    f->version[id] = 0;
    return 0;
}

static bool f_vouching(void *arg)
{
    return ((struct fake *)arg)->vouching;
}

static void f_before_fill(void *db, const struct resource *r, const char *key)
{
    struct fake *f = db;
    (void)r;
    if (f->during_fill)
        f->during_fill(f, id_of(key));
}

static struct fake F;
static struct reads *R;

static void setup(void)
{
    struct cache_options o = {1 << 20, 4, 2, true, 2000, 0};
    struct reads_ops ops = {f_get, f_create, f_update, f_delete, f_vouching, f_before_fill};
    memset(&F, 0, sizeof(F));
    F.vouching = true;
    F.next_id = 40;
    F.cache = cache_create(&o);
    R = reads_create(&ops, &F, &F, F.cache);
}

static void teardown(void)
{
    reads_destroy(R);
    cache_destroy(F.cache);
}

/* Reads id; returns how it was served, and checks status and version. */
static enum reads_source get(int64_t id, int64_t min_version, int rc, int64_t version)
{
    struct reads_result res;
    enum reads_source src;
    reads_get(R, &RES, key_text(id), min_version, false, &res);
    cr_assert_eq(res.rc, rc, "id %lld: rc %d, want %d", (long long)id, res.rc, rc);
    if (rc == 0) {
        char want[64];
        snprintf(want, sizeof(want), "{\"id\":%lld,\"version\":%lld}", (long long)id,
                 (long long)version);
        cr_assert_eq(res.version, version, "id %lld: version %lld, want %lld", (long long)id,
                     (long long)res.version, (long long)version);
        cr_assert_eq(res.len, strlen(want));
        cr_assert_eq(memcmp(res.body, want, res.len), 0);
    }
    src = res.source;
    reads_result_release(&res);
    return src;
}

TestSuite(reads, .init = setup, .fini = teardown);

Test(reads, miss_fills_then_hits)
{
    F.version[1] = 3;
    cr_assert_eq(get(1, 0, 0, 3), READS_MISS);
    cr_assert_eq(get(1, 0, 0, 3), READS_HIT);
    cr_assert_eq(F.queries, 1);
}

Test(reads, bypass_while_not_vouching_fills_nothing)
{
    F.version[1] = 3;
    F.vouching = false;
    cr_assert_eq(get(1, 0, 0, 3), READS_BYPASS);
    F.vouching = true;
    cr_assert_eq(get(1, 0, 0, 3), READS_MISS, "a bypassed read must not have filled the cache");
}

Test(reads, no_cache_bypasses_a_cached_entry)
{
    struct reads_result res;
    F.version[1] = 3;
    get(1, 0, 0, 3);
    reads_get(R, &RES, key_text(1), 0, true, &res);
    cr_assert_eq(res.source, READS_BYPASS);
    reads_result_release(&res);
}

static void change_event(struct fake *f, int64_t id)
{
    /* the row changes in the database and its change event is applied before the fill */
    f->version[id]++;
    cache_evict(f->cache, CK(id));
}

Test(reads, a_change_during_the_fill_voids_it)
{
    F.version[2] = 1;
    F.during_fill = change_event;
    cr_assert_eq(get(2, 0, 0, 1), READS_MISS, "this read began before the change");
    F.during_fill = NULL;
    cr_assert_eq(get(2, 0, 0, 2), READS_MISS, "the older row was not installed");
    cr_assert_eq(get(2, 0, 0, 2), READS_HIT);
}

static void flush_during(struct fake *f, int64_t id)
{
    (void)id;
    cache_flush(f->cache); /* a break in continuity */
}

Test(reads, a_flush_during_the_fill_voids_it)
{
    F.version[2] = 1;
    F.during_fill = flush_during;
    get(2, 0, 0, 1);
    F.during_fill = NULL;
    cr_assert_eq(get(2, 0, 0, 1), READS_MISS);
}

Test(reads, a_negative_entry_never_answers_a_minimum_version)
{
    /* replica B cached a 404; a client created the row through replica A and got ETag "1" */
    cr_assert_eq(get(5, 0, CDC_ENOTFOUND, 0), READS_MISS);
    cr_assert_eq(get(5, 0, CDC_ENOTFOUND, 0), READS_HIT, "404 cached as a negative entry");
    F.version[5] = 1;
    cr_assert_eq(get(5, 1, 0, 1), READS_MISS, "X-Min-Version: 1 proves the row exists");
    cr_assert_eq(get(5, 0, 0, 1), READS_HIT, "the row replaced the negative entry");
}

Test(reads, a_minimum_version_above_the_cached_one_goes_to_the_database)
{
    F.version[3] = 1;
    get(3, 0, 0, 1);
    F.version[3] = 2; /* written through another replica; its event not here yet */
    cr_assert_eq(get(3, 2, 0, 2), READS_MISS);
    cr_assert_eq(get(3, 2, 0, 2), READS_HIT);
    cr_assert_eq(get(3, 1, 0, 2), READS_HIT);
}

Test(reads, an_update_installs_the_written_row)
{
    struct row_input in;
    struct buf out;
    int64_t v = 0;
    memset(&in, 0, sizeof(in));
    F.version[4] = 1;
    get(4, 0, 0, 1);
    buf_init(&out, 1 << 16);
    cr_assert_eq(reads_update_row(R, &RES, key_text(4), 1, &in, &out, &v, NULL), 0);
    buf_free(&out);
    cr_assert_eq(v, 2);
    cr_assert_eq(get(4, 0, 0, 2), READS_HIT, "this replica reads its own write at once");
}

Test(reads, a_failed_update_leaves_no_lease_behind)
{
    struct row_input in;
    struct buf out;
    int64_t v = 0;
    memset(&in, 0, sizeof(in));
    F.version[4] = 1;
    buf_init(&out, 1 << 16);
    cr_assert_eq(reads_update_row(R, &RES, key_text(4), 7, &in, &out, &v, NULL), CDC_ECONFLICT);
    buf_free(&out);
    cr_assert_eq(get(4, 0, 0, 1), READS_MISS, "no waiting on an abandoned lease");
    cr_assert_eq(get(4, 0, 0, 1), READS_HIT);
}

static void created_then_changed(struct fake *f, int64_t id)
{
    f->version[id]++;
    cache_evict(f->cache, CK(id)); /* its change event came before the create returned */
}

Test(reads, a_create_installs_unless_an_event_touched_the_new_key)
{
    struct row_input in;
    struct buf out;
    char idbuf[24];
    int64_t v = 0;
    memset(&in, 0, sizeof(in));
    buf_init(&out, 1 << 16);
    cr_assert_eq(reads_create_row(R, &RES, &in, &out, idbuf, sizeof(idbuf), &v, NULL), 0);
    cr_assert_eq(get(id_of(idbuf), 1, 0, 1), READS_HIT);
    F.during_create = created_then_changed;
    out.len = 0;
    cr_assert_eq(reads_create_row(R, &RES, &in, &out, idbuf, sizeof(idbuf), &v, NULL), 0);
    buf_free(&out);
    cr_assert_eq(get(id_of(idbuf), 0, 0, 2), READS_MISS,
                 "the create's row was older than the event");
}

Test(reads, a_delete_evicts)
{
    int64_t dv = 0;
    F.version[6] = 1;
    get(6, 0, 0, 1);
    cr_assert_eq(reads_delete_row(R, &RES, key_text(6), -1, &dv, NULL), 0);
    cr_assert_eq(dv, 1, "a delete tells the deleted row's version (the read-your-writes token)");
    cr_assert_eq(get(6, 0, CDC_ENOTFOUND, 0), READS_MISS);
}

Test(reads, a_database_error_is_not_cached)
{
    F.version[7] = 1;
    F.down = true;
    get(7, 0, CDC_EDB, 0);
    F.down = false;
    cr_assert_eq(get(7, 0, 0, 1), READS_MISS);
}
