/* The row codec (see codec.h): one canonical JSON per PostgreSQL type kind, reached from
 * PostgreSQL's text output, from a Debezium after-image and from a request body.
 *
 * Design. Both render paths parse into the same small intermediate form where the sources differ
 * (dates and times into struct codec_dt, floats into a double, bytea into bytes) and print through
 * one formatter, so that equal values print equal bytes; where the sources already agree (integers,
 * numeric digits, text) the text is validated and copied. Nothing allocates on the common kinds: an
 * escaped string or a quoted array element longer than a stack buffer takes a heap temporary.
 *
 * What Debezium sends (debezium/application.properties, confirmed by
 * tests/fixtures/shop-events.jsonl): numeric as "digits" ("NAN", "POSITIVE_INFINITY",
 * "NEGATIVE_INFINITY" for the specials); float as Java's Float/Double.toString ("1.0E20") or
 * "NaN"/"Infinity"; date as days since 1970, time as microseconds, timestamp(0..3) as milliseconds
 * and timestamp(4..6) as microseconds (infinity as PgJDBC's sentinels), timestamptz as
 * "2026-01-02T03:04:05.500000Z" ("-0043-..." before year 1, "infinity"); bytea as base64;
 * json/jsonb as a string holding PostgreSQL's text. A numeric array holding NaN or Infinity arrives
 * as null, and a multi-dimensional array as [null,null] or as Java's
 * "[Ljava.lang.String;@1f2e" per row: those render CDC_EREJECTED (evict), as do interval, money and
 * every other type. An unchanged TOASTed value arrives as "__debezium_unavailable_value" (strings,
 * numeric, json), as the base64 of those bytes (bytea, with binary.handling.mode=bytes), as
 * [placeholder] (text-like arrays, bytea[], uuid[] with the name-uuid of those bytes), as the list
 * of those bytes (int4[], int8[], date[]), and as null for every other array type: see
 * codec_dbz_unavailable() and dbz_array_null_is_null().
 *
 * Years outside 1..9999 (RFC 3339's range) render as PostgreSQL writes them, normalised like the
 * others: "0044-03-15 BC", "0044-03-15T12:00:00Z BC", "10000-01-01T00:00:00"; infinite dates and
 * timestamps as "infinity" and "-infinity".
 *
 * Threads: pure functions, no globals. */
#include "cdcache/codec.h"
#include "cdcache/error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBZ_UNAVAILABLE     "__debezium_unavailable_value"
#define DBZ_UNAVAILABLE_B64 "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="
/* UUID.nameUUIDFromBytes("__debezium_unavailable_value"): the uuid[] placeholder's element */
#define DBZ_UNAVAILABLE_UUID "b68a35a7-17ad-35b3-af2a-ae46edb4545a"
/* Debezium's infinity sentinels (PostgresValueConverter: PGStatement.DATE_POSITIVE_INFINITY read as
 * micros; LocalDate -5877611-06-21 / -22 as epoch days). Outside PostgreSQL's own ranges for dates;
 * for timestamps a real value at that exact microsecond (year 294247) would read as infinity. */
#define DBZ_DATE_POS_INF  (-2147472692LL)
#define DBZ_DATE_NEG_INF  (-2147472691LL)
#define DBZ_TS_US_POS_INF 9223372036825200000LL
#define DBZ_TS_US_NEG_INF (-9223372036832400000LL)
#define DBZ_TS_MS_POS_INF 9223372036825200LL
#define DBZ_TS_MS_NEG_INF (-9223372036832400LL)
#define CODEC_STACK_TMP   512

enum codec_kind codec_kind_of(const char *typname, char typtype)
{
    static const struct {
        const char *name;
        enum codec_kind kind;
    } map[] = {
        {"text", CODEC_TEXT},
        {"varchar", CODEC_TEXT},
        {"bpchar", CODEC_TEXT},
        {"name", CODEC_TEXT},
        {"citext", CODEC_TEXT},
        {"int2", CODEC_INT2},
        {"int4", CODEC_INT4},
        {"int8", CODEC_INT8},
        {"numeric", CODEC_NUMERIC},
        {"float4", CODEC_FLOAT4},
        {"float8", CODEC_FLOAT8},
        {"bool", CODEC_BOOL},
        {"json", CODEC_JSON},
        {"jsonb", CODEC_JSON},
        {"uuid", CODEC_UUID},
        {"date", CODEC_DATE},
        {"time", CODEC_TIME},
        {"timestamp", CODEC_TIMESTAMP},
        {"timestamptz", CODEC_TIMESTAMPTZ},
        {"bytea", CODEC_BYTEA},
    };
    if (typtype == 'e')
        return CODEC_ENUM;
    if (!typname)
        return CODEC_OTHER;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(typname, map[i].name) == 0)
            return map[i].kind;
    return CODEC_OTHER;
}

/* ------------------------------------------------------------------ small helpers */

static bool uuid_form(const char *s, size_t n, char *o);

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return n > 0;
}

static bool lit_eq(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n == k && memcmp(s, lit, k) == 0;
}

/* True when s[0..n) is valid UTF-8 without NUL: what a JSON string may hold. PostgreSQL's text is,
 * in a UTF8 database; a SQL_ASCII one can hand back anything, which is refused, not passed on. */
