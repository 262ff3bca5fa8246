#include "tls.h"
#include "clock.h"

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/openssl/pem.h>

#include "log.h"
#include "sesscache.h"
#include "stats.h"
#include "ticketkeys.h"

void tls_global_init(void)
{
    wolfSSL_Init();
}

void tls_global_cleanup(void)
{
    wolfSSL_Cleanup();
}

void tls_after_fork(void)
{
    /* A DRBG instantiated in the parent would hand every child the same
     * bytes; dropping it makes the next use reseed from getrandom(). */
    wolfSSL_RAND_Cleanup();
}

const char *tls_library_version(void)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "wolfSSL %s", wolfSSL_lib_version());
    return buf;
}

/* ---- I/O with an absolute deadline ---- */

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(struct tls_conn *c, short events)
{
    for (;;) {
        int64_t left = c->deadline - clock_now_ms();
        if (left <= 0) {
            c->timed_out = true;
            return -1;
        }
        struct pollfd p = { .fd = c->fd, .events = events };
        int rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR) {
            c->sys_errno = errno;
            return -1;
        }
    }
}

static int io_error(struct tls_conn *c, int err)
{
    c->sys_errno = err;
    if (err == ECONNRESET)
        return WOLFSSL_CBIO_ERR_CONN_RST;
    if (err == EPIPE) {
        c->peer_closed = true;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    return WOLFSSL_CBIO_ERR_GENERAL;
}

static int recv_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct tls_conn *c = ctx;
    (void)ssl;
    for (;;) {
        ssize_t n = recv(c->fd, buf, (size_t)sz, 0);
        if (n > 0)
            return (int)n;
        if (n == 0) {
            /* Reported as "want read" with a flag, not CONN_CLOSE: wolfSSL
             * marks a CONN_CLOSE connection closed and would then refuse to
             * send the rest of the reply and our close_notify (half-close). */
            c->peer_closed = true;
            return WOLFSSL_CBIO_ERR_WANT_READ;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error(c, errno);
        if (c->nonblock)
            return WOLFSSL_CBIO_ERR_WANT_READ;
        if (wait_fd(c, POLLIN) < 0)
            return c->timed_out ? WOLFSSL_CBIO_ERR_TIMEOUT : WOLFSSL_CBIO_ERR_GENERAL;
    }
}

static int send_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct tls_conn *c = ctx;
    (void)ssl;
    for (;;) {
        ssize_t n = send(c->fd, buf, (size_t)sz, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error(c, errno);
        if (c->nonblock)
            return WOLFSSL_CBIO_ERR_WANT_WRITE;
        if (wait_fd(c, POLLOUT) < 0)
            return c->timed_out ? WOLFSSL_CBIO_ERR_TIMEOUT : WOLFSSL_CBIO_ERR_GENERAL;
    }
}

/* ---- resumption: the shared session cache and ticket keys ---- */

static struct tls_resumption resumption;
static struct stats_worker *counters;

void tls_set_resumption(const struct tls_resumption *r)
{
    resumption = *r;
}

void tls_set_stats(struct stats_worker *w)
{
    counters = w;
}

/*
 * A new session: TLS 1.2 sessions with an ID go to the shared cache.
 * TLS 1.3 resumes statelessly by ticket, and a TLS 1.2 ticket session has
 * no ID, so those are not stored. Returns 0: wolfSSL keeps no reference.
 */
static int sess_new_cb(WOLFSSL *ssl, WOLFSSL_SESSION *sess)
{
    unsigned int idlen = 0;
    const unsigned char *id = wolfSSL_SESSION_get_id(sess, &idlen);
    unsigned char buf[SESSCACHE_SLOT_SIZE];
    if (wolfSSL_version(ssl) == TLS1_3_VERSION || idlen == 0)
        return 0;
    int sz = wolfSSL_i2d_SSL_SESSION(sess, NULL);
    if (sz <= 0 || (size_t)sz > sesscache_max_data()) {
        stats_inc(counters, ST_CACHE_OVERSIZE);
        log_debug("session cache: a %d-byte session does not fit a slot (%zu bytes)", sz,
                  sesscache_max_data());
        return 0;
    }
    log_debug("session cache: storing a %d-byte session", sz);
    unsigned char *p = buf;
    wolfSSL_i2d_SSL_SESSION(sess, &p);      /* writes at p; does not advance it */
    switch (sesscache_store(resumption.cache, id, idlen, buf, (size_t)sz, clock_now_ms())) {
    case SESSCACHE_STORED_EVICTING:
        stats_inc(counters, ST_CACHE_EVICT);
        /* fall through */
    case SESSCACHE_STORED:
        stats_inc(counters, ST_CACHE_STORE);
        break;
    case SESSCACHE_OVERSIZE:
        stats_inc(counters, ST_CACHE_OVERSIZE);
        break;
    case SESSCACHE_BADID:
        break;
    }
    return 0;
}

static WOLFSSL_SESSION *sess_get_cb(WOLFSSL *ssl, const unsigned char *id, int len, int *copy)
{
    unsigned char buf[SESSCACHE_SLOT_SIZE];
    *copy = 0;
    /* TLS 1.3 asks by the ticket's ID on every resumption; its tickets
     * carry the session themselves. */
    if (wolfSSL_version(ssl) == TLS1_3_VERSION || len <= 0)
        return NULL;
    size_t n = sesscache_lookup(resumption.cache, id, (size_t)len, buf, sizeof buf, clock_now_ms());
    if (n == 0) {
        stats_inc(counters, ST_CACHE_MISS);
        return NULL;
    }
    const unsigned char *p = buf;
    WOLFSSL_SESSION *sess = wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)n);
    stats_inc(counters, sess ? ST_CACHE_HIT : ST_CACHE_MISS);
    return sess;
}

