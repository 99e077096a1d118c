/* Configuration loading. libcyaml reads every value as a string (so YAML and environment values go
 * through one set of checks); the CONFIG_KEYS list generates the schema, defaults and validation.
 * An unknown key, a wrong type or an out-of-range value fails before anything starts, naming the
 * key. */
#include "cdcache/config.h"
#include "cdcache/auth.h"
#include "cdcache/cors.h"
#include "cdcache/listener.h"
#include "cdcache/error.h"
#include "cdcache/log.h"
#include "cdcache/resource.h"
#include "cdcache/tls.h"
#include "cdcache/util.h"

#include <ctype.h>
#include <cyaml/cyaml.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Raw, as-read sections: every key a string, NULL when absent. */
#define RAW_FIELD(sec, key, type, def, min, max) char *key;
#define SCHEMA_FIELD(sec, key, type, def, min, max)                                                \
    CYAML_FIELD_STRING_PTR(#key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct raw_##sec, key,  \
                           0, CYAML_UNLIMITED),
#define SECTION_TYPES(sec)                                                                         \
    struct raw_##sec {                                                                             \
        CONFIG_##sec##_KEYS(RAW_FIELD)                                                             \
    };                                                                                             \
    static const cyaml_schema_field_t raw_##sec##_fields[] = {CONFIG_##sec##_KEYS(SCHEMA_FIELD)    \
                                                                  CYAML_FIELD_END};

#define CONFIG_http_KEYS     CONFIG_HTTP
#define CONFIG_postgres_KEYS CONFIG_POSTGRES
#define CONFIG_redis_KEYS    CONFIG_REDIS
#define CONFIG_cdc_KEYS      CONFIG_CDC
#define CONFIG_cache_KEYS    CONFIG_CACHE
#define CONFIG_warm_KEYS     CONFIG_WARM
#define CONFIG_log_KEYS      CONFIG_LOG
#define CONFIG_auth_KEYS     CONFIG_AUTH

CONFIG_SECTIONS(SECTION_TYPES)

/* One entry of `resources:` as read: strings, NULL when absent. The same schema reads the file's
 * list and CDCACHE_RESOURCES (YAML or JSON flow text), so both go through one set of checks. */
struct raw_resource {
    char *name;
    char *table;
    char *key;
    char **columns;
    unsigned columns_count;
    char **methods;
    unsigned methods_count;
    char *read_tokens;
    char *write_tokens;
    char *version_column;
};

static const cyaml_schema_value_t raw_string_schema = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

#define RESOURCE_STR(key)                                                                          \
    CYAML_FIELD_STRING_PTR(#key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct raw_resource,    \
                           key, 0, CYAML_UNLIMITED)
#define RESOURCE_LIST(key)                                                                         \
    CYAML_FIELD_SEQUENCE(#key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct raw_resource, key, \
                         &raw_string_schema, 1, CYAML_UNLIMITED)
static const cyaml_schema_field_t raw_resource_fields[] = {
    RESOURCE_STR(name),         RESOURCE_STR(table),          RESOURCE_STR(key),
    RESOURCE_LIST(columns),     RESOURCE_LIST(methods),       RESOURCE_STR(read_tokens),
    RESOURCE_STR(write_tokens), RESOURCE_STR(version_column), CYAML_FIELD_END};
#undef RESOURCE_STR
#undef RESOURCE_LIST

static const cyaml_schema_value_t raw_resource_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, struct raw_resource, raw_resource_fields),
};
/* CDCACHE_RESOURCES: the list alone */
static const cyaml_schema_value_t raw_resources_schema = {
    CYAML_VALUE_SEQUENCE(CYAML_FLAG_POINTER, struct raw_resource, &raw_resource_schema, 0,
                         CYAML_UNLIMITED),
};

struct raw {
#define RAW_SECTION(sec) struct raw_##sec *sec;
    CONFIG_SECTIONS(RAW_SECTION)
#undef RAW_SECTION
    struct raw_resource *resources;
    unsigned resources_count;
};

