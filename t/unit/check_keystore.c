/* keystore.c: private keys loaded from PEM files, proved to match their
 * certificates, and every signature checked with the certificate's key. */
#include "unit.h"

#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

#include "keystore.h"

#define WHERE "t.conf:7"

static char err[1024];
static char tmpdir[64];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tlsoffd-keystore-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A file in this test's temporary directory. */
static const char *tmp(const char *name)
{
    static char buf[8][256];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Runs a shell command (openssl); it must succeed. */
__attribute__((format(printf, 1, 2)))
static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

/* A self-signed certificate NAME.crt and its key NAME.key in the
 * temporary directory; newkey as openssl req takes it ("rsa:1024"). */
static void self_signed(const char *name, const char *newkey, const char *opt)
{
    sh("openssl req -x509 -newkey %s %s -nodes -days 1 -subj /CN=%s -keyout %s/%s.key "
       "-out %s/%s.crt 2>/dev/null", newkey, opt, name, tmpdir, name, tmpdir, name);
}

static struct key_conf kc(const char *cert, const char *key, const char *pw)
{
    return (struct key_conf){ .key = key, .password_file = pw, .cert = cert, .where = WHERE };
}

static const char *ec_crt(void) { return unit_cert("example.test.crt"); }
static const char *ec_key(void) { return unit_cert("example.test.key"); }
static const char *rsa_crt(void) { return unit_cert("rsa.test.crt"); }
static const char *rsa_key(void) { return unit_cert("rsa.test.key"); }

static struct keystore *store(void)
{
    struct keystore *ks = keystore_new(err, sizeof err);
    ck_assert_msg(ks != NULL, "%s", err);
    return ks;
}

static void add(struct keystore *ks, struct key_conf k)
{
    ck_assert_msg(keystore_add(ks, &k, NULL, err, sizeof err) == 0, "%s", err);
}

/* A store with key 0 the EC key (example.test), key 1 the RSA key (rsa.test). */
static struct keystore *two_keys(void)
{
    struct keystore *ks = store();
    add(ks, kc(ec_crt(), ec_key(), NULL));
    add(ks, kc(rsa_crt(), rsa_key(), NULL));
    return ks;
}

/* keystore_add refuses k: err starts with where and the key, and holds
 * each of the NULL-terminated strings after it; nothing is added. */
static void refused(struct key_conf k, ...)
{
    struct keystore *ks = store();
    char prefix[600];
    memset(err, 0, sizeof err);
    ck_assert_int_eq(keystore_add(ks, &k, NULL, err, sizeof err), -1);
    snprintf(prefix, sizeof prefix, WHERE ": key '%s'", k.key);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "'%s' does not start with '%s'",
                  err, prefix);
    va_list ap;
    va_start(ap, k);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        ck_assert_msg(strstr(err, s) != NULL, "'%s' not in: %s", s, err);
    va_end(ap);
    ck_assert_uint_eq(keystore_count(ks), 0);
    keystore_free(ks);
}

static struct keyproto_rep sign(struct keystore *ks, uint32_t key, int op, int hash, int mgf,
                                const uint8_t *in, size_t len)
{
    struct keyproto_req rq = { .magic = KEYPROTO_MAGIC, .id = 9, .key = key, .op = (uint8_t)op,
                               .hash = (uint8_t)hash, .mgf = (uint8_t)mgf,
                               .len = (uint16_t)len };
    struct keyproto_rep rep;
    memset(&rep, 0xa5, sizeof rep);
    memcpy(rq.in, in, len);
    keystore_sign(ks, &rq, &rep);
    ck_assert_uint_eq(rep.magic, KEYPROTO_MAGIC);
    ck_assert_uint_eq(rep.id, 9);
    ck_assert_uint_le(rep.len, KEYPROTO_SIG_MAX);
    if (rep.status != KEYPROTO_OK)
        ck_assert_uint_eq(rep.len, 0);
    return rep;
}

