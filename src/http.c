/* HTTP handlers. One catch-all civetweb handler routes by path and method, parses the request,
 * calls the read protocol (reads.c: cache, leases, vouching, read-your-writes) or the database, and
 * writes the answer. No cache rule lives here. The fixed routes and the methods each takes are one
 * table (routes[]); every declared resource (catalog.h) adds /NAME and /NAME/{key}, whose methods
 * come from its descriptor. Together they give 405's Allow, preflights' allowed methods and the
 * admin listener's paths. Requests civetweb refuses before routing (a malformed head, a method it
 * does not know) are answered by civetweb_error(), so every error is application/problem+json.
 * openapi.yaml describes all of it. */
#include "cdcache/http.h"
#include "cdcache/apidoc.h"
#include "cdcache/auth.h"
#include "cdcache/catalog.h"
#include "cdcache/codec.h"
#include "cdcache/filter.h"
#include "cdcache/cors.h"
#include "cdcache/error.h"
#include "cdcache/listener.h"
#include "cdcache/log.h"
#include "cdcache/openapi.h"
#include "cdcache/process.h"
#include "cdcache/query.h"
#include "cdcache/reads.h"
#include "cdcache/row.h"
#include "cdcache/tls.h"
#include "cdcache/util.h"
#include "cdcache/warm.h"

#include <arpa/inet.h>
#include <assert.h>
#include <civetweb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* The OpenAPI document of one resource set (apidoc.h), rendered once per set generation. Replaced
 * documents are kept (retired) until the server is freed: a worker may still be writing one. */
struct http_doc {
    uint64_t generation;
    char *json, *yaml;
    size_t json_len, yaml_len;
    struct http_doc *retired;
};

struct http_server {
    struct mg_context *ctx;
    struct mg_context
        *admin; /* http.admin_listen: /health, /ready, /metrics on their own threads */
    struct reads *reads;
    struct catalog *catalog;
    pthread_mutex_t doc_lock;       /* guards building and publishing doc */
    _Atomic(struct http_doc *) doc; /* the current set's document; read lock-free */
    struct auth *auth;
    struct auth **res_auth; /* per resource: its own tokens, or a copy of the global ones */
    size_t nres_auth;
    struct cors *cors;
    _Atomic bool draining;  /* SIGTERM: /ready answers 503 and every answer closes its connection
                             * while in-flight requests finish */
    _Atomic int open_conns; /* connections of the main listener civetweb has open (http_stop waits
                             * for them to end) */
    const struct config *cfg;
    struct cache *cache;
    struct db *db;
    struct cdc *cdc;
    struct metrics *metrics;
    /* http.shared_listen: the port of the placeholder socket the main listener was started with
     * (127.0.0.1, picked by the kernel, nobody connects to it) until http_share() puts the shared
     * socket in its place; then shared_port is the shared port. 0: none. Written by the thread
     * that starts and stops the server only. */
    int placeholder_port, shared_port;
    /* Why the last init_ssl callback failed; written and read in the thread that runs http_start()
     * (civetweb calls init_ssl from mg_start()). */
    char tls_err[512];
};

/* Problem types: stable identifiers clients can switch on. */
#define PROBLEMS(X)                                                                                \
    X(INVALID_ID, 400, "invalid-id", "Invalid key")                                                \
    X(INVALID_BODY, 400, "invalid-body", "Invalid request body")                                   \
    X(INVALID_QUERY, 400, "invalid-query", "Invalid query parameter")                              \
    X(INVALID_HEADER, 400, "invalid-header", "Invalid header")                                     \
    X(BAD_REQUEST, 400, "bad-request", "Malformed request")                                        \
    X(NOT_FOUND, 404, "not-found", "Not found")                                                    \
    X(CONFLICT, 409, "conflict", "Conflict")                                                       \
    X(NO_ROUTE, 404, "no-route", "No such resource")                                               \
    X(UNAUTHORIZED, 401, "unauthorized", "Unauthorized")                                           \
    X(METHOD, 405, "method-not-allowed", "Method not allowed")                                     \
    X(TIMEOUT, 408, "request-timeout", "Request timeout")                                          \
    X(PRECONDITION, 412, "precondition-failed", "Version precondition failed")                     \
    X(TOO_LARGE, 413, "body-too-large", "Request body too large")                                  \
    X(HEADERS, 431, "headers-too-large", "Request header fields too large")                        \
    X(INTERNAL, 500, "internal", "Internal error")                                                 \
    X(DB_DOWN, 503, "database-unavailable", "Database unavailable")

enum problem {
#define PROBLEM_ENUM(name, status, slug, title) P_##name,
    PROBLEMS(PROBLEM_ENUM)
#undef PROBLEM_ENUM
};

static const struct {
    int status;
    const char *slug;
    const char *title;
} problems[] = {
#define PROBLEM_ROW(name, status, slug, title) {status, slug, title},
    PROBLEMS(PROBLEM_ROW)
#undef PROBLEM_ROW
};

#define EXTRA_HEADERS_MAX 2048

/* The fixed routes, each with the methods it takes (the Allow header; OPTIONS is answered
 * everywhere for CORS preflights). ops: also served on the admin listener. COLLECTION and ROW are
 * every resource's /NAME and /NAME/{key}: their methods come from the resource (route_allow()). */
#define ROUTES(X)                                                                                  \
    X(NONE, NULL, NULL, false)                                                                     \
    X(INDEX, "/", "GET, HEAD, OPTIONS", false)                                                     \
    X(OPENAPI_YAML, "/openapi.yaml", "GET, HEAD, OPTIONS", false)                                  \
    X(OPENAPI_JSON, "/openapi.json", "GET, HEAD, OPTIONS", false)                                  \
    X(COLLECTION, NULL, NULL, false)                                                               \
    X(ROW, NULL, NULL, false)                                                                      \
    X(HEALTH, "/health", "GET, HEAD, OPTIONS", true)                                               \
    X(READY, "/ready", "GET, HEAD, OPTIONS", true)                                                 \
    X(METRICS, "/metrics", "GET, HEAD, OPTIONS", true)

enum route {
#define ROUTE_ENUM(name, path, allow, ops) RT_##name,
    ROUTES(ROUTE_ENUM)
#undef ROUTE_ENUM
};

static const struct {
    const char *path;
    const char *allow;
    bool ops;
} routes[] = {
#define ROUTE_ROW(name, path, allow, ops) {path, allow, ops},
    ROUTES(ROUTE_ROW)
#undef ROUTE_ROW
};

/* The route of a decoded path (without its query): a fixed one, or a resource's collection
 * ("/NAME", and "/NAME/" as it always was for /items) or row ("/NAME/<key>", *key pointing at the
 * key's text in path). */
static enum route route_of(const struct resource_set *set, const char *path, size_t n,
                           const struct resource **res, const char **key)
{
    const char *slash;

    *res = NULL;
    *key = NULL;
    for (size_t r = RT_INDEX; r < sizeof(routes) / sizeof(routes[0]); r++)
        if (routes[r].path && strlen(routes[r].path) == n && strncmp(routes[r].path, path, n) == 0)
            return (enum route)r;
    if (n < 2 || path[0] != '/')
        return RT_NONE;
    slash = memchr(path + 1, '/', n - 1);
    *res = resource_find(set, path + 1, slash ? (size_t)(slash - path - 1) : n - 1);
    if (!*res)
        return RT_NONE;
    if (!slash || (size_t)(slash - path) == n - 1)
        return RT_COLLECTION;
    *key = slash + 1;
    return RT_ROW;
}

/* The methods a route takes, as an Allow header value, into buf (at least 64 bytes). */
static const char *route_allow(enum route rt, const struct resource *res, char *buf, size_t cap)
{
    unsigned m;

    if (rt != RT_COLLECTION && rt != RT_ROW)
        return routes[rt].allow;
    m = res->methods;
    snprintf(buf, cap, "%s%s%s%s%s%sOPTIONS", (m & RESOURCE_GET) ? "GET, HEAD, " : "",
             rt == RT_COLLECTION && (m & RESOURCE_POST) ? "POST, " : "",
             (m & RESOURCE_PUT) ? "PUT, " : "",
             rt == RT_ROW && (m & RESOURCE_PATCH) ? "PATCH, " : "",
             rt == RT_ROW && (m & RESOURCE_DELETE) ? "DELETE, " : "", "");
    return buf;
}

