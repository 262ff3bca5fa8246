#include "unit.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "clock.h"
#include "clients.h"

static char err[256];

static void *shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    return p;
}

static struct clients_policy policy(uint32_t per_client, uint32_t rate, uint32_t burst)
{
    return (struct clients_policy){ .per_client = per_client, .handshake_rate = rate,
                                    .handshake_burst = burst, .ipv6_prefix = 64 };
}

/* A table of nslots in a fresh shared region (*region, if asked). */
static struct clients *table(size_t nslots, struct clients_policy p, void **region)
{
    size_t size = clients_region_size(nslots);
    void *r = shared(size);
    struct clients *t = clients_init(r, size, &p, 0x0123456789abcdefull);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_ge(clients_capacity(t), nslots);
    if (region)
        *region = r;
    return t;
}

static enum clients_verdict admit(struct clients *t, const char *ip, int64_t now,
                                  struct clients_ticket *tk)
{
    struct clients_ticket spare;
    struct sockaddr_storage ss = unit_peer(ip);
    return clients_admit(t, (struct sockaddr *)&ss, now, tk ? tk : &spare);
}

/* The connections open for the client shown as name, as top reports it. */
static unsigned open_for(const struct clients *t, const char *name)
{
    struct clients_usage c[64];
    char buf[ADDR_STRLEN];
    size_t n = clients_top(t, c, 64);
    for (size_t i = 0; i < n; i++)
        if (strcmp(addr_cidr_format(&c[i].client, buf, sizeof buf), name) == 0)
            return c[i].connections;
    return 0;
}

START_TEST(keying)
{
    struct clients *t = table(4096, policy(1, 0, 0), NULL);
    ck_assert_int_eq(admit(t, "192.0.2.1", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "192.0.2.1", 0, NULL), CLIENTS_PER_CLIENT);
    ck_assert_int_eq(admit(t, "192.0.2.2", 0, NULL), CLIENTS_OK);
    /* What a dual-stack listener reports for 192.0.2.1 is 192.0.2.1. */
    ck_assert_int_eq(admit(t, "::ffff:192.0.2.1", 0, NULL), CLIENTS_PER_CLIENT);
    ck_assert_int_eq(admit(t, "::ffff:192.0.2.3", 0, NULL), CLIENTS_OK);
    ck_assert_uint_eq(open_for(t, "192.0.2.3"), 1);
    /* IPv6 by /64. */
    ck_assert_int_eq(admit(t, "2001:db8:1:2::1", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "2001:db8:1:2:ffff:ffff:ffff:ffff", 0, NULL), CLIENTS_PER_CLIENT);
    ck_assert_int_eq(admit(t, "2001:db8:1:3::1", 0, NULL), CLIENTS_OK);
    ck_assert_uint_eq(open_for(t, "2001:db8:1:2::/64"), 1);
    /* By /48 after a new policy. */
    struct clients_policy p = policy(1, 0, 0);
    p.ipv6_prefix = 48;
    clients_set_policy(t, &p);
    ck_assert_int_eq(admit(t, "2001:db8:5:1::1", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "2001:db8:5:2::1", 0, NULL), CLIENTS_PER_CLIENT);
    ck_assert_int_eq(admit(t, "2001:db8:6:1::1", 0, NULL), CLIENTS_OK);
    ck_assert_uint_eq(open_for(t, "2001:db8:5::/48"), 1);
    /* And one by one. */
    p.ipv6_prefix = 128;
    clients_set_policy(t, &p);
    ck_assert_int_eq(admit(t, "2001:db8:7::1", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "2001:db8:7::2", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "2001:db8:7::2", 0, NULL), CLIENTS_PER_CLIENT);
    /* A policy that says no prefix gets the default. */
    clients_set_policy(t, &(struct clients_policy){ .per_client = 1 });
    ck_assert_int_eq(admit(t, "2001:db8:9:1::1", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "2001:db8:9:1::2", 0, NULL), CLIENTS_PER_CLIENT);
    ck_assert_int_eq(admit(t, "2001:db8:9:2::1", 0, NULL), CLIENTS_OK);
    clients_free(t);
}
END_TEST

