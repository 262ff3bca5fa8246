/*
 * tls — tlsoffd's TLS over wolfSSL: the contract for everyone outside
 * lib/tls*.c.
 *
 * Owns: the library (tls.c), a frontend's certificate contexts chosen by
 * SNI, ALPN and client certificates (tls_frontend.c), the policy of every
 * context (tls_policy.c, tls_policy.h), resumption shared by the workers
 * (tls_resume.c; a ticket's client certificate: tls_identity.c), OCSP
 * stapling (tls_ocsp.c), and one connection whose every read and write is
 * bounded by an absolute deadline, so a slow-drip client cannot hold a
 * worker (tls_io.c).
 */
#ifndef TLSOFFD_TLS_H
#define TLSOFFD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

/* wolfSSL's opaque types, without pulling its headers into every file. */
typedef struct WOLFSSL_CTX WOLFSSL_CTX;
typedef struct WOLFSSL WOLFSSL;

/* ---- the library ---- */

void tls_global_init(void);
void tls_global_cleanup(void);
/* After fork: the child must not reuse the parent's DRBG state. */
void tls_after_fork(void);
/* "wolfSSL 5.5.4" */
const char *tls_library_version(void);
/* What the wolfSSL linked does beyond Debian's build for the RFCs' sake. */
const char *tls_conformance(void);
/* The crypto acceleration the wolfSSL in use was built with, e.g.
 * "AES-NI, Intel AVX (USE_INTEL_SPEEDUP), SP math x86_64 asm", or "none
 * (portable C)". */
const char *tls_acceleration(void);
/* How it is linked: "static, Debian source wolfssl 5.5.4-2+deb12u3" or
 * "shared, /lib/x86_64-linux-gnu/libwolfssl.so.35" (the file it was
 * loaded from, by dladdr). */
const char *tls_library_linkage(void);
/* The file it was loaded from, or "the tlsoffd binary (linked statically,
 * Debian source ...)". */
const char *tls_library_path(void);

/* ---- contexts ---- */

/*
 * Resumption shared by every worker (see sesscache.h, ticketkeys.h). A
 * frontend keeps the settings it was made with, and its contexts reach
 * them, so contexts made for a reload leave the running ones alone.
 */
struct sesscache;
struct ticketkeys;
struct stats_worker;
struct tls_resumption {
    struct sesscache *cache;        /* NULL: no session-ID cache */
    struct ticketkeys *keys;        /* NULL: no session tickets */
    double cache_timeout;           /* seconds */
    double ticket_lifetime;         /* seconds */
    double ticket_max_age;          /* seconds from a chain's full handshake (tickets.max_age);
                                       0: 7 days */
};

/*
 * A frontend's TLS: one context per certificate, chosen per connection
 * from the ClientHello (SNI: exact names, then wildcards, else the default
 * or, with strict_sni, a refusal; ECDSA or RSA by what the client can
 * verify); ALPN; client certificates; OCSP stapling; resumption as r says
 * (NULL: none), bound to this frontend. Built in the master; NULL with
 * "file:line: ..." in err. Problems that only disable a feature (an OCSP
 * response that cannot be stapled) are logged as warnings.
 */
struct tls_frontend;
struct tls_frontend *tls_frontend_new(const struct tls_conf *tc, const struct frontend_conf *fe,
                                      const struct tls_resumption *r, char *err, size_t errlen);
void tls_frontend_free(struct tls_frontend *f);
/* The counters f's handshakes and session cache add to: this process's
 * slot (a worker sets it after fork); NULL: none. */
void tls_frontend_set_stats(struct tls_frontend *f, struct stats_worker *w);
/* Certificates loaded, and of those, how many staple an OCSP response. */
size_t tls_frontend_certs(const struct tls_frontend *f, size_t *stapling);

/*
 * A bare server context: the policy of tc and fe's first certificate (no
 * SNI, ALPN, client certificates or resumption). NULL with "file:line:
 * ..." in err (a missing file, an unreadable or mismatched key, an
 * unknown cipher or group).
 */
WOLFSSL_CTX *tls_server_ctx_new(const struct tls_conf *tc, const struct frontend_conf *fe,
                                char *err, size_t errlen);
/*
 * A client context for TLS to one backend server (tls_policy_client_ctx
 * with t's settings): the chain verified against t->ca_file (or the
 * system's CAs) unless verify is off, a client certificate if t->cert is
 * set. NULL with "file:line: ..." in err.
 */
WOLFSSL_CTX *tls_client_ctx_new(const struct backend_tls_conf *t, const char *where, char *err,
                                size_t errlen);
void tls_ctx_free(WOLFSSL_CTX *ctx);

