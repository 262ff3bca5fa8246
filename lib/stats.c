#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"

#define ST_MAGIC 0x53544154u   /* "STAT" */

/* The region, as every process sees it. */
struct region {
    uint32_t magic;
    uint32_t nworkers;      /* as made (for a reader's eyes only: stats_open counts
                             * the slots that fit in the region's size) */
    uint32_t pool_max;      /* the master's, for the report */
    uint32_t parked;        /* the park process's: connections it holds */
    uint32_t park_draining; /* ... and whether it hands everything back */
    uint8_t pad[44];
    struct stats_worker w[];
};

/* This process's handle: the region and its geometry, its own copy. */
struct stats {
    struct region *r;
    unsigned nworkers;
};

_Static_assert(sizeof(struct stats_worker) % 64 == 0, "one worker per cache line group");

static const char *const names[ST_COUNT] = {
    [ST_CONNECTIONS] = "connections",
    [ST_HANDSHAKE_FAILED] = "handshakes_failed",
    [ST_FULL] = "full_handshakes",
    [ST_RESUMED_ID] = "resumed_id",
    [ST_RESUMED_TICKET12] = "resumed_ticket_tls12",
    [ST_RESUMED_TICKET13] = "resumed_ticket_tls13",
    [ST_CACHE_HIT] = "cache_hits",
    [ST_CACHE_MISS] = "cache_misses",
    [ST_CACHE_STORE] = "cache_stores",
    [ST_CACHE_EVICT] = "cache_evictions",
    [ST_CACHE_OVERSIZE] = "cache_oversize",
    [ST_TICKET_FAIL] = "ticket_decrypt_failures",
    [ST_BYTES_IN] = "bytes_in",
    [ST_BYTES_OUT] = "bytes_out",
    [ST_SHED] = "shed",
    [ST_REFUSED_DENIED] = "refused_denied",
    [ST_REFUSED_NOT_ALLOWED] = "refused_not_allowed",
    [ST_REFUSED_PER_CLIENT] = "refused_per_client",
    [ST_REFUSED_RATE] = "refused_handshake_rate",
    [ST_UNCOUNTED] = "clients_uncounted",
    [ST_PARKED] = "connections_parked",
    [ST_UNPARKED] = "connections_unparked",
};

static const char *const state_names[] = { "-", "idle", "handshake", "relaying", "exiting" };

void stats_set_state(struct stats_worker *w, enum worker_state st, const char *client)
{
    if (!w)
        return;
    if (client)
        snprintf(w->client, sizeof w->client, "%s", client);
    else
        w->client[0] = '\0';
    __atomic_store_n(&w->delivered_at, clock_now_ms(), __ATOMIC_RELAXED);
    __atomic_store_n(&w->state, (uint32_t)st, __ATOMIC_RELEASE);
}

enum worker_state stats_state(const struct stats_worker *w)
{
    uint32_t st = w ? __atomic_load_n(&w->state, __ATOMIC_ACQUIRE) : WS_NONE;
    return st <= WS_EXITING ? (enum worker_state)st : WS_NONE;
}

const char *stats_state_name(enum worker_state st)
{
    return (unsigned)st < sizeof state_names / sizeof state_names[0] ? state_names[st] : "?";
}

size_t stats_region_size(unsigned nworkers)
{
    return sizeof(struct region) + (size_t)nworkers * sizeof(struct stats_worker);
}

static struct stats *handle(void *region, unsigned nworkers)
{
    struct stats *s = xcalloc(1, sizeof *s);
    s->r = region;
    s->nworkers = nworkers;
    return s;
}

struct stats *stats_init(void *region, unsigned nworkers)
{
    struct region *r = region;
    memset(r, 0, stats_region_size(nworkers));
    r->nworkers = nworkers;
    __atomic_store_n(&r->magic, ST_MAGIC, __ATOMIC_RELEASE);
    return handle(region, nworkers);
}

