/* HTTP handlers. One catch-all civetweb handler routes by path and method, parses the request,
 * calls the read protocol (reads.c: cache, leases, vouching, read-your-writes) or the database, and
 * writes the answer. No cache rule lives here. The resources and the methods each takes are one
 * table (resources[]): it gives 405's Allow, preflights' allowed methods and the admin listener's
 * paths. Requests civetweb refuses before routing (a malformed head, a method it does not know) are
 * answered by civetweb_error(), so every error is application/problem+json. openapi.yaml describes
 * all of it. */
#include "cdcache/http.h"
#include "cdcache/auth.h"
#include "cdcache/body.h"
#include "cdcache/cors.h"
#include "cdcache/error.h"
#include "cdcache/listener.h"
#include "cdcache/log.h"
#include "cdcache/openapi.h"
#include "cdcache/process.h"
#include "cdcache/query.h"
#include "cdcache/reads.h"
#include "cdcache/tls.h"
#include "cdcache/util.h"

#include <assert.h>
#include <civetweb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct http_server {
    struct mg_context *ctx;
    struct mg_context
        *admin; /* http.admin_listen: /health, /ready, /metrics on their own threads */
    struct reads *reads;
    struct auth *auth;
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
    /* Why the last init_ssl callback failed; written and read in the thread that runs http_start()
     * (civetweb calls init_ssl from mg_start()). */
    char tls_err[512];
};

/* Problem types: stable identifiers clients can switch on. */
#define PROBLEMS(X)                                                                                \
    X(INVALID_ID, 400, "invalid-id", "Invalid item id")                                            \
    X(INVALID_BODY, 400, "invalid-body", "Invalid request body")                                   \
    X(INVALID_QUERY, 400, "invalid-query", "Invalid query parameter")                              \
    X(INVALID_HEADER, 400, "invalid-header", "Invalid header")                                     \
    X(BAD_REQUEST, 400, "bad-request", "Malformed request")                                        \
    X(NOT_FOUND, 404, "not-found", "Item not found")                                               \
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

/* The resources, each with the methods it takes (the Allow header; OPTIONS is answered everywhere
 * for CORS preflights). ops: also served on the admin listener. */
#define RESOURCES(X)                                                                               \
    X(NONE, NULL, NULL, false)                                                                     \
    X(INDEX, "/", "GET, HEAD, OPTIONS", false)                                                     \
    X(OPENAPI_YAML, "/openapi.yaml", "GET, HEAD, OPTIONS", false)                                  \
    X(OPENAPI_JSON, "/openapi.json", "GET, HEAD, OPTIONS", false)                                  \
    X(ITEMS, "/items", "GET, HEAD, POST, PUT, OPTIONS", false)                                     \
    X(ITEM, "/items/{id}", "GET, HEAD, PUT, PATCH, DELETE, OPTIONS", false)                        \
    X(HEALTH, "/health", "GET, HEAD, OPTIONS", true)                                               \
    X(READY, "/ready", "GET, HEAD, OPTIONS", true)                                                 \
    X(METRICS, "/metrics", "GET, HEAD, OPTIONS", true)

enum resource {
#define RESOURCE_ENUM(name, path, allow, ops) RES_##name,
    RESOURCES(RESOURCE_ENUM)
#undef RESOURCE_ENUM
};

static const struct {
    const char *path;
    const char *allow;
    bool ops;
} resources[] = {
#define RESOURCE_ROW(name, path, allow, ops) {path, allow, ops},
    RESOURCES(RESOURCE_ROW)
#undef RESOURCE_ROW
};

