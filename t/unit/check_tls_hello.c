#include "unit.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "tls_hello.h"

#define X25519 29
#define P256   23
#define P384   24

static const struct tls_hello_policy both = {
    .groups = 1u << X25519 | 1u << P256, .allow12 = true, .allow13 = true
};

/* A parsed hello as clienthello.c leaves it: complete, TLS 1.3 offered,
 * groups X25519 and P-256. */
static struct client_hello hello(void)
{
    struct client_hello ch;
    memset(&ch, 0, sizeof ch);
    ch.complete = true;
    ch.tls13 = true;
    ch.groups_sent = true;
    ch.groups = 1u << X25519 | 1u << P256;
    return ch;
}

/* A real P-256 public key, uncompressed. */
static void p256_point(uint8_t out[65])
{
    WC_RNG rng;
    ecc_key key;
    word32 n = 65;
    ck_assert_int_eq(wc_InitRng(&rng), 0);
    ck_assert_int_eq(wc_ecc_init(&key), 0);
    ck_assert_int_eq(wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1), 0);
    ck_assert_int_eq(wc_ecc_export_x963(&key, out, &n), 0);
    ck_assert_uint_eq(n, 65);
    wc_ecc_free(&key);
    wc_FreeRng(&rng);
}

START_TEST(ordinary_hello_passes)
{
    struct client_hello ch = hello();
    uint8_t alert = 0;
    ck_assert_ptr_null(tls_hello_refusal(&both, &ch, &alert));
    ch.groups_sent = false;                 /* TLS 1.2 without the extension: any curve */
    ch.groups = 0;
    ch.tls13 = false;
    ck_assert_ptr_null(tls_hello_refusal(&both, &ch, &alert));
    ck_assert_int_eq(alert, 0);
}
END_TEST

START_TEST(no_common_group)
{
    struct client_hello ch = hello();
    uint8_t alert = 0;
    ch.groups = 1u << P384;
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    ck_assert_int_eq(alert, 40);
    ch.groups = 0;                          /* only groups tlsoffd does not know */
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    /* TLS 1.2 with a DHE suite too: that needs no curve */
    ch.tls13 = false;
    ch.dhe_suite12 = true;
    ck_assert_ptr_null(tls_hello_refusal(&both, &ch, &alert));
    ch.dhe_suite12 = false;
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    /* a TLS 1.3 client of a TLS 1.2-only frontend, with a DHE suite */
    struct tls_hello_policy only12 = both;
    only12.allow13 = false;
    ch.tls13 = true;
    ch.dhe_suite12 = true;
    ck_assert_ptr_null(tls_hello_refusal(&only12, &ch, &alert));
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
}
END_TEST

START_TEST(p256_share_on_the_curve)
{
    struct client_hello ch = hello();
    uint8_t alert = 0;
    ch.p256_share = true;
    p256_point(ch.p256_point);
    ck_assert_ptr_null(tls_hello_refusal(&both, &ch, &alert));
    ch.p256_point[64] ^= 1;                 /* y changed: off the curve */
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    ck_assert_int_eq(alert, 47);
    memset(ch.p256_point + 1, 0, 64);       /* (0, 0) */
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    memset(ch.p256_point, 0, 65);           /* a share of another length */
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    /* not checked where P-256 is not configured, nor for TLS 1.2 */
    struct tls_hello_policy x25519 = both;
    x25519.groups = 1u << X25519;
    ck_assert_ptr_null(tls_hello_refusal(&x25519, &ch, &alert));
    struct tls_hello_policy only12 = both;
    only12.allow13 = false;
    ck_assert_ptr_null(tls_hello_refusal(&only12, &ch, &alert));
}
END_TEST

START_TEST(renegotiation_and_alpn)
{
    struct client_hello ch = hello();
    uint8_t alert = 0;
    ch.reneg_nonempty = true;
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    ck_assert_int_eq(alert, 40);
    ch.reneg_nonempty = false;
    ch.alpn_bad = true;
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    ck_assert_int_eq(alert, 50);
    ch.alpn_bad = false;
    ch.ext_bad = true;
    alert = 0;
    ck_assert_ptr_nonnull(tls_hello_refusal(&both, &ch, &alert));
    ck_assert_int_eq(alert, 50);
}
END_TEST

START_TEST(incomplete_left_to_wolfssl)
{
    struct client_hello ch = hello();
    uint8_t alert = 0;
    ch.reneg_nonempty = true;
    ch.complete = false;
    ck_assert_ptr_null(tls_hello_refusal(&both, &ch, &alert));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_hello");
    TCase *tc = tcase_create("tls_hello");
    tcase_add_test(tc, ordinary_hello_passes);
    tcase_add_test(tc, no_common_group);
    tcase_add_test(tc, p256_share_on_the_curve);
    tcase_add_test(tc, renegotiation_and_alpn);
    tcase_add_test(tc, incomplete_left_to_wolfssl);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
