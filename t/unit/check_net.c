#include "unit.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "listen.h"
#include "net.h"

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

static void nonblocking_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

static int64_t since(int64_t t0)
{
    return clock_now_ms() - t0;
}

START_TEST(poll_timeout_clamp)
{
    int64_t now = clock_now_ms();
    ck_assert_int_eq(net_poll_timeout(now - 5), 0);
    ck_assert_int_eq(net_poll_timeout(now), 0);
    int ms = net_poll_timeout(now + 500);
    ck_assert_msg(ms > 400 && ms <= 500, "%d", ms);
    ck_assert_int_eq(net_poll_timeout(now + 10 * (int64_t)NET_POLL_MAX_MS), NET_POLL_MAX_MS);
    ck_assert_int_eq(net_poll_timeout(INT64_MAX), NET_POLL_MAX_MS);
    int64_t d = clock_deadline_ms(0.3) - now;
    ck_assert_msg(d >= 300 && d < 350, "%lld", (long long)d);
}
END_TEST

START_TEST(wait_ready_and_timeout)
{
    int sv[2];
    nonblocking_pair(sv);
    ck_assert_int_eq(net_wait(sv[0], POLLOUT, clock_deadline_ms(1)), 0);
    int64_t t0 = clock_now_ms();
    ck_assert_int_eq(net_wait(sv[0], POLLIN, t0 + 150), ETIMEDOUT);
    ck_assert_msg(since(t0) >= 150 && since(t0) < 1000, "%lld ms", (long long)since(t0));
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(net_wait(sv[0], POLLIN, clock_deadline_ms(1)), 0);
    /* A deadline that has passed times out without looking. */
    ck_assert_int_eq(net_wait(sv[0], POLLIN, clock_now_ms() - 1), ETIMEDOUT);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(poll_two_fds)
{
    int a[2], b[2];
    nonblocking_pair(a);
    nonblocking_pair(b);
    ck_assert_int_eq(write(b[1], "x", 1), 1);
    struct pollfd p[2] = { { .fd = a[0], .events = POLLIN }, { .fd = b[0], .events = POLLIN } };
    ck_assert_int_eq(net_poll(p, 2, clock_deadline_ms(1)), 0);
    ck_assert_int_eq(p[0].revents, 0);
    ck_assert(p[1].revents & POLLIN);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}
END_TEST

static void on_alarm(int sig)
{
    (void)sig;
}

/* A signal interrupts poll(): the wait goes on with the time left, and
 * ends at the deadline, not earlier and not a whole timeout later. */
START_TEST(wait_eintr_keeps_deadline)
{
    struct sigaction sa = { .sa_handler = on_alarm };     /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { .it_interval = { 0, 50000 }, .it_value = { 0, 50000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    int sv[2];
    nonblocking_pair(sv);
    int64_t t0 = clock_now_ms();
    ck_assert_int_eq(net_wait(sv[0], POLLIN, t0 + 300), ETIMEDOUT);
    int64_t took = since(t0);
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    ck_assert_msg(took >= 300 && took < 600, "took %lld ms", (long long)took);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(connect_ok_tuned)
{
    struct addr a;
    enum net_err e = NET_ERROR;
    int l = listener(&a, 8), v = 0;
    socklen_t len = sizeof v;
    int fd = net_connect(&a, clock_deadline_ms(1), &e, why, sizeof why);
    ck_assert_msg(fd >= 0, "%s", why);
    ck_assert_int_eq(e, NET_OK);
    ck_assert_str_eq(net_err_outcome(e), "ok");
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len);
    ck_assert_int_eq(v, 1);
    close(fd);
    close(l);
}
END_TEST

START_TEST(connect_refused)
{
    struct addr a;
    enum net_err e;
    close(listener(&a, 8));          /* the port is free again: nothing listens */
    ck_assert_int_eq(net_connect(&a, clock_deadline_ms(1), &e, why, sizeof why), -1);
    ck_assert_int_eq(e, NET_REFUSED);
    ck_assert_str_eq(why, "Connection refused");
    ck_assert_str_eq(net_err_outcome(e), "backend-refused");
}
END_TEST

START_TEST(connect_timeout)
{
    /* A listener whose accept queue is full drops further SYNs, so a
     * connect to it hangs: the deadline must end it. */
    struct addr a;
    enum net_err e;
    int l = listener(&a, 0), held[8], n = 0, fd = -1;
    int64_t t0 = 0;
    for (; n < 8; n++) {
        t0 = clock_now_ms();
        fd = net_connect(&a, clock_deadline_ms(0.3), &e, why, sizeof why);
        if (fd < 0)
            break;
        held[n] = fd;
    }
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(e, NET_TIMEOUT);
    ck_assert_str_eq(why, "connect timed out");
    ck_assert_str_eq(net_err_outcome(e), "backend-timeout");
    ck_assert_msg(since(t0) >= 250 && since(t0) < 2000, "took %lld ms", (long long)since(t0));
    while (n-- > 0)
        close(held[n]);
    close(l);
}
END_TEST

START_TEST(err_outcomes)
{
    ck_assert_str_eq(net_err_outcome(NET_UNREACHABLE), "backend-unreachable");
    ck_assert_str_eq(net_err_outcome(NET_ERROR), "backend-error");
}
END_TEST

#define BULK (1024 * 1024)

struct sink {
    int fd;
    size_t got;
    unsigned sum;
};

static void *drain(void *arg)
{
    struct sink *s = arg;
    unsigned char buf[8192];
    for (;;) {
        if (net_wait(s->fd, POLLIN, clock_deadline_ms(5)) != 0)
            break;
        ssize_t n = read(s->fd, buf, sizeof buf);
        if (n <= 0 && !(n < 0 && errno == EAGAIN))
            break;
        for (ssize_t i = 0; i < n; i++)
            s->sum += buf[i];
        s->got += n > 0 ? (size_t)n : 0;
    }
    return NULL;
}

/* More than a socket buffer holds: the send blocks and waits, and every
 * byte arrives. */
START_TEST(send_all_bulk)
{
    int sv[2];
    nonblocking_pair(sv);
    unsigned char *buf = malloc(BULK);
    unsigned sum = 0;
    for (size_t i = 0; i < BULK; i++)
        sum += buf[i] = (unsigned char)(i * 7);
    struct sink s = { .fd = sv[1] };
    pthread_t t;
    pthread_create(&t, NULL, drain, &s);
    ck_assert_int_eq(net_send_all(sv[0], buf, BULK, clock_deadline_ms(5), why, sizeof why), 0);
    close(sv[0]);
    pthread_join(t, NULL);
    ck_assert_uint_eq(s.got, BULK);
    ck_assert_uint_eq(s.sum, sum);
    free(buf);
    close(sv[1]);
}
END_TEST

START_TEST(send_all_timeout_and_error)
{
    int sv[2];
    nonblocking_pair(sv);
    char *buf = calloc(1, BULK);
    int64_t t0 = clock_now_ms();
    ck_assert_int_eq(net_send_all(sv[0], buf, BULK, t0 + 200, why, sizeof why), ETIMEDOUT);
    ck_assert_str_eq(why, "send timed out");
    ck_assert_msg(since(t0) >= 200 && since(t0) < 1000, "took %lld ms", (long long)since(t0));
    close(sv[1]);
    ck_assert_int_eq(net_send_all(sv[0], buf, 16, clock_deadline_ms(1), why, sizeof why), EPIPE);
    ck_assert_str_eq(why, "send: Broken pipe");
    free(buf);
    close(sv[0]);
}
END_TEST

/* The worker relies on this: a socket accepted from a tuned listener has
 * TCP_NODELAY and SO_KEEPALIVE without a setsockopt of its own. */
START_TEST(tune_inherited_by_accept)
{
    struct addr a;
    int l = listener(&a, 8), v = 0, k = 0;
    net_tune(l);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a.sa, a.len), 0);
    int s = accept(l, NULL, NULL);
    ck_assert_int_ge(s, 0);
    socklen_t len = sizeof v;
    getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &len);
    len = sizeof k;
    getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &k, &len);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(k, 1);
    close(s);
    close(c);
    close(l);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("wait");
    tcase_add_test(tc, poll_timeout_clamp);
    tcase_add_test(tc, wait_ready_and_timeout);
    tcase_add_test(tc, poll_two_fds);
    tcase_add_test(tc, wait_eintr_keeps_deadline);
    suite_add_tcase(s, tc);
    tc = tcase_create("connect");
    tcase_add_test(tc, connect_ok_tuned);
    tcase_add_test(tc, connect_refused);
    tcase_add_test(tc, connect_timeout);
    tcase_add_test(tc, err_outcomes);
    suite_add_tcase(s, tc);
    tc = tcase_create("send");
    tcase_add_test(tc, send_all_bulk);
    tcase_add_test(tc, send_all_timeout_and_error);
    tcase_add_test(tc, tune_inherited_by_accept);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
