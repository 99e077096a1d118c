/* Configuration: defaults, YAML, environment overrides, and errors that name the key. */
#include "cdcache/config.h"
#include "cdcache/error.h"
#include "cdcache/resource.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];
static char err[512];

static const char *write_yaml(const char *text)
{
    FILE *f;
    snprintf(path, sizeof(path), "/tmp/cdcache-test-%d.yaml", (int)getpid());
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void cleanup(void)
{
    unlink(path);
    unsetenv("CDCACHE_HTTP_THREADS");
    unsetenv("CDCACHE_CACHE_MAX_BYTES");
    unsetenv("CDCACHE_HTTP_TLS_CERTIFICATE");
    unsetenv("CDCACHE_RESOURCES");
}
TestSuite(config, .fini = cleanup);

Test(config, defaults)
{
    struct config *c = NULL;
    cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), 0, "%s", err);
    /* many clients on few cores: thousands of small-stack threads, a backlog that holds 10,000 idle
     * connections, deferred accepts (issue 15) */
    cr_assert_eq(c->http_threads, 1024);
    cr_assert_eq(c->http_thread_stack, 512 << 10);
    cr_assert_eq(c->http_listen_backlog, 65535);
    cr_assert_eq(c->http_defer_accept_s, 120);
    cr_assert_str_eq(c->http_shared_listen, "");
    cr_assert_eq(c->cache_max_bytes, 256LL << 20);
    cr_assert_str_eq(c->cdc_topic_prefix, "cdcache");
    cr_assert_str_eq(c->cdc_publication, "cdcache_items");
    cr_assert_str_eq(c->cdc_ddl_stream, "cdcache.cdcache.ddl_signal");
    cr_assert_str_eq(c->redis_host, "127.0.0.1");
    cr_assert_eq(c->redis_port, 6379);
    cr_assert(c->cache_negative_entries);
    config_free(c);
}

Test(config, yaml_then_env)
{
    struct config *c = NULL;
    write_yaml("http:\n  threads: 4\n  listen: \"127.0.0.1:9999\"\ncache:\n  max_bytes: 64MiB\n"
               "  negative_entries: false\nredis:\n  url: redis://localhost:7000\n");
    setenv("CDCACHE_HTTP_THREADS", "9", 1);
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c->http_threads, 9, "the environment wins");
    cr_assert_str_eq(c->http_listen, "127.0.0.1:9999");
    cr_assert_eq(c->cache_max_bytes, 64LL << 20);
    cr_assert_not(c->cache_negative_entries);
    cr_assert_str_eq(c->redis_host, "localhost");
    cr_assert_eq(c->redis_port, 7000);
    config_free(c);
}

Test(config, unknown_key_is_named)
{
    struct config *c = NULL;
    write_yaml("http:\n  threads: 4\n  thread: 5\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "thread"), "%s", err);
    cr_assert_null(c);
}

Test(config, bad_values_name_the_key)
{
    struct config *c = NULL;
    write_yaml("cache:\n  max_bytes: lots\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "cache.max_bytes"), "%s", err);
    write_yaml("log:\n  level: loud\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "log.level"), "%s", err);
    write_yaml("redis:\n  url: http://x\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "redis.url"), "%s", err);
    setenv("CDCACHE_HTTP_THREADS", "0", 1);
    cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "http.threads") && strstr(err, "CDCACHE_HTTP_THREADS"), "%s", err);
    unsetenv("CDCACHE_HTTP_THREADS");
    const char *shared[] = {"8080x", "localhost:8080", "127.0.0.1:0", "127.0.0.1:70000",
                            ":",     "::1:8080"};
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++) {
        setenv("CDCACHE_HTTP_SHARED_LISTEN", shared[i], 1);
        cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), CDC_ECONFIG, "%s", shared[i]);
        cr_assert(strstr(err, "http.shared_listen"), "%s: %s", shared[i], err);
    }
    setenv("CDCACHE_HTTP_SHARED_LISTEN", "127.0.0.1:8080", 1);
    cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), 0, "%s", err);
    config_free(c);
    c = NULL;
    setenv("CDCACHE_HTTP_SHARED_LISTEN", "8080", 1);
    cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), 0, "%s", err);
    config_free(c);
    unsetenv("CDCACHE_HTTP_SHARED_LISTEN");
}

