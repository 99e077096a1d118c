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

static int op_get(void *db, int64_t id, struct buf *out, int64_t *version)
{
    return db_item_get(db, id, out, version);
}

static int op_create(void *db, const struct item_input *in, struct buf *out, int64_t *id,
                     int64_t *version)
{
    return db_item_create(db, in, out, id, version);
}

static int op_update(void *db, int64_t id, int64_t if_match, const struct item_input *in,
                     struct buf *out, int64_t *version)
{
    return db_item_update(db, id, if_match, in, out, version);
}

static int op_delete(void *db, int64_t id, int64_t if_match)
{
    return db_item_delete(db, id, if_match);
}

static bool op_vouching(void *cdc)
{
    return cdc && cdc_vouching(cdc);
}

/* The test gate (CDCACHE_TEST_FILL_GATE); the gate's path travels in a process-wide variable
 * because the hook only gets the db pointer. Set once before any thread starts. */
static const char *fill_gate;

static void op_gate(void *db, int64_t id)
{
    char gate[512], waiting[520];
    FILE *f;

    (void)db;
    snprintf(gate, sizeof(gate), "%s/%lld", fill_gate, (long long)id);
    if (access(gate, F_OK) != 0)
        return;
    snprintf(waiting, sizeof(waiting), "%s.waiting", gate);
    f = fopen(waiting, "w");
    if (f)
        fclose(f);
    for (int i = 0; i < 6000 && access(gate, F_OK) == 0; i++)
        usleep(5000);
    unlink(waiting);
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

void reads_get(struct reads *r, int64_t id, int64_t min_version, bool no_cache,
               struct reads_result *out)
{
    bool use_cache = r->cache && !no_cache && r->ops.vouching(r->vouch_arg);
    uint64_t lease = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (use_cache && cache_lookup(r->cache, id, min_version, &out->val_, &lease) == CACHE_HIT) {
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
    rc = r->ops.item_get(r->db, id, &out->buf_, &out->version);
    if (lease) {
        if (r->ops.before_fill)
            r->ops.before_fill(r->db, id);
        if (rc == 0)
            cache_fill(r->cache, id, lease, out->version, out->buf_.data, out->buf_.len, NULL);
        else if (rc == CDC_ENOTFOUND)
            cache_fill(r->cache, id, lease, -1, NULL, 0, NULL);
        else
            cache_fill_abort(r->cache, id, lease);
    }
    out->rc = rc == 0 || rc == CDC_ENOTFOUND ? rc : CDC_EDB;
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

int reads_create_item(struct reads *r, const struct item_input *in, struct buf *out, int64_t *id,
                      int64_t *version)
{
    /* The id does not exist before the insert, so no lease can be taken then; the epoch read before
     * the insert tells whether a change event for the new id (or a flush) came in between. */
    uint64_t epoch = r->cache ? cache_epoch(r->cache) : 0;
    int rc = r->ops.item_create(r->db, in, out, id, version);

    if (rc == 0 && r->cache)
        cache_fill(r->cache, *id, cache_lease_since(r->cache, *id, epoch), *version, out->data,
                   out->len, NULL);
    return rc;
}

int reads_update_item(struct reads *r, int64_t id, int64_t if_match, const struct item_input *in,
                      struct buf *out, int64_t *version)
{
    uint64_t lease = r->cache ? cache_lease(r->cache, id) : 0;
    int rc = r->ops.item_update(r->db, id, if_match, in, out, version);

    if (rc == 0 && r->cache)
        cache_fill(r->cache, id, lease, *version, out->data, out->len, NULL);
    else if (r->cache)
        cache_fill_abort(r->cache, id, lease);
    return rc;
}

int reads_delete_item(struct reads *r, int64_t id, int64_t if_match)
{
    int rc = r->ops.item_delete(r->db, id, if_match);

    if (r->cache && (rc == 0 || rc == CDC_ENOTFOUND))
        cache_evict(r->cache, id);
    return rc;
}
