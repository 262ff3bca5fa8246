#include "unit.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include "pkcs11.h"
#include "pkcs11_int.h"

#ifndef SOFTHSM_MODULE
#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

static char err[1024];

/* ---- URIs ---------------------------------------------------------------- */

static struct pkcs11_uri parsed(const char *uri)
{
    struct pkcs11_uri u;
    ck_assert_msg(pkcs11_uri_parse(&u, uri, err, sizeof err) == 0, "%s: %s", uri, err);
    return u;
}

START_TEST(uri_all_attributes)
{
    struct pkcs11_uri u = parsed("pkcs11:token=My%20Token;manufacturer=SoftHSM%20project;"
                                 "model=SoftHSM%20v2;serial=0a1b;slot-id=1045319612;"
                                 "object=ec-key;id=%01%aB%ff;type=private"
                                 "?module-path=/usr/lib/x.so&pin-source=file:/etc/pin");
    ck_assert_str_eq(u.token, "My Token");
    ck_assert_str_eq(u.manufacturer, "SoftHSM project");
    ck_assert_str_eq(u.model, "SoftHSM v2");
    ck_assert_str_eq(u.serial, "0a1b");
    ck_assert(u.has_slot);
    ck_assert_uint_eq(u.slot_id, 1045319612);
    ck_assert_str_eq(u.object, "ec-key");
    ck_assert(u.has_id);
    ck_assert_uint_eq(u.id_len, 3);
    ck_assert(memcmp(u.id, "\x01\xab\xff", 3) == 0);
    ck_assert_str_eq(u.module_path, "/usr/lib/x.so");
    ck_assert_str_eq(u.pin_source, "/etc/pin");
    ck_assert(!u.has_pin_value);
    pkcs11_uri_clear(&u);
    ck_assert_ptr_null(u.module_path);
}
END_TEST

START_TEST(uri_decoding)
{
    struct pkcs11_uri u = parsed("PKCS11:object=a%3bb%26c%3Fd%25;id=%00%00");
    ck_assert_str_eq(u.object, "a;b&c?d%");     /* delimiters, encoded, are data */
    ck_assert_uint_eq(u.id_len, 2);               /* an id may hold zero bytes */
    ck_assert(u.id[0] == 0 && u.id[1] == 0);
    ck_assert_str_eq(u.token, "");                /* not given: any token */
    ck_assert(!u.has_slot);
    ck_assert_ptr_null(u.module_path);
    pkcs11_uri_clear(&u);
    /* Spaces as they are, and the other pin-source forms. */
    u = parsed("pkcs11:object=my key?pin-source=file:///etc/p%20in");
    ck_assert_str_eq(u.object, "my key");
    ck_assert_str_eq(u.pin_source, "/etc/p in");
    pkcs11_uri_clear(&u);
    u = parsed("pkcs11:id=%02?pin-source=/etc/pin");
    ck_assert_str_eq(u.pin_source, "/etc/pin");
    pkcs11_uri_clear(&u);
    u = parsed("pkcs11:object=k?pin-value=12%2634");
    ck_assert(u.has_pin_value);
    ck_assert_str_eq(u.pin_value, "12&34");
    pkcs11_uri_clear(&u);
    ck_assert(!u.has_pin_value && u.pin_value[0] == '\0');
}
END_TEST

static const struct {
    const char *uri, *err;
} bad_uris[] = {
    { "file:/etc/key", "does not begin with 'pkcs11:'" },
    { "pkcs11:object=x;foo=1", "unknown attribute 'foo' in the path" },
    { "pkcs11:object=x?foo=1", "unknown attribute 'foo' in the query" },
    { "pkcs11:object=x;x-vendor=1", "unknown attribute 'x-vendor'" },
    { "pkcs11:object=x;pin-source=/p", "attribute 'pin-source' belongs in the query" },
    { "pkcs11:object=x?token=t", "attribute 'token' belongs in the path" },
    { "pkcs11:object=x;object=y", "attribute 'object' given twice" },
    { "pkcs11:object=a%2", "object: '%' not followed by two hex digits" },
    { "pkcs11:object=a%zz", "object: '%' not followed by two hex digits" },
    { "pkcs11:id=%0g", "id: '%' not followed by two hex digits" },
    { "pkcs11:object=", "attribute 'object' has no value" },
    { "pkcs11:object", "attribute 'object' has no value" },
    { "pkcs11:object=x;;id=%01", "an empty attribute in the path" },
    { "pkcs11:object=x;", "an empty attribute in the path" },
    { "pkcs11:object=x?&pin-source=/p", "an empty attribute in the query" },
    { "pkcs11:object=x;type=cert", "type: 'cert': a key for tlsoffd is of type private" },
    { "pkcs11:object=x;slot-id=12a", "slot-id: '12a' is not a decimal slot number" },
    { "pkcs11:object=x;slot-id=-1", "slot-id: '-1' is not a decimal slot number" },
    { "pkcs11:object=x;slot-id=99999999999999999999", "slot-id: '99999999999999999999' is not" },
    { "pkcs11:object=x;slot-id=999999999999999999999", "slot-id: longer than 20 bytes" },
    { "pkcs11:object=x;token=123456789012345678901234567890123", "token: longer than 32 bytes" },
    { "pkcs11:object=x;model=12345678901234567", "model: longer than 16 bytes" },
    { "pkcs11:object=x;serial=12345678901234567", "serial: longer than 16 bytes" },
    { "pkcs11:object=a%00b", "object: a NUL byte (%00) in a text value" },
    { "pkcs11:object=a\tb", "object: a control character" },
    { "pkcs11:object=x?module-path=libsofthsm2.so", "module-path: 'libsofthsm2.so' is not an "
                                                    "absolute path" },
    { "pkcs11:object=x?module-path=/a%00b", "module-path: a NUL byte" },
    { "pkcs11:object=x?pin-source=file://host/p", "pin-source: only local files" },
    { "pkcs11:object=x?pin-source=file:pin", "pin-source: 'pin' is not an absolute path" },
    { "pkcs11:object=x?pin-source=/a&pin-value=1", "give pin-source or pin-value, not both" },
    { "pkcs11:object=x?pin-value=1%002", "pin-value: a NUL byte (%00) in the PIN" },
    { "pkcs11:token=t", "names no key: give object (its label) or id" },
    { "pkcs11:", "names no key" },
    { "pkcs11:object=x;library-version=1", "attribute 'library-version' is not supported" },
    { "pkcs11:object=x;slot-description=a", "attribute 'slot-description' is not supported" },
    { "pkcs11:object=x?module-name=softhsm2", "'module-name' is not supported (give module-path)" },
    { "pkcs11:object=x#frag", "a fragment ('#') is not allowed" },
};

