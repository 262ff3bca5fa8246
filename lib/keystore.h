/*
 * keystore — the private keys of the process that signs (the key process,
 * or tlsoffd -t checking them): PEM files, encrypted or not, and keys on
 * PKCS#11 tokens (pkcs11.h), each proved at load to match its
 * certificate, and signatures made with them on request (keyproto.h).
 *
 * An RSA signature is checked with the public key before it is returned:
 * a faulty RSA-CRT signature would give away the key's primes.
 */
#ifndef TLSOFFD_KEYSTORE_H
#define TLSOFFD_KEYSTORE_H

#include <stddef.h>

#include "config.h"
#include "keyproto.h"

struct keystore;

/* An empty store with its own random generator; NULL with the reason. */
struct keystore *keystore_new(char *err, size_t errlen);
/*
 * Loads kc's key as the store's next (keys.list order), and proves it
 * signs for kc's certificate. pkcs11_module: for URIs that name none (NULL:
 * the default). 0, or -1 with "where: key '...': why" in err (a missing or
 * unreadable file, no key in it, an encrypted key without a password or
 * with the wrong one, a token or object not found, a wrong PIN, a key that
 * does not match the certificate).
 */
int keystore_add(struct keystore *ks, const struct key_conf *kc, const char *pkcs11_module,
                 char *err, size_t errlen);
size_t keystore_count(const struct keystore *ks);
/* "EC256", "RSA2048" for key i. */
const char *keystore_describe(const struct keystore *ks, size_t i);
/* Answers a request (parsed already): rep's status, and its signature. */
void keystore_sign(struct keystore *ks, const struct keyproto_req *rq, struct keyproto_rep *rep);
/* Frees the store; every key's secret is wiped. */
void keystore_free(struct keystore *ks);

#endif
