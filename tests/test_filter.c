/* List queries through the public header (filter.h), with the real row codec: one table of cases,
 * accepted ones with the exact WHERE/ORDER BY text and parameters, refused ones with the field they
 * name; the whole statement's text for two shapes; cursors and next-page queries that round-trip.
 * Descriptors are built by hand after migrations/000001 (inventory.items) and
 * tests/schemas/shop.sql (shop.customers), plus a table whose identifiers hold quotes. */
#include "cdcache/codec.h"
#include "cdcache/error.h"
#include "cdcache/filter.h"
#include "cdcache/resource.h"
#include "cdcache/util.h"
#include "fixtures.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIMIT 1000
#define MAX_BYTES 1000000

/* name, quoted, kind, array, typmod, oid, sql_type, nullable, exposed, orderable */
#define COL(n, q, k, arr, tm, oid, st, nul, exp, ord)                                              \
    {                                                                                              \
        .name = n, .quoted = q, .type = {k, arr, tm, oid}, .sql_type = st, .nullable = nul,        \
        .exposed = exp, .orderable = ord                                                           \
    }

static struct resource_column items_cols[] = {
    COL("id", "\"id\"", CODEC_INT8, false, -1, 20, "bigint", false, true, true),
    COL("name", "\"name\"", CODEC_TEXT, false, -1, 25, "text", false, true, false),
    COL("description", "\"description\"", CODEC_TEXT, false, -1, 25, "text", false, true, false),
    COL("price", "\"price\"", CODEC_NUMERIC, false, (10 << 16 | 2) + 4, 1700, "numeric(10,2)",
        false, true, false),
    COL("created_at", "\"created_at\"", CODEC_TIMESTAMPTZ, false, -1, 1184,
        "timestamp with time zone", false, true, false),
    COL("updated_at", "\"updated_at\"", CODEC_TIMESTAMPTZ, false, -1, 1184,
        "timestamp with time zone", false, true, false),
    COL("version", "\"version\"", CODEC_INT8, false, -1, 20, "bigint", false, true, false),
};
static struct resource items = {.name = "items",
                                .schema = "inventory",
                                .table = "items",
                                .qualified = "\"inventory\".\"items\"",
                                .methods = RESOURCE_ALL,
                                .ncolumns = 7,
                                .columns = items_cols,
                                .key = 0,
                                .version = 6};

/* shop.customers; born is marked orderable (an index the integration test creates) to cover a
 * nullable order column; cdcache_version stands for a bookkeeping column that is not exposed */
static struct resource_column customers_cols[] = {
    COL("id", "\"id\"", CODEC_UUID, false, -1, 2950, "uuid", false, true, true),
    COL("email", "\"email\"", CODEC_TEXT, false, -1, 25, "text", false, true, true),
    COL("name", "\"name\"", CODEC_TEXT, false, 204, 1043, "character varying(200)", false, true,
        false),
    COL("active", "\"active\"", CODEC_BOOL, false, -1, 16, "boolean", false, true, false),
    COL("tags", "\"tags\"", CODEC_TEXT, true, -1, 1009, "text[]", false, true, false),
    COL("profile", "\"profile\"", CODEC_JSON, false, -1, 3802, "jsonb", true, true, true),
    COL("balance", "\"balance\"", CODEC_NUMERIC, false, (12 << 16 | 2) + 4, 1700, "numeric(12,2)",
        false, true, false),
    COL("notes", "\"notes\"", CODEC_TEXT, false, -1, 25, "text", true, true, false),
    COL("tier", "\"tier\"", CODEC_ENUM, false, -1, 90001, "shop.tier", false, true, false),
    COL("score", "\"score\"", CODEC_FLOAT8, false, -1, 701, "double precision", true, true, true),
    COL("born", "\"born\"", CODEC_DATE, false, -1, 1082, "date", true, true, true),
    COL("avatar", "\"avatar\"", CODEC_BYTEA, false, -1, 17, "bytea", true, true, false),
    COL("created_at", "\"created_at\"", CODEC_TIMESTAMPTZ, false, -1, 1184,
        "timestamp with time zone", false, true, false),
    COL("cdcache_version", "\"cdcache_version\"", CODEC_INT8, false, -1, 20, "bigint", false, false,
        false),
};
static struct resource customers = {.name = "customers",
                                    .schema = "shop",
                                    .table = "customers",
                                    .qualified = "\"shop\".\"customers\"",
                                    .methods = RESOURCE_ALL,
                                    .ncolumns = 14,
                                    .columns = customers_cols,
                                    .key = 0,
                                    .version = 13};

/* shop.orders: an identity key, a timestamptz that leads an index */
static struct resource_column orders_cols[] = {
    COL("id", "\"id\"", CODEC_INT8, false, -1, 20, "bigint", false, true, true),
    COL("customer_id", "\"customer_id\"", CODEC_UUID, false, -1, 2950, "uuid", false, true, true),
    COL("total", "\"total\"", CODEC_NUMERIC, false, (12 << 16 | 2) + 4, 1700, "numeric(12,2)",
        false, true, false),
    COL("quantity", "\"quantity\"", CODEC_INT4, false, -1, 23, "integer", false, true, false),
    COL("status", "\"status\"", CODEC_TEXT, false, -1, 25, "text", false, true, false),
    COL("placed_at", "\"placed_at\"", CODEC_TIMESTAMPTZ, false, -1, 1184,
        "timestamp with time zone", false, true, true),
};
/* used by the PostgreSQL test only (FILTER_TEST_PG) */
__attribute__((unused)) static struct resource orders = {.name = "orders",
                                                         .schema = "shop",
                                                         .table = "orders",
                                                         .qualified = "\"shop\".\"orders\"",
                                                         .methods = RESOURCE_ALL,
                                                         .ncolumns = 6,
                                                         .columns = orders_cols,
                                                         .key = 0,
                                                         .version = -1};

