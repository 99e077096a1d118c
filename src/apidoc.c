/* The served OpenAPI document of a resource_set (apidoc.h).
 *
 * DESIGN. The base (openapi.yaml, embedded as JSON by scripts/openapi-embed.py) is a valid document
 * of its own that describes the shipped `items`; its /items and /items/{id} paths are the template
 * of every resource's routes, and the Item* schemas, Price/Name/Description, the ItemId parameter
 * and the Location header exist only for them. apidoc_render() parses the base into a cJSON tree,
 * takes the templates out, and for each resource (in the set's order) copies them, keeps the
 * operations the resource's methods allow, renames operation ids and tags, points their $refs at
 * the resource's own components, and generates those components from the columns: the key
 * parameter, the row (exactly the exposed columns), the create/replace/patch/upsert bodies (row.h's
 * write rules), the page and the Location header. Filters and order (filter.h) become the list
 * operation's query parameters. The tree is then printed twice: compact JSON, and block YAML.
 *
 * cJSON is used here, in the core, because this is a build-once job on a document of a few hundred
 * kilobytes that is rebuilt per catalog generation, never on a request's path; the hand-written
 * scanner (json.h) stays the only JSON code on the hot path. Numbers that a double cannot hold
 * (int8 bounds, numeric(p,s) limits) are cJSON "raw" nodes written as their exact text.
 *
 * Out of memory aborts (STYLE.md rule 7): cJSON's allocators return NULL, and must() turns that
 * into util.h's decision. No globals, no locks: reentrant. Deterministic: the output is a function
 * of the set and the base only (object members keep insertion order). */
#include "cdcache/apidoc.h"
#include "cdcache/error.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define APIDOC_STEM_MAX 96 /* a resource's component-name stem, e.g. "Customers" */
#define APIDOC_REF_MAX  160
#define APIDOC_IN_MAX   10 /* elements an in.() list is documented with (filter.h takes more) */
#define JSON_VALUE_NAME "JsonValue"
#define JSON_VALUE_REF  "#/components/schemas/" JSON_VALUE_NAME

/* The template's path keys and the components only the template uses (removed from the output). */
#define TEMPLATE_COLLECTION "/items"
#define TEMPLATE_ROW        "/items/{id}"
#define TEMPLATE_TAG        "items"

static const char *const template_schemas[] = {
    "Item",     "ItemCreate", "ItemReplace", "ItemPatch",   "ItemUpsert",
    "ItemPage", "Price",      "Name",        "Description",
};

/* ------------------------------------------------------------------ regular expressions
 * ECMA-262 patterns (JSON Schema), each the exact text codec_param() / codec_param_text() take, so
 * that what the document allows is accepted and what it forbids is refused. */
#define RE_YEAR "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
#define RE_MD                                                                                      \
    "((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
#define RE_LEAP  "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29"
#define RE_DATE  "(" RE_YEAR "-" RE_MD "|" RE_LEAP ")"
#define RE_TIME  "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?"
#define RE_TS    RE_DATE "T" RE_TIME
#define RE_TZ    "(Z|[+-](0[0-9]|1[0-5]):[0-5][0-9])"
#define RE_INF   "infinity|-infinity"
#define RE_UUID  "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
#define RE_B64   "([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
#define RE_FLT   "-?(0|[1-9][0-9]{0,14})(\\.[0-9]{1,15})?|NaN|Infinity|-Infinity"
#define RE_NONUL "[^\\u0000]"

static cJSON *must(cJSON *p)
{
    if (!p) {
        fputs("cdcache: out of memory (apidoc)\n", stderr);
        abort();
    }
    return p;
}

static cJSON *obj(void)
{
    return must(cJSON_CreateObject());
}

static cJSON *arr(void)
{
    return must(cJSON_CreateArray());
}

/* Adds member k (copied) to o; takes ownership of v. Returns v (borrowed). */
static cJSON *put(cJSON *o, const char *k, cJSON *v)
{
    if (!cJSON_AddItemToObject(o, k, must(v))) {
        fputs("cdcache: out of memory (apidoc)\n", stderr);
        abort();
    }
    return v;
}

static void put_str(cJSON *o, const char *k, const char *s)
{
    put(o, k, cJSON_CreateString(s));
}

/* A number written as its exact text (a raw node). */
static void put_raw(cJSON *o, const char *k, const char *digits)
{
    put(o, k, cJSON_CreateRaw(digits));
}

static void push(cJSON *a, cJSON *v)
{
    if (!cJSON_AddItemToArray(a, must(v))) {
        fputs("cdcache: out of memory (apidoc)\n", stderr);
        abort();
    }
}

static void push_str(cJSON *a, const char *s)
{
    push(a, cJSON_CreateString(s));
}

/* {"type": t} */
static cJSON *typed(const char *t)
{
    cJSON *s = obj();
    put_str(s, "type", t);
    return s;
}

/* Sets a pattern ^(body)$ on s. */
static void put_pattern(cJSON *s, const char *body)
{
    struct buf b;
    buf_init(&b, 1u << 16);
    buf_printf(&b, "^(%s)$", body);
    put_str(s, "pattern", b.data);
    buf_free(&b);
}

/* ------------------------------------------------------------------ per-kind schemas */

struct numeric_tm {
    bool bounded;
    int prec, scale; /* integer digits = prec - scale */
};

static struct numeric_tm numeric_typmod(int32_t typmod)
{
    struct numeric_tm n = {false, 0, 0};
    if (typmod >= 4) {
        n.bounded = true;
        n.prec = ((typmod - 4) >> 16) & 0xffff;
        n.scale = (typmod - 4) & 0xffff;
        if (n.scale > n.prec) /* as codec.c: leave odd typmods to PostgreSQL */
            n.scale = n.prec;
    }
    return n;
}

/* "999.99" for numeric(5,2) (sign: "-" or ""). */
static void numeric_limit(struct buf *b, const char *sign, struct numeric_tm n)
{
    int ip = n.prec - n.scale;
    buf_puts(b, sign);
    if (ip == 0)
        buf_puts(b, "0");
    for (int i = 0; i < ip; i++)
        buf_puts(b, "9");
    if (n.scale > 0) {
        buf_puts(b, ".");
        for (int i = 0; i < n.scale; i++)
            buf_puts(b, "9");
    }
}

/* The regex of a decimal text numeric(p,s) takes (codec.c, param_numeric): no exponent, no NaN. */
static void numeric_re(struct buf *b, struct numeric_tm n)
{
    int ip = n.prec - n.scale;
    if (!n.bounded) {
        buf_puts(b, "-?[0-9]+(\\.[0-9]+)?");
        return;
    }
    if (ip > 0)
        buf_printf(b, "-?0*[0-9]{1,%d}", ip);
    else
        buf_puts(b, "-?0+");
    if (n.scale > 0)
        buf_printf(b, "(\\.[0-9]{1,%d})?", n.scale);
}

