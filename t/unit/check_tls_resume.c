/* tls_resume.c: sessions and tickets shared by the workers. */
#include "tlspair.h"

static char err[512];

static void setup(void)
{
    tls_global_init();
}

static void teardown(void)
{
    tls_global_cleanup();
}

START_TEST(resumed_names)
{
    ck_assert_str_eq(tls_resumed_name(TLS_RESUMED_NO), "no");
    ck_assert_str_eq(tls_resumed_name(TLS_RESUMED_ID), "id");
    ck_assert_str_eq(tls_resumed_name(TLS_RESUMED_TICKET), "ticket");
}
END_TEST

struct accept_job {
    WOLFSSL_CTX *ctx;
    int fd;
    enum tls_io result;
    enum tls_resumed resumed;
};

static void *accept_thread(void *arg)
{
    struct accept_job *j = arg;
    struct tls_conn *conn = tls_conn_new(j->ctx, j->fd);
    char reason[256];
    ck_assert_ptr_nonnull(conn);
    j->result = tls_conn_accept(conn, 5, reason, sizeof reason);
    j->resumed = tls_conn_resumed(conn);
    tls_conn_free(conn);
    pair_thread_done();
    return NULL;
}

/* A context without resumption: every handshake is a full one. */
START_TEST(full_handshake)
{
    WOLFSSL_CTX *sctx = pair_server_ctx(unit_cert("example.test.pem"),
                                        unit_cert("example.test.key"), err, sizeof err);
    ck_assert_msg(sctx != NULL, "%s", err);
    int sv[2];
    pthread_t t;
    struct accept_job j = { .ctx = sctx };
    pair_sockets(sv);
    j.fd = sv[0];
    pthread_create(&t, NULL, accept_thread, &j);
    WOLFSSL *c = pair_client(sv[1], 2);
    ck_assert_int_eq(wolfSSL_connect(c), WOLFSSL_SUCCESS);
    pthread_join(t, NULL);
    ck_assert_int_eq(j.result, TLS_IO_OK);
    ck_assert_int_eq(j.resumed, TLS_RESUMED_NO);
    wolfSSL_free(c);
    close(sv[0]);
    close(sv[1]);
    tls_ctx_free(sctx);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_resume");
    TCase *tc = tcase_create("tls_resume");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, resumed_names);
    tcase_add_test(tc, full_handshake);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