/* identifiers that need quoting: SQL must take them from the descriptor */
static struct resource_column odd_cols[] = {
    COL("Key", "\"Key\"", CODEC_INT4, false, -1, 23, "integer", false, true, true),
    COL("we\"ird", "\"we\"\"ird\"", CODEC_TEXT, false, -1, 25, "text", true, true, true),
    COL("a.b", "\"a.b\"", CODEC_INT4, false, -1, 23, "integer", true, true, false),
};
static struct resource odd = {.name = "odd",
                              .schema = "odd",
                              .table = "ta\"ble",
                              .qualified = "\"odd\".\"ta\"\"ble\"",
                              .methods = RESOURCE_ALL,
                              .ncolumns = 3,
                              .columns = odd_cols,
                              .key = 0,
                              .version = -1};

#define U1 "0b7e3f8c-1d2a-4c5b-9e6f-7a8b9c0d1e2f"
/* base64url of ["b@x.org","0b7e..."], [null,"0b7e..."], ["2000-01-01","0b7e..."] */
#define CUR_EMAIL "WyJiQHgub3JnIiwiMGI3ZTNmOGMtMWQyYS00YzViLTllNmYtN2E4YjljMGQxZTJmIl0"
#define CUR_NULL  "W251bGwsIjBiN2UzZjhjLTFkMmEtNGM1Yi05ZTZmLTdhOGI5YzBkMWUyZiJd"
#define CUR_DATE  "WyIyMDAwLTAxLTAxIiwiMGI3ZTNmOGMtMWQyYS00YzViLTllNmYtN2E4YjljMGQxZTJmIl0"

struct filter_case {
    const struct resource *r;
    const char *qs;
    int rc;
    const char *field;      /* refused: the field named */
    const char *where;      /* accepted: the text between FROM <table> and " LIMIT " */
    const char *params[12]; /* accepted: every parameter, in order, NULL-terminated */
};

#define REFUSED(res, qs, fld)                                                                      \
    {                                                                                              \
        res, qs, CDC_EINVAL, fld, NULL,                                                            \
        {                                                                                          \
            NULL                                                                                   \
        }                                                                                          \
    }

