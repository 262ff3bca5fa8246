/*
 * keystore — private keys and the signatures made with them; see
 * keystore.h.
 */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

#include "alloc.h"
#include "pkcs11.h"

#define PEM_MAX         (1u << 20)  /* a key file (it may hold the chain too) */
#define PASSWORD_MAX    1024

struct key {
    int kind;                   /* KEY_KIND_* */
    char name[16];              /* "EC256" */
    ecc_key *ecc;               /* a PEM file's key ... */
    RsaKey *rsa;
    struct pkcs11_key *token;   /* ... or a token's */
};

struct keystore {
    WC_RNG rng;
    size_t n;
    struct key *keys;
};

struct keystore *keystore_new(char *err, size_t errlen)
{
    struct keystore *ks = xcalloc(1, sizeof *ks);
    if (wc_InitRng(&ks->rng) != 0) {
        snprintf(err, errlen, "cannot seed a random generator for signing");
        free(ks);
        return NULL;
    }
    return ks;
}

size_t keystore_count(const struct keystore *ks)
{
    return ks->n;
}

const char *keystore_describe(const struct keystore *ks, size_t i)
{
    return i < ks->n ? ks->keys[i].name : "?";
}

/* ---- signing ---- */

static int sign_ecdsa(struct keystore *ks, struct key *k, const struct keyproto_req *rq,
                      struct keyproto_rep *rep)
{
    word32 len = sizeof rep->sig;
    if (wc_ecc_sign_hash(rq->in, rq->len, rep->sig, &len, &ks->rng, k->ecc) != 0)
        return -1;
    rep->len = (uint16_t)len;
    return 0;
}

/* PKCS#1 v1.5, checked: the public operation gives the DigestInfo back. */
static int sign_pkcs1(struct keystore *ks, struct key *k, const struct keyproto_req *rq,
                      struct keyproto_rep *rep)
{
    uint8_t back[KEYPROTO_SIG_MAX];
    int n = wc_RsaSSL_Sign(rq->in, rq->len, rep->sig, sizeof rep->sig, k->rsa, &ks->rng);
    if (n <= 0)
        return -1;
    int m = wc_RsaSSL_Verify(rep->sig, (word32)n, back, sizeof back, k->rsa);
    if (m != rq->len || memcmp(back, rq->in, rq->len) != 0)
        return -1;
    rep->len = (uint16_t)n;
    return 0;
}

static int sign_pss(struct keystore *ks, struct key *k, const struct keyproto_req *rq,
                    struct keyproto_rep *rep)
{
    uint8_t back[KEYPROTO_SIG_MAX];
    enum wc_HashType h = (enum wc_HashType)rq->hash;
    int n = wc_RsaPSS_Sign(rq->in, rq->len, rep->sig, sizeof rep->sig, h, rq->mgf, k->rsa,
                           &ks->rng);
    if (n <= 0)
        return -1;
    int m = wc_RsaPSS_Verify(rep->sig, (word32)n, back, sizeof back, h, rq->mgf, k->rsa);
    if (m <= 0 || wc_RsaPSS_CheckPadding(rq->in, rq->len, back, (word32)m, h) != 0)
        return -1;
    rep->len = (uint16_t)n;
    return 0;
}

static bool op_fits(int kind, int op)
{
    return kind == KEY_KIND_EC ? op == KEY_OP_ECDSA
                               : op == KEY_OP_RSA_PKCS1 || op == KEY_OP_RSA_PSS;
}

void keystore_sign(struct keystore *ks, const struct keyproto_req *rq, struct keyproto_rep *rep)
{
    rep->magic = KEYPROTO_MAGIC;
    rep->id = rq->id;
    rep->len = 0;
    if (rq->key >= ks->n || !op_fits(ks->keys[rq->key].kind, rq->op)) {
        rep->status = KEYPROTO_NO_KEY;
        return;
    }
    struct key *k = &ks->keys[rq->key];
    int rc;
    if (k->token) {
        size_t len = sizeof rep->sig;
        rc = pkcs11_key_sign(k->token, rq->op, rq->hash, rq->mgf, rq->in, rq->len, rep->sig,
                             &len);
        rep->len = rc == 0 ? (uint16_t)len : 0;
    } else if (rq->op == KEY_OP_ECDSA) {
        rc = sign_ecdsa(ks, k, rq, rep);
    } else if (rq->op == KEY_OP_RSA_PKCS1) {
        rc = sign_pkcs1(ks, k, rq, rep);
    } else {
        rc = sign_pss(ks, k, rq, rep);
    }
    rep->status = rc == 0 ? KEYPROTO_OK : KEYPROTO_FAILED;
    if (rc != 0)
        rep->len = 0;
}

/* ---- loading ---- */

