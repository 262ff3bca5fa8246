/*
 * net — deadline I/O on non-blocking sockets: wait, connect, send-all, and
 * the tuning of a connection's socket. The one copy of these loops: the
 * prober, the relay, the upstream connect and the TLS I/O callbacks all
 * wait through net_poll/net_wait.
 *
 * Owns: the deadline convention (an absolute time in ms on clock_now_ms(),
 * CLOCK_MONOTONIC, e.g. clock_deadline_ms(timeout), so a loop of several
 * waits never stretches past it),
 * EINTR (retried with the time that is left), the clamp of poll()'s int
 * timeout, and the classification of a failed connect.
 *
 * The waits return 0 or an errno value, never -1: ETIMEDOUT when the
 * deadline passed, poll()'s errno when the wait failed.
 */
#ifndef TLSOFFD_NET_H
#define TLSOFFD_NET_H

#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* The longest single poll(): a longer wait is several polls, until the
 * deadline (which alone decides when the wait ends). */
#define NET_POLL_MAX_MS 60000

/* poll()'s timeout for deadline: the ms left, 0 if it has passed, at most
 * NET_POLL_MAX_MS. */
int net_poll_timeout(int64_t deadline);

/*
 * Polls fds[0..n) until one has revents or the deadline passes. Returns 0
 * (revents set), ETIMEDOUT (the deadline passed, or had passed: fds are
 * not polled then), or poll()'s errno.
 */
int net_poll(struct pollfd *fds, nfds_t n, int64_t deadline);

/*
 * A wait another party may cut short: flag becomes nonzero (a signal
 * handler sets it). The signal stays blocked except inside the wait, which
 * polls with mask (as ppoll() does), so a signal that comes just before
 * the wait is not lost.
 */
struct net_stop {
    volatile sig_atomic_t *flag;
    const sigset_t *mask;       /* the signal mask during the wait */
};

/* net_poll, and EINTR as soon as *stop->flag is set (stop may be NULL). */
int net_poll_until(struct pollfd *fds, nfds_t n, int64_t deadline, const struct net_stop *stop);

/* net_poll on one fd: waits for events (POLLIN, POLLOUT) until deadline.
 * Made for the TLS I/O callbacks too: ETIMEDOUT is "timed out", anything
 * else but 0 is the system error to report. */
int net_wait(int fd, short events, int64_t deadline);

/* Why a connect failed; net_err_outcome names each for the access log. */
enum net_err {
    NET_OK = 0,
    NET_REFUSED,            /* connection refused or reset */
    NET_TIMEOUT,            /* no answer by the deadline */
    NET_UNREACHABLE,        /* no route, network down, ... */
    NET_ERROR,              /* anything else */
};

/*
 * Connects to a by deadline. Returns a non-blocking, close-on-exec socket
 * tuned by net_tune, or -1 with *why set and the reason in reason
 * ("connect timed out", or the system's: "Connection refused").
 */
int net_connect(const struct addr *a, int64_t deadline, enum net_err *why, char *reason,
                size_t reasonlen);

/* "ok", "backend-refused", "backend-timeout", "backend-unreachable",
 * "backend-error": the outcome of a connect to a backend. */
const char *net_err_outcome(enum net_err e);

/*
 * Sends all of buf[0..len) on the non-blocking socket fd by deadline.
 * Returns 0, or an errno value (ETIMEDOUT at the deadline) with the reason
 * in reason: "send timed out", "send: <the system's>", "poll: ...".
 */
int net_send_all(int fd, const void *buf, size_t len, int64_t deadline, char *reason,
                 size_t reasonlen);

/* TCP_NODELAY and SO_KEEPALIVE on a socket; on a listener, the sockets it
 * accepts inherit both (Linux), so a worker tunes its listeners once. */
void net_tune(int fd);

#endif
