/* Bearer tokens through the public header: parsing, which class of request needs which token. */
#include "cdcache/auth.h"

#include <criterion/criterion.h>
#include <string.h>

static char err[256];

Test(auth, nothing_configured_lets_everything_through)
{
    struct auth *a = auth_create("", "", err, sizeof(err));
    cr_assert_not_null(a, "%s", err);
    cr_assert_not(auth_required(a, true));
    cr_assert_eq(auth_check(a, NULL, true), AUTH_OK);
    cr_assert_eq(auth_check(a, NULL, false), AUTH_OK);
    auth_destroy(a);
}

Test(auth, write_tokens_guard_writes_only)
{
    struct auth *a = auth_create(" one , two-2 ,", "", err, sizeof(err));
    cr_assert_not_null(a, "%s", err);
    cr_assert_eq(auth_check(a, NULL, true), AUTH_MISSING);
    cr_assert_eq(auth_check(a, "Basic b25lOg==", true), AUTH_MISSING);
    cr_assert_eq(auth_check(a, "Bearer ", true), AUTH_MISSING);
    cr_assert_eq(auth_check(a, "Bearer one", true), AUTH_OK);
    cr_assert_eq(auth_check(a, "bearer  two-2 ", true), AUTH_OK, "scheme is case-insensitive");
    cr_assert_eq(auth_check(a, "Bearer on", true), AUTH_INVALID, "a prefix is not the token");
    cr_assert_eq(auth_check(a, "Bearer onee", true), AUTH_INVALID, "nor is a longer one");
    cr_assert_eq(auth_check(a, "Bearer One", true), AUTH_INVALID, "tokens are case-sensitive");
    cr_assert_eq(auth_check(a, NULL, false), AUTH_OK, "reads stay open");
    auth_destroy(a);
}

Test(auth, read_tokens_guard_reads_and_writers_may_read)
{
    struct auth *a = auth_create("w", "r", err, sizeof(err));
    cr_assert_not_null(a, "%s", err);
    cr_assert_eq(auth_check(a, NULL, false), AUTH_MISSING);
    cr_assert_eq(auth_check(a, "Bearer r", false), AUTH_OK);
    cr_assert_eq(auth_check(a, "Bearer w", false), AUTH_OK);
    cr_assert_eq(auth_check(a, "Bearer r", true), AUTH_INVALID, "a read token does not write");
    auth_destroy(a);
}

Test(auth, unusable_tokens_name_the_key_not_the_token)
{
    cr_assert_null(auth_create("fine, has space", "", err, sizeof(err)));
    cr_assert(strstr(err, "auth.write_tokens"), "%s", err);
    cr_assert_null(strstr(err, "has space"), "%s", err);
    cr_assert_null(auth_create("", "tab\there", err, sizeof(err)));
    cr_assert(strstr(err, "auth.read_tokens"), "%s", err);
}