static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i], cp, need, min;
        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            need = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            need = 2, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            need = 3, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (n - i <= need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((u[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (u[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

static int put_quoted(struct buf *out, const char *s, size_t n)
{
    int rc = buf_append(out, "\"", 1);
    if (!rc)
        rc = buf_json_escape(out, s, n);
    if (!rc)
        rc = buf_append(out, "\"", 1);
    return rc;
}

static int put_lit(struct buf *out, const char *s)
{
    return buf_append(out, s, strlen(s));
}

/* Truncates out back to mark after a failure (a partial value is never left behind). */
static int undo(struct buf *out, size_t mark, int rc)
{
    if (rc && out->len > mark) {
        out->len = mark;
        out->data[mark] = '\0';
    }
    return rc;
}

/* A temporary for decoded text: the stack buffer when it fits, else the heap (released by
 * tmp_free). */
struct tmp {
    char stack[CODEC_STACK_TMP];
    char *p;
    size_t cap;
};

static char *tmp_get(struct tmp *t, size_t need)
{
    if (need <= sizeof(t->stack)) {
        t->p = t->stack;
        t->cap = sizeof(t->stack);
    } else {
        t->p = xmalloc(need);
        t->cap = need;
    }
    return t->p;
}

static void tmp_free(struct tmp *t)
{
    if (t->p && t->p != t->stack)
        free(t->p);
    t->p = NULL;
}

/* An integer's text: optional '-', digits, no leading zeros. */
static bool int_text_ok(const char *s, size_t n)
{
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0;
    if (!all_digits(s + i, n - i))
        return false;
    return !(s[i] == '0' && n - i > 1);
}

/* A plain decimal: optional '-', digits, optional '.' digits (PostgreSQL's numeric output). */
static bool decimal_text_ok(const char *s, size_t n)
{
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0, d = i;
    while (i < n && is_digit(s[i]))
        i++;
    if (i == d || (s[d] == '0' && i - d > 1))
        return false;
    if (i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == f)
            return false;
    }
    return i == n;
}

static int64_t int_min(enum codec_kind k)
{
    return k == CODEC_INT2 ? -32768 : k == CODEC_INT4 ? -2147483648LL : INT64_MIN;
}

static int64_t int_max(enum codec_kind k)
{
    return k == CODEC_INT2 ? 32767 : k == CODEC_INT4 ? 2147483647LL : INT64_MAX;
}

/* ------------------------------------------------------------------ floats */

/* Prints v as the shortest decimal that reads back as the same double (or float, for float4), in
 * ECMAScript's Number layout: plain digits for exponents -6..20, else d.ddde+x. -0 stays "-0". */
static int put_float(struct buf *out, double v, bool single)
{
    char e[40], o[48];
    int lo = 1, hi = single ? 9 : 17, p, exp10, nd = 0, k = 0;
    char digs[20];

    if (isnan(v))
        return put_lit(out, "\"NaN\"");
    if (isinf(v))
        return put_lit(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    if (v == 0)
        return put_lit(out, signbit(v) ? "-0" : "0");
    /* Round trip is monotonic in the precision: binary search the least that holds. */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        bool ok;
        snprintf(e, sizeof(e), "%.*e", mid - 1, v);
        ok = single ? strtof(e, NULL) == (float)v : strtod(e, NULL) == v;
        if (ok)
            hi = mid;
        else
            lo = mid + 1;
    }
    p = lo;
    snprintf(e, sizeof(e), "%.*e", p - 1, v);
    /* e: [-]d[.ddd]e[+-]xx */
    {
        const char *q = e;
        if (*q == '-')
            o[k++] = *q++;
        for (; *q && *q != 'e'; q++)
            if (is_digit(*q))
                digs[nd++] = *q;
        bool eneg = q[1] == '-';
        exp10 = 0;
        for (q += 2; is_digit(*q); q++) /* snprintf's own exponent: "e+20", "e-324" */
            exp10 = exp10 * 10 + (*q - '0');
        if (eneg)
            exp10 = -exp10;
    }
    while (nd > 1 && digs[nd - 1] == '0')
        nd--;
    if (exp10 >= -6 && exp10 < 21) {
        if (exp10 < 0) {
            o[k++] = '0';
            o[k++] = '.';
            for (int i = 0; i < -exp10 - 1; i++)
                o[k++] = '0';
            memcpy(o + k, digs, (size_t)nd);
            k += nd;
        } else {
            for (int i = 0; i <= exp10; i++)
                o[k++] = i < nd ? digs[i] : '0';
            if (nd > exp10 + 1) {
                o[k++] = '.';
                for (int i = exp10 + 1; i < nd; i++)
                    o[k++] = digs[i];
            }
        }
    } else {
        o[k++] = digs[0];
        if (nd > 1) {
            o[k++] = '.';
            memcpy(o + k, digs + 1, (size_t)nd - 1);
            k += nd - 1;
        }
        k += snprintf(o + k, sizeof(o) - (size_t)k, "e%c%d", exp10 < 0 ? '-' : '+',
                      exp10 < 0 ? -exp10 : exp10);
    }
    return buf_append(out, o, (size_t)k);
}

/* Reads a float's text: a number (PostgreSQL's "1e+20" or Java's "1.0E20") or
 * NaN/Infinity/-Infinity. */
static int parse_float(const char *s, size_t n, bool single, double *v)
{
    char t[64];
    char *end;

    if (lit_eq(s, n, "NaN")) {
        *v = NAN;
        return 0;
    }
    if (lit_eq(s, n, "Infinity")) {
        *v = INFINITY;
        return 0;
    }
    if (lit_eq(s, n, "-Infinity")) {
        *v = -INFINITY;
        return 0;
    }
    if (n == 0 || n >= sizeof(t) || !(is_digit(s[0]) || s[0] == '-' || s[0] == '.'))
        return CDC_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!(is_digit(s[i]) || s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' ||
              s[i] == 'E'))
            return CDC_EINVAL;
    memcpy(t, s, n);
    t[n] = '\0';
    errno = 0;
    if (single) {
        float f = strtof(t, &end);
        *v = f;
    } else {
        *v = strtod(t, &end);
    }
    if (end != t + n)
        return CDC_EINVAL;
    return 0;
}

/* ------------------------------------------------------------------ dates and times */

struct codec_dt {
    int inf;      /* 1: infinity, -1: -infinity */
    int64_t year; /* astronomical: 0 is 1 BC */
    int mon, day, hour, min, sec;
    char frac[10];
    int flen; /* trailing zeros trimmed */
};

/* Howard Hinnant's days_from_civil / civil_from_days, proleptic Gregorian as both sides use. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, yoe, doy, doe, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : md[m - 1];
}

static void dt_frac_from(struct codec_dt *dt, int64_t sub, int digits)
{
    dt->flen = 0;
    for (int i = digits - 1; i >= 0; i--) {
        dt->frac[i] = (char)('0' + sub % 10);
        sub /= 10;
    }
    dt->flen = digits;
    while (dt->flen > 0 && dt->frac[dt->flen - 1] == '0')
        dt->flen--;
}

/* From a count of units (1e6: micros, 1e3: millis) since 1970-01-01 00:00:00. */
static void dt_from_epoch(struct codec_dt *dt, int64_t v, int64_t per_sec, int digits)
{
    int64_t secs = v / per_sec, sub = v % per_sec, days, sod;
    if (sub < 0) {
        sub += per_sec;
        secs--;
    }
    days = secs / 86400;
    sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    memset(dt, 0, sizeof(*dt));
    civil_from_days(days, &dt->year, &dt->mon, &dt->day);
    dt->hour = (int)(sod / 3600);
    dt->min = (int)(sod / 60 % 60);
    dt->sec = (int)(sod % 60);
    dt_frac_from(dt, sub, digits);
}

static int put_2(char *o, int v)
{
    o[0] = (char)('0' + v / 10 % 10);
    o[1] = (char)('0' + v % 10);
    return 2;
}

/* Appends the JSON string for dt as kind k (see the file comment for the layout). */
static int put_dt(struct buf *out, enum codec_kind k, const struct codec_dt *dt)
{
    char o[64];
    int n = 0;
    bool bc = false;

    if (dt->inf)
        return put_lit(out, dt->inf > 0 ? "\"infinity\"" : "\"-infinity\"");
    o[n++] = '"';
    if (k != CODEC_TIME) {
        int64_t y = dt->year;
        if (y <= 0) {
            bc = true;
            y = 1 - y;
        }
        if (y > 99999999)
            return CDC_EINVAL;
        {
            char d[12];
            int nd = 0;
            do { /* at least 4 digits, as PostgreSQL writes years; printf costs 8% of an event */
                d[nd++] = (char)('0' + y % 10);
                y /= 10;
            } while (y > 0 || nd < 4);
            while (nd > 0)
                o[n++] = d[--nd];
        }
        o[n++] = '-';
        n += put_2(o + n, dt->mon);
        o[n++] = '-';
        n += put_2(o + n, dt->day);
        if (k != CODEC_DATE)
            o[n++] = 'T';
    }
    if (k != CODEC_DATE) {
        n += put_2(o + n, dt->hour);
        o[n++] = ':';
        n += put_2(o + n, dt->min);
        o[n++] = ':';
        n += put_2(o + n, dt->sec);
        if (dt->flen) {
            o[n++] = '.';
            memcpy(o + n, dt->frac, (size_t)dt->flen);
            n += dt->flen;
        }
        if (k == CODEC_TIMESTAMPTZ)
            o[n++] = 'Z';
    }
    if (bc) {
        memcpy(o + n, " BC", 3);
        n += 3;
    }
    o[n++] = '"';
    return buf_append(out, o, (size_t)n);
}

static bool dt_valid(const struct codec_dt *dt, enum codec_kind k)
{
    if (k != CODEC_TIME) {
        if (dt->mon < 1 || dt->mon > 12 || dt->day < 1 || dt->day > month_days(dt->year, dt->mon))
            return false;
    }
    if (k == CODEC_DATE)
        return true;
    if (dt->hour == 24)
        return k == CODEC_TIME && dt->min == 0 && dt->sec == 0 && dt->flen == 0;
    return dt->hour <= 23 && dt->min <= 59 && dt->sec <= 59;
}

/* Reads "HH:MM:SS[.f]" at s[*i..n). */
static bool parse_hms(const char *s, size_t n, size_t *i, struct codec_dt *dt)
{
    size_t p = *i;
    if (n - p < 8 || !all_digits(s + p, 2) || s[p + 2] != ':' || !all_digits(s + p + 3, 2) ||
        s[p + 5] != ':' || !all_digits(s + p + 6, 2))
        return false;
    dt->hour = (s[p] - '0') * 10 + s[p + 1] - '0';
    dt->min = (s[p + 3] - '0') * 10 + s[p + 4] - '0';
    dt->sec = (s[p + 6] - '0') * 10 + s[p + 7] - '0';
    p += 8;
    dt->flen = 0;
    if (p < n && s[p] == '.') {
        p++;
        while (p < n && is_digit(s[p])) {
            if (dt->flen == 9)
                return false;
            dt->frac[dt->flen++] = s[p++];
        }
        if (dt->flen == 0)
            return false;
        while (dt->flen > 0 && dt->frac[dt->flen - 1] == '0')
            dt->flen--;
    }
    *i = p;
    return true;
}

/* Reads "[+-]YYYY...-MM-DD" at s[*i..n): at least 4 year digits. */
static bool parse_ymd(const char *s, size_t n, size_t *i, struct codec_dt *dt)
{
    size_t p = *i, y0;
    bool neg = false;
    int64_t y = 0;

    if (p < n && (s[p] == '-' || s[p] == '+'))
        neg = s[p++] == '-';
    y0 = p;
    while (p < n && is_digit(s[p]) && p - y0 < 9)
        y = y * 10 + (s[p++] - '0');
    if (p - y0 < 4 || n - p < 6 || s[p] != '-' || !all_digits(s + p + 1, 2) || s[p + 3] != '-' ||
        !all_digits(s + p + 4, 2))
        return false;
    dt->year = neg ? -y : y;
    dt->mon = (s[p + 1] - '0') * 10 + s[p + 2] - '0';
    dt->day = (s[p + 4] - '0') * 10 + s[p + 5] - '0';
    *i = p + 6;
    return true;
}

/* PostgreSQL's ISO output: "YYYY-MM-DD[ HH:MM:SS[.f][+00[:00]]][ BC]", "HH:MM:SS[.f]",
 * "infinity", "-infinity". With sep_t, a 'T' may separate date and time (requests, Debezium). */
static int parse_dt(enum codec_kind k, const char *s, size_t n, struct codec_dt *dt, bool dbz)
{
    size_t i = 0;

    memset(dt, 0, sizeof(*dt));
    if (k != CODEC_TIME && lit_eq(s, n, "infinity")) {
        dt->inf = 1;
        return 0;
    }
    if (k != CODEC_TIME && lit_eq(s, n, "-infinity")) {
        dt->inf = -1;
        return 0;
    }
    if (k != CODEC_TIME) {
        if (!dbz && i < n && (s[i] == '-' || s[i] == '+'))
            return CDC_EINVAL; /* PostgreSQL writes BC, never a sign */
        if (!parse_ymd(s, n, &i, dt))
            return CDC_EINVAL;
    }
    if (k != CODEC_DATE) {
        if (k != CODEC_TIME) {
            if (i >= n || (s[i] != (dbz ? 'T' : ' ')))
                return CDC_EINVAL;
            i++;
        }
        if (!parse_hms(s, n, &i, dt))
            return CDC_EINVAL;
        if (k == CODEC_TIMESTAMPTZ) {
            if (i < n && s[i] == 'Z')
                i++;
            else if (n - i >= 3 && lit_eq(s + i, 3, "+00"))
                i += (n - i >= 6 && lit_eq(s + i + 3, 3, ":00")) ? 6 : 3;
            else
                return CDC_EINVAL;
        }
    }
    if (!dbz && k != CODEC_TIME && n - i == 3 && lit_eq(s + i, 3, " BC")) {
        if (dt->year == 0)
            return CDC_EINVAL;
        dt->year = 1 - dt->year;
        i += 3;
    }
    if (i != n || !dt_valid(dt, k))
        return CDC_EINVAL;
    return 0;
}

/* ------------------------------------------------------------------ base64 */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (is_digit(c))
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Canonical base64 (padded, zero pad bits): what Java's encoder and put_b64 write. */
static bool b64_canonical(const char *s, size_t n)
{
    size_t pad = 0;
    if (n % 4)
        return false;
    if (n >= 1 && s[n - 1] == '=')
        pad++;
    if (n >= 2 && s[n - 2] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (b64_val(s[i]) < 0)
            return false;
    if (pad == 1 && (b64_val(s[n - 2]) & 3))
        return false;
    if (pad == 2 && (b64_val(s[n - 3]) & 15))
        return false;
    return true;
}

static int hexval(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* PostgreSQL's "\x0a1b" -> "\"ChE=\"" (base64 of the bytes). */
static int put_hex_as_b64(struct buf *out, const char *s, size_t n)
{
    unsigned char in[3];
    char o[4];
    size_t k = 0;
    int rc = 0;

    if (n < 2 || s[0] != '\\' || s[1] != 'x' || (n - 2) % 2)
        return CDC_EINVAL;
    rc = buf_append(out, "\"", 1);
    for (size_t i = 2; i < n && !rc; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return CDC_EINVAL;
        in[k++] = (unsigned char)(hi << 4 | lo);
        if (k == 3) {
            o[0] = b64[in[0] >> 2];
            o[1] = b64[(in[0] & 3) << 4 | in[1] >> 4];
            o[2] = b64[(in[1] & 15) << 2 | in[2] >> 6];
            o[3] = b64[in[2] & 63];
            rc = buf_append(out, o, 4);
            k = 0;
        }
    }
    if (!rc && k) {
        o[0] = b64[in[0] >> 2];
        o[1] = b64[(in[0] & 3) << 4 | (k > 1 ? in[1] >> 4 : 0)];
        o[2] = k > 1 ? b64[(in[1] & 15) << 2] : '=';
        o[3] = '=';
        rc = buf_append(out, o, 4);
    }
    if (!rc)
        rc = buf_append(out, "\"", 1);
    return rc;
}

/* ------------------------------------------------------------------ json values */

/* Validates s[0..n) as one JSON value and appends it without insignificant whitespace (strings are
 * copied as written: both paths carry PostgreSQL's text, so its escapes agree). */
static int put_json_compact(struct buf *out, const char *s, size_t n)
{
    struct json_cursor c;
    struct json_span v;
    const char *why;
    size_t start;
    bool in_str = false, esc = false;
    int rc = 0;

    json_cursor_init(&c, s, n);
    if (json_value(&c, &v, &why) || !json_at_end(&c))
        return CDC_EINVAL;
    s = v.kind == JSON_STRING ? v.p - 1 : v.p;
    n = v.kind == JSON_STRING ? v.len + 2 : v.len;
    start = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char ch = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
        } else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            rc = buf_append(out, s + start, i - start);
            start = i + 1;
        }
    }
    if (!rc)
        rc = buf_append(out, s + start, n - start);
    return rc;
}

/* ------------------------------------------------------------------ render from PostgreSQL text */

static int render_pg_scalar(const struct codec_type *t, const char *s, size_t n, struct buf *out)
{
    struct codec_dt dt;
    double d;

    switch (t->kind) {
    case CODEC_TEXT:
    case CODEC_ENUM:
    case CODEC_OTHER:
        if (!utf8_valid(s, n)) /* no NUL (PostgreSQL's text never holds one) and valid UTF-8 */
            return CDC_EINVAL;
        return put_quoted(out, s, n);
    case CODEC_UUID: {
        char u[38];
        u[0] = '"';
        if (!uuid_form(s, n, u + 1))
            return CDC_EINVAL;
        u[37] = '"';
        return buf_append(out, u, sizeof(u));
    }
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8:
        if (!int_text_ok(s, n))
            return CDC_EINVAL;
        return buf_append(out, s, n);
    case CODEC_NUMERIC:
        if (lit_eq(s, n, "NaN") || lit_eq(s, n, "Infinity") || lit_eq(s, n, "-Infinity"))
            return put_quoted(out, s, n);
        if (!decimal_text_ok(s, n))
            return CDC_EINVAL;
        return buf_append(out, s, n);
    case CODEC_FLOAT4:
    case CODEC_FLOAT8:
        if (parse_float(s, n, t->kind == CODEC_FLOAT4, &d))
            return CDC_EINVAL;
        return put_float(out, d, t->kind == CODEC_FLOAT4);
    case CODEC_BOOL:
        if (lit_eq(s, n, "t"))
            return put_lit(out, "true");
        if (lit_eq(s, n, "f"))
            return put_lit(out, "false");
        return CDC_EINVAL;
    case CODEC_JSON:
        return put_json_compact(out, s, n);
    case CODEC_DATE:
    case CODEC_TIME:
    case CODEC_TIMESTAMP:
    case CODEC_TIMESTAMPTZ:
        if (parse_dt(t->kind, s, n, &dt, false))
            return CDC_EINVAL;
        return put_dt(out, t->kind, &dt);
    case CODEC_BYTEA:
        return put_hex_as_b64(out, s, n);
    }
    return CDC_EINVAL;
}

/* PostgreSQL's array literal: [dims=]{elem,"quoted \" elem",NULL,{nested}}. */
static int render_pg_array(const struct codec_type *t, const char *s, size_t n, size_t *i,
                           int depth, struct buf *out)
{
    struct codec_type et = *t;
    int rc;

    et.array = false;
    if (depth > JSON_MAX_DEPTH || *i >= n || s[*i] != '{')
        return CDC_EINVAL;
    (*i)++;
    if ((rc = buf_append(out, "[", 1)))
        return rc;
    if (*i < n && s[*i] == '}') {
        (*i)++;
        return buf_append(out, "]", 1);
    }
    for (;;) {
        if (*i >= n)
            return CDC_EINVAL;
        if (s[*i] == '{') {
            rc = render_pg_array(t, s, n, i, depth + 1, out);
        } else if (s[*i] == '"') {
            struct tmp tm; /* not zeroed: only tm.p is read before a write */
            tm.p = NULL;
            size_t k = 0, j = *i + 1;
            char *p = tmp_get(&tm, n - *i);
            while (j < n && s[j] != '"') {
                if (s[j] == '\\' && j + 1 < n)
                    j++;
                p[k++] = s[j++];
            }
            if (j >= n) {
                tmp_free(&tm);
                return CDC_EINVAL;
            }
            *i = j + 1;
            rc = render_pg_scalar(&et, p, k, out);
            tmp_free(&tm);
        } else {
            size_t j = *i;
            while (j < n && s[j] != ',' && s[j] != '}')
                j++;
            if (j == *i)
                return CDC_EINVAL;
            if (j - *i == 4 && strncasecmp(s + *i, "NULL", 4) == 0)
                rc = buf_append(out, "null", 4);
            else
                rc = render_pg_scalar(&et, s + *i, j - *i, out);
            *i = j;
        }
        if (rc)
            return rc;
        if (*i < n && s[*i] == ',') {
            (*i)++;
            if ((rc = buf_append(out, ",", 1)))
                return rc;
            continue;
        }
        if (*i < n && s[*i] == '}') {
            (*i)++;
            return buf_append(out, "]", 1);
        }
        return CDC_EINVAL;
    }
}

int codec_render_pg(const struct codec_type *t, const char *text, size_t len, struct buf *out)
{
    size_t mark = out->len, i = 0;
    int rc;

    if (!t->array || t->kind == CODEC_OTHER) /* an array of another type: its text, as a string */
        return undo(out, mark, render_pg_scalar(t, text, len, out));
    if (len > 0 && text[0] == '[') { /* "[1:2]=" bounds: JSON arrays have none */
        const char *eq = memchr(text, '=', len);
        if (!eq)
            return CDC_EINVAL;
        i = (size_t)(eq - text) + 1;
    }
    rc = render_pg_array(t, text, len, &i, 0, out);
    if (!rc && i != len)
        rc = CDC_EINVAL;
    return undo(out, mark, rc);
}

/* ------------------------------------------------------------------ render from Debezium */

/* A string span's decoded text: the span itself when it has no escapes, else decoded into tm. */
static const char *span_text(const struct json_span *v, struct tmp *tm, size_t *n)
{
    long k;
    if (!v->escaped) {
        *n = v->len;
        return v->p;
    }
    k = json_string_decode(v, tmp_get(tm, v->len + 1), v->len + 1);
    if (k < 0)
        return NULL;
    *n = (size_t)k;
    return tm->p;
}

static bool span_int(const struct json_span *v, int64_t *out)
{
    return v->kind == JSON_NUMBER && int_text_ok(v->p, v->len) && parse_i64(v->p, v->len, out);
}

static int render_dbz_scalar(const struct codec_type *t, const struct json_span *v, struct buf *out)
{
    struct codec_dt dt;
    struct tmp tm; /* not zeroed: only tm.p is read before a write */
    tm.p = NULL;
    const char *s;
    size_t n;
    int64_t iv;
    double d;
    int rc = CDC_EDECODE;

    if (v->kind == JSON_NULL)
        return buf_append(out, "null", 4);
    switch (t->kind) {
    case CODEC_TEXT:
    case CODEC_ENUM:
    case CODEC_UUID:
        if (v->kind != JSON_STRING)
            break;
        if (t->kind == CODEC_UUID) {
            char u[38];
            u[0] = '"';
            u[37] = '"';
            if (v->escaped || !uuid_form(v->p, v->len, u + 1))
                break;
            rc = buf_append(out, u, sizeof(u));
            break;
        }
        if (!v->escaped) { /* no escapes and no control characters: already canonical */
            rc = buf_append(out, v->p - 1, v->len + 2);
            break;
        }
        s = span_text(v, &tm, &n);
        rc = s ? put_quoted(out, s, n) : CDC_EDECODE;
        break;
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8:
        if (!span_int(v, &iv) || iv < int_min(t->kind) || iv > int_max(t->kind))
            break;
        rc = buf_append(out, v->p, v->len);
        break;
    case CODEC_NUMERIC:
        if (v->kind == JSON_STRING && !v->escaped) {
            if (lit_eq(v->p, v->len, "NAN") || lit_eq(v->p, v->len, "NaN"))
                rc = put_lit(out, "\"NaN\"");
            else if (lit_eq(v->p, v->len, "POSITIVE_INFINITY") || lit_eq(v->p, v->len, "Infinity"))
                rc = put_lit(out, "\"Infinity\"");
            else if (lit_eq(v->p, v->len, "NEGATIVE_INFINITY") || lit_eq(v->p, v->len, "-Infinity"))
                rc = put_lit(out, "\"-Infinity\"");
            else if (decimal_text_ok(v->p, v->len))
                rc = buf_append(out, v->p, v->len);
        }
        break;
    case CODEC_FLOAT4:
    case CODEC_FLOAT8:
        if ((v->kind != JSON_NUMBER && (v->kind != JSON_STRING || v->escaped)) ||
            parse_float(v->p, v->len, t->kind == CODEC_FLOAT4, &d))
            break;
        if (v->kind == JSON_STRING && !isnan(d) && !isinf(d))
            break;
        rc = put_float(out, d, t->kind == CODEC_FLOAT4);
        break;
    case CODEC_BOOL:
        if (v->kind == JSON_TRUE || v->kind == JSON_FALSE)
            rc = buf_append(out, v->p, v->len);
        break;
    case CODEC_JSON:
        if (v->kind != JSON_STRING)
            break;
        s = span_text(v, &tm, &n);
        rc = s && !put_json_compact(out, s, n) ? 0 : CDC_EDECODE;
        break;
    case CODEC_DATE:
        if (!span_int(v, &iv))
            break;
        memset(&dt, 0, sizeof(dt));
        if (iv == DBZ_DATE_POS_INF || iv == DBZ_DATE_NEG_INF)
            dt.inf = iv == DBZ_DATE_POS_INF ? 1 : -1;
        else if (iv >= -2440588 &&
                 iv <= 2145042905) /* PostgreSQL's 4714-11-24 BC .. 5874897-12-31 */
            civil_from_days(iv, &dt.year, &dt.mon, &dt.day);
        else
            break;
        rc = put_dt(out, t->kind, &dt);
        break;
    case CODEC_TIME:
        if (!span_int(v, &iv) || iv < 0 || iv > 86400000000LL)
            break;
        memset(&dt, 0, sizeof(dt));
        dt.hour = (int)(iv / 3600000000LL);
        dt.min = (int)(iv / 60000000 % 60);
        dt.sec = (int)(iv / 1000000 % 60);
        dt_frac_from(&dt, iv % 1000000, 6);
        rc = put_dt(out, t->kind, &dt);
        break;
    case CODEC_TIMESTAMP: {
        bool ms = t->typmod >= 0 && t->typmod <= 3; /* adaptive: timestamp(0..3) in millis */
        if (!span_int(v, &iv))
            break;
        if (iv == (ms ? DBZ_TS_MS_POS_INF : DBZ_TS_US_POS_INF) ||
            iv == (ms ? DBZ_TS_MS_NEG_INF : DBZ_TS_US_NEG_INF)) {
            memset(&dt, 0, sizeof(dt));
            dt.inf = iv > 0 ? 1 : -1;
        } else {
            dt_from_epoch(&dt, iv, ms ? 1000 : 1000000, ms ? 3 : 6);
        }
        rc = put_dt(out, t->kind, &dt);
        break;
    }
    case CODEC_TIMESTAMPTZ:
        if (v->kind != JSON_STRING || v->escaped || parse_dt(t->kind, v->p, v->len, &dt, true))
            break;
        rc = put_dt(out, t->kind, &dt);
        break;
    case CODEC_BYTEA:
        if (v->kind != JSON_STRING || v->escaped || !b64_canonical(v->p, v->len))
            break;
        rc = buf_append(out, v->p - 1, v->len + 2);
        break;
    case CODEC_OTHER:
        rc = CDC_EREJECTED;
        break;
    }
    tmp_free(&tm);
    return rc;
}

/* True when a null after-image value of array type t can only be SQL NULL. Debezium
 * (UnchangedToastedReplicationMessageColumn) gives a placeholder of its own only to unchanged
 * TOASTed arrays of text, varchar, bpchar, json, jsonb, bytea, int4, date, int8 and uuid; any other
 * array (bool[], float8[], numeric[], timestamptz[], an enum's, ...) arrives as null, as does a
 * numeric[] holding NaN or Infinity (captured: tests/fixtures/shop-events.jsonl). Those nulls
 * evict. */
static bool dbz_array_null_is_null(const struct codec_type *t)
{
    static const uint32_t distinct[] = {1009, 1015, 1014, 199, 3807, 1001, 1007, 1182, 1016, 2951};
    for (size_t i = 0; i < sizeof(distinct) / sizeof(distinct[0]); i++)
        if (t->oid == distinct[i])
            return true;
    return false; /* oid 0 (not known) included: when in doubt, evict */
}

/* Java's toString of an array ("[Ljava.lang.String;@1b2c"): what Debezium writes for each row of a
 * multi-dimensional text array. */
static bool java_array_garbage(const struct json_span *v)
{
    return v->kind == JSON_STRING && v->len > 3 && v->p[0] == '[' && memchr(v->p, '@', v->len);
}

static int render_dbz_array(const struct codec_type *t, const struct json_span *v, struct buf *out)
{
    struct codec_type et = *t;
    struct json_cursor c;
    struct json_span e;
    const char *why;
    bool first = true;
    int rc;

    et.array = false;
    if (v->kind == JSON_NULL)
        return dbz_array_null_is_null(t) ? buf_append(out, "null", 4) : CDC_EREJECTED;
    if (t->kind == CODEC_OTHER)
        return CDC_EREJECTED;
    if (v->kind == JSON_STRING && json_string_equals(v, DBZ_UNAVAILABLE))
        return CDC_EREJECTED;
    if (v->kind != JSON_ARRAY)
        return CDC_EDECODE;
    json_cursor_init(&c, v->p + 1, v->len - 2);
    if ((rc = buf_append(out, "[", 1)))
        return rc;
    while (!json_at_end(&c)) {
        if (!first) {
            if (c.s[c.pos] != ',')
                return CDC_EDECODE;
            c.pos++;
        }
        if (json_value(&c, &e, &why))
            return CDC_EDECODE;
        /* a null element may be a flattened sub-array of a multi-dimensional value */
        if (e.kind == JSON_NULL || e.kind == JSON_ARRAY || java_array_garbage(&e))
            return CDC_EREJECTED;
        if (!first && (rc = buf_append(out, ",", 1)))
            return rc;
        if (t->kind == CODEC_NUMERIC && e.kind == JSON_STRING &&
            !(e.escaped || !decimal_text_ok(e.p, e.len)))
            rc =
                buf_append(out, e.p, e.len); /* numeric elements are strings, rendered as numbers */
        else
            rc = render_dbz_scalar(&et, &e, out);
        if (rc)
            return rc;
        first = false;
    }
    return buf_append(out, "]", 1);
}

bool codec_dbz_unavailable(const struct codec_type *t, const struct json_span *v)
{
    static const char ph[] = DBZ_UNAVAILABLE;
    struct json_cursor c;
    struct json_span e;
    const char *why;
    size_t k = 0;

    if (v->kind == JSON_STRING)
        return json_string_equals(v, DBZ_UNAVAILABLE) ||
               (t->kind == CODEC_BYTEA && !t->array && json_string_equals(v, DBZ_UNAVAILABLE_B64));
    if (v->kind != JSON_ARRAY || !t->array)
        return false;
    /* ["placeholder"], [its base64], [its name uuid], or [95,95,100,...]: its bytes */
    json_cursor_init(&c, v->p + 1, v->len - 2);
    while (!json_at_end(&c)) {
        if (k > 0) {
            if (c.s[c.pos] != ',')
                return false;
            c.pos++;
        }
        if (json_value(&c, &e, &why))
            return false;
        if (e.kind == JSON_STRING)
            return k == 0 && json_at_end(&c) &&
                   (json_string_equals(&e, DBZ_UNAVAILABLE) ||
                    json_string_equals(&e, DBZ_UNAVAILABLE_B64) ||
                    json_string_equals(&e, DBZ_UNAVAILABLE_UUID));
        if (e.kind != JSON_NUMBER || k >= sizeof(ph) - 1 || e.len != (ph[k] >= 100 ? 3 : 2) ||
            !all_digits(e.p, e.len) ||
            (e.len == 3 ? (e.p[0] - '0') * 100 + (e.p[1] - '0') * 10 + e.p[2] - '0'
                        : (e.p[0] - '0') * 10 + e.p[1] - '0') != ph[k])
            return false;
        k++;
    }
    return k == sizeof(ph) - 1;
}

int codec_render_dbz(const struct codec_type *t, const struct json_span *v, struct buf *out)
{
    size_t mark = out->len;

    if (codec_dbz_unavailable(t, v))
        return CDC_EREJECTED;
    if (t->array)
        return undo(out, mark, render_dbz_array(t, v, out));
    return undo(out, mark, render_dbz_scalar(t, v, out));
}

/* ------------------------------------------------------------------ request values -> parameters
 */

static int why(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return CDC_EINVAL;
}

/* Number of UTF-8 characters in s[0..n) (valid UTF-8: the scanner checked it). */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* An integer from its text: plain digits, an optional '-', a fraction of zeros allowed ("42.0":
 * JSON's integer), no exponent, no '+'. Writes the canonical digits. */
static int param_int(enum codec_kind k, const char *s, size_t n, struct buf *param, char *err,
                     size_t errlen)
{
    const char *dot = memchr(s, '.', n);
    size_t m = dot ? (size_t)(dot - s) : n, i = (n > 0 && s[0] == '-') ? 1 : 0;
    int64_t v;
    char o[24];
    int w;

    if (dot)
        for (const char *q = dot + 1; q < s + n; q++)
            if (*q != '0')
                return why(err, errlen, "not an integer");
    if (!all_digits(s + i, m - i) || (dot && dot + 1 == s + n))
        return why(err, errlen, "not an integer");
    while (m - i > 1 && s[i] == '0') /* leading zeros: the same integer */
        i++;
    {
        char t[24];
        size_t tl = 0;
        if (s[0] == '-')
            t[tl++] = '-';
        if (m - i > 19)
            goto range;
        memcpy(t + tl, s + i, m - i);
        tl += m - i;
        if (!parse_i64(t, tl, &v))
            goto range;
    }
    if (v < int_min(k) || v > int_max(k))
        goto range;
    w = snprintf(o, sizeof(o), "%lld", (long long)v);
    return buf_append(param, o, (size_t)w);
range:
    return why(err, errlen,
               k == CODEC_INT2   ? "out of range for int2"
               : k == CODEC_INT4 ? "out of range for int4"
                                 : "out of range for int8");
}

/* A decimal as a JSON number or a string: exact, no exponent, checked against numeric(p,s). */
static int param_numeric(const struct codec_type *t, const char *s, size_t n, struct buf *param,
                         char *err, size_t errlen)
{
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0, ip, id, fd = 0;
    const char *frac = NULL;
    char msg[80];
    int rc;

    ip = i;
    while (i < n && is_digit(s[i]))
        i++;
    id = i - ip;
    if (i < n && s[i] == '.') {
        frac = s + ++i;
        while (i < n && is_digit(s[i]))
            i++;
        fd = (size_t)(s + i - frac);
        if (fd == 0)
            id = 0;
    }
    if (id == 0 || i != n) {
        if (lit_eq(s, n, "NaN") || lit_eq(s, n, "Infinity") || lit_eq(s, n, "-Infinity"))
            return why(err, errlen, "not a finite number");
        return why(err, errlen, "not a plain decimal such as 12.34 (no exponent)");
    }
    while (id > 1 && s[ip] == '0') {
        ip++;
        id--;
    }
    if (id > 131072 || fd > 16383)
        return why(err, errlen, "too many digits for numeric");
    if (t->typmod >= 4) {
        int prec = ((t->typmod - 4) >> 16) & 0xffff, scale = (t->typmod - 4) & 0xffff;
        size_t sig = (id == 1 && s[ip] == '0') ? 0 : id;
        if (scale > prec) /* numeric(p,s) with s > p or negative s: leave it to PostgreSQL */
            scale = prec;
        if (fd > (size_t)scale) {
            snprintf(msg, sizeof(msg), "more than %d decimals", scale);
            return why(err, errlen, msg);
        }
        if (sig > (size_t)(prec - scale)) {
            snprintf(msg, sizeof(msg), "out of range for numeric(%d,%d)", prec, scale);
            return why(err, errlen, msg);
        }
    }
    rc = s[0] == '-' ? buf_append(param, "-", 1) : 0;
    if (!rc)
        rc = buf_append(param, s + ip, id);
    if (!rc && frac)
        rc = buf_append(param, frac - 1, fd + 1);
    return rc;
}

/* The 8-4-4-4-12 hex form, in any case; writes its 36 lower-case characters to o. */
static bool uuid_form(const char *s, size_t n, char *o)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool hy = i == 8 || i == 13 || i == 18 || i == 23;
        if (hy ? s[i] != '-' : hexval(s[i]) < 0)
            return false;
        o[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char)(s[i] - 'A' + 'a') : s[i];
    }
    return true;
}

/* RFC 3339 date/time text for a date, time, timestamp or timestamptz parameter; passed on as given
 * once checked (PostgreSQL reads all of these). */
static int param_datetime(enum codec_kind k, const char *s, size_t n, struct buf *param, char *err,
                          size_t errlen)
{
    struct codec_dt dt;
    size_t i = 0;

    memset(&dt, 0, sizeof(dt));
    if (k != CODEC_TIME && (lit_eq(s, n, "infinity") || lit_eq(s, n, "-infinity")))
        return buf_append(param, s, n);
    if (k != CODEC_TIME && (n < 10 || !is_digit(s[0]) || !parse_ymd(s, n, &i, &dt) || i != 10))
        goto bad;
    if (k != CODEC_DATE) {
        if (k != CODEC_TIME) {
            if (i >= n || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
                goto bad;
            i++;
        }
        if (!parse_hms(s, n, &i, &dt) || dt.flen > 6)
            goto bad;
        if (k == CODEC_TIMESTAMPTZ) {
            if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
                i++;
            } else if (n - i == 6 && (s[i] == '+' || s[i] == '-') && all_digits(s + i + 1, 2) &&
                       s[i + 3] == ':' && all_digits(s + i + 4, 2)) {
                i += 6;
            } else {
                return why(err, errlen, "not an RFC 3339 date-time with an offset or Z");
            }
        }
    }
    if (i != n || !dt_valid(&dt, k))
        goto bad;
    return buf_append(param, s, n);
bad:
    return why(err, errlen,
               k == CODEC_DATE        ? "not a date (YYYY-MM-DD)"
               : k == CODEC_TIME      ? "not a time (HH:MM:SS[.ffffff])"
               : k == CODEC_TIMESTAMP ? "not a timestamp (YYYY-MM-DDTHH:MM:SS[.ffffff], no offset)"
                                      : "not an RFC 3339 date-time with an offset or Z");
}

static int param_bytea(const char *s, size_t n, struct buf *param, char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned acc = 0;
    int bits = 0, rc;
    size_t pad = 0;

    if (n % 4)
        return why(err, errlen, "not base64");
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    rc = buf_append(param, "\\x", 2);
    for (size_t i = 0; i < n - pad && !rc; i++) {
        int v = b64_val(s[i]);
        if (v < 0)
            return why(err, errlen, "not base64");
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            char o[2];
            unsigned byte = (acc >> (bits - 8)) & 0xff;
            bits -= 8;
            o[0] = hex[byte >> 4];
            o[1] = hex[byte & 15];
            rc = buf_append(param, o, 2);
        }
    }
    return rc;
}

static int param_scalar(const struct codec_type *t, const struct json_span *v, struct buf *param,
                        char *err, size_t errlen);

/* Appends s as one element of an array literal: always quoted, '"' and '\\' escaped. */
static int put_array_elem(struct buf *param, const char *s, size_t n)
{
    size_t start = 0;
    int rc = buf_append(param, "\"", 1);
    for (size_t i = 0; i < n && !rc; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            rc = buf_append(param, s + start, i - start);
            if (!rc)
                rc = buf_append(param, "\\", 1);
            start = i;
        }
    }
    if (!rc)
        rc = buf_append(param, s + start, n - start);
    if (!rc)
        rc = buf_append(param, "\"", 1);
    return rc;
}

