/* tls_frontend.c: certificates by SNI, ALPN, client certificates. */
#include "tlspair.h"
#include "clock.h"

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

static Suite *suite(void)
{
    Suite *s = suite_create("tls_frontend");
    TCase *tcase = tcase_create("tls_frontend");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_add_test(tcase, frontend_build);
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
