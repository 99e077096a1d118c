/* The catalog: builds the resource descriptors (resource.h) from the config's `resources:` and
 * PostgreSQL's catalog (columns, types, keys, btree indexes, publication membership), and holds
 * the current set. A reload (DDL on a declared table) builds a whole new set and publishes it with
 * one atomic store; old sets are retired, not freed, until catalog_destroy(), so a request that
 * loaded the pointer may use it to the end.
 *
 * Threads: catalog_current() is lock-free from any thread; loads and reloads serialise on the
 * catalog's mutex and use the db pool. */
#ifndef CDCACHE_CATALOG_H
#define CDCACHE_CATALOG_H

#include "cdcache/config.h"
#include "cdcache/resource.h"

#include <stdbool.h>
#include <stddef.h>

struct catalog;
struct db;

/* Returns a new catalog holding no set yet; cfg and db are borrowed and must outlive it. */
struct catalog *catalog_create(const struct config *cfg, struct db *db);
/* Frees the catalog and every set it published (after every thread that read one has stopped). */
void catalog_destroy(struct catalog *cat);

/* Builds the set from the database and publishes it. check_publication: refuse a table missing
 * from cdc.publication (a replica that serves from its cache must never serve an unwatched table).
 * Returns 0, CDC_ECONFIG with a message naming the resource in err (a missing table, key or column,
 * a composite key, no version column), or CDC_EDB (PostgreSQL unreachable). On failure the current
 * set stays as it was. */
int catalog_load(struct catalog *cat, bool check_publication, char *err, size_t errlen);

/* Publishes set (taking ownership) as if it had been loaded: for tests and fuzzers that serve a
 * descriptor built by hand, without a database. */
void catalog_install(struct catalog *cat, struct resource_set *set);

/* The current set (NULL before the first successful load). Borrowed: valid until
 * catalog_destroy(). */
const struct resource_set *catalog_current(const struct catalog *cat);

/* The resource whose table is schema.table (unquoted, as a DDL signal names it), or NULL. */
const struct resource *catalog_by_table(const struct resource_set *set, const char *qualified,
                                        size_t len);

#endif