/* ---- private keys in another process (tls_keys.c) ---- */

/*
 * How this process has a signature made with a key it does not hold (a
 * certificate entry with key_remote): the signer fills rep for rq, or
 * returns -1 with the reason in why. One per process; the contexts of
 * such certificates ask it during handshakes.
 */
struct keyproto_req;
struct keyproto_rep;
typedef int (*tls_signer_fn)(void *arg, const struct keyproto_req *rq,
                             struct keyproto_rep *rep, char *why, size_t whylen);
void tls_set_signer(tls_signer_fn fn, void *arg);

/* ---- one connection ---- */

/* Opaque. Its fd is non-blocking; every wait is a poll() bounded by the
 * connection's absolute deadline. */
struct tls_conn;

enum tls_io {
    TLS_IO_OK = 0,
    TLS_IO_WANT_READ,       /* only in non-blocking mode */
    TLS_IO_WANT_WRITE,
    TLS_IO_CLOSED,          /* close_notify or EOF from the peer */
    TLS_IO_TIMEOUT,
    TLS_IO_ERROR,
};

/*
 * A frontend's handshake on fd (non-blocking already), bounded by timeout
 * seconds: reads the ClientHello into the read-ahead buffer rbuf (cap
 * bytes, at least CLIENT_HELLO_MAX; it stays the connection's read-ahead
 * buffer), chooses the certificate, then does the handshake. *conn is set
 * even on failure (for tls_conn_sni; free it with tls_conn_free). On
 * failure, reason is set.
 */
enum tls_io tls_frontend_accept(struct tls_frontend *f, struct tls_conn **conn, int fd,
                                uint8_t *rbuf, size_t cap, double timeout, char *reason,
                                size_t len);

/* A connection on fd with ctx's settings; NULL if fd cannot be made
 * non-blocking or wolfSSL has no memory. */
struct tls_conn *tls_conn_new(WOLFSSL_CTX *ctx, int fd);
/* Frees conn (NULL: nothing) but leaves its fd open. */
void tls_conn_free(struct tls_conn *conn);
/* Gives conn a read-ahead buffer (before the handshake): wolfSSL asks for
 * a 5-byte header and then the record, so without one every record costs
 * two recv() calls. The buffer must outlive the connection. */
void tls_conn_readahead(struct tls_conn *conn, uint8_t *buf, size_t cap);
#define TLS_READAHEAD_SIZE (32 * 1024)

/* The server handshake, bounded by timeout seconds. On failure, reason is set. */
enum tls_io tls_conn_accept(struct tls_conn *conn, double timeout, char *reason, size_t len);
/*
 * The client handshake to a backend, bounded by timeout seconds: sends
 * t->sni, checks t->verify_name if verifying, and offers *session (a
 * session saved from an earlier connection to the same server) to resume.
 * On failure, reason is set.
 */
enum tls_io tls_conn_connect(struct tls_conn *conn, const struct backend_tls_conf *t,
                             void *session, double timeout, char *reason, size_t len);
/* The session to offer next time (replaces *session; free with
 * tls_session_free). */
void tls_conn_save_session(struct tls_conn *conn, void **session);
void tls_session_free(void *session);

/* Reads decrypted bytes; *n is set on TLS_IO_OK (never 0). */
enum tls_io tls_conn_read(struct tls_conn *conn, void *buf, size_t len, size_t *n);
/* Writes all of buf (one record per 16 KiB); in non-blocking mode it may
 * return WANT_WRITE and must then be called again with the same buffer. */
enum tls_io tls_conn_write(struct tls_conn *conn, const void *buf, size_t len);
/* Bytes buffered inside wolfSSL or read ahead (no poll() needed to read them). */
bool tls_conn_pending(struct tls_conn *conn);
/* Sends close_notify (best effort, bounded by the deadline). */
void tls_conn_close_notify(struct tls_conn *conn);

/* For a relay loop that polls the connection's fd itself: */
int tls_conn_fd(const struct tls_conn *conn);
/* on: reads and writes return TLS_IO_WANT_* instead of waiting. */
void tls_conn_set_nonblock(struct tls_conn *conn, bool on);
/* The absolute deadline of every wait (ms, CLOCK_MONOTONIC). */
void tls_conn_set_deadline(struct tls_conn *conn, int64_t deadline);
/* Did the last recv() into the read-ahead buffer empty the socket? */
bool tls_conn_drained(const struct tls_conn *conn);
/* The read-ahead buffer if it holds no unread byte (it is then reset, so
 * the caller may give its pages back), else NULL; its size in *cap. */
uint8_t *tls_conn_idle_readahead(struct tls_conn *conn, size_t *cap);

/* ---- parking an idle connection (tls_park.c) ---- */

