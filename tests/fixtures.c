#include "fixtures.h"
#include "cdcache/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fixtures_read(const char *name)
{
    char path[1024];
    FILE *f;
    struct buf b;
    char chunk[4096];
    size_t k;

    snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, name);
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        abort();
    }
    buf_init(&b, 64u << 20);
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, k);
    fclose(f);
    return buf_steal(&b, NULL);
}

struct fixture_entry *fixtures_load_events(const char *name, size_t *n)
{
    char *text = fixtures_read(name);
    char *save = NULL;
    struct fixture_entry *out = NULL;
    size_t count = 0;

    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        cJSON *fields = cJSON_GetObjectItem(j, "fields");
        struct fixture_entry *e;
        int nf = cJSON_GetArraySize(fields);

        out = xrealloc(out, (count + 1) * sizeof(*out));
        e = &out[count++];
        memset(e, 0, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", cJSON_GetObjectItem(j, "id")->valuestring);
        for (int i = 0; i + 1 < nf && e->nfields < 4; i += 2) {
            const char *k = cJSON_GetArrayItem(fields, i)->valuestring;
            const char *v = cJSON_GetArrayItem(fields, i + 1)->valuestring;
            e->fields[e->nfields].name = xstrdup(k);
            e->fields[e->nfields].name_len = strlen(k);
            e->fields[e->nfields].value = xstrdup(v);
            e->fields[e->nfields].value_len = strlen(v);
            e->nfields++;
        }
        cJSON_Delete(j);
    }
    free(text);
    *n = count;
    return out;
}

void fixtures_free(struct fixture_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < e[i].nfields; k++) {
            free((char *)e[i].fields[k].name);
            free((char *)e[i].fields[k].value);
        }
    free(e);
}

static void column(struct resource_column *c, const char *name, enum codec_kind kind,
                   int32_t typmod, const char *sql_type, bool has_default)
{
    char q[128];
    snprintf(q, sizeof(q), "\"%s\"", name);
    c->name = xstrdup(name);
    c->quoted = xstrdup(q);
    snprintf(q, sizeof(q), "\"%s\":", name); /* the test columns' names need no escaping */
    c->member = xstrdup(q);
    c->type.kind = kind;
    c->type.typmod = typmod;
    c->sql_type = xstrdup(sql_type);
    c->has_default = has_default;
    c->exposed = true;
}

struct resource *fixtures_items_resource(unsigned index)
{
    struct resource *r = xcalloc(1, sizeof(*r));
    r->index = index;
    r->name = xstrdup("items");
    r->schema = xstrdup("inventory");
    r->table = xstrdup("items");
    r->qualified = xstrdup("\"inventory\".\"items\"");
    r->stream = xstrdup("cdcache.inventory.items");
    r->methods = RESOURCE_ALL;
    r->ncolumns = 7;
    r->columns = xcalloc(7, sizeof(*r->columns));
    column(&r->columns[0], "id", CODEC_INT8, -1, "bigint", true);
    column(&r->columns[1], "name", CODEC_TEXT, -1, "text", false);
    column(&r->columns[2], "description", CODEC_TEXT, -1, "text", false);
    column(&r->columns[3], "price", CODEC_NUMERIC, ((10 << 16) | 2) + 4, "numeric(10,2)", false);
    column(&r->columns[4], "created_at", CODEC_TIMESTAMPTZ, -1, "timestamp with time zone", true);
    column(&r->columns[5], "updated_at", CODEC_TIMESTAMPTZ, -1, "timestamp with time zone", true);
    column(&r->columns[6], "version", CODEC_INT8, -1, "bigint", true);
    r->columns[0].orderable = true;
    r->columns[0].serial = true;
    r->key = 0;
    r->version = 6;
    return r;
}

void fixtures_resource_free(struct resource *r)
{
    if (r) /* one way to free a descriptor: resource.c's */
        resource_set_free(fixtures_resource_set(r));
}

struct resource_set *fixtures_resource_set(struct resource *r)
{
    struct resource_set *set = xcalloc(1, sizeof(*set));
    set->n = 1;
    set->r = xcalloc(1, sizeof(*set->r));
    set->r[0] = *r;
    set->r[0].index = 0;
    free(r);
    return set;
}
