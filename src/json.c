/* The strict JSON scanner (see json.h). Validation and extraction are split: json_value() checks a
 * value completely and returns its span; json_members_*() walk an object one member at a time, and
 * json_string_decode()/json_span_i64() turn a span into text or an integer. */
#include "cdcache/json.h"
#include "cdcache/error.h"
#include "cdcache/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void json_cursor_init(struct json_cursor *c, const char *s, size_t len)
{
    c->s = s;
    c->len = len;
    c->pos = 0;
}

/* Whitespace; inlined into the scanner's loops: Debezium's JSON has no whitespace, so the first
 * test usually ends it. */
static inline void skip_ws(struct json_cursor *c)
{
    while (c->pos < c->len) {
        char ch = c->s[c->pos];
        if (ch > ' ' || (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r'))
            break;
        c->pos++;
    }
}

bool json_at_end(struct json_cursor *c)
{
    skip_ws(c);
    return c->pos == c->len;
}

static int fail(const char **why, const char *reason)
{
    *why = reason;
    return CDC_EINVAL;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = s[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned ch = s[0];
    size_t need;
    unsigned cp, min;
    if (ch < 0x80)
        return 1;
    if ((ch & 0xE0) == 0xC0) {
        need = 2, cp = ch & 0x1F, min = 0x80;
    } else if ((ch & 0xF0) == 0xE0) {
        need = 3, cp = ch & 0x0F, min = 0x800;
    } else if ((ch & 0xF8) == 0xF0) {
        need = 4, cp = ch & 0x07, min = 0x10000;
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

/* Reads the \u escape at s (s[0] == 'u', n bytes available) including a surrogate pair's second
 * half. Writes the code point and the bytes consumed after the backslash. */
static int read_u_escape(const char *s, size_t n, unsigned *cp, size_t *used, const char **why)
{
    unsigned hi, lo;
    if (n < 5 || hex4(s + 1, &hi))
        return fail(why, "bad \\u escape");
    *used = 5;
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        if (n < 11 || s[5] != '\\' || s[6] != 'u' || hex4(s + 7, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return fail(why, "unpaired surrogate");
        *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
        *used = 11;
        return 0;
    }
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return fail(why, "unpaired surrogate");
    if (hi == 0)
        return fail(why, "NUL characters are not allowed");
    *cp = hi;
    return 0;
}

#define BYTES_OF(x) (0x0101010101010101ULL * (uint64_t)(x))
#define HIGH_BITS   0x8080808080808080ULL

/* Nonzero when one of the 8 bytes of w needs a look of its own: '"', '\\', a control character
 * or a non-ASCII byte. (The classic has-zero-byte test; it never misses one, and a false alarm
 * only sends the word to the byte-by-byte path.) */
static uint64_t word_needs_look(uint64_t w)
{
    uint64_t quote = w ^ BYTES_OF('"'), backslash = w ^ BYTES_OF('\\');
    return ((quote - BYTES_OF(1)) & ~quote) | ((backslash - BYTES_OF(1)) & ~backslash) |
           (w - BYTES_OF(0x20)) | w;
}

/* The character a two-byte escape \e stands for, or 0 when e is not one of them ('u' is handled
 * apart). The one table for validation and decoding. */
static char unescaped(char e)
{
    switch (e) {
    case '"':
    case '\\':
    case '/':
        return e;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return 0;
    }
}

static int scan_string(struct json_cursor *c, struct json_span *v, const char **why)
{
    const char *s = c->s;
    size_t i = c->pos + 1;

    v->kind = JSON_STRING;
    v->p = s + i;
    v->escaped = false;
    while (i < c->len) {
        unsigned char ch;
        /* Find the next byte that needs a look: eight at a time, then one at a time near the end
         * of the input. The lowest flagged byte of a word is exact. */
        if (c->len - i >= 8) {
            uint64_t w, m;
            memcpy(&w, s + i, 8);
            m = word_needs_look(w) & HIGH_BITS;
            if (m == 0) {
                i += 8;
                continue;
            }
            i += (size_t)__builtin_ctzll(m) >> 3;
        } else {
            ch = (unsigned char)s[i];
            if (ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\') {
                i++;
                continue;
            }
        }
        ch = (unsigned char)s[i];
        if (ch == '"') {
            v->len = (size_t)(s + i - v->p);
            c->pos = i + 1;
            return 0;
        }
        if (ch < 0x20) {
            c->pos = i;
            return fail(why, "control character in string");
        }
        if (ch == '\\') {
            unsigned cp;
            size_t used = 1;
            v->escaped = true;
            if (i + 1 >= c->len)
                break;
            if (s[i + 1] == 'u') {
                if (read_u_escape(s + i + 1, c->len - i - 1, &cp, &used, why)) {
                    c->pos = i;
                    return CDC_EINVAL;
                }
            } else if (!unescaped(s[i + 1])) {
                c->pos = i;
                return fail(why, "bad escape");
            }
            i += 1 + used;
            continue;
        }
        {
            size_t k = utf8_seq((const unsigned char *)s + i, c->len - i);
            if (k == 0) {
                c->pos = i;
                return fail(why, "invalid UTF-8");
            }
            i += k;
        }
    }
    c->pos = c->len;
    return fail(why, "unterminated string");
}

static size_t digits(const struct json_cursor *c, size_t i)
{
    while (i < c->len && c->s[i] >= '0' && c->s[i] <= '9')
        i++;
    return i;
}

static int scan_number(struct json_cursor *c, struct json_span *v, const char **why)
{
    size_t i = c->pos, d;

    if (i < c->len && c->s[i] == '-')
        i++;
    if (i < c->len && c->s[i] == '0')
        i++;
    else if (i < c->len && c->s[i] >= '1' && c->s[i] <= '9')
        i = digits(c, i);
    else
        return fail(why, "malformed number");
    if (i < c->len && c->s[i] == '.') {
        d = i + 1;
        i = digits(c, d);
        if (i == d)
            return fail(why, "malformed number");
    }
    if (i < c->len && (c->s[i] == 'e' || c->s[i] == 'E')) {
        i++;
        if (i < c->len && (c->s[i] == '+' || c->s[i] == '-'))
            i++;
        d = i;
        i = digits(c, d);
        if (i == d)
            return fail(why, "malformed number");
    }
    v->kind = JSON_NUMBER;
    v->p = c->s + c->pos;
    v->len = i - c->pos;
    v->escaped = false;
    c->pos = i;
    return 0;
}

static int scan_literal(struct json_cursor *c, struct json_span *v, const char *lit,
                        enum json_kind kind, const char **why)
{
    size_t n = strlen(lit);
    if (c->len - c->pos < n || memcmp(c->s + c->pos, lit, n) != 0)
        return fail(why, "unexpected character");
    v->kind = kind;
    v->p = c->s + c->pos;
    v->len = n;
    v->escaped = false;
    c->pos += n;
    return 0;
}

static int scan_value(struct json_cursor *c, struct json_span *v, int depth, const char **why);

/* An object or an array: members (or elements) separated by commas, no trailing comma. */
static int scan_container(struct json_cursor *c, struct json_span *v, int depth, const char **why)
{
    bool object = c->s[c->pos] == '{';
    char close = object ? '}' : ']';
    size_t start = c->pos;
    struct json_span item;

    if (depth >= JSON_MAX_DEPTH)
        return fail(why, "nested too deeply");
    c->pos++;
    skip_ws(c);
    if (c->pos < c->len && c->s[c->pos] == close) {
        c->pos++;
    } else {
        for (;;) {
            skip_ws(c);
            if (object) {
                if (c->pos >= c->len || c->s[c->pos] != '"')
                    return fail(why, "expected a member name");
                if (scan_string(c, &item, why))
                    return CDC_EINVAL;
                skip_ws(c);
                if (c->pos >= c->len || c->s[c->pos] != ':')
                    return fail(why, "expected ':'");
                c->pos++;
            }
            if (scan_value(c, &item, depth + 1, why))
                return CDC_EINVAL;
            skip_ws(c);
            if (c->pos < c->len && c->s[c->pos] == ',') {
                c->pos++;
                continue;
            }
            if (c->pos < c->len && c->s[c->pos] == close) {
                c->pos++;
                break;
            }
            return fail(why, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    v->kind = object ? JSON_OBJECT : JSON_ARRAY;
    v->p = c->s + start;
    v->len = c->pos - start;
    v->escaped = false;
    return 0;
}

static int scan_value(struct json_cursor *c, struct json_span *v, int depth, const char **why)
{
    skip_ws(c);
    if (c->pos >= c->len)
        return fail(why, "unexpected end");
    switch (c->s[c->pos]) {
    case '"':
        return scan_string(c, v, why);
    case '{':
    case '[':
        return scan_container(c, v, depth, why);
    case 't':
        return scan_literal(c, v, "true", JSON_TRUE, why);
    case 'f':
        return scan_literal(c, v, "false", JSON_FALSE, why);
    case 'n':
        return scan_literal(c, v, "null", JSON_NULL, why);
    default:
        if (c->s[c->pos] != '-' && (c->s[c->pos] < '0' || c->s[c->pos] > '9'))
            return fail(why, "unexpected character");
        return scan_number(c, v, why);
    }
}

int json_value(struct json_cursor *c, struct json_span *v, const char **why)
{
    return scan_value(c, v, 0, why);
}

int json_members_open(struct json_members *it, const struct json_cursor *c, const char **why)
{
    it->c = *c;
    it->count = 0;
    it->done = false;
    skip_ws(&it->c);
    if (it->c.pos >= it->c.len || it->c.s[it->c.pos] != '{')
        return fail(why, "not a JSON object");
    it->c.pos++;
    return 0;
}

int json_members_name(struct json_members *it, struct json_span *name, const char **why)
{
    struct json_cursor *c = &it->c;

    if (it->done)
        return 0;
    skip_ws(c);
    if (c->pos < c->len && c->s[c->pos] == '}') {
        c->pos++;
        it->done = true;
        return 0;
    }
    if (it->count > 0) {
        if (c->pos >= c->len || c->s[c->pos] != ',')
            return fail(why, "expected ',' or '}'");
        c->pos++;
        skip_ws(c);
    }
    if (c->pos >= c->len || c->s[c->pos] != '"')
        return fail(why, "expected a member name");
    if (scan_string(c, name, why))
        return CDC_EINVAL;
    skip_ws(c);
    if (c->pos >= c->len || c->s[c->pos] != ':')
        return fail(why, "expected ':'");
    c->pos++;
    it->count++;
    skip_ws(c);
    return 1;
}

int json_members_value(struct json_members *it, struct json_span *value, const char **why)
{
    return scan_value(&it->c, value, 1, why);
}

bool json_members_at_object(const struct json_members *it)
{
    return it->c.pos < it->c.len && it->c.s[it->c.pos] == '{';
}

void json_members_enter(const struct json_members *it, struct json_members *sub)
{
    sub->c = it->c;
    sub->c.pos++; /* json_members_at_object() saw the '{' */
    sub->count = 0;
    sub->done = false;
}

int json_members_leave(struct json_members *it, const struct json_members *sub,
                       struct json_span *value, const char **why)
{
    if (!sub->done)
        return fail(why, "object not read to its end");
    value->kind = JSON_OBJECT;
    value->p = it->c.s + it->c.pos;
    value->len = sub->c.pos - it->c.pos;
    value->escaped = false;
    it->c.pos = sub->c.pos;
    return 0;
}

int json_members_next(struct json_members *it, struct json_span *name, struct json_span *value,
                      const char **why)
{
    int r = json_members_name(it, name, why);
    if (r == 1 && json_members_value(it, value, why))
        return CDC_EINVAL;
    return r;
}

long json_string_decode(const struct json_span *s, char *out, size_t cap)
{
    size_t n = 0, i = 0;
    const char *why;

    if (s->kind != JSON_STRING || cap <= s->len)
        return -1;
    if (!s->escaped) {
        memcpy(out, s->p, s->len);
        out[s->len] = '\0';
        return (long)s->len;
    }
    while (i < s->len) {
        const char *run = s->p + i;
        size_t k = 0;
        while (i + k < s->len && run[k] != '\\')
            k++;
        memcpy(out + n, run, k);
        n += k;
        i += k;
        if (i >= s->len)
            break;
        if (i + 1 >= s->len)
            return -1;
        if (s->p[i + 1] == 'u') {
            unsigned cp;
            size_t used;
            if (read_u_escape(s->p + i + 1, s->len - i - 1, &cp, &used, &why))
                return -1;
            /* An escape of 6 (or 12) bytes never decodes to more than 3 (or 4). */
            n += utf8_put(out + n, cp);
            i += 1 + used;
            continue;
        }
        if (!(out[n++] = unescaped(s->p[i + 1])))
            return -1;
        i += 2;
    }
    out[n] = '\0';
    return (long)n;
}

bool json_string_equals_n(const struct json_span *s, const char *lit, size_t n)
{
    char tmp[256];
    long k;

    if (s->kind != JSON_STRING)
        return false;
    if (!s->escaped)
        return s->len == n && memcmp(s->p, lit, n) == 0;
    /* An escape decodes to at least one byte per six, so a longer span cannot match. */
    if (s->len > 6 * n || s->len >= sizeof(tmp))
        return false;
    k = json_string_decode(s, tmp, sizeof(tmp));
    return k == (long)n && memcmp(tmp, lit, n) == 0;
}

/* A number's text without a fraction or an exponent. */
static bool plain_integer(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '.' || p[i] == 'e' || p[i] == 'E')
            return false;
    return true;
}

bool json_span_i64(const struct json_span *s, int64_t *out)
{
    char tmp[64];
    double d;

    if (s->kind == JSON_STRING) {
        if (!s->escaped)
            return parse_i64(s->p, s->len, out);
        return json_string_decode(s, tmp, sizeof(tmp)) >= 0 && parse_i64_str(tmp, out);
    }
    if (s->kind != JSON_NUMBER)
        return false;
    if (plain_integer(s->p, s->len))
        return parse_i64(s->p, s->len, out);
    /* 1.0 or 1e3: integral values written as doubles, exact only up to 2^53. */
    if (s->len >= sizeof(tmp))
        return false;
    memcpy(tmp, s->p, s->len);
    tmp[s->len] = '\0';
    d = strtod(tmp, NULL);
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return false;
    *out = (int64_t)d;
    return true;
}
