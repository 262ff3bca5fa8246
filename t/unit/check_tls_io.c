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
    int fd;
    double timeout;
    enum tls_io result;
    struct tls_conn *conn;
    char reason[256];
    int64_t took;
};

static void *accept_thread(void *arg)
{
    struct accept_job *j = arg;
    ck_assert_ptr_nonnull(j->conn = tls_conn_new(sctx, j->fd));
    int64_t t0 = clock_now_ms();
    j->result = tls_conn_accept(j->conn, j->timeout, j->reason, sizeof j->reason);
    j->took = clock_now_ms() - t0;
    pair_thread_done();
    return NULL;
}

static void handshake_version(int version, const char *want)
{
    int sv[2];
    pthread_t t;
    struct accept_job j = { .timeout = 5 };
    pair_sockets(sv);
    j.fd = sv[0];
    pthread_create(&t, NULL, accept_thread, &j);
    WOLFSSL *c = pair_client(sv[1], version);
    ck_assert_int_eq(wolfSSL_connect(c), WOLFSSL_SUCCESS);
    pthread_join(t, NULL);
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
    tls_conn_free(j.conn);
    close(sv[0]);
    close(sv[1]);
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
    int sv[2];
    pthread_t t;
    struct accept_job j = { .timeout = 0.3 };
    pair_sockets(sv);
    j.fd = sv[0];
    pthread_create(&t, NULL, accept_thread, &j);
    pthread_join(t, NULL);                 /* the client never speaks */
    ck_assert_int_eq(j.result, TLS_IO_TIMEOUT);
    ck_assert_str_eq(j.reason, "timed out");
    ck_assert_msg(j.took >= 290 && j.took < 1500, "took %lld ms", (long long)j.took);
    tls_conn_free(j.conn);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(handshake_timeout_drip)
{
    /* A record header, then a byte every 100 ms: each read makes progress,
     * but the absolute deadline still ends the handshake. */
    int sv[2];
    pthread_t t;
    struct accept_job j = { .timeout = 0.5 };
    pair_sockets(sv);
    j.fd = sv[0];
    pthread_create(&t, NULL, accept_thread, &j);
    ck_assert_int_eq(write(sv[1], "\x16\x03\x01\x01\x00", 5), 5);
    for (int i = 0; i < 15; i++) {
        if (write(sv[1], "\x01", 1) != 1)
            break;
        usleep(100000);
    }
    pthread_join(t, NULL);
    ck_assert_int_eq(j.result, TLS_IO_TIMEOUT);
    ck_assert_msg(j.took >= 490 && j.took < 1500, "took %lld ms", (long long)j.took);
    tls_conn_free(j.conn);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(handshake_garbage)
{
    int sv[2];
    pthread_t t;
    struct accept_job j = { .timeout = 2 };
    pair_sockets(sv);
    j.fd = sv[0];
    pthread_create(&t, NULL, accept_thread, &j);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(write(sv[1], req, sizeof req - 1), (ssize_t)sizeof req - 1);
    pthread_join(t, NULL);
    ck_assert_int_eq(j.result, TLS_IO_ERROR);
    ck_assert_msg(j.took < 1000, "took %lld ms", (long long)j.took);
    ck_assert_msg(strlen(j.reason) > 0, "no reason");
    tls_conn_free(j.conn);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(handshake_peer_closes)
{
    int sv[2];
    pthread_t t;
    struct accept_job j = { .timeout = 2 };
    pair_sockets(sv);
    j.fd = sv[0];
    pthread_create(&t, NULL, accept_thread, &j);
    close(sv[1]);
    pthread_join(t, NULL);
    ck_assert_int_eq(j.result, TLS_IO_CLOSED);
    ck_assert_str_eq(j.reason, "connection closed by peer");
    tls_conn_free(j.conn);
    close(sv[0]);
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
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
