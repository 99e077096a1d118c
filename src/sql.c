/* SQL generated from a resource's descriptor. Statements are built per call into a small buffer
 * (a few hundred bytes: cheaper than a round trip, and always in step with the current descriptor
 * after DDL) and run unnamed with their values as text parameters. The select list is row.h's:
 * the exposed columns, then the version column, each as its text output. */
#include "cdcache/sql.h"
#include "cdcache/cache.h"
#include "cdcache/codec.h"
#include "cdcache/db.h"
#include "cdcache/error.h"
#include "cdcache/filter.h"
#include "cdcache/log.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_CAP (1u << 20)

static void select_list(const struct resource *r, struct buf *sql)
{
    size_t n = row_select_count(r);
    for (size_t i = 0; i < n; i++) {
        buf_puts(sql, i ? ", " : "");
        buf_puts(sql, r->columns[row_select_column(r, i)].quoted);
    }
}

static void key_where(const struct resource *r, struct buf *sql)
{
    const struct resource_column *k = &r->columns[r->key];
    buf_printf(sql, " WHERE %s = $1::%s", k->quoted, k->sql_type);
}

/* The one column a check constraint of r's table is on, into out (empty when it spans several):
 * PostgreSQL names no column for a check violation. Only on that error path. */
static void check_column(struct db *db, const struct resource *r, const char *constraint, char *out,
                         size_t cap)
{
    static const char q[] =
        "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND "
        "a.attnum = c.conkey[1] WHERE c.conname = $1 AND c.conrelid = $2::regclass AND "
        "array_length(c.conkey, 1) = 1";
    const char *params[2] = {constraint, r->qualified};
    PGresult *res = db_exec(db, DB_STMT_CATALOG, q, 2, params, true);

    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Maps a failed result to a status, reading SQLSTATE. */
static int failure(struct db *db, const struct resource *r, PGresult *res, struct sql_error *e)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *col = res ? PQresultErrorField(res, PG_DIAG_COLUMN_NAME) : NULL;
    const char *con = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;

    if (!state)
        return CDC_EDB;
    if (strcmp(state, "42703") == 0 || strcmp(state, "42P01") == 0 || strcmp(state, "42804") == 0 ||
        strcmp(state, "0A000") == 0)
        return CDC_ESCHEMA; /* a column or the table moved under us (DDL) */
    if (e) {
        snprintf(e->detail, sizeof(e->detail), "%s", msg ? msg : "refused by PostgreSQL");
        snprintf(e->field, sizeof(e->field), "%s", col ? col : "");
        if (!col && con && strcmp(state, "23514") == 0)
            check_column(db, r, con, e->field, sizeof(e->field));
    }
    /* a taken key or unique value, a row others still reference or a reference to no row: the
     * request conflicts with what the database holds (409, as PostgREST answers) */
    if (strcmp(state, "23505") == 0 || strcmp(state, "23503") == 0)
        return CDC_EDUPLICATE;
    /* data exceptions (22...) and integrity constraints (23...): the request's values */
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
        return CDC_EINVAL;
    return CDC_EDB;
}

/* Renders row `row` of res (the select list, maybe followed by other fields) to out. */
static int render(const struct resource *r, PGresult *res, int row, struct buf *out,
                  int64_t *version)
{
    const char *vals[ROW_MAX_COLUMNS + 1];
    int lens[ROW_MAX_COLUMNS + 1];
    int n = (int)row_select_count(r);

    if (PQnfields(res) < n || n > ROW_MAX_COLUMNS + 1)
        return CDC_ESCHEMA;
    for (int i = 0; i < n; i++) {
        vals[i] = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);
        lens[i] = PQgetlength(res, row, i);
    }
    /* a value its column's codec refuses: the column was retyped since the descriptor was read
     * (ALTER COLUMN ... TYPE), so the catalog is read again and the statement retried */
    switch (row_render_pg(r, vals, lens, out, version)) {
    case 0:
        return 0;
    case CDC_EINVAL:
        return CDC_ESCHEMA;
    default:
        return CDC_EDB;
    }
}

/* A column's select-list position, or -1 (the key is always exposed). */
static int field_of(const struct resource *r, int col)
{
    size_t n = row_select_count(r);
    for (size_t i = 0; i < n; i++)
        if (row_select_column(r, i) == col)
            return (int)i;
    return -1;
}

static int key_field(const struct resource *r)
{
    return field_of(r, r->key);
}