/* The public key of a certificate file: EC into ec, or RSA into rsa. */
static void public_key(const char *cert, ecc_key *ec, RsaKey *rsa)
{
    unsigned char spki[4096];
    int len = sizeof spki;
    word32 idx = 0;
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert, WOLFSSL_FILETYPE_PEM);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(wolfSSL_X509_get_pubkey_buffer(x, spki, &len), WOLFSSL_SUCCESS);
    if (ec) {
        ck_assert_int_eq(wc_ecc_init(ec), 0);
        ck_assert_int_eq(wc_EccPublicKeyDecode(spki, &idx, ec, (word32)len), 0);
    } else {
        ck_assert_int_eq(wc_InitRsaKey(rsa, NULL), 0);
        ck_assert_int_eq(wc_RsaPublicKeyDecode(spki, &idx, rsa, (word32)len), 0);
    }
    wolfSSL_X509_free(x);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 13);
}

static bool ecdsa_ok(ecc_key *ec, const uint8_t *sig, size_t len, const uint8_t *d, size_t dl)
{
    int res = 0;
    return wc_ecc_verify_hash(sig, (word32)len, d, (word32)dl, &res, ec) == 0 && res == 1;
}

static bool pkcs1_ok(RsaKey *rsa, const uint8_t *sig, size_t len, const uint8_t *di, size_t dl)
{
    uint8_t back[KEYPROTO_SIG_MAX];
    int m = wc_RsaSSL_Verify(sig, (word32)len, back, sizeof back, rsa);
    return m == (int)dl && memcmp(back, di, dl) == 0;
}

static bool pss_ok(RsaKey *rsa, const uint8_t *sig, size_t len, const uint8_t *d, size_t dl,
                   int hash, int mgf)
{
    uint8_t back[KEYPROTO_SIG_MAX];
    int m = wc_RsaPSS_Verify((byte *)sig, (word32)len, back, sizeof back,
                             (enum wc_HashType)hash, mgf, rsa);
    return m > 0 &&
           wc_RsaPSS_CheckPadding(d, (word32)dl, back, (word32)m, (enum wc_HashType)hash) == 0;
}

/* An empty store, then the EC and the RSA key, described as they are. */
START_TEST(new_add_describe)
{
    struct keystore *ks = store();
    ck_assert_uint_eq(keystore_count(ks), 0);
    ck_assert_str_eq(keystore_describe(ks, 0), "?");
    add(ks, kc(ec_crt(), ec_key(), NULL));
    ck_assert_uint_eq(keystore_count(ks), 1);
    add(ks, kc(rsa_crt(), rsa_key(), NULL));
    ck_assert_uint_eq(keystore_count(ks), 2);
    ck_assert_str_eq(keystore_describe(ks, 0), "EC256");     /* P-256 */
    ck_assert_str_eq(keystore_describe(ks, 1), "RSA2048");
    ck_assert_str_eq(keystore_describe(ks, 2), "?");
    ck_assert_str_eq(keystore_describe(ks, (size_t)-1), "?");
    keystore_free(ks);
    keystore_free(NULL);
}
END_TEST

