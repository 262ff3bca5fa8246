/* keyproto.c: the key processes' requests and replies, every field checked. */
#include "unit.h"

#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

#include "keyproto.h"

#define REQ_HEAD offsetof(struct keyproto_req, in)
#define REP_HEAD offsetof(struct keyproto_rep, sig)

/* A request of op with len bytes of input (0x5a), id 3, key 1. */
static struct keyproto_req req(int op, size_t len)
{
    struct keyproto_req r = { .magic = KEYPROTO_MAGIC, .id = 3, .key = 1, .op = (uint8_t)op,
                              .len = (uint16_t)len };
    memset(r.in, 0x5a, len < sizeof r.in ? len : sizeof r.in);
    return r;
}

/* A PSS request for hash (mgf: what it says), len bytes of digest. */
static struct keyproto_req pss(int hash, int mgf, size_t len)
{
    struct keyproto_req r = req(KEY_OP_RSA_PSS, len);
    r.hash = (uint8_t)hash;
    r.mgf = (uint8_t)mgf;
    return r;
}

/* A PKCS#1 request holding the DigestInfo of a digest of hash oid (a
 * wolfSSL OID sum: SHA256h) of dlen bytes. */
static struct keyproto_req pkcs1(int oid, size_t dlen)
{
    uint8_t digest[WC_MAX_DIGEST_SIZE];
    struct keyproto_req r = req(KEY_OP_RSA_PKCS1, 0);
    for (size_t i = 0; i < dlen; i++)
        digest[i] = (uint8_t)(i * 7 + 1);
    int n = (int)wc_EncodeSignature(r.in, digest, (word32)dlen, oid);
    ck_assert_int_gt(n, 0);
    r.len = (uint16_t)n;
    return r;
}

/* Parses the first n bytes of r, copied into a buffer of exactly n bytes
 * (ASan sees a read past them); on success the result must be r's bytes. */
static int parse_n(const struct keyproto_req *r, size_t n, const char **why)
{
    struct keyproto_req out;
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, r, n < sizeof *r ? n : sizeof *r);
    if (n > sizeof *r)
        memset(buf + sizeof *r, 0, n - sizeof *r);
    *why = NULL;
    int rc = keyproto_parse_req(buf, n, &out, why);
    if (rc == 0) {
        ck_assert_ptr_null(*why);
        ck_assert(memcmp(&out, buf, n) == 0);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_nonnull(*why);
        ck_assert(**why != 0);
    }
    free(buf);
    return rc;
}

static int parse(const struct keyproto_req *r, const char **why)
{
    return parse_n(r, keyproto_req_size(r), why);
}

/* r is refused, and why says what (a substring). */
#define REFUSED(r, what)                                                        \
    do {                                                                        \
        const char *why_;                                                       \
        ck_assert_int_eq(parse(&(r), &why_), -1);                               \
        ck_assert_msg(strstr(why_, (what)) != NULL, "'%s' not in '%s'", (what), why_); \
    } while (0)
#define ACCEPTED(r)                                                             \
    do {                                                                        \
        const char *why_;                                                       \
        ck_assert_msg(parse(&(r), &why_) == 0, "refused: %s", why_);            \
    } while (0)

/* A message's size is its header and its len bytes, never more than the struct. */
START_TEST(sizes)
{
    struct keyproto_req r = req(KEY_OP_ECDSA, 32);
    ck_assert_uint_eq(keyproto_req_size(&r), REQ_HEAD + 32);
    r.len = 0xffff;
    ck_assert_uint_eq(keyproto_req_size(&r), sizeof r);
    struct keyproto_rep p = { .len = 256 };
    ck_assert_uint_eq(keyproto_rep_size(&p), REP_HEAD + 256);
    p.len = KEYPROTO_SIG_MAX + 1;
    ck_assert_uint_eq(keyproto_rep_size(&p), sizeof p);
    ck_assert_uint_eq(keyproto_hash_len(WC_HASH_TYPE_SHA256), 32);
    ck_assert_uint_eq(keyproto_hash_len(WC_HASH_TYPE_SHA384), 48);
    ck_assert_uint_eq(keyproto_hash_len(WC_HASH_TYPE_SHA512), 64);
    ck_assert_uint_eq(keyproto_hash_len(WC_HASH_TYPE_SHA), 0);
    ck_assert_uint_eq(keyproto_hash_len(WC_HASH_TYPE_SHA224), 0);
    ck_assert_uint_eq(keyproto_hash_len(WC_HASH_TYPE_NONE), 0);
    ck_assert_str_eq(keyproto_status_name(KEYPROTO_OK), "ok");
    ck_assert_str_eq(keyproto_status_name(KEYPROTO_NO_KEY), "no such key");
    ck_assert_str_eq(keyproto_status_name(KEYPROTO_FAILED), "signing failed");
    ck_assert_str_eq(keyproto_status_name(KEYPROTO_BAD_REQUEST), "bad request");
    ck_assert_str_eq(keyproto_status_name(77), "unknown status");
}
END_TEST

