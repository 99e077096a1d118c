/* CORS policy through the public header: which origins are valid, which may read an answer. */
#include "cdcache/cors.h"

#include <criterion/criterion.h>
#include <string.h>

static char err[256];

Test(cors, off_by_default)
{
    struct cors *c = cors_create("", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_not(cors_enabled(c));
    cr_assert_null(cors_allow_origin(c, "https://a.test"));
    cors_destroy(c);
}

Test(cors, listed_origins_exactly)
{
    struct cors *c =
        cors_create(" https://App.Example.com , http://localhost:3000,", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert(cors_enabled(c));
    cr_assert_str_eq(cors_allow_origin(c, "https://app.example.com"), "https://app.example.com");
    cr_assert_str_eq(cors_allow_origin(c, "http://localhost:3000"), "http://localhost:3000");
    cr_assert_null(cors_allow_origin(c, "http://localhost:3001"));
    cr_assert_null(cors_allow_origin(c, "https://app.example.com.evil.test"));
    cr_assert_null(cors_allow_origin(c, "http://app.example.com"), "the scheme is part of it");
    cr_assert_null(cors_allow_origin(c, NULL));
    cr_assert_null(cors_allow_origin(c, ""));
    cors_destroy(c);
}

Test(cors, star_allows_any)
{
    struct cors *c = cors_create("*", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(cors_allow_origin(c, "http://x.test"), "*");
    cr_assert_null(cors_allow_origin(c, NULL), "no Origin: not a CORS request");
    cors_destroy(c);
}

Test(cors, bad_origins_name_the_key)
{
    const char *bad[] = {
        "https://a.test/",      "a.test",   "ftp://a.test",   "null",        "https://a.test:0",
        "https://a.test:99999", "https://", "https://a test", "https://[::1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_null(cors_create(bad[i], err, sizeof(err)), "%s", bad[i]);
        cr_assert(strstr(err, "http.cors_origins"), "%s", err);
    }
    struct cors *c = cors_create("http://[::1]:8080, https://a-b.c.test:443", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cors_destroy(c);
}