START_TEST(uri_errors)
{
    const char *uri = bad_uris[_i].uri;
    struct pkcs11_uri u;
    err[0] = '\0';
    ck_assert_msg(pkcs11_uri_parse(&u, uri, err, sizeof err) == -1, "accepted: %s", uri);
    ck_assert_msg(strstr(err, bad_uris[_i].err), "%s: said '%s', not '%s'", uri, err,
                  bad_uris[_i].err);
    ck_assert_int_eq(pkcs11_uri_check(uri, err, sizeof err), -1);
}
END_TEST

/* A message never quotes a PIN, wherever the error is. */
START_TEST(uri_error_hides_pin)
{
    ck_assert_int_eq(pkcs11_uri_check("pkcs11:object=x?pin-value=s3cr3t&bogus=1", err,
                                      sizeof err), -1);
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
    ck_assert_int_eq(pkcs11_uri_check("pkcs11:object=x?pin-value=s3cr3t%zz", err, sizeof err),
                     -1);
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
    ck_assert_ptr_nonnull(strstr(err, "pin-value"));
}
END_TEST

START_TEST(uri_helpers)
{
    ck_assert(pkcs11_is_uri("pkcs11:object=x"));
    ck_assert(pkcs11_is_uri("Pkcs11:object=x"));
    ck_assert(!pkcs11_is_uri("/etc/tlsoffd/key.pem"));
    ck_assert(!pkcs11_is_uri("pkcs11"));
    ck_assert(!pkcs11_is_uri(NULL));
    ck_assert_int_eq(pkcs11_uri_check("pkcs11:token=t;object=k?pin-source=/p", err, sizeof err),
                     0);
    const char *def = pkcs11_default_module();
    ck_assert(strstr(def, "p11-kit-proxy.so") || strcmp(def, SOFTHSM_MODULE) == 0);
}
END_TEST

/* ---- A SoftHSM 2 token (t/helper/softhsm-token) ----------------------- */

static char dir[64];
static char uri_ec[512], uri_rsa[512], uri_rsa3[512], uri_dup[512], uri_ec2[512];

static bool softhsm_installed(void)
{
    return access(SOFTHSM_MODULE, R_OK) == 0 && system("command -v softhsm2-util >/dev/null") == 0;
}

static void read_uris(void)
{
    char path[128], name[16], uri[512];
    snprintf(path, sizeof path, "%s/uris", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fscanf(f, "%15s %511s", name, uri) == 2) {
        char *dst = strcmp(name, "ec") == 0 ? uri_ec : strcmp(name, "rsa") == 0 ? uri_rsa
                    : strcmp(name, "rsa3") == 0 ? uri_rsa3 : strcmp(name, "dup") == 0 ? uri_dup
                    : strcmp(name, "ec2") == 0 ? uri_ec2 : NULL;
        if (dst)
            snprintf(dst, 512, "%s", uri);
    }
    fclose(f);
    ck_assert(uri_ec[0] && uri_rsa[0] && uri_rsa3[0] && uri_dup[0] && uri_ec2[0]);
}

static void token_setup(void)
{
    char cmd[512], conf[128];
    const char *src = getenv("TLSOFFD_SRCDIR");
    snprintf(dir, sizeof dir, "/tmp/tlsoffd-unit-p11-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "CERTS='%s' sh '%s/t/helper/softhsm-token' '%s' >/dev/null",
             unit_cert(""), src ? src : ".", dir);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", dir);
    setenv("SOFTHSM2_CONF", conf, 1);
    read_uris();
}

static void token_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "check_pkcs11: could not remove %s\n", dir);
}

/* A URI of the fixture's with its module and query, for another key. */
static const char *with_query(const char *path_part)
{
    static char buf[4][640];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s%s", path_part, strchr(uri_ec, '?'));
    return buf[i];
}

