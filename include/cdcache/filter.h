/* List queries of a resource (GET /NAME?...): keyset pagination (after, limit), PostgREST-style
 * filters and order, checked against the resource's descriptor and turned into one parameterised
 * SQL statement. Served from PostgreSQL, never from the cache.
 *
 * Query syntax (PostgREST's, for the common operators):
 *   COLUMN=eq.V | neq.V | lt.V | lte.V | gt.V | gte.V | in.(a,b,"c,d") | is.null | not.is.null
 *   order=COLUMN.asc | COLUMN.desc   (the key, or a column that leads a btree index: orderable)
 *   after=CURSOR   limit=N (1..max_limit, default 50)
 * Filters are ANDed; only exposed columns may be named; values are checked by the column's codec
 * (codec_param_text) and always passed as parameters. Pages are ordered by (order column, key) and
 * the cursor of the next page names the last row (the key alone when ordered by the key, so
 * `after=<id>` works as it always has for /items).
 *
 * Contract: the query string is untrusted bytes; an unknown parameter, column or operator, a value
 * the column's type refuses, or a parameter given twice (filters on the same column may repeat: they
 * AND) is CDC_EINVAL naming it in field. Reentrant. */
#ifndef CDCACHE_FILTER_H
#define CDCACHE_FILTER_H

#include "cdcache/resource.h"
#include "cdcache/util.h"

#include <stdbool.h>
#include <stddef.h>

#define FILTER_MAX_PARAMS 64 /* SQL parameters one list query may carry */

/* A parsed list query. Owns its strings; release with filter_free(). */
struct filter;

/* Parses qs[0..len) (NULL: none) for resource r. On success returns 0 and a new filter in *out. On
 * failure returns CDC_EINVAL with a reason in err and the parameter or column at fault in field. */
int filter_parse(const struct resource *r, const char *qs, size_t len, int max_limit,
                 struct filter **out, char *err, size_t errlen, char *field, size_t fieldlen);
void filter_free(struct filter *f);

/* The statement: appends SQL selecting the exposed columns as text (plus the key and order column
 * as needed for the cursor) of at most limit+1 rows to sql, and its parameters to params[0..*n)
 * (borrowed from f, NULL = SQL NULL). cols names what to select (the caller's column list, already
 * quoted and cast). Returns 0 or CDC_ETOOBIG. */
int filter_sql(const struct filter *f, const char *cols, struct buf *sql, const char **params,
               int *n);
int filter_limit(const struct filter *f);
/* The column index pages are ordered by (the key's when order= was not given). */
int filter_order_column(const struct filter *f);
/* The query string of the next page (order, filters, limit and after=<cursor of the row whose
 * order-column text is ocol and key text is key>), URL-encoded, appended to out. */
int filter_next_query(const struct filter *f, const char *ocol, const char *key, struct buf *out);

#endif
