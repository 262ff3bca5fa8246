/* proxyproto — PROXY protocol v1 and v2 headers (HAProxy's spec,
 * doc/proxy-protocol.txt) sent to a backend before the client's bytes. */
#ifndef TLSOFFD_PROXYPROTO_H
#define TLSOFFD_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct proxy_info {
    const struct sockaddr *src;     /* the client */
    const struct sockaddr *dst;     /* the address the client connected to */
    const char *alpn;               /* negotiated ALPN protocol, NULL/"" = none */
    const char *authority;          /* SNI host name, NULL/"" = none */
    const char *tls_version;        /* e.g. "TLSv1.3"; NULL = the connection was not TLS */
    const char *cipher;             /* e.g. "TLS_AES_128_GCM_SHA256", NULL = none */
    const char *sig_alg;            /* signature algorithm of the server cert, e.g. "ECDSA-SHA256", NULL = none */
    const char *key_alg;            /* key algorithm of the server cert, e.g. "EC256", NULL = none */
    const char *client_cn;          /* CN of the client certificate, NULL = none */
    bool client_cert_conn;          /* the client presented a certificate on this connection */
    bool client_cert_sess;          /* ... on this session (resumed or not) */
    uint32_t verify;                /* client cert verification result, 0 = success (as in the spec) */
};

#define PROXYPROTO_V1_MAX 108       /* the spec's bound for v1 */
#define PROXYPROTO_V2_MAX 1024      /* our bound for a v2 header with TLVs */

/* Writes a v1 header into buf ("PROXY TCP4 ...\r\n", or "PROXY UNKNOWN\r\n"
 * when the families differ or are not IP). Returns its length, or -1 if
 * len is too small. (buf is also NUL-terminated, which the length does not
 * count: PROXYPROTO_V1_MAX bytes always suffice.) */
ssize_t proxyproto_v1(const struct proxy_info *pi, char *buf, size_t len);

/* Writes a v2 header (PROXY command, TCP over IPv4 or IPv6; AF_UNSPEC with
 * no addresses when families differ) with TLVs: PP2_TYPE_ALPN (0x01),
 * PP2_TYPE_AUTHORITY (0x02), and when tls_version is set PP2_TYPE_SSL (0x20)
 * carrying client flags (PP2_CLIENT_SSL 0x01 always, PP2_CLIENT_CERT_CONN 0x02,
 * PP2_CLIENT_CERT_SESS 0x04), verify (uint32, network order), and sub-TLVs
 * PP2_SUBTYPE_SSL_VERSION 0x21, _CN 0x22, _CIPHER 0x23, _SIG_ALG 0x24,
 * _KEY_ALG 0x25 for each field that is set. Returns the length, or -1 if
 * len is too small or a field is longer than the format allows. */
ssize_t proxyproto_v2(const struct proxy_info *pi, uint8_t *buf, size_t len);

#endif