static void int_bounds(enum codec_kind k, const char **min, const char **max, int *digits)
{
    if (k == CODEC_INT2) {
        *min = "-32768", *max = "32767", *digits = 4;
    } else if (k == CODEC_INT4) {
        *min = "-2147483648", *max = "2147483647", *digits = 9;
    } else {
        *min = "-9223372036854775808", *max = "9223372036854775807", *digits = 18;
    }
}

static cJSON *int_schema(enum codec_kind k)
{
    const char *min, *max;
    int d;
    cJSON *s = typed("integer");

    int_bounds(k, &min, &max, &d);
    put_str(s, "format", k == CODEC_INT8 ? "int64" : "int32");
    put_raw(s, "minimum", min);
    put_raw(s, "maximum", max);
    return s;
}

/* The regex of a value of kind t in a request (a JSON string's content) or a filter (its text),
 * into b; false when the kind has none (json, bytea, enum, other: not documented as filterable). */
static bool value_re(const struct resource_column *c, struct buf *b, bool quoted_list)
{
    const struct codec_type *t = &c->type;
    const char *min, *max;
    int d;

    switch (t->kind) {
    case CODEC_TEXT:
        if (quoted_list)
            buf_puts(b, "\"[^\"\\\\\\u0000]");
        else
            buf_puts(b, RE_NONUL);
        if (t->typmod >= 5)
            buf_printf(b, "{0,%d}", t->typmod - 4);
        else
            buf_puts(b, "*");
        if (quoted_list)
            buf_puts(b, "\"");
        return true;
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8:
        int_bounds(t->kind, &min, &max, &d);
        buf_printf(b, "-?(0|[1-9][0-9]{0,%d})", d - 1);
        return true;
    case CODEC_NUMERIC:
        numeric_re(b, numeric_typmod(t->typmod));
        return true;
    case CODEC_FLOAT4:
    case CODEC_FLOAT8:
        buf_puts(b, RE_FLT);
        return true;
    case CODEC_BOOL:
        buf_puts(b, "true|false");
        return true;
    case CODEC_UUID:
        buf_puts(b, RE_UUID);
        return true;
    case CODEC_DATE:
        buf_puts(b, RE_DATE "|" RE_INF);
        return true;
    case CODEC_TIME:
        buf_puts(b, RE_TIME);
        return true;
    case CODEC_TIMESTAMP:
        buf_puts(b, RE_TS "|" RE_INF);
        return true;
    case CODEC_TIMESTAMPTZ:
        buf_puts(b, RE_TS RE_TZ "|" RE_INF);
        return true;
    default:
        return false;
    }
}

/* A string schema whose pattern is value_re(c). */
static cJSON *string_re(const struct resource_column *c)
{
    struct buf b;
    cJSON *s = typed("string");

    buf_init(&b, 1u << 16);
    value_re(c, &b, false);
    put_pattern(s, b.data);
    buf_free(&b);
    return s;
}

/* {"type":"string","enum":[...]} */
static cJSON *string_enum(const char *const *v, size_t n)
{
    cJSON *s = typed("string"), *e = put(s, "enum", arr());
    for (size_t i = 0; i < n; i++)
        push_str(e, v[i]);
    return s;
}

static cJSON *one_of2(const char *kw, cJSON *a, cJSON *b)
{
    cJSON *s = obj(), *l = put(s, kw, arr());
    push(l, a);
    push(l, b);
    return s;
}

static const char *const nan_inf[] = {"NaN", "Infinity", "-Infinity"};
static const char *const infinities[] = {"infinity", "-infinity"};

/* The schema of one (element) value of c. request: as a request body takes it (row.h, codec.h's
 * codec_param); else as a row renders it (the README's "Representation"). */
static cJSON *kind_schema(const struct resource_column *c, bool request)
{
    const struct codec_type *t = &c->type;
    struct numeric_tm nt;
    struct buf b;
    cJSON *s, *num;

    switch (t->kind) {
    case CODEC_TEXT:
        s = typed("string");
        if (t->typmod >= 5)
            put(s, "maxLength", cJSON_CreateNumber(t->typmod - 4));
        if (request)
            put_str(s, "pattern", "^" RE_NONUL "*$");
        return s;
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8:
        return int_schema(t->kind);
    case CODEC_NUMERIC:
        nt = numeric_typmod(t->typmod);
        num = typed(request && nt.bounded && nt.scale == 0 ? "integer" : "number");
        buf_init(&b, 1u << 16);
        if (nt.bounded) {
            numeric_limit(&b, "-", nt);
            put_raw(num, "minimum", b.data);
            buf_reset(&b);
            numeric_limit(&b, "", nt);
            put_raw(num, "maximum", b.data);
            buf_reset(&b);
            if (request && nt.scale > 0) {
                buf_puts(&b, "0.");
                for (int i = 1; i < nt.scale; i++)
                    buf_puts(&b, "0");
                buf_puts(&b, "1");
                put_raw(num, "multipleOf", b.data);
                buf_reset(&b);
            }
        }
        if (request) {
            /* a JSON number, or a decimal string: exact either way, never through a double */
            cJSON *str = typed("string");
            numeric_re(&b, nt);
            put_pattern(str, b.data);
            s = one_of2("oneOf", num, str);
            put_str(s, "description",
                    "A decimal as a JSON number (its text kept as written) or a string; no "
                    "exponent, NaN or Infinity.");
        } else {
            /* NaN (and, unconstrained, +-Infinity) are strings: JSON has no such numbers */
            s = one_of2("oneOf", num, string_enum(nan_inf, nt.bounded ? 1 : 3));
        }
        buf_free(&b);
        return s;
    case CODEC_FLOAT4:
    case CODEC_FLOAT8:
        num = typed("number");
        if (request) { /* a number past the type's range is a 400, not an infinity */
            bool single = t->kind == CODEC_FLOAT4;
            put_raw(num, "minimum",
                    single ? "-3.4028234663852886e+38" : "-1.7976931348623157e+308");
            put_raw(num, "maximum", single ? "3.4028234663852886e+38" : "1.7976931348623157e+308");
        }
        return one_of2("oneOf", num, string_enum(nan_inf, 3));
    case CODEC_BOOL:
        return typed("boolean");
    case CODEC_JSON:
        s = obj();
        if (request) /* any JSON PostgreSQL's jsonb takes: no NUL in its strings */
            put_str(s, "$ref", JSON_VALUE_REF);
        else
            put_str(s, "description",
                    "Any JSON value (json/jsonb): the value itself, not a string.");
        return s;
    case CODEC_UUID:
        s = typed("string");
        put_str(s, "format", "uuid");
        if (request)
            put_str(s, "pattern", "^" RE_UUID "$");
        return s;
    case CODEC_DATE:
    case CODEC_TIMESTAMPTZ:
        if (request)
            return string_re(c);
        num = obj();
        put_str(num, "format", t->kind == CODEC_DATE ? "date" : "date-time");
        s = one_of2("anyOf", num, string_enum(infinities, 2));
        put_str(s, "type", "string");
        return s;
    case CODEC_TIME:
        s = typed("string");
        put_str(s, "pattern", request ? "^" RE_TIME "$" : "^(" RE_TIME "|24:00:00)$");
        return s;
    case CODEC_TIMESTAMP:
        s = string_re(c);
        put_str(s, "description", "RFC 3339 without an offset (timestamp without time zone).");
        return s;
    case CODEC_BYTEA:
        s = typed("string");
        put_str(s, "contentEncoding", "base64");
        if (request)
            put_str(s, "pattern", "^" RE_B64 "$");
        return s;
    case CODEC_ENUM:
        s = typed("string");
        put_str(s, "description", "A label of the column's enum type.");
        if (c->labels) {
            cJSON *e = put(s, "enum", arr());
            for (size_t i = 0; i < c->nlabels; i++)
                push_str(e, c->labels[i]);
        } else if (request) {
            put_str(s, "pattern", "^" RE_NONUL "*$");
        }
        return s;
    default:
        s = typed("string");
        put_str(s, "description", "PostgreSQL's text output of the value.");
        if (request)
            put_str(s, "pattern", "^" RE_NONUL "*$");
        return s;
    }
}

