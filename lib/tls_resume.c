/*
 * tls_resume — resumption shared by every worker: the session-ID cache
 * (sesscache.h) and the ticket key ring (ticketkeys.h) behind wolfSSL's
 * callbacks, sessions and tickets bound to their frontend's scope, and
 * the count of handshakes by how they went.
 */
#include "tls_int.h"
#include "clock.h"

#include <stdio.h>
#include <string.h>

#include <wolfssl/wolfcrypt/sha256.h>

#include "log.h"
#include "sesscache.h"
#include "stats.h"
#include "ticketkeys.h"

#define RESUME_EX_DATA      0           /* the context's ex_data slot of its tls_resume */
#define TICKET_HINT_MAX     604800      /* seconds: a ticket lives at most 7 days (RFC 8446) */
#define SCOPE_TEXT_MAX      1024        /* the text a frontend's scope is hashed from */
#define SESSION_ID_MAX      256         /* bytes of a session ID that go into its key */

void tls_resume_init(struct tls_resume *rs, const struct tls_resumption *r,
                     const struct frontend_conf *fe)
{
    unsigned char digest[WC_SHA256_DIGEST_SIZE];
    char text[SCOPE_TEXT_MAX];
    memset(rs, 0, sizeof *rs);
    if (r)
        rs->conf = *r;
    snprintf(text, sizeof text, "tlsoffd frontend\n%s\n%d\n%s\n%s", fe->name,
             (int)fe->verify_client, fe->client_ca ? fe->client_ca : "",
             fe->client_crl ? fe->client_crl : "");
    wc_Sha256Hash((const unsigned char *)text, (word32)strlen(text), digest);
    memcpy(rs->scope, digest, sizeof rs->scope);
}

const struct tls_resume *tls_resume_of(WOLFSSL *ssl)
{
    return ssl ? wolfSSL_CTX_get_ex_data(wolfSSL_get_SSL_CTX(ssl), RESUME_EX_DATA) : NULL;
}

/*
 * Sessions and tickets are bound to their frontend (its scope): a session
 * made where no client certificate was asked for must not resume where one
 * is required. The cache key is SHA-256(scope || session ID).
 */
static void scoped_id(const struct tls_resume *rs, const unsigned char *id, unsigned idlen,
                      uint8_t out[SESSCACHE_ID_MAX])
{
    uint8_t in[TICKET_SCOPE_LEN + SESSION_ID_MAX], digest[WC_SHA256_DIGEST_SIZE];
    if (idlen > SESSION_ID_MAX)
        idlen = SESSION_ID_MAX;
    memcpy(in, rs->scope, TICKET_SCOPE_LEN);
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
    const struct tls_resume *rs = tls_resume_of(ssl);
    unsigned int idlen = 0;
    const unsigned char *id = wolfSSL_SESSION_get_id(sess, &idlen);
    unsigned char buf[SESSCACHE_SLOT_SIZE];
    uint8_t key[SESSCACHE_ID_MAX];
    if (wolfSSL_version(ssl) == TLS1_3_VERSION || idlen == 0)
        return 0;
    scoped_id(rs, id, idlen, key);
    int sz = wolfSSL_i2d_SSL_SESSION(sess, NULL);
    if (sz <= 0 || (size_t)sz > sesscache_max_data()) {
        stats_inc(rs->stats, ST_CACHE_OVERSIZE);
        log_debug("session cache: a %d-byte session does not fit a slot (%zu bytes)", sz,
                  sesscache_max_data());
        return 0;
    }
    log_debug("session cache: storing a %d-byte session", sz);
    unsigned char *p = buf;
    wolfSSL_i2d_SSL_SESSION(sess, &p);      /* writes at p; does not advance it */
    switch (sesscache_store(rs->conf.cache, key, sizeof key, buf, (size_t)sz, clock_now_ms())) {
    case SESSCACHE_STORED_EVICTING:
        stats_inc(rs->stats, ST_CACHE_EVICT);
        /* fall through */
    case SESSCACHE_STORED:
        stats_inc(rs->stats, ST_CACHE_STORE);
        break;
    case SESSCACHE_OVERSIZE:
        stats_inc(rs->stats, ST_CACHE_OVERSIZE);
        break;
    case SESSCACHE_BADID:
        break;
    }
    return 0;
}

