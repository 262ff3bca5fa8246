/*
 * clienthello — what a TLS ClientHello asks for, read before the
 * handshake so the right certificate's context can be chosen: the server
 * name (SNI), and whether the client can verify an ECDSA certificate.
 *
 * Owns: the parsing of the ClientHello, reassembled from the handshake
 * records that carry it (RFC 8446 §4.1.2 and §5.1, RFC 5246 §7.4.1.2,
 * RFC 6066 §3). It never trusts a length it has not checked.
 */
#ifndef TLSOFFD_CLIENTHELLO_H
#define TLSOFFD_CLIENTHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The records carrying a ClientHello, headers included, fit in this many
 * bytes (a read buffer for them needs as many), and the message itself,
 * its 4-byte header included, in CLIENT_HELLO_MSG_MAX. Beyond: refused. */
#define CLIENT_HELLO_MAX     32768
#define CLIENT_HELLO_MSG_MAX 16384

struct client_hello {
    bool complete;          /* the whole ClientHello was parsed without a fault */
    char sni[256];          /* host_name, lower-cased; "" if none */
    bool sni_invalid;       /* a server name was sent that is not a DNS name */
    bool tls13;             /* supported_versions lists TLS 1.3 */
    bool sigalgs;           /* a signature_algorithms extension was sent */
    bool ecdsa_sig13;       /* ... with ecdsa_secp256r1/384r1/521r1 (TLS 1.3) */
    bool ecdsa_sig12;       /* ... with any (hash, ECDSA) pair (TLS 1.2) */
    bool ecdsa_suite12;     /* an ECDHE-ECDSA suite is offered */
    bool dhe_suite12;       /* a finite-field DHE suite is offered */
    bool groups_sent;       /* a supported_groups extension was sent ... */
    uint32_t groups;        /* ... bit N set: group N (those under 32: the curves) */
    bool p256_share;        /* a P-256 key share was sent ... */
    uint8_t p256_point[65]; /* ... its bytes, if it had the uncompressed form's 65 */
    bool reneg_nonempty;    /* renegotiation_info with renegotiated_connection */
    bool alpn_bad;          /* ALPN with an empty name or a broken list (RFC 7301) */
    bool ext_bad;           /* supported_groups, key_share or renegotiation_info
                               that does not parse */
    uint8_t alert;          /* refused (-2): the alert description to send */
    const char *refused;    /* ... and why (static text) */
};

/*
 * Parses buf (the bytes received so far): the ClientHello, gathered from
 * as many consecutive handshake records as carry it. Returns 0 when
 * parsed (ch is set; ch->complete is false if a length inside it was
 * wrong), a number > len when that many bytes are needed before it can be
 * parsed, -1 if the first record is not a TLS handshake record starting a
 * ClientHello, or -2 if the client is to be refused with ch->alert: a
 * record of another type, or a malformed one, before the ClientHello's
 * end, or a ClientHello over the maximum sizes above.
 */
long client_hello_parse(const uint8_t *buf, size_t len, struct client_hello *ch);

/* Can the client verify an ECDSA certificate in a handshake of TLS 1.2
 * (if allow12) or TLS 1.3 (if allow13)? */
bool client_hello_ecdsa(const struct client_hello *ch, bool allow12, bool allow13);

#endif
