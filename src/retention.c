/* Stream retention; see retention.h for the rules. Every command runs on the caller's redisContext
 * (the CDC thread's). Times come from Redis's TIME so that replicas on different hosts agree. */
#include "cdcache/retention.h"
#include "cdcache/error.h"
#include "cdcache/log.h"
#include "cdcache/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool stream_id_parse(const char *s, struct stream_id *out)
{
    const char *dash = s ? strchr(s, '-') : NULL;
    int64_t ms, seq;
    if (!dash || !parse_i64(s, (size_t)(dash - s), &ms) || !parse_i64_str(dash + 1, &seq) ||
        ms < 0 || seq < 0)
        return false;
    out->ms = (uint64_t)ms;
    out->seq = (uint64_t)seq;
    return true;
}

int stream_id_cmp(struct stream_id a, struct stream_id b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

static bool server_ms(redisContext *ctx, int64_t *ms)
{
    redisReply *r = redisCommand(ctx, "TIME");
    int64_t sec, usec;
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              parse_i64_str(r->element[0]->str, &sec) && parse_i64_str(r->element[1]->str, &usec);
    if (ok)
        *ms = sec * 1000 + usec / 1000;
    freeReplyObject(r);
    return ok;
}

int retention_register(redisContext *ctx, const struct config *cfg, const char *group)
{
    int64_t now;
    redisReply *r;
    bool ok;

    if (!server_ms(ctx, &now))
        return CDC_EREDIS;
    r = redisCommand(ctx, "HSET %s:replicas %s %lld", cfg->cdc_group_prefix, group, (long long)now);
    ok = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    return ok ? 0 : CDC_EREDIS;
}

const redisReply *stream_map_get(const redisReply *m, const char *key)
{
    if (!m || m->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < m->elements; i += 2)
        if (m->element[i]->type == REDIS_REPLY_STRING && strcmp(m->element[i]->str, key) == 0)
            return m->element[i + 1];
    return NULL;
}

static int64_t map_int(const redisReply *m, const char *key)
{
    const redisReply *v = stream_map_get(m, key);
    return v && v->type == REDIS_REPLY_INTEGER ? (int64_t)v->integer : -1;
}

/* Is the replica that owns group still registered? */
static bool group_alive(const redisReply *registry, const char *group, int64_t now,
                        int64_t dead_after)
{
    const redisReply *v = stream_map_get(registry, group);
    int64_t seen;
    return v && v->type == REDIS_REPLY_STRING && parse_i64_str(v->str, &seen) &&
           now - seen <= dead_after;
}

static void drop_dead_consumers(redisContext *ctx, const char *stream, const char *group,
                                int64_t dead_after, struct retention_stats *st)
{
    redisReply *cs = redisCommand(ctx, "XINFO CONSUMERS %s %s", stream, group);
    if (cs && cs->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < cs->elements; i++) {
            const redisReply *name = stream_map_get(cs->element[i], "name");
            if (name && name->type == REDIS_REPLY_STRING &&
                map_int(cs->element[i], "idle") > dead_after) {
                redisReply *d =
                    redisCommand(ctx, "XGROUP DELCONSUMER %s %s %s", stream, group, name->str);
                freeReplyObject(d);
                st->consumers_removed++;
            }
        }
    }
    freeReplyObject(cs);
}

/* The oldest id group still needs: its oldest pending entry, else its last-delivered id. */
static bool group_floor(redisContext *ctx, const char *stream, const redisReply *g,
                        struct stream_id *out)
{
    const redisReply *name = stream_map_get(g, "name"),
                     *last = stream_map_get(g, "last-delivered-id");
    if (!name || !last || !stream_id_parse(last->str, out))
        return false;
    if (map_int(g, "pending") > 0) {
        redisReply *p = redisCommand(ctx, "XPENDING %s %s", stream, name->str);
        struct stream_id oldest;
        if (p && p->type == REDIS_REPLY_ARRAY && p->elements >= 2 &&
            p->element[1]->type == REDIS_REPLY_STRING &&
            stream_id_parse(p->element[1]->str, &oldest) && stream_id_cmp(oldest, *out) < 0)
            *out = oldest;
        freeReplyObject(p);
    }
    return true;
}