/* ECDSA: a digest of SHA-1, -224, -256, -384 or -512 size, nothing else. */
START_TEST(ecdsa_digests)
{
    static const size_t good[] = { 20, 28, 32, 48, 64 };
    static const size_t bad[] = { 0, 1, 19, 21, 31, 33, 47, 49, 63, 65, 100, KEYPROTO_IN_MAX };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct keyproto_req r = req(KEY_OP_ECDSA, good[i]);
        ACCEPTED(r);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct keyproto_req r = req(KEY_OP_ECDSA, bad[i]);
        REFUSED(r, "ECDSA digest of an unknown length");
    }
    /* The PSS fields are not ECDSA's: whatever they hold, the digest decides. */
    struct keyproto_req r = req(KEY_OP_ECDSA, 32);
    r.hash = WC_HASH_TYPE_SHA;
    r.mgf = 99;
    ACCEPTED(r);
}
END_TEST

/* PKCS#1 v1.5: a real DigestInfo of each hash TLS signs with. */
START_TEST(pkcs1_digest_infos)
{
    static const struct { int oid; size_t len, der; } h[] = {
        { SHAh, 20, 35 }, { SHA224h, 28, 47 }, { SHA256h, 32, 51 },
        { SHA384h, 48, 67 }, { SHA512h, 64, 83 },
    };
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        struct keyproto_req r = pkcs1(h[i].oid, h[i].len);
        ck_assert_uint_eq(r.len, h[i].der);
        ACCEPTED(r);
    }
}
END_TEST

/* PKCS#1 input that is not a DigestInfo: raw bytes, a truncated one, one
 * whose lengths or tags lie. */
START_TEST(pkcs1_not_a_digest_info)
{
    const char *what = "not a DigestInfo";
    struct keyproto_req good = pkcs1(SHA256h, 32), r;
    /* 30 31 | 30 0d 06 09 <OID> 05 00 | 04 20 <32 bytes> */
    ck_assert_int_eq(good.in[0], 0x30);
    ck_assert_int_eq(good.in[3], 0x0d);
    ck_assert_int_eq(good.in[17], 0x04);
    ck_assert_int_eq(good.in[18], 0x20);

    uint32_t x = 99;
    for (int i = 0; i < 200; i++) {             /* random bytes of every length */
        r = req(KEY_OP_RSA_PKCS1, (size_t)i % (KEYPROTO_IN_MAX + 1));
        for (size_t j = 0; j < r.len; j++)
            r.in[j] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
        REFUSED(r, what);
    }
    r = req(KEY_OP_RSA_PKCS1, 51);              /* 0x5a... */
    REFUSED(r, what);
    r = req(KEY_OP_RSA_PKCS1, 0);
    REFUSED(r, what);
    for (size_t n = 0; n < good.len; n++) {     /* every truncation */
        r = good;
        r.len = (uint16_t)n;
        REFUSED(r, what);
    }
    r = good;                                   /* one byte too many */
    r.in[r.len++] = 0;
    REFUSED(r, what);
    static const struct { size_t at; uint8_t v; } lie[] = {
        { 0, 0x31 }, { 0, 0x04 },               /* outer tag */
        { 1, 0x30 }, { 1, 0x32 }, { 1, 0x81 }, { 1, 0 },    /* outer length */
        { 2, 0x31 }, { 2, 0x04 },               /* AlgorithmIdentifier tag */
        { 3, 0x0c }, { 3, 0x0e }, { 3, 0x2c }, { 3, 0x2d }, { 3, 0x7f }, { 3, 0xff },
        { 17, 0x05 }, { 17, 0x03 },             /* OCTET STRING tag */
        { 18, 0x1f }, { 18, 0x21 }, { 18, 0 }, { 18, 0xff },  /* its length */
    };
    for (size_t i = 0; i < sizeof lie / sizeof lie[0]; i++) {
        r = good;
        r.in[lie[i].at] = lie[i].v;
        REFUSED(r, what);
    }
    /* A digest shorter than SHA-1's, in a well-formed shell. */
    static const uint8_t short_digest[] = { 0x30, 0x17, 0x30, 0x00, 0x04, 0x13 };
    r = req(KEY_OP_RSA_PKCS1, 0x19);
    memcpy(r.in, short_digest, sizeof short_digest);
    REFUSED(r, what);
}
END_TEST

