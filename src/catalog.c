/* Resource descriptors from PostgreSQL's catalog. One query per resource reads every live column
 * of the table with its type (the element type for arrays), typmod, nullability, default, identity
 * or generated-always, whether it is in the primary key and whether a btree index leads with it; a
 * second asks whether the table is in the publication Debezium streams. The config's declaration
 * is then checked against that, naming the resource on any mismatch.
 *
 * The current set is an atomic pointer; sets are immutable. A reload builds a new set under
 * cat->lock and publishes it; the old one goes on the retired list (freed at exit: DDL is rare and
 * a set is a few kB). */
#include "cdcache/catalog.h"
#include "cdcache/db.h"
#include "cdcache/error.h"
#include "cdcache/log.h"
#include "cdcache/util.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERSION_DEFAULT "cdcache_version"

struct catalog {
    const struct config *cfg;
    struct db *db;
    pthread_mutex_t lock; /* serialises loads; guards retired and generation */
    _Atomic(struct resource_set *) current;
    struct resource_set **retired;
    size_t nretired;
    uint64_t generation;
};

static const char columns_sql[] =
    "SELECT a.attname, a.atttypmod, NOT a.attnotnull, a.atthasdef OR a.attidentity <> '', "
    "a.attidentity = 'a' OR a.attgenerated <> '', format_type(a.atttypid, a.atttypmod), "
    "coalesce(et.typname, t.typname), coalesce(et.typtype, t.typtype), et.oid IS NOT NULL, "
    "a.atttypid, "
    "EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON "
    "am.oid = ic.relam WHERE i.indrelid = c.oid AND am.amname = 'btree' AND i.indpred IS NULL AND "
    "i.indkey[0] = a.attnum), "
    "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = "
    "ANY (i.indkey)), "
    "coalesce((SELECT i.indnkeyatts FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), "
    "0), "
    "pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL, "
    "coalesce(et.oid, t.oid) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' "
    "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') ORDER BY a.attnum";

static const char labels_sql[] =
    "SELECT enumlabel FROM pg_enum WHERE enumtypid = $1::oid ORDER BY enumsortorder";

static const char publication_sql[] = "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND "
                                      "schemaname = $2 AND tablename = $3";

struct catalog *catalog_create(const struct config *cfg, struct db *db)
{
    struct catalog *cat = xcalloc(1, sizeof(*cat));
    cat->cfg = cfg;
    cat->db = db;
    pthread_mutex_init(&cat->lock, NULL);
    atomic_init(&cat->current, NULL);
    return cat;
}

void catalog_destroy(struct catalog *cat)
{
    if (!cat)
        return;
    resource_set_free(atomic_load(&cat->current));
    for (size_t i = 0; i < cat->nretired; i++)
        resource_set_free(cat->retired[i]);
    free(cat->retired);
    pthread_mutex_destroy(&cat->lock);
    free(cat);
}

const struct resource_set *catalog_current(const struct catalog *cat)
{
    return atomic_load_explicit(&((struct catalog *)cat)->current, memory_order_acquire);
}

const struct resource *catalog_by_table(const struct resource_set *set, const char *qualified,
                                        size_t len)
{
    for (size_t i = 0; set && i < set->n; i++) {
        const struct resource *r = &set->r[i];
        size_t ns = strlen(r->schema), nt = strlen(r->table);
        if (ns + 1 + nt == len && memcmp(qualified, r->schema, ns) == 0 && qualified[ns] == '.' &&
            memcmp(qualified + ns + 1, r->table, nt) == 0)
            return r;
    }
    return NULL;
}

/* A quoted identifier: "name" with embedded quotes doubled. Returns a new string. */
static char *quote_ident(const char *name)
{
    struct buf b;
    buf_init(&b, 4096);
    buf_puts(&b, "\"");
    for (const char *p = name; *p; p++)
        buf_append(&b, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
    buf_puts(&b, "\"");
    return buf_steal(&b, NULL);
}

static bool pg_bool(PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col)[0] == 't';
}

static bool listed(const struct config_resource *cr, const char *col)
{
    if (!cr->columns)
        return true;
    for (size_t i = 0; i < cr->ncolumns; i++)
        if (strcmp(cr->columns[i], col) == 0)
            return true;
    return false;
}

