/* Rendering: the JSON of an item is byte-for-byte the same from a PostgreSQL row (text columns, as
 * the db module reads them) and from the Debezium after-image of the same row version. Both inputs
 * were recorded from the real pipeline at the same moment (scripts/record-fixtures.py). */
#include "cdcache/debezium.h"
#include "cdcache/item.h"
#include "fixtures.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static void render_row(const cJSON *r, struct buf *out)
{
    struct item_fields f;
    char err[96];
    memset(&f, 0, sizeof(f));
    cr_assert(parse_i64_str(cJSON_GetObjectItem(r, "id")->valuestring, &f.id));
    cr_assert(parse_i64_str(cJSON_GetObjectItem(r, "version")->valuestring, &f.version));
    f.name = cJSON_GetObjectItem(r, "name")->valuestring;
    f.name_len = strlen(f.name);
    f.description = cJSON_GetObjectItem(r, "description")->valuestring;
    f.description_len = strlen(f.description);
    f.price = cJSON_GetObjectItem(r, "price")->valuestring;
    f.created_at = cJSON_GetObjectItem(r, "created_at")->valuestring;
    f.updated_at = cJSON_GetObjectItem(r, "updated_at")->valuestring;
    cr_assert_eq(item_render(&f, out, err, sizeof(err)), 0, "%s", err);
}

Test(item, row_and_after_image_render_identically)
{
    size_t n;
    struct fixture_entry *ev = fixtures_load_events("items-events.jsonl", &n);
    char *rows = fixtures_read("items-rows.jsonl");
    char *save = NULL;
    int compared = 0;

    for (char *line = strtok_r(rows, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(line);
        struct buf a;
        int64_t id, version;
        buf_init(&a, 1 << 20);
        render_row(r, &a);
        parse_i64_str(cJSON_GetObjectItem(r, "id")->valuestring, &id);
        parse_i64_str(cJSON_GetObjectItem(r, "version")->valuestring, &version);
        for (size_t i = 0; i < n; i++) {
            struct dbz_event e;
            char err[128];
            if (dbz_decode(ev[i].fields, ev[i].nfields, &e, err, sizeof(err)) == 0 && e.complete &&
                e.key == id && e.version == version) {
                cr_assert_eq(e.body.len, a.len);
                cr_assert_eq(memcmp(e.body.data, a.data, a.len), 0, "row:   %s\nevent: %s", a.data,
                             e.body.data);
                compared++;
            }
            dbz_event_clear(&e);
        }
        buf_free(&a);
        cJSON_Delete(r);
    }
    cr_assert_eq(compared, 3, "every recorded row has its event");
    free(rows);
    fixtures_free(ev, n);
}

Test(item, price_is_copied_as_decimal_text)
{
    struct item_fields f = {
        1, "n", 1, "d", 1, "99999999.99", "2026-01-02 03:04:05+00", "2026-01-02T03:04:05.120Z", 2};
    struct buf b;
    char err[64];
    buf_init(&b, 4096);
    cr_assert_eq(item_render(&f, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.data, "{\"id\":1,\"name\":\"n\",\"description\":\"d\",\"price\":99999999.99,"
                             "\"created_at\":\"2026-01-02T03:04:05Z\",\"updated_at\":"
                             "\"2026-01-02T03:04:05.12Z\",\"version\":2}");
    buf_free(&b);
}

Test(item, escapes_strings)
{
    struct item_fields f = {1,
                            "a\"b\\c\n\x01",
                            7,
                            "\xc3\xa9",
                            2,
                            "0.00",
                            "2026-01-02 03:04:05+00",
                            "2026-01-02 03:04:05+00",
                            1};
    struct buf b;
    char err[64];
    buf_init(&b, 4096);
    cr_assert_eq(item_render(&f, &b, err, sizeof(err)), 0);
    cr_assert(strstr(b.data, "\"name\":\"a\\\"b\\\\c\\n\\u0001\""));
    cr_assert(strstr(b.data, "\"description\":\"\xc3\xa9\""));
    buf_free(&b);
}

Test(item, rejects_malformed_fields)
{
    struct item_fields f = {
        1, "n", 1, "d", 1, "1e5", "2026-01-02 03:04:05+00", "2026-01-02 03:04:05+00", 1};
    struct buf b;
    char err[64];
    buf_init(&b, 4096);
    cr_assert_neq(item_render(&f, &b, err, sizeof(err)), 0);
    cr_assert(strstr(err, "price"));
    f.price = "1.00";
    f.created_at = "2026-01-02 03:04:05+02";
    cr_assert_neq(item_render(&f, &b, err, sizeof(err)), 0);
    cr_assert(strstr(err, "created_at"));
    cr_assert_eq(b.len, 0, "nothing is appended on failure");
    buf_free(&b);
}

Test(item, time_normalisation)
{
    char out[40];
    cr_assert_eq(item_time_normalize("2026-11-21 11:46:29.739050+00", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "2026-11-21T11:46:29.73905Z");
    cr_assert_eq(item_time_normalize("2026-11-21T11:46:29.000000Z", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "2026-11-21T11:46:29Z");
    cr_assert_eq(item_time_normalize("2026-11-21T11:46:29+00:00", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "2026-11-21T11:46:29Z");
    cr_assert_neq(item_time_normalize("2026-11-21T11:46:29", out, sizeof(out)), 0);
    cr_assert_neq(item_time_normalize("2026-11-21T11:46:29.Z", out, sizeof(out)), 0);
    cr_assert_neq(item_time_normalize("garbage", out, sizeof(out)), 0);
}