static struct pkcs11_key *open_ok(const char *uri)
{
    struct pkcs11_key *k = pkcs11_key_open(uri, NULL, NULL, err, sizeof err);
    ck_assert_msg(k != NULL, "%s", err);
    return k;
}

static struct pkcs11_key *open_kind(const char *uri, int kind, int want_bits)
{
    struct pkcs11_key *k = open_ok(uri);
    int bits = 0;
    ck_assert_int_eq(pkcs11_key_kind(k, &bits), kind);
    ck_assert_int_eq(bits, want_bits);
    return k;
}

/* Opening fails, and err says want. */
static void open_fails(const char *uri, const char *pin, const char *want)
{
    err[0] = '\0';
    struct pkcs11_key *k = pkcs11_key_open(uri, pin, NULL, err, sizeof err);
    ck_assert_msg(k == NULL, "opened: %s", uri);
    ck_assert_msg(strstr(err, want), "said '%s', not '%s'", err, want);
    ck_assert_int_eq(p11_open_tokens(), 0);
    ck_assert_int_eq(p11_open_modules(), 0);
}

/* The public key of the certificate DIR/name.crt, as SubjectPublicKeyInfo. */
static word32 cert_spki(const char *name, uint8_t *der, word32 cap)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.crt", dir, name);
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(path, WOLFSSL_FILETYPE_PEM);
    ck_assert_ptr_nonnull(x);
    int len = (int)cap;
    ck_assert_int_eq(wolfSSL_X509_get_pubkey_buffer(x, der, &len), WOLFSSL_SUCCESS);
    wolfSSL_X509_free(x);
    return (word32)len;
}

static void cert_ec_key(const char *name, ecc_key *pub)
{
    uint8_t der[512];
    word32 len = cert_spki(name, der, sizeof der), idx = 0;
    ck_assert_int_eq(wc_ecc_init(pub), 0);
    ck_assert_int_eq(wc_EccPublicKeyDecode(der, &idx, pub, len), 0);
}

static void cert_rsa_key(const char *name, RsaKey *pub)
{
    uint8_t der[1024];
    word32 len = cert_spki(name, der, sizeof der), idx = 0;
    ck_assert_int_eq(wc_InitRsaKey(pub, NULL), 0);
    ck_assert_int_eq(wc_RsaPublicKeyDecode(der, &idx, pub, len), 0);
}

static void digest(enum wc_HashType h, uint8_t *out, size_t *len)
{
    static const char msg[] = "tlsoffd signs this";
    *len = (size_t)wc_HashGetDigestSize(h);
    ck_assert_int_eq(wc_Hash(h, (const byte *)msg, sizeof msg - 1, out, (word32)*len), 0);
}

/* Whether sig is a valid ECDSA signature of d by pub. */
static bool ecdsa_ok(ecc_key *pub, const uint8_t *d, size_t dlen, const uint8_t *sig,
                     size_t siglen)
{
    int res = 0;
    return wc_ecc_verify_hash(sig, (word32)siglen, d, (word32)dlen, &res, pub) == 0 && res == 1;
}

static bool pkcs1_ok(RsaKey *pub, const uint8_t *info, size_t infolen, const uint8_t *sig,
                     size_t siglen)
{
    uint8_t copy[512], out[512];
    memcpy(copy, sig, siglen);
    int n = wc_RsaSSL_Verify(copy, (word32)siglen, out, sizeof out, pub);
    return n == (int)infolen && memcmp(out, info, infolen) == 0;
}

static bool pss_ok(RsaKey *pub, enum wc_HashType h, int mgf, const uint8_t *d, size_t dlen,
                   const uint8_t *sig, size_t siglen)
{
    uint8_t copy[512], out[512];
    memcpy(copy, sig, siglen);
    int n = wc_RsaPSS_Verify(copy, (word32)siglen, out, sizeof out, h, mgf, pub);
    return n > 0 && wc_RsaPSS_CheckPadding(d, (word32)dlen, out, (word32)n, h) == 0;
}

START_TEST(ec_signs)
{
    struct pkcs11_key *k = open_kind(uri_ec, KEY_KIND_EC, 256);
    ck_assert_str_eq(pkcs11_key_name(k), "object 'ec-key' id 01 on token 'tlsoffd-test'");
    ecc_key pub;
    cert_ec_key("ec-key", &pub);
    /* TLS's digests: SHA-1 (TLS 1.2 may ask), SHA-256, -384, -512. */
    const enum wc_HashType hashes[] = { WC_HASH_TYPE_SHA, WC_HASH_TYPE_SHA256,
                                        WC_HASH_TYPE_SHA384, WC_HASH_TYPE_SHA512 };
    for (size_t i = 0; i < 4; i++) {
        uint8_t d[64], sig[128];
        size_t dlen, siglen = sizeof sig;
        digest(hashes[i], d, &dlen);
        ck_assert_msg(pkcs11_key_sign(k, KEY_OP_ECDSA, 0, 0, d, dlen, sig, &siglen) == 0, "%s",
                      pkcs11_key_error(k));
        ck_assert_int_eq(sig[0], 0x30);                 /* DER: a SEQUENCE */
        ck_assert_uint_le(siglen, 72);
        ck_assert_msg(ecdsa_ok(&pub, d, dlen, sig, siglen), "digest of %zu bytes", dlen);
        d[0] ^= 1;
        ck_assert(!ecdsa_ok(&pub, d, dlen, sig, siglen));
    }
    wc_ecc_free(&pub);
    pkcs11_key_close(k);
    ck_assert_int_eq(p11_open_tokens(), 0);
    ck_assert_int_eq(p11_open_modules(), 0);
}
END_TEST

