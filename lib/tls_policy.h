/*
 * tls_policy — the one owner of tlsoffd's TLS policy: the default suites
 * and groups (config.c takes them as the defaults of the tls section), the
 * suites a client offers, and the one factory of client contexts, for TLS
 * to backends and for health probes. Server contexts get the policy
 * through tls.h (tls_frontend_new, tls_server_ctx_new).
 */
#ifndef TLSOFFD_TLS_POLICY_H
#define TLSOFFD_TLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

#include <wolfssl/options.h>     /* WOLFSSL_AESNI: the default suite order */

/*
 * The default suites, in the server's order of preference: AES-GCM first
 * where wolfSSL has AES-NI; else ChaCha20-Poly1305, which then runs about
 * twice as fast (Debian's wolfSSL 5.5.4, 64 MiB echoed through the relay:
 * 270 against 133 MiB per server CPU-second).
 */
#ifdef WOLFSSL_AESNI
#define TLS_POLICY_CIPHERS \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_POLICY_CIPHERSUITES \
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256"
#else
#define TLS_POLICY_CIPHERS \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define TLS_POLICY_CIPHERSUITES \
    "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384"
#endif
#define TLS_POLICY_GROUPS       "X25519:P-256"

/* What a client offers a backend: the default suites, TLS 1.3 first. */
#define TLS_POLICY_CLIENT_SUITES TLS_POLICY_CIPHERSUITES ":" TLS_POLICY_CIPHERS
/* What a health probe offers: also AEAD suites with finite-field DHE and,
 * from a wolfSSL built with WOLFSSL_STATIC_RSA (Debian's is not), with RSA
 * key exchange, which some backends still have alone. */
#define TLS_POLICY_PROBE_SUITES_DHE                                         \
    TLS_POLICY_CLIENT_SUITES ":DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define TLS_POLICY_PROBE_SUITES \
    TLS_POLICY_PROBE_SUITES_DHE ":AES128-GCM-SHA256:AES256-GCM-SHA384"

typedef struct WOLFSSL_CTX WOLFSSL_CTX;

/* A client context: what it offers and what it checks. */
struct tls_client_policy {
    const char *suites;         /* a ':'-list, set exactly; NULL: TLS_POLICY_CLIENT_SUITES */
    bool verify;                /* verify the server's chain */
    const char *ca_file;        /* NULL: the system's CA certificates */
    const char *ca_name;        /* how messages name ca_file: "tls.ca_file" */
    const char *cert, *key;     /* a client certificate (PEM); NULL: none */
    bool key_remote;            /* the key processes sign with key_id */
    int key_id;
    const char *where;          /* "file:line" that messages start with; NULL: none */
};

/*
 * A client context with the policy: TLS 1.2 to 1.3, p's suites exactly,
 * no read retries behind the caller's deadline, the chain verified if
 * p->verify, p's client certificate. NULL with the reason in err.
 */
WOLFSSL_CTX *tls_policy_client_ctx(const struct tls_client_policy *p, char *err, size_t errlen);

/* The groups of a ':'-list (tls_conf.groups) as a mask: bit N for the
 * group numbered N in TLS (all of tlsoffd's are under 32). */
uint32_t tls_policy_groups(const char *list);

#endif