START_TEST(lists)
{
    struct addr_cidr deny[2], allow[2];
    ck_assert_int_eq(addr_cidr_parse("192.0.2.0/24", &deny[0], err, sizeof err), 0);
    ck_assert_int_eq(addr_cidr_parse("2001:db8:bad::/48", &deny[1], err, sizeof err), 0);
    ck_assert_int_eq(addr_cidr_parse("192.0.0.0/16", &allow[0], err, sizeof err), 0);
    ck_assert_int_eq(addr_cidr_parse("2001:db8::/32", &allow[1], err, sizeof err), 0);
    struct clients_policy p = policy(0, 0, 0);
    p.deny = deny;
    p.ndeny = 2;
    struct clients *t = table(4096, p, NULL);
    /* Deny alone: everyone else is served. */
    ck_assert_int_eq(admit(t, "192.0.2.200", 0, NULL), CLIENTS_DENIED);
    ck_assert_int_eq(admit(t, "::ffff:192.0.2.200", 0, NULL), CLIENTS_DENIED);
    ck_assert_int_eq(admit(t, "2001:db8:bad:1::1", 0, NULL), CLIENTS_DENIED);
    ck_assert_int_eq(admit(t, "198.51.100.1", 0, NULL), CLIENTS_OK);
    /* With allow: only those, and deny wins within them. */
    p.allow = allow;
    p.nallow = 2;
    clients_set_policy(t, &p);
    ck_assert_int_eq(admit(t, "192.0.2.200", 0, NULL), CLIENTS_DENIED);
    ck_assert_int_eq(admit(t, "192.0.3.200", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "198.51.100.1", 0, NULL), CLIENTS_NOT_ALLOWED);
    ck_assert_int_eq(admit(t, "2001:db8:1::1", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "2001:db8:bad::1", 0, NULL), CLIENTS_DENIED);
    ck_assert_int_eq(admit(t, "2001:db9::1", 0, NULL), CLIENTS_NOT_ALLOWED);
    /* Refused by a list: not counted, no ticket. */
    struct clients_ticket tk = { 7, 7, 7 };
    ck_assert_int_eq(admit(t, "192.0.2.1", 0, &tk), CLIENTS_DENIED);
    ck_assert_uint_eq(tk.slot, 0);
    ck_assert_uint_eq(open_for(t, "192.0.2.1"), 0);
    /* The policy was copied: the caller's lists may go. */
    memset(allow, 0, sizeof allow);
    ck_assert_int_eq(admit(t, "192.0.3.201", 0, NULL), CLIENTS_OK);
    /* A peer with no IP address meets allow, and is otherwise uncounted. */
    struct sockaddr_storage un = { .ss_family = AF_UNIX };
    ck_assert_int_eq(clients_admit(t, (struct sockaddr *)&un, 0, &tk), CLIENTS_NOT_ALLOWED);
    p.nallow = 0;
    clients_set_policy(t, &p);
    ck_assert_int_eq(clients_admit(t, (struct sockaddr *)&un, 0, &tk), CLIENTS_OK);
    ck_assert_uint_eq(tk.slot, 0);
    clients_free(t);
}
END_TEST

START_TEST(per_client)
{
    struct clients *t = table(4096, policy(3, 0, 0), NULL);
    struct clients_ticket tk[4];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(admit(t, "203.0.113.5", 0, &tk[i]), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "203.0.113.5", 0, &tk[3]), CLIENTS_PER_CLIENT);
    ck_assert_uint_eq(tk[3].slot, 0);
    ck_assert_uint_eq(open_for(t, "203.0.113.5"), 3);
    clients_release(t, &tk[1]);
    ck_assert_uint_eq(tk[1].slot, 0);               /* cleared */
    ck_assert_uint_eq(open_for(t, "203.0.113.5"), 2);
    clients_release(t, &tk[1]);                      /* twice: nothing */
    ck_assert_uint_eq(open_for(t, "203.0.113.5"), 2);
    ck_assert_int_eq(admit(t, "203.0.113.5", 0, &tk[1]), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "203.0.113.5", 0, NULL), CLIENTS_PER_CLIENT);
    for (int i = 0; i < 3; i++)
        clients_release(t, &tk[i]);
    ck_assert_uint_eq(open_for(t, "203.0.113.5"), 0);
    clients_free(t);
}
END_TEST

