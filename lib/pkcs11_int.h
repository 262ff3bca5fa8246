/*
 * pkcs11_int — what the files of the pkcs11 module share (not for other
 * modules):
 *
 *   pkcs11.c        keys: find the private key, wolfSSL's key structs, sign
 *   pkcs11_uri.c    RFC 7512 URIs into a struct pkcs11_uri
 *   pkcs11_token.c  modules and tokens open in this process, shared by keys:
 *                   load, find the token, log in, one session, a crypto
 *                   callback device (devId) and an RNG seeded by the token
 */
#ifndef TLSOFFD_PKCS11_INT_H
#define TLSOFFD_PKCS11_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_pkcs11.h>

#include "pkcs11.h"

#define P11_TOKEN_LABEL_MAX   32     /* CK_TOKEN_INFO's fields, space-padded */
#define P11_MANUFACTURER_MAX  32
#define P11_MODEL_MAX         16
#define P11_SERIAL_MAX        16
#define P11_OBJECT_MAX        255    /* a key's CKA_LABEL (ours) */
#define P11_ID_MAX            255    /* a key's CKA_ID (ours) */
#define P11_PIN_MAX           255
#define P11_PIN_MAX_TEXT      "255"

struct pkcs11_uri {
    char token[P11_TOKEN_LABEL_MAX + 1];        /* "": any */
    char manufacturer[P11_MANUFACTURER_MAX + 1];
    char model[P11_MODEL_MAX + 1];
    char serial[P11_SERIAL_MAX + 1];
    bool has_slot;
    unsigned long slot_id;
    char object[P11_OBJECT_MAX + 1];            /* "": not given */
    bool has_id;
    uint8_t id[P11_ID_MAX];
    size_t id_len;
    char *module_path;                          /* NULL: the default */
    char *pin_source;                           /* a file's path, or NULL */
    bool has_pin_value;
    char pin_value[P11_PIN_MAX + 1];
};

/* 0, or -1 with the attribute at fault in err. On success the caller
 * calls pkcs11_uri_clear (which also wipes a pin-value). */
int pkcs11_uri_parse(struct pkcs11_uri *u, const char *uri, char *err, size_t errlen);
void pkcs11_uri_clear(struct pkcs11_uri *u);

/* A module loaded and initialised (C_Initialize) once per process. */
struct p11_module {
    struct p11_module *next;
    char *path;                 /* realpath() of the file */
    Pkcs11Dev dev;
    int refs;
};

/* A token with our one session on it, logged in, and the wolfSSL crypto
 * callback device that sends operations on keys with dev_id to it. */
struct p11_token {
    struct p11_token *next;
    struct p11_module *mod;
    CK_SLOT_ID slot;
    Pkcs11Token tok;            /* tok.handle: the session every operation uses */
    int dev_id;
    WC_RNG rng;                 /* seeded from the token (C_GenerateRandom) */
    char label[P11_TOKEN_LABEL_MAX + 1];
    int refs;
};

/* The token u names, opened (or shared) with pin (NULL: the URI's), as
 * pkcs11_key_open describes. NULL with why in err. */
struct p11_token *p11_token_get(const struct pkcs11_uri *u, const char *pin,
                                const char *default_module, char *err, size_t errlen);
void p11_token_put(struct p11_token *t);

/* The token's crypto callback sends RSA private-key operations here
 * (pkcs11.c): the raw RSA of a key of ours on the token. 0 or WC_HW_E. */
int p11_rsa_private(struct p11_token *t, wc_CryptoInfo *info);

/* "CKR_PIN_INCORRECT" and the like; "CKR_0x..." for others. */
const char *p11_rv_name(CK_RV rv, char *buf, size_t len);

/* How many modules and tokens are open in this process (for tests). */
int p11_open_modules(void);
int p11_open_tokens(void);

#endif