static const cyaml_schema_field_t raw_fields[] = {
#define RAW_SECTION_FIELD(sec)                                                                     \
    CYAML_FIELD_MAPPING_PTR(#sec, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct raw, sec,       \
                            raw_##sec##_fields),
    CONFIG_SECTIONS(RAW_SECTION_FIELD)
#undef RAW_SECTION_FIELD
        CYAML_FIELD_SEQUENCE("resources", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, struct raw,
                             resources, &raw_resource_schema, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END};

static const cyaml_schema_value_t raw_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, struct raw, raw_fields),
};

struct log_capture {
    char msg[512];
};

static void capture_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    struct log_capture *lc = ctx;
    size_t n = strlen(lc->msg);
    if (level < CYAML_LOG_ERROR || n >= sizeof(lc->msg) - 1)
        return;
    vsnprintf(lc->msg + n, sizeof(lc->msg) - n, fmt, args);
    /* libcyaml ends messages with newlines; keep them on one line */
    for (char *p = lc->msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

bool config_parse_size(const char *s, int64_t *out)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {{"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024LL * 1024 * 1024}, {"", 1}};
    size_t n = strlen(s);
    size_t digits = 0;

    while (digits < n && isdigit((unsigned char)s[digits]))
        digits++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        int64_t v;
        if (strcmp(s + digits, units[i].suffix) != 0)
            continue;
        if (!parse_i64(s, digits, &v) || v > INT64_MAX / units[i].mult)
            return false;
        *out = v * units[i].mult;
        return true;
    }
    return false;
}

static int set_value(struct config *cfg, const char *sec, const char *key, const char *type,
                     const char *value, const char *origin, long long min, long long max,
                     void *field, char *err, size_t errlen)
{
    int64_t v;

    if (strcmp(type, "STR") == 0) {
        if (min > 0 && value[0] == '\0')
            goto bad;
        free(*(char **)field);
        *(char **)field = xstrdup(value);
        return 0;
    }
    if (strcmp(type, "BOOL") == 0) {
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
            *(bool *)field = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
            *(bool *)field = false;
        else
            goto bad;
        return 0;
    }
    if (!(strcmp(type, "SIZE") == 0 ? config_parse_size(value, &v) : parse_i64_str(value, &v)) ||
        v < min || v > max)
        goto bad;
    *(int64_t *)field = v;
    return 0;
bad:
    if (strcmp(type, "STR") == 0)
        snprintf(err, errlen, "config: %s.%s%s: must not be empty", sec, key, origin);
    else if (strcmp(type, "BOOL") == 0)
        snprintf(err, errlen, "config: %s.%s%s: must be true or false (got \"%s\")", sec, key,
                 origin, value);
    else
        snprintf(err, errlen, "config: %s.%s%s: must be %s between %lld and %lld (got \"%s\")", sec,
                 key, origin,
                 strcmp(type, "SIZE") == 0 ? "a size in bytes (KiB/MiB/GiB)" : "an integer", min,
                 max, value);
    (void)cfg;
    return CDC_ECONFIG;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes %XX escapes of a URL part into a new string; NULL when an escape is malformed. */
static char *url_part(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT]. Credentials in the URL fill redis.username and
 * redis.password unless those are set. An error never repeats the URL (it may hold a password). */
static int parse_redis_url(struct config *cfg, char *err, size_t errlen)
{
    const char *u = cfg->redis_url;
    const char *host, *colon, *at;
    int64_t port = 6379;

    if (strncmp(u, "redis://", 8) != 0)
        goto bad;
    host = u + 8;
    at = strrchr(host, '@');
    if (at) {
        const char *pw = memchr(host, ':', (size_t)(at - host));
        char *user = pw ? url_part(host, (size_t)(pw - host)) : NULL;
        char *pass = url_part(pw ? pw + 1 : host, (size_t)(at - (pw ? pw + 1 : host)));
        if (!pass || (pw && !user)) {
            free(user);
            free(pass);
            goto bad;
        }
        if (!cfg->redis_username[0] && user && user[0]) {
            free(cfg->redis_username);
            cfg->redis_username = user, user = NULL;
        }
        if (!cfg->redis_password[0]) {
            free(cfg->redis_password);
            cfg->redis_password = pass, pass = NULL;
        }
        free(user);
        free(pass);
        host = at + 1;
    }
    colon = strrchr(host, ':');
    if (strchr(host, '/'))
        goto bad; /* no database number: the streams live in db 0 */
    if (colon) {
        if (!parse_i64_str(colon + 1, &port) || port < 1 || port > 65535)
            goto bad;
    }
    cfg->redis_host = xstrndup(host, colon ? (size_t)(colon - host) : strlen(host));
    cfg->redis_port = (int)port;
    if (cfg->redis_host[0] == '\0')
        goto bad;
    return 0;
bad:
    snprintf(err, errlen,
             "config: redis.url: must look like redis://[[USER]:PASSWORD@]HOST[:PORT] (the value "
             "is not repeated: it may hold a password)");
    return CDC_ECONFIG;
}

/* A name that becomes part of a Redis key: letters, digits, '-', '_', '.', at most
 * CONFIG_NAME_MAX bytes. */
static int check_name(const char *key, const char *v, char *err, size_t errlen)
{
    if (strlen(v) > CONFIG_NAME_MAX) {
        snprintf(err, errlen, "config: %s: at most %d characters (got %zu)", key, CONFIG_NAME_MAX,
                 strlen(v));
        return CDC_ECONFIG;
    }
    for (const char *p = v; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
            snprintf(err, errlen, "config: %s: only letters, digits, '-', '_' and '.'", key);
            return CDC_ECONFIG;
        }
    }
    return 0;
}

/* A libpq port list: "5432" or "5432,5433", each 1..65535 (empty: the default). */
static bool valid_ports(const char *v)
{
    while (*v) {
        size_t n = strcspn(v, ",");
        int64_t port;
        if (n > 0 && (!parse_i64(v, n, &port) || port < 1 || port > 65535))
            return false;
        v += n + (v[n] == ',');
    }
    return true;
}

/* http.tls_*: the certificate and key are read and matched now, so a bad file is named before
 * anything listens; a TLS port suffix without a certificate is a mistake, not plain HTTP. */
static int validate_tls(const struct config *cfg, char *err, size_t errlen)
{
    enum tls_min_version v;

    if (!tls_parse_min_version(cfg->http_tls_min_version, &v)) {
        snprintf(err, errlen, "config: http.tls_min_version: must be 1.2 or 1.3 (got \"%s\")",
                 cfg->http_tls_min_version);
        return CDC_ECONFIG;
    }
    if (cfg->http_tls_certificate[0])
        return tls_check_files(cfg->http_tls_certificate, cfg->http_tls_key, err, errlen);
    if (cfg->http_tls_key[0]) {
        snprintf(err, errlen, "config: http.tls_key: set without http.tls_certificate");
        return CDC_ECONFIG;
    }
    if (tls_listen_wants_tls(cfg->http_listen) || tls_listen_wants_tls(cfg->http_admin_listen)) {
        snprintf(err, errlen,
                 "config: %s: a port with the \"s\" (TLS) or \"r\" (redirect) suffix "
                 "needs http.tls_certificate",
                 tls_listen_wants_tls(cfg->http_listen) ? "http.listen" : "http.admin_listen");
        return CDC_ECONFIG;
    }
    return 0;
}

/* ---- resources: ---- */

/* Strings that may be secrets (tokens) are wiped before they are freed, as auth.c does. */
static void free_secret(char *s)
{
    if (!s)
        return;
    for (volatile char *p = s; *p; p++)
        *p = 0;
    free(s);
}

static void resource_clear(struct config_resource *r)
{
    free(r->name);
    free(r->table);
    free(r->key);
    for (size_t i = 0; i < r->ncolumns; i++)
        free(r->columns[i]);
    free(r->columns);
    free_secret(r->read_tokens);
    free_secret(r->write_tokens);
    free(r->version_column);
    memset(r, 0, sizeof(*r));
}

static void resources_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nresources; i++)
        resource_clear(&cfg->resources[i]);
    free(cfg->resources);
    cfg->resources = NULL;
    cfg->nresources = 0;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* The method name s (case-insensitive) as its resource_method bit; 0 when unknown. */