/* Reads a whole file (at most max bytes) into a new buffer; its size in *len. */
static uint8_t *read_secret(const char *path, size_t max, size_t *len, char *why, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    uint8_t *buf = NULL;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(why, n, "%s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(why, n, "not a regular file");
    } else if ((size_t)st.st_size > max) {
        snprintf(why, n, "larger than %zu bytes", max);
    } else {
        buf = xmalloc((size_t)st.st_size + 1);
        ssize_t r = read(fd, buf, (size_t)st.st_size);
        if (r != st.st_size) {
            snprintf(why, n, "%s", r < 0 ? strerror(errno) : "short read");
            explicit_bzero(buf, (size_t)st.st_size + 1);
            free(buf);
            buf = NULL;
        } else {
            buf[r] = 0;
            *len = (size_t)r;
        }
    }
    if (fd >= 0)
        close(fd);
    return buf;
}

/* The first line of a password (or PIN) file, in pw (cap bytes). */
static int read_password(const char *path, char *pw, size_t cap, char *why, size_t n)
{
    size_t len;
    uint8_t *buf = read_secret(path, PASSWORD_MAX, &len, why, n);
    if (!buf)
        return -1;
    size_t end = strcspn((char *)buf, "\r\n");
    int rc = 0;
    if (end == 0) {
        snprintf(why, n, "it is empty");
        rc = -1;
    } else if (end >= cap) {
        snprintf(why, n, "longer than %zu bytes", cap - 1);
        rc = -1;
    } else {
        memcpy(pw, buf, end);
        pw[end] = 0;
    }
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

/* Decodes a DER private key (PKCS#8 or traditional, RSA or EC) into k. */
static int decode_der(struct key *k, const uint8_t *der, word32 len)
{
    word32 idx = 0;
    if (wc_GetPkcs8TraditionalOffset((byte *)der, &idx, len) < 0)
        idx = 0;
    word32 start = idx;
    k->rsa = xcalloc(1, sizeof *k->rsa);
    if (wc_InitRsaKey(k->rsa, NULL) == 0 && wc_RsaPrivateKeyDecode(der, &idx, k->rsa, len) == 0) {
        k->kind = KEY_KIND_RSA;
        snprintf(k->name, sizeof k->name, "RSA%d", wc_RsaEncryptSize(k->rsa) * 8);
        return 0;
    }
    wc_FreeRsaKey(k->rsa);
    free(k->rsa);
    k->rsa = NULL;
    idx = start;
    k->ecc = xcalloc(1, sizeof *k->ecc);
    if (wc_ecc_init(k->ecc) == 0 && wc_EccPrivateKeyDecode(der, &idx, k->ecc, len) == 0) {
        k->kind = KEY_KIND_EC;
        int bytes = wc_ecc_size(k->ecc);
        snprintf(k->name, sizeof k->name, "EC%d", bytes == 66 ? 521 : bytes * 8);
        return 0;
    }
    wc_ecc_free(k->ecc);
    free(k->ecc);
    k->ecc = NULL;
    return -1;
}

/* A PEM file's key (decrypted with the password file's, if set) into k. */
static int load_pem(struct key *k, const struct key_conf *kc, char *why, size_t n)
{
    char pw[PASSWORD_MAX + 1] = "", pwwhy[256];
    size_t len;
    int rc = -1;
    if (kc->password_file &&
        read_password(kc->password_file, pw, sizeof pw, pwwhy, sizeof pwwhy) < 0) {
        snprintf(why, n, "key_password_file '%s': %s", kc->password_file, pwwhy);
        return -1;
    }
    uint8_t *pem = read_secret(kc->key, PEM_MAX, &len, why, n);
    if (pem) {
        uint8_t *der = xmalloc(len);
        int d = wc_KeyPemToDer(pem, (int)len, der, (int)len, *pw ? pw : NULL);
        bool encrypted = strstr((char *)pem, "ENCRYPTED") != NULL;
        /* A traditional encrypted PEM decrypts with a wrong password too,
         * to garbage: only the decoding tells. */
        if (d > 0 && decode_der(k, der, (word32)d) == 0)
            rc = 0;
        else if (encrypted && !*pw)
            snprintf(why, n, "the key is encrypted: set key_password_file");
        else if (encrypted)
            snprintf(why, n, "cannot decrypt it with the password in '%s' (wrong password?)",
                     kc->password_file);
        else
            snprintf(why, n, "no RSA or EC private key in it (PEM)");
        explicit_bzero(der, len);
        explicit_bzero(pem, len);
        free(der);
        free(pem);
    }
    explicit_bzero(pw, sizeof pw);
    return rc;
}

static int load_token(struct key *k, const struct key_conf *kc, const char *module, char *why,
                      size_t n)
{
    char pin[PASSWORD_MAX + 1] = "", pinwhy[256];
    int bits;
    if (kc->password_file &&
        read_password(kc->password_file, pin, sizeof pin, pinwhy, sizeof pinwhy) < 0) {
        snprintf(why, n, "key_password_file '%s': %s", kc->password_file, pinwhy);
        return -1;
    }
    k->token = pkcs11_key_open(kc->key, *pin ? pin : NULL, module, why, n);
    explicit_bzero(pin, sizeof pin);
    if (!k->token)
        return -1;
    k->kind = pkcs11_key_kind(k->token, &bits);
    snprintf(k->name, sizeof k->name, "%s%d", k->kind == KEY_KIND_EC ? "EC" : "RSA", bits);
    return 0;
}

static void free_key(struct key *k)
{
    if (k->ecc) {
        wc_ecc_free(k->ecc);
        explicit_bzero(k->ecc, sizeof *k->ecc);
        free(k->ecc);
    }
    if (k->rsa) {
        wc_FreeRsaKey(k->rsa);
        explicit_bzero(k->rsa, sizeof *k->rsa);
        free(k->rsa);
    }
    if (k->token)
        pkcs11_key_close(k->token);
    memset(k, 0, sizeof *k);
}

/* ---- proof that a key belongs to its certificate ---- */

/* The certificate's public key: its kind, and the key decoded into pub. */
static int cert_public_key(const char *cert, int *kind, ecc_key *ec, RsaKey *rsa)
{
    unsigned char spki[4096];
    int len = sizeof spki;
    word32 idx = 0;
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert, WOLFSSL_FILETYPE_PEM);
    int rc = -1;
    if (x && wolfSSL_X509_get_pubkey_buffer(x, spki, &len) == WOLFSSL_SUCCESS) {
        if (wc_RsaPublicKeyDecode(spki, &idx, rsa, (word32)len) == 0) {
            *kind = KEY_KIND_RSA;
            rc = 0;
        } else if ((idx = 0, wc_EccPublicKeyDecode(spki, &idx, ec, (word32)len)) == 0) {
            *kind = KEY_KIND_EC;
            rc = 0;
        }
    }
    wolfSSL_X509_free(x);
    return rc;
}

