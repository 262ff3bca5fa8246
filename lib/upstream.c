#include "upstream.h"
#include "alloc.h"
#include "clock.h"

#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* ---- the table of upstreams and its shared state ---- */

#define UP_MAGIC 0x55505354u   /* "UPST" */

struct up_shared {
    uint32_t magic;
    uint32_t nservers;      /* in all upstreams */
    uint64_t pad[7];
    /* per upstream: a round-robin counter (its own cache line) */
    /* then struct server_state[nservers] */
};

struct up_rt {
    const struct upstream_conf *conf;
    uint64_t *rr;               /* shared counter */
    struct server_state *st;    /* this upstream's servers' states */
    uint16_t *sched[2];         /* smooth weighted round-robin order: primaries, backups */
    size_t nsched[2];
};

struct upstreams {
    size_t n;
    struct up_rt *up;
};

#define RR_STRIDE 8             /* uint64_t per counter: one cache line each */

size_t upstream_region_size(const struct config *cfg)
{
    size_t nservers = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        nservers += cfg->upstreams[i].nservers;
    return sizeof(struct up_shared) + cfg->nupstreams * RR_STRIDE * sizeof(uint64_t) +
           nservers * sizeof(struct server_state);
}

/*
 * nginx's smooth weighted round-robin, run once over one full cycle: with
 * weights 5,1,1 it gives a a b a c a a rather than a a a a a b c.
 */
static uint16_t *schedule(const struct upstream_conf *up, bool backup, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < up->nservers; i++)
        if (up->servers[i].backup == backup)
            total += (size_t)up->servers[i].weight;
    uint16_t *out = xcalloc(total, sizeof *out);
    long *cur = xcalloc(up->nservers, sizeof *cur);
    for (size_t k = 0; k < total; k++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < up->nservers; i++) {
            if (up->servers[i].backup != backup)
                continue;
            cur[i] += up->servers[i].weight;
            if (best == SIZE_MAX || cur[i] > cur[best])
                best = i;
        }
        cur[best] -= (long)total;
        out[k] = (uint16_t)best;
    }
    free(cur);
    *len = total;
    return out;
}

static struct upstreams *build(void *region, const struct config *cfg)
{
    struct upstreams *u = xcalloc(1, sizeof *u);
    uint64_t *rr = (uint64_t *)((struct up_shared *)region + 1);
    struct server_state *st = (struct server_state *)(rr + cfg->nupstreams * RR_STRIDE);
    u->n = cfg->nupstreams;
    u->up = xcalloc(u->n, sizeof *u->up);
    for (size_t i = 0; i < u->n; i++) {
        u->up[i].conf = &cfg->upstreams[i];
        u->up[i].rr = rr + i * RR_STRIDE;
        u->up[i].st = st;
        for (int b = 0; b < 2; b++)
            u->up[i].sched[b] = schedule(&cfg->upstreams[i], b, &u->up[i].nsched[b]);
        st += cfg->upstreams[i].nservers;
    }
    return u;
}

struct upstreams *upstream_init(void *region, size_t size, const struct config *cfg)
{
    struct up_shared *h = region;
    size_t nservers = 0;
    if (size < upstream_region_size(cfg))
        return NULL;
    memset(region, 0, upstream_region_size(cfg));
    struct upstreams *u = build(region, cfg);
    for (size_t i = 0; i < u->n; i++)
        for (size_t j = 0; j < u->up[i].conf->nservers; j++, nservers++)
            u->up[i].st[j].up = u->up[i].conf->health.start_up ||
                                u->up[i].conf->health.type == HEALTH_NONE;
    h->nservers = (uint32_t)nservers;
    __atomic_store_n(&h->magic, UP_MAGIC, __ATOMIC_RELEASE);
    return u;
}

struct upstreams *upstream_open(void *region, size_t size, const struct config *cfg)
{
    struct up_shared *h = region;
    size_t nservers = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++)
        nservers += cfg->upstreams[i].nservers;
    if (size < upstream_region_size(cfg) ||
        __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != UP_MAGIC || h->nservers != nservers)
        return NULL;
    return build(region, cfg);
}