/*
 * Session tickets under the shared key ring. A ticket under an older key
 * is accepted and a new one issued (wolfSSL 5.5.4 issues it for TLS 1.3
 * only). TLS 1.3 may call this once per offered suite while a ticket does
 * not decrypt, so a failure only sets a flag, counted once per connection.
 */
static int ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc, unsigned char *ticket,
                     int len, int *outlen, void *ctx)
{
    struct tls_conn *c = wolfSSL_GetIOReadCtx(ssl);
    (void)ctx;
    if (len <= 0)
        return WOLFSSL_TICKET_RET_REJECT;
    if (enc) {
        if (ticketkeys_encrypt(resumption.keys, name, iv, mac, ticket, (size_t)len) < 0)
            return WOLFSSL_TICKET_RET_FATAL;
        *outlen = len;
        return WOLFSSL_TICKET_RET_OK;
    }
    switch (ticketkeys_decrypt(resumption.keys, name, iv, mac, ticket, (size_t)len,
                               clock_real_ms())) {
    case TICKET_DEC_CURRENT:
        *outlen = len;
        c->ticket_ok = true;
        return WOLFSSL_TICKET_RET_OK;
    case TICKET_DEC_OLDER:
        *outlen = len;
        c->ticket_ok = true;
        return WOLFSSL_TICKET_RET_CREATE;
    default:
        c->ticket_failed = true;
        return WOLFSSL_TICKET_RET_REJECT;
    }
}

static void setup_resumption(WOLFSSL_CTX *ctx)
{
    const struct tls_resumption *r = &resumption;
    double life = r->keys ? r->ticket_lifetime : r->cache_timeout;
    if (life < r->cache_timeout)
        life = r->cache_timeout;
    /* wolfSSL refuses TLS 1.3 tickets older than the session timeout. */
    wolfSSL_CTX_set_timeout(ctx, life < 1 ? 1 : (unsigned)life);
    if (r->cache) {
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_SERVER |
                                                WOLFSSL_SESS_CACHE_NO_INTERNAL);
        wolfSSL_CTX_sess_set_new_cb(ctx, sess_new_cb);
        wolfSSL_CTX_sess_set_get_cb(ctx, sess_get_cb);
        /* No remove callback: wolfSSL 5.5.4 calls it whenever a session
         * object is freed, which would delete what was just stored. */
    } else {
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    }
    if (r->keys) {
        wolfSSL_CTX_set_TicketEncCb(ctx, ticket_cb);
        wolfSSL_CTX_set_TicketHint(ctx, (int)(r->ticket_lifetime > 604800 ? 604800
                                                                          : r->ticket_lifetime));
    } else {
        wolfSSL_CTX_NoTicketTLSv12(ctx);
        wolfSSL_CTX_no_ticket_TLSv13(ctx);
    }
}

