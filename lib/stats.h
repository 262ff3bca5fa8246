/*
 * stats — counters per worker in the shared segment, and their report.
 *
 * Each worker slot is written only by the worker that owns it (relaxed
 * atomic adds), so counting takes no lock; a replacement worker carries on
 * with its slot's numbers. Totals are summed when read.
 */
#ifndef TLSOFFD_STATS_H
#define TLSOFFD_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
    ST_COUNT
};

/* What a worker is doing (the scoreboard). */
enum worker_state { WS_NONE, WS_IDLE, WS_HANDSHAKE, WS_RELAY, WS_EXITING };

struct stats_worker {
    uint64_t v[ST_COUNT];
    int32_t pid;
    uint32_t state;         /* enum worker_state */
    char client[48];        /* the client being served, or "" */
} __attribute__((aligned(64)));

/* Sets what the worker is doing (and for whom). */
void stats_set_state(struct stats_worker *w, enum worker_state st, const char *client);
enum worker_state stats_state(const struct stats_worker *w);
const char *stats_state_name(enum worker_state st);
static inline void stats_add(struct stats_worker *w, enum stat_id st, uint64_t n)
{
    if (w)
        __atomic_add_fetch(&w->v[st], n, __ATOMIC_RELAXED);
}

struct stats;

size_t stats_region_size(unsigned nworkers);
struct stats *stats_init(void *region, unsigned nworkers);
struct stats *stats_open(void *region, size_t size);
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

/* The report of `tlsoffd -s stats`: totals, then one line per worker. */
void stats_print(const struct stats *s, FILE *f);

#endif
