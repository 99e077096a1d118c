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
 * The exact bytes, where a choice had to be made:
 * - float4/float8: the fewest significant digits that read back as the same float/double, laid out
 *   as ECMAScript's Number#toString (plain for 1e-6 <= |v| < 1e21: "0.1", "100000000000000000000",
 *   else "1e-7", "1e+21", "5e-324"); -0 stays "-0"; NaN, Infinity, -Infinity as strings.
 * - numeric: PostgreSQL's digits as they are ("1.50" stays 1.50, never an exponent).
 * - json/jsonb: PostgreSQL's text without the whitespace between tokens ({"a": 1} -> {"a":1});
 *   strings inside are copied as PostgreSQL wrote them. A json value that the strict scanner
 * refuses (an escaped NUL, for one) cannot be rendered (CDC_EINVAL from the query path).
 * - dates and times: years outside 1..9999 as PostgreSQL writes them, with the same 'T' and 'Z':
 *   "0044-03-15 BC", "0044-03-15T12:00:00Z BC", "10000-01-01T00:00:00"; infinite values as
 *   "infinity" and "-infinity"; time 24:00:00 as "24:00:00". Fractions keep up to 6 digits,
 * trailing zeros trimmed, for every kind.
 * - arrays: the "[1:2]=" bounds are dropped. An array of a CODEC_OTHER type renders as one string
 *   (its whole text): its elements' delimiter is not always ','.
 * - text, enum, other, uuid: the query path refuses text that is not UTF-8 or holds a NUL (a
 *   SQL_ASCII database) rather than write a JSON string that is not one.
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
    uint32_t oid;         /* the column's type oid (the array type's for arrays). For arrays,
                             codec_render_dbz reads it: a null array evicts unless the oid says
                             Debezium has a placeholder of its own for that array type (0: evicts) */
};

/* Classifies a type from pg_type: typname of the element type (for arrays, the element's name, as
 * in pg_type.typname of typelem) and typtype ('e' = enum). */
enum codec_kind codec_kind_of(const char *typname, char typtype);

/* Appends the canonical JSON of a value given in PostgreSQL's text output format (libpq text
 * results; the session runs with TimeZone=UTC, DateStyle=ISO, IntervalStyle=postgres,
 * bytea_output=hex, extra_float_digits=1). NULL is not passed here (the caller writes null).
 * Returns 0, CDC_EINVAL when the text is not of the type, or CDC_ETOOBIG when out's cap is hit; on
 * failure out is left as it was. */
int codec_render_pg(const struct codec_type *t, const char *text, size_t len, struct buf *out);

/* Appends the canonical JSON of a value from a Debezium after-image.
 * debezium/application.properties fixes the converters: decimal.handling.mode=string;
 * time.precision.mode=adaptive_time_microseconds (date in days, time in microseconds,
 * timestamp(0..3) in milliseconds and other timestamps in microseconds: t->typmod is read);
 * binary.handling.mode=bytes (base64 in the JSON; with "base64" an unchanged TOASTed bytea arrives
 * as a bare null). v is the member's span in the after-image (JSON_NULL allowed: writes null).
 * Returns 0; CDC_EREJECTED when the value cannot be rendered exactly as the query path would, and
 * the caller evicts instead of refreshing: CODEC_OTHER (interval, money, inet, point, ...:
 * Debezium's forms differ from PostgreSQL's text), a placeholder for an unchanged TOASTed value
 * (codec_dbz_unavailable), an array holding a null element or a Java array's toString (how
 * multi-dimensional arrays arrive), a null array of a type whose unchanged TOASTed value also
 * arrives as null (bool[], float[], numeric[], timestamp[], enum arrays, ...: see codec_type.oid).
 * CDC_EDECODE when v is not a value of the type; CDC_ETOOBIG when out's cap is hit. On failure out
 * is left as it was. Allocates only for an escaped string longer than 512 bytes. */
int codec_render_dbz(const struct codec_type *t, const struct json_span *v, struct buf *out);

