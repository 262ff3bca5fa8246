/*
 * upstream — the servers behind a frontend: their live state and choosing
 * one. (Connecting to the one chosen is net_connect.)
 *
 * Owns: the upstream region of the shared segment (per server: up/down,
 * consecutive passes and failures, active and total connections, the last
 * error and when) and the balancing algorithms. Workers choose without a
 * lock: the state is plain integers read and written atomically, and the
 * round-robin schedule is fixed at load time, with one shared counter.
 */
#ifndef TLSOFFD_UPSTREAM_H
#define TLSOFFD_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define UPSTREAM_ERROR_LEN 96

/* One server's live state, in the shared segment. */
struct server_state {
    uint32_t up;            /* 1 up, 0 down */
    uint32_t passes;        /* consecutive good probes */
    uint32_t fails;         /* consecutive failures (probes or connects) */
    uint32_t pad;
    uint64_t active;        /* connections open now */
    uint64_t total;         /* connections made */
    uint64_t failures;      /* connects that failed */
    int64_t changed;        /* ms, CLOCK_REALTIME: last up/down change */
    int64_t error_at;       /* ms, CLOCK_REALTIME: last error */
    int64_t retry_at;       /* ms, CLOCK_MONOTONIC: passively down until (health none) */
    char error[UPSTREAM_ERROR_LEN];
};

struct upstreams;

/* Bytes of shared memory the upstreams of cfg need. */
size_t upstream_region_size(const struct config *cfg);

/*
 * Lays out the state of cfg's upstreams in region (cleared: each server
 * starts up if its health check says start_up or it has none, down
 * otherwise) and builds the schedules. Returns NULL if region is smaller
 * than upstream_region_size(cfg). The state of a previous configuration is
 * carried over by upstream_carry. The result lives in this process
 * (workers inherit it).
 */
struct upstreams *upstream_init(void *region, size_t size, const struct config *cfg);
/* A view of a region laid out by upstream_init (for `tlsoffd -s`). */
struct upstreams *upstream_open(void *region, size_t size, const struct config *cfg);
void upstream_free(struct upstreams *u);

/* After a reload: servers of `to` that were in `from` (same upstream name
 * and address) take over their state (up/down, counters, last error). */
void upstream_carry(struct upstreams *to, struct upstreams *from);

struct server_state *upstream_state(struct upstreams *u, size_t up, size_t server);

/*
 * Chooses a server of upstream up for a client, among those that are up,
 * not full (max_conns) and not in tried[] (tried has nservers entries; NULL
 * = none tried). Backups are chosen only when no primary is up. Returns
 * the server's index, or -1 if none is eligible.
 */
int upstream_choose(struct upstreams *u, size_t up, const struct sockaddr *client,
                    const bool *tried);

/* A connection to the server begins / ends. */
void upstream_conn_begin(struct upstreams *u, size_t up, size_t server);
void upstream_conn_end(struct upstreams *u, size_t up, size_t server);

/*
 * The result of a connect (passive check) or of a probe: counts passes or
 * failures and moves the server up after rise passes or down after fall
 * failures. Returns +1 if it went up, -1 if it went down, 0 otherwise;
 * exactly one caller sees each change (log it once).
 */
int upstream_report(struct upstreams *u, size_t up, size_t server, bool ok, bool probe,
                    const char *error);

#endif