/* ECDSA of every digest size, each verified with the certificate's key. */
START_TEST(ecdsa_signatures_verify)
{
    static const size_t sizes[] = { 20, 28, 32, 48, 64 };
    struct keystore *ks = two_keys();
    ecc_key ec;
    public_key(ec_crt(), &ec, NULL);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t d[64];
        fill(d, sizes[i], (uint8_t)i);
        struct keyproto_rep r = sign(ks, 0, KEY_OP_ECDSA, 0, 0, d, sizes[i]);
        ck_assert_int_eq(r.status, KEYPROTO_OK);
        ck_assert_uint_ge(r.len, 8);
        ck_assert_uint_le(r.len, 72);                   /* a DER P-256 signature */
        ck_assert_int_eq(r.sig[0], 0x30);
        ck_assert_msg(ecdsa_ok(&ec, r.sig, r.len, d, sizes[i]), "digest of %zu", sizes[i]);
        /* ... and of this digest only, and as it was made */
        d[0] ^= 1;
        ck_assert(!ecdsa_ok(&ec, r.sig, r.len, d, sizes[i]));
        d[0] ^= 1;
        r.sig[r.len - 1] ^= 0x01;
        ck_assert(!ecdsa_ok(&ec, r.sig, r.len, d, sizes[i]));
    }
    /* A fresh nonce each time. */
    uint8_t d[32];
    fill(d, sizeof d, 3);
    struct keyproto_rep a = sign(ks, 0, KEY_OP_ECDSA, 0, 0, d, 32);
    struct keyproto_rep b = sign(ks, 0, KEY_OP_ECDSA, 0, 0, d, 32);
    ck_assert(a.len != b.len || memcmp(a.sig, b.sig, a.len) != 0);
    wc_ecc_free(&ec);
    keystore_free(ks);
}
END_TEST

/* PKCS#1 v1.5 of the DigestInfo of every hash, verified. */
START_TEST(pkcs1_signatures_verify)
{
    static const struct { int oid; size_t len; } h[] = {
        { SHAh, 20 }, { SHA224h, 28 }, { SHA256h, 32 }, { SHA384h, 48 }, { SHA512h, 64 },
    };
    struct keystore *ks = two_keys();
    RsaKey rsa;
    public_key(rsa_crt(), NULL, &rsa);
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        uint8_t d[64], di[KEYPROTO_IN_MAX];
        fill(d, h[i].len, (uint8_t)(40 + i));
        int dl = (int)wc_EncodeSignature(di, d, (word32)h[i].len, h[i].oid);
        ck_assert_int_gt(dl, 0);
        struct keyproto_rep r = sign(ks, 1, KEY_OP_RSA_PKCS1, 0, 0, di, (size_t)dl);
        ck_assert_int_eq(r.status, KEYPROTO_OK);
        ck_assert_uint_eq(r.len, 256);
        ck_assert(pkcs1_ok(&rsa, r.sig, r.len, di, (size_t)dl));
        /* deterministic: the same input, the same signature */
        struct keyproto_rep again = sign(ks, 1, KEY_OP_RSA_PKCS1, 0, 0, di, (size_t)dl);
        ck_assert(again.len == r.len && memcmp(again.sig, r.sig, r.len) == 0);
        r.sig[100] ^= 0x80;
        ck_assert(!pkcs1_ok(&rsa, r.sig, r.len, di, (size_t)dl));
    }
    wc_FreeRsaKey(&rsa);
    keystore_free(ks);
}
END_TEST

/* RSA-PSS with SHA-256/384/512 (salt: the digest's length), verified. */
START_TEST(pss_signatures_verify)
{
    static const struct { int hash, mgf; size_t len; } h[] = {
        { WC_HASH_TYPE_SHA256, WC_MGF1SHA256, 32 },
        { WC_HASH_TYPE_SHA384, WC_MGF1SHA384, 48 },
        { WC_HASH_TYPE_SHA512, WC_MGF1SHA512, 64 },
    };
    struct keystore *ks = two_keys();
    RsaKey rsa;
    public_key(rsa_crt(), NULL, &rsa);
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        uint8_t d[64];
        fill(d, h[i].len, (uint8_t)(90 + i));
        struct keyproto_rep r = sign(ks, 1, KEY_OP_RSA_PSS, h[i].hash, h[i].mgf, d, h[i].len);
        ck_assert_int_eq(r.status, KEYPROTO_OK);
        ck_assert_uint_eq(r.len, 256);
        ck_assert(pss_ok(&rsa, r.sig, r.len, d, h[i].len, h[i].hash, h[i].mgf));
        /* randomised: the salt differs each time */
        struct keyproto_rep again = sign(ks, 1, KEY_OP_RSA_PSS, h[i].hash, h[i].mgf, d, h[i].len);
        ck_assert_int_eq(again.status, KEYPROTO_OK);
        ck_assert(memcmp(again.sig, r.sig, r.len) != 0);
        ck_assert(pss_ok(&rsa, again.sig, again.len, d, h[i].len, h[i].hash, h[i].mgf));
        d[5] ^= 1;                                      /* another digest */
        ck_assert(!pss_ok(&rsa, r.sig, r.len, d, h[i].len, h[i].hash, h[i].mgf));
        d[5] ^= 1;
        r.sig[17] ^= 0x04;                              /* a damaged signature */
        ck_assert(!pss_ok(&rsa, r.sig, r.len, d, h[i].len, h[i].hash, h[i].mgf));
    }
    wc_FreeRsaKey(&rsa);
    keystore_free(ks);
}
END_TEST