enum tls_resumed tls_conn_resumed(struct tls_conn *c)
{
    if (!wolfSSL_session_reused(c->ssl))
        return TLS_RESUMED_NO;
    if (wolfSSL_version(c->ssl) == TLS1_3_VERSION || c->ticket_ok)
        return TLS_RESUMED_TICKET;
    return TLS_RESUMED_ID;
}

const char *tls_resumed_name(enum tls_resumed r)
{
    return r == TLS_RESUMED_ID ? "id" : r == TLS_RESUMED_TICKET ? "ticket" : "no";
}

/* Counts one finished handshake. */
static void count_handshake(struct tls_conn *c, bool ok)
{
    stats_inc(counters, ST_CONNECTIONS);
    if (c->ticket_failed && !c->ticket_ok)
        stats_inc(counters, ST_TICKET_FAIL);
    if (!ok) {
        stats_inc(counters, ST_HANDSHAKE_FAILED);
        return;
    }
    switch (tls_conn_resumed(c)) {
    case TLS_RESUMED_NO:
        stats_inc(counters, ST_FULL);
        break;
    case TLS_RESUMED_ID:
        stats_inc(counters, ST_RESUMED_ID);
        break;
    case TLS_RESUMED_TICKET:
        stats_inc(counters, wolfSSL_version(c->ssl) == TLS1_3_VERSION ? ST_RESUMED_TICKET13
                                                                      : ST_RESUMED_TICKET12);
        break;
    }
}

/* ---- contexts ---- */

__attribute__((format(printf, 4, 5)))
static WOLFSSL_CTX *ctx_fail(WOLFSSL_CTX *ctx, char *err, size_t errlen, const char *fmt, ...);

static WOLFSSL_CTX *ctx_fail(WOLFSSL_CTX *ctx, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (ctx)
        wolfSSL_CTX_free(ctx);
    return NULL;
}

static const char *last_error(char *buf, size_t len)
{
    unsigned long e = wolfSSL_ERR_get_error();
    if (e == 0)
        snprintf(buf, len, "not in PEM format or damaged");
    else
        wolfSSL_ERR_error_string_n(e, buf, (unsigned long)len);
    wolfSSL_ERR_clear_error();
    return buf;
}

/* Every name in a ':'-list must be a suite this wolfSSL knows. */
static int check_suites(WOLFSSL_CTX *ctx, const char *list, char *bad, size_t badlen)
{
    char *copy = strdup(list), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save))
        if (wolfSSL_CTX_set_cipher_list(ctx, t) != WOLFSSL_SUCCESS) {
            snprintf(bad, badlen, "%s", t);
            rc = -1;
            break;
        }
    free(copy);
    return rc;
}

static int group_id(const char *name)
{
    static const struct { const char *n; int id; } g[] = {
        { "X25519", WOLFSSL_ECC_X25519 }, { "X448", WOLFSSL_ECC_X448 },
        { "P-256", WOLFSSL_ECC_SECP256R1 }, { "P-384", WOLFSSL_ECC_SECP384R1 },
        { "P-521", WOLFSSL_ECC_SECP521R1 },
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (strcmp(g[i].n, name) == 0)
            return g[i].id;
    return -1;
}

static int set_groups(WOLFSSL_CTX *ctx, const char *list)
{
    int ids[8], n = 0;
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t && n < 8; t = strtok_r(NULL, ":", &save))
        if ((ids[n] = group_id(t)) >= 0)
            n++;
    free(copy);
    return n > 0 && wolfSSL_CTX_set_groups(ctx, ids, n) == WOLFSSL_SUCCESS ? 0 : -1;
}

