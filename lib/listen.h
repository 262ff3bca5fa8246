/*
 * listen — listening sockets: bind, listen, accept. (Their tuning, which
 * accepted sockets inherit, is net_tune.)
 */
#ifndef TLSOFFD_LISTEN_H
#define TLSOFFD_LISTEN_H

#include <stddef.h>

#include "addr.h"

/* The accept queue asked for; the kernel caps it at net.core.somaxconn
 * (4096 by default since Linux 5.4). A burst waits there while the pool
 * grows. */
#define LISTEN_BACKLOG 65535

/*
 * A non-blocking, close-on-exec listening TCP socket on a. IPv6 sockets are
 * v6-only, so "[::]:443" and "0.0.0.0:443" can both be listened on.
 * Returns the fd, or -1 with the reason in err.
 */
int listen_open(const struct addr *a, char *err, size_t errlen);

/* The port a listening socket got (for port 0 in tests). */
int listen_port(int fd);

/* Connections waiting in a listening TCP socket's accept queue, and the
 * queue's length (the backlog the kernel granted); -1 if unknown. */
int listen_queued(int fd, int *backlog);

#endif
