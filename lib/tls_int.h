/*
 * tls_int — what only the tls*.c files share: one certificate's context
 * and the functions one part of the TLS code offers the others. Not for
 * use outside lib/tls*.c; the contract for everyone else is tls.h.
 */
#ifndef TLSOFFD_TLS_INT_H
#define TLSOFFD_TLS_INT_H

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "tls.h"
#include "ticketkeys.h"

struct client_hello;
struct sesscache;

/* A client certificate's subject (one-line form; what cannot be logged
 * between quotes replaced by '?') and CN: tls.h's struct tls_peer. */
struct tls_identity {
    char subject[256];
    char cn[128];
};
#define TLS_PEER_DIGEST_LEN 16  /* bytes of a certificate's digest (tls_peer_digest) */

/* One connection (tls.h). */
struct tls_conn {
    WOLFSSL *ssl;
    int fd;
    int64_t deadline;       /* ms, CLOCK_MONOTONIC; waits give up at this time */
    bool nonblock;          /* true: return "want read/write" instead of waiting */
    bool timed_out;         /* the last failure was the deadline */
    bool peer_closed;       /* the transport saw EOF */
    bool closed;            /* a read returned TLS_IO_CLOSED: every later read does */
    int sys_errno;          /* the last socket error, 0 if none */
    bool ticket_ok;         /* a ticket decrypted in this handshake */
    bool ticket_failed;     /* a ticket was offered and did not decrypt */
    int64_t ticket_origin;  /* ms, CLOCK_REALTIME: the full handshake of the ticket taken */
    bool bound;             /* binding is set (tls_resume_bind): the connection may resume */
    uint8_t binding[TICKET_SCOPE_LEN];  /* its sessions' and tickets' scope */
    bool has_ticket_peer;   /* ticket_peer is set */
    struct tls_identity ticket_peer;    /* the client certificate a ticket's session had */
    uint8_t ticket_peer_digest[TLS_PEER_DIGEST_LEN];    /* its tls_peer_digest */
    const struct tls_frontend *fe;      /* NULL: a bare context (tls_conn_new) */
    struct tls_cert *cert;              /* the certificate chosen */
    uint8_t *rbuf;          /* read-ahead: one recv() fills it, wolfSSL reads from it */
    size_t rcap, rlen, roff;    /* (NULL: wolfSSL's exact-size reads go to the socket) */
    bool drained;           /* the last recv() emptied the socket (read-ahead only) */
    char sni[256];          /* "" if none */
    char alpn[256];         /* negotiated; "" if none */
    const char *verify_failed;  /* why a client certificate was refused (static) */
};

/* An OCSP response stapled for one certificate (tls_ocsp.c). */
struct tls_staple {
    unsigned char *der;         /* the DER response; NULL: none */
    int len;
    int64_t next_update;        /* its nextUpdate, ms since the epoch; 0: none */
    int64_t warned;             /* when this worker last said it went stale */
    const char *frontend;       /* the frontend's name, for that warning */
};

/* One certificate of a frontend and the context that serves it. */
struct tls_cert {
    WOLFSSL_CTX *ctx;
    const struct cert_conf *conf;
    bool ecdsa;                 /* not RSA: served to clients that can verify it */
    char key_alg[16];           /* "EC256", "RSA2048" */
    char sig_alg[32];           /* "ecdsa-with-SHA256" */
    uint8_t fingerprint[32];    /* SHA-256 of the leaf's DER: sessions are bound to it */
    struct tls_staple staple;
};

/* tls.c: errors and certificates. */
/* Formats err, frees ctx (if set) and returns NULL. */
__attribute__((format(printf, 4, 5)))
WOLFSSL_CTX *tls_ctx_fail(WOLFSSL_CTX *ctx, char *err, size_t errlen, const char *fmt, ...);
/* The last wolfSSL error as text in buf (the queue is cleared). */
const char *tls_last_error(char *buf, size_t len);
/* The text of a PEM file with every private key in it blanked out, so
 * that a key kept with its chain never reaches the memory of a process
 * that only needs the chain: a new buffer (free it with tls_free_pem;
 * *len is its text's length), or NULL with the reason in why. */
#define TLS_PEM_MAX (1L << 20)
char *tls_read_public_pem(const char *path, size_t *len, char *why, size_t n);
void tls_free_pem(char *pem, size_t len);
/* Loads cc's chain and key into ctx and proves they match; ctx, or NULL
 * (ctx freed) with "file:line: ..." in err. */
WOLFSSL_CTX *tls_load_cert(WOLFSSL_CTX *ctx, const struct cert_conf *cc, char *err,
                           size_t errlen);

/* tls_keys.c: ctx signs with key_id of the configuration, through the
 * process's signer (its certificate is loaded, no private key). */
void tls_keys_remote(WOLFSSL_CTX *ctx, int key_id);
/* Why the last signature through the signer failed; NULL if it did not. */
const char *tls_keys_failure(void);