/* An operation the key's kind has not, or a key the store has not: NO_KEY. */
START_TEST(wrong_kind_or_index)
{
    struct keystore *ks = two_keys();
    uint8_t d[32], di[64];
    fill(d, sizeof d, 1);
    size_t dl = wc_EncodeSignature(di, d, sizeof d, SHA256h);
    ck_assert_int_eq(sign(ks, 0, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d, 32).status,
                     KEYPROTO_NO_KEY);                  /* PSS on the EC key */
    ck_assert_int_eq(sign(ks, 0, KEY_OP_RSA_PKCS1, 0, 0, di, dl).status, KEYPROTO_NO_KEY);
    ck_assert_int_eq(sign(ks, 1, KEY_OP_ECDSA, 0, 0, d, 32).status, KEYPROTO_NO_KEY);
    ck_assert_int_eq(sign(ks, 2, KEY_OP_ECDSA, 0, 0, d, 32).status, KEYPROTO_NO_KEY);
    ck_assert_int_eq(sign(ks, 3, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d, 32).status,
                     KEYPROTO_NO_KEY);
    ck_assert_int_eq(sign(ks, UINT32_MAX, KEY_OP_ECDSA, 0, 0, d, 32).status, KEYPROTO_NO_KEY);
    keystore_free(ks);
    struct keystore *empty = store();
    ck_assert_int_eq(sign(empty, 0, KEY_OP_ECDSA, 0, 0, d, 32).status, KEYPROTO_NO_KEY);
    keystore_free(empty);
}
END_TEST

/* A PSS signature the key is too small for fails, and says so. */
START_TEST(pss_too_big_for_the_key)
{
    self_signed("r1024", "rsa:1024", "");
    struct keystore *ks = store();
    add(ks, kc(tmp("r1024.crt"), tmp("r1024.key"), NULL));
    ck_assert_str_eq(keystore_describe(ks, 0), "RSA1024");
    uint8_t d[64];
    fill(d, sizeof d, 7);
    /* 64 + 64 + 2 bytes do not fit in 128 */
    ck_assert_int_eq(sign(ks, 0, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA512, WC_MGF1SHA512, d, 64).status,
                     KEYPROTO_FAILED);
    RsaKey rsa;
    public_key(tmp("r1024.crt"), NULL, &rsa);
    struct keyproto_rep r = sign(ks, 0, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA384, WC_MGF1SHA384, d, 48);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    ck_assert_uint_eq(r.len, 128);
    ck_assert(pss_ok(&rsa, r.sig, r.len, d, 48, WC_HASH_TYPE_SHA384, WC_MGF1SHA384));
    wc_FreeRsaKey(&rsa);
    keystore_free(ks);
}
END_TEST