static int param_array(const struct codec_type *t, const struct json_span *v, int depth,
                       struct buf *param, char *err, size_t errlen)
{
    struct codec_type et = *t;
    struct json_cursor c;
    struct json_span e;
    const char *w;
    bool first = true;
    int rc;

    et.array = false;
    if (v->kind != JSON_ARRAY)
        return why(err, errlen, "not an array");
    if (depth > 6)
        return why(err, errlen, "more than 6 array dimensions");
    json_cursor_init(&c, v->p + 1, v->len - 2);
    if ((rc = buf_append(param, "{", 1)))
        return rc;
    while (!json_at_end(&c)) {
        if (!first) {
            c.pos++; /* the ',' the scanner validated */
            if ((rc = buf_append(param, ",", 1)))
                return rc;
        }
        first = false;
        if (json_value(&c, &e, &w))
            return why(err, errlen, "invalid JSON");
        if (e.kind == JSON_NULL) {
            rc = buf_append(param, "NULL", 4);
        } else if (e.kind == JSON_ARRAY && t->kind != CODEC_JSON) {
            rc = param_array(t, &e, depth + 1, param, err, errlen);
        } else {
            struct buf one;
            buf_init(&one, param->cap);
            rc = param_scalar(&et, &e, &one, err, errlen);
            if (!rc)
                rc = put_array_elem(param, one.data ? one.data : "", one.len);
            buf_free(&one);
        }
        if (rc)
            return rc;
    }
    return buf_append(param, "}", 1);
}

