/*
 * pkcs11 — a private key on a token: found from the URI, checked (EC or
 * RSA, may sign, the token has the mechanism wolfSSL uses), and held as a
 * wolfSSL key struct whose devId sends every operation to the token.
 *
 * What wolfSSL 5.5.4's PKCS#11 code (wc_pkcs11.c) needs of the key struct:
 *   EC:  the id or label (it finds the private key again at every
 *        signature by CKA_CLASS, CKA_KEY_TYPE and that, first match), and
 *        the curve (key->dp: wc_ecc_set_curve; else it reads CKA_EC_PARAMS
 *        at every signature). It signs with CKM_ECDSA and DER-encodes r|s.
 *        The public point is not needed.
 *   RSA: the public key (n, e): wolfSSL pads in software (PKCS#1 v1.5
 *        type 1, or PSS: both sized by n; without n it takes every key for
 *        2048 bits, and a first signature with a 3072-bit key comes out
 *        wrong) and asks the crypto callback for the raw private operation.
 *        n and e come from the private key object (CKA_MODULUS,
 *        CKA_PUBLIC_EXPONENT). That raw operation is ours, not
 *        wc_pkcs11.c's (which leaks, see pkcs11_token.c): CKM_RSA_X_509 on
 *        the object found at open, by C_Sign, or by C_Decrypt where the
 *        token's mechanism cannot sign, as wolfSSL does it.
 * So that wolfSSL's "first match" is this EC key, the id (or else the
 * label) handed to it must pick this key alone among the token's private
 * keys of its type.
 */
#include "pkcs11_int.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include "alloc.h"

#define WOLF_SELECTOR_MAX 32       /* RSA/ECC_MAX_ID_LEN, RSA/ECC_MAX_LABEL_LEN */

struct pkcs11_key {
    struct p11_token *tok;
    int kind, bits;
    CK_OBJECT_HANDLE h;             /* the private key object */
    bool by_decrypt;                /* RSA: raw RSA by C_Decrypt, not C_Sign */
    CK_RV rv;                       /* RSA: what the token said last */
    bool inited;                    /* w holds a wolfSSL key to free */
    union {
        ecc_key ec;
        RsaKey rsa;
    } w;
    char name[160];
    char err[512];
};

/* What the token says about the private key. */
struct key_attrs {
    CK_OBJECT_HANDLE h;
    CK_KEY_TYPE type;
    uint8_t id[P11_ID_MAX];
    long id_len;                    /* -1: none */
    char label[P11_OBJECT_MAX + 1];
    long label_len;
};

