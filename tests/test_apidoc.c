/* apidoc: the served OpenAPI document generated from resource descriptors built by hand
 * (inventory.items from tests/fixtures.c; shop.customers and shop.orders as catalog.c reads
 * tests/schemas/shop.sql), over the embedded openapi.yaml as the base.
 *
 * With APIDOC_DUMP_DIR set, the test "dump" writes the documents of two sets (items alone, and
 * items + customers + orders) there as JSON and YAML: tests/integration/test_openapi.py lints them
 * with Redocly and serves them to Schemathesis. */
#include "cdcache/apidoc.h"
#include "cdcache/error.h"
#include "cdcache/openapi.h"
#include "cdcache/resource.h"
#include "fixtures.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void col(struct resource_column *c, const char *name, enum codec_kind kind, bool array,
                int32_t typmod, const char *sql_type, bool nullable, bool has_default)
{
    char q[128];
    snprintf(q, sizeof(q), "\"%s\"", name);
    memset(c, 0, sizeof(*c));
    c->name = xstrdup(name);
    c->quoted = xstrdup(q);
    c->type.kind = kind;
    c->type.array = array;
    c->type.typmod = typmod;
    c->sql_type = xstrdup(sql_type);
    c->nullable = nullable;
    c->has_default = has_default;
    c->exposed = true;
}

#define NUMERIC_TYPMOD(p, s) ((((p) << 16) | (s)) + 4)

static void shell(struct resource *r, unsigned index, const char *name, const char *schema,
                  const char *table, size_t ncolumns)
{
    char q[256], st[256];
    memset(r, 0, sizeof(*r));
    snprintf(q, sizeof(q), "\"%s\".\"%s\"", schema, table);
    snprintf(st, sizeof(st), "cdcache.%s.%s", schema, table);
    r->index = index;
    r->name = xstrdup(name);
    r->schema = xstrdup(schema);
    r->table = xstrdup(table);
    r->qualified = xstrdup(q);
    r->stream = xstrdup(st);
    r->methods = RESOURCE_ALL;
    r->ncolumns = ncolumns;
    r->columns = xcalloc(ncolumns, sizeof(*r->columns));
}

/* shop.customers (tests/schemas/shop.sql), with the version column cdcache installs, hidden. */
static void customers(struct resource *r, unsigned index)
{
    struct resource_column *c;
    shell(r, index, "customers", "shop", "customers", 14);
    c = r->columns;
    col(&c[0], "id", CODEC_UUID, false, -1, "uuid", false, true);
    col(&c[1], "email", CODEC_TEXT, false, -1, "text", false, false);
    col(&c[2], "name", CODEC_TEXT, false, 204, "character varying(200)", false, false);
    col(&c[3], "active", CODEC_BOOL, false, -1, "boolean", false, true);
    col(&c[4], "tags", CODEC_TEXT, true, -1, "text[]", false, true);
    col(&c[5], "profile", CODEC_JSON, false, -1, "jsonb", true, false);
    col(&c[6], "balance", CODEC_NUMERIC, false, NUMERIC_TYPMOD(12, 2), "numeric(12,2)", false,
        true);
    col(&c[7], "notes", CODEC_TEXT, false, -1, "text", true, false);
    col(&c[8], "tier", CODEC_ENUM, false, -1, "shop.tier", false, true);
    col(&c[9], "score", CODEC_FLOAT8, false, -1, "double precision", true, false);
    col(&c[10], "born", CODEC_DATE, false, -1, "date", true, false);
    col(&c[11], "avatar", CODEC_BYTEA, false, -1, "bytea", true, false);
    col(&c[12], "created_at", CODEC_TIMESTAMPTZ, false, -1, "timestamp with time zone", false,
        true);
    col(&c[13], "cdcache_version", CODEC_INT8, false, -1, "bigint", false, true);
    c[13].exposed = false;
    c[0].orderable = true;
    c[1].orderable = true; /* its UNIQUE index */
    r->key = 0;
    r->version = 13;
}

