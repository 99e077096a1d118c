/* SQL on a resource's table, generated from its descriptor: identifiers always quoted from the
 * catalog, values always parameters cast to the column's type. Each function renders what it reads
 * through row.h, so a row's JSON is the same as from a change event.
 *
 * Returns (every function): 0; CDC_ENOTFOUND (no row with that key); CDC_ECONFLICT (the row exists
 * at another version than if_match); CDC_EINVAL (PostgreSQL refused a value: a constraint, a range;
 * err says why and field names the column when PostgreSQL does); CDC_EDUPLICATE (the key or a
 * unique column is taken); CDC_ESCHEMA (the table no longer has the descriptor's columns: reload
 * the catalog, then retry once); CDC_EDB (unreachable, timed out, anything else).
 *
 * Threads: any; statements run on the db pool (db.h). */
#ifndef CDCACHE_SQL_H
#define CDCACHE_SQL_H

#include "cdcache/resource.h"
#include "cdcache/row.h"
#include "cdcache/util.h"

#include <stdbool.h>
#include <stdint.h>

struct db;
struct filter;

/* An answer's diagnostics, filled on CDC_EINVAL / CDC_EDUPLICATE. */
struct sql_error {
    char detail[256];
    char field[128];
};

/* Reads the row whose key's canonical text is key; appends its JSON to out. */
int sql_get(struct db *db, const struct resource *r, const char *key, struct buf *out,
            int64_t *version);
/* Reads the rows whose keys' canonical texts are keys[0..n) in one statement (`WHERE key =
 * ANY($1)`, the warm-up's batches) and calls fn(arg, key, body, len, version) for each row found,
 * in no particular order: key is the row's canonical key, body its JSON; both borrowed for the
 * call. Keys not found are simply not reported. */
int sql_get_many(struct db *db, const struct resource *r, const char *const *keys, size_t n,
                 void (*fn)(void *arg, const char *key, const char *body, size_t len,
                            int64_t version),
                 void *arg);
/* Inserts; appends the new row's JSON to out and writes its key's canonical text to
 * key[0..keycap). */
int sql_create(struct db *db, const struct resource *r, const struct row_input *in, struct buf *out,
               char *key, size_t keycap, int64_t *version, struct sql_error *e);
/* Updates the columns in in (if_match < 0: no precondition). */
int sql_update(struct db *db, const struct resource *r, const char *key, int64_t if_match,
               const struct row_input *in, struct buf *out, int64_t *version, struct sql_error *e);
/* Deletes; writes the deleted row's version. */
int sql_delete(struct db *db, const struct resource *r, const char *key, int64_t if_match,
               int64_t *version, struct sql_error *e);
/* A page of the list f describes (its rows and byte bounds: filter.h): appends the rows' JSON
 * separated by commas to out. *next gets the next page's query string (empty when this is the last
 * page). */
int sql_list(struct db *db, const struct resource *r, const struct filter *f, struct buf *out,
             int *count, struct buf *next);

#endif