/* A full handshake: admitted, charged, closed. */
static enum clients_verdict handshake(struct clients *t, const char *ip, int64_t now)
{
    struct clients_ticket tk;
    enum clients_verdict v = admit(t, ip, now, &tk);
    clients_charge_handshake(t, &tk, now);
    clients_release(t, &tk);
    return v;
}

START_TEST(handshake_rate)
{
    /* 10 a second, a burst of 20. */
    struct clients *t = table(4096, policy(0, 10, 20), NULL);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(handshake(t, "198.51.100.9", 1000), CLIENTS_OK);
    ck_assert_int_eq(handshake(t, "198.51.100.9", 1000), CLIENTS_RATE);
    ck_assert_int_eq(handshake(t, "198.51.100.10", 1000), CLIENTS_OK);     /* another client */
    ck_assert_int_eq(handshake(t, "198.51.100.9", 1099), CLIENTS_RATE);
    ck_assert_int_eq(handshake(t, "198.51.100.9", 1100), CLIENTS_OK);      /* one refilled */
    ck_assert_int_eq(handshake(t, "198.51.100.9", 1100), CLIENTS_RATE);
    /* Resumptions are not charged: no limit to them. */
    struct clients_ticket tk;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(admit(t, "198.51.100.9", 1200, &tk), CLIENTS_OK);
        clients_release(t, &tk);
    }
    /* Two seconds refill the bucket, and no more than it. */
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(handshake(t, "198.51.100.9", 60000), CLIENTS_OK);
    ck_assert_int_eq(handshake(t, "198.51.100.9", 60000), CLIENTS_RATE);
    /* No rate, no bucket. */
    clients_set_policy(t, &(struct clients_policy){ .ipv6_prefix = 64 });
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(handshake(t, "198.51.100.9", 60000), CLIENTS_OK);
    clients_free(t);
}
END_TEST