/* True when method m is one of allow's (exact, case-sensitive: methods are). */
static bool method_in(const char *allow, const char *m)
{
    size_t n = strlen(m);
    for (const char *p = allow; p && *p;) {
        if (strncmp(p, m, n) == 0 && (p[n] == '\0' || p[n] == ','))
            return true;
        p = strchr(p, ',');
        if (p)
            p += 2;
    }
    return false;
}

/* X-Request-Id: a client's own, when it is 1..REQUEST_ID_MAX characters of [A-Za-z0-9._~:/+=@-],
 * else one made here (16 hex digits from a per-thread generator). */
#define REQUEST_ID_MAX 128

struct request {
    struct mg_connection *conn;
    struct http_server *srv;
    const struct mg_request_info *ri;
    enum metrics_route route;
    int rroute; /* enum metrics_resource_route of rq->res's route; -1: route is a fixed one */
    const char *allow;          /* the route's methods (405's Allow), NULL for no route */
    const struct resource *res; /* the resource of /NAME and /NAME/{key}, else NULL */
    char allow_buf[80];
    int status;
    const char *xcache; /* the X-Cache answered, for the access log; NULL: none */
    char id[REQUEST_ID_MAX + 1];
    char extra[EXTRA_HEADERS_MAX]; /* response header lines, each ending in \r\n */
    size_t extra_len;
};

static void add_header(struct request *rq, const char *name, const char *value)
{
    int n = snprintf(rq->extra + rq->extra_len, sizeof(rq->extra) - rq->extra_len, "%s: %s\r\n",
                     name, value);
    /* every value is bounded (the longest, an origin, by CORS_ORIGIN_MAX): the sum fits */
    assert(n > 0 && (size_t)n < sizeof(rq->extra) - rq->extra_len);
    if (n > 0 && (size_t)n < sizeof(rq->extra) - rq->extra_len)
        rq->extra_len += (size_t)n;
}

static void add_etag(struct request *rq, int64_t version)
{
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%lld\"", (long long)version);
    add_header(rq, "ETag", etag);
}

static void send_response(struct request *rq, int status, const char *ctype, const char *body,
                          size_t len)
{
    char clen[24];

    rq->status = status;
    mg_response_header_start(rq->conn, status);
    if (ctype)
        mg_response_header_add(rq->conn, "Content-Type", ctype, -1);
    snprintf(clen, sizeof(clen), "%zu", len);
    mg_response_header_add(rq->conn, "Content-Length", clen, -1);
    /* A draining replica lets no connection go idle: a client (nginx) that reused one just as the
     * replica stops would lose a request it cannot safely retry (a POST) */
    if (atomic_load_explicit(&rq->srv->draining, memory_order_relaxed))
        mg_response_header_add(rq->conn, "Connection", "close", -1);
    if (rq->extra_len)
        mg_response_header_add_lines(rq->conn, rq->extra);
    mg_response_header_send(rq->conn);
    if (len && strcmp(rq->ri->request_method, "HEAD") != 0)
        mg_write(rq->conn, body, len);
}

static void send_json(struct request *rq, int status, const struct buf *b)
{
    send_response(rq, status, "application/json", b->data ? b->data : "", b->len);
}

/* The problem+json body of problem p with HTTP status `status`; field may be NULL. */
static void problem_body(struct buf *b, enum problem p, int status, const char *detail,
                         const char *field)
{
    buf_init(b, 4096);
    buf_printf(b,
               "{\"type\":\"urn:cdcache:problem:%s\",\"title\":\"%s\",\"status\":%d,\"detail\":\"",
               problems[p].slug, problems[p].title, status);
    buf_json_escape_text(b, detail, strlen(detail));
    buf_puts(b, "\"");
    if (field && field[0]) {
        buf_puts(b, ",\"field\":\"");
        buf_json_escape_text(b, field, strlen(field));
        buf_puts(b, "\"");
    }
    buf_puts(b, "}");
}

static void send_problem(struct request *rq, enum problem p, const char *detail, const char *field)
{
    struct buf b;

    problem_body(&b, p, problems[p].status, detail, field);
    if (p == P_METHOD && rq->allow)
        add_header(rq, "Allow", rq->allow);
    if (problems[p].status == 503)
        add_header(rq, "Retry-After", "1");
    send_response(rq, problems[p].status, "application/problem+json", b.data, b.len);
    buf_free(&b);
}

/* Parses `"<n>"`, `W/"<n>"` or `*` (as -1), with spaces around. Returns false when malformed. */
static bool parse_etag(const char *s, int64_t *v)
{
    size_t n;
    while (*s == ' ')
        s++;
    n = strlen(s);
    while (n > 0 &&
           s[n - 1] == ' ') /* optional whitespace around a field value is not part of it */
        n--;
    if (n == 1 && s[0] == '*') {
        *v = -1;
        return true;
    }
    if (n >= 2 && strncmp(s, "W/", 2) == 0) {
        s += 2;
        n -= 2;
    }
    if (n < 3 || s[0] != '"' || s[n - 1] != '"')
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    /* a well-formed tag beyond int64 names no version an item has (one per update): it never
     * matches, so If-Match with it fails with 412 like any other stale tag, never 400 */
    if (!parse_i64(s + 1, n - 2, v))
        *v = INT64_MAX;
    return true;
}

/* True when If-None-Match (a list of ETags or *) matches version. */
static bool none_match(const char *h, int64_t version)
{
    char copy[256];
    char *save = NULL;
    snprintf(copy, sizeof(copy), "%s", h);
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (parse_etag(tok, &v) && (v == -1 || v == version))
            return true;
    }
    return false;
}

static bool header_has_token(const char *h, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = h; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncasecmp(p, token, n) == 0 &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == ';'))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

static void send_item(struct request *rq, int status, const char *body, size_t len, int64_t version,
                      const char *xcache)
{
    if (xcache) {
        add_header(rq, "X-Cache", xcache);
        rq->xcache = xcache;
    }
    add_etag(rq, version);
    send_response(rq, status, "application/json", body, len);
}

/* The Date header for the current second, formatted once per second per thread. */
static const char *http_date(void)
{
    static _Thread_local char date[40];
    static _Thread_local time_t at;
    time_t now = time(NULL);
    struct tm tm;

    if (now != at && gmtime_r(&now, &tm)) {
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at = now;
    }
    return date;
}

/* A cache hit's 200: the stored body behind headers built in one buffer and sent with one write, so
 * the hit path costs a lookup, a copy and a send. HTTP/1.1 only (keep-alive is its default);
 * anything else, and every answer of a draining replica (Connection: close), goes through
 * civetweb's header functions. */
static void send_hit(struct request *rq, const char *body, size_t len, int64_t version)
{
    char buf[8192];
    int n;

    if (strcmp(rq->ri->http_version, "1.1") != 0 || strcmp(rq->ri->request_method, "GET") != 0 ||
        atomic_load_explicit(&rq->srv->draining, memory_order_relaxed)) {
        send_item(rq, 200, body, len, version, "hit");
        return;
    }
    rq->status = 200;
    rq->xcache = "hit";
    n = snprintf(buf, sizeof(buf),
                 "HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nX-Cache: hit\r\nETag: \"%lld\"\r\n%.*s\r\n",
                 http_date(), len, (long long)version, (int)rq->extra_len, rq->extra);
    if (n > 0 && (size_t)n + len <= sizeof(buf)) {
        memcpy(buf + n, body, len);
        mg_write(rq->conn, buf, (size_t)n + len);
    } else if (n > 0) {
        mg_write(rq->conn, buf, (size_t)n);
        mg_write(rq->conn, body, len);
    }
}

/* The read-your-writes token a write hands back: a client that cannot send X-Min-Version (a
 * browser, Postman) gets it as a short-lived cookie scoped to the row's path, which reads of that
 * path honour. */
#define RYW_COOKIE     "cdcache-rv"
#define RYW_COOKIE_AGE "60"