/* P-384 and P-521 keys: signatures verify; P-384 is described by its size. */
START_TEST(other_curves)
{
    self_signed("p384", "ec", "-pkeyopt ec_paramgen_curve:P-384");
    struct keystore *ks = store();
    add(ks, kc(tmp("p384.crt"), tmp("p384.key"), NULL));
    ck_assert_str_eq(keystore_describe(ks, 0), "EC384");
    ecc_key ec;
    public_key(tmp("p384.crt"), &ec, NULL);
    uint8_t d[48];
    fill(d, sizeof d, 11);
    struct keyproto_rep r = sign(ks, 0, KEY_OP_ECDSA, 0, 0, d, 48);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    ck_assert(ecdsa_ok(&ec, r.sig, r.len, d, 48));
    wc_ecc_free(&ec);
    /* another P-384 key does not match it */
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out %s", tmp("o384"));
    refused(kc(tmp("p384.crt"), tmp("o384"), NULL), "does not match certificate", NULL);
    /* nor does a P-256 key */
    refused(kc(tmp("p384.crt"), ec_key(), NULL), "does not match certificate", NULL);
    /* P-521, with a SHA-512 digest: 66 bytes, 521 bits */
    self_signed("p521", "ec", "-pkeyopt ec_paramgen_curve:P-521");
    add(ks, kc(tmp("p521.crt"), tmp("p521.key"), NULL));
    ck_assert_str_eq(keystore_describe(ks, 1), "EC521");
    public_key(tmp("p521.crt"), &ec, NULL);
    uint8_t d64[64];
    fill(d64, sizeof d64, 12);
    r = sign(ks, 1, KEY_OP_ECDSA, 0, 0, d64, 64);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    ck_assert_uint_gt(r.len, 72);
    ck_assert(ecdsa_ok(&ec, r.sig, r.len, d64, 64));
    wc_ecc_free(&ec);
    keystore_free(ks);
}
END_TEST

/* Files that are missing, not files, or too large; a missing certificate. */
START_TEST(missing_files)
{
    refused(kc(ec_crt(), "/no/such.key", NULL), "'/no/such.key'", "No such file or directory",
            NULL);
    refused(kc(ec_crt(), tmpdir, NULL), "not a regular file", NULL);
    ck_assert_int_eq(truncate(tmp("big.key"), 0), -1);      /* (not there yet) */
    write_file(tmp("big.key"), "");
    ck_assert_int_eq(truncate(tmp("big.key"), (1 << 20) + 1), 0);
    refused(kc(ec_crt(), tmp("big.key"), NULL), "larger than", NULL);
    refused(kc("/no/such.crt", ec_key(), NULL),
            "cannot read the public key of certificate '/no/such.crt'", NULL);
    refused(kc(unit_cert("garbage.pem"), ec_key(), NULL),
            "cannot read the public key of certificate", NULL);
}
END_TEST

/* Keys that are not the certificate's. */
START_TEST(mismatched_keys)
{
    char want[600];
    snprintf(want, sizeof want, "does not match certificate '%s'", ec_crt());
    refused(kc(ec_crt(), unit_cert("mismatch.key"), NULL), want, NULL);
    refused(kc(ec_crt(), unit_cert("other.key"), NULL), want, NULL);
    refused(kc(ec_crt(), rsa_key(), NULL), want, NULL);                 /* RSA for EC */
    snprintf(want, sizeof want, "does not match certificate '%s'", rsa_crt());
    refused(kc(rsa_crt(), ec_key(), NULL), want, NULL);                 /* EC for RSA */
    refused(kc(rsa_crt(), unit_cert("dual-rsa.key"), NULL), want, NULL);    /* another RSA */
    /* with the chain file (leaf first) as the certificate too */
    refused(kc(unit_cert("example.test.pem"), unit_cert("mismatch.key"), NULL),
            "does not match certificate", NULL);
    /* and a failed key leaves the store as it was */
    struct keystore *ks = store();
    add(ks, kc(ec_crt(), ec_key(), NULL));
    struct key_conf bad = kc(rsa_crt(), ec_key(), NULL);
    ck_assert_int_eq(keystore_add(ks, &bad, NULL, err, sizeof err), -1);
    ck_assert_uint_eq(keystore_count(ks), 1);
    add(ks, kc(rsa_crt(), rsa_key(), NULL));
    ck_assert_uint_eq(keystore_count(ks), 2);
    ck_assert_str_eq(keystore_describe(ks, 1), "RSA2048");
    uint8_t d[32];
    fill(d, sizeof d, 2);
    ck_assert_int_eq(sign(ks, 1, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d, 32).status,
                     KEYPROTO_OK);
    ck_assert_int_eq(sign(ks, 0, KEY_OP_ECDSA, 0, 0, d, 32).status, KEYPROTO_OK);
    keystore_free(ks);
}
END_TEST