START_TEST(handshake_debt)
{
    /* Checked at the accept, charged after: three at once all pass a
     * bucket of 2, and the third is paid back before the next. */
    struct clients *t = table(4096, policy(0, 2, 2), NULL);
    struct clients_ticket tk[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(admit(t, "192.0.2.44", 0, &tk[i]), CLIENTS_OK);
    for (int i = 0; i < 3; i++) {
        clients_charge_handshake(t, &tk[i], 0);
        clients_release(t, &tk[i]);
    }
    struct clients_usage c;
    ck_assert_uint_eq(clients_top(t, &c, 1), 0);     /* none open */
    ck_assert_int_eq(handshake(t, "192.0.2.44", 499), CLIENTS_RATE);   /* -1 + 0.998 */
    ck_assert_int_eq(handshake(t, "192.0.2.44", 999), CLIENTS_RATE);   /* -1 + 1.998 */
    ck_assert_int_eq(handshake(t, "192.0.2.44", 1000), CLIENTS_OK);
    ck_assert_int_eq(handshake(t, "192.0.2.44", 1500), CLIENTS_OK);
    ck_assert_int_eq(handshake(t, "192.0.2.44", 1500), CLIENTS_RATE);
    clients_free(t);
}
END_TEST

START_TEST(reuse_and_full)
{
    /* One shard of 4: a window of 4. */
    struct clients *t = table(4, policy(0, 1, 1), NULL);
    struct clients_ticket tk[5], old;
    static const char *const ip[] = { "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4",
                                      "192.0.2.5" };
    ck_assert_uint_eq(clients_capacity(t), 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(admit(t, ip[i], 0, &tk[i]), CLIENTS_OK);
    /* Full of live clients: the fifth is served, uncounted. */
    ck_assert_int_eq(admit(t, ip[4], 0, &tk[4]), CLIENTS_TABLE_FULL);
    ck_assert(clients_admitted(CLIENTS_TABLE_FULL));
    ck_assert_uint_eq(tk[4].slot, 0);
    clients_release(t, &tk[4]);
    /* A closed client whose bucket is not full again keeps its slot ... */
    clients_charge_handshake(t, &tk[0], 0);
    old = tk[0];
    clients_release(t, &tk[0]);
    ck_assert_int_eq(admit(t, ip[4], 500, &tk[4]), CLIENTS_TABLE_FULL);
    /* ... until it is, and then another takes it. */
    ck_assert_int_eq(admit(t, ip[4], 1000, &tk[4]), CLIENTS_OK);
    ck_assert_uint_eq(tk[4].slot, old.slot);
    /* The first client's old ticket does not touch the new one's count. */
    clients_release(t, &old);
    ck_assert_uint_eq(open_for(t, ip[4]), 1);
    for (int i = 1; i < 5; i++)
        clients_release(t, &tk[i]);
    struct clients_usage c;
    ck_assert_uint_eq(clients_top(t, &c, 1), 0);
    clients_free(t);
}
END_TEST

START_TEST(garbage_tickets)
{
    struct clients *t = table(4096, policy(0, 5, 5), NULL);
    struct clients_ticket tk;
    ck_assert_int_eq(admit(t, "192.0.2.8", 0, &tk), CLIENTS_OK);
    struct clients_ticket bad[] = {
        { 0, tk.gen, tk.tag },
        { UINT32_MAX, tk.gen, tk.tag },
        { (uint32_t)clients_capacity(t) + 1, tk.gen, tk.tag },
        { tk.slot, tk.gen + 1, tk.tag },
        { tk.slot, tk.gen, tk.tag ^ 1 },
        { tk.slot, tk.gen, 0 },
        { 1, 0, 0 },
        { (uint32_t)clients_capacity(t), 0xdeadbeef, 0xfeedfacecafebeefull },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clients_charge_handshake(t, &bad[i], 0);
        clients_release(t, &bad[i]);
        ck_assert_uint_eq(bad[i].slot, 0);
    }
    ck_assert_uint_eq(open_for(t, "192.0.2.8"), 1);
    struct clients_usage c;
    ck_assert_uint_eq(clients_top(t, &c, 1), 1);
    ck_assert_int_eq(c.tokens, 5);                  /* no charge landed */
    clients_release(t, &tk);
    ck_assert_uint_eq(open_for(t, "192.0.2.8"), 0);
    clients_free(t);
}
END_TEST

/* An entry as clients.c lays it out: tag, net[2], meta, gen, then count
 * at 32, tokens at 40, refilled at 48. */
#define COUNT_AT     32
#define TOKENS_AT    40
#define REFILLED_AT  48

/* Whatever another process wrote into an entry's numbers, the calls stay
 * within their bounds: the bucket between minus and plus a burst, the
 * count neither wrapping nor going below 0. */
START_TEST(garbage_entry)
{
    void *region;
    struct clients *t = table(4096, policy(0, 5, 5), &region);
    struct clients_ticket tk;
    ck_assert_int_eq(admit(t, "192.0.2.9", 0, &tk), CLIENTS_OK);
    char *e = memmem(region, clients_region_size(4096), &tk.tag, sizeof tk.tag);
    ck_assert_ptr_nonnull(e);
    int64_t bad[][2] = {
        { INT64_MIN, INT64_MAX }, { INT64_MAX, INT64_MIN }, { INT64_MIN, INT64_MIN },
        { INT64_MAX, INT64_MAX }, { -1, 0 }, { 0, 1000000 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(e + TOKENS_AT, &bad[i][0], sizeof bad[i][0]);
        memcpy(e + REFILLED_AT, &bad[i][1], sizeof bad[i][1]);
        clients_charge_handshake(t, &tk, 1000);
        struct clients_usage c;
        ck_assert_uint_eq(clients_top(t, &c, 1), 1);
        ck_assert_msg(c.tokens >= -5 && c.tokens <= 5, "case %zu: %d tokens", i, c.tokens);
        struct clients_ticket more;
        enum clients_verdict v = admit(t, "192.0.2.9", 2000, &more);
        ck_assert(v == CLIENTS_OK || v == CLIENTS_RATE);
        clients_release(t, &more);
    }
    uint32_t count = UINT32_MAX;
    memcpy(e + COUNT_AT, &count, sizeof count);
    struct clients_ticket more;
    ck_assert_int_eq(admit(t, "192.0.2.9", 3000000, &more), CLIENTS_OK);
    ck_assert_uint_eq(open_for(t, "192.0.2.9"), UINT32_MAX);   /* no wrap to 0 */
    clients_release(t, &more);
    clients_release(t, &tk);
    ck_assert_uint_eq(open_for(t, "192.0.2.9"), UINT32_MAX - 2);
    ck_assert_int_eq(admit(t, "192.0.2.9", 3000000, &more), CLIENTS_OK);
    count = 0;
    memcpy(e + COUNT_AT, &count, sizeof count);
    clients_release(t, &more);                      /* never below 0 */
    ck_assert_uint_eq(open_for(t, "192.0.2.9"), 0);
    count = 1;
    memcpy(e + COUNT_AT, &count, sizeof count);
    ck_assert_uint_eq(open_for(t, "192.0.2.9"), 1);
    clients_free(t);
}
END_TEST

/* The first shard's lock: right after the 64-byte header. */
static pthread_mutex_t *first_lock(void *region)
{
    return (pthread_mutex_t *)((char *)region + 64);
}

START_TEST(lock_holder_killed)
{
    /* 64 slots are one shard. A child dies holding its lock, after an
     * entry was damaged as a death in the middle of a write would: the
     * next locker drops that entry and keeps the others' counts. */
    void *region;
    struct clients *t = table(64, policy(0, 0, 0), &region);
    struct clients_ticket a, b;
    ck_assert_int_eq(admit(t, "192.0.2.1", 0, &a), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "198.51.100.7", 0, &b), CLIENTS_OK);
    static const uint8_t key[8] = { 198, 51, 100, 7, 0, 0, 0, 0 };
    uint8_t *p = memmem((char *)region + 128, clients_region_size(64) - 128, key, sizeof key);
    ck_assert_ptr_nonnull(p);
    p[3] = 8;
    pid_t pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(first_lock(region));
        raise(SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(admit(t, "192.0.2.1", 0, NULL), CLIENTS_OK);
    ck_assert_uint_eq(clients_repairs(t), 1);
    ck_assert_uint_eq(open_for(t, "192.0.2.1"), 2);
    ck_assert_uint_eq(open_for(t, "198.51.100.8"), 0);
    clients_release(t, &b);                          /* its entry is gone: nothing */
    clients_release(t, &a);
    ck_assert_uint_eq(open_for(t, "192.0.2.1"), 1);
    ck_assert_int_eq(admit(t, "198.51.100.7", 0, NULL), CLIENTS_OK);
    ck_assert_uint_eq(clients_repairs(t), 1);
    clients_free(t);
}
END_TEST

START_TEST(lock_holder_many_shards)
{
    /* With 64 shards, every client keeps being served, shard 0's too. */
    void *region;
    struct clients *t = table(1 << 16, policy(0, 0, 0), &region);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(first_lock(region));
        raise(SIGKILL);
    }
    waitpid(pid, NULL, 0);
    for (unsigned i = 0; i < 1000; i++) {
        char ip[32];
        struct clients_ticket tk;
        snprintf(ip, sizeof ip, "10.0.%u.%u", i / 250, i % 250);
        ck_assert_int_eq(admit(t, ip, 0, &tk), CLIENTS_OK);
        clients_release(t, &tk);
    }
    ck_assert_uint_eq(clients_repairs(t), 1);
    clients_free(t);
}
END_TEST

START_TEST(lock_held_too_long)
{
    /* A stopped holder: admit serves uncounted, release gives up, after
     * CLIENTS_LOCK_WAIT_MS; once the holder is gone, all is well again. */
    void *region;
    struct clients *t = table(64, policy(0, 0, 0), &region);
    struct clients_ticket tk, none;
    ck_assert_int_eq(admit(t, "192.0.2.1", 0, &tk), CLIENTS_OK);
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(first_lock(region));
        ck_assert_int_eq(write(ready[1], "x", 1), 1);
        pause();
        _exit(0);
    }
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    int64_t t0 = clock_now_ms();
    ck_assert_int_eq(admit(t, "192.0.2.1", 0, &none), CLIENTS_LOCK_TIMEOUT);
    ck_assert(clients_admitted(CLIENTS_LOCK_TIMEOUT));
    ck_assert_uint_eq(none.slot, 0);
    ck_assert_int_ge(clock_now_ms() - t0, CLIENTS_LOCK_WAIT_MS - 10);
    struct clients_ticket copy = tk;
    clients_release(t, &copy);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    ck_assert_uint_eq(open_for(t, "192.0.2.1"), 1);     /* the release was lost */
    clients_release(t, &tk);
    ck_assert_uint_eq(open_for(t, "192.0.2.1"), 0);
    ck_assert_uint_eq(clients_repairs(t), 1);
    clients_free(t);
}
END_TEST

START_TEST(top)
{
    struct clients *t = table(4096, policy(0, 7, 0), NULL);
    static const struct { const char *ip; int n; } c[] = {
        { "192.0.2.1", 5 }, { "2001:db8:1:2::9", 3 }, { "192.0.2.3", 7 }, { "192.0.2.4", 1 },
    };
    for (size_t i = 0; i < 4; i++)
        for (int j = 0; j < c[i].n; j++)
            ck_assert_int_eq(admit(t, c[i].ip, 0, NULL), CLIENTS_OK);
    handshake(t, "192.0.2.3", 0);
    struct clients_usage out[10];
    char buf[ADDR_STRLEN];
    ck_assert_uint_eq(clients_top(t, out, 3), 3);
    ck_assert_str_eq(addr_cidr_format(&out[0].client, buf, sizeof buf), "192.0.2.3");
    ck_assert_uint_eq(out[0].connections, 7);
    ck_assert_int_eq(out[0].tokens, 6);
    ck_assert_str_eq(addr_cidr_format(&out[1].client, buf, sizeof buf), "192.0.2.1");
    ck_assert_uint_eq(out[1].connections, 5);
    ck_assert_int_eq(out[1].tokens, 7);
    ck_assert_str_eq(addr_cidr_format(&out[2].client, buf, sizeof buf), "2001:db8:1:2::/64");
    ck_assert_uint_eq(out[2].connections, 3);
    ck_assert_uint_eq(clients_top(t, out, 10), 4);
    ck_assert_uint_eq(out[3].connections, 1);
    ck_assert_uint_eq(clients_top(t, out, 0), 0);
    clients_free(t);
}
END_TEST

START_TEST(should_log)
{
    struct addr_cidr deny;
    ck_assert_int_eq(addr_cidr_parse("203.0.113.0/24", &deny, err, sizeof err), 0);
    struct clients_policy p = policy(1, 0, 0);
    p.deny = &deny;
    p.ndeny = 1;
    struct clients *t = table(4096, p, NULL);
    struct sockaddr_storage a = unit_peer("192.0.2.1"), b = unit_peer("192.0.2.2");
    struct sockaddr_storage x = unit_peer("203.0.113.1"), y = unit_peer("203.0.113.2");
    ck_assert_int_eq(admit(t, "192.0.2.1", 0, NULL), CLIENTS_OK);
    ck_assert_int_eq(admit(t, "192.0.2.2", 0, NULL), CLIENTS_OK);
    ck_assert(clients_should_log(t, (struct sockaddr *)&a, 0));
    ck_assert(!clients_should_log(t, (struct sockaddr *)&a, 999));
    ck_assert(clients_should_log(t, (struct sockaddr *)&b, 500));      /* each client */
    ck_assert(clients_should_log(t, (struct sockaddr *)&a, 1000));
    ck_assert(!clients_should_log(t, (struct sockaddr *)&b, 1499));
    /* Clients without an entry share one turn a second. */
    ck_assert(clients_should_log(t, (struct sockaddr *)&x, 0));
    ck_assert(!clients_should_log(t, (struct sockaddr *)&y, 10));
    ck_assert(clients_should_log(t, (struct sockaddr *)&y, 1000));
    clients_free(t);
}
END_TEST

START_TEST(open_and_release_elsewhere)
{
    /* A worker admits and dies; the master releases its ticket, which the
     * worker left in shared memory, through a handle of its own. */
    void *region;
    struct clients *t = table(4096, policy(2, 0, 0), &region);
    size_t size = clients_region_size(4096);
    struct clients_ticket *board = shared(sizeof *board);
    pid_t pid = fork();
    if (pid == 0) {
        struct clients *w = clients_open(region, size);
        struct sockaddr_storage ss = unit_peer("192.0.2.9");
        _exit(w && clients_admit(w, (struct sockaddr *)&ss, 0, board) == CLIENTS_OK ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct clients *m = clients_open(region, size);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(clients_capacity(m), clients_capacity(t));
    ck_assert_uint_eq(open_for(m, "192.0.2.9"), 1);
    clients_release(m, board);
    ck_assert_uint_eq(open_for(t, "192.0.2.9"), 0);
    clients_free(m);
    /* What is not a table, or does not fit. */
    ck_assert_ptr_null(clients_open(region, 32));
    ck_assert_ptr_null(clients_open(region, clients_region_size(4096) - 64));
    uint32_t *hdr = region;
    hdr[1] = 3;                                     /* nshards: not a power of two */
    ck_assert_ptr_null(clients_open(region, size));
    hdr[0] = 0;
    ck_assert_ptr_null(clients_open(region, size));
    ck_assert_ptr_null(clients_init(region, 100, &(struct clients_policy){ 0 }, 1));
    clients_free(t);
}
END_TEST

START_TEST(sizes_and_names)
{
    ck_assert_uint_le(clients_region_size(4096), 4096 * 64 + 64 * 64 + 64);
    ck_assert_uint_le(clients_region_size(131072), (131072 + 64) * 64 + 64);
    size_t size = clients_region_size(131072);
    struct clients *t = clients_init(shared(size), size, &(struct clients_policy){ 0 }, 1);
    ck_assert_uint_ge(clients_capacity(t), 131072);
    clients_free(t);
    ck_assert_str_eq(clients_verdict_name(CLIENTS_OK), "ok");
    ck_assert_str_eq(clients_verdict_name(CLIENTS_DENIED), "denied");
    ck_assert_str_eq(clients_verdict_name(CLIENTS_NOT_ALLOWED), "not-allowed");
    ck_assert_str_eq(clients_verdict_name(CLIENTS_PER_CLIENT), "per-client");
    ck_assert_str_eq(clients_verdict_name(CLIENTS_RATE), "handshake-rate");
    ck_assert_str_eq(clients_verdict_name(CLIENTS_TABLE_FULL), "table-full");
    ck_assert_str_eq(clients_verdict_name(CLIENTS_LOCK_TIMEOUT), "lock-timeout");
    ck_assert_str_eq(clients_verdict_name(CLIENTS_NVERDICTS), "?");
    ck_assert(!clients_admitted(CLIENTS_RATE));
}
END_TEST

START_TEST(many_processes)
{
    /* Four processes admit, charge and release 10,000 times each on the
     * same eight clients: every count comes back to 0. */
    void *region;
    struct clients *t = table(4096, policy(1000, 1000000, 0), &region);
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        if ((kids[k] = fork()) == 0) {
            struct clients *w = clients_open(region, clients_region_size(4096));
            struct clients_policy p = policy(1000, 1000000, 0);
            clients_set_policy(w, &p);
            unsigned bad = 0;
            for (unsigned n = 0; n < 10000; n++) {
                char ip[32];
                struct clients_ticket tk;
                snprintf(ip, sizeof ip, "192.0.2.%u", (n + (unsigned)k) % 8);
                struct sockaddr_storage ss = unit_peer(ip);
                bad += clients_admit(w, (struct sockaddr *)&ss, n, &tk) != CLIENTS_OK;
                if (n % 3 == 0)
                    clients_charge_handshake(w, &tk, n);
                clients_release(w, &tk);
            }
            _exit(bad == 0 ? 0 : 1);
        }
    }
    for (int k = 0; k < 4; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d refused", k);
    }
    struct clients_usage c;
    ck_assert_uint_eq(clients_top(t, &c, 1), 0);
    ck_assert_uint_eq(clients_repairs(t), 0);
    clients_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("clients");
    TCase *tc = tcase_create("clients");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, keying);
    tcase_add_test(tc, lists);
    tcase_add_test(tc, per_client);
    tcase_add_test(tc, handshake_rate);
    tcase_add_test(tc, handshake_debt);
    tcase_add_test(tc, reuse_and_full);
    tcase_add_test(tc, garbage_tickets);
    tcase_add_test(tc, garbage_entry);
    tcase_add_test(tc, top);
    tcase_add_test(tc, should_log);
    tcase_add_test(tc, open_and_release_elsewhere);
    tcase_add_test(tc, sizes_and_names);
    suite_add_tcase(s, tc);
    TCase *procs = tcase_create("processes");
    tcase_set_timeout(procs, 30);
    tcase_add_test(procs, lock_holder_killed);
    tcase_add_test(procs, lock_holder_many_shards);
    tcase_add_test(procs, lock_held_too_long);
    tcase_add_test(procs, many_processes);
    suite_add_tcase(s, procs);
    return s;
}

UNIT_MAIN(suite)
