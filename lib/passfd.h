/*
 * passfd — a message and open file descriptors passed together over a
 * unix socket (SCM_RIGHTS), without blocking. For one process to hand a
 * connection to another: the parking of idle connections.
 */
#ifndef TLSOFFD_PASSFD_H
#define TLSOFFD_PASSFD_H

#include <stddef.h>
#include <sys/types.h>

#define PASSFD_MAX 4        /* descriptors in one message */

/* Sends len bytes and nfds descriptors as one message (a SOCK_SEQPACKET
 * socket keeps it whole). 0, or -1 with errno (EAGAIN: the socket is full). */
int passfd_send(int sock, const void *buf, size_t len, const int *fds, int nfds);

/*
 * Receives one message into buf (cap bytes) and the descriptors that came
 * with it into fds (close-on-exec; *nfds of them, at most maxfds: any more
 * are closed). Returns the message's length, or -1 with errno (EAGAIN:
 * none waiting; EMSGSIZE: it did not fit, and its descriptors are closed).
 */
ssize_t passfd_recv(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds);

#endif
