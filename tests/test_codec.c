/* The row codec: per kind, what a PostgreSQL text value, a Debezium value and a request value
 * become; and the cross-check that makes the cache's promise: for every row captured from the real
 * pipeline (tests/fixtures/shop-*.jsonl, scripts/record-shop-fixtures.py), rendering the query
 * row's columns and the change event's after-image gives the same bytes, or the event is refused
 * (evicts). */
#include "cdcache/codec.h"
#include "cdcache/error.h"
#include "cdcache/json.h"
#include "fixtures.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct codec_type ty(enum codec_kind k, bool array, int32_t typmod)
{
    struct codec_type t = {.kind = k, .array = array, .typmod = typmod, .oid = 0};
    return t;
}

static int pg(struct codec_type t, const char *text, char *o, size_t cap)
{
    struct buf b;
    int rc;
    buf_init(&b, 1 << 20);
    rc = codec_render_pg(&t, text, strlen(text), &b);
    snprintf(o, cap, "%s", b.data ? b.data : "");
    if (rc == 0)
        cr_assert_eq(strlen(o), b.len);
    buf_free(&b);
    return rc;
}

static struct json_span span_of(const char *json)
{
    struct json_cursor c;
    struct json_span v;
    const char *why;
    json_cursor_init(&c, json, strlen(json));
    cr_assert_eq(json_value(&c, &v, &why), 0, "bad test JSON: %s", json);
    return v;
}

static int dbz(struct codec_type t, const char *json, char *o, size_t cap)
{
    struct buf b;
    struct json_span v = span_of(json);
    int rc;
    buf_init(&b, 1 << 20);
    rc = codec_render_dbz(&t, &v, &b);
    snprintf(o, cap, "%s", b.data ? b.data : "");
    buf_free(&b);
    return rc;
}

struct rcase {
    enum codec_kind kind;
    bool array;
    int32_t typmod;
    const char *in;
    const char *want; /* NULL: refused */
};

Test(codec, kind_of_names_every_kind)
{
    cr_assert_eq(codec_kind_of("int8", 'b'), CODEC_INT8);
    cr_assert_eq(codec_kind_of("bpchar", 'b'), CODEC_TEXT);
    cr_assert_eq(codec_kind_of("jsonb", 'b'), CODEC_JSON);
    cr_assert_eq(codec_kind_of("timestamptz", 'b'), CODEC_TIMESTAMPTZ);
    cr_assert_eq(codec_kind_of("mood", 'e'), CODEC_ENUM);
    cr_assert_eq(codec_kind_of("interval", 'b'), CODEC_OTHER);
    cr_assert_eq(codec_kind_of("money", 'b'), CODEC_OTHER);
}