static const struct filter_case cases[] = {
    /* accepted: today's /items list */
    {&items, "", 0, NULL, " ORDER BY \"id\" ASC", {"51", "1000000"}},
    {&items,
     "after=50&limit=50",
     0,
     NULL,
     " WHERE \"id\" > $1::bigint ORDER BY \"id\" ASC",
     {"50", "51", "1000000"}},
    {&items, "limit=1000", 0, NULL, " ORDER BY \"id\" ASC", {"1001", "1000000"}},
    {&items, "&&limit=7&", 0, NULL, " ORDER BY \"id\" ASC", {"8", "1000000"}},
    /* operators, ANDed, values as typed parameters */
    {&items,
     "name=eq.foo&price=gte.10.5&id=lt.100&id=neq.7&version=lte.3&description=gt.m",
     0,
     NULL,
     " WHERE \"name\" = $1::text AND \"price\" >= $2::numeric(10,2) AND \"id\" < $3::bigint AND "
     "\"id\" <> $4::bigint AND \"version\" <= $5::bigint AND \"description\" > $6::text ORDER BY "
     "\"id\" ASC",
     {"foo", "10.5", "100", "7", "3", "m", "51", "1000000"}},
    {&items,
     "name=eq.a+b%2Cc%22",
     0,
     NULL,
     " WHERE \"name\" = $1::text ORDER BY \"id\" ASC",
     {"a b,c\"", "51", "1000000"}},
    {&items,
     "name=eq.",
     0,
     NULL,
     " WHERE \"name\" = $1::text ORDER BY \"id\" ASC",
     {"", "51", "1000000"}},
    {&items,
     "name=eq.v1.2.3",
     0,
     NULL,
     " WHERE \"name\" = $1::text ORDER BY \"id\" ASC",
     {"v1.2.3", "51", "1000000"}},
    {&items,
     "id=in.(1,2,3)",
     0,
     NULL,
     " WHERE \"id\" = ANY($1::bigint[]) ORDER BY \"id\" ASC",
     {"{\"1\",\"2\",\"3\"}", "51", "1000000"}},
    {&items,
     "name=in.(\"quoted, with comma\",\"\",plain,\"a\\\"b\\\\c\",NULL)",
     0,
     NULL,
     " WHERE \"name\" = ANY($1::text[]) ORDER BY \"id\" ASC",
     {"{\"quoted, with comma\",\"\",\"plain\",\"a\\\"b\\\\c\",\"NULL\"}", "51", "1000000"}},
    {&items,
     "name=in.(a,)",
     0,
     NULL,
     " WHERE \"name\" = ANY($1::text[]) ORDER BY \"id\" ASC",
     {"{\"a\",\"\"}", "51", "1000000"}},
    {&items,
     "id=in.()&name=not.in.()",
     0,
     NULL,
     " WHERE FALSE AND TRUE ORDER BY \"id\" ASC",
     {"51", "1000000"}},
    {&items,
     "name=not.eq.x&description=is.null&description=not.is.null&id=not.in.(4)",
     0,
     NULL,
     " WHERE NOT \"name\" = $1::text AND \"description\" IS NULL AND \"description\" IS NOT NULL "
     "AND NOT \"id\" = ANY($2::bigint[]) ORDER BY \"id\" ASC",
     {"x", "{\"4\"}", "51", "1000000"}},
    {&items,
     "order=id.desc&after=10&limit=2",
     0,
     NULL,
     " WHERE \"id\" < $1::bigint ORDER BY \"id\" DESC",
     {"10", "3", "1000000"}},
    {&items, "order=id", 0, NULL, " ORDER BY \"id\" ASC", {"51", "1000000"}},
    {&items,
     "id=gt.1&after=5&id=lt.9",
     0,
     NULL,
     " WHERE \"id\" > $1::bigint AND \"id\" < $2::bigint AND \"id\" > $3::bigint ORDER BY \"id\" "
     "ASC",
     {"1", "9", "5", "51", "1000000"}},
    /* a uuid key, other types, order by another column, cursors */
    {&customers,
     "id=eq." U1,
     0,
     NULL,
     " WHERE \"id\" = $1::uuid ORDER BY \"id\" ASC",
     {U1, "51", "1000000"}},
    {&customers,
     "active=eq.true&tier=in.(pro,enterprise)&balance=lt.100&born=gte.2000-01-01",
     0,
     NULL,
     " WHERE \"active\" = $1::boolean AND \"tier\" = ANY($2::shop.tier[]) AND \"balance\" < "
     "$3::numeric(12,2) AND \"born\" >= $4::date ORDER BY \"id\" ASC",
     {"t", "{\"pro\",\"enterprise\"}", "100", "2000-01-01", "51", "1000000"}},
    {&customers,
     "profile=is.null&notes=not.is.null&tags=eq.[\"a\"]",
     0,
     NULL,
     " WHERE \"profile\" IS NULL AND \"notes\" IS NOT NULL AND \"tags\" = $1::text[] ORDER BY "
     "\"id\" ASC",
     {"{\"a\"}", "51", "1000000"}},
    {&customers,
     "order=email.asc",
     0,
     NULL,
     " ORDER BY \"email\" ASC, \"id\" ASC",
     {"51", "1000000"}},
    {&customers,
     "order=email.desc&after=" CUR_EMAIL,
     0,
     NULL,
     " WHERE (\"email\", \"id\") < ($1::text, $2::uuid) ORDER BY \"email\" DESC, \"id\" DESC",
     {"b@x.org", U1, "51", "1000000"}},
    {&customers,
     "order=email&after=" CUR_EMAIL "&active=eq.false",
     0,
     NULL,
     " WHERE \"active\" = $1::boolean AND (\"email\", \"id\") > ($2::text, $3::uuid) ORDER BY "
     "\"email\" ASC, \"id\" ASC",
     {"f", "b@x.org", U1, "51", "1000000"}},
    {&customers,
     "order=born",
     0,
     NULL,
     " ORDER BY \"born\" ASC NULLS LAST, \"id\" ASC",
     {"51", "1000000"}},
    {&customers,
     "order=born&after=" CUR_DATE,
     0,
     NULL,
     " WHERE ((\"born\", \"id\") > ($1::date, $2::uuid) OR \"born\" IS NULL) ORDER BY \"born\" "
     "ASC NULLS LAST, \"id\" ASC",
     {"2000-01-01", U1, "51", "1000000"}},
    {&customers,
     "order=born&after=" CUR_NULL,
     0,
     NULL,
     " WHERE (\"born\" IS NULL AND \"id\" > $1::uuid) ORDER BY \"born\" ASC NULLS LAST, \"id\" "
     "ASC",
     {U1, "51", "1000000"}},
    {&customers,
     "order=born.desc&after=" CUR_DATE,
     0,
     NULL,
     " WHERE (\"born\", \"id\") < ($1::date, $2::uuid) ORDER BY \"born\" DESC NULLS FIRST, "
     "\"id\" DESC",
     {"2000-01-01", U1, "51", "1000000"}},
    {&customers,
     "order=born.desc&after=" CUR_NULL,
     0,
     NULL,
     " WHERE ((\"born\" IS NULL AND \"id\" < $1::uuid) OR \"born\" IS NOT NULL) ORDER BY \"born\" "
     "DESC NULLS FIRST, \"id\" DESC",
     {U1, "51", "1000000"}},
    /* identifiers from the descriptor, quotes and dots in names */
    {&odd,
     "we%22ird=eq.1&a.b=in.(2)&order=we%22ird.desc",
     0,
     NULL,
     " WHERE \"we\"\"ird\" = $1::text AND \"a.b\" = ANY($2::integer[]) ORDER BY \"we\"\"ird\" "
     "DESC NULLS FIRST, \"Key\" DESC",
     {"1", "{\"2\"}", "51", "1000000"}},

    /* refused: unknown and unexposed columns, unknown operators */
    REFUSED(&items, "color=eq.red", "color"),
    REFUSED(&items, "select=id", "select"),
    REFUSED(&customers, "cdcache_version=eq.1", "cdcache_version"),
    REFUSED(&items, "name=like.x", "name"),
    REFUSED(&items, "name=eq", "name"),
    REFUSED(&items, "name", "name"),
    REFUSED(&items, "name=not.is.nothing", "name"),
    REFUSED(&items, "a%01b=eq.1", "a?b"),
    /* values the column's type refuses */
    REFUSED(&items, "id=eq.abc", "id"),
    REFUSED(&items, "id=eq.99999999999999999999", "id"),
    REFUSED(&items, "price=eq.1.234", "price"),
    REFUSED(&customers, "id=eq.not-a-uuid", "id"),
    REFUSED(&customers, "id=in.(" U1 ",0b7e3f8c)", "id"),
    REFUSED(&customers, "active=eq.yes", "active"),
    REFUSED(&customers, "score=eq.abc", "score"),
    REFUSED(&customers, "born=eq.2000-13-01", "born"),
    REFUSED(&customers, "tags=in.(a)", "tags"),
    REFUSED(&items, "name=eq.a%00b", "name"),
    /* limit */
    REFUSED(&items, "limit=0", "limit"),
    REFUSED(&items, "limit=1001", "limit"),
    REFUSED(&items, "limit=ten", "limit"),
    REFUSED(&items, "limit=", "limit"),
    REFUSED(&items, "limit=-1", "limit"),
    REFUSED(&items, "limit=5&limit=5", "limit"),
    /* order */
    REFUSED(&customers, "order=name.asc", "order"),
    REFUSED(&customers, "order=nope", "order"),
    REFUSED(&customers, "order=email.sideways", "order"),
    REFUSED(&customers, "order=email,id", "order"),
    REFUSED(&customers, "order=profile", "order"),
    REFUSED(&customers, "order=cdcache_version", "order"),
    REFUSED(&customers, "order=id&order=id", "order"),
    /* the cursor */
    REFUSED(&items, "after=1&after=2", "after"),
    REFUSED(&items, "after=x", "after"),
    REFUSED(&customers, "after=" CUR_EMAIL, "after"),
    REFUSED(&customers, "order=email&after=" U1, "after"),
    REFUSED(&customers, "order=email&after=!!!!", "after"),
    REFUSED(&customers, "order=email&after=WzEsMl0", "after"),   /* [1,2] */
    REFUSED(&customers, "order=email&after=WyJhIl0", "after"),   /* ["a"] */
    REFUSED(&customers, "order=email&after=" CUR_NULL, "after"), /* email is NOT NULL */
    REFUSED(&customers, "order=born&after=" CUR_EMAIL, "after"), /* not a date */
    REFUSED(&customers, "order=email&after=" CUR_EMAIL "A", "after"),
    /* in.() syntax */
    REFUSED(&items, "id=in.(1,2", "id"),
    REFUSED(&items, "id=in.1,2", "id"),
    REFUSED(&items, "name=in.(\"a,b)", "name"),
    REFUSED(&items, "name=in.(\"a\"b)", "name"),
    REFUSED(&items, "name=in.(a\"b)", "name"),
    REFUSED(&items, "id=in.(1,x)", "id"),
    /* escapes */
    REFUSED(&items, "%zz=1", "%zz"),
    REFUSED(&items, "name=eq.%4", "name"),
};

