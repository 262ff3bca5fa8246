#include "unit.h"

#include <sys/wait.h>

#include "stats.h"

START_TEST(per_worker_and_total)
{
    size_t size = stats_region_size(3);
    void *region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct stats *s = stats_init(region, 3);
    ck_assert_uint_eq(stats_nworkers(s), 3);
    ck_assert_ptr_null(stats_worker(s, 3));
    stats_inc(NULL, ST_FULL);                   /* no slot: ignored */
    /* Each worker process counts into its own slot. */
    for (unsigned w = 0; w < 3; w++) {
        if (fork() == 0) {
            struct stats_worker *me = stats_worker(stats_open(region, size), w);
            for (unsigned i = 0; i <= w; i++)
                stats_inc(me, ST_RESUMED_ID);
            stats_inc(me, ST_FULL);
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
    ck_assert_uint_eq(stats_total(s, ST_RESUMED_ID), 1 + 2 + 3);
    ck_assert_uint_eq(stats_total(s, ST_FULL), 3);
    ck_assert_uint_eq(stats_worker(s, 2)->v[ST_RESUMED_ID], 3);

    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    stats_print(s, f);
    fclose(f);
    ck_assert_msg(strstr(buf, "total connections=0 handshakes_failed=0 full_handshakes=3 "
                              "resumed_id=6"), "%s", buf);
    ck_assert_msg(!strstr(buf, "\nworker=2 "), "%s", buf);     /* no process: not listed */
    ck_assert_str_eq(stats_name(ST_TICKET_FAIL), "ticket_decrypt_failures");
    ck_assert_ptr_null(stats_open(region, 10));
    stats_free(s);
    munmap(region, size);
}
END_TEST

/* The region's header: magic, then the number of slots as stats_init wrote it. */
#define NWORKERS_AT 4

static void put32(void *region, size_t off, uint32_t v)
{
    memcpy((char *)region + off, &v, sizeof v);
}

/* What a worker writes into the region moves nothing the handle knows. */
START_TEST(garbage_in_region)
{
    size_t size = stats_region_size(3);
    void *region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct stats *s = stats_init(region, 3);
    stats_inc(stats_worker(s, 2), ST_FULL);
    stats_worker(s, 2)->pid = 1;
    uint32_t garbage[] = { 0, 1, 1u << 30, UINT32_MAX };
    for (size_t g = 0; g < sizeof garbage / sizeof garbage[0]; g++) {
        put32(region, NWORKERS_AT, garbage[g]);
        ck_assert_uint_eq(stats_nworkers(s), 3);
        ck_assert_ptr_nonnull(stats_worker(s, 2));
        ck_assert_ptr_null(stats_worker(s, 3));
        ck_assert_uint_eq(stats_total(s, ST_FULL), 1);
        struct stats_pool p;
        stats_pool(s, &p);
        ck_assert_uint_eq(p.starting, 1);
        char buf[8192] = "";
        FILE *f = fmemopen(buf, sizeof buf, "w");
        stats_print(s, f);
        fclose(f);
        ck_assert_msg(strstr(buf, "\nworker=2 pid=1 "), "%s", buf);
    }
    /* Whatever the region says, a reader takes the slots that fit in its
     * size (the segment's header says it, checked against the file). */
    for (size_t g = 0; g < sizeof garbage / sizeof garbage[0]; g++) {
        put32(region, NWORKERS_AT, garbage[g]);
        struct stats *t = stats_open(region, size);
        ck_assert_ptr_nonnull(t);
        ck_assert_uint_eq(stats_nworkers(t), 3);
        ck_assert_uint_eq(stats_total(t, ST_FULL), 1);
        stats_free(t);
    }
    ck_assert_ptr_null(stats_open(region, stats_region_size(1) - 1));
    struct stats *t = stats_open(region, stats_region_size(2) + 10);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(stats_nworkers(t), 2);
    stats_free(t);
    stats_free(s);
    munmap(region, size);
}
END_TEST

/* A state out of range, or no slot, reads as WS_NONE. */
START_TEST(garbage_state)
{
    size_t size = stats_region_size(1);
    void *region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct stats *s = stats_init(region, 1);
    struct stats_worker *w = stats_worker(s, 0);
    ck_assert_int_eq(stats_state(NULL), WS_NONE);
    stats_set_state(w, WS_RELAY, "1.2.3.4");
    ck_assert_int_eq(stats_state(w), WS_RELAY);
    w->state = 77;
    ck_assert_int_eq(stats_state(w), WS_NONE);
    w->state = UINT32_MAX;
    ck_assert_int_eq(stats_state(w), WS_NONE);
    ck_assert_str_eq(stats_state_name((enum worker_state)77), "?");
    stats_free(s);
    munmap(region, size);
}
END_TEST

/* A client field with no NUL, or with escapes, prints as bounded text. */
START_TEST(client_text)
{
    size_t size = stats_region_size(2);
    void *region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct stats *s = stats_init(region, 2);
    struct stats_worker *w = stats_worker(s, 0);
    w->pid = 5;
    memset(w->client, 'A', sizeof w->client);
    w->client[3] = '\x1b';
    w->client[4] = '\n';
    memset(stats_worker(s, 1), 'B', sizeof *w);     /* what follows: no NUL either */
    char buf[16384] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    stats_print(s, f);
    fclose(f);
    char want[80];
    snprintf(want, sizeof want, "client=AAA??%.*s ", (int)sizeof w->client - 5,
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    ck_assert_msg(strstr(buf, want), "%s", buf);
    ck_assert_msg(!strchr(buf, '\x1b'), "%s", buf);
    char out[8];
    ck_assert_str_eq(stats_text("abc\"d", 5, out, sizeof out), "abc?d");
    ck_assert_str_eq(stats_text("abcdefghij", 10, out, sizeof out), "abcdefg");
    ck_assert_str_eq(stats_text("ab\0cd", 5, out, sizeof out), "ab");
    ck_assert_str_eq(stats_text("\xff\x7f", 2, out, sizeof out), "??");
    stats_free(s);
    munmap(region, size);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, per_worker_and_total);
    tcase_add_test(tc, garbage_in_region);
    tcase_add_test(tc, garbage_state);
    tcase_add_test(tc, client_text);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
