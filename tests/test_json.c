/* The strict JSON scanner: what it accepts, what it refuses, and what spans, strings and integers
 * it hands back. */
#include "cdcache/error.h"
#include "cdcache/json.h"

#include <criterion/criterion.h>
#include <string.h>

static int scan(const char *text, struct json_span *v)
{
    struct json_cursor c;
    const char *why = NULL;
    json_cursor_init(&c, text, strlen(text));
    if (json_value(&c, v, &why))
        return CDC_EINVAL;
    return json_at_end(&c) ? 0 : CDC_EINVAL;
}

Test(json, accepts_rfc8259_values)
{
    static const char *const good[] = {
        "{}",
        "[]",
        " { \"a\" : [ 1 , -0 , 0.5 , 1e9 , 1E-2 , 2.5e+3 ] , \"b\" : { } } ",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
        "true",
        "false",
        "null",
        "-12",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct json_span v;
        cr_assert_eq(scan(good[i], &v), 0, "refused: %s", good[i]);
    }
}

Test(json, refuses_what_rfc8259_does_not_allow)
{
    static const char *const bad[] = {
        "",
        "{",
        "{\"a\":1,}",
        "[1,]",
        "{\"a\" 1}",
        "{a:1}",
        "{'a':1}",
        "01",
        "+1",
        "1.",
        ".5",
        "1e",
        "-",
        "\"tab\there\"",
        "\"\\q\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\u0000\"",
        "\"\\u12g4\"",
        "\"\xff\"",
        "\"\xc0\xaf\"",         /* overlong '/' */
        "\"\xed\xa0\x80\"",     /* a surrogate in UTF-8 */
        "\"\xf4\x90\x80\x80\"", /* beyond U+10FFFF */
        "\"unterminated",
        "tru",
        "nul",
        "{} {}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct json_span v;
        cr_assert_eq(scan(bad[i], &v), CDC_EINVAL, "accepted: %s", bad[i]);
    }
}

Test(json, depth_is_bounded)
{
    char text[2 * (JSON_MAX_DEPTH + 1) + 1];
    struct json_span v;
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = '\0';
        cr_assert_eq(scan(text, &v), depth <= JSON_MAX_DEPTH ? 0 : CDC_EINVAL, "depth %d", depth);
    }
}

Test(json, nothing_is_read_past_the_length)
{
    /* The buffer holds more than the length given: a scanner that ran on would accept these. */
    static const char text[] = "\"abc\" trailing";
    struct json_cursor c;
    struct json_span v;
    const char *why;
    json_cursor_init(&c, text, 3); /* "ab */
    cr_assert_eq(json_value(&c, &v, &why), CDC_EINVAL);
    json_cursor_init(&c, "12345", 2);
    cr_assert_eq(json_value(&c, &v, &why), 0);
    cr_assert_eq(v.len, 2);
}

Test(json, spans_borrow_the_input)
{
    const char *text = "{\"s\":\"x\\ny\",\"n\":-1.5e3,\"o\":{\"k\":[1,2]},\"t\":true}";
    struct json_cursor c;
    struct json_members it;
    struct json_span name, val;
    const char *why;
    const char *names[] = {"s", "n", "o", "t"};
    const char *texts[] = {"x\\ny", "-1.5e3", "{\"k\":[1,2]}", "true"};
    enum json_kind kinds[] = {JSON_STRING, JSON_NUMBER, JSON_OBJECT, JSON_TRUE};
    int k = 0, r;

    json_cursor_init(&c, text, strlen(text));
    cr_assert_eq(json_members_open(&it, &c, &why), 0);
    while ((r = json_members_next(&it, &name, &val, &why)) == 1) {
        cr_assert(json_string_equals(&name, names[k]));
        cr_assert_eq(val.kind, kinds[k]);
        cr_assert_eq(val.len, strlen(texts[k]));
        cr_assert_eq(memcmp(val.p, texts[k], val.len), 0, "member %d", k);
        cr_assert(val.p >= text && val.p + val.len <= text + strlen(text));
        k++;
    }
    cr_assert_eq(r, 0);
    cr_assert_eq(k, 4);
    cr_assert(json_at_end(&it.c));
}

