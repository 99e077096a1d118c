/* Resource descriptors: lookups over an immutable set (resource.h). A set holds a handful of
 * resources, so lookups are linear scans over short names; nothing here locks. */
#include "cdcache/resource.h"

#include <stdlib.h>
#include <string.h>

const struct resource *resource_find(const struct resource_set *set, const char *name, size_t len)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (strlen(set->r[i].name) == len && memcmp(set->r[i].name, name, len) == 0)
            return &set->r[i];
    return NULL;
}

const struct resource *resource_by_stream(const struct resource_set *set, const char *name,
                                          size_t len)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (strlen(set->r[i].stream) == len && memcmp(set->r[i].stream, name, len) == 0)
            return &set->r[i];
    return NULL;
}

int resource_column(const struct resource *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->ncolumns; i++)
        if (strlen(r->columns[i].name) == len && memcmp(r->columns[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

bool resource_label_ok(const struct resource_column *c, const char *text, size_t len)
{
    if (!c->labels)
        return true;
    for (size_t i = 0; i < c->nlabels; i++)
        if (strlen(c->labels[i]) == len && memcmp(c->labels[i], text, len) == 0)
            return true;
    return false;
}

static void resource_clear(struct resource *r)
{
    for (size_t i = 0; i < r->ncolumns; i++) {
        for (size_t k = 0; k < r->columns[i].nlabels; k++)
            free(r->columns[i].labels[k]);
        free(r->columns[i].labels);
        free(r->columns[i].name);
        free(r->columns[i].quoted);
        free(r->columns[i].member);
        free(r->columns[i].sql_type);
    }
    free(r->columns);
    free(r->name);
    free(r->schema);
    free(r->table);
    free(r->qualified);
    free(r->stream);
    free(r->read_tokens);
    free(r->write_tokens);
}

void resource_set_free(struct resource_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        resource_clear(&set->r[i]);
    free(set->r);
    free(set);
}