/* Encrypted PKCS#8 (AES-256) keys and their password files. */
START_TEST(encrypted_pkcs8)
{
    write_file(tmp("pw"), "correct horse\n");
    write_file(tmp("pw.crlf"), "correct horse\r\nsecond line\n");
    write_file(tmp("pw.nonl"), "correct horse");
    write_file(tmp("bad"), "wrong\n");
    write_file(tmp("empty"), "");
    write_file(tmp("blank"), "\ncorrect horse\n");
    sh("openssl pkey -in %s -aes256 -passout file:%s -out %s", ec_key(), tmp("pw"),
       tmp("ec.enc"));
    sh("openssl pkey -in %s -aes256 -passout file:%s -out %s", rsa_key(), tmp("pw"),
       tmp("rsa.enc"));
    sh("grep -q 'BEGIN ENCRYPTED PRIVATE KEY' %s", tmp("ec.enc"));

    struct keystore *ks = store();
    add(ks, kc(ec_crt(), tmp("ec.enc"), tmp("pw")));
    add(ks, kc(rsa_crt(), tmp("rsa.enc"), tmp("pw.crlf")));         /* the first line */
    add(ks, kc(ec_crt(), tmp("ec.enc"), tmp("pw.nonl")));
    add(ks, kc(ec_crt(), ec_key(), tmp("pw")));             /* a password for a plain key */
    ck_assert_str_eq(keystore_describe(ks, 0), "EC256");
    ck_assert_str_eq(keystore_describe(ks, 1), "RSA2048");
    uint8_t d[32];
    fill(d, sizeof d, 5);
    ecc_key ec;
    public_key(ec_crt(), &ec, NULL);
    struct keyproto_rep r = sign(ks, 0, KEY_OP_ECDSA, 0, 0, d, 32);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    ck_assert(ecdsa_ok(&ec, r.sig, r.len, d, 32));
    wc_ecc_free(&ec);
    RsaKey rsa;
    public_key(rsa_crt(), NULL, &rsa);
    r = sign(ks, 1, KEY_OP_RSA_PSS, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d, 32);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    ck_assert(pss_ok(&rsa, r.sig, r.len, d, 32, WC_HASH_TYPE_SHA256, WC_MGF1SHA256));
    wc_FreeRsaKey(&rsa);
    keystore_free(ks);

    for (int i = 0; i < 2; i++) {
        const char *crt = i ? rsa_crt() : ec_crt(), *enc = tmp(i ? "rsa.enc" : "ec.enc");
        char want[600];
        refused(kc(crt, enc, NULL), "encrypted: set key_password_file", NULL);
        snprintf(want, sizeof want, "with the password in '%s'", tmp("bad"));
        refused(kc(crt, enc, tmp("bad")), "wrong password?", want, NULL);
        snprintf(want, sizeof want, "key_password_file '%s'", tmp("empty"));
        refused(kc(crt, enc, tmp("empty")), want, "empty", NULL);
        snprintf(want, sizeof want, "key_password_file '%s'", tmp("blank"));
        refused(kc(crt, enc, tmp("blank")), want, "empty", NULL);   /* a blank first line */
        refused(kc(crt, enc, "/no/such.pass"), "key_password_file '/no/such.pass'",
                "No such file or directory", NULL);
        refused(kc(crt, enc, tmpdir), "key_password_file", "not a regular file", NULL);
    }
}
END_TEST

