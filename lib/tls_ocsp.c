/*
 * tls_ocsp — OCSP stapling: a certificate's response file read and
 * checked at load time as wolfSSL will check it (status, certificate,
 * validity period, signature), and the status callback that staples it
 * while its nextUpdate is ahead.
 */
#include "tls_int.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/ocsp.h>
#include <wolfssl/openssl/ocsp.h>
#include <wolfssl/openssl/ssl.h>

#include "alloc.h"
#include "log.h"

#define OCSP_FILE_MAX           65536       /* bytes read of a response file */
#define OCSP_STALE_WARN_MS      60000       /* a stale response is reported this often */
#define OCSP_CLOCK_SKEW_MS      300000      /* a thisUpdate this far ahead is accepted */

static int status_cb(WOLFSSL *ssl, void *arg)
{
    struct tls_conn *conn = wolfSSL_GetIOReadCtx(ssl);
    struct tls_cert *cert = conn ? conn->cert : NULL;
    struct tls_staple *s = cert ? &cert->staple : NULL;
    (void)arg;
    if (!s || !s->der)
        return SSL_TLSEXT_ERR_NOACK;
    int64_t now = clock_real_ms();
    if (s->next_update && now >= s->next_update) {
        if (now - s->warned >= OCSP_STALE_WARN_MS) {
            s->warned = now;
            log_warning("%s: frontend '%s': OCSP response '%s' for certificate '%s' is stale "
                        "(its nextUpdate has passed): not stapled; replace the file and reload",
                        cert->conf->where, s->frontend, cert->conf->ocsp_file,
                        cert->conf->cert);
        }
        return SSL_TLSEXT_ERR_NOACK;
    }
    /* Plain malloc, not xmalloc: wolfSSL frees it (XFREE), and without
     * memory the handshake simply goes on without a staple. */
    unsigned char *copy = malloc((size_t)s->len);
    if (!copy)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, s->der, (size_t)s->len);
    wolfSSL_set_tlsext_status_ocsp_resp(ssl, copy, s->len);
    return SSL_TLSEXT_ERR_OK;
}

static int64_t asn1_ms(const WOLFSSL_ASN1_TIME *t)
{
    struct tm tm;
    if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS)
        return 0;
    return (int64_t)timegm(&tm) * 1000;
}

/* wolfSSL's OCSP fetch callback, answered with the response from the file. */
static int ocsp_io_cb(void *ctx, const char *url, int urlsz, unsigned char *req, int reqsz,
                      unsigned char **resp)
{
    const struct tls_staple *s = ctx;
    (void)url, (void)urlsz, (void)req, (void)reqsz;
    *resp = s->der;
    return s->len;
}

static void ocsp_free_cb(void *ctx, unsigned char *resp)
{
    (void)ctx, (void)resp;
}

/* What the response says about leaf: 0 if "good" and current (sets
 * s->next_update), or -1 with why. */
static int read_status(struct tls_staple *s, WOLFSSL_X509 *leaf, WOLFSSL_X509 *issuer,
                       char *why, size_t whylen)
{
    const unsigned char *p = s->der;
    OcspResponse *r = wolfSSL_d2i_OCSP_RESPONSE(NULL, &p, s->len);
    WOLFSSL_OCSP_BASICRESP *bs = NULL;
    WOLFSSL_OCSP_CERTID *id = NULL;
    WOLFSSL_ASN1_TIME *thisupd = NULL, *nextupd = NULL;
    int status = -1, rc = -1;
    int64_t now = clock_real_ms();

    if (!r) {
        snprintf(why, whylen, "wolfSSL cannot decode it: damaged, not a DER OCSP response, or "
                 "outside its validity period (stale: nextUpdate has passed; or thisUpdate "
                 "is in the future)");
        goto out;
    }
    if (wolfSSL_OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(why, whylen, "the responder's status is '%s'",
                 wolfSSL_OCSP_response_status_str(wolfSSL_OCSP_response_status(r)));
        goto out;
    }
    bs = wolfSSL_OCSP_response_get1_basic(r);
    id = wolfSSL_OCSP_cert_to_id(NULL, leaf, issuer);
    if (!bs || !id || wolfSSL_OCSP_resp_find_status(bs, id, &status, NULL, NULL, &thisupd,
                                                     &nextupd) != WOLFSSL_SUCCESS) {
        snprintf(why, whylen, "it is not about this certificate (serial or issuer differ)");
        goto out;
    }
    if (status != V_OCSP_CERTSTATUS_GOOD) {
        snprintf(why, whylen, "it says the certificate is %s",
                 wolfSSL_OCSP_cert_status_str(status));
        goto out;
    }
    s->next_update = nextupd && nextupd->length ? asn1_ms(nextupd) : 0;
    if (s->next_update && s->next_update <= now)
        snprintf(why, whylen, "it is stale (nextUpdate has passed)");
    else if (thisupd && asn1_ms(thisupd) > now + OCSP_CLOCK_SKEW_MS)
        snprintf(why, whylen, "it is not valid yet (thisUpdate is in the future)");
    else
        rc = 0;
out:
    wolfSSL_OCSP_CERTID_free(id);
    wolfSSL_OCSP_BASICRESP_free(bs);
    wolfSSL_OCSP_RESPONSE_free(r);
    return rc;
}

