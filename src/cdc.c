/* The CDC consumer thread.
 *
 * Loop: connect (backoff doubling from reconnect_min_ms to reconnect_max_ms) -> check Redis's run
 * id (a new one means Redis restarted and events may be lost: flush) -> make sure both groups exist
 * (created at `$` on the first start, since the cache starts empty) -> re-read this consumer's
 * pending entries (delivered but maybe never applied, if the connection broke mid-reply) ->
 * XREADGROUP BLOCK, apply every entry, XACK the batch (pipelined) -> repeat.
 *
 * Gaps flush the cache: NOGROUP (the group vanished; recreated at `$`), a new Redis run id (a
 * restart), and entries deleted past this group's position (XINFO STREAM max-deleted-entry-id above
 * the group's last-delivered-id: the stream was trimmed or XDELed beyond what we read). Every
 * trim_interval_ms the thread also runs stream retention (retention.c).
 *
 * Test hooks, inert unless their environment variable is set: CDCACHE_TEST_CDC_GATE names a file
 * whose presence pauses the consumer (a stuck consumer); CDCACHE_TEST_CDC_DELAY_MS sleeps after
 * every batch (a slow one).
 *
 * Threads: the consumer thread owns the redisContext. Status fields read by HTTP workers are
 * atomics; last_error is guarded by status_lock. */
#include "cdcache/cdc.h"
#include "cdcache/error.h"
#include "cdcache/log.h"
#include "cdcache/metrics.h"
#include "cdcache/retention.h"
#include "cdcache/util.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The streams read, in XREADGROUP order: the items' changes first, so that within one reply they
 * are applied before the watermark that vouches for them. */
enum cdc_stream { STREAM_ITEMS, STREAM_WATERMARK, STREAM_HEARTBEAT, CDC_NSTREAMS };

struct cdc {
    const struct config *cfg;
    struct cache *cache;
    struct metrics *metrics;
    pthread_t thread;
    bool running;
    _Atomic bool stop;

    char group[160];
    char consumer[128];
    char run_id[64];           /* consumer thread only */
    bool groups_made;          /* consumer thread only: a group has been positioned once */
    struct stream_id gap_seen; /* consumer thread only: max-deleted id already flushed for */
    const char *test_gate;     /* CDCACHE_TEST_CDC_GATE */
    int64_t test_delay_ms;     /* CDCACHE_TEST_CDC_DELAY_MS */