Test(codec, render_pg_per_kind)
{
    static const struct rcase cases[] = {
        {CODEC_INT4, false, -1, "-42", "-42"},
        {CODEC_INT8, false, -1, "9223372036854775807", "9223372036854775807"},
        {CODEC_INT4, false, -1, "042", NULL},
        {CODEC_INT4, false, -1, "4x", NULL},
        {CODEC_NUMERIC, false, -1, "1.50", "1.50"},
        {CODEC_NUMERIC, false, -1, "-0.000000000000000000000001", "-0.000000000000000000000001"},
        {CODEC_NUMERIC, false, -1, "NaN", "\"NaN\""},
        {CODEC_NUMERIC, false, -1, "-Infinity", "\"-Infinity\""},
        {CODEC_NUMERIC, false, -1, "1e5", NULL},
        {CODEC_FLOAT8, false, -1, "1e+20", "100000000000000000000"},
        {CODEC_FLOAT8, false, -1, "1e+21", "1e+21"},
        {CODEC_FLOAT8, false, -1, "0.1", "0.1"},
        {CODEC_FLOAT8, false, -1, "-0", "-0"},
        {CODEC_FLOAT8, false, -1, "5e-324", "5e-324"},
        {CODEC_FLOAT8, false, -1, "1e-07", "1e-7"},
        {CODEC_FLOAT8, false, -1, "1.2345678901234568e+20", "123456789012345680000"},
        {CODEC_FLOAT8, false, -1, "NaN", "\"NaN\""},
        {CODEC_FLOAT4, false, -1, "3.4028235e+38", "3.4028235e+38"},
        {CODEC_FLOAT4, false, -1, "0.1", "0.1"},
        {CODEC_FLOAT4, false, -1, "-Infinity", "\"-Infinity\""},
        {CODEC_BOOL, false, -1, "t", "true"},
        {CODEC_BOOL, false, -1, "f", "false"},
        {CODEC_BOOL, false, -1, "true", NULL},
        {CODEC_TEXT, false, -1, "a\"b\\c\n\x01", "\"a\\\"b\\\\c\\n\\u0001\""},
        {CODEC_UUID, false, -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
         "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""},
        {CODEC_JSON, false, -1, "{\"a\": [1, 2.50], \"b\": \"x y\"}",
         "{\"a\":[1,2.50],\"b\":\"x y\"}"},
        {CODEC_JSON, false, -1, "  \"s\"  ", "\"s\""},
        {CODEC_JSON, false, -1, "{\"a\":", NULL},
        {CODEC_DATE, false, -1, "2026-01-02", "\"2026-01-02\""},
        {CODEC_DATE, false, -1, "0044-03-15 BC", "\"0044-03-15 BC\""},
        {CODEC_DATE, false, -1, "infinity", "\"infinity\""},
        {CODEC_DATE, false, -1, "5874897-12-31", "\"5874897-12-31\""},
        {CODEC_DATE, false, -1, "4714-11-24 BC", "\"4714-11-24 BC\""},
        {CODEC_DATE, false, -1, "2026-02-30", NULL},
        {CODEC_TIME, false, -1, "03:04:05.500", "\"03:04:05.5\""},
        {CODEC_TIME, false, -1, "24:00:00", "\"24:00:00\""},
        {CODEC_TIMESTAMP, false, -1, "2026-01-02 03:04:05.120", "\"2026-01-02T03:04:05.12\""},
        {CODEC_TIMESTAMP, false, -1, "10000-01-01 00:00:00", "\"10000-01-01T00:00:00\""},
        {CODEC_TIMESTAMPTZ, false, -1, "2026-01-02 03:04:05.5+00", "\"2026-01-02T03:04:05.5Z\""},
        {CODEC_TIMESTAMPTZ, false, -1, "2026-01-02 03:04:05+00", "\"2026-01-02T03:04:05Z\""},
        {CODEC_TIMESTAMPTZ, false, -1, "0044-03-15 12:00:00+00 BC", "\"0044-03-15T12:00:00Z BC\""},
        {CODEC_TIMESTAMPTZ, false, -1, "-infinity", "\"-infinity\""},
        {CODEC_TIMESTAMPTZ, false, -1, "2026-01-02 03:04:05+02", NULL},
        {CODEC_BYTEA, false, -1, "\\x000102ff", "\"AAEC/w==\""},
        {CODEC_BYTEA, false, -1, "\\x", "\"\""},
        {CODEC_BYTEA, false, -1, "\\x0", NULL},
        {CODEC_ENUM, false, -1, "with \"quote\"", "\"with \\\"quote\\\"\""},
        {CODEC_OTHER, false, -1, "$12.34", "\"$12.34\""},
        {CODEC_INT4, true, -1, "{1,NULL,-3}", "[1,null,-3]"},
        {CODEC_INT4, true, -1, "{{1,2},{3,4}}", "[[1,2],[3,4]]"},
        {CODEC_INT4, true, -1, "[0:1]={7,8}", "[7,8]"},
        {CODEC_INT4, true, -1, "{}", "[]"},
        {CODEC_TEXT, true, -1, "{a,\"b c\",NULL,\"NULL\",\"q\\\"\\\\\",\"\"}",
         "[\"a\",\"b c\",null,\"NULL\",\"q\\\"\\\\\",\"\"]"},
        {CODEC_JSON, true, -1, "{\"{\\\"k\\\": 1}\",null}", "[{\"k\":1},null]"},
        {CODEC_TIMESTAMPTZ, true, -1, "{\"2026-01-02 03:04:05+00\"}", "[\"2026-01-02T03:04:05Z\"]"},
        {CODEC_INT4, true, -1, "{1,2", NULL},
        {CODEC_INT4, true, -1, "{1,2}x", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char o[512];
        int rc = pg(ty(cases[i].kind, cases[i].array, cases[i].typmod), cases[i].in, o, sizeof(o));
        if (cases[i].want) {
            cr_expect_eq(rc, 0, "refused: %s", cases[i].in);
            cr_expect_str_eq(o, cases[i].want, "%s", cases[i].in);
        } else {
            cr_expect_eq(rc, CDC_EINVAL, "accepted: %s -> %s", cases[i].in, o);
            cr_expect_str_eq(o, "", "left a partial value for %s", cases[i].in);
        }
    }
}

Test(codec, render_dbz_per_kind)
{
    static const struct rcase cases[] = {
        {CODEC_INT8, false, -1, "-9223372036854775808", "-9223372036854775808"},
        {CODEC_INT2, false, -1, "32768", NULL},
        {CODEC_INT4, false, -1, "1.0", NULL},
        {CODEC_NUMERIC, false, -1, "\"12.30\"", "12.30"},
        {CODEC_NUMERIC, false, -1, "\"NAN\"", "\"NaN\""},
        {CODEC_NUMERIC, false, -1, "\"POSITIVE_INFINITY\"", "\"Infinity\""},
        {CODEC_NUMERIC, false, -1, "\"NEGATIVE_INFINITY\"", "\"-Infinity\""},
        {CODEC_NUMERIC, false, -1, "\"1E+5\"", NULL},
        {CODEC_FLOAT8, false, -1, "1.0E20", "100000000000000000000"},
        {CODEC_FLOAT8, false, -1, "4.9E-324", "5e-324"},
        {CODEC_FLOAT8, false, -1, "-0.0", "-0"},
        {CODEC_FLOAT8, false, -1, "\"NaN\"", "\"NaN\""},
        {CODEC_FLOAT8, false, -1, "\"12\"", NULL},
        {CODEC_FLOAT4, false, -1, "3.4028235E38", "3.4028235e+38"},
        {CODEC_FLOAT4, false, -1, "1.4E-45", "1e-45"},
        {CODEC_FLOAT4, false, -1, "1.6777216E7", "16777216"},
        {CODEC_BOOL, false, -1, "true", "true"},
        {CODEC_BOOL, false, -1, "1", NULL},
        {CODEC_TEXT, false, -1, "\"\\u00e9\\uD83D\\uDE00\\/\"", "\"\xc3\xa9\xf0\x9f\x98\x80/\""},
        {CODEC_TEXT, false, -1, "\"plain \xc3\xa9\"", "\"plain \xc3\xa9\""},
        {CODEC_TEXT, false, -1, "\"__debezium_unavailable_value\"", NULL},
        {CODEC_TEXT, false, -1, "null", "null"},
        {CODEC_JSON, false, -1, "\"{\\\"a\\\": [1,  2]}\"", "{\"a\":[1,2]}"},
        {CODEC_JSON, false, -1, "{\"a\":1}", NULL},
        {CODEC_DATE, false, -1, "20455", "\"2026-01-02\""},
        {CODEC_DATE, false, -1, "-735160", "\"0044-03-15 BC\""},
        {CODEC_DATE, false, -1, "-2147472692", "\"infinity\""},
        {CODEC_DATE, false, -1, "-2147472691", "\"-infinity\""},
        {CODEC_DATE, false, -1, "2145042905", "\"5874897-12-31\""},
        {CODEC_DATE, false, -1, "-2440588", "\"4714-11-24 BC\""},
        {CODEC_DATE, false, -1, "-2440589", NULL},
        {CODEC_TIME, false, -1, "11045500000", "\"03:04:05.5\""},
        {CODEC_TIME, false, -1, "86400000000", "\"24:00:00\""},
        {CODEC_TIME, false, -1, "86400000001", NULL},
        {CODEC_TIMESTAMP, false, -1, "1767323045000000", "\"2026-01-02T03:04:05\""},
        {CODEC_TIMESTAMP, false, -1, "-2203891200999999", "\"1900-02-28T23:59:59.000001\""},
        {CODEC_TIMESTAMP, false, 3, "1767323045123", "\"2026-01-02T03:04:05.123\""},
        {CODEC_TIMESTAMP, false, 3, "-9223372036832400", "\"-infinity\""},
        {CODEC_TIMESTAMP, false, -1, "9223372036825200000", "\"infinity\""},
        {CODEC_TIMESTAMP, false, -1, "-62167219200000000", "\"0001-01-01T00:00:00 BC\""},
        {CODEC_TIMESTAMPTZ, false, -1, "\"2026-01-02T03:04:05.500000Z\"",
         "\"2026-01-02T03:04:05.5Z\""},
        {CODEC_TIMESTAMPTZ, false, -1, "\"-0043-03-15T12:00:00.000000Z\"",
         "\"0044-03-15T12:00:00Z BC\""},
        {CODEC_TIMESTAMPTZ, false, -1, "\"infinity\"", "\"infinity\""},
        {CODEC_TIMESTAMPTZ, false, -1, "\"2026-01-02T03:04:05+01:00\"", NULL},
        {CODEC_BYTEA, false, -1, "\"AAEC/w==\"", "\"AAEC/w==\""},
        {CODEC_BYTEA, false, -1, "\"AAEC/x==\"", NULL},
        {CODEC_BYTEA, false, -1, "\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"", NULL},
        {CODEC_UUID, false, -1, "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
         "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""},
        {CODEC_OTHER, false, -1, "\"192.168.0.1/24\"", NULL},
        {CODEC_INT4, true, -1, "[1,2,3]", "[1,2,3]"},
        {CODEC_INT4, true, -1, "[null,-1]", NULL},   /* a null may be a flattened sub-array */
        {CODEC_INT4, true, -1, "[null,null]", NULL}, /* {{1,2},{3,4}} */
        {CODEC_TEXT, true, -1, "[\"[Ljava.lang.String;@17eba455\"]", NULL},
        {CODEC_TEXT, true, -1, "[\"__debezium_unavailable_value\"]", NULL},
        {CODEC_NUMERIC, true, -1, "[\"1.50\",\"-0.001\"]", "[1.50,-0.001]"},
        {CODEC_NUMERIC, true, -1, "null",
         NULL},                               /* how {NaN} and an unchanged TOASTed value arrive */
        {CODEC_BOOL, true, -1, "null", NULL}, /* an unchanged TOASTed bool[] arrives as null */
        {CODEC_JSON, true, -1, "[\"{\\\"k\\\": \\\"v\\\"}\",\"null\"]", "[{\"k\":\"v\"},null]"},
        {CODEC_DATE, true, -1, "[20455,-1]", "[\"2026-01-02\",\"1969-12-31\"]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char o[512];
        int rc = dbz(ty(cases[i].kind, cases[i].array, cases[i].typmod), cases[i].in, o, sizeof(o));
        if (cases[i].want) {
            cr_expect_eq(rc, 0, "refused: %s (%d)", cases[i].in, rc);
            cr_expect_str_eq(o, cases[i].want, "%s", cases[i].in);
        } else {
            cr_expect(rc == CDC_EDECODE || rc == CDC_EREJECTED, "accepted: %s -> %s", cases[i].in,
                      o);
            cr_expect_str_eq(o, "", "left a partial value for %s", cases[i].in);
        }
    }
}

Test(codec, dbz_array_null_is_null_only_where_debezium_has_a_placeholder)
{
    static const struct {
        enum codec_kind kind;
        uint32_t oid;
        bool renders;
    } cases[] = {
        {CODEC_TEXT, 1009, true},         {CODEC_TEXT, 1015, true},    {CODEC_JSON, 3807, true},
        {CODEC_BYTEA, 1001, true},        {CODEC_INT4, 1007, true},    {CODEC_INT8, 1016, true},
        {CODEC_DATE, 1182, true},         {CODEC_UUID, 2951, true},    {CODEC_INT2, 1005, false},
        {CODEC_BOOL, 1000, false},        {CODEC_FLOAT8, 1022, false}, {CODEC_NUMERIC, 1231, false},
        {CODEC_TIMESTAMPTZ, 1185, false}, {CODEC_ENUM, 16390, false},  {CODEC_INT4, 0, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct codec_type t = ty(cases[i].kind, true, -1);
        char o[64];
        t.oid = cases[i].oid;
        if (cases[i].renders) {
            cr_expect_eq(dbz(t, "null", o, sizeof(o)), 0, "oid %u", cases[i].oid);
            cr_expect_str_eq(o, "null");
        } else {
            cr_expect_eq(dbz(t, "null", o, sizeof(o)), CDC_EREJECTED, "oid %u", cases[i].oid);
        }
    }
}

Test(codec, dbz_placeholders_per_shape)
{
    static const struct {
        enum codec_kind kind;
        bool array;
        const char *json;
        bool placeholder;
    } cases[] = {
        {CODEC_TEXT, false, "\"__debezium_unavailable_value\"", true},
        {CODEC_JSON, false, "\"__debezium_unavailable_value\"", true},
        {CODEC_NUMERIC, false, "\"__debezium_unavailable_value\"", true},
        {CODEC_BYTEA, false, "\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"", true},
        {CODEC_TEXT, false, "\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"", false},
        {CODEC_TEXT, true, "[\"__debezium_unavailable_value\"]", true},
        {CODEC_BYTEA, true, "[\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"]", true},
        {CODEC_UUID, true, "[\"b68a35a7-17ad-35b3-af2a-ae46edb4545a\"]", true},
        {CODEC_INT4, true,
         "[95,95,100,101,98,101,122,105,117,109,95,117,110,97,118,97,105,108,97,98,108,101,95,118,"
         "97,108,117,101]",
         true},
        {CODEC_INT4, true,
         "[95,95,100,101,98,101,122,105,117,109,95,117,110,97,118,97,105,108,97,98,108,101,95,118,"
         "97,108,117]",
         false},
        {CODEC_INT4, true, "[95,95]", false},
        {CODEC_TEXT, true, "[\"__debezium_unavailable_value\",\"x\"]", false},
        {CODEC_TEXT, false, "\"other\"", false},
        {CODEC_TEXT, false, "null", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct codec_type t = ty(cases[i].kind, cases[i].array, -1);
        struct json_span v = span_of(cases[i].json);
        char o[256];
        cr_expect_eq(codec_dbz_unavailable(&t, &v), cases[i].placeholder, "%s", cases[i].json);
        if (cases[i].placeholder)
            cr_expect_eq(dbz(t, cases[i].json, o, sizeof(o)), CDC_EREJECTED, "%s", cases[i].json);
    }
}

struct pcase {
    enum codec_kind kind;
    bool array;
    int32_t typmod;
    const char *json;
    const char *want; /* the parameter text, or NULL: refused with reason */
    const char *reason;
};

#define NUMERIC_TYPMOD(p, s) ((int32_t)((((p) << 16) | (s)) + 4))

Test(codec, param_accepts_and_refuses_naming_the_reason)
{
    static const struct pcase cases[] = {
        {CODEC_INT4, false, -1, "42", "42", NULL},
        {CODEC_INT4, false, -1, "42.0", "42", NULL},
        {CODEC_INT4, false, -1, "-0", "0", NULL},
        {CODEC_INT4, false, -1, "2147483648", NULL, "out of range for int4"},
        {CODEC_INT2, false, -1, "-32769", NULL, "out of range for int2"},
        {CODEC_INT8, false, -1, "9223372036854775807", "9223372036854775807", NULL},
        {CODEC_INT8, false, -1, "9223372036854775808", NULL, "out of range for int8"},
        {CODEC_INT4, false, -1, "1.5", NULL, "not an integer"},
        {CODEC_INT4, false, -1, "1e3", NULL, "not an integer"},
        {CODEC_INT4, false, -1, "\"42\"", NULL, "not an integer"},
        {CODEC_NUMERIC, false, NUMERIC_TYPMOD(12, 2), "12.34", "12.34", NULL},
        {CODEC_NUMERIC, false, NUMERIC_TYPMOD(12, 2), "\"0012.3\"", "12.3", NULL},
        {CODEC_NUMERIC, false, NUMERIC_TYPMOD(12, 2), "1.234", NULL, "more than 2 decimals"},
        {CODEC_NUMERIC, false, NUMERIC_TYPMOD(12, 2), "12345678901", NULL,
         "out of range for numeric(12,2)"},
        {CODEC_NUMERIC, false, NUMERIC_TYPMOD(12, 2), "1e400", NULL,
         "not a plain decimal such as 12.34 (no exponent)"},
        {CODEC_NUMERIC, false, -1, "\"NaN\"", NULL, "not a finite number"},
        {CODEC_NUMERIC, false, -1, "123456789012345678901234567890.000000000000000000001",
         "123456789012345678901234567890.000000000000000000001", NULL},
        {CODEC_FLOAT8, false, -1, "1e20", "1e20", NULL},
        {CODEC_FLOAT8, false, -1, "\"NaN\"", "NaN", NULL},
        {CODEC_FLOAT8, false, -1, "1e400", NULL, "out of range for float8"},
        {CODEC_FLOAT4, false, -1, "1e39", NULL, "out of range for float4"},
        {CODEC_BOOL, false, -1, "true", "t", NULL},
        {CODEC_BOOL, false, -1, "\"true\"", NULL, "not a boolean"},
        {CODEC_TEXT, false, -1, "\"a\\nb\"", "a\nb", NULL},
        {CODEC_TEXT, false, 14,
         "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"",
         "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", NULL},
        {CODEC_TEXT, false, 14, "\"12345678901\"", NULL, "longer than 10 characters"},
        {CODEC_TEXT, false, -1, "5", NULL, "not a string"},
        {CODEC_UUID, false, -1, "\"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\"",
         "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", NULL},
        {CODEC_UUID, false, -1, "\"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}\"", NULL, "not a uuid"},
        {CODEC_UUID, false, -1, "\"a0eebc999c0b4ef8bb6d6bb9bd380a11\"", NULL, "not a uuid"},
        {CODEC_DATE, false, -1, "\"2024-02-29\"", "2024-02-29", NULL},
        {CODEC_DATE, false, -1, "\"2023-02-29\"", NULL, "not a date (YYYY-MM-DD)"},
        {CODEC_TIME, false, -1, "\"03:04:05.123456\"", "03:04:05.123456", NULL},
        {CODEC_TIME, false, -1, "\"25:00:00\"", NULL, "not a time (HH:MM:SS[.ffffff])"},
        {CODEC_TIMESTAMP, false, -1, "\"2026-01-02T03:04:05\"", "2026-01-02T03:04:05", NULL},
        {CODEC_TIMESTAMP, false, -1, "\"2026-01-02T03:04:05Z\"", NULL,
         "not a timestamp (YYYY-MM-DDTHH:MM:SS[.ffffff], no offset)"},
        {CODEC_TIMESTAMPTZ, false, -1, "\"2026-01-02T03:04:05.5Z\"", "2026-01-02T03:04:05.5Z",
         NULL},
        {CODEC_TIMESTAMPTZ, false, -1, "\"2026-01-02T03:04:05+02:00\"", "2026-01-02T03:04:05+02:00",
         NULL},
        {CODEC_TIMESTAMPTZ, false, -1, "\"2026-01-02T03:04:05\"", NULL,
         "not an RFC 3339 date-time with an offset or Z"},
        {CODEC_BYTEA, false, -1, "\"AAEC/w==\"", "\\x000102ff", NULL},
        {CODEC_BYTEA, false, -1, "\"AAE\"", NULL, "not base64"},
        {CODEC_JSON, false, -1, "{\"a\": [1, 2]}", "{\"a\": [1, 2]}", NULL},
        {CODEC_JSON, false, -1, "\"s\"", "\"s\"", NULL},
        {CODEC_ENUM, false, -1, "\"pro\"", "pro", NULL},
        {CODEC_OTHER, false, -1, "\"(1,2)\"", "(1,2)", NULL},
        {CODEC_TEXT, true, -1, "[\"a\", \"b c\", null, \"q\\\"\\\\\", \"NULL\"]",
         "{\"a\",\"b c\",NULL,\"q\\\"\\\\\",\"NULL\"}", NULL},
        {CODEC_INT4, true, -1, "[[1, 2], [3, 4]]", "{{\"1\",\"2\"},{\"3\",\"4\"}}", NULL},
        {CODEC_INT4, true, -1, "[1, \"x\"]", NULL, "not an integer"},
        {CODEC_INT4, true, -1, "5", NULL, "not an array"},
        {CODEC_JSON, true, -1, "[{\"k\": 1}, [1]]", "{\"{\\\"k\\\": 1}\",\"[1]\"}", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct codec_type t = ty(cases[i].kind, cases[i].array, cases[i].typmod);
        struct json_span v = span_of(cases[i].json);
        struct buf b;
        char err[128] = "";
        bool is_null = true;
        int rc;
        buf_init(&b, 1 << 16);
        rc = codec_param(&t, &v, &b, &is_null, err, sizeof(err));
        if (cases[i].want) {
            cr_expect_eq(rc, 0, "refused %s: %s", cases[i].json, err);
            cr_expect_not(is_null);
            cr_expect_str_eq(b.data ? b.data : "", cases[i].want, "%s", cases[i].json);
        } else {
            cr_expect_eq(rc, CDC_EINVAL, "accepted %s", cases[i].json);
            cr_expect_str_eq(err, cases[i].reason, "%s", cases[i].json);
            cr_expect_eq(b.len, 0);
        }
        buf_free(&b);
    }
}

Test(codec, param_null_and_text)
{
    struct codec_type t = ty(CODEC_INT8, false, -1);
    struct json_span v = span_of("null");
    struct buf b;
    char err[128];
    bool is_null = false;

    buf_init(&b, 1024);
    cr_assert_eq(codec_param(&t, &v, &b, &is_null, err, sizeof(err)), 0);
    cr_assert(is_null);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(codec_param_text(&t, "-12", 3, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.data, "-12");
    buf_reset(&b);
    cr_assert_eq(codec_param_text(&t, "12abc", 5, &b, err, sizeof(err)), CDC_EINVAL);
    t = ty(CODEC_UUID, false, -1);
    cr_assert_eq(
        codec_param_text(&t, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", 36, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.data, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    buf_reset(&b);
    t = ty(CODEC_BOOL, false, -1);
    cr_assert_eq(codec_param_text(&t, "true", 4, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.data, "t");
    buf_reset(&b);
    t = ty(CODEC_NUMERIC, false, NUMERIC_TYPMOD(12, 2));
    cr_assert_eq(codec_param_text(&t, "1.5", 3, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.data, "1.5");
    buf_reset(&b);
    t = ty(CODEC_FLOAT8, false, -1);
    cr_assert_eq(codec_param_text(&t, "Infinity", 8, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.data, "Infinity");
    buf_reset(&b);
    t = ty(CODEC_TEXT, true, -1);
    cr_assert_eq(codec_param_text(&t, "[\"a,b\"]", 7, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.data, "{\"a,b\"}");
    buf_free(&b);
}

Test(codec, key_canon)
{
    static const struct {
        enum codec_kind kind;
        const char *in;
        const char *want;
    } cases[] = {
        {CODEC_INT8, "42", "42"},
        {CODEC_INT8, "007", "7"},
        {CODEC_INT8, "-0", "0"},
        {CODEC_INT8, "-9223372036854775808", "-9223372036854775808"},
        {CODEC_INT8, "9223372036854775808", NULL},
        {CODEC_INT8, "+1", NULL},
        {CODEC_INT8, "", NULL},
        {CODEC_INT8, "1.0", NULL},
        {CODEC_INT2, "32768", NULL},
        {CODEC_INT4, "00000000000000000000000000001", "1"},
        {CODEC_UUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
         "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
        {CODEC_UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a11", NULL},
        {CODEC_UUID, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", NULL},
        {CODEC_UUID, "not-a-uuid", NULL},
        {CODEC_TEXT, "Ada É", "Ada É"},
        {CODEC_TEXT, "", NULL},
        {CODEC_TEXT, "\xff\xfe", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct codec_type t = ty(cases[i].kind, false, -1);
        char out[64];
        size_t n = 99;
        int rc = codec_key_canon(&t, cases[i].in, strlen(cases[i].in), out, sizeof(out), &n);
        if (cases[i].want) {
            cr_expect_eq(rc, 0, "refused %s", cases[i].in);
            cr_expect_str_eq(out, cases[i].want);
            cr_expect_eq(n, strlen(cases[i].want));
        } else {
            cr_expect_eq(rc, CDC_EINVAL, "accepted %s", cases[i].in);
        }
    }
    {
        struct codec_type t = ty(CODEC_INT8, false, -1), u = ty(CODEC_UUID, false, -1);
        struct json_span v = span_of("12"), s = span_of("\"12\""),
                         w = span_of("\"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\"");
        char out[64];
        size_t n;
        cr_assert_eq(codec_key_dbz(&t, &v, out, sizeof(out), &n), 0);
        cr_assert_str_eq(out, "12");
        cr_assert_eq(codec_key_dbz(&t, &s, out, sizeof(out), &n), 0);
        cr_assert_str_eq(out, "12");
        cr_assert_eq(codec_key_dbz(&u, &w, out, sizeof(out), &n), 0);
        cr_assert_str_eq(out, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        cr_assert_eq(codec_key_canon(&u, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 36, out, 36, &n),
                     CDC_EINVAL, "no room for the NUL");
    }
    cr_assert(codec_key_supported(&(struct codec_type){CODEC_UUID, false, -1, 0}));
    cr_assert_not(codec_key_supported(&(struct codec_type){CODEC_JSON, false, -1, 0}));
    cr_assert_not(codec_key_supported(&(struct codec_type){CODEC_INT8, true, -1, 0}));
    cr_assert(codec_key_numeric(&(struct codec_type){CODEC_INT4, false, -1, 0}));
    cr_assert_not(codec_key_numeric(&(struct codec_type){CODEC_UUID, false, -1, 0}));
}

/* ------------------------------------------------------------------ the cross-check */

struct col {
    char table[32], name[32];
    struct codec_type t;
};

static struct col *load_columns(size_t *n)
{
    char *text = fixtures_read("shop-columns.jsonl"), *save = NULL;
    struct col *cols = NULL;
    *n = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        struct col *c;
        cols = realloc(cols, (*n + 1) * sizeof(*cols));
        c = &cols[(*n)++];
        snprintf(c->table, sizeof(c->table), "%s", cJSON_GetObjectItem(j, "table")->valuestring);
        snprintf(c->name, sizeof(c->name), "%s", cJSON_GetObjectItem(j, "column")->valuestring);
        c->t.kind = codec_kind_of(cJSON_GetObjectItem(j, "typname")->valuestring,
                                  cJSON_GetObjectItem(j, "typtype")->valuestring[0]);
        c->t.array = cJSON_IsTrue(cJSON_GetObjectItem(j, "array"));
        c->t.typmod = (int32_t)cJSON_GetObjectItem(j, "typmod")->valuedouble;
        c->t.oid = (uint32_t)strtoul(cJSON_GetObjectItem(j, "oid")->valuestring, NULL, 10);
        cJSON_Delete(j);
    }
    free(text);
    return cols;
}

static const struct col *find_col(const struct col *cols, size_t n, const char *table,
                                  const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(cols[i].table, table) == 0 && strcmp(cols[i].name, name) == 0)
            return &cols[i];
    return NULL;
}

/* The after-image's member spans, by name; returns the number found. */
static size_t after_members(const char *value, char names[][32], struct json_span *spans,
                            size_t max)
{
    struct json_cursor c;
    struct json_members it, sub;
    struct json_span name, v;
    const char *why;
    size_t k = 0;
    int r;

    json_cursor_init(&c, value, strlen(value));
    cr_assert_eq(json_members_open(&it, &c, &why), 0);
    while ((r = json_members_name(&it, &name, &why)) == 1) {
        if (json_string_equals(&name, "after") && json_members_at_object(&it)) {
            json_members_enter(&it, &sub);
            while ((r = json_members_next(&sub, &name, &v, &why)) == 1 && k < max) {
                cr_assert_eq(json_string_decode(&name, names[k], 32) > 0, true);
                spans[k++] = v;
            }
            cr_assert_eq(r, 0);
            cr_assert_eq(json_members_leave(&it, &sub, &v, &why), 0);
        } else {
            cr_assert_eq(json_members_value(&it, &v, &why), 0);
        }
    }
    cr_assert_eq(r, 0);
    return k;
}

/* Why the event path may refuse a column that the query path renders: the value's type is not
 * rendered from events, or Debezium's form of it is lossy (see codec.c). */
static bool refusal_expected(const struct col *c, const char *pgtext)
{
    if (c->t.kind == CODEC_OTHER)
        return true;
    if (c->t.array && (strstr(pgtext, "NULL") || pgtext[0] == '[' || strncmp(pgtext, "{{", 2) == 0))
        return true;
    if (c->t.array && c->t.kind == CODEC_NUMERIC &&
        (strstr(pgtext, "NaN") || strstr(pgtext, "Infinity")))
        return true;
    /* a bytea whose bytes are the placeholder's: refused (evicting is always safe) */
    return c->t.kind == CODEC_BYTEA &&
           strcmp(pgtext, "\\x5f5f646562657a69756d5f756e617661696c61626c655f76616c7565") == 0;
}

Test(codec, query_row_and_after_image_render_the_same_bytes)
{
    size_t ncols, nev, checked = 0, refused = 0, rows_matched = 0;
    struct col *cols = load_columns(&ncols);
    struct fixture_entry *ev = NULL;
    char *rows = fixtures_read("shop-rows.jsonl"), *save = NULL;
    char *evtext = fixtures_read("shop-events.jsonl"), *esave = NULL;
    cJSON *events[64];
    size_t ne = 0;
    bool kind_seen[CODEC_OTHER + 1] = {false};

    (void)ev;
    (void)nev;
    for (char *line = strtok_r(evtext, "\n", &esave); line && ne < 64;
         line = strtok_r(NULL, "\n", &esave))
        events[ne++] = cJSON_Parse(line);
    cr_assert_gt(ne, 15);

    for (char *line = strtok_r(rows, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *r = cJSON_Parse(line), *row = cJSON_GetObjectItem(r, "row"), *cell;
        const char *table = cJSON_GetObjectItem(r, "table")->valuestring;
        const char *stream_table = strchr(table, '.') + 1;
        const char *id = cJSON_GetObjectItem(row, "id")->valuestring;
        const char *value = NULL;
        static char names[128][32];
        struct json_span spans[128];
        size_t nm;

        /* the create event of this row: same stream, same key */
        for (size_t e = 0; e < ne && !value; e++) {
            const char *stream = cJSON_GetObjectItem(events[e], "stream")->valuestring;
            cJSON *fields = cJSON_GetObjectItem(events[e], "fields");
            const char *key = cJSON_GetArrayItem(fields, 0)->valuestring;
            const char *val = cJSON_GetArrayItem(fields, 1)->valuestring;
            char want[128], want2[128];
            snprintf(want, sizeof(want), "{\"id\":%s}", id);
            snprintf(want2, sizeof(want2), "{\"id\":\"%s\"}", id);
            if (strcmp(stream + strlen(stream) - strlen(stream_table), stream_table) == 0 &&
                (strcmp(key, want) == 0 || strcmp(key, want2) == 0) && strstr(val, "\"op\":\"c\""))
                value = val;
        }
        cr_assert(value, "no create event for %s id %s", table, id);
        rows_matched++;
        nm = after_members(value, names, spans, 128);
        cJSON_ArrayForEach(cell, row)
        {
            const struct col *c = find_col(cols, ncols, table, cell->string);
            struct json_span *sp = NULL;
            struct buf a, b;
            int rp, rd;

            cr_assert(c, "no column %s.%s", table, cell->string);
            for (size_t k = 0; k < nm; k++)
                if (strcmp(names[k], cell->string) == 0)
                    sp = &spans[k];
            cr_assert(sp, "%s.%s missing from the after-image", table, cell->string);
            buf_init(&a, 1 << 20);
            buf_init(&b, 1 << 20);
            if (cJSON_IsNull(cell)) {
                rp = buf_append(&a, "null", 4);
            } else {
                rp = codec_render_pg(&c->t, cell->valuestring, strlen(cell->valuestring), &a);
            }
            rd = codec_render_dbz(&c->t, sp, &b);
            cr_expect_eq(rp, 0, "%s.%s id %s: query text refused: %s", table, c->name, id,
                         cell->valuestring);
            if (rd == CDC_EREJECTED) {
                /* a null of an array type without a placeholder of its own is refused */
                cr_expect(cJSON_IsNull(cell) ? c->t.array && sp->kind == JSON_NULL
                                             : refusal_expected(c, cell->valuestring),
                          "%s.%s id %s: event refused for %s", table, c->name, id,
                          cJSON_IsNull(cell) ? "NULL" : cell->valuestring);
                refused++;
            } else {
                cr_expect_eq(rd, 0, "%s.%s id %s: event value refused (%d): %.*s", table, c->name,
                             id, rd, (int)sp->len, sp->p);
                cr_expect(rp == 0 && rd == 0 && a.len == b.len &&
                              memcmp(a.data, b.data, a.len) == 0,
                          "%s.%s id %s:\n  query %s\n  event %s", table, c->name, id,
                          a.data ? a.data : "", b.data ? b.data : "");
                if (!cJSON_IsNull(cell))
                    kind_seen[c->t.kind] = true;
                checked++;
            }
            buf_free(&a);
            buf_free(&b);
        }
        cJSON_Delete(r);
    }
    for (int k = 0; k < CODEC_OTHER; k++)
        cr_expect(kind_seen[k], "kind %d never compared with a value", k);
    cr_expect_gt(checked, 500);
    cr_expect_gt(refused, 10);
    cr_expect_gt(rows_matched, 17);
    for (size_t e = 0; e < ne; e++)
        cJSON_Delete(events[e]);
    free(rows);
    free(evtext);
    free(cols);
}

/* The updates that left TOASTed values alone (REPLICA IDENTITY DEFAULT): every column whose value
 * the row holds (the query row recorded before the update, which changed only c_int4 / active) must
 * render exactly as the query does, or refuse; never render a placeholder or a null in its place.
 * Each big_* column and customers.notes is out of line, so each must refuse. */
Test(codec, toast_placeholders_from_the_pipeline_are_refused)
{
    size_t ncols, updates = 0, refused_big = 0, big_with_value = 0;
    struct col *cols = load_columns(&ncols);
    char *evtext = fixtures_read("shop-events.jsonl"), *save = NULL;
    char *rows = fixtures_read("shop-rows.jsonl"), *rsave = NULL;
    cJSON *rowv[64];
    size_t nr = 0;

    for (char *line = strtok_r(rows, "\n", &rsave); line && nr < 64;
         line = strtok_r(NULL, "\n", &rsave))
        rowv[nr++] = cJSON_Parse(line);
    for (char *line = strtok_r(evtext, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line), *row = NULL;
        const char *stream = cJSON_GetObjectItem(j, "stream")->valuestring;
        const char *key = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "fields"), 0)->valuestring;
        const char *val = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "fields"), 1)->valuestring;
        static char names[128][32];
        struct json_span spans[128];
        char table[64];
        size_t nm;

        if (!strstr(val, "\"op\":\"u\"")) {
            cJSON_Delete(j);
            continue;
        }
        updates++;
        snprintf(table, sizeof(table), "%s", stream + strlen("cdcache."));
        for (size_t r = 0; r < nr && !row; r++) {
            cJSON *rr = cJSON_GetObjectItem(rowv[r], "row");
            const char *id = cJSON_GetObjectItem(rr, "id")->valuestring;
            char k1[128], k2[128];
            snprintf(k1, sizeof(k1), "{\"id\":%s}", id);
            snprintf(k2, sizeof(k2), "{\"id\":\"%s\"}", id);
            if (strcmp(cJSON_GetObjectItem(rowv[r], "table")->valuestring, table) == 0 &&
                (strcmp(key, k1) == 0 || strcmp(key, k2) == 0))
                row = rr;
        }
        cr_assert(row, "no recorded row for the update %s", key);
        nm = after_members(val, names, spans, 128);
        for (size_t k = 0; k < nm; k++) {
            const struct col *c = find_col(cols, ncols, table, names[k]);
            cJSON *cell = cJSON_GetObjectItem(row, names[k]);
            bool big = strncmp(names[k], "big_", 4) == 0 || strcmp(names[k], "notes") == 0;
            struct buf a, b;
            int rd;
            cr_assert(c && cell);
            if (cJSON_IsNull(cell) || strcmp(names[k], "c_int4") == 0 ||
                strcmp(names[k], "active") == 0)
                continue;
            buf_init(&a, 1 << 22);
            buf_init(&b, 1 << 22);
            cr_assert_eq(codec_render_pg(&c->t, cell->valuestring, strlen(cell->valuestring), &a),
                         0);
            rd = codec_render_dbz(&c->t, &spans[k], &b);
            if (rd == CDC_EREJECTED) {
                cr_expect_eq(b.len, 0);
                refused_big += big;
            } else {
                cr_expect_eq(rd, 0);
                cr_expect(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
                          "%s.%s: the event renders %.60s", table, names[k], b.data);
            }
            big_with_value += big;
            buf_free(&a);
            buf_free(&b);
        }
        cJSON_Delete(j);
    }
    cr_expect_eq(updates, 3);
    /* 100: big_text, big_bytea, big_arr, big_texta, big_jsonb; 101: big_int8a, big_datea,
     * big_uuida, big_byteaa, big_boola, big_f8a, big_numa, big_tstza, big_enuma, big_num;
     * customers.notes */
    cr_expect_eq(big_with_value, 16);
    cr_expect_eq(refused_big, big_with_value);
    for (size_t r = 0; r < nr; r++)
        cJSON_Delete(rowv[r]);
    free(rows);
    free(evtext);
    free(cols);
}

/* items' timestamps, as item.c rendered them before the codecs replaced it (its tests' cases): the
 * items resource keeps its bytes on the codec. */
Test(codec, items_timestamps_render_as_they_always_have)
{
    static const struct {
        const char *pg, *dbz, *want;
    } cases[] = {
        {"2026-11-21 11:46:29.739050+00", "\"2026-11-21T11:46:29.739050Z\"",
         "\"2026-11-21T11:46:29.73905Z\""},
        {"2026-11-21 11:46:29+00", "\"2026-11-21T11:46:29Z\"", "\"2026-11-21T11:46:29Z\""},
        {"2026-01-02 03:04:05.12+00", "\"2026-01-02T03:04:05.120Z\"",
         "\"2026-01-02T03:04:05.12Z\""},
    };
    struct codec_type tz = ty(CODEC_TIMESTAMPTZ, false, -1), num = ty(CODEC_NUMERIC, false, 655366);
    char o[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(pg(tz, cases[i].pg, o, sizeof(o)), 0);
        cr_expect_str_eq(o, cases[i].want);
        cr_assert_eq(dbz(tz, cases[i].dbz, o, sizeof(o)), 0);
        cr_expect_str_eq(o, cases[i].want);
    }
    cr_assert_eq(pg(num, "99999999.99", o, sizeof(o)), 0);
    cr_expect_str_eq(o, "99999999.99");
    cr_assert_eq(pg(num, "12.30", o, sizeof(o)), 0);
    cr_expect_str_eq(o, "12.30", "a price keeps its trailing zero");
}
