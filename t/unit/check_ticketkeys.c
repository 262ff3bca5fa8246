#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "shm.h"
#include "ticketkeys.h"

static char err[512];
static uint8_t region[sizeof(struct ticket_key) * TICKETKEYS_MAX + 128];

static struct ticketkeys *ring_with_one_key(void)
{
    struct ticketkeys *r = ticketkeys_init(region);
    struct ticket_key k;
    ck_assert_int_eq(ticketkeys_generate(&k), 0);
    ticketkeys_rotate(r, &k, 1000, 5000);
    return r;
}

/* Encrypts a 108-byte ticket; returns it with its name, iv and mac. */
struct sealed {
    uint8_t name[16], iv[16], mac[32], ticket[108];
};

static void seal(struct ticketkeys *r, struct sealed *s)
{
    for (int i = 0; i < 108; i++)
        s->ticket[i] = (uint8_t)i;
    ck_assert_int_eq(ticketkeys_encrypt(r, NULL, s->name, s->iv, s->mac, s->ticket, 108), 0);
}

static enum ticket_dec open_sealed(struct ticketkeys *r, struct sealed s, int64_t now)
{
    enum ticket_dec d = ticketkeys_decrypt(r, NULL, s.name, s.iv, s.mac, s.ticket, 108, now);
    if (d == TICKET_DEC_CURRENT || d == TICKET_DEC_OLDER)
        for (int i = 0; i < 108; i++)
            ck_assert_int_eq(s.ticket[i], i);
    return d;
}

/* A ticket sealed under one scope (frontend) does not open under another. */
START_TEST(scope_binds)
{
    struct ticketkeys *r = ring_with_one_key();
    uint8_t a[TICKET_SCOPE_LEN] = { 1 }, b[TICKET_SCOPE_LEN] = { 2 };
    struct sealed s, t;
    for (int i = 0; i < 108; i++)
        s.ticket[i] = (uint8_t)i;
    ck_assert_int_eq(ticketkeys_encrypt(r, a, s.name, s.iv, s.mac, s.ticket, 108), 0);
    t = s;
    ck_assert_int_eq(ticketkeys_decrypt(r, b, t.name, t.iv, t.mac, t.ticket, 108, 1000),
                     TICKET_DEC_BAD);
    t = s;
    ck_assert_int_eq(ticketkeys_decrypt(r, NULL, t.name, t.iv, t.mac, t.ticket, 108, 1000),
                     TICKET_DEC_BAD);
    t = s;
    ck_assert_int_eq(ticketkeys_decrypt(r, a, t.name, t.iv, t.mac, t.ticket, 108, 1000),
                     TICKET_DEC_CURRENT);
    ck_assert_int_eq(t.ticket[107], 107);
}
END_TEST

START_TEST(round_trip)
{
    struct ticketkeys *r = ring_with_one_key();
    struct sealed s;
    seal(r, &s);
    /* Really encrypted: one byte may come out as it went in (1 in 256:
     * it did once in CI), all 108 not. */
    int same = 0;
    for (int i = 0; i < 108; i++)
        same += s.ticket[i] == i;
    ck_assert_int_lt(same, 108);
    int nonzero = 0;
    for (int i = 0; i < 32; i++)
        nonzero |= s.mac[i];
    ck_assert(nonzero);
    ck_assert_int_eq(open_sealed(r, s, 2000), TICKET_DEC_CURRENT);
    /* Two tickets never share an IV. */
    struct sealed t;
    seal(r, &t);
    ck_assert(memcmp(s.iv, t.iv, 16) != 0);
}
END_TEST

START_TEST(tampering)
{
    struct ticketkeys *r = ring_with_one_key();
    struct sealed s, t;
    seal(r, &s);
    t = s;
    t.ticket[10] ^= 1;
    ck_assert_int_eq(open_sealed(r, t, 2000), TICKET_DEC_BAD);
    t = s;
    t.iv[0] ^= 1;
    ck_assert_int_eq(open_sealed(r, t, 2000), TICKET_DEC_BAD);
    t = s;
    t.mac[0] ^= 1;
    ck_assert_int_eq(open_sealed(r, t, 2000), TICKET_DEC_BAD);
    /* wolfSSL checks none of the 32 MAC bytes: each of them is ours to check. */
    for (int i = 0; i < 32; i++) {
        t = s;
        t.mac[i] ^= 0x80;
        ck_assert_msg(open_sealed(r, t, 2000) == TICKET_DEC_BAD, "mac[%d] not checked", i);
    }
    t = s;
    t.name[0] ^= 1;
    ck_assert_int_eq(open_sealed(r, t, 2000), TICKET_DEC_UNKNOWN);
}
END_TEST

