/* Query strings through the public header: known parameters decoded, unknown and repeated ones
 * refused by name. */
#include "cdcache/error.h"
#include "cdcache/query.h"

#include <criterion/criterion.h>
#include <string.h>

static const char *const list[] = {"after", "limit"};
static char err[200], field[64];
static struct query_values qv;

static int parse(const char *qs, const char *const *names, size_t n)
{
    return query_parse(qs, qs ? strlen(qs) : 0, names, n, &qv, err, sizeof(err), field,
                       sizeof(field));
}

Test(query, known_parameters_are_decoded)
{
    cr_assert_eq(parse("after=12&limit=5", list, 2), 0, "%s", err);
    cr_assert(qv.present[0] && qv.present[1]);
    cr_assert_str_eq(qv.value[0], "12");
    cr_assert_str_eq(qv.value[1], "5");
    cr_assert_eq(parse("%6Cimit=%35&", list, 2), 0, "%s", err);
    cr_assert(!qv.present[0] && qv.present[1]);
    cr_assert_str_eq(qv.value[1], "5");
    cr_assert_eq(parse("limit", list, 2), 0);
    cr_assert(qv.present[1] && qv.value[1][0] == '\0', "no '=': the empty value");
    cr_assert_eq(parse(NULL, list, 2), 0);
    cr_assert_eq(parse("&&", NULL, 0), 0, "empty segments are skipped");
    cr_assert_eq(parse("", NULL, 0), 0);
}

Test(query, unknown_names_are_refused_by_name)
{
    cr_assert_eq(parse("after=1&sort=name", list, 2), CDC_EINVAL);
    cr_assert_str_eq(field, "sort");
    cr_assert(strstr(err, "'sort'") && strstr(err, "after and limit"), "%s", err);
    cr_assert_eq(parse("LIMIT=5", list, 2), CDC_EINVAL, "names are exact");
    cr_assert_str_eq(field, "LIMIT");
    cr_assert_eq(parse("x=1", NULL, 0), CDC_EINVAL);
    cr_assert(strstr(err, "takes none"), "%s", err);
    cr_assert_eq(parse("a%01b=1", NULL, 0), CDC_EINVAL);
    cr_assert_str_eq(field, "a?b", "control bytes never reach the answer");
}

Test(query, repeats_bad_escapes_and_long_values_are_refused)
{
    cr_assert_eq(parse("limit=5&limit=6", list, 2), CDC_EINVAL);
    cr_assert_str_eq(field, "limit");
    cr_assert(strstr(err, "twice"), "%s", err);
    cr_assert_eq(parse("limit=%zz", list, 2), CDC_EINVAL);
    cr_assert_eq(parse("limit=%4", list, 2), CDC_EINVAL);
    cr_assert_eq(parse("%4", list, 2), CDC_EINVAL);
    char big[200];
    memset(big, '1', sizeof(big));
    memcpy(big, "after=", 6);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(parse(big, list, 2), CDC_EINVAL);
    cr_assert(strstr(err, "too long"), "%s", err);
}
