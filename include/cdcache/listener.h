/* Stopping a server's listening sockets while its open connections are still served: the drain's
 * "refuse new connections" step, for a server (civetweb 1.15) that offers no call for it. */
#ifndef CDCACHE_LISTENER_H
#define CDCACHE_LISTENER_H

/* Every listening socket of this process on one of ports (n of them) stops accepting: its
 * descriptor is pointed at a non-blocking placeholder nobody connects to, and the socket itself is
 * shut down, so a connect is refused from then on. Whatever polls or accepts on the descriptor
 * finds nothing and closes the placeholder as it would have closed the socket. Returns how many
 * sockets were stopped. Call once; not thread-safe against other descriptor changes in flight. */
int listener_stop_accepting(const int *ports, int n);

#endif
