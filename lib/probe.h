/*
 * probe — one health check of one server: TCP connect, HTTP request, or
 * TLS handshake, each bounded by a timeout. No process or thread logic
 * here: the prober (daemon/health.c) calls probe_run from its threads.
 *
 * Owns: the deadline of one probe (one absolute time for the connect, the
 * request and the reply, waited on through net.h, so a server that accepts
 * and never answers, or drips bytes, fails at the timeout), the HTTP/1.x
 * request (probe_http.h judges its reply), the TLS client handshake and
 * its verification.
 *
 * Thread safety: probe_run keeps no state; many threads may share one
 * WOLFSSL_CTX. A thread that ran TLS probes must call wc_ecc_fp_free()
 * before it ends (wolfSSL's per-thread FP_ECC cache).
 */
#ifndef TLSOFFD_PROBE_H
#define TLSOFFD_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

typedef struct WOLFSSL_CTX WOLFSSL_CTX;

enum probe_type { PROBE_NONE, PROBE_TCP, PROBE_HTTP, PROBE_TLS };

/* The longest timeout a probe takes: a day. */
#define PROBE_TIMEOUT_MAX_S 86400

struct probe_conf {
    enum probe_type type;
    double timeout;             /* seconds, the whole probe (connect+request+reply);
                                 * (0, PROBE_TIMEOUT_MAX_S] */
    /* http */
    const char *path;           /* request path, e.g. "/healthz"; NULL = "/" */
    const char *host;           /* Host header value; NULL = sni if set, else the address */
    int expect_lo, expect_hi;   /* accepted status range, e.g. 200..399, or 200..200;
                                 * 0..0 = 200..399 */
    const char *body;           /* substring the body must contain; NULL or "" = any */
    /* tls (and http over tls, if tls_ctx is set for an http probe) */
    WOLFSSL_CTX *tls_ctx;       /* a client context made by the caller (verification set in it); NULL = plain */
    const char *sni;            /* server name to send and, if verify_name, to check; NULL = none */
    bool verify_name;           /* check the certificate's name (needs sni or check_name) */
    const char *check_name;     /* the name to check instead of sni (e.g. an IP address,
                                 * which is not sent as SNI); NULL = sni */
};

/* Bytes of a reply an HTTP probe reads at most. */
#define PROBE_HTTP_MAX 16384

#define PROBE_REASON_MAX 160
struct probe_result {
    bool ok;
    /*
     * On failure: "connect: Connection refused", "connect: timed out after
     * 1s", "timed out after 1s", "read: Connection reset by peer", "HTTP
     * status 503 (expected 200-399)", "body does not contain 'OK'", "TLS:
     * certificate verify failed (-188)" (wolfSSL's string and code), "bad
     * HTTP reply: no status line ('SSH-2.0-OpenSSH_9.2')", "truncated
     * reply: ...", "bad probe: ..." (an unusable probe_conf) ...
     * On success: "HTTP 200", "TCP connect", "TLS handshake (TLSv1.3)",
     * "no probe" (PROBE_NONE always passes).
     */
    char reason[PROBE_REASON_MAX];
};

/*
 * Runs one probe against a. Returns when the probe has passed or failed,
 * never later than pc->timeout seconds after the call (plus scheduling).
 *
 * HTTP sends "GET <path> HTTP/1.1", Host, "User-Agent: tlsoffd-health" and
 * "Connection: close", and reads at most PROBE_HTTP_MAX bytes of the reply,
 * stopping as soon as the verdict is known: the status is out of range, or
 * the headers are complete and the body substring is found (or none is
 * asked for), or the body is complete (Content-Length, last chunk, EOF).
 * Anything still undecided at the deadline is "timed out after Ns".
 *
 * TLS verifies what pc->tls_ctx says (see probe_tls_ctx_new) and, with
 * verify_name, the certificate's name against check_name or sni; then sends
 * close_notify.
 */
void probe_run(const struct probe_conf *pc, const struct addr *a, struct probe_result *r);

/*
 * A client context for TLS probes: TLS 1.2 and 1.3, AEAD suites only, no
 * session cache, and verification of the server's chain on (against
 * ca_file, or the system store /etc/ssl/certs/ca-certificates.crt when
 * ca_file is NULL) or off (any certificate passes; verify_name is then not
 * checked either). Returns NULL with the reason in err. Free it with
 * wolfSSL_CTX_free (or tls_ctx_free).
 */
WOLFSSL_CTX *probe_tls_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen);

#endif
