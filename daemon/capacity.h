/*
 * capacity — how many workers the machine lets the pool run: the kernel's
 * pid and thread limits, the cgroup's task limit (systemd's TasksMax),
 * RLIMIT_NPROC when the master is not root, open files (two a
 * connection), and memory at what a held connection costs. Each is read
 * as "workers it allows"; the smallest binds. Read at start and on each
 * reload (workers.max = "auto" takes it), and reported by -t.
 *
 * Peers: none in daemon/ (main and master call it).
 */
#ifndef TLSOFFD_CAPACITY_H
#define TLSOFFD_CAPACITY_H

#include <stdio.h>

#include "config.h"

/*
 * System memory a worker serving a connection costs, kernel included (its
 * page tables, kernel stack and private pages, two sockets): 538 KiB with
 * the optimised wolfSSL and jemalloc, measured with contrib/bench/held
 * (park_after = 0). "auto" gives the pool half of the memory available at
 * start at this price. Parked connections cost a few KiB and hold no
 * worker.
 */
#define CAPACITY_CONN_KIB 540

struct capacity_bound {
    const char *what;       /* "kernel.pid_max" */
    long allows;            /* workers it leaves room for */
    char detail[192];       /* the reading, and what to change */
};

#define CAPACITY_MAX_BOUNDS 8

struct capacity {
    struct capacity_bound b[CAPACITY_MAX_BOUNDS];
    int n;
    int binding;            /* index of the smallest */
};

/* Reads the limits; nlisteners: the fds every worker inherits. */
void capacity_probe(struct capacity *c, size_t nlisteners);

/* The pool's ceiling for cfg: workers.count, workers.max, or for "auto"
 * the machine's (at most CONFIG_MAX_WORKERS, at least min_spare). */
int capacity_pool_max(const struct capacity *c, const struct config *cfg);

/* When the configured pool does not fit: a warning naming the limit that
 * binds and how to raise it (log, or f for -t; f NULL: log). Returns true
 * if it fits. */
bool capacity_check(const struct capacity *c, const struct config *cfg, FILE *f);

#endif
