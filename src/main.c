/* cdcache: wires the modules together. `serve` runs the API, `migrate` the schema, `--version` says
 * which build this is. Signals are taken synchronously with sigwait() in the main thread, so no
 * module needs to be async-signal-safe. */
#include "cdcache/cache.h"
#include "cdcache/catalog.h"
#include "cdcache/cdc.h"
#include "cdcache/config.h"
#include "cdcache/db.h"
#include "cdcache/error.h"
#include "cdcache/http.h"
#include "cdcache/log.h"
#include "cdcache/metrics.h"
#include "cdcache/migrate.h"
#include "cdcache/pipeline.h"
#include "cdcache/util.h"
#include "cdcache/warm.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: cdcache serve --config FILE\n"
               "       cdcache migrate up|down [N|all]|status [--config FILE] [--dir DIR]\n"
               "       cdcache check-config --config FILE\n"
               "       cdcache debezium-config --config FILE\n"
               "       cdcache prepare --config FILE [--apply] [--revert]\n"
               "       cdcache --version\n"
               "       cdcache [COMMAND] --help\n"
               "Every config key can be overridden with CDCACHE_<SECTION>_<KEY>; see "
               "config.example.yaml.\n");
}

/* `cdcache COMMAND --help`: what the command does; starts nothing. */
static int command_help(const char *cmd)
{
    if (strcmp(cmd, "serve") == 0)
        printf(
            "usage: cdcache serve --config FILE\n"
            "Serves the HTTP API (http.listen; http.admin_listen for /health, /ready, /metrics)\n"
            "from a cache kept fresh by the change stream in Redis. SIGTERM or SIGINT drains\n"
            "(http.shutdown_delay_ms) and exits 0.\n");
    else if (strcmp(cmd, "migrate") == 0)
        printf("usage: cdcache migrate up|down [N|all]|status [--config FILE] [--dir DIR]\n"
               "Applies (up), reverts (down: 1, N or all steps) or lists (status) the schema\n"
               "migrations in --dir (default postgres.migrations_dir) on postgres.conninfo.\n");
    else if (strcmp(cmd, "check-config") == 0)
        printf("usage: cdcache check-config --config FILE\n"
               "Checks a configuration file and the CDCACHE_<SECTION>_<KEY> overrides without\n"
               "starting anything; prints \"config ok\" or the key at fault (never a value).\n");
    else if (strcmp(cmd, "debezium-config") == 0)
        printf("usage: cdcache debezium-config --config FILE\n"
               "Prints the Debezium Server properties the config's resources need: the captured\n"
               "tables (table.include.list), the publication (cdc.publication, autocreate\n"
               "disabled: `cdcache prepare` makes it), the topic prefix and slot, and each\n"
               "stream's name as a comment. Append them to debezium/application.properties (a\n"
               "key repeated later in the file wins). Connects to nothing.\n");
    else if (strcmp(cmd, "prepare") == 0)
        printf("usage: cdcache prepare --config FILE [--apply] [--revert]\n"
               "Prints the SQL that readies the declared tables: for each resource without\n"
               "version_column, a bookkeeping column cdcache_version set by an ENABLE ALWAYS\n"
               "trigger from the global sequence cdcache.version_seq; the DDL signal (table\n"
               "cdcache.ddl_signal and an event trigger); the publication cdc.publication with\n"
               "every resource's table. Idempotent, one transaction, needs a superuser.\n"
               "--apply runs it on postgres.conninfo; --revert prints (with --apply: runs) the\n"
               "SQL that undoes it (the publication is kept, with the watermark table only).\n");
    else {
        usage(stderr);
        return 2;
    }
    return 0;
}

