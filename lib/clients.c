#include "clients.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

#define LT_MAGIC     0x4c494d31u     /* "LIM1": this layout of the region */
#define MTOKENS      1000            /* a handshake, in the bucket's unit (so a rate of r
                                      * handshakes a second is r units a millisecond) */
#define LOGGED_NEVER INT64_MIN

/* Fields that readers without the lock see are written with these. */
#define LOAD(x)      __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v)  __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* One client. Written under its shard's lock, except logged (a CAS). */
struct entry {
    uint64_t tag;           /* the key's hash; 0: no client */
    uint64_t net[2];        /* the key: the client's network ... */
    uint32_t meta;          /* ... its family | bits << 16 */
    uint32_t gen;           /* one more each time the slot takes a client */
    uint32_t count;         /* connections open */
    uint32_t pad;
    int64_t tokens;         /* in MTOKENS a handshake; below 0: in debt */
    int64_t refilled;       /* ms: tokens are as of then */
    int64_t logged;         /* ms: its last refusal logged */
};

_Static_assert(sizeof(struct entry) == 64, "an entry is a cache line");

struct shard {
    pthread_mutex_t lock;
    uint64_t repairs;
};

/* The region's header. */
struct table {
    uint32_t magic;
    uint32_t nshards;       /* a power of two */
    uint32_t per_shard;     /* entries in each */
    uint32_t pad;
    uint64_t seed;
    int64_t logged;         /* the log budget of clients without an entry */
};

/* This process's handle: its own geometry, key and policy. */
struct clients {
    char *base;
    uint32_t nshards, per_shard;
    uint64_t k0, k1;
    struct clients_policy p;
};

/* A client's key, its hash and where it lives. */
struct key {
    uint64_t w[3];          /* net[0], net[1], meta */
    uint64_t tag;
    uint32_t shard, start;
};

static const char *const verdict_names[CLIENTS_NVERDICTS] = {
    [CLIENTS_OK] = "ok",
    [CLIENTS_DENIED] = "denied",
    [CLIENTS_NOT_ALLOWED] = "not-allowed",
    [CLIENTS_PER_CLIENT] = "per-client",
    [CLIENTS_RATE] = "handshake-rate",
    [CLIENTS_TABLE_FULL] = "table-full",
    [CLIENTS_LOCK_TIMEOUT] = "lock-timeout",
};

const char *clients_verdict_name(enum clients_verdict v)
{
    return (unsigned)v < CLIENTS_NVERDICTS ? verdict_names[v] : "?";
}

/* ---- the region's geometry ---- */

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static size_t shard_bytes(uint32_t per_shard)
{
    return round64(sizeof(struct shard)) + (size_t)per_shard * sizeof(struct entry);
}

/* Shards for nslots entries: as many as CLIENTS_MAX_SHARDS, while each
 * keeps room for four windows. */
static void geometry(size_t nslots, uint32_t *nshards, uint32_t *per_shard)
{
    uint32_t n = CLIENTS_MAX_SHARDS;
    if (nslots < 1)
        nslots = 1;
    if (nslots > CLIENTS_MAX_SLOTS)
        nslots = CLIENTS_MAX_SLOTS;
    while (n > 1 && nslots / n < 4 * CLIENTS_WINDOW)
        n /= 2;
    *nshards = n;
    *per_shard = (uint32_t)((nslots + n - 1) / n);
}

size_t clients_region_size(size_t nslots)
{
    uint32_t n, per;
    geometry(nslots, &n, &per);
    return round64(sizeof(struct table)) + n * shard_bytes(per);
}

static struct table *header(const struct clients *t)
{
    return (struct table *)t->base;
}

static struct shard *shard_at(const struct clients *t, uint32_t i)
{
    return (struct shard *)(t->base + round64(sizeof(struct table)) +
                            (size_t)i * shard_bytes(t->per_shard));
}

static struct entry *entries_of(struct shard *s)
{
    return (struct entry *)((char *)s + round64(sizeof *s));
}

size_t clients_capacity(const struct clients *t)
{
    return (size_t)t->nshards * t->per_shard;
}

static uint32_t window(const struct clients *t)
{
    return t->per_shard < CLIENTS_WINDOW ? t->per_shard : CLIENTS_WINDOW;
}