START_TEST(rotation)
{
    struct ticketkeys *r = ring_with_one_key();        /* at t=1000, lifetime 5000 */
    struct sealed old, newer;
    seal(r, &old);
    ck_assert_uint_eq(ticketkeys_generation(r), 1);
    struct ticket_key k;
    ticketkeys_generate(&k);
    ticketkeys_rotate(r, &k, 2000, 5000);              /* old key decrypts until 7000 */
    ck_assert_uint_eq(ticketkeys_generation(r), 2);
    ck_assert_uint_eq(ticketkeys_count(r, 2000), 2);
    seal(r, &newer);
    ck_assert(memcmp(old.name, newer.name, 16) != 0);  /* the new key encrypts */
    ck_assert_int_eq(open_sealed(r, old, 6999), TICKET_DEC_OLDER);
    ck_assert_int_eq(open_sealed(r, newer, 6999), TICKET_DEC_CURRENT);
    ck_assert_int_eq(open_sealed(r, old, 7000), TICKET_DEC_UNKNOWN);   /* lifetime over */
    ticketkeys_generate(&k);
    ticketkeys_rotate(r, &k, 8000, 5000);              /* drops the expired key */
    ck_assert_uint_eq(ticketkeys_count(r, 8000), 2);
    ck_assert_int_eq(open_sealed(r, newer, 9000), TICKET_DEC_OLDER);
}
END_TEST

START_TEST(ring_is_bounded)
{
    struct ticketkeys *r = ticketkeys_init(region);
    struct ticket_key k;
    for (int i = 0; i < 3 * TICKETKEYS_MAX; i++) {
        ticketkeys_generate(&k);
        ticketkeys_rotate(r, &k, i, 1000000);
    }
    ck_assert_uint_eq(ticketkeys_count(r, 0), TICKETKEYS_MAX);
}
END_TEST

START_TEST(key_files)
{
    char path[] = "/tmp/tlsoffd-unit-keyXXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    ck_assert_msg(ticketkeys_write_file(path, err, sizeof err) == 0, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, TICKET_KEY_FILE_LEN);
    /* Never overwritten. */
    ck_assert_int_eq(ticketkeys_write_file(path, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "never overwritten"), "%s", err);

    /* Two rings from the same file: one's tickets open in the other. */
    struct ticket_key k;
    ck_assert_msg(ticketkeys_read_file(path, &k, err, sizeof err) == 0, "%s", err);
    static uint8_t other[sizeof region];
    struct ticketkeys *a = ticketkeys_init(region), *b = ticketkeys_init(other);
    ticketkeys_set(a, &k, 1);
    ticketkeys_set(b, &k, 1);
    struct sealed s;
    seal(a, &s);
    ck_assert_int_eq(open_sealed(b, s, 1LL << 50), TICKET_DEC_CURRENT);   /* no expiry */
    /* A key others may read is refused, naming the file (lib/secretfile.c). */
    ck_assert_int_eq(chmod(path, 0640), 0);
    ck_assert_int_eq(ticketkeys_read_file(path, &k, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "ticket key file '") && strstr(err, path) &&
                  strstr(err, "may be read or written by its group (mode 0640)"), "%s", err);
    unlink(path);

    char *bad = unit_tempfile("short");
    ck_assert_int_eq(ticketkeys_read_file(bad, &k, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "must hold exactly 48 bytes"), "%s", err);
    unlink(bad);
    free(bad);
    ck_assert_int_eq(ticketkeys_read_file("/nonexistent/key", &k, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "No such file"), "%s", err);
}
END_TEST

START_TEST(empty_ring)
{
    struct ticketkeys *r = ticketkeys_init(region);
    uint8_t name[16], iv[16], mac[32], t[108] = { 0 };
    ck_assert_int_eq(ticketkeys_encrypt(r, NULL, name, iv, mac, t, sizeof t), -1);
    ck_assert_ptr_null(ticketkeys_open(region, 10));
    ck_assert_ptr_nonnull(ticketkeys_open(region, ticketkeys_region_size()));
}
END_TEST

/* The ring's header, as ticketkeys.c lays it out: magic, then the
 * sequence counter at 4 and the number of keys at 8. */
#define SEQ_AT    4
#define NKEYS_AT  8

static void put32(void *ring, size_t off, uint32_t v)
{
    memcpy((char *)ring + off, &v, sizeof v);
}

static uint32_t get32(const void *ring, size_t off)
{
    uint32_t v;
    memcpy(&v, (const char *)ring + off, sizeof v);
    return v;
}

/* A number of keys past the ring's end is read as TICKETKEYS_MAX: not by
 * readers, not by the master's rotation. */
