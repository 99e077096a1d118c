/* Configuration: one YAML file (libcyaml), every key overridable by an environment variable named
 * CDCACHE_<SECTION>_<KEY> (upper-case), validated before anything starts. The key list below is the
 * single source of truth: it generates the struct, the YAML schema, the defaults, the environment
 * names and the checks. config.example.yaml documents every key. */
#ifndef CDCACHE_CONFIG_H
#define CDCACHE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(section, key, type, default, min, max). Types: STR (min 1 = must not be empty), INT, SIZE
 * (bytes, accepts KiB/MiB/GiB suffixes), BOOL. */
#define CONFIG_HTTP(X)                                                                             \
    X(http, listen, STR, "127.0.0.1:8081", 1, 0)                                                   \
    X(http, threads, INT, "1024", 1, 16384)                                                        \
    X(http, thread_stack, SIZE, "512KiB", 131072, 67108864)                                        \
    X(http, listen_backlog, INT, "65535", 16, 1048576)                                             \
    X(http, defer_accept_s, INT, "120", 0, 3600)                                                   \
    X(http, shared_listen, STR, "", 0, 0)                                                          \
    X(http, max_body_bytes, SIZE, "64KiB", 64, 67108864)                                           \
    X(http, max_list_limit, INT, "1000", 1, 100000)                                                \
    X(http, max_list_bytes, SIZE, "1MiB", 4096, 1073741824)                                        \
    X(http, request_timeout_ms, INT, "10000", 100, 3600000)                                        \
    X(http, keep_alive_timeout_ms, INT, "5000", 0, 600000)                                         \
    X(http, admin_listen, STR, "", 0, 0)                                                           \
    X(http, admin_threads, INT, "2", 1, 64)                                                        \
    X(http, shutdown_delay_ms, INT, "0", 0, 600000)                                                \
    X(http, tls_certificate, STR, "", 0, 0)                                                        \
    X(http, tls_key, STR, "", 0, 0)                                                                \
    X(http, tls_min_version, STR, "1.2", 1, 0)                                                     \
    X(http, cors_origins, STR, "", 0, 0)
#define CONFIG_POSTGRES(X)                                                                         \
    X(postgres, conninfo, STR, "postgresql://postgres@127.0.0.1:5432/cdcache", 1, 0)               \
    X(postgres, migrations_dir, STR, "migrations", 1, 0)                                           \
    X(postgres, statement_timeout_ms, INT, "5000", 1, 3600000)                                     \
    X(postgres, connect_timeout_ms, INT, "3000", 100, 600000)                                      \
    X(postgres, pool_size, INT, "16", 1, 1000)                                                     \
    X(postgres, pool_wait_ms, INT, "5000", 1, 600000)
#define CONFIG_REDIS(X)                                                                            \
    X(redis, url, STR, "redis://127.0.0.1:6379", 1, 0)                                             \
    X(redis, timeout_ms, INT, "2000", 10, 600000)                                                  \
    X(redis, username, STR, "", 0, 0)                                                              \
    X(redis, password, STR, "", 0, 0)
#define CONFIG_CDC(X)                                                                              \
    X(cdc, enabled, BOOL, "true", 0, 0)                                                            \
    X(cdc, topic_prefix, STR, "cdcache", 1, 0)                                                     \
    X(cdc, publication, STR, "cdcache_items", 1, 0)                                                \
    X(cdc, ddl_stream, STR, "cdcache.cdcache.ddl_signal", 1, 0)                                    \
    X(cdc, heartbeat_stream, STR, "__debezium-heartbeat.cdcache", 1, 0)                            \
    X(cdc, watermark_stream, STR, "cdcache.inventory.cdcache_watermark", 1, 0)                     \
    X(cdc, replica_id, STR, "", 0, 0)                                                              \
    X(cdc, group_prefix, STR, "cdcache", 1, 0)                                                     \
    X(cdc, tick_ms, INT, "1000", 50, 60000)                                                        \
    X(cdc, slot_name, STR, "cdcache", 1, 0)                                                        \
    X(cdc, batch_count, INT, "512", 1, 100000)                                                     \
    X(cdc, block_ms, INT, "100", 1, 60000)                                                         \
    X(cdc, max_staleness_ms, INT, "5000", 100, 86400000)                                           \
    X(cdc, max_entry_bytes, SIZE, "1MiB", 1024, 536870912)                                         \
    X(cdc, reconnect_min_ms, INT, "100", 1, 60000)                                                 \
    X(cdc, reconnect_max_ms, INT, "5000", 1, 600000)                                               \
    X(cdc, gap_check_ms, INT, "1000", 10, 600000)                                                  \
    X(cdc, trim_interval_ms, INT, "5000", 10, 3600000)                                             \
    X(cdc, retention_min_ms, INT, "60000", 0, 604800000)                                           \
    X(cdc, group_dead_after_ms, INT, "600000", 100, 604800000)