static void add_token(struct request *rq, const char *key, int64_t version)
{
    char v[24], cookie[1024];
    struct buf path;

    snprintf(v, sizeof(v), "%lld", (long long)version);
    add_header(rq, "X-Min-Version", v);
    buf_init(&path, 700);
    buf_printf(&path, "/%s/", rq->res->name);
    /* only short keys that need no escaping in a cookie path; others rely on the header */
    if (strlen(key) > 128) {
        buf_free(&path);
        return;
    }
    for (const char *p = key; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.')) {
            buf_free(&path);
            return;
        }
    if (buf_puts(&path, key) == 0 &&
        snprintf(cookie, sizeof(cookie),
                 RYW_COOKIE "=%s; Path=%s; Max-Age=" RYW_COOKIE_AGE "; HttpOnly; SameSite=Lax", v,
                 path.data) < (int)sizeof(cookie))
        add_header(rq, "Set-Cookie", cookie);
    buf_free(&path);
}

/* The version a read must not go below: X-Min-Version, else the read-your-writes cookie (scoped by
 * the client to this row's path). Returns false after sending 400. */
static bool read_min_version(struct request *rq, int64_t *min_version)
{
    const char *h = mg_get_header(rq->conn, "X-Min-Version");
    char cookie[32];

    *min_version = 0;
    if (h) {
        if (parse_i64_str(h, min_version) && *min_version >= 0)
            return true;
        send_problem(rq, P_INVALID_HEADER, "X-Min-Version must be a non-negative integer",
                     "X-Min-Version");
        return false;
    }
    h = mg_get_header(rq->conn, "Cookie");
    if (h && mg_get_cookie(h, RYW_COOKIE, cookie, sizeof(cookie)) > 0 &&
        (!parse_i64_str(cookie, min_version) || *min_version < 0))
        *min_version = 0; /* a cookie nobody can fix by hand is ignored, not refused */
    return true;
}

/* The canonical text of the path's key into key[0..cap), or sends 400 naming the key column. */
static bool path_key(struct request *rq, const char *text, char *key, size_t cap)
{
    const struct resource_column *k = &rq->res->columns[rq->res->key];
    char msg[200];
    size_t len;

    /* a key drawn from a sequence is positive: 0 or -1 names no row (and never did for /items) */
    if (codec_key_canon(&k->type, text, strlen(text), key, cap, &len) == 0 &&
        !(k->serial && (key[0] == '-' || strcmp(key, "0") == 0)))
        return true;
    if (k->serial)
        snprintf(msg, sizeof(msg), "the %s must be an integer between 1 and %s", k->name,
                 k->type.kind == CODEC_INT8   ? "9223372036854775807"
                 : k->type.kind == CODEC_INT4 ? "2147483647"
                                              : "32767");
    else
        snprintf(msg, sizeof(msg), "the %s must be a valid %s", k->name, k->sql_type);
    send_problem(rq, P_INVALID_ID, msg, k->name);
    return false;
}

/* GET /NAME/{key} */
static void row_get(struct request *rq, const char *key)
{
    static const char *const xcache[] = {"hit", "miss", "bypass"};
    static const enum metrics_xcache xkind[] = {XCACHE_HIT, XCACHE_MISS, XCACHE_BYPASS};
    const char *inm = mg_get_header(rq->conn, "If-None-Match");
    const char *cc = mg_get_header(rq->conn, "Cache-Control");
    const char *pragma = mg_get_header(rq->conn, "Pragma");
    int64_t min_version = 0;
    struct reads_result res;

    if (!read_min_version(rq, &min_version))
        return;
    reads_get(rq->srv->reads, rq->res, key, min_version,
              (cc && header_has_token(cc, "no-cache")) ||
                  (pragma && header_has_token(pragma, "no-cache")),
              &res);
    if (res.rc == CDC_ESCHEMA) {
        /* the table changed under the descriptor: read the catalog now and try once more */
        char err[256];
        reads_result_release(&res);
        if (catalog_load(rq->srv->catalog, false, err, sizeof(err)) == 0)
            rq->res = &catalog_current(rq->srv->catalog)->r[rq->res->index];
        reads_get(rq->srv->reads, rq->res, key, min_version, true, &res);
    }
    metrics_xcache(rq->srv->metrics, xkind[res.source]);
    if (res.rc == 0 && res.source == READS_HIT && !inm) {
        send_hit(rq, res.body, res.len, res.version);
        reads_result_release(&res);
        return;
    }
    add_header(rq, "X-Cache", xcache[res.source]);
    rq->xcache = xcache[res.source];
    if (res.rc == CDC_ENOTFOUND)
        send_problem(rq, P_NOT_FOUND, "no row with this key", NULL);
    else if (res.rc)
        send_problem(rq, P_DB_DOWN, "the database could not answer; try again", NULL);
    else if (inm && none_match(inm, res.version)) {
        add_etag(rq, res.version);
        send_response(rq, 304, NULL, NULL, 0);
    } else
        send_item(rq, 200, res.body, res.len, res.version, NULL);
    reads_result_release(&res);
}

/* Reads the whole request body up to the configured cap. Returns 0; or sends 413 and returns
 * CDC_ETOOBIG; or, when fewer bytes than Content-Length arrived within http.request_timeout_ms (a
 * slow or short body), sends 408 and returns CDC_EIO: a body is never processed in part. */
static int read_body(struct request *rq, struct buf *b)
{
    size_t cap = (size_t)rq->srv->cfg->http_max_body_bytes;
    long long want = rq->ri->content_length; /* -1: chunked or unknown */
    char chunk[8192];
    int n;

    buf_init(b, cap);
    if (rq->ri->content_length > (long long)cap) {
        send_problem(rq, P_TOO_LARGE, "the body exceeds http.max_body_bytes", NULL);
        return CDC_ETOOBIG;
    }
    while ((n = mg_read(rq->conn, chunk, sizeof(chunk))) > 0) {
        if (buf_append(b, chunk, (size_t)n)) {
            send_problem(rq, P_TOO_LARGE, "the body exceeds http.max_body_bytes", NULL);
            buf_free(b);
            return CDC_ETOOBIG;
        }
    }
    if (n < 0 || (want >= 0 && (long long)b->len < want)) {
        send_problem(rq, P_TIMEOUT,
                     "the body did not arrive whole within http.request_timeout_ms; nothing was "
                     "written",
                     NULL);
        buf_free(b);
        return CDC_EIO;
    }
    return 0;
}

/* Parses an If-Match header into *if_match (-1: none or *). Returns false after sending 400. */
static bool read_if_match(struct request *rq, int64_t *if_match)
{
    const char *h = mg_get_header(rq->conn, "If-Match");
    *if_match = -1;
    if (h && !parse_etag(h, if_match)) {
        send_problem(rq, P_INVALID_HEADER, "If-Match must be an ETag such as \"3\"", "If-Match");
        return false;
    }
    return true;
}

static void send_write_error(struct request *rq, int rc, const struct sql_error *e)
{
    static const struct sql_error none = {"refused by PostgreSQL", ""};

    if (!e)
        e = &none;
    if (rc == CDC_ENOTFOUND)
        send_problem(rq, P_NOT_FOUND, "no row with this key", NULL);
    else if (rc == CDC_ECONFLICT)
        send_problem(rq, P_PRECONDITION, "the row has another version than If-Match names", NULL);
    else if (rc == CDC_EINVAL)
        send_problem(rq, P_INVALID_BODY, e->detail, e->field);
    else if (rc == CDC_EDUPLICATE)
        send_problem(rq, P_CONFLICT, e->detail, e->field);
    else
        send_problem(rq, P_DB_DOWN, "the database could not complete the write", NULL);
}

/* Runs a write; on CDC_ESCHEMA (the table changed under the descriptor) reads the catalog again
 * and answers 503: the body was checked against columns that may no longer be there, so it is not
 * retried blindly. */
static bool schema_moved(struct request *rq, int rc)
{
    char err[256];
    if (rc != CDC_ESCHEMA)
        return false;
    catalog_load(rq->srv->catalog, false, err, sizeof(err));
    send_problem(rq, P_DB_DOWN, "the table changed while the request ran; try again", NULL);
    return true;
}