/* The request schema of a json/jsonb value, added to the components when a body uses it: any JSON
 * whose strings and member names hold no NUL (jsonb refuses \u0000). */
static cJSON *json_value_schema(void)
{
    cJSON *s = obj(), *any = put(s, "anyOf", arr()), *e, *ref;

    put_str(
        s, "description",
        "Any JSON value (json/jsonb), written as itself; strings and member names without NUL.");
    e = typed("string");
    put_str(e, "pattern", "^" RE_NONUL "*$");
    push(any, e);
    e = obj();
    {
        cJSON *t = put(e, "type", arr());
        push_str(t, "number");
        push_str(t, "boolean");
        push_str(t, "null");
    }
    push(any, e);
    e = typed("array");
    ref = put(e, "items", obj());
    put_str(ref, "$ref", JSON_VALUE_REF);
    push(any, e);
    e = typed("object");
    ref = put(e, "additionalProperties", obj());
    put_str(ref, "$ref", JSON_VALUE_REF);
    put_str(put(e, "propertyNames", obj()), "pattern", "^" RE_NONUL "*$");
    push(any, e);
    return s;
}

static bool uses_ref(const cJSON *n, const char *ref)
{
    const cJSON *r = cJSON_IsObject(n) ? cJSON_GetObjectItemCaseSensitive(n, "$ref") : NULL;
    if (cJSON_IsString(r) && strcmp(r->valuestring, ref) == 0)
        return true;
    for (const cJSON *c = n->child; c; c = c->next)
        if (uses_ref(c, ref))
            return true;
    return false;
}

/* s, or null too. A schema with a single "type" gets ["type","null"] (keywords of that type do
 * not apply to null); anything else is wrapped in anyOf. The any-value schema already has null. */
static cJSON *or_null(cJSON *s)
{
    cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    cJSON *w, *l;

    if (!s->child || (cJSON_GetArraySize(s) == 1 && cJSON_GetObjectItem(s, "description")))
        return s; /* any value */
    if (cJSON_IsString(t)) {
        cJSON *pair = arr();
        push_str(pair, t->valuestring);
        push_str(pair, "null");
        must(cJSON_ReplaceItemInObjectCaseSensitive(s, "type", pair) ? s : NULL);
        return s;
    }
    w = obj();
    l = put(w, "anyOf", arr());
    push(l, s);
    push(l, typed("null"));
    return w;
}

/* A column's schema: its kind, in arrays for array columns (rows may nest for several dimensions;
 * requests take one level, PostgreSQL needing rectangular nesting), null when nullable. */
static cJSON *column_schema(const struct resource_column *c, bool request)
{
    cJSON *s = kind_schema(c, request);

    if (c->type.array) {
        cJSON *a = typed("array"), *items;
        if (request) {
            items = or_null(s); /* one dimension (row.c) */
        } else {
            /* an element, NULL, or a nested array: a column may hold arrays of any number of
             * dimensions, whatever its declaration says */
            items = obj();
            cJSON *l = put(items, "anyOf", arr());
            push(l, s);
            push(l, typed("null"));
            push(l, typed("array"));
        }
        put(a, "items", items);
        put_str(a, "description",
                request ? "A JSON array of the element type, one dimension (elements or null)."
                        : "A JSON array of the element type (nested for several dimensions).");
        s = a;
    }
    return c->nullable ? or_null(s) : s;
}

/* ------------------------------------------------------------------ per-resource components */

struct res_names {
    char stem[APIDOC_STEM_MAX];
    char keyname[APIDOC_STEM_MAX]; /* the path template's parameter name */
};

/* "order_lines" -> "OrderLines"; unique among the stems before it (else its index is appended). */
static void make_stem(const struct resource_set *set, size_t i, struct res_names *names)
{
    char *o = names[i].stem;
    size_t n = 0;
    bool up = true;

    for (const char *p = set->r[i].name; *p && n + 24 < sizeof(names[i].stem); p++) {
        char ch = *p;
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum) {
            up = true;
            continue;
        }
        if (n == 0 && ch >= '0' && ch <= '9')
            o[n++] = 'R';
        o[n++] = up && ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
        up = false;
    }
    if (n == 0)
        o[n++] = 'R';
    o[n] = '\0';
    for (size_t k = 0; k < i; k++)
        if (strcmp(names[k].stem, o) == 0) {
            snprintf(o + n, sizeof(names[i].stem) - n, "%zu", i);
            break;
        }
}

