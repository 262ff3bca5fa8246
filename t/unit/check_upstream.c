#include "unit.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "listen.h"
#include "tls.h"
#include "upstream.h"

static char why[256];

/* A loopback listener on a free port; *a gets its address. */
static int listener(struct addr *a, int backlog)
{
    struct sockaddr_in *s = (struct sockaddr_in *)&a->sa;
    memset(a, 0, sizeof *a);
    s->sin_family = AF_INET;
    s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->len = sizeof *s;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)s, sizeof *s), 0);
    ck_assert_int_eq(listen(fd, backlog), 0);
    s->sin_port = htons((uint16_t)listen_port(fd));
    return fd;
}

START_TEST(pick_first)
{
    struct server_conf sv[2] = { { .address = "a" }, { .address = "b" } };
    struct upstream_conf up = { .name = "u", .nservers = 2, .servers = sv };
    ck_assert_str_eq(upstream_pick(&up)->address, "a");
}
END_TEST

START_TEST(connect_ok)
{
    struct addr a;
    enum upstream_err e;
    int l = listener(&a, 8);
    int fd = upstream_connect(&a, 1.0, &e, why, sizeof why);
    ck_assert_msg(fd >= 0, "%s", why);
    ck_assert_int_eq(e, UPSTREAM_OK);
    close(fd);
    close(l);
}
END_TEST

START_TEST(connect_refused)
{
    struct addr a;
    enum upstream_err e;
    close(listener(&a, 8));          /* the port is free again: nothing listens */
    ck_assert_int_eq(upstream_connect(&a, 1.0, &e, why, sizeof why), -1);
    ck_assert_int_eq(e, UPSTREAM_REFUSED);
    ck_assert_str_eq(why, "Connection refused");
    ck_assert_str_eq(upstream_err_outcome(e), "backend-refused");
}
END_TEST

START_TEST(connect_timeout)
{
    /* A listener whose accept queue is full drops further SYNs, so a
     * connect to it hangs: the timeout must end it. */
    struct addr a;
    enum upstream_err e;
    int l = listener(&a, 0), held[8], n = 0, fd = -1;
    int64_t t0 = 0;
    for (; n < 8; n++) {
        t0 = tls_now_ms();
        fd = upstream_connect(&a, 0.3, &e, why, sizeof why);
        if (fd < 0)
            break;
        held[n] = fd;
    }
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(e, UPSTREAM_TIMEOUT);
    ck_assert_str_eq(why, "connect timed out");
    int64_t took = tls_now_ms() - t0;
    ck_assert_msg(took >= 250 && took < 2000, "took %lld ms", (long long)took);
    while (n-- > 0)
        close(held[n]);
    close(l);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("upstream");
    tcase_add_test(tc, pick_first);
    tcase_add_test(tc, connect_ok);
    tcase_add_test(tc, connect_refused);
    tcase_add_test(tc, connect_timeout);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