static void row_create(struct request *rq, const struct row_input *in)
{
    struct sql_error e = {"", ""};
    char key[CACHE_MAX_KEY + 1];
    struct buf out, loc;
    int64_t version = 0;
    int rc;

    buf_init(&out, 1u << 24);
    rc = reads_create_row(rq->srv->reads, rq->res, in, &out, key, sizeof(key), &version, &e);
    if (schema_moved(rq, rc)) {
    } else if (rc) {
        send_write_error(rq, rc, &e);
    } else {
        buf_init(&loc, 1024);
        buf_printf(&loc, "/%s/", rq->res->name);
        /* a key is URL-safe unless it is text: then its bytes are percent-encoded */
        for (const char *p = key; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                strchr("-._~", c))
                buf_append(&loc, p, 1);
            else
                buf_printf(&loc, "%%%02X", c);
        }
        if (loc.len < 900)
            add_header(rq, "Location", loc.data);
        buf_free(&loc);
        add_etag(rq, version);
        add_token(rq, key, version);
        send_json(rq, 201, &out);
    }
    buf_free(&out);
}

static void row_update(struct request *rq, const char *key, int64_t if_match,
                       const struct row_input *in)
{
    struct sql_error e = {"", ""};
    struct buf out;
    int64_t version = 0;
    int rc;

    buf_init(&out, 1u << 24);
    rc = reads_update_row(rq->srv->reads, rq->res, key, if_match, in, &out, &version, &e);
    if (schema_moved(rq, rc)) {
    } else if (rc) {
        send_write_error(rq, rc, &e);
    } else {
        add_etag(rq, version);
        add_token(rq, key, version);
        send_json(rq, 200, &out);
    }
    buf_free(&out);
}

/* POST /NAME, PUT /NAME (the seed's upsert), PUT and PATCH /NAME/{key}. key: the path's canonical
 * key (NULL on the collection). */
static void row_write(struct request *rq, const char *key, enum row_mode mode)
{
    struct buf raw;
    struct row_input in;
    char err[256], field[128];
    int64_t if_match = -1;

    if (!read_if_match(rq, &if_match) || read_body(rq, &raw))
        return;
    if (row_input_parse(rq->res, raw.data ? raw.data : "", raw.len, mode, &in, err, sizeof(err),
                        field, sizeof(field))) {
        send_problem(rq, P_INVALID_BODY, err, field);
        buf_free(&raw);
        return;
    }
    buf_free(&raw);
    if (key && in.has_key && strcmp(in.key, key) != 0) {
        const char *kn = rq->res->columns[rq->res->key].name;
        snprintf(err, sizeof(err), "field '%s': does not match the key in the path", kn);
        send_problem(rq, P_INVALID_BODY, err, kn);
    } else if (mode == ROW_CREATE || (mode == ROW_UPSERT && !in.has_key)) {
        row_create(rq, &in);
    } else {
        row_update(rq, key ? key : in.key, if_match, &in);
    }
    row_input_free(&in);
}

static void row_delete(struct request *rq, const char *key)
{
    struct sql_error e = {"", ""};
    int64_t if_match, version = 0;
    int rc;

    if (!read_if_match(rq, &if_match))
        return;
    rc = reads_delete_row(rq->srv->reads, rq->res, key, if_match, &version, &e);
    if (schema_moved(rq, rc))
        return;
    if (rc) {
        send_write_error(rq, rc, &e);
        return;
    }
    /* the token a read presents to never be answered from the deleted row: any version after it */
    add_etag(rq, version + 1);
    add_token(rq, key, version + 1);
    send_response(rq, 204, NULL, NULL, 0);
}

/* Checks the query string against the parameters the route takes (names[0..count); none: count
 * 0). Returns true with the values in *qv, or sends 400 invalid-query naming the parameter. */
static bool query_check(struct request *rq, const char *const *names, size_t count,
                        struct query_values *qv)
{
    const char *qs = rq->ri->query_string;
    char err[200], field[64];

    if (query_parse(qs, qs ? strlen(qs) : 0, names, count, qv, err, sizeof(err), field,
                    sizeof(field)) == 0)
        return true;
    send_problem(rq, P_INVALID_QUERY, err, field);
    return false;
}

/* GET /NAME?after=&limit=&<filters>&order= (keyset pagination, from PostgreSQL; filter.h). When
 * more rows follow, the next page's URL is both the body's "next" and a Link header
 * (rel="next"). */
static void row_list(struct request *rq)
{
    const char *qs = rq->ri->query_string;
    struct filter *f = NULL;
    struct buf out, next;
    char err[256], field[128];
    int count = 0, rc;

    if (filter_parse(rq->res, qs, qs ? strlen(qs) : 0, (int)rq->srv->cfg->http_max_list_limit,
                     rq->srv->cfg->http_max_list_bytes, &f, err, sizeof(err), field,
                     sizeof(field))) {
        send_problem(rq, P_INVALID_QUERY, err, field);
        return;
    }
    buf_init(&out, 1u << 30);
    buf_init(&next, 1u << 16);
    buf_puts(&out, "{\"items\":[");
    rc = sql_list(rq->srv->db, rq->res, f, &out, &count, &next);
    if (rc == CDC_ESCHEMA && catalog_load(rq->srv->catalog, false, err, sizeof(err)) == 0) {
        rq->res = &catalog_current(rq->srv->catalog)->r[rq->res->index];
        buf_reset(&out);
        buf_reset(&next);
        buf_puts(&out, "{\"items\":[");
        filter_free(f);
        f = NULL;
        rc = filter_parse(rq->res, qs, qs ? strlen(qs) : 0, (int)rq->srv->cfg->http_max_list_limit,
                          rq->srv->cfg->http_max_list_bytes, &f, err, sizeof(err), field,
                          sizeof(field));
        if (rc == 0)
            rc = sql_list(rq->srv->db, rq->res, f, &out, &count, &next);
    }
    if (rc) {
        send_problem(rq, P_DB_DOWN, "the database could not answer; try again", NULL);
    } else if (next.len) {
        struct buf link;
        buf_init(&link, 1u << 17);
        buf_printf(&link, "</%s?%s>; rel=\"next\"", rq->res->name, next.data);
        if (link.len < 1500)
            add_header(rq, "Link", link.data);
        buf_printf(&out, "],\"next\":\"/%s?", rq->res->name);
        buf_json_escape(&out, next.data, next.len);
        buf_puts(&out, "\"}");
        send_json(rq, 200, &out);
        buf_free(&link);
    } else {
        buf_puts(&out, "],\"next\":null}");
        send_json(rq, 200, &out);
    }
    filter_free(f);
    buf_free(&out);
    buf_free(&next);
}

/* GET /ready: "can this replica answer correctly?" Yes unless PostgreSQL is unreachable or the
 * replica is draining. A replica that bypasses its cache answers correctly (from PostgreSQL), so
 * it stays ready: otherwise a silent Debezium would take every replica out of a load balancer at
 * once. Cache freshness is reported in the JSON (cdc.serving_from_cache) and in /metrics. */
