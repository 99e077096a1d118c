/* The framework's ceiling for the hit path: a bare civetweb server whose one handler answers every
 * GET with a fixed body of the given size and the same headers and options cdcache uses. usage:
 * civet_bare PORT BODY_BYTES THREADS */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *body;
static size_t body_len;

/* The fastest way civetweb lets a handler answer: the whole response in one buffer, one write (what
 * cdcache's hit path does too). */
static int handler(struct mg_connection *conn, void *cbdata)
{
    char buf[8192];
    int n;
    (void)cbdata;
    n = snprintf(buf, sizeof(buf),
                 "HTTP/1.1 200 OK\r\nDate: Sat, 21 Nov 2026 00:00:00 GMT\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\nX-Cache: hit\r\n"
                 "ETag: \"1\"\r\n\r\n",
                 body_len);
    if (n > 0 && (size_t)n + body_len <= sizeof(buf)) {
        memcpy(buf + n, body, body_len);
        mg_write(conn, buf, (size_t)n + body_len);
    }
    return 200;
}

int main(int argc, char **argv)
{
    const char *opts[] = {"listening_ports",
                          argc > 1 ? argv[1] : "18080",
                          "num_threads",
                          argc > 3 ? argv[3] : "16",
                          "enable_keep_alive",
                          "yes",
                          "keep_alive_timeout_ms",
                          "60000",
                          "tcp_nodelay",
                          "1",
                          NULL};
    struct mg_callbacks cb;
    struct mg_context *ctx;
    sigset_t set;
    int sig;

    body_len = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 170;
    body = malloc(body_len + 1);
    memset(body, 'x', body_len);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    memset(&cb, 0, sizeof(cb));
    mg_init_library(0);
    ctx = mg_start(&cb, NULL, opts);
    if (!ctx)
        return 1;
    mg_set_request_handler(ctx, "/", handler, NULL);
    sigwait(&set, &sig);
    mg_stop(ctx);
    free(body);
    return 0;
}
