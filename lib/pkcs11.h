/*
 * pkcs11 — private keys on a PKCS#11 token, named by RFC 7512 URIs and
 * used through wolfSSL's PKCS#11 support (wc_Pkcs11_*, crypto callbacks),
 * so that signing happens on the token and the key never leaves it.
 *
 * Owns: the URIs (lib/pkcs11_uri.c), the PKCS#11 modules and token
 * sessions open in this process (lib/pkcs11_token.c: keys on one token
 * share one module load and one logged-in session), and the keys with
 * their signing operations (this file).
 *
 * URIs: pkcs11:token=LABEL;object=LABEL;id=%01?module-path=/x.so&pin-source=/etc/pin
 *   path:  token, manufacturer, model, serial, slot-id (which token: all
 *          given must match, exactly one token may match), object, id
 *          (the private key's CKA_LABEL and CKA_ID: at least one, and they
 *          must match exactly one private key), type (only "private").
 *   query: module-path (absolute; else the caller's default module),
 *          pin-source (file:/path or /path: the file's content, one
 *          trailing newline dropped, is the user PIN), pin-value (the PIN
 *          itself: worse than a file, the config file then holds it).
 *   Values are percent-decoded. Any other attribute is an error (RFC 7512
 *   lets a consumer refuse what it does not know; a silently ignored
 *   typo such as "pin-sourse" would mean "no PIN").
 *   Messages never quote a whole URI (it may carry a PIN).
 *
 * The module, its token and the login are opened by pkcs11_key_open, in
 * the process that signs, before it chroots or gives up root; a process
 * must not open keys and then fork children that use them (PKCS#11
 * sessions do not survive fork). Not thread-safe.
 */
#ifndef TLSOFFD_PKCS11_H
#define TLSOFFD_PKCS11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyops.h"

/* Whether a key setting names a PKCS#11 key ("pkcs11:", any case). */
bool pkcs11_is_uri(const char *s);
/* Parses a URI without opening anything (for configuration checks):
 * 0, or -1 with the offending attribute in err. */
int pkcs11_uri_check(const char *uri, char *err, size_t errlen);

/* The module used when neither the URI nor the caller names one: p11-kit's
 * proxy (every module p11-kit knows) if installed, else SoftHSM 2's. */
const char *pkcs11_default_module(void);

struct pkcs11_key;   /* one private key on a token, ready to sign */

/*
 * Loads the module (the URI's module-path, else default_module, else
 * pkcs11_default_module()), finds the one token the URI names, logs in
 * with pin (NULL: the URI's pin-value or pin-source; a token already open
 * in this process for another key keeps that login), and finds the
 * private key (EC or RSA, allowed to sign). NULL with why in err.
 */
struct pkcs11_key *pkcs11_key_open(const char *uri, const char *pin, const char *default_module,
                                   char *err, size_t errlen);

/* KEY_KIND_EC or KEY_KIND_RSA; *bits (if bits): the curve's or the
 * modulus's size in bits. */
int pkcs11_key_kind(const struct pkcs11_key *k, int *bits);

/*
 * One operation of keyops.h on the token. hash and mgf matter only for
 * KEY_OP_RSA_PSS. *outlen: out's size in, the signature's length out.
 * 0, or -1: pkcs11_key_error() says why.
 */
int pkcs11_key_sign(struct pkcs11_key *k, int op, int hash, int mgf, const uint8_t *in,
                    size_t inlen, uint8_t *out, size_t *outlen);

/* Why the last pkcs11_key_sign failed, naming the key and its token. */
const char *pkcs11_key_error(const struct pkcs11_key *k);

/* "object 'ec-key' on token 'tlsoffd-test'": for the caller's messages. */
const char *pkcs11_key_name(const struct pkcs11_key *k);

/* Closes the key; the last key of a token closes its session, the last of
 * a module unloads it. NULL is ignored. */
void pkcs11_key_close(struct pkcs11_key *k);

#endif