static WOLFSSL_SESSION *sess_get_cb(WOLFSSL *ssl, const unsigned char *id, int len, int *copy)
{
    const struct tls_resume *rs = tls_resume_of(ssl);
    unsigned char buf[SESSCACHE_SLOT_SIZE];
    uint8_t key[SESSCACHE_ID_MAX];
    *copy = 0;
    /* TLS 1.3 asks by the ticket's ID on every resumption; its tickets
     * carry the session themselves. */
    if (wolfSSL_version(ssl) == TLS1_3_VERSION || len <= 0)
        return NULL;
    scoped_id(rs, id, (unsigned)len, key);
    size_t n = sesscache_lookup(rs->conf.cache, key, sizeof key, buf, sizeof buf, clock_now_ms());
    if (n == 0) {
        stats_inc(rs->stats, ST_CACHE_MISS);
        return NULL;
    }
    const unsigned char *p = buf;
    WOLFSSL_SESSION *sess = wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)n);
    stats_inc(rs->stats, sess ? ST_CACHE_HIT : ST_CACHE_MISS);
    return sess;
}

/*
 * tlsoffd's trailer to wolfSSL's ticket plaintext: a magic and the time
 * (ms, CLOCK_REALTIME) of the full handshake that began the chain of
 * tickets. A TLS 1.3 resumption gets a new ticket with wolfSSL's own age
 * reset, so without it a client renewing in time would resume forever;
 * RFC 8446 section 4.6.1 caps that at 7 days.
 */
#define ORIGIN_MAGIC        0x746f6f31u     /* "too1" */
#define ORIGIN_LEN          12              /* wolfSSL leaves room for 32 */