/* shop.orders: a GENERATED ALWAYS identity key. */
static void orders(struct resource *r, unsigned index)
{
    struct resource_column *c;
    shell(r, index, "orders", "shop", "orders", 7);
    c = r->columns;
    col(&c[0], "id", CODEC_INT8, false, -1, "bigint", false, true);
    c[0].generated = true;
    col(&c[1], "customer_id", CODEC_UUID, false, -1, "uuid", false, false);
    col(&c[2], "total", CODEC_NUMERIC, false, NUMERIC_TYPMOD(12, 2), "numeric(12,2)", false, false);
    col(&c[3], "quantity", CODEC_INT4, false, -1, "integer", false, true);
    col(&c[4], "status", CODEC_TEXT, false, -1, "text", false, true);
    col(&c[5], "placed_at", CODEC_TIMESTAMPTZ, false, -1, "timestamp with time zone", false, true);
    col(&c[6], "cdcache_version", CODEC_INT8, false, -1, "bigint", false, true);
    c[6].exposed = false;
    c[0].orderable = c[1].orderable = c[5].orderable = true;
    r->key = 0;
    r->version = 6;
}

/* A set: items, then (shop) customers and orders. Release with resource_set_free(). */
static struct resource_set *make_set(bool shop)
{
    struct resource_set *set = xcalloc(1, sizeof(*set));
    struct resource *items = fixtures_items_resource(0);

    set->n = shop ? 3 : 1;
    set->r = xcalloc(set->n, sizeof(*set->r));
    set->r[0] = *items; /* takes the strings over */
    free(items);
    if (shop) {
        customers(&set->r[1], 1);
        orders(&set->r[2], 2);
    }
    set->generation = 1;
    return set;
}

struct doc {
    struct buf json, yaml;
    cJSON *root;
};

static void render(const struct resource_set *set, struct doc *d)
{
    buf_init(&d->json, 1u << 24);
    buf_init(&d->yaml, 1u << 24);
    cr_assert_eq(apidoc_render(set, openapi_json, openapi_json_len, &d->json, &d->yaml), 0);
    d->root = cJSON_ParseWithLength(d->json.data, d->json.len);
    cr_assert_not_null(d->root, "the document is JSON");
    cr_assert_gt(d->yaml.len, 1000);
}

static void doc_free(struct doc *d)
{
    cJSON_Delete(d->root);
    buf_free(&d->json);
    buf_free(&d->yaml);
}

/* The node at a '|'-separated path of member names ("paths|/items|get"). */
static cJSON *at(cJSON *n, const char *path)
{
    char *copy = xstrdup(path), *save = NULL;
    for (char *k = strtok_r(copy, "|", &save); k && n; k = strtok_r(NULL, "|", &save))
        n = cJSON_GetObjectItemCaseSensitive(n, k);
    free(copy);
    return n;
}

static const char *str_at(cJSON *n, const char *path)
{
    cJSON *v = at(n, path);
    cr_assert(cJSON_IsString(v), "%s is a string", path);
    return v->valuestring;
}

/* A node as JSON text (raw numbers as written), into a static buffer. */
static const char *text_of(cJSON *n)
{
    static char out[256];
    char *t = cJSON_PrintUnformatted(n);
    cr_assert_not_null(t);
    snprintf(out, sizeof(out), "%s", t);
    cJSON_free(t);
    return out;
}

static bool array_has(cJSON *a, const char *s)
{
    cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0)
            return true;
    }
    return false;
}

static bool type_has(cJSON *schema, const char *t)
{
    cJSON *ty = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (cJSON_IsString(ty))
        return strcmp(ty->valuestring, t) == 0;
    return array_has(ty, t);
}

static cJSON *schema(struct doc *d, const char *name)
{
    cJSON *s = at(at(d->root, "components|schemas"), name);
    cr_assert_not_null(s, "schema %s exists", name);
    return s;
}