/* ---- the keyed hash: SipHash-2-4 of the key's 24 bytes ---- */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static void sipround(uint64_t v[4], int n)
{
    while (n--) {
        v[0] += v[1]; v[1] = rotl(v[1], 13); v[1] ^= v[0]; v[0] = rotl(v[0], 32);
        v[2] += v[3]; v[3] = rotl(v[3], 16); v[3] ^= v[2];
        v[0] += v[3]; v[3] = rotl(v[3], 21); v[3] ^= v[0];
        v[2] += v[1]; v[1] = rotl(v[1], 17); v[1] ^= v[2]; v[2] = rotl(v[2], 32);
    }
}

/* Never 0, which marks an empty slot. */
static uint64_t hash(const struct clients *t, const uint64_t w[3])
{
    uint64_t v[4] = { t->k0 ^ 0x736f6d6570736575ull, t->k1 ^ 0x646f72616e646f6dull,
                      t->k0 ^ 0x6c7967656e657261ull, t->k1 ^ 0x7465646279746573ull };
    uint64_t last = (uint64_t)24 << 56;
    for (int i = 0; i < 3; i++) {
        v[3] ^= w[i];
        sipround(v, 2);
        v[0] ^= w[i];
    }
    v[3] ^= last;
    sipround(v, 2);
    v[0] ^= last;
    v[2] ^= 0xff;
    sipround(v, 4);
    uint64_t h = v[0] ^ v[1] ^ v[2] ^ v[3];
    return h ? h : 1;
}

/* The key of peer under the policy; -1 if peer is not an IP address. */
static int make_key(const struct clients *t, const struct sockaddr *peer, struct key *k)
{
    struct addr_cidr c;
    if (addr_cidr_of(peer, t->p.ipv6_prefix, &c) < 0)
        return -1;
    memcpy(k->w, c.net, sizeof c.net);
    k->w[2] = (uint64_t)c.family | (uint64_t)c.bits << 16;
    k->tag = hash(t, k->w);
    k->shard = (uint32_t)(k->tag & (t->nshards - 1));
    k->start = (uint32_t)((k->tag >> 32) % t->per_shard);
    return 0;
}

static uint64_t hash_of_entry(const struct clients *t, const struct entry *e)
{
    uint64_t w[3] = { LOAD(e->net[0]), LOAD(e->net[1]), LOAD(e->meta) };
    return hash(t, w);
}

static bool holds(const struct entry *e, const struct key *k)
{
    return LOAD(e->tag) == k->tag && LOAD(e->net[0]) == k->w[0] &&
           LOAD(e->net[1]) == k->w[1] && LOAD(e->meta) == k->w[2];
}

/* ---- the handle ---- */