static int param_scalar(const struct codec_type *t, const struct json_span *v, struct buf *param,
                        char *err, size_t errlen)
{
    struct tmp tm; /* not zeroed: only tm.p is read before a write */
    tm.p = NULL;
    const char *s = NULL;
    size_t n = 0;
    char u[36], msg[64];
    int rc;

    if (v->kind == JSON_STRING) {
        s = span_text(v, &tm, &n);
        if (!s)
            return why(err, errlen, "invalid string");
    }
    switch (t->kind) {
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8:
        rc = v->kind == JSON_NUMBER ? param_int(t->kind, v->p, v->len, param, err, errlen)
                                    : why(err, errlen, "not an integer");
        break;
    case CODEC_NUMERIC:
        rc = v->kind == JSON_NUMBER || v->kind == JSON_STRING
                 ? param_numeric(t, v->kind == JSON_NUMBER ? v->p : s,
                                 v->kind == JSON_NUMBER ? v->len : n, param, err, errlen)
                 : why(err, errlen, "not a decimal number");
        break;
    case CODEC_FLOAT4:
    case CODEC_FLOAT8: {
        double d;
        bool single = t->kind == CODEC_FLOAT4;
        if (v->kind == JSON_NUMBER) {
            if (parse_float(v->p, v->len, single, &d) || isinf(d)) {
                rc = why(err, errlen,
                         single ? "out of range for float4" : "out of range for float8");
                break;
            }
            rc = buf_append(param, v->p, v->len);
        } else if (v->kind == JSON_STRING &&
                   (lit_eq(s, n, "NaN") || lit_eq(s, n, "Infinity") || lit_eq(s, n, "-Infinity"))) {
            rc = buf_append(param, s, n);
        } else {
            rc = why(err, errlen, "not a number");
        }
        break;
    }
    case CODEC_BOOL:
        rc = v->kind == JSON_TRUE    ? buf_append(param, "t", 1)
             : v->kind == JSON_FALSE ? buf_append(param, "f", 1)
                                     : why(err, errlen, "not a boolean");
        break;
    case CODEC_TEXT:
    case CODEC_ENUM:
    case CODEC_OTHER:
        if (v->kind != JSON_STRING) {
            rc = why(err, errlen, "not a string");
            break;
        }
        if (t->kind == CODEC_TEXT && t->typmod >= 5 && utf8_chars(s, n) > (size_t)(t->typmod - 4)) {
            snprintf(msg, sizeof(msg), "longer than %d characters", t->typmod - 4);
            rc = why(err, errlen, msg);
            break;
        }
        rc = buf_append(param, s, n);
        break;
    case CODEC_UUID:
        rc = v->kind == JSON_STRING && uuid_form(s, n, u) ? buf_append(param, u, 36)
                                                          : why(err, errlen, "not a uuid");
        break;
    case CODEC_DATE:
    case CODEC_TIME:
    case CODEC_TIMESTAMP:
    case CODEC_TIMESTAMPTZ:
        rc = v->kind == JSON_STRING ? param_datetime(t->kind, s, n, param, err, errlen)
                                    : why(err, errlen, "not a string");
        break;
    case CODEC_BYTEA:
        rc = v->kind == JSON_STRING ? param_bytea(s, n, param, err, errlen)
                                    : why(err, errlen, "not a base64 string");
        break;
    case CODEC_JSON:
        if (v->kind == JSON_STRING)
            rc = buf_append(param, v->p - 1, v->len + 2);
        else
            rc = buf_append(param, v->p, v->len);
        break;
    default:
        rc = why(err, errlen, "unsupported type");
    }
    tmp_free(&tm);
    return rc;
}