static void ready(struct request *rq)
{
    struct cdc_status st;
    char dberr[200] = "";
    bool db_ok = db_ping(rq->srv->db, dberr, sizeof(dberr)) == 0;
    bool draining = atomic_load(&rq->srv->draining);
    bool ok, warming;
    struct warm *warm;
    struct buf out;

    memset(&st, 0, sizeof(st));
    if (rq->srv->cdc)
        cdc_status(rq->srv->cdc, &st);
    /* a starting replica turns ready once warm, or at warm.ready_deadline_ms at the latest */
    warm = cdc_warm(rq->srv->cdc);
    warming = warm && !warm_ready(warm);
    ok = db_ok && !draining && !warming;
    buf_init(&out, 8192);
    buf_printf(&out, "{\"ready\":%s,\"draining\":%s,\"checks\":{\"postgres\":{\"ok\":%s",
               ok ? "true" : "false", draining ? "true" : "false", db_ok ? "true" : "false");
    if (!db_ok) {
        buf_puts(&out, ",\"error\":\"");
        buf_json_escape(&out, dberr, strlen(dberr));
        buf_puts(&out, "\"");
    }
    if (rq->srv->cdc) {
        buf_printf(&out,
                   "},\"cdc\":{\"ok\":%s,\"attached\":%s,\"group\":\"%s\",\"lag_ms\":%lld,"
                   "\"max_staleness_ms\":%lld,\"serving_from_cache\":%s,"
                   "\"debezium_heartbeat_age_ms\":%lld,",
                   st.attached && st.vouching ? "true" : "false", st.attached ? "true" : "false",
                   st.group, (long long)st.staleness_ms, (long long)st.max_staleness_ms,
                   st.vouching ? "true" : "false", (long long)st.heartbeat_age_ms);
        /* continuity: the watermark chain's last link (absent until one is read after a break),
         * and the breaks so far by reason */
        if (st.chain_known)
            buf_printf(&out, "\"watermark_seq\":%lld,", (long long)st.chain_seq);
        buf_printf(&out, "\"slot\":{\"wal_status\":\"%s\"", st.slot_state);
        if (st.slot_retained_bytes >= 0)
            buf_printf(&out, ",\"retained_wal_bytes\":%lld", (long long)st.slot_retained_bytes);
        buf_puts(&out, "},");
        buf_puts(&out, "\"continuity_breaks\":{");
        for (int k = 0; k < CDC_BREAK_COUNT; k++)
            buf_printf(&out, "%s\"%s\":%llu", k ? "," : "", cdc_break_name((enum cdc_break)k),
                       (unsigned long long)st.breaks[k]);
        buf_puts(&out, "},\"last_error\":\"");
        buf_json_escape(&out, st.last_error, strlen(st.last_error));
        buf_puts(&out, "\"}}");
    } else {
        buf_puts(&out, "},\"cdc\":{\"ok\":true,\"enabled\":false}}");
    }
    if (warm) {
        struct warm_stats ws;
        warm_stats(warm, &ws);
        buf_printf(&out,
                   ",\"warm\":{\"state\":\"%s\",\"holding_ready\":%s,\"keys\":%llu,"
                   "\"warmed\":%llu,\"rejected\":%llu}",
                   warm_state_name(ws.state), warming ? "true" : "false",
                   (unsigned long long)ws.planned, (unsigned long long)ws.warmed,
                   (unsigned long long)ws.rejected);
    }
    /* each resource's share of the cache */
    buf_puts(&out, ",\"resources\":{");
    {
        const struct resource_set *set = catalog_current(rq->srv->catalog);
        for (size_t i = 0; set && i < set->n; i++) {
            struct cache_stats cs;
            double lookups;
            memset(&cs, 0, sizeof(cs));
            if (rq->srv->cache)
                cache_stats_resource(rq->srv->cache, (unsigned)i, &cs);
            lookups = (double)(cs.hits + cs.misses);
            buf_printf(&out,
                       "%s\"%s\":{\"table\":\"%s.%s\",\"entries\":%llu,\"bytes\":%llu,"
                       "\"hits\":%llu,\"misses\":%llu,\"hit_ratio\":%.4f}",
                       i ? "," : "", set->r[i].name, set->r[i].schema, set->r[i].table,
                       (unsigned long long)cs.entries, (unsigned long long)cs.bytes,
                       (unsigned long long)cs.hits, (unsigned long long)cs.misses,
                       lookups > 0 ? (double)cs.hits / lookups : 0.0);
        }
    }
    buf_puts(&out, "}}");
    send_json(rq, ok ? 200 : 503, &out);
    buf_free(&out);
}

/* GET /metrics: each module renders its own figures. */
static void metrics_page(struct request *rq)
{
    struct buf out;
    struct metrics_page p;

    buf_init(&out, 1u << 22);
    p.out = &out;
    p.rc = 0;
    {
        /* the routes are labelled with the current descriptors' names and key columns (the
         * configured names and "key" until the catalog is first read) */
        const struct resource_set *set = catalog_current(rq->srv->catalog);
        size_t n = rq->srv->cfg->nresources;
        const char **names = xcalloc(n + 1, sizeof(*names));
        const char **keys = xcalloc(n + 1, sizeof(*keys));
        for (size_t i = 0; i < n; i++) {
            names[i] = rq->srv->cfg->resources[i].name;
            keys[i] = set && i < set->n ? set->r[i].columns[set->r[i].key].name : "key";
        }
        metrics_render(rq->srv->metrics, &p, names, keys);
        if (rq->srv->cache)
            cache_metrics_render(rq->srv->cache, &p, names, (unsigned)n);
        free(names);
        free(keys);
    }
    if (rq->srv->cdc)
        cdc_metrics_render(rq->srv->cdc, &p);
    db_metrics_render(rq->srv->db, &p);
    if (cdc_warm(rq->srv->cdc))
        warm_metrics_render(cdc_warm(rq->srv->cdc), &p);
    process_metrics_render(&p);
    if (p.rc == 0)
        send_response(rq, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    else
        send_problem(rq, P_INTERNAL, "metrics page too large", NULL);
    buf_free(&out);
}

/* Sends 401 and returns false unless the request carries a token good for a write (or a read). */
static bool authorized(struct request *rq, bool write)
{
    const struct auth *a = rq->res && rq->res->index < rq->srv->nres_auth
                               ? rq->srv->res_auth[rq->res->index]
                               : rq->srv->auth;
    enum auth_result r = auth_check(a, mg_get_header(rq->conn, "Authorization"), write);

    if (r == AUTH_OK)
        return true;
    add_header(rq, "WWW-Authenticate",
               r == AUTH_INVALID ? "Bearer realm=\"cdcache\", error=\"invalid_token\""
                                 : "Bearer realm=\"cdcache\"");
    send_problem(rq, P_UNAUTHORIZED,
                 r == AUTH_INVALID ? "the bearer token is not valid"
                                   : (write ? "writes need Authorization: Bearer <token>"
                                            : "reads need Authorization: Bearer <token>"),
                 NULL);
    return false;
}

/* The document for the current resource set, rendered on first use after a (re)load. NULL only if
 * the first render failed. */
static const struct http_doc *served_doc(struct http_server *srv)
{
    const struct resource_set *set = catalog_current(srv->catalog);
    struct http_doc *d = atomic_load(&srv->doc);

    if (d && d->generation == set->generation)
        return d;
    pthread_mutex_lock(&srv->doc_lock);
    d = atomic_load(&srv->doc);
    if (!d || d->generation != set->generation) {
        struct buf j, y;
        buf_init(&j, 16u << 20);
        buf_init(&y, 16u << 20);
        if (apidoc_render(set, openapi_json, openapi_json_len, &j, &y) == 0) {
            struct http_doc *n = xcalloc(1, sizeof(*n));
            n->generation = set->generation;
            n->json = buf_steal(&j, &n->json_len);
            n->yaml = buf_steal(&y, &n->yaml_len);
            n->retired = d;
            atomic_store(&srv->doc, n);
            d = n;
        } else {
            LOG_ERROR("http: cannot render the OpenAPI document for the resources");
        }
        buf_free(&j);
        buf_free(&y);
    }
    pthread_mutex_unlock(&srv->doc_lock);
    return d;
}

static void send_doc(struct request *rq, bool yaml)
{
    const struct http_doc *d = served_doc(rq->srv);

    rq->route = ROUTE_OPENAPI;
    if (!d)
        send_problem(rq, P_INTERNAL, "the API description could not be rendered", NULL);
    else if (yaml)
        send_response(rq, 200, "application/yaml", d->yaml, d->yaml_len);
    else
        send_response(rq, 200, "application/json", d->json, d->json_len);
}

/* GET /: links to what the API serves, every resource first. */
static void index_page(struct request *rq)
{
    const struct resource_set *set = catalog_current(rq->srv->catalog);
    struct buf b;

    buf_init(&b, 1u << 20);
    buf_puts(&b, "{\"name\":\"cdcache\",\"version\":\"" CDCACHE_VERSION "\",\"links\":{");
    for (size_t i = 0; i < set->n; i++)
        buf_printf(&b, "\"%s\":\"/%s\",", set->r[i].name, set->r[i].name);
    buf_puts(&b, "\"openapi_json\":\"/openapi.json\",\"openapi_yaml\":\"/openapi.yaml\","
                 "\"health\":\"/health\",\"ready\":\"/ready\",\"metrics\":\"/metrics\"},"
                 "\"resources\":[");
    for (size_t i = 0; i < set->n; i++) {
        const struct resource *r = &set->r[i];
        buf_printf(&b, "%s{\"name\":\"%s\",\"table\":\"%s.%s\",\"key\":\"", i ? "," : "", r->name,
                   r->schema, r->table);
        buf_json_escape(&b, r->columns[r->key].name, strlen(r->columns[r->key].name));
        buf_printf(&b, "\",\"href\":\"/%s\"}", r->name);
    }
    buf_puts(&b, "]}");
    send_json(rq, 200, &b);
    buf_free(&b);
}

/* CORS for every response of a CORS-enabled server: Vary: Origin (the answer depends on it), and
 * for an allowed Origin, Access-Control-Allow-Origin and the headers a script may read. */
static void cors_headers(struct request *rq)
{
    const char *allow;

    if (!cors_enabled(rq->srv->cors))
        return;
    add_header(rq, "Vary", "Origin");
    allow = cors_allow_origin(rq->srv->cors, mg_get_header(rq->conn, "Origin"));
    if (!allow)
        return;
    add_header(rq, "Access-Control-Allow-Origin", allow);
    if (strcmp(rq->ri->request_method, "OPTIONS") != 0)
        add_header(rq, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
}

/* OPTIONS on a resource: 204 with Allow. A CORS preflight (Origin and
 * Access-Control-Request-Method) from an allowed origin also gets the methods and request headers
 * it may use; from any other origin it gets no CORS header, as the request itself would not. Needs
 * no token and reads no query: a preflight never carries credentials, and the request that follows
 * gets the readable answer (a 400 for a bad parameter, a 401 for a missing token). */
static void options(struct request *rq)
{
    const char *origin = mg_get_header(rq->conn, "Origin");

    add_header(rq, "Allow", rq->allow);
    if (mg_get_header(rq->conn, "Access-Control-Request-Method") &&
        cors_allow_origin(rq->srv->cors, origin)) {
        add_header(rq, "Access-Control-Allow-Methods", rq->allow);
        add_header(rq, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
        add_header(rq, "Access-Control-Max-Age", CORS_MAX_AGE);
    }
    send_response(rq, 204, NULL, NULL, 0);
}

static void send_method_not_allowed(struct request *rq)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "this resource takes %s", rq->allow);
    send_problem(rq, P_METHOD, msg, NULL);
}

/* /NAME/{key}, method already checked against the resource. */
static void row_route(struct request *rq, const char *m, const char *keytext)
{
    char key[CACHE_MAX_KEY + 1];

    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        rq->rroute = RROUTE_GET;
    else if (strcmp(m, "PUT") == 0)
        rq->rroute = RROUTE_REPLACE;
    else if (strcmp(m, "PATCH") == 0)
        rq->rroute = RROUTE_PATCH;
    else
        rq->rroute = RROUTE_DELETE;
    if (!path_key(rq, keytext, key, sizeof(key)))
        return;
    switch (rq->rroute) {
    case RROUTE_GET:
        row_get(rq, key);
        break;
    case RROUTE_REPLACE:
        row_write(rq, key, ROW_REPLACE);
        break;
    case RROUTE_PATCH:
        row_write(rq, key, ROW_PATCH);
        break;
    default:
        row_delete(rq, key);
    }
}

/* A per-thread xorshift64* generator, seeded from the clock, the thread and an address: request ids
 * and access-log sampling, nothing that needs to be secret. */
static uint64_t thread_random(void)
{
    static _Thread_local uint64_t x;
    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&x ^
            ((uint64_t)getpid() << 40);
        x |= 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 2685821657736338717ULL;
}

static bool request_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= REQUEST_ID_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                     (c >= '0' && c <= '9') || strchr("._~:/+=@-", c)))
            return false;
    }
    return n > 0;
}

