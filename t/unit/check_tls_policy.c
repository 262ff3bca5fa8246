/* tls_policy.c: the policy of every context. */
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

static Suite *suite(void)
{
    Suite *s = suite_create("tls_policy");
    TCase *tc = tcase_create("tls_policy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, policy_errors);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