static unsigned method_bit(const char *s)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = {{"GET", RESOURCE_GET},
                   {"POST", RESOURCE_POST},
                   {"PUT", RESOURCE_PUT},
                   {"PATCH", RESOURCE_PATCH},
                   {"DELETE", RESOURCE_DELETE}};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcasecmp(s, methods[i].name) == 0)
            return methods[i].bit;
    return 0;
}

/* Replaces cfg's resources with copies of raw[0..n). Returns 0, or CDC_ECONFIG with err naming
 * resources[I].methods when a method is unknown (the only check that needs the raw list). origin
 * is appended to key names (" (from CDCACHE_RESOURCES)" or ""). */
static int resources_take(struct config *cfg, const struct raw_resource *raw, unsigned n,
                          const char *origin, char *err, size_t errlen)
{
    struct config_resource *list = xcalloc(n ? n : 1, sizeof(*list));
    int rc = CDC_ECONFIG;
    unsigned i;

    for (i = 0; i < n; i++) {
        const struct raw_resource *rr = &raw[i];
        struct config_resource *r = &list[i];
        r->name = dup_or_null(rr->name);
        r->table = dup_or_null(rr->table);
        r->key = dup_or_null(rr->key);
        r->read_tokens = dup_or_null(rr->read_tokens);
        r->write_tokens = dup_or_null(rr->write_tokens);
        r->version_column = dup_or_null(rr->version_column);
        if (rr->columns) {
            r->columns = xcalloc(rr->columns_count ? rr->columns_count : 1, sizeof(*r->columns));
            for (unsigned c = 0; c < rr->columns_count; c++)
                r->columns[c] = xstrdup(rr->columns[c]);
            r->ncolumns = rr->columns_count;
        }
        if (!rr->methods) {
            r->methods = RESOURCE_ALL;
            continue;
        }
        if (rr->methods_count == 0) {
            snprintf(err, errlen,
                     "config: resources[%u].methods%s: must name at least one of GET, POST, PUT, "
                     "PATCH, DELETE (omit it for all)",
                     i, origin);
            i++;
            goto out;
        }
        for (unsigned m = 0; m < rr->methods_count; m++) {
            unsigned bit = method_bit(rr->methods[m]);
            if (!bit) {
                snprintf(err, errlen,
                         "config: resources[%u].methods%s: unknown method \"%.16s\" (GET, POST, "
                         "PUT, PATCH or DELETE)",
                         i, origin, rr->methods[m]);
                i++;
                goto out;
            }
            r->methods |= bit;
        }
    }
    resources_free(cfg);
    cfg->resources = list, list = NULL;
    cfg->nresources = n;
    rc = 0;
out:
    if (list) {
        for (unsigned k = 0; k < i; k++)
            resource_clear(&list[k]);
        free(list);
    }
    return rc;
}

