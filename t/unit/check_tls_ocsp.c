/* tls_ocsp.c: which OCSP responses are stapled. */
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

/* How many of a one-certificate frontend's certificates staple file. */
static size_t stapled(const char *cert, const char *key, const char *file)
{
    struct tls_conf tc = pair_tls_conf();
    struct cert_conf cc = { .cert = (char *)unit_cert(cert), .key = (char *)unit_cert(key),
                            .ocsp_file = (char *)file, .where = "x:1" };
    struct frontend_conf fe = { .name = "t", .ncerts = 1, .certs = &cc, .where = "x:2" };
    size_t n = 9;
    struct tls_frontend *f = tls_frontend_new(&tc, &fe, NULL, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    ck_assert_uint_eq(tls_frontend_certs(f, &n), 1);
    tls_frontend_free(f);
    return n;
}

START_TEST(good_response_stapled)
{
    ck_assert_uint_eq(stapled("a.test.pem", "a.test.key", unit_cert("a.test.ocsp.der")), 1);
}
END_TEST

/* Each is a warning, never an error: the frontend is made without it. */
START_TEST(bad_responses_not_stapled)
{
    static const char *const bad[] = {
        "b.test.ocsp.der",          /* another certificate's */
        "a.test.stale.ocsp.der",    /* nextUpdate has passed */
        "a.test.badsig.ocsp.der",   /* signed by another key */
        "a.test.rogue.ocsp.der",    /* a responder the CA did not delegate */
        "garbage.pem",              /* not DER */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(stapled("a.test.pem", "a.test.key", unit_cert(bad[i])) == 0, "%s", bad[i]);
    ck_assert_uint_eq(stapled("a.test.pem", "a.test.key", "/nonexistent.der"), 0);
    /* The chain file has no issuer to check it against. */
    ck_assert_uint_eq(stapled("a.test.crt", "a.test.key", unit_cert("a.test.ocsp.der")), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_ocsp");
    TCase *tcase = tcase_create("tls_ocsp");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_add_test(tcase, good_response_stapled);
    tcase_add_test(tcase, bad_responses_not_stapled);
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
