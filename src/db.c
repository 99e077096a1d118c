/* PostgreSQL access through a bounded pool (postgres.pool_size). A worker borrows a connection for
 * one statement and gives it back, so one PGconn is used by one thread at a time (libpq's rule) and
 * the number of server connections does not grow with http.threads. The fixed statements are
 * prepared once per connection, resources' statements (sql.c) run unnamed; broken connections are
 * closed and replaced on demand. The session runs in UTC, ISO dates, hex bytea and shortest floats,
 * the text forms the codecs (codec.c) read and render as they render Debezium's.
 *
 * Nothing waits on the server forever: connections are opened with connect_timeout, TCP keepalives
 * and tcp_user_timeout (defaults the conninfo may override), and every statement is sent
 * asynchronously and awaited with poll() up to statement_timeout + connect_timeout. A statement
 * that outlives that deadline (a paused or partitioned server, which enforces no
 * statement_timeout) closes its connection and fails, so a worker answers 503 and SIGTERM never
 * waits on a dead host. */
#include "cdcache/db.h"
#include "cdcache/error.h"
#include "cdcache/log.h"
#include "cdcache/metrics.h"

#include <assert.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* In the order of enum db_statement. Statements with SQL are prepared on every connection; the
 * others are generated per resource (sql.c, catalog.c) and run through db_exec(). */
static const struct {
    const char *name;
    const char *sql;
    int nparams;
} statements[] = {
    {"get", NULL, 0},
    {"list", NULL, 0},
    {"create", NULL, 0},
    {"update", NULL, 0},
    {"delete", NULL, 0},
    {"exists", NULL, 0},
    /* the watermark chain (migrations/000003): skipped when another replica wrote it within $1 ms
     */
    {"tick",
     "INSERT INTO inventory.cdcache_watermark AS w (id, ts) VALUES (1, now()) ON CONFLICT (id) DO "
     "UPDATE SET ts = now() WHERE w.ts < now() - make_interval(secs => $1::double precision / "
     "1000)",
     1},
    /* the replication slot's retained WAL, for /metrics (wal_status: reserved, extended,
     * unreserved, lost) */
    {"slot",
     "SELECT wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM "
     "pg_replication_slots WHERE slot_name = $1",
     1},
    {"catalog", NULL, 0},
    {"warm", NULL, 0},
};
_Static_assert(sizeof(statements) / sizeof(statements[0]) == DB_STMT_COUNT,
               "one row per enum db_statement");

struct db {
    _Atomic uint64_t queries[DB_STMT_COUNT];
    _Atomic uint64_t errors;
    _Atomic uint64_t pool_waits, pool_timeouts;
    char *conninfo;
    int statement_timeout_ms;
    int connect_timeout_ms;
    int wait_ms;
    pthread_mutex_t lock; /* guards idle, nidle and open */
    pthread_cond_t freed; /* signalled when a connection returns or a slot opens */
    PGconn **idle;        /* connections not lent out; at most max */
    int nidle;
    int open; /* connections existing (idle + lent out + being opened) */
    int max;
};

struct db *db_create(const char *conninfo, int statement_timeout_ms, int connect_timeout_ms,
                     int pool_size, int wait_ms)
{
    struct db *db = xcalloc(1, sizeof(*db));
    pthread_condattr_t ca;

    db->conninfo = xstrdup(conninfo);
    db->statement_timeout_ms = statement_timeout_ms;
    db->connect_timeout_ms = connect_timeout_ms;
    db->max = pool_size > 0 ? pool_size : 1;
    db->wait_ms = wait_ms;
    db->idle = xcalloc((size_t)db->max, sizeof(*db->idle));
    pthread_mutex_init(&db->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->freed, &ca);
    pthread_condattr_destroy(&ca);
    return db;
}

void db_destroy(struct db *db)
{
    if (!db)
        return;
    for (int i = 0; i < db->nidle; i++)
        PQfinish(db->idle[i]);
    pthread_mutex_destroy(&db->lock);
    pthread_cond_destroy(&db->freed);
    free(db->idle);
    free(db->conninfo);
    free(db);
}