int sql_get(struct db *db, const struct resource *r, const char *key, struct buf *out,
            int64_t *version)
{
    struct buf sql;
    PGresult *res;
    int rc;

    buf_init(&sql, SQL_CAP);
    buf_puts(&sql, "SELECT ");
    select_list(r, &sql);
    buf_printf(&sql, " FROM %s", r->qualified);
    key_where(r, &sql);
    res = db_exec(db, DB_STMT_GET, sql.data, 1, &key, true);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = failure(db, r, res, NULL);
    else
        rc = PQntuples(res) == 0 ? CDC_ENOTFOUND : render(r, res, 0, out, version);
    PQclear(res);
    buf_free(&sql);
    return rc;
}

int sql_get_many(struct db *db, const struct resource *r, const char *const *keys, size_t n,
                 void (*fn)(void *arg, const char *key, const char *body, size_t len,
                            int64_t version),
                 void *arg)
{
    const struct resource_column *k = &r->columns[r->key];
    int kf = key_field(r);
    struct buf sql, arr, row;
    const char *param;
    PGresult *res;
    int rc = 0;

    buf_init(&sql, SQL_CAP);
    buf_init(&arr, SQL_CAP);
    buf_init(&row, 1u << 24);
    /* one array parameter: {"k1","k2"} with '"' and '\\' escaped, cast to the key's array type */
    int bad = buf_puts(&arr, "{");
    for (size_t i = 0; i < n; i++) {
        bad |= buf_puts(&arr, i ? ",\"" : "\"");
        for (const char *p = keys[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                bad |= buf_puts(&arr, "\\");
            bad |= buf_append(&arr, p, 1);
        }
        bad |= buf_puts(&arr, "\"");
    }
    bad |= buf_puts(&arr, "}");
    bad |= buf_puts(&sql, "SELECT ");
    select_list(r, &sql);
    bad |=
        buf_printf(&sql, " FROM %s WHERE %s = ANY($1::%s[])", r->qualified, k->quoted, k->sql_type);
    param = arr.data;
    if (bad || kf < 0) {
        rc = CDC_EDB; /* a statement or array past SQL_CAP */
        goto out_free;
    }
    res = db_exec(db, DB_STMT_WARM, sql.data, 1, &param, true);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = failure(db, r, res, NULL);
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        char key[CACHE_MAX_KEY + 1];
        size_t klen;
        int64_t version;
        buf_reset(&row);
        rc = render(r, res, i, &row, &version);
        if (rc)
            goto out;
        if (codec_key_canon(&k->type, PQgetvalue(res, i, kf), (size_t)PQgetlength(res, i, kf), key,
                            sizeof(key), &klen))
            continue; /* a key the cache could not hold anyway */
        fn(arg, key, row.data ? row.data : "", row.len, version);
    }
out:
    PQclear(res);
out_free:
    buf_free(&row);
    buf_free(&arr);
    buf_free(&sql);
    return rc;
}

/* After a conditional statement matched no row: tells "absent" from "present at another
 * version". */
static int absent_or_conflict(struct db *db, const struct resource *r, const char *key)
{
    struct buf sql;
    PGresult *res;
    int rc;

    buf_init(&sql, SQL_CAP);
    buf_printf(&sql, "SELECT 1 FROM %s", r->qualified);
    key_where(r, &sql);
    res = db_exec(db, DB_STMT_EXISTS, sql.data, 1, &key, true);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = failure(db, r, res, NULL);
    else
        rc = PQntuples(res) ? CDC_ECONFLICT : CDC_ENOTFOUND;
    PQclear(res);
    buf_free(&sql);
    return rc;
}

int sql_create(struct db *db, const struct resource *r, const struct row_input *in, struct buf *out,
               char *key, size_t keycap, int64_t *version, struct sql_error *e)
{
    struct buf sql;
    PGresult *res;
    int rc, kf = key_field(r);

    buf_init(&sql, SQL_CAP);
    buf_printf(&sql, "INSERT INTO %s ", r->qualified);
    if (in->n == 0) {
        buf_puts(&sql, "DEFAULT VALUES");
    } else {
        buf_puts(&sql, "(");
        for (size_t i = 0; i < in->n; i++)
            buf_printf(&sql, "%s%s", i ? ", " : "", r->columns[in->col[i]].quoted);
        buf_puts(&sql, ") VALUES (");
        for (size_t i = 0; i < in->n; i++)
            buf_printf(&sql, "%s$%zu::%s", i ? ", " : "", i + 1, r->columns[in->col[i]].sql_type);
        buf_puts(&sql, ")");
    }
    buf_puts(&sql, " RETURNING ");
    select_list(r, &sql);
    res = db_exec(db, DB_STMT_CREATE, sql.data, (int)in->n, in->val, false);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = failure(db, r, res, e);
        goto out;
    }
    rc = render(r, res, 0, out, version);
    if (rc == 0 && codec_key_canon(&r->columns[r->key].type, PQgetvalue(res, 0, kf),
                                   (size_t)PQgetlength(res, 0, kf), key, keycap, &(size_t){0}))
        rc = CDC_EDB;
