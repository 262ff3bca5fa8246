#include "unit.h"

#include <sys/wait.h>

#include "shm.h"

static char err[512];

START_TEST(create_and_regions)
{
    struct shm s;
    size_t sizes[SHM_NREGIONS] = { 100000, 3000, 1 };
    ck_assert_msg(shm_create(&s, sizes, err, sizeof err) == 0, "%s", err);
    size_t sz;
    char *a = shm_region(&s, SHM_SESSCACHE, &sz);
    ck_assert_uint_eq(sz, 100000);
    char *b = shm_region(&s, SHM_TICKETKEYS, &sz);
    ck_assert_uint_eq(sz, 3000);
    ck_assert(b >= a + 100000);                 /* regions do not overlap */
    ck_assert(((uintptr_t)a & 4095) == 0);      /* page aligned */
    memset(a, 0xab, 100000);
    memset(b, 0xcd, 3000);
    ck_assert_uint_eq((unsigned char)a[99999], 0xab);
    shm_detach(&s);
}
END_TEST

START_TEST(shared_after_fork_and_attach)
{
    struct shm s, t;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    int *p = shm_region(&s, SHM_STATS, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        *p = 42;
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    ck_assert_int_eq(*p, 42);
    /* A second mapping of the same fd (as a new binary after exec would
     * make) sees the same bytes. */
    ck_assert_msg(shm_attach(&t, dup(s.fd), err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(*(int *)shm_region(&t, SHM_STATS, NULL), 42);
    /* The fd survives exec: no close-on-exec flag. */
    ck_assert_int_eq(fcntl(s.fd, F_GETFD) & FD_CLOEXEC, 0);
    shm_detach(&t);
    shm_detach(&s);
}
END_TEST

START_TEST(attach_by_pid)
{
    struct shm s, t;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    ck_assert_msg(shm_attach_pid(&t, getpid(), err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(t.hdr->creator_pid, getpid());
    shm_detach(&t);
    shm_detach(&s);
    ck_assert_int_eq(shm_attach_pid(&t, 1, err, sizeof err), -1);
}
END_TEST

START_TEST(refuses_foreign_layout)
{
    struct shm s, t;
    size_t sizes[SHM_NREGIONS] = { 4096, 4096, 4096 };
    ck_assert(shm_create(&s, sizes, err, sizeof err) == 0);
    s.hdr->layout_version = SHM_LAYOUT_VERSION + 1;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "layout version this binary does not know"), "%s", err);
    s.hdr->layout_version = SHM_LAYOUT_VERSION;
    s.hdr->magic = 0x1234;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "bad magic"), "%s", err);
    s.hdr->magic = SHM_MAGIC;
    s.hdr->region[SHM_STATS].size = 1u << 30;
    ck_assert_int_eq(shm_attach(&t, dup(s.fd), err, sizeof err), -1);
    ck_assert_msg(strstr(err, "outside the segment"), "%s", err);
    /* Not a segment at all. */
    int fd = memfd_create("other", 0);
    ck_assert_int_eq(ftruncate(fd, 8192), 0);
    ck_assert_int_eq(shm_attach(&t, fd, err, sizeof err), -1);
    close(fd);
    shm_detach(&s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("shm");
    TCase *tc = tcase_create("shm");
    tcase_add_test(tc, create_and_regions);
    tcase_add_test(tc, shared_after_fork_and_attach);
    tcase_add_test(tc, attach_by_pid);
    tcase_add_test(tc, refuses_foreign_layout);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
