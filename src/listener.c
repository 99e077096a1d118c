/* A server's listening sockets, changed under it (see listener.h). */
#include "cdcache/listener.h"
#include "cdcache/log.h"
#include "cdcache/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether fd is a listening socket on one of ports. */
static bool listens_on(int fd, const int *ports, int n)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    int accepting = 0, port = -1;
    socklen_t olen = sizeof(accepting);
    struct stat st;

    if (fstat(fd, &st) || !S_ISSOCK(st.st_mode) ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &olen) || !accepting ||
        getsockname(fd, (struct sockaddr *)&sa, &len))
        return false;
    if (sa.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    else if (sa.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    for (int i = 0; i < n; i++)
        if (ports[i] == port)
            return true;
    return false;
}

/* The descriptors of this process that listen on one of ports, into fds[0..max). Returns how
 * many. */
static int listeners_on(const int *ports, int n, int *fds, int max)
{
    int found = 0;
    DIR *d;
    struct dirent *e;

    if (n <= 0 || !(d = opendir("/proc/self/fd")))
        return 0;
    while ((e = readdir(d)) && found < max) {
        int64_t num;

        if (!parse_i64_str(e->d_name, &num) || num <= 2 || num > INT32_MAX)
            continue; /* ".", "..", stdio */
        if ((int)num != dirfd(d) && listens_on((int)num, ports, n))
            fds[found++] = (int)num;
    }
    closedir(d);
    return found;
}

/* Points descriptor fd at a non-blocking placeholder nobody connects to and shuts the socket it
 * held down through a copy: from then on a connect is refused, and whatever polls fd is woken,
 * finds nothing to accept, and closes the placeholder as it would have closed the socket. */
static bool park(int fd)
{
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ph = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), keep = -1;
    bool ok = false;

    if (ph >= 0 && !bind(ph, (struct sockaddr *)&lo, sizeof(lo)) && !listen(ph, 1) &&
        (keep = fcntl(fd, F_DUPFD_CLOEXEC, 3)) >= 0 && dup2(ph, fd) >= 0) {
        shutdown(keep, SHUT_RDWR);
        ok = true;
    }
    if (keep >= 0)
        close(keep);
    if (ph >= 0)
        close(ph);
    return ok;
}

/* Stops the main listener accepting while its connections are still served. civetweb has no call
 * for it short of mg_stop(), which also cuts the idle keep-alive connections a balancer may be
 * sending a request on at that moment (one it may not pass to another replica, a POST). So each
 * listening socket is parked (above): a connect is refused, which a balancer safely retries
 * elsewhere (nothing was sent); a socket shared with other replicas (SO_REUSEPORT) leaves the
 * group, and with net.ipv4.tcp_migrate_req=1 the kernel moves the connections still queued on it
 * to the others. civetweb's accept loop, woken by the shutdown, finds nothing to accept on the
 * placeholder, polls it until mg_stop() and closes it there. Returns how many listening sockets
 * were stopped. */
int listener_stop_accepting(const int *ports, int n)
{
    int fds[64], found = listeners_on(ports, n, fds, 64), stopped = 0;

    for (int i = 0; i < found; i++) {
        if (park(fds[i]))
            stopped++;
        else
            LOG_WARN("drain: cannot stop accepting on fd %d; stopping outright", fds[i]);
    }
    return stopped;
}

static bool set_defer(int fd, int defer_s)
{
    return setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s)) == 0;
}

int listener_defer_accept(const int *ports, int n, int defer_s)
{
    int fds[64], found = listeners_on(ports, n, fds, 64), changed = 0;

    for (int i = 0; i < found; i++)
        changed += set_defer(fds[i], defer_s);
    return changed;
}

int listener_parse_shared(const char *spec, struct sockaddr_in *out, char *err, size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    char host[64];
    int64_t port;

    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_addr.s_addr = htonl(INADDR_ANY);
    if (colon) {
        size_t hl = (size_t)(colon - spec);
        if (hl >= sizeof(host)) {
            snprintf(err, errlen, "not IP:PORT: %s", spec);
            return -1;
        }
        memcpy(host, spec, hl);
        host[hl] = '\0';
        if (inet_pton(AF_INET, host, &out->sin_addr) != 1) {
            snprintf(err, errlen, "not an IPv4 address: \"%s\" (IP:PORT or PORT)", host);
            return -1;
        }
    }
    if (!parse_i64_str(colon ? colon + 1 : spec, &port) || port < 1 || port > 65535) {
        snprintf(err, errlen, "not a port (1-65535): \"%s\" (IP:PORT or PORT)",
                 colon ? colon + 1 : spec);
        return -1;
    }
    out->sin_port = htons((uint16_t)port);
    return 0;
}

int listener_open_shared(const char *spec, int backlog, int defer_s, char *err, size_t errlen)
{
    struct sockaddr_in a;
    int fd, on = 1;

    if (listener_parse_shared(spec, &a, err, errlen))
        return -1;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, backlog) ||
        (defer_s > 0 && !set_defer(fd, defer_s))) {
        snprintf(err, errlen,
                 "cannot listen on %s with SO_REUSEPORT: %s (another program that "
                 "does not share it holds the port?)",
                 spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int listener_replace(int port, int fd)
{
    int old, keep;

    if (listeners_on(&port, 1, &old, 1) != 1) {
        close(fd);
        return -1;
    }
    keep = fcntl(old, F_DUPFD_CLOEXEC, 3);
    if (keep < 0 || dup2(fd, old) < 0) {
        if (keep >= 0)
            close(keep);
        close(fd);
        return -1;
    }
    close(fd);
    shutdown(keep, SHUT_RDWR); /* wakes a poll() on the old socket: the next one polls fd */
    close(keep);
    return 0;
}