static char err[256], field[64];

static int parse(const struct resource *r, const char *qs, struct filter **f)
{
    return filter_parse(r, qs, strlen(qs), MAX_LIMIT, MAX_BYTES, f, err, sizeof(err), field,
                        sizeof(field));
}

/* The text between "FROM <table>" and " LIMIT " of the innermost SELECT. */
static void where_of(const char *sql, const struct resource *r, char *out, size_t cap)
{
    char from[128];
    const char *p, *q;

    snprintf(from, sizeof(from), " FROM %s", r->qualified);
    p = strstr(sql, from);
    cr_assert(p, "%s", sql);
    p += strlen(from);
    q = strstr(p, " LIMIT ");
    cr_assert(q, "%s", sql);
    cr_assert_lt((size_t)(q - p), cap);
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
}

Test(filter, table_of_cases)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct filter_case *c = &cases[i];
        struct filter *f = NULL;
        int rc = parse(c->r, c->qs, &f);

        cr_assert_eq(rc, c->rc, "case %zu %s?%s: %d %s", i, c->r->name, c->qs, rc, err);
        if (rc != 0) {
            cr_assert_null(f);
            cr_assert_str_eq(field, c->field, "case %zu %s: %s", i, c->qs, err);
            cr_assert(strstr(err, c->field) || c->field[0] == '%' || strchr(c->field, '?'),
                      "case %zu: the reason names it: %s", i, err);
            continue;
        }
        struct buf sql;
        const char *params[FILTER_MAX_PARAMS];
        char where[1024];
        int n = -1, k = 0;
        buf_init(&sql, 1 << 16);
        cr_assert_eq(filter_sql(f, "*", &sql, params, &n), 0);
        where_of(sql.data, c->r, where, sizeof(where));
        cr_assert_str_eq(where, c->where, "case %zu %s: %s", i, c->qs, where);
        while (k < 12 && c->params[k])
            k++;
        cr_assert_eq(n, k, "case %zu %s: %d parameters", i, c->qs, n);
        for (int j = 0; j < n; j++)
            cr_assert_str_eq(params[j], c->params[j], "case %zu %s: $%d", i, c->qs, j + 1);
        buf_free(&sql);
        filter_free(f);
    }
}

/* The whole statement, for the seed's list: the same bounds as db.c's (limit + 1 rows looked at,
 * a byte window over the exposed columns' text) and the three bookkeeping columns. */