static int fail(struct pkcs11_key *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct pkcs11_key *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->err, sizeof k->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* "object 'ec-key' id 01 on token 'tlsoffd-test'", control bytes as '?'. */
static void name_key(struct pkcs11_key *k, const struct pkcs11_uri *u, const char *token)
{
    char id[2 * 16 + 4] = "";
    size_t at = 0;
    for (size_t i = 0; i < u->id_len && i < 16; i++)
        at += (size_t)snprintf(id + at, sizeof id - at, "%02x", u->id[i]);
    if (u->id_len > 16)
        snprintf(id + at, sizeof id - at, "...");
    bool obj = u->object[0] != '\0';
    snprintf(k->name, sizeof k->name, "%s%.64s%s%s%s%s on token '%s'", obj ? "object '" : "",
             u->object, obj ? "'" : "", obj && u->has_id ? " " : "", u->has_id ? "id " : "", id,
             token);
    for (char *c = k->name; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

/* How many objects match tmpl (0, 1, or 2 for "more than one"), the first
 * in *h; -1 if the token fails (*rv). */
static int find(struct p11_token *t, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *h,
                CK_RV *rv)
{
    CK_FUNCTION_LIST *f = t->tok.func;
    CK_OBJECT_HANDLE found[2];
    CK_ULONG count = 0;
    *rv = f->C_FindObjectsInit(t->tok.handle, tmpl, n);
    if (*rv != CKR_OK)
        return -1;
    *rv = f->C_FindObjects(t->tok.handle, found, 2, &count);
    f->C_FindObjectsFinal(t->tok.handle);
    if (*rv != CKR_OK)
        return -1;
    if (count > 0 && h)
        *h = found[0];
    return (int)count;
}

/* One attribute of object h into buf[cap]: its length, or -1. */
static long attr(struct p11_token *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, void *buf,
                 size_t cap)
{
    CK_ATTRIBUTE a = { type, buf, (CK_ULONG)cap };
    CK_RV rv = t->tok.func->C_GetAttributeValue(t->tok.handle, h, &a, 1);
    return rv == CKR_OK && a.ulValueLen <= cap ? (long)a.ulValueLen : -1;
}

/* The one private key the URI's object and id name. */
static int find_key(struct pkcs11_key *k, const struct pkcs11_uri *u, struct key_attrs *a)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[3] = { { CKA_CLASS, &cls, sizeof cls } };
    CK_ULONG n = 1;
    CK_RV rv;
    char rvb[32];
    if (u->object[0])
        tmpl[n++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)u->object, (CK_ULONG)strlen(u->object) };
    if (u->has_id)
        tmpl[n++] = (CK_ATTRIBUTE){ CKA_ID, (void *)u->id, (CK_ULONG)u->id_len };
    int c = find(k->tok, tmpl, n, &a->h, &rv);
    if (c < 0)
        return fail(k, "%s: C_FindObjects: %s", k->name, p11_rv_name(rv, rvb, sizeof rvb));
    if (c == 0)
        return fail(k, "%s: no such private key", k->name);
    if (c > 1)
        return fail(k, "%s: more than one private key matches: add %s to the URI", k->name,
                    u->has_id ? "object (the label)" : "id");
    return 0;
}

/* Its type (EC or RSA), id and label; and it must be allowed to sign. */
static int read_attrs(struct pkcs11_key *k, struct key_attrs *a)
{
    CK_BBOOL sign = CK_TRUE;
    if (attr(k->tok, a->h, CKA_KEY_TYPE, &a->type, sizeof a->type) != sizeof a->type)
        return fail(k, "%s: the token does not say what type of key it is", k->name);
    if (a->type != CKK_EC && a->type != CKK_RSA)
        return fail(k, "%s: a key of PKCS#11 type %lu: tlsoffd signs with EC and RSA keys",
                    k->name, (unsigned long)a->type);
    if (attr(k->tok, a->h, CKA_SIGN, &sign, sizeof sign) == sizeof sign && !sign)
        return fail(k, "%s: the key may not sign (CKA_SIGN is false)", k->name);
    a->id_len = attr(k->tok, a->h, CKA_ID, a->id, sizeof a->id);
    a->label_len = attr(k->tok, a->h, CKA_LABEL, a->label, sizeof a->label - 1);
    a->label[a->label_len > 0 ? a->label_len : 0] = '\0';
    k->kind = a->type == CKK_EC ? KEY_KIND_EC : KEY_KIND_RSA;
    return 0;
}

/* The token must offer what we sign with: CKM_ECDSA (wolfSSL), or raw
 * RSA (CKM_RSA_X_509) to sign or decrypt with (wolfSSL pads). */
static int check_mechanism(struct pkcs11_key *k)
{
    CK_MECHANISM_INFO mi = { 0 };
    bool ec = k->kind == KEY_KIND_EC;
    CK_RV rv = k->tok->tok.func->C_GetMechanismInfo(k->tok->slot, ec ? CKM_ECDSA : CKM_RSA_X_509,
                                                    &mi);
    CK_FLAGS need = ec ? CKF_SIGN : CKF_SIGN | CKF_DECRYPT;
    char rvb[32];
    k->by_decrypt = !(mi.flags & CKF_SIGN);
    if (rv == CKR_OK && (mi.flags & need))
        return 0;
    return fail(k, "%s: the token offers no %s to sign with (%s), and tlsoffd signs with "
                "nothing else", k->name, ec ? "CKM_ECDSA" : "raw RSA (CKM_RSA_X_509)",
                rv == CKR_OK ? "not for signing" : p11_rv_name(rv, rvb, sizeof rvb));
}

/* wolfSSL finds the key again at every operation by CKA_ID or else
 * CKA_LABEL (with class and type), first match: whether the id, or else
 * the label, picks this key alone. */
static int choose_selector(struct pkcs11_key *k, struct key_attrs *a, bool *use_id)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[3] = { { CKA_CLASS, &cls, sizeof cls },
                             { CKA_KEY_TYPE, &a->type, sizeof a->type } };
    CK_RV rv;
    if (a->id_len > 0 && a->id_len <= WOLF_SELECTOR_MAX) {
        tmpl[2] = (CK_ATTRIBUTE){ CKA_ID, a->id, (CK_ULONG)a->id_len };
        if (find(k->tok, tmpl, 3, NULL, &rv) == 1)
            return *use_id = true, 0;
    }
    if (a->label_len > 0 && a->label_len <= WOLF_SELECTOR_MAX &&
        strlen(a->label) == (size_t)a->label_len) {
        tmpl[2] = (CK_ATTRIBUTE){ CKA_LABEL, a->label, (CK_ULONG)a->label_len };
        if (find(k->tok, tmpl, 3, NULL, &rv) == 1)
            return *use_id = false, 0;
    }
    return fail(k, "%s: wolfSSL finds a key on a token by its id or its label (%d bytes at "
                "most), and neither picks this key alone: give it an id or a label no other "
                "private key of its type has", k->name, WOLF_SELECTOR_MAX);
}