/* PSS: SHA-256/384/512 with its own MGF1, a digest of that length. */
START_TEST(pss_hash_and_mgf)
{
    static const struct { int hash, mgf; size_t len; } h[] = {
        { WC_HASH_TYPE_SHA256, WC_MGF1SHA256, 32 },
        { WC_HASH_TYPE_SHA384, WC_MGF1SHA384, 48 },
        { WC_HASH_TYPE_SHA512, WC_MGF1SHA512, 64 },
    };
    const size_t nh = sizeof h / sizeof h[0];
    struct keyproto_req r;
    for (size_t i = 0; i < nh; i++) {
        r = pss(h[i].hash, h[i].mgf, h[i].len);
        ACCEPTED(r);
        for (size_t j = 0; j < nh; j++) {
            if (j != i) {
                r = pss(h[i].hash, h[j].mgf, h[i].len);     /* another hash's MGF */
                REFUSED(r, "hash or MGF");
                r = pss(h[i].hash, h[i].mgf, h[j].len);     /* another hash's digest */
                REFUSED(r, "digest of the wrong length");
            }
        }
        r = pss(h[i].hash, WC_MGF1SHA1, h[i].len);
        REFUSED(r, "hash or MGF");
        r = pss(h[i].hash, WC_MGF1NONE, h[i].len);
        REFUSED(r, "hash or MGF");
        r = pss(h[i].hash, h[i].mgf, h[i].len - 1);
        REFUSED(r, "digest of the wrong length");
        r = pss(h[i].hash, h[i].mgf, h[i].len + 1);
        REFUSED(r, "digest of the wrong length");
        r = pss(h[i].hash, h[i].mgf, 0);
        REFUSED(r, "digest of the wrong length");
    }
    r = pss(WC_HASH_TYPE_SHA, WC_MGF1SHA1, 20);             /* SHA-1: never */
    REFUSED(r, "hash or MGF");
    r = pss(WC_HASH_TYPE_SHA224, WC_MGF1SHA224, 28);
    REFUSED(r, "hash or MGF");
    r = pss(WC_HASH_TYPE_NONE, WC_MGF1NONE, 32);
    REFUSED(r, "hash or MGF");
    r = pss(WC_HASH_TYPE_MD5, WC_MGF1SHA256, 16);
    REFUSED(r, "hash or MGF");
    r = pss(0xff, WC_MGF1SHA256, 32);
    REFUSED(r, "hash or MGF");
}
END_TEST