static WOLFSSL_CTX *policy_ctx(const struct tls_conf *tc, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    char bad[128], list[1024];

    if (!ctx)
        return ctx_fail(NULL, err, errlen, "out of memory creating a TLS context");
    /* wolfSSL's OpenSSL-compatible defaults would allow TLS 1.1 and NULL
     * ciphers and retry reads behind our deadline: set everything. */
    if (wolfSSL_CTX_set_min_proto_version(ctx, tc->min_version) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_max_proto_version(ctx, tc->max_version) != WOLFSSL_SUCCESS)
        return ctx_fail(ctx, err, errlen, "%s: cannot set the protocol range", tc->where);
    if (check_suites(ctx, tc->ciphers, bad, sizeof bad) < 0)
        return ctx_fail(ctx, err, errlen, "%s: tls.ciphers: this wolfSSL has no cipher '%s'",
                        tc->ciphers_where, bad);
    if (check_suites(ctx, tc->ciphersuites, bad, sizeof bad) < 0)
        return ctx_fail(ctx, err, errlen, "%s: tls.ciphersuites: this wolfSSL has no suite '%s'",
                        tc->suites_where, bad);
    snprintf(list, sizeof list, "%s%s%s",
             tc->max_version == TLS1_3_VERSION ? tc->ciphersuites : "",
             tc->max_version == TLS1_3_VERSION && tc->min_version == TLS1_2_VERSION ? ":" : "",
             tc->min_version == TLS1_2_VERSION ? tc->ciphers : "");
    if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS)
        return ctx_fail(ctx, err, errlen, "%s: cannot set cipher list '%s'", tc->where, list);
    if (set_groups(ctx, tc->groups) < 0)
        return ctx_fail(ctx, err, errlen, "%s: tls.groups: this wolfSSL cannot offer '%s'",
                        tc->where, tc->groups);
    wolfSSL_CTX_set_options(ctx, WOLFSSL_OP_NO_COMPRESSION | WOLFSSL_OP_CIPHER_SERVER_PREFERENCE);
    wolfSSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    wolfSSL_CTX_SetIORecv(ctx, recv_cb);
    wolfSSL_CTX_SetIOSend(ctx, send_cb);
    setup_resumption(ctx);
    return ctx;
}

/*
 * Does the private key belong to the certificate's public key? wolfSSL
 * 5.5.4's wolfSSL_CTX_check_private_key() accepts any EC P-256 key for an
 * EC P-256 certificate (seen: a freshly generated key passed), so the proof
 * is a signature made with the key and verified with the certificate.
 */
static bool key_matches_cert(const char *cert, const char *key)
{
    static const unsigned char msg[] = "tlsoffd key check";
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    bool ok = false;
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert, WOLFSSL_FILETYPE_PEM);
    WOLFSSL_BIO *b = wolfSSL_BIO_new_file(key, "r");
    WOLFSSL_EVP_PKEY *priv = b ? wolfSSL_PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    WOLFSSL_EVP_PKEY *pub = x ? wolfSSL_X509_get_pubkey(x) : NULL;
    WOLFSSL_EVP_MD_CTX *sm = wolfSSL_EVP_MD_CTX_new(), *vm = wolfSSL_EVP_MD_CTX_new();

    if (priv && pub && sm && vm &&
        wolfSSL_EVP_DigestSignInit(sm, NULL, wolfSSL_EVP_sha256(), NULL, priv) == 1 &&
        wolfSSL_EVP_DigestSignUpdate(sm, msg, sizeof msg) == 1 &&
        wolfSSL_EVP_DigestSignFinal(sm, sig, &siglen) == 1 &&
        wolfSSL_EVP_DigestVerifyInit(vm, NULL, wolfSSL_EVP_sha256(), NULL, pub) == 1 &&
        wolfSSL_EVP_DigestVerifyUpdate(vm, msg, sizeof msg) == 1)
        ok = wolfSSL_EVP_DigestVerifyFinal(vm, sig, siglen) == 1;
    wolfSSL_EVP_MD_CTX_free(sm);
    wolfSSL_EVP_MD_CTX_free(vm);
    wolfSSL_EVP_PKEY_free(priv);
    wolfSSL_EVP_PKEY_free(pub);
    wolfSSL_BIO_free(b);
    wolfSSL_X509_free(x);
    wolfSSL_ERR_clear_error();
    return ok;
}

