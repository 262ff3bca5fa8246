/*
 * clienthello — what a TLS ClientHello asks for, read before the
 * handshake so the right certificate's context can be chosen: the server
 * name (SNI), and whether the client can verify an ECDSA certificate.
 *
 * Owns: the parsing of the first TLS record (RFC 8446 §4.1.2, RFC 5246
 * §7.4.1.2, RFC 6066 §3). It never trusts a length it has not checked.
 */
#ifndef TLSOFFD_CLIENTHELLO_H
#define TLSOFFD_CLIENTHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_HELLO_MAX (5 + 16384)   /* one TLS plaintext record */

struct client_hello {
    bool complete;          /* the whole ClientHello was in the first record */
    char sni[256];          /* host_name, lower-cased; "" if none */
    bool sni_invalid;       /* a server name was sent that is not a DNS name */
    bool tls13;             /* supported_versions lists TLS 1.3 */
    bool sigalgs;           /* a signature_algorithms extension was sent */
    bool ecdsa_sig13;       /* ... with ecdsa_secp256r1/384r1/521r1 (TLS 1.3) */
    bool ecdsa_sig12;       /* ... with any (hash, ECDSA) pair (TLS 1.2) */
    bool ecdsa_suite12;     /* an ECDHE-ECDSA suite is offered */
};

/*
 * Parses buf (the bytes received so far). Returns 0 when parsed (ch is
 * set; ch->complete says whether the whole message was there), a number
 * > len when that many bytes are needed before it can be parsed, or -1 if
 * this is not a TLS handshake record carrying a ClientHello.
 */
long client_hello_parse(const uint8_t *buf, size_t len, struct client_hello *ch);

/* Can the client verify an ECDSA certificate in a handshake of TLS 1.2
 * (if allow12) or TLS 1.3 (if allow13)? */
bool client_hello_ecdsa(const struct client_hello *ch, bool allow12, bool allow13);

#endif