/* True when v is Debezium's placeholder for an unchanged TOASTed value of type t (its
 * UnchangedToastedPlaceholder; confirmed by tests/fixtures/shop-events.jsonl):
 * "__debezium_unavailable_value" (text, numeric, json, any string); for bytea the base64 of those
 * 28 bytes; for text, varchar, char, json and jsonb arrays ["__debezium_unavailable_value"]; for
 * bytea[] [that base64]; for uuid[] ["b68a35a7-17ad-35b3-af2a-ae46edb4545a"] (the name uuid of
 * those bytes); for int4[], int8[] and date[] the array of the bytes, [95,95,100,...]. A real value
 * of exactly that form is taken for the placeholder too (it evicts: always safe). Other arrays have
 * no placeholder: they arrive as null (see codec_render_dbz). */
bool codec_dbz_unavailable(const struct codec_type *t, const struct json_span *v);

/* Reads a request body's value for a column of type t into the text PostgreSQL takes as a query
 * parameter (the SQL casts it: $n::<type>). JSON null sets *is_null and writes nothing (for a json
 * column too: SQL NULL, not JSON null). Checks the value against the type and its typmod:
 * - int2/int4/int8: a JSON number with an integral value ("42.0" is 42; no exponent, no string),
 *   within the type's range;
 * - numeric: a JSON number or a decimal string, exact, no exponent, NaN/Infinity refused, at most
 *   s decimals and p-s integer digits for numeric(p,s) (never rounded);
 * - float4/float8: a JSON number in range (passed as written), or "NaN", "Infinity", "-Infinity";
 * - bool: true/false; text/varchar/char: a string, varchar(n)/char(n) at most n characters;
 * - uuid: 8-4-4-4-12 hex in any case (written lower-case); no braces, no other layouts;
 * - date "YYYY-MM-DD", time "HH:MM:SS[.ffffff]", timestamp "YYYY-MM-DDTHH:MM:SS[.ffffff]" (no
 *   offset), timestamptz the same with "Z" or "+HH:MM" (required); "infinity"/"-infinity" for the
 *   dated kinds;
 * - bytea: a base64 string (written as \x hex); json/jsonb: any JSON value, passed as its text;
 * - arrays: a JSON array, nested for more dimensions, written as a PostgreSQL array literal with
 *   every element quoted (null -> NULL); enum and other types: a string, passed as it is.
 * Returns 0, or CDC_EINVAL with a short reason in err ("not an integer", "out of range for int4",
 * "more than 2 decimals", ...); on failure param is left as it was. */
int codec_param(const struct codec_type *t, const struct json_span *v, struct buf *param,
                bool *is_null, char *err, size_t errlen);

/* The same from text (a query-string filter value or an `in.(...)` element): the text is what a
 * request would write inside a JSON string, or a number's digits. Returns 0 or CDC_EINVAL. */
int codec_param_text(const struct codec_type *t, const char *s, size_t len, struct buf *param,
                     char *err, size_t errlen);

/* A key's canonical text, the same whichever way it is spelled, so that a read and an event name
 * the same cache entry: integers in plain decimal ("007" -> "7", "-0" -> "0"; '+', spaces,
 * fractions and out-of-range values refused), uuids in lower case with hyphens (any case accepted;
 * braces or no hyphens refused), text and enum labels as they are (not empty, no NUL). Key columns
 * are int2, int4, int8, text (and its kinds), uuid and enum (codec_key_supported).
 * Writes out[0..*outlen) and a NUL (cap includes it). Returns 0 or CDC_EINVAL. */
int codec_key_canon(const struct codec_type *t, const char *s, size_t len, char *out, size_t cap,
                    size_t *outlen);
/* The same from a Debezium key's (or before-image's) member span: a number or a string. */
int codec_key_dbz(const struct codec_type *t, const struct json_span *v, char *out, size_t cap,
                  size_t *outlen);
/* True when a column of type t can be a route key: int2, int4, int8, text, uuid, enum; not arrays.
 * (numeric, dates and the rest have several spellings of one value: not keys.) */
bool codec_key_supported(const struct codec_type *t);

/* True when a key of type t is written as a JSON number in a row (Location and list cursors do not
 * care; the body's key member does). */
bool codec_key_numeric(const struct codec_type *t);

#endif