static bool plain_name(const char *s)
{
    if (!*s || strlen(s) >= APIDOC_STEM_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static bool writable(const struct resource *r, size_t c)
{
    const struct resource_column *col = &r->columns[c];
    return col->exposed && !col->generated && (int)c != r->version;
}

/* The schema of the key as a path segment (row: a row's key, so a key drawn from a sequence is at
 * least 1) or a cursor (after=, where 0 starts the list): integers with their range, uuid, text. */
static cJSON *key_schema(const struct resource_column *k, bool row)
{
    cJSON *s;
    switch (k->type.kind) {
    case CODEC_INT2:
    case CODEC_INT4:
    case CODEC_INT8:
        s = int_schema(k->type.kind);
        if (k->serial) /* drawn from a sequence: 0 and below name no row (a 400); a cursor
                          starts at 0 */
            cJSON_ReplaceItemInObjectCaseSensitive(s, "minimum",
                                                   must(cJSON_CreateRaw(row ? "1" : "0")));
        return s;
    case CODEC_UUID:
        s = typed("string");
        put_str(s, "format", "uuid");
        put_str(s, "pattern", "^" RE_UUID "$");
        return s;
    default:
        /* text (and enum) keys: any text but NUL, not a path separator; at most 128 characters
         * (CACHE_MAX_KEY is 512 bytes, 4 per character at worst) */
        s = typed("string");
        put(s, "minLength", cJSON_CreateNumber(1));
        put(s, "maxLength", cJSON_CreateNumber(128));
        put_str(s, "pattern", "^[^\\u0000/]+$");
        return s;
    }
}

static cJSON *key_parameter(const struct resource *r, const struct res_names *nm)
{
    const struct resource_column *k = &r->columns[r->key];
    cJSON *p = obj();
    struct buf d;

    buf_init(&d, 4096);
    put_str(p, "name", nm->keyname);
    put_str(p, "in", "path");
    put(p, "required", cJSON_CreateTrue());
    buf_printf(
        &d, "The row's key, column `%s` (%s). Any spelling of the same value names the same row ",
        k->name, k->sql_type ? k->sql_type : "key");
    buf_puts(&d,
             "(integers in decimal, uuids in either case); anything else is a 400 `invalid-id`.");
    put_str(p, "description", d.data);
    put(p, "schema", key_schema(k, true));
    buf_free(&d);
    return p;
}

/* The row: exactly the exposed columns, all present. */
static cJSON *row_object(const struct resource *r)
{
    cJSON *s = typed("object"), *req, *props;
    struct buf d;

    buf_init(&d, 4096);
    buf_printf(&d, "A row of %s.%s: exactly its exposed columns. ", r->schema, r->table);
    buf_puts(&d, "The version (the ETag) is not a member unless the table exposes it.");
    put_str(s, "description", d.data);
    put(s, "additionalProperties", cJSON_CreateFalse());
    req = put(s, "required", arr());
    props = put(s, "properties", obj());
    for (size_t c = 0; c < r->ncolumns; c++) {
        const struct resource_column *col = &r->columns[c];
        cJSON *cs;
        if (!col->exposed)
            continue;
        push_str(req, col->name);
        cs = column_schema(col, false);
        if ((int)c == r->version || col->generated)
            put(cs, "readOnly", cJSON_CreateTrue());
        put(props, col->name, cs);
    }
    buf_free(&d);
    return s;
}

/* The key as the upsert's body names it: a number or its digits for integers (the seed's
 * {"id":"1"}), the key's own form otherwise. */
static cJSON *body_key_schema(const struct resource_column *k)
{
    const char *min, *max;
    int d;
    struct buf b;
    cJSON *str, *s;

    if (k->type.kind != CODEC_INT2 && k->type.kind != CODEC_INT4 && k->type.kind != CODEC_INT8)
        return key_schema(k, true);
    int_bounds(k->type.kind, &min, &max, &d);
    buf_init(&b, 256);
    /* a key drawn from a sequence is at least 1 (row.c refuses 0 and below by name) */
    buf_printf(&b, k->serial ? "^0*[1-9][0-9]{0,%d}$" : "^-?[0-9]{1,%d}$", d - 1 + !k->serial);
    str = typed("string");
    put_str(str, "pattern", b.data);
    buf_free(&b);
    s = one_of2("oneOf", key_schema(k, true), str);
    return s;
}

enum body_kind { BODY_CREATE, BODY_REPLACE, BODY_PATCH, BODY_UPSERT };

/* A request body (row.h): writable columns only (not the version, not GENERATED ALWAYS);
 * CREATE requires the NOT NULL columns without a default; REPLACE the same (a nullable column left
 * out becomes NULL, one with a default keeps its value) and names the key in the path; PATCH at
 * least one column; UPSERT is CREATE without the key and REPLACE with it. NULL when the body can
 * name no column (a PATCH on a table whose only writable column is the key). */
static cJSON *body_object(const struct resource *r, enum body_kind kind)
{
    const struct resource_column *k = &r->columns[r->key];
    cJSON *s = typed("object"), *req = NULL, *props, *any = NULL;
    size_t nprops = 0;

    put(s, "additionalProperties", cJSON_CreateFalse());
    if (kind == BODY_PATCH) {
        put(s, "minProperties", cJSON_CreateNumber(1));
        any = put(s, "anyOf", arr());
    } else {
        req = put(s, "required", arr());
    }
    props = put(s, "properties", obj());
    for (size_t c = 0; c < r->ncolumns; c++) {
        const struct resource_column *col = &r->columns[c];
        if (!writable(r, c))
            continue;
        if ((int)c == r->key) {
            if (kind == BODY_CREATE && col->serial)
                continue; /* assigned by the server (row.c) */
            if (kind == BODY_CREATE)
                put(props, col->name, column_schema(col, true));
            else if (kind == BODY_UPSERT)
                put(props, col->name, body_key_schema(col));
            else
                continue; /* named by the path */
            nprops++;
            continue;
        }
        if (col->serial && kind != BODY_PATCH)
            continue; /* assigned by the server (row.c) */
        put(props, col->name, column_schema(col, true));
        nprops++;
        if (kind == BODY_PATCH) {
            cJSON *one = obj(), *l = put(one, "required", arr());
            push_str(l, col->name);
            push(any, one);
        } else if (!col->has_default && !col->nullable) {
            push_str(req, col->name);
        }
    }
    if (kind == BODY_PATCH && cJSON_GetArraySize(any) == 0) {
        cJSON_Delete(s);
        return NULL;
    }
    (void)nprops;
    switch (kind) {
    case BODY_CREATE:
        put_str(s, "description",
                "The new row's columns. Columns with a default (or nullable ones) may be left out; "
                "read-only columns (the version, GENERATED ALWAYS) are refused, as are unknown "
                "members.");
        break;
    case BODY_REPLACE: {
        struct buf d;
        buf_init(&d, 4096);
        buf_printf(&d,
                   "Every writable column: a nullable column left out becomes null, a column "
                   "with a default left out keeps its value. The key `%s` is also accepted when it "
                   "equals the path's (a client may send back the row it read); any other value "
                   "is a 400 `invalid-body`.",
                   k->name);
        put_str(s, "description", d.data);
        buf_free(&d);
        break;
    }
    case BODY_PATCH: {
        struct buf d;
        buf_init(&d, 4096);
        buf_printf(&d,
                   "At least one writable column; only those named change. The key `%s` equal to "
                   "the path's is accepted, as for PUT.",
                   k->name);
        put_str(s, "description", d.data);
        buf_free(&d);
        break;
    }
    case BODY_UPSERT:
        put_str(s, "description",
                k->generated
                    ? "The seed's upsert: creates, as POST does (the key is GENERATED ALWAYS, so "
                      "a body cannot name it)."
                    : "The seed's upsert: without the key it creates, as POST does; with the key "
                      "(for an integer key, a number or its digits as a string) it replaces that "
                      "row, as PUT on the row does.");
        break;
    }
    return s;
}

/* A regex-safe copy of a route name. */
static void re_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (strchr("\\^$.|?*+()[]{}", *s))
            buf_append(b, "\\", 1);
        buf_append(b, s, 1);
    }
}