/* The frame: size, magic, length, operation. */
START_TEST(framing)
{
    const char *why;
    struct keyproto_req r = req(KEY_OP_ECDSA, 32);
    ck_assert_int_eq(parse_n(&r, 0, &why), -1);                 /* short */
    ck_assert_ptr_nonnull(strstr(why, "wrong size"));
    ck_assert_int_eq(parse_n(&r, 4, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "wrong size"));
    ck_assert_int_eq(parse_n(&r, REQ_HEAD - 1, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "wrong size"));
    ck_assert_int_eq(parse_n(&r, sizeof r + 1, &why), -1);      /* oversized */
    ck_assert_ptr_nonnull(strstr(why, "wrong size"));
    ck_assert_int_eq(parse_n(&r, 4096, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "wrong size"));

    /* len and the size disagree */
    ck_assert_int_eq(parse_n(&r, keyproto_req_size(&r) - 1, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "length does not match its size"));
    ck_assert_int_eq(parse_n(&r, keyproto_req_size(&r) + 1, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "length does not match its size"));
    ck_assert_int_eq(parse_n(&r, REQ_HEAD, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "length does not match its size"));
    ck_assert_int_eq(parse_n(&r, sizeof r, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "length does not match its size"));
    r.len = KEYPROTO_IN_MAX + 1;                                /* len > KEYPROTO_IN_MAX */
    ck_assert_int_eq(parse_n(&r, sizeof r, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "length does not match its size"));
    r.len = 0xffff;
    ck_assert_int_eq(parse_n(&r, sizeof r, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "length does not match its size"));
    /* the largest there is, when the operation has such inputs: refused by the operation */
    r = req(KEY_OP_ECDSA, KEYPROTO_IN_MAX);
    ck_assert_uint_eq(keyproto_req_size(&r), sizeof r);
    REFUSED(r, "ECDSA");

    r = req(KEY_OP_ECDSA, 32);                                  /* magic */
    r.magic ^= 1;
    REFUSED(r, "magic");
    r.magic = __builtin_bswap32(KEYPROTO_MAGIC);
    REFUSED(r, "magic");
    r.magic = 0;
    REFUSED(r, "magic");

    static const int ops[] = { 0, 4, 5, 9, 0x7f, 0xff };         /* operations */
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        r = req(ops[i], 32);
        REFUSED(r, "unknown operation");
    }
    /* The fields a request carries come through as sent. */
    struct keyproto_req out;
    r = pss(WC_HASH_TYPE_SHA384, WC_MGF1SHA384, 48);
    r.id = 0xdeadbeef;
    r.key = 41;
    memset(&out, 0xee, sizeof out);
    ck_assert_int_eq(keyproto_parse_req(&r, keyproto_req_size(&r), &out, &why), 0);
    ck_assert_uint_eq(out.id, 0xdeadbeef);
    ck_assert_uint_eq(out.key, 41);
    ck_assert_int_eq(out.op, KEY_OP_RSA_PSS);
    ck_assert_int_eq(out.hash, WC_HASH_TYPE_SHA384);
    ck_assert_int_eq(out.mgf, WC_MGF1SHA384);
    ck_assert_uint_eq(out.len, 48);
    for (size_t i = 48; i < sizeof out.in; i++)     /* nothing left from before */
        ck_assert_int_eq(out.in[i], 0);
}
END_TEST

/* Parses a reply of n bytes (a buffer of exactly n) to request id. */
static int parse_rep_n(const struct keyproto_rep *r, size_t n, uint32_t id,
                       struct keyproto_rep *out, const char **why)
{
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, r, n < sizeof *r ? n : sizeof *r);
    if (n > sizeof *r)
        memset(buf + sizeof *r, 0, n - sizeof *r);
    *why = NULL;
    int rc = keyproto_parse_rep(buf, n, id, out, why);
    if (rc < 0) {
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_nonnull(*why);
    }
    free(buf);
    return rc;
}

#define REP_REFUSED(r, n, id, what)                                             \
    do {                                                                        \
        const char *why_;                                                       \
        struct keyproto_rep out_;                                               \
        ck_assert_int_eq(parse_rep_n(&(r), (n), (id), &out_, &why_), -1);       \
        ck_assert_msg(strstr(why_, (what)) != NULL, "'%s' not in '%s'", (what), why_); \
    } while (0)

/* Replies: to this request, the length its size says, a signature if OK. */
START_TEST(replies)
{
    struct keyproto_rep r = { .magic = KEYPROTO_MAGIC, .id = 5, .len = 70 }, out;
    const char *why;
    for (int i = 0; i < 70; i++)
        r.sig[i] = (uint8_t)i;
    ck_assert_int_eq(parse_rep_n(&r, keyproto_rep_size(&r), 5, &out, &why), 0);
    ck_assert_uint_eq(out.len, 70);
    ck_assert_uint_eq(out.status, KEYPROTO_OK);
    ck_assert(memcmp(out.sig, r.sig, 70) == 0);
    r.len = KEYPROTO_SIG_MAX;                               /* the largest */
    ck_assert_int_eq(parse_rep_n(&r, sizeof r, 5, &out, &why), 0);
    r.len = 70;

    REP_REFUSED(r, keyproto_rep_size(&r), 6, "another request");        /* wrong id */
    REP_REFUSED(r, keyproto_rep_size(&r), 0, "another request");
    struct keyproto_rep m = r;                                          /* wrong magic */
    m.magic = 0x746b7032u;
    REP_REFUSED(m, keyproto_rep_size(&m), 5, "magic");
    m.magic = 0;
    REP_REFUSED(m, keyproto_rep_size(&m), 5, "magic");
    REP_REFUSED(r, keyproto_rep_size(&r) - 1, 5, "length does not match");   /* len */
    REP_REFUSED(r, keyproto_rep_size(&r) + 1, 5, "length does not match");
    REP_REFUSED(r, REP_HEAD, 5, "length does not match");
    m = r;
    m.len = KEYPROTO_SIG_MAX + 1;
    REP_REFUSED(m, sizeof m, 5, "length does not match");
    m.len = 0xffff;
    REP_REFUSED(m, sizeof m, 5, "length does not match");
    REP_REFUSED(r, 0, 5, "wrong size");                                 /* size */
    REP_REFUSED(r, REP_HEAD - 1, 5, "wrong size");
    REP_REFUSED(r, sizeof r + 1, 5, "wrong size");

    r.len = 0;                                              /* OK without a signature */
    REP_REFUSED(r, keyproto_rep_size(&r), 5, "empty signature");
    r.status = KEYPROTO_NO_KEY;                             /* a refusal has none */
    ck_assert_int_eq(parse_rep_n(&r, keyproto_rep_size(&r), 5, &out, &why), 0);
    ck_assert_uint_eq(out.status, KEYPROTO_NO_KEY);
    r.status = KEYPROTO_FAILED;
    ck_assert_int_eq(parse_rep_n(&r, keyproto_rep_size(&r), 5, &out, &why), 0);
}
END_TEST

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random requests, from pure noise to near misses, in buffers of exactly
 * their size: no crash or overread, and what is accepted holds what the
 * protocol allows. */
