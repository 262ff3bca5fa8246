/*
 * fuzz_sesscache — the shared session cache as every worker sees it: a
 * region that any of them may have written anything into.
 *
 * Each input is a program run on a fresh region (sesscache_init): patches
 * of the region's bytes (a worker gone wrong), stores, lookups, removals,
 * the clock moving on, a shard's lock left by a process that died holding
 * it (the kernel's FUTEX_OWNER_DIED, so the repair runs), and the region
 * opened again by sesscache_open (another process's handle). The region is
 * allocated to its exact size, so ASan sees any access outside it.
 *
 * The shards' mutexes are not patched: a garbage pthread_mutex_t is
 * glibc's to misread (one of the priority-protect kind would even have the
 * fuzzer change its own scheduling priority). To find them the harness
 * knows the layout of lib/sesscache.c (a 64-byte header, then shards that
 * each begin with their mutex) and checks it at every input.
 *
 * Checked: no crash or out-of-bounds access, and while nothing was
 * patched, a lookup that hits returns the bytes last stored for that id,
 * unexpired and not removed since.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sesscache.h"

#define HEADER_BYTES 64         /* lib/sesscache.c: header_bytes() */
#define OPS_MAX      64
#define MODEL_MAX    64
/* One shard of 8 slots, or two of 32. */
static const size_t sizes[] = { 64 + 128 + 8 * SESSCACHE_SLOT_SIZE,
                                64 + 2 * (320 + 32 * SESSCACHE_SLOT_SIZE) };

struct run {
    uint8_t *region;
    size_t size;
    struct sesscache *init, *opened;
    uint32_t nshards;
    size_t shard_bytes;
    int64_t now, timeout;
    bool patched;
    size_t nmodel;
    struct entry {
        uint8_t id[SESSCACHE_ID_MAX];
        size_t idlen, len;
        uint8_t data[SESSCACHE_SLOT_SIZE];
        int64_t expires;        /* 0: removed */
    } model[MODEL_MAX];
};

static struct run run;

/* The shards' geometry, from the header as sesscache_init wrote it; each
 * shard must begin with a mutex as init_lock makes it. */
static void find_shards(struct run *r)
{
    pthread_mutex_t ref;
    pthread_mutexattr_t a;
    uint64_t shard_bytes;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&ref, &a);
    pthread_mutexattr_destroy(&a);
    memcpy(&r->nshards, r->region + 4, sizeof r->nshards);
    memcpy(&shard_bytes, r->region + 32, sizeof shard_bytes);
    r->shard_bytes = shard_bytes;
    FUZZ_ASSERT(r->nshards >= 1 && r->nshards <= SESSCACHE_MAX_SHARDS &&
                HEADER_BYTES + r->nshards * r->shard_bytes <= r->size);
    for (uint32_t i = 0; i < r->nshards; i++)
        FUZZ_ASSERT(memcmp(r->region + HEADER_BYTES + i * r->shard_bytes, &ref, sizeof ref) == 0
                    && "the harness knows lib/sesscache.c's layout");
}

static bool in_mutex(const struct run *r, size_t off)
{
    if (off < HEADER_BYTES)
        return false;
    off -= HEADER_BYTES;
    return off / r->shard_bytes < r->nshards && off % r->shard_bytes < sizeof(pthread_mutex_t);
}

static void op_patch(struct run *r, struct fuzz_in *in)
{
    size_t off = ((size_t)fuzz_byte(in) << 16 | fuzz_u16(in)) % r->size;
    size_t n = fuzz_byte(in) % 64;
    for (size_t i = 0; i < n && off + i < r->size && in->left; i++) {
        uint8_t b = (uint8_t)fuzz_byte(in);
        if (!in_mutex(r, off + i)) {
            r->patched |= r->region[off + i] != b;
            r->region[off + i] = b;
        }
    }
}

static struct entry *model_of(struct run *r, const uint8_t *id, size_t idlen)
{
    for (size_t i = 0; i < r->nmodel; i++)
        if (r->model[i].idlen == idlen && memcmp(r->model[i].id, id, idlen) == 0)
            return &r->model[i];
    return NULL;
}

static size_t take_id(struct fuzz_in *in, uint8_t id[SESSCACHE_ID_MAX + 1])
{
    size_t idlen = fuzz_byte(in) % (SESSCACHE_ID_MAX + 2);    /* 0 and 33: refused */
    fuzz_bytes(in, id, idlen);
    return idlen;
}

