#include "tls.h"
#include "clock.h"

#include <dlfcn.h>
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
#include <wolfssl/openssl/ssl.h>
#include <wolfssl/ocsp.h>
#include <wolfssl/openssl/ocsp.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "clienthello.h"
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

const char *tls_acceleration(void)
{
    /* From the headers built against; the build links that library by
     * rpath (or it is the system's): tls_library_path() shows which file. */
    static const char *const on[] = {
#ifdef WOLFSSL_AESNI
        "AES-NI",
#endif
#ifdef USE_INTEL_SPEEDUP
        "Intel AVX/AVX2 (USE_INTEL_SPEEDUP)",
#endif
#if defined(WOLFSSL_SP_X86_64_ASM) || defined(WOLFSSL_SP_ASM)
        "SP math x86_64 asm",
#endif
        NULL,
    };
    static char buf[160];
    size_t off = 0;
    for (size_t i = 0; on[i]; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? ", " : "", on[i]);
    if (!off)
        snprintf(buf, sizeof buf, "none (portable C; `make fast` builds an optimised wolfSSL)");
    return buf;
}

const char *tls_library_path(void)
{
    Dl_info info;
    if (dladdr((void *)wolfSSL_Init, &info) && info.dli_fname)
        return info.dli_fname;
    return "(unknown)";
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
        if (c->roff < c->rlen) {        /* read ahead (first, the ClientHello) */
            size_t n = c->rlen - c->roff;
            if (n > (size_t)sz)
                n = (size_t)sz;
            memcpy(buf, c->rbuf + c->roff, n);
            c->roff += n;
            return (int)n;
        }
        ssize_t n = c->rbuf ? recv(c->fd, c->rbuf, c->rcap, 0) : recv(c->fd, buf, (size_t)sz, 0);
        if (n > 0 && c->rbuf) {
            c->rlen = (size_t)n;
            c->roff = 0;
            c->drained = (size_t)n < c->rcap;   /* less than asked: nothing more yet */
            continue;
        }
        c->drained = c->rbuf && n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
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

/* c's WOLFSSL on ctx, its I/O going through c. */
static int new_ssl(struct tls_conn *c, WOLFSSL_CTX *ctx)
{
    if (!(c->ssl = wolfSSL_new(ctx)))
        return -1;
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    return 0;
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
 * Sessions and tickets are bound to their frontend (its scope): a session
 * made where no client certificate was asked for must not resume where one
 * is required. The cache key is SHA-256(scope || session ID).
 */
static const uint8_t *conn_scope(WOLFSSL *ssl);

static void scoped_id(WOLFSSL *ssl, const unsigned char *id, unsigned idlen,
                      uint8_t out[SESSCACHE_ID_MAX])
{
    uint8_t in[TICKET_SCOPE_LEN + 256], digest[WC_SHA256_DIGEST_SIZE];
    const uint8_t *scope = conn_scope(ssl);
    if (idlen > 256)
        idlen = 256;
    if (scope)
        memcpy(in, scope, TICKET_SCOPE_LEN);
    else
        memset(in, 0, TICKET_SCOPE_LEN);
    memcpy(in + TICKET_SCOPE_LEN, id, idlen);
    wc_Sha256Hash(in, TICKET_SCOPE_LEN + idlen, digest);
    memcpy(out, digest, SESSCACHE_ID_MAX);
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
    uint8_t key[SESSCACHE_ID_MAX];
    if (wolfSSL_version(ssl) == TLS1_3_VERSION || idlen == 0)
        return 0;
    scoped_id(ssl, id, idlen, key);
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
    switch (sesscache_store(resumption.cache, key, sizeof key, buf, (size_t)sz, clock_now_ms())) {
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
    uint8_t key[SESSCACHE_ID_MAX];
    *copy = 0;
    /* TLS 1.3 asks by the ticket's ID on every resumption; its tickets
     * carry the session themselves. */
    if (wolfSSL_version(ssl) == TLS1_3_VERSION || len <= 0)
        return NULL;
    scoped_id(ssl, id, (unsigned)len, key);
    size_t n = sesscache_lookup(resumption.cache, key, sizeof key, buf, sizeof buf, clock_now_ms());
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
        if (ticketkeys_encrypt(resumption.keys, conn_scope(ssl), name, iv, mac, ticket,
                               (size_t)len) < 0)
            return WOLFSSL_TICKET_RET_FATAL;
        *outlen = len;
        return WOLFSSL_TICKET_RET_OK;
    }
    switch (ticketkeys_decrypt(resumption.keys, conn_scope(ssl), name, iv, mac, ticket,
                               (size_t)len, clock_real_ms())) {
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

/*
 * Sets exactly the suites of a ':'-list. wolfSSL 5.5.4's
 * wolfSSL_CTX_set_cipher_list() adds TLS13-AES128-CCM-8-SHA256 (an 8-byte
 * tag) to a list that names TLS 1.3 suites; the byte form does not.
 */
/* The bytes of a suite by its IANA name ("TLS_AES_128_GCM_SHA256"). */
static int iana_suite(const char *name, unsigned char out[2])
{
    static const unsigned char first[] = { 0x13, 0xc0, 0xcc };     /* TLS 1.3, ECC, ChaCha */
    for (size_t i = 0; i < sizeof first; i++)
        for (int b = 0; b < 256; b++) {
            const char *n = wolfSSL_get_cipher_name_iana_from_suite(first[i], (unsigned char)b);
            if (n && strcmp(n, name) == 0) {
                out[0] = first[i];
                out[1] = (unsigned char)b;
                return 0;
            }
        }
    return -1;
}

static int set_exact_suites(WOLFSSL_CTX *ctx, const char *list)
{
    unsigned char bytes[2 * 64];
    int n = 0, flags;
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t && n < (int)sizeof bytes;
         t = strtok_r(NULL, ":", &save))
        if (wolfSSL_get_cipher_suite_from_name(t, &bytes[n], &bytes[n + 1], &flags) == 0 ||
            iana_suite(t, &bytes[n]) == 0)
            n += 2;
    free(copy);
    return n > 0 && wolfSSL_CTX_set_cipher_list_bytes(ctx, bytes, n) == WOLFSSL_SUCCESS ? 0 : -1;
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
    /* set_groups orders the TLS 1.3 key shares; the TLS 1.2 ECDHE curve is
     * chosen from the client's list among the curves not disabled, and
     * only set1_curves_list disables the others. */
    return n > 0 && wolfSSL_CTX_set_groups(ctx, ids, n) == WOLFSSL_SUCCESS &&
           wolfSSL_CTX_set1_curves_list(ctx, list) == WOLFSSL_SUCCESS ? 0 : -1;
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
    if (set_exact_suites(ctx, list) < 0)
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
    if (fe->ncerts == 0)
        return ctx_fail(NULL, err, errlen, "%s: frontend '%s' has no certificate", fe->where,
                        fe->name);
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
        set_exact_suites(ctx, CONFIG_DEFAULT_CIPHERSUITES ":" CONFIG_DEFAULT_CIPHERS) < 0)
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

/* ---- frontends: certificates by SNI, ALPN, client certificates, OCSP ---- */

struct tls_cert {
    WOLFSSL_CTX *ctx;
    const struct cert_conf *conf;
    bool ecdsa;                 /* not RSA: served to clients that can verify it */
    char key_alg[16];           /* "EC256", "RSA2048" */
    char sig_alg[32];           /* "ecdsa-with-SHA256" */
    unsigned char *ocsp;        /* the DER response to staple; NULL: none */
    int ocsp_len;
    int64_t ocsp_next;          /* its nextUpdate, ms since the epoch; 0: none */
    int64_t ocsp_warned;        /* when this worker last said it went stale */
};

/* A name and the certificates that carry it (indices; -1: none). */
struct tls_name {
    char *name;
    int ecdsa, rsa;
};

struct tls_frontend {
    const struct frontend_conf *conf;
    struct tls_cert *certs;
    size_t ncerts;
    struct tls_name *names;     /* sorted by name */
    size_t nnames;
    struct tls_name def;        /* for clients without SNI or an unknown name */
    bool allow12, allow13;
    uint8_t scope[TICKET_SCOPE_LEN];
    bool stapling;              /* some certificate staples OCSP */
    WOLFSSL_CERT_MANAGER *client_cm;   /* see verify_cb() */
};

static const uint8_t *conn_scope(WOLFSSL *ssl)
{
    struct tls_conn *c = wolfSSL_GetIOReadCtx(ssl);
    return c && c->fe ? c->fe->scope : NULL;
}

/* ALPN: the first of the frontend's protocols the client offers. */
static int alpn_select_cb(WOLFSSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct tls_frontend *f = arg;
    (void)ssl;
    for (size_t i = 0; i < f->conf->nalpn; i++) {
        const char *p = f->conf->alpn[i];
        size_t n = strlen(p);
        for (unsigned int o = 0; o < inlen;) {
            unsigned int l = in[o];
            if (o + 1 + l > inlen)
                break;
            if (l == n && memcmp(in + o + 1, p, n) == 0) {
                *out = (const unsigned char *)p;
                *outlen = (unsigned char)n;
                return SSL_TLSEXT_ERR_OK;
            }
            o += 1 + l;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;       /* no protocol in common: go on without ALPN */
}

/*
 * With OCSP stapling, wolfSSL needs the server certificate's issuer among
 * the context's CAs, and those CAs also verify client certificates. So on
 * a frontend that verifies clients and staples, a client certificate must
 * also verify against client_ca alone (and its CRL): this check runs on
 * the leaf after wolfSSL's own chain verification.
 */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    if (!preverify)
        return 0;
    if (wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0)
        return 1;
    WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(
        store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls_conn *c = ssl ? wolfSSL_GetIOReadCtx(ssl) : NULL;
    if (!c || !c->fe || !c->fe->client_cm)
        return 1;
    WOLFSSL_X509 *x = wolfSSL_X509_STORE_CTX_get_current_cert(store);
    int len = 0;
    const unsigned char *der = x ? wolfSSL_X509_get_der(x, &len) : NULL;
    if (!der)           /* no certificate sent: verify_client decides */
        return 1;
    if ( wolfSSL_CertManagerVerifyBuffer(c->fe->client_cm, der, len,
                                                WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS) {
        c->verify_failed = "the client certificate is not issued by a client_ca certificate "
                           "(or is revoked by client_crl)";
        wolfSSL_X509_STORE_CTX_set_error(store, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
        return 0;
    }
    return 1;
}

static int status_cb(WOLFSSL *ssl, void *arg)
{
    struct tls_conn *c = wolfSSL_GetIOReadCtx(ssl);
    struct tls_cert *cert = c ? (struct tls_cert *)c->cert : NULL;
    (void)arg;
    if (!cert || !cert->ocsp)
        return SSL_TLSEXT_ERR_NOACK;
    int64_t now = clock_real_ms();
    if (cert->ocsp_next && now >= cert->ocsp_next) {
        if (now - cert->ocsp_warned >= 60000) {
            cert->ocsp_warned = now;
            log_warning("%s: frontend '%s': OCSP response '%s' for certificate '%s' is stale "
                        "(its nextUpdate has passed): not stapled; replace the file and reload",
                        cert->conf->where, c->fe->conf->name, cert->conf->ocsp_file,
                        cert->conf->cert);
        }
        return SSL_TLSEXT_ERR_NOACK;
    }
    unsigned char *copy = malloc((size_t)cert->ocsp_len);   /* wolfSSL frees it */
    if (!copy)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, cert->ocsp, (size_t)cert->ocsp_len);
    wolfSSL_set_tlsext_status_ocsp_resp(ssl, copy, cert->ocsp_len);
    return SSL_TLSEXT_ERR_OK;
}

/* The certificates of a PEM chain file, leaf first (at most max). */
static int read_chain(const char *path, WOLFSSL_X509 **out, int max)
{
    WOLFSSL_BIO *b = wolfSSL_BIO_new_file(path, "r");
    int n = 0;
    while (b && n < max && (out[n] = wolfSSL_PEM_read_bio_X509(b, NULL, NULL, NULL)))
        n++;
    wolfSSL_BIO_free(b);
    wolfSSL_ERR_clear_error();
    return n;
}

static int64_t asn1_ms(const WOLFSSL_ASN1_TIME *t)
{
    struct tm tm;
    if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS)
        return 0;
    return (int64_t)timegm(&tm) * 1000;
}

struct ocsp_bytes {
    unsigned char *p;
    int len;
};

static int ocsp_io_cb(void *ctx, const char *url, int urlsz, unsigned char *req, int reqsz,
                      unsigned char **resp)
{
    struct ocsp_bytes *b = ctx;
    (void)url, (void)urlsz, (void)req, (void)reqsz;
    *resp = b->p;
    return b->len;
}

static void ocsp_free_cb(void *ctx, unsigned char *resp)
{
    (void)ctx, (void)resp;
}

/*
 * Is the response one to staple for leaf? Checked as wolfSSL will check it
 * when stapling (a certificate manager with the issuer, the response fed
 * through its OCSP fetch callback), with the reason found by reading it.
 * Returns 0, or -1 with why.
 */
static int check_ocsp(struct tls_cert *c, WOLFSSL_X509 *leaf, WOLFSSL_X509 *issuer,
                      char *why, size_t whylen)
{
    const unsigned char *p = c->ocsp;
    OcspResponse *r = wolfSSL_d2i_OCSP_RESPONSE(NULL, &p, c->ocsp_len);
    WOLFSSL_OCSP_BASICRESP *bs = NULL;
    WOLFSSL_OCSP_CERTID *id = NULL;
    WOLFSSL_ASN1_TIME *thisupd = NULL, *nextupd = NULL;
    int status = -1, rc = -1;
    int64_t now = clock_real_ms();

    if (!r) {
        snprintf(why, whylen, "wolfSSL cannot decode it: damaged, not a DER OCSP response, or "
                 "outside its validity period (stale: nextUpdate has passed; or thisUpdate "
                 "is in the future)");
        goto out;
    }
    if (wolfSSL_OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(why, whylen, "the responder's status is '%s'",
                 wolfSSL_OCSP_response_status_str(wolfSSL_OCSP_response_status(r)));
        goto out;
    }
    bs = wolfSSL_OCSP_response_get1_basic(r);
    id = wolfSSL_OCSP_cert_to_id(NULL, leaf, issuer);
    if (!bs || !id || wolfSSL_OCSP_resp_find_status(bs, id, &status, NULL, NULL, &thisupd,
                                                     &nextupd) != WOLFSSL_SUCCESS) {
        snprintf(why, whylen, "it is not about this certificate (serial or issuer differ)");
        goto out;
    }
    if (status != V_OCSP_CERTSTATUS_GOOD) {
        snprintf(why, whylen, "it says the certificate is %s",
                 wolfSSL_OCSP_cert_status_str(status));
        goto out;
    }
    c->ocsp_next = nextupd && nextupd->length ? asn1_ms(nextupd) : 0;
    if (c->ocsp_next && c->ocsp_next <= now) {
        snprintf(why, whylen, "it is stale (nextUpdate has passed)");
        goto out;
    }
    if (thisupd && asn1_ms(thisupd) > now + 300000) {
        snprintf(why, whylen, "it is not valid yet (thisUpdate is in the future)");
        goto out;
    }
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    struct ocsp_bytes b = { c->ocsp, c->ocsp_len };
    int len = 0, ilen = 0;
    const unsigned char *der = wolfSSL_X509_get_der(leaf, &len);
    const unsigned char *ider = wolfSSL_X509_get_der(issuer, &ilen);
    int v = cm && der && ider &&
            wolfSSL_CertManagerLoadCABuffer(cm, ider, ilen, WOLFSSL_FILETYPE_ASN1) ==
                WOLFSSL_SUCCESS &&
            wolfSSL_CertManagerEnableOCSP(cm, WOLFSSL_OCSP_URL_OVERRIDE) == WOLFSSL_SUCCESS &&
            wolfSSL_CertManagerSetOCSPOverrideURL(cm, "http://127.0.0.1/") == WOLFSSL_SUCCESS &&
            wolfSSL_CertManagerSetOCSP_Cb(cm, ocsp_io_cb, ocsp_free_cb, &b) == WOLFSSL_SUCCESS
        ? wolfSSL_CertManagerCheckOCSP(cm, (unsigned char *)der, len) : -1;
    if (cm)
        wolfSSL_CertManagerFree(cm);
    if (v != WOLFSSL_SUCCESS) {
        snprintf(why, whylen, "its signature does not verify against the issuer in the chain "
                 "(signed by neither the issuer nor a responder it delegated to)");
        goto out;
    }
    rc = 0;
out:
    wolfSSL_OCSP_CERTID_free(id);
    wolfSSL_OCSP_BASICRESP_free(bs);
    wolfSSL_OCSP_RESPONSE_free(r);
    wolfSSL_ERR_clear_error();
    return rc;
}

/* Reads cc->ocsp_file; staples it if it checks out, else says why. */
static void setup_ocsp(struct tls_frontend *f, struct tls_cert *c, WOLFSSL_X509 **chain, int n)
{
    const struct cert_conf *cc = c->conf;
    char why[256];
    FILE *fp = fopen(cc->ocsp_file, "rb");
    c->ocsp = malloc(65536);
    c->ocsp_len = fp && c->ocsp ? (int)fread(c->ocsp, 1, 65536, fp) : -1;
    if (fp)
        fclose(fp);
    if (c->ocsp_len <= 0 || c->ocsp_len == 65536)
        snprintf(why, sizeof why, "cannot read it (or it is empty or over 64 KiB)");
    else if (n < 2)
        snprintf(why, sizeof why, "the chain file has no issuer certificate after the leaf "
                 "(needed to check the response)");
    else if (check_ocsp(c, chain[0], chain[1], why, sizeof why) == 0) {
        int ilen = 0;
        const unsigned char *ider = wolfSSL_X509_get_der(chain[1], &ilen);
        if (ider && wolfSSL_CTX_load_verify_buffer(c->ctx, ider, ilen, WOLFSSL_FILETYPE_ASN1) ==
                        WOLFSSL_SUCCESS &&
            wolfSSL_CTX_EnableOCSPStapling(c->ctx) == WOLFSSL_SUCCESS &&
            wolfSSL_CTX_set_tlsext_status_cb(c->ctx, status_cb) == WOLFSSL_SUCCESS) {
            f->stapling = true;
            return;
        }
        snprintf(why, sizeof why, "wolfSSL cannot enable stapling");
    }
    log_warning("%s: frontend '%s': OCSP response '%s' for certificate '%s' is not stapled: %s",
                cc->where, f->conf->name, cc->ocsp_file, cc->cert, why);
    free(c->ocsp);
    c->ocsp = NULL;
    c->ocsp_len = 0;
}

static int add_name(struct tls_frontend *f, size_t *cap, const char *name, size_t cert)
{
    char low[256];
    size_t i;
    for (i = 0; name[i] && i + 1 < sizeof low; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    low[i] = '\0';
    if (!*low)
        return 0;
    for (i = 0; i < f->nnames && strcmp(f->names[i].name, low); i++)
        ;
    if (i == f->nnames) {
        if (f->nnames == *cap)
            f->names = realloc(f->names, (*cap = *cap ? *cap * 2 : 16) * sizeof *f->names);
        f->names[f->nnames++] = (struct tls_name){ strdup(low), -1, -1 };
    }
    int *slot = f->certs[cert].ecdsa ? &f->names[i].ecdsa : &f->names[i].rsa;
    if (*slot < 0)
        *slot = (int)cert;
    else if ((size_t)*slot != cert)
        log_info("%s: frontend '%s': name '%s' is also in '%s', which comes first and is used",
                 f->certs[cert].conf->where, f->conf->name, low,
                 f->certs[*slot].conf->cert);
    return 1;
}

/* The SAN DNS names and the CN of x, for certificate index cert. */
static void add_names(struct tls_frontend *f, size_t *cap, WOLFSSL_X509 *x, size_t cert)
{
    char cn[256];
    char *alt;
    while ((alt = wolfSSL_X509_get_next_altname(x)))
        add_name(f, cap, alt, cert);
    if (wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn,
                                          sizeof cn) > 0)
        add_name(f, cap, cn, cert);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct tls_name *)a)->name, ((const struct tls_name *)b)->name);
}

static const struct tls_name *find_name(const struct tls_frontend *f, const char *name)
{
    struct tls_name key = { (char *)name, 0, 0 };
    return f->nnames ? bsearch(&key, f->names, f->nnames, sizeof key, by_name) : NULL;
}

/* Exact name first, then the wildcard for its first label. */
static const struct tls_name *lookup_sni(const struct tls_frontend *f, const char *sni)
{
    const struct tls_name *n = find_name(f, sni);
    const char *dot = strchr(sni, '.');
    char wild[260];
    if (n || !dot || dot == sni || !strchr(dot + 1, '.'))
        return n;
    snprintf(wild, sizeof wild, "*%s", dot);
    return find_name(f, wild);
}

static int setup_client_auth(struct tls_frontend *f, WOLFSSL_CTX *ctx, char *err, size_t errlen)
{
    const struct frontend_conf *fe = f->conf;
    char why[256];
    if (fe->verify_client == VERIFY_CLIENT_NONE)
        return 0;
    if (wolfSSL_CTX_load_verify_locations(ctx, fe->client_ca, NULL) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s: frontend '%s': client_ca '%s': no PEM CA certificate: %s",
                 fe->where, fe->name, fe->client_ca, last_error(why, sizeof why));
        return -1;
    }
    if (fe->client_crl &&
        (wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS ||
         wolfSSL_CTX_LoadCRLFile(ctx, fe->client_crl, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)) {
        snprintf(err, errlen, "%s: frontend '%s': client_crl '%s': no PEM CRL signed by a "
                 "client_ca certificate: %s", fe->where, fe->name, fe->client_crl,
                 last_error(why, sizeof why));
        return -1;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER |
                                (fe->verify_client == VERIFY_CLIENT_REQUIRED
                                     ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), verify_cb);
    wolfSSL_CTX_set_verify_depth(ctx, fe->verify_depth);
    /* Else a TLS 1.2 CertificateRequest from an ECDSA server asks for
     * ECDSA client certificates only. */
    wolfSSL_CTX_set1_sigalgs_list(ctx, "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:"
                                       "RSA-PSS+SHA256:RSA-PSS+SHA384:RSA-PSS+SHA512:"
                                       "RSA+SHA256:RSA+SHA384:RSA+SHA512");
    return 0;
}

static int make_client_cm(struct tls_frontend *f, char *err, size_t errlen)
{
    const struct frontend_conf *fe = f->conf;
    f->client_cm = wolfSSL_CertManagerNew();
    if (!f->client_cm ||
        wolfSSL_CertManagerLoadCA(f->client_cm, fe->client_ca, NULL) != WOLFSSL_SUCCESS ||
        (fe->client_crl &&
         (wolfSSL_CertManagerEnableCRL(f->client_cm, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS ||
          wolfSSL_CertManagerLoadCRLFile(f->client_cm, fe->client_crl, WOLFSSL_FILETYPE_PEM) !=
              WOLFSSL_SUCCESS))) {
        snprintf(err, errlen, "%s: frontend '%s': cannot load client_ca/client_crl again",
                 fe->where, fe->name);
        return -1;
    }
    return 0;
}

static void cert_algs(struct tls_cert *c, WOLFSSL_X509 *x)
{
    WOLFSSL_EVP_PKEY *k = wolfSSL_X509_get_pubkey(x);
    int bits = k ? wolfSSL_EVP_PKEY_bits(k) : 0;
    c->ecdsa = !(k && wolfSSL_EVP_PKEY_base_id(k) == EVP_PKEY_RSA);
    snprintf(c->key_alg, sizeof c->key_alg, "%s%d", c->ecdsa ? "EC" : "RSA", bits);
    const char *sn = wolfSSL_OBJ_nid2sn(wolfSSL_X509_get_signature_nid(x));
    snprintf(c->sig_alg, sizeof c->sig_alg, "%s", sn ? sn : "");
    wolfSSL_EVP_PKEY_free(k);
}

struct tls_frontend *tls_frontend_new(const struct tls_conf *tc, const struct frontend_conf *fe,
                                      char *err, size_t errlen)
{
    struct tls_frontend *f = calloc(1, sizeof *f);
    size_t cap = 0;
    unsigned char digest[WC_SHA256_DIGEST_SIZE];
    char scope[1024];

    f->conf = fe;
    f->allow12 = tc->min_version <= TLS1_2_VERSION;
    f->allow13 = tc->max_version >= TLS1_3_VERSION;
    snprintf(scope, sizeof scope, "tlsoffd frontend\n%s\n%d\n%s\n%s", fe->name,
             (int)fe->verify_client, fe->client_ca ? fe->client_ca : "",
             fe->client_crl ? fe->client_crl : "");
    wc_Sha256Hash((const unsigned char *)scope, (word32)strlen(scope), digest);
    memcpy(f->scope, digest, sizeof f->scope);
    f->certs = calloc(fe->ncerts, sizeof *f->certs);
    for (size_t i = 0; i < fe->ncerts; i++) {
        struct tls_cert *c = &f->certs[i];
        WOLFSSL_X509 *chain[2] = { NULL, NULL };
        c->conf = &fe->certs[i];
        if (!(c->ctx = policy_ctx(tc, err, errlen)) ||
            !(c->ctx = load_cert(c->ctx, c->conf, err, errlen)) ||
            setup_client_auth(f, c->ctx, err, errlen) < 0)
            goto fail;
        int n = read_chain(c->conf->cert, chain, 2);
        if (n < 1) {
            snprintf(err, errlen, "%s: certificate '%s': cannot read it", c->conf->where,
                     c->conf->cert);
            goto fail;
        }
        cert_algs(c, chain[0]);
        add_names(f, &cap, chain[0], i);
        if (fe->nalpn)
            wolfSSL_CTX_set_alpn_select_cb(c->ctx, alpn_select_cb, f);
        if (c->conf->ocsp_file)
            setup_ocsp(f, c, chain, n);
        wolfSSL_X509_free(chain[0]);
        wolfSSL_X509_free(chain[1]);
    }
    if (f->stapling && fe->verify_client != VERIFY_CLIENT_NONE &&
        make_client_cm(f, err, errlen) < 0)
        goto fail;
    if (f->nnames)
        qsort(f->names, f->nnames, sizeof *f->names, by_name);
    /* The default: the first certificate, and its other-key twin if the
     * two share a name. */
    f->def = (struct tls_name){ NULL, f->certs[0].ecdsa ? 0 : -1, f->certs[0].ecdsa ? -1 : 0 };
    for (size_t i = 0; i < f->nnames; i++) {
        const struct tls_name *m = &f->names[i];
        if ((m->ecdsa == 0 || m->rsa == 0) && m->ecdsa >= 0 && m->rsa >= 0) {
            f->def = (struct tls_name){ NULL, m->ecdsa, m->rsa };
            break;
        }
    }
    return f;
fail:
    tls_frontend_free(f);
    return NULL;
}

void tls_frontend_free(struct tls_frontend *f)
{
    if (!f)
        return;
    for (size_t i = 0; f->certs && i < f->conf->ncerts; i++) {
        tls_ctx_free(f->certs[i].ctx);
        free(f->certs[i].ocsp);
    }
    for (size_t i = 0; i < f->nnames; i++)
        free(f->names[i].name);
    if (f->client_cm)
        wolfSSL_CertManagerFree(f->client_cm);
    free(f->names);
    free(f->certs);
    free(f);
}

size_t tls_frontend_certs(const struct tls_frontend *f, size_t *stapling)
{
    *stapling = 0;
    for (size_t i = 0; i < f->conf->ncerts; i++)
        *stapling += f->certs[i].ocsp != NULL;
    return f->conf->ncerts;
}

/* Reads the first record (the ClientHello) into c's read-ahead buffer,
 * bounded by the deadline. Returns > 0 if it is one, 0 if it is not (what
 * came stays in the buffer for wolfSSL to refuse), or -1 (c->timed_out,
 * c->peer_closed or c->sys_errno). */
static long read_hello(struct tls_conn *c, struct client_hello *ch)
{
    size_t have = 0;
    uint8_t *buf = c->rbuf;
    for (;;) {
        long need = client_hello_parse(buf, have, ch);
        if (need <= 0) {
            c->rlen = have;
            c->roff = 0;
            return need == 0 ? (long)have : 0;
        }
        /* All that came (the rest of the flight too), up to the buffer. */
        ssize_t n = recv(c->fd, buf + have, c->rcap - have, 0);
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        if (n == 0) {
            c->peer_closed = true;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            c->sys_errno = errno;
            return -1;
        }
        if (wait_fd(c, POLLIN) < 0)
            return -1;
    }
}

enum tls_io tls_frontend_accept(struct tls_frontend *f, struct tls_conn *c, int fd,
                                uint8_t *rbuf, size_t cap, double timeout, char *reason,
                                size_t len)
{
    struct client_hello ch;
    const struct tls_name *n = NULL;

    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->fe = f;
    c->rbuf = rbuf;
    c->rcap = cap;
    c->deadline = clock_now_ms() + (int64_t)(timeout * 1000);
    long hl = read_hello(c, &ch);
    if (hl < 0) {
        count_handshake(c, false);
        snprintf(reason, len, "%s", c->timed_out ? "timed out waiting for the ClientHello"
                                    : c->peer_closed ? "connection closed by peer"
                                    : strerror(c->sys_errno));
        return c->timed_out ? TLS_IO_TIMEOUT : c->peer_closed ? TLS_IO_CLOSED : TLS_IO_ERROR;
    }
    if (hl > 0) {
        snprintf(c->sni, sizeof c->sni, "%s", ch.sni);
        if (*ch.sni)
            n = lookup_sni(f, ch.sni);
    }
    if (!n && f->conf->strict_sni && hl > 0) {
        static const uint8_t alert[] = { 21, 3, 3, 0, 2, 2, 112 };  /* unrecognized_name */
        ssize_t w = send(fd, alert, sizeof alert, MSG_NOSIGNAL);
        (void)w;
        count_handshake(c, false);
        if (*ch.sni)
            snprintf(reason, len, "no certificate for server name '%s' (strict_sni)", ch.sni);
        else
            snprintf(reason, len, "%s (strict_sni)", ch.sni_invalid ? "an invalid server name"
                                                     : "no server name (SNI) sent");
        return TLS_IO_ERROR;
    }
    if (!n)
        n = &f->def;
    /* A ClientHello split over records was not read to its end: RSA,
     * which every client can verify, if there is a choice. */
    bool ecdsa = hl > 0 && ch.complete && client_hello_ecdsa(&ch, f->allow12, f->allow13);
    int pick = n->ecdsa >= 0 && (n->rsa < 0 || ecdsa) ? n->ecdsa : n->rsa;
    c->cert = &f->certs[pick];
    if (new_ssl(c, c->cert->ctx) < 0) {
        snprintf(reason, len, "cannot set up a TLS connection: out of memory");
        return TLS_IO_ERROR;
    }
    enum tls_io r = tls_conn_accept(c, timeout, reason, len);
    if (r == TLS_IO_ERROR && c->verify_failed) {
        snprintf(reason, len, "%s", c->verify_failed);
    } else if (r == TLS_IO_ERROR && f->conf->verify_client == VERIFY_CLIENT_REQUIRED) {
        int e = wolfSSL_get_error(c->ssl, -1);
        WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(c->ssl);
        if (!x && (e == NO_PEER_CERT || e == VERIFY_CERT_ERROR))
            snprintf(reason, len, "the client sent no certificate (verify_client = required)");
        wolfSSL_X509_free(x);
    }
    if (r == TLS_IO_OK) {
        char *proto = NULL;
        unsigned short plen = 0;
        if (wolfSSL_ALPN_GetProtocol(c->ssl, &proto, &plen) == WOLFSSL_SUCCESS && proto &&
            plen < sizeof c->alpn) {
            memcpy(c->alpn, proto, plen);
            c->alpn[plen] = '\0';
        }
        wolfSSL_ERR_clear_error();
    }
    return r;
}

/* ---- connections ---- */

int tls_conn_init(struct tls_conn *c, WOLFSSL_CTX *ctx, int fd)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return new_ssl(c, ctx);
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
    if (!c->fe)                 /* a frontend's deadline runs from the first byte wait */
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
    return c->roff < c->rlen || wolfSSL_pending(c->ssl) > 0;
}

void tls_conn_readahead(struct tls_conn *c, uint8_t *buf, size_t cap)
{
    c->rbuf = buf;
    c->rcap = cap;
    c->rlen = c->roff = 0;
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
    if (c->fe)
        return *c->sni ? c->sni : "-";
    const char *n = wolfSSL_get_servername(c->ssl, WOLFSSL_SNI_HOST_NAME);
    return n && *n ? n : "-";
}

const char *tls_conn_alpn(struct tls_conn *c)
{
    return *c->alpn ? c->alpn : NULL;
}

const char *tls_conn_key_alg(struct tls_conn *c)
{
    return c->cert && *c->cert->key_alg ? c->cert->key_alg : NULL;
}

const char *tls_conn_sig_alg(struct tls_conn *c)
{
    return c->cert && *c->cert->sig_alg ? c->cert->sig_alg : NULL;
}

void tls_conn_peer(struct tls_conn *c, struct tls_peer *p)
{
    memset(p, 0, sizeof *p);
    if (!c->ssl || !c->fe || c->fe->conf->verify_client == VERIFY_CLIENT_NONE)
        return;
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(c->ssl);
    bool resumed = wolfSSL_session_reused(c->ssl);
    if (x) {
        WOLFSSL_X509_NAME *s = wolfSSL_X509_get_subject_name(x);
        p->presented = !resumed;
        p->session = true;
        if (s) {
            char *one = wolfSSL_X509_NAME_oneline(s, p->subject, sizeof p->subject);
            (void)one;
            if (wolfSSL_X509_NAME_get_text_by_NID(s, NID_commonName, p->cn, sizeof p->cn) < 0)
                p->cn[0] = '\0';
        }
        wolfSSL_X509_free(x);
    } else if (resumed && c->fe->conf->verify_client == VERIFY_CLIENT_REQUIRED) {
        p->session = true;      /* the session could only be made with one */
        snprintf(p->subject, sizeof p->subject, "(resumed)");
    }
    /* Logged between quotes: no quote, backslash or control character. */
    for (char *q = p->subject; *q; q++)
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
            *q = '?';
    wolfSSL_ERR_clear_error();
}
