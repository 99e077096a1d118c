/* The CDC consumer thread.
 *
 * THE RULE. A replica may serve an entry from its cache only while it can show that it has seen
 * every change committed since that entry was filled. The consumer shows it with an unbroken read
 * of the change stream through its own consumer group, and a watermark chain in the WAL (below).
 * Every break in that proof ends in one policy, continuity_break(): stop vouching (reads bypass to
 * PostgreSQL and fill nothing), flush the cache (which voids in-flight fills), and vouch again only
 * on a watermark read after the flush. When in doubt, flush: a flush costs misses, a stale hit
 * breaks the product. The breaks, and how each is detected:
 *  - group_missing: XREADGROUP answers NOGROUP (the group or the whole stream vanished: XGROUP
 *    DESTROY, retention removing a silent replica's group, DEL, FLUSHALL), or a reconnect had to
 *    create the group again. The group is recreated at `$` first, then the cache is flushed, so no
 *    fill can slip in between a change and the new position.
 *  - pending_gone: re-reading this consumer's pending entries after a reconnect returns an entry
 *    without fields: it was deleted before we could apply it.
 *  - redis_restarted: Redis's run id changed (entries written after its last fsync are gone).
 *  - entries_removed: the stream's first entry lies beyond this group's position, or
 *    max-deleted-entry-id does (check_gap): someone trimmed or deleted what we had not read.
 *  - source_gap / source_origin / source_fresh: the change-stream SOURCE restarted without its
 *    offsets or on a new replication slot (an operator's reset, a lost slot, a PostgreSQL
 * failover). Nothing in Redis shows that, so the proof travels in the WAL itself: every write of
 * the row inventory.cdcache_watermark raises its `seq` by one and stamps `origin`, the writing
 * server's start time (a trigger). Debezium's heartbeat.action.query writes it, and so does every
 * replica (the watermark ticker, every cdc.tick_ms, also while Debezium is down). The consumer
 * follows the chain: a seq that skips (source_gap) means WAL was never streamed; a new origin
 *    (source_origin) means another server (a promoted standby) or a restarted one; and an event
 *    whose source.sequence has no previous commit (source_fresh) is Debezium's first transaction
 *    after a start without offsets. Replayed watermarks (seq not above the last) are ignored. The
 *    chain works wherever Debezium runs (compose, Kubernetes), because the replicas write it.
 *
 * Loop: connect (backoff doubling from reconnect_min_ms to reconnect_max_ms) -> read Redis's run
 * id -> register for retention -> make sure the groups exist (created at `$` on the first start,
 * since the cache starts empty) -> apply any break found -> re-read this consumer's pending entries
 * (delivered but maybe never applied) -> XREADGROUP BLOCK, apply every entry, XACK the batch
 * (pipelined) -> repeat. Every gap_check_ms it runs check_gap, every trim_interval_ms stream
 * retention (retention.c).
 *
 * Bounded staleness: the replica vouches while it has read, within max_staleness, a watermark of
 * the chain committed within max_staleness with the items' stream drained; a change event extends
 * that but cannot start it (after a lapse, the next watermark is where the chain is checked).
 *
 * Test hooks, inert unless their environment variable is set: CDCACHE_TEST_CDC_GATE names a file
 * whose presence pauses the consumer (a stuck consumer); CDCACHE_TEST_CDC_DELAY_MS sleeps after
 * every batch (a slow one).
 *
 * Threads: the consumer thread owns the redisContext and the chain state; the ticker thread only
 * writes the watermark row through the db pool. Status fields read by HTTP workers are atomics;
 * last_error is guarded by status_lock. */
#include "cdcache/cdc.h"
#include "cdcache/catalog.h"
#include "cdcache/db.h"
#include "cdcache/error.h"
#include "cdcache/log.h"
#include "cdcache/metrics.h"
#include "cdcache/retention.h"
#include "cdcache/util.h"
#include "cdcache/warm.h"

#include <assert.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The streams read, in XREADGROUP order: every resource's changes first (stream i is resource i's),
 * so that within one reply they are applied before the watermark that vouches for them; then the
 * watermark, Debezium's heartbeats and the DDL signal. */
enum cdc_stream { STREAM_CHANGES, STREAM_WATERMARK, STREAM_HEARTBEAT, STREAM_DDL };
#define CDC_SIGNAL_STREAMS 3 /* watermark, heartbeat, DDL: after the resources' streams */

struct cdc {
    const struct config *cfg;
    struct catalog *catalog; /* the resources; reloaded here on a DDL signal */
    struct cache *cache;
    struct db *db; /* NULL: no watermark ticker */
    struct metrics *metrics;
    struct warm *warm; /* NULL: no warm-up; set before cdc_start(), immutable after */
    pthread_t thread, ticker;
    bool running, ticking;
    _Atomic bool stop;

    char group[160];
    char consumer[128];
    char run_id[64];            /* consumer thread only */
    bool groups_made;           /* consumer thread only: a group has been positioned once */
    struct stream_id *gap_seen; /* consumer thread only, per stream: the gap already flushed for */
    bool pending_gone; /* consumer thread only: the last pending read had a deleted entry */
    bool chain_known;  /* consumer thread only: a watermark since the last break */
    int64_t chain_seq, chain_origin; /* consumer thread only: the chain's last link */
    const char *test_gate;           /* CDCACHE_TEST_CDC_GATE */
    int64_t test_delay_ms;           /* CDCACHE_TEST_CDC_DELAY_MS */

    _Atomic bool attached;
    char **streams; /* nstreams names: the resources' (nresources), then the signals */
    int nstreams, nresources;
    _Atomic int64_t heard_mono_ms;     /* last time the pipeline vouched for freshness; 0 never */
    _Atomic int64_t heartbeat_mono_ms; /* last Debezium heartbeat (liveness only); 0 never */
    _Atomic bool vouch_logged;
    _Atomic uint64_t results[CDC_RESULT_COUNT];
    _Atomic uint64_t heartbeats, watermarks, reconnects, batches, ddl_reloads;
    _Atomic uint64_t trims, trimmed, groups_removed, consumers_removed;
    _Atomic uint64_t breaks[CDC_BREAK_COUNT];
    _Atomic int slot_state;        /* enum slot_state, written by the ticker */
    _Atomic int64_t slot_retained; /* bytes of WAL the slot holds; -1 unknown */
    _Atomic bool chain_known_pub;  /* copies of the chain state for /ready */
    _Atomic int64_t chain_seq_pub;
    _Atomic int64_t stream_length;
    _Atomic int64_t group_lag; /* XINFO GROUPS lag of our group; -1 unknown (never rendered) */

    pthread_mutex_t status_lock; /* guards last_error */
    char last_error[200];
};

static const char *const result_names[] = {
#define CDC_RESULT_NAME(name, text) text,
    CDC_RESULTS(CDC_RESULT_NAME)
#undef CDC_RESULT_NAME
};

