#include "sesscache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

#define SC_MAGIC 0x53455343u   /* "SESC" */

struct slot {
    uint64_t tag;           /* hash of the id; 0: empty */
    int64_t expires;
    uint32_t len;
    uint32_t sum;           /* checksum of len, id and data */
    uint8_t idlen;
    uint8_t id[SESSCACHE_ID_MAX];
    uint8_t pad[7];
    uint8_t data[SESSCACHE_SLOT_SIZE - 64];
};

_Static_assert(sizeof(struct slot) == SESSCACHE_SLOT_SIZE, "slot size");

struct shard {
    pthread_mutex_t lock;
    uint32_t cursor;        /* next slot to fill: FIFO */
    uint32_t pad;
    uint64_t repairs;
};

/* The region's header, as sesscache_init wrote it. */
struct header {
    uint32_t magic;
    uint32_t nshards;
    uint32_t nslots;        /* per shard */
    uint32_t pad;
    uint64_t seed;
    int64_t timeout;
    uint64_t shard_bytes;
    /* shards follow: struct shard, uint64_t tags[nslots], struct slot[nslots] */
};

/* This process's handle: the geometry is its own copy, read once. */
struct sesscache {
    char *base;
    uint32_t nshards, nslots;
    uint64_t seed;
    int64_t timeout;
    size_t shard_bytes;
};

#define TIMEOUT_MAX_MS  (100LL * 366 * 86400 * 1000)    /* what a header may say */

/* Fields any process may change at any time are read once, with these. */
#define LOAD(x)      __atomic_load_n(&(x), __ATOMIC_RELAXED)

static size_t shard_bytes(uint32_t nslots)
{
    size_t head = (sizeof(struct shard) + (size_t)nslots * sizeof(uint64_t) + 63) & ~(size_t)63;
    return head + (size_t)nslots * sizeof(struct slot);
}

static size_t header_bytes(void)
{
    return (sizeof(struct header) + 63) & ~(size_t)63;
}

static struct shard *shard_at(const struct sesscache *c, uint32_t i)
{
    return (struct shard *)(c->base + header_bytes() + (size_t)i * c->shard_bytes);
}

static uint64_t *tags_of(struct shard *s)
{
    return (uint64_t *)(s + 1);
}

static struct slot *slots_of(const struct sesscache *c, struct shard *s)
{
    size_t head = (sizeof(struct shard) + (size_t)c->nslots * sizeof(uint64_t) + 63) & ~(size_t)63;
    return (struct slot *)((char *)s + head);
}

size_t sesscache_max_data(void)
{
    return sizeof(((struct slot *)0)->data);
}

