/* The row codec: one concept per PostgreSQL type kind, rendering a column's value to its canonical
 * JSON from the three places values come from (PostgreSQL's text output, a Debezium after-image,
 * a request body), and reading keys. Both the query path and the change-event path render through
 * here, which is what makes a row byte-for-byte the same from either (DESIGN.md, "Resources").
 *
 * Mapping (the README's "Representation"): text/varchar/char/uuid/enum -> string; int2/int4/int8
 * -> number (exact); numeric -> number with exactly PostgreSQL's digits (NaN, +-Infinity ->
 * strings); float4/float8 -> shortest round-trip number (NaN, +-Infinity -> strings); bool ->
 * true/false; json/jsonb -> the value itself; date, time, timestamp -> RFC 3339 strings without
 * offset; timestamptz -> RFC 3339 UTC with "Z" (fraction's trailing zeros trimmed, as items have
 * always had); bytea -> base64; arrays (one or more dimensions) -> JSON arrays of the element
 * mapping; NULL -> null; any other type -> PostgreSQL's text output as a string.
 *
 * Pure functions over caller-owned memory: no I/O, no globals, thread-safe, safe on any input
 * (fuzzed). */
#ifndef CDCACHE_CODEC_H
#define CDCACHE_CODEC_H

#include "cdcache/json.h"
#include "cdcache/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum codec_kind {
    CODEC_TEXT, /* text, varchar, char (bpchar), name, citext */
    CODEC_INT2,
    CODEC_INT4,
    CODEC_INT8,
    CODEC_NUMERIC,
    CODEC_FLOAT4,
    CODEC_FLOAT8,
    CODEC_BOOL,
    CODEC_JSON, /* json and jsonb */
    CODEC_UUID,
    CODEC_DATE,
    CODEC_TIME,        /* time without time zone */
    CODEC_TIMESTAMP,   /* timestamp without time zone */
    CODEC_TIMESTAMPTZ, /* timestamp with time zone */
    CODEC_BYTEA,
    CODEC_ENUM,
    CODEC_OTHER, /* anything else: PostgreSQL's text as a string; a change event never refreshes */
};

/* A column's type, from the catalog (catalog.c). Immutable. */
struct codec_type {
    enum codec_kind kind; /* of the element, for arrays */
    bool array;           /* an array of kind (any number of dimensions) */
    int32_t typmod;       /* pg_attribute.atttypmod: -1 none; numeric (p,s), varchar(n), ... */
    uint32_t oid;         /* the column's type oid (the array type's for arrays) */
};

/* Classifies a type from pg_type: typname of the element type (for arrays, the element's name, as
 * in pg_type.typname of typelem) and typtype ('e' = enum). */
enum codec_kind codec_kind_of(const char *typname, char typtype);

/* Appends the canonical JSON of a value given in PostgreSQL's text output format (libpq text
 * results; the session runs with TimeZone=UTC, DateStyle=ISO, bytea_output=hex,
 * extra_float_digits=1). NULL is not passed here (the caller writes null). Returns 0, CDC_EINVAL
 * when the text is not of the type, or CDC_ETOOBIG when out's cap is hit. */
int codec_render_pg(const struct codec_type *t, const char *text, size_t len, struct buf *out);

/* Appends the canonical JSON of a value from a Debezium after-image (debezium/application.properties
 * fixes the converters: decimal.handling.mode=string, time.precision.mode=adaptive_time_microseconds,
 * binary.handling.mode=base64, ...). v is the member's span in the after-image (JSON_NULL allowed:
 * writes null). Returns 0; CDC_EREJECTED when the value cannot be rendered exactly as the query path
 * would (CODEC_OTHER, or a placeholder for an unchanged TOASTed value: the caller evicts instead of
 * refreshing); CDC_EDECODE when v is not a value of the type; CDC_ETOOBIG when out's cap is hit. */
int codec_render_dbz(const struct codec_type *t, const struct json_span *v, struct buf *out);

/* True when v is Debezium's placeholder for an unchanged TOASTed value of type t
 * ("__debezium_unavailable_value", or the forms it takes for bytea and arrays). */
bool codec_dbz_unavailable(const struct codec_type *t, const struct json_span *v);

/* Reads a request body's value for a column of type t into the text PostgreSQL takes as a query
 * parameter (the SQL casts it: $n::<type>). JSON null sets *is_null and writes nothing. Checks the
 * value against the type and its typmod: integer ranges, numeric precision and scale (a JSON number
 * or a decimal string), uuid form, dates and times, base64, json (any value), arrays (a JSON array,
 * written as a PostgreSQL array literal). Returns 0, or CDC_EINVAL with a short reason in err
 * ("not an integer", "out of range for int4", "more than 2 decimals", ...). */
int codec_param(const struct codec_type *t, const struct json_span *v, struct buf *param,
                bool *is_null, char *err, size_t errlen);

/* The same from text (a query-string filter value or an `in.(...)` element): the text is what a
 * request would write inside a JSON string, or a number's digits. Returns 0 or CDC_EINVAL. */
int codec_param_text(const struct codec_type *t, const char *s, size_t len, struct buf *param,
                     char *err, size_t errlen);

/* A key's canonical text, the same whichever way it is spelled, so that a read and an event name
 * the same cache entry: integers in plain decimal (no sign for positives, no leading zeros), uuids
 * in lower case with hyphens, text as it is. Key columns are int2, int4, int8, text (and its
 * kinds), uuid, or numeric/date/... whose canonical text is PostgreSQL's (codec_key_supported).
 * Writes out[0..*outlen) and a NUL (cap includes it). Returns 0 or CDC_EINVAL. */
int codec_key_canon(const struct codec_type *t, const char *s, size_t len, char *out, size_t cap,
                    size_t *outlen);
/* The same from a Debezium key's (or before-image's) member span: a number or a string. */
int codec_key_dbz(const struct codec_type *t, const struct json_span *v, char *out, size_t cap,
                  size_t *outlen);
/* True when a column of type t can be a route key. */
bool codec_key_supported(const struct codec_type *t);

/* True when a key of type t is written as a JSON number in a row (Location and list cursors do not
 * care; the body's key member does). */
bool codec_key_numeric(const struct codec_type *t);

#endif