const char *cdc_result_name(enum cdc_result r)
{
    return (unsigned)r < CDC_RESULT_COUNT ? result_names[r] : "unknown";
}

static const char *const break_names[] = {
#define CDC_BREAK_NAME(name, text) text,
    CDC_BREAKS(CDC_BREAK_NAME)
#undef CDC_BREAK_NAME
};

const char *cdc_break_name(enum cdc_break b)
{
    return (unsigned)b < CDC_BREAK_COUNT ? break_names[b] : "unknown";
}

enum cdc_result cdc_apply(struct cache *c, unsigned res, const struct dbz_event *ev)
{
    struct cache_key key = {res, (uint32_t)ev->key_len, ev->key};

    switch (ev->op) {
    case DBZ_OP_TOMBSTONE:
        return CDC_RESULT_TOMBSTONE;
    case DBZ_OP_TRUNCATE:
        cache_flush_resource(c, res);
        return CDC_RESULT_TRUNCATE;
    case DBZ_OP_DELETE:
        return cache_evict(c, key) ? CDC_RESULT_EVICTED : CDC_RESULT_ABSENT;
    case DBZ_OP_CREATE:
    case DBZ_OP_UPDATE:
    case DBZ_OP_READ:
        if (!ev->complete) {
            cache_evict(c, key);
            return CDC_RESULT_INCOMPLETE;
        }
        switch (cache_apply(c, key, ev->version, ev->body.data, ev->body.len)) {
        case CACHE_APPLIED:
            return CDC_RESULT_REFRESHED;
        case CACHE_EVICTED:
            return CDC_RESULT_EVICTED;
        case CACHE_OLD:
            return CDC_RESULT_STALE;
        case CACHE_ABSENT:
            return CDC_RESULT_ABSENT;
        }
    }
    return CDC_RESULT_POISON;
}

/* Records "<what>: <detail>" as the last error and logs it. */
static void set_error(struct cdc *cdc, const char *what, const char *detail)
{
    pthread_mutex_lock(&cdc->status_lock);
    snprintf(cdc->last_error, sizeof(cdc->last_error), "%s: %s", what, detail ? detail : "");
    pthread_mutex_unlock(&cdc->status_lock);
    LOG_WARN("cdc: %s", cdc->last_error);
}

struct cdc *cdc_create(const struct config *cfg, struct catalog *catalog, struct cache *cache,
                       struct db *db, struct metrics *m)
{
    struct cdc *cdc = xcalloc(1, sizeof(*cdc));
    int n;

    cdc->cfg = cfg;
    cdc->catalog = catalog;
    cdc->cache = cache;
    cdc->db = db;
    cdc->metrics = m;
    /* config.c bounds both names so that they fit: a cut name could make two replicas share one
     * group, and each would see only part of the changes */
    n = snprintf(cdc->group, sizeof(cdc->group), "%s-%s", cfg->cdc_group_prefix,
                 cfg->cdc_replica_id);
    assert(n > 0 && (size_t)n < sizeof(cdc->group));
    n = snprintf(cdc->consumer, sizeof(cdc->consumer), "%s", cfg->cdc_replica_id);
    assert(n > 0 && (size_t)n < sizeof(cdc->consumer));
    (void)n;
    /* stream names come from the config, not the catalog: a reload never changes them */
    cdc->nresources = (int)cfg->nresources;
    cdc->nstreams = cdc->nresources + CDC_SIGNAL_STREAMS;
    cdc->streams = xcalloc((size_t)cdc->nstreams, sizeof(*cdc->streams));
    cdc->gap_seen = xcalloc((size_t)cdc->nstreams, sizeof(*cdc->gap_seen));
    for (int i = 0; i < cdc->nresources; i++) {
        struct buf b;
        buf_init(&b, 4096);
        buf_printf(&b, "%s.%s", cfg->cdc_topic_prefix, cfg->resources[i].table);
        cdc->streams[i] = buf_steal(&b, NULL);
    }
    cdc->streams[cdc->nresources] = xstrdup(cfg->cdc_watermark_stream);
    cdc->streams[cdc->nresources + 1] = xstrdup(cfg->cdc_heartbeat_stream);
    cdc->streams[cdc->nresources + 2] = xstrdup(cfg->cdc_ddl_stream);
    pthread_mutex_init(&cdc->status_lock, NULL);
    atomic_store(&cdc->vouch_logged, true);
    atomic_store(&cdc->stream_length, -1);
    atomic_store(&cdc->group_lag, -1);
    atomic_store(&cdc->slot_retained, -1);
    cdc->test_gate = getenv("CDCACHE_TEST_CDC_GATE");
    if (getenv("CDCACHE_TEST_CDC_DELAY_MS"))
        parse_i64_str(getenv("CDCACHE_TEST_CDC_DELAY_MS"), &cdc->test_delay_ms);
    return cdc;
}

/* Sleeps ms in small steps so cdc_stop() is prompt. */
static void nap(struct cdc *cdc, int64_t ms)
{
    while (ms > 0 && !atomic_load(&cdc->stop)) {
        int64_t step = ms < 50 ? ms : 50;
        usleep((useconds_t)step * 1000);
        ms -= step;
    }
}

/* The one "flush when in doubt" policy: every break in continuity ends here. The consumer stops
 * vouching first, so reads bypass and take no new lease; the flush then voids every lease taken
 * before. Vouching resumes only on a watermark read after this point (handle_signal), which also
 * starts the chain afresh. Callers that reposition a group do it before calling this. Consumer
 * thread only. */
static void continuity_break(struct cdc *cdc, enum cdc_break why, const char *detail)
{
    atomic_store(&cdc->heard_mono_ms, 0);
    cdc->chain_known = false;
    atomic_store(&cdc->chain_known_pub, false);
    cache_flush(cdc->cache);
    atomic_fetch_add(&cdc->breaks[why], 1);
    LOG_WARN("cdc: continuity broken (%s: %s): cache flushed; reads bypass until a watermark "
             "proves continuity again",
             cdc_break_name(why), detail);
}

static bool reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* Reads Redis's run id into id[0..cap). */
static int read_run_id(redisContext *ctx, char *id, size_t cap)
{
    redisReply *r = redisCommand(ctx, "INFO server");
    const char *p;
    int rc = CDC_EREDIS;

    id[0] = '\0';
    if (!r || r->type != REDIS_REPLY_STRING)
        goto out;
    p = strstr(r->str, "run_id:");
    if (p) {
        size_t n = strcspn(p + 7, "\r\n");
        snprintf(id, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), p + 7);
    }
    rc = 0;
out:
    freeReplyObject(r);
    return rc;
}

/* Creates the group on every stream at `$`. reposition: also move an existing group to `$` (first
 * start of this process: the cache is empty, so older entries are of no use). *created tells
 * whether a group had to be created. */
