/* The item body parser: one flat JSON object read with the strict json scanner, which keeps a
 * number's text, so a price is never rounded through a double. A known field with an object or
 * array value is a type error; an unknown field is rejected by name. */
#include "cdcache/body.h"
#include "cdcache/error.h"
#include "cdcache/json.h"
#include "cdcache/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int body_price_parse(const char *s, size_t len, char *out, size_t outlen, char *err, size_t errlen)
{
    size_t i = 0, int_start, int_digits, frac_digits = 0;
    const char *frac = NULL;

    if (len > 0 && s[0] == '-') {
        snprintf(err, errlen, "price must not be negative");
        return CDC_EINVAL;
    }
    int_start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    int_digits = i - int_start;
    if (i < len && s[i] == '.') {
        frac = s + i + 1;
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            frac_digits++;
        }
        if (frac_digits == 0)
            int_digits = 0; /* "12." is malformed */
    }
    if (int_digits == 0 || i != len) {
        snprintf(err, errlen, "price must be a plain decimal such as 12.34 (no exponent)");
        return CDC_EINVAL;
    }
    if (frac_digits > 2) {
        snprintf(err, errlen, "price has more than 2 decimal places");
        return CDC_EINVAL;
    }
    while (int_digits > 1 && s[int_start] == '0') {
        int_start++;
        int_digits--;
    }
    if (int_digits > 8) {
        snprintf(err, errlen, "price is out of range (at most 99999999.99)");
        return CDC_EINVAL;
    }
    if (int_digits + frac_digits + 2 > outlen)
        return CDC_EINVAL;
    memcpy(out, s + int_start, int_digits);
    if (frac_digits) {
        out[int_digits] = '.';
        memcpy(out + int_digits + 1, frac, frac_digits);
        out[int_digits + 1 + frac_digits] = '\0';
    } else {
        out[int_digits] = '\0';
    }
    return 0;
}

void body_item_free(struct item_input *in)
{
    if (!in)
        return;
    free(in->name);
    free(in->description);
    memset(in, 0, sizeof(*in));
}

static int fail_field(char *err, size_t errlen, char *field, size_t fieldlen, const char *name,
                      const char *msg)
{
    snprintf(field, fieldlen, "%s", name);
    if (name[0])
        snprintf(err, errlen, "field '%s': %s", name, msg);
    else
        snprintf(err, errlen, "%s", msg);
    return CDC_EINVAL;
}

static const char *const known_fields[] = {"id", "name", "description", "price"};

/* The length of a number's integer part when its fraction is only zeros ("42.0" and "42" are the
 * same integer to JSON, and to JSON Schema's "integer"); len otherwise, so anything else stays
 * malformed. An exponent is not taken. */
static size_t integral_len(const char *p, size_t len)
{
    const char *dot = memchr(p, '.', len);
    if (!dot || dot == p + len - 1)
        return len;
    for (const char *q = dot + 1; q < p + len; q++)
        if (*q != '0')
            return len;
    return (size_t)(dot - p);
}

/* A string value as a new NUL-terminated string (release with free()). */
static char *string_copy(const struct json_span *v, size_t *len)
{
    char *out = xmalloc(v->len + 1);
    long n = json_string_decode(v, out, v->len + 1);
    *len = n < 0 ? 0 : (size_t)n;
    return out;
}

