/* A strict parser for flat JSON objects, specialised for item bodies. cJSON is not used here
 * because it turns numbers into doubles, and a price must keep its decimal text. Nested values are
 * never needed: a known field with an object or array value is a type error, and unknown fields are
 * rejected before their value is read. */
#include "cdcache/body.h"
#include "cdcache/error.h"
#include "cdcache/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    const char *s;
    size_t len;
    size_t pos;
};

enum value_kind { V_STRING, V_NUMBER, V_OTHER };

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    unsigned cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        need = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        need = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        need = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

/* Parses a JSON string at p->pos (which holds '"'). On success returns a new NUL-terminated string
 * (release with free()) and its length; NULL on malformed input or an embedded NUL. */
static char *parse_string(struct parser *p, size_t *outlen, const char **why)
{
    char *o = xmalloc(p->len - p->pos + 1);
    size_t n = 0;

    p->pos++; /* opening quote */
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            o[n] = '\0';
            *outlen = n;
            return o;
        }
        if (c < 0x20) {
            *why = "control character in string";
            goto fail;
        }
        if (c == '\\') {
            char e;
            if (p->pos + 1 >= p->len)
                break;
            e = p->s[p->pos + 1];
            p->pos += 2;
            switch (e) {
            case '"':
                o[n++] = '"';
                break;
            case '\\':
                o[n++] = '\\';
                break;
            case '/':
                o[n++] = '/';
                break;
            case 'b':
                o[n++] = '\b';
                break;
            case 'f':
                o[n++] = '\f';
                break;
            case 'n':
                o[n++] = '\n';
                break;
            case 'r':
                o[n++] = '\r';
                break;
            case 't':
                o[n++] = '\t';
                break;
            case 'u': {
                unsigned cp, lo;
                if (p->pos + 4 > p->len || hex4(p->s + p->pos, &cp)) {
                    *why = "bad \\u escape";
                    goto fail;
                }
                p->pos += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                        hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        *why = "unpaired surrogate";
                        goto fail;
                    }
                    p->pos += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    *why = "unpaired surrogate";
                    goto fail;
                }
                if (cp == 0) {
                    *why = "NUL characters are not allowed";
                    goto fail;
                }
                /* Six escaped bytes never expand to more than four, so o cannot overflow. */
                n += utf8_put(o + n, cp);
                break;
            }
            default:
                *why = "bad escape";
                goto fail;
            }
            continue;
        }
        {
            size_t k = utf8_seq((const unsigned char *)p->s + p->pos, p->len - p->pos);
            if (k == 0) {
                *why = "invalid UTF-8";
                goto fail;
            }
            memcpy(o + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
        }
    }
    *why = "unterminated string";
fail:
    free(o);
    return NULL;
}