Test(apidoc, every_resource_gets_its_paths_with_its_methods)
{
    struct resource_set *set = make_set(true);
    struct doc d;
    const char *coll_ops[] = {"get", "post", "put"}, *row_ops[] = {"get", "put", "patch", "delete"};

    render(set, &d);
    for (size_t i = 0; i < set->n; i++) {
        char p[64], rp[64];
        snprintf(p, sizeof(p), "/%s", set->r[i].name);
        snprintf(rp, sizeof(rp), "/%s/{id}", set->r[i].name);
        for (size_t k = 0; k < 3; k++)
            cr_assert_not_null(at(at(d.root, "paths"), p)
                                   ? cJSON_GetObjectItem(at(at(d.root, "paths"), p), coll_ops[k])
                                   : NULL,
                               "%s %s", coll_ops[k], p);
        for (size_t k = 0; k < 4; k++)
            cr_assert_not_null(cJSON_GetObjectItem(at(at(d.root, "paths"), rp), row_ops[k]),
                               "%s %s", row_ops[k], rp);
    }
    /* the fixed routes stay; the template's own components are gone */
    cr_assert_not_null(at(d.root, "paths|/health|get"));
    cr_assert_not_null(at(d.root, "paths|/openapi.json|get"));
    cr_assert_null(at(d.root, "components|schemas|ItemCreate"));
    cr_assert_null(at(d.root, "components|parameters|ItemId"));
    cr_assert_null(strstr(d.json.data, "#/components/schemas/Item\""));
    /* operations are named per resource and tagged with it */
    cr_assert_str_eq(str_at(d.root, "paths|/customers/{id}|get|operationId"), "getCustomers");
    cr_assert_str_eq(str_at(d.root, "paths|/items|get|operationId"), "listItems");
    cr_assert(array_has(at(d.root, "paths|/orders|post|tags"), "orders"));
    cr_assert_str_eq(str_at(d.root, "paths|/customers|post|requestBody|content|application/json|"
                                    "schema|$ref"),
                     "#/components/schemas/CustomersCreate");
    cr_assert_str_eq(str_at(d.root, "paths|/orders/{id}|get|responses|200|content|"
                                    "application/json|schema|$ref"),
                     "#/components/schemas/OrdersRow");
    /* GET / lists every resource */
    cr_assert(
        array_has(at(d.root, "components|schemas|Index|properties|links|required"), "customers"));
    cr_assert_str_eq(str_at(d.root, "components|schemas|Index|properties|links|properties|orders|"
                                    "const"),
                     "/orders");
    doc_free(&d);
    resource_set_free(set);
}

Test(apidoc, methods_limit_operations_and_components)
{
    struct resource_set *set = make_set(true);
    struct doc d;

    set->r[1].methods = RESOURCE_GET;                 /* customers: read-only */
    set->r[2].methods = RESOURCE_GET | RESOURCE_POST; /* orders: no updates or deletes */
    render(set, &d);
    cr_assert_null(at(d.root, "components|schemas|JsonValue"), "no body takes json");
    cr_assert_not_null(at(d.root, "paths|/customers|get"));
    cr_assert_null(at(d.root, "paths|/customers|post"));
    cr_assert_null(at(d.root, "paths|/customers|put"));
    cr_assert_not_null(at(d.root, "paths|/customers/{id}|get"));
    cr_assert_null(at(d.root, "paths|/customers/{id}|put"));
    cr_assert_null(at(d.root, "paths|/customers/{id}|patch"));
    cr_assert_null(at(d.root, "paths|/customers/{id}|delete"));
    cr_assert_null(at(d.root, "components|schemas|CustomersCreate"));
    cr_assert_null(at(d.root, "components|schemas|CustomersPatch"));
    cr_assert_not_null(at(d.root, "components|schemas|CustomersRow"));
    cr_assert_not_null(at(d.root, "paths|/orders|post"));
    cr_assert_null(at(d.root, "paths|/orders|put"));
    cr_assert_null(at(d.root, "paths|/orders/{id}|delete"));
    cr_assert_null(at(d.root, "components|schemas|OrdersUpsert"));
    doc_free(&d);

    /* a resource with no GET has no list, no page and no row path when only POST is open */
    set->r[2].methods = RESOURCE_POST;
    render(set, &d);
    cr_assert_null(at(d.root, "paths|/orders|get"));
    cr_assert_null(at(d.root, "paths|/orders/{id}"));
    cr_assert_null(at(d.root, "components|parameters|OrdersKey"));
    cr_assert_null(at(d.root, "components|schemas|OrdersPage"));
    cr_assert_not_null(at(d.root, "components|schemas|OrdersRow"), "POST answers the row");
    doc_free(&d);
    resource_set_free(set);
}