/* Fills r from the catalog rows of its table and the declaration cr. Returns 0 or CDC_ECONFIG. */
static int build(struct resource *r, const struct config_resource *cr, PGresult *cols, char *err,
                 size_t errlen)
{
    const char *vname = cr->version_column ? cr->version_column : VERSION_DEFAULT;
    int n = PQntuples(cols), pkcols = 0;

    r->ncolumns = (size_t)n;
    r->columns = xcalloc((size_t)n, sizeof(*r->columns));
    r->key = r->version = -1;
    for (int i = 0; i < n; i++) {
        struct resource_column *c = &r->columns[i];
        c->name = xstrdup(PQgetvalue(cols, i, 0));
        c->quoted = quote_ident(c->name);
        {
            struct buf m;
            buf_init(&m, 4096);
            buf_puts(&m, "\"");
            buf_json_escape(&m, c->name, strlen(c->name));
            buf_puts(&m, "\":");
            c->member = buf_steal(&m, NULL);
        }
        c->type.typmod = (int32_t)strtol(PQgetvalue(cols, i, 1), NULL, 10);
        c->nullable = pg_bool(cols, i, 2);
        c->has_default = pg_bool(cols, i, 3);
        c->generated = pg_bool(cols, i, 4);
        c->sql_type = xstrdup(PQgetvalue(cols, i, 5));
        c->type.kind = codec_kind_of(PQgetvalue(cols, i, 6), PQgetvalue(cols, i, 7)[0]);
        c->type.array = pg_bool(cols, i, 8);
        c->type.oid = (uint32_t)strtoul(PQgetvalue(cols, i, 9), NULL, 10);
        c->orderable = pg_bool(cols, i, 10);
        pkcols = (int)strtol(PQgetvalue(cols, i, 12), NULL, 10);
        c->serial = pg_bool(cols, i, 13);
        c->exposed = strcmp(c->name, VERSION_DEFAULT) != 0 && listed(cr, c->name);
        if (cr->key ? strcmp(c->name, cr->key) == 0 : pg_bool(cols, i, 11))
            r->key = i;
        if (strcmp(c->name, vname) == 0)
            r->version = i;
    }
    for (size_t i = 0; i < cr->ncolumns; i++)
        if (resource_column(r, cr->columns[i], strlen(cr->columns[i])) < 0 ||
            strcmp(cr->columns[i], VERSION_DEFAULT) == 0) {
            snprintf(err, errlen,
                     "resource %s: column %s does not exist in %s.%s (or is not "
                     "exposable)",
                     r->name, cr->columns[i], r->schema, r->table);
            return CDC_ECONFIG;
        }
    if (pkcols > 1) {
        snprintf(err, errlen,
                 "resource %s: %s.%s has a composite primary key (%d columns); a "
                 "resource needs a single-column key",
                 r->name, r->schema, r->table, pkcols);
        return CDC_ECONFIG;
    }
    if (r->key < 0) {
        snprintf(err, errlen,
                 cr->key ? "resource %s: key column %s does not exist in %s.%s"
                         : "resource %s: %s.%s has no primary key%s",
                 r->name, cr->key ? cr->key : r->schema, cr->key ? r->schema : r->table,
                 cr->key ? r->table : "");
        return CDC_ECONFIG;
    }
    if (pkcols == 0 || !pg_bool(cols, r->key, 11)) {
        /* Debezium keys change events by the primary key (replica identity): a route key that is
         * not it could not be matched to the events that change its rows */
        snprintf(err, errlen,
                 "resource %s: key %s is not the primary key of %s.%s; a route key must "
                 "be the table's single-column primary key",
                 r->name, r->columns[r->key].name, r->schema, r->table);
        return CDC_ECONFIG;
    }
    if (!codec_key_supported(&r->columns[r->key].type)) {
        snprintf(err, errlen, "resource %s: key column %s has type %s, which cannot be a route key",
                 r->name, r->columns[r->key].name, r->columns[r->key].sql_type);
        return CDC_ECONFIG;
    }
    if (!r->columns[r->key].exposed) {
        snprintf(err, errlen, "resource %s: columns must include the key %s", r->name,
                 r->columns[r->key].name);
        return CDC_ECONFIG;
    }
    if (r->version < 0) {
        snprintf(err, errlen,
                 "resource %s: %s.%s has no version column %s: run `cdcache prepare "
                 "--config FILE` (it adds one) or name an existing one with version_column",
                 r->name, r->schema, r->table, vname);
        return CDC_ECONFIG;
    }
    {
        enum codec_kind k = r->columns[r->version].type.kind;
        if (r->columns[r->version].type.array ||
            (k != CODEC_INT8 && k != CODEC_INT4 && k != CODEC_INT2)) {
            snprintf(err, errlen, "resource %s: version column %s must be an integer", r->name,
                     vname);
            return CDC_ECONFIG;
        }
    }
    return 0;
}

/* Reads the labels of every enum column (for a 400 naming the column, before PostgreSQL refuses a
 * label it does not know without naming it). Returns 0 or CDC_EDB. */
static int load_labels(struct catalog *cat, struct resource *r, PGresult *cols)
{
    for (size_t i = 0; i < r->ncolumns; i++) {
        struct resource_column *c = &r->columns[i];
        const char *oid = PQgetvalue(cols, (int)i, 14);
        PGresult *res;
        if (c->type.kind != CODEC_ENUM)
            continue;
        res = db_exec(cat->db, DB_STMT_CATALOG, labels_sql, 1, &oid, true);
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
            PQclear(res);
            return CDC_EDB;
        }
        c->nlabels = (size_t)PQntuples(res);
        c->labels = xcalloc(c->nlabels + 1, sizeof(*c->labels));
        for (size_t k = 0; k < c->nlabels; k++)
            c->labels[k] = xstrdup(PQgetvalue(res, (int)k, 0));
        PQclear(res);
    }
    return 0;
}

