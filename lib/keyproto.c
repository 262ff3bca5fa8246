/*
 * keyproto — the key processes' messages; see keyproto.h.
 */
#include "keyproto.h"

#include <stdbool.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>

#define REQ_HEAD offsetof(struct keyproto_req, in)
#define REP_HEAD offsetof(struct keyproto_rep, sig)

size_t keyproto_req_size(const struct keyproto_req *r)
{
    return REQ_HEAD + (r->len <= KEYPROTO_IN_MAX ? r->len : KEYPROTO_IN_MAX);
}

size_t keyproto_rep_size(const struct keyproto_rep *r)
{
    return REP_HEAD + (r->len <= KEYPROTO_SIG_MAX ? r->len : KEYPROTO_SIG_MAX);
}

size_t keyproto_hash_len(int hash)
{
    switch (hash) {
    case WC_HASH_TYPE_SHA256: return 32;
    case WC_HASH_TYPE_SHA384: return 48;
    case WC_HASH_TYPE_SHA512: return 64;
    default: return 0;
    }
}

static int pss_mgf(int hash)
{
    switch (hash) {
    case WC_HASH_TYPE_SHA256: return WC_MGF1SHA256;
    case WC_HASH_TYPE_SHA384: return WC_MGF1SHA384;
    case WC_HASH_TYPE_SHA512: return WC_MGF1SHA512;
    default: return -1;
    }
}

/* A DER DigestInfo: SEQUENCE { AlgorithmIdentifier, OCTET STRING digest },
 * short lengths only (every digest TLS signs is shorter than 128 bytes). */
static bool is_digest_info(const uint8_t *p, size_t n)
{
    if (n < 2 + 2 + 2 + 20 || p[0] != 0x30 || p[1] != n - 2 || p[2] != 0x30 ||
        (size_t)p[3] + 4 + 2 > n)
        return false;
    size_t o = 4 + (size_t)p[3];            /* the OCTET STRING */
    return p[o] == 0x04 && (size_t)p[o + 1] == n - o - 2 && p[o + 1] >= 20;
}

static int check_input(const struct keyproto_req *r, const char **why)
{
    size_t d;
    switch (r->op) {
    case KEY_OP_ECDSA:
        if (r->len != 20 && r->len != 28 && r->len != 32 && r->len != 48 && r->len != 64)
            return *why = "an ECDSA digest of an unknown length", -1;
        return 0;
    case KEY_OP_RSA_PKCS1:
        if (!is_digest_info(r->in, r->len))
            return *why = "an RSA PKCS#1 input that is not a DigestInfo", -1;
        return 0;
    case KEY_OP_RSA_PSS:
        d = keyproto_hash_len(r->hash);
        if (!d || pss_mgf(r->hash) != r->mgf)
            return *why = "an RSA-PSS hash or MGF this protocol does not sign with", -1;
        if (r->len != d)
            return *why = "an RSA-PSS digest of the wrong length", -1;
        return 0;
    default:
        return *why = "an unknown operation", -1;
    }
}

int keyproto_parse_req(const void *buf, size_t n, struct keyproto_req *r, const char **why)
{
    if (n < REQ_HEAD || n > sizeof *r)
        return *why = "a request of the wrong size", -1;
    memset(r, 0, sizeof *r);
    memcpy(r, buf, n);
    if (r->magic != KEYPROTO_MAGIC)
        return *why = "not a key request (magic)", -1;
    if (r->len > KEYPROTO_IN_MAX || REQ_HEAD + r->len != n)
        return *why = "a request whose length does not match its size", -1;
    return check_input(r, why);
}

int keyproto_parse_rep(const void *buf, size_t n, uint32_t id, struct keyproto_rep *r,
                       const char **why)
{
    if (n < REP_HEAD || n > sizeof *r)
        return *why = "a reply of the wrong size", -1;
    memcpy(r, buf, n);
    if (r->magic != KEYPROTO_MAGIC)
        return *why = "not a key reply (magic)", -1;
    if (r->id != id)
        return *why = "a reply to another request", -1;
    if (r->len > KEYPROTO_SIG_MAX || REP_HEAD + r->len != n)
        return *why = "a reply whose length does not match its size", -1;
    if (r->status == KEYPROTO_OK && r->len == 0)
        return *why = "an empty signature", -1;
    return 0;
}

const char *keyproto_status_name(uint32_t status)
{
    switch (status) {
    case KEYPROTO_OK: return "ok";
    case KEYPROTO_BAD_REQUEST: return "bad request";
    case KEYPROTO_NO_KEY: return "no such key";
    case KEYPROTO_FAILED: return "signing failed";
    default: return "unknown status";
    }
}
