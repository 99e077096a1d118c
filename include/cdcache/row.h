/* Rows of a resource: the canonical JSON of a row (from a query's text columns or from a Debezium
 * after-image, through the same per-type codecs, so the bytes are the same either way) and the
 * parsing of request bodies into column values. Pure: no I/O, thread-safe, safe on any input.
 *
 * A row's JSON is an object of exactly the resource's exposed columns, in table order. Queries
 * select, in this order, the exposed columns and then the version column (sql.c). */
#ifndef CDCACHE_ROW_H
#define CDCACHE_ROW_H

#include "cdcache/json.h"
#include "cdcache/resource.h"
#include "cdcache/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The number of columns a query selects for r: exposed columns, then the version column. */
size_t row_select_count(const struct resource *r);
/* The column index of the i-th selected column. */
int row_select_column(const struct resource *r, size_t i);

/* Renders a query row: vals[i] (NULL for SQL NULL) of lens[i] bytes for the i-th selected column.
 * Appends the JSON to out and writes the version. Returns 0, CDC_EINVAL (a value not of its type)
 * or CDC_ETOOBIG. */
int row_render_pg(const struct resource *r, const char *const *vals, const int *lens,
                  struct buf *out, int64_t *version);

/* Renders an after-image: cols[i] is column i's member span (JSON_NONE when the image lacks it).
 * Returns 0; CDC_EREJECTED when the row cannot be rendered exactly as a query would (a column
 * missing or unknown, a TOAST placeholder, a type the codecs cannot match): evict, never refresh;
 * CDC_EDECODE when a value is malformed; CDC_ETOOBIG. */
int row_render_dbz(const struct resource *r, const struct json_span *cols, struct buf *out,
                   int64_t *version);

enum row_mode {
    ROW_CREATE,  /* POST /NAME: columns without a default that are NOT NULL are required */
    ROW_REPLACE, /* PUT /NAME/{key}: every writable column without a default is required (NULL for
                    a nullable one left out); columns with a default that are left out keep their
                    value */
    ROW_PATCH,   /* PATCH /NAME/{key}: at least one column; only those named */
    ROW_UPSERT,  /* PUT /NAME: with the key, as REPLACE of that key; without, as CREATE */
};

#define ROW_MAX_COLUMNS 256

/* A parsed body: the columns to write and their parameter text (NULL = SQL NULL). Owned; release
 * with row_input_free(). */
struct row_input {
    size_t n;
    int col[ROW_MAX_COLUMNS];
    const char *val[ROW_MAX_COLUMNS]; /* point into store */
    bool has_key;                     /* the body named the key */
    char key[512];                    /* its canonical text */
    struct buf store;
};

/* Parses body[0..len) for r. Unknown members, the version column and GENERATED ALWAYS columns are
 * refused by name; values go through codec_param(). On failure returns CDC_EINVAL with a reason in
 * err and the member at fault in field; *in is then empty. */
int row_input_parse(const struct resource *r, const char *body, size_t len, enum row_mode mode,
                    struct row_input *in, char *err, size_t errlen, char *field, size_t fieldlen);
void row_input_free(struct row_input *in);

#endif