START_TEST(random_requests)
{
    static const int hashes[] = { WC_HASH_TYPE_NONE, WC_HASH_TYPE_SHA, WC_HASH_TYPE_SHA224,
                                  WC_HASH_TYPE_SHA256, WC_HASH_TYPE_SHA384,
                                  WC_HASH_TYPE_SHA512, WC_HASH_TYPE_MD5 };
    static const int mgfs[] = { WC_MGF1NONE, WC_MGF1SHA1, WC_MGF1SHA224, WC_MGF1SHA256,
                                WC_MGF1SHA384, WC_MGF1SHA512 };
    size_t accepted[4] = { 0 };
    struct keyproto_req good_di = pkcs1(SHA384h, 48);
    rng_state = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < 10000; i++) {
        uint8_t buf[sizeof(struct keyproto_req) + 16];
        size_t n = rnd() % sizeof buf;
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)rnd();
        int level = (int)(rnd() % 4);          /* 0: noise ... 3: a plausible request */
        if (level && n >= REQ_HEAD && n <= sizeof(struct keyproto_req)) {
            struct keyproto_req h;
            memset(&h, 0, sizeof h);
            memcpy(&h, buf, n);
            h.magic = KEYPROTO_MAGIC;
            if (level >= 2) {
                h.len = (uint16_t)(n - REQ_HEAD);
                h.op = (uint8_t)(rnd() % 5);
            }
            if (level == 3) {
                h.hash = (uint8_t)hashes[rnd() % (sizeof hashes / sizeof hashes[0])];
                h.mgf = (uint8_t)mgfs[rnd() % (sizeof mgfs / sizeof mgfs[0])];
                if (h.op == KEY_OP_RSA_PSS && rnd() % 2)       /* the right MGF ... */
                    h.mgf = (uint8_t)(h.hash == WC_HASH_TYPE_SHA256   ? WC_MGF1SHA256
                                      : h.hash == WC_HASH_TYPE_SHA384 ? WC_MGF1SHA384
                                      : h.hash == WC_HASH_TYPE_SHA512 ? WC_MGF1SHA512
                                                                      : h.mgf);
                if (h.op == KEY_OP_RSA_PSS && rnd() % 2 && keyproto_hash_len(h.hash))
                    h.len = (uint16_t)keyproto_hash_len(h.hash);   /* ... the right length */
                if (h.op == KEY_OP_ECDSA && rnd() % 2)
                    h.len = (uint16_t)(20 + 4 * (rnd() % 12));   /* 20..64 */
                if (h.op == KEY_OP_RSA_PKCS1) {
                    memcpy(h.in, good_di.in, good_di.len);  /* a DigestInfo, maybe mangled */
                    h.len = good_di.len;
                    if (rnd() % 2)
                        h.in[rnd() % good_di.len] = (uint8_t)rnd();
                }
                if (rnd() % 8)
                    n = REQ_HEAD + h.len;           /* else the size may lie */
            }
            memcpy(buf, &h, n < sizeof h ? n : sizeof h);
        }
        struct keyproto_req r;
        const char *why = NULL;
        uint8_t *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        if (keyproto_parse_req(exact, n, &r, &why) == 0) {
            ck_assert_uint_le(r.len, KEYPROTO_IN_MAX);
            ck_assert_uint_eq(n, REQ_HEAD + r.len);
            ck_assert_uint_eq(r.magic, KEYPROTO_MAGIC);
            ck_assert(memcmp(&r, exact, n) == 0);
            switch (r.op) {
            case KEY_OP_ECDSA:
                ck_assert(r.len == 20 || r.len == 28 || r.len == 32 || r.len == 48 ||
                          r.len == 64);
                break;
            case KEY_OP_RSA_PKCS1: {
                ck_assert_uint_ge(r.len, 26);
                ck_assert_int_eq(r.in[0], 0x30);
                ck_assert_uint_eq(r.in[1], r.len - 2u);
                ck_assert_int_eq(r.in[2], 0x30);
                size_t o = 4 + (size_t)r.in[3];
                ck_assert_uint_le(o + 2, r.len);
                ck_assert_int_eq(r.in[o], 0x04);
                ck_assert_uint_eq(r.in[o + 1], r.len - o - 2);
                ck_assert_uint_ge(r.in[o + 1], 20);
                break;
            }
            case KEY_OP_RSA_PSS:
                ck_assert_uint_ne(keyproto_hash_len(r.hash), 0);
                ck_assert_uint_eq(r.len, keyproto_hash_len(r.hash));
                ck_assert(r.hash != WC_HASH_TYPE_SHA && r.hash != WC_HASH_TYPE_SHA224);
                ck_assert_int_eq(r.mgf, r.hash == WC_HASH_TYPE_SHA256   ? WC_MGF1SHA256
                                        : r.hash == WC_HASH_TYPE_SHA384 ? WC_MGF1SHA384
                                                                        : WC_MGF1SHA512);
                break;
            default:
                ck_abort_msg("accepted operation %d", r.op);
            }
            accepted[r.op]++;
        } else {
            ck_assert_ptr_nonnull(why);
        }
        free(exact);
    }
    /* The generator reaches every operation's acceptance, not only refusals. */
    for (int op = 1; op <= 3; op++)
        ck_assert_msg(accepted[op] > 0, "no request of op %d accepted", op);
}
END_TEST

