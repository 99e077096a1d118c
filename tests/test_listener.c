/* Stopping listening sockets: connects are refused afterwards, the descriptor stays valid and
 * quiet, other ports are untouched. */
#include "cdcache/listener.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_any(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int connect_to(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

    rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    rc = rc == 0 ? 0 : errno;
    close(fd);
    return rc;
}

Test(listener, stopped_ports_refuse_and_the_descriptor_stays_quiet)
{
    int p1, p2, fd1 = listen_any(&p1), fd2 = listen_any(&p2);
    int ports[] = {p1};

    cr_assert_eq(connect_to(p1), 0);
    cr_assert_eq(listener_stop_accepting(ports, 1), 1);
    cr_assert_eq(connect_to(p1), ECONNREFUSED, "a stopped port refuses");
    cr_assert_eq(connect_to(p2), 0, "another port keeps accepting");

    /* the descriptor is still open, polls quiet, and accept() finds nothing without blocking */
    struct pollfd pfd = {.fd = fd1, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 50), 0);
    cr_assert_eq(accept(fd1, NULL, NULL), -1);
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "errno %d", errno);
    cr_assert_eq(close(fd1), 0);
    close(fd2);
}

Test(listener, nothing_listens_on_unknown_ports)
{
    int p, fd = listen_any(&p);
    int ports[] = {p == 1 ? 2 : 1};

    cr_assert_eq(listener_stop_accepting(ports, 1), 0);
    cr_assert_eq(connect_to(p), 0);
    close(fd);
}

/* A free port: bound by a plain socket, closed again. */
static int free_port(void)
{
    int p, fd = listen_any(&p);
    close(fd);
    return p;
}

Test(listener, shared_sockets_share_one_port)
{
    char spec[32], err[256];
    int port = free_port(), a, b, c;

    snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
    a = listener_open_shared(spec, 64, 0, err, sizeof(err));
    b = listener_open_shared(spec, 64, 0, err, sizeof(err));
    cr_assert(a >= 0 && b >= 0, "%s", err);
    /* a socket that does not share the port cannot take it */
    c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_neq(bind(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(c);
    /* the kernel spreads connections over both */
    int got_a = 0, got_b = 0;
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(connect_to(port), 0);
        int fa = accept(a, NULL, NULL), fb = accept(b, NULL, NULL);
        got_a += fa >= 0;
        got_b += fb >= 0;
        if (fa >= 0)
            close(fa);
        if (fb >= 0)
            close(fb);
    }
    cr_assert(got_a > 0 && got_b > 0, "a %d, b %d", got_a, got_b);
    /* one leaves (a drain): the other takes every connection */
    int ports[] = {port};
    cr_assert_eq(listener_stop_accepting(ports, 1), 2);
    close(a);
    close(b);
    cr_assert_eq(connect_to(port), ECONNREFUSED);
}

Test(listener, bad_shared_specs_are_named)
{
    char err[256];
    const char *bad[] = {"", "x", "127.0.0.1:", "127.0.0.1:0", "300.0.0.1:80", "host:80", "80000"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(listener_open_shared(bad[i], 16, 0, err, sizeof(err)), -1, "%s", bad[i]);
        cr_assert(err[0], "%s: no reason", bad[i]);
    }
}

Test(listener, a_placeholder_is_replaced_and_its_poller_woken)
{
    char spec[32], err[256];
    int pp, ph = listen_any(&pp), port = free_port(), fd;

    snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
    fd = listener_open_shared(spec, 16, 0, err, sizeof(err));
    cr_assert(fd >= 0, "%s", err);
    cr_assert_eq(listener_replace(pp, fd), 0);
    /* the placeholder's descriptor now listens on the shared port; its old socket is gone */
    cr_assert_eq(connect_to(pp), ECONNREFUSED);
    cr_assert_eq(connect_to(port), 0);
    struct pollfd pfd = {.fd = ph, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 1000), 1);
    int c = accept(ph, NULL, NULL);
    cr_assert(c >= 0, "errno %d", errno);
    close(c);
    close(ph);
    cr_assert_eq(listener_replace(pp, socket(AF_INET, SOCK_STREAM, 0)), -1,
                 "nothing listens there now");
}

Test(listener, deferred_accepts_wait_for_the_first_bytes)
{
    int p, fd = listen_any(&p), ports[1];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    ports[0] = p;
    a.sin_port = htons((uint16_t)p);
    cr_assert_eq(listener_defer_accept(ports, 1, 30), 1);
    int idle = socket(AF_INET, SOCK_STREAM, 0), talker = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(idle, (struct sockaddr *)&a, sizeof(a)), 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 200), 0, "a connection that sent nothing is not handed to accept()");
    cr_assert_eq(connect(talker, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(write(talker, "G", 1), 1);
    cr_assert_eq(poll(&pfd, 1, 2000), 1, "one that sent a byte is");
    int c = accept(fd, NULL, NULL);
    char ch;
    cr_assert_eq(read(c, &ch, 1), 1);
    cr_assert_eq(ch, 'G');
    close(c);
    close(idle);
    close(talker);
    close(fd);
}
