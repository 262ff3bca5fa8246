#include "unit.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "listen.h"

static char err[256];

static int open_on(const char *text)
{
    struct addr a;
    ck_assert_int_eq(addr_parse(text, false, &a, err, sizeof err), 0);
    return listen_open(&a, err, sizeof err);
}

/* A port that was free a moment ago. */
static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    int port = listen_port(fd);
    close(fd);
    return port;
}

START_TEST(v4_and_v6_same_port)
{
    char a4[64], a6[64];
    int port = free_port();
    snprintf(a4, sizeof a4, "127.0.0.1:%d", port);
    snprintf(a6, sizeof a6, "[::1]:%d", port);
    int fd4 = open_on(a4);
    ck_assert_msg(fd4 >= 0, "%s", err);
    int fd6 = open_on(a6);
    ck_assert_msg(fd6 >= 0, "%s", err);
    ck_assert_int_eq(listen_port(fd4), port);
    ck_assert_int_eq(listen_port(fd6), port);
    /* Non-blocking: an accept with nobody waiting returns at once. */
    ck_assert_int_eq(accept(fd4, NULL, NULL), -1);
    ck_assert_int_eq(errno, EAGAIN);
    close(fd4);
    close(fd6);
}
END_TEST

START_TEST(in_use)
{
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", free_port());
    int fd = open_on(a);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(open_on(a), -1);
    ck_assert_msg(strstr(err, "cannot listen on 127.0.0.1:") && strstr(err, "Address already in use"),
                  "%s", err);
    close(fd);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("listen");
    TCase *tc = tcase_create("listen");
    tcase_add_test(tc, v4_and_v6_same_port);
    tcase_add_test(tc, in_use);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