void upstream_free(struct upstreams *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->up[i].sched[0]);
        free(u->up[i].sched[1]);
    }
    free(u->up);
    free(u);
}

void upstream_carry(struct upstreams *to, struct upstreams *from)
{
    for (size_t i = 0; i < to->n; i++)
        for (size_t k = 0; k < from->n; k++) {
            const struct upstream_conf *a = to->up[i].conf, *b = from->up[k].conf;
            if (strcmp(a->name, b->name) != 0)
                continue;
            for (size_t j = 0; j < a->nservers; j++)
                for (size_t m = 0; m < b->nservers; m++)
                    if (strcmp(a->servers[j].address, b->servers[m].address) == 0) {
                        struct server_state *d = &to->up[i].st[j];
                        *d = from->up[k].st[m];
                        d->active = 0;      /* the old generation's connections */
                    }
        }
}

struct server_state *upstream_state(struct upstreams *u, size_t up, size_t server)
{
    return &u->up[up].st[server];
}

static uint32_t load32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static uint64_t load64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Up now? A server passively taken down with no prober to bring it back
 * is tried again once its hold-off has passed. */
static bool is_up(const struct up_rt *r, size_t i)
{
    const struct server_state *s = &r->st[i];
    if (load32(&s->up))
        return true;
    return r->conf->health.type == HEALTH_NONE &&
           clock_now_ms() >= __atomic_load_n(&s->retry_at, __ATOMIC_RELAXED);
}

static bool eligible(const struct up_rt *r, size_t i, bool backup, const bool *tried)
{
    const struct server_conf *sv = &r->conf->servers[i];
    if (sv->backup != backup || (tried && tried[i]) || !is_up(r, i))
        return false;
    return sv->max_conns == 0 || load64(&r->st[i].active) < (uint64_t)sv->max_conns;
}

/* 64-bit FNV-1a over several byte strings, then a finalizer (murmur3's). */
static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static size_t client_key(const struct sockaddr *sa, const void **p)
{
    if (sa && sa->sa_family == AF_INET) {
        *p = &((const struct sockaddr_in *)sa)->sin_addr;
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6) {
        *p = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return 16;
    }
    *p = "";
    return 0;
}

/*
 * Weighted rendezvous hashing: each eligible server scores
 * -weight / ln(u) with u uniform from hash(client, server); the highest
 * wins. A server going away moves only its own clients.
 */
static int choose_source(const struct up_rt *r, const struct sockaddr *client, bool backup,
                         const bool *tried)
{
    const void *key;
    size_t klen = client_key(client, &key);
    double best = -1;
    int pick = -1;
    for (size_t i = 0; i < r->conf->nservers; i++) {
        if (!eligible(r, i, backup, tried))
            continue;
        const struct server_conf *sv = &r->conf->servers[i];
        uint64_t h = fnv(0xcbf29ce484222325ull, key, klen);
        h = mix(fnv(h, &sv->addr.sa, sv->addr.len));
        double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0;    /* (0, 1) */
        double score = -(double)sv->weight / log(u);
        if (score > best) {
            best = score;
            pick = (int)i;
        }
    }
    return pick;
}

static int choose_leastconn(struct up_rt *r, bool backup, const bool *tried)
{
    size_t n = r->conf->nservers;
    size_t start = (size_t)__atomic_fetch_add(r->rr, 1, __ATOMIC_RELAXED);
    int pick = -1;
    uint64_t pa = 0;
    int pw = 1;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!eligible(r, i, backup, tried))
            continue;
        uint64_t a = load64(&r->st[i].active);
        int w = r->conf->servers[i].weight;
        /* a / w < pa / pw, without division */
        if (pick < 0 || a * (uint64_t)pw < pa * (uint64_t)w) {
            pick = (int)i;
            pa = a;
            pw = w;
        }
    }
    return pick;
}

