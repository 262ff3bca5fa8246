/* tls.c: the library, loading a certificate and its key. */
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

START_TEST(library_version)
{
    ck_assert_ptr_nonnull(strstr(tls_library_version(), "wolfSSL 5."));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tcase = tcase_create("tls");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_add_test(tcase, load_errors);
    tcase_add_test(tcase, library_version);
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