/* The request's id: the client's X-Request-Id when valid, else a new one. */
static void request_id(struct request *rq)
{
    const char *h = mg_get_header(rq->conn, "X-Request-Id");
    if (h && request_id_valid(h))
        snprintf(rq->id, sizeof(rq->id), "%s", h);
    else
        snprintf(rq->id, sizeof(rq->id), "%016llx", (unsigned long long)thread_random());
}

/* The access log: a sample of log.access_sample_percent of the requests, and every 5xx. */
static void access_log(const struct request *rq, int64_t ns)
{
    int64_t pct = rq->srv->cfg->log_access_sample_percent;
    char label[512];
    if (rq->status < 500 && (pct <= 0 || (pct < 100 && (int64_t)(thread_random() % 100) >= pct)))
        return;
    if (rq->rroute >= 0)
        metrics_resource_route_label((enum metrics_resource_route)rq->rroute, rq->res->name,
                                     rq->res->columns[rq->res->key].name, label, sizeof(label));
    struct log_field f[] = {
        {"method", rq->ri->request_method, 0},
        {"route", rq->rroute >= 0 ? label : metrics_route_label(rq->route), 0},
        {"path", rq->ri->local_uri ? rq->ri->local_uri : "/", 0},
        {"status", NULL, rq->status},
        {"duration_us", NULL, ns / 1000},
        {"cache", rq->xcache ? rq->xcache : "", 0},
        {"request_id", rq->id, 0},
    };
    log_fields(rq->status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "access", f,
               (int)(sizeof(f) / sizeof(f[0])));
}

/* Routes one request. admin: the admin listener, which serves the operations endpoints only. */
static int route(struct mg_connection *conn, struct http_server *srv, bool admin)
{
    struct request rq;
    struct query_values qv;
    const struct resource_set *set;
    const char *m, *uri, *key;
    int64_t t0 = now_mono_ns();
    enum route rt;

    memset(&rq, 0, sizeof(rq));
    rq.conn = conn;
    rq.srv = srv;
    rq.ri = mg_get_request_info(conn);
    rq.route = ROUTE_OTHER;
    rq.rroute = -1;
    request_id(&rq);
    add_header(&rq, "X-Request-Id", rq.id);
    m = rq.ri->request_method;
    uri = rq.ri->local_uri ? rq.ri->local_uri : "/";
    set = catalog_current(srv->catalog);
    rt = route_of(set, uri, strlen(uri), &rq.res, &key);
    rq.allow = route_allow(rt, rq.res, rq.allow_buf, sizeof(rq.allow_buf));
    cors_headers(&rq);

    if (rq.ri->num_headers >= MG_MAX_HEADERS) {
        /* civetweb keeps MG_MAX_HEADERS headers and drops the rest without a word: a request that
         * reaches the limit may have lost one (an If-Match), so it is refused, never run in part */
        send_problem(&rq, P_HEADERS, "too many header fields", NULL);
    } else if (admin && !routes[rt].ops) {
        send_problem(&rq, P_NO_ROUTE, "the admin listener serves /health, /ready and /metrics",
                     NULL);
    } else if (!set && (rt == RT_NONE || rt == RT_INDEX || rt == RT_OPENAPI_JSON ||
                        rt == RT_OPENAPI_YAML)) {
        /* the resources are not known before PostgreSQL's catalog is read (it was unreachable at
         * start): a path that may name one is answered as the database being down */
        send_problem(&rq, P_DB_DOWN, "the database could not answer; try again", NULL);
    } else if (rt == RT_NONE) {
        send_problem(&rq, P_NO_ROUTE,
                     "no such resource; see / for the links, /openapi.json for the description",
                     NULL);
    } else if (strcmp(m, "OPTIONS") == 0) {
        options(&rq);
    } else if (!method_in(rq.allow, m)) {
        send_method_not_allowed(&rq);
    } else if ((rt == RT_COLLECTION || rt == RT_ROW) &&
               !authorized(&rq, strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)) {
        /* answered */
    } else if (rt == RT_COLLECTION) {
        if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
            rq.rroute = RROUTE_LIST;
            row_list(&rq);
        } else {
            rq.rroute = strcmp(m, "POST") == 0 ? RROUTE_CREATE : RROUTE_UPSERT;
            if (query_check(&rq, NULL, 0, &qv))
                row_write(&rq, NULL, rq.rroute == RROUTE_CREATE ? ROW_CREATE : ROW_UPSERT);
        }
    } else if (!query_check(&rq, NULL, 0, &qv)) {
        /* answered: no other route takes a query parameter */
    } else {
        switch (rt) {
        case RT_ROW:
            row_route(&rq, m, key);
            break;
        case RT_INDEX:
            rq.route = ROUTE_INDEX;
            index_page(&rq);
            break;
        case RT_OPENAPI_YAML:
            send_doc(&rq, true);
            break;
        case RT_OPENAPI_JSON:
            send_doc(&rq, false);
            break;
        case RT_HEALTH: {
            static const char ok[] = "{\"status\":\"ok\"}";
            rq.route = ROUTE_HEALTH;
            send_response(&rq, 200, "application/json", ok, sizeof(ok) - 1);
            break;
        }
        case RT_READY:
            rq.route = ROUTE_READY;
            ready(&rq);
            break;
        case RT_METRICS:
            rq.route = ROUTE_METRICS;
            metrics_page(&rq);
            break;
        default:
            assert(!"every route has a handler");
        }
    }
    int64_t ns = now_mono_ns() - t0;
    if (rq.rroute >= 0)
        metrics_resource_request(rq.srv->metrics, (enum metrics_resource_route)rq.rroute,
                                 rq.res->index, rq.status, ns);
    else
        metrics_request(rq.srv->metrics, rq.route, rq.status, ns);
    access_log(&rq, ns);
    return rq.status ? rq.status : 500;
}

