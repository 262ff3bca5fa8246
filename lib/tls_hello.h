/*
 * tls_hello — what tlsoffd refuses in a ClientHello before wolfSSL reads
 * it, where the protocol says the server must and the wolfSSL in use may
 * not (issue 15): no group in common, an initial hello that claims a
 * renegotiation, an empty ALPN name, a P-256 key share that is not a
 * point on the curve.
 *
 * Owns: those rules, and the alert each is answered with.
 */
#ifndef TLSOFFD_TLS_HELLO_H
#define TLSOFFD_TLS_HELLO_H

#include <stdbool.h>
#include <stdint.h>

#include "clienthello.h"

/* What a frontend accepts, as the rules need it. */
struct tls_hello_policy {
    uint32_t groups;        /* bit N: group N is configured (tls_policy_groups) */
    bool allow12, allow13;  /* TLS 1.2, TLS 1.3 configured */
};

/*
 * Why a frontend with policy p refuses the parsed hello ch (static text),
 * with the alert to send in *alert; NULL if it does not. A hello that did
 * not parse whole (ch->complete false) is left to wolfSSL.
 */
const char *tls_hello_refusal(const struct tls_hello_policy *p, const struct client_hello *ch,
                              uint8_t *alert);

#endif
