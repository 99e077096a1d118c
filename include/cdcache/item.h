/* The item resource: its canonical JSON rendering and the validation of its scalar formats.
 * Pure functions, no I/O, thread-safe. Both the PostgreSQL path and the Debezium path render
 * through item_render(), which is what makes the two byte-for-byte identical. */
#ifndef CDCACHE_ITEM_H
#define CDCACHE_ITEM_H

#include "cdcache/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The columns of inventory.items as text, all borrowed. Timestamps may be in PostgreSQL's text form
 * ("2026-01-02 03:04:05.5+00") or ISO-8601 ("2026-01-02T03:04:05.5Z"); both render the same. */
struct item_fields {
    int64_t id;
    const char *name;
    size_t name_len;
    const char *description;
    size_t description_len;
    const char *price;
    const char *created_at;
    const char *updated_at;
    int64_t version;
};

/* Appends the canonical JSON of the item to out:
 * {"id":1,"name":"..","description":"..","price":12.34,"created_at":"..Z","updated_at":"..Z","version":1}
 * Timestamps become RFC 3339 UTC with trailing zeros of the fraction trimmed (Go's RFC3339Nano).
 * Returns 0, CDC_EINVAL when a field is malformed (err names it), or CDC_ETOOBIG when out's cap is
 * hit. */
int item_render(const struct item_fields *f, struct buf *out, char *err, size_t errlen);

/* True when s is a plain decimal: optional '-', digits, optionally '.' and digits. */
bool item_decimal_valid(const char *s);

/* Normalises a UTC timestamp (see struct item_fields) into out (at least 40 bytes).
 * Returns 0 or CDC_EINVAL (not a timestamp, or an offset other than UTC). */
int item_time_normalize(const char *in, char *out, size_t outlen);

#endif
