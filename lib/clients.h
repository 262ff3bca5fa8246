/*
 * clients — the client table: per-client limits, checked right after the
 * accept and before any crypto.
 *
 * Owns: a region of the shared segment holding one entry per client (an
 * IPv4 address, or an IPv6 network of policy.ipv6_prefix bits; a mapped
 * IPv6 peer is its IPv4 address) with its open connections and a bucket of
 * full handshakes; and the verdict on a new connection: the deny list, the
 * allow list, the concurrency limit, the handshake rate, in that order.
 *
 * The entries are sharded by a keyed hash (SipHash, keyed by the caller's
 * seed, so clients cannot aim at one shard); each shard has a
 * process-shared robust mutex. A client's entry is in a window of
 * CLIENTS_WINDOW slots of its shard; an entry with no open connection and a
 * full bucket is free for another client. The table never allocates: a
 * client who finds no free slot in its window is served uncounted
 * (CLIENTS_TABLE_FULL), which a table with several slots per worker makes
 * rare, since each counted connection holds a worker.
 *
 * What any process may have written in the region is only numbers to the
 * others: the geometry and the policy are each process's own copy, every
 * index is clamped, and a lock is waited for at most CLIENTS_LOCK_WAIT_MS,
 * so a stopped or hostile worker cannot hang the master. A process killed
 * holding a shard's lock leaves EOWNERDEAD: the next locker drops the
 * entries of that shard whose key no longer matches its hash (half
 * written) and keeps the counts of the others. The order of the writes
 * (the ticket before the count up, the count down before the ticket is
 * cleared) makes a count that a death leaves wrong one too low, never too
 * high: a client may get one connection more, and the count heals when its
 * connections close, since it never goes below 0. (Only a release that
 * gives up on a lock held too long leaves a count one too high.)
 *
 * The handshake rate is checked at the accept and charged after the
 * handshake (a resumption costs nothing), so a client can exceed its
 * bucket by at most its concurrent connections; the bucket goes into debt
 * for them (down to minus a burst), and the client waits it off.
 */
#ifndef TLSOFFD_CLIENTS_H
#define TLSOFFD_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addr.h"

#define CLIENTS_WINDOW              32      /* slots a client's entry may be in */
#define CLIENTS_MAX_SHARDS          64
#define CLIENTS_MAX_SLOTS           (1u << 24)
#define CLIENTS_LOCK_WAIT_MS        1000    /* then the call gives up: see the verdicts */
#define CLIENTS_LOG_EVERY_MS        1000    /* clients_should_log */
#define CLIENTS_DEFAULT_IPV6_PREFIX 64

struct clients;

/* What a process applies; each process has its own copy. */
struct clients_policy {
    uint32_t per_client;        /* connections open at once; 0: no limit */
    uint32_t handshake_rate;    /* full handshakes a second; 0: no limit */
    uint32_t handshake_burst;   /* the bucket; less than handshake_rate is taken as it */
    uint8_t ipv6_prefix;        /* IPv6 clients are counted by network: 1..128; 0: 64 */
    size_t ndeny, nallow;
    const struct addr_cidr *deny;   /* refused, whatever allow says */
    const struct addr_cidr *allow;  /* when not empty, the only clients served */
};

enum clients_verdict {
    CLIENTS_OK,             /* admitted and counted */
    CLIENTS_DENIED,         /* in the deny list */
    CLIENTS_NOT_ALLOWED,    /* the allow list is not empty and does not have it */
    CLIENTS_PER_CLIENT,     /* per_client connections are open already */
    CLIENTS_RATE,           /* its handshake bucket is empty */
    CLIENTS_TABLE_FULL,     /* admitted, uncounted: no free slot in its window */
    CLIENTS_LOCK_TIMEOUT,   /* admitted, uncounted: a shard lock held too long */
    CLIENTS_NVERDICTS
};

/* Whether the connection is to be served. */
static inline bool clients_admitted(enum clients_verdict v)
{
    return v == CLIENTS_OK || v == CLIENTS_TABLE_FULL || v == CLIENTS_LOCK_TIMEOUT;
}

/* "ok", "denied", "not-allowed", "per-client", "handshake-rate",
 * "table-full", "lock-timeout"; "?" for anything else. */
const char *clients_verdict_name(enum clients_verdict v);

/*
 * What releases an admitted connection: plain data, to be kept where
 * another process finds it (the scoreboard), so that the master can
 * release for a worker that died. All zero: nothing to release.
 */
struct clients_ticket {
    uint32_t slot;          /* the entry's index + 1; 0: none */
    uint32_t gen;           /* the entry's generation: it changes with the client */
    uint64_t tag;           /* the client's hash */
};

/* A client, for `tlsoffd -s stats`. */
struct clients_usage {
    struct addr_cidr client;
    uint32_t connections;
    int32_t tokens;         /* whole handshakes in the bucket at its last use */
};

/* Bytes of a region that holds at least nslots entries (1..CLIENTS_MAX_SLOTS). */
size_t clients_region_size(size_t nslots);

/*
 * Lays out an empty table in region (size bytes, 64-byte aligned) and
 * returns this process's handle on it, applying p (copied, lists too).
 * seed keys the hash (from getrandom). NULL if size has no room for one
 * entry.
 */
struct clients *clients_init(void *region, size_t size, const struct clients_policy *p,
                             uint64_t seed);

/* A handle on a table laid out before (by this master, or an older one
 * across exec), with no limits and no lists until clients_set_policy;
 * NULL if region does not hold a table that fits in size. */
struct clients *clients_open(void *region, size_t size);

/* Applies p from now on, in this process (a reload). */
void clients_set_policy(struct clients *t, const struct clients_policy *p);

/* The handle only; the region stays. */
void clients_free(struct clients *t);

/* Entries the table holds at most. */
size_t clients_capacity(const struct clients *t);

/*
 * The verdict on a connection from peer at now_ms (CLOCK_MONOTONIC). On
 * CLIENTS_OK the connection is counted and *tk says how to release it;
 * otherwise *tk is all zero. A peer that is not an IP address is served
 * uncounted (CLIENTS_OK, an empty ticket) unless allow is set. Takes the
 * client's shard lock, unless the lists refuse it.
 */
enum clients_verdict clients_admit(struct clients *t, const struct sockaddr *peer,
                                   int64_t now_ms, struct clients_ticket *tk);

/* A handshake that was not a resumption (full, or failed) takes one token
 * from the client's bucket. Call before clients_release. Takes the lock. */
void clients_charge_handshake(struct clients *t, const struct clients_ticket *tk,
                              int64_t now_ms);

/* The connection closed: one fewer for its client (never below 0), and *tk
 * is cleared, so a second release does nothing. Safe with any ticket: a
 * stale or garbage one releases nothing. Takes the lock (and gives up after
 * CLIENTS_LOCK_WAIT_MS, so the master never hangs on a stopped worker). */
void clients_release(struct clients *t, struct clients_ticket *tk);

/*
 * Whether to log a refusal of peer: true at most once every
 * CLIENTS_LOG_EVERY_MS per client with an entry; clients without one (the
 * lists refused them, or the table was full) share one such budget, so a
 * refused network cannot flood the log. Lock-free.
 */
bool clients_should_log(struct clients *t, const struct sockaddr *peer, int64_t now_ms);

/* Fills out with at most n clients with connections open, the most first;
 * returns how many. Read without locks: a client changing meanwhile may be
 * shown half old, half new. */
size_t clients_top(const struct clients *t, struct clients_usage *out, size_t n);

/* Shards repaired after a process died holding their lock. */
uint64_t clients_repairs(const struct clients *t);

#endif