static WOLFSSL_CTX *load_cert(WOLFSSL_CTX *ctx, const struct cert_conf *cc, char *err,
                              size_t errlen)
{
    char why[256];
    if (access(cc->cert, R_OK) < 0)
        return ctx_fail(ctx, err, errlen, "%s: certificate '%s': %s", cc->where, cc->cert,
                        strerror(errno));
    if (access(cc->key, R_OK) < 0)
        return ctx_fail(ctx, err, errlen, "%s: key '%s': %s", cc->where, cc->key,
                        strerror(errno));
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, cc->cert) != WOLFSSL_SUCCESS)
        return ctx_fail(ctx, err, errlen, "%s: certificate '%s': cannot load a PEM chain: %s",
                        cc->where, cc->cert, last_error(why, sizeof why));
    if (wolfSSL_CTX_use_PrivateKey_file(ctx, cc->key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return ctx_fail(ctx, err, errlen, "%s: key '%s': cannot load a PEM private key: %s",
                        cc->where, cc->key, last_error(why, sizeof why));
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS ||
        !key_matches_cert(cc->cert, cc->key))
        return ctx_fail(ctx, err, errlen, "%s: key '%s' does not match certificate '%s'",
                        cc->where, cc->key, cc->cert);
    return ctx;
}

WOLFSSL_CTX *tls_server_ctx_new(const struct tls_conf *tc, const struct frontend_conf *fe,
                                char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx;
    if (fe->ncerts != 1)
        return ctx_fail(NULL, err, errlen, "%s: frontend '%s': exactly one certificate is "
                        "supported in this version (SNI selection is not built yet)",
                        fe->where, fe->name);
    if (!(ctx = policy_ctx(tc, err, errlen)))
        return NULL;
    return load_cert(ctx, &fe->certs[0], err, errlen);
}

WOLFSSL_CTX *tls_client_ctx_new(const struct backend_tls_conf *t, const char *where, char *err,
                                size_t errlen)
{
    char why[256];
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (!ctx)
        return ctx_fail(NULL, err, errlen, "out of memory creating a TLS context");
    if (wolfSSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(ctx, CONFIG_DEFAULT_CIPHERSUITES ":"
                                         CONFIG_DEFAULT_CIPHERS) != WOLFSSL_SUCCESS)
        return ctx_fail(ctx, err, errlen, "%s: cannot set the backend TLS policy", where);
    wolfSSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    wolfSSL_CTX_SetIORecv(ctx, recv_cb);
    wolfSSL_CTX_SetIOSend(ctx, send_cb);
    if (t->verify) {
        if (t->ca_file) {
            if (access(t->ca_file, R_OK) < 0)
                return ctx_fail(ctx, err, errlen, "%s: tls.ca_file '%s': %s", where, t->ca_file,
                                strerror(errno));
            if (wolfSSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != WOLFSSL_SUCCESS)
                return ctx_fail(ctx, err, errlen, "%s: tls.ca_file '%s': no PEM certificate: %s",
                                where, t->ca_file, last_error(why, sizeof why));
        } else if (wolfSSL_CTX_load_system_CA_certs(ctx) != WOLFSSL_SUCCESS) {
            return ctx_fail(ctx, err, errlen, "%s: cannot load the system's CA certificates "
                            "(set tls.ca_file)", where);
        }
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    if (t->cert) {
        struct cert_conf cc = { .cert = t->cert, .key = t->key, .where = (char *)where };
        return load_cert(ctx, &cc, err, errlen);
    }
    return ctx;
}

void tls_ctx_free(WOLFSSL_CTX *ctx)
{
    if (ctx)
        wolfSSL_CTX_free(ctx);
}

/* ---- connections ---- */

int tls_conn_init(struct tls_conn *c, WOLFSSL_CTX *ctx, int fd)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    if (!(c->ssl = wolfSSL_new(ctx)))
        return -1;
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    return 0;
}

void tls_conn_free(struct tls_conn *c)
{
    if (c->ssl)
        wolfSSL_free(c->ssl);
    c->ssl = NULL;
}

void tls_conn_error(struct tls_conn *c, int ret, char *buf, size_t len)
{
    int e = wolfSSL_get_error(c->ssl, ret);
    char w[WOLFSSL_MAX_ERROR_SZ];
    if (c->timed_out)
        snprintf(buf, len, "timed out");
    else if (c->sys_errno)
        snprintf(buf, len, "%s", strerror(c->sys_errno));
    else if (c->peer_closed)
        snprintf(buf, len, "connection closed by peer");
    else
        snprintf(buf, len, "%s (%d)", wolfSSL_ERR_error_string((unsigned long)e, w), e);
}

