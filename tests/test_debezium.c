/* Decoding of entries recorded from the real pipeline, and of the garbage a stream can carry. */
#include "cdcache/debezium.h"
#include "cdcache/error.h"
#include "fixtures.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fixture_entry *ev;
static size_t nev;
static struct resource *items;

static void load(void)
{
    ev = fixtures_load_events("items-events.jsonl", &nev);
    items = fixtures_items_resource(0);
}
static void unload(void)
{
    fixtures_free(ev, nev);
    fixtures_resource_free(items);
}

TestSuite(debezium, .init = load, .fini = unload);

Test(debezium, recorded_sequence_decodes)
{
    /* insert, update, insert (toast), update leaving the TOASTed column out, delete, tombstone,
     * insert, truncate */
    static const enum dbz_op ops[] = {DBZ_OP_CREATE, DBZ_OP_UPDATE,  DBZ_OP_CREATE,
                                      DBZ_OP_UPDATE, DBZ_OP_DELETE,  DBZ_OP_TOMBSTONE,
                                      DBZ_OP_CREATE, DBZ_OP_TRUNCATE};
    static const bool complete[] = {true, true, true, false, false, false, true, false};
    cr_assert_eq(nev, 8);
    for (size_t i = 0; i < nev; i++) {
        struct dbz_event e;
        char err[128] = "";
        cr_assert_eq(dbz_decode(items, ev[i].fields, ev[i].nfields, &e, err, sizeof(err)), 0,
                     "%s: %s", ev[i].id, err);
        cr_assert_eq(e.op, ops[i], "entry %zu: op %s", i, dbz_op_name(e.op));
        cr_assert_eq(e.complete, complete[i], "entry %zu", i);
        if (e.op != DBZ_OP_TRUNCATE) {
            cr_assert(e.has_key);
            cr_assert_gt(strtoll(e.key, NULL, 10), 0);
        }
        if (e.op != DBZ_OP_TOMBSTONE)
            cr_assert_gt(e.source_ts_ms, 1700000000000LL);
        dbz_event_clear(&e);
    }
}

Test(debezium, update_carries_version_and_price_text)
{
    struct dbz_event e;
    char err[128];
    cr_assert_eq(dbz_decode(items, ev[1].fields, ev[1].nfields, &e, err, sizeof(err)), 0);
    cr_assert_eq(e.version, 2);
    cr_assert(strstr(e.body.data, "\"price\":99999999.99,"), "%s", e.body.data);
    dbz_event_clear(&e);
}

Test(debezium, delete_is_keyed_from_the_entry_key)
{
    struct dbz_event e;
    struct dbz_event ins;
    char err[128];
    cr_assert_eq(dbz_decode(items, ev[0].fields, ev[0].nfields, &ins, err, sizeof(err)), 0);
    cr_assert_eq(dbz_decode(items, ev[4].fields, ev[4].nfields, &e, err, sizeof(err)), 0);
    cr_assert_str_eq(e.key, ins.key);
    dbz_event_clear(&e);
    dbz_event_clear(&ins);
}

static int decode1(const char *k, const char *v, struct dbz_event *e, char *err)
{
    struct dbz_field f = {k, strlen(k), v, strlen(v)};
    return dbz_decode(items, &f, 1, e, err, 128);
}

