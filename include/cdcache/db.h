/* PostgreSQL access (libpq): the connection pool, the fixed statements (the watermark chain, the
 * replication slot, a ping) and db_exec() for the statements generated per resource (sql.c).
 *
 * Threads: every function may be called from any thread. Connections come from a pool of at most
 * pool_size, each lent to one thread for one statement (libpq allows one thread per PGconn at a
 * time). A broken connection is closed and replaced on demand; reads are retried once on a fresh
 * one.
 */
#ifndef CDCACHE_DB_H
#define CDCACHE_DB_H

#include "cdcache/util.h"

#include <stdbool.h>
#include <stdint.h>

struct db;

/* Returns a new handle (connections open lazily, up to pool_size; a caller waits up to wait_ms for
 * a free one); release with db_destroy() after every thread that used it has stopped. conninfo is
 * copied. A connection attempt gives up after connect_timeout_ms; a statement after
 * statement_timeout_ms + connect_timeout_ms even when the server does not answer at all. */
struct db *db_create(const char *conninfo, int statement_timeout_ms, int connect_timeout_ms,
                     int pool_size, int wait_ms);
void db_destroy(struct db *db);

/* Writes the watermark chain's row (migrations/000003) unless it was written within min_gap_ms.
 * Returns 0 or CDC_EDB. */
int db_watermark_tick(struct db *db, int64_t min_gap_ms);
/* Reads replication slot `slot`: the WAL it retains (bytes from its restart_lsn to the current
 * position; -1 when it has none, e.g. lost) and its wal_status into status[0..cap). Returns 0,
 * CDC_ENOTFOUND (no such slot) or CDC_EDB. */
int db_slot_wal(struct db *db, const char *slot, int64_t *retained, char *status, size_t cap);
/* Round trip to the server. Returns 0 or CDC_EDB, with the reason in err. */
int db_ping(struct db *db, char *err, size_t errlen);

/* Statements run against PostgreSQL, by name, since start (for /metrics). */
#define DB_STATEMENTS(X)                                                                           \
    X(GET, "get")                                                                                  \
    X(LIST, "list")                                                                                \
    X(CREATE, "create")                                                                            \
    X(UPDATE, "update")                                                                            \
    X(DELETE, "delete")                                                                            \
    X(EXISTS, "exists")                                                                            \
    X(TICK, "tick")                                                                                \
    X(SLOT, "slot")                                                                                \
    X(CATALOG, "catalog")                                                                          \
    X(WARM, "warm")
enum db_statement {
#define DB_STATEMENT_ENUM(name, text) DB_STMT_##name,
    DB_STATEMENTS(DB_STATEMENT_ENUM)
#undef DB_STATEMENT_ENUM
        DB_STMT_COUNT
};
struct db_stats {
    uint64_t queries[DB_STMT_COUNT];
    uint64_t errors;
    uint64_t pool_waits, pool_timeouts; /* borrowers that had to wait; that gave up */
    uint64_t pool_open, pool_idle;      /* connections now */
};
void db_stats(struct db *db, struct db_stats *out);
const char *db_statement_name(enum db_statement s);
struct metrics_page;
/* Appends the database figures to a /metrics page (metrics.h). */
void db_metrics_render(struct db *db, struct metrics_page *p);

/* Runs sql (generated per resource: sql.c, catalog.c) with n text parameters (NULL = SQL NULL)
 * on a pooled connection, within the statement deadline. Returns libpq's result whatever its status
 * (release with PQclear; a server error is a result whose SQLSTATE says what failed), or NULL when
 * no connection could be had, the connection broke or the server did not answer in time. retry:
 * once more on a fresh connection when the connection broke (reads only). which names the
 * statement in /metrics. Thread-safe. */
struct pg_result;
struct pg_result *db_exec(struct db *db, enum db_statement which, const char *sql, int n,
                          const char *const *params, bool retry);

/* Opens a new connection for a one-off job (migrations). Returns a PGconn* as void* to keep libpq
 * out of this header's users; NULL on failure with the reason in err. Release with db_close(). */
void *db_connect_raw(const char *conninfo, char *err, size_t errlen);
void db_close(void *conn);

#endif
