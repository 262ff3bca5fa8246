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
}
END_TEST

START_TEST(multi_process_stress)
{
    /* Four processes store and read for about two seconds; every entry
     * read back must be exactly what was stored under that id. */
    region = shared(2 << 20);
    sesscache_init(region, region_size, 1000000, 11);
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
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