#define CONFIG_CACHE(X)                                                                            \
    X(cache, enabled, BOOL, "true", 0, 0)                                                          \
    X(cache, max_bytes, SIZE, "256MiB", 65536, 1099511627776)                                      \
    X(cache, shards, INT, "64", 1, 4096)                                                           \
    X(cache, negative_entries, BOOL, "true", 0, 0)                                                 \
    X(cache, fill_wait_ms, INT, "2000", 1, 60000)
/* The warm-up (warm.h): samples of hot keys published in Redis, and the fill of a starting replica
 * from its peers' samples. */
#define CONFIG_WARM(X)                                                                             \
    X(warm, enabled, BOOL, "true", 0, 0)                                                           \
    X(warm, sample_keys, INT, "10000", 1, 100000)                                                  \
    X(warm, publish_interval_ms, INT, "5000", 100, 3600000)                                        \
    X(warm, sample_ttl_ms, INT, "30000", 200, 86400000)                                            \
    X(warm, max_keys, INT, "50000", 1, 1000000)                                                    \
    X(warm, batch_keys, INT, "500", 1, 10000)                                                      \
    X(warm, batches_per_second, INT, "50", 1, 10000)                                               \
    X(warm, ready_deadline_ms, INT, "3000", 0, 60000)
#define CONFIG_LOG(X)                                                                              \
    X(log, level, STR, "info", 1, 0)                                                               \
    X(log, format, STR, "auto", 1, 0)                                                              \
    X(log, access_sample_percent, INT, "1", 0, 100)
/* Secrets: never echoed (errors name the key only; check-config prints no values). */
#define CONFIG_AUTH(X)                                                                             \
    X(auth, write_tokens, STR, "", 0, 0)                                                           \
    X(auth, read_tokens, STR, "", 0, 0)

/* The longest cdc.replica_id and cdc.group_prefix: the consumer group "<prefix>-<id>" and the
 * consumer name must fit their buffers in cdc.c whole. */
#define CONFIG_NAME_MAX 64

#define CONFIG_SECTIONS(S) S(http) S(postgres) S(redis) S(cdc) S(cache) S(warm) S(log) S(auth)
#define CONFIG_KEYS(X)                                                                             \
    CONFIG_HTTP(X)                                                                                 \
    CONFIG_POSTGRES(X)                                                                             \
    CONFIG_REDIS(X) CONFIG_CDC(X) CONFIG_CACHE(X) CONFIG_WARM(X) CONFIG_LOG(X) CONFIG_AUTH(X)

#define CONFIG_DECL_STR(name)  char *name;
#define CONFIG_DECL_INT(name)  int64_t name;
#define CONFIG_DECL_SIZE(name) int64_t name;
#define CONFIG_DECL_BOOL(name) bool name;

/* One entry of `resources:` as declared (catalog.c resolves it against PostgreSQL). Strings are
 * owned by the config; NULL when not given. */
struct config_resource {
    char *name;     /* the route */
    char *table;    /* "schema.table" */
    char *key;      /* NULL: the table's single-column primary key */
    char **columns; /* NULL: every column; else ncolumns names */
    size_t ncolumns;
    unsigned methods;     /* resource.h's enum resource_method bits; all when not given */
    char *read_tokens;    /* NULL: auth.read_tokens */
    char *write_tokens;   /* NULL: auth.write_tokens */
    char *version_column; /* NULL: cdcache_version, which `cdcache prepare` installs */
};

struct config {
#define CONFIG_DECL(sec, key, type, def, min, max) CONFIG_DECL_##type(sec##_##key)
    CONFIG_KEYS(CONFIG_DECL)
#undef CONFIG_DECL
    /* `resources:`; when the file declares none, the one default (inventory.items as /items with
     * version_column: version) */
    struct config_resource *resources;
    size_t nresources;
    /* derived */
    char *redis_host;
    int redis_port;
};

/* Loads path (NULL: defaults only), applies CDCACHE_* environment overrides, and validates. On
 * success returns 0 and a new config in *out (release with config_free()). On failure returns
 * CDC_ECONFIG with a message naming the key in err. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
void config_free(struct config *cfg);

/* Parses a size such as "4096", "64KiB", "256MiB", "1GiB". Returns true on success. */
bool config_parse_size(const char *s, int64_t *out);

#endif