/* Connects with timeouts and keepalives that conninfo may override (its values come after ours). */
static PGconn *connect_timed(const char *conninfo, int connect_timeout_ms)
{
    char secs[16], idle[16], user[16];
    const char *keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *vals[] = {secs, "1", idle, "1", "3", user, conninfo, NULL};
    int s = (connect_timeout_ms + 999) / 1000;

    snprintf(secs, sizeof(secs), "%d", s < 2 ? 2 : s); /* libpq's floor is 2 s */
    snprintf(idle, sizeof(idle), "%d", s < 1 ? 1 : s);
    snprintf(user, sizeof(user), "%d", connect_timeout_ms);
    return PQconnectdbParams(keys, vals, 1);
}

void *db_connect_raw(const char *conninfo, char *err, size_t errlen)
{
    PGconn *c = connect_timed(conninfo, 10000);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        for (char *p = err; *p; p++)
            if (*p == '\n')
                *p = ' ';
        PQfinish(c);
        return NULL;
    }
    return c;
}

void db_close(void *conn)
{
    PQfinish(conn);
}

/* Waits for the results of what was sent on c until deadline_ms (monotonic). Returns the last
 * result (release with PQclear), or NULL with *dead set when the server did not answer in time
 * (*timed_out too) or the connection failed: the connection is then unusable. */
static PGresult *await_result(PGconn *c, int64_t deadline_ms, bool *dead, bool *timed_out)
{
    PGresult *last = NULL, *r;

    for (;;) {
        while (PQisBusy(c)) {
            struct pollfd pfd = {PQsocket(c), POLLIN, 0};
            int64_t left = deadline_ms - now_mono_ms();
            int n;
            if (left <= 0) {
                *timed_out = true;
                goto fail;
            }
            n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 || (n > 0 && !PQconsumeInput(c)))
                goto fail;
        }
        r = PQgetResult(c);
        if (!r)
            return last;
        PQclear(last);
        last = r;
    }
fail:
    *dead = true;
    PQclear(last);
    return NULL;
}

/* Runs sql (no parameters) within timeout_ms. Returns a result or NULL (*dead: give c up;
 * *timed_out: because the server did not answer). */
static PGresult *exec_timed(PGconn *c, const char *sql, int timeout_ms, bool *dead, bool *timed_out)
{
    if (!PQsendQuery(c, sql)) {
        *dead = PQstatus(c) != CONNECTION_OK;
        return NULL;
    }
    return await_result(c, now_mono_ms() + timeout_ms, dead, timed_out);
}

static bool exec_ok(PGconn *c, const char *sql)
{
    bool dead = false, timed_out = false;
    PGresult *r = exec_timed(c, sql, 10000, &dead, &timed_out);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        LOG_WARN("db: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* Opens and prepares a new connection; NULL when the server is unreachable. */
static PGconn *open_conn(struct db *db)
{
    char sql[96];
    char err[256];
    PGconn *c = connect_timed(db->conninfo, db->connect_timeout_ms);

    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, sizeof(err), "%s", PQerrorMessage(c));
        for (char *p = err; *p; p++)
            if (*p == '\n')
                *p = ' ';
        LOG_WARN("db: connect failed: %s", err);
        PQfinish(c);
        return NULL;
    }
    snprintf(sql, sizeof(sql), "SET statement_timeout = %d", db->statement_timeout_ms);
    if (!exec_ok(c, "SET TimeZone = 'UTC'") || !exec_ok(c, "SET DateStyle = 'ISO, YMD'") ||
        !exec_ok(c, "SET IntervalStyle = 'postgres'") || !exec_ok(c, "SET bytea_output = 'hex'") ||
        !exec_ok(c, "SET extra_float_digits = 1") || !exec_ok(c, sql))
        goto fail;
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
        if (!statements[i].sql)
            continue;
        PGresult *r =
            PQprepare(c, statements[i].name, statements[i].sql, statements[i].nparams, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            LOG_ERROR("db: prepare %s: %s", statements[i].name, PQerrorMessage(c));
        PQclear(r);
        if (!ok)
            goto fail;
    }
    return c;
fail:
    PQfinish(c);
    return NULL;
}

/* True when an idle connection may have been closed by the server: its socket is readable (EOF, a
 * FATAL "terminating connection" message, an error). An idle connection is sent nothing else but
 * the rare notice or parameter change, so one that is readable is given up: a reconnect costs
 * little, a write failed on a dead connection cannot be retried. */
static bool closed_by_server(PGconn *c)
{
    struct pollfd pfd = {PQsocket(c), POLLIN, 0};

    return pfd.fd < 0 || poll(&pfd, 1, 0) != 0;
}