static int init_ec(struct pkcs11_key *k, struct key_attrs *a, bool use_id)
{
    uint8_t p[64];
    long n = attr(k->tok, a->h, CKA_EC_PARAMS, p, sizeof p);
    int curve = n > 2 && p[0] == 0x06 && p[1] == n - 2
                ? wc_ecc_get_curve_id_from_oid(p + 2, (word32)(n - 2)) : ECC_CURVE_INVALID;
    if (curve < 0)
        return fail(k, "%s: an EC key on a curve wolfSSL does not know (CKA_EC_PARAMS)", k->name);
    int ret = use_id ? wc_ecc_init_id(&k->w.ec, a->id, (int)a->id_len, NULL, k->tok->dev_id)
                     : wc_ecc_init_label(&k->w.ec, a->label, NULL, k->tok->dev_id);
    k->inited = ret == 0;
    if (ret == 0)
        ret = wc_ecc_set_curve(&k->w.ec, 0, curve);
    if (ret != 0)
        return fail(k, "%s: wolfSSL's EC key: %s", k->name, wc_GetErrorString(ret));
    int size = wc_ecc_get_curve_size_from_id(curve);
    k->bits = size == 66 ? 521 : size * 8;
    return 0;
}

static int init_rsa(struct pkcs11_key *k, struct key_attrs *a)
{
    uint8_t n[1024], e[16];
    long nl = attr(k->tok, a->h, CKA_MODULUS, n, sizeof n);
    long el = attr(k->tok, a->h, CKA_PUBLIC_EXPONENT, e, sizeof e);
    if (nl <= 0 || el <= 0)
        return fail(k, "%s: the token shows no modulus and public exponent for this RSA key "
                    "(CKA_MODULUS, CKA_PUBLIC_EXPONENT; at most 8192 bits)", k->name);
    int ret = wc_InitRsaKey_ex(&k->w.rsa, NULL, k->tok->dev_id);
    k->inited = ret == 0;
    if (ret == 0)
        ret = wc_RsaPublicKeyDecodeRaw(n, (word32)nl, e, (word32)el, &k->w.rsa);
    if (ret != 0)
        return fail(k, "%s: wolfSSL's RSA key: %s", k->name, wc_GetErrorString(ret));
    const uint8_t *m = n;
    while (nl > 1 && *m == 0)
        m++, nl--;
    k->bits = (int)(nl - 1) * 8;
    for (unsigned top = *m; top; top >>= 1)
        k->bits++;
    return 0;
}

