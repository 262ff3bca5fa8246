/*
 * stats — counters per worker in the shared segment, and their report.
 *
 * Each worker slot is written only by the worker that owns it (relaxed
 * atomic adds), so counting takes no lock; a replacement worker carries on
 * with its slot's numbers. Totals are summed when read.
 *
 * Any process may have written anything in the region: the number of
 * slots is the handle's own (set by stats_init, or by stats_open from
 * the region's size, as the segment's header gives it), a state out of
 * range reads as WS_NONE, and text is printed only through stats_text.
 */
#ifndef TLSOFFD_STATS_H
#define TLSOFFD_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "clients.h"

enum stat_id {
    ST_CONNECTIONS,         /* accepted */
    ST_HANDSHAKE_FAILED,    /* including timeouts */
    ST_FULL,                /* full handshakes */
    ST_RESUMED_ID,          /* TLS 1.2, by session ID (shared cache) */
    ST_RESUMED_TICKET12,    /* TLS 1.2, by ticket */
    ST_RESUMED_TICKET13,    /* TLS 1.3, by PSK ticket */
    ST_CACHE_HIT,
    ST_CACHE_MISS,
    ST_CACHE_STORE,
    ST_CACHE_EVICT,
    ST_CACHE_OVERSIZE,
    ST_TICKET_FAIL,         /* connections whose ticket did not decrypt */
    ST_BYTES_IN,            /* relayed from clients to backends */
    ST_BYTES_OUT,           /* relayed from backends to clients */
    ST_SHED,                /* idle connections closed because the pool was full */
    ST_REFUSED_DENIED,      /* refused at accept: limits.deny */
    ST_REFUSED_NOT_ALLOWED, /* ... not in limits.allow */
    ST_REFUSED_PER_CLIENT,  /* ... limits.per_client connections open */
    ST_REFUSED_RATE,        /* ... limits.handshake_rate */
    ST_UNCOUNTED,           /* served without a place in the client table */
    ST_PARKED,              /* idle connections handed to the park process */
    ST_UNPARKED,            /* ... and taken back from it */
    ST_COUNT
};

/* What a worker is doing (the scoreboard). */
enum worker_state { WS_NONE, WS_IDLE, WS_HANDSHAKE, WS_RELAY, WS_EXITING };

struct stats_worker {
    uint64_t v[ST_COUNT];
    int32_t pid;
    uint32_t state;         /* enum worker_state */
    int64_t delivered_at;   /* relaying: when it last delivered a byte */
    struct clients_ticket ticket;   /* the client table's count this connection holds */
    char client[48];        /* the client being served, or "" */
} __attribute__((aligned(64)));

/* Sets what the worker is doing (and for whom); delivered_at starts now. */
void stats_set_state(struct stats_worker *w, enum worker_state st, const char *client);
/* What it is doing; WS_NONE for no slot (NULL) or a value out of range. */
enum worker_state stats_state(const struct stats_worker *w);
const char *stats_state_name(enum worker_state st);
static inline void stats_add(struct stats_worker *w, enum stat_id st, uint64_t n)
{
    if (w)
        __atomic_add_fetch(&w->v[st], n, __ATOMIC_RELAXED);
}

struct stats;

size_t stats_region_size(unsigned nworkers);
/* A handle on the region (this process's memory; a fork inherits it). */
struct stats *stats_init(void *region, unsigned nworkers);
/* A handle on a region made before, with the slots that fit in size;
 * NULL if not one does. */
struct stats *stats_open(void *region, size_t size);
/* The handle only; the region stays. */
void stats_free(struct stats *s);
unsigned stats_nworkers(const struct stats *s);
/* Slot id (0 .. nworkers-1); NULL if out of range. */
struct stats_worker *stats_worker(struct stats *s, unsigned id);

static inline void stats_inc(struct stats_worker *w, enum stat_id st)
{
    if (w)
        __atomic_add_fetch(&w->v[st], 1, __ATOMIC_RELAXED);
}

uint64_t stats_total(const struct stats *s, enum stat_id st);
const char *stats_name(enum stat_id st);

/* The pool as the scoreboard shows it. */
struct stats_pool {
    unsigned busy, idle, starting, exiting;
};
void stats_pool(const struct stats *s, struct stats_pool *p);
/* The pool's ceiling, as the master has it (for the report). */
void stats_set_pool_max(struct stats *s, unsigned max);
/* The connections the park process holds (for the report). */
void stats_set_parked(struct stats *s, unsigned n);
/* Whether the park process is handing everything back (a graceful stop):
 * then a stopping worker does not park. */
void stats_set_park_draining(struct stats *s, bool draining);
bool stats_park_draining(const struct stats *s);

/* A text field of the region (size bytes, NUL-terminated or not) as it may
 * be printed: cut at size, control bytes and '"' as '?'. Returns out. */
char *stats_text(const char *field, size_t size, char *out, size_t outlen);

/* The report of `tlsoffd -s stats`: totals, then one line per worker. */
void stats_print(const struct stats *s, FILE *f);

#endif