static int choose_roundrobin(struct up_rt *r, bool backup, const bool *tried)
{
    uint64_t n = __atomic_fetch_add(r->rr, 1, __ATOMIC_RELAXED);
    const uint16_t *sched = r->sched[backup];
    size_t len = r->nsched[backup];
    if (len && eligible(r, sched[n % len], backup, tried))
        return sched[n % len];
    /* The turn of a server that is down (or full, or tried) goes to a
     * pseudo-random place in the schedule, drawn again while it lands on
     * an ineligible server: the share is spread by weight, not handed to
     * the next server in line. A last linear pass settles the rare case. */
    for (uint64_t k = 1; k <= 2 * len; k++) {
        size_t i = sched[mix(n * 0x9e3779b97f4a7c15ull + k) % len];
        if (eligible(r, i, backup, tried))
            return (int)i;
    }
    for (size_t k = 0; k < len; k++)
        if (eligible(r, sched[k], backup, tried))
            return sched[k];
    return -1;
}

int upstream_choose(struct upstreams *u, size_t up, const struct sockaddr *client,
                    const bool *tried)
{
    struct up_rt *r = &u->up[up];
    int pick = -1;
    for (int backup = 0; backup <= 1 && pick < 0; backup++) {
        /* Backups only when no primary is up (tried or full ones count as
         * up: they are not a reason to use a backup). */
        if (backup) {
            bool primary_up = false;
            for (size_t i = 0; i < r->conf->nservers; i++)
                primary_up |= !r->conf->servers[i].backup && is_up(r, i);
            if (primary_up)
                break;
        }
        switch (r->conf->balance) {
        case BALANCE_SOURCE:
            pick = choose_source(r, client, backup, tried);
            break;
        case BALANCE_LEASTCONN:
            pick = choose_leastconn(r, backup, tried);
            break;
        case BALANCE_ROUNDROBIN:
            pick = choose_roundrobin(r, backup, tried);
            break;
        }
    }
    return pick;
}

void upstream_conn_begin(struct upstreams *u, size_t up, size_t server)
{
    struct server_state *s = &u->up[up].st[server];
    __atomic_add_fetch(&s->active, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->total, 1, __ATOMIC_RELAXED);
}

void upstream_conn_end(struct upstreams *u, size_t up, size_t server)
{
    __atomic_sub_fetch(&u->up[up].st[server].active, 1, __ATOMIC_RELAXED);
}

/* Moves up from `from` to `to`; true for the one caller that did it. */
static bool flip(struct server_state *s, uint32_t from, uint32_t to)
{
    uint32_t expect = from;
    if (!__atomic_compare_exchange_n(&s->up, &expect, to, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return false;
    __atomic_store_n(&s->changed, clock_real_ms(), __ATOMIC_RELAXED);
    return true;
}

int upstream_report(struct upstreams *u, size_t up, size_t server, bool ok, bool probe,
                    const char *error)
{
    struct up_rt *r = &u->up[up];
    const struct health_conf *h = &r->conf->health;
    struct server_state *s = &r->st[server];
    if (ok) {
        __atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
        uint32_t passes = __atomic_add_fetch(&s->passes, 1, __ATOMIC_RELAXED);
        /* A connect that works proves a passively downed server (no
         * prober) is back; with a prober, rise good probes do. */
        if ((probe && passes >= (uint32_t)h->rise) || (!probe && h->type == HEALTH_NONE))
            return flip(s, 0, 1) ? 1 : 0;
        return 0;
    }
    __atomic_store_n(&s->passes, 0, __ATOMIC_RELAXED);
    if (!probe)
        __atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
    if (error) {
        /* A torn message is possible if two processes write at once; it is
         * for humans, and always NUL-terminated. */
        snprintf(s->error, sizeof s->error, "%s", error);
        __atomic_store_n(&s->error_at, clock_real_ms(), __ATOMIC_RELAXED);
    }
    uint32_t fails = __atomic_add_fetch(&s->fails, 1, __ATOMIC_RELAXED);
    if (h->type == HEALTH_NONE)
        __atomic_store_n(&s->retry_at, clock_deadline_ms(h->interval), __ATOMIC_RELAXED);
    if (fails >= (uint32_t)h->fall || (!probe && h->type == HEALTH_NONE))
        return flip(s, 1, 0) ? -1 : 0;
    return 0;
}