/* The resource of a decoded path (without its query). "/items/" is the list, as it always was. */
static enum resource resource_of(const char *path, size_t n)
{
    if (n > 7 && strncmp(path, "/items/", 7) == 0)
        return RES_ITEM;
    if (n == 7 && strncmp(path, "/items/", 7) == 0)
        return RES_ITEMS;
    for (size_t r = RES_INDEX; r < sizeof(resources) / sizeof(resources[0]); r++)
        if (r != RES_ITEM && strlen(resources[r].path) == n &&
            strncmp(resources[r].path, path, n) == 0)
            return (enum resource)r;
    return RES_NONE;
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
    const char *allow; /* the resource's methods (405's Allow), NULL for no resource */
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
    buf_json_escape(b, detail, strlen(detail));
    buf_puts(b, "\"");
    if (field && field[0]) {
        buf_puts(b, ",\"field\":\"");
        buf_json_escape(b, field, strlen(field));
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

/* Parses an id path segment: 1..INT64_MAX, digits only. */
static bool parse_id(const char *s, int64_t *id)
{
    size_t n = strlen(s);
    if (n == 0 || s[0] == '-' || s[0] == '+')
        return false;
    return parse_i64(s, n, id) && *id > 0;
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

/* GET /items/{id} */
static void item_get(struct request *rq, int64_t id)
{
    static const char *const xcache[] = {"hit", "miss", "bypass"};
    static const enum metrics_xcache xkind[] = {XCACHE_HIT, XCACHE_MISS, XCACHE_BYPASS};
    const char *inm = mg_get_header(rq->conn, "If-None-Match");
    const char *minv_h = mg_get_header(rq->conn, "X-Min-Version");
    const char *cc = mg_get_header(rq->conn, "Cache-Control");
    const char *pragma = mg_get_header(rq->conn, "Pragma");
    int64_t min_version = 0;
    struct reads_result res;

    if (minv_h && (!parse_i64_str(minv_h, &min_version) || min_version < 0)) {
        send_problem(rq, P_INVALID_HEADER, "X-Min-Version must be a non-negative integer",
                     "X-Min-Version");
        return;
    }
    reads_get(rq->srv->reads, id, min_version,
              (cc && header_has_token(cc, "no-cache")) ||
                  (pragma && header_has_token(pragma, "no-cache")),
              &res);
    metrics_xcache(rq->srv->metrics, xkind[res.source]);
    if (res.rc == 0 && res.source == READS_HIT && !inm) {
        send_hit(rq, res.body, res.len, res.version);
        reads_result_release(&res);
        return;
    }
    add_header(rq, "X-Cache", xcache[res.source]);
    rq->xcache = xcache[res.source];
    if (res.rc == CDC_ENOTFOUND)
        send_problem(rq, P_NOT_FOUND, "no item with this id", NULL);
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

static void send_write_error(struct request *rq, int rc)
{
    if (rc == CDC_ENOTFOUND)
        send_problem(rq, P_NOT_FOUND, "no item with this id", NULL);
    else if (rc == CDC_ECONFLICT)
        send_problem(rq, P_PRECONDITION, "the item has another version than If-Match names", NULL);
    else
        send_problem(rq, P_DB_DOWN, "the database could not complete the write", NULL);
}

static void item_create(struct request *rq, const struct item_input *in)
{
    struct buf out;
    int64_t id = 0, version = 0;
    char loc[48];
    int rc;

    buf_init(&out, 1u << 24);
    rc = reads_create_item(rq->srv->reads, in, &out, &id, &version);
    if (rc) {
        send_write_error(rq, rc);
    } else {
        snprintf(loc, sizeof(loc), "/items/%lld", (long long)id);
        add_header(rq, "Location", loc);
        add_etag(rq, version);
        send_json(rq, 201, &out);
    }
    buf_free(&out);
}

static void item_update(struct request *rq, int64_t id, int64_t if_match,
                        const struct item_input *in)
{
    struct buf out;
    int64_t version = 0;
    int rc;

    buf_init(&out, 1u << 24);
    rc = reads_update_item(rq->srv->reads, id, if_match, in, &out, &version);
    if (rc) {
        send_write_error(rq, rc);
    } else {
        add_etag(rq, version);
        send_json(rq, 200, &out);
    }
    buf_free(&out);
}

static void item_write(struct request *rq, int64_t id, enum body_mode mode)
{
    struct buf raw;
    struct item_input in;
    char err[200], field[64];
    int64_t if_match = -1;

    if (!read_if_match(rq, &if_match) || read_body(rq, &raw))
        return;
    if (body_parse_item(raw.data ? raw.data : "", raw.len, mode, &in, err, sizeof(err), field,
                        sizeof(field))) {
        send_problem(rq, P_INVALID_BODY, err, field);
        buf_free(&raw);
        return;
    }
    buf_free(&raw);
    if ((mode == BODY_REPLACE || mode == BODY_PATCH) && in.has_id && in.id != id) {
        send_problem(rq, P_INVALID_BODY, "field 'id': does not match the id in the path", "id");
    } else if (mode == BODY_CREATE || (mode == BODY_UPSERT && !in.has_id)) {
        item_create(rq, &in);
    } else {
        item_update(rq, mode == BODY_UPSERT ? in.id : id, if_match, &in);
    }
    body_item_free(&in);
}

static void item_delete(struct request *rq, int64_t id)
{
    int64_t if_match;
    int rc;

    if (!read_if_match(rq, &if_match))
        return;
    rc = reads_delete_item(rq->srv->reads, id, if_match);
    if (rc)
        send_write_error(rq, rc);
    else
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

/* The value of parameter names[i] as a non-negative integer into *out (left alone when absent).
 * Returns false after sending 400. */
static bool query_int(struct request *rq, const struct query_values *qv, size_t i, const char *name,
                      int64_t *out)
{
    char msg[96];

    if (!qv->present[i])
        return true;
    if (parse_i64_str(qv->value[i], out) && *out >= 0)
        return true;
    snprintf(msg, sizeof(msg), "parameter '%s': must be a non-negative integer", name);
    send_problem(rq, P_INVALID_QUERY, msg, name);
    return false;
}

/* GET /items?after=&limit= (keyset pagination, from PostgreSQL). When more items follow, the next
 * page's URL is both the body's "next" and a Link header (rel="next"). */
static void item_list(struct request *rq)
{
    static const char *const names[] = {"after", "limit"};
    struct query_values qv;
    int64_t after = 0, limit = 50, last = 0;
    int64_t max = rq->srv->cfg->http_max_list_limit;
    struct buf out;
    bool more = false;
    int count = 0, rc;

    if (!query_check(rq, names, 2, &qv) || !query_int(rq, &qv, 0, "after", &after) ||
        !query_int(rq, &qv, 1, "limit", &limit))
        return;
    if (limit < 1 || limit > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "parameter 'limit': must be between 1 and %lld", (long long)max);
        send_problem(rq, P_INVALID_QUERY, msg, "limit");
        return;
    }
    buf_init(&out, 1u << 30);
    buf_puts(&out, "{\"items\":[");
    rc = db_item_list(rq->srv->db, after, (int)limit, rq->srv->cfg->http_max_list_bytes, &out,
                      &count, &last, &more);
    if (rc) {
        send_problem(rq, P_DB_DOWN, "the database could not answer; try again", NULL);
    } else {
        if (more) {
            char next[80], link[100];
            snprintf(next, sizeof(next), "/items?after=%lld&limit=%lld", (long long)last,
                     (long long)limit);
            snprintf(link, sizeof(link), "<%s>; rel=\"next\"", next);
            add_header(rq, "Link", link);
            buf_printf(&out, "],\"next\":\"%s\"}", next);
        } else {
            buf_puts(&out, "],\"next\":null}");
        }
        send_json(rq, 200, &out);
    }
    buf_free(&out);
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
    bool ok;
    struct buf out;

    memset(&st, 0, sizeof(st));
    if (rq->srv->cdc)
        cdc_status(rq->srv->cdc, &st);
    ok = db_ok && !draining;
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
        buf_puts(&out, "\"}}}");
    } else {
        buf_puts(&out, "},\"cdc\":{\"ok\":true,\"enabled\":false}}}");
    }
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
    metrics_render(rq->srv->metrics, &p);
    if (rq->srv->cache)
        cache_metrics_render(rq->srv->cache, &p);
    if (rq->srv->cdc)
        cdc_metrics_render(rq->srv->cdc, &p);
    db_metrics_render(rq->srv->db, &p);
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
    enum auth_result r = auth_check(rq->srv->auth, mg_get_header(rq->conn, "Authorization"), write);

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

/* GET /: links to what the API serves. */
static void index_page(struct request *rq)
{
    static const char body[] =
        "{\"name\":\"cdcache\",\"version\":\"" CDCACHE_VERSION "\",\"links\":{"
        "\"items\":\"/items\",\"openapi_json\":\"/openapi.json\",\"openapi_yaml\":\"/"
        "openapi.yaml\","
        "\"health\":\"/health\",\"ready\":\"/ready\",\"metrics\":\"/metrics\"}}";
    send_response(rq, 200, "application/json", body, sizeof(body) - 1);
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

/* /items/{id}, method already checked against the resource. */
static void item_route(struct request *rq, const char *m, const char *idtext)
{
    int64_t id;

    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        rq->route = ROUTE_ITEM_GET;
    else if (strcmp(m, "PUT") == 0)
        rq->route = ROUTE_ITEM_REPLACE;
    else if (strcmp(m, "PATCH") == 0)
        rq->route = ROUTE_ITEM_PATCH;
    else
        rq->route = ROUTE_ITEM_DELETE;
    if (!parse_id(idtext, &id)) {
        send_problem(rq, P_INVALID_ID,
                     "the id must be an integer between 1 and 9223372036854775807", "id");
        return;
    }
    switch (rq->route) {
    case ROUTE_ITEM_GET:
        item_get(rq, id);
        break;
    case ROUTE_ITEM_REPLACE:
        item_write(rq, id, BODY_REPLACE);
        break;
    case ROUTE_ITEM_PATCH:
        item_write(rq, id, BODY_PATCH);
        break;
    default:
        item_delete(rq, id);
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
    if (rq->status < 500 && (pct <= 0 || (pct < 100 && (int64_t)(thread_random() % 100) >= pct)))
        return;
    struct log_field f[] = {
        {"method", rq->ri->request_method, 0},
        {"route", metrics_route_label(rq->route), 0},
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
    const char *m, *uri;
    int64_t t0 = now_mono_ns();
    enum resource res;

    memset(&rq, 0, sizeof(rq));
    rq.conn = conn;
    rq.srv = srv;
    rq.ri = mg_get_request_info(conn);
    rq.route = ROUTE_OTHER;
    request_id(&rq);
    add_header(&rq, "X-Request-Id", rq.id);
    m = rq.ri->request_method;
    uri = rq.ri->local_uri ? rq.ri->local_uri : "/";
    res = resource_of(uri, strlen(uri));
    rq.allow = resources[res].allow;
    cors_headers(&rq);

    if (rq.ri->num_headers >= MG_MAX_HEADERS) {
        /* civetweb keeps MG_MAX_HEADERS headers and drops the rest without a word: a request that
         * reaches the limit may have lost one (an If-Match), so it is refused, never run in part */
        send_problem(&rq, P_HEADERS, "too many header fields", NULL);
    } else if (admin && !resources[res].ops) {
        send_problem(&rq, P_NO_ROUTE, "the admin listener serves /health, /ready and /metrics",
                     NULL);
    } else if (res == RES_NONE) {
        send_problem(&rq, P_NO_ROUTE,
                     "no such resource; see / for the links, /openapi.json for the description",
                     NULL);
    } else if (strcmp(m, "OPTIONS") == 0) {
        options(&rq);
    } else if (!method_in(rq.allow, m)) {
        send_method_not_allowed(&rq);
    } else if ((res == RES_ITEMS || res == RES_ITEM) &&
               !authorized(&rq, strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)) {
        /* answered */
    } else if (res == RES_ITEMS) {
        if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
            rq.route = ROUTE_ITEM_LIST;
            item_list(&rq);
        } else {
            rq.route = strcmp(m, "POST") == 0 ? ROUTE_ITEM_CREATE : ROUTE_ITEM_UPSERT;
            if (query_check(&rq, NULL, 0, &qv))
                item_write(&rq, 0, rq.route == ROUTE_ITEM_CREATE ? BODY_CREATE : BODY_UPSERT);
        }
    } else if (!query_check(&rq, NULL, 0, &qv)) {
        /* answered: no other route takes a query parameter */
    } else {
        switch (res) {
        case RES_ITEM:
            item_route(&rq, m, uri + 7);
            break;
        case RES_INDEX:
            rq.route = ROUTE_INDEX;
            index_page(&rq);
            break;
        case RES_OPENAPI_YAML:
            rq.route = ROUTE_OPENAPI;
            send_response(&rq, 200, "application/yaml", openapi_yaml, openapi_yaml_len);
            break;
        case RES_OPENAPI_JSON:
            rq.route = ROUTE_OPENAPI;
            send_response(&rq, 200, "application/json", openapi_json, openapi_json_len);
            break;
        case RES_HEALTH: {
            static const char ok[] = "{\"status\":\"ok\"}";
            rq.route = ROUTE_HEALTH;
            send_response(&rq, 200, "application/json", ok, sizeof(ok) - 1);
            break;
        }
        case RES_READY:
            rq.route = ROUTE_READY;
            ready(&rq);
            break;
        case RES_METRICS:
            rq.route = ROUTE_METRICS;
            metrics_page(&rq);
            break;
        default:
            assert(!"every resource has a route");
        }
    }
    int64_t ns = now_mono_ns() - t0;
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
    char detail[160], head[512];
    struct buf b;
    int n, code;

    if (status == 400 && ri && ri->request_method && ri->request_uri &&
        !civetweb_knows_method(ri->request_method)) {
        /* the request line parsed up to its method: answer for the resource it names */
        size_t len = strcspn(ri->request_uri, "?");
        enum resource res = resource_of(ri->request_uri, len);
        p = res == RES_NONE ? P_NO_ROUTE : P_METHOD;
        allow = resources[res].allow;
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

/* Starts one civetweb context on listen (civetweb listening_ports form, TLS ports with "s") with
 * nthreads workers. */
static struct mg_context *listen_on(const struct config *cfg, const char *listen, int64_t nthreads,
                                    mg_request_handler handler, struct http_server *srv)
{
    struct mg_callbacks cb;
    struct mg_context *ctx;
    char threads[24], timeout[24], keepalive[24];
    const char *options[] = {"listening_ports", listen, "num_threads", threads,
                             "request_timeout_ms", timeout, "enable_keep_alive",
                             cfg->http_keep_alive_timeout_ms > 0 ? "yes" : "no",
                             "keep_alive_timeout_ms", keepalive, "tcp_nodelay", "1",
                             /* CORS is ours (cors.c, options()): civetweb's own answers every
                              * preflight with "*" and adds nothing to the request that follows */
                             "access_control_allow_origin", "", "access_control_allow_methods", "",
                             "access_control_allow_headers", "", NULL};

    snprintf(threads, sizeof(threads), "%lld", (long long)nthreads);
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
    if (ctx)
        mg_set_request_handler(ctx, "/", handler, srv);
    return ctx;
}

struct http_server *http_start(const struct config *cfg, struct cache *cache, struct db *db,
                               struct cdc *cdc, struct metrics *metrics, char *err, size_t errlen)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    char *listen = NULL;
    size_t cap;
    bool tls;
    int rc;

    srv->cfg = cfg;
    srv->cache = cache;
    srv->db = db;
    srv->cdc = cdc;
    srv->metrics = metrics;
    srv->auth = auth_create(cfg->auth_write_tokens, cfg->auth_read_tokens, err, errlen);
    if (!srv->auth)
        goto fail_auth;
    srv->cors = cors_create(cfg->http_cors_origins, err, errlen);
    if (!srv->cors)
        goto fail_cors;
    srv->reads = reads_create_default(db, cdc, cache);
    /* With a certificate every port of http.listen is TLS (tls_listen_spec); http.admin_listen is
     * taken as written. civetweb must not initialise itself before tls_library_init(). */
    tls = cfg->http_tls_certificate[0] != '\0';
    cap = 2 * strlen(cfg->http_listen) + 2; /* each port gains at most one "s" */
    listen = xmalloc(cap);
    rc = tls ? tls_listen_spec(cfg->http_listen, listen, cap)
             : (snprintf(listen, cap, "%s", cfg->http_listen), 0);
    assert(rc == 0);
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
    int n = mg_get_server_ports(srv->ctx, 8, ports), nums[8];

    for (int i = 0; i < n; i++)
        nums[i] = ports[i].port;
    return n > 0 ? listener_stop_accepting(nums, n) : 0;
}

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
        deadline = now_mono_ns() + (srv->cfg->http_keep_alive_timeout_ms + 1000) * 1000000;
        while (atomic_load(&srv->open_conns) > 0 && now_mono_ns() < deadline)
            usleep(10000);
        LOG_INFO("drain: stopped accepting; %d connection(s) still open",
                 atomic_load(&srv->open_conns));
    }
    mg_stop(srv->ctx);
    LOG_INFO("http: stopped");
    if (srv->admin)
        mg_stop(srv->admin);
    reads_destroy(srv->reads);
    cors_destroy(srv->cors);
    auth_destroy(srv->auth);
    free(srv);
}