Test(config, tls_keys_are_checked_before_anything_starts)
{
    struct config *c = NULL;
    write_yaml("http:\n  tls_min_version: \"1.0\"\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "http.tls_min_version"), "%s", err);
    write_yaml("http:\n  tls_key: /etc/key.pem\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "http.tls_key") && strstr(err, "without http.tls_certificate"), "%s",
              err);
    write_yaml("http:\n  listen: \"127.0.0.1:8443s\"\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "http.listen") && strstr(err, "http.tls_certificate"), "%s", err);
    write_yaml("http:\n  admin_listen: \"127.0.0.1:9443s\"\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "http.admin_listen"), "%s", err);
    setenv("CDCACHE_HTTP_TLS_CERTIFICATE", "/nonexistent/server.pem", 1);
    cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "http.tls_certificate") && strstr(err, "cannot read"), "%s", err);
    cr_assert_null(c);
}

Test(config, example_file_documents_every_key_and_loads)
{
    struct config *c = NULL;
    char example[512];
    FILE *f;
    static char text[65536];
    size_t n;

    snprintf(example, sizeof(example), "%s/../../config.example.yaml", FIXTURES_DIR);
    f = fopen(example, "r");
    cr_assert_not_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
#define CHECK_DOCUMENTED(sec, key, type, def, min, max)                                            \
    cr_assert(strstr(text, "\n" #sec ":\n") && strstr(text, "\n  " #key ":"),                      \
              "config.example.yaml does not document %s.%s", #sec, #key);
    CONFIG_KEYS(CHECK_DOCUMENTED)
#undef CHECK_DOCUMENTED
    cr_assert(strstr(text, "\n# resources:") || strstr(text, "\nresources:"),
              "config.example.yaml does not document resources:");
    cr_assert(strstr(text, "CDCACHE_RESOURCES"), "config.example.yaml: CDCACHE_RESOURCES");
    cr_assert_not(strstr(text, "\n  stream:"), "cdc.stream is gone (cdc.topic_prefix)");
    cr_assert_eq(config_load(example, &c, err, sizeof(err)), 0, "%s", err);
    config_free(c);
}

Test(config, sizes)
{
    int64_t v;
    cr_assert(config_parse_size("4096", &v) && v == 4096);
    cr_assert(config_parse_size("2KiB", &v) && v == 2048);
    cr_assert(config_parse_size("1GiB", &v) && v == 1LL << 30);
    cr_assert_not(config_parse_size("1GB", &v));
    cr_assert_not(config_parse_size("", &v));
}

Test(config, names_that_would_be_cut_are_refused)
{
    struct config *c = NULL;
    char yaml[256];
    /* two ids of 65 characters that share their first 64 would share one consumer group if cut */
    snprintf(yaml, sizeof(yaml), "cdc:\n  replica_id: \"%065d\"\n", 1);
    cr_assert_eq(config_load(write_yaml(yaml), &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "cdc.replica_id") && strstr(err, "64"), "%s", err);
    snprintf(yaml, sizeof(yaml), "cdc:\n  replica_id: \"%064d\"\n", 1);
    cr_assert_eq(config_load(write_yaml(yaml), &c, err, sizeof(err)), 0, "%s", err);
    config_free(c);
    c = NULL;
    snprintf(yaml, sizeof(yaml), "cdc:\n  group_prefix: \"%065d\"\n", 1);
    cr_assert_eq(config_load(write_yaml(yaml), &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "cdc.group_prefix"), "%s", err);
    snprintf(yaml, sizeof(yaml), "cdc:\n  group_prefix: \"a b\"\n");
    cr_assert_eq(config_load(write_yaml(yaml), &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "cdc.group_prefix"), "%s", err);
}

/* ---- resources: ---- */

/* Loads yaml (NULL: no file) and expects an error that contains every one of want[]. */
static void expect_error(const char *yaml, const char *const *want, size_t nwant)
{
    struct config *c = NULL;
    int rc = config_load(yaml ? write_yaml(yaml) : NULL, &c, err, sizeof(err));
    cr_assert_eq(rc, CDC_ECONFIG, "accepted:\n%s", yaml ? yaml : "(env)");
    cr_assert_null(c);
    for (size_t i = 0; i < nwant; i++)
        cr_assert(strstr(err, want[i]), "\"%s\" not in: %s", want[i], err);
}
#define EXPECT_ERROR(yaml, ...)                                                                    \
    do {                                                                                           \
        static const char *const w_[] = {__VA_ARGS__};                                             \
        expect_error(yaml, w_, sizeof(w_) / sizeof(w_[0]));                                        \
    } while (0)

Test(config, resources_default_to_items)
{
    struct config *c = NULL;
    cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c->nresources, 1);
    cr_assert_str_eq(c->resources[0].name, "items");
    cr_assert_str_eq(c->resources[0].table, "inventory.items");
    cr_assert_str_eq(c->resources[0].version_column, "version");
    cr_assert_eq(c->resources[0].methods, RESOURCE_ALL);
    cr_assert_null(c->resources[0].key);
    cr_assert_null(c->resources[0].columns);
    cr_assert_null(c->resources[0].read_tokens);
    cr_assert_null(c->resources[0].write_tokens);
    config_free(c);
    c = NULL;
    /* an empty list declares none: the default stays */
    cr_assert_eq(config_load(write_yaml("resources: []\n"), &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c->nresources, 1);
    cr_assert_str_eq(c->resources[0].name, "items");
    config_free(c);
}

Test(config, resources_full_entry)
{
    struct config *c = NULL;
    write_yaml("resources:\n"
               "  - name: customers\n"
               "    table: shop.customers\n"
               "    key: id\n"
               "    columns: [id, email, name]\n"
               "    methods: [get, Post, DELETE]\n"
               "    read_tokens: \"r1, r2\"\n"
               "    write_tokens: w1\n"
               "  - name: orders-v2\n"
               "    table: shop.orders\n"
               "    version_column: rev\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c->nresources, 2, "a list replaces the default");
    cr_assert_str_eq(c->resources[0].name, "customers");
    cr_assert_str_eq(c->resources[0].table, "shop.customers");
    cr_assert_str_eq(c->resources[0].key, "id");
    cr_assert_eq(c->resources[0].ncolumns, 3);
    cr_assert_str_eq(c->resources[0].columns[0], "id");
    cr_assert_str_eq(c->resources[0].columns[2], "name");
    cr_assert_eq(c->resources[0].methods, RESOURCE_GET | RESOURCE_POST | RESOURCE_DELETE);
    cr_assert_str_eq(c->resources[0].read_tokens, "r1, r2");
    cr_assert_str_eq(c->resources[0].write_tokens, "w1");
    cr_assert_null(c->resources[0].version_column, "NULL: cdcache_version (prepare)");
    cr_assert_str_eq(c->resources[1].name, "orders-v2");
    cr_assert_eq(c->resources[1].methods, RESOURCE_ALL);
    cr_assert_str_eq(c->resources[1].version_column, "rev");
    cr_assert_null(c->resources[1].key);
    config_free(c);
}

Test(config, resources_errors_name_the_key)
{
    EXPECT_ERROR("resources:\n  - table: a.b\n", "resources[0].name");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n  - name: \"\"\n    table: a.c\n",
                 "resources[1].name");
    EXPECT_ERROR("resources:\n  - name: a/b\n    table: a.b\n", "resources[0].name");
    EXPECT_ERROR("resources:\n  - name: \"x y\"\n    table: a.b\n", "resources[0].name");
    EXPECT_ERROR("resources:\n  - name: health\n    table: a.b\n", "resources[0].name", "reserved");
    EXPECT_ERROR("resources:\n  - name: ready\n    table: a.b\n", "resources[0].name", "reserved");
    EXPECT_ERROR("resources:\n  - name: metrics\n    table: a.b\n", "resources[0].name");
    EXPECT_ERROR("resources:\n  - name: openapi.json\n    table: a.b\n", "resources[0].name");
    EXPECT_ERROR("resources:\n  - name: openapi.yaml\n    table: a.b\n", "resources[0].name");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n  - name: a\n    table: a.c\n",
                 "resources[1].name", "resources[0].name");
    EXPECT_ERROR("resources:\n  - name: a\n", "resources[0].table");
    EXPECT_ERROR("resources:\n  - name: a\n    table: items\n", "resources[0].table");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b.c\n", "resources[0].table");
    EXPECT_ERROR("resources:\n  - name: a\n    table: \"a.\"\n", "resources[0].table");
    EXPECT_ERROR("resources:\n  - name: a\n    table: \"a.b-c\"\n", "resources[0].table");
    EXPECT_ERROR("resources:\n  - name: a\n    table: \"1a.b\"\n", "resources[0].table");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n  - name: c\n    table: a.b\n",
                 "resources[1].table");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n    methods: [GET, FETCH]\n",
                 "resources[0].methods", "FETCH");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n    methods: []\n",
                 "resources[0].methods");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n    columns: []\n",
                 "resources[0].columns");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n    columns: [x, y, x]\n",
                 "resources[0].columns[2]");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n    key: \"\"\n", "resources[0].key");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n    version_column: \"\"\n",
                 "resources[0].version_column");
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n  - name: b\n    table: a.c\n"
                 "    colour: red\n",
                 "resources[1].colour", "unknown key");
}