static const char *opt_value(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static bool has_flag(int argc, char **argv, const char *name)
{
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

static struct config *load_config(int argc, char **argv)
{
    char err[512];
    struct config *cfg = NULL;
    enum log_level lvl;
    enum log_format fmt;

    if (config_load(opt_value(argc, argv, "--config"), &cfg, err, sizeof(err))) {
        fprintf(stderr, "cdcache: %s\n", err);
        return NULL;
    }
    if (log_parse_level(cfg->log_level, &lvl) == 0)
        log_set_level(lvl);
    if (log_parse_format(cfg->log_format, &fmt) == 0)
        log_set_format(fmt);
    if (cfg->cdc_replica_id[0] == '\0') {
        /* A stable id: the same host and port give the same group across restarts. */
        char host[64] = "replica";
        const char *port = strrchr(cfg->http_listen, ':');
        char id[160];
        gethostname(host, sizeof(host) - 1);
        snprintf(id, sizeof(id), "%s-%s", host, port ? port + 1 : cfg->http_listen);
        if (strlen(id) > CONFIG_NAME_MAX) {
            /* keep it within the bound and still unique: a prefix and a hash of the whole */
            uint64_t h = 1469598103934665603ULL; /* FNV-1a */
            for (const char *p = id; *p; p++)
                h = (h ^ (unsigned char)*p) * 1099511628211ULL;
            snprintf(id + CONFIG_NAME_MAX - 17, sizeof(id) - (CONFIG_NAME_MAX - 17), "-%016llx",
                     (unsigned long long)h);
        }
        for (char *p = id; *p; p++)
            if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
                !(*p >= '0' && *p <= '9') && *p != '-' && *p != '.')
                *p = '-';
        free(cfg->cdc_replica_id);
        cfg->cdc_replica_id = xstrdup(id);
    }
    log_set_replica(cfg->cdc_replica_id);
    return cfg;
}

static int serve(int argc, char **argv)
{
    struct config *cfg = load_config(argc, argv);
    struct cache *cache = NULL;
    struct db *db = NULL;
    struct catalog *catalog = NULL;
    struct metrics *metrics = NULL;
    struct cdc *cdc = NULL;
    struct warm *warm = NULL;
    struct http_server *srv = NULL;
    sigset_t set;
    int sig = 0, loaded;
    char err[256];
    int rc = 1;

    if (!cfg)
        return 2;
    /* Block the signals before any thread starts, so every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    db = db_create(cfg->postgres_conninfo, (int)cfg->postgres_statement_timeout_ms,
                   (int)cfg->postgres_connect_timeout_ms, (int)cfg->postgres_pool_size,
                   (int)cfg->postgres_pool_wait_ms);
    /* The resources' columns come from PostgreSQL's catalog. A declaration that does not match the
     * tables stops the replica at once. While PostgreSQL cannot be reached the replica serves
     * anyway (/health; /ready and the resources' routes answer 503) and reads the catalog as soon
     * as it can (below). A replica that serves from a cache kept by the change stream refuses a
     * table the stream does not carry. */
    catalog = catalog_create(cfg, db);
    loaded = catalog_load(catalog, cfg->cdc_enabled && cfg->cache_enabled, err, sizeof(err));
    if (loaded != 0 && loaded != CDC_EDB) {
        LOG_ERROR("%s", err);
        goto out;
    }
    if (loaded)
        LOG_WARN("%s; serving without resources until PostgreSQL answers", err);
    if (cfg->cache_enabled) {
        struct cache_options co = {.max_bytes = (size_t)cfg->cache_max_bytes,
                                   .shards = (unsigned)cfg->cache_shards,
                                   .resources = (unsigned)cfg->nresources,
                                   .negative_entries = cfg->cache_negative_entries,
                                   .fill_wait_ms = (int)cfg->cache_fill_wait_ms};
        cache = cache_create(&co);
    }
    metrics = metrics_create(cfg->nresources);
    /* Without a cache there is nothing for a consumer to keep fresh. It starts once the resources
     * are known (a stopped consumer does not vouch: reads bypass the cache meanwhile). */
    if (cfg->cdc_enabled && cache)
        cdc = cdc_create(cfg, catalog, cache, db, metrics);
    /* The warm-up needs the consumer: it starts once the consumer's position is established. */
    if (cdc && cfg->warm_enabled) {
        warm = warm_create(cfg, catalog, cache, db);
        cdc_set_warm(cdc, warm);
    }
    srv = http_start(cfg, catalog, cache, db, cdc, metrics, err, sizeof(err));
    if (!srv) {
        LOG_ERROR("%s", err);
        goto out;
    }
    LOG_INFO("cdcache %s serving on %s (replica %s, cache %s, cdc %s)", CDCACHE_VERSION,
             cfg->http_listen, cfg->cdc_replica_id, cache ? "on" : "off", cdc ? "on" : "off");
    for (int64_t wait = 100; loaded;) {
        if (sigtimedwait(&set, NULL, &(struct timespec){wait / 1000, (wait % 1000) * 1000000}) >
            0) {
            sig = SIGTERM;
            goto drain;
        }
        loaded = catalog_load(catalog, cfg->cdc_enabled && cfg->cache_enabled, err, sizeof(err));
        if (loaded != 0 && loaded != CDC_EDB) {
            LOG_ERROR("%s", err);
            http_stop(srv);
            goto out;
        }
        if (loaded == 0)
            LOG_INFO("resources read from PostgreSQL's catalog");
        wait = wait * 2 > 5000 ? 5000 : wait * 2;
    }
    if (warm && warm_start(warm)) {
        LOG_ERROR("cannot start the warm-up thread");
        http_stop(srv);
        goto out;
    }
    if (cdc && cdc_start(cdc)) {
        LOG_ERROR("cannot start the CDC thread");
        http_stop(srv);
        goto out; /* cdc_destroy() frees a consumer that never started */
    }
    /* The kernel spreads the shared port's connections without asking /ready, so a replica joins it
     * warm: once the warm-up is done, or at warm.ready_deadline_ms after the start at the latest
     * (as /ready). A signal meanwhile drains at once. */
    while (warm && cfg->http_shared_listen[0] && !warm_ready(warm)) {
        if (sigtimedwait(&set, NULL, &(struct timespec){0, 20 * 1000000}) > 0) {
            sig = SIGTERM;
            goto drain;
        }
    }
    /* Ready to serve: join the port the replicas of this host share (http.shared_listen). A
     * replica that cannot would never get the traffic it was configured for: it stops. */
    if (http_share(srv, err, sizeof(err))) {
        LOG_ERROR("config: http.shared_listen: %s", err);
        http_stop(srv);
        goto out;
    }
    sigwait(&set, &sig);
drain:
    /* Drain: not ready first (balancers and probes stop sending), keep serving for
     * http.shutdown_delay_ms, then stop accepting and let in-flight requests finish (http_stop);
     * the consumer then stops after acknowledging what it applied. */
    LOG_INFO("signal %d: draining for %lld ms, then shutting down", sig,
             (long long)cfg->http_shutdown_delay_ms);
    http_drain(srv);
    if (cfg->http_shutdown_delay_ms > 0)
        usleep((useconds_t)cfg->http_shutdown_delay_ms * 1000);
    http_stop(srv);
    rc = 0;
out:
    cdc_destroy(cdc);
    warm_destroy(warm);
    metrics_destroy(metrics);
    catalog_destroy(catalog);
    db_destroy(db);
    cache_destroy(cache);
    config_free(cfg);
    return rc;
}

static int migrate(int argc, char **argv)
{
    struct config *cfg;
    const char *cmd = argc > 2 ? argv[2] : NULL;
    const char *dir;
    int steps = 1;
    int rc;

    if (!cmd || (strcmp(cmd, "up") && strcmp(cmd, "down") && strcmp(cmd, "status"))) {
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "down") == 0 && argc > 3 && argv[3][0] != '-') {
        int64_t n;
        if (strcmp(argv[3], "all") == 0)
            steps = 0;
        else if (parse_i64_str(argv[3], &n) && n > 0 && n < 1000000)
            steps = (int)n;
        else {
            fprintf(stderr, "cdcache: migrate down: N must be a positive integer or 'all'\n");
            return 2;
        }
    }
    cfg = load_config(argc, argv);
    if (!cfg)
        return 2;
    dir = opt_value(argc, argv, "--dir");
    rc = migrate_run(cfg->postgres_conninfo, dir ? dir : cfg->postgres_migrations_dir, cmd, steps,
                     stdout);
    config_free(cfg);
    return rc ? 1 : 0;
}