/* k signs the DigestInfo of a digest with h: siglen bytes that pub
 * verifies, and not for another DigestInfo. */
static void pkcs1_round(struct pkcs11_key *k, RsaKey *pub, enum wc_HashType h, size_t want)
{
    uint8_t d[64], info[128], sig[512];
    size_t dlen, siglen = sizeof sig;
    digest(h, d, &dlen);
    word32 infolen = wc_EncodeSignature(info, d, (word32)dlen, wc_HashGetOID(h));
    ck_assert_uint_gt(infolen, dlen);
    ck_assert_msg(pkcs11_key_sign(k, KEY_OP_RSA_PKCS1, 0, 0, info, infolen, sig, &siglen) == 0,
                  "%s", pkcs11_key_error(k));
    ck_assert_uint_eq(siglen, want);
    ck_assert(pkcs1_ok(pub, info, infolen, sig, siglen));
    info[infolen - 1] ^= 1;
    ck_assert(!pkcs1_ok(pub, info, infolen, sig, siglen));
}

/* k signs a digest with RSA-PSS (h, mgf) twice: two signatures (a random
 * salt), both verified by pub, neither for another digest. */
static void pss_round(struct pkcs11_key *k, RsaKey *pub, enum wc_HashType h, int mgf,
                      size_t want)
{
    uint8_t d[64], sig[512], sig2[512];
    size_t dlen, siglen = sizeof sig, sig2len = sizeof sig2;
    digest(h, d, &dlen);
    ck_assert_msg(pkcs11_key_sign(k, KEY_OP_RSA_PSS, h, mgf, d, dlen, sig, &siglen) == 0, "%s",
                  pkcs11_key_error(k));
    ck_assert_uint_eq(siglen, want);
    ck_assert(pss_ok(pub, h, mgf, d, dlen, sig, siglen));
    ck_assert_int_eq(pkcs11_key_sign(k, KEY_OP_RSA_PSS, h, mgf, d, dlen, sig2, &sig2len), 0);
    ck_assert(memcmp(sig, sig2, siglen) != 0);
    ck_assert(pss_ok(pub, h, mgf, d, dlen, sig2, sig2len));
    d[3] ^= 1;
    ck_assert(!pss_ok(pub, h, mgf, d, dlen, sig, siglen));
}

START_TEST(rsa_signs)
{
    struct pkcs11_key *k = open_kind(uri_rsa, KEY_KIND_RSA, 2048);
    RsaKey pub;
    cert_rsa_key("rsa-key", &pub);
    pkcs1_round(k, &pub, WC_HASH_TYPE_SHA256, 256);
    pkcs1_round(k, &pub, WC_HASH_TYPE_SHA384, 256);
    pkcs1_round(k, &pub, WC_HASH_TYPE_SHA512, 256);
    pkcs1_round(k, &pub, WC_HASH_TYPE_SHA, 256);
    pss_round(k, &pub, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, 256);
    pss_round(k, &pub, WC_HASH_TYPE_SHA384, WC_MGF1SHA384, 256);
    pss_round(k, &pub, WC_HASH_TYPE_SHA512, WC_MGF1SHA512, 256);
    wc_FreeRsaKey(&pub);
    pkcs11_key_close(k);
}
END_TEST

/* A key of another size than the 2048 bits wolfSSL assumes of a key it
 * has no modulus for: right from its first signature. */
START_TEST(rsa3072_signs)
{
    struct pkcs11_key *k = open_kind(uri_rsa3, KEY_KIND_RSA, 3072);
    RsaKey pub;
    cert_rsa_key("rsa3-key", &pub);
    pkcs1_round(k, &pub, WC_HASH_TYPE_SHA384, 384);
    pss_round(k, &pub, WC_HASH_TYPE_SHA512, WC_MGF1SHA512, 384);
    wc_FreeRsaKey(&pub);
    pkcs11_key_close(k);
}
END_TEST

/* No module-path and no default from the caller: pkcs11_default_module(),
 * p11-kit's proxy (which loads SoftHSM through its module registration)
 * or SoftHSM itself. */
START_TEST(default_module)
{
    char uri[256];
    snprintf(uri, sizeof uri, "pkcs11:token=tlsoffd-test;object=ec-key?pin-source=%s/pin", dir);
    struct pkcs11_key *k = pkcs11_key_open(uri, NULL, NULL, err, sizeof err);
    ck_assert_msg(k != NULL, "%s: %s", pkcs11_default_module(), err);
    uint8_t d[32], sig[128];
    size_t dlen, siglen = sizeof sig;
    digest(WC_HASH_TYPE_SHA256, d, &dlen);
    ck_assert_int_eq(pkcs11_key_sign(k, KEY_OP_ECDSA, 0, 0, d, dlen, sig, &siglen), 0);
    pkcs11_key_close(k);
    ck_assert_int_eq(p11_open_modules(), 0);
}
END_TEST

