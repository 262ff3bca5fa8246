/* tls_policy.c: the policy of every context. */
#include "tlspair.h"

#include <wolfssl/openssl/ssl.h>

#include "tls_policy.h"
#include "probe.h"

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

/* The suites a context offers, in its order, as a ':'-list. */
static const char *offered(WOLFSSL_CTX *ctx)
{
    static char list[2048];
    WOLFSSL *ssl = wolfSSL_new(ctx);
    size_t off = 0;
    ck_assert_ptr_nonnull(ssl);
    WOLF_STACK_OF(WOLFSSL_CIPHER) *sk = wolfSSL_get_ciphers_compat(ssl);
    list[0] = '\0';
    for (int i = 0; i < wolfSSL_sk_SSL_CIPHER_num(sk) && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ":" : "",
                                wolfSSL_CIPHER_get_name(wolfSSL_sk_SSL_CIPHER_value(sk, i)));
    wolfSSL_free(ssl);
    return list;
}

/* Exactly the default suites, TLS 1.3 first; wolfSSL's list parser would
 * add TLS13-AES128-CCM-8-SHA256. */
START_TEST(server_default_suites)
{
    WOLFSSL_CTX *ctx = pair_server_ctx(unit_cert("example.test.pem"),
                                       unit_cert("example.test.key"), err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_str_eq(offered(ctx), TLS_POLICY_CIPHERSUITES ":" TLS_POLICY_CIPHERS);
    tls_ctx_free(ctx);
}
END_TEST

/* IANA names work too; a TLS 1.3-only range drops the TLS 1.2 list; an
 * unknown group is an error. */
START_TEST(server_exact_suites)
{
    struct tls_conf tc = pair_tls_conf();
    struct cert_conf cc = { .cert = (char *)unit_cert("example.test.pem"),
                            .key = (char *)unit_cert("example.test.key"), .where = "x:1" };
    struct frontend_conf fe = { .name = "t", .ncerts = 1, .certs = &cc, .where = "x:2" };
    tc.min_version = TLS1_3_VERSION;
    tc.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256:TLS13-AES128-GCM-SHA256";
    WOLFSSL_CTX *ctx = tls_server_ctx_new(&tc, &fe, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_str_eq(offered(ctx), "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256");
    tls_ctx_free(ctx);
    tc.groups = "P-999";
    ck_assert_ptr_null(tls_server_ctx_new(&tc, &fe, err, sizeof err));
    ck_assert_str_eq(err, "test.conf:1: tls.groups: this wolfSSL cannot offer 'P-999'");
}
END_TEST

/* A CCM-8 suite (an 8-byte tag) is never set, even past the config check:
 * wolfSSL knows the names, tls_policy refuses the whole list. */
START_TEST(server_no_ccm8)
{
    static const char *const lists[][2] = {
        { "TLS13-AES128-GCM-SHA256:TLS13-AES128-CCM-8-SHA256", NULL },
        { "TLS13-AES128-GCM-SHA256:TLS_AES_128_CCM_8_SHA256", NULL },
        { NULL, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-CCM-8" },
    };
    struct cert_conf cc = { .cert = (char *)unit_cert("example.test.pem"),
                            .key = (char *)unit_cert("example.test.key"), .where = "x:1" };
    struct frontend_conf fe = { .name = "t", .ncerts = 1, .certs = &cc, .where = "x:2" };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        struct tls_conf tc = pair_tls_conf();
        if (lists[i][0])
            tc.ciphersuites = (char *)lists[i][0];
        if (lists[i][1])
            tc.ciphers = (char *)lists[i][1];
        ck_assert_ptr_null(tls_server_ctx_new(&tc, &fe, err, sizeof err));
        ck_assert_msg(strstr(err, "cannot set cipher list"), "%zu: %s", i, err);
    }
}
END_TEST

/* The backend client and the prober get their suites from one factory. */
START_TEST(group_mask)
{
    ck_assert_uint_eq(tls_policy_groups("X25519:P-256"), 1u << 29 | 1u << 23);
    ck_assert_uint_eq(tls_policy_groups(TLS_POLICY_GROUPS), 1u << 29 | 1u << 23);
    ck_assert_uint_eq(tls_policy_groups("P-384:P-521:X448"), 1u << 24 | 1u << 25 | 1u << 30);
    ck_assert_uint_eq(tls_policy_groups("nonsense"), 0);
}
END_TEST

START_TEST(client_suites)
{
    struct backend_tls_conf t = { .enabled = true };
    WOLFSSL_CTX *ctx = tls_client_ctx_new(&t, "x:5", err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_str_eq(offered(ctx), TLS_POLICY_CLIENT_SUITES);
    tls_ctx_free(ctx);
    ctx = probe_tls_ctx_new(NULL, false, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
#ifdef WOLFSSL_STATIC_RSA
    ck_assert_str_eq(offered(ctx), TLS_POLICY_PROBE_SUITES);
#else
    ck_assert_str_eq(offered(ctx), TLS_POLICY_PROBE_SUITES_DHE);
#endif
    tls_ctx_free(ctx);
}
END_TEST

START_TEST(client_errors)
{
    struct backend_tls_conf t = { .enabled = true, .verify = true, .ca_file = "/nonexistent.pem" };
    ck_assert_ptr_null(tls_client_ctx_new(&t, "x:5", err, sizeof err));
    ck_assert_str_eq(err, "x:5: tls.ca_file '/nonexistent.pem': No such file or directory");
    t.ca_file = (char *)unit_cert("garbage.pem");
    ck_assert_ptr_null(tls_client_ctx_new(&t, "x:5", err, sizeof err));
    ck_assert_msg(strstr(err, "x:5: tls.ca_file") && strstr(err, "cannot load PEM certificates"),
                  "%s", err);
    t.ca_file = (char *)unit_cert("ca.pem");
    t.cert = (char *)unit_cert("client1.pem");
    t.key = (char *)unit_cert("mismatch.key");
    ck_assert_ptr_null(tls_client_ctx_new(&t, "x:5", err, sizeof err));
    ck_assert_msg(strstr(err, "x:5: key") && strstr(err, "does not match"), "%s", err);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_policy");
    TCase *tcase = tcase_create("tls_policy");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_add_test(tcase, policy_errors);
    tcase_add_test(tcase, server_default_suites);
    tcase_add_test(tcase, server_exact_suites);
    tcase_add_test(tcase, server_no_ccm8);
    tcase_add_test(tcase, group_mask);
    tcase_add_test(tcase, client_suites);
    tcase_add_test(tcase, client_errors);
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