/* `cdcache debezium-config` and `cdcache prepare`: text derived from the config (pipeline.h). */
static int pipeline_command(int argc, char **argv)
{
    bool prepare = strcmp(argv[1], "prepare") == 0;
    bool apply = prepare && has_flag(argc, argv, "--apply");
    struct config *cfg = load_config(argc, argv);
    struct buf out;
    char err[512];
    int rc = 1;

    if (!cfg)
        return 2;
    buf_init(&out, 16u << 20);
    if (prepare ? pipeline_prepare_sql(cfg, has_flag(argc, argv, "--revert"), &out)
                : pipeline_debezium_properties(cfg, &out)) {
        fprintf(stderr, "cdcache: %s: the output is over 16 MiB\n", argv[1]);
        goto out;
    }
    if (!apply) {
        fputs(out.data, stdout);
        rc = 0;
        goto out;
    }
    if (pipeline_apply(cfg->postgres_conninfo, (int)cfg->postgres_connect_timeout_ms, out.data, err,
                       sizeof(err))) {
        fprintf(stderr, "cdcache: %s\n", err);
        goto out;
    }
    printf("prepare%s: applied (%zu resources)\n",
           has_flag(argc, argv, "--revert") ? " --revert" : "", cfg->nresources);
    rc = 0;
out:
    buf_free(&out);
    config_free(cfg);
    return rc;
}

