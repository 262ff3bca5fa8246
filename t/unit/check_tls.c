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

START_TEST(load_errors)
{
    ck_assert_ptr_null(pair_server_ctx("/nonexistent.pem", "/nonexistent.key", err, sizeof err));
    ck_assert_msg(strstr(err, "test.conf:9: certificate '/nonexistent.pem': No such file"), "%s", err);
    ck_assert_ptr_null(pair_server_ctx(unit_cert("example.test.pem"), "/nokey", err, sizeof err));
    ck_assert_msg(strstr(err, "key '/nokey': No such file"), "%s", err);
    ck_assert_ptr_null(pair_server_ctx(unit_cert("garbage.pem"), unit_cert("example.test.key"),
                                       err, sizeof err));
    ck_assert_msg(strstr(err, "cannot load a PEM chain"), "%s", err);
    ck_assert_ptr_null(pair_server_ctx(unit_cert("example.test.pem"), unit_cert("garbage.pem"),
                                       err, sizeof err));
    ck_assert_msg(strstr(err, "cannot load a PEM private key"), "%s", err);
    ck_assert_ptr_null(pair_server_ctx(unit_cert("example.test.pem"), unit_cert("mismatch.key"),
                                       err, sizeof err));
    ck_assert_msg(strstr(err, "does not match certificate"), "%s", err);
    /* An RSA certificate with an EC key. */
    ck_assert_ptr_null(pair_server_ctx(unit_cert("rsa.test.pem"), unit_cert("example.test.key"),
                                       err, sizeof err));
    ck_assert_msg(strstr(err, "does not match"), "%s", err);
    WOLFSSL_CTX *rsa = pair_server_ctx(unit_cert("rsa.test.pem"), unit_cert("rsa.test.key"), err,
                                       sizeof err);
    ck_assert_msg(rsa != NULL, "%s", err);
    tls_ctx_free(rsa);
}
END_TEST

START_TEST(policy_errors)
{
    struct tls_conf tc = pair_tls_conf();
    struct cert_conf cc = { .cert = (char *)unit_cert("example.test.pem"),
                            .key = (char *)unit_cert("example.test.key"), .where = "x:1" };
    struct frontend_conf fe = { .name = "t", .ncerts = 1, .certs = &cc, .where = "x:2" };
    tc.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:FOO-BAR";
    ck_assert_ptr_null(tls_server_ctx_new(&tc, &fe, err, sizeof err));
    ck_assert_msg(strstr(err, "test.conf:2: tls.ciphers: this wolfSSL has no cipher 'FOO-BAR'"), "%s", err);
    tc = pair_tls_conf();
    tc.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS13-NOPE";
    ck_assert_ptr_null(tls_server_ctx_new(&tc, &fe, err, sizeof err));
    ck_assert_msg(strstr(err, "test.conf:3: tls.ciphersuites: this wolfSSL has no suite 'TLS13-NOPE'"), "%s", err);
    tc = pair_tls_conf();
    fe.ncerts = 0;
    ck_assert_ptr_null(tls_server_ctx_new(&tc, &fe, err, sizeof err));
    ck_assert_msg(strstr(err, "has no certificate"), "%s", err);
}
END_TEST

/* A frontend: every certificate loaded; a client_ca that holds no
 * certificate is an error naming it; an OCSP response for another
 * certificate is not stapled, but the frontend is made. */
START_TEST(frontend_build)
{
    struct tls_conf tc = pair_tls_conf();
    struct cert_conf cc[2] = {
        { .cert = (char *)unit_cert("example.test.pem"), .key = (char *)unit_cert("example.test.key"),
          .where = "x:1" },
        { .cert = (char *)unit_cert("rsa.test.pem"), .key = (char *)unit_cert("rsa.test.key"),
          .ocsp_file = (char *)unit_cert("a.test.ocsp.der"), .where = "x:2" },
    };
    struct frontend_conf fe = { .name = "t", .ncerts = 2, .certs = cc, .where = "x:3" };
    size_t stapling = 9;
    struct tls_frontend *f = tls_frontend_new(&tc, &fe, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_uint_eq(tls_frontend_certs(f, &stapling), 2);
    ck_assert_uint_eq(stapling, 0);
    tls_frontend_free(f);
    fe.verify_client = VERIFY_CLIENT_REQUIRED;
    fe.client_ca = (char *)unit_cert("garbage.pem");
    fe.verify_depth = 4;
    ck_assert_ptr_null(tls_frontend_new(&tc, &fe, err, sizeof err));
    ck_assert_msg(strstr(err, "client_ca") && strstr(err, "garbage.pem"), "%s", err);
}
END_TEST

struct accept_job {
    int fd;
    double timeout;
    enum tls_io result;
    struct tls_conn conn;
    char reason[256];
    int64_t took;
};

static void *accept_thread(void *arg)
{
    struct accept_job *j = arg;
    ck_assert_int_eq(tls_conn_init(&j->conn, sctx, j->fd), 0);
    int64_t t0 = clock_now_ms();
    j->result = tls_conn_accept(&j->conn, j->timeout, j->reason, sizeof j->reason);
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
    ck_assert_str_eq(tls_conn_version(&j.conn), want);
    /* The default order's first suite: AES-GCM with AES-NI, else ChaCha20. */
#ifdef WOLFSSL_AESNI
    ck_assert_ptr_nonnull(strstr(tls_conn_cipher(&j.conn), "GCM"));
#else
    ck_assert_ptr_nonnull(strstr(tls_conn_cipher(&j.conn), "CHACHA20"));
#endif
    ck_assert_str_eq(tls_conn_sni(&j.conn), "-");
    /* Data both ways through the blocking-with-deadline path. */
    char buf[16];
    size_t n = 0;
    ck_assert_int_eq(wolfSSL_write(c, "ping", 4), 4);
    ck_assert_int_eq(tls_conn_read(&j.conn, buf, sizeof buf, &n), TLS_IO_OK);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(tls_conn_write(&j.conn, "pong", 4), TLS_IO_OK);
    ck_assert_int_eq(wolfSSL_read(c, buf, sizeof buf), 4);
    ck_assert(memcmp(buf, "pong", 4) == 0);
    wolfSSL_free(c);
    tls_conn_free(&j.conn);
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
    tls_conn_free(&j.conn);
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
    tls_conn_free(&j.conn);
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
    tls_conn_free(&j.conn);
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
    tls_conn_free(&j.conn);
    close(sv[0]);
}
END_TEST

START_TEST(library_version)
{
    ck_assert_ptr_nonnull(strstr(tls_library_version(), "wolfSSL 5."));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, load_errors);
    tcase_add_test(tc, policy_errors);
    tcase_add_test(tc, frontend_build);
    tcase_add_test(tc, handshake_tls12);
    tcase_add_test(tc, handshake_tls13);
    tcase_add_test(tc, handshake_timeout_silent);
    tcase_add_test(tc, handshake_timeout_drip);
    tcase_add_test(tc, handshake_garbage);
    tcase_add_test(tc, handshake_peer_closes);
    tcase_add_test(tc, library_version);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