int codec_param(const struct codec_type *t, const struct json_span *v, struct buf *param,
                bool *is_null, char *err, size_t errlen)
{
    size_t mark = param->len;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (v->kind == JSON_NULL) {
        *is_null = true;
        return 0;
    }
    *is_null = false;
    rc = t->array ? param_array(t, v, 1, param, err, errlen)
                  : param_scalar(t, v, param, err, errlen);
    if (rc == CDC_ETOOBIG)
        why(err, errlen, "too large");
    return undo(param, mark, rc ? CDC_EINVAL : 0);
}

int codec_param_text(const struct codec_type *t, const char *s, size_t len, struct buf *param,
                     char *err, size_t errlen)
{
    struct json_span v = {.kind = JSON_STRING, .p = s, .len = len, .escaped = false};
    struct json_cursor c;
    const char *w;
    bool is_null = false;
    int rc;

    if (memchr(s, '\0', len))
        return why(err, errlen, "NUL character");
    switch (t->array ? CODEC_JSON : t->kind) {
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8:
    case CODEC_FLOAT4:
    case CODEC_FLOAT8:
        /* a float's NaN and +-Infinity are strings, as the representation writes them */
        if (lit_eq(s, len, "NaN") || lit_eq(s, len, "Infinity") || lit_eq(s, len, "-Infinity")) {
            if (t->kind != CODEC_FLOAT4 && t->kind != CODEC_FLOAT8)
                return why(err, errlen, "not an integer");
        } else {
            json_cursor_init(&c, s, len);
            if (json_value(&c, &v, &w) || v.kind != JSON_NUMBER || !json_at_end(&c))
                return why(err, errlen, "not a number");
        }
        break;
    case CODEC_BOOL:
        if (lit_eq(s, len, "true"))
            v.kind = JSON_TRUE;
        else if (lit_eq(s, len, "false"))
            v.kind = JSON_FALSE;
        else
            return why(err, errlen, "not a boolean (true or false)");
        break;
    case CODEC_JSON: /* json, and arrays: the text is JSON */
        json_cursor_init(&c, s, len);
        if (json_value(&c, &v, &w) || !json_at_end(&c))
            return why(err, errlen, "not JSON");
        if (t->array && v.kind != JSON_ARRAY)
            return why(err, errlen, "not a JSON array");
        break;
    default: /* numeric, strings, uuid, dates, bytea: the text is the string's content */
        break;
    }
    rc = codec_param(t, &v, param, &is_null, err, errlen);
    if (!rc && is_null)
        return why(err, errlen, "null (use is.null)");
    return rc;
}