/* `cdcache check-config`: the file and its overrides, then the resources against PostgreSQL's
 * catalog when it can be reached (a table, key or column that does not exist, a composite key, no
 * version column, a table missing from the publication: each names its resource). Unreachable is
 * not an error here: a config is often checked where the database is not (a CI job, a manifest). */
static int check_config(int argc, char **argv)
{
    struct config *cfg = load_config(argc, argv);
    struct catalog *cat;
    struct db *db;
    char err[512];
    int rc;

    if (!cfg)
        return 2;
    db = db_create(cfg->postgres_conninfo, (int)cfg->postgres_statement_timeout_ms,
                   (int)cfg->postgres_connect_timeout_ms, 1, (int)cfg->postgres_pool_wait_ms);
    cat = catalog_create(cfg, db);
    log_set_level(LOG_LEVEL_ERROR); /* the pool's own connect warnings: the answer says it */
    rc = catalog_load(cat, cfg->cdc_enabled && cfg->cache_enabled, err, sizeof(err));
    if (rc == 0) {
        printf("config ok\n");
        fprintf(stderr, "cdcache: %zu resources checked against PostgreSQL\n", cfg->nresources);
    } else if (rc == CDC_EDB) {
        printf("config ok\n");
        fprintf(stderr, "cdcache: resources not checked: PostgreSQL unreachable\n");
        rc = 0;
    } else {
        fprintf(stderr, "cdcache: %s\n", err);
        rc = 2;
    }
    catalog_destroy(cat);
    db_destroy(db);
    config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("cdcache %s\n", CDCACHE_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc > 2)
            return command_help(argv[2]);
        usage(stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return command_help(argv[1]);
    if (strcmp(argv[1], "serve") == 0)
        return serve(argc, argv);
    if (strcmp(argv[1], "migrate") == 0)
        return migrate(argc, argv);
    if (strcmp(argv[1], "debezium-config") == 0 || strcmp(argv[1], "prepare") == 0)
        return pipeline_command(argc, argv);
    if (strcmp(argv[1], "check-config") == 0)
        return check_config(argc, argv);
    usage(stderr);
    return 2;
}