Test(apidoc, key_parameters_follow_the_key_column)
{
    struct resource_set *set = make_set(true);
    struct doc d;
    cJSON *k;

    render(set, &d);
    k = at(d.root, "components|parameters|CustomersKey");
    cr_assert_str_eq(str_at(k, "name"), "id");
    cr_assert_str_eq(str_at(k, "in"), "path");
    cr_assert_str_eq(str_at(k, "schema|format"), "uuid");
    k = at(d.root, "components|parameters|ItemsKey|schema");
    cr_assert(type_has(k, "integer"));
    /* exact in the text (a double cannot hold them; the parser here reads doubles) */
    cr_assert_not_null(strstr(d.json.data, "\"ItemsKey\":{\"name\":\"id\",\"in\":\"path\""));
    cr_assert_not_null(strstr(d.json.data, "\"format\":\"int64\",\"minimum\":-9223372036854775808,"
                                           "\"maximum\":9223372036854775807}"));
    /* the list's after takes a key */
    {
        cJSON *p, *ps = at(d.root, "paths|/customers|get|parameters");
        bool after = false, order = false, filter = false;
        cJSON_ArrayForEach(p, ps)
        {
            cJSON *n = cJSON_GetObjectItem(p, "name");
            if (!cJSON_IsString(n))
                continue;
            if (strcmp(n->valuestring, "after") == 0)
                after = strcmp(str_at(p, "schema|format"), "uuid") == 0;
            if (strcmp(n->valuestring, "order") == 0)
                order = array_has(at(p, "schema|enum"), "email.desc") &&
                        !array_has(at(p, "schema|enum"), "name.asc");
            if (strcmp(n->valuestring, "balance") == 0)
                filter = strstr(str_at(p, "schema|pattern"), "gte") != NULL;
        }
        cr_assert(after && order && filter);
    }
    doc_free(&d);
    resource_set_free(set);
}

Test(apidoc, row_schemas_are_exactly_the_exposed_columns)
{
    struct resource_set *set = make_set(true);
    struct doc d;
    cJSON *row, *p;

    render(set, &d);
    row = schema(&d, "CustomersRow");
    cr_assert(cJSON_IsFalse(at(row, "additionalProperties")));
    cr_assert_eq(cJSON_GetArraySize(at(row, "required")), 13);
    cr_assert_eq(cJSON_GetArraySize(at(row, "properties")), 13);
    cr_assert_null(at(row, "properties|cdcache_version"), "the hidden version is not a member");
    p = at(row, "properties");
    cr_assert_str_eq(str_at(p, "id|format"), "uuid");
    cr_assert(type_has(at(p, "tags"), "array"));
    cr_assert_not_null(at(p, "tags|items|anyOf"), "elements, null or nested arrays");
    cr_assert_null(at(p, "profile|type"), "jsonb is any value");
    cr_assert(type_has(at(p, "notes"), "null") && type_has(at(p, "notes"), "string"));
    cr_assert(!type_has(at(p, "email"), "null"));
    cr_assert_eq(at(p, "name|maxLength")->valueint, 200);
    cr_assert_str_eq(str_at(p, "avatar|contentEncoding"), "base64");
    cr_assert(type_has(at(p, "active"), "boolean"));
    {
        cJSON *num = cJSON_GetArrayItem(at(p, "balance|oneOf"), 0);
        cJSON *nan = cJSON_GetArrayItem(at(p, "balance|oneOf"), 1);
        cr_assert(type_has(num, "number"));
        cr_assert_str_eq(text_of(at(num, "maximum")), "9999999999.99");
        cr_assert_str_eq(text_of(at(num, "minimum")), "-9999999999.99");
        cr_assert(array_has(at(nan, "enum"), "NaN"));
        cr_assert(!array_has(at(nan, "enum"), "Infinity"), "numeric(p,s) holds no infinity");
    }
    /* nullable composites admit null */
    cr_assert_not_null(at(p, "score|anyOf"));
    cr_assert(type_has(cJSON_GetArrayItem(at(p, "score|anyOf"), 1), "null"));
    cr_assert(type_has(at(p, "born"), "null"));
    /* items: today's seven fields, version read-only */
    row = schema(&d, "ItemsRow");
    cr_assert_eq(cJSON_GetArraySize(at(row, "required")), 7);
    cr_assert(cJSON_IsTrue(at(row, "properties|version|readOnly")));
    cr_assert_str_eq(
        str_at(cJSON_GetArrayItem(at(row, "properties|created_at|anyOf"), 0), "format"),
        "date-time");
    doc_free(&d);
    resource_set_free(set);
}

