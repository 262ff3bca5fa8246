/* tls_frontend.c: certificates by SNI, ALPN, client certificates. */
#include "tlspair.h"

#include <wolfssl/openssl/ssl.h>

#include "clienthello.h"

static char err[512];

static void setup(void)
{
    tls_global_init();
}

static void teardown(void)
{
    tls_global_cleanup();
}

/* A frontend: every certificate loaded; a client_ca that holds no
 * certificate is an error naming it. */
START_TEST(frontend_build)
{
    struct tls_conf tc = pair_tls_conf();
    struct cert_conf cc[2] = {
        { .cert = (char *)unit_cert("example.test.pem"), .key = (char *)unit_cert("example.test.key"),
          .where = "x:1" },
        { .cert = (char *)unit_cert("rsa.test.pem"), .key = (char *)unit_cert("rsa.test.key"),
          .where = "x:2" },
    };
    struct frontend_conf fe = { .name = "t", .ncerts = 2, .certs = cc, .where = "x:3" };
    size_t stapling = 9;
    struct tls_frontend *f = tls_frontend_new(&tc, &fe, NULL, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_uint_eq(tls_frontend_certs(f, &stapling), 2);
    ck_assert_uint_eq(stapling, 0);
    tls_frontend_free(f);
    fe.verify_client = VERIFY_CLIENT_REQUIRED;
    fe.client_ca = (char *)unit_cert("garbage.pem");
    fe.verify_depth = 4;
    ck_assert_ptr_null(tls_frontend_new(&tc, &fe, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "client_ca") && strstr(err, "garbage.pem"), "%s", err);
}
END_TEST

struct fe_job {
    struct tls_frontend *f;
    int fd;
    enum tls_io result;
    char sni[64], alpn[64], reason[256];
};

static void *fe_thread(void *arg)
{
    static uint8_t rbuf[CLIENT_HELLO_MAX];
    struct fe_job *j = arg;
    struct tls_conn *conn = NULL;
    fcntl(j->fd, F_SETFL, O_NONBLOCK);
    j->result = tls_frontend_accept(j->f, &conn, j->fd, rbuf, sizeof rbuf, 5, j->reason,
                                    sizeof j->reason);
    const char *alpn = tls_conn_alpn(conn);
    snprintf(j->sni, sizeof j->sni, "%s", tls_conn_sni(conn));
    snprintf(j->alpn, sizeof j->alpn, "%s", alpn ? alpn : "-");
    tls_conn_free(conn);
    pair_thread_done();
    return NULL;
}

/* A handshake with f sending sni and offering ALPN protos (wolfSSL's
 * comma list); the CN of the certificate the client got, "" if none. */
static void handshake(struct fe_job *j, const char *sni, const char *protos, char *cn,
                      size_t cnlen)
{
    int sv[2];
    pthread_t t;
    pair_sockets(sv);
    j->fd = sv[0];
    pthread_create(&t, NULL, fe_thread, j);
    WOLFSSL *c = pair_client(sv[1], 3);
    wolfSSL_UseSNI(c, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni));
    if (protos)
        wolfSSL_UseALPN(c, (char *)protos, (unsigned)strlen(protos),
                        WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    *cn = '\0';
    if (wolfSSL_connect(c) == WOLFSSL_SUCCESS) {
        WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(c);
        wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn,
                                          (int)cnlen);
        wolfSSL_X509_free(x);
    }
    pthread_join(t, NULL);
    wolfSSL_free(c);
    close(sv[0]);
    close(sv[1]);
}

/* The certificate by SNI (exact names, any case; else the first), ALPN by
 * the frontend's order, and strict_sni's refusal. */
START_TEST(sni_and_alpn)
{
    struct tls_conf tc = pair_tls_conf();
    struct cert_conf cc[2] = {
        { .cert = (char *)unit_cert("a.test.pem"), .key = (char *)unit_cert("a.test.key"),
          .where = "x:1" },
        { .cert = (char *)unit_cert("b.test.pem"), .key = (char *)unit_cert("b.test.key"),
          .where = "x:2" },
    };
    char *alpn[] = { "h2", "http/1.1" };
    struct frontend_conf fe = { .name = "t", .ncerts = 2, .certs = cc, .where = "x:3",
                                .nalpn = 2, .alpn = alpn };
    struct fe_job j = { .f = tls_frontend_new(&tc, &fe, NULL, err, sizeof err) };
    char cn[64];
    ck_assert_msg(j.f != NULL, "%s", err);
    handshake(&j, "WWW.B.test", "http/1.1,h2", cn, sizeof cn);
    ck_assert_int_eq(j.result, TLS_IO_OK);
    ck_assert_str_eq(cn, "b.test");
    ck_assert_str_eq(j.sni, "www.b.test");     /* as the log shows it */
    ck_assert_str_eq(j.alpn, "h2");
    handshake(&j, "other.test", "spdy/1", cn, sizeof cn);
    ck_assert_int_eq(j.result, TLS_IO_OK);
    ck_assert_str_eq(cn, "a.test");
    ck_assert_str_eq(j.alpn, "-");
    tls_frontend_free(j.f);
    fe.strict_sni = true;
    ck_assert_ptr_nonnull(j.f = tls_frontend_new(&tc, &fe, NULL, err, sizeof err));
    handshake(&j, "other.test", NULL, cn, sizeof cn);
    ck_assert_int_eq(j.result, TLS_IO_ERROR);
    ck_assert_str_eq(j.reason, "no certificate for server name 'other.test' (strict_sni)");
    tls_frontend_free(j.f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_frontend");
    TCase *tcase = tcase_create("tls_frontend");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_add_test(tcase, frontend_build);
    tcase_add_test(tcase, sni_and_alpn);
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