/* tls_io.c: I/O with conn's absolute deadline. */
/* Waits until conn's fd is ready for events; 0, or -1 (deadline or error). */
int tls_io_wait(struct tls_conn *conn, short events);
/* A zeroed connection on fd, without a WOLFSSL yet. */
struct tls_conn *tls_io_conn(int fd);
/* conn's WOLFSSL on ctx, its I/O going through conn (the callbacks are
 * set per connection: a context may also serve a prober's own I/O); 0 or -1. */
int tls_io_attach(struct tls_conn *conn, WOLFSSL_CTX *ctx);
/* Reads the records carrying the ClientHello into conn's read-ahead
 * buffer, bounded by the deadline. Returns > 0 if it is one, 0 if it is not
 * (what came stays in the buffer for wolfSSL to refuse), -2 if the client
 * is to be refused with ch->alert (ch->refused says why), or -1
 * (conn->timed_out, conn->peer_closed or conn->sys_errno). */
long tls_io_read_hello(struct tls_conn *conn, struct client_hello *ch);
/* What a failed handshake ends as: a timeout, the peer's close, an error. */
enum tls_io tls_io_failure(const struct tls_conn *conn);

/* tls_frontend.c: certificate i of frontend f (NULL: f has no such), and
 * the index of conn's certificate in its frontend (-1: not a frontend's). */
struct tls_cert *tls_frontend_cert(const struct tls_frontend *f, size_t i);
int tls_frontend_cert_index(const struct tls_conn *conn);

/* tls_resume.c: a frontend's resumption, reached from its contexts. */
struct tls_resume {
    struct tls_resumption conf;         /* cache and keys: NULL, off */
    uint8_t scope[TICKET_SCOPE_LEN];    /* sessions and tickets are bound to it */
    bool check_crl;                     /* a resumed session's client certificate too */
    struct stats_worker *stats;         /* this process's counters; NULL: none */
};
/* rs with r's settings (NULL: none) and the scope of frontend fe: its
 * name, verify_client and the contents of its client_ca (its client_crl
 * is not in it: a resumed session's certificate is checked against the
 * CRL of the day instead). */
void tls_resume_init(struct tls_resume *rs, const struct tls_resumption *r,
                     const struct frontend_conf *fe);
/* Binds conn's sessions and tickets to rs's scope, the certificate chosen
 * for it (its fingerprint) and the server name sent (lower-cased; "" if
 * none): a session resumes only where all three are the same. Before the
 * handshake; an unbound connection resumes nothing and stores nothing. */
void tls_resume_bind(const struct tls_resume *rs, struct tls_conn *conn,
                     const uint8_t fingerprint[32], const char *sni);
/* ctx resumes as rs says (NULL: never) and keeps rs, which must outlive it. */
void tls_resume_setup(WOLFSSL_CTX *ctx, const struct tls_resume *rs);
/* The resumption of ssl's context; NULL: none. */
const struct tls_resume *tls_resume_of(WOLFSSL *ssl);
/* Counts one finished (or failed) handshake in rs's counters. */
void tls_resume_count(const struct tls_resume *rs, struct tls_conn *conn, bool ok);

/* tls_identity.c: a session's client certificate, for the resumptions
 * that do not bring it (tickets). */
/* x's subject and CN, into id. */
void tls_identity_of(WOLFSSL_X509 *x, struct tls_identity *id);
/* What names a certificate (its DER) in a ticket: SHA-256, cut. */
void tls_peer_digest(const unsigned char *der, int len, uint8_t out[TLS_PEER_DIGEST_LEN]);
/* Whether the CRL of ssl's context revokes the certificate der (or it
 * cannot be checked); false if the context has no CRL. */
bool tls_peer_revoked(WOLFSSL *ssl, const unsigned char *der, int len);
/* Keeps x's identity and DER in cache c (NULL: nothing) under conn's
 * binding and x's digest peer; a record that does not fit a slot is not
 * kept. */
void tls_identity_keep(struct sesscache *c, const struct tls_conn *conn, WOLFSSL_X509 *x,
                       const uint8_t peer[TLS_PEER_DIGEST_LEN]);
/* The identity kept for peer under conn's binding, into id: true, or
 * false if there is none (or, with check_crl, ssl's context's CRL revokes
 * it). Found, its expiry starts over. */
bool tls_identity_find(struct sesscache *c, WOLFSSL *ssl, const struct tls_conn *conn,
                       const uint8_t peer[TLS_PEER_DIGEST_LEN], bool check_crl,
                       struct tls_identity *id);

/* tls_policy.c: a server context with tc's protocols, suites and groups
 * and rs's resumption (no certificate yet); NULL with "file:line: ..." in
 * err. */
WOLFSSL_CTX *tls_policy_server_ctx(const struct tls_conf *tc, const struct tls_resume *rs,
                                   char *err, size_t errlen);

/* tls_ocsp.c: reads cert->conf->ocsp_file and staples it if it checks
 * out against chain (leaf, issuer; n certificates), else logs why.
 * Returns true if the response is stapled. */
bool tls_ocsp_setup(struct tls_cert *cert, const char *frontend, WOLFSSL_X509 **chain, int n);
void tls_ocsp_free(struct tls_staple *s);

#endif