out:
    PQclear(res);
    buf_free(&sql);
    return rc;
}

int sql_update(struct db *db, const struct resource *r, const char *key, int64_t if_match,
               const struct row_input *in, struct buf *out, int64_t *version, struct sql_error *e)
{
    const char *params[ROW_MAX_COLUMNS + 2];
    char match[24];
    struct buf sql;
    PGresult *res;
    size_t np = 0;
    int rc;

    buf_init(&sql, SQL_CAP);
    params[np++] = key;
    buf_printf(&sql, "UPDATE %s SET ", r->qualified);
    for (size_t i = 0; i < in->n; i++) {
        buf_printf(&sql, "%s%s = $%zu::%s", i ? ", " : "", r->columns[in->col[i]].quoted, np + 1,
                   r->columns[in->col[i]].sql_type);
        params[np++] = in->val[i];
    }
    if (in->n == 0) /* PUT of a table whose only writable column is its key: a no-op write */
        buf_printf(&sql, "%s = %s", r->columns[r->key].quoted, r->columns[r->key].quoted);
    key_where(r, &sql);
    snprintf(match, sizeof(match), "%lld", (long long)if_match);
    params[np++] = if_match >= 0 ? match : NULL;
    buf_printf(&sql, " AND ($%zu::bigint IS NULL OR %s = $%zu::bigint) RETURNING ", np,
               r->columns[r->version].quoted, np);
    select_list(r, &sql);
    res = db_exec(db, DB_STMT_UPDATE, sql.data, (int)np, params, false);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = failure(db, r, res, e);
    else if (PQntuples(res) == 0)
        rc = absent_or_conflict(db, r, key);
    else
        rc = render(r, res, 0, out, version);
    PQclear(res);
    buf_free(&sql);
    return rc;
}

int sql_delete(struct db *db, const struct resource *r, const char *key, int64_t if_match,
               int64_t *version, struct sql_error *e)
{
    const char *params[2];
    char match[24];
    struct buf sql;
    PGresult *res;
    int rc;

    snprintf(match, sizeof(match), "%lld", (long long)if_match);
    params[0] = key;
    params[1] = if_match >= 0 ? match : NULL;
    buf_init(&sql, SQL_CAP);
    buf_printf(&sql, "DELETE FROM %s", r->qualified);
    key_where(r, &sql);
    buf_printf(&sql, " AND ($2::bigint IS NULL OR %s = $2::bigint) RETURNING %s",
               r->columns[r->version].quoted, r->columns[r->version].quoted);
    res = db_exec(db, DB_STMT_DELETE, sql.data, 2, params, false);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = failure(db, r, res, e);
    else if (PQntuples(res) == 0)
        rc = absent_or_conflict(db, r, key);
    else
        rc = parse_i64_str(PQgetvalue(res, 0, 0), version) ? 0 : CDC_EDB;
    PQclear(res);
    buf_free(&sql);
    return rc;
}

int sql_list(struct db *db, const struct resource *r, const struct filter *f, struct buf *out,
             int *count, struct buf *next)
{
    const char *params[FILTER_MAX_PARAMS];
    struct buf sql, cols;
    PGresult *res = NULL;
    int np = 0, rc, rows, nf, found;

    *count = 0;
    buf_init(&sql, SQL_CAP);
    buf_init(&cols, SQL_CAP);
    select_list(r, &cols);
    rc = filter_sql(f, cols.data, &sql, params, &np) ? CDC_EDB : 0;
    if (rc)
        goto out;
    res = db_exec(db, DB_STMT_LIST, sql.data, np, params, true);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = failure(db, r, res, NULL);
        goto out;
    }
    /* filter.h: the select list, then the rows found ("cdcache n", up to limit + 1), the key's and
     * the order column's cursor texts of each row */
    rows = PQntuples(res);
    nf = (int)row_select_count(r);
    if (PQnfields(res) != nf + 3) {
        rc = CDC_ESCHEMA;
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        int64_t v;
        if (i > 0 && buf_append(out, ",", 1)) {
            rc = CDC_ETOOBIG;
            goto out;
        }
        if ((rc = render(r, res, i, out, &v)) != 0)
            goto out;
        (*count)++;
    }
    found = rows ? (int)strtol(PQgetvalue(res, 0, nf), NULL, 10) : 0;
    if (rows > 0 && found > rows) {
        int last = rows - 1;
        rc = filter_next_query(
                 f, PQgetisnull(res, last, nf + 2) ? NULL : PQgetvalue(res, last, nf + 2),
                 PQgetvalue(res, last, nf + 1), next)
                 ? CDC_ETOOBIG
                 : 0;
    }
out:
    PQclear(res);
    buf_free(&sql);
    buf_free(&cols);
    return rc;
}
