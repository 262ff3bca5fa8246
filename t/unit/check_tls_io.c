/* tls_io.c: handshakes, reads and writes bounded by the deadline. */
#include "tlspair.h"
#include "clock.h"

static char err[512];
static WOLFSSL_CTX *sctx;

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

struct accept_job {
    int sv[2];              /* the server's end, the client's end */
    pthread_t thread;
    double timeout;
    enum tls_io result;
    struct tls_conn *conn;
    char reason[256];
    int64_t took;
};

static void *accept_thread(void *arg)
{
    struct accept_job *j = arg;
    ck_assert_ptr_nonnull(j->conn = tls_conn_new(sctx, j->sv[0]));
    int64_t t0 = clock_now_ms();
    j->result = tls_conn_accept(j->conn, j->timeout, j->reason, sizeof j->reason);
    j->took = clock_now_ms() - t0;
    pair_thread_done();
    return NULL;
}

/* A server handshake in a thread, with the test as the client on j->sv[1]. */
static void start_accept(struct accept_job *j, double timeout)
{
    memset(j, 0, sizeof *j);
    j->timeout = timeout;
    pair_sockets(j->sv);
    pthread_create(&j->thread, NULL, accept_thread, j);
}

static void end_accept(struct accept_job *j)
{
    tls_conn_free(j->conn);
    close(j->sv[0]);
    if (j->sv[1] >= 0)
        close(j->sv[1]);
}

static void handshake_version(int version, const char *want)
{
    struct accept_job j;
    start_accept(&j, 5);
    WOLFSSL *c = pair_client(j.sv[1], version);
    ck_assert_int_eq(wolfSSL_connect(c), WOLFSSL_SUCCESS);
    pthread_join(j.thread, NULL);
    ck_assert_int_eq(j.result, TLS_IO_OK);
    ck_assert_str_eq(tls_conn_version(j.conn), want);
    /* The default order's first suite: AES-GCM with AES-NI, else ChaCha20. */
#ifdef WOLFSSL_AESNI
    ck_assert_ptr_nonnull(strstr(tls_conn_cipher(j.conn), "GCM"));
#else
    ck_assert_ptr_nonnull(strstr(tls_conn_cipher(j.conn), "CHACHA20"));
#endif
    ck_assert_str_eq(tls_conn_sni(j.conn), "-");
    /* Data both ways through the blocking-with-deadline path. */
    char buf[16];
    size_t n = 0;
    ck_assert_int_eq(wolfSSL_write(c, "ping", 4), 4);
    ck_assert_int_eq(tls_conn_read(j.conn, buf, sizeof buf, &n), TLS_IO_OK);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(tls_conn_write(j.conn, "pong", 4), TLS_IO_OK);
    ck_assert_int_eq(wolfSSL_read(c, buf, sizeof buf), 4);
    ck_assert(memcmp(buf, "pong", 4) == 0);
    wolfSSL_free(c);
    end_accept(&j);
}

START_TEST(handshake_tls12)
{
    handshake_version(2, "TLSv1.2");
}
END_TEST

START_TEST(handshake_tls13)
{
    handshake_version(3, "TLSv1.3");
}
END_TEST

START_TEST(handshake_timeout_silent)
{
    struct accept_job j;
    start_accept(&j, 0.3);
    pthread_join(j.thread, NULL);                 /* the client never speaks */
    ck_assert_int_eq(j.result, TLS_IO_TIMEOUT);
    ck_assert_str_eq(j.reason, "timed out");
    ck_assert_msg(j.took >= 290 && j.took < 1500, "took %lld ms", (long long)j.took);
    end_accept(&j);
}
END_TEST

START_TEST(handshake_timeout_drip)
{
    /* A record header, then a byte every 100 ms: each read makes progress,
     * but the absolute deadline still ends the handshake. */
    struct accept_job j;
    start_accept(&j, 0.5);
    ck_assert_int_eq(write(j.sv[1], "\x16\x03\x01\x01\x00", 5), 5);
    for (int i = 0; i < 15; i++) {
        if (write(j.sv[1], "\x01", 1) != 1)
            break;
        usleep(100000);
    }
    pthread_join(j.thread, NULL);
    ck_assert_int_eq(j.result, TLS_IO_TIMEOUT);
    ck_assert_msg(j.took >= 490 && j.took < 1500, "took %lld ms", (long long)j.took);
    end_accept(&j);
}
END_TEST

START_TEST(handshake_garbage)
{
    struct accept_job j;
    start_accept(&j, 2);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(write(j.sv[1], req, sizeof req - 1), (ssize_t)sizeof req - 1);
    pthread_join(j.thread, NULL);
    ck_assert_int_eq(j.result, TLS_IO_ERROR);
    ck_assert_msg(j.took < 1000, "took %lld ms", (long long)j.took);
    ck_assert_msg(strlen(j.reason) > 0, "no reason");
    end_accept(&j);
}
END_TEST

START_TEST(handshake_peer_closes)
{
    struct accept_job j;
    start_accept(&j, 2);
    close(j.sv[1]);
    j.sv[1] = -1;
    pthread_join(j.thread, NULL);
    ck_assert_int_eq(j.result, TLS_IO_CLOSED);
    ck_assert_str_eq(j.reason, "connection closed by peer");
    end_accept(&j);
}
END_TEST

/* A close_notify read once stays read, even after a write to the peer. */
START_TEST(close_notify_stays)
{
    struct accept_job j;
    start_accept(&j, 5);
    WOLFSSL *c = pair_client(j.sv[1], 3);
    ck_assert_int_eq(wolfSSL_connect(c), WOLFSSL_SUCCESS);
    pthread_join(j.thread, NULL);
    ck_assert_int_eq(j.result, TLS_IO_OK);
    char buf[16];
    size_t n = 0;
    ck_assert_int_eq(wolfSSL_write(c, "ping", 4), 4);
    wolfSSL_shutdown(c);
    ck_assert_int_eq(tls_conn_read(j.conn, buf, sizeof buf, &n), TLS_IO_OK);
    ck_assert_int_eq(tls_conn_read(j.conn, buf, sizeof buf, &n), TLS_IO_CLOSED);
    tls_conn_set_nonblock(j.conn, true);
    ck_assert_int_eq(tls_conn_write(j.conn, "pong", 4), TLS_IO_OK);
    ck_assert_int_eq(tls_conn_read(j.conn, buf, sizeof buf, &n), TLS_IO_CLOSED);
    wolfSSL_free(c);
    end_accept(&j);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_io");
    TCase *tcase = tcase_create("tls_io");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_add_test(tcase, handshake_tls12);
    tcase_add_test(tcase, handshake_tls13);
    tcase_add_test(tcase, handshake_timeout_silent);
    tcase_add_test(tcase, handshake_timeout_drip);
    tcase_add_test(tcase, handshake_garbage);
    tcase_add_test(tcase, handshake_peer_closes);
    tcase_add_test(tcase, close_notify_stays);
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