/* Traditional PEM ("BEGIN EC/RSA PRIVATE KEY"), plain and encrypted (Proc-Type). */
START_TEST(traditional_pem)
{
    write_file(tmp("pw"), "s3cret\n");
    write_file(tmp("bad"), "S3cret\n");
    sh("openssl pkey -in %s -traditional -out %s", ec_key(), tmp("ec.trad"));
    sh("openssl pkey -in %s -traditional -out %s", rsa_key(), tmp("rsa.trad"));
    sh("openssl ec -in %s -aes256 -passout file:%s -out %s 2>/dev/null", ec_key(), tmp("pw"),
       tmp("ec.trad.enc"));
    sh("openssl rsa -in %s -traditional -aes256 -passout file:%s -out %s 2>/dev/null", rsa_key(),
       tmp("pw"), tmp("rsa.trad.enc"));
    sh("grep -q 'BEGIN EC PRIVATE KEY' %s", tmp("ec.trad"));
    sh("grep -q 'BEGIN RSA PRIVATE KEY' %s", tmp("rsa.trad"));
    sh("grep -q 'Proc-Type: 4,ENCRYPTED' %s", tmp("rsa.trad.enc"));
    sh("grep -q 'Proc-Type: 4,ENCRYPTED' %s", tmp("ec.trad.enc"));
    struct keystore *ks = store();
    add(ks, kc(ec_crt(), tmp("ec.trad"), NULL));
    add(ks, kc(rsa_crt(), tmp("rsa.trad"), NULL));
    add(ks, kc(ec_crt(), tmp("ec.trad.enc"), tmp("pw")));
    add(ks, kc(rsa_crt(), tmp("rsa.trad.enc"), tmp("pw")));
    ck_assert_str_eq(keystore_describe(ks, 0), "EC256");
    ck_assert_str_eq(keystore_describe(ks, 1), "RSA2048");
    ck_assert_str_eq(keystore_describe(ks, 2), "EC256");
    ck_assert_str_eq(keystore_describe(ks, 3), "RSA2048");
    keystore_free(ks);
    refused(kc(rsa_crt(), tmp("rsa.trad.enc"), NULL), "encrypted: set key_password_file", NULL);
    refused(kc(ec_crt(), tmp("ec.trad.enc"), NULL), "encrypted: set key_password_file", NULL);
    /* wolfSSL 5.5.4 "decrypts" a Proc-Type PEM with any password (no
     * padding check): the decoding must tell, and say why. */
    refused(kc(rsa_crt(), tmp("rsa.trad.enc"), tmp("bad")), "wrong password?", NULL);
    refused(kc(ec_crt(), tmp("ec.trad.enc"), tmp("bad")), "wrong password?", NULL);
}
END_TEST