static void put_origin(unsigned char *p, int64_t origin)
{
    uint64_t v = (uint64_t)origin;
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(ORIGIN_MAGIC >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        p[4 + i] = (unsigned char)(v >> (56 - 8 * i));
}

/* The origin, or -1 for a ticket without the trailer (an older tlsoffd). */
static int64_t get_origin(const unsigned char *p)
{
    uint32_t magic = 0;
    uint64_t v = 0;
    for (int i = 0; i < 4; i++)
        magic = magic << 8 | p[i];
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[4 + i];
    return magic == ORIGIN_MAGIC && (int64_t)v > 0 ? (int64_t)v : -1;
}

static int64_t max_age_ms(const struct tls_resume *rs)
{
    double a = rs->conf.ticket_max_age;
    return (int64_t)((a > 0 && a < TICKET_HINT_MAX ? a : TICKET_HINT_MAX) * CLOCK_MS_PER_S);
}

/* Seals a new ticket: a resumed connection's keeps its chain's origin. */
static int ticket_seal(WOLFSSL *ssl, const struct tls_resume *rs, struct tls_conn *conn,
                       unsigned char *name, unsigned char *iv, unsigned char *mac,
                       unsigned char *ticket, int len, int *outlen)
{
    bool chained = conn->ticket_origin > 0 && wolfSSL_session_reused(ssl);
    put_origin(ticket + len, chained ? conn->ticket_origin : clock_real_ms());
    if (ticketkeys_encrypt(rs->conf.keys, rs->scope, name, iv, mac, ticket,
                           (size_t)len + ORIGIN_LEN) < 0)
        return WOLFSSL_TICKET_RET_FATAL;
    *outlen = len + ORIGIN_LEN;
    return WOLFSSL_TICKET_RET_OK;
}

/* Opens a ticket into a copy, so that one refused for its age stays as it
 * came for TLS 1.3's next call; a WOLFSSL_TICKET_RET_. */
static int ticket_open(const struct tls_resume *rs, struct tls_conn *conn, unsigned char *name,
                       unsigned char *iv, unsigned char *mac, unsigned char *ticket, int len,
                       int *outlen)
{
    unsigned char plain[TICKET_MAX_PLAIN];
    int64_t now = clock_real_ms(), origin;
    enum ticket_dec d = TICKET_DEC_BAD;
    if (len > ORIGIN_LEN && (size_t)len <= sizeof plain) {
        memcpy(plain, ticket, (size_t)len);
        d = ticketkeys_decrypt(rs->conf.keys, rs->scope, name, iv, mac, plain, (size_t)len, now);
    }
    if (d != TICKET_DEC_CURRENT && d != TICKET_DEC_OLDER) {
        conn->ticket_failed = true;
        return WOLFSSL_TICKET_RET_REJECT;
    }
    origin = get_origin(plain + len - ORIGIN_LEN);
    if (origin < 0 || now - origin > max_age_ms(rs)) {
        memset(plain, 0, sizeof plain);
        return WOLFSSL_TICKET_RET_REJECT;       /* too old, or from before the trailer */
    }
    memcpy(ticket, plain, (size_t)len);
    memset(plain, 0, sizeof plain);
    conn->ticket_origin = origin;
    conn->ticket_ok = true;
    *outlen = len - ORIGIN_LEN;
    return d == TICKET_DEC_CURRENT ? WOLFSSL_TICKET_RET_OK : WOLFSSL_TICKET_RET_CREATE;
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
    const struct tls_resume *rs = tls_resume_of(ssl);
    struct tls_conn *conn = wolfSSL_GetIOReadCtx(ssl);
    (void)ctx;
    if (len <= 0)
        return WOLFSSL_TICKET_RET_REJECT;
    if (enc)
        return ticket_seal(ssl, rs, conn, name, iv, mac, ticket, len, outlen);
    return ticket_open(rs, conn, name, iv, mac, ticket, len, outlen);
}

void tls_resume_setup(WOLFSSL_CTX *ctx, const struct tls_resume *rs)
{
    static const struct tls_resumption none;
    const struct tls_resumption *r = rs ? &rs->conf : &none;
    double life = r->keys ? r->ticket_lifetime : r->cache_timeout;
    if (life < r->cache_timeout)
        life = r->cache_timeout;
    /* wolfSSL refuses TLS 1.3 tickets older than the session timeout. */
    wolfSSL_CTX_set_timeout(ctx, life < 1 ? 1 : (unsigned)life);
    /* The callbacks find rs through the context: contexts built for a
     * reload do not disturb the running ones. */
    wolfSSL_CTX_set_ex_data(ctx, RESUME_EX_DATA, (void *)rs);
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
        wolfSSL_CTX_set_TicketHint(ctx, (int)(r->ticket_lifetime > TICKET_HINT_MAX
                                              ? TICKET_HINT_MAX : r->ticket_lifetime));
    } else {
        wolfSSL_CTX_NoTicketTLSv12(ctx);
        wolfSSL_CTX_no_ticket_TLSv13(ctx);
    }
}

enum tls_resumed tls_conn_resumed(struct tls_conn *conn)
{
    if (!wolfSSL_session_reused(conn->ssl))
        return TLS_RESUMED_NO;
    if (wolfSSL_version(conn->ssl) == TLS1_3_VERSION || conn->ticket_ok)
        return TLS_RESUMED_TICKET;
    return TLS_RESUMED_ID;
}

const char *tls_resumed_name(enum tls_resumed r)
{
    return r == TLS_RESUMED_ID ? "id" : r == TLS_RESUMED_TICKET ? "ticket" : "no";
}

void tls_resume_count(const struct tls_resume *rs, struct tls_conn *conn, bool ok)
{
    struct stats_worker *w = rs ? rs->stats : NULL;
    stats_inc(w, ST_CONNECTIONS);
    if (conn->ticket_failed && !conn->ticket_ok)
        stats_inc(w, ST_TICKET_FAIL);
    if (!ok) {
        stats_inc(w, ST_HANDSHAKE_FAILED);
        return;
    }
    switch (tls_conn_resumed(conn)) {
    case TLS_RESUMED_NO:
        stats_inc(w, ST_FULL);
        break;
    case TLS_RESUMED_ID:
        stats_inc(w, ST_RESUMED_ID);
        break;
    case TLS_RESUMED_TICKET:
        stats_inc(w, wolfSSL_version(conn->ssl) == TLS1_3_VERSION ? ST_RESUMED_TICKET13
                                                                  : ST_RESUMED_TICKET12);
        break;
    }
}