static int ensure_groups(struct cdc *cdc, redisContext *ctx, bool reposition, bool *created)
{
    char *const *streams = cdc->streams;

    for (int i = 0; i < cdc->nstreams; i++) {
        redisReply *r = redisCommand(ctx, "XGROUP CREATE %s %s $ MKSTREAM", streams[i], cdc->group);
        bool ok = r && (r->type == REDIS_REPLY_STATUS || reply_is_error(r, "BUSYGROUP"));
        bool busy = reply_is_error(r, "BUSYGROUP");
        if (ok && !busy)
            *created = true;
        if (!ok)
            set_error(cdc, "XGROUP CREATE failed", r ? r->str : ctx->errstr);
        freeReplyObject(r);
        if (!ok)
            return CDC_EREDIS;
        if (busy && reposition) {
            r = redisCommand(ctx, "XGROUP SETID %s %s $", streams[i], cdc->group);
            ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            if (!ok)
                return CDC_EREDIS;
        }
    }
    return 0;
}

/* CLIENT SETNAME cdcache-<replica_id>, so CLIENT LIST, the slow log and ACL LOG name the replica
 * whose consumer (and, on the same connection, retention) a command came from. config.c limits
 * replica ids to letters, digits, '-', '_' and '.', all valid in a client name. The name is only
 * a label: a Redis that refuses it (an ACL without +client|setname) gets a warning, and the
 * consumer carries on. */
static void name_connection(struct cdc *cdc, redisContext *ctx)
{
    char name[sizeof(cdc->consumer) + 16];
    const char *argv[3] = {"CLIENT", "SETNAME", name};
    redisReply *r;
    int n = snprintf(name, sizeof(name), "cdcache-%s", cdc->cfg->cdc_replica_id);

    assert(n > 0 && (size_t)n < sizeof(name)); /* replica ids fit cdc->consumer (cdc_create) */
    (void)n;
    r = redisCommandArgv(ctx, 3, argv, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR)
        LOG_WARN("cdc: CLIENT SETNAME %s failed: %s", name, r ? r->str : ctx->errstr);
    freeReplyObject(r);
}