/* FNV-1a, 64 bit, seeded. */
static uint64_t hash(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

/* Of an entry's length, id and data (as the caller has them, not as the
 * slot says). */
static uint32_t checksum(uint32_t len, const uint8_t *id, size_t idlen, const void *data)
{
    uint64_t h = hash(len, id, idlen);
    h = hash(h, data, len);
    return (uint32_t)(h ^ (h >> 32));
}

static struct sesscache *handle(void *region, const struct header *h)
{
    struct sesscache *c = xcalloc(1, sizeof *c);
    c->base = region;
    c->nshards = h->nshards;
    c->nslots = h->nslots;
    c->seed = h->seed;
    c->timeout = h->timeout;
    c->shard_bytes = shard_bytes(h->nslots);
    return c;
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

struct sesscache *sesscache_init(void *region, size_t size, int64_t timeout, uint64_t seed)
{
    struct header *h = region;
    size_t per_slot = sizeof(struct slot) + sizeof(uint64_t);
    if (size < header_bytes() + shard_bytes(8))
        return NULL;
    size_t total_slots = (size - header_bytes()) / per_slot;
    uint32_t nshards = SESSCACHE_MAX_SHARDS;
    while (nshards > 1 && total_slots / nshards < 32)
        nshards /= 2;
    uint32_t nslots = (uint32_t)(total_slots / nshards);
    while (nslots > 1 && header_bytes() + nshards * shard_bytes(nslots) > size)
        nslots--;

    memset(h, 0, sizeof *h);
    h->nshards = nshards;
    h->nslots = nslots;
    h->seed = seed;
    h->timeout = timeout;
    h->shard_bytes = shard_bytes(nslots);
    struct sesscache *c = handle(region, h);
    for (uint32_t i = 0; i < nshards; i++) {
        struct shard *s = shard_at(c, i);
        memset(s, 0, c->shard_bytes);
        init_lock(&s->lock);
    }
    __atomic_store_n(&h->magic, SC_MAGIC, __ATOMIC_RELEASE);
    return c;
}

struct sesscache *sesscache_open(void *region, size_t size)
{
    struct header h;
    if (size < header_bytes() ||
        __atomic_load_n(&((struct header *)region)->magic, __ATOMIC_ACQUIRE) != SC_MAGIC)
        return NULL;
    memcpy(&h, region, sizeof h);       /* once: what is checked is what is used */
    if (h.nshards == 0 || h.nshards > SESSCACHE_MAX_SHARDS || h.nslots == 0 ||
        h.shard_bytes != shard_bytes(h.nslots) || h.timeout < 0 || h.timeout > TIMEOUT_MAX_MS ||
        shard_bytes(h.nslots) > (size - header_bytes()) / h.nshards)
        return NULL;
    return handle(region, &h);
}

void sesscache_free(struct sesscache *c)
{
    free(c);
}

size_t sesscache_capacity(const struct sesscache *c)
{
    return (size_t)c->nshards * c->nslots;
}

/* Locks a shard, waiting at most SESSCACHE_LOCK_WAIT_MS, and clears it
 * if its last holder died inside. Returns 0, or -1 if it is not locked. */
static int lock(struct sesscache *c, struct shard *s)
{
    int rc = pthread_mutex_trylock(&s->lock);
    if (rc == EBUSY) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += SESSCACHE_LOCK_WAIT_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        rc = pthread_mutex_clocklock(&s->lock, CLOCK_MONOTONIC, &ts);
    }
    if (rc == EOWNERDEAD) {
        memset(tags_of(s), 0, c->nslots * sizeof(uint64_t));
        struct slot *sl = slots_of(c, s);
        for (uint32_t i = 0; i < c->nslots; i++)
            sl[i].tag = 0;
        s->cursor = 0;
        s->repairs++;
        pthread_mutex_consistent(&s->lock);
        rc = 0;
    }
    return rc == 0 ? 0 : -1;
}

static void unlock(struct shard *s)
{
    pthread_mutex_unlock(&s->lock);
}

/* The slot holding id in shard s, or -1. Caller holds the lock. */
static int64_t find(struct sesscache *c, struct shard *s, uint64_t tag, const uint8_t *id,
                    size_t idlen)
{
    uint64_t *tags = tags_of(s);
    struct slot *sl = slots_of(c, s);
    for (uint32_t i = 0; i < c->nslots; i++)
        if (tags[i] == tag && sl[i].tag == tag && sl[i].idlen == idlen &&
            memcmp(sl[i].id, id, idlen) == 0)
            return i;
    return -1;
}

static void clear(struct sesscache *c, struct shard *s, uint32_t i)
{
    tags_of(s)[i] = 0;
    slots_of(c, s)[i].tag = 0;
}

/* Where a new entry goes in s: the FIFO's next slot (a cursor out of
 * range starts again at 0). Caller holds the lock. */
static uint32_t next_slot(const struct sesscache *c, struct shard *s)
{
    uint32_t i = LOAD(s->cursor);
    if (i >= c->nslots)
        i = 0;
    s->cursor = (i + 1) % c->nslots;
    return i;
}

enum sesscache_store sesscache_store(struct sesscache *c, const uint8_t *id, size_t idlen,
                                     const void *data, size_t len, int64_t now)
{
    if (idlen == 0 || idlen > SESSCACHE_ID_MAX)
        return SESSCACHE_BADID;
    if (len == 0 || len > sesscache_max_data())
        return SESSCACHE_OVERSIZE;
    uint64_t tag = hash(c->seed, id, idlen);
    struct shard *s = shard_at(c, (uint32_t)(tag % c->nshards));
    enum sesscache_store rc = SESSCACHE_STORED;

    if (lock(c, s) < 0)
        return SESSCACHE_BADID;
    int64_t at = find(c, s, tag, id, idlen);
    uint32_t i;
    if (at >= 0) {
        i = (uint32_t)at;
    } else {
        i = next_slot(c, s);
        struct slot *old = &slots_of(c, s)[i];
        if (LOAD(old->tag) && LOAD(old->expires) > now)
            rc = SESSCACHE_STORED_EVICTING;
    }
    struct slot *sl = &slots_of(c, s)[i];
    clear(c, s, i);             /* not findable while half written */
    sl->len = (uint32_t)len;
    sl->idlen = (uint8_t)idlen;
    memcpy(sl->id, id, idlen);
    memcpy(sl->data, data, len);
    sl->expires = now + c->timeout;
    sl->sum = checksum((uint32_t)len, id, idlen, data);
    sl->tag = tag;
    tags_of(s)[i] = tag;
    unlock(s);
    return rc;
}

/* Copies slot i of s (found for id) into out; its length, or 0 if it is
 * expired or damaged (then cleared) or larger than outlen. The slot's
 * fields are read once and the checksum is of the copy, so a process
 * writing the slot meanwhile can only make it a miss. */
static size_t copy_out(struct sesscache *c, struct shard *s, uint32_t i, const uint8_t *id,
                       size_t idlen, void *out, size_t outlen, int64_t now)
{
    struct slot *sl = &slots_of(c, s)[i];
    uint32_t len = LOAD(sl->len), sum = LOAD(sl->sum);
    if (LOAD(sl->expires) <= now || len == 0 || len > sesscache_max_data()) {
        clear(c, s, i);
        return 0;
    }
    if (len > outlen)
        return 0;
    memcpy(out, sl->data, len);
    if (checksum(len, id, idlen, out) != sum) {
        clear(c, s, i);
        return 0;
    }
    return len;
}

size_t sesscache_lookup(struct sesscache *c, const uint8_t *id, size_t idlen, void *out,
                        size_t outlen, int64_t now)
{
    if (idlen == 0 || idlen > SESSCACHE_ID_MAX)
        return 0;
    uint64_t tag = hash(c->seed, id, idlen);
    struct shard *s = shard_at(c, (uint32_t)(tag % c->nshards));
    size_t n = 0;

    if (lock(c, s) < 0)
        return 0;
    int64_t i = find(c, s, tag, id, idlen);
    if (i >= 0)
        n = copy_out(c, s, (uint32_t)i, id, idlen, out, outlen, now);
    unlock(s);
    return n;
}

void sesscache_remove(struct sesscache *c, const uint8_t *id, size_t idlen)
{
    if (idlen == 0 || idlen > SESSCACHE_ID_MAX)
        return;
    uint64_t tag = hash(c->seed, id, idlen);
    struct shard *s = shard_at(c, (uint32_t)(tag % c->nshards));
    if (lock(c, s) < 0)
        return;
    int64_t i = find(c, s, tag, id, idlen);
    if (i >= 0)
        clear(c, s, (uint32_t)i);
    unlock(s);
}

uint64_t sesscache_repairs(const struct sesscache *c)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < c->nshards; i++)
        n += LOAD(shard_at(c, i)->repairs);
    return n;
}
