/* Rows (row.h) through the items descriptor: the JSON of a row is byte-for-byte the same from a
 * PostgreSQL row (text columns, as sql.c reads them) and from the Debezium after-image of the same
 * row version, both recorded from the real pipeline at the same moment
 * (scripts/record-fixtures.py); and request bodies are checked by the descriptor's rules. */
#include "cdcache/debezium.h"
#include "cdcache/error.h"
#include "cdcache/row.h"
#include "fixtures.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static struct resource *items;

static void setup(void)
{
    items = fixtures_items_resource(0);
}
static void teardown(void)
{
    fixtures_resource_free(items);
}
TestSuite(row, .init = setup, .fini = teardown);

/* Renders a query row given as the column texts in table order (the select list: the exposed
 * columns, then the version column again). */
static int render(const char *const *cols, struct buf *out, int64_t *version)
{
    const char *vals[8];
    int lens[8];
    size_t n = row_select_count(items);

    cr_assert(n == 8 || (n == 7 && !items->columns[6].exposed),
              "items' seven columns, then its version column");
    for (size_t i = 0; i < n; i++) {
        vals[i] = cols[row_select_column(items, i)];
        lens[i] = vals[i] ? (int)strlen(vals[i]) : 0;
    }
    return row_render_pg(items, vals, lens, out, version);
}

