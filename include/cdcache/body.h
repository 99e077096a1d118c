/* Parser for item request bodies (POST, PUT, PATCH and the seed's PUT /items upsert).
 *
 * Contract: the input is untrusted bytes of any length (callers cap it first). The parser accepts
 * one JSON object with the fields id, name, description and price, and nothing else. It keeps the
 * exact text of a JSON number, so a price is never rounded through a double. It never reads past
 * len, never allocates more than len bytes per string, and is reentrant. */
#ifndef CDCACHE_BODY_H
#define CDCACHE_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum body_mode {
    BODY_CREATE,  /* POST /items: name, description, price required; no id */
    BODY_REPLACE, /* PUT /items/{id}: name, description, price required; id optional, must match */
    BODY_PATCH,   /* PATCH /items/{id}: at least one field; id optional, must match */
    BODY_UPSERT,  /* PUT /items: all of name, description, price; id (number or numeric string)
                     optional */
};

/* A parsed body. Strings are owned; release with body_item_free(). */
struct item_input {
    bool has_id;
    int64_t id;
    char *name; /* NULL when absent */
    size_t name_len;
    char *description; /* NULL when absent */
    size_t description_len;
    bool has_price;
    char price[24]; /* normalised decimal text, e.g. "12.34" */
};

/* Parses body[0..len). On success returns 0 and fills *out. On failure returns CDC_EINVAL, writes a
 * human-readable reason to err and the offending field name (or "") to field, and leaves *out
 * empty. */
int body_parse_item(const char *body, size_t len, enum body_mode mode, struct item_input *out,
                    char *err, size_t errlen, char *field, size_t fieldlen);

/* Releases the strings of in (NULL-safe) and zeroes it. */
void body_item_free(struct item_input *in);

/* Validates decimal text for price: non-negative, at most 8 integer and 2 fraction digits, no
 * exponent. Writes the normalised text (leading zeros removed) to out. Returns 0 or CDC_EINVAL with
 * a reason. */
int body_price_parse(const char *s, size_t len, char *out, size_t outlen, char *err, size_t errlen);

#endif
