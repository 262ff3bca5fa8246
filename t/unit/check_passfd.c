#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "passfd.h"

static int sp[2];

static void setup(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp), 0);
}

static void teardown(void)
{
    close(sp[0]);
    close(sp[1]);
}

START_TEST(message_and_fds)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int fds[2] = { p[0], p[1] }, got[PASSFD_MAX], n = -1;
    ck_assert_int_eq(passfd_send(sp[0], "hello", 5, fds, 2), 0);
    char buf[16];
    ck_assert_int_eq(passfd_recv(sp[1], buf, sizeof buf, got, PASSFD_MAX, &n), 5);
    ck_assert_int_eq(n, 2);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    ck_assert(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
    ck_assert_int_eq(write(got[1], "x", 1), 1);     /* the same pipe */
    char c = 0;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    ck_assert_int_eq(c, 'x');
    for (int i = 0; i < 2; i++) {
        close(got[i]);
        close(fds[i]);
    }
}
END_TEST

START_TEST(none_waiting)
{
    char buf[4];
    int got[1], n = 7;
    ck_assert_int_eq(passfd_recv(sp[1], buf, sizeof buf, got, 1, &n), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(too_long_closes_its_fds)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(passfd_send(sp[0], "0123456789", 10, &p[1], 1), 0);
    close(p[1]);
    char buf[4];
    int got[1], n = 7;
    ck_assert_int_eq(passfd_recv(sp[1], buf, sizeof buf, got, 1, &n), -1);
    ck_assert_int_eq(errno, EMSGSIZE);
    ck_assert_int_eq(n, 0);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 0);         /* every write end is closed */
    close(p[0]);
}
END_TEST

START_TEST(extra_fds_closed)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int fds[2] = { p[1], p[1] }, got[1], n = 0;
    ck_assert_int_eq(passfd_send(sp[0], "x", 1, fds, 2), 0);
    close(p[1]);
    char buf[4];
    ck_assert_int_eq(passfd_recv(sp[1], buf, sizeof buf, got, 1, &n), 1);
    ck_assert_int_eq(n, 1);
    close(got[0]);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 0);
    close(p[0]);
}
END_TEST

START_TEST(bad_count)
{
    int fds[PASSFD_MAX + 1] = { 0 };
    ck_assert_int_eq(passfd_send(sp[0], "x", 1, fds, PASSFD_MAX + 1), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("passfd");
    TCase *tc = tcase_create("passfd");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, message_and_fds);
    tcase_add_test(tc, none_waiting);
    tcase_add_test(tc, too_long_closes_its_fds);
    tcase_add_test(tc, extra_fds_closed);
    tcase_add_test(tc, bad_count);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