/* The methods civetweb 1.15 parses (others it refuses before any handler runs; see
 * civetweb_error()). */
static bool civetweb_knows_method(const char *m)
{
    static const char *const known[] = {"GET",     "POST",    "PUT",       "DELETE",   "HEAD",
                                        "OPTIONS", "CONNECT", "PATCH",     "PROPFIND", "MKCOL",
                                        "LOCK",    "UNLOCK",  "PROPPATCH", "REPORT"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(m, known[i]) == 0)
            return true;
    return false;
}

/* civetweb's http_error callback: an error civetweb answers itself, before any handler (a request
 * head it cannot parse, such as a header value with a control character; a head larger than its
 * buffer; a method it does not know, such as TRACE), answered as problem+json like every other
 * error. The connection is closed after it. Returns 0: handled. */
static int civetweb_error(struct mg_connection *conn, int status, const char *errmsg)
{
    struct http_server *srv = mg_get_user_data(mg_get_context(conn));
    const struct mg_request_info *ri = mg_get_request_info(conn);
    enum problem p = P_INTERNAL;
    const char *allow = NULL;
    char detail[160], head[512], allow_buf[80];
    struct buf b;
    int n, code;

    if (status == 400 && ri && ri->request_method && ri->request_uri &&
        !civetweb_knows_method(ri->request_method)) {
        /* the request line parsed up to its method: answer for the resource it names */
        size_t len = strcspn(ri->request_uri, "?");
        const struct resource *res;
        const char *key;
        enum route rt = route_of(catalog_current(srv->catalog), ri->request_uri, len, &res, &key);
        p = rt == RT_NONE ? P_NO_ROUTE : P_METHOD;
        allow = route_allow(rt, res, allow_buf, sizeof(allow_buf));
        if (allow)
            snprintf(detail, sizeof(detail), "this resource takes %s", allow);
        else
            snprintf(detail, sizeof(detail), "no such resource");
    } else {
        /* civetweb's status stays (411, 417, 505...); the type gives its class */
        if (status == 413 || status == 431)
            p = P_HEADERS; /* a head larger than civetweb's buffer */
        else if (status == 408)
            p = P_TIMEOUT;
        else if (status >= 400 && status < 500)
            p = P_BAD_REQUEST;
        snprintf(detail, sizeof(detail),
                 "the request could not be read (%s); header values may hold visible ASCII, "
                 "spaces and UTF-8 only",
                 errmsg && errmsg[0] ? errmsg : "malformed");
    }
    code = p == P_BAD_REQUEST || (p == P_INTERNAL && status >= 500 && status < 600)
               ? status
               : problems[p].status;
    problem_body(&b, p, code, detail, NULL);
    /* the head could not be read: the client's X-Request-Id is not to be trusted, a new one is */
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
                 "Content-Length: %zu\r\n%s%s%sX-Request-Id: %016llx\r\nConnection: close\r\n\r\n",
                 code, mg_get_response_code_text(conn, code), b.len, allow ? "Allow: " : "",
                 allow ? allow : "", allow ? "\r\n" : "", (unsigned long long)thread_random());
    if (n > 0 && (size_t)n < sizeof(head)) {
        mg_write(conn, head, (size_t)n);
        mg_write(conn, b.data, b.len);
    }
    buf_free(&b);
    if (srv)
        metrics_request(srv->metrics, ROUTE_OTHER, code, 0);
    return 0;
}

static int dispatch(struct mg_connection *conn, void *cbdata)
{
    return route(conn, cbdata, false);
}

static int dispatch_admin(struct mg_connection *conn, void *cbdata)
{
    return route(conn, cbdata, true);
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    LOG_WARN("http: %s", message);
    return 1;
}

/* The main listener's open connections, counted for http_stop(). A connection civetweb closes
 * without having opened it for us (a failed TLS handshake) carries no mark and is not counted. */
static int conn_opened(const struct mg_connection *conn, void **conn_data)
{
    struct http_server *srv = mg_get_user_data(mg_get_context(conn));
    atomic_fetch_add(&srv->open_conns, 1);
    *conn_data = srv;
    return 0;
}

static void conn_closing(const struct mg_connection *conn)
{
    struct http_server *srv = mg_get_user_connection_data(conn);
    if (srv)
        atomic_fetch_sub(&srv->open_conns, 1);
}

/* civetweb's init_ssl: called from mg_start() for a context with a TLS port, with the SSL_CTX it
 * made. Returns 1 (set up, civetweb loads no certificate of its own) or -1 (mg_start fails; the
 * reason is in srv->tls_err). */
static int init_ssl(void *ssl_ctx, void *user_data)
{
    struct http_server *srv = user_data;
    const struct config *cfg = srv->cfg;
    enum tls_min_version min = TLS_MIN_1_2;
    bool parsed = tls_parse_min_version(cfg->http_tls_min_version, &min);

    assert(parsed); /* config_load() validated it */
    (void)parsed;
    if (tls_setup_server_ctx(ssl_ctx, cfg->http_tls_certificate, cfg->http_tls_key, min,
                             srv->tls_err, sizeof(srv->tls_err)))
        return -1;
    return 1;
}

static int authorized_by_us(struct mg_connection *conn, void *arg)
{
    (void)conn;
    (void)arg;
    return 1;
}

/* Starts one civetweb context on listen (civetweb listening_ports form, TLS ports with "s") with
 * nthreads workers. */
static struct mg_context *listen_on(const struct config *cfg, const char *listen, int64_t nthreads,
                                    mg_request_handler handler, struct http_server *srv)
{
    struct mg_callbacks cb;
    struct mg_context *ctx;
    char threads[24], timeout[24], keepalive[24], backlog[24];
    const char *options[] = {"listening_ports", listen, "num_threads", threads, "listen_backlog",
                             backlog, "request_timeout_ms", timeout, "enable_keep_alive",
                             cfg->http_keep_alive_timeout_ms > 0 ? "yes" : "no",
                             "keep_alive_timeout_ms", keepalive, "tcp_nodelay", "1",
                             /* CORS is ours (cors.c, options()): civetweb's own answers every
                              * preflight with "*" and adds nothing to the request that follows */
                             "access_control_allow_origin", "", "access_control_allow_methods", "",
                             "access_control_allow_headers", "", NULL};

    snprintf(threads, sizeof(threads), "%lld", (long long)nthreads);
    snprintf(backlog, sizeof(backlog), "%lld", (long long)cfg->http_listen_backlog);
    snprintf(timeout, sizeof(timeout), "%lld", (long long)cfg->http_request_timeout_ms);
    snprintf(keepalive, sizeof(keepalive), "%lld", (long long)cfg->http_keep_alive_timeout_ms);
    memset(&cb, 0, sizeof(cb));
    cb.log_message = log_message;
    cb.http_error = civetweb_error;
    if (handler == dispatch) {
        cb.init_connection = conn_opened;
        cb.connection_close = conn_closing;
    }
    if (tls_listen_wants_tls(listen))
        cb.init_ssl = init_ssl;
    srv->tls_err[0] = '\0';
    ctx = mg_start(&cb, srv, options);
    if (!ctx)
        return NULL;
    mg_set_request_handler(ctx, "/", handler, srv);
    /* Authorization is ours (auth.c): without a handler of its own, civetweb looks for a
     * ".htpasswd" (a stat) on every request */
    mg_set_auth_handler(ctx, "/", authorized_by_us, NULL);
    if (cfg->http_defer_accept_s > 0) {
        struct mg_server_port ports[8];
        int n = mg_get_server_ports(ctx, 8, ports), nums[8];

        for (int i = 0; i < n; i++)
            nums[i] = ports[i].port;
        listener_defer_accept(nums, n > 0 ? n : 0, (int)cfg->http_defer_accept_s);
    }
    return ctx;
}