Test(row, query_row_and_after_image_render_identically)
{
    static const char *const names[] = {"id",         "name",       "description", "price",
                                        "created_at", "updated_at", "version"};
    size_t n;
    struct fixture_entry *ev = fixtures_load_events("items-events.jsonl", &n);
    char *rows = fixtures_read("items-rows.jsonl");
    char *save = NULL;
    int compared = 0;

    for (char *line = strtok_r(rows, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(line);
        const char *cols[7];
        struct buf a;
        int64_t version = 0;
        buf_init(&a, 1 << 20);
        for (int c = 0; c < 7; c++)
            cols[c] = cJSON_GetObjectItem(r, names[c])->valuestring;
        cr_assert_eq(render(cols, &a, &version), 0);
        for (size_t i = 0; i < n; i++) {
            struct dbz_event e;
            char err[128];
            if (dbz_decode(items, ev[i].fields, ev[i].nfields, &e, err, sizeof(err)) == 0 &&
                e.complete && strcmp(e.key, cols[0]) == 0 && e.version == version) {
                cr_assert_eq(e.body.len, a.len, "row:   %s\nevent: %s", a.data, e.body.data);
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

Test(row, items_render_as_they_always_have)
{
    const char *cols[] = {
        "1", "n", "d", "99999999.99", "2026-01-02 03:04:05+00", "2026-01-02 03:04:05.12+00", "2"};
    struct buf b;
    int64_t v = 0;
    buf_init(&b, 4096);
    cr_assert_eq(render(cols, &b, &v), 0);
    cr_assert_eq(v, 2);
    cr_assert_str_eq(b.data, "{\"id\":1,\"name\":\"n\",\"description\":\"d\",\"price\":99999999.99,"
                             "\"created_at\":\"2026-01-02T03:04:05Z\",\"updated_at\":"
                             "\"2026-01-02T03:04:05.12Z\",\"version\":2}");
    buf_free(&b);
}

Test(row, escapes_strings_and_writes_null)
{
    const char *cols[] = {"1",    "a\"b\\c\n\x01",          NULL,
                          "0.00", "2026-01-02 03:04:05+00", "2026-01-02 03:04:05+00",
                          "1"};
    struct buf b;
    int64_t v;
    buf_init(&b, 4096);
    cr_assert_eq(render(cols, &b, &v), 0);
    cr_assert(strstr(b.data, "\"name\":\"a\\\"b\\\\c\\n\\u0001\""), "%s", b.data);
    cr_assert(strstr(b.data, "\"description\":null"), "%s", b.data);
    buf_free(&b);
}

Test(row, an_unexposed_column_is_left_out)
{
    const char *cols[] = {"1", "n", "d", "1.00", "2026-01-02 03:04:05+00", "2026-01-02 03:04:05+00",
                          "7"};
    struct buf b;
    int64_t v = 0;
    items->columns[6].exposed = false; /* as cdcache_version is */
    buf_init(&b, 4096);
    cr_assert_eq(render(cols, &b, &v), 0);
    cr_assert_eq(v, 7, "the version still comes back, for the ETag");
    cr_assert_null(strstr(b.data, "version"), "%s", b.data);
    buf_free(&b);
}

static int parse(const char *body, enum row_mode mode, struct row_input *in, char *field)
{
    char err[256];
    return row_input_parse(items, body, strlen(body), mode, in, err, sizeof(err), field, 128);
}

Test(row, create_takes_the_writable_columns)
{
    struct row_input in;
    char field[128];
    cr_assert_eq(
        parse("{\"name\":\"a\",\"description\":\"b\",\"price\":\"19.90\"}", ROW_CREATE, &in, field),
        0, "%s", field);
    cr_assert_eq(in.n, 3);
    cr_assert_str_eq(in.val[2], "19.90");
    row_input_free(&in);
    cr_assert_eq(
        parse("{\"name\":\"a\",\"description\":\"b\",\"price\":12.345}", ROW_CREATE, &in, field),
        CDC_EINVAL, "numeric(10,2) holds two decimals");
    cr_assert_str_eq(field, "price");
}

Test(row, refuses_by_name)
{
    struct row_input in;
    char field[128];
    cr_assert_eq(parse("{\"name\":\"a\",\"description\":\"b\",\"price\":1,\"colour\":1}",
                       ROW_CREATE, &in, field),
                 CDC_EINVAL);
    cr_assert_str_eq(field, "colour");
    cr_assert_eq(parse("{\"name\":\"a\",\"description\":\"b\"}", ROW_CREATE, &in, field),
                 CDC_EINVAL);
    cr_assert_str_eq(field, "price", "a NOT NULL column without a default is required");
    cr_assert_eq(parse("{\"version\":3}", ROW_PATCH, &in, field), CDC_EINVAL);
    cr_assert_str_eq(field, "version", "the version column is read-only");
    cr_assert_eq(parse("{\"name\":null}", ROW_PATCH, &in, field), CDC_EINVAL);
    cr_assert_str_eq(field, "name", "NOT NULL");
    cr_assert_eq(parse("{\"name\":1}", ROW_PATCH, &in, field), CDC_EINVAL);
    cr_assert_str_eq(field, "name", "a wrong type");
    cr_assert_eq(parse("{}", ROW_PATCH, &in, field), CDC_EINVAL, "a patch names something");
    cr_assert_eq(parse("{\"id\":7,\"name\":\"a\",\"description\":\"b\",\"price\":1}", ROW_CREATE,
                       &in, field),
                 CDC_EINVAL);
    cr_assert_str_eq(field, "id", "a key from a sequence is the server's to give");
    cr_assert_eq(parse("[1]", ROW_PATCH, &in, field), CDC_EINVAL);
    cr_assert_eq(parse("{\"name\":\"a\"} x", ROW_PATCH, &in, field), CDC_EINVAL);
}

Test(row, upsert_reads_the_key_as_number_or_string)
{
    struct row_input in;
    char field[128];
    cr_assert_eq(parse("{\"id\":\"1\",\"name\":\"a\",\"description\":\"b\",\"price\":1}",
                       ROW_UPSERT, &in, field),
                 0, "%s", field);
    cr_assert(in.has_key);
    cr_assert_str_eq(in.key, "1");
    for (size_t i = 0; i < in.n; i++)
        cr_assert_neq(in.col[i], items->key, "the key names the row; it is not written");
    row_input_free(&in);
    cr_assert_eq(parse("{\"id\":\"x\",\"name\":\"a\",\"description\":\"b\",\"price\":1}",
                       ROW_UPSERT, &in, field),
                 CDC_EINVAL);
    cr_assert_str_eq(field, "id");
}

Test(row, arrays_are_written_in_one_dimension)
{
    struct row_input in;
    char field[128];
    items->columns[1].type.array = true; /* name as text[], for this test */
    cr_assert_eq(parse("{\"name\":[\"a\",null,\"[b]\"]}", ROW_PATCH, &in, field), 0, "%s", field);
    cr_assert_str_eq(in.val[0], "{\"a\",NULL,\"[b]\"}");
    row_input_free(&in);
    cr_assert_eq(parse("{\"name\":[[\"a\"],\"\"]}", ROW_PATCH, &in, field), CDC_EINVAL);
    cr_assert_str_eq(field, "name", "a ragged or nested array never reaches PostgreSQL");
}

Test(row, replace_sets_a_left_out_nullable_column_to_null)
{
    struct row_input in;
    char field[128];
    items->columns[2].nullable = true; /* description, for this test */
    cr_assert_eq(parse("{\"name\":\"a\",\"price\":1}", ROW_REPLACE, &in, field), 0, "%s", field);
    cr_assert_eq(in.n, 3);
    cr_assert_eq(in.col[2], 2);
    cr_assert_null(in.val[2]);
    row_input_free(&in);
}
