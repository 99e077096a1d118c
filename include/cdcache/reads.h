/* The read protocol: the rules that keep item reads right, in one place. The HTTP layer parses a
 * request, calls one function here and writes the answer; it holds no cache logic of its own.
 *
 * Rules (DESIGN.md, consistency guarantees 1, 5 and 10):
 *  - a read is served from the cache only while the change stream vouches for it
 * (reads_ops.vouching) and the client did not ask for no-cache; otherwise it bypasses to the
 * database and fills nothing;
 *  - a miss takes a fill lease before it queries, and the row is installed only if no change event
 *    for the key (nor a flush) arrived meanwhile (no stale fill);
 *  - min_version (X-Min-Version) is never answered from an entry older than it, negative entries
 *    included: a minimum of 1 or more proves the row exists;
 *  - a write takes its lease before it writes (updates), or reads the invalidation epoch before it
 *    writes (creates, whose key did not exist), then installs the returned row, so the writing
 *    replica reads its own write at once; a delete evicts.
 *
 * The database and the vouching test come through reads_ops, so unit tests run every rule against a
 * fake database. Thread-safety: every function may be called from any thread. */
#ifndef CDCACHE_READS_H
#define CDCACHE_READS_H

#include "cdcache/cache.h"
#include "cdcache/resource.h"
#include "cdcache/row.h"
#include "cdcache/sql.h"
#include "cdcache/util.h"

#include <stdbool.h>
#include <stdint.h>

/* What the protocol needs from the database and the change stream. The database functions follow
 * sql.h: keys are canonical text (codec_key_canon), rows are rendered JSON, and they return 0,
 * CDC_ENOTFOUND, CDC_ECONFLICT, CDC_EINVAL, CDC_EDUPLICATE, CDC_ESCHEMA or CDC_EDB. Every function
 * is called with the opaque db pointer given to reads_create(). */
struct reads_ops {
    int (*row_get)(void *db, const struct resource *r, const char *key, struct buf *out,
                   int64_t *version);
    int (*row_create)(void *db, const struct resource *r, const struct row_input *in,
                      struct buf *out, char *key, size_t keycap, int64_t *version,
                      struct sql_error *e);
    int (*row_update)(void *db, const struct resource *r, const char *key, int64_t if_match,
                      const struct row_input *in, struct buf *out, int64_t *version,
                      struct sql_error *e);
    int (*row_delete)(void *db, const struct resource *r, const char *key, int64_t if_match,
                      int64_t *version, struct sql_error *e);
    /* true while the cache may answer reads (bounded staleness); called with vouch_arg */
    bool (*vouching)(void *vouch_arg);
    /* Test hook, NULL in production: runs between a miss's query and its fill. */
    void (*before_fill)(void *db, const struct resource *r, const char *key);
};

enum reads_source { READS_HIT, READS_MISS, READS_BYPASS };

/* The answer to a read. body/len are borrowed until reads_result_release(). */
struct reads_result {
    int rc;                   /* 0 (the row), CDC_ENOTFOUND, CDC_ESCHEMA or CDC_EDB */
    enum reads_source source; /* how it was served (X-Cache) */
    int64_t version;          /* rc == 0 */
    const char *body;         /* rc == 0: the row's JSON, not NUL-terminated */
    size_t len;
    struct cache_value *val_; /* private: the cache reference held for a hit */
    struct buf buf_;          /* private: the row read from the database */
};

struct reads;

/* Returns a new protocol instance; release with reads_destroy(). ops is copied; cache (NULL: the
 * cache is disabled, every read bypasses), db and vouch_arg are borrowed and must outlive it. */
struct reads *reads_create(const struct reads_ops *ops, void *db, void *vouch_arg,
                           struct cache *cache);
/* The production wiring: sql.h's functions and cdc_vouching(cdc) (cdc NULL: never vouching). When
 * the environment names CDCACHE_TEST_FILL_GATE, a fill of key K waits while the file <gate>/K
 * exists (and creates <gate>/K.waiting meanwhile), so tests can force a change between query and
 * fill. */
struct db;
struct cdc;
struct reads *reads_create_default(struct db *db, struct cdc *cdc, struct cache *cache);
void reads_destroy(struct reads *r);

/* Reads the row of r whose canonical key is key. min_version 0: any version. no_cache: the client
 * asked for the database. Always fills *out; release it with reads_result_release(). */
void reads_get(struct reads *rd, const struct resource *r, const char *key, int64_t min_version,
               bool no_cache, struct reads_result *out);
void reads_result_release(struct reads_result *res);

/* Writes: each runs the database write and keeps this replica's cache in step with it. Return what
 * the database function returned; out holds the written row's JSON on success. A delete writes
 * the deleted row's version. */
int reads_create_row(struct reads *rd, const struct resource *r, const struct row_input *in,
                     struct buf *out, char *key, size_t keycap, int64_t *version,
                     struct sql_error *e);
int reads_update_row(struct reads *rd, const struct resource *r, const char *key, int64_t if_match,
                     const struct row_input *in, struct buf *out, int64_t *version,
                     struct sql_error *e);
int reads_delete_row(struct reads *rd, const struct resource *r, const char *key, int64_t if_match,
                     int64_t *version, struct sql_error *e);

#endif
