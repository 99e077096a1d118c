/* Decoding of Debezium Server's Redis sink entries for any resource (resource.h): the key names the
 * row by the resource's key column, the after-image is rendered through row.h (the same codecs as
 * query rows). Pure: no I/O, no globals,
 * thread-safe, and safe on any input (it is a fuzz target).
 *
 * Formats accepted (see debezium-server-redis, RedisStreamChangeConsumer):
 *  - "compact": one field per entry; its NAME is the key JSON and its value is the value JSON;
 *  - "extended": fields "key" and "value" (plus upper-cased header fields, ignored).
 * A null key or value is written by the sink as the literal string "default" (null.key,
 * null.value): a null value is a tombstone, and a truncate carries a null key. */
#ifndef CDCACHE_DEBEZIUM_H
#define CDCACHE_DEBEZIUM_H

#include "cdcache/resource.h"
#include "cdcache/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DBZ_NULL_MARKER "default"
#define DBZ_UNAVAILABLE "__debezium_unavailable_value"
#define DBZ_KEY_MAX     512 /* the longest key, as cache.h's CACHE_MAX_KEY */

enum dbz_op {
    DBZ_OP_CREATE,
    DBZ_OP_UPDATE,
    DBZ_OP_DELETE,
    DBZ_OP_READ, /* snapshot read */
    DBZ_OP_TRUNCATE,
    DBZ_OP_TOMBSTONE,
};

/* One field of a stream entry, borrowed from the Redis reply. */
struct dbz_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A decoded change. Owns body; release with dbz_event_clear(). */
struct dbz_event {
    enum dbz_op op;
    bool has_key;              /* key holds the row's key (from the key, `after` or `before`) */
    char key[DBZ_KEY_MAX + 1]; /* its canonical text (codec_key_canon), NUL-terminated */
    size_t key_len;
    bool complete;   /* c/u/r only: the after-image renders exactly as a query would (every column,
                        no placeholder, no column the descriptor does not know) */
    int64_t version; /* c/u/r with complete */
    int64_t source_ts_ms; /* source.ts_ms (commit time in PostgreSQL), 0 when absent */
    bool source_fresh;    /* source.sequence names no previous commit: the source started without
                             offsets (Debezium's first transaction after such a start) */
    struct buf body;      /* c/u/r with complete: the row's canonical JSON (row_render_dbz) */
};

/* Decodes one entry of n fields of resource r's stream. Returns 0 and fills *ev; or CDC_EDECODE
 * with a reason in err, in which case ev->has_key/ev->key still say which key the entry names when
 * that much could be read (poison handling evicts it). Call dbz_event_clear() in both cases. */
int dbz_decode(const struct resource *r, const struct dbz_field *fields, size_t n,
               struct dbz_event *ev, char *err, size_t errlen);

/* A DDL signal (cdcache.ddl_signal's change event, written by the event trigger `cdcache prepare`
 * installs): the altered table as "schema.table" into out[0..cap). Returns 0 or CDC_EDECODE. */
int dbz_decode_ddl(const struct dbz_field *fields, size_t n, char *out, size_t cap);

/* A watermark row's change event (inventory.cdcache_watermark: id, ts, seq, origin), or a
 * Debezium heartbeat ({"ts_ms":...}). */
struct dbz_watermark {
    int64_t ts_ms;     /* source.ts_ms (the commit time), or a heartbeat's ts_ms */
    bool has_seq;      /* after.seq and after.origin were read */
    int64_t seq;       /* the chain: +1 on every write of the row, whoever writes it */
    int64_t origin;    /* the writing PostgreSQL server's start time (us): changes on a restart or
                          a failover */
    bool source_fresh; /* as in struct dbz_event */
};
/* Decodes a watermark or heartbeat entry. Returns 0, or CDC_EDECODE when it has no timestamp. */
int dbz_decode_watermark(const struct dbz_field *fields, size_t n, struct dbz_watermark *wm);

void dbz_event_clear(struct dbz_event *ev);

/* Name of an op for logs and metrics ("c", "u", "d", "r", "t", "tombstone"). */
const char *dbz_op_name(enum dbz_op op);

#endif