static redisContext *connect_redis(struct cdc *cdc)
{
    int64_t t = cdc->cfg->redis_timeout_ms;
    struct timeval tv = {(time_t)(t / 1000), (suseconds_t)(t % 1000) * 1000};
    struct timeval rtv;
    char run_id[64];
    bool created = false;
    redisContext *ctx = redisConnectWithTimeout(cdc->cfg->redis_host, cdc->cfg->redis_port, tv);

    if (!ctx || ctx->err) {
        set_error(cdc, "connect to Redis failed", ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    if (cdc->cfg->redis_password[0]) {
        /* ACL user (redis.username) or the default user; the reply never holds the secret */
        const char *argv[3] = {"AUTH", cdc->cfg->redis_username, cdc->cfg->redis_password};
        int argc = cdc->cfg->redis_username[0] ? 3 : 2;
        redisReply *r;
        if (argc == 2)
            argv[1] = cdc->cfg->redis_password;
        r = redisCommandArgv(ctx, argc, argv, NULL);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            set_error(cdc, "Redis AUTH failed", r ? r->str : ctx->errstr);
            freeReplyObject(r);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(r);
    }
    name_connection(cdc, ctx);
    /* The read timeout must outlast XREADGROUP's BLOCK. */
    t += cdc->cfg->cdc_block_ms;
    rtv.tv_sec = (time_t)(t / 1000);
    rtv.tv_usec = (suseconds_t)(t % 1000) * 1000;
    redisSetTimeout(ctx, rtv);
    /* registered before the group exists, so no trimmer mistakes the new group for a dead one */
    if (read_run_id(ctx, run_id, sizeof(run_id)) || retention_register(ctx, cdc->cfg, cdc->group) ||
        ensure_groups(cdc, ctx, !cdc->groups_made, &created)) {
        set_error(cdc, "Redis setup failed", ctx->err ? ctx->errstr : "command failed");
        redisFree(ctx);
        return NULL;
    }
    /* After the groups are in place (a recreated one sits at `$`), so the flush comes after the
     * new position. The run id is remembered only now: a setup that failed half-way is retried
     * with the break still pending. */
    if (cdc->run_id[0] && strcmp(cdc->run_id, run_id) != 0)
        continuity_break(cdc, CDC_BREAK_REDIS_RESTARTED, "Redis has a new run id");
    else if (created && cdc->groups_made)
        continuity_break(cdc, CDC_BREAK_GROUP_MISSING,
                         "the consumer group was gone on reconnect (removed while this replica "
                         "was away?) and was created again at the stream's end");
    snprintf(cdc->run_id, sizeof(cdc->run_id), "%s", run_id);
    cdc->groups_made = true;
    return ctx;
}

/* Flushes when entries this group never read were removed from the stream.
 *
 * Redis 7.0 does not record trims in max-deleted-entry-id (only XDEL), and a group's lag can read 0
 * after a trim, so the check is positional: our own retention (retention.c) never removes the entry
 * at the slowest live group's last-delivered id, so when the stream's first entry lies beyond our
 * last-delivered id, someone removed entries we had not read. Also a gap: an empty stream whose
 * last-generated id is beyond us, and an XDEL beyond us. Each condition flushes once. */
static int64_t check_gap_stream(struct cdc *cdc, redisContext *ctx, int si)
{
    redisReply *info = redisCommand(ctx, "XINFO STREAM %s", cdc->streams[si]);
    redisReply *groups = redisCommand(ctx, "XINFO GROUPS %s", cdc->streams[si]);
    const redisReply *first = stream_map_get(info, "first-entry");
    const redisReply *lastgen = stream_map_get(info, "last-generated-id");
    const redisReply *maxdel = stream_map_get(info, "max-deleted-entry-id");
    const redisReply *len = stream_map_get(info, "length");
    const redisReply *added = stream_map_get(info, "entries-added");
    struct stream_id last = {0, 0}, probe = {0, 0}, zero = {0, 0};
    bool found = false, gap = false;
    int64_t group_lag = -1;

    if (!info || info->type != REDIS_REPLY_ARRAY || !groups || groups->type != REDIS_REPLY_ARRAY)
        goto out;
    for (size_t i = 0; i < groups->elements && !found; i++) {
        const redisReply *name = stream_map_get(groups->element[i], "name");
        const redisReply *ld = stream_map_get(groups->element[i], "last-delivered-id");
        const redisReply *lag = stream_map_get(groups->element[i], "lag");
        found = name && name->type == REDIS_REPLY_STRING && strcmp(name->str, cdc->group) == 0 &&
                ld && ld->type == REDIS_REPLY_STRING && stream_id_parse(ld->str, &last);
        /* lag is nil when Redis cannot tell (entries deleted past the group): unknown, not 0 */
        if (found)
            group_lag = lag && lag->type == REDIS_REPLY_INTEGER ? lag->integer : -1;
    }
    if (!found)
        goto out;
    if (first && first->type == REDIS_REPLY_ARRAY && first->elements >= 1 &&
        stream_id_parse(first->element[0]->str, &probe)) {
        /* a new group on a stream that never lost an entry sits at 0-0 before its first read */
        bool never_trimmed = len && added && len->type == REDIS_REPLY_INTEGER &&
                             added->type == REDIS_REPLY_INTEGER && len->integer == added->integer;
        gap = stream_id_cmp(probe, last) > 0 && !(stream_id_cmp(last, zero) == 0 && never_trimmed);
    } else if (len && len->type == REDIS_REPLY_INTEGER && len->integer == 0 && lastgen &&
               lastgen->type == REDIS_REPLY_STRING && stream_id_parse(lastgen->str, &probe)) {
        gap = stream_id_cmp(probe, last) > 0;
    }
    if (!gap && maxdel && maxdel->type == REDIS_REPLY_STRING &&
        stream_id_parse(maxdel->str, &probe))
        gap = stream_id_cmp(probe, last) > 0;
    if (gap && stream_id_cmp(probe, cdc->gap_seen[si]) != 0) {
        cdc->gap_seen[si] = probe;
        continuity_break(cdc, CDC_BREAK_ENTRIES_REMOVED,
                         "entries this replica had not read were removed from a stream");
    }
out:
    freeReplyObject(info);
    freeReplyObject(groups);
    return group_lag;
}

/* The kind of stream i. */
static enum cdc_stream stream_kind(const struct cdc *cdc, int i)
{
    return i < cdc->nresources ? STREAM_CHANGES
                               : (enum cdc_stream)(STREAM_WATERMARK + (i - cdc->nresources));
}

/* check_gap_stream() on every stream that carries changes (the resources' and the DDL signal's);
 * the group's lag is the largest of the resources' streams (unknown if any is). */
static void check_gap(struct cdc *cdc, redisContext *ctx)
{
    int64_t lag = 0;

    atomic_store(&cdc->group_lag, -1); /* until this check reads it */
    for (int i = 0; i < cdc->nstreams; i++) {
        int64_t l;
        if (stream_kind(cdc, i) != STREAM_CHANGES && stream_kind(cdc, i) != STREAM_DDL)
            continue;
        l = check_gap_stream(cdc, ctx, i);
        if (i < cdc->nresources)
            lag = lag < 0 || l < 0 ? -1 : (l > lag ? l : lag);
    }
    atomic_store(&cdc->group_lag, lag);
}

static void run_retention(struct cdc *cdc, redisContext *ctx)
{
    struct retention_stats st;
    memset(&st, 0, sizeof(st));
    st.stream_length = -1;
    if (retention_tick(ctx, cdc->cfg, cdc->group, (const char *const *)cdc->streams, cdc->nstreams,
                       cdc->nresources, &st))
        LOG_WARN("cdc: stream retention pass failed: %s",
                 ctx->err ? ctx->errstr : "command failed");
    atomic_fetch_add(&cdc->trims, st.trims);
    atomic_fetch_add(&cdc->trimmed, st.trimmed);
    atomic_fetch_add(&cdc->groups_removed, st.groups_removed);
    atomic_fetch_add(&cdc->consumers_removed, st.consumers_removed);
    atomic_store(&cdc->stream_length, st.stream_length);
}

static bool test_gate_closed(const struct cdc *cdc)
{
    return cdc->test_gate && access(cdc->test_gate, F_OK) == 0;
}

/* What lets the replica vouch for its cache (bounded staleness): an entry committed within
 * max_staleness whose predecessors in the WAL are all applied. A watermark of the chain (the row
 * every writer bumps) qualifies when the same XREADGROUP also drained the items' stream (it lives
 * in another stream). A change event qualifies by itself (everything before it in its stream was
 * applied first), but only to extend a vouch a watermark started: after a break or a lapse, the
 * chain must be checked first. A plain Debezium heartbeat never qualifies: Debezium can emit one
 * right after a restart, before it has streamed the backlog the restart left. */
static void heard(struct cdc *cdc, int64_t commit_ts_ms, bool drained, bool watermark)
{
    int64_t now = now_mono_ms(), last = atomic_load(&cdc->heard_mono_ms);

    if (!drained || commit_ts_ms <= 0 ||
        now_wall_ms() - commit_ts_ms > cdc->cfg->cdc_max_staleness_ms)
        return;
    if (!watermark &&
        (!cdc->chain_known || last == 0 || now - last > cdc->cfg->cdc_max_staleness_ms))
        return;
    atomic_store(&cdc->heard_mono_ms, now);
}

static void handle_change(struct cdc *cdc, int res, const char *id, const struct dbz_field *f,
                          size_t n, size_t entry_bytes)
{
    const struct resource_set *set = catalog_current(cdc->catalog);
    const struct resource *r = set && (size_t)res < set->n ? &set->r[res] : NULL;
    struct dbz_event ev;
    char err[160] = "";
    enum cdc_result result;
    int rc;

    memset(&ev, 0, sizeof(ev));
    if (!r) {
        rc = CDC_EDECODE;
        snprintf(err, sizeof(err), "no descriptor for the stream's resource");
    } else if (entry_bytes > (size_t)cdc->cfg->cdc_max_entry_bytes) {
        rc = CDC_EDECODE;
        snprintf(err, sizeof(err), "entry of %zu bytes exceeds cdc.max_entry_bytes", entry_bytes);
    } else {
        rc = dbz_decode(r, f, n, &ev, err, sizeof(err));
    }
    if (rc) {
        result = CDC_RESULT_POISON;
        if (ev.has_key) {
            struct cache_key key = {(unsigned)res, (uint32_t)ev.key_len, ev.key};
            cache_evict(cdc->cache, key);
            LOG_WARN("cdc: poison entry %s of %s (%s): evicted key %s", id, cdc->streams[res], err,
                     ev.key);
        } else {
            cache_flush_resource(cdc->cache, (unsigned)res);
            LOG_WARN("cdc: poison entry %s of %s (%s): no readable key, flushed the resource", id,
                     cdc->streams[res], err);
        }
    } else {
        result = cdc_apply(cdc->cache, (unsigned)res, &ev);
        if (ev.source_ts_ms > 0 && ev.op != DBZ_OP_TOMBSTONE)
            metrics_propagation(cdc->metrics, now_wall_ms() - ev.source_ts_ms);
        if (ev.source_fresh)
            continuity_break(cdc, CDC_BREAK_SOURCE_FRESH,
                             "a change event names no previous commit: Debezium started without "
                             "its offsets");
        else if (ev.op != DBZ_OP_TOMBSTONE)
            heard(cdc, ev.source_ts_ms, true, false);
        LOG_DEBUG("cdc: %s %s op=%s key=%s -> %s", id, cdc->streams[res], dbz_op_name(ev.op),
                  ev.key, cdc_result_name(result));
    }
    atomic_fetch_add(&cdc->results[result], 1);
    dbz_event_clear(&ev);
}

/* A DDL signal: a declared table's columns changed. In WAL order with the table's changes: flush
 * the resource (entries rendered with the old columns go), read the catalog again, flush again
 * (fills that raced the reload used the old descriptor: their leases die). When the reload fails
 * (PostgreSQL unreachable), the old descriptor stays; events that no longer match it evict
 * (decode_after), and the next signal or restart reloads. */
static void handle_ddl(struct cdc *cdc, const struct dbz_field *f, size_t n)
{
    const struct resource *r;
    char table[256], err[256];
    int rc;

    if (dbz_decode_ddl(f, n, table, sizeof(table)) != 0)
        return;
    r = catalog_by_table(catalog_current(cdc->catalog), table, strlen(table));
    if (!r)
        return; /* not a table we serve */
    cache_flush_resource(cdc->cache, r->index);
    rc = catalog_load(cdc->catalog, false, err, sizeof(err));
    cache_flush_resource(cdc->cache, r->index);
    atomic_fetch_add(&cdc->ddl_reloads, 1);
    if (rc)
        LOG_WARN("cdc: %s changed; reading its columns again failed: %s", table, err);
    else
        LOG_INFO("cdc: %s changed: flushed resource %s and read its columns again", table, r->name);
}

/* Follows the watermark chain (see the top of this file). Returns true when wm may vouch. */
static bool follow_chain(struct cdc *cdc, const struct dbz_watermark *wm)
{
    char detail[160];

    if (wm->source_fresh)
        continuity_break(cdc, CDC_BREAK_SOURCE_FRESH,
                         "a watermark names no previous commit: Debezium started without its "
                         "offsets");
    if (!wm->has_seq)
        return false; /* cannot show continuity: never vouches */
    if (cdc->chain_known && wm->seq <= cdc->chain_seq)
        return false; /* a replay (Debezium is at-least-once): already past it */
    if (cdc->chain_known && wm->origin != cdc->chain_origin) {
        snprintf(detail, sizeof(detail),
                 "the watermark comes from another PostgreSQL server start (origin %lld, was "
                 "%lld): a restart or a failover",
                 (long long)wm->origin, (long long)cdc->chain_origin);
        continuity_break(cdc, CDC_BREAK_SOURCE_ORIGIN, detail);
    } else if (cdc->chain_known && wm->seq != cdc->chain_seq + 1) {
        snprintf(detail, sizeof(detail),
                 "the watermark chain jumped from %lld to %lld: WAL was never streamed (a reset "
                 "slot or offsets)",
                 (long long)cdc->chain_seq, (long long)wm->seq);
        continuity_break(cdc, CDC_BREAK_SOURCE_GAP, detail);
    }
    cdc->chain_known = true;
    cdc->chain_seq = wm->seq;
    cdc->chain_origin = wm->origin;
    atomic_store(&cdc->chain_known_pub, true);
    atomic_store(&cdc->chain_seq_pub, wm->seq);
    return true;
}

static void handle_signal(struct cdc *cdc, enum cdc_stream kind, const struct dbz_field *f,
                          size_t n, bool drained)
{
    struct dbz_watermark wm;

    if (kind == STREAM_DDL) {
        handle_ddl(cdc, f, n);
        return;
    }
    if (dbz_decode_watermark(f, n, &wm) != 0)
        return;
    if (kind == STREAM_WATERMARK) {
        atomic_fetch_add(&cdc->watermarks, 1);
        if (follow_chain(cdc, &wm))
            heard(cdc, wm.ts_ms, drained, true);
    } else {
        atomic_fetch_add(&cdc->heartbeats, 1);
        atomic_store(&cdc->heartbeat_mono_ms, now_mono_ms());
    }
}

/* The index of stream name[0..len), or -1. */
static int stream_index(const struct cdc *cdc, const char *name, size_t len)
{
    for (int k = 0; k < cdc->nstreams; k++)
        if (strlen(cdc->streams[k]) == len && memcmp(cdc->streams[k], name, len) == 0)
            return k;
    return -1;
}

/* True when the reply carries a full COUNT of a stream of changes: more may be waiting. */
static bool changes_batch_full(const struct cdc *cdc, const redisReply *r)
{
    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *sr = r->element[s];
        int k;
        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
            sr->element[0]->type != REDIS_REPLY_STRING)
            continue;
        k = stream_index(cdc, sr->element[0]->str, sr->element[0]->len);
        if (k >= 0 && stream_kind(cdc, k) != STREAM_HEARTBEAT &&
            stream_kind(cdc, k) != STREAM_WATERMARK && sr->element[1]->type == REDIS_REPLY_ARRAY &&
            sr->element[1]->elements >= (size_t)cdc->cfg->cdc_batch_count)
            return true;
    }
    return false;
}