/* Does the response verify as wolfSSL will verify it when stapling (a
 * certificate manager with the issuer, the response fed through its OCSP
 * fetch callback)? */
static bool signature_ok(struct tls_staple *s, WOLFSSL_X509 *leaf, WOLFSSL_X509 *issuer)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    int len = 0, ilen = 0;
    const unsigned char *der = wolfSSL_X509_get_der(leaf, &len);
    const unsigned char *ider = wolfSSL_X509_get_der(issuer, &ilen);
    int v = cm && der && ider &&
            wolfSSL_CertManagerLoadCABuffer(cm, ider, ilen, WOLFSSL_FILETYPE_ASN1) ==
                WOLFSSL_SUCCESS &&
            wolfSSL_CertManagerEnableOCSP(cm, WOLFSSL_OCSP_URL_OVERRIDE) == WOLFSSL_SUCCESS &&
            wolfSSL_CertManagerSetOCSPOverrideURL(cm, "http://127.0.0.1/") == WOLFSSL_SUCCESS &&
            wolfSSL_CertManagerSetOCSP_Cb(cm, ocsp_io_cb, ocsp_free_cb, s) == WOLFSSL_SUCCESS
        ? wolfSSL_CertManagerCheckOCSP(cm, (unsigned char *)der, len) : -1;
    if (cm)
        wolfSSL_CertManagerFree(cm);
    return v == WOLFSSL_SUCCESS;
}

/* Is the response one to staple for leaf? 0, or -1 with why. */
static int check_ocsp(struct tls_staple *s, WOLFSSL_X509 *leaf, WOLFSSL_X509 *issuer,
                      char *why, size_t whylen)
{
    int rc = read_status(s, leaf, issuer, why, whylen);
    if (rc == 0 && !signature_ok(s, leaf, issuer)) {
        snprintf(why, whylen, "its signature does not verify against the issuer in the chain "
                 "(signed by neither the issuer nor a responder it delegated to)");
        rc = -1;
    }
    wolfSSL_ERR_clear_error();
    return rc;
}

/* The issuer among ctx's CAs (wolfSSL checks the response against it
 * before stapling), stapling on, and our status callback. */
static bool enable_stapling(WOLFSSL_CTX *ctx, WOLFSSL_X509 *issuer)
{
    int ilen = 0;
    const unsigned char *ider = wolfSSL_X509_get_der(issuer, &ilen);
    return ider &&
           wolfSSL_CTX_load_verify_buffer(ctx, ider, ilen, WOLFSSL_FILETYPE_ASN1) ==
               WOLFSSL_SUCCESS &&
           wolfSSL_CTX_EnableOCSPStapling(ctx) == WOLFSSL_SUCCESS &&
           wolfSSL_CTX_set_tlsext_status_cb(ctx, status_cb) == WOLFSSL_SUCCESS;
}

bool tls_ocsp_setup(struct tls_cert *cert, const char *frontend, WOLFSSL_X509 **chain, int n)
{
    const struct cert_conf *cc = cert->conf;
    struct tls_staple *s = &cert->staple;
    char why[256];
    FILE *fp = fopen(cc->ocsp_file, "rb");
    s->frontend = frontend;
    s->der = xmalloc(OCSP_FILE_MAX);
    s->len = fp ? (int)fread(s->der, 1, OCSP_FILE_MAX, fp) : -1;
    if (fp)
        fclose(fp);
    if (s->len <= 0 || s->len == OCSP_FILE_MAX)
        snprintf(why, sizeof why, "cannot read it (or it is empty or over %d KiB)",
                 OCSP_FILE_MAX / 1024);
    else if (n < 2)
        snprintf(why, sizeof why, "the chain file has no issuer certificate after the leaf "
                 "(needed to check the response)");
    else if (check_ocsp(s, chain[0], chain[1], why, sizeof why) == 0) {
        if (enable_stapling(cert->ctx, chain[1])) {
            s->der = xrealloc(s->der, (size_t)s->len);     /* kept per certificate */
            return true;
        }
        snprintf(why, sizeof why, "wolfSSL cannot enable stapling");
    }
    log_warning("%s: frontend '%s': OCSP response '%s' for certificate '%s' is not stapled: %s",
                cc->where, frontend, cc->ocsp_file, cc->cert, why);
    tls_ocsp_free(s);
    return false;
}

void tls_ocsp_free(struct tls_staple *s)
{
    free(s->der);
    s->der = NULL;
    s->len = 0;
}
