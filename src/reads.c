/* The read protocol (see reads.h for the rules). Everything here runs on HTTP worker threads; the
 * state is the borrowed cache (thread-safe) and immutable configuration, so there is no lock of its
 * own. The order of steps is the protocol:
 *
 *   read:   vouching? -> lookup (hit, or a miss holding a lease) -> query -> fill under the lease
 *   update: lease -> write -> fill under the lease (or abort it when the write failed)
 *   create: epoch -> write -> lease unless an invalidation touched the new key since the epoch
 *           -> fill
 *   delete: write -> evict
 *
 * A lease taken before the database is read is what makes a fill safe: the CDC thread voids it when
 * an event for the key (or a flush) arrives, and cache_fill() then refuses the older row. */
#include "cdcache/reads.h"
#include "cdcache/cdc.h"
#include "cdcache/db.h"
#include "cdcache/sql.h"
#include "cdcache/error.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READS_BODY_CAP (1u << 24)

struct reads {
    struct reads_ops ops;
    void *db;
    void *vouch_arg;
    struct cache *cache; /* NULL: disabled */
    const char *fill_gate;
};

struct reads *reads_create(const struct reads_ops *ops, void *db, void *vouch_arg,
                           struct cache *cache)
{
    struct reads *r = xcalloc(1, sizeof(*r));
    r->ops = *ops;
    r->db = db;
    r->vouch_arg = vouch_arg;
    r->cache = cache;
    return r;
}

void reads_destroy(struct reads *r)
{
    free(r);
}

/* --- production wiring --- */

static int op_get(void *db, const struct resource *r, const char *key, struct buf *out,
                  int64_t *version)
{
    return sql_get(db, r, key, out, version);
}

static int op_create(void *db, const struct resource *r, const struct row_input *in,
                     struct buf *out, char *key, size_t keycap, int64_t *version,
                     struct sql_error *e)
{
    return sql_create(db, r, in, out, key, keycap, version, e);
}

static int op_update(void *db, const struct resource *r, const char *key, int64_t if_match,
                     const struct row_input *in, struct buf *out, int64_t *version,
                     struct sql_error *e)
{
    return sql_update(db, r, key, if_match, in, out, version, e);
}

static int op_delete(void *db, const struct resource *r, const char *key, int64_t if_match,
                     int64_t *version, struct sql_error *e)
{
    return sql_delete(db, r, key, if_match, version, e);
}

static bool op_vouching(void *cdc)
{
    return cdc && cdc_vouching(cdc);
}

/* The test gate (CDCACHE_TEST_FILL_GATE); the gate's path travels in a process-wide variable
 * because the hook only gets the db pointer. Set once before any thread starts. A key is named in
 * the gate by its canonical text (an item's id). */
static const char *fill_gate;

static void op_gate(void *db, const struct resource *r, const char *key)
{
    (void)db;
    (void)r;
    test_gate_wait(fill_gate, key);
}

struct reads *reads_create_default(struct db *db, struct cdc *cdc, struct cache *cache)
{
    struct reads_ops ops = {op_get, op_create, op_update, op_delete, op_vouching, NULL};

    fill_gate = getenv("CDCACHE_TEST_FILL_GATE");
    if (fill_gate)
        ops.before_fill = op_gate;
    return reads_create(&ops, db, cdc, cache);
}

/* --- the protocol --- */

static struct cache_key key_of(const struct resource *r, const char *key)
{
    struct cache_key k = {r->index, (uint32_t)strlen(key), key};
    return k;
}

void reads_get(struct reads *rd, const struct resource *r, const char *key, int64_t min_version,
               bool no_cache, struct reads_result *out)
{
    bool use_cache = rd->cache && !no_cache && rd->ops.vouching(rd->vouch_arg);
    struct cache_key k = key_of(r, key);
    uint64_t lease = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (use_cache && cache_lookup(rd->cache, k, min_version, &out->val_, &lease) == CACHE_HIT) {
        assert(lease == 0);
        out->source = READS_HIT;
        if (cache_value_negative(out->val_)) {
            out->rc = CDC_ENOTFOUND;
        } else {
            out->version = cache_value_version(out->val_);
            out->body = cache_value_body(out->val_, &out->len);
        }
        return;
    }
    out->source = use_cache ? READS_MISS : READS_BYPASS;
    buf_init(&out->buf_, READS_BODY_CAP);
    rc = rd->ops.row_get(rd->db, r, key, &out->buf_, &out->version);
    if (lease) {
        if (rd->ops.before_fill)
            rd->ops.before_fill(rd->db, r, key);
        if (rc == 0)
            cache_fill(rd->cache, k, lease, out->version, out->buf_.data, out->buf_.len, NULL);
        else if (rc == CDC_ENOTFOUND)
            cache_fill(rd->cache, k, lease, -1, NULL, 0, NULL);
        else
            cache_fill_abort(rd->cache, k, lease);
    }
    out->rc = rc == 0 || rc == CDC_ENOTFOUND || rc == CDC_ESCHEMA ? rc : CDC_EDB;
    if (rc == 0) {
        out->body = out->buf_.data ? out->buf_.data : "";
        out->len = out->buf_.len;
    }
}

void reads_result_release(struct reads_result *res)
{
    cache_value_release(res->val_);
    buf_free(&res->buf_);
    res->val_ = NULL;
    res->body = NULL;
}

int reads_create_row(struct reads *rd, const struct resource *r, const struct row_input *in,
                     struct buf *out, char *key, size_t keycap, int64_t *version,
                     struct sql_error *e)
{
    /* The key does not exist before the insert, so no lease can be taken then; the epoch read
     * before the insert tells whether a change event for the new key (or a flush) came in
     * between. */
    uint64_t epoch = rd->cache ? cache_epoch(rd->cache) : 0;
    int rc = rd->ops.row_create(rd->db, r, in, out, key, keycap, version, e);

    if (rc == 0 && rd->cache) {
        struct cache_key k = key_of(r, key);
        cache_fill(rd->cache, k, cache_lease_since(rd->cache, k, epoch), *version, out->data,
                   out->len, NULL);
    }
    return rc;
}

int reads_update_row(struct reads *rd, const struct resource *r, const char *key, int64_t if_match,
                     const struct row_input *in, struct buf *out, int64_t *version,
                     struct sql_error *e)
{
    struct cache_key k = key_of(r, key);
    uint64_t lease = rd->cache ? cache_lease(rd->cache, k) : 0;
    int rc = rd->ops.row_update(rd->db, r, key, if_match, in, out, version, e);

    if (rc == 0 && rd->cache)
        cache_fill(rd->cache, k, lease, *version, out->data, out->len, NULL);
    else if (rd->cache)
        cache_fill_abort(rd->cache, k, lease);
    return rc;
}

int reads_delete_row(struct reads *rd, const struct resource *r, const char *key, int64_t if_match,
                     int64_t *version, struct sql_error *e)
{
    int rc = rd->ops.row_delete(rd->db, r, key, if_match, version, e);

    if (rd->cache && (rc == 0 || rc == CDC_ENOTFOUND))
        cache_evict(rd->cache, key_of(r, key));
    return rc;
}