/* Borrows a connection from the pool, opening one while fewer than pool_size exist, else waiting up
 * to pool_wait_ms for one to come back. Returns NULL on timeout or when no connection can be
 * opened. Give it back with release(). */
static PGconn *acquire(struct db *db)
{
    struct timespec deadline;
    int64_t ns = now_mono_ns() + (int64_t)db->wait_ms * 1000000;
    PGconn *c = NULL;
    bool waited = false;

    deadline.tv_sec = ns / 1000000000;
    deadline.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&db->lock);
    while (db->nidle == 0 && db->open >= db->max) {
        if (!waited) {
            waited = true;
            atomic_fetch_add_explicit(&db->pool_waits, 1, memory_order_relaxed);
        }
        if (pthread_cond_timedwait(&db->freed, &db->lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&db->lock);
            atomic_fetch_add_explicit(&db->pool_timeouts, 1, memory_order_relaxed);
            LOG_WARN("db: no connection free within postgres.pool_wait_ms");
            return NULL;
        }
    }
    if (db->nidle > 0) {
        c = db->idle[--db->nidle];
        pthread_mutex_unlock(&db->lock);
        if (!closed_by_server(c))
            return c;
        /* The server closed it while it sat idle (a restart, a fenced primary): reopen in its slot
         * rather than fail a statement on it. A write sent on such a connection could not be
         * retried safely, since whether it ran would be unknown. */
        PQfinish(c); /* its slot, still counted in open, is ours */
    } else {
        db->open++; /* a slot is ours: connect outside the lock */
        pthread_mutex_unlock(&db->lock);
    }
    c = open_conn(db);
    if (!c) {
        pthread_mutex_lock(&db->lock);
        db->open--;
        pthread_cond_signal(&db->freed);
        pthread_mutex_unlock(&db->lock);
    }
    return c;
}

/* Returns a borrowed connection; a broken one (or one given up: dead) is closed and its slot
 * freed. */
static void release(struct db *db, PGconn *c, bool dead)
{
    bool broken = dead || PQstatus(c) != CONNECTION_OK;
    if (broken)
        PQfinish(c);
    pthread_mutex_lock(&db->lock);
    if (broken)
        db->open--;
    else
        db->idle[db->nidle++] = c;
    pthread_cond_signal(&db->freed);
    pthread_mutex_unlock(&db->lock);
}

/* Runs a statement: the prepared one `which` when sql is NULL, else sql with its parameters
 * (unnamed, parsed each time: generated per resource). Retries once on a fresh connection when the
 * connection broke and retry is allowed (reads). Returns a result (release with PQclear), or NULL;
 * with keep_errors, a result that holds a server error is returned too (its SQLSTATE tells the
 * caller what went wrong) instead of NULL. */
static PGresult *run_sql(struct db *db, enum db_statement which, const char *sql, int n,
                         const char *const *params, bool retry, bool keep_errors)
{
    const char *stmt = db_statement_name(which);
    assert(sql || statements[which].sql);
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = acquire(db);
        PGresult *r;
        ExecStatusType st;
        bool alive;
        int sent;
        if (!c) {
            atomic_fetch_add_explicit(&db->errors, 1, memory_order_relaxed);
            return NULL;
        }
        bool dead = false, timed_out = false;
        atomic_fetch_add_explicit(&db->queries[which], 1, memory_order_relaxed);
        sent = sql ? PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)
                   : PQsendQueryPrepared(c, stmt, n, params, NULL, NULL, 0);
        if (sent)
            r = await_result(c, now_mono_ms() + db->statement_timeout_ms + db->connect_timeout_ms,
                             &dead, &timed_out);
        else
            r = NULL;
        st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
            LOG_WARN("db: %s: %s", stmt,
                     timed_out ? "no answer within postgres.statement_timeout_ms + "
                                 "connect_timeout_ms"
                               : PQerrorMessage(c));
        alive = !dead && PQstatus(c) == CONNECTION_OK;
        release(db, c, dead);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            return r;
        atomic_fetch_add_explicit(&db->errors, 1, memory_order_relaxed);
        /* a server's answer (a constraint, a bad value) is not retried: the caller reads it */
        if (keep_errors && r && alive)
            return r;
        PQclear(r);
        /* a connection that broke is retried once on a fresh one (a restarted server); one that
         * timed out is not: the server is not answering */
        if (alive || timed_out || !retry)
            return NULL;
    }
    return NULL;
}