enum tls_io tls_conn_accept(struct tls_conn *c, double timeout, char *reason, size_t len)
{
    c->nonblock = false;
    c->deadline = clock_now_ms() + (int64_t)(timeout * 1000);
    int ret = wolfSSL_accept(c->ssl);
    count_handshake(c, ret == WOLFSSL_SUCCESS);
    if (ret == WOLFSSL_SUCCESS)
        return TLS_IO_OK;
    tls_conn_error(c, ret, reason, len);
    if (c->timed_out)
        return TLS_IO_TIMEOUT;
    if (c->peer_closed)
        return TLS_IO_CLOSED;
    return TLS_IO_ERROR;
}

enum tls_io tls_conn_connect(struct tls_conn *c, const struct backend_tls_conf *t,
                             void *session, double timeout, char *reason, size_t len)
{
    c->nonblock = false;
    c->deadline = clock_now_ms() + (int64_t)(timeout * 1000);
    if (t->sni)
        wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, t->sni, (unsigned short)strlen(t->sni));
    if (t->verify && t->verify_name)
        wolfSSL_check_domain_name(c->ssl, t->verify_name);
    if (session)
        wolfSSL_set_session(c->ssl, session);
    int ret = wolfSSL_connect(c->ssl);
    if (ret == WOLFSSL_SUCCESS)
        return TLS_IO_OK;
    tls_conn_error(c, ret, reason, len);
    return c->timed_out ? TLS_IO_TIMEOUT : c->peer_closed ? TLS_IO_CLOSED : TLS_IO_ERROR;
}

void tls_conn_save_session(struct tls_conn *c, void **session)
{
    WOLFSSL_SESSION *s = wolfSSL_get1_session(c->ssl);
    if (!s)
        return;
    tls_session_free(*session);
    *session = s;
}

void tls_session_free(void *session)
{
    if (session)
        wolfSSL_SESSION_free(session);
}

static enum tls_io classify(struct tls_conn *c, int ret)
{
    int e = wolfSSL_get_error(c->ssl, ret);
    if (c->peer_closed && e == WOLFSSL_ERROR_WANT_READ)
        return TLS_IO_CLOSED;
    if (e == WOLFSSL_ERROR_WANT_READ)
        return TLS_IO_WANT_READ;
    if (e == WOLFSSL_ERROR_WANT_WRITE)
        return TLS_IO_WANT_WRITE;
    if (c->timed_out)
        return TLS_IO_TIMEOUT;
    if (e == WOLFSSL_ERROR_ZERO_RETURN || c->peer_closed || e == SOCKET_PEER_CLOSED_E)
        return TLS_IO_CLOSED;
    return TLS_IO_ERROR;
}

enum tls_io tls_conn_read(struct tls_conn *c, void *buf, size_t len, size_t *n)
{
    int ret = wolfSSL_read(c->ssl, buf, (int)len);
    if (ret > 0) {
        *n = (size_t)ret;
        return TLS_IO_OK;
    }
    return classify(c, ret);
}

enum tls_io tls_conn_write(struct tls_conn *c, const void *buf, size_t len)
{
    int ret = wolfSSL_write(c->ssl, buf, (int)len);
    if (ret > 0)
        return TLS_IO_OK;
    return classify(c, ret);
}

bool tls_conn_pending(struct tls_conn *c)
{
    return wolfSSL_pending(c->ssl) > 0;
}

void tls_conn_close_notify(struct tls_conn *c)
{
    bool nb = c->nonblock;
    c->nonblock = false;
    if (c->deadline < clock_now_ms() + 1000)
        c->deadline = clock_now_ms() + 1000;
    wolfSSL_shutdown(c->ssl);
    c->nonblock = nb;
}

const char *tls_conn_version(struct tls_conn *c)
{
    return wolfSSL_get_version(c->ssl);
}

const char *tls_conn_cipher(struct tls_conn *c)
{
    const char *n = wolfSSL_get_cipher_name(c->ssl);
    return n ? n : "-";
}

const char *tls_conn_sni(struct tls_conn *c)
{
    const char *n = wolfSSL_get_servername(c->ssl, WOLFSSL_SNI_HOST_NAME);
    return n && *n ? n : "-";
}
