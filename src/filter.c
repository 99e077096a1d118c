/* List queries (see filter.h). Design: one pass over the query string's segments, each decoded
 * into an allocation no longer than its raw bytes; a filter becomes a condition that names a
 * column of the descriptor by index and its values by parameter index, so the SQL is written only
 * from the descriptor's quoted identifiers and "$n::<sql_type>" placeholders. Values are converted
 * by the column's codec at parse time, so a bad value is a 400 and never reaches PostgreSQL.
 *
 * The statement keeps db.c's page bounds: the innermost SELECT filters, orders and LIMITs to
 * limit+1 rows and measures each row's exposed text; a window over it counts the rows and sums the
 * bytes before each one; the outer SELECT keeps at most limit rows and stops before a row once
 * the text before it reaches the byte bound. An in.() list is one array parameter
 * (col = ANY($n::type[])), which keeps the parameter count small and the predicate indexable.
 *
 * Threads: none of its own; a filter belongs to the request that parsed it. */
#include "cdcache/filter.h"
#include "cdcache/codec.h"
#include "cdcache/error.h"
#include "cdcache/json.h"
#include "cdcache/query.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILTER_RESERVED 4 /* parameters kept for the cursor (2), the limit and the byte bound */

enum filter_op { OP_EQ, OP_NEQ, OP_LT, OP_LTE, OP_GT, OP_GTE, OP_IN, OP_IS };

static const struct {
    const char *name;
    const char *sql;
} ops[] = {
    [OP_EQ] = {"eq", " = "},    [OP_NEQ] = {"neq", " <> "}, [OP_LT] = {"lt", " < "},
    [OP_LTE] = {"lte", " <= "}, [OP_GT] = {"gt", " > "},    [OP_GTE] = {"gte", " >= "},
    [OP_IN] = {"in", NULL},     [OP_IS] = {"is", NULL},
};

#define JSON_TYPE_OID 114 /* json (not jsonb): no equality operator */

struct filter_cond {
    int col; /* index into r->columns */
    enum filter_op op;
    bool negate;
    int param;  /* index into params of its value, -1 for is.null */
    int nvals;  /* in: elements (0: the condition is FALSE) */
    char *name; /* the parameter as the request gave it, decoded (for the next page's query) */
    char *value;
};

struct filter {
    const struct resource *r; /* borrowed */
    int limit;
    int order; /* column index; r->key unless order= named another */
    bool desc;
    bool order_given;
    size_t nconds;
    struct filter_cond conds[FILTER_MAX_CONDS];
    int nparams;
    char *params[FILTER_MAX_PARAMS]; /* owned, each NUL-terminated */
    int after_o, after_k;            /* params of the cursor, -1: none (after_o: NULL or by key) */
    bool has_after;
    int limit_param, bytes_param; /* -1: no byte bound */
};

