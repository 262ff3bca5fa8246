#include "unit.h"

#include <stddef.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

#include "keyproto.h"

#define HEAD offsetof(struct keyproto_req, in)

static struct keyproto_req req(int op, size_t len)
{
    struct keyproto_req r = { .magic = KEYPROTO_MAGIC, .id = 3, .op = (uint8_t)op,
                              .len = (uint16_t)len };
    memset(r.in, 0x5a, len < sizeof r.in ? len : sizeof r.in);
    return r;
}

static int parse(const struct keyproto_req *r, size_t n, const char **why)
{
    struct keyproto_req out;
    *why = NULL;
    return keyproto_parse_req(r, n, &out, why);
}

START_TEST(ecdsa_digests)
{
    static const size_t good[] = { 20, 28, 32, 48, 64 };
    const char *why;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct keyproto_req r = req(KEY_OP_ECDSA, good[i]);
        ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), 0);
    }
    struct keyproto_req r = req(KEY_OP_ECDSA, 33);
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "ECDSA"));
}
END_TEST

START_TEST(pkcs1_needs_a_digest_info)
{
    uint8_t digest[32] = { 1 };
    struct keyproto_req r = req(KEY_OP_RSA_PKCS1, 0);
    const char *why;
    r.len = (uint16_t)wc_EncodeSignature(r.in, digest, sizeof digest, SHA256h);
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), 0);
    r.in[1]++;                                  /* the outer length lies */
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "DigestInfo"));
    struct keyproto_req junk = req(KEY_OP_RSA_PKCS1, 51);     /* raw bytes */
    ck_assert_int_eq(parse(&junk, keyproto_req_size(&junk), &why), -1);
}
END_TEST

START_TEST(pss_hash_and_mgf)
{
    const char *why;
    struct keyproto_req r = req(KEY_OP_RSA_PSS, 48);
    r.hash = WC_HASH_TYPE_SHA384;
    r.mgf = WC_MGF1SHA384;
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), 0);
    r.mgf = WC_MGF1SHA256;
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), -1);
    r.mgf = WC_MGF1SHA384;
    r.len = 32;
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "length"));
    r = req(KEY_OP_RSA_PSS, 20);
    r.hash = WC_HASH_TYPE_SHA;
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), -1);
}
END_TEST

START_TEST(framing)
{
    const char *why;
    struct keyproto_req r = req(KEY_OP_ECDSA, 32);
    ck_assert_int_eq(parse(&r, HEAD - 1, &why), -1);            /* short */
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r) - 1, &why), -1);
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r) + 1, &why), -1);
    r.len = KEYPROTO_IN_MAX + 1;
    ck_assert_int_eq(parse(&r, sizeof r, &why), -1);
    r = req(KEY_OP_ECDSA, 32);
    r.magic ^= 1;
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "magic"));
    r = req(9, 32);
    ck_assert_int_eq(parse(&r, keyproto_req_size(&r), &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "operation"));
}
END_TEST

START_TEST(replies)
{
    struct keyproto_rep r = { .magic = KEYPROTO_MAGIC, .id = 5, .len = 70 }, out;
    const char *why;
    ck_assert_int_eq(keyproto_parse_rep(&r, keyproto_rep_size(&r), 5, &out, &why), 0);
    ck_assert_int_eq(out.len, 70);
    ck_assert_int_eq(keyproto_parse_rep(&r, keyproto_rep_size(&r), 6, &out, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "another request"));
    ck_assert_int_eq(keyproto_parse_rep(&r, keyproto_rep_size(&r) - 1, 5, &out, &why), -1);
    r.len = 0;
    ck_assert_int_eq(keyproto_parse_rep(&r, keyproto_rep_size(&r), 5, &out, &why), -1);
    r.status = KEYPROTO_NO_KEY;
    ck_assert_int_eq(keyproto_parse_rep(&r, keyproto_rep_size(&r), 5, &out, &why), 0);
}
END_TEST

/* Random bytes of random sizes: no crash, and what is accepted is sane. */
START_TEST(random_garbage)
{
    uint8_t buf[sizeof(struct keyproto_rep) + 8];
    struct keyproto_req rq;
    struct keyproto_rep rp;
    const char *why;
    srandom(1234);
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)random() % sizeof buf;
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)random();
        if (i % 2)
            memcpy(buf, &(uint32_t){ KEYPROTO_MAGIC }, 4);
        if (keyproto_parse_req(buf, n, &rq, &why) == 0)
            ck_assert(rq.len <= KEYPROTO_IN_MAX && rq.op >= 1 && rq.op <= 3);
        if (keyproto_parse_rep(buf, n, 0, &rp, &why) == 0)
            ck_assert(rp.len <= KEYPROTO_SIG_MAX);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("keyproto");
    TCase *tc = tcase_create("keyproto");
    tcase_add_test(tc, ecdsa_digests);
    tcase_add_test(tc, pkcs1_needs_a_digest_info);
    tcase_add_test(tc, pss_hash_and_mgf);
    tcase_add_test(tc, framing);
    tcase_add_test(tc, replies);
    tcase_add_test(tc, random_garbage);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
