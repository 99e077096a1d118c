/* Resources: the tables a replica serves, as immutable descriptors (STYLE.md rule 19: data
 * describes, code interprets). The config declares them (config.h, `resources:`); catalog.c reads
 * each table's columns and types from PostgreSQL at start and after DDL, and builds a new
 * resource_set that replaces the old one atomically. `items` is the first descriptor of the shipped
 * config and nothing else.
 *
 * Ownership: a resource_set and everything in it is immutable once built and never freed while
 * the process serves (sets replaced by DDL are retired, not freed, until resource_set_free() at
 * exit), so a worker may keep a pointer for the length of a request without a reference count. */
#ifndef CDCACHE_RESOURCE_H
#define CDCACHE_RESOURCE_H

#include "cdcache/codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum resource_method {
    RESOURCE_GET = 1u << 0,
    RESOURCE_POST = 1u << 1,
    RESOURCE_PUT = 1u << 2,
    RESOURCE_PATCH = 1u << 3,
    RESOURCE_DELETE = 1u << 4,
    RESOURCE_ALL = 0x1f,
};

struct resource_column {
    char *name;   /* as in the catalog */
    char *quoted; /* a quoted identifier: "name" */
    char *member; /* the JSON member's head, `"name":` escaped once (NULL: row.c escapes it) */
    struct codec_type type;
    char *sql_type;   /* format_type(): a parameter's cast, e.g. numeric(12,2) or text[] */
    bool nullable;    /* no NOT NULL */
    bool has_default; /* a DEFAULT, an identity or a serial: POST may omit it */
    bool generated;   /* GENERATED ALWAYS (identity or stored): read-only */
    bool exposed;     /* in the representation */
    bool orderable;   /* the leading column of a btree index: order= may name it */
    bool serial;      /* filled from a sequence (serial, identity): only positive values */
    char **labels;    /* an enum's labels in order (of the element type for arrays), else NULL */
    size_t nlabels;
};

struct resource {
    unsigned index; /* position in the config: the cache's resource id, stable across reloads */
    char *name;     /* the route: /name and /name/{key} */
    char *schema;   /* as in the catalog */
    char *table;
    char *qualified;   /* "schema"."table", quoted */
    char *stream;      /* <topic prefix>.<schema>.<table>: Debezium's stream for the table */
    unsigned methods;  /* enum resource_method bits */
    char *read_tokens; /* NULL: the global auth.read_tokens; else this resource's list */
    char *write_tokens;
    size_t ncolumns; /* every column of the table, in attnum order */
    struct resource_column *columns;
    int key;     /* index into columns */
    int version; /* index into columns of the version column (declared, or cdcache_version) */
};

struct resource_set {
    size_t n;
    struct resource *r;  /* r[i].index == i */
    uint64_t generation; /* 1 for the first set, +1 per reload */
};

/* The resource whose route is name[0..len), or NULL. */
const struct resource *resource_find(const struct resource_set *set, const char *name, size_t len);
/* The resource whose stream is name[0..len), or NULL. */
const struct resource *resource_by_stream(const struct resource_set *set, const char *name,
                                          size_t len);
/* The column called name[0..len), or -1. */
int resource_column(const struct resource *r, const char *name, size_t len);
/* True when text[0..len) is one of an enum column's labels (always true for other columns, and
 * for an enum whose labels were not read). */
bool resource_label_ok(const struct resource_column *c, const char *text, size_t len);
/* Frees a set (NULL-safe). Only at exit, or for a set never published. */
void resource_set_free(struct resource_set *set);

#endif