static cJSON *page_object(const struct resource *r, const char *rowref)
{
    cJSON *s = typed("object"), *req = put(s, "required", arr()), *props, *items, *next;
    struct buf b;

    put(s, "additionalProperties", cJSON_CreateFalse());
    push_str(req, "items");
    push_str(req, "next");
    props = put(s, "properties", obj());
    items = put(props, "items", typed("array"));
    put(put(items, "items", obj()), "$ref", cJSON_CreateString(rowref));
    buf_init(&b, 1024);
    buf_puts(&b, "^/");
    re_escape(&b, r->name);
    buf_puts(&b, "\\?");
    next = obj();
    put_str(next, "description", "The next page's relative URL, or null on the last page.");
    {
        cJSON *u = typed("string");
        put_str(u, "pattern", b.data);
        put(next, "oneOf", arr());
        push(cJSON_GetObjectItem(next, "oneOf"), u);
        push(cJSON_GetObjectItem(next, "oneOf"), typed("null"));
    }
    put(props, "next", next);
    buf_free(&b);
    return s;
}

static cJSON *location_header(const struct resource *r)
{
    cJSON *h = obj(), *s;
    struct buf b;

    buf_init(&b, 1024);
    buf_printf(&b, "The new row's path, `/%s/<key>` (a text key percent-encoded).", r->name);
    put_str(h, "description", b.data);
    put(h, "required", cJSON_CreateTrue());
    buf_reset(&b);
    buf_puts(&b, "^/");
    re_escape(&b, r->name);
    buf_puts(&b, "/[^/]+$");
    s = put(h, "schema", typed("string"));
    put_str(s, "pattern", b.data);
    buf_free(&b);
    return h;
}

/* ------------------------------------------------------------------ list parameters */

static bool reserved_param(const char *name)
{
    return strcmp(name, "after") == 0 || strcmp(name, "limit") == 0 || strcmp(name, "order") == 0;
}

/* One filter parameter (filter.h's syntax) for column c. */
static cJSON *filter_parameter(const struct resource_column *c)
{
    cJSON *p = obj(), *s;
    struct buf v, q, re, d;

    buf_init(&v, 1u << 16);
    buf_init(&q, 1u << 16);
    buf_init(&re, 1u << 18);
    buf_init(&d, 4096);
    put_str(p, "name", c->name);
    put_str(p, "in", "query");
    s = typed("string");
    if (!c->type.array && value_re(c, &v, false)) {
        value_re(c, &q, true);
        buf_printf(
            &re,
            "^(not\\.)?((eq|neq|lt|lte|gt|gte)\\.(%s)|in\\.\\((%s)(,(%s)){0,%d}\\)|is\\.null)$",
            v.data, q.data, q.data, APIDOC_IN_MAX - 1);
        buf_printf(
            &d,
            "Filter on `%s` (PostgREST's syntax): `eq.V`, `neq.V`, `lt.V`, `lte.V`, `gt.V`, "
            "`gte.V`, `in.(a,b)`, `is.null`, each optionally after `not.`; V as the column's "
            "type writes it%s. Filters AND.",
            c->name, c->type.kind == CODEC_TEXT ? " (in `in.()`, elements in double quotes)" : "");
        put(s, "maxLength", cJSON_CreateNumber(4000));
    } else {
        buf_puts(&re, "^(not\\.)?is\\.null$");
        buf_printf(&d,
                   "Filter on `%s`: `is.null` or `not.is.null`. Columns of this type (%s) that "
                   "PostgreSQL can compare also take the other operators with a value of the type.",
                   c->name, c->sql_type ? c->sql_type : "other");
    }
    put_str(s, "pattern", re.data);
    put_str(p, "description", d.data);
    put(p, "schema", s);
    buf_free(&v);
    buf_free(&q);
    buf_free(&re);
    buf_free(&d);
    return p;
}

static cJSON *order_parameter(const struct resource *r)
{
    cJSON *p = obj(), *s = typed("string"), *e = put(s, "enum", arr());
    struct buf b;

    buf_init(&b, 1024);
    put_str(p, "name", "order");
    put_str(p, "in", "query");
    put_str(p, "description",
            "`COLUMN.asc` or `COLUMN.desc`: the key, or a column that leads a btree index. Pages "
            "are ordered by (that column, the key); with an order other than the key's, `after` "
            "takes the cursor of `next`, not a key.");
    for (size_t c = 0; c < r->ncolumns; c++) {
        const struct resource_column *col = &r->columns[c];
        if (!col->exposed || (!col->orderable && (int)c != r->key))
            continue;
        buf_reset(&b);
        buf_printf(&b, "%s.asc", col->name);
        push_str(e, b.data);
        buf_reset(&b);
        buf_printf(&b, "%s.desc", col->name);
        push_str(e, b.data);
    }
    put(p, "schema", s);
    buf_free(&b);
    return p;
}

/* The list operation's parameters: the template's (after typed by the key), then order and one
 * filter per exposed column. */
static void list_parameters(cJSON *op, const struct resource *r)
{
    cJSON *ps = cJSON_GetObjectItemCaseSensitive(op, "parameters"), *p;

    if (!ps)
        ps = put(op, "parameters", arr());
    cJSON_ArrayForEach(p, ps)
    {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(p, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, "after") == 0) {
            struct buf d;
            buf_init(&d, 1024);
            buf_printf(&d,
                       "Return rows after this key (`%s`), in the order of the key; with `order` "
                       "on another column, the cursor that `next` carries.",
                       r->columns[r->key].name);
            cJSON_ReplaceItemInObjectCaseSensitive(p, "description",
                                                   must(cJSON_CreateString(d.data)));
            cJSON_ReplaceItemInObjectCaseSensitive(p, "schema",
                                                   key_schema(&r->columns[r->key], false));
            buf_free(&d);
        }
    }
    push(ps, order_parameter(r));
    for (size_t c = 0; c < r->ncolumns; c++)
        if (r->columns[c].exposed && !reserved_param(r->columns[c].name))
            push(ps, filter_parameter(&r->columns[c]));
}

/* ------------------------------------------------------------------ template instantiation */

struct refmap {
    const char *from;
    char to[APIDOC_REF_MAX];
};

/* Points every "$ref" of the template copy at the resource's components. */
static void rewrite_refs(cJSON *n, const struct refmap *map, size_t nmap)
{
    cJSON *c;

    if (cJSON_IsObject(n)) {
        cJSON *ref = cJSON_GetObjectItemCaseSensitive(n, "$ref");
        if (cJSON_IsString(ref))
            for (size_t i = 0; i < nmap; i++)
                if (strcmp(ref->valuestring, map[i].from) == 0) {
                    cJSON_ReplaceItemInObjectCaseSensitive(n, "$ref",
                                                           must(cJSON_CreateString(map[i].to)));
                    break;
                }
    }
    for (c = n->child; c; c = c->next)
        rewrite_refs(c, map, nmap);
}