int body_parse_item(const char *body, size_t len, enum body_mode mode, struct item_input *out,
                    char *err, size_t errlen, char *field, size_t fieldlen)
{
    struct json_cursor c;
    struct json_members it;
    struct json_span name, val;
    struct item_input in;
    bool seen[4] = {false, false, false, false};
    const char *why = NULL;
    char msg[160];
    int rc = CDC_EINVAL, r;

    memset(&in, 0, sizeof(in));
    if (field && fieldlen)
        field[0] = '\0';
    json_cursor_init(&c, body, len);
    if (json_members_open(&it, &c, &why)) {
        rc = fail_field(err, errlen, field, fieldlen, "", "body must be a JSON object");
        goto out;
    }
    while ((r = json_members_name(&it, &name, &why)) != 0) {
        int idx = -1;

        if (r < 0) {
            snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: %s", it.c.pos, why);
            rc = fail_field(err, errlen, field, fieldlen, "", msg);
            goto out;
        }
        for (int i = 0; i < 4; i++)
            if (json_string_equals(&name, known_fields[i]))
                idx = i;
        if (idx < 0) {
            char text[64];
            if (json_string_decode(&name, text, sizeof(text)) < 0)
                snprintf(text, sizeof(text), "%.60s", name.p);
            rc = fail_field(err, errlen, field, fieldlen, text, "unknown field");
            goto out;
        }
        if (seen[idx]) {
            rc = fail_field(err, errlen, field, fieldlen, known_fields[idx], "given twice");
            goto out;
        }
        seen[idx] = true;
        if (json_members_value(&it, &val, &why)) {
            snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: %s", it.c.pos, why);
            rc = fail_field(err, errlen, field, fieldlen, known_fields[idx], msg);
            goto out;
        }

        switch (idx) {
        case 0: /* id: number, or numeric string on the seed's upsert */
            if ((val.kind != JSON_NUMBER && val.kind != JSON_STRING) ||
                (val.kind == JSON_STRING && mode != BODY_UPSERT)) {
                rc = fail_field(err, errlen, field, fieldlen, "id",
                                mode == BODY_UPSERT ? "must be an integer or a numeric string"
                                                    : "must be an integer");
                goto out;
            }
            if (!(val.kind == JSON_STRING
                      ? json_span_i64(&val, &in.id)
                      : parse_i64(val.p, integral_len(val.p, val.len), &in.id)) ||
                in.id <= 0) {
                rc = fail_field(err, errlen, field, fieldlen, "id",
                                "must be a positive 64-bit integer");
                goto out;
            }
            in.has_id = true;
            break;
        case 1:
        case 2:
            if (val.kind != JSON_STRING) {
                rc =
                    fail_field(err, errlen, field, fieldlen, known_fields[idx], "must be a string");
                goto out;
            }
            if (idx == 1)
                in.name = string_copy(&val, &in.name_len);
            else
                in.description = string_copy(&val, &in.description_len);
            break;
        case 3: {
            char perr[96], text[64];
            const char *p = val.p;
            size_t plen = val.len;
            if (val.kind != JSON_NUMBER && val.kind != JSON_STRING) {
                rc = fail_field(err, errlen, field, fieldlen, "price",
                                "must be a decimal number such as 12.34");
                goto out;
            }
            if (val.kind == JSON_STRING && val.escaped) {
                long k = json_string_decode(&val, text, sizeof(text));
                p = k < 0 ? "" : text;
                plen = k < 0 ? 0 : (size_t)k;
            }
            if (body_price_parse(p, plen, in.price, sizeof(in.price), perr, sizeof(perr))) {
                rc = fail_field(err, errlen, field, fieldlen, "price", perr);
                goto out;
            }
            in.has_price = true;
            break;
        }
        }
    }
    if (!json_at_end(&it.c)) {
        rc = fail_field(err, errlen, field, fieldlen, "", "trailing data after the JSON object");
        goto out;
    }
    if (in.name && in.name_len == 0) {
        rc = fail_field(err, errlen, field, fieldlen, "name", "must not be empty");
        goto out;
    }
    if (mode == BODY_CREATE && in.has_id) {
        rc = fail_field(err, errlen, field, fieldlen, "id", "is assigned by the server");
        goto out;
    }
    if (mode != BODY_PATCH) {
        const char *missing = !in.name          ? "name"
                              : !in.description ? "description"
                              : !in.has_price   ? "price"
                                                : NULL;
        if (missing) {
            rc = fail_field(err, errlen, field, fieldlen, missing, "is required");
            goto out;
        }
    } else if (!in.name && !in.description && !in.has_price) {
        rc = fail_field(err, errlen, field, fieldlen, "",
                        "nothing to update: give name, description or price");
        goto out;
    }
    *out = in;
    memset(&in, 0, sizeof(in));
    rc = 0;
out:
    body_item_free(&in);
    return rc;
}
