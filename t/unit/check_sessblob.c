#include "unit.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#if defined(__has_include)
#if __has_include(<wolfssl/internal.h>)
#include <wolfssl/internal.h>
/* The sizes sessblob.c keeps are this wolfSSL's. */
_Static_assert(ID_LEN == 32 && SECRET_LEN == 48 && SERVER_ID_LEN == 20, "sizes");
_Static_assert(MAX_CHAIN_DEPTH >= 9 && MAX_X509_SIZE >= 2048, "chain sizes");
#endif
#endif

#include "sessblob.h"

/* Offsets in the blob of a fresh session (no IDs, no chain). */
#define AT_IDLEN    9
#define AT_ALT      (AT_IDLEN + 1 + 48 + 1)
#define AT_CHAIN    (AT_ALT + 1)
#define AT_SERVERID (AT_CHAIN + 1 + 2 + 2)
#define AT_CTX      (AT_SERVERID + 2)

static unsigned char blob[4096];
static size_t blob_len;

/* What wolfSSL_i2d_SSL_SESSION makes of a fresh session. */
static void fresh_blob(void)
{
    WOLFSSL_SESSION *s = wolfSSL_SESSION_new();
    unsigned char *der = NULL;
    int n = wolfSSL_i2d_SSL_SESSION(s, &der);
    ck_assert_int_gt(n, AT_CTX);
    ck_assert_int_le(n, (int)sizeof blob);
    memcpy(blob, der, (size_t)n);
    blob_len = (size_t)n;
    XFREE(der, NULL, DYNAMIC_TYPE_OPENSSL);
    wolfSSL_SESSION_free(s);
    ck_assert_int_eq(blob[AT_IDLEN], 0);
    ck_assert_int_eq(blob[AT_CHAIN], 0);
    ck_assert_int_eq(blob[AT_SERVERID] << 8 | blob[AT_SERVERID + 1], 0);
    ck_assert_int_eq(blob[AT_CTX], 0);
}

/* Decodes blob[0..len) if sessblob_ok lets it: whether it did. */
static bool decode(size_t len)
{
    if (!sessblob_ok(blob, len))
        return false;
    const unsigned char *p = blob;
    WOLFSSL_SESSION *s = wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)len);
    wolfSSL_SESSION_free(s);
    return true;
}

START_TEST(real_blobs_pass)
{
    fresh_blob();
    ck_assert(decode(blob_len));
    for (size_t n = 0; n < blob_len; n++)     /* cut short anywhere: refused */
        ck_assert_msg(!sessblob_ok(blob, n), "a blob cut at %zu of %zu passes", n, blob_len);
    ck_assert(!sessblob_ok(blob, AT_CTX));
}
END_TEST

/* Inserts n bytes of value v at off, as a longer field would have them. */
static void grow(size_t off, size_t n, unsigned char v)
{
    memmove(blob + off + n, blob + off, blob_len - off);
    memset(blob + off, v, n);
    blob_len += n;
}

START_TEST(lengths_over_their_fields_refused)
{
    /* The session ID: 32 bytes at most; 33 overwrote the peer pointer. */
    fresh_blob();
    grow(AT_IDLEN + 1, 32, 0xb2);
    blob[AT_IDLEN] = 32;
    ck_assert(decode(blob_len));
    grow(AT_IDLEN + 1, 1, 0xb2);
    blob[AT_IDLEN] = 33;
    ck_assert(!decode(blob_len));
    /* The alternative ID: 0 or 32. */
    fresh_blob();
    blob[AT_ALT] = 31;
    ck_assert(!decode(blob_len));
    /* The chain: 9 certificates at most. */
    fresh_blob();
    grow(AT_CHAIN + 1, 2 * 9, 0);
    blob[AT_CHAIN] = 9;
    ck_assert(decode(blob_len));
    grow(AT_CHAIN + 1, 2, 0);
    blob[AT_CHAIN] = 10;
    ck_assert(!decode(blob_len));
    /* The server ID: 20 bytes at most. */
    fresh_blob();
    grow(AT_SERVERID + 2, 21, 'x');
    blob[AT_SERVERID + 1] = 21;
    ck_assert(!decode(blob_len));
    /* The session context: 32 bytes at most. */
    fresh_blob();
    grow(AT_CTX + 1, 33, 'c');
    blob[AT_CTX] = 33;
    ck_assert(!decode(blob_len));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sessblob");
    TCase *t = tcase_create("sessblob");
    tcase_add_test(t, real_blobs_pass);
    tcase_add_test(t, lengths_over_their_fields_refused);
    suite_add_tcase(s, t);
    return s;
}

UNIT_MAIN(suite)