static PGresult *run(struct db *db, enum db_statement which, int n, const char *const *params,
                     bool retry)
{
    return run_sql(db, which, NULL, n, params, retry, false);
}

struct pg_result *db_exec(struct db *db, enum db_statement which, const char *sql, int n,
                          const char *const *params, bool retry)
{
    return run_sql(db, which, sql, n, params, retry, true);
}

int db_ping(struct db *db, char *err, size_t errlen)
{
    PGconn *c = acquire(db);
    PGresult *r;
    bool dead = false, timed_out = false;
    int rc;

    if (!c) {
        snprintf(err, errlen, "cannot connect (or no pooled connection free)");
        return CDC_EDB;
    }
    r = exec_timed(c, "SELECT 1", db->connect_timeout_ms, &dead, &timed_out);
    rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : CDC_EDB;
    if (rc)
        snprintf(err, errlen, "%s",
                 timed_out ? "no answer within postgres.connect_timeout_ms" : PQerrorMessage(c));
    PQclear(r);
    release(db, c, dead);
    return rc;
}

void db_stats(struct db *db, struct db_stats *out)
{
    for (int i = 0; i < DB_STMT_COUNT; i++)
        out->queries[i] = atomic_load_explicit(&db->queries[i], memory_order_relaxed);
    out->errors = atomic_load_explicit(&db->errors, memory_order_relaxed);
    out->pool_waits = atomic_load_explicit(&db->pool_waits, memory_order_relaxed);
    out->pool_timeouts = atomic_load_explicit(&db->pool_timeouts, memory_order_relaxed);
    pthread_mutex_lock(&db->lock);
    out->pool_open = (uint64_t)db->open;
    out->pool_idle = (uint64_t)db->nidle;
    pthread_mutex_unlock(&db->lock);
}

const char *db_statement_name(enum db_statement s)
{
    return (unsigned)s < DB_STMT_COUNT ? statements[s].name : "unknown";
}

void db_metrics_render(struct db *db, struct metrics_page *p)
{
    struct db_stats ds;
    char lab[64];

    db_stats(db, &ds);
    metrics_family(p, "cdcache_db_queries_total", "counter", "Statements sent to PostgreSQL.");
    for (int k = 0; k < DB_STMT_COUNT; k++) {
        snprintf(lab, sizeof(lab), "statement=\"%s\"", db_statement_name((enum db_statement)k));
        metrics_sample(p, "cdcache_db_queries_total", lab, (double)ds.queries[k]);
    }
    metrics_scalar(p, "cdcache_db_errors_total", "counter",
                   "Statements that failed (connection or query errors).", (double)ds.errors);
    metrics_scalar(p, "cdcache_db_pool_waits_total", "counter",
                   "Statements that waited for a pooled connection.", (double)ds.pool_waits);
    metrics_scalar(p, "cdcache_db_pool_timeouts_total", "counter",
                   "Statements that gave up waiting for a pooled connection.",
                   (double)ds.pool_timeouts);
    metrics_scalar(p, "cdcache_db_pool_connections", "gauge",
                   "Open PostgreSQL connections in the pool.", (double)ds.pool_open);
    metrics_scalar(p, "cdcache_db_pool_idle", "gauge", "Idle PostgreSQL connections in the pool.",
                   (double)ds.pool_idle);
}

int db_watermark_tick(struct db *db, int64_t min_gap_ms)
{
    char gap[24];
    const char *params[1] = {gap};
    PGresult *r;

    snprintf(gap, sizeof(gap), "%lld", (long long)min_gap_ms);
    r = run(db, DB_STMT_TICK, 1, params, false);
    PQclear(r);
    return r ? 0 : CDC_EDB;
}

int db_slot_wal(struct db *db, const char *slot, int64_t *retained, char *status, size_t cap)
{
    const char *params[1] = {slot};
    PGresult *r = run(db, DB_STMT_SLOT, 1, params, false);
    int rc = CDC_ENOTFOUND;

    if (!r)
        return CDC_EDB;
    if (PQntuples(r) == 1) {
        snprintf(status, cap, "%s", PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
        if (PQgetisnull(r, 0, 1) || !parse_i64_str(PQgetvalue(r, 0, 1), retained))
            *retained = -1;
        rc = 0;
    }
    PQclear(r);
    return rc;
}
