/* Fuzzes whole HTTP requests against the real server: civetweb's request path, then our routes
 * (src/http.c), request body parser (src/body.c) and JSON scanner (src/json.c).
 *
 * LLVMFuzzerInitialize starts the server in-process once, as `cdcache serve` would, on a free
 * loopback port, with CDC off and PostgreSQL pointed at a closed port, so every database-backed
 * route answers 503 within the short connect and pool timeouts set below. Each input is written to
 * a new TCP connection as raw bytes (several pipelined requests, a chunked body, garbage: whatever
 * the fuzzer makes), the write side is shut down, and the answer is read to EOF.
 *
 * What it asserts (a trap otherwise): every answer is a well-formed HTTP/1.x response head (status
 * line with a code in 100..599, header lines of "Name: value", a blank line), with at least
 * Content-Length bytes of body after it; and the server closes the connection within
 * ANSWER_DEADLINE_MS of our FIN, so no input can hold a worker thread. An input that is not a
 * complete request may get no answer at all.
 *
 * Threads: the handlers run on civetweb's worker threads; libFuzzer's coverage counters are global,
 * so their edges count. One connection at a time, read to EOF, so an input's coverage is recorded
 * before the next input starts (up to what a worker does after closing the connection). */
#include "../fixtures.h"
#include "cdcache/cache.h"
#include "cdcache/catalog.h"
#include "cdcache/config.h"
#include "cdcache/db.h"
#include "cdcache/http.h"
#include "cdcache/log.h"
#include "cdcache/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How long the server may take, after our FIN, to answer and close. Database routes fail within
 * postgres.connect_timeout_ms + pool_wait_ms (100 + 100 ms here). */
#define ANSWER_DEADLINE_MS 10000
/* The part of an answer kept for the checks; the rest is read and dropped. */
#define ANSWER_KEEP (256 * 1024)

static struct sockaddr_in server;
static char *answer;
/* Answers by status class (1xx..5xx) and no answer, printed at exit so a run shows which paths it
 * reached (all 503 would mean the routes were never parsed past the database). */
static unsigned long answers[7];
static unsigned long status_500, unchecked;
/* FUZZ_HTTP_TRACE=1 prints each answer (to check what the seeds reach). */
static bool trace;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_http: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* A port nobody listens on now: bind to port 0 and give it back. Racy in principle; a clash makes
 * http_start() fail loudly below. */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        die("cannot find a free port", strerror(errno));
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

extern char **environ;

static void clear_cdcache_env(void)
{
    for (bool again = true; again;) {
        again = false;
        for (char **e = environ; *e; e++) {
            const char *eq = strchr(*e, '=');
            char name[256];
            if (strncmp(*e, "CDCACHE_", 8) || !eq || (size_t)(eq - *e) >= sizeof(name))
                continue;
            memcpy(name, *e, (size_t)(eq - *e));
            name[eq - *e] = '\0';
            unsetenv(name); /* changes environ: start over */
            again = true;
            break;
        }
    }
}

