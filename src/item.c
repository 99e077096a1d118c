/* Rendering of an item. Every byte of an item's JSON is produced here, from text columns, so that
 * the body cached from a query row and the body cached from a Debezium after-image cannot drift
 * apart. Money never passes through a double: price is validated as decimal text and copied. */
#include "cdcache/item.h"
#include "cdcache/error.h"

#include <stdio.h>
#include <string.h>

bool item_decimal_valid(const char *s)
{
    size_t i = 0, digits = 0;

    if (!s)
        return false;
    if (s[i] == '-')
        i++;
    while (s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0)
        return false;
    if (s[i] == '.') {
        size_t frac = 0;
        i++;
        while (s[i] >= '0' && s[i] <= '9') {
            i++;
            frac++;
        }
        if (frac == 0)
            return false;
    }
    return s[i] == '\0';
}

static bool digits_at(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int item_time_normalize(const char *in, char *out, size_t outlen)
{
    /* "YYYY-MM-DD?HH:MM:SS" is 19 characters; then an optional fraction, then the offset. */
    char frac[10] = "";
    size_t flen = 0;
    const char *p;
    int n;

    if (!in || strlen(in) < 20 || outlen < 40)
        return CDC_EINVAL;
    if (!digits_at(in, 4) || in[4] != '-' || !digits_at(in + 5, 2) || in[7] != '-' ||
        !digits_at(in + 8, 2) || (in[10] != 'T' && in[10] != ' ') || !digits_at(in + 11, 2) ||
        in[13] != ':' || !digits_at(in + 14, 2) || in[16] != ':' || !digits_at(in + 17, 2))
        return CDC_EINVAL;
    p = in + 19;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (flen == 9)
                return CDC_EINVAL;
            frac[flen++] = *p++;
        }
        if (flen == 0)
            return CDC_EINVAL;
    }
    if (!(strcmp(p, "Z") == 0 || strcmp(p, "+00") == 0 || strcmp(p, "+00:00") == 0))
        return CDC_EINVAL;
    while (flen > 0 && frac[flen - 1] == '0')
        flen--;
    /* "YYYY-MM-DDTHH:MM:SS" + ".fraction" + "Z": at most 31 bytes, and outlen >= 40. */
    memcpy(out, in, 10);
    out[10] = 'T';
    memcpy(out + 11, in + 11, 8);
    n = 19;
    if (flen) {
        out[n++] = '.';
        memcpy(out + n, frac, flen);
        n += (int)flen;
    }
    out[n++] = 'Z';
    out[n] = '\0';
    return 0;
}

static int field_error(char *err, size_t errlen, const char *field)
{
    if (err && errlen)
        snprintf(err, errlen, "field '%s' is malformed", field);
    return CDC_EINVAL;
}

/* Appends a positive integer in decimal. */
static int put_i64(struct buf *out, int64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);
    uint64_t u = (uint64_t)v;

    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return buf_append(out, digits + i, sizeof(digits) - i);
}

int item_render(const struct item_fields *f, struct buf *out, char *err, size_t errlen)
{
    char created[40], updated[40];
    size_t mark = out->len;
    int rc;

    if (f->id <= 0)
        return field_error(err, errlen, "id");
    if (!f->name)
        return field_error(err, errlen, "name");
    if (!f->description)
        return field_error(err, errlen, "description");
    if (!item_decimal_valid(f->price))
        return field_error(err, errlen, "price");
    if (item_time_normalize(f->created_at, created, sizeof(created)))
        return field_error(err, errlen, "created_at");
    if (item_time_normalize(f->updated_at, updated, sizeof(updated)))
        return field_error(err, errlen, "updated_at");
    if (f->version <= 0)
        return field_error(err, errlen, "version");

    /* Piece by piece rather than through printf: this runs for every change event applied. */
    rc = buf_puts(out, "{\"id\":");
    if (!rc)
        rc = put_i64(out, f->id);
    if (!rc)
        rc = buf_puts(out, ",\"name\":\"");
    if (!rc)
        rc = buf_json_escape(out, f->name, f->name_len);
    if (!rc)
        rc = buf_puts(out, "\",\"description\":\"");
    if (!rc)
        rc = buf_json_escape(out, f->description, f->description_len);
    if (!rc)
        rc = buf_puts(out, "\",\"price\":");
    if (!rc)
        rc = buf_puts(out, f->price);
    if (!rc)
        rc = buf_puts(out, ",\"created_at\":\"");
    if (!rc)
        rc = buf_puts(out, created);
    if (!rc)
        rc = buf_puts(out, "\",\"updated_at\":\"");
    if (!rc)
        rc = buf_puts(out, updated);
    if (!rc)
        rc = buf_puts(out, "\",\"version\":");
    if (!rc)
        rc = put_i64(out, f->version);
    if (!rc)
        rc = buf_puts(out, "}");
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}