/* Processes one XREADGROUP reply; appends one XACK per stream to ctx's output buffer (counted in
 * *nacks, whose replies the caller reads). Returns the number of entries seen. */
static size_t process_reply(struct cdc *cdc, redisContext *ctx, const redisReply *r, bool pending,
                            size_t *nacks)
{
    size_t seen = 0;
    /* A read that left change entries behind (a full COUNT) has not drained the streams. */
    bool drained = !pending && !changes_batch_full(cdc, r);

    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *sr = r->element[s];
        const redisReply *entries;
        int si;
        const char **argv;
        size_t *argl;
        size_t nack = 0;

        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
            sr->element[0]->type != REDIS_REPLY_STRING)
            continue;
        si = stream_index(cdc, sr->element[0]->str, sr->element[0]->len);
        if (si < 0)
            continue;
        entries = sr->element[1];
        if (entries->type != REDIS_REPLY_ARRAY || entries->elements == 0)
            continue;
        argv = xmalloc((entries->elements + 3) * sizeof(*argv));
        argl = xmalloc((entries->elements + 3) * sizeof(*argl));
        argv[0] = "XACK";
        argv[1] = sr->element[0]->str;
        argv[2] = cdc->group;
        for (int i = 0; i < 3; i++)
            argl[i] = strlen(argv[i]);
        for (size_t e = 0; e < entries->elements; e++) {
            const redisReply *er = entries->element[e];
            const redisReply *fields;
            struct dbz_field fv[16];
            size_t nf = 0, bytes = 0;

            if (er->type != REDIS_REPLY_ARRAY || er->elements != 2 ||
                er->element[0]->type != REDIS_REPLY_STRING)
                continue;
            seen++;
            argv[3 + nack] = er->element[0]->str;
            argl[3 + nack] = er->element[0]->len;
            nack++;
            fields = er->element[1];
            if (fields->type != REDIS_REPLY_ARRAY) {
                /* A pending entry deleted before we re-read it reads back as nil. Whether it was
                 * applied before the connection broke cannot be known: a break. */
                if (pending)
                    cdc->pending_gone = true;
                continue;
            }
            for (size_t k = 0; k + 1 < fields->elements; k += 2) {
                const redisReply *fk = fields->element[k], *fvv = fields->element[k + 1];
                if (fk->type != REDIS_REPLY_STRING || fvv->type != REDIS_REPLY_STRING)
                    continue;
                bytes += fk->len + fvv->len;
                if (nf < sizeof(fv) / sizeof(fv[0])) {
                    fv[nf].name = fk->str;
                    fv[nf].name_len = fk->len;
                    fv[nf].value = fvv->str;
                    fv[nf].value_len = fvv->len;
                    nf++;
                }
            }
            if (stream_kind(cdc, si) != STREAM_CHANGES)
                handle_signal(cdc, stream_kind(cdc, si), fv, nf, drained);
            else
                handle_change(cdc, si, er->element[0]->str, fv, nf, bytes);
        }
        if (nack && redisAppendCommandArgv(ctx, (int)(3 + nack), argv, argl) == REDIS_OK)
            (*nacks)++;
        free(argv);
        free(argl);
    }
    return seen;
}