static void print_answers(void)
{
    fprintf(stderr,
            "fuzz_http: answers 1xx %lu, 2xx %lu, 3xx %lu, 4xx %lu, 5xx %lu (500: %lu), none %lu; "
            "not checked (request line not HTTP/1.x): %lu\n",
            answers[1], answers[2], answers[3], answers[4], answers[5], status_500, answers[0],
            unchecked);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct config *cfg = NULL;
    struct cache *cache = NULL;
    struct db *db;
    struct metrics *metrics;
    struct catalog *catalog;
    char listen[32], err[512];
    int port = free_port();

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    /* Only the settings below: a CDCACHE_* variable left in the caller's shell (a stack.env) must
     * not point the harness at a real database or change what it exercises. */
    clear_cdcache_env();
    setenv("CDCACHE_HTTP_LISTEN", listen, 1);
    setenv("CDCACHE_HTTP_THREADS", "8", 1);
    setenv("CDCACHE_HTTP_MAX_BODY_BYTES", "4KiB", 1); /* 413 within -max_len */
    setenv("CDCACHE_HTTP_MAX_LIST_LIMIT", "100", 1);
    setenv("CDCACHE_HTTP_REQUEST_TIMEOUT_MS", "2000", 1);
    setenv("CDCACHE_CDC_ENABLED", "false", 1);
    setenv("CDCACHE_POSTGRES_CONNINFO", "postgresql://fuzz@127.0.0.1:1/fuzz", 1);
    setenv("CDCACHE_POSTGRES_CONNECT_TIMEOUT_MS", "100", 1);
    setenv("CDCACHE_POSTGRES_STATEMENT_TIMEOUT_MS", "100", 1);
    setenv("CDCACHE_POSTGRES_POOL_SIZE", "2", 1);
    setenv("CDCACHE_POSTGRES_POOL_WAIT_MS", "100", 1);
    setenv("CDCACHE_LOG_LEVEL", "error", 1);
    /* Writes need a token (the seeds carry the first), so both the 401 path and the routes behind
     * it are explored; reads stay open. */
    setenv("CDCACHE_AUTH_WRITE_TOKENS", "fuzz-write-token, second-token", 1);
    if (config_load(NULL, &cfg, err, sizeof(err)))
        die("config", err);
    log_set_level(LOG_LEVEL_ERROR);
    signal(SIGPIPE, SIG_IGN);

    if (cfg->cache_enabled) {
        struct cache_options co = {.max_bytes = (size_t)cfg->cache_max_bytes,
                                   .shards = (unsigned)cfg->cache_shards,
                                   .resources = (unsigned)cfg->nresources,
                                   .negative_entries = cfg->cache_negative_entries,
                                   .fill_wait_ms = (int)cfg->cache_fill_wait_ms};
        cache = cache_create(&co);
    }
    db = db_create(cfg->postgres_conninfo, (int)cfg->postgres_statement_timeout_ms,
                   (int)cfg->postgres_connect_timeout_ms, (int)cfg->postgres_pool_size,
                   (int)cfg->postgres_pool_wait_ms);
    /* no database: the shipped config's one resource, described by hand as catalog.c would */
    catalog = catalog_create(cfg, db);
    catalog_install(catalog, fixtures_resource_set(fixtures_items_resource(0)));
    metrics = metrics_create(1);
    /* The server, cfg, cache, db and metrics live until the process exits: libFuzzer never returns
     * control to tear them down, and they stay reachable from the server, so LeakSanitizer is
     * quiet about them. */
    if (!http_start(cfg, catalog, cache, db, NULL, metrics, err, sizeof(err)))
        die("http_start", err);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)port);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    answer = malloc(ANSWER_KEEP);
    if (!answer)
        die("out of memory", NULL);
    trace = getenv("FUZZ_HTTP_TRACE") != NULL;
    atexit(print_answers);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. Returns false on timeout. */
static bool wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int64_t left = deadline - now_ms();
        int rc;
        if (left <= 0)
            return false;
        rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            die("poll", strerror(errno));
    }
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Checks one response head at a[0..len). Returns its length including the blank line; traps when
 * the head is malformed. Sets *content_length (-1: absent) and *status. */
static size_t check_head(const char *a, size_t len, long long *content_length, int *status)
{
    const char *end = NULL, *line, *eol;

    for (size_t i = 0; i + 3 < len; i++) {
        if (!memcmp(a + i, "\r\n\r\n", 4)) {
            end = a + i + 2; /* the blank line starts here */
            break;
        }
    }
    if (!end)
        die("answer has no complete head", NULL);
    /* "HTTP/1.x SSS" then " reason" or the end of the line */
    if (end - a < 14 || memcmp(a, "HTTP/1.", 7) || (a[7] != '0' && a[7] != '1') || a[8] != ' ' ||
        a[9] < '1' || a[9] > '5' || a[10] < '0' || a[10] > '9' || a[11] < '0' || a[11] > '9' ||
        (a[12] != ' ' && a[12] != '\r'))
        die("malformed status line", NULL);
    *status = (a[9] - '0') * 100 + (a[10] - '0') * 10 + (a[11] - '0');
    *content_length = -1;
    line = memchr(a, '\n', (size_t)(end - a)) + 1;
    for (; line < end; line = eol + 1) {
        const char *colon = line;
        eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol || eol == line || eol[-1] != '\r')
            die("header line not ended by CRLF", NULL);
        while (colon < eol && is_tchar(*colon))
            colon++;
        if (colon == line || *colon != ':')
            die("malformed header line", NULL);
        if ((size_t)(colon - line) == 14 && !strncasecmp(line, "Content-Length", 14)) {
            const char *v = colon + 1;
            long long n = 0;
            while (*v == ' ')
                v++;
            if (*v < '0' || *v > '9')
                die("Content-Length is not a number", NULL);
            for (; *v >= '0' && *v <= '9'; v++)
                n = n * 10 + (*v - '0');
            if (*v != '\r' || (*content_length >= 0 && *content_length != n))
                die("bad or conflicting Content-Length", NULL);
            *content_length = n;
        }
        for (const char *c = line; c < eol - 1; c++)
            if (*c == '\r' || *c == '\n' || *c == '\0')
                die("control character in a header line", NULL);
    }
    return (size_t)(end + 2 - a);
}