struct opspec {
    const char *method; /* the template's member */
    unsigned bit;       /* enum resource_method */
    const char *verb;   /* the operation id's prefix */
};

static const struct opspec collection_ops[] = {
    {"get", RESOURCE_GET, "list"},
    {"post", RESOURCE_POST, "create"},
    {"put", RESOURCE_PUT, "upsert"},
};
static const struct opspec row_ops[] = {
    {"get", RESOURCE_GET, "get"},
    {"put", RESOURCE_PUT, "replace"},
    {"patch", RESOURCE_PATCH, "patch"},
    {"delete", RESOURCE_DELETE, "delete"},
};

/* Keeps the operations r's methods allow and names them for r. Returns the number kept. */
static int instantiate(cJSON *path, const struct opspec *ops, size_t nops, const struct resource *r,
                       const struct res_names *nm, bool have_patch)
{
    int kept = 0;

    for (size_t i = 0; i < nops; i++) {
        cJSON *op = cJSON_GetObjectItemCaseSensitive(path, ops[i].method);
        char id[APIDOC_STEM_MAX + 16];
        cJSON *tags;

        if (!op)
            continue;
        if (!(r->methods & ops[i].bit) || (ops[i].bit == RESOURCE_PATCH && !have_patch)) {
            cJSON_DeleteItemFromObjectCaseSensitive(path, ops[i].method);
            continue;
        }
        snprintf(id, sizeof(id), "%s%s", ops[i].verb, nm->stem);
        cJSON_ReplaceItemInObjectCaseSensitive(op, "operationId", must(cJSON_CreateString(id)));
        tags = arr();
        push_str(tags, r->name);
        if (cJSON_GetObjectItemCaseSensitive(op, "tags"))
            cJSON_ReplaceItemInObjectCaseSensitive(op, "tags", tags);
        else
            put(op, "tags", tags);
        kept++;
    }
    return kept;
}

struct ctx {
    const struct resource_set *set;
    struct res_names *names;
    cJSON *tpl_collection, *tpl_row; /* owned: detached from the base */
    cJSON *schemas, *parameters, *headers;
};

/* Adds r's paths to paths and its components to the document. */
static int add_resource(struct ctx *x, size_t i, cJSON *paths)
{
    const struct resource *r = &x->set->r[i];
    const struct res_names *nm = &x->names[i];
    struct refmap map[8];
    size_t nmap = 0;
    cJSON *coll, *row, *patch;
    bool have_row;
    struct buf name;
    char comp[APIDOC_STEM_MAX + 32];

    if (r->key < 0 || (size_t)r->key >= r->ncolumns)
        return CDC_EINVAL;
#define MAP(from_, fmt_)                                                                           \
    do {                                                                                           \
        map[nmap].from = from_;                                                                    \
        snprintf(map[nmap].to, sizeof(map[nmap].to), fmt_, nm->stem);                              \
        nmap++;                                                                                    \
    } while (0)
    MAP("#/components/schemas/Item", "#/components/schemas/%sRow");
    MAP("#/components/schemas/ItemCreate", "#/components/schemas/%sCreate");
    MAP("#/components/schemas/ItemReplace", "#/components/schemas/%sReplace");
    MAP("#/components/schemas/ItemPatch", "#/components/schemas/%sPatch");
    MAP("#/components/schemas/ItemUpsert", "#/components/schemas/%sUpsert");
    MAP("#/components/schemas/ItemPage", "#/components/schemas/%sPage");
    MAP("#/components/parameters/ItemId", "#/components/parameters/%sKey");
    MAP("#/components/headers/Location", "#/components/headers/%sLocation");
#undef MAP

    patch = body_object(r, BODY_PATCH);
    buf_init(&name, 1024);

    coll = must(cJSON_Duplicate(x->tpl_collection, true));
    rewrite_refs(coll, map, nmap);
    if (instantiate(coll, collection_ops, 3, r, nm, true) > 0) {
        cJSON *get = cJSON_GetObjectItemCaseSensitive(coll, "get");
        if (get)
            list_parameters(get, r);
        buf_printf(&name, "/%s", r->name);
        put(paths, name.data, coll);
    } else {
        cJSON_Delete(coll);
    }
    row = must(cJSON_Duplicate(x->tpl_row, true));
    rewrite_refs(row, map, nmap);
    have_row = instantiate(row, row_ops, 4, r, nm, patch != NULL) > 0;
    if (have_row) {
        buf_reset(&name);
        buf_printf(&name, "/%s/{%s}", r->name, nm->keyname);
        put(paths, name.data, row);
    } else {
        cJSON_Delete(row);
    }
    buf_free(&name);

    /* only what the kept operations use: recommended-strict refuses unused components */
    if (have_row) {
        snprintf(comp, sizeof(comp), "%sKey", nm->stem);
        put(x->parameters, comp, key_parameter(r, nm));
    }
    if (r->methods & (RESOURCE_POST | RESOURCE_PUT)) {
        snprintf(comp, sizeof(comp), "%sLocation", nm->stem);
        put(x->headers, comp, location_header(r));
    }
    if (r->methods & (RESOURCE_GET | RESOURCE_POST | RESOURCE_PUT | RESOURCE_PATCH)) {
        snprintf(comp, sizeof(comp), "%sRow", nm->stem);
        put(x->schemas, comp, row_object(r));
    }
    if (r->methods & RESOURCE_POST) {
        snprintf(comp, sizeof(comp), "%sCreate", nm->stem);
        put(x->schemas, comp, body_object(r, BODY_CREATE));
    }
    if (r->methods & RESOURCE_PUT) {
        snprintf(comp, sizeof(comp), "%sReplace", nm->stem);
        put(x->schemas, comp, body_object(r, BODY_REPLACE));
        snprintf(comp, sizeof(comp), "%sUpsert", nm->stem);
        put(x->schemas, comp, body_object(r, BODY_UPSERT));
    }
    if (patch && (r->methods & RESOURCE_PATCH)) {
        snprintf(comp, sizeof(comp), "%sPatch", nm->stem);
        put(x->schemas, comp, patch);
        patch = NULL;
    }
    cJSON_Delete(patch);
    if (r->methods & RESOURCE_GET) {
        snprintf(comp, sizeof(comp), "%sPage", nm->stem);
        put(x->schemas, comp, page_object(r, map[0].to));
    }
    return 0;
}