/* Random replies the same way. */
START_TEST(random_replies)
{
    size_t ok = 0, refusals = 0;
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 10000; i++) {
        size_t n = rnd() % (sizeof(struct keyproto_rep) + 16);
        if (rnd() % 2)
            n %= 300;                           /* mostly short ones, as real replies */
        uint8_t *buf = malloc(n ? n : 1);
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)rnd();
        int level = (int)(rnd() % 4);
        if (level && n >= REP_HEAD) {
            struct keyproto_rep h;
            memcpy(&h, buf, REP_HEAD);
            h.magic = KEYPROTO_MAGIC;
            if (level >= 2)
                h.id = 7;
            if (level >= 3) {
                h.len = (uint16_t)(n - REP_HEAD);
                h.status = rnd() % 5;
            }
            memcpy(buf, &h, REP_HEAD);
        }
        struct keyproto_rep r;
        const char *why = NULL;
        if (keyproto_parse_rep(buf, n, 7, &r, &why) == 0) {
            ck_assert_uint_le(r.len, KEYPROTO_SIG_MAX);
            ck_assert_uint_eq(n, REP_HEAD + r.len);
            ck_assert_uint_eq(r.id, 7);
            ck_assert_uint_eq(r.magic, KEYPROTO_MAGIC);
            ck_assert(r.status != KEYPROTO_OK || r.len > 0);
            ck_assert(memcmp(&r, buf, n) == 0);
            if (r.status == KEYPROTO_OK)
                ok++;
            else
                refusals++;
        } else {
            ck_assert_ptr_nonnull(why);
        }
        free(buf);
    }
    ck_assert_uint_gt(ok, 0);
    ck_assert_uint_gt(refusals, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("keyproto");
    TCase *tc = tcase_create("keyproto");
    tcase_add_test(tc, sizes);
    tcase_add_test(tc, ecdsa_digests);
    tcase_add_test(tc, pkcs1_digest_infos);
    tcase_add_test(tc, pkcs1_not_a_digest_info);
    tcase_add_test(tc, pss_hash_and_mgf);
    tcase_add_test(tc, framing);
    tcase_add_test(tc, replies);
    tcase_add_test(tc, random_requests);
    tcase_add_test(tc, random_replies);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
