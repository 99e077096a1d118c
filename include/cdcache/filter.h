/* List queries of a resource (GET /NAME?...): keyset pagination (after, limit), PostgREST-style
 * filters and order, checked against the resource's descriptor and turned into one parameterised
 * SQL statement. Served from PostgreSQL, never from the cache.
 *
 * Query syntax (PostgREST's, for the common operators):
 *   COLUMN=eq.V | neq.V | lt.V | lte.V | gt.V | gte.V | in.(a,b,"c,d") | is.null, each may be
 *   prefixed by not. (not.is.null, not.in.(...), ...)
 *   order=COLUMN | COLUMN.asc | COLUMN.desc   (the key, or a column that leads a btree index:
 *   orderable, of a type whose JSON text round-trips: not json, bytea, arrays or "other")
 *   after=CURSOR   limit=N (1..max_limit, default 50)
 * Filters are ANDed; the same column may be filtered more than once; only exposed columns may be
 * named (an unexposed one is refused exactly like an unknown one); values are checked by the
 * column's codec (codec_param_text) and always passed as parameters; identifiers come from the
 * descriptor's quoted names, never from the request. A column called after, limit or order cannot
 * be filtered (PostgREST has the same rule). json columns (not jsonb) and CODEC_OTHER columns take
 * only is.null (they may have no equality operator); in.() is refused on array columns.
 *
 * Order and pages: rows come ordered by (order column, key), both ascending or both descending;
 * NULLs of a nullable order column come last ascending and first descending (PostgreSQL's
 * default, so a plain btree index serves it), and the keyset predicate handles a NULL in the
 * cursor. The cursor names the last row of a page: when ordered by the key it is the key's text
 * (`after=50`, as /items has always had); otherwise it is opaque: base64url (no padding) of the
 * JSON array [order column text or null, key text].
 *
 * The statement (WHERE only when there are filters or a cursor; the byte bound only when given):
 *   SELECT <cols>, "cdcache n", "cdcache ck", "cdcache co" FROM (
 *     SELECT *, count(*) OVER () AS "cdcache n", row_number() OVER cdcache_w AS "cdcache rn",
 *            sum("cdcache sz") OVER cdcache_w - "cdcache sz" AS "cdcache before"
 *     FROM (SELECT *, <size of the exposed columns' text> AS "cdcache sz",
 *                  to_jsonb("id") #>> '{}' AS "cdcache ck",
 *                  to_jsonb("email") #>> '{}' AS "cdcache co"
 *           FROM "shop"."customers"
 *           WHERE "active" = $1::boolean AND "tier" = ANY($2::shop.tier[])
 *             AND ("email", "id") > ($3::text, $4::uuid)
 *           ORDER BY "email" ASC, "id" ASC LIMIT $5::int8) cdcache_l    -- $5: limit + 1
 *     WINDOW cdcache_w AS (ORDER BY "email" ASC, "id" ASC)) cdcache_p
 *   WHERE "cdcache rn" < $5::int8 AND "cdcache before" < $6::int8     -- $6: max_bytes
 *   ORDER BY cdcache_p."email" ASC, cdcache_p."id" ASC
 * (one line in fact). A nullable order column adds NULLS LAST/FIRST and an IS NULL arm to the
 * keyset predicate. The outermost ORDER BY is qualified: a bare "id" there would name the
 * caller's "id"::text output column and sort as text.
 *
 * Caps: FILTER_MAX_CONDS filters, FILTER_MAX_IN elements per in.() (one SQL parameter: an array),
 * FILTER_MAX_PARAMS parameters in all (4 kept for the cursor, the limit and the byte bound),
 * FILTER_MAX_VALUE bytes per converted value.
 *
 * Contract: the query string is untrusted bytes; an unknown parameter, column or operator, a value
 * the column's type refuses, a malformed cursor, a cap exceeded, or a parameter given twice
 * (filters on the same column may repeat: they AND) is CDC_EINVAL naming it in field: the column
 * for a filter, else `after`, `limit` or `order`. Reentrant; a filter is used by one thread. */
#ifndef CDCACHE_FILTER_H
#define CDCACHE_FILTER_H

#include "cdcache/resource.h"
#include "cdcache/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILTER_MAX_PARAMS    64   /* SQL parameters one list query may carry */
#define FILTER_MAX_CONDS     64   /* filters one list query may carry */
#define FILTER_MAX_IN        100  /* elements of one in.() list */
#define FILTER_MAX_VALUE     8192 /* bytes of one converted value (an in.() literal: 8 times) */
#define FILTER_LIMIT_DEFAULT 50

/* A parsed list query. Owns its strings; release with filter_free(). */
struct filter;

/* Parses qs[0..len) (NULL: none) for resource r (borrowed: must outlive the filter). limit must be
 * within 1..max_limit; the page is also bounded to about max_bytes of row text (<= 0: no byte
 * bound). On success returns 0 and a new filter in *out (release with filter_free()). On failure
 * returns CDC_EINVAL with a reason in err and the parameter or column at fault in field (control
 * bytes shown as '?'); *out is untouched. */
int filter_parse(const struct resource *r, const char *qs, size_t len, int max_limit,
                 int64_t max_bytes, struct filter **out, char *err, size_t errlen, char *field,
                 size_t fieldlen);
void filter_free(struct filter *f); /* NULL-safe */

/* The statement. Appends to sql one SELECT of cols (the caller's column list, already quoted and
 * cast, naming columns unqualified: it is evaluated over a subquery that has every column of the
 * table under its own name; the statement's own names start with "cdcache " or "cdcache_", which
 * a listed table's columns must not) followed by three columns of its own:
 *   n  (int8) the rows matched before the bounds, at most limit+1: a next page exists when n
 *            exceeds the rows returned (the limit or the byte bound cut them);
 *   ck (text) the key's cursor text;  co (text) the order column's cursor text (NULL when the
 *            value is NULL or when ordered by the key): to_jsonb(col) #>> '{}', the text a
 *            request would write, which the codec reads back exactly (RFC 3339 times, shortest
 *            floats), whatever the session's DateStyle.
 * The rows are at most limit, ordered as the page is, and stop before a row once the rows before
 * it hold about max_bytes of text (the first row always comes), as db.c's list always did. Writes
 * its parameters to params[0..*n) (params must hold FILTER_MAX_PARAMS; borrowed from f, valid until
 * filter_free(); none is NULL). Returns 0 or CDC_ETOOBIG (sql's cap). */
int filter_sql(const struct filter *f, const char *cols, struct buf *sql, const char **params,
               int *n);
int filter_limit(const struct filter *f);
/* The query string (without '?') of the next page: after=<cursor of the row whose key cursor text
 * is key and order-column cursor text is ocol (NULL: SQL NULL, or ordered by the key)>, limit,
 * then order (when the request gave it) and the filters as the request gave them, URL-encoded,
 * appended to out. Pass the ck and co columns of the page's last row. Returns 0 or CDC_ETOOBIG. */
int filter_next_query(const struct filter *f, const char *ocol, const char *key, struct buf *out);

#endif