static int load_one(struct catalog *cat, const struct config_resource *cr, unsigned index,
                    bool check_publication, struct resource *r, char *err, size_t errlen)
{
    const char *dot = strchr(cr->table, '.');
    const char *params[3];
    PGresult *res = NULL;
    int rc = CDC_ECONFIG;
    struct buf b;

    memset(r, 0, sizeof(*r));
    r->index = index;
    r->name = xstrdup(cr->name);
    if (!dot) {
        snprintf(err, errlen, "resource %s: table must be schema.table", cr->name);
        return CDC_ECONFIG;
    }
    r->schema = xstrndup(cr->table, (size_t)(dot - cr->table));
    r->table = xstrdup(dot + 1);
    {
        char *qs = quote_ident(r->schema), *qt = quote_ident(r->table);
        buf_init(&b, 1 << 16);
        buf_printf(&b, "%s.%s", qs, qt);
        r->qualified = buf_steal(&b, NULL);
        free(qs);
        free(qt);
    }
    buf_init(&b, 1 << 16);
    buf_printf(&b, "%s.%s.%s", cat->cfg->cdc_topic_prefix, r->schema, r->table);
    r->stream = buf_steal(&b, NULL);
    r->methods = cr->methods ? cr->methods : RESOURCE_ALL;
    r->read_tokens = cr->read_tokens ? xstrdup(cr->read_tokens) : NULL;
    r->write_tokens = cr->write_tokens ? xstrdup(cr->write_tokens) : NULL;

    params[0] = r->schema;
    params[1] = r->table;
    res = db_exec(cat->db, DB_STMT_CATALOG, columns_sql, 2, params, true);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "resource %s: cannot read the catalog: %s", cr->name,
                 res ? PQresultErrorMessage(res) : "PostgreSQL unreachable");
        rc = CDC_EDB;
        goto out;
    }
    if (PQntuples(res) == 0) {
        snprintf(err, errlen, "resource %s: table %s does not exist", cr->name, cr->table);
        goto out;
    }
    rc = build(r, cr, res, err, errlen);
    if (rc == 0 && load_labels(cat, r, res)) {
        snprintf(err, errlen, "resource %s: cannot read its enum labels", cr->name);
        rc = CDC_EDB;
    }
    if (rc || !check_publication)
        goto out;
    PQclear(res);
    params[0] = cat->cfg->cdc_publication;
    params[1] = r->schema;
    params[2] = r->table;
    res = db_exec(cat->db, DB_STMT_CATALOG, publication_sql, 3, params, true);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "resource %s: cannot read the publication: %s", cr->name,
                 res ? PQresultErrorMessage(res) : "PostgreSQL unreachable");
        rc = CDC_EDB;
        goto out;
    }
    if (PQntuples(res) == 0) {
        snprintf(err, errlen,
                 "resource %s: table %s is not in publication %s, so its changes "
                 "would not reach the cache: run `cdcache prepare --config FILE --apply`",
                 cr->name, cr->table, cat->cfg->cdc_publication);
        rc = CDC_ECONFIG;
    }
out:
    PQclear(res);
    return rc;
}

/* Publishes set; requires cat->lock. */
static void publish_locked(struct catalog *cat, struct resource_set *set)
{
    struct resource_set *old;

    set->generation = ++cat->generation;
    old = atomic_exchange_explicit(&cat->current, set, memory_order_acq_rel);
    if (old) {
        cat->retired = xrealloc(cat->retired, (cat->nretired + 1) * sizeof(*cat->retired));
        cat->retired[cat->nretired++] = old;
    }
}

void catalog_install(struct catalog *cat, struct resource_set *set)
{
    pthread_mutex_lock(&cat->lock);
    publish_locked(cat, set);
    pthread_mutex_unlock(&cat->lock);
}

int catalog_load(struct catalog *cat, bool check_publication, char *err, size_t errlen)
{
    const struct config *cfg = cat->cfg;
    struct resource_set *set = xcalloc(1, sizeof(*set));
    int rc = 0;

    pthread_mutex_lock(&cat->lock);
    set->r = xcalloc(cfg->nresources, sizeof(*set->r));
    for (size_t i = 0; i < cfg->nresources && rc == 0; i++) {
        rc = load_one(cat, &cfg->resources[i], (unsigned)i, check_publication, &set->r[i], err,
                      errlen);
        set->n = i + 1; /* what to free, even on failure */
    }
    if (rc) {
        resource_set_free(set);
        goto out;
    }
    publish_locked(cat, set);
out:
    pthread_mutex_unlock(&cat->lock);
    return rc;
}
