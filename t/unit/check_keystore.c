#include "unit.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

#include "keystore.h"

static char err[1024];

static struct key_conf kc(const char *cert, const char *key, const char *pw)
{
    return (struct key_conf){ key, pw, cert, "t.conf:7" };
}

static struct keystore *two_keys(void)
{
    struct keystore *ks = keystore_new(err, sizeof err);
    ck_assert_ptr_nonnull(ks);
    struct key_conf ec = kc(unit_cert("example.test.pem"), unit_cert("example.test.key"), NULL);
    struct key_conf rsa = kc(unit_cert("rsa.test.pem"), unit_cert("rsa.test.key"), NULL);
    ck_assert_msg(keystore_add(ks, &ec, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(keystore_add(ks, &rsa, NULL, err, sizeof err) == 0, "%s", err);
    return ks;
}

static struct keyproto_rep sign(struct keystore *ks, uint32_t key, int op, int hash,
                                const uint8_t *in, size_t len)
{
    struct keyproto_req rq = { .magic = KEYPROTO_MAGIC, .id = 9, .key = key, .op = (uint8_t)op,
                               .len = (uint16_t)len };
    struct keyproto_rep rep;
    if (op == KEY_OP_RSA_PSS) {
        rq.hash = (uint8_t)hash;
        rq.mgf = WC_MGF1SHA256;
    }
    memcpy(rq.in, in, len);
    keystore_sign(ks, &rq, &rep);
    ck_assert_int_eq(rep.id, 9);
    return rep;
}

/* The public key of a certificate, into ec or rsa. */
static void public_key(const char *cert, ecc_key *ec, RsaKey *rsa)
{
    unsigned char spki[2048];
    int len = sizeof spki;
    word32 idx = 0;
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert, WOLFSSL_FILETYPE_PEM);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(wolfSSL_X509_get_pubkey_buffer(x, spki, &len), WOLFSSL_SUCCESS);
    if (ec)
        ck_assert_int_eq(wc_EccPublicKeyDecode(spki, &idx, ec, (word32)len), 0);
    else
        ck_assert_int_eq(wc_RsaPublicKeyDecode(spki, &idx, rsa, (word32)len), 0);
    wolfSSL_X509_free(x);
}

START_TEST(signatures_verify)
{
    struct keystore *ks = two_keys();
    ck_assert_str_eq(keystore_describe(ks, 0), "EC256");
    ck_assert_str_eq(keystore_describe(ks, 1), "RSA2048");
    uint8_t digest[32], di[64], back[512];
    memset(digest, 0x42, sizeof digest);
    ecc_key ec;
    RsaKey rsa;
    int res = 0;
    wc_ecc_init(&ec);
    wc_InitRsaKey(&rsa, NULL);
    public_key(unit_cert("example.test.pem"), &ec, NULL);
    public_key(unit_cert("rsa.test.pem"), NULL, &rsa);
    struct keyproto_rep r = sign(ks, 0, KEY_OP_ECDSA, 0, digest, sizeof digest);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    ck_assert_int_eq(wc_ecc_verify_hash(r.sig, r.len, digest, sizeof digest, &res, &ec), 0);
    ck_assert_int_eq(res, 1);
    int dl = wc_EncodeSignature(di, digest, sizeof digest, SHA256h);
    r = sign(ks, 1, KEY_OP_RSA_PKCS1, 0, di, (size_t)dl);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    ck_assert_int_eq(wc_RsaSSL_Verify(r.sig, r.len, back, sizeof back, &rsa), dl);
    ck_assert(memcmp(back, di, (size_t)dl) == 0);
    r = sign(ks, 1, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, digest, sizeof digest);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    int m = wc_RsaPSS_Verify(r.sig, r.len, back, sizeof back, WC_HASH_TYPE_SHA256,
                             WC_MGF1SHA256, &rsa);
    ck_assert_int_gt(m, 0);
    ck_assert_int_eq(wc_RsaPSS_CheckPadding(digest, sizeof digest, back, (word32)m,
                                            WC_HASH_TYPE_SHA256), 0);
    wc_ecc_free(&ec);
    wc_FreeRsaKey(&rsa);
    keystore_free(ks);
}
END_TEST

START_TEST(wrong_key_or_kind)
{
    struct keystore *ks = two_keys();
    uint8_t digest[32] = { 0 };
    ck_assert_int_eq(sign(ks, 0, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, digest, 32).status,
                     KEYPROTO_NO_KEY);
    ck_assert_int_eq(sign(ks, 1, KEY_OP_ECDSA, 0, digest, 32).status, KEYPROTO_NO_KEY);
    ck_assert_int_eq(sign(ks, 2, KEY_OP_ECDSA, 0, digest, 32).status, KEYPROTO_NO_KEY);
    keystore_free(ks);
}
END_TEST

/* keystore_add's error for kc: it fails, and err says where and what. */
static void refused(struct key_conf k, const char *what)
{
    struct keystore *ks = keystore_new(err, sizeof err);
    ck_assert_int_eq(keystore_add(ks, &k, NULL, err, sizeof err), -1);
    ck_assert_msg(strncmp(err, "t.conf:7: key '", 15) == 0, "%s", err);
    ck_assert_msg(strstr(err, what) != NULL, "'%s' not in: %s", what, err);
    ck_assert_int_eq(keystore_count(ks), 0);
    keystore_free(ks);
}

START_TEST(load_errors)
{
    const char *ec = unit_cert("example.test.pem");
    refused(kc(ec, "/no/such.key", NULL), "No such file or directory");
    refused(kc(ec, unit_cert("mismatch.key"), NULL), "does not match certificate");
    refused(kc(ec, unit_cert("rsa.test.key"), NULL), "does not match certificate");
    refused(kc(ec, unit_cert("ca.pem"), NULL), "no RSA or EC private key");
}
END_TEST

START_TEST(encrypted_pem)
{
    char *pw = unit_tempfile("correct horse\n"), *bad = unit_tempfile("wrong\n");
    char *empty = unit_tempfile("\n"), *enc = unit_tempfile("");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "openssl pkey -in %s -aes256 -passout file:%s -out %s",
             unit_cert("example.test.key"), pw, enc);
    ck_assert_int_eq(system(cmd), 0);
    const char *ec = unit_cert("example.test.pem");
    struct keystore *ks = keystore_new(err, sizeof err);
    struct key_conf good = kc(ec, enc, pw);
    ck_assert_msg(keystore_add(ks, &good, NULL, err, sizeof err) == 0, "%s", err);
    keystore_free(ks);
    refused(kc(ec, enc, NULL), "encrypted: set key_password_file");
    refused(kc(ec, enc, bad), "wrong password?");
    refused(kc(ec, enc, empty), "empty");
    refused(kc(ec, enc, "/no/such.pass"), "key_password_file '/no/such.pass'");
    for (char **p = (char *[]){ pw, bad, empty, enc, NULL }; *p; p++) {
        unlink(*p);
        free(*p);
    }
}
END_TEST

START_TEST(key_in_the_chain_file)
{
    char *both = unit_tempfile("");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", unit_cert("rsa.test.pem"),
             unit_cert("rsa.test.key"), both);
    ck_assert_int_eq(system(cmd), 0);
    struct keystore *ks = keystore_new(err, sizeof err);
    struct key_conf k = kc(both, both, NULL);
    ck_assert_msg(keystore_add(ks, &k, NULL, err, sizeof err) == 0, "%s", err);
    keystore_free(ks);
    unlink(both);
    free(both);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("keystore");
    TCase *tc = tcase_create("keystore");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, signatures_verify);
    tcase_add_test(tc, wrong_key_or_kind);
    tcase_add_test(tc, load_errors);
    tcase_add_test(tc, encrypted_pem);
    tcase_add_test(tc, key_in_the_chain_file);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