struct stats *stats_open(void *region, size_t size)
{
    struct region *r = region;
    if (size < sizeof *r + sizeof r->w[0] ||
        __atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) != ST_MAGIC)
        return NULL;
    size_t n = (size - sizeof *r) / sizeof r->w[0];
    return handle(region, n < UINT32_MAX ? (unsigned)n : UINT32_MAX);
}

void stats_free(struct stats *s)
{
    free(s);
}

unsigned stats_nworkers(const struct stats *s)
{
    return s->nworkers;
}

struct stats_worker *stats_worker(struct stats *s, unsigned id)
{
    return s && id < s->nworkers ? &s->r->w[id] : NULL;
}

uint64_t stats_total(const struct stats *s, enum stat_id st)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < s->nworkers; i++)
        n += __atomic_load_n(&s->r->w[i].v[st], __ATOMIC_RELAXED);
    return n;
}

const char *stats_name(enum stat_id st)
{
    return names[st];
}

void stats_pool(const struct stats *s, struct stats_pool *p)
{
    memset(p, 0, sizeof *p);
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (!__atomic_load_n(&s->r->w[i].pid, __ATOMIC_RELAXED))
            continue;
        switch (stats_state(&s->r->w[i])) {
        case WS_IDLE: p->idle++; break;
        case WS_HANDSHAKE: case WS_RELAY: p->busy++; break;
        case WS_EXITING: p->exiting++; break;
        default: p->starting++; break;
        }
    }
}

void stats_set_pool_max(struct stats *s, unsigned max)
{
    __atomic_store_n(&s->r->pool_max, max, __ATOMIC_RELAXED);
}

void stats_set_parked(struct stats *s, unsigned n)
{
    if (s)
        __atomic_store_n(&s->r->parked, n, __ATOMIC_RELAXED);
}

void stats_set_park_draining(struct stats *s, bool draining)
{
    if (s)
        __atomic_store_n(&s->r->park_draining, draining, __ATOMIC_RELEASE);
}

bool stats_park_draining(const struct stats *s)
{
    return s && __atomic_load_n(&s->r->park_draining, __ATOMIC_ACQUIRE);
}

char *stats_text(const char *field, size_t size, char *out, size_t outlen)
{
    size_t n = 0;
    for (; n < size && n + 1 < outlen && field[n]; n++) {
        unsigned char c = (unsigned char)field[n];
        out[n] = c < 0x20 || c >= 0x7f || c == '"' ? '?' : (char)c;
    }
    if (outlen)
        out[n] = '\0';
    return out;
}

/* One worker's line; its client as text that cannot run past the field. */
static void print_worker(const struct stats_worker *w, unsigned i, FILE *f)
{
    char client[sizeof w->client + 1];
    int32_t pid = __atomic_load_n(&w->pid, __ATOMIC_RELAXED);
    if (!pid)
        return;
    stats_text(w->client, sizeof w->client, client, sizeof client);
    fprintf(f, "worker=%u pid=%d state=%s client=%s", i, (int)pid,
            stats_state_name(stats_state(w)), client[0] ? client : "-");
    for (int st = 0; st < ST_COUNT; st++)
        fprintf(f, " %s=%llu", names[st],
                (unsigned long long)__atomic_load_n(&w->v[st], __ATOMIC_RELAXED));
    fputc('\n', f);
}

void stats_print(const struct stats *s, FILE *f)
{
    struct stats_pool p;
    stats_pool(s, &p);
    fprintf(f, "pool busy=%u idle=%u starting=%u exiting=%u max=%u parked=%u\n", p.busy,
            p.idle, p.starting, p.exiting, __atomic_load_n(&s->r->pool_max, __ATOMIC_RELAXED),
            __atomic_load_n(&s->r->parked, __ATOMIC_RELAXED));
    fprintf(f, "total");
    for (int st = 0; st < ST_COUNT; st++)
        fprintf(f, " %s=%llu", names[st], (unsigned long long)stats_total(s, st));
    fputc('\n', f);
    for (unsigned i = 0; i < s->nworkers; i++)
        print_worker(&s->r->w[i], i, f);
}
