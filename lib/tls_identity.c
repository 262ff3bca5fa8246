/*
 * tls_identity — the client certificate of a session, for resumptions
 * that do not bring it: its subject and CN for the access log and PROXY
 * v2, and its DER to check against the CRL of the day. wolfSSL keeps the
 * peer's chain in a session-ID session but not in a ticket, and leaves
 * room for only 32 bytes of its own after a ticket's plaintext; so a
 * ticket carries a digest of the certificate (tls_resume.c) and the
 * shared cache keeps the certificate under that digest and the
 * connection's binding; its names are read from it again when the ticket
 * comes back, since any worker can write the cache.
 */
#include "tls_int.h"
#include "clock.h"

#include <string.h>

#include <wolfssl/openssl/ssl.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "sesscache.h"

void tls_identity_of(WOLFSSL_X509 *x, struct tls_identity *id)
{
    WOLFSSL_X509_NAME *s = wolfSSL_X509_get_subject_name(x);
    memset(id, 0, sizeof *id);
    if (!s)
        return;
    char *one = wolfSSL_X509_NAME_oneline(s, id->subject, sizeof id->subject);
    (void)one;
    if (wolfSSL_X509_NAME_get_text_by_NID(s, NID_commonName, id->cn, sizeof id->cn) < 0)
        id->cn[0] = '\0';
    /* Logged between quotes: no quote, backslash or control character. */
    for (char *q = id->subject; *q; q++)
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
            *q = '?';
}

void tls_peer_digest(const unsigned char *der, int len, uint8_t out[TLS_PEER_DIGEST_LEN])
{
    unsigned char digest[WC_SHA256_DIGEST_SIZE];
    wc_Sha256Hash(der, (word32)len, digest);
    memcpy(out, digest, TLS_PEER_DIGEST_LEN);
}

bool tls_peer_revoked(WOLFSSL *ssl, const unsigned char *der, int len)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CTX_GetCertManager(wolfSSL_get_SSL_CTX(ssl));
    /* wolfSSL's prototype takes no const; it does not write. */
    int r = cm ? wolfSSL_CertManagerCheckCRL(cm, (unsigned char *)der, len) : WOLFSSL_FAILURE;
    wolfSSL_ERR_clear_error();
    return r != WOLFSSL_SUCCESS;
}

/* The cache key of the record of the certificate with digest peer, as
 * seen on connections bound as conn is. */
static void record_key(const struct tls_conn *conn, const uint8_t *peer,
                       uint8_t out[SESSCACHE_ID_MAX])
{
    uint8_t in[16 + TICKET_SCOPE_LEN + TLS_PEER_DIGEST_LEN], digest[WC_SHA256_DIGEST_SIZE];
    memcpy(in, "tlsoffd identity", 16);
    memcpy(in + 16, conn->binding, TICKET_SCOPE_LEN);
    memcpy(in + 16 + TICKET_SCOPE_LEN, peer, TLS_PEER_DIGEST_LEN);
    wc_Sha256Hash(in, sizeof in, digest);
    memcpy(out, digest, SESSCACHE_ID_MAX);
}

void tls_identity_keep(struct sesscache *c, const struct tls_conn *conn, WOLFSSL_X509 *x,
                       const uint8_t peer[TLS_PEER_DIGEST_LEN])
{
    uint8_t key[SESSCACHE_ID_MAX];
    int len = 0;
    const unsigned char *der = wolfSSL_X509_get_der(x, &len);
    if (!c || !der || len <= 0 || (size_t)len > sesscache_max_data())
        return;         /* no record: a ticket naming it makes a full handshake */
    record_key(conn, peer, key);
    sesscache_store(c, key, sizeof key, der, (size_t)len, clock_now_ms());
}

bool tls_identity_find(struct sesscache *c, WOLFSSL *ssl, const struct tls_conn *conn,
                       const uint8_t peer[TLS_PEER_DIGEST_LEN], bool check_crl,
                       struct tls_identity *id)
{
    unsigned char der[SESSCACHE_SLOT_SIZE];
    uint8_t key[SESSCACHE_ID_MAX], digest[TLS_PEER_DIGEST_LEN];
    if (!c)
        return false;
    record_key(conn, peer, key);
    size_t n = sesscache_lookup(c, key, sizeof key, der, sizeof der, clock_now_ms());
    if (n == 0)
        return false;
    /* Any worker writes the cache: only what the ticket's digest vouches
     * for is believed, and the names are read from it again. */
    tls_peer_digest(der, (int)n, digest);
    if (memcmp(digest, peer, TLS_PEER_DIGEST_LEN) != 0 ||
        (check_crl && tls_peer_revoked(ssl, der, (int)n)))
        return false;
    WOLFSSL_X509 *x = wolfSSL_X509_d2i(NULL, der, (int)n);
    if (!x)
        return false;
    tls_identity_of(x, id);
    wolfSSL_X509_free(x);
    sesscache_store(c, key, sizeof key, der, n, clock_now_ms());     /* kept on */
    return true;
}