    _Atomic bool attached;
    const char *streams[CDC_NSTREAMS];
    _Atomic int64_t heard_mono_ms;     /* last time the pipeline vouched for freshness; 0 never */
    _Atomic int64_t heartbeat_mono_ms; /* last Debezium heartbeat (liveness only); 0 never */
    _Atomic bool vouch_logged;
    _Atomic uint64_t results[CDC_RESULT_COUNT];
    _Atomic uint64_t heartbeats, watermarks, reconnects, gap_flushes, batches;
    _Atomic uint64_t trims, trimmed, groups_removed, consumers_removed;
    _Atomic int64_t stream_length;

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

enum cdc_result cdc_apply(struct cache *c, const struct dbz_event *ev)
{
    switch (ev->op) {
    case DBZ_OP_TOMBSTONE:
        return CDC_RESULT_TOMBSTONE;
    case DBZ_OP_TRUNCATE:
        cache_flush(c);
        return CDC_RESULT_TRUNCATE;
    case DBZ_OP_DELETE:
        return cache_evict(c, ev->key) ? CDC_RESULT_EVICTED : CDC_RESULT_ABSENT;
    case DBZ_OP_CREATE:
    case DBZ_OP_UPDATE:
    case DBZ_OP_READ:
        if (!ev->complete) {
            cache_evict(c, ev->key);
            return CDC_RESULT_INCOMPLETE;
        }
        switch (cache_apply(c, ev->key, ev->version, ev->body.data, ev->body.len)) {
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

struct cdc *cdc_create(const struct config *cfg, struct cache *cache, struct metrics *m)
{
    struct cdc *cdc = xcalloc(1, sizeof(*cdc));
    cdc->cfg = cfg;
    cdc->cache = cache;
    cdc->metrics = m;
    snprintf(cdc->group, sizeof(cdc->group), "%s-%s", cfg->cdc_group_prefix, cfg->cdc_replica_id);
    snprintf(cdc->consumer, sizeof(cdc->consumer), "%s", cfg->cdc_replica_id);
    cdc->streams[STREAM_ITEMS] = cfg->cdc_stream;
    cdc->streams[STREAM_WATERMARK] = cfg->cdc_watermark_stream;
    cdc->streams[STREAM_HEARTBEAT] = cfg->cdc_heartbeat_stream;
    pthread_mutex_init(&cdc->status_lock, NULL);
    atomic_store(&cdc->vouch_logged, true);
    atomic_store(&cdc->stream_length, -1);
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

static void gap_flush(struct cdc *cdc, const char *why)
{
    cache_flush(cdc->cache);
    atomic_fetch_add(&cdc->gap_flushes, 1);
    LOG_WARN("cdc: events may have been lost (%s): cache flushed", why);
}

static bool reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* Reads Redis's run id; a different one than last time means a restart (the stream may have lost
 * entries that were never delivered to us). */
static int check_run_id(struct cdc *cdc, redisContext *ctx)
{
    redisReply *r = redisCommand(ctx, "INFO server");
    const char *p;
    char id[64] = "";
    int rc = CDC_EREDIS;

    if (!r || r->type != REDIS_REPLY_STRING)
        goto out;
    p = strstr(r->str, "run_id:");
    if (p) {
        size_t n = strcspn(p + 7, "\r\n");
        snprintf(id, sizeof(id), "%.*s", (int)(n < sizeof(id) - 1 ? n : sizeof(id) - 1), p + 7);
    }
    if (cdc->run_id[0] && strcmp(cdc->run_id, id) != 0)
        gap_flush(cdc, "Redis restarted: new run id");
    snprintf(cdc->run_id, sizeof(cdc->run_id), "%s", id);
    rc = 0;
out:
    freeReplyObject(r);
    return rc;
}

/* Creates the group on both streams at `$`. reposition: also move an existing group to `$` (first
 * start of this process: the cache is empty, so older entries are of no use). */
static int ensure_groups(struct cdc *cdc, redisContext *ctx, bool reposition)
{
    const char *const *streams = cdc->streams;

    for (int i = 0; i < CDC_NSTREAMS; i++) {
        redisReply *r = redisCommand(ctx, "XGROUP CREATE %s %s $ MKSTREAM", streams[i], cdc->group);
        bool ok = r && (r->type == REDIS_REPLY_STATUS || reply_is_error(r, "BUSYGROUP"));
        bool busy = reply_is_error(r, "BUSYGROUP");
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

static redisContext *connect_redis(struct cdc *cdc)
{
    int64_t t = cdc->cfg->redis_timeout_ms;
    struct timeval tv = {(time_t)(t / 1000), (suseconds_t)(t % 1000) * 1000};
    struct timeval rtv;
    redisContext *ctx = redisConnectWithTimeout(cdc->cfg->redis_host, cdc->cfg->redis_port, tv);

    if (!ctx || ctx->err) {
        set_error(cdc, "connect to Redis failed", ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return NULL;
    }
    /* The read timeout must outlast XREADGROUP's BLOCK. */
    t += cdc->cfg->cdc_block_ms;
    rtv.tv_sec = (time_t)(t / 1000);
    rtv.tv_usec = (suseconds_t)(t % 1000) * 1000;
    redisSetTimeout(ctx, rtv);
    /* registered before the group exists, so no trimmer mistakes the new group for a dead one */
    if (check_run_id(cdc, ctx) || retention_register(ctx, cdc->cfg, cdc->group) ||
        ensure_groups(cdc, ctx, !cdc->groups_made)) {
        set_error(cdc, "Redis setup failed", ctx->err ? ctx->errstr : "command failed");
        redisFree(ctx);
        return NULL;
    }
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
static void check_gap(struct cdc *cdc, redisContext *ctx)
{
    redisReply *info = redisCommand(ctx, "XINFO STREAM %s", cdc->cfg->cdc_stream);
    redisReply *groups = redisCommand(ctx, "XINFO GROUPS %s", cdc->cfg->cdc_stream);
    const redisReply *first = stream_map_get(info, "first-entry");
    const redisReply *lastgen = stream_map_get(info, "last-generated-id");
    const redisReply *maxdel = stream_map_get(info, "max-deleted-entry-id");
    const redisReply *len = stream_map_get(info, "length");
    const redisReply *added = stream_map_get(info, "entries-added");
    struct stream_id last = {0, 0}, probe = {0, 0}, zero = {0, 0};
    bool found = false, gap = false;

    if (!info || info->type != REDIS_REPLY_ARRAY || !groups || groups->type != REDIS_REPLY_ARRAY)
        goto out;
    for (size_t i = 0; i < groups->elements && !found; i++) {
        const redisReply *name = stream_map_get(groups->element[i], "name");
        const redisReply *ld = stream_map_get(groups->element[i], "last-delivered-id");
        found = name && name->type == REDIS_REPLY_STRING && strcmp(name->str, cdc->group) == 0 &&
                ld && ld->type == REDIS_REPLY_STRING && stream_id_parse(ld->str, &last);
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
    if (gap && stream_id_cmp(probe, cdc->gap_seen) != 0) {
        cdc->gap_seen = probe;
        gap_flush(cdc, "entries this replica had not read were removed from the stream");
    }
out:
    freeReplyObject(info);
    freeReplyObject(groups);
}

static void run_retention(struct cdc *cdc, redisContext *ctx)
{
    struct retention_stats st;
    memset(&st, 0, sizeof(st));
    st.stream_length = -1;
    if (retention_tick(ctx, cdc->cfg, cdc->group, cdc->streams, CDC_NSTREAMS, &st))
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
 * max_staleness whose predecessors in the WAL are all applied. A change event qualifies by itself
 * (everything before it in its stream was applied first). A watermark (the row Debezium's
 * heartbeat.action.query upserts) lives in another stream, so it qualifies only when the same
 * XREADGROUP also drained the items' stream. A plain Debezium heartbeat never qualifies: Debezium
 * can emit one right after a restart, before it has streamed the backlog the restart left. */
static void heard(struct cdc *cdc, int64_t commit_ts_ms, bool drained)
{
    if (!drained || commit_ts_ms <= 0 ||
        now_wall_ms() - commit_ts_ms > cdc->cfg->cdc_max_staleness_ms)
        return;
    atomic_store(&cdc->heard_mono_ms, now_mono_ms());
}

static void handle_change(struct cdc *cdc, const char *id, const struct dbz_field *f, size_t n,
                          size_t entry_bytes)
{
    struct dbz_event ev;
    char err[160] = "";
    enum cdc_result res;
    int rc;

    if (entry_bytes > (size_t)cdc->cfg->cdc_max_entry_bytes) {
        rc = CDC_EDECODE;
        memset(&ev, 0, sizeof(ev));
        snprintf(err, sizeof(err), "entry of %zu bytes exceeds cdc.max_entry_bytes", entry_bytes);
    } else {
        rc = dbz_decode(f, n, &ev, err, sizeof(err));
    }
    if (rc) {
        res = CDC_RESULT_POISON;
        if (ev.has_key) {
            cache_evict(cdc->cache, ev.key);
            LOG_WARN("cdc: poison entry %s (%s): evicted key %lld", id, err, (long long)ev.key);
        } else {
            cache_flush(cdc->cache);
            LOG_WARN("cdc: poison entry %s (%s): no readable key, flushed the cache", id, err);
        }
    } else {
        res = cdc_apply(cdc->cache, &ev);
        if (ev.source_ts_ms > 0 && ev.op != DBZ_OP_TOMBSTONE)
            metrics_propagation(cdc->metrics, now_wall_ms() - ev.source_ts_ms);
        if (ev.op != DBZ_OP_TOMBSTONE)
            heard(cdc, ev.source_ts_ms, true);
        LOG_DEBUG("cdc: %s op=%s key=%lld -> %s", id, dbz_op_name(ev.op), (long long)ev.key,
                  cdc_result_name(res));
    }
    atomic_fetch_add(&cdc->results[res], 1);
    dbz_event_clear(&ev);
}

static void handle_signal(struct cdc *cdc, enum cdc_stream kind, const struct dbz_field *f,
                          size_t n, bool drained)
{
    int64_t ts = 0;
    if (dbz_decode_heartbeat(f, n, &ts) != 0)
        return;
    if (kind == STREAM_WATERMARK) {
        atomic_fetch_add(&cdc->watermarks, 1);
        heard(cdc, ts, drained);
    } else {
        atomic_fetch_add(&cdc->heartbeats, 1);
        atomic_store(&cdc->heartbeat_mono_ms, now_mono_ms());
    }
}

/* True when the reply carries a full COUNT of the items' stream: more may be waiting. */
static bool items_batch_full(const struct cdc *cdc, const redisReply *r)
{
    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *sr = r->element[s];
        if (sr->type == REDIS_REPLY_ARRAY && sr->elements == 2 &&
            sr->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(sr->element[0]->str, cdc->cfg->cdc_stream) == 0 &&
            sr->element[1]->type == REDIS_REPLY_ARRAY &&
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
    /* A read that left change entries behind (a full COUNT) has not drained the items' stream. */
    bool drained = !pending && !items_batch_full(cdc, r);

    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *sr = r->element[s];
        const redisReply *entries;
        enum cdc_stream kind = STREAM_ITEMS;
        const char **argv;
        size_t *argl;
        size_t nack = 0;

        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
            sr->element[0]->type != REDIS_REPLY_STRING)
            continue;
        for (int k = 0; k < CDC_NSTREAMS; k++)
            if (strcmp(sr->element[0]->str, cdc->streams[k]) == 0)
                kind = (enum cdc_stream)k;
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
                /* An entry we already acked and that was deleted reads back as nil: skip it. */
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
            if (kind != STREAM_ITEMS)
                handle_signal(cdc, kind, fv, nf, drained);
            else
                handle_change(cdc, er->element[0]->str, fv, nf, bytes);
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
    const char *argv[9 + 2 * CDC_NSTREAMS];
    int n = 0;

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
    for (int k = 0; k < CDC_NSTREAMS; k++)
        argv[n++] = cdc->streams[k];
    for (int k = 0; k < CDC_NSTREAMS; k++)
        argv[n++] = pending ? "0" : ">";
    return redisAppendCommandArgv(ctx, n, argv, NULL);
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
    int64_t next_gap_check = 0, next_trim = 0;
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
            freeReplyObject(r);
            gap_flush(cdc, "consumer group vanished (NOGROUP)");
            if (ensure_groups(cdc, ctx, true)) {
                redisFree(ctx);
                ctx = NULL;
                atomic_store(&cdc->attached, false);
            }
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
            full = !pending_phase && items_batch_full(cdc, r) && now < next_gap_check &&
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
        atomic_fetch_add(&cdc->reconnects, 1);
    }
    redisFree(ctx);
    atomic_store(&cdc->attached, false);
    return NULL;
}

int cdc_start(struct cdc *cdc)
{
    if (pthread_create(&cdc->thread, NULL, consumer_main, cdc) != 0)
        return CDC_EINVAL;
    cdc->running = true;
    return 0;
}

void cdc_stop(struct cdc *cdc)
{
    if (!cdc || !cdc->running)
        return;
    atomic_store(&cdc->stop, true);
    pthread_join(cdc->thread, NULL);
    cdc->running = false;
}

void cdc_destroy(struct cdc *cdc)
{
    if (!cdc)
        return;
    cdc_stop(cdc);
    pthread_mutex_destroy(&cdc->status_lock);
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
    out->gap_flushes = atomic_load(&cdc->gap_flushes);
    out->batches = atomic_load(&cdc->batches);
    out->trims = atomic_load(&cdc->trims);
    out->trimmed = atomic_load(&cdc->trimmed);
    out->groups_removed = atomic_load(&cdc->groups_removed);
    out->consumers_removed = atomic_load(&cdc->consumers_removed);
    out->stream_length = atomic_load(&cdc->stream_length);
    snprintf(out->group, sizeof(out->group), "%s", cdc->group);
    pthread_mutex_lock(&cdc->status_lock);
    snprintf(out->last_error, sizeof(out->last_error), "%s", cdc->last_error);
    pthread_mutex_unlock(&cdc->status_lock);
}
