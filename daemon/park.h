/*
 * park — the parking process: it holds idle connections for the workers.
 *
 * A worker whose connection has delivered nothing for workers.park_after
 * (and has nothing buffered) hands it over: the client's and the
 * backend's sockets (SCM_RIGHTS) and a struct park_msg, with the TLS
 * state (tls_conn_park) and what the access log will say. The worker
 * goes back to accepting; a held connection then costs two sockets and
 * this message instead of a process. When either socket becomes readable
 * (or timeouts.idle passes), the park process hands the connection back,
 * on the same socket pair, to whichever idle worker takes it first; that
 * worker makes the TLS connection again (tls_conn_unpark) and relays on.
 *
 * The park process never reads a byte of the connections it holds and
 * does no crypto. The client-table count of each connection it holds is
 * in the shared park table (one ticket a slot), so that the master gives
 * the counts back if it dies. On a graceful stop or an upgrade's
 * hand-over (SIGQUIT) it hands everything back, and the stopping workers
 * serve those connections to their end, as they do the ones they hold.
 *
 * Peers: child (what every child does after fork).
 */
#ifndef TLSOFFD_PARK_H
#define TLSOFFD_PARK_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "addr.h"
#include "clients.h"
#include "runtime.h"
#include "tls.h"

#define PARK_MAGIC    0x4b524150u   /* "PARK" */
#define PARK_SLOTS    65536         /* connections held at most */

/* A parked connection, as it travels between a worker and the park. */
struct park_msg {
    uint32_t magic;
    uint32_t size;                  /* of this message, the blob included */
    uint32_t slot;                  /* the park's (set by it); the table's index */
    uint8_t expired;                /* set by the park: timeouts.idle passed */
    int64_t idle_at;                /* clock_now_ms: then it is handed back expired */
    int64_t delivered_at;           /* the last byte delivered either way */
    struct clients_ticket ticket;   /* its count in the client table */
    struct sockaddr_storage peer;
    char frontend[64];              /* by name: a reload may renumber them */
    char upstream[64];
    struct {                        /* the access log's, so far */
        char client[ADDR_STRLEN], backend[ADDR_STRLEN];
        char sni[256], alpn[256], client_cert[260];
        uint64_t in, out;
        int64_t start;
    } log;
    uint32_t tls_len;
    uint8_t tls[TLS_PARK_MAX];      /* the TLS state: traffic keys (never logged) */
};

/* The park table in the shared segment: a ticket for each slot. */
size_t park_table_size(void);

/* Forks the park process; its pid, or -1 (logged). */
pid_t park_start(struct runtime *rt, pid_t master);

/* The park process died: the counts of what it held go back (master). */
void park_release_all(struct runtime *rt);

#endif