Test(apidoc, request_bodies_follow_the_write_rules)
{
    struct resource_set *set = make_set(true);
    struct doc d;
    cJSON *s;

    render(set, &d);
    /* customers: POST requires the NOT NULL columns without a default */
    s = schema(&d, "CustomersCreate");
    cr_assert_eq(cJSON_GetArraySize(at(s, "required")), 2);
    cr_assert(array_has(at(s, "required"), "email") && array_has(at(s, "required"), "name"));
    cr_assert_not_null(at(s, "properties|id"), "a uuid key with a default may be given");
    cr_assert_null(at(s, "properties|cdcache_version"));
    cr_assert(cJSON_IsFalse(at(s, "additionalProperties")));
    /* numeric in a body: a number with its bounds and scale, or a decimal string */
    {
        cJSON *num = cJSON_GetArrayItem(at(s, "properties|balance|oneOf"), 0);
        cJSON *str = cJSON_GetArrayItem(at(s, "properties|balance|oneOf"), 1);
        cr_assert_str_eq(text_of(at(num, "multipleOf")), "0.01");
        cr_assert_str_eq(text_of(at(num, "maximum")), "9999999999.99");
        cr_assert_str_eq(str_at(str, "pattern"), "^(-?0*[0-9]{1,10}(\\.[0-9]{1,2})?)$");
    }
    cr_assert_eq(at(s, "properties|name|maxLength")->valueint, 200);
    cr_assert(type_has(at(s, "properties|tags"), "array"));
    /* jsonb: any JSON without NUL (a component, present only when a body uses it); nullable */
    cr_assert_str_eq(str_at(cJSON_GetArrayItem(at(s, "properties|profile|anyOf"), 0), "$ref"),
                     "#/components/schemas/JsonValue");
    cr_assert_not_null(at(d.root, "components|schemas|JsonValue|anyOf"));
    /* floats: NaN and the infinities as strings, numbers within the type's range */
    {
        cJSON *nn = cJSON_GetArrayItem(at(s, "properties|score|anyOf"), 0);
        cJSON *num = cJSON_GetArrayItem(at(nn, "oneOf"), 0);
        cr_assert(type_has(num, "number"));
        cr_assert_not_null(at(num, "maximum"));
        cr_assert_not_null(strstr(d.json.data, "\"maximum\":1.7976931348623157e+308}"));
        cr_assert(array_has(at(cJSON_GetArrayItem(at(nn, "oneOf"), 1), "enum"), "-Infinity"));
    }
    /* replace: the key is the path's; the same required set */
    s = schema(&d, "CustomersReplace");
    cr_assert_null(at(s, "properties|id"));
    cr_assert_eq(cJSON_GetArraySize(at(s, "required")), 2);
    /* patch: at least one column */
    s = schema(&d, "CustomersPatch");
    cr_assert_eq(at(s, "minProperties")->valueint, 1);
    cr_assert_eq(cJSON_GetArraySize(at(s, "anyOf")), 12);
    cr_assert_null(at(s, "required"));
    /* orders: the GENERATED ALWAYS key is read-only everywhere */
    cr_assert_null(at(schema(&d, "OrdersCreate"), "properties|id"));
    cr_assert_null(at(schema(&d, "OrdersUpsert"), "properties|id"));
    cr_assert_null(at(schema(&d, "OrdersReplace"), "properties|id"));
    cr_assert(array_has(at(schema(&d, "OrdersCreate"), "required"), "total"));
    cr_assert(cJSON_IsTrue(at(schema(&d, "OrdersRow"), "properties|id|readOnly")));
    /* items: the version is read-only; the upsert's key is a number or its digits */
    cr_assert_null(at(schema(&d, "ItemsCreate"), "properties|version"));
    cr_assert_null(at(schema(&d, "ItemsPatch"), "properties|version"));
    s = at(schema(&d, "ItemsUpsert"), "properties|id|oneOf");
    cr_assert_eq(cJSON_GetArraySize(s), 2);
    cr_assert(type_has(cJSON_GetArrayItem(s, 1), "string"));
    cr_assert_eq(cJSON_GetArraySize(at(schema(&d, "ItemsCreate"), "required")), 3);
    doc_free(&d);
    resource_set_free(set);
}

