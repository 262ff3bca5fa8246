#include "unit.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "sesscache.h"

static void *region;
static size_t region_size;

static void *shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    region_size = size;
    return p;
}

static void id_of(uint8_t id[32], unsigned n)
{
    memset(id, 0x5a, 32);
    memcpy(id, &n, sizeof n);
}

START_TEST(store_and_lookup)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 1000, 7);
    uint8_t id[32], out[4096];
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_gt(sesscache_capacity(c), 400);
    id_of(id, 1);
    ck_assert_int_eq(sesscache_store(c, id, 32, "session-one", 11, 0), SESSCACHE_STORED);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 10), 11);
    ck_assert(memcmp(out, "session-one", 11) == 0);
    /* Replacing keeps one entry. */
    ck_assert_int_eq(sesscache_store(c, id, 32, "session-1b", 10, 20), SESSCACHE_STORED);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 30), 10);
    /* Unknown id, short id, different length. */
    id_of(id, 2);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 30), 0);
    id_of(id, 1);
    ck_assert_uint_eq(sesscache_lookup(c, id, 31, out, sizeof out, 30), 0);
    /* Visible from the other process too (the map is shared). */
    pid_t pid = fork();
    if (pid == 0)
        _exit(sesscache_lookup(sesscache_open(region, region_size), id, 32, out, sizeof out,
                               30) == 10 ? 0 : 1);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    sesscache_remove(c, id, 32);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 30), 0);
    sesscache_free(c);
}
END_TEST

START_TEST(expiry)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 1000, 7);
    uint8_t id[32], out[64];
    id_of(id, 9);
    sesscache_store(c, id, 32, "x", 1, 5000);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 5999), 1);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 6000), 0);   /* never served */
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 5500), 0);   /* and gone */
    sesscache_free(c);
}
END_TEST

START_TEST(eviction_at_capacity)
{
    /* A small cache: fill it twice over; the oldest go first, the newest
     * stay, and evictions are reported. */
    region = shared(256 << 10);
    struct sesscache *c = sesscache_init(region, region_size, 1000000, 3);
    size_t cap = sesscache_capacity(c);
    uint8_t id[32], out[64];
    unsigned evicted = 0;
    for (unsigned i = 0; i < 2 * cap; i++) {
        id_of(id, i);
        enum sesscache_store r = sesscache_store(c, id, 32, &i, sizeof i, i);
        ck_assert(r == SESSCACHE_STORED || r == SESSCACHE_STORED_EVICTING);
        evicted += r == SESSCACHE_STORED_EVICTING;
    }
    ck_assert_uint_ge(evicted, cap / 2);
    unsigned old_found = 0, new_found = 0;
    for (unsigned i = 0; i < cap / 4; i++) {
        id_of(id, i);
        old_found += sesscache_lookup(c, id, 32, out, sizeof out, 2 * cap) > 0;
        id_of(id, 2 * cap - 1 - i);
        new_found += sesscache_lookup(c, id, 32, out, sizeof out, 2 * cap) > 0;
    }
    ck_assert_uint_eq(old_found, 0);
    ck_assert_uint_eq(new_found, cap / 4);
    sesscache_free(c);
}
END_TEST

START_TEST(oversize_and_bad_ids)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 1000, 7);
    static uint8_t big[8192];
    uint8_t id[32];
    id_of(id, 1);
    ck_assert_int_eq(sesscache_store(c, id, 32, big, sesscache_max_data() + 1, 0),
                     SESSCACHE_OVERSIZE);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, big, sizeof big, 0), 0);
    ck_assert_int_eq(sesscache_store(c, id, 32, big, sesscache_max_data(), 0), SESSCACHE_STORED);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, big, sizeof big, 0), sesscache_max_data());
    ck_assert_int_eq(sesscache_store(c, id, 0, "x", 1, 0), SESSCACHE_BADID);
    ck_assert_int_eq(sesscache_store(c, id, 33, "x", 1, 0), SESSCACHE_BADID);
    /* Room for a session with a client certificate chain (about 1 KB). */
    ck_assert_uint_ge(sesscache_max_data(), 1900);
    ck_assert_ptr_null(sesscache_init(region, 1000, 1000, 7));    /* too small */
    sesscache_free(c);
}
END_TEST

START_TEST(damaged_entry_not_served)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 1000, 7);
    uint8_t id[32], out[64];
    id_of(id, 4);
    sesscache_store(c, id, 32, "abcdefgh", 8, 0);
    /* Flip a byte of the stored data behind the cache's back. */
    uint8_t *p = memmem(region, region_size, "abcdefgh", 8);
    ck_assert_ptr_nonnull(p);
    p[3] ^= 1;
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 1), 0);
    sesscache_free(c);
}
END_TEST

