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
    munmap(region, size);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, per_worker_and_total);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
