/* Stopping listening sockets: connects are refused afterwards, the descriptor stays valid and
 * quiet, other ports are untouched. */
#include "cdcache/listener.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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