START_TEST(garbage_nkeys)
{
    uint32_t bad[] = { TICKETKEYS_MAX + 1, 1u << 20, UINT32_MAX };
    for (size_t g = 0; g < sizeof bad / sizeof bad[0]; g++) {
        struct ticketkeys *r = ring_with_one_key();
        struct sealed s;
        seal(r, &s);
        put32(region, NKEYS_AT, bad[g]);
        ck_assert_uint_le(ticketkeys_count(r, 1000), TICKETKEYS_MAX);
        ck_assert_int_eq(open_sealed(r, s, 1000), TICKET_DEC_CURRENT);
        uint8_t name[16] = { 0xee }, iv[16] = { 0 }, mac[32] = { 0 }, t[108] = { 0 };
        ck_assert_int_eq(ticketkeys_decrypt(r, NULL, name, iv, mac, t, sizeof t, 1000),
                         TICKET_DEC_UNKNOWN);
        struct ticket_key k;
        ck_assert_int_eq(ticketkeys_generate(&k), 0);
        ticketkeys_rotate(r, &k, 2000, 5000);      /* the master reads the ring too */
        ck_assert_uint_le(get32(region, NKEYS_AT), TICKETKEYS_MAX);
        ck_assert_int_eq(open_sealed(r, s, 2000), TICKET_DEC_OLDER);
    }
}
END_TEST

/* A sequence counter left odd (a writer that never finished): readers
 * give up after a bounded number of tries and go on with the last current
 * key this process knew; with none, the ticket fails. The master's next
 * write mends the counter. */
START_TEST(odd_sequence)
{
    struct ticketkeys *r = ring_with_one_key();
    struct sealed s, t;
    seal(r, &s);
    put32(region, SEQ_AT, get32(region, SEQ_AT) | 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    seal(r, &t);                                            /* the key it remembers */
    ck_assert(memcmp(t.name, s.name, 16) == 0);
    ck_assert_int_eq(open_sealed(r, t, 1000), TICKET_DEC_CURRENT);
    ck_assert_int_eq(open_sealed(r, s, 1000), TICKET_DEC_CURRENT);
    /* A ring this process never wrote nor read: nothing to go on with. */
    static uint8_t other[sizeof region];
    memcpy(other, region, sizeof other);
    struct ticketkeys *o = ticketkeys_open(other, sizeof other);
    uint8_t name[16], iv[16], mac[32], b[108] = { 0 };
    ck_assert_int_eq(ticketkeys_encrypt(o, NULL, name, iv, mac, b, sizeof b), -1);
    ck_assert_int_eq(open_sealed(o, s, 1000), TICKET_DEC_UNKNOWN);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 5);
    /* The master's next write mends it. */
    struct ticket_key k;
    ck_assert_int_eq(ticketkeys_generate(&k), 0);
    ticketkeys_rotate(r, &k, 2000, 5000);
    ck_assert_uint_eq(get32(region, SEQ_AT) & 1, 0);
    ck_assert_int_eq(open_sealed(r, s, 2000), TICKET_DEC_OLDER);
    seal(r, &s);
    ck_assert_int_eq(open_sealed(r, s, 2000), TICKET_DEC_CURRENT);
    /* Key files are a write too. */
    put32(region, SEQ_AT, 7);
    ticketkeys_set(r, &k, 1);
    ck_assert_uint_eq(get32(region, SEQ_AT) & 1, 0);
    ck_assert_int_eq(open_sealed(r, s, 2000), TICKET_DEC_CURRENT);
}
END_TEST

/* A child's view: the ring mapped read-only from a read-only descriptor.
 * Reading, sealing and opening tickets write nothing into it, and it
 * cannot be made writable again. */
START_TEST(read_only_ring)
{
    struct shm m;
    ck_assert_msg(shm_blob_create(&m, TICKETKEYS_SHM_NAME, ticketkeys_region_size(), err,
                                  sizeof err) == 0, "%s", err);
    struct ticketkeys *r = ticketkeys_init(m.base);
    struct ticket_key k;
    ck_assert_int_eq(ticketkeys_generate(&k), 0);
    ticketkeys_rotate(r, &k, 1000, 5000);
    struct sealed s;
    seal(r, &s);
    pid_t pid = fork();
    if (pid == 0) {
        if (shm_make_readonly(&m, err, sizeof err) < 0)
            _exit(10);
        struct sealed t;
        seal(r, &t);
        if (open_sealed(r, s, 1000) != TICKET_DEC_CURRENT ||
            open_sealed(r, t, 1000) != TICKET_DEC_CURRENT ||
            ticketkeys_count(r, 1000) != 1)
            _exit(11);
        if (mprotect(m.base, m.size, PROT_READ | PROT_WRITE) == 0 || errno != EACCES)
            _exit(12);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
    /* And a child that writes it dies. */
    if ((pid = fork()) == 0) {
        signal(SIGSEGV, SIG_DFL);       /* not a sanitizer's report */
        shm_make_readonly(&m, err, sizeof err);
        ticketkeys_rotate(r, &k, 2000, 5000);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    shm_detach(&m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ticketkeys");
    TCase *tc = tcase_create("ticketkeys");
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, scope_binds);
    tcase_add_test(tc, tampering);
    tcase_add_test(tc, rotation);
    tcase_add_test(tc, ring_is_bounded);
    tcase_add_test(tc, key_files);
    tcase_add_test(tc, empty_ring);
    tcase_add_test(tc, garbage_nkeys);
    tcase_add_test(tc, odd_sequence);
    tcase_add_test(tc, read_only_ring);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