/* Keys on one module share its load, keys on one token its session; the
 * same label and id on another token is another key. */
START_TEST(keys_share_module_and_token)
{
    struct pkcs11_key *ec = open_ok(uri_ec), *rsa = open_ok(uri_rsa), *ec2 = open_ok(uri_ec2);
    ck_assert_int_eq(p11_open_modules(), 1);
    ck_assert_int_eq(p11_open_tokens(), 2);
    ck_assert_str_eq(pkcs11_key_name(ec2), "object 'ec-key' id 01 on token 'tlsoffd-test2'");
    ecc_key pub, pub2;
    cert_ec_key("ec-key", &pub);
    cert_ec_key("ec2-key", &pub2);
    uint8_t d[32], sig[128];
    size_t dlen, siglen = sizeof sig;
    digest(WC_HASH_TYPE_SHA256, d, &dlen);
    ck_assert_int_eq(pkcs11_key_sign(ec2, KEY_OP_ECDSA, 0, 0, d, dlen, sig, &siglen), 0);
    ck_assert(ecdsa_ok(&pub2, d, dlen, sig, siglen));
    ck_assert(!ecdsa_ok(&pub, d, dlen, sig, siglen));
    pkcs11_key_close(ec);
    ck_assert_int_eq(p11_open_tokens(), 2);         /* rsa still holds the first */
    siglen = sizeof sig;
    ck_assert_int_eq(pkcs11_key_sign(ec2, KEY_OP_ECDSA, 0, 0, d, dlen, sig, &siglen), 0);
    pkcs11_key_close(rsa);
    ck_assert_int_eq(p11_open_tokens(), 1);
    ck_assert_int_eq(p11_open_modules(), 1);
    pkcs11_key_close(ec2);
    ck_assert_int_eq(p11_open_tokens(), 0);
    ck_assert_int_eq(p11_open_modules(), 0);
    /* And all of it again, from nothing. */
    ec = open_ok(uri_ec);
    siglen = sizeof sig;
    ck_assert_int_eq(pkcs11_key_sign(ec, KEY_OP_ECDSA, 0, 0, d, dlen, sig, &siglen), 0);
    ck_assert(ecdsa_ok(&pub, d, dlen, sig, siglen));
    pkcs11_key_close(ec);
    wc_ecc_free(&pub);
    wc_ecc_free(&pub2);
}
END_TEST

/* Which token and which key: exact labels, the other attributes, ids. */
START_TEST(selection)
{
    /* "tlsoffd" is a prefix of both labels, and names neither. */
    open_fails(with_query("pkcs11:token=tlsoffd;object=ec-key"), NULL,
               "no token matches token 'tlsoffd' (its tokens: ");
    open_fails(with_query("pkcs11:token=tlsoffd;object=ec-key"), NULL, "'tlsoffd-test2'");
    open_fails(with_query("pkcs11:object=ec-key"), NULL, "2 tokens match any token: name one");
    open_fails(with_query("pkcs11:token=tlsoffd-test;serial=0000000000000000;object=ec-key"),
               NULL, "no token matches token 'tlsoffd-test' serial '0000000000000000'");
    open_fails(with_query("pkcs11:token=tlsoffd-test;slot-id=4;object=ec-key"), NULL,
               "token 'tlsoffd-test' slot-id 4");
    struct pkcs11_key *k = open_ok(with_query("pkcs11:manufacturer=SoftHSM%20project;"
                                              "model=SoftHSM%20v2;token=tlsoffd-test2;id=%01"));
    ck_assert_str_eq(pkcs11_key_name(k), "id 01 on token 'tlsoffd-test2'");
    pkcs11_key_close(k);
    /* An id alone: the private key, not its public key or certificate. */
    k = open_ok(with_query("pkcs11:token=tlsoffd-test;id=%02"));
    ck_assert_int_eq(pkcs11_key_kind(k, NULL), KEY_KIND_RSA);
    pkcs11_key_close(k);
    k = open_ok(with_query("pkcs11:token=tlsoffd-test;object=rsa-key;type=private"));
    ck_assert_int_eq(pkcs11_key_kind(k, NULL), KEY_KIND_RSA);
    pkcs11_key_close(k);
}
END_TEST

START_TEST(missing_and_ambiguous_keys)
{
    open_fails(with_query("pkcs11:token=tlsoffd-test;object=no-such-key"), NULL,
               "object 'no-such-key' on token 'tlsoffd-test': no such private key");
    open_fails(with_query("pkcs11:token=tlsoffd-test;object=ec-key;id=%02"), NULL,
               "object 'ec-key' id 02 on token 'tlsoffd-test': no such private key");
    open_fails(with_query("pkcs11:token=tlsoffd-test;id=%7f%00"), NULL,
               "id 7f00 on token 'tlsoffd-test': no such private key");
    open_fails(with_query("pkcs11:token=tlsoffd-test;object=dup-key"), NULL,
               "object 'dup-key' on token 'tlsoffd-test': more than one private key matches: "
               "add id to the URI");
    /* The same label with an id is one key again, and signs as that key
     * (wolfSSL is handed the id: by the label it would take either). */
    const char *uris[2] = { uri_dup, with_query("pkcs11:token=tlsoffd-test;object=dup-key;"
                                                "id=%11") };
    const char *certs[2] = { "dup-key-10", "dup-key-11" };
    for (int i = 0; i < 2; i++) {
        struct pkcs11_key *k = open_ok(uris[i]);
        ecc_key pub;
        uint8_t d[32], sig[128];
        size_t dlen, siglen = sizeof sig;
        cert_ec_key(certs[i], &pub);
        digest(WC_HASH_TYPE_SHA256, d, &dlen);
        ck_assert_int_eq(pkcs11_key_sign(k, KEY_OP_ECDSA, 0, 0, d, dlen, sig, &siglen), 0);
        ck_assert_msg(ecdsa_ok(&pub, d, dlen, sig, siglen), "%s signed as another key",
                      pkcs11_key_name(k));
        wc_ecc_free(&pub);
        pkcs11_key_close(k);
    }
}
END_TEST

