/* Stopping a server's listening sockets without stopping the server (see listener.h). */
#include "cdcache/listener.h"
#include "cdcache/log.h"
#include "cdcache/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
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

/* Stops the main listener accepting while its connections are still served. civetweb has no call
 * for it short of mg_stop(), which also cuts the idle keep-alive connections a balancer may be
 * sending a request on at that moment (one it may not pass to another replica, a POST). So each
 * listening socket's descriptor is pointed (dup2) at a non-blocking placeholder nobody connects to,
 * and the socket itself is shut down through a copy: from then on a connect is refused, which a
 * balancer safely retries elsewhere (nothing was sent). civetweb's accept loop, woken by the
 * shutdown, finds nothing to accept on the placeholder, polls it until mg_stop() and closes it
 * there. Returns how many listening sockets were stopped. */
int listener_stop_accepting(const int *ports, int n)
{
    int stopped = 0;
    DIR *d;
    struct dirent *e;

    if (n <= 0 || !(d = opendir("/proc/self/fd")))
        return 0;
    while ((e = readdir(d))) {
        int64_t num;
        int fd, ph, keep = -1;
        struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

        if (!parse_i64_str(e->d_name, &num) || num <= 2 || num > INT32_MAX)
            continue; /* ".", "..", stdio */
        fd = (int)num;
        if (fd == dirfd(d) || !listens_on(fd, ports, n))
            continue;
        ph = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ph < 0 || bind(ph, (struct sockaddr *)&lo, sizeof(lo)) || listen(ph, 1) ||
            (keep = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0 || dup2(ph, fd) < 0) {
            LOG_WARN("drain: cannot stop accepting on fd %d; stopping outright", fd);
        } else {
            shutdown(keep, SHUT_RDWR);
            stopped++;
        }
        if (keep >= 0)
            close(keep);
        if (ph >= 0)
            close(ph);
    }
    closedir(d);
    return stopped;
}