/* The shipped default: /items on inventory.items, whose own version column orders changes. */
static void resources_default(struct config *cfg)
{
    resources_free(cfg);
    cfg->resources = xcalloc(1, sizeof(*cfg->resources));
    cfg->nresources = 1;
    cfg->resources[0].name = xstrdup("items");
    cfg->resources[0].table = xstrdup("inventory.items");
    cfg->resources[0].version_column = xstrdup("version");
    cfg->resources[0].methods = RESOURCE_ALL;
}

/* Longest PostgreSQL identifier (NAMEDATALEN - 1). */
#define CONFIG_IDENT_MAX 63

/* An unquoted-style identifier: [A-Za-z_][A-Za-z0-9_]*, at most CONFIG_IDENT_MAX bytes. */
static bool plain_ident(const char *s, size_t n)
{
    if (n == 0 || n > CONFIG_IDENT_MAX || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* A comma list of tokens, as auth.c accepts them; the error names the key, never a token. */
static int check_tokens(const char *csv, unsigned i, const char *key, const char *origin, char *err,
                        size_t errlen)
{
    const char *rest = csv, *p;
    size_t n;
    int count = 0;

    while ((p = csv_next(&rest, &n))) {
        for (size_t k = 0; k < n; k++)
            if ((unsigned char)p[k] <= 0x20 || (unsigned char)p[k] >= 0x7f) {
                snprintf(err, errlen,
                         "config: resources[%u].%s%s: a token may hold only visible ASCII "
                         "characters (no spaces)",
                         i, key, origin);
                return CDC_ECONFIG;
            }
        if (++count > 64) {
            snprintf(err, errlen, "config: resources[%u].%s%s: at most 64 tokens", i, key, origin);
            return CDC_ECONFIG;
        }
    }
    return 0;
}

/* A column name as the catalog spells it: any text but empty, at most CONFIG_IDENT_MAX bytes, no
 * control characters (SQL quotes it). */
static bool column_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CONFIG_IDENT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int validate_resources(const struct config *cfg, const char *origin, char *err,
                              size_t errlen)
{
    static const char *const reserved[] = {"health", "ready", "metrics", "openapi.json",
                                           "openapi.yaml"};

    for (size_t i = 0; i < cfg->nresources; i++) {
        const struct config_resource *r = &cfg->resources[i];
        const char *dot;

        if (!r->name || !r->name[0]) {
            snprintf(err, errlen, "config: resources[%zu].name%s: missing (the route /NAME)", i,
                     origin);
            return CDC_ECONFIG;
        }
        if (strlen(r->name) > CONFIG_IDENT_MAX ||
            strspn(r->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                strlen(r->name)) {
            snprintf(err, errlen,
                     "config: resources[%zu].name%s: a route segment: letters, digits, '_' and "
                     "'-', at most %d characters",
                     i, origin, CONFIG_IDENT_MAX);
            return CDC_ECONFIG;
        }
        for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
            if (strcmp(r->name, reserved[k]) == 0) {
                snprintf(err, errlen, "config: resources[%zu].name%s: \"%s\" is a reserved path", i,
                         origin, r->name);
                return CDC_ECONFIG;
            }
        if (!r->table || !r->table[0]) {
            snprintf(err, errlen, "config: resources[%zu].table%s: missing (schema.table)", i,
                     origin);
            return CDC_ECONFIG;
        }
        dot = strchr(r->table, '.');
        if (!dot || !plain_ident(r->table, (size_t)(dot - r->table)) ||
            !plain_ident(dot + 1, strlen(dot + 1))) {
            snprintf(err, errlen,
                     "config: resources[%zu].table%s: must be schema.table, two identifiers of "
                     "letters, digits and '_' (got \"%.140s\")",
                     i, origin, r->table);
            return CDC_ECONFIG;
        }
        if (r->key && !column_name_ok(r->key)) {
            snprintf(err, errlen, "config: resources[%zu].key%s: must be a column name", i, origin);
            return CDC_ECONFIG;
        }
        if (r->version_column && !column_name_ok(r->version_column)) {
            snprintf(err, errlen, "config: resources[%zu].version_column%s: must be a column name",
                     i, origin);
            return CDC_ECONFIG;
        }
        if (r->columns && r->ncolumns == 0) {
            snprintf(err, errlen,
                     "config: resources[%zu].columns%s: must name at least one column (omit it "
                     "for all)",
                     i, origin);
            return CDC_ECONFIG;
        }
        for (size_t c = 0; c < r->ncolumns; c++) {
            if (!column_name_ok(r->columns[c])) {
                snprintf(err, errlen,
                         "config: resources[%zu].columns[%zu]%s: must be a column name", i, c,
                         origin);
                return CDC_ECONFIG;
            }
            for (size_t d = 0; d < c; d++)
                if (strcmp(r->columns[c], r->columns[d]) == 0) {
                    snprintf(err, errlen,
                             "config: resources[%zu].columns[%zu]%s: \"%.64s\" is listed twice", i,
                             c, origin, r->columns[c]);
                    return CDC_ECONFIG;
                }
        }
        if ((r->read_tokens &&
             check_tokens(r->read_tokens, (unsigned)i, "read_tokens", origin, err, errlen)) ||
            (r->write_tokens &&
             check_tokens(r->write_tokens, (unsigned)i, "write_tokens", origin, err, errlen)))
            return CDC_ECONFIG;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(cfg->resources[k].name, r->name) == 0) {
                snprintf(err, errlen,
                         "config: resources[%zu].name%s: \"%s\" is also resources[%zu].name", i,
                         origin, r->name, k);
                return CDC_ECONFIG;
            }
            if (strcmp(cfg->resources[k].table, r->table) == 0) {
                snprintf(err, errlen,
                         "config: resources[%zu].table%s: \"%s\" is also resources[%zu].table", i,
                         origin, r->table, k);
                return CDC_ECONFIG;
            }
        }
    }
    return 0;
}

static int validate(struct config *cfg, char *err, size_t errlen)
{
    enum log_level lvl;
    enum log_format fmt;

    if (log_parse_level(cfg->log_level, &lvl)) {
        snprintf(err, errlen, "config: log.level: must be debug, info, warn or error (got \"%s\")",
                 cfg->log_level);
        return CDC_ECONFIG;
    }
    if (log_parse_format(cfg->log_format, &fmt)) {
        snprintf(err, errlen, "config: log.format: must be auto, json or text (got \"%s\")",
                 cfg->log_format);
        return CDC_ECONFIG;
    }
    if (cfg->cdc_reconnect_max_ms < cfg->cdc_reconnect_min_ms) {
        snprintf(err, errlen, "config: cdc.reconnect_max_ms: must be >= cdc.reconnect_min_ms");
        return CDC_ECONFIG;
    }
    if (cfg->cdc_block_ms >= cfg->cdc_max_staleness_ms) {
        snprintf(err, errlen, "config: cdc.block_ms: must be below cdc.max_staleness_ms");
        return CDC_ECONFIG;
    }
    if (cfg->warm_sample_ttl_ms <= cfg->warm_publish_interval_ms) {
        snprintf(err, errlen, "config: warm.sample_ttl_ms: must exceed warm.publish_interval_ms");
        return CDC_ECONFIG;
    }
    if (cfg->cdc_group_dead_after_ms <= 2 * cfg->cdc_trim_interval_ms) {
        snprintf(err, errlen,
                 "config: cdc.group_dead_after_ms: must exceed twice cdc.trim_interval_ms");
        return CDC_ECONFIG;
    }
    {
        /* libpq's own parser, so a typo fails here and not as a 503 on every read; its message
         * names what is wrong without repeating the value (which may hold a password) */
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(cfg->postgres_conninfo, &perr);
        if (!opts) {
            size_t n = perr ? strcspn(perr, "\n") : 0;
            snprintf(err, errlen,
                     "config: postgres.conninfo: not a valid libpq connection string%s%.*s",
                     n ? ": " : "", (int)n, perr ? perr : "");
            PQfreemem(perr);
            return CDC_ECONFIG;
        }
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            /* libpq checks ports only when it connects */
            if (strcmp(o->keyword, "port") == 0 && o->val && !valid_ports(o->val)) {
                snprintf(err, errlen,
                         "config: postgres.conninfo: port must be a number between 1 and 65535 "
                         "(one per host, comma-separated)");
                PQconninfoFree(opts);
                return CDC_ECONFIG;
            }
        }
        PQconninfoFree(opts);
    }
    {
        struct auth *a = auth_create(cfg->auth_write_tokens, cfg->auth_read_tokens, err, errlen);
        if (!a)
            return CDC_ECONFIG;
        auth_destroy(a);
    }
    if (validate_tls(cfg, err, errlen))
        return CDC_ECONFIG;
    if (cfg->http_shared_listen[0]) {
        struct sockaddr_in a;
        char why[160];
        if (listener_parse_shared(cfg->http_shared_listen, &a, why, sizeof(why))) {
            snprintf(err, errlen, "config: http.shared_listen: %s", why);
            return CDC_ECONFIG;
        }
    }
    {
        struct cors *c = cors_create(cfg->http_cors_origins, err, errlen);
        if (!c)
            return CDC_ECONFIG;
        cors_destroy(c);
    }
    /* The group is "<group_prefix>-<replica_id>": both are bounded so it is never cut (two cut
     * names could share one group, and each replica would see only part of the changes). */
    if (check_name("cdc.replica_id", cfg->cdc_replica_id, err, errlen) ||
        check_name("cdc.group_prefix", cfg->cdc_group_prefix, err, errlen))
        return CDC_ECONFIG;
    return parse_redis_url(cfg, err, errlen);
}