START_TEST(bad_module)
{
    open_fails("pkcs11:object=ec-key?module-path=/nonexistent/libp11.so", NULL,
               "PKCS#11 module '/nonexistent/libp11.so': No such file or directory");
    char notlib[128];
    snprintf(notlib, sizeof notlib, "pkcs11:object=ec-key?module-path=%s/pin", dir);
    open_fails(notlib, NULL, "/pin': cannot load it: ");
    /* The caller's default, when the URI names none. */
    err[0] = '\0';
    ck_assert_ptr_null(pkcs11_key_open("pkcs11:object=ec-key", NULL, "/nonexistent/default.so",
                                       err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "'/nonexistent/default.so'"));
    /* A library, but no PKCS#11 module. */
    const char *libm = "/lib/x86_64-linux-gnu/libm.so.6";
    if (access(libm, R_OK) == 0)
        open_fails("pkcs11:object=k?module-path=/lib/x86_64-linux-gnu/libm.so.6", NULL,
                   "libm.so.6': not a PKCS#11 module");
}
END_TEST

/* The fixture's PIN, without its newline. */
static const char *fixture_pin(void)
{
    static char pin[64];
    char path[128];
    snprintf(path, sizeof path, "%s/pin", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(pin, sizeof pin, f));
    fclose(f);
    pin[strcspn(pin, "\n")] = '\0';
    return pin;
}

/* The ec key's URI with query q instead of the fixture's. */
static const char *ec_with(const char *q)
{
    static char buf[2][700];
    static int i;
    char mod[64];
    i = (i + 1) % 2;
    snprintf(mod, sizeof mod, "module-path=%s", SOFTHSM_MODULE);
    snprintf(buf[i], sizeof buf[i], "pkcs11:token=tlsoffd-test;object=ec-key?%s%s%s", mod,
             q[0] ? "&" : "", q);
    return buf[i];
}

START_TEST(pins)
{
    char q[256], file[128];
    open_fails(uri_ec, "wrong-pin",
               "token 'tlsoffd-test': login failed: CKR_PIN_INCORRECT (wrong PIN)");
    open_fails(ec_with("pin-value=wrong"), NULL, "CKR_PIN_INCORRECT (wrong PIN)");
    open_fails(ec_with(""), NULL, "token 'tlsoffd-test' needs a login: no PIN given");
    open_fails(ec_with("pin-source=/nonexistent/pin"), NULL,
               "PIN file '/nonexistent/pin': No such file or directory");
    open_fails(ec_with("pin-source=/tmp"), NULL, "PIN file '/tmp': not a regular file");
    char *empty = unit_tempfile("\n");
    snprintf(q, sizeof q, "pin-source=%s", empty);
    open_fails(ec_with(q), NULL, "': empty");
    /* The caller's PIN, over the URI's. */
    struct pkcs11_key *k = pkcs11_key_open(ec_with("pin-value=wrong"), fixture_pin(), NULL, err,
                                           sizeof err);
    ck_assert_msg(k != NULL, "%s", err);
    pkcs11_key_close(k);
    /* pin-value, and a file without a newline or with CRLF. */
    snprintf(q, sizeof q, "pin-value=%s", fixture_pin());
    pkcs11_key_close(open_ok(ec_with(q)));
    char content[80];
    snprintf(content, sizeof content, "%s\r\n", fixture_pin());
    char *crlf = unit_tempfile(content);
    snprintf(file, sizeof file, "pin-source=file:%s", crlf);
    pkcs11_key_close(open_ok(ec_with(file)));
    char *bare = unit_tempfile(fixture_pin());
    snprintf(file, sizeof file, "pin-source=%s", bare);
    pkcs11_key_close(open_ok(ec_with(file)));
    unlink(empty), unlink(crlf), unlink(bare);
    free(empty), free(crlf), free(bare);
}
END_TEST

/* A second key on a token already open shares its login: its PIN is not
 * asked again (not even a wrong one). */
START_TEST(login_is_shared)
{
    struct pkcs11_key *ec = open_ok(uri_ec);
    struct pkcs11_key *rsa = pkcs11_key_open(uri_rsa, "wrong-pin", NULL, err, sizeof err);
    ck_assert_msg(rsa != NULL, "%s", err);
    ck_assert_int_eq(p11_open_tokens(), 1);
    pkcs11_key_close(ec);
    pkcs11_key_close(rsa);
    /* A failed login leaves nothing behind: the right PIN works next. */
    open_fails(uri_ec, "wrong-pin", "CKR_PIN_INCORRECT");
    pkcs11_key_close(open_ok(uri_ec));
}
END_TEST