START_TEST(lock_holder_killed)
{
    /* A child takes a shard lock and dies holding it: the cache must stay
     * usable (EOWNERDEAD clears that shard). The shard mutex is the first
     * thing after the 64-byte header. */
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 100000, 0);
    uint8_t id[32], out[64];
    pthread_mutex_t *first = (pthread_mutex_t *)((char *)region + 64);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(first);
        raise(SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFSIGNALED(status));
    /* Every id lands in some shard; all must work, including shard 0. */
    for (unsigned i = 0; i < 500; i++) {
        id_of(id, i);
        ck_assert_int_ne(sesscache_store(c, id, 32, &i, sizeof i, 1), SESSCACHE_BADID);
        ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 2), sizeof i);
    }
    ck_assert_uint_eq(sesscache_repairs(c), 1);
    sesscache_free(c);
}
END_TEST

START_TEST(multi_process_stress)
{
    /* Four processes store and read for about two seconds; every entry
     * read back must be exactly what was stored under that id. */
    region = shared(2 << 20);
    sesscache_free(sesscache_init(region, region_size, 1000000, 11));
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        if ((kids[k] = fork()) == 0) {
            struct sesscache *c = sesscache_open(region, region_size);
            uint8_t id[32], data[600], out[2048];
            int64_t t0 = 0;
            unsigned bad = 0, reads = 0;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            t0 = ts.tv_sec;
            for (unsigned n = 0;; n++) {
                unsigned key = (n * 7919u + (unsigned)k) % 3000;
                id_of(id, key);
                size_t len = 50 + key % 500;
                memset(data, (int)(key & 0xff), len);
                memcpy(data, &key, sizeof key);
                if (n % 3 == 0) {
                    sesscache_store(c, id, 32, data, len, 1);
                } else {
                    size_t got = sesscache_lookup(c, id, 32, out, sizeof out, 1);
                    reads += got > 0;
                    if (got && (got != len || memcmp(out, data, len) != 0))
                        bad++;
                }
                if ((n & 1023) == 0) {
                    clock_gettime(CLOCK_MONOTONIC, &ts);
                    if (ts.tv_sec - t0 >= 2)
                        break;
                }
            }
            _exit(bad == 0 && reads > 100 ? 0 : 1);
        }
    }
    for (int k = 0; k < 4; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d found damage", k);
    }
}
END_TEST

/* The region's header, as sesscache.c lays it out (struct header): the
 * number of shards at 4, slots per shard at 8, the timeout at 24, the
 * bytes of a shard at 32; shards start at 64, each with its lock and then
 * its FIFO cursor. */
#define NSHARDS_AT      4
#define NSLOTS_AT       8
#define TIMEOUT_AT      24
#define SHARD_BYTES_AT  32
#define SHARDS_AT       64
#define CURSOR_AT       sizeof(pthread_mutex_t)

static uint32_t get32(size_t off)
{
    uint32_t v;
    memcpy(&v, (char *)region + off, sizeof v);
    return v;
}

static void put32(size_t off, uint32_t v)
{
    memcpy((char *)region + off, &v, sizeof v);
}

static void put64(size_t off, uint64_t v)
{
    memcpy((char *)region + off, &v, sizeof v);
}

/* Stores and reads back n entries; all must be there. */
static void round_trips(struct sesscache *c, unsigned n)
{
    uint8_t id[32], out[64];
    for (unsigned i = 0; i < n; i++) {
        id_of(id, i);
        ck_assert_int_ne(sesscache_store(c, id, 32, &i, sizeof i, 1), SESSCACHE_BADID);
        ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 2), sizeof i);
        ck_assert(memcmp(out, &i, sizeof i) == 0);
    }
}

/* A worker that scribbles the header changes nothing a handle knows. */
START_TEST(garbage_header)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 100000, 7);
    size_t cap = sesscache_capacity(c);
    put32(NSHARDS_AT, 0);
    put32(NSLOTS_AT, UINT32_MAX);
    put64(TIMEOUT_AT, (uint64_t)INT64_MAX);
    put64(SHARD_BYTES_AT, 1ull << 50);
    ck_assert_uint_eq(sesscache_capacity(c), cap);
    round_trips(c, 300);
    ck_assert_uint_eq(sesscache_repairs(c), 0);
    sesscache_free(c);
}
END_TEST