/* Appends an XREADGROUP for all streams to ctx's output buffer: "0" ids re-read this consumer's
 * pending entries, ">" reads new ones; block waits up to cdc.block_ms for entries. */
static int append_read(struct cdc *cdc, redisContext *ctx, bool pending, bool block)
{
    char count[24], wait[24];
    const char **argv = xmalloc((9 + 2 * (size_t)cdc->nstreams) * sizeof(*argv));
    int n = 0, rc;

    snprintf(count, sizeof(count), "%lld", (long long)cdc->cfg->cdc_batch_count);
    snprintf(wait, sizeof(wait), "%lld", pending ? 1LL : (long long)cdc->cfg->cdc_block_ms);
    argv[n++] = "XREADGROUP";
    argv[n++] = "GROUP";
    argv[n++] = cdc->group;
    argv[n++] = cdc->consumer;
    argv[n++] = "COUNT";
    argv[n++] = count;
    if (block) {
        argv[n++] = "BLOCK";
        argv[n++] = wait;
    }
    argv[n++] = "STREAMS";
    for (int k = 0; k < cdc->nstreams; k++)
        argv[n++] = cdc->streams[k];
    for (int k = 0; k < cdc->nstreams; k++)
        argv[n++] = pending ? "0" : ">";
    rc = redisAppendCommandArgv(ctx, n, argv, NULL);
    free(argv);
    return rc;
}

/* Sends what ctx has buffered without waiting for replies. */
static bool flush_out(redisContext *ctx)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(ctx, &done) != REDIS_OK)
            return false;
    return true;
}

/* The consumer loop. While the items' stream has a backlog (a full batch came back), the next read
 * is sent before the current batch is decoded, so Redis prepares batch N+1 on its own core while
 * this thread decodes batch N; the batch's XACKs follow that read. Replies then arrive as [read
 * N+1][XACKs of N]. Other commands (gap check, retention) are only sent when no read is in flight.
 */
static void *consumer_main(void *arg)
{
    struct cdc *cdc = arg;
    redisContext *ctx = NULL;
    int64_t backoff = cdc->cfg->cdc_reconnect_min_ms;
    int64_t next_gap_check = 0, next_trim = 0, next_publish = 0;
    bool pending_phase = true; /* re-read our own pending entries first after each connect */
    bool prefetched = false;   /* a read is in flight, its reply not yet taken */
    size_t acks_owed = 0;      /* XACK replies that follow the in-flight read's reply */

    pthread_setname_np(pthread_self(), "cdc-consumer"); /* for top -H, perf and gdb */

    while (!atomic_load(&cdc->stop)) {
        redisReply *r = NULL;
        size_t seen = 0, nacks = 0;
        bool full = false;

        if (!ctx) {
            ctx = connect_redis(cdc);
            if (!ctx) {
                atomic_store(&cdc->attached, false);
                nap(cdc, backoff);
                backoff = backoff * 2 > cdc->cfg->cdc_reconnect_max_ms
                              ? cdc->cfg->cdc_reconnect_max_ms
                              : backoff * 2;
                continue;
            }
            backoff = cdc->cfg->cdc_reconnect_min_ms;
            pending_phase = true;
            prefetched = false;
            acks_owed = 0;
            atomic_store(&cdc->attached, true);
            LOG_INFO("cdc: attached to redis %s:%d as group %s", cdc->cfg->redis_host,
                     cdc->cfg->redis_port, cdc->group);
            next_gap_check = next_trim = 0;
            /* The groups are positioned now: from here on every change reaches this consumer,
             * so the warm-up may start (once per process; later calls return at once). Its
             * first sample goes out one interval later, after its own old one was read. */
            if (cdc->warm) {
                warm_collect(cdc->warm, ctx);
                if (next_publish == 0)
                    next_publish = now_mono_ms() + cdc->cfg->warm_publish_interval_ms;
            }
        }
        cdc_vouching(cdc); /* logs a transition even when no request asks */
        if (!prefetched) {
            if (test_gate_closed(cdc)) {
                nap(cdc, 20);
                continue;
            }
            if (now_mono_ms() >= next_gap_check) {
                check_gap(cdc, ctx);
                next_gap_check = now_mono_ms() + cdc->cfg->cdc_gap_check_ms;
            }
            if (now_mono_ms() >= next_trim) {
                run_retention(cdc, ctx);
                next_trim = now_mono_ms() + cdc->cfg->cdc_trim_interval_ms;
            }
            if (cdc->warm && now_mono_ms() >= next_publish) {
                warm_publish(cdc->warm, ctx, cdc->group);
                next_publish = now_mono_ms() + cdc->cfg->warm_publish_interval_ms;
            }
            if (append_read(cdc, ctx, pending_phase, true) != REDIS_OK)
                goto lost;
        }
        prefetched = false;
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK)
            goto lost;
        for (; acks_owed > 0; acks_owed--) {
            redisReply *ack = NULL;
            if (redisGetReply(ctx, (void **)&ack) != REDIS_OK) {
                freeReplyObject(r);
                goto lost;
            }
            freeReplyObject(ack);
        }
        if (reply_is_error(r, "NOGROUP")) {
            bool created = false;
            freeReplyObject(r);
            /* stop vouching now; the flush follows the new position */
            atomic_store(&cdc->heard_mono_ms, 0);
            if (ensure_groups(cdc, ctx, true, &created)) {
                redisFree(ctx);
                ctx = NULL;
                atomic_store(&cdc->attached, false);
            }
            continuity_break(cdc, CDC_BREAK_GROUP_MISSING,
                             "the consumer group or the stream vanished (NOGROUP)");
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            set_error(cdc, "XREADGROUP", r->str);
            freeReplyObject(r);
            nap(cdc, backoff);
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY) {
            int64_t now = now_mono_ms();
            full = !pending_phase && changes_batch_full(cdc, r) && now < next_gap_check &&
                   now < next_trim && !test_gate_closed(cdc) && cdc->test_delay_ms == 0;
            if (full) {
                if (append_read(cdc, ctx, false, false) != REDIS_OK || !flush_out(ctx)) {
                    freeReplyObject(r);
                    goto lost;
                }
                prefetched = true;
            }
            seen = process_reply(cdc, ctx, r, pending_phase, &nacks);
        }
        freeReplyObject(r);
        if (prefetched) {
            acks_owed = nacks; /* their replies come after the read's */
        } else {
            for (size_t i = 0; i < nacks; i++) {
                redisReply *ack = NULL;
                if (redisGetReply(ctx, (void **)&ack) != REDIS_OK)
                    goto lost;
                freeReplyObject(ack);
            }
        }
        if (seen)
            atomic_fetch_add(&cdc->batches, 1);
        if (seen && cdc->test_delay_ms > 0)
            nap(cdc, cdc->test_delay_ms);
        if (cdc->pending_gone) {
            cdc->pending_gone = false;
            continuity_break(cdc, CDC_BREAK_PENDING_GONE,
                             "a pending entry was deleted before it could be re-read");
        }
        if (pending_phase && seen == 0)
            pending_phase = false;
        continue;
    lost:
        set_error(cdc, "Redis connection lost", ctx->errstr);
        redisFree(ctx);
        ctx = NULL;
        prefetched = false;
        acks_owed = 0;
        atomic_store(&cdc->attached, false);
        atomic_store(&cdc->group_lag, -1); /* read again once attached */
        atomic_fetch_add(&cdc->reconnects, 1);
    }
    redisFree(ctx);
    atomic_store(&cdc->attached, false);
    return NULL;
}

