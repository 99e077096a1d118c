/* Request bodies: the seed's Postman body, exact prices, and errors that name the field. */
#include "cdcache/body.h"
#include "cdcache/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static char err[200], field[64];

static int parse(const char *s, enum body_mode m, struct item_input *in)
{
    return body_parse_item(s, strlen(s), m, in, err, sizeof(err), field, sizeof(field));
}

Test(body, seed_postman_body)
{
    struct item_input in;
    cr_assert_eq(parse("{\"name\":\"init\",\"description\":\"init description\",\"price\":12.34}",
                       BODY_UPSERT, &in),
                 0, "%s", err);
    cr_assert_str_eq(in.name, "init");
    cr_assert_str_eq(in.description, "init description");
    cr_assert_str_eq(in.price, "12.34");
    cr_assert_not(in.has_id);
    body_item_free(&in);
}

Test(body, upsert_id_as_number_or_numeric_string)
{
    struct item_input in;
    cr_assert_eq(parse("{\"id\":\"17\",\"name\":\"a\",\"description\":\"\",\"price\":\"0.10\"}",
                       BODY_UPSERT, &in),
                 0);
    cr_assert(in.has_id && in.id == 17);
    body_item_free(&in);
    cr_assert_eq(
        parse("{\"id\":17,\"name\":\"a\",\"description\":\"\",\"price\":1}", BODY_UPSERT, &in), 0);
    cr_assert(in.has_id && in.id == 17);
    body_item_free(&in);
    cr_assert_eq(
        parse("{\"id\":\"x17\",\"name\":\"a\",\"description\":\"\",\"price\":1}", BODY_UPSERT, &in),
        CDC_EINVAL);
    cr_assert_str_eq(field, "id");
    cr_assert_eq(
        parse("{\"id\":\"17\",\"name\":\"a\",\"description\":\"\",\"price\":1}", BODY_REPLACE, &in),
        CDC_EINVAL, "numeric strings only on the seed's upsert");
}

Test(body, price_keeps_its_digits)
{
    struct item_input in;
    /* 0.1 + 0.2 style values that a double would mangle stay as written */
    cr_assert_eq(
        parse("{\"name\":\"a\",\"description\":\"b\",\"price\":99999999.99}", BODY_CREATE, &in), 0);
    cr_assert_str_eq(in.price, "99999999.99");
    body_item_free(&in);
    cr_assert_eq(parse("{\"name\":\"a\",\"description\":\"b\",\"price\":0007.1}", BODY_CREATE, &in),
                 CDC_EINVAL, "leading zeros are not JSON");
    cr_assert_eq(
        parse("{\"name\":\"a\",\"description\":\"b\",\"price\":\"0007.10\"}", BODY_CREATE, &in), 0);
    cr_assert_str_eq(in.price, "7.10");
    body_item_free(&in);
}

Test(body, bad_prices_name_the_field)
{
    static const char *const bad[] = {"1.234", "-1",   "1e3", "123456789.00", "\"abc\"",
                                      "null",  "true", "{}",  "\"1.\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[128];
        struct item_input in;
        snprintf(body, sizeof(body), "{\"name\":\"a\",\"description\":\"b\",\"price\":%s}", bad[i]);
        cr_assert_eq(parse(body, BODY_CREATE, &in), CDC_EINVAL, "%s accepted", bad[i]);
        cr_assert_str_eq(field, "price", "%s", bad[i]);
    }
}

Test(body, unknown_fields_and_wrong_types)
{
    struct item_input in;
    cr_assert_eq(parse("{\"name\":\"a\",\"description\":\"b\",\"price\":1,\"colour\":\"red\"}",
                       BODY_CREATE, &in),
                 CDC_EINVAL);
    cr_assert_str_eq(field, "colour");
    cr_assert(strstr(err, "unknown field"));
    cr_assert_eq(parse("{\"name\":5,\"description\":\"b\",\"price\":1}", BODY_CREATE, &in),
                 CDC_EINVAL);
    cr_assert_str_eq(field, "name");
    cr_assert_eq(parse("{\"name\":\"a\",\"description\":[\"b\"],\"price\":1}", BODY_CREATE, &in),
                 CDC_EINVAL);
    cr_assert_str_eq(field, "description");
    cr_assert_eq(parse("{\"name\":\"a\",\"price\":1}", BODY_CREATE, &in), CDC_EINVAL);
    cr_assert_str_eq(field, "description");
    cr_assert(strstr(err, "required"));
    cr_assert_eq(
        parse("{\"id\":3,\"name\":\"a\",\"description\":\"b\",\"price\":1}", BODY_CREATE, &in),
        CDC_EINVAL);
    cr_assert_str_eq(field, "id");
    cr_assert_eq(parse("{\"name\":\"a\",\"name\":\"b\",\"description\":\"b\",\"price\":1}",
                       BODY_CREATE, &in),
                 CDC_EINVAL);
    cr_assert_str_eq(field, "name");
}

Test(body, malformed_json)
{
    static const char *const bad[] = {"",
                                      "[]",
                                      "{",
                                      "{\"name\"",
                                      "{\"name\":\"a\"",
                                      "{\"name\":\"a\",}",
                                      "{\"name\":\"a\"} x",
                                      "{\"name\":\"\\q\"}",
                                      "{\"name\":\"\\ud800\"}",
                                      "{\"name\":\"\\u0000\"}",
                                      "{\"name\":\"\xff\"}",
                                      "{name:1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct item_input in;
        cr_assert_eq(parse(bad[i], BODY_PATCH, &in), CDC_EINVAL, "accepted: %s", bad[i]);
        cr_assert(err[0]);
    }
}

Test(body, patch_takes_any_subset)
{
    struct item_input in;
    cr_assert_eq(parse(" {\"price\" : 5 } ", BODY_PATCH, &in), 0, "%s", err);
    cr_assert(in.has_price && !in.name && !in.description);
    body_item_free(&in);
    cr_assert_eq(parse("{}", BODY_PATCH, &in), CDC_EINVAL);
}

Test(body, unicode_escapes_become_utf8)
{
    struct item_input in;
    cr_assert_eq(
        parse(
            "{\"name\":\"\\u00e9\\ud83d\\ude00\\n\",\"description\":\"\xe2\x82\xac\",\"price\":1}",
            BODY_CREATE, &in),
        0, "%s", err);
    cr_assert_str_eq(in.name, "\xc3\xa9\xf0\x9f\x98\x80\n");
    cr_assert_str_eq(in.description, "\xe2\x82\xac");
    body_item_free(&in);
}

Test(body, an_id_with_a_zero_fraction_is_that_integer)
{
    struct item_input in;
    cr_assert_eq(
        parse("{\"id\":17.0,\"name\":\"a\",\"description\":\"\",\"price\":1}", BODY_UPSERT, &in), 0,
        "%s", err);
    cr_assert(in.has_id && in.id == 17);
    body_item_free(&in);
    const char *bad[] = {"17.5", "17.", "1e3", "17.01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char b[128];
        snprintf(b, sizeof(b), "{\"id\":%s,\"name\":\"a\",\"description\":\"\",\"price\":1}",
                 bad[i]);
        cr_assert_eq(parse(b, BODY_UPSERT, &in), CDC_EINVAL, "%s", bad[i]);
        cr_assert_str_eq(field, "id");
    }
}