static int setup(struct pkcs11_key *k, const struct pkcs11_uri *u)
{
    struct key_attrs a;
    bool use_id = false;
    name_key(k, u, k->tok->label);
    if (find_key(k, u, &a) < 0 || read_attrs(k, &a) < 0 || check_mechanism(k) < 0)
        return -1;
    k->h = a.h;
    if (k->kind == KEY_KIND_RSA)
        return init_rsa(k, &a);
    return choose_selector(k, &a, &use_id) < 0 ? -1 : init_ec(k, &a, use_id);
}

struct pkcs11_key *pkcs11_key_open(const char *uri, const char *pin, const char *default_module,
                                   char *err, size_t errlen)
{
    struct pkcs11_uri u;
    if (pkcs11_uri_parse(&u, uri, err, errlen) < 0)
        return NULL;
    struct pkcs11_key *k = xcalloc(1, sizeof *k);
    k->tok = p11_token_get(&u, pin, default_module, err, errlen);
    int ret = k->tok ? setup(k, &u) : -1;
    pkcs11_uri_clear(&u);
    if (ret < 0 && k->tok)
        snprintf(err, errlen, "%s", k->err);
    if (ret < 0) {
        pkcs11_key_close(k);
        return NULL;
    }
    return k;
}

int pkcs11_key_kind(const struct pkcs11_key *k, int *bits)
{
    if (bits)
        *bits = k->bits;
    return k->kind;
}

const char *pkcs11_key_error(const struct pkcs11_key *k)
{
    return k->err;
}

const char *pkcs11_key_name(const struct pkcs11_key *k)
{
    return k->name;
}

static int sign_ecdsa(struct pkcs11_key *k, const uint8_t *in, size_t inlen, uint8_t *out,
                      size_t *outlen)
{
    if (k->kind != KEY_KIND_EC)
        return fail(k, "%s: ECDSA asked of an RSA key", k->name);
    int need = wc_ecc_sig_size_calc(k->w.ec.dp->size);
    if (inlen < 20 || inlen > 64)
        return fail(k, "%s: ECDSA: a digest of %zu bytes (20 to 64)", k->name, inlen);
    if (*outlen < (size_t)need)
        return fail(k, "%s: ECDSA: room for %zu bytes, a signature may take %d", k->name,
                    *outlen, need);
    word32 len = (word32)need;
    int ret = wc_ecc_sign_hash(in, (word32)inlen, out, &len, &k->tok->rng, &k->w.ec);
    if (ret != 0) {
        /* wolfSSL keeps the token's CK_RV to itself: is the key still there? */
        CK_KEY_TYPE type;
        CK_ATTRIBUTE a = { CKA_KEY_TYPE, &type, sizeof type };
        CK_RV rv = k->tok->tok.func->C_GetAttributeValue(k->tok->tok.handle, k->h, &a, 1);
        char rvb[32];
        return fail(k, "%s: ECDSA on the token failed: %s%s%s", k->name, wc_GetErrorString(ret),
                    rv == CKR_OK ? "" : "; the token no longer shows the key: ",
                    rv == CKR_OK ? "" : p11_rv_name(rv, rvb, sizeof rvb));
    }
    *outlen = len;
    return 0;
}

static bool pss_params(int hash, int mgf, size_t inlen)
{
    static const struct { int hash, mgf; } ok[] = {
        { WC_HASH_TYPE_SHA256, WC_MGF1SHA256 },
        { WC_HASH_TYPE_SHA384, WC_MGF1SHA384 },
        { WC_HASH_TYPE_SHA512, WC_MGF1SHA512 },
    };
    for (size_t i = 0; i < 3; i++)
        if (ok[i].hash == hash && ok[i].mgf == mgf)
            return inlen == (size_t)wc_HashGetDigestSize((enum wc_HashType)hash);
    return false;
}

