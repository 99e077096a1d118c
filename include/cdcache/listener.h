/* A server's listening sockets, changed under it: the drain's "refuse new connections" step, the
 * port every replica of a host shares (SO_REUSEPORT), and deferred accepts, for a server (civetweb
 * 1.15) that offers no option for any of them. Every call here works on the descriptors of this
 * process; none is thread-safe against other descriptor changes in flight (call them from the
 * thread that starts and stops the server). */
#ifndef CDCACHE_LISTENER_H
#define CDCACHE_LISTENER_H

#include <netinet/in.h>
#include <stddef.h>

/* Every listening socket of this process on one of ports (n of them) stops accepting: its
 * descriptor is pointed at a non-blocking placeholder nobody connects to, and the socket itself is
 * shut down, so a connect is refused from then on. Whatever polls or accepts on the descriptor
 * finds nothing and closes the placeholder as it would have closed the socket. Returns how many
 * sockets were stopped. Call once; not thread-safe against other descriptor changes in flight. */
int listener_stop_accepting(const int *ports, int n);

/* Every listening socket of this process on one of ports gets TCP_DEFER_ACCEPT of defer_s
 * seconds: the kernel hands a connection to accept() only once its first bytes arrive, so a
 * client that connects and sends nothing never takes one of the server's threads. Returns how
 * many sockets were changed. */
int listener_defer_accept(const int *ports, int n, int defer_s);

/* Parses spec, "IP:PORT" or "PORT" (any address), IPv4. Returns 0, or -1 with the reason in err. */
int listener_parse_shared(const char *spec, struct sockaddr_in *out, char *err, size_t errlen);

/* A listening socket on spec ("IP:PORT" or "PORT", IPv4) that other processes of the same user
 * may open too (SO_REUSEPORT: the kernel spreads new connections over them), non-blocking, with
 * backlog and TCP_DEFER_ACCEPT defer_s (0: none). Returns the descriptor, or -1 with the reason in
 * err. */
int listener_open_shared(const char *spec, int backlog, int defer_s, char *err, size_t errlen);

/* The listening socket of this process on port (one nobody connects to: a placeholder the server
 * was started with) becomes fd: fd is moved (dup2) onto its descriptor and closed, and the old
 * socket is shut down, which wakes whatever polls the descriptor. Returns 0, or -1 (no socket
 * listens on port; fd is closed). */
int listener_replace(int port, int fd);

#endif