static struct sesscache *handle(struct run *r, unsigned op)
{
    return op & 0x80 && r->opened ? r->opened : r->init;
}

static void op_store(struct run *r, struct fuzz_in *in, unsigned op)
{
    uint8_t id[SESSCACHE_ID_MAX + 1];
    size_t idlen = take_id(in, id);
    size_t len = fuzz_u16(in) % (sesscache_max_data() + 2);
    uint8_t *data = malloc(len ? len : 1);
    fuzz_bytes(in, data, len);
    enum sesscache_store rc = sesscache_store(handle(r, op), id, idlen, data, len, r->now);
    FUZZ_ASSERT(rc <= SESSCACHE_BADID);
    struct entry *e = model_of(r, id, idlen);
    if ((rc == SESSCACHE_STORED || rc == SESSCACHE_STORED_EVICTING) && !e &&
        r->nmodel < MODEL_MAX)
        e = &r->model[r->nmodel++];
    if (e && (rc == SESSCACHE_STORED || rc == SESSCACHE_STORED_EVICTING)) {
        memcpy(e->id, id, idlen);
        e->idlen = idlen;
        memcpy(e->data, data, len);
        e->len = len;
        e->expires = r->now + r->timeout;
    }
    free(data);
}

static void op_lookup(struct run *r, struct fuzz_in *in, unsigned op)
{
    uint8_t id[SESSCACHE_ID_MAX + 1];
    size_t idlen = take_id(in, id);
    size_t outlen = op & 0x40 ? fuzz_u16(in) % SESSCACHE_SLOT_SIZE : sesscache_max_data();
    uint8_t *out = malloc(outlen ? outlen : 1);
    size_t n = sesscache_lookup(handle(r, op), id, idlen, out, outlen, r->now);
    FUZZ_ASSERT(n <= outlen && n <= sesscache_max_data());
    if (n && !r->patched) {
        const struct entry *e = model_of(r, id, idlen);
        FUZZ_ASSERT(e && e->expires > r->now);
        FUZZ_ASSERT(n == e->len && memcmp(out, e->data, n) == 0);
    }
    free(out);
}

static void op_remove(struct run *r, struct fuzz_in *in, unsigned op)
{
    uint8_t id[SESSCACHE_ID_MAX + 1];
    size_t idlen = take_id(in, id);
    sesscache_remove(handle(r, op), id, idlen);
    struct entry *e = model_of(r, id, idlen);
    if (e)
        e->expires = 0;
}

/* A process died holding shard i's lock: the kernel marks the lock word. */
static void op_dead(struct run *r, struct fuzz_in *in)
{
    uint32_t i = fuzz_byte(in) % r->nshards;
    pthread_mutex_t *m = (pthread_mutex_t *)(r->region + HEADER_BYTES + i * r->shard_bytes);
    m->__data.__lock = FUTEX_OWNER_DIED;
}

static void op_open(struct run *r)
{
    sesscache_free(r->opened);
    r->opened = sesscache_open(r->region, r->size);
    if (r->opened && !r->patched)
        FUZZ_ASSERT(sesscache_capacity(r->opened) == sesscache_capacity(r->init));
}

static void step(struct run *r, struct fuzz_in *in)
{
    unsigned op = fuzz_byte(in);
    switch (op & 7) {
    case 0: op_patch(r, in); break;
    case 1: case 5: op_store(r, in, op); break;
    case 2: case 6: op_lookup(r, in, op); break;
    case 3: op_remove(r, in, op); break;
    case 4: r->now += (int64_t)fuzz_u16(in) * 16; break;
    case 7: if (op & 8) op_dead(r, in); else op_open(r); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = { data, size };
    struct run *r = &run;
    unsigned first = fuzz_byte(&in);
    memset(r, 0, offsetof(struct run, model));
    r->size = sizes[first & 1];
    r->region = malloc(r->size);
    r->timeout = 1000 * (int64_t)(1 + (first >> 1));
    r->now = 1700000000000;
    r->init = sesscache_init(r->region, r->size, r->timeout, first);
    FUZZ_ASSERT(r->init);
    find_shards(r);
    for (int ops = 0; ops < OPS_MAX && in.left; ops++)
        step(r, &in);
    (void)sesscache_repairs(r->init);
    if (r->opened)
        (void)sesscache_repairs(r->opened);
    sesscache_free(r->opened);
    sesscache_free(r->init);
    free(r->region);
    return 0;
}