/* A header that does not describe a cache that fits does not open. */
START_TEST(open_checks_header)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 100000, 7);
    uint32_t nshards = get32(NSHARDS_AT), nslots = get32(NSLOTS_AT);
    uint64_t sb;
    memcpy(&sb, (char *)region + SHARD_BYTES_AT, sizeof sb);
    struct sesscache *d = sesscache_open(region, region_size);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(sesscache_capacity(d), sesscache_capacity(c));
    sesscache_free(d);
    ck_assert_ptr_null(sesscache_open(region, SHARDS_AT + sb));     /* too small for them */
    struct { size_t at; uint64_t v; int wide; } bad[] = {
        { NSHARDS_AT, 0, 0 }, { NSHARDS_AT, SESSCACHE_MAX_SHARDS + 1, 0 },
        { NSHARDS_AT, UINT32_MAX, 0 }, { NSLOTS_AT, 0, 0 }, { NSLOTS_AT, UINT32_MAX, 0 },
        { NSLOTS_AT, nslots + 1, 0 }, { SHARD_BYTES_AT, sb + 64, 1 },
        { TIMEOUT_AT, (uint64_t)-1, 1 }, { TIMEOUT_AT, (uint64_t)INT64_MAX, 1 },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (bad[k].wide)
            put64(bad[k].at, bad[k].v);
        else
            put32(bad[k].at, (uint32_t)bad[k].v);
        ck_assert_msg(!sesscache_open(region, region_size), "case %zu opened", k);
        put32(NSHARDS_AT, nshards);
        put32(NSLOTS_AT, nslots);
        put64(SHARD_BYTES_AT, sb);
        put64(TIMEOUT_AT, 100000);
    }
    d = sesscache_open(region, region_size);
    ck_assert_ptr_nonnull(d);
    sesscache_free(d);
    sesscache_free(c);
}
END_TEST

/* A FIFO cursor out of range is taken as 0, not as a slot. */
START_TEST(garbage_cursor)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 100000, 7);
    uint32_t nshards = get32(NSHARDS_AT);
    uint64_t sb;
    memcpy(&sb, (char *)region + SHARD_BYTES_AT, sizeof sb);
    uint32_t bad[] = { get32(NSLOTS_AT), 1u << 20, UINT32_MAX };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        for (uint32_t i = 0; i < nshards; i++)
            put32(SHARDS_AT + i * sb + CURSOR_AT, bad[k]);
        round_trips(c, 300);
    }
    sesscache_free(c);
}
END_TEST

/* A slot whose length was made huge is a miss, and nothing more. */
START_TEST(garbage_slot)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 100000, 7);
    uint8_t id[32], out[64];
    id_of(id, 4);
    uint32_t lens[] = { 9, 64, 100000, UINT32_MAX, 0 };
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        char data[9];
        snprintf(data, sizeof data, "abcdefg%zu", k);
        sesscache_store(c, id, 32, data, 8, 0);
        /* The slot: tag, expires, then len at 16; its data is at 64. */
        uint8_t *at = memmem(region, region_size, data, 8);
        ck_assert_ptr_nonnull(at);
        memcpy(at - 64 + 16, &lens[k], sizeof lens[k]);
        memset(out, 0, sizeof out);
        ck_assert_msg(sesscache_lookup(c, id, 32, out, 16, 1) == 0, "len %u", lens[k]);
    }
    sesscache_free(c);
}
END_TEST

/* A lock held by a process that does not let go (stopped, or hostile):
 * the call gives up after SESSCACHE_LOCK_WAIT_MS instead of hanging. */
START_TEST(lock_held_too_long)
{
    region = shared(1 << 20);
    struct sesscache *c = sesscache_init(region, region_size, 100000, 0);
    uint32_t nshards = get32(NSHARDS_AT);
    uint64_t sb;
    memcpy(&sb, (char *)region + SHARD_BYTES_AT, sizeof sb);
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        for (uint32_t i = 0; i < nshards; i++)
            pthread_mutex_lock((pthread_mutex_t *)((char *)region + SHARDS_AT + i * sb));
        ck_assert_int_eq(write(ready[1], "x", 1), 1);
        pause();
        _exit(0);
    }
    char x;
    ck_assert_int_eq(read(ready[0], &x, 1), 1);
    uint8_t id[32], out[64];
    id_of(id, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(sesscache_store(c, id, 32, "x", 1, 1), SESSCACHE_BADID);
    ck_assert_uint_eq(sesscache_lookup(c, id, 32, out, sizeof out, 1), 0);
    sesscache_remove(c, id, 32);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ck_assert_int_ge(ms, 3 * SESSCACHE_LOCK_WAIT_MS - 10);
    ck_assert_int_lt(ms, 3 * SESSCACHE_LOCK_WAIT_MS + 2000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    round_trips(c, 300);        /* its death frees the locks */
    sesscache_free(c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sesscache");
    TCase *tc = tcase_create("sesscache");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, store_and_lookup);
    tcase_add_test(tc, expiry);
    tcase_add_test(tc, eviction_at_capacity);
    tcase_add_test(tc, oversize_and_bad_ids);
    tcase_add_test(tc, damaged_entry_not_served);
    tcase_add_test(tc, lock_holder_killed);
    tcase_add_test(tc, multi_process_stress);
    tcase_add_test(tc, garbage_header);
    tcase_add_test(tc, open_checks_header);
    tcase_add_test(tc, garbage_cursor);
    tcase_add_test(tc, garbage_slot);
    tcase_add_test(tc, lock_held_too_long);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
