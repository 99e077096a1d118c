/* Migrations. Single-threaded, run by `cdcache migrate`; its own connection, closed at the end. */
#include "cdcache/migrate.h"
#include "cdcache/db.h"
#include "cdcache/error.h"
#include "cdcache/log.h"
#include "cdcache/util.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATE_MAX_FILE (1u << 20)
#define MIGRATE_LOCK_STR "7243101"

struct migration {
    int64_t version;
    char *name;
    char *up;   /* path of the .up.sql file, or NULL */
    char *down; /* path of the .down.sql file, or NULL */
};

static int cmp_migration(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static void free_migrations(struct migration *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].up);
        free(m[i].down);
    }
    free(m);
}

/* Reads dir into a sorted array. Returns the count or -1. */
static long scan_dir(const char *dir, struct migration **out, FILE *log)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct migration *m = NULL;
    size_t n = 0;

    if (!d) {
        fprintf(log, "migrate: cannot open folder %s\n", dir);
        return -1;
    }
    while ((e = readdir(d))) {
        const char *us = strchr(e->d_name, '_');
        size_t len = strlen(e->d_name);
        bool up;
        int64_t v;
        size_t i;
        char path[4096];

        if (!us || us == e->d_name)
            continue;
        if (len > 7 && strcmp(e->d_name + len - 7, ".up.sql") == 0)
            up = true;
        else if (len > 9 && strcmp(e->d_name + len - 9, ".down.sql") == 0)
            up = false;
        else
            continue;
        if (!parse_i64(e->d_name, (size_t)(us - e->d_name), &v) || v < 0)
            continue;
        for (i = 0; i < n && m[i].version != v; i++)
            ;
        if (i == n) {
            m = xrealloc(m, (n + 1) * sizeof(*m));
            memset(&m[n], 0, sizeof(m[n]));
            m[n].version = v;
            m[n].name = xstrndup(us + 1, len - (size_t)(us + 1 - e->d_name) - (up ? 7 : 9));
            n++;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (up)
            m[i].up = xstrdup(path);
        else
            m[i].down = xstrdup(path);
    }
    closedir(d);
    qsort(m, n, sizeof(*m), cmp_migration);
    *out = m;
    return (long)n;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[4096];
    size_t k;

    if (!f)
        return NULL;
    buf_init(&b, MIGRATE_MAX_FILE);
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&b, chunk, k)) {
            buf_free(&b);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    return buf_steal(&b, NULL);
}

static bool exec_cmd(PGconn *c, const char *sql, FILE *log)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(log, "migrate: %s", PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* Reads the current version; -1 when none. Returns false on error. */
static bool current_version(PGconn *c, int64_t *version, bool *dirty, FILE *log)
{
    PGresult *r = PQexec(c, "SELECT version, dirty FROM schema_migrations LIMIT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    *version = -1;
    *dirty = false;
    if (!ok)
        fprintf(log, "migrate: %s", PQerrorMessage(c));
    else if (PQntuples(r) == 1) {
        ok = parse_i64_str(PQgetvalue(r, 0, 0), version);
        *dirty = PQgetvalue(r, 0, 1)[0] == 't';
    }
    PQclear(r);
    return ok;
}

/* Runs one file and records new_version (-1: no version) in the same transaction. */
static bool apply_step(PGconn *c, const char *path, int64_t new_version, FILE *log)
{
    char *sql = read_file(path);
    char set[128];
    bool ok;

    if (!sql) {
        fprintf(log, "migrate: cannot read %s\n", path);
        return false;
    }
    if (new_version >= 0)
        snprintf(set, sizeof(set),
                 "INSERT INTO schema_migrations (version, dirty) VALUES (%lld, false)",
                 (long long)new_version);
    else
        snprintf(set, sizeof(set), "SELECT 1");
    ok = exec_cmd(c, "BEGIN", log) && exec_cmd(c, sql, log) &&
         exec_cmd(c, "DELETE FROM schema_migrations", log) && exec_cmd(c, set, log) &&
         exec_cmd(c, "COMMIT", log);
    if (!ok)
        exec_cmd(c, "ROLLBACK", log);
    free(sql);
    return ok;
}

int migrate_run(const char *conninfo, const char *dir, const char *cmd, int steps, FILE *out)
{
    struct migration *m = NULL;
    long n = scan_dir(dir, &m, out);
    PGconn *c = NULL;
    char err[512];
    int64_t cur;
    bool dirty;
    int rc = CDC_EDB;

    if (n < 0)
        return CDC_EINVAL;
    c = db_connect_raw(conninfo, err, sizeof(err));
    if (!c) {
        fprintf(out, "migrate: cannot connect: %s\n", err);
        goto out;
    }
    if (!exec_cmd(c, "SET client_min_messages = warning", out) ||
        !exec_cmd(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_STR ")", out) ||
        !exec_cmd(c,
                  "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY "
                  "KEY, dirty boolean NOT NULL)",
                  out) ||
        !current_version(c, &cur, &dirty, out))
        goto out;
    if (dirty) {
        fprintf(out, "migrate: database is dirty at version %lld; fix it by hand\n",
                (long long)cur);
        goto out;
    }
    if (strcmp(cmd, "status") == 0) {
        fprintf(out, "current version: %lld\n", (long long)cur);
        for (long i = 0; i < n; i++)
            fprintf(out, "%06lld %-30s %s\n", (long long)m[i].version, m[i].name,
                    m[i].version <= cur ? "applied" : "pending");
        rc = 0;
    } else if (strcmp(cmd, "up") == 0) {
        for (long i = 0; i < n; i++) {
            if (m[i].version <= cur)
                continue;
            if (!m[i].up || !apply_step(c, m[i].up, m[i].version, out))
                goto out;
            fprintf(out, "applied %06lld_%s.up.sql\n", (long long)m[i].version, m[i].name);
        }
        rc = 0;
    } else if (strcmp(cmd, "down") == 0) {
        int done = 0;
        for (long i = n - 1; i >= 0 && (steps <= 0 || done < steps); i--) {
            if (m[i].version > cur)
                continue;
            if (!m[i].down) {
                fprintf(out, "migrate: no down file for version %lld\n", (long long)m[i].version);
                goto out;
            }
            if (!apply_step(c, m[i].down, i > 0 ? m[i - 1].version : -1, out))
                goto out;
            fprintf(out, "reverted %06lld_%s.down.sql\n", (long long)m[i].version, m[i].name);
            done++;
        }
        rc = 0;
    } else {
        fprintf(out, "migrate: unknown command '%s' (up, down, status)\n", cmd);
        rc = CDC_EINVAL;
    }
out:
    db_close(c);
    free_migrations(m, (size_t)n);
    return rc;
}