struct http_server *http_start(const struct config *cfg, struct catalog *catalog,
                               struct cache *cache, struct db *db, struct cdc *cdc,
                               struct metrics *metrics, char *err, size_t errlen)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    char *listen = NULL;
    size_t cap;
    bool tls;
    int rc;

    srv->cfg = cfg;
    srv->catalog = catalog;
    pthread_mutex_init(&srv->doc_lock, NULL);
    if (catalog_current(catalog) && !served_doc(srv)) {
        snprintf(err, errlen, "cannot render the OpenAPI document for the declared resources");
        goto fail_auth;
    }
    srv->cache = cache;
    srv->db = db;
    srv->cdc = cdc;
    srv->metrics = metrics;
    srv->auth = auth_create(cfg->auth_write_tokens, cfg->auth_read_tokens, err, errlen);
    if (!srv->auth)
        goto fail_auth;
    /* a resource's own tokens replace the global ones for it, so that exposing a table never lets
     * more clients read or write it than its declaration names */
    srv->nres_auth = cfg->nresources;
    srv->res_auth = xcalloc(cfg->nresources ? cfg->nresources : 1, sizeof(*srv->res_auth));
    for (size_t i = 0; i < cfg->nresources; i++) {
        const struct config_resource *cr = &cfg->resources[i];
        srv->res_auth[i] =
            auth_create(cr->write_tokens ? cr->write_tokens : cfg->auth_write_tokens,
                        cr->read_tokens ? cr->read_tokens : cfg->auth_read_tokens, err, errlen);
        if (!srv->res_auth[i])
            goto fail_cors;
    }
    srv->cors = cors_create(cfg->http_cors_origins, err, errlen);
    if (!srv->cors)
        goto fail_cors;
    srv->reads = reads_create_default(db, cdc, cache);
    /* With a certificate every port of http.listen is TLS (tls_listen_spec); http.admin_listen is
     * taken as written. civetweb must not initialise itself before tls_library_init(). */
    tls = cfg->http_tls_certificate[0] != '\0';
    cap = 2 * strlen(cfg->http_listen) + 32; /* each port gains at most one "s"; the placeholder */
    listen = xmalloc(cap);
    rc = tls ? tls_listen_spec(cfg->http_listen, listen, cap)
             : (snprintf(listen, cap, "%s", cfg->http_listen), 0);
    assert(rc == 0);
    /* http.shared_listen: the main listener starts with one more port, a placeholder the shared
     * socket takes the place of once the replica is ready (http_share()), in the same TLS mode */
    if (cfg->http_shared_listen[0])
        snprintf(listen + strlen(listen), cap - strlen(listen), ",127.0.0.1:0%s", tls ? "s" : "");
    /* civetweb gives every connection a thread (http.threads, thousands by default): each gets
     * http.thread_stack of address space, not the process's 8 MiB default */
    {
        pthread_attr_t ta;
        pthread_attr_init(&ta);
        pthread_attr_setstacksize(&ta, (size_t)cfg->http_thread_stack);
        pthread_setattr_default_np(&ta);
        pthread_attr_destroy(&ta);
    }
    if (tls && tls_library_init(err, errlen))
        goto fail_tls;
    mg_init_library(0); /* after tls_library_init(), which must be civetweb's first */
    srv->ctx = listen_on(cfg, listen, cfg->http_threads, dispatch, srv);
    if (!srv->ctx) {
        if (srv->tls_err[0])
            snprintf(err, errlen, "%s", srv->tls_err);
        else
            snprintf(err, errlen, "cannot listen on %s (http.listen): port in use or bad address",
                     listen);
        goto fail_listen;
    }
    if (cfg->http_shared_listen[0]) {
        struct mg_server_port ports[8];
        int n = mg_get_server_ports(srv->ctx, 8, ports);

        assert(n >= 2); /* civetweb listens on the ports in the order given: the placeholder last */
        srv->placeholder_port = ports[n - 1].port;
    }
    if (cfg->http_admin_listen[0]) {
        srv->admin =
            listen_on(cfg, cfg->http_admin_listen, cfg->http_admin_threads, dispatch_admin, srv);
        if (!srv->admin) {
            if (srv->tls_err[0])
                snprintf(err, errlen, "%s", srv->tls_err);
            else
                snprintf(err, errlen,
                         "cannot listen on %s (http.admin_listen): port in use or bad address",
                         cfg->http_admin_listen);
            goto fail_admin;
        }
    }
    if (tls)
        LOG_INFO("http: TLS on %s (TLS %s and up)", listen, cfg->http_tls_min_version);
    free(listen);
    return srv;
fail_admin:
    mg_stop(srv->ctx);
fail_listen:
fail_tls:
    free(listen);
    reads_destroy(srv->reads);
    cors_destroy(srv->cors);
fail_cors:
    for (size_t i = 0; i < srv->nres_auth; i++)
        auth_destroy(srv->res_auth[i]);
    free(srv->res_auth);
    auth_destroy(srv->auth);
fail_auth:
    free(srv);
    return NULL;
}

void http_drain(struct http_server *srv)
{
    if (srv)
        atomic_store(&srv->draining, true);
}

/* The main listener's ports, for listener_stop_accepting(). */
static int stop_accepting(struct http_server *srv)
{
    struct mg_server_port ports[8];
    int n = mg_get_server_ports(srv->ctx, 8, ports), nums[9];

    for (int i = 0; i < n; i++)
        nums[i] = ports[i].port;
    if (n < 0)
        n = 0;
    if (srv->shared_port > 0)
        nums[n++] = srv->shared_port;
    return n > 0 ? listener_stop_accepting(nums, n) : 0;
}

int http_share(struct http_server *srv, char *err, size_t errlen)
{
    const struct config *cfg = srv->cfg;
    struct sockaddr_in a;
    int fd;

    if (!cfg->http_shared_listen[0] || srv->shared_port > 0 || atomic_load(&srv->draining))
        return 0;
    assert(srv->placeholder_port > 0);
    fd = listener_open_shared(cfg->http_shared_listen, (int)cfg->http_listen_backlog,
                              (int)cfg->http_defer_accept_s, err, errlen);
    if (fd < 0)
        return CDC_EINVAL;
    if (listener_replace(srv->placeholder_port, fd)) {
        snprintf(err, errlen, "the main listener's placeholder port %d is gone",
                 srv->placeholder_port);
        return CDC_EINVAL;
    }
    listener_parse_shared(cfg->http_shared_listen, &a, err, errlen);
    srv->shared_port = ntohs(a.sin_port);
    LOG_INFO("http: serving the shared port %s too (SO_REUSEPORT)", cfg->http_shared_listen);
    return 0;
}

#define DRAIN_QUIET_NS (250 * 1000000LL)

void http_stop(struct http_server *srv)
{
    int64_t deadline;

    if (!srv)
        return;
    /* Refuse new connections, then let the open ones end: a balancer that was sent Connection:
     * close drops them, idle ones time out at its own idle timeout (shorter than
     * http.keep_alive_timeout_ms by the rule in the README). Whatever is left then is cut by
     * mg_stop(). */
    atomic_store(&srv->draining, true);
    if (stop_accepting(srv) > 0) {
        /* A connection civetweb accepted just before is queued for a worker and not yet counted:
         * open_conns must stay 0 for DRAIN_QUIET_NS before mg_stop() closes what is queued */
        int64_t quiet_since = now_mono_ns();

        deadline = quiet_since + (srv->cfg->http_keep_alive_timeout_ms + 1000) * 1000000;
        while (now_mono_ns() < deadline) {
            if (atomic_load(&srv->open_conns) > 0)
                quiet_since = now_mono_ns();
            else if (now_mono_ns() - quiet_since >= DRAIN_QUIET_NS)
                break;
            usleep(10000);
        }
        LOG_INFO("drain: stopped accepting; %d connection(s) still open",
                 atomic_load(&srv->open_conns));
    }
    mg_stop(srv->ctx);
    LOG_INFO("http: stopped");
    if (srv->admin)
        mg_stop(srv->admin);
    reads_destroy(srv->reads);
    cors_destroy(srv->cors);
    for (size_t i = 0; i < srv->nres_auth; i++)
        auth_destroy(srv->res_auth[i]);
    free(srv->res_auth);
    auth_destroy(srv->auth);
    free(srv);
}