/* ------------------------------------------------------------------ keys */

bool codec_key_supported(const struct codec_type *t)
{
    if (t->array)
        return false;
    switch (t->kind) {
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8:
    case CODEC_TEXT:
    case CODEC_UUID:
    case CODEC_ENUM:
        return true;
    default:
        return false;
    }
}

bool codec_key_numeric(const struct codec_type *t)
{
    return !t->array && (t->kind == CODEC_INT2 || t->kind == CODEC_INT4 || t->kind == CODEC_INT8);
}

int codec_key_canon(const struct codec_type *t, const char *s, size_t len, char *out, size_t cap,
                    size_t *outlen)
{
    size_t i, n;

    if (!codec_key_supported(t) || cap == 0)
        return CDC_EINVAL;
    switch (t->kind) {
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8: {
        int64_t v;
        char tbuf[24];
        size_t tl = 0;
        int w;
        i = (len > 0 && s[0] == '-') ? 1 : 0;
        if (!all_digits(s + i, len - i))
            return CDC_EINVAL;
        while (len - i > 1 && s[i] == '0') /* "007" names 7 */
            i++;
        if (len - i > 19)
            return CDC_EINVAL;
        if (s[0] == '-')
            tbuf[tl++] = '-';
        memcpy(tbuf + tl, s + i, len - i);
        tl += len - i;
        if (!parse_i64(tbuf, tl, &v) || v < int_min(t->kind) || v > int_max(t->kind))
            return CDC_EINVAL;
        w = snprintf(tbuf, sizeof(tbuf), "%lld", (long long)v); /* "-0" names 0 */
        if ((size_t)w >= cap)
            return CDC_EINVAL;
        memcpy(out, tbuf, (size_t)w + 1);
        *outlen = (size_t)w;
        return 0;
    }
    case CODEC_UUID:
        if (cap <= 36 || !uuid_form(s, len, out))
            return CDC_EINVAL;
        out[36] = '\0';
        *outlen = 36;
        return 0;
    default:
        n = len;
        if (n >= cap || n == 0 || !utf8_valid(s, n)) /* PostgreSQL would refuse it, not find it */
            return CDC_EINVAL;
        memcpy(out, s, n);
        out[n] = '\0';
        *outlen = n;
        return 0;
    }
}

int codec_key_dbz(const struct codec_type *t, const struct json_span *v, char *out, size_t cap,
                  size_t *outlen)
{
    struct tmp tm; /* not zeroed: only tm.p is read before a write */
    tm.p = NULL;
    const char *s;
    size_t n;
    int rc;

    if (v->kind == JSON_NUMBER && codec_key_numeric(t))
        return int_text_ok(v->p, v->len) ? codec_key_canon(t, v->p, v->len, out, cap, outlen)
                                         : CDC_EINVAL;
    if (v->kind != JSON_STRING)
        return CDC_EINVAL;
    s = span_text(v, &tm, &n);
    rc = s ? codec_key_canon(t, s, n, out, cap, outlen) : CDC_EINVAL;
    tmp_free(&tm);
    return rc;
}