static int trim_stream(redisContext *ctx, const struct config *cfg, const char *stream, int64_t now,
                       const redisReply *registry, struct retention_stats *st)
{
    redisReply *groups = redisCommand(ctx, "XINFO GROUPS %s", stream);
    struct stream_id floor = {(uint64_t)(now - cfg->cdc_retention_min_ms), 0};
    int rc = 0;

    if (!groups)
        return CDC_EREDIS;
    if (groups->type != REDIS_REPLY_ARRAY) { /* no such stream yet */
        freeReplyObject(groups);
        return 0;
    }
    if (now < cfg->cdc_retention_min_ms)
        floor.ms = 0;
    for (size_t i = 0; i < groups->elements; i++) {
        const redisReply *g = groups->element[i];
        const redisReply *name = stream_map_get(g, "name");
        struct stream_id need;
        if (!name || name->type != REDIS_REPLY_STRING)
            continue;
        if (!stream_map_get(registry, name->str)) {
            /* Never registered, or the registry itself was lost (FLUSHALL, an operator's DEL):
             * not proof that the replica is gone. Start its clock now; a live replica
             * re-registers within trim_interval_ms, a dead one is removed after dead_after. */
            redisReply *r = redisCommand(ctx, "HSETNX %s:replicas %s %lld", cfg->cdc_group_prefix,
                                         name->str, (long long)now);
            freeReplyObject(r);
        } else if (!group_alive(registry, name->str, now, cfg->cdc_group_dead_after_ms)) {
            redisReply *d = redisCommand(ctx, "XGROUP DESTROY %s %s", stream, name->str);
            freeReplyObject(d);
            st->groups_removed++;
            LOG_INFO("retention: removed group %s of %s: its replica is gone", name->str, stream);
            continue;
        }
        drop_dead_consumers(ctx, stream, name->str, cfg->cdc_group_dead_after_ms, st);
        if (group_floor(ctx, stream, g, &need) && stream_id_cmp(need, floor) < 0)
            floor = need;
    }
    freeReplyObject(groups);
    {
        redisReply *t = redisCommand(ctx, "XTRIM %s MINID %llu-%llu", stream,
                                     (unsigned long long)floor.ms, (unsigned long long)floor.seq);
        if (t && t->type == REDIS_REPLY_INTEGER)
            st->trimmed += (uint64_t)t->integer;
        else
            rc = CDC_EREDIS;
        freeReplyObject(t);
    }
    return rc;
}

/* True when this replica holds the trim lock (taking it if free). */
static bool hold_lock(redisContext *ctx, const struct config *cfg, const char *group)
{
    long long ttl = (long long)cfg->cdc_trim_interval_ms * 3;
    redisReply *r =
        redisCommand(ctx, "SET %s:trim-lock %s NX PX %lld", cfg->cdc_group_prefix, group, ttl);
    bool held = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (held)
        return true;
    r = redisCommand(ctx, "GET %s:trim-lock", cfg->cdc_group_prefix);
    held = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, group) == 0;
    freeReplyObject(r);
    if (held) {
        r = redisCommand(ctx, "PEXPIRE %s:trim-lock %lld", cfg->cdc_group_prefix, ttl);
        freeReplyObject(r);
    }
    return held;
}

int retention_tick(redisContext *ctx, const struct config *cfg, const char *group,
                   const char *const *streams, int nstreams, int nchanges,
                   struct retention_stats *st)
{
    redisReply *registry = NULL, *len;
    int64_t now, total = 0;
    int rc = CDC_EREDIS;

    if (retention_register(ctx, cfg, group) || !server_ms(ctx, &now))
        return CDC_EREDIS;
    for (int i = 0; i < nchanges && total >= 0; i++) {
        len = redisCommand(ctx, "XLEN %s", streams[i]);
        total = len && len->type == REDIS_REPLY_INTEGER ? total + (int64_t)len->integer : -1;
        freeReplyObject(len);
    }
    st->stream_length = total;
    if (!hold_lock(ctx, cfg, group))
        return 0;
    registry = redisCommand(ctx, "HGETALL %s:replicas", cfg->cdc_group_prefix);
    if (!registry || registry->type != REDIS_REPLY_ARRAY)
        goto out;
    for (int i = 0; i < nstreams; i++)
        if (trim_stream(ctx, cfg, streams[i], now, registry, st))
            goto out;
    /* forget replicas gone for good, so the registry does not grow either */
    for (size_t i = 0; i + 1 < registry->elements; i += 2) {
        int64_t seen;
        if (parse_i64_str(registry->element[i + 1]->str, &seen) &&
            now - seen > cfg->cdc_group_dead_after_ms) {
            redisReply *d = redisCommand(ctx, "HDEL %s:replicas %s", cfg->cdc_group_prefix,
                                         registry->element[i]->str);
            freeReplyObject(d);
        }
    }
    st->trims++;
    rc = 0;
out:
    freeReplyObject(registry);
    return rc;
}