/*
 * The TLS state of an idle frontend connection, written to a blob so that
 * another process can hold the connection (its fd passed on with
 * SCM_RIGHTS) and hand it back, and a connection made again from the blob
 * on the same socket by any process of the same tlsoffd binary. The client
 * notices nothing: records go on both ways, close_notify and TLS 1.3
 * KeyUpdate work, session tickets issued before stay valid.
 *
 * Needs a wolfSSL with session export and its internal.h (the TLS 1.3
 * traffic secrets, the handshake messages received, and whether wolfSSL
 * holds part of a record or unsent bytes are only there): the default build
 * (WOLFSSL=fast) links one (configure
 * --enable-sessionexport=nopeer). Debian's has neither: then
 * tls_park_supported() is false and parking and unparking fail, with a
 * reason.
 *
 * THE BLOB HOLDS THE CONNECTION'S TRAFFIC KEYS AND SECRETS: whoever reads
 * it can decrypt and forge the connection's records, both ways, until its
 * end. Keep it in tlsoffd's own memory and sockets (never in a file, a log,
 * or a segment another user can map), and explicit_bzero() every copy when
 * it is done with. A hash in it finds damage (not forgery: it is no MAC);
 * only the same wolfSSL build reads it.
 *
 * It also carries the server name, the ALPN protocol, how the handshake
 * resumed and the index of the frontend certificate that served it. It
 * does not carry the client certificate: after tls_conn_unpark(),
 * tls_conn_peer() reports none (keep what you need of it yourself).
 * Backend (client-side) connections cannot be parked: a client needs its
 * session (master or resumption secret, not exported) to save it for the
 * next connection and to take TLS 1.3 tickets that come later.
 */
#define TLS_PARK_MAX 1280       /* bytes: no blob is longer */
bool tls_park_supported(void);
/*
 * Writes conn's state into buf (len bytes, TLS_PARK_MAX is enough) if conn
 * is quiescent: a frontend's, handshake done, neither closed either way
 * nor failed, nothing buffered (read ahead, decrypted but unread, part of a record, or
 * not yet sent), no TLS 1.3 KeyUpdate answer due. Returns the blob's size,
 * or -1 with the reason in err ("data pending: ...", "not supported: ...").
 * conn is left as it was, and nothing is sent: the caller frees it with
 * tls_conn_free() (which sends nothing either) and passes the fd on.
 */
ssize_t tls_conn_park(struct tls_conn *conn, uint8_t *buf, size_t len, char *err,
                      size_t errlen);
/*
 * A connection on fd (made non-blocking) with the state of a blob that
 * tls_conn_park() made, on the context of the certificate of f that the
 * blob names: f is the frontend that made the connection (or, after a
 * reload, its successor; the context is not used after the handshake).
 * Ready for tls_conn_read() and tls_conn_write(): the caller sets the
 * deadline, non-blocking mode and read-ahead buffer as after
 * tls_frontend_accept(). NULL with the reason in err for a damaged,
 * truncated or foreign blob, or a wolfSSL without session export; fd is
 * left open.
 */
struct tls_conn *tls_conn_unpark(struct tls_frontend *f, int fd, const uint8_t *buf,
                                 size_t len, char *err, size_t errlen);

/* ---- what a handshake negotiated, for the access log and PROXY v2 ---- */

enum tls_resumed { TLS_RESUMED_NO, TLS_RESUMED_ID, TLS_RESUMED_TICKET };
/* How the handshake went: full, or resumed by session ID or ticket. */
enum tls_resumed tls_conn_resumed(struct tls_conn *conn);
const char *tls_resumed_name(enum tls_resumed r);

const char *tls_conn_version(struct tls_conn *conn);
const char *tls_conn_cipher(struct tls_conn *conn);
const char *tls_conn_sni(struct tls_conn *conn);     /* "-" if none */
const char *tls_conn_alpn(struct tls_conn *conn);    /* NULL if none */
/* The server certificate's key and signature algorithms ("EC256",
 * "ecdsa-with-SHA256"); NULL if unknown. */
const char *tls_conn_key_alg(struct tls_conn *conn);
const char *tls_conn_sig_alg(struct tls_conn *conn);

/* The client certificate of a finished handshake. */
struct tls_peer {
    bool presented;         /* on this connection */
    bool session;           /* ... or when the resumed session was made */
    char subject[256];      /* one-line form, "/CN=..."; "" if unknown */
    char cn[128];
};
void tls_conn_peer(struct tls_conn *conn, struct tls_peer *p);
/* The last wolfSSL error as text. */
void tls_conn_error(struct tls_conn *conn, int ret, char *buf, size_t len);

#endif