/* Scans a JSON number at p->pos; returns its span. */
static bool scan_number(struct parser *p, size_t *start, size_t *nlen)
{
    size_t i = p->pos;
    size_t d;
    *start = i;
    if (i < p->len && p->s[i] == '-')
        i++;
    if (i >= p->len)
        return false;
    if (p->s[i] == '0') {
        i++;
    } else if (p->s[i] >= '1' && p->s[i] <= '9') {
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    } else {
        return false;
    }
    if (i < p->len && p->s[i] == '.') {
        i++;
        d = i;
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        d = i;
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    *nlen = i - *start;
    p->pos = i;
    return true;
}

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

int body_parse_item(const char *body, size_t len, enum body_mode mode, struct item_input *out,
                    char *err, size_t errlen, char *field, size_t fieldlen)
{
    struct parser p = {body, len, 0};
    struct item_input in;
    bool seen[4] = {false, false, false, false};
    const char *why = NULL;
    char msg[160];
    int rc = CDC_EINVAL;

    memset(&in, 0, sizeof(in));
    if (field && fieldlen)
        field[0] = '\0';
    skip_ws(&p);
    if (p.pos >= p.len || body[p.pos] != '{') {
        rc = fail_field(err, errlen, field, fieldlen, "", "body must be a JSON object");
        goto out;
    }
    p.pos++;
    skip_ws(&p);
    if (p.pos < p.len && body[p.pos] == '}') {
        p.pos++;
        goto done;
    }
    for (;;) {
        char *key;
        size_t klen;
        int idx = -1;
        enum value_kind kind;
        size_t vstart = 0, vlen = 0;
        char *sval = NULL;
        size_t slen = 0;

        skip_ws(&p);
        if (p.pos >= p.len || body[p.pos] != '"') {
            snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: expected a field name", p.pos);
            rc = fail_field(err, errlen, field, fieldlen, "", msg);
            goto out;
        }
        key = parse_string(&p, &klen, &why);
        if (!key) {
            snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: %s", p.pos, why);
            rc = fail_field(err, errlen, field, fieldlen, "", msg);
            goto out;
        }
        for (int i = 0; i < 4; i++)
            if (strlen(known_fields[i]) == klen && memcmp(key, known_fields[i], klen) == 0)
                idx = i;
        if (idx < 0) {
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)(klen > 60 ? 60 : klen), key);
            free(key);
            rc = fail_field(err, errlen, field, fieldlen, name, "unknown field");
            goto out;
        }
        free(key);
        if (seen[idx]) {
            rc = fail_field(err, errlen, field, fieldlen, known_fields[idx], "given twice");
            goto out;
        }
        seen[idx] = true;
        skip_ws(&p);
        if (p.pos >= p.len || body[p.pos] != ':') {
            snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: expected ':'", p.pos);
            rc = fail_field(err, errlen, field, fieldlen, "", msg);
            goto out;
        }
        p.pos++;
        skip_ws(&p);
        if (p.pos < p.len && body[p.pos] == '"') {
            kind = V_STRING;
            sval = parse_string(&p, &slen, &why);
            if (!sval) {
                snprintf(msg, sizeof(msg), "invalid JSON string: %s", why);
                rc = fail_field(err, errlen, field, fieldlen, known_fields[idx], msg);
                goto out;
            }
        } else if (p.pos < p.len &&
                   (body[p.pos] == '-' || (body[p.pos] >= '0' && body[p.pos] <= '9'))) {
            kind = V_NUMBER;
            if (!scan_number(&p, &vstart, &vlen)) {
                rc =
                    fail_field(err, errlen, field, fieldlen, known_fields[idx], "malformed number");
                goto out;
            }
        } else {
            kind = V_OTHER;
        }

        switch (idx) {
        case 0: /* id: number, or numeric string on the seed's upsert */
            if (kind == V_OTHER || (kind == V_STRING && mode != BODY_UPSERT)) {
                free(sval);
                rc = fail_field(err, errlen, field, fieldlen, "id",
                                mode == BODY_UPSERT ? "must be an integer or a numeric string"
                                                    : "must be an integer");
                goto out;
            }
            if (!(kind == V_STRING ? parse_i64(sval, slen, &in.id)
                                   : parse_i64(body + vstart, vlen, &in.id)) ||
                in.id <= 0) {
                free(sval);
                rc = fail_field(err, errlen, field, fieldlen, "id",
                                "must be a positive 64-bit integer");
                goto out;
            }
            free(sval);
            in.has_id = true;
            break;
        case 1:
        case 2:
            if (kind != V_STRING) {
                rc =
                    fail_field(err, errlen, field, fieldlen, known_fields[idx], "must be a string");
                goto out;
            }
            if (idx == 1) {
                in.name = sval;
                in.name_len = slen;
            } else {
                in.description = sval;
                in.description_len = slen;
            }
            break;
        case 3: {
            char perr[96];
            int prc;
            if (kind == V_OTHER) {
                rc = fail_field(err, errlen, field, fieldlen, "price",
                                "must be a decimal number such as 12.34");
                goto out;
            }
            prc = kind == V_STRING
                      ? body_price_parse(sval, slen, in.price, sizeof(in.price), perr, sizeof(perr))
                      : body_price_parse(body + vstart, vlen, in.price, sizeof(in.price), perr,
                                         sizeof(perr));
            free(sval);
            if (prc) {
                rc = fail_field(err, errlen, field, fieldlen, "price", perr);
                goto out;
            }
            in.has_price = true;
            break;
        }
        }

        skip_ws(&p);
        if (p.pos < p.len && body[p.pos] == ',') {
            p.pos++;
            continue;
        }
        if (p.pos < p.len && body[p.pos] == '}') {
            p.pos++;
            break;
        }
        snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: expected ',' or '}'", p.pos);
        rc = fail_field(err, errlen, field, fieldlen, "", msg);
        goto out;
    }
done:
    skip_ws(&p);
    if (p.pos != p.len) {
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