/* Copies name[0..n) to field, control bytes shown as '?'. */
static void put_field(char *field, size_t fieldlen, const char *name, size_t n)
{
    size_t i;

    if (!field || fieldlen == 0)
        return;
    for (i = 0; i < n && i + 1 < fieldlen; i++)
        field[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
    field[i] = '\0';
}

/* The error reporting of one parse: where the reason and the field go. */
struct filter_err {
    char *err;
    size_t errlen;
    char *field;
    size_t fieldlen;
};

/* Refuses: field gets name[0..n), err "<what> '<field>': <fmt...>". Returns CDC_EINVAL. */
static int fail(const struct filter_err *e, const char *what, const char *name, size_t n,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(const struct filter_err *e, const char *what, const char *name, size_t n,
                const char *fmt, ...)
{
    char shown[64];
    va_list ap;
    int k;

    put_field(shown, sizeof(shown), name, n);
    put_field(e->field, e->fieldlen, name, n);
    if (!e->err || e->errlen == 0)
        return CDC_EINVAL;
    k = snprintf(e->err, e->errlen, "%s '%s': ", what, shown);
    if (k >= 0 && (size_t)k < e->errlen) {
        va_start(ap, fmt);
        vsnprintf(e->err + k, e->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return CDC_EINVAL;
}

/* Decodes s[0..n) into a new string (release with free()), or returns NULL on a malformed escape
 * or an escaped NUL (no column's text can hold one, and names are compared as C strings). */
static char *decode_dup(const char *s, size_t n, size_t *outlen)
{
    char *out = xmalloc(n + 1);
    long d = query_decode(s, n, out, n + 1); /* decoding never lengthens */

    if (d < 0 || memchr(out, '\0', (size_t)d)) {
        free(out);
        return NULL;
    }
    *outlen = (size_t)d;
    return out;
}

/* The exposed column called name[0..n), or -1. Unexposed columns are not found: a request cannot
 * tell them from columns that do not exist. */
static int exposed_column(const struct resource *r, const char *name, size_t n)
{
    for (size_t i = 0; i < r->ncolumns; i++) {
        const struct resource_column *c = &r->columns[i];
        if (c->exposed && strlen(c->name) == n && memcmp(c->name, name, n) == 0)
            return (int)i;
    }
    return -1;
}

/* Adds a parameter (takes ownership of s). Returns its index, or -1 when the cap is reached
 * (s is then freed). reserved: the slots this call may use of those kept for the cursor, limit
 * and byte bound. */
static int add_param(struct filter *f, char *s, bool reserved)
{
    int cap = reserved ? FILTER_MAX_PARAMS : FILTER_MAX_PARAMS - FILTER_RESERVED;

    if (f->nparams >= cap) {
        free(s);
        return -1;
    }
    f->params[f->nparams] = s;
    return f->nparams++;
}

/* Converts v[0..n) for column c into a new string in *out (release with free()). Returns 0 or
 * CDC_EINVAL with the codec's reason in why. */
static int convert(const struct resource_column *c, const char *v, size_t n, char **out, char *why,
                   size_t whylen)
{
    struct buf b;
    int rc;

    buf_init(&b, FILTER_MAX_VALUE);
    rc = codec_param_text(&c->type, v, n, &b, why, whylen);
    if (rc == 0 && !c->type.array && !resource_label_ok(c, b.data ? b.data : "", b.len)) {
        snprintf(why, whylen, "is not a label of %s", c->sql_type);
        rc = CDC_EINVAL;
    }
    if (rc != 0) {
        if (rc == CDC_ETOOBIG || why[0] == '\0')
            snprintf(why, whylen, "%s", rc == CDC_ETOOBIG ? "value too long" : "invalid value");
        buf_free(&b);
        return CDC_EINVAL;
    }
    *out = buf_steal(&b, NULL);
    return 0;
}

/* Reads one in.() element at s[*i..n) into el: in double quotes it may hold ',', '(' and ')', and
 * '\\' escapes the next byte; else it runs to the next ','. Leaves *i at the ',' or at n. Returns 0
 * or -1 with a reason in why. */
static int in_element(const char *s, size_t n, size_t *i, struct buf *el, char *why, size_t whylen)
{
    size_t j = *i;

    if (j < n && s[j] == '"') {
        for (j++; j < n && s[j] != '"'; j++) {
            if (s[j] == '\\' && j + 1 < n)
                j++;
            if (buf_append(el, s + j, 1) != 0)
                goto too_long;
        }
        if (j >= n) {
            snprintf(why, whylen, "unterminated quoted element in in.()");
            return -1;
        }
        j++; /* the closing quote */
        if (j < n && s[j] != ',') {
            snprintf(why, whylen, "',' or ')' expected after a quoted element in in.()");
            return -1;
        }
    } else {
        size_t start = j;
        while (j < n && s[j] != ',')
            j++;
        for (size_t k = start; k < j; k++) {
            if (s[k] == '"' || s[k] == '(' || s[k] == ')') {
                snprintf(why, whylen, "an element holding '\"', '(' or ')' needs double quotes");
                return -1;
            }
        }
        if (buf_append(el, s + start, j - start) != 0)
            goto too_long;
    }
    *i = j;
    return 0;
too_long:
    snprintf(why, whylen, "in.() element too long");
    return -1;
}

/* Parses the body of in.(...) (s[0..n), without the parentheses) into a PostgreSQL array literal
 * of the converted elements, appended to lit: every element in double quotes with '"' and '\\'
 * escaped, so none reads as NULL. "in.()" is the empty list; "in.(a,)" has an empty second
 * element. Returns the element count, or -1 with a reason in why. */
static int parse_in(const struct resource_column *c, const char *s, size_t n, struct buf *lit,
                    char *why, size_t whylen)
{
    struct buf el;
    size_t i = 0;
    int count = 0, rc = -1;

    buf_init(&el, FILTER_MAX_VALUE);
    if (buf_puts(lit, "{") != 0)
        goto too_long;
    while (n > 0) {
        char *conv = NULL;
        int brc;

        buf_reset(&el);
        if (in_element(s, n, &i, &el, why, whylen) != 0)
            goto out;
        if (++count > FILTER_MAX_IN) {
            snprintf(why, whylen, "more than %d elements in in.()", FILTER_MAX_IN);
            goto out;
        }
        if (convert(c, el.data ? el.data : "", el.len, &conv, why, whylen) != 0)
            goto out;
        brc = buf_puts(lit, count > 1 ? ",\"" : "\"");
        for (const char *p = conv; brc == 0 && *p; p++)
            brc = (*p == '"' || *p == '\\') ? buf_printf(lit, "\\%c", *p) : buf_append(lit, p, 1);
        if (brc == 0)
            brc = buf_puts(lit, "\"");
        free(conv);
        if (brc != 0)
            goto too_long;
        if (i >= n)
            break;
        i++; /* the ',': another element follows, empty if nothing does */
    }
    if (buf_puts(lit, "}") != 0)
        goto too_long;
    rc = count;
    goto out;
too_long:
    snprintf(why, whylen, "in.() list too long");
out:
    buf_free(&el);
    return rc;
}

/* True when a column's cursor text (to_jsonb(col) #>> '{}') is what codec_param_text reads back. */
static bool order_kind_ok(const struct codec_type *t)
{
    if (t->array)
        return false;
    switch (t->kind) {
    case CODEC_JSON:
    case CODEC_BYTEA:
    case CODEC_OTHER:
        return false;
    default:
        return true;
    }
}

/* Parses one filter on column col: its value v[0..n) (decoded) as OP.VALUE; name[0..nn) is the
 * parameter as given. On success the condition is f->conds[f->nconds - 1] (value not yet set). */
static int parse_cond(struct filter *f, int col, const char *name, size_t nn, const char *v,
                      size_t n, const struct filter_err *e)
{
    const struct resource_column *c = &f->r->columns[col];
    struct filter_cond *fc;
    const char *dot;
    char why[160] = "";
    size_t oplen;
    int op = -1;
    char *param = NULL;

    if (f->nconds >= FILTER_MAX_CONDS)
        return fail(e, "column", name, nn, "more than %d filters", FILTER_MAX_CONDS);
    fc = &f->conds[f->nconds];
    memset(fc, 0, sizeof(*fc));
    fc->col = col;
    fc->param = -1;
    if (n >= 4 && memcmp(v, "not.", 4) == 0) {
        fc->negate = true;
        v += 4;
        n -= 4;
    }
    dot = memchr(v, '.', n);
    oplen = dot ? (size_t)(dot - v) : n;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strlen(ops[i].name) == oplen && memcmp(ops[i].name, v, oplen) == 0)
            op = (int)i;
    if (op < 0 || !dot)
        return fail(
            e, "column", name, nn,
            "unknown operator '%.*s' (a filter is OP.VALUE, OP one of eq, neq, lt, lte, gt, "
            "gte, in, is, optionally after not.)",
            (int)(oplen > 32 ? 32 : oplen), v);
    fc->op = (enum filter_op)op;
    v = dot + 1;
    n -= oplen + 1;
    if (fc->op == OP_IS) {
        if (n != 4 || (memcmp(v, "null", 4) != 0 && memcmp(v, "NULL", 4) != 0))
            return fail(e, "column", name, nn, "is. takes only null");
        goto done;
    }
    if ((c->type.kind == CODEC_JSON && c->type.oid == JSON_TYPE_OID) || c->type.kind == CODEC_OTHER)
        return fail(e, "column", name, nn, "a column of this type takes only is.null");
    if (fc->op == OP_IN) {
        struct buf lit;
        if (c->type.array)
            return fail(e, "column", name, nn, "in.() does not apply to an array column");
        if (n < 2 || v[0] != '(' || v[n - 1] != ')')
            return fail(e, "column", name, nn, "in.() needs a list in parentheses");
        buf_init(&lit, 8 * FILTER_MAX_VALUE);
        fc->nvals = parse_in(c, v + 1, n - 2, &lit, why, sizeof(why));
        if (fc->nvals < 0) {
            buf_free(&lit);
            return fail(e, "column", name, nn, "%s", why);
        }
        param = buf_steal(&lit, NULL);
        if (fc->nvals == 0) { /* FALSE (or TRUE with not.): no parameter */
            free(param);
            goto done;
        }
    } else if (convert(c, v, n, &param, why, sizeof(why)) != 0) {
        return fail(e, "column", name, nn, "%s", why);
    }
    fc->param = add_param(f, param, false); /* takes param */
    if (fc->param < 0)
        return fail(e, "column", name, nn, "more than %d query parameters",
                    FILTER_MAX_PARAMS - FILTER_RESERVED);
done:
    fc->name = xstrndup(name, nn);
    f->nconds++;
    return 0;
}

static int parse_order(struct filter *f, const char *v, size_t n, const struct filter_err *e)
{
    int col;

    f->desc = false;
    if (n > 4 && memcmp(v + n - 4, ".asc", 4) == 0) {
        n -= 4;
    } else if (n > 5 && memcmp(v + n - 5, ".desc", 5) == 0) {
        n -= 5;
        f->desc = true;
    }
    col = exposed_column(f->r, v, n);
    if (col < 0)
        return fail(e, "parameter", "order", 5,
                    "'%.*s' is not an exposed column followed by .asc or .desc",
                    (int)(n > 64 ? 64 : n), v);
    if (col != f->r->key &&
        (!f->r->columns[col].orderable || !order_kind_ok(&f->r->columns[col].type)))
        return fail(e, "parameter", "order", 5,
                    "column '%s' is neither the key nor the first column of an index; only those "
                    "can order a list",
                    f->r->columns[col].name);
    f->order = col;
    f->order_given = true;
    return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_encode(struct buf *out, const unsigned char *s, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        char q[4];
        size_t k = n - i >= 3 ? 4 : n - i + 1;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        q[0] = b64url[(v >> 18) & 63];
        q[1] = b64url[(v >> 12) & 63];
        q[2] = b64url[(v >> 6) & 63];
        q[3] = b64url[v & 63];
        rc = buf_append(out, q, k);
    }
    return rc;
}

/* Decodes unpadded base64url s[0..n) into out (n bytes suffice). Returns the length or -1. */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;

    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = s[i] ? strchr(b64url, s[i]) : NULL;
        if (!p)
            return -1;
        acc = (acc << 6) | (uint32_t)(p - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) /* non-canonical trailing bits */
        return -1;
    return o;
}

/* Reads a JSON string or null at c into a new string (*out, NULL for null). Returns 0 or -1. */
static int cursor_member(struct json_cursor *c, char **out)
{
    struct json_span v;
    const char *why;
    long d;

    if (json_value(c, &v, &why) != 0)
        return -1;
    if (v.kind == JSON_NULL) {
        *out = NULL;
        return 0;
    }
    if (v.kind != JSON_STRING)
        return -1;
    *out = xmalloc(v.len + 1);
    d = json_string_decode(&v, *out, v.len + 1);
    if (d < 0 || strlen(*out) != (size_t)d) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* Skips whitespace and the byte ch at c. */
static bool cursor_expect(struct json_cursor *c, char ch)
{
    while (c->pos < c->len && strchr(" \t\r\n", c->s[c->pos]) && c->s[c->pos])
        c->pos++;
    if (c->pos < c->len && c->s[c->pos] == ch) {
        c->pos++;
        return true;
    }
    return false;
}

/* The cursor after[0..n): the key's text when ordered by the key, else base64url of
 * [order text or null, key text]. */
static int parse_after(struct filter *f, const char *after, size_t n, const struct filter_err *e)
{
    const struct resource_column *k = &f->r->columns[f->r->key], *o = &f->r->columns[f->order];
    unsigned char *raw = NULL;
    char *otext = NULL, *ktext = NULL, *conv = NULL;
    char why[160] = "";
    struct json_cursor c;
    long rn;
    int rc = CDC_EINVAL;

    f->has_after = true;
    if (f->order == f->r->key) {
        if (convert(k, after, n, &conv, why, sizeof(why)) != 0) {
            rc = fail(e, "parameter", "after", 5, "not a key: %s", why);
            goto out;
        }
        if (k->serial && conv[0] == '-') {
            /* keys drawn from a sequence are positive: 0 starts the list, below 0 is a mistake */
            rc = fail(e, "parameter", "after", 5, "must be a non-negative integer");
            goto out;
        }
        f->after_k = add_param(f, conv, true);
        conv = NULL; /* owned by f */
        assert(f->after_k >= 0);
        rc = 0;
        goto out;
    }
    raw = xmalloc(n + 1);
    rn = b64url_decode(after, n, raw);
    json_cursor_init(&c, (const char *)raw, rn < 0 ? 0 : (size_t)rn);
    if (rn < 0 || !cursor_expect(&c, '[') || cursor_member(&c, &otext) != 0 ||
        !cursor_expect(&c, ',') || cursor_member(&c, &ktext) != 0 || !ktext ||
        !cursor_expect(&c, ']') || !json_at_end(&c) || (!otext && !o->nullable)) {
        rc = fail(e, "parameter", "after", 5, "not a cursor of this list's order");
        goto out;
    }
    if (otext) {
        if (convert(o, otext, strlen(otext), &conv, why, sizeof(why)) != 0) {
            rc = fail(e, "parameter", "after", 5, "not a cursor of this list's order: %s", why);
            goto out;
        }
        f->after_o = add_param(f, conv, true);
        conv = NULL;
        assert(f->after_o >= 0);
    }
    if (convert(k, ktext, strlen(ktext), &conv, why, sizeof(why)) != 0) {
        rc = fail(e, "parameter", "after", 5, "not a cursor of this list's order: %s", why);
        goto out;
    }
    f->after_k = add_param(f, conv, true);
    conv = NULL;
    assert(f->after_k >= 0);
    rc = 0;
out:
    free(conv);
    free(raw);
    free(otext);
    free(ktext);
    return rc;
}

void filter_free(struct filter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nconds; i++) {
        free(f->conds[i].name);
        free(f->conds[i].value);
    }
    for (int i = 0; i < f->nparams; i++)
        free(f->params[i]);
    free(f);
}

int filter_parse(const struct resource *r, const char *qs, size_t len, int max_limit,
                 int64_t max_bytes, struct filter **out, char *err, size_t errlen, char *field,
                 size_t fieldlen)
{
    const struct filter_err e = {err, errlen, field, fieldlen};
    struct filter *f = xcalloc(1, sizeof(*f));
    char *after = NULL, *name = NULL, *value = NULL;
    size_t afterlen = 0, pos = 0;
    bool seen_limit = false, seen_order = false;
    char num[24];
    int rc = 0;

    assert(r && r->key >= 0 && (size_t)r->key < r->ncolumns && max_limit >= 1);
    if (field && fieldlen)
        field[0] = '\0';
    f->r = r;
    f->order = r->key;
    f->limit = max_limit < FILTER_LIMIT_DEFAULT ? max_limit : FILTER_LIMIT_DEFAULT;
    f->after_o = f->after_k = f->bytes_param = -1;
    while (qs && pos < len) {
        const char *seg = qs + pos, *amp = memchr(seg, '&', len - pos);
        size_t seglen = amp ? (size_t)(amp - seg) : len - pos;
        const char *eq = memchr(seg, '=', seglen);
        size_t nlen = eq ? (size_t)(eq - seg) : seglen, dn, dv;
        int col;

        pos += seglen + 1;
        if (seglen == 0)
            continue;
        free(name);
        free(value);
        value = NULL;
        name = decode_dup(seg, nlen, &dn);
        if (!name) {
            rc = fail(&e, "parameter", seg, nlen, "malformed %%-escape (or %%00) in the name");
            goto out;
        }
        value = decode_dup(eq ? eq + 1 : seg + seglen, eq ? seglen - nlen - 1 : 0, &dv);
        if (!value) {
            rc = fail(&e, "parameter", name, dn, "malformed %%-escape (or %%00) in the value");
            goto out;
        }
        if (dn == 5 && memcmp(name, "after", 5) == 0) {
            if (after) {
                rc = fail(&e, "parameter", name, dn, "given twice");
                goto out;
            }
            after = value;
            afterlen = dv;
            value = NULL;
        } else if (dn == 5 && memcmp(name, "limit", 5) == 0) {
            int64_t l;
            if (seen_limit) {
                rc = fail(&e, "parameter", name, dn, "given twice");
                goto out;
            }
            seen_limit = true;
            if (!parse_i64(value, dv, &l) || l < 1 || l > max_limit) {
                snprintf(num, sizeof(num), "%d", max_limit);
                rc = fail(&e, "parameter", name, dn, "must be between 1 and %s", num);
                goto out;
            }
            f->limit = (int)l;
        } else if (dn == 5 && memcmp(name, "order", 5) == 0) {
            if (seen_order) {
                rc = fail(&e, "parameter", name, dn, "given twice");
                goto out;
            }
            seen_order = true;
            rc = parse_order(f, value, dv, &e);
            if (rc != 0)
                goto out;
        } else {
            col = exposed_column(r, name, dn);
            if (col < 0) {
                rc = fail(&e, "parameter", name, dn,
                          "unknown parameter or column; this list takes after and limit, order, "
                          "and filters on its columns (COLUMN=eq.VALUE, ...)");
                goto out;
            }
            rc = parse_cond(f, col, name, dn, value, dv, &e);
            if (rc != 0)
                goto out;
            f->conds[f->nconds - 1].value = value; /* kept for the next page's query */
            value = NULL;
        }
    }
    /* the cursor last: how to read it depends on order= */
    if (after) {
        rc = parse_after(f, after, afterlen, &e);
        if (rc != 0)
            goto out;
    }
    snprintf(num, sizeof(num), "%d", f->limit + 1);
    f->limit_param = add_param(f, xstrdup(num), true);
    if (max_bytes > 0) {
        snprintf(num, sizeof(num), "%lld", (long long)max_bytes);
        f->bytes_param = add_param(f, xstrdup(num), true);
    }
    assert(f->limit_param >= 0 && (max_bytes <= 0 || f->bytes_param >= 0));
    *out = f;
    f = NULL;
out:
    free(name);
    free(value);
    free(after);
    filter_free(f);
    return rc;
}

int filter_limit(const struct filter *f)
{
    return f->limit;
}

/* "$n::<type>" for parameter i. */
static int put_param(struct buf *sql, const struct resource_column *c, int i, bool array)
{
    return buf_printf(sql, "$%d::%s%s", i + 1, c->sql_type, array ? "[]" : "");
}

/* ORDER BY's list: (order column, key) in the page's direction. qual: "" or a relation's alias and
 * '.', for the outermost ORDER BY, where a bare name would mean the caller's output column of that
 * name ("id"::text is called id, and would sort as text). */
static int put_order(struct buf *sql, const struct filter *f, const char *qual)
{
    const struct resource_column *k = &f->r->columns[f->r->key], *o = &f->r->columns[f->order];
    const char *dir = f->desc ? " DESC" : " ASC";

    if (f->order == f->r->key)
        return buf_printf(sql, "%s%s%s", qual, k->quoted, dir);
    return buf_printf(sql, "%s%s%s%s, %s%s%s", qual, o->quoted, dir,
                      !o->nullable ? ""
                      : f->desc    ? " NULLS FIRST"
                                   : " NULLS LAST",
                      qual, k->quoted, dir);
}

/* The keyset predicate: rows after the cursor's, in the page's order. */
static int put_keyset(struct buf *sql, const struct filter *f)
{
    const struct resource_column *k = &f->r->columns[f->r->key], *o = &f->r->columns[f->order];
    const char *cmp = f->desc ? " < " : " > ";
    int rc = 0;

    if (f->order == f->r->key) {
        rc = buf_printf(sql, "%s%s", k->quoted, cmp);
        return rc ? rc : put_param(sql, k, f->after_k, false);
    }
    if (f->after_o < 0) { /* the cursor's row had NULL: NULLs are last (asc) or first (desc) */
        rc = buf_printf(sql, "%s(%s IS NULL AND %s%s", f->desc ? "(" : "", o->quoted, k->quoted,
                        cmp);
        if (rc == 0)
            rc = put_param(sql, k, f->after_k, false);
        if (rc == 0)
            rc = buf_printf(sql, ")%s%s%s", f->desc ? " OR " : "", f->desc ? o->quoted : "",
                            f->desc ? " IS NOT NULL)" : "");
        return rc;
    }
    /* a row comparison, which a btree index on the order column serves; it is NULL for rows
     * whose order value is NULL, which come after every value when ascending */
    rc = buf_printf(sql, "%s(%s, %s)%s(", o->nullable && !f->desc ? "(" : "", o->quoted, k->quoted,
                    cmp);
    if (rc == 0)
        rc = put_param(sql, o, f->after_o, false);
    if (rc == 0)
        rc = buf_puts(sql, ", ");
    if (rc == 0)
        rc = put_param(sql, k, f->after_k, false);
    if (rc == 0)
        rc = buf_puts(sql, ")");
    if (rc == 0 && o->nullable && !f->desc)
        rc = buf_printf(sql, " OR %s IS NULL)", o->quoted);
    return rc;
}

static int put_cond(struct buf *sql, const struct filter *f, const struct filter_cond *fc)
{
    const struct resource_column *c = &f->r->columns[fc->col];
    int rc;

    switch (fc->op) {
    case OP_IS:
        return buf_printf(sql, "%s IS %sNULL", c->quoted, fc->negate ? "NOT " : "");
    case OP_IN:
        if (fc->nvals == 0)
            return buf_puts(sql, fc->negate ? "TRUE" : "FALSE");
        rc = buf_printf(sql, "%s%s = ANY(", fc->negate ? "NOT " : "", c->quoted);
        if (rc == 0)
            rc = put_param(sql, c, fc->param, true);
        return rc ? rc : buf_puts(sql, ")");
    default:
        rc = buf_printf(sql, "%s%s%s", fc->negate ? "NOT " : "", c->quoted, ops[fc->op].sql);
        return rc ? rc : put_param(sql, c, fc->param, false);
    }
}

int filter_sql(const struct filter *f, const char *cols, struct buf *sql, const char **params,
               int *n)
{
    const struct resource *r = f->r;
    const struct resource_column *k = &r->columns[r->key], *o = &r->columns[f->order];
    size_t fixed = 2, where = 0;
    int rc;

    /* the outer SELECT: the caller's columns over the bounded window */
    rc = buf_printf(sql,
                    "SELECT %s, \"cdcache n\", \"cdcache ck\", \"cdcache co\" FROM (SELECT *, "
                    "count(*) OVER () AS \"cdcache n\", row_number() OVER cdcache_w AS \"cdcache "
                    "rn\", sum(\"cdcache sz\") OVER cdcache_w - \"cdcache sz\" AS \"cdcache "
                    "before\" FROM (SELECT *, ",
                    cols);
    /* a row's size: its exposed columns' text, plus a little per column for the JSON around it */
    for (size_t i = 0; i < r->ncolumns; i++)
        if (r->columns[i].exposed)
            fixed += strlen(r->columns[i].name) + 4;
    if (rc == 0)
        rc = buf_printf(sql, "%zu", fixed);
    for (size_t i = 0; i < r->ncolumns && rc == 0; i++)
        if (r->columns[i].exposed)
            rc = buf_printf(sql, " + coalesce(octet_length(%s::text), 4)", r->columns[i].quoted);
    if (rc == 0)
        rc = buf_printf(sql, " AS \"cdcache sz\", to_jsonb(%s) #>> '{}' AS \"cdcache ck\", ",
                        k->quoted);
    if (rc == 0)
        rc = f->order == r->key ? buf_puts(sql, "NULL::text")
                                : buf_printf(sql, "to_jsonb(%s) #>> '{}'", o->quoted);
    if (rc == 0)
        rc = buf_printf(sql, " AS \"cdcache co\" FROM %s", r->qualified);
    for (size_t i = 0; i < f->nconds && rc == 0; i++, where++) {
        rc = buf_puts(sql, where == 0 ? " WHERE " : " AND ");
        if (rc == 0)
            rc = put_cond(sql, f, &f->conds[i]);
    }
    if (rc == 0 && f->has_after) {
        rc = buf_puts(sql, where == 0 ? " WHERE " : " AND ");
        if (rc == 0)
            rc = put_keyset(sql, f);
    }
    if (rc == 0)
        rc = buf_puts(sql, " ORDER BY ");
    if (rc == 0)
        rc = put_order(sql, f, "");
    if (rc == 0)
        rc = buf_printf(sql, " LIMIT $%d::int8) cdcache_l WINDOW cdcache_w AS (ORDER BY ",
                        f->limit_param + 1);
    if (rc == 0)
        rc = put_order(sql, f, "");
    if (rc == 0)
        rc = buf_printf(sql, ")) cdcache_p WHERE \"cdcache rn\" < $%d::int8", f->limit_param + 1);
    if (rc == 0 && f->bytes_param >= 0)
        rc = buf_printf(sql, " AND \"cdcache before\" < $%d::int8", f->bytes_param + 1);
    if (rc == 0)
        rc = buf_puts(sql, " ORDER BY ");
    if (rc == 0)
        rc = put_order(sql, f, "cdcache_p.");
    if (rc != 0)
        return CDC_ETOOBIG;
    for (int i = 0; i < f->nparams; i++)
        params[i] = f->params[i];
    *n = f->nparams;
    return 0;
}

/* Appends s percent-encoded for a query string: unreserved bytes and PostgREST's punctuation
 * ("(),") stay as they are. */
static int put_enc(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~(),", ch)) {
            rc = ch ? buf_append(out, s + i, 1) : buf_puts(out, "%00");
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rc = buf_append(out, esc, 3);
        }
    }
    return rc;
}