Test(json, members_can_be_walked_in_place)
{
    const char *text = "{\"a\":{\"x\":1,\"y\":\"z\"},\"b\":2}";
    struct json_cursor c;
    struct json_members it, sub;
    struct json_span name, val, whole;
    const char *why;

    json_cursor_init(&c, text, strlen(text));
    cr_assert_eq(json_members_open(&it, &c, &why), 0);
    cr_assert_eq(json_members_name(&it, &name, &why), 1);
    cr_assert(json_members_at_object(&it));
    json_members_enter(&it, &sub);
    cr_assert_eq(json_members_next(&sub, &name, &val, &why), 1);
    cr_assert(json_string_equals(&name, "x"));
    /* Leaving before the end is refused: the outer iterator would resume inside the object. */
    cr_assert_eq(json_members_leave(&it, &sub, &whole, &why), CDC_EINVAL);
    cr_assert_eq(json_members_next(&sub, &name, &val, &why), 1);
    cr_assert_eq(json_members_next(&sub, &name, &val, &why), 0);
    cr_assert_eq(json_members_leave(&it, &sub, &whole, &why), 0);
    cr_assert_eq(whole.kind, JSON_OBJECT);
    cr_assert_eq(whole.len, strlen("{\"x\":1,\"y\":\"z\"}"));
    cr_assert_eq(json_members_next(&it, &name, &val, &why), 1);
    cr_assert(json_string_equals(&name, "b"));
    cr_assert_eq(json_members_next(&it, &name, &val, &why), 0);
}

Test(json, member_errors_are_reported)
{
    static const char *const bad[] = {"{\"a\":1 \"b\":2}", "{\"a\":1,}", "{\"a\":}", "{\"a\":1",
                                      "{\"a\":[1,}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct json_cursor c;
        struct json_members it;
        struct json_span name, val;
        const char *why = NULL;
        int r;
        json_cursor_init(&c, bad[i], strlen(bad[i]));
        cr_assert_eq(json_members_open(&it, &c, &why), 0);
        while ((r = json_members_next(&it, &name, &val, &why)) == 1)
            ;
        cr_assert_eq(r, CDC_EINVAL, "accepted: %s", bad[i]);
        cr_assert(why && why[0]);
    }
}

Test(json, strings_decode_to_utf8)
{
    struct json_span v;
    char out[64];
    cr_assert_eq(scan("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\"", &v), 0);
    cr_assert(v.escaped);
    cr_assert_eq(json_string_decode(&v, out, sizeof(out)),
                 (long)strlen("a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    cr_assert_str_eq(out, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    cr_assert_eq(scan("\"plain\"", &v), 0);
    cr_assert_not(v.escaped);
    cr_assert_eq(json_string_decode(&v, out, 5), -1, "cap must exceed the span");
    cr_assert_eq(json_string_decode(&v, out, 6), 5);
    cr_assert_str_eq(out, "plain");
}

Test(json, names_compare_after_decoding)
{
    struct json_span v;
    cr_assert_eq(scan("\"\\u006fp\"", &v), 0);
    cr_assert(json_string_equals(&v, "op"));
    cr_assert_not(json_string_equals(&v, "o"));
    cr_assert_eq(scan("\"op\"", &v), 0);
    cr_assert(json_string_equals(&v, "op"));
    cr_assert_not(json_string_equals(&v, "ops"));
    cr_assert_eq(scan("7", &v), 0);
    cr_assert_not(json_string_equals(&v, "7"), "a number is not a string");
}

Test(json, integers_are_exact)
{
    static const struct {
        const char *text;
        bool ok;
        int64_t value;
    } cases[] = {
        {"0", true, 0},
        {"-42", true, -42},
        {"9007199254740993", true, 9007199254740993LL}, /* 2^53 + 1: exact, no double */
        {"9223372036854775807", true, INT64_MAX},
        {"9223372036854775808", false, 0},
        {"1.0", true, 1},
        {"1e3", true, 1000},
        {"1.5", false, 0},
        {"1e300", false, 0},
        {"\"42\"", true, 42},
        {"\"4\\u0032\"", true, 42},
        {"\"4x\"", false, 0},
        {"\" 4\"", false, 0},
        {"true", false, 0},
        {"null", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct json_span v;
        int64_t got = -7;
        cr_assert_eq(scan(cases[i].text, &v), 0, "%s", cases[i].text);
        cr_assert_eq(json_span_i64(&v, &got), cases[i].ok, "%s", cases[i].text);
        if (cases[i].ok)
            cr_assert_eq(got, cases[i].value, "%s", cases[i].text);
        else
            cr_assert_eq(got, -7, "%s: written on failure", cases[i].text);
    }
}
