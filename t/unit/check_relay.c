#include <fcntl.h>

#include "relay.h"
#include "clock.h"
#include "tlspair.h"

static char err[512];
static WOLFSSL_CTX *sctx;

struct relay_job {
    int client_fd, backend_fd;
    double idle;
    struct relay_result res;
    int64_t took;
};

static void *relay_thread(void *arg)
{
    struct relay_job *j = arg;
    struct tls_conn *conn = tls_conn_new(sctx, j->client_fd);
    char why[128];
    ck_assert_ptr_nonnull(conn);
    ck_assert_int_eq(tls_conn_accept(conn, 5, why, sizeof why), TLS_IO_OK);
    fcntl(j->backend_fd, F_SETFL, O_NONBLOCK);
    int64_t t0 = clock_now_ms();
    struct relay_opts o = { .idle = j->idle };
    relay_run(conn, j->backend_fd, NULL, &o, &j->res);
    j->took = clock_now_ms() - t0;
    tls_conn_free(conn);
    pair_thread_done();
    return NULL;
}

struct fixture {
    int cs[2], bs[2];
    pthread_t t;
    struct relay_job job;
    WOLFSSL *client;
    int backend;        /* the test's end of the backend connection */
};

static void start(struct fixture *f, double idle)
{
    pair_sockets(f->cs);
    pair_sockets(f->bs);
    f->job = (struct relay_job){ .client_fd = f->cs[0], .backend_fd = f->bs[0], .idle = idle };
    f->backend = f->bs[1];
    pthread_create(&f->t, NULL, relay_thread, &f->job);
    f->client = pair_client(f->cs[1], 0);
    ck_assert_int_eq(wolfSSL_connect(f->client), WOLFSSL_SUCCESS);
}

static void finish(struct fixture *f)
{
    pthread_join(f->t, NULL);
    wolfSSL_free(f->client);
    close(f->cs[0]);
    close(f->cs[1]);
    close(f->bs[0]);
    if (f->backend >= 0)
        close(f->backend);
}

static void read_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
}

static void setup(void)
{
    tls_global_init();
    sctx = pair_server_ctx(unit_cert("example.test.pem"), unit_cert("example.test.key"), err,
                           sizeof err);
    ck_assert_msg(sctx != NULL, "%s", err);
}

static void teardown(void)
{
    tls_ctx_free(sctx);
    tls_global_cleanup();
}

START_TEST(both_ways_and_client_half_close)
{
    struct fixture f;
    char buf[64];
    start(&f, 5);
    ck_assert_int_eq(wolfSSL_write(f.client, "hello", 5), 5);
    read_exact(f.backend, buf, 5);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    ck_assert_int_eq(write(f.backend, "world", 5), 5);
    ck_assert_int_eq(wolfSSL_read(f.client, buf, sizeof buf), 5);
    ck_assert(memcmp(buf, "world", 5) == 0);
    /* The client closes its sending side (FIN): the backend sees EOF... */
    shutdown(f.cs[1], SHUT_WR);
    ck_assert_int_eq(read(f.backend, buf, sizeof buf), 0);
    /* ...and can still answer. */
    ck_assert_int_eq(write(f.backend, "late reply", 10), 10);
    ck_assert_int_eq(wolfSSL_read(f.client, buf, sizeof buf), 10);
    ck_assert(memcmp(buf, "late reply", 10) == 0);
    close(f.backend);
    f.backend = -1;
    /* The backend's EOF reaches the client as close_notify. */
    ck_assert_int_le(wolfSSL_read(f.client, buf, sizeof buf), 0);
    ck_assert_int_eq(wolfSSL_get_error(f.client, 0), WOLFSSL_ERROR_ZERO_RETURN);
    finish(&f);
    ck_assert_int_eq(f.job.res.end, RELAY_DONE);
    ck_assert_uint_eq(f.job.res.to_backend, 5);
    ck_assert_uint_eq(f.job.res.to_client, 15);
    ck_assert_str_eq(relay_end_outcome(f.job.res.end), "ok");
}
END_TEST

START_TEST(client_close_notify)
{
    struct fixture f;
    char buf[64];
    start(&f, 5);
    ck_assert_int_eq(wolfSSL_write(f.client, "abc", 3), 3);
    wolfSSL_shutdown(f.client);                 /* close_notify */
    read_exact(f.backend, buf, 3);
    ck_assert_int_eq(read(f.backend, buf, sizeof buf), 0);   /* shutdown(SHUT_WR) seen */
    close(f.backend);
    f.backend = -1;
    finish(&f);
    ck_assert_int_eq(f.job.res.end, RELAY_DONE);
    ck_assert_uint_eq(f.job.res.to_backend, 3);
}
END_TEST