static struct clients *handle(void *region, uint32_t nshards, uint32_t per_shard, uint64_t seed)
{
    struct clients *t = xcalloc(1, sizeof *t);
    t->base = region;
    t->nshards = nshards;
    t->per_shard = per_shard;
    t->k0 = seed;
    t->k1 = (seed ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    t->p.ipv6_prefix = CLIENTS_DEFAULT_IPV6_PREFIX;
    return t;
}

static const struct addr_cidr *copy_list(const struct addr_cidr *l, size_t n)
{
    if (!n)
        return NULL;
    struct addr_cidr *c = xcalloc(n, sizeof *c);
    memcpy(c, l, n * sizeof *c);
    return c;
}

void clients_set_policy(struct clients *t, const struct clients_policy *p)
{
    const struct addr_cidr *deny = copy_list(p->deny, p->ndeny);
    const struct addr_cidr *allow = copy_list(p->allow, p->nallow);
    free((void *)t->p.deny);
    free((void *)t->p.allow);
    t->p = *p;
    t->p.deny = deny;
    t->p.allow = allow;
    if (t->p.handshake_burst < t->p.handshake_rate)
        t->p.handshake_burst = t->p.handshake_rate;
    if (t->p.ipv6_prefix == 0)
        t->p.ipv6_prefix = CLIENTS_DEFAULT_IPV6_PREFIX;
    if (t->p.ipv6_prefix > 128)
        t->p.ipv6_prefix = 128;
}

void clients_free(struct clients *t)
{
    if (!t)
        return;
    free((void *)t->p.deny);
    free((void *)t->p.allow);
    free(t);
}

static void init_lock(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

struct clients *clients_init(void *region, size_t size, const struct clients_policy *p,
                             uint64_t seed)
{
    if (size < clients_region_size(1))
        return NULL;
    size_t n = (size - round64(sizeof(struct table))) / sizeof(struct entry);
    if (n > CLIENTS_MAX_SLOTS)
        n = CLIENTS_MAX_SLOTS;
    while (clients_region_size(n) > size)
        n--;
    uint32_t nshards, per_shard;
    geometry(n, &nshards, &per_shard);
    memset(region, 0, clients_region_size(n));
    struct clients *t = handle(region, nshards, per_shard, seed);
    struct table *h = header(t);
    h->nshards = nshards;
    h->per_shard = per_shard;
    h->seed = seed;
    h->logged = LOGGED_NEVER;
    for (uint32_t i = 0; i < nshards; i++)
        init_lock(&shard_at(t, i)->lock);
    __atomic_store_n(&h->magic, LT_MAGIC, __ATOMIC_RELEASE);
    clients_set_policy(t, p);
    return t;
}

struct clients *clients_open(void *region, size_t size)
{
    const struct table *h = region;
    if (size < round64(sizeof *h) || __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != LT_MAGIC)
        return NULL;
    uint32_t n = h->nshards, per = h->per_shard;
    if (n == 0 || n > CLIENTS_MAX_SHARDS || (n & (n - 1)) || per == 0 ||
        (size_t)n * per > CLIENTS_MAX_SLOTS || round64(sizeof *h) + n * shard_bytes(per) > size)
        return NULL;
    return handle(region, n, per, h->seed);
}

/* ---- locks ---- */

/* After a holder died: drops the entries whose key does not match their
 * hash (half written) and keeps the others, counts included. */
static void repair(struct clients *t, struct shard *s)
{
    struct entry *e = entries_of(s);
    for (uint32_t i = 0; i < t->per_shard; i++)
        if (e[i].tag && e[i].tag != hash_of_entry(t, &e[i])) {
            STORE(e[i].tag, 0);
            STORE(e[i].count, 0);
            e[i].gen++;
        }
    __atomic_add_fetch(&s->repairs, 1, __ATOMIC_RELAXED);
}

/* Locks s, waiting at most CLIENTS_LOCK_WAIT_MS, and repairs it if its
 * holder died. Returns 0, or -1 if it is not locked. */
static int lock(struct clients *t, struct shard *s)
{
    int rc = pthread_mutex_trylock(&s->lock);
    if (rc == EBUSY) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += CLIENTS_LOCK_WAIT_MS / 1000;
        ts.tv_nsec += (CLIENTS_LOCK_WAIT_MS % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        rc = pthread_mutex_clocklock(&s->lock, CLOCK_MONOTONIC, &ts);
    }
    if (rc == EOWNERDEAD) {
        repair(t, s);
        pthread_mutex_consistent(&s->lock);
        rc = 0;
    }
    return rc == 0 ? 0 : -1;
}

static void unlock(struct shard *s)
{
    pthread_mutex_unlock(&s->lock);
}

/* ---- the bucket ---- */

static int64_t full_bucket(const struct clients *t)
{
    return (int64_t)t->p.handshake_burst * MTOKENS;
}

/* e's tokens brought up to now (not stored). */
static int64_t tokens_at(const struct clients *t, const struct entry *e, int64_t now)
{
    int64_t full = full_bucket(t), tok = e->tokens, rate = t->p.handshake_rate, dt;
    if (rate == 0 || tok >= full)
        return full;
    if (tok < -full)
        tok = -full;
    if (__builtin_sub_overflow(now, e->refilled, &dt))
        return full;
    if (dt <= 0)
        return tok;
    if (dt > (full - tok) / rate)
        return full;
    return tok + dt * rate;
}

static void refill(const struct clients *t, struct entry *e, int64_t now)
{
    STORE(e->tokens, tokens_at(t, e, now));
    STORE(e->refilled, now);
}

/* No connection open and a full bucket: as good as no entry. */
static bool is_free(const struct clients *t, const struct entry *e, int64_t now)
{
    return !e->tag || (!e->count && tokens_at(t, e, now) >= full_bucket(t));
}

/* ---- finding a client ---- */

/* Makes e the entry of k, with a full bucket. The key is written while the
 * tag is 0, so a death here leaves an empty slot or a whole entry. */
static void claim(const struct clients *t, struct entry *e, const struct key *k, int64_t now)
{
    STORE(e->tag, 0);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    STORE(e->net[0], k->w[0]);
    STORE(e->net[1], k->w[1]);
    STORE(e->meta, (uint32_t)k->w[2]);
    STORE(e->gen, e->gen + 1);
    STORE(e->count, 0);
    STORE(e->tokens, full_bucket(t));
    STORE(e->refilled, now);
    STORE(e->logged, LOGGED_NEVER);
    __atomic_store_n(&e->tag, k->tag, __ATOMIC_RELEASE);
}

/* The index in s of k's entry, made from a free one if it has none; -1 if
 * its window has none free. Caller holds the lock. */
static int64_t find_or_claim(const struct clients *t, struct shard *s, const struct key *k,
                             int64_t now)
{
    struct entry *e = entries_of(s);
    int64_t spare = -1;
    for (uint32_t i = 0; i < window(t); i++) {
        uint32_t at = (k->start + i) % t->per_shard;
        if (holds(&e[at], k))
            return at;
        if (spare < 0 && is_free(t, &e[at], now))
            spare = at;
    }
    if (spare >= 0)
        claim(t, &e[spare], k, now);
    return spare;
}

/* k's entry, read without the lock; NULL if it has none. */
static struct entry *peek(const struct clients *t, const struct key *k)
{
    struct entry *e = entries_of(shard_at(t, k->shard));
    for (uint32_t i = 0; i < window(t); i++) {
        uint32_t at = (k->start + i) % t->per_shard;
        if (holds(&e[at], k))
            return &e[at];
    }
    return NULL;
}

/* The entry tk was issued for, with its shard locked in *sp; NULL (and
 * nothing locked) if tk names none any more. */
static struct entry *ticket_entry(struct clients *t, const struct clients_ticket *tk,
                                  struct shard **sp)
{
    struct clients_ticket k = *tk;
    if (k.slot == 0 || k.slot > clients_capacity(t) || k.tag == 0)
        return NULL;
    struct shard *s = shard_at(t, (k.slot - 1) / t->per_shard);
    struct entry *e = &entries_of(s)[(k.slot - 1) % t->per_shard];
    if (lock(t, s) < 0)
        return NULL;
    if (e->tag != k.tag || e->gen != k.gen) {
        unlock(s);
        return NULL;
    }
    *sp = s;
    return e;
}

/* ---- the verdicts ---- */

static bool listed(const struct addr_cidr *l, size_t n, const struct sockaddr *peer)
{
    for (size_t i = 0; i < n; i++)
        if (addr_cidr_match(&l[i], peer))
            return true;
    return false;
}

/* The limits of a client with an entry; caller holds the lock. */
static enum clients_verdict judge(const struct clients *t, struct entry *e, int64_t now)
{
    refill(t, e, now);
    if (t->p.per_client && e->count >= t->p.per_client)
        return CLIENTS_PER_CLIENT;
    if (t->p.handshake_rate && e->tokens < MTOKENS)
        return CLIENTS_RATE;
    return CLIENTS_OK;
}

enum clients_verdict clients_admit(struct clients *t, const struct sockaddr *peer,
                                   int64_t now_ms, struct clients_ticket *tk)
{
    struct key k;
    memset(tk, 0, sizeof *tk);
    if (listed(t->p.deny, t->p.ndeny, peer))
        return CLIENTS_DENIED;
    if (t->p.nallow && !listed(t->p.allow, t->p.nallow, peer))
        return CLIENTS_NOT_ALLOWED;
    if (make_key(t, peer, &k) < 0)
        return CLIENTS_OK;
    struct shard *s = shard_at(t, k.shard);
    if (lock(t, s) < 0)
        return CLIENTS_LOCK_TIMEOUT;
    int64_t at = find_or_claim(t, s, &k, now_ms);
    enum clients_verdict v = at < 0 ? CLIENTS_TABLE_FULL : judge(t, &entries_of(s)[at], now_ms);
    if (v == CLIENTS_OK) {
        struct entry *e = &entries_of(s)[at];
        tk->gen = e->gen;
        tk->tag = k.tag;
        __atomic_store_n(&tk->slot, k.shard * t->per_shard + (uint32_t)at + 1, __ATOMIC_RELEASE);
        if (e->count != UINT32_MAX)
            __atomic_store_n(&e->count, e->count + 1, __ATOMIC_RELEASE);
    }
    unlock(s);
    return v;
}

void clients_charge_handshake(struct clients *t, const struct clients_ticket *tk,
                              int64_t now_ms)
{
    struct shard *s;
    struct entry *e;
    if (!t->p.handshake_rate || !(e = ticket_entry(t, tk, &s)))
        return;
    /* From what tokens_at() made of the entry, not from the entry again:
     * a process ignoring the lock may have written anything there since. */
    int64_t left = tokens_at(t, e, now_ms) - MTOKENS;
    STORE(e->tokens, left < -full_bucket(t) ? -full_bucket(t) : left);
    STORE(e->refilled, now_ms);
    unlock(s);
}

void clients_release(struct clients *t, struct clients_ticket *tk)
{
    struct shard *s;
    struct entry *e = ticket_entry(t, tk, &s);
    if (e) {
        if (e->count)
            __atomic_store_n(&e->count, e->count - 1, __ATOMIC_RELEASE);
        unlock(s);
    }
    __atomic_store_n(&tk->slot, 0, __ATOMIC_RELEASE);
    tk->gen = 0;
    tk->tag = 0;
}

/* ---- reading ---- */

/* Takes the turn to log if the last was CLIENTS_LOG_EVERY_MS ago. */
static bool log_turn(int64_t *last, int64_t now)
{
    int64_t was = __atomic_load_n(last, __ATOMIC_RELAXED), dt;
    if (was != LOGGED_NEVER && was <= now && !__builtin_sub_overflow(now, was, &dt) &&
        dt < CLIENTS_LOG_EVERY_MS)
        return false;
    return __atomic_compare_exchange_n(last, &was, now, false, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED);
}

bool clients_should_log(struct clients *t, const struct sockaddr *peer, int64_t now_ms)
{
    struct key k;
    struct entry *e = make_key(t, peer, &k) == 0 ? peek(t, &k) : NULL;
    return log_turn(e ? &e->logged : &header(t)->logged, now_ms);
}

/* Puts c into out (*got of n, the most connections first) if it belongs. */
static void rank(struct clients_usage *out, size_t *got, size_t n, const struct clients_usage *c)
{
    size_t i;
    if (*got < n)
        i = (*got)++;
    else if (n && out[n - 1].connections < c->connections)
        i = n - 1;
    else
        return;
    for (; i > 0 && out[i - 1].connections < c->connections; i--)
        out[i] = out[i - 1];
    out[i] = *c;
}

static void describe(const struct entry *e, struct clients_usage *c)
{
    uint64_t net[2] = { LOAD(e->net[0]), LOAD(e->net[1]) };
    uint32_t meta = LOAD(e->meta);
    int64_t tokens = LOAD(e->tokens) / MTOKENS;
    memset(c, 0, sizeof *c);
    c->client.family = (sa_family_t)(meta & 0xffff);
    c->client.bits = (uint8_t)(meta >> 16);
    memcpy(c->client.net, net, sizeof net);
    c->connections = LOAD(e->count);
    c->tokens = tokens > INT32_MAX ? INT32_MAX : tokens < INT32_MIN ? INT32_MIN : (int32_t)tokens;
}

size_t clients_top(const struct clients *t, struct clients_usage *out, size_t n)
{
    size_t got = 0;
    for (uint32_t i = 0; i < t->nshards; i++) {
        const struct entry *e = entries_of(shard_at(t, i));
        for (uint32_t j = 0; j < t->per_shard; j++) {
            struct clients_usage c;
            if (!LOAD(e[j].tag) || !LOAD(e[j].count))
                continue;
            describe(&e[j], &c);
            if (c.connections)
                rank(out, &got, n, &c);
        }
    }
    return got;
}

uint64_t clients_repairs(const struct clients *t)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < t->nshards; i++)
        n += __atomic_load_n(&shard_at(t, i)->repairs, __ATOMIC_RELAXED);
    return n;
}