/* Signs a random digest with key i and verifies it with the public key. */
static bool signs_for(struct keystore *ks, size_t i, int kind, ecc_key *ec, RsaKey *rsa)
{
    struct keyproto_req rq = { .magic = KEYPROTO_MAGIC, .key = (uint32_t)i, .len = 32 };
    struct keyproto_rep rep;
    uint8_t digest[32], back[KEYPROTO_SIG_MAX];
    int res = 0;
    if (wc_RNG_GenerateBlock(&ks->rng, digest, sizeof digest) != 0)
        return false;
    if (kind == KEY_KIND_EC) {
        rq.op = KEY_OP_ECDSA;
        memcpy(rq.in, digest, sizeof digest);
    } else {
        rq.op = KEY_OP_RSA_PKCS1;
        rq.len = (uint16_t)wc_EncodeSignature(rq.in, digest, sizeof digest, SHA256h);
    }
    keystore_sign(ks, &rq, &rep);
    if (rep.status != KEYPROTO_OK)
        return false;
    if (kind == KEY_KIND_EC)
        return wc_ecc_verify_hash(rep.sig, rep.len, digest, sizeof digest, &res, ec) == 0 &&
               res == 1;
    int m = wc_RsaSSL_Verify(rep.sig, rep.len, back, sizeof back, rsa);
    return m == rq.len && memcmp(back, rq.in, rq.len) == 0;
}

static int prove_match(struct keystore *ks, size_t i, const struct key_conf *kc, char *why,
                       size_t n)
{
    ecc_key ec;
    RsaKey rsa;
    int kind = 0, rc = -1;
    wc_ecc_init(&ec);
    wc_InitRsaKey(&rsa, NULL);
    if (cert_public_key(kc->cert, &kind, &ec, &rsa) < 0)
        snprintf(why, n, "cannot read the public key of certificate '%s'", kc->cert);
    else if (kind != ks->keys[i].kind || !signs_for(ks, i, kind, &ec, &rsa))
        snprintf(why, n, "does not match certificate '%s'", kc->cert);
    else
        rc = 0;
    wc_ecc_free(&ec);
    wc_FreeRsaKey(&rsa);
    return rc;
}

int keystore_add(struct keystore *ks, const struct key_conf *kc, const char *pkcs11_module,
                 char *err, size_t errlen)
{
    char why[512];
    struct key k = { 0 };
    int rc = pkcs11_is_uri(kc->key) ? load_token(&k, kc, pkcs11_module, why, sizeof why)
                                        : load_pem(&k, kc, why, sizeof why);
    if (rc < 0) {
        snprintf(err, errlen, "%s: key '%s': %s", kc->where, kc->key, why);
        free_key(&k);
        return -1;
    }
    ks->keys = xreallocarray(ks->keys, ks->n + 1, sizeof *ks->keys);
    ks->keys[ks->n++] = k;
    if (prove_match(ks, ks->n - 1, kc, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: key '%s' %s", kc->where, kc->key, why);
        free_key(&ks->keys[--ks->n]);
        return -1;
    }
    return 0;
}

void keystore_free(struct keystore *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        free_key(&ks->keys[i]);
    free(ks->keys);
    wc_FreeRng(&ks->rng);
    free(ks);
}