static int sign_rsa(struct pkcs11_key *k, int op, int hash, int mgf, const uint8_t *in,
                    size_t inlen, uint8_t *out, size_t *outlen)
{
    const char *what = op == KEY_OP_RSA_PSS ? "RSA-PSS" : "RSA PKCS#1 v1.5";
    size_t need = ((size_t)k->bits + 7) / 8;
    if (k->kind != KEY_KIND_RSA)
        return fail(k, "%s: %s asked of an EC key", k->name, what);
    if (op == KEY_OP_RSA_PSS && !pss_params(hash, mgf, inlen))
        return fail(k, "%s: RSA-PSS: hash %d, MGF %d and a digest of %zu bytes do not go "
                    "together (SHA-256, -384 or -512, its MGF1, its digest)", k->name, hash, mgf,
                    inlen);
    if (*outlen < need)
        return fail(k, "%s: %s: room for %zu bytes, the signature takes %zu", k->name, what,
                    *outlen, need);
    k->rv = CKR_OK;
    int ret = op == KEY_OP_RSA_PSS
              ? wc_RsaPSS_Sign(in, (word32)inlen, out, (word32)need, (enum wc_HashType)hash, mgf,
                               &k->w.rsa, &k->tok->rng)
              : wc_RsaSSL_Sign(in, (word32)inlen, out, (word32)need, &k->w.rsa, &k->tok->rng);
    char rvb[32];
    if (ret < 0 && k->rv != CKR_OK)
        return fail(k, "%s: %s on the token failed: %s: %s", k->name, what,
                    k->by_decrypt ? "C_Decrypt" : "C_Sign", p11_rv_name(k->rv, rvb, sizeof rvb));
    if (ret < 0)
        return fail(k, "%s: %s on the token failed: %s", k->name, what, wc_GetErrorString(ret));
    *outlen = (size_t)ret;
    return 0;
}

int p11_rsa_private(struct p11_token *t, wc_CryptoInfo *info)
{
    /* Every RsaKey with one of our devIds is the w.rsa of a struct pkcs11_key. */
    struct pkcs11_key *k = (struct pkcs11_key *)(void *)((char *)info->pk.rsa.key -
                                                         offsetof(struct pkcs11_key, w.rsa));
    CK_FUNCTION_LIST *f = t->tok.func;
    CK_SESSION_HANDLE s = t->tok.handle;
    CK_MECHANISM mech = { CKM_RSA_X_509, NULL, 0 };
    CK_ULONG len = *info->pk.rsa.outLen;
    CK_BYTE_PTR in = (CK_BYTE_PTR)info->pk.rsa.in;
    if (k->tok != t)
        return WC_HW_E;
    CK_RV rv = k->by_decrypt ? f->C_DecryptInit(s, &mech, k->h) : f->C_SignInit(s, &mech, k->h);
    if (rv == CKR_OK)
        rv = k->by_decrypt ? f->C_Decrypt(s, in, info->pk.rsa.inLen, info->pk.rsa.out, &len)
                           : f->C_Sign(s, in, info->pk.rsa.inLen, info->pk.rsa.out, &len);
    k->rv = rv;
    if (rv != CKR_OK)
        return WC_HW_E;
    *info->pk.rsa.outLen = (word32)len;
    return 0;
}

int pkcs11_key_sign(struct pkcs11_key *k, int op, int hash, int mgf, const uint8_t *in,
                    size_t inlen, uint8_t *out, size_t *outlen)
{
    k->err[0] = '\0';
    if (!in || !out || !outlen)
        return fail(k, "%s: sign: no input or output", k->name);
    if (op == KEY_OP_ECDSA)
        return sign_ecdsa(k, in, inlen, out, outlen);
    if (op == KEY_OP_RSA_PKCS1 || op == KEY_OP_RSA_PSS)
        return sign_rsa(k, op, hash, mgf, in, inlen, out, outlen);
    return fail(k, "%s: unknown operation %d", k->name, op);
}

void pkcs11_key_close(struct pkcs11_key *k)
{
    if (!k)
        return;
    if (k->inited && k->kind == KEY_KIND_EC)
        wc_ecc_free(&k->w.ec);
    else if (k->inited)
        wc_FreeRsaKey(&k->w.rsa);
    p11_token_put(k->tok);
    free(k);
}