/* The tags: the template's tag is replaced, in place, by one per resource. */
static void rebuild_tags(cJSON *doc, const struct resource_set *set)
{
    cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(doc, "tags"), *tags = arr(), *t;

    cJSON_ArrayForEach(t, old)
    {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, TEMPLATE_TAG) == 0) {
            for (size_t i = 0; i < set->n; i++) {
                cJSON *e = obj();
                struct buf d;
                buf_init(&d, 1024);
                buf_printf(&d, "Rows of the table %s.%s.", set->r[i].schema, set->r[i].table);
                put_str(e, "name", set->r[i].name);
                put_str(e, "description", d.data);
                push(tags, e);
                buf_free(&d);
            }
        } else {
            push(tags, must(cJSON_Duplicate(t, true)));
        }
    }
    cJSON_Delete(old);
    put(doc, "tags", tags);
}

/* GET /'s links: every resource first (http.c, index_page), then the fixed ones. */
static void rebuild_index(cJSON *schemas, const struct resource_set *set)
{
    cJSON *idx = cJSON_GetObjectItemCaseSensitive(schemas, "Index");
    cJSON *props = idx ? cJSON_GetObjectItemCaseSensitive(idx, "properties") : NULL;
    cJSON *links = props ? cJSON_GetObjectItemCaseSensitive(props, "links") : NULL;
    cJSON *lp, *lr, *np, *nr, *m;

    if (!links)
        return;
    lp = cJSON_DetachItemFromObjectCaseSensitive(links, "properties");
    lr = cJSON_DetachItemFromObjectCaseSensitive(links, "required");
    np = obj();
    nr = arr();
    for (size_t i = 0; i < set->n; i++) {
        cJSON *s = typed("string");
        struct buf b;
        buf_init(&b, 1024);
        buf_printf(&b, "/%s", set->r[i].name);
        put_str(s, "const", b.data);
        put(np, set->r[i].name, s);
        push_str(nr, set->r[i].name);
        buf_free(&b);
    }
    cJSON_ArrayForEach(m, lp)
    {
        if (strcmp(m->string, TEMPLATE_TAG) != 0 &&
            !cJSON_GetObjectItemCaseSensitive(np, m->string))
            put(np, m->string, must(cJSON_Duplicate(m, true)));
    }
    cJSON_ArrayForEach(m, lr)
    {
        if (cJSON_IsString(m) && strcmp(m->valuestring, TEMPLATE_TAG) != 0) {
            bool dup = false;
            for (size_t i = 0; i < set->n; i++)
                dup = dup || strcmp(set->r[i].name, m->valuestring) == 0;
            if (!dup)
                push_str(nr, m->valuestring);
        }
    }
    cJSON_Delete(lp);
    cJSON_Delete(lr);
    put(links, "required", nr);
    put(links, "properties", np);
}

/* ------------------------------------------------------------------ YAML */

/* True when s can be written as a plain scalar that YAML 1.1 and 1.2 both read back as this string:
 * letters, digits and _ . / { } - only (no space, so no ": " or " #"), starting with a letter, '_'
 * or '/', or a version such as 3.1.0 (digits and at least two dots: no number reads so); not a word
 * YAML 1.1 reads as a boolean or null. */
static bool yaml_plain(const char *s)
{
    static const char *const words[] = {"y",   "n",    "yes",   "no",  "on",
                                        "off", "true", "false", "null"};
    int dots = 0;
    bool digits_only = *s >= '0' && *s <= '9';

    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == '/' ||
          digits_only))
        return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.' || *p == '/' || *p == '{' || *p == '}'))
            return false;
        dots += *p == '.';
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            digits_only = false;
    }
    if (*s >= '0' && *s <= '9')
        return digits_only && dots >= 2;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(s, words[i]) == 0)
            return false;
    return true;
}

static int yaml_quoted(struct buf *out, const char *s)
{
    int rc = buf_puts(out, "\"");
    if (!rc)
        rc = buf_json_escape(out, s, strlen(s));
    if (!rc)
        rc = buf_puts(out, "\"");
    return rc;
}

static int yaml_indent(struct buf *out, int n);

/* True when s reads back exactly as a literal block scalar ("|" or "|-"): several lines, none
 * with a control character or a YAML 1.1 line break (NEL, LS, PS), not starting with a space (that
 * would need an indentation indicator), at most one final newline. */
static bool yaml_literal_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || !strchr(s, '\n') || s[0] == ' ' || s[0] == '\n' ||
        (n >= 2 && s[n - 1] == '\n' && s[n - 2] == '\n'))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
            return false;
        if ((p[0] == 0xc2 && p[1] == 0x85) ||
            (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)))
            return false;
        if (*p == '\n' && p[1] == ' ')
            return false; /* a more-indented line is kept, but reads oddly: quote instead */
    }
    return true;
}

/* s as a literal block at indent (after "key: "). */
static int yaml_literal(struct buf *out, const char *s, int indent)
{
    size_t n = strlen(s);
    int rc = buf_puts(out, s[n - 1] == '\n' ? "|\n" : "|-\n");

    while (!rc && *s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        if (len)
            rc = yaml_indent(out, indent);
        if (!rc)
            rc = buf_append(out, s, len);
        if (!rc && (nl ? nl[1] != '\0' : false))
            rc = buf_puts(out, "\n");
        s += len + (nl ? 1 : 0);
    }
    return rc;
}

/* A JSON number (or true/false/null) as YAML 1.1 and 1.2 both read it: YAML 1.1 (PyYAML) takes an
 * exponent only after a '.' and with a sign, so "1e308" is written "1.0e+308". */
static int yaml_number(struct buf *out, const char *t)
{
    const char *e = (t[0] == '-' || (t[0] >= '0' && t[0] <= '9')) ? strpbrk(t, "eE") : NULL;
    int rc;

    if (!e)
        return buf_puts(out, t);
    rc = buf_append(out, t, (size_t)(e - t));
    if (!rc && !memchr(t, '.', (size_t)(e - t)))
        rc = buf_puts(out, ".0");
    if (!rc)
        rc = buf_puts(out, "e");
    if (!rc && e[1] != '+' && e[1] != '-')
        rc = buf_puts(out, "+");
    if (!rc)
        rc = buf_puts(out, e + 1);
    return rc;
}

/* A scalar, an empty collection, or a flow-free marker that a block follows. indent: where a
 * literal block's lines go (-1: never a block). */
static int yaml_scalar(struct buf *out, const cJSON *v, int indent)
{
    char *t;
    int rc;

    if (cJSON_IsString(v) && indent >= 0 && yaml_literal_ok(v->valuestring))
        return yaml_literal(out, v->valuestring, indent);
    if (cJSON_IsString(v))
        return yaml_plain(v->valuestring) ? buf_puts(out, v->valuestring)
                                          : yaml_quoted(out, v->valuestring);
    if (cJSON_IsObject(v))
        return buf_puts(out, "{}");
    if (cJSON_IsArray(v))
        return buf_puts(out, "[]");
    /* numbers, raw numbers, true, false, null: as JSON writes them */
    t = cJSON_PrintUnformatted(v);
    if (!t) {
        fputs("cdcache: out of memory (apidoc)\n", stderr);
        abort();
    }
    rc = yaml_number(out, t);
    cJSON_free(t);
    return rc;
}