START_TEST(sign_errors)
{
    struct pkcs11_key *ec = open_ok(uri_ec), *rsa = open_ok(uri_rsa);
    uint8_t d[64] = { 1 }, big[256] = { 0 }, out[512];
    size_t len = sizeof out;
    ck_assert_int_eq(pkcs11_key_sign(rsa, KEY_OP_ECDSA, 0, 0, d, 32, out, &len), -1);
    ck_assert_str_eq(pkcs11_key_error(rsa),
                     "object 'rsa-key' id 02 on token 'tlsoffd-test': ECDSA asked of an RSA key");
    ck_assert_int_eq(pkcs11_key_sign(ec, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d,
                                     32, out, &len), -1);
    ck_assert_ptr_nonnull(strstr(pkcs11_key_error(ec), "RSA-PSS asked of an EC key"));
    ck_assert_int_eq(pkcs11_key_sign(ec, KEY_OP_ECDSA, 0, 0, d, 19, out, &len), -1);
    ck_assert_ptr_nonnull(strstr(pkcs11_key_error(ec), "a digest of 19 bytes (20 to 64)"));
    ck_assert_int_eq(pkcs11_key_sign(ec, KEY_OP_ECDSA, 0, 0, d, 65, out, &len), -1);
    len = 40;
    ck_assert_int_eq(pkcs11_key_sign(ec, KEY_OP_ECDSA, 0, 0, d, 32, out, &len), -1);
    ck_assert_ptr_nonnull(strstr(pkcs11_key_error(ec), "room for 40 bytes"));
    len = 255;
    ck_assert_int_eq(pkcs11_key_sign(rsa, KEY_OP_RSA_PKCS1, 0, 0, d, 51, out, &len), -1);
    ck_assert_ptr_nonnull(strstr(pkcs11_key_error(rsa), "room for 255 bytes, the signature "
                                                        "takes 256"));
    len = sizeof out;
    ck_assert_int_eq(pkcs11_key_sign(rsa, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, WC_MGF1SHA384, d,
                                     32, out, &len), -1);
    ck_assert_ptr_nonnull(strstr(pkcs11_key_error(rsa), "do not go together"));
    ck_assert_int_eq(pkcs11_key_sign(rsa, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA384, WC_MGF1SHA384, d,
                                     32, out, &len), -1);
    ck_assert_int_eq(pkcs11_key_sign(rsa, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA, WC_MGF1SHA1, d, 20,
                                     out, &len), -1);
    /* PKCS#1 input too long for the key: wolfSSL's refusal, named. */
    ck_assert_int_eq(pkcs11_key_sign(rsa, KEY_OP_RSA_PKCS1, 0, 0, big, 250, out, &len), -1);
    ck_assert_ptr_nonnull(strstr(pkcs11_key_error(rsa), "RSA PKCS#1 v1.5 on the token failed"));
    ck_assert_int_eq(pkcs11_key_sign(rsa, 9, 0, 0, d, 32, out, &len), -1);
    ck_assert_ptr_nonnull(strstr(pkcs11_key_error(rsa), "unknown operation 9"));
    /* After all that, both still sign. */
    len = sizeof out;
    ck_assert_int_eq(pkcs11_key_sign(ec, KEY_OP_ECDSA, 0, 0, d, 32, out, &len), 0);
    ck_assert_str_eq(pkcs11_key_error(ec), "");
    len = sizeof out;
    ck_assert_int_eq(pkcs11_key_sign(rsa, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d,
                                     32, out, &len), 0);
    pkcs11_key_close(ec);
    pkcs11_key_close(rsa);
}
END_TEST

/* ---- After chroot and setuid ------------------------------------------ */

/* Counts a failure; the first one's message goes to fd. */
static void note(int *failed, int fd, const struct pkcs11_key *k)
{
    const char *msg = pkcs11_key_error(k)[0] ? pkcs11_key_error(k) : "a signature that fails";
    if ((*failed)++ == 0 && write(fd, msg, strlen(msg)) < 0)
        perror("check_pkcs11: write");
}

/* Child: opens both keys, chroots into jail and becomes nobody, then signs
 * with each operation and checks each signature. Exits with the number of
 * operations that failed; the first failure's message goes to fd. */
