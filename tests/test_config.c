/* Configuration: defaults, YAML, environment overrides, and errors that name the key. */
#include "cdcache/config.h"
#include "cdcache/error.h"

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
}
TestSuite(config, .fini = cleanup);

Test(config, defaults)
{
    struct config *c = NULL;
    cr_assert_eq(config_load(NULL, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c->http_threads, 16);
    cr_assert_eq(c->cache_max_bytes, 256LL << 20);
    cr_assert_str_eq(c->cdc_stream, "cdcache.inventory.items");
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