/* libcyaml names the place of an error inside `resources:` with a backtrace ("... in mapping field
 * 'methods' ... in sequence entry 'N' ... in mapping field 'resources'", N counted from 1).
 * Rewritten as "resources[N-1].KEY", the index every other check uses (0-based, as in JSONPath and
 * Kubernetes' messages). Returns true when msg was about a resource. what is cyaml_strerror(). */
static bool resource_key_error(const char *msg, const char *what, bool in_env, const char *origin,
                               char *err, size_t errlen)
{
    static const char seq[] = "in sequence entry '", field[] = "in mapping field '";
    const char *entry = NULL, *key = NULL, *unexpected = strstr(msg, "Unexpected key: ");
    const char *end = in_env ? NULL : strstr(msg, "in mapping field 'resources'");
    size_t klen = 0;
    int64_t n;

    if ((!in_env && !end) || strstr(msg, "libyaml"))
        return false; /* a syntax error has no resource to name */
    /* the entry of the resources list: the last sequence entry (before 'resources' in a file) */
    for (const char *p = msg; (p = strstr(p, seq)) && (!end || p < end); p += sizeof(seq) - 1)
        entry = p;
    if (!entry || !parse_i64(entry + sizeof(seq) - 1, strcspn(entry + sizeof(seq) - 1, "'"), &n) ||
        n < 1)
        return false;
    if (unexpected) {
        key = unexpected + strlen("Unexpected key: ");
        klen = strcspn(key, " ");
    } else {
        /* the field inside that entry: the last one named before it */
        for (const char *p = msg; (p = strstr(p, field)) && p < entry; p += sizeof(field) - 1)
            key = p + sizeof(field) - 1;
        klen = key ? strcspn(key, "'") : 0;
    }
    if (unexpected)
        snprintf(err, errlen,
                 "config: resources[%lld].%.*s%s: unknown key (name, table, key, columns, methods, "
                 "read_tokens, write_tokens, version_column)",
                 (long long)(n - 1), (int)(klen > 64 ? 64 : klen), key, origin);
    else if (key && strstr(msg, "Insufficient entries"))
        snprintf(err, errlen,
                 "config: resources[%lld].%.*s%s: must name at least one (omit it for all)",
                 (long long)(n - 1), (int)(klen > 64 ? 64 : klen), key, origin);
    else
        snprintf(err, errlen,
                 "config: resources[%lld]%s%.*s%s: %s (a resource is a mapping of strings; "
                 "columns and methods are lists of strings)",
                 (long long)(n - 1), key ? "." : "", (int)(klen > 64 ? 64 : klen), key ? key : "",
                 origin, what);
    return true;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
    static const cyaml_config_t base = {.log_fn = NULL,
                                        .mem_fn = cyaml_mem,
                                        .log_level = CYAML_LOG_ERROR,
                                        .flags = CYAML_CFG_DEFAULT};
    struct config *cfg = xcalloc(1, sizeof(*cfg));
    struct raw *raw = NULL;
    struct raw_resource *env_list = NULL;
    unsigned env_count = 0;
    struct log_capture lc = {{0}};
    cyaml_config_t ycfg = base;
    int rc = CDC_ECONFIG;

    ycfg.log_fn = capture_log;
    ycfg.log_ctx = &lc;
    if (path) {
        cyaml_err_t yerr = cyaml_load_file(path, &ycfg, &raw_schema, (cyaml_data_t **)&raw, NULL);
        if (yerr != CYAML_OK) {
            if (!resource_key_error(lc.msg, cyaml_strerror(yerr), false, "", err, errlen))
                snprintf(err, errlen, "config: %s: %s%s%s", path, cyaml_strerror(yerr),
                         lc.msg[0] ? ": " : "", lc.msg);
            goto out;
        }
    }

    /* defaults, then the file, then the environment; each value checked as it is set */
#define APPLY(sec, key, type, def, min, max)                                                       \
    do {                                                                                           \
        char env_name[96];                                                                         \
        const char *val = def, *origin = "";                                                       \
        char origin_buf[112];                                                                      \
        if (raw && raw->sec && raw->sec->key)                                                      \
            val = raw->sec->key;                                                                   \
        snprintf(env_name, sizeof(env_name), "CDCACHE_%s_%s", #sec, #key);                         \
        for (char *p = env_name; *p; p++)                                                          \
            *p = (char)toupper((unsigned char)*p);                                                 \
        if (getenv(env_name)) {                                                                    \
            val = getenv(env_name);                                                                \
            snprintf(origin_buf, sizeof(origin_buf), " (from %s)", env_name);                      \
            origin = origin_buf;                                                                   \
        }                                                                                          \
        if (set_value(cfg, #sec, #key, #type, val, origin, (long long)(min), (long long)(max),     \
                      &cfg->sec##_##key, err, errlen))                                             \
            goto out;                                                                              \
    } while (0);
    CONFIG_KEYS(APPLY)
#undef APPLY

    /* resources: the file's list, or CDCACHE_RESOURCES (a YAML/JSON flow list) in its place, or
     * the default; a list replaces the default whole */
    {
        /* empty counts as unset, so compose can pass ${CDCACHE_RESOURCES:-} through */
        const char *env = getenv("CDCACHE_RESOURCES");
        if (env && !env[strspn(env, " \t\r\n")])
            env = NULL;
        const char *origin = "";
        if (env) {
            cyaml_err_t yerr;
            origin = " (from CDCACHE_RESOURCES)";
            lc.msg[0] = '\0';
            yerr = cyaml_load_data((const uint8_t *)env, strlen(env), &ycfg, &raw_resources_schema,
                                   (cyaml_data_t **)&env_list, &env_count);
            if (yerr != CYAML_OK) {
                if (!resource_key_error(lc.msg, cyaml_strerror(yerr), true, origin, err, errlen))
                    snprintf(err, errlen, "config: resources%s: %s%s%s", origin,
                             cyaml_strerror(yerr), lc.msg[0] ? ": " : "", lc.msg);
                goto out;
            }
            if (resources_take(cfg, env_list, env_count, origin, err, errlen))
                goto out;
        } else if (raw && raw->resources && raw->resources_count > 0) {
            if (resources_take(cfg, raw->resources, raw->resources_count, origin, err, errlen))
                goto out;
        }
        if (cfg->nresources == 0)
            resources_default(cfg);
        if (validate_resources(cfg, origin, err, errlen))
            goto out;
    }

    rc = validate(cfg, err, errlen);
    if (rc == 0)
        *out = cfg, cfg = NULL;
out:
    if (raw)
        cyaml_free(&ycfg, &raw_schema, raw, 0);
    if (env_list)
        cyaml_free(&ycfg, &raw_resources_schema, env_list, env_count);
    config_free(cfg);
    return rc;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
#define FREE_STR_STR(name) free(cfg->name);
#define FREE_STR_INT(name)
#define FREE_STR_SIZE(name)
#define FREE_STR_BOOL(name)
#define FREE_FIELD(sec, key, type, def, min, max) FREE_STR_##type(sec##_##key)
    CONFIG_KEYS(FREE_FIELD)
#undef FREE_FIELD
    resources_free(cfg);
    free(cfg->redis_host);
    free(cfg);
}