/* Whether the input opens with a request line "METHOD SP target SP HTTP/1.0|1.1 CRLF" (without
 * the leniencies civetweb allows). Sets *head when the method is HEAD.
 *
 * The answers to other inputs are not checked, because they come from civetweb 1.15 (a system
 * library) before any of our code runs, and they are not well-formed: civetweb echoes whatever
 * follows the request target as the version of its 400/505 status line, CR LF and later header
 * lines included ("G)T / HTTPx/1.1\r\nHost: a\r\n\r\n" gets "HTTP/HTTPx/1.1\r\nHost: a\r\n\r 400
 * Bad Request"). Those inputs still must not crash the server or hold a worker. */
static bool request_line_ok(const uint8_t *r, size_t len, bool *head)
{
    size_t i = 0, m, t;

    while (i < len && r[i] >= 'A' && r[i] <= 'Z')
        i++;
    m = i;
    if (m == 0 || i >= len || r[i++] != ' ')
        return false;
    t = i;
    while (i < len && r[i] > ' ' && r[i] < 0x7f)
        i++;
    if (i == t || len - i < 11 || memcmp(r + i, " HTTP/1.", 8) ||
        (r[i + 8] != '0' && r[i + 8] != '1') || memcmp(r + i + 9, "\r\n", 2))
        return false;
    *head = m == 4 && !memcmp(r, "HEAD", 4);
    return true;
}

static void check_answer(const uint8_t *req, size_t req_len, size_t len, bool truncated)
{
    long long content_length;
    int status;
    size_t head;
    bool head_request = false;

    if (trace) {
        fprintf(stderr, "fuzz_http: %zu bytes in, %zu out: ", req_len, len);
        for (size_t i = 0; i < len && i < 400; i++) {
            unsigned char c = (unsigned char)answer[i];
            fprintf(stderr, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
        }
        fputc('\n', stderr);
    }
    if (!request_line_ok(req, req_len, &head_request)) {
        unchecked++;
        return;
    }
    if (len == 0) {
        answers[0]++;
        return;
    }
    head = check_head(answer, len, &content_length, &status);
    answers[status / 100]++;
    status_500 += status == 500;
    /* The body of the first answer is there whole (a HEAD answer has none; 1xx, 204 and 304 have
     * none either). Later pipelined answers are not checked: telling them apart would need the
     * requests' methods. */
    if (status >= 200 && status != 204 && status != 304 && !head_request && content_length >= 0 &&
        !truncated && (long long)(len - head) < content_length)
        die("answer shorter than its Content-Length", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t deadline = now_ms() + ANSWER_DEADLINE_MS;
    size_t sent = 0, len = 0;
    bool truncated = false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        die("socket", strerror(errno));
    if (connect(fd, (struct sockaddr *)&server, sizeof(server)) && errno != EINPROGRESS)
        die("connect", strerror(errno));
    /* Write what the server will take: it may answer and close before reading everything (413,
     * 400), and then the rest of the input does not matter. */
    while (sent < size) {
        ssize_t n;
        if (!wait_fd(fd, POLLOUT, deadline))
            die("the server stopped reading the request without answering", NULL);
        n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0 && errno == ENOTCONN)
            continue; /* connect still in progress */
        if (n < 0)
            break; /* EPIPE, ECONNRESET: the server closed early */
        sent += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        char scratch[4096];
        char *into = len < ANSWER_KEEP ? answer + len : scratch;
        size_t room = len < ANSWER_KEEP ? ANSWER_KEEP - len : sizeof(scratch);
        ssize_t n;
        if (!wait_fd(fd, POLLIN, deadline))
            die("no EOF from the server within the deadline: an input holds a worker", NULL);
        n = recv(fd, into, room, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break; /* EOF, or ECONNRESET after the server closed with our bytes unread */
        if (into == scratch)
            truncated = true;
        else
            len += (size_t)n;
    }
    close(fd);
    check_answer(data, size, len, truncated);
    return 0;
}