Test(apidoc, output_is_deterministic_and_ids_unique)
{
    struct resource_set *set = make_set(true);
    struct doc a, b;
    cJSON *path, *op;
    char *seen[64];
    size_t nseen = 0;

    render(set, &a);
    render(set, &b);
    cr_assert_eq(a.json.len, b.json.len);
    cr_assert_eq(memcmp(a.json.data, b.json.data, a.json.len), 0);
    cr_assert_eq(a.yaml.len, b.yaml.len);
    cr_assert_eq(memcmp(a.yaml.data, b.yaml.data, a.yaml.len), 0);
    cJSON_ArrayForEach(path, at(a.root, "paths"))
    {
        cJSON_ArrayForEach(op, path)
        {
            cJSON *id = cJSON_GetObjectItem(op, "operationId");
            if (!cJSON_IsString(id))
                continue;
            for (size_t i = 0; i < nseen; i++)
                cr_assert_str_neq(seen[i], id->valuestring);
            cr_assert_lt(nseen, 64);
            seen[nseen++] = id->valuestring;
        }
    }
    cr_assert_eq(nseen, 3 + 3 * 7 + 3);
    /* YAML: keys that YAML 1.1 would misread are quoted; strings are double-quoted */
    cr_assert_not_null(strstr(a.yaml.data, "\n        \"200\":\n"));
    cr_assert_not_null(strstr(a.yaml.data, "openapi: 3.1.0\n"));
    /* numbers with an exponent as YAML 1.1 reads them too (a '.' and a signed exponent) */
    cr_assert_not_null(strstr(a.yaml.data, "maximum: 1.7976931348623157e+308\n"));
    cr_assert_not_null(strstr(a.yaml.data, "required: true\n"));
    doc_free(&a);
    doc_free(&b);
    resource_set_free(set);
}

Test(apidoc, refuses_a_base_without_templates_and_leaves_buffers_alone)
{
    struct resource_set *set = make_set(false);
    struct buf j, y;
    const char *bad = "{\"openapi\":\"3.1.0\",\"paths\":{},\"components\":{}}";

    buf_init(&j, 1024);
    buf_init(&y, 1024);
    buf_puts(&j, "x");
    cr_assert_eq(apidoc_render(set, bad, strlen(bad), &j, &y), CDC_EINVAL);
    cr_assert_eq(apidoc_render(set, "{", 1, &j, &y), CDC_EINVAL);
    cr_assert_eq(j.len, 1);
    cr_assert_eq(y.len, 0);
    /* a cap too small: CDC_ETOOBIG, nothing appended */
    cr_assert_eq(apidoc_render(set, openapi_json, openapi_json_len, &j, &y), CDC_ETOOBIG);
    cr_assert_eq(j.len, 1);
    cr_assert_str_eq(j.data, "x");
    buf_free(&j);
    buf_free(&y);
    resource_set_free(set);
}

/* Writes the documents for the integration test's Redocly lint and Schemathesis run. */
Test(apidoc, dump)
{
    const char *dir = getenv("APIDOC_DUMP_DIR");
    const char *names[] = {"items", "shop"};

    if (!dir)
        return;
    for (int k = 0; k < 2; k++) {
        struct resource_set *set = make_set(k == 1);
        struct doc d;
        char path[1024];
        FILE *f;

        render(set, &d);
        snprintf(path, sizeof(path), "%s/openapi-%s.json", dir, names[k]);
        f = fopen(path, "wb");
        cr_assert_not_null(f, "%s", path);
        cr_assert_eq(fwrite(d.json.data, 1, d.json.len, f), d.json.len);
        fclose(f);
        snprintf(path, sizeof(path), "%s/openapi-%s.yaml", dir, names[k]);
        f = fopen(path, "wb");
        cr_assert_not_null(f, "%s", path);
        cr_assert_eq(fwrite(d.yaml.data, 1, d.yaml.len, f), d.yaml.len);
        fclose(f);
        doc_free(&d);
        resource_set_free(set);
    }
}

Test(apidoc, names_that_are_not_identifiers)
{
    struct resource_set *set = make_set(true);
    struct doc d;

    /* a route with a hyphen and a key column that cannot be a path template's name */
    free(set->r[2].name);
    set->r[2].name = xstrdup("order-lines");
    free(set->r[2].columns[0].name);
    set->r[2].columns[0].name = xstrdup("Order ID");
    render(set, &d);
    cr_assert_not_null(at(d.root, "paths|/order-lines|get"));
    cr_assert_not_null(at(d.root, "paths|/order-lines/{key}|get"));
    cr_assert_str_eq(str_at(d.root, "paths|/order-lines|get|operationId"), "listOrderLines");
    cr_assert_str_eq(str_at(d.root, "components|parameters|OrderLinesKey|name"), "key");
    cr_assert_not_null(at(d.root, "components|schemas|OrderLinesRow|properties|Order ID"));
    cr_assert_str_eq(str_at(d.root, "components|headers|OrderLinesLocation|schema|pattern"),
                     "^/order-lines/[^/]+$");
    /* the YAML quotes what is not a plain key */
    cr_assert_not_null(strstr(d.yaml.data, "\n        \"Order ID\":\n"));
    doc_free(&d);
    resource_set_free(set);
}