struct writer {
    int fd;
    size_t total;
};

static void *write_pattern(void *arg)
{
    struct writer *w = arg;
    static unsigned char buf[65536];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i % 251);
    /* Stream byte at position p is buf[p % sizeof buf]. */
    for (size_t sent = 0; sent < w->total;) {
        size_t off = sent % sizeof buf, chunk = sizeof buf - off;
        if (chunk > w->total - sent)
            chunk = w->total - sent;
        ssize_t n = write(w->fd, buf + off, chunk);
        ck_assert_int_gt(n, 0);
        sent += (size_t)n;
    }
    close(w->fd);
    return NULL;
}

START_TEST(bulk_download)
{
    /* 8 MiB backend -> client, arriving intact and in order. */
    struct fixture f;
    static unsigned char buf[RELAY_BUF];
    struct writer w;
    pthread_t t;
    size_t total = 8u << 20, got = 0, expect_pos = 0;
    int bad = 0;
    start(&f, 5);
    w.fd = f.backend;
    w.total = total;
    f.backend = -1;
    pthread_create(&t, NULL, write_pattern, &w);
    for (;;) {
        int n = wolfSSL_read(f.client, buf, sizeof buf);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++, expect_pos++)
            bad += buf[i] != (unsigned char)(expect_pos % 65536 % 251);
        got += (size_t)n;
    }
    pthread_join(t, NULL);
    shutdown(f.cs[1], SHUT_WR);
    finish(&f);
    ck_assert_uint_eq(got, total);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(f.job.res.end, RELAY_DONE);
    ck_assert_uint_eq(f.job.res.to_client, total);
}
END_TEST

START_TEST(idle_timeout)
{
    struct fixture f;
    start(&f, 0.3);
    pthread_join(f.t, NULL);
    ck_assert_int_eq(f.job.res.end, RELAY_IDLE_TIMEOUT);
    ck_assert_msg(f.job.took >= 290 && f.job.took < 1500, "took %lld", (long long)f.job.took);
    ck_assert_str_eq(relay_end_outcome(f.job.res.end), "idle-timeout");
    f.t = pthread_self();
    wolfSSL_free(f.client);
    close(f.cs[0]);
    close(f.cs[1]);
    close(f.bs[0]);
    close(f.backend);
}
END_TEST

static int hook_calls;

static void count_hook(void)
{
    hook_calls++;
}

/* The idle hook runs once, after its delay, and the idle timeout still
 * counts from the last byte. */
START_TEST(idle_hook_once)
{
    struct fixture f;
    hook_calls = 0;
    relay_set_idle_hook(count_hook, 100);
    start(&f, 0.4);
    pthread_join(f.t, NULL);
    relay_set_idle_hook(NULL, 0);
    ck_assert_int_eq(hook_calls, 1);
    ck_assert_int_eq(f.job.res.end, RELAY_IDLE_TIMEOUT);
    ck_assert_msg(f.job.took >= 390 && f.job.took < 1500, "took %lld", (long long)f.job.took);
    f.t = pthread_self();
    wolfSSL_free(f.client);
    close(f.cs[0]);
    close(f.cs[1]);
    close(f.bs[0]);
    close(f.backend);
}
END_TEST

START_TEST(client_reset)
{
    /* The client vanishes mid-stream (garbage instead of a record). */
    struct fixture f;
    start(&f, 5);
    ck_assert_int_eq(write(f.cs[1], "\x17\x03\x03\x00\x05zzzzz", 10), 10);
    pthread_join(f.t, NULL);
    ck_assert_int_eq(f.job.res.end, RELAY_CLIENT_ERROR);
    ck_assert_msg(strstr(f.job.res.reason, "client read"), "%s", f.job.res.reason);
    wolfSSL_free(f.client);
    close(f.cs[0]);
    close(f.cs[1]);
    close(f.bs[0]);
    close(f.backend);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("relay");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, both_ways_and_client_half_close);
    tcase_add_test(tc, client_close_notify);
    tcase_add_test(tc, bulk_download);
    tcase_add_test(tc, idle_timeout);
    tcase_add_test(tc, idle_hook_once);
    tcase_add_test(tc, client_reset);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
