/*
 * tls_keys — contexts whose private key this process does not hold: the
 * certificate is loaded, and wolfSSL's PK callbacks ask the process's
 * signer (the key processes, through daemon/keyclient.c) for every
 * signature a handshake needs: ECDSA, RSA PKCS#1 v1.5 (TLS 1.2) and
 * RSA-PSS (TLS 1.3, and TLS 1.2 clients that offer it), as a server and as
 * a client with a certificate.
 *
 * wolfSSL allows a context without a private key when these callbacks are
 * set; the key's type and size come from the certificate. The RSA sign
 * checks wolfSSL would do with the private key are left to the key
 * process, which verifies every RSA signature before it sends it.
 */
#include "tls_int.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "keyproto.h"

static tls_signer_fn signer;
static void *signer_arg;
static _Atomic uint32_t last_id;
static _Thread_local char failure[160];    /* why this thread's last signature failed */

void tls_set_signer(tls_signer_fn fn, void *arg)
{
    signer = fn;
    signer_arg = arg;
}

const char *tls_keys_failure(void)
{
    return *failure ? failure : NULL;
}

/* The key of ssl's context (the ECC sign context carries it for all kinds). */
static long key_of(WOLFSSL *ssl)
{
    return (long)(uintptr_t)wolfSSL_CTX_GetEccSignCtx(wolfSSL_get_SSL_CTX(ssl)) - 1;
}

static int ask(WOLFSSL *ssl, int op, int hash, int mgf, const unsigned char *in,
               unsigned int inSz, unsigned char *out, word32 *outSz)
{
    struct keyproto_req rq = { .magic = KEYPROTO_MAGIC, .id = ++last_id, .op = (uint8_t)op,
                               .hash = (uint8_t)hash, .mgf = (uint8_t)mgf };
    struct keyproto_rep rep;
    long key = key_of(ssl);
    *failure = 0;
    if (key < 0 || inSz > KEYPROTO_IN_MAX || !signer) {
        snprintf(failure, sizeof failure, "no key process to sign with");
        return WC_HW_E;
    }
    rq.key = (uint32_t)key;
    rq.len = (uint16_t)inSz;
    memcpy(rq.in, in, inSz);
    if (signer(signer_arg, &rq, &rep, failure, sizeof failure) < 0)
        return WC_HW_E;
    if (rep.status != KEYPROTO_OK || rep.len > *outSz) {
        snprintf(failure, sizeof failure, "the key process: %s",
                 rep.status != KEYPROTO_OK ? keyproto_status_name(rep.status)
                                           : "a signature too long");
        return WC_HW_E;
    }
    memcpy(out, rep.sig, rep.len);
    *outSz = rep.len;
    return 0;
}

static int ecc_sign(WOLFSSL *ssl, const unsigned char *in, unsigned int inSz,
                    unsigned char *out, word32 *outSz, const unsigned char *keyDer,
                    unsigned int keySz, void *ctx)
{
    (void)keyDer, (void)keySz, (void)ctx;
    return ask(ssl, KEY_OP_ECDSA, 0, 0, in, inSz, out, outSz);
}

static int rsa_sign(WOLFSSL *ssl, const unsigned char *in, unsigned int inSz,
                    unsigned char *out, word32 *outSz, const unsigned char *keyDer,
                    unsigned int keySz, void *ctx)
{
    (void)keyDer, (void)keySz, (void)ctx;
    return ask(ssl, KEY_OP_RSA_PKCS1, 0, 0, in, inSz, out, outSz);
}

/* wolfSSL hands the PSS callback a hash's OID sum (SHA256h). */
static int hash_type(int oid_sum)
{
    switch (oid_sum) {
    case SHA256h: return WC_HASH_TYPE_SHA256;
    case SHA384h: return WC_HASH_TYPE_SHA384;
    case SHA512h: return WC_HASH_TYPE_SHA512;
    default: return WC_HASH_TYPE_NONE;
    }
}

static int rsa_pss_sign(WOLFSSL *ssl, const unsigned char *in, unsigned int inSz,
                        unsigned char *out, unsigned int *outSz, int hash, int mgf,
                        const unsigned char *keyDer, unsigned int keySz, void *ctx)
{
    (void)keyDer, (void)keySz, (void)ctx;
    word32 len = *outSz;
    int rc = ask(ssl, KEY_OP_RSA_PSS, hash_type(hash), mgf, in, inSz, out, &len);
    *outSz = len;
    return rc;
}

/* The check after signing: the key process made it already. */
static int rsa_sign_check(WOLFSSL *ssl, unsigned char *sig, unsigned int sigSz,
                          unsigned char **out, const unsigned char *keyDer,
                          unsigned int keySz, void *ctx)
{
    (void)ssl, (void)sig, (void)sigSz, (void)out, (void)keyDer, (void)keySz, (void)ctx;
    return 0;
}

static int rsa_pss_sign_check(WOLFSSL *ssl, unsigned char *sig, unsigned int sigSz,
                              unsigned char **out, int hash, int mgf,
                              const unsigned char *keyDer, unsigned int keySz, void *ctx)
{
    (void)hash, (void)mgf;
    return rsa_sign_check(ssl, sig, sigSz, out, keyDer, keySz, ctx);
}

void tls_keys_remote(WOLFSSL_CTX *ctx, int key_id)
{
    wolfSSL_CTX_SetEccSignCtx(ctx, (void *)(uintptr_t)(key_id + 1));
    wolfSSL_CTX_SetEccSignCb(ctx, ecc_sign);
    wolfSSL_CTX_SetRsaSignCb(ctx, rsa_sign);
    wolfSSL_CTX_SetRsaSignCheckCb(ctx, rsa_sign_check);
    wolfSSL_CTX_SetRsaPssSignCb(ctx, rsa_pss_sign);
    wolfSSL_CTX_SetRsaPssSignCheckCb(ctx, rsa_pss_sign_check);
}
