#include "sesscache.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

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

struct sesscache {
    uint32_t magic;
    uint32_t nshards;
    uint32_t nslots;        /* per shard */
    uint32_t pad;
    uint64_t seed;
    int64_t timeout;
    uint64_t shard_bytes;
    /* shards follow: struct shard, uint64_t tags[nslots], struct slot[nslots] */
};

static size_t shard_bytes(uint32_t nslots)
{
    size_t head = (sizeof(struct shard) + (size_t)nslots * sizeof(uint64_t) + 63) & ~(size_t)63;
    return head + (size_t)nslots * sizeof(struct slot);
}

static size_t header_bytes(void)
{
    return (sizeof(struct sesscache) + 63) & ~(size_t)63;
}

static struct shard *shard_at(struct sesscache *c, uint32_t i)
{
    return (struct shard *)((char *)c + header_bytes() + (size_t)i * c->shard_bytes);
}

static uint64_t *tags_of(struct shard *s)
{
    return (uint64_t *)(s + 1);
}

static struct slot *slots_of(struct sesscache *c, struct shard *s)
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

static uint32_t checksum(const struct slot *s)
{
    uint64_t h = hash(s->len, s->id, s->idlen);
    h = hash(h, s->data, s->len);
    return (uint32_t)(h ^ (h >> 32));
}

struct sesscache *sesscache_init(void *region, size_t size, int64_t timeout, uint64_t seed)
{
    struct sesscache *c = region;
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

    memset(c, 0, sizeof *c);
    c->nshards = nshards;
    c->nslots = nslots;
    c->seed = seed;
    c->timeout = timeout;
    c->shard_bytes = shard_bytes(nslots);
    for (uint32_t i = 0; i < nshards; i++) {
        struct shard *s = shard_at(c, i);
        pthread_mutexattr_t a;
        memset(s, 0, c->shard_bytes);
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&s->lock, &a);
        pthread_mutexattr_destroy(&a);
    }
    __atomic_store_n(&c->magic, SC_MAGIC, __ATOMIC_RELEASE);
    return c;
}

struct sesscache *sesscache_open(void *region, size_t size)
{
    struct sesscache *c = region;
    if (size < header_bytes() || __atomic_load_n(&c->magic, __ATOMIC_ACQUIRE) != SC_MAGIC ||
        header_bytes() + (size_t)c->nshards * c->shard_bytes > size)
        return NULL;
    return c;
}

size_t sesscache_capacity(const struct sesscache *c)
{
    return (size_t)c->nshards * c->nslots;
}

/* Locks a shard; clears it if its last holder died inside. */
static void lock(struct sesscache *c, struct shard *s)
{
    if (pthread_mutex_lock(&s->lock) == EOWNERDEAD) {
        memset(tags_of(s), 0, c->nslots * sizeof(uint64_t));
        struct slot *sl = slots_of(c, s);
        for (uint32_t i = 0; i < c->nslots; i++)
            sl[i].tag = 0;
        s->cursor = 0;
        s->repairs++;
        pthread_mutex_consistent(&s->lock);
    }
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

    lock(c, s);
    int64_t at = find(c, s, tag, id, idlen);
    uint32_t i;
    if (at >= 0) {
        i = (uint32_t)at;
    } else {
        i = s->cursor;
        s->cursor = (s->cursor + 1) % c->nslots;
        struct slot *old = &slots_of(c, s)[i];
        if (old->tag && old->expires > now)
            rc = SESSCACHE_STORED_EVICTING;
    }
    struct slot *sl = &slots_of(c, s)[i];
    clear(c, s, i);             /* not findable while half written */
    sl->len = (uint32_t)len;
    sl->idlen = (uint8_t)idlen;
    memcpy(sl->id, id, idlen);
    memcpy(sl->data, data, len);
    sl->expires = now + c->timeout;
    sl->sum = checksum(sl);
    sl->tag = tag;
    tags_of(s)[i] = tag;
    unlock(s);
    return rc;
}

size_t sesscache_lookup(struct sesscache *c, const uint8_t *id, size_t idlen, void *out,
                        size_t outlen, int64_t now)
{
    if (idlen == 0 || idlen > SESSCACHE_ID_MAX)
        return 0;
    uint64_t tag = hash(c->seed, id, idlen);
    struct shard *s = shard_at(c, (uint32_t)(tag % c->nshards));
    size_t n = 0;

    lock(c, s);
    int64_t i = find(c, s, tag, id, idlen);
    if (i >= 0) {
        struct slot *sl = &slots_of(c, s)[i];
        if (sl->expires <= now || sl->len > sesscache_max_data() || checksum(sl) != sl->sum)
            clear(c, s, (uint32_t)i);
        else if (sl->len <= outlen) {
            memcpy(out, sl->data, sl->len);
            n = sl->len;
        }
    }
    unlock(s);
    return n;
}

void sesscache_remove(struct sesscache *c, const uint8_t *id, size_t idlen)
{
    if (idlen == 0 || idlen > SESSCACHE_ID_MAX)
        return;
    uint64_t tag = hash(c->seed, id, idlen);
    struct shard *s = shard_at(c, (uint32_t)(tag % c->nshards));
    lock(c, s);
    int64_t i = find(c, s, tag, id, idlen);
    if (i >= 0)
        clear(c, s, (uint32_t)i);
    unlock(s);
}

uint64_t sesscache_repairs(const struct sesscache *c)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < c->nshards; i++)
        n += shard_at((struct sesscache *)c, i)->repairs;
    return n;
}