Test(config, resources_tokens_are_never_echoed)
{
    EXPECT_ERROR(
        "resources:\n  - name: a\n    table: a.b\n    write_tokens: \"s3cr3t-one s3cr3t-two\"\n",
        "resources[0].write_tokens");
    cr_assert_null(strstr(err, "s3cr3t"), "%s", err);
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n    read_tokens: \"t\\tk-s3cr3t\"\n",
                 "resources[0].read_tokens");
    cr_assert_null(strstr(err, "s3cr3t"), "%s", err);
    /* a later error does not carry an earlier resource's tokens either */
    EXPECT_ERROR("resources:\n  - name: a\n    table: a.b\n    write_tokens: s3cr3t\n"
                 "  - name: b\n    table: bad\n",
                 "resources[1].table");
    cr_assert_null(strstr(err, "s3cr3t"), "%s", err);
}

Test(config, resources_from_the_environment)
{
    struct config *c = NULL;
    write_yaml("resources:\n  - name: items\n    table: inventory.items\n");
    setenv("CDCACHE_RESOURCES",
           "[{name: customers, table: shop.customers, methods: [GET]}, "
           "{\"name\": \"orders\", \"table\": \"shop.orders\", \"columns\": [\"id\", \"total\"]}]",
           1);
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c->nresources, 2, "the environment's list replaces the file's");
    cr_assert_str_eq(c->resources[0].name, "customers");
    cr_assert_eq(c->resources[0].methods, RESOURCE_GET);
    cr_assert_str_eq(c->resources[1].table, "shop.orders");
    cr_assert_eq(c->resources[1].ncolumns, 2);
    config_free(c);
    c = NULL;
    setenv("CDCACHE_RESOURCES", " ", 1);
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c->nresources, 1, "empty: unset, the file's list");
    cr_assert_str_eq(c->resources[0].name, "items");
    config_free(c);
    c = NULL;
    setenv("CDCACHE_RESOURCES", "[{name: a, table: nodot}]", 1);
    EXPECT_ERROR(NULL, "resources[0].table", "CDCACHE_RESOURCES");
    setenv("CDCACHE_RESOURCES", "[{name: a, table: a.b, bad: 1}]", 1);
    EXPECT_ERROR(NULL, "resources[0].bad", "CDCACHE_RESOURCES");
    setenv("CDCACHE_RESOURCES", "[{name: a, table: a.b", 1);
    EXPECT_ERROR(NULL, "resources", "CDCACHE_RESOURCES");
    setenv("CDCACHE_RESOURCES", "[{name: a, table: a.b, write_tokens: \"s3cr3t x\"}]", 1);
    EXPECT_ERROR(NULL, "resources[0].write_tokens", "CDCACHE_RESOURCES");
    cr_assert_null(strstr(err, "s3cr3t"), "%s", err);
}

Test(config, removed_cdc_stream_is_an_unknown_key)
{
    EXPECT_ERROR("cdc:\n  stream: cdcache.inventory.items\n", "stream");
}

Test(config, warm_keys_have_defaults_and_bad_values_name_the_key)
{
    struct config *c = NULL;

    cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert(c->warm_enabled);
    cr_assert_eq(c->warm_sample_keys, 10000);
    cr_assert_eq(c->warm_batch_keys, 500);
    cr_assert_eq(c->warm_ready_deadline_ms, 3000);
    config_free(c);
    c = NULL;
    write_yaml("warm:\n  batch_keys: 0\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "warm.batch_keys"), "%s", err);
    write_yaml("warm:\n  publish_interval_ms: 2000\n  sample_ttl_ms: 1000\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "warm.sample_ttl_ms"), "%s", err);
    write_yaml("warm:\n  batches_per_secnd: 5\n");
    cr_assert_eq(config_load(path, &c, err, sizeof(err)), CDC_ECONFIG);
    cr_assert(strstr(err, "batches_per_secnd"), "%s", err);
    cr_assert_null(c);
}
