/* Stream retention (guarantee 8): streams do not grow forever.
 *
 * Every replica registers itself as alive in a Redis hash (<group_prefix>:replicas, field = its
 * group, value = Redis server time in ms). One replica at a time (a Redis lock with a TTL,
 * <group_prefix>:trim-lock) then, for each stream: deletes the groups whose replica has not
 * registered within group_dead_after_ms, deletes dead consumers, and trims the stream (XTRIM MINID)
 * to the oldest position any live group still needs (its last-delivered id, or its oldest pending
 * entry), but never entries younger than retention_min_ms.
 *
 * Runs on the CDC thread, on its redisContext; not thread-safe by itself. */
#ifndef CDCACHE_RETENTION_H
#define CDCACHE_RETENTION_H

#include "cdcache/config.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

struct retention_stats {
    uint64_t trims;          /* trimming passes this replica ran while holding the lock */
    uint64_t trimmed;        /* entries removed */
    uint64_t groups_removed; /* dead groups deleted */
    uint64_t consumers_removed;
    int64_t stream_length; /* XLEN of the change streams, summed, at the last tick */
};

/* Registers group as alive. Call before creating the group, then on every tick. Returns 0 or
 * CDC_EREDIS. */
int retention_register(redisContext *ctx, const struct config *cfg, const char *group);

/* One pass: register, then trim the nstreams streams (borrowed) when this replica holds (or wins)
 * the lock. The first nchanges are the resources' change streams, whose lengths are summed into
 * st->stream_length. Adds to *st. Returns 0 or CDC_EREDIS. */
int retention_tick(redisContext *ctx, const struct config *cfg, const char *group,
                   const char *const *streams, int nstreams, int nchanges,
                   struct retention_stats *st);

/* Stream ids "ms-seq" as a pair; parse returns false on malformed input. */
struct stream_id {
    uint64_t ms, seq;
};
bool stream_id_parse(const char *s, struct stream_id *out);
int stream_id_cmp(struct stream_id a, struct stream_id b);
/* Looks a field up in a flat key/value reply (XINFO's maps, HGETALL). Borrowed from m; NULL if
 * absent. */
const redisReply *stream_map_get(const redisReply *m, const char *key);

#endif