/* Files with no RSA or EC private key in them. */
START_TEST(no_key_in_the_file)
{
    const char *what = "no RSA or EC private key";
    refused(kc(ec_crt(), unit_cert("ca.pem"), NULL), what, NULL);           /* a certificate */
    refused(kc(ec_crt(), ec_crt(), NULL), what, NULL);
    refused(kc(ec_crt(), unit_cert("garbage.pem"), NULL), what, NULL);
    write_file(tmp("empty.key"), "");
    refused(kc(ec_crt(), tmp("empty.key"), NULL), what, NULL);
    write_file(tmp("broken.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    refused(kc(ec_crt(), tmp("broken.key"), NULL), what, NULL);
    sh("openssl pkey -in %s -pubout -out %s", ec_key(), tmp("pub.pem"));     /* a public key */
    refused(kc(ec_crt(), tmp("pub.pem"), NULL), what, NULL);
    sh("openssl genpkey -algorithm ED25519 -out %s", tmp("ed.key"));        /* another kind */
    refused(kc(ec_crt(), tmp("ed.key"), NULL), what, NULL);
}
END_TEST

/* A file holding the certificate chain and the key serves as both. */
START_TEST(combined_file)
{
    const char *c = unit_cert("certdir/c.test.pem");
    sh("grep -q 'BEGIN CERTIFICATE' %s && grep -q 'PRIVATE KEY' %s", c, c);
    struct keystore *ks = store();
    add(ks, kc(c, c, NULL));
    ck_assert_str_eq(keystore_describe(ks, 0), "EC256");
    uint8_t d[32];
    fill(d, sizeof d, 9);
    ecc_key ec;
    public_key(c, &ec, NULL);
    struct keyproto_rep r = sign(ks, 0, KEY_OP_ECDSA, 0, 0, d, 32);
    ck_assert_int_eq(r.status, KEYPROTO_OK);
    ck_assert(ecdsa_ok(&ec, r.sig, r.len, d, 32));
    wc_ecc_free(&ec);
    /* chain then key, and key then chain */
    sh("cat %s %s > %s", unit_cert("rsa.test.pem"), rsa_key(), tmp("rsa.both"));
    sh("cat %s %s > %s", ec_key(), unit_cert("example.test.pem"), tmp("ec.both"));
    add(ks, kc(tmp("rsa.both"), tmp("rsa.both"), NULL));
    add(ks, kc(tmp("ec.both"), tmp("ec.both"), NULL));
    ck_assert_str_eq(keystore_describe(ks, 1), "RSA2048");
    ck_assert_str_eq(keystore_describe(ks, 2), "EC256");
    keystore_free(ks);
    /* the right certificate, another key in the file */
    sh("cat %s %s > %s", ec_crt(), unit_cert("mismatch.key"), tmp("wrong.both"));
    refused(kc(tmp("wrong.both"), tmp("wrong.both"), NULL), "does not match certificate", NULL);
}
END_TEST

/* Many keys: each one answers for its own index. */
START_TEST(many_keys)
{
    struct keystore *ks = store();
    for (int i = 0; i < 24; i++)
        add(ks, i % 3 ? kc(ec_crt(), ec_key(), NULL) : kc(rsa_crt(), rsa_key(), NULL));
    ck_assert_uint_eq(keystore_count(ks), 24);
    uint8_t d[32];
    fill(d, sizeof d, 4);
    for (uint32_t i = 0; i < 24; i++) {
        int op = i % 3 ? KEY_OP_ECDSA : KEY_OP_RSA_PSS;
        ck_assert_str_eq(keystore_describe(ks, i), i % 3 ? "EC256" : "RSA2048");
        ck_assert_int_eq(sign(ks, i, op, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d, 32).status,
                         KEYPROTO_OK);
        op = i % 3 ? KEY_OP_RSA_PSS : KEY_OP_ECDSA;
        ck_assert_int_eq(sign(ks, i, op, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, d, 32).status,
                         KEYPROTO_NO_KEY);
    }
    keystore_free(ks);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("keystore");
    TCase *tc = tcase_create("keystore");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, new_add_describe);
    tcase_add_test(tc, ecdsa_signatures_verify);
    tcase_add_test(tc, pkcs1_signatures_verify);
    tcase_add_test(tc, pss_signatures_verify);
    tcase_add_test(tc, wrong_kind_or_index);
    tcase_add_test(tc, pss_too_big_for_the_key);
    tcase_add_test(tc, other_curves);
    tcase_add_test(tc, missing_files);
    tcase_add_test(tc, mismatched_keys);
    tcase_add_test(tc, encrypted_pkcs8);
    tcase_add_test(tc, traditional_pem);
    tcase_add_test(tc, no_key_in_the_file);
    tcase_add_test(tc, combined_file);
    tcase_add_test(tc, many_keys);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
