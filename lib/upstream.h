/*
 * upstream — the servers behind a frontend: choosing one and connecting.
 *
 * This version forwards to the first server of the upstream; the table is
 * shaped for many servers (balancing and health come later).
 */
#ifndef TLSOFFD_UPSTREAM_H
#define TLSOFFD_UPSTREAM_H

#include <stddef.h>

#include "config.h"

enum upstream_err {
    UPSTREAM_OK = 0,
    UPSTREAM_REFUSED,       /* connection refused or reset */
    UPSTREAM_TIMEOUT,       /* no answer within the connect timeout */
    UPSTREAM_UNREACHABLE,   /* no route, network down, ... */
    UPSTREAM_ERROR,         /* anything else */
};

/* The server to try for a new connection. */
const struct server_conf *upstream_pick(const struct upstream_conf *up);

/*
 * Connects to a with a timeout in seconds. Returns a non-blocking,
 * close-on-exec socket with TCP_NODELAY, or -1 with *why set and the
 * system's reason in reason.
 */
int upstream_connect(const struct addr *a, double timeout, enum upstream_err *why,
                     char *reason, size_t len);

const char *upstream_err_outcome(enum upstream_err e);

#endif
