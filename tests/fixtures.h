/* Loading of the events and rows recorded from the real pipeline (scripts/record-fixtures.py). */
#ifndef CDCACHE_TEST_FIXTURES_H
#define CDCACHE_TEST_FIXTURES_H

#include "cdcache/debezium.h"

#include <stddef.h>

struct fixture_entry {
    char id[32];
    size_t nfields;
    struct dbz_field fields[4]; /* name/value strings owned by the fixture set */
};

/* Loads tests/fixtures/<name>; returns the entries (count in *n). Release with fixtures_free(). */
struct fixture_entry *fixtures_load_events(const char *name, size_t *n);
void fixtures_free(struct fixture_entry *e, size_t n);
/* Reads a whole fixture file; returns a new NUL-terminated string (free()). */
char *fixtures_read(const char *name);

/* The descriptor catalog.c builds for inventory.items (migrations/000001), by hand, as resource
 * `index`: for tests that need a resource without a database. Release with
 * fixtures_resource_free(). */
struct resource *fixtures_items_resource(unsigned index);
void fixtures_resource_free(struct resource *r);
/* A set of the one resource r (taken: r is freed, its contents moved), release with
 * resource_set_free() (or hand it to catalog_install()). */
struct resource_set *fixtures_resource_set(struct resource *r);

#endif