/* What the ticker last learnt of Debezium's replication slot (wal_status). */
enum slot_state {
    SLOT_UNKNOWN,
    SLOT_MISSING,
    SLOT_RESERVED,
    SLOT_EXTENDED,
    SLOT_UNRESERVED,
    SLOT_LOST
};
static const char *const slot_state_names[] = {"unknown",  "missing",    "reserved",
                                               "extended", "unreserved", "lost"};

static void read_slot(struct cdc *cdc)
{
    char status[32] = "";
    int64_t retained = -1;
    int rc = db_slot_wal(cdc->db, cdc->cfg->cdc_slot_name, &retained, status, sizeof(status));
    int state = SLOT_UNKNOWN;

    if (rc == CDC_ENOTFOUND)
        state = SLOT_MISSING;
    for (int i = SLOT_RESERVED; rc == 0 && i <= SLOT_LOST; i++)
        if (strcmp(status, slot_state_names[i]) == 0)
            state = i;
    atomic_store(&cdc->slot_state, state);
    atomic_store(&cdc->slot_retained, rc == 0 ? retained : -1);
}

/* The watermark ticker: writes the chain's row every tick_ms (db.c skips the write when another
 * replica wrote it within half that), so the chain keeps moving while Debezium is down and a reset
 * that skips WAL skips a link. Logs a failure once, not every tick. */
static void *ticker_main(void *arg)
{
    struct cdc *cdc = arg;
    bool failing = false;

    pthread_setname_np(pthread_self(), "cdc-ticker");
    while (!atomic_load(&cdc->stop)) {
        int rc = db_watermark_tick(cdc->db, cdc->cfg->cdc_tick_ms / 2);
        if (rc && !failing)
            LOG_WARN("cdc: cannot write the watermark row (%s); retrying every %lld ms",
                     cdc_strerror(rc), (long long)cdc->cfg->cdc_tick_ms);
        else if (!rc && failing)
            LOG_INFO("cdc: watermark row written again");
        failing = rc != 0;
        read_slot(cdc);
        nap(cdc, cdc->cfg->cdc_tick_ms);
    }
    return NULL;
}

void cdc_set_warm(struct cdc *cdc, struct warm *warm)
{
    assert(!cdc->running);
    cdc->warm = warm;
}

struct warm *cdc_warm(struct cdc *cdc)
{
    return cdc ? cdc->warm : NULL;
}

int cdc_start(struct cdc *cdc)
{
    if (pthread_create(&cdc->thread, NULL, consumer_main, cdc) != 0)
        return CDC_EINVAL;
    cdc->running = true;
    if (cdc->db && cdc->cfg->cdc_tick_ms > 0) {
        if (pthread_create(&cdc->ticker, NULL, ticker_main, cdc) != 0) {
            cdc_stop(cdc);
            return CDC_EINVAL;
        }
        cdc->ticking = true;
    }
    return 0;
}

void cdc_stop(struct cdc *cdc)
{
    if (!cdc || !cdc->running)
        return;
    atomic_store(&cdc->stop, true);
    pthread_join(cdc->thread, NULL);
    if (cdc->ticking)
        pthread_join(cdc->ticker, NULL);
    cdc->running = cdc->ticking = false;
}

void cdc_destroy(struct cdc *cdc)
{
    if (!cdc)
        return;
    cdc_stop(cdc);
    pthread_mutex_destroy(&cdc->status_lock);
    for (int i = 0; i < cdc->nstreams; i++)
        free(cdc->streams[i]);
    free(cdc->streams);
    free(cdc->gap_seen);
    free(cdc);
}

bool cdc_vouching(struct cdc *cdc)
{
    int64_t heard_at = atomic_load(&cdc->heard_mono_ms);
    bool ok = atomic_load(&cdc->attached) && heard_at > 0 &&
              now_mono_ms() - heard_at <= cdc->cfg->cdc_max_staleness_ms;
    /* Log each transition once (the flag flips only on a change; read first, so the hot path does
     * not write a shared cache line on every request). */
    if (atomic_load_explicit(&cdc->vouch_logged, memory_order_relaxed) != ok &&
        atomic_exchange(&cdc->vouch_logged, ok) != ok) {
        if (ok)
            LOG_INFO("cdc: pipeline healthy again: serving reads from the cache");
        else
            LOG_WARN("cdc: cannot vouch for the cache within %lld ms: reads bypass it",
                     (long long)cdc->cfg->cdc_max_staleness_ms);
    }
    return ok;
}