static bool yaml_block(const cJSON *v)
{
    return (cJSON_IsObject(v) || cJSON_IsArray(v)) && v->child;
}

static int yaml_indent(struct buf *out, int n)
{
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = buf_puts(out, " ");
    return rc;
}

static int yaml_node(struct buf *out, const cJSON *v, int indent);

/* Members of an object; the first is written at the current position (after "- "), the others
 * indented. */
static int yaml_members(struct buf *out, const cJSON *v, int indent, bool first_inline)
{
    int rc = 0;
    for (const cJSON *m = v->child; m && !rc; m = m->next) {
        if (m != v->child || !first_inline)
            rc = yaml_indent(out, indent);
        if (!rc)
            rc = yaml_plain(m->string) ? buf_puts(out, m->string) : yaml_quoted(out, m->string);
        if (!rc && yaml_block(m)) {
            rc = buf_puts(out, ":\n");
            if (!rc)
                rc = yaml_node(out, m, cJSON_IsArray(m) ? indent : indent + 2);
        } else if (!rc) {
            rc = buf_puts(out, ": ");
            if (!rc)
                rc = yaml_scalar(out, m, indent + 2);
            if (!rc)
                rc = buf_puts(out, "\n");
        }
    }
    return rc;
}

/* A block collection at indent (its first line starts at the line's beginning). */
static int yaml_node(struct buf *out, const cJSON *v, int indent)
{
    int rc = 0;

    if (cJSON_IsObject(v))
        return yaml_members(out, v, indent, false);
    for (const cJSON *e = v->child; e && !rc; e = e->next) {
        rc = yaml_indent(out, indent);
        if (!rc)
            rc = buf_puts(out, "- ");
        if (rc)
            break;
        if (cJSON_IsObject(e) && e->child)
            rc = yaml_members(out, e, indent + 2, true);
        else if (cJSON_IsArray(e) && e->child) {
            rc = buf_puts(out, "\n");
            if (!rc)
                rc = yaml_node(out, e, indent + 2);
        } else {
            rc = yaml_scalar(out, e, -1);
            if (!rc)
                rc = buf_puts(out, "\n");
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ the document */

int apidoc_render(const struct resource_set *set, const char *base_json, size_t base_len,
                  struct buf *json, struct buf *yaml)
{
    struct ctx x;
    cJSON *doc = NULL, *paths, *newpaths = NULL, *comps, *p;
    char *text = NULL;
    size_t json_mark = json->len, yaml_mark = yaml->len;
    int rc = CDC_EINVAL;

    memset(&x, 0, sizeof(x));
    x.set = set;
    doc = cJSON_ParseWithLength(base_json, base_len);
    paths = doc ? cJSON_GetObjectItemCaseSensitive(doc, "paths") : NULL;
    comps = doc ? cJSON_GetObjectItemCaseSensitive(doc, "components") : NULL;
    if (!paths || !comps)
        goto out;
    x.tpl_collection = cJSON_DetachItemFromObjectCaseSensitive(paths, TEMPLATE_COLLECTION);
    x.tpl_row = cJSON_DetachItemFromObjectCaseSensitive(paths, TEMPLATE_ROW);
    x.schemas = cJSON_GetObjectItemCaseSensitive(comps, "schemas");
    x.parameters = cJSON_GetObjectItemCaseSensitive(comps, "parameters");
    x.headers = cJSON_GetObjectItemCaseSensitive(comps, "headers");
    if (!x.tpl_collection || !x.tpl_row || !x.schemas || !x.parameters || !x.headers)
        goto out;
    /* the template's path parameter (ItemId) is replaced by each resource's own */
    cJSON_DeleteItemFromObjectCaseSensitive(x.tpl_row, "parameters");
    {
        cJSON *pp = put(x.tpl_row, "parameters", arr()), *ref = obj();
        put_str(ref, "$ref", "#/components/parameters/ItemId");
        push(pp, ref);
    }
    for (size_t i = 0; i < sizeof(template_schemas) / sizeof(template_schemas[0]); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(x.schemas, template_schemas[i]);
    cJSON_DeleteItemFromObjectCaseSensitive(x.parameters, "ItemId");
    cJSON_DeleteItemFromObjectCaseSensitive(x.headers, "Location");

    x.names = xcalloc(set->n ? set->n : 1, sizeof(*x.names));
    for (size_t i = 0; i < set->n; i++) {
        const struct resource *r = &set->r[i];
        if (r->key < 0 || (size_t)r->key >= r->ncolumns)
            goto out;
        make_stem(set, i, x.names);
        snprintf(x.names[i].keyname, sizeof(x.names[i].keyname), "%s",
                 plain_name(r->columns[r->key].name) ? r->columns[r->key].name : "key");
    }

    /* the resources' paths go where the template was: after the fixed meta routes, in the
     * base's order otherwise (the base lists /items after /openapi.json) */
    newpaths = obj();
    {
        bool placed = false;
        cJSON *health = cJSON_GetObjectItemCaseSensitive(paths, "/health");
        for (p = paths->child; p; p = p->next) {
            if (!placed && p == health) {
                for (size_t i = 0; i < set->n; i++)
                    if ((rc = add_resource(&x, i, newpaths)))
                        goto out;
                placed = true;
            }
            put(newpaths, p->string, must(cJSON_Duplicate(p, true)));
        }
        if (!placed)
            for (size_t i = 0; i < set->n; i++)
                if ((rc = add_resource(&x, i, newpaths)))
                    goto out;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(doc, "paths", newpaths);
    newpaths = NULL;
    if (uses_ref(x.schemas, JSON_VALUE_REF))
        put(x.schemas, JSON_VALUE_NAME, json_value_schema());
    rebuild_tags(doc, set);
    rebuild_index(x.schemas, set);

    text = cJSON_PrintUnformatted(doc);
    if (!text) {
        fputs("cdcache: out of memory (apidoc)\n", stderr);
        abort();
    }
    rc = buf_puts(json, text);
    if (!rc)
        rc = buf_puts(json, "\n");
    if (!rc)
        rc = yaml_node(yaml, doc, 0);
out:
    if (rc) {
        json->len = json_mark;
        yaml->len = yaml_mark;
        if (json->data)
            json->data[json->len] = '\0';
        if (yaml->data)
            yaml->data[yaml->len] = '\0';
    }
    cJSON_free(text);
    cJSON_Delete(newpaths);
    cJSON_Delete(x.tpl_collection);
    cJSON_Delete(x.tpl_row);
    cJSON_Delete(doc);
    free(x.names);
    return rc;
}