static void sign_confined(const char *jail, int fd)
{
    ecc_key ecpub;
    RsaKey rsapub;
    cert_ec_key("ec-key", &ecpub);
    cert_rsa_key("rsa-key", &rsapub);
    struct pkcs11_key *ec = open_ok(uri_ec), *rsa = open_ok(uri_rsa);
    struct passwd *pw = getpwnam("nobody");
    if (!pw || chroot(jail) < 0 || chdir("/") < 0 || setgroups(0, NULL) < 0 ||
        setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
        _exit(100);
    uint8_t d[32], info[64], sig[512];
    size_t dlen, siglen = sizeof sig;
    int failed = 0;
    digest(WC_HASH_TYPE_SHA256, d, &dlen);
    word32 infolen = wc_EncodeSignature(info, d, (word32)dlen, wc_HashGetOID(WC_HASH_TYPE_SHA256));
    if (pkcs11_key_sign(ec, KEY_OP_ECDSA, 0, 0, d, dlen, sig, &siglen) < 0 ||
        !ecdsa_ok(&ecpub, d, dlen, sig, siglen))
        note(&failed, fd, ec);
    siglen = sizeof sig;
    if (pkcs11_key_sign(rsa, KEY_OP_RSA_PKCS1, 0, 0, info, infolen, sig, &siglen) < 0 ||
        !pkcs1_ok(&rsapub, info, infolen, sig, siglen))
        note(&failed, fd, rsa);
    siglen = sizeof sig;
    if (pkcs11_key_sign(rsa, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d, dlen, sig,
                        &siglen) < 0 ||
        !pss_ok(&rsapub, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d, dlen, sig, siglen))
        note(&failed, fd, rsa);
    pkcs11_key_close(ec);
    pkcs11_key_close(rsa);
    _exit(failed);
}

/* How many operations failed in a child confined to jail; why in msg. */
static int confined_failures(const char *jail, char *msg, size_t len)
{
    int p[2], status;
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        sign_confined(jail, p[1]);
    }
    close(p[1]);
    ssize_t n = read(p[0], msg, len - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_ne(WEXITSTATUS(status), 100);
    return WEXITSTATUS(status);
}

static bool root_or_skip(const char *test)
{
    if (getuid() == 0)
        return true;
    fprintf(stderr, "check_pkcs11: %s: skipped (needs root for chroot and setuid)\n", test);
    return false;
}

/* SoftHSM 2 reads its token files again at every operation: in an empty
 * chroot nothing signs, however the token was opened before. */
START_TEST(empty_chroot_cannot_sign)
{
    if (!root_or_skip("empty_chroot_cannot_sign"))
        return;
    char jail[64] = "/tmp/tlsoffd-unit-jail-XXXXXX", msg[512];
    ck_assert_ptr_nonnull(mkdtemp(jail));
    int failed = confined_failures(jail, msg, sizeof msg);
    rmdir(jail);
    ck_assert_int_eq(failed, 3);
    ck_assert_str_eq(msg, "object 'ec-key' id 01 on token 'tlsoffd-test': ECDSA on the token "
                          "failed: Error with hardware crypto use; the token no longer shows the "
                          "key: CKR_OBJECT_HANDLE_INVALID");
}
END_TEST

/* What works: a chroot that holds the token directory at the path
 * softhsm2.conf names (the tokens inside the jail, and a symlink so that
 * the same absolute path leads to them from inside), readable by the
 * user the process becomes (group read suffices: signing writes nothing). */
START_TEST(jail_with_tokens_signs)
{
    if (!root_or_skip("jail_with_tokens_signs"))
        return;
    char cmd[512], msg[512];
    snprintf(cmd, sizeof cmd, "set -e; d='%s'; mkdir -p \"$d$(dirname \"$d\")\"; "
             "ln -sfn / \"$d$d\"; chgrp nogroup \"$d\"; chmod 0750 \"$d\"; "
             "chgrp -R nogroup \"$d/tokens\"; chmod -R g+rX,o-rwx \"$d/tokens\"", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_msg(confined_failures(dir, msg, sizeof msg) == 0, "%s", msg);
    /* Without the read permission, the same jail signs nothing. */
    snprintf(cmd, sizeof cmd, "chmod -R g-rwx '%s/tokens'", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(confined_failures(dir, msg, sizeof msg), 3);
    snprintf(cmd, sizeof cmd, "chmod -R g+rX '%s/tokens'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *pkcs11_suite(void)
{
    Suite *s = suite_create("pkcs11");
    TCase *uri = tcase_create("uri");
    tcase_add_test(uri, uri_all_attributes);
    tcase_add_test(uri, uri_decoding);
    tcase_add_loop_test(uri, uri_errors, 0, sizeof bad_uris / sizeof bad_uris[0]);
    tcase_add_test(uri, uri_error_hides_pin);
    tcase_add_test(uri, uri_helpers);
    suite_add_tcase(s, uri);
    if (!softhsm_installed()) {
        fprintf(stderr, "check_pkcs11: SoftHSM 2 is not installed (%s, softhsm2-util): the "
                "token tests are SKIPPED (apt-get install softhsm2)\n", SOFTHSM_MODULE);
        return s;
    }
    TCase *tok = tcase_create("softhsm");
    tcase_add_unchecked_fixture(tok, token_setup, token_teardown);
    tcase_add_test(tok, ec_signs);
    tcase_add_test(tok, rsa_signs);
    tcase_add_test(tok, rsa3072_signs);
    tcase_add_test(tok, default_module);
    tcase_add_test(tok, keys_share_module_and_token);
    tcase_add_test(tok, selection);
    tcase_add_test(tok, missing_and_ambiguous_keys);
    tcase_add_test(tok, bad_module);
    tcase_add_test(tok, pins);
    tcase_add_test(tok, login_is_shared);
    tcase_add_test(tok, sign_errors);
    tcase_add_test(tok, empty_chroot_cannot_sign);
    tcase_add_test(tok, jail_with_tokens_signs);
    suite_add_tcase(s, tok);
    return s;
}

UNIT_MAIN(pkcs11_suite)