void cdc_status(struct cdc *cdc, struct cdc_status *out)
{
    int64_t heard_at = atomic_load(&cdc->heard_mono_ms);

    memset(out, 0, sizeof(*out));
    out->enabled = cdc->running;
    out->attached = atomic_load(&cdc->attached);
    out->vouching = cdc_vouching(cdc);
    out->staleness_ms = heard_at > 0 ? now_mono_ms() - heard_at : -1;
    out->max_staleness_ms = cdc->cfg->cdc_max_staleness_ms;
    for (int i = 0; i < CDC_RESULT_COUNT; i++)
        out->results[i] = atomic_load(&cdc->results[i]);
    out->heartbeats = atomic_load(&cdc->heartbeats);
    out->watermarks = atomic_load(&cdc->watermarks);
    out->heartbeat_age_ms = atomic_load(&cdc->heartbeat_mono_ms) > 0
                                ? now_mono_ms() - atomic_load(&cdc->heartbeat_mono_ms)
                                : -1;
    out->reconnects = atomic_load(&cdc->reconnects);
    out->batches = atomic_load(&cdc->batches);
    out->ddl_reloads = atomic_load(&cdc->ddl_reloads);
    out->trims = atomic_load(&cdc->trims);
    out->trimmed = atomic_load(&cdc->trimmed);
    out->groups_removed = atomic_load(&cdc->groups_removed);
    out->consumers_removed = atomic_load(&cdc->consumers_removed);
    out->stream_length = atomic_load(&cdc->stream_length);
    out->group_lag = atomic_load(&cdc->group_lag);
    for (int i = 0; i < CDC_BREAK_COUNT; i++) {
        out->breaks[i] = atomic_load(&cdc->breaks[i]);
        out->gap_flushes += out->breaks[i];
    }
    out->chain_known = atomic_load(&cdc->chain_known_pub);
    out->chain_seq = atomic_load(&cdc->chain_seq_pub);
    out->slot_state = slot_state_names[atomic_load(&cdc->slot_state)];
    out->slot_retained_bytes = atomic_load(&cdc->slot_retained);
    snprintf(out->group, sizeof(out->group), "%s", cdc->group);
    pthread_mutex_lock(&cdc->status_lock);
    snprintf(out->last_error, sizeof(out->last_error), "%s", cdc->last_error);
    pthread_mutex_unlock(&cdc->status_lock);
}

void cdc_metrics_render(struct cdc *cdc, struct metrics_page *p)
{
    struct cdc_status st;
    const uint64_t *r = st.results;
    char lab[64];

    cdc_status(cdc, &st);
    metrics_family(p, "cdcache_cdc_events_total", "counter",
                   "Stream entries by what applying them did.");
    for (int k = 0; k < CDC_RESULT_COUNT; k++) {
        snprintf(lab, sizeof(lab), "result=\"%s\"", cdc_result_name((enum cdc_result)k));
        metrics_sample(p, "cdcache_cdc_events_total", lab, (double)r[k]);
    }
    metrics_scalar(p, "cdcache_cdc_events_applied_total", "counter",
                   "Change events that refreshed or evicted entries (refreshed, evicted, absent, "
                   "incomplete, truncate).",
                   (double)(r[CDC_RESULT_REFRESHED] + r[CDC_RESULT_EVICTED] + r[CDC_RESULT_ABSENT] +
                            r[CDC_RESULT_INCOMPLETE] + r[CDC_RESULT_TRUNCATE]));
    metrics_scalar(p, "cdcache_cdc_events_ignored_total", "counter",
                   "Change events ignored: no newer than the cache, or tombstones.",
                   (double)(r[CDC_RESULT_STALE] + r[CDC_RESULT_TOMBSTONE]));
    metrics_scalar(
        p, "cdcache_cdc_events_poison_total", "counter",
        "Stream entries that could not be decoded (acknowledged, logged, their key evicted).",
        (double)r[CDC_RESULT_POISON]);
    metrics_scalar(p, "cdcache_cdc_heartbeats_total", "counter",
                   "Debezium heartbeats read (liveness only).", (double)st.heartbeats);
    metrics_scalar(p, "cdcache_cdc_watermarks_total", "counter",
                   "Watermark-row changes read (they vouch for freshness).", (double)st.watermarks);
    metrics_scalar(p, "cdcache_cdc_reconnects_total", "counter",
                   "Times the consumer lost its Redis connection and started over.",
                   (double)st.reconnects);
    metrics_scalar(p, "cdcache_cdc_gap_flushes_total", "counter",
                   "Cache flushes because continuity was broken (every reason).",
                   (double)st.gap_flushes);
    metrics_family(p, "cdcache_cdc_continuity_breaks_total", "counter",
                   "Breaks in continuity by reason; each flushed the cache.");
    for (int k = 0; k < CDC_BREAK_COUNT; k++) {
        snprintf(lab, sizeof(lab), "reason=\"%s\"", cdc_break_name((enum cdc_break)k));
        metrics_sample(p, "cdcache_cdc_continuity_breaks_total", lab, (double)st.breaks[k]);
    }
    metrics_scalar(p, "cdcache_cdc_attached", "gauge",
                   "1 while the consumer is connected to Redis with its group in place.",
                   st.attached ? 1 : 0);
    metrics_scalar(p, "cdcache_cdc_vouching", "gauge",
                   "1 when reads may be served from the cache, 0 while bypassing.",
                   st.vouching ? 1 : 0);
    /* Unknown figures are absent, not -1: a sentinel would read as a real value in any rate(),
     * max() or alert threshold. */
    if (st.staleness_ms >= 0)
        metrics_scalar(p, "cdcache_cdc_lag_seconds", "gauge",
                       "Time since the pipeline last vouched for freshness (absent: never since "
                       "start or the last continuity break).",
                       (double)st.staleness_ms / 1000.0);
    metrics_scalar(p, "cdcache_cdc_max_staleness_seconds", "gauge",
                   "The longest the replica serves from its cache without being vouched for "
                   "(cdc.max_staleness_ms).",
                   (double)st.max_staleness_ms / 1000.0);
    metrics_scalar(p, "cdcache_stream_trims_total", "counter",
                   "Retention passes this replica ran holding the trim lock.", (double)st.trims);
    metrics_scalar(p, "cdcache_stream_trimmed_entries_total", "counter",
                   "Entries removed from the streams by this replica's retention passes.",
                   (double)st.trimmed);
    metrics_scalar(p, "cdcache_stream_groups_removed_total", "counter",
                   "Consumer groups of gone replicas deleted.", (double)st.groups_removed);
    metrics_scalar(p, "cdcache_stream_consumers_removed_total", "counter",
                   "Idle consumers of gone replicas deleted.", (double)st.consumers_removed);
    if (st.stream_length >= 0)
        metrics_scalar(p, "cdcache_stream_length", "gauge",
                       "Entries in the change stream (absent until a retention pass read it).",
                       (double)st.stream_length);
    if (st.group_lag >= 0)
        metrics_scalar(p, "cdcache_stream_group_lag", "gauge",
                       "Entries of the change stream not yet delivered to this replica's consumer "
                       "group (XINFO GROUPS lag; absent when Redis cannot tell).",
                       (double)st.group_lag);
    if (st.slot_retained_bytes >= 0)
        metrics_scalar(p, "cdcache_slot_retained_wal_bytes", "gauge",
                       "WAL PostgreSQL keeps for Debezium's replication slot (cdc.slot_name).",
                       (double)st.slot_retained_bytes);
    if (strcmp(st.slot_state, "unknown") != 0) {
        metrics_family(p, "cdcache_slot_wal_status", "gauge",
                       "The slot's wal_status (missing: no such slot; lost: a source reset is "
                       "needed).");
        for (int k = SLOT_MISSING; k <= SLOT_LOST; k++) {
            snprintf(lab, sizeof(lab), "status=\"%s\"", slot_state_names[k]);
            metrics_sample(p, "cdcache_slot_wal_status", lab,
                           strcmp(st.slot_state, slot_state_names[k]) == 0 ? 1 : 0);
        }
    }
}