Test(debezium, extended_format)
{
    struct dbz_field f[3] = {{"key", 3, "{\"id\":5}", 8},
                             {"value", 5, ev[0].fields[0].value, ev[0].fields[0].value_len},
                             {"OP", 2, "c", 1}};
    struct dbz_event e;
    char err[128];
    /* the recorded after-image is for another id: key and after disagree, so this is poison... */
    cr_assert_eq(dbz_decode(items, f, 3, &e, err, sizeof(err)), CDC_EDECODE);
    cr_assert(e.has_key && strcmp(e.key, "5") == 0, "...but the key is still known, for eviction");
    dbz_event_clear(&e);
    f[0].value = ev[0].fields[0].name;
    f[0].value_len = ev[0].fields[0].name_len;
    cr_assert_eq(dbz_decode(items, f, 3, &e, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(e.op, DBZ_OP_CREATE);
    dbz_event_clear(&e);
}

Test(debezium, poison_with_a_readable_key)
{
    static const char *const values[] = {
        "not json",
        "[1,2,3]",
        "{\"op\":\"x\",\"after\":null}",
        "{\"op\":\"u\",\"after\":\"string\"}",
        "{\"op\":\"u\",\"after\":{\"id\":5,\"name\":7,\"description\":\"d\",\"price\":\"1.00\","
        "\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"2026-01-01T00:00:00Z\","
        "\"version\":1}}",
        "{\"op\":\"u\",\"after\":{\"id\":5,\"name\":\"n\",\"description\":\"d\",\"price\":1.5,"
        "\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"2026-01-01T00:00:00Z\","
        "\"version\":1}}",
        "{\"op\":\"u\",\"after\":{\"id\":5,\"name\":\"n\",\"description\":\"d\",\"price\":\"1.00\","
        "\"created_at\":\"yesterday\",\"updated_at\":\"2026-01-01T00:00:00Z\",\"version\":1.5}}",
        "{\"op\":42}",
        "{\"op\":\"u\",\"after\":{\"id\":\"x\"}}", /* wrong type beats "incomplete" */
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct dbz_event e;
        char err[128] = "";
        cr_assert_eq(decode1("{\"id\":5}", values[i], &e, err), CDC_EDECODE, "value %zu decoded",
                     i);
        cr_assert(err[0], "a reason is given");
        cr_assert(e.has_key && strcmp(e.key, "5") == 0, "value %zu: key lost", i);
        dbz_event_clear(&e);
    }
}

Test(debezium, poison_without_a_key)
{
    /* (an id of -1 is a key an int8 column can hold: it names a row, so it is no longer here) */
    static const char *const keys[] = {"garbage",    "{\"id\":\"abc\"}",    "{\"id\":1.5}", "{}",
                                       "{\"id\":5,", "{\"id\":5} trailing", "default"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        struct dbz_event e;
        char err[128];
        cr_assert_eq(decode1(keys[i], "{{{", &e, err), CDC_EDECODE);
        cr_assert_not(e.has_key, "key %zu", i);
        dbz_event_clear(&e);
    }
}

Test(debezium, tombstone_needs_a_key)
{
    struct dbz_event e;
    char err[128];
    cr_assert_eq(decode1("{\"id\":3}", "default", &e, err), 0);
    cr_assert_eq(e.op, DBZ_OP_TOMBSTONE);
    dbz_event_clear(&e);
    cr_assert_eq(decode1("default", "default", &e, err), CDC_EDECODE);
    dbz_event_clear(&e);
}

Test(debezium, missing_column_is_incomplete_not_poison)
{
    struct dbz_event e;
    char err[128];
    cr_assert_eq(
        decode1("{\"id\":5}", "{\"op\":\"u\",\"after\":{\"id\":5,\"name\":\"n\"}}", &e, err), 0);
    cr_assert_not(e.complete);
    dbz_event_clear(&e);
}

Test(debezium, heartbeat)
{
    struct dbz_field f = {"{\"serverName\":\"cdcache\"}", 24, "{\"ts_ms\":1795261548540}", 23};
    struct dbz_watermark wm;
    cr_assert_eq(dbz_decode_watermark(&f, 1, &wm), 0);
    cr_assert_eq(wm.ts_ms, 1795261548540LL);
    cr_assert_not(wm.has_seq, "a heartbeat is no link of the chain");
    f.value = "nope";
    f.value_len = 4;
    cr_assert_eq(dbz_decode_watermark(&f, 1, &wm), CDC_EDECODE);
}

Test(debezium, watermark_change_gives_its_commit_time)
{
    struct dbz_field f = {"{\"id\":1}", 8,
                          "{\"before\":null,\"after\":{\"id\":1,\"ts\":\"2026-11-21T12:00:00.1Z\"},"
                          "\"source\":{\"ts_ms\":1795262400100,\"table\":\"cdcache_watermark\"},"
                          "\"op\":\"u\",\"ts_ms\":1795262409999}",
                          0};
    struct dbz_watermark wm;
    f.value_len = strlen(f.value);
    cr_assert_eq(dbz_decode_watermark(&f, 1, &wm), 0);
    cr_assert_eq(wm.ts_ms, 1795262400100LL, "the commit time, not the time Debezium processed it");
}

/* An update envelope with the given id, name and description JSON (escaped as they are). */
#define UPDATE_FMT                                                                                 \
    "{\"before\":null,\"after\":{\"id\":%s,\"name\":\"%s\",\"description\":\"%s\","                \
    "\"price\":\"1.50\",\"created_at\":\"2026-11-21T11:46:29.739055Z\","                           \
    "\"updated_at\":\"2026-11-21T11:46:29.804486Z\",\"version\":3},"                               \
    "\"source\":{\"ts_ms\":1795261589806},\"op\":\"u\"}"

static char *update_value(const char *id, const char *name, const char *description)
{
    size_t n = strlen(UPDATE_FMT) + strlen(id) + strlen(name) + strlen(description) + 1;
    char *v = malloc(n);
    snprintf(v, n, UPDATE_FMT, id, name, description);
    return v;
}

Test(debezium, escaped_text_renders_like_plain_text)
{
    char *plain = update_value("7", "caf\xc3\xa9 \xf0\x9f\x98\x80", "a/b");
    char *escaped = update_value("7", "caf\\u00e9 \\ud83d\\ude00", "a\\/b");
    struct dbz_event a, b;
    char err[128];
    cr_assert_eq(decode1("{\"id\":7}", plain, &a, err), 0, "%s", err);
    cr_assert_eq(decode1("{\"\\u0069d\":7}", escaped, &b, err), 0, "%s", err);
    cr_assert(a.complete && b.complete);
    cr_assert_str_eq(a.body.data, b.body.data);
    cr_assert(strstr(a.body.data, "\"name\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\""), "%s", a.body.data);
    dbz_event_clear(&a);
    dbz_event_clear(&b);
    free(plain);
    free(escaped);
}

Test(debezium, long_escaped_text_is_kept_whole)
{
    /* Longer than the decoder's stack buffers, so the escaped text takes the allocated path. */
    size_t n = 6000;
    char *desc = malloc(2 * n + 1), *value;
    struct dbz_event e;
    char err[128];
    const char *body_desc;
    for (size_t i = 0; i < n; i++)
        memcpy(desc + 2 * i, "\\n", 2);
    desc[2 * n] = '\0';
    value = update_value("7", "n", desc);
    cr_assert_eq(decode1("{\"id\":7}", value, &e, err), 0, "%s", err);
    cr_assert(e.complete);
    body_desc = strstr(e.body.data, "\"description\":\"");
    cr_assert(body_desc);
    cr_assert_eq(strncmp(body_desc + 15, desc, 2 * n), 0, "the newlines are escaped again");
    cr_assert_eq(body_desc[15 + 2 * n], '"');
    dbz_event_clear(&e);
    free(value);
    free(desc);
}

Test(debezium, ids_beyond_2_pow_53_are_exact)
{
    char *value = update_value("9007199254740993", "n", "d");
    struct dbz_event e;
    char err[128];
    cr_assert_eq(decode1("{\"id\":9007199254740993}", value, &e, err), 0, "%s", err);
    cr_assert_str_eq(e.key, "9007199254740993");
    cr_assert(strstr(e.body.data, "{\"id\":9007199254740993,"), "%s", e.body.data);
    dbz_event_clear(&e);
    free(value);
}

Test(debezium, first_of_duplicated_members_counts)
{
    struct dbz_event e;
    char err[128];
    cr_assert_eq(decode1("{\"id\":5}", "{\"op\":\"d\",\"op\":\"u\",\"after\":null}", &e, err), 0,
                 "%s", err);
    cr_assert_eq(e.op, DBZ_OP_DELETE);
    dbz_event_clear(&e);
}

Test(debezium, trailing_data_is_poison)
{
    char *value = update_value("5", "n", "d");
    size_t n = strlen(value);
    char *bad = malloc(n + 3);
    struct dbz_event e;
    char err[128] = "";
    snprintf(bad, n + 3, "%s x", value);
    cr_assert_eq(decode1("{\"id\":5}", bad, &e, err), CDC_EDECODE);
    cr_assert(strstr(err, "trailing"), "%s", err);
    cr_assert(e.has_key && strcmp(e.key, "5") == 0);
    dbz_event_clear(&e);
    free(value);
    free(bad);
}

static int decode_wm(const char *value, struct dbz_watermark *wm)
{
    struct dbz_field f = {"{\"id\":1}", 8, value, strlen(value)};
    return dbz_decode_watermark(&f, 1, wm);
}

Test(debezium, watermark_chain_link)
{
    struct dbz_watermark wm;
    cr_assert_eq(decode_wm("{\"before\":null,\"after\":{\"id\":1,\"ts\":\"2026-11-22T00:00:00Z\","
                           "\"seq\":41,\"origin\":1795300000123456},\"source\":{\"ts_ms\":"
                           "1795262400100,\"sequence\":\"[\\\"26392864\\\",\\\"26670824\\\"]\"},"
                           "\"op\":\"u\",\"ts_ms\":1795262409999}",
                           &wm),
                 0);
    cr_assert(wm.has_seq);
    cr_assert_eq(wm.seq, 41);
    cr_assert_eq(wm.origin, 1795300000123456LL);
    cr_assert_eq(wm.ts_ms, 1795262400100LL);
    cr_assert_not(wm.source_fresh, "a previous commit is named");
    /* the first transaction after a start without offsets */
    cr_assert_eq(decode_wm("{\"after\":{\"id\":1,\"seq\":42,\"origin\":7},\"source\":{\"ts_ms\":5,"
                           "\"sequence\":\"[null,\\\"26670824\\\"]\"},\"op\":\"u\"}",
                           &wm),
                 0);
    cr_assert(wm.source_fresh);
    /* a row from before the chain's migration, or a heartbeat: no link, no claim */
    cr_assert_eq(
        decode_wm("{\"after\":{\"id\":1,\"ts\":\"x\"},\"source\":{\"ts_ms\":5},\"op\":\"u\"}", &wm),
        0);
    cr_assert_not(wm.has_seq);
    cr_assert_not(wm.source_fresh);
    cr_assert_eq(
        decode_wm("{\"after\":{\"id\":1,\"seq\":\"x\",\"origin\":7},\"source\":{\"ts_ms\":5},"
                  "\"op\":\"u\"}",
                  &wm),
        0);
    cr_assert_not(wm.has_seq, "a seq that is not an integer is no link");
}

Test(debezium, a_change_after_a_fresh_start_says_so)
{
    struct dbz_event e;
    char err[160];
    const char *v = "{\"before\":null,\"after\":{\"id\":2,\"name\":\"n\",\"description\":\"d\","
                    "\"price\":\"1.00\",\"created_at\":\"2026-11-21T11:46:29.739055Z\","
                    "\"updated_at\":\"2026-11-21T11:46:29.739055Z\",\"version\":1},\"source\":{"
                    "\"ts_ms\":1,\"sequence\":\"[null,\\\"1\\\"]\"},\"op\":\"c\"}";
    struct dbz_field f = {"{\"id\":2}", 8, v, strlen(v)};
    cr_assert_eq(dbz_decode(items, &f, 1, &e, err, sizeof(err)), 0, "%s", err);
    cr_assert(e.source_fresh);
    dbz_event_clear(&e);
}
