/* tls_identity.c: a session's client certificate kept for ticket resumptions. */
#include "unit.h"

#include <sys/mman.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/ssl.h>

#include "sesscache.h"
#include "tls.h"
#include "tls_int.h"

static void *region;
static struct sesscache *cache;
static WOLFSSL_CTX *ctx;
static WOLFSSL *ssl;

#define REGION_SIZE (1 << 20)

/* A cache, and a connection whose context has the test CA's CRL (it
 * revokes client2). */
static void setup(void)
{
    tls_global_init();
    region = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(region != MAP_FAILED);
    cache = sesscache_init(region, REGION_SIZE, 60000, 7);
    ck_assert_ptr_nonnull(cache);
    ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    ck_assert_int_eq(wolfSSL_CTX_load_verify_locations(ctx, unit_cert("ca.pem"), NULL),
                     WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL), WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_CTX_LoadCRLFile(ctx, unit_cert("crl.pem"), WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    ssl = wolfSSL_new(ctx);
    ck_assert_ptr_nonnull(ssl);
}

static void teardown(void)
{
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    sesscache_free(cache);
    munmap(region, REGION_SIZE);
    tls_global_cleanup();
}

static WOLFSSL_X509 *load(const char *name)
{
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(unit_cert(name), WOLFSSL_FILETYPE_PEM);
    ck_assert_ptr_nonnull(x);
    return x;
}

static void digest_of(WOLFSSL_X509 *x, uint8_t out[TLS_PEER_DIGEST_LEN])
{
    int len = 0;
    const unsigned char *der = wolfSSL_X509_get_der(x, &len);
    ck_assert_ptr_nonnull(der);
    tls_peer_digest(der, len, out);
}

/* Kept under a connection's binding and the certificate's digest, found
 * there only; the subject as the log shows it (no quotes). */
START_TEST(keep_and_find)
{
    struct tls_conn conn = { .bound = true }, other = { .bound = true };
    struct tls_identity id;
    uint8_t peer[TLS_PEER_DIGEST_LEN], wrong[TLS_PEER_DIGEST_LEN] = { 1 };
    WOLFSSL_X509 *x = load("client3.crt");
    memset(conn.binding, 1, sizeof conn.binding);
    memset(other.binding, 2, sizeof other.binding);
    digest_of(x, peer);
    ck_assert(!tls_identity_find(cache, ssl, &conn, peer, false, &id));
    tls_identity_keep(cache, &conn, x, peer);
    ck_assert(tls_identity_find(cache, ssl, &conn, peer, false, &id));
    ck_assert_str_eq(id.subject, "/O=tlsoffd test/CN=client ?three?");
    ck_assert_str_eq(id.cn, "client \"three\"");
    ck_assert(!tls_identity_find(cache, ssl, &other, peer, false, &id));
    ck_assert(!tls_identity_find(cache, ssl, &conn, wrong, false, &id));
    ck_assert(!tls_identity_find(NULL, ssl, &conn, peer, false, &id));
    /* A record kept under another certificate's digest is not served. */
    tls_identity_keep(cache, &conn, x, wrong);
    ck_assert(!tls_identity_find(cache, ssl, &conn, wrong, false, &id));
    wolfSSL_X509_free(x);
}
END_TEST

/* With check_crl, a certificate the context's CRL revokes is not found. */
START_TEST(revoked_not_found)
{
    struct tls_conn conn = { .bound = true };
    struct tls_identity id;
    uint8_t p1[TLS_PEER_DIGEST_LEN], p2[TLS_PEER_DIGEST_LEN];
    WOLFSSL_X509 *c1 = load("client1.crt"), *c2 = load("client2.crt");
    int len = 0;
    const unsigned char *der = wolfSSL_X509_get_der(c2, &len);
    ck_assert(tls_peer_revoked(ssl, der, len));
    der = wolfSSL_X509_get_der(c1, &len);
    ck_assert(!tls_peer_revoked(ssl, der, len));
    digest_of(c1, p1);
    digest_of(c2, p2);
    tls_identity_keep(cache, &conn, c1, p1);
    tls_identity_keep(cache, &conn, c2, p2);
    ck_assert(tls_identity_find(cache, ssl, &conn, p1, true, &id));
    ck_assert_str_eq(id.cn, "client1");
    ck_assert(tls_identity_find(cache, ssl, &conn, p2, false, &id));
    ck_assert(!tls_identity_find(cache, ssl, &conn, p2, true, &id));
    wolfSSL_X509_free(c1);
    wolfSSL_X509_free(c2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_identity");
    TCase *tcase = tcase_create("tls_identity");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_add_test(tcase, keep_and_find);
    tcase_add_test(tcase, revoked_not_found);
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