int filter_next_query(const struct filter *f, const char *ocol, const char *key, struct buf *out)
{
    const struct resource_column *o = &f->r->columns[f->order];
    struct buf cur;
    int rc;

    buf_init(&cur, 4 * FILTER_MAX_VALUE);
    rc = buf_puts(out, "after=");
    if (rc == 0 && f->order == f->r->key) {
        rc = put_enc(out, key, strlen(key));
    } else if (rc == 0) {
        struct buf js;
        buf_init(&js, 3 * FILTER_MAX_VALUE);
        rc = buf_puts(&js, "[");
        if (rc == 0 && ocol) {
            rc = buf_puts(&js, "\"");
            if (rc == 0)
                rc = buf_json_escape(&js, ocol, strlen(ocol));
            if (rc == 0)
                rc = buf_puts(&js, "\"");
        } else if (rc == 0) {
            rc = buf_puts(&js, "null");
        }
        if (rc == 0)
            rc = buf_puts(&js, ",\"");
        if (rc == 0)
            rc = buf_json_escape(&js, key, strlen(key));
        if (rc == 0)
            rc = buf_puts(&js, "\"]");
        if (rc == 0)
            rc = b64url_encode(&cur, (const unsigned char *)js.data, js.len);
        if (rc == 0)
            rc = buf_append(out, cur.data, cur.len);
        buf_free(&js);
    }
    if (rc == 0)
        rc = buf_printf(out, "&limit=%d", f->limit);
    if (rc == 0 && f->order_given) {
        rc = buf_puts(out, "&order=");
        if (rc == 0)
            rc = put_enc(out, o->name, strlen(o->name));
        if (rc == 0)
            rc = buf_puts(out, f->desc ? ".desc" : ".asc");
    }
    for (size_t i = 0; i < f->nconds && rc == 0; i++) {
        rc = buf_puts(out, "&");
        if (rc == 0)
            rc = put_enc(out, f->conds[i].name, strlen(f->conds[i].name));
        if (rc == 0)
            rc = buf_puts(out, "=");
        if (rc == 0)
            rc = put_enc(out, f->conds[i].value, strlen(f->conds[i].value));
    }
    buf_free(&cur);
    return rc ? CDC_ETOOBIG : 0;
}