Test(filter, whole_statement)
{
    struct filter *f = NULL;
    struct buf sql;
    const char *params[FILTER_MAX_PARAMS];
    int n = 0;

    cr_assert_eq(parse(&items, "after=50&limit=50", &f), 0, "%s", err);
    cr_assert_eq(filter_limit(f), 50);
    buf_init(&sql, 1 << 16);
    cr_assert_eq(filter_sql(f, "\"id\"::text, \"name\"", &sql, params, &n), 0);
    cr_assert_str_eq(
        sql.data,
        "SELECT \"id\"::text, \"name\", \"cdcache n\", \"cdcache ck\", \"cdcache co\" FROM (SELECT "
        "*, count(*) OVER () AS \"cdcache n\", row_number() OVER cdcache_w AS \"cdcache rn\", "
        "sum(\"cdcache sz\") OVER cdcache_w - \"cdcache sz\" AS \"cdcache before\" FROM (SELECT *, "
        "79 + coalesce(octet_length(\"id\"::text), 4) + coalesce(octet_length(\"name\"::text), 4) "
        "+ coalesce(octet_length(\"description\"::text), 4) + "
        "coalesce(octet_length(\"price\"::text), 4) + coalesce(octet_length(\"created_at\"::text), "
        "4) + coalesce(octet_length(\"updated_at\"::text), 4) + "
        "coalesce(octet_length(\"version\"::text), 4) AS \"cdcache sz\", to_jsonb(\"id\") #>> '{}' "
        "AS \"cdcache ck\", NULL::text AS \"cdcache co\" FROM \"inventory\".\"items\" WHERE \"id\" "
        "> $1::bigint ORDER BY \"id\" ASC LIMIT $2::int8) cdcache_l WINDOW cdcache_w AS (ORDER BY "
        "\"id\" ASC)) cdcache_p WHERE \"cdcache rn\" < $2::int8 AND \"cdcache before\" < $3::int8 "
        "ORDER BY cdcache_p.\"id\" ASC");
    cr_assert_eq(n, 3);
    buf_free(&sql);
    filter_free(f);

    /* no byte bound: no parameter for it; another order column: its cursor text */
    cr_assert_eq(filter_parse(&customers, "order=email", 11, 10, 0, &f, err, sizeof(err), field,
                              sizeof(field)),
                 0, "%s", err);
    buf_init(&sql, 1 << 16);
    cr_assert_eq(filter_sql(f, "\"id\"", &sql, params, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(params[0], "11");
    cr_assert(strstr(sql.data, "to_jsonb(\"email\") #>> '{}' AS \"cdcache co\""), "%s", sql.data);
    cr_assert(strstr(sql.data, "WHERE \"cdcache rn\" < $1::int8 ORDER BY cdcache_p.\"email\" ASC, "
                               "cdcache_p.\"id\" ASC"),
              "%s", sql.data);
    cr_assert_null(strstr(sql.data, "cdcache_version"), "unexposed columns are not measured");
    buf_free(&sql);
    filter_free(f);

    /* sql's cap */
    cr_assert_eq(parse(&items, "", &f), 0);
    buf_init(&sql, 64);
    cr_assert_eq(filter_sql(f, "*", &sql, params, &n), CDC_ETOOBIG);
    buf_free(&sql);
    filter_free(f);
}

Test(filter, default_limit_is_capped_by_max_limit)
{
    struct filter *f = NULL;

    cr_assert_eq(filter_parse(&items, NULL, 0, 20, 0, &f, err, sizeof(err), field, sizeof(field)),
                 0);
    cr_assert_eq(filter_limit(f), 20);
    filter_free(f);
    cr_assert_eq(parse(&items, "", &f), 0);
    cr_assert_eq(filter_limit(f), 50);
    filter_free(f);
}

/* Caps: in.() elements, filters and parameters. */
Test(filter, caps)
{
    struct buf qs;
    struct filter *f = NULL;

    buf_init(&qs, 1 << 20);
    buf_puts(&qs, "id=in.(");
    for (int i = 0; i < FILTER_MAX_IN; i++)
        buf_printf(&qs, "%s%d", i ? "," : "", i);
    buf_puts(&qs, ")");
    cr_assert_eq(parse(&items, qs.data, &f), 0, "%s", err);
    filter_free(f);
    qs.len -= 1;
    buf_puts(&qs, ",100)");
    cr_assert_eq(parse(&items, qs.data, &f), CDC_EINVAL);
    cr_assert_str_eq(field, "id");
    cr_assert(strstr(err, "100"), "%s", err);

    /* parameters: 60 filters with a value fit (4 kept for the cursor and the bounds), 61 do not */
    buf_reset(&qs);
    for (int i = 0; i < FILTER_MAX_PARAMS - 4; i++)
        buf_printf(&qs, "id=neq.%d&", i);
    buf_puts(&qs, "after=3&order=id.desc");
    cr_assert_eq(parse(&items, qs.data, &f), 0, "%s", err);
    {
        struct buf sql;
        const char *params[FILTER_MAX_PARAMS];
        int n = 0;
        buf_init(&sql, 1 << 20);
        cr_assert_eq(filter_sql(f, "*", &sql, params, &n), 0);
        cr_assert_eq(n, FILTER_MAX_PARAMS - 1);
        cr_assert_str_eq(params[FILTER_MAX_PARAMS - 4], "3");
        buf_free(&sql);
    }
    filter_free(f);
    buf_puts(&qs, "&name=eq.x");
    cr_assert_eq(parse(&items, qs.data, &f), CDC_EINVAL);
    cr_assert_str_eq(field, "name");
    cr_assert(strstr(err, "parameters"), "%s", err);

    /* filters: is.null takes no parameter, but filters are capped too */
    buf_reset(&qs);
    for (int i = 0; i < FILTER_MAX_CONDS; i++)
        buf_puts(&qs, "description=is.null&");
    cr_assert_eq(parse(&items, qs.data, &f), 0, "%s", err);
    filter_free(f);
    buf_puts(&qs, "name=is.null");
    cr_assert_eq(parse(&items, qs.data, &f), CDC_EINVAL);
    cr_assert_str_eq(field, "name");
    buf_free(&qs);
}

/* Parses qs, then the query of the page after the row (ocol, key); returns that query. */
static char *next_of(const struct resource *r, const char *qs, const char *ocol, const char *key)
{
    struct filter *f = NULL;
    struct buf out;

    cr_assert_eq(parse(r, qs, &f), 0, "%s: %s", qs, err);
    buf_init(&out, 1 << 16);
    cr_assert_eq(filter_next_query(f, ocol, key, &out), 0);
    filter_free(f);
    return buf_steal(&out, NULL);
}

/* Parameters of qs, joined by '|'. */
static void params_of(const struct resource *r, const char *qs, char *out, size_t cap)
{
    struct filter *f = NULL;
    struct buf sql;
    const char *params[FILTER_MAX_PARAMS];
    int n = 0;
    size_t o = 0;

    cr_assert_eq(parse(r, qs, &f), 0, "%s: %s", qs, err);
    buf_init(&sql, 1 << 16);
    cr_assert_eq(filter_sql(f, "*", &sql, params, &n), 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "|" : "", params[i]);
    buf_free(&sql);
    filter_free(f);
}

Test(filter, next_page_queries_round_trip)
{
    char a[1024], b[1024];
    char *q;

    /* the seed's links stay as they were */
    q = next_of(&items, "after=0&limit=50", NULL, "50");
    cr_assert_str_eq(q, "after=50&limit=50");
    free(q);
    q = next_of(&items, "", NULL, "7");
    cr_assert_str_eq(q, "after=7&limit=50");
    free(q);

    /* order and filters are kept, encoded; the next page's parameters are the cursor's */
    q = next_of(&items, "limit=2&order=id.desc&name=in.(%22x%2C+y%22,z)&description=not.is.null",
                NULL, "9");
    cr_assert_str_eq(q, "after=9&limit=2&order=id.desc&name=in.(%22x,%20y%22,z)&"
                        "description=not.is.null");
    params_of(&items, q, a, sizeof(a));
    cr_assert_str_eq(a, "{\"x, y\",\"z\"}|9|3|1000000");
    free(q);

    /* an opaque cursor: [order text, key text], both back as parameters */
    q = next_of(&customers, "order=email&limit=3", "b@x.org", U1);
    cr_assert_str_eq(q, "after=" CUR_EMAIL "&limit=3&order=email.asc");
    free(q);
    q = next_of(&customers, "order=born.desc", NULL, U1);
    cr_assert_str_eq(q, "after=" CUR_NULL "&limit=50&order=born.desc");
    free(q);

    static const char *const texts[] = {"plain", "a\"b\\c", "ünï,cödé & = + %", "", "x\ny"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        q = next_of(&customers, "order=email&active=eq.true", texts[i], U1);
        params_of(&customers, q, a, sizeof(a));
        snprintf(b, sizeof(b), "t|%s|%s|51|1000000", texts[i], U1);
        cr_assert_str_eq(a, b, "%s: %s", q, a);
        /* and once more: the cursor of a cursor is stable */
        char *q2 = next_of(&customers, q, texts[i], U1);
        cr_assert_str_eq(q2, q);
        free(q2);
        free(q);
    }
    /* a quoted column name survives the trip */
    q = next_of(&odd, "order=we%22ird&we%22ird=neq.%22", "v", "4");
    cr_assert(strstr(q, "&order=we%22ird.asc&we%22ird=neq.%22"), "%s", q);
    params_of(&odd, q, a, sizeof(a));
    cr_assert_str_eq(a, "\"|v|4|51|1000000");
    free(q);
}

/* Random query strings built from the syntax's own pieces: nothing crashes or leaks (the sanitizer
 * build), a refusal always names a field, and every accepted query's next page parses again with
 * the same filters: the next-page query encodes what it decoded. */
Test(filter, random_queries)
{
    static const char *const pieces[] = {
        "id", "name", "price", "version", "order", "limit", "after", "=",   "&",   ".",
        "eq", "neq",  "lt",    "gte",     "in",    "is",    "not",   "(",   ")",   ",",
        "\"", "\\",   "null",  "asc",     "desc",  "1",     "12.5",  "-3",  "%2C", "%22",
        "%",  "%4",   "+",     "x y",     "é",     "%00",   "%28",   "999", "a",   "",
    };
    uint64_t seed = 0x9e3779b97f4a7c15u;
    char qs[256], err2[256], field2[64];
    int accepted = 0;

    for (int iter = 0; iter < 50000; iter++) {
        size_t len = 0;
        struct filter *f = NULL, *g = NULL;
        int parts;

        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        parts = (int)(seed % 12);
        qs[0] = '\0';
        for (int i = 0; i < parts; i++) {
            const char *p;
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            p = pieces[seed % (sizeof(pieces) / sizeof(pieces[0]))];
            if (len + strlen(p) + 1 >= sizeof(qs))
                break;
            memcpy(qs + len, p, strlen(p) + 1);
            len += strlen(p);
        }
        if (parse(&items, qs, &f) != 0) {
            cr_assert(field[0] != '\0' || strstr(err, "''"), "%s: %s", qs, err);
            continue;
        }
        accepted++;
        struct buf sql, sql2, next;
        const char *params[FILTER_MAX_PARAMS], *params2[FILTER_MAX_PARAMS];
        int n = 0, n2 = 0;
        buf_init(&sql, 1 << 20);
        buf_init(&sql2, 1 << 20);
        buf_init(&next, 1 << 16);
        cr_assert_eq(filter_sql(f, "*", &sql, params, &n), 0);
        cr_assert_eq(filter_next_query(f, NULL, "7", &next), 0);
        cr_assert_eq(filter_parse(&items, next.data, next.len, MAX_LIMIT, MAX_BYTES, &g, err2,
                                  sizeof(err2), field2, sizeof(field2)),
                     0, "%s -> %s: %s", qs, next.data, err2);
        cr_assert_eq(filter_sql(g, "*", &sql2, params2, &n2), 0);
        /* the same filters, then the cursor's "7" in place of the original cursor's */
        cr_assert(n2 == n || n2 == n + 1, "%s -> %s", qs, next.data);
        for (int i = 0; i < n2 - 3; i++) /* each ends with the cursor, the limit, the bound */
            cr_assert_str_eq(params[i], params2[i], "%s -> %s", qs, next.data);
        cr_assert_str_eq(params2[n2 - 3], "7");
        cr_assert_eq(filter_limit(f), filter_limit(g));
        buf_free(&sql);
        buf_free(&sql2);
        buf_free(&next);
        filter_free(f);
        filter_free(g);
    }
    cr_assert_gt(accepted, 3000, "the generator reaches the accepting paths: %d", accepted);
    cr_log_info("random_queries: %d of 50000 accepted", accepted);
}

/* ------------------------------------------------------------------ against PostgreSQL */

/* The generated statements run on a real PostgreSQL (tests/schemas/shop.sql and the seed's items
 * table) and page through exactly the rows, in exactly the order, that a plain query gives. Built
 * only into test_filter_pg (-DFILTER_TEST_PG; tests/meson.build), which
 * tests/integration/test_filter_sql.py runs with CDCACHE_TEST_PG naming a throwaway database (its
 * shop and inventory schemas are dropped and recreated): the unit suite has no database. */
#ifdef FILTER_TEST_PG
static PGconn *pg;

static void pg_ok(const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

static bool pg_setup(void)
{
    const char *conninfo = getenv("CDCACHE_TEST_PG");
    char *schema;

    if (!conninfo || !*conninfo)
        return false;
    pg = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    pg_ok("SET client_min_messages = warning; SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; "
          "DROP SCHEMA IF EXISTS shop CASCADE; DROP SCHEMA IF EXISTS odd CASCADE");
    schema = fixtures_read("../schemas/shop.sql");
    cr_assert_not_null(schema);
    pg_ok(schema);
    free(schema);
    pg_ok("DROP SCHEMA IF EXISTS inventory CASCADE");
    schema = fixtures_read("../../migrations/000001_create_items.up.sql");
    cr_assert_not_null(schema);
    pg_ok(schema);
    free(schema);
    pg_ok("INSERT INTO inventory.items (name, description, price) SELECT 'i' || i, 'd', i FROM "
          "generate_series(1, 25) i");
    /* born leads an index in this test (the descriptor above says orderable); the odd table */
    pg_ok("CREATE INDEX ON shop.customers (born); CREATE INDEX ON shop.customers (score);"
          "INSERT INTO shop.customers (id, email, name, active, tags, balance, tier, born, score) "
          "SELECT md5(i::text)::uuid, 'c' || (i % 7) || '-' || i || '@x.org', 'n' || i, i % 3 <> "
          "0, ARRAY['t' || (i % 4)], i * 1.25, (ARRAY['free','pro','enterprise'])[1 + i % 3]::"
          "shop.tier, CASE WHEN i % 4 = 0 THEN NULL ELSE date '2000-01-01' + (i % 5) END, i / 3.0 "
          "FROM generate_series(1, 40) i;"
          "CREATE SCHEMA odd; CREATE TABLE odd.\"ta\"\"ble\" (\"Key\" int PRIMARY KEY, "
          "\"we\"\"ird\" text, \"a.b\" int);"
          "INSERT INTO shop.orders (customer_id, total, quantity, placed_at) SELECT md5((1 + i % "
          "40)::text)::uuid, i * 0.5, i % 3, timestamptz '2024-02-29 23:59:59.123456Z' + (i % 9) "
          "* interval '1.000001 s' FROM generate_series(1, 30) i;"
          "INSERT INTO odd.\"ta\"\"ble\" SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'w' || (i % "
          "4) END, i % 2 FROM generate_series(1, 15) i");
    return true;
}

/* Pages through r with qs (limit small), each page's next query from its last row; returns the
 * keys seen, comma-separated, in out. */
static int pg_page_all(const struct resource *r, const char *qs, int64_t max_bytes, char *out,
                       size_t cap)
{
    char *next = xstrdup(qs);
    size_t o = 0;
    int pages = 0;

    out[0] = '\0';
    for (;;) {
        struct filter *f = NULL;
        struct buf sql, nq;
        const char *params[FILTER_MAX_PARAMS];
        char cols[64];
        int n = 0, rows, nf;
        long long matched;
        PGresult *res;

        cr_assert(++pages < 100, "pagination does not end: %s", next);
        cr_assert_eq(filter_parse(r, next, strlen(next), MAX_LIMIT, max_bytes, &f, err, sizeof(err),
                                  field, sizeof(field)),
                     0, "%s: %s", next, err);
        buf_init(&sql, 1 << 16);
        snprintf(cols, sizeof(cols), "%s::text", r->columns[r->key].quoted);
        cr_assert_eq(filter_sql(f, cols, &sql, params, &n), 0);
        res = PQexecParams(pg, sql.data, n, NULL, params, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s\n%s", sql.data, PQerrorMessage(pg));
        rows = PQntuples(res);
        nf = PQnfields(res);
        cr_assert_eq(nf, 4);
        cr_assert(rows <= filter_limit(f));
        for (int i = 0; i < rows; i++)
            o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "," : "", PQgetvalue(res, i, 0));
        cr_assert_lt(o, cap);
        matched = rows ? strtoll(PQgetvalue(res, 0, 1), NULL, 10) : 0;
        if (rows == 0 || matched <= rows) {
            PQclear(res);
            buf_free(&sql);
            filter_free(f);
            break;
        }
        buf_init(&nq, 1 << 16);
        cr_assert_eq(filter_next_query(
                         f, PQgetisnull(res, rows - 1, 3) ? NULL : PQgetvalue(res, rows - 1, 3),
                         PQgetvalue(res, rows - 1, 2), &nq),
                     0);
        free(next);
        next = buf_steal(&nq, NULL);
        PQclear(res);
        buf_free(&sql);
        filter_free(f);
    }
    free(next);
    return pages;
}

/* The keys of a plain query, comma-separated. */
static void pg_keys(const char *sql, char *out, size_t cap)
{
    PGresult *res = PQexec(pg, sql);
    size_t o = 0;

    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
    out[0] = '\0';
    for (int i = 0; i < PQntuples(res); i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "," : "", PQgetvalue(res, i, 0));
    PQclear(res);
}

Test(filter, statements_run_on_postgresql)
{
    static const struct {
        const struct resource *r;
        const char *qs;
        int64_t max_bytes;
        const char *plain;
    } pg_cases[] = {
        /* cursors of timestamptz and float8 order columns read back exactly */
        {&orders, "limit=4&order=placed_at", MAX_BYTES,
         "SELECT id FROM shop.orders ORDER BY placed_at, id"},
        {&orders, "limit=3&order=placed_at.desc&quantity=neq.0&total=gt.2.5", MAX_BYTES,
         "SELECT id FROM shop.orders WHERE quantity <> 0 AND total > 2.5 ORDER BY placed_at "
         "DESC, id DESC"},
        {&orders, "limit=5&order=customer_id.desc", MAX_BYTES,
         "SELECT id FROM shop.orders ORDER BY customer_id DESC, id DESC"},
        {&customers, "limit=3&order=score", MAX_BYTES,
         "SELECT id FROM shop.customers ORDER BY score NULLS LAST, id"},
        /* the seed's list: an int8 key sorts as a number, not as the text the caller selects */
        {&items, "limit=4", MAX_BYTES, "SELECT id FROM inventory.items ORDER BY id"},
        {&items, "limit=3&order=id.desc&price=lt.20&name=not.in.(i3,i4)", MAX_BYTES,
         "SELECT id FROM inventory.items WHERE price < 20 AND name NOT IN ('i3','i4') ORDER BY "
         "id DESC"},
        {&customers, "limit=7", MAX_BYTES, "SELECT id FROM shop.customers ORDER BY id"},
        {&customers, "limit=4&order=id.desc&active=eq.true", MAX_BYTES,
         "SELECT id FROM shop.customers WHERE active ORDER BY id DESC"},
        {&customers, "limit=3&order=born", MAX_BYTES,
         "SELECT id FROM shop.customers ORDER BY born NULLS LAST, id"},
        {&customers, "limit=3&order=born.desc", MAX_BYTES,
         "SELECT id FROM shop.customers ORDER BY born DESC NULLS FIRST, id DESC"},
        {&customers, "limit=5&order=email.desc&tier=in.(pro,enterprise)&balance=gte.10", MAX_BYTES,
         "SELECT id FROM shop.customers WHERE tier IN ('pro','enterprise') AND balance >= 10 "
         "ORDER BY email DESC, id DESC"},
        {&customers, "limit=2&born=is.null&score=lt.5&tags=eq.[\"t0\"]", MAX_BYTES,
         "SELECT id FROM shop.customers WHERE born IS NULL AND score < 5 AND tags = '{t0}' ORDER "
         "BY id"},
        {&customers, "order=born&born=not.is.null&id=not.in.(" U1 ")&name=neq.n3", 300,
         "SELECT id FROM shop.customers WHERE born IS NOT NULL AND name <> 'n3' ORDER BY born, id"},
        {&customers, "limit=50&id=in.()", MAX_BYTES, "SELECT id FROM shop.customers WHERE false"},
        {&odd, "limit=2&order=we%22ird", MAX_BYTES,
         "SELECT \"Key\" FROM odd.\"ta\"\"ble\" ORDER BY \"we\"\"ird\" NULLS LAST, \"Key\""},
        {&odd, "limit=4&order=we%22ird.desc&a.b=eq.1", 1,
         "SELECT \"Key\" FROM odd.\"ta\"\"ble\" WHERE \"a.b\" = 1 ORDER BY \"we\"\"ird\" DESC "
         "NULLS FIRST, \"Key\" DESC"},
    };
    static char got[16384], want[16384];

    cr_assert(pg_setup(), "CDCACHE_TEST_PG must name a throwaway database");
    for (size_t i = 0; i < sizeof(pg_cases) / sizeof(pg_cases[0]); i++) {
        int pages =
            pg_page_all(pg_cases[i].r, pg_cases[i].qs, pg_cases[i].max_bytes, got, sizeof(got));
        pg_keys(pg_cases[i].plain, want, sizeof(want));
        if (pg_cases[i].max_bytes == 1) /* the byte bound cuts every page to its first row */
        {
            size_t keys = 1;
            for (const char *p = got; *p; p++)
                keys += *p == ',';
            cr_assert_eq((size_t)pages, keys, "case %zu: %d pages for %s", i, pages, got);
        }
        cr_assert_str_eq(got, want, "case %zu %s:\n got %s\nwant %s", i, pg_cases[i].qs, got, want);
        cr_assert(strstr(pg_cases[i].qs, "in.()") || got[0], "case %zu selects rows", i);
    }
    PQfinish(pg);
}
#endif
