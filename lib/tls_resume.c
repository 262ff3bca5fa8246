/*
 * tls_resume — resumption shared by every worker: the session-ID cache
 * (sesscache.h) and the ticket key ring (ticketkeys.h) behind wolfSSL's
 * callbacks; sessions and tickets bound to their frontend, certificate
 * and server name, their client certificates checked against the CRL of
 * the day; and the count of handshakes by how they went.
 */
#include "tls_int.h"
#include "clock.h"

#include <stdio.h>
#include <string.h>

#include <wolfssl/wolfcrypt/sha256.h>

#include "log.h"
#include "sessblob.h"
#include "sesscache.h"
#include "stats.h"
#include "ticketkeys.h"

#define RESUME_EX_DATA      0           /* the context's ex_data slot of its tls_resume */
#define TICKET_HINT_MAX     604800      /* seconds: a ticket lives at most 7 days (RFC 8446) */
#define SCOPE_TEXT_MAX      1024        /* the text a frontend's scope is hashed from */
#define SESSION_ID_MAX      256         /* bytes of a session ID that go into its key */
#define SCOPE_FILE_MAX      (64L << 20) /* bytes of a client_ca hashed */

/* Adds a length and then len bytes to h, so that no two inputs run together. */
static void hash_part(wc_Sha256 *h, const void *p, size_t len)
{
    uint8_t n[8];
    for (int i = 0; i < 8; i++)
        n[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    wc_Sha256Update(h, n, sizeof n);
    wc_Sha256Update(h, p, (word32)len);
}

/* Adds the contents of the file at path (NULL: none) to h; a file that
 * cannot be read adds its path (its context's load then fails anyway). */
static void hash_file(wc_Sha256 *h, const char *path)
{
    unsigned char buf[4096];
    size_t n, total = 0;
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) {
        hash_part(h, path ? path : "", path ? strlen(path) : 0);
        return;
    }
    hash_part(h, "contents", 8);
    while (total < SCOPE_FILE_MAX && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        wc_Sha256Update(h, buf, (word32)n);
        total += n;
    }
    fclose(f);
}

void tls_resume_init(struct tls_resume *rs, const struct tls_resumption *r,
                     const struct frontend_conf *fe)
{
    unsigned char digest[WC_SHA256_DIGEST_SIZE];
    char text[SCOPE_TEXT_MAX];
    wc_Sha256 h;
    memset(rs, 0, sizeof *rs);
    if (r)
        rs->conf = *r;
    snprintf(text, sizeof text, "tlsoffd frontend 2\n%s\n%d", fe->name, (int)fe->verify_client);
    wc_InitSha256(&h);
    hash_part(&h, text, strlen(text));
    /* The contents, not the path: a new CA put in place and reloaded
     * ends every session and ticket made under the old one. A new CRL
     * ends only those of the certificates it revokes (session_revoked). */
    hash_file(&h, fe->verify_client == VERIFY_CLIENT_NONE ? NULL : fe->client_ca);
    wc_Sha256Final(&h, digest);
    wc_Sha256Free(&h);
    memcpy(rs->scope, digest, sizeof rs->scope);
    rs->check_crl = fe->verify_client != VERIFY_CLIENT_NONE && fe->client_crl;
}

void tls_resume_bind(const struct tls_resume *rs, struct tls_conn *conn,
                     const uint8_t fingerprint[32], const char *sni)
{
    unsigned char digest[WC_SHA256_DIGEST_SIZE];
    char low[256];
    size_t i;
    wc_Sha256 h;
    for (i = 0; sni[i] && i + 1 < sizeof low; i++)
        low[i] = (char)(sni[i] >= 'A' && sni[i] <= 'Z' ? sni[i] - 'A' + 'a' : sni[i]);
    low[i] = '\0';
    wc_InitSha256(&h);
    hash_part(&h, rs->scope, sizeof rs->scope);
    hash_part(&h, fingerprint, 32);
    hash_part(&h, low, i);
    wc_Sha256Final(&h, digest);
    wc_Sha256Free(&h);
    memcpy(conn->binding, digest, sizeof conn->binding);
    conn->bound = true;
}

const struct tls_resume *tls_resume_of(WOLFSSL *ssl)
{
    return ssl ? wolfSSL_CTX_get_ex_data(wolfSSL_get_SSL_CTX(ssl), RESUME_EX_DATA) : NULL;
}

/*
 * Sessions and tickets are bound to the connection's binding: its
 * frontend (a session made where no client certificate was asked for must
 * not resume where one is required, nor one made under other client_ca
 * contents), its certificate and its server name (RFC 6066, section 3).
 * The cache key is SHA-256(binding || session ID).
 */
static void scoped_id(const struct tls_conn *conn, const unsigned char *id, unsigned idlen,
                      uint8_t out[SESSCACHE_ID_MAX])
{
    uint8_t in[TICKET_SCOPE_LEN + SESSION_ID_MAX], digest[WC_SHA256_DIGEST_SIZE];
    if (idlen > SESSION_ID_MAX)
        idlen = SESSION_ID_MAX;
    memcpy(in, conn->binding, TICKET_SCOPE_LEN);
    memcpy(in + TICKET_SCOPE_LEN, id, idlen);
    wc_Sha256Hash(in, TICKET_SCOPE_LEN + idlen, digest);
    memcpy(out, digest, SESSCACHE_ID_MAX);
}

/* ssl's connection if it is bound (tls_resume_bind), else NULL. */
static struct tls_conn *bound_conn(WOLFSSL *ssl)
{
    struct tls_conn *conn = wolfSSL_GetIOReadCtx(ssl);
    return conn && conn->bound ? conn : NULL;
}

/*
 * A new session: TLS 1.2 sessions with an ID go to the shared cache.
 * TLS 1.3 resumes statelessly by ticket, and a TLS 1.2 ticket session has
 * no ID, so those are not stored. Returns 0: wolfSSL keeps no reference.
 */
static int sess_new_cb(WOLFSSL *ssl, WOLFSSL_SESSION *sess)
{
    const struct tls_resume *rs = tls_resume_of(ssl);
    const struct tls_conn *conn = bound_conn(ssl);
    unsigned int idlen = 0;
    const unsigned char *id = wolfSSL_SESSION_get_id(sess, &idlen);
    unsigned char buf[SESSCACHE_SLOT_SIZE];
    uint8_t key[SESSCACHE_ID_MAX];
    if (wolfSSL_version(ssl) == TLS1_3_VERSION || idlen == 0 || !conn)
        return 0;
    scoped_id(conn, id, idlen, key);
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

/* A cached session whose client certificate the CRL of the day revokes. */
static bool session_revoked(WOLFSSL *ssl, WOLFSSL_SESSION *sess)
{
    WOLFSSL_X509_CHAIN *chain = wolfSSL_SESSION_get_peer_chain(sess);
    unsigned char *der = chain && wolfSSL_get_chain_count(chain) > 0
                             ? wolfSSL_get_chain_cert(chain, 0) : NULL;
    int len = der ? wolfSSL_get_chain_length(chain, 0) : 0;
    return der && len > 0 && tls_peer_revoked(ssl, der, len);
}

static WOLFSSL_SESSION *sess_get_cb(WOLFSSL *ssl, const unsigned char *id, int len, int *copy)
{
    const struct tls_resume *rs = tls_resume_of(ssl);
    const struct tls_conn *conn = bound_conn(ssl);
    unsigned char buf[SESSCACHE_SLOT_SIZE];
    uint8_t key[SESSCACHE_ID_MAX];
    *copy = 0;
    /* TLS 1.3 asks by the ticket's ID on every resumption; its tickets
     * carry the session themselves. */
    if (wolfSSL_version(ssl) == TLS1_3_VERSION || len <= 0 || !conn)
        return NULL;
    scoped_id(conn, id, (unsigned)len, key);
    size_t n = sesscache_lookup(rs->conf.cache, key, sizeof key, buf, sizeof buf, clock_now_ms());
    if (n == 0) {
        stats_inc(rs->stats, ST_CACHE_MISS);
        return NULL;
    }
    const unsigned char *p = buf;
    /* Any worker can write the cache; wolfSSL's decoder trusts lengths. */
    WOLFSSL_SESSION *sess = sessblob_ok(buf, n) ? wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)n) : NULL;
    if (sess && rs->check_crl && session_revoked(ssl, sess)) {
        log_debug("session cache: the session's client certificate is revoked: not resumed");
        wolfSSL_SESSION_free(sess);
        sess = NULL;
    }
    stats_inc(rs->stats, sess ? ST_CACHE_HIT : ST_CACHE_MISS);
    return sess;
}

/*
 * tlsoffd's trailer to wolfSSL's ticket plaintext: a magic; the time (ms,
 * CLOCK_REALTIME) of the full handshake that began the chain of tickets
 * (a TLS 1.3 resumption gets a new ticket with wolfSSL's own age reset,
 * so without it a client renewing in time would resume forever; RFC 8446
 * section 4.6.1 caps that at 7 days); and the first 16 bytes of the
 * SHA-256 of the client certificate the chain began with (zeros: none).
 * wolfSSL 5.5.4 leaves room for exactly WOLFSSL_TICKET_EXTRA_PADDING_SZ =
 * 32 bytes after its InternalTicket, too few for a subject: the
 * certificate is kept in the shared cache under that digest
 * (tls_identity.c).
 */
#define ORIGIN_MAGIC        0x746f6f32u     /* "too2" */
#define TRAILER_LEN         (12 + TLS_PEER_DIGEST_LEN)

struct trailer {
    int64_t origin;                     /* -1: none (a ticket of an older tlsoffd) */
    uint8_t peer[TLS_PEER_DIGEST_LEN];      /* zeros: no client certificate */
};

static void put_trailer(unsigned char *p, const struct trailer *t)
{
    uint64_t v = (uint64_t)t->origin;
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(ORIGIN_MAGIC >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        p[4 + i] = (unsigned char)(v >> (56 - 8 * i));
    memcpy(p + 12, t->peer, TLS_PEER_DIGEST_LEN);
}

static void get_trailer(const unsigned char *p, struct trailer *t)
{
    uint32_t magic = 0;
    uint64_t v = 0;
    for (int i = 0; i < 4; i++)
        magic = magic << 8 | p[i];
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[4 + i];
    t->origin = magic == ORIGIN_MAGIC && (int64_t)v > 0 ? (int64_t)v : -1;
    memcpy(t->peer, p + 12, TLS_PEER_DIGEST_LEN);
}

static bool has_peer(const struct trailer *t)
{
    static const uint8_t zeros[TLS_PEER_DIGEST_LEN];
    return memcmp(t->peer, zeros, TLS_PEER_DIGEST_LEN) != 0;
}

static int64_t max_age_ms(const struct tls_resume *rs)
{
    double a = rs->conf.ticket_max_age;
    return (int64_t)((a > 0 && a < TICKET_HINT_MAX ? a : TICKET_HINT_MAX) * CLOCK_MS_PER_S);
}

/* The client certificate of ssl's session for a new ticket's trailer:
 * the one sent (or kept by a session resumed by ID), whose identity is
 * kept for the ticket; else the one the ticket taken carried. */
static void ticket_peer(WOLFSSL *ssl, const struct tls_resume *rs, struct tls_conn *conn,
                        bool chained, struct trailer *t)
{
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(ssl);
    int len = 0;
    const unsigned char *der = x ? wolfSSL_X509_get_der(x, &len) : NULL;
    if (der && len > 0) {
        tls_peer_digest(der, len, t->peer);
        tls_identity_keep(rs->conf.cache, conn, x, t->peer);
    } else if (chained && conn->has_ticket_peer) {
        memcpy(t->peer, conn->ticket_peer_digest, TLS_PEER_DIGEST_LEN);
    }
    wolfSSL_X509_free(x);
    wolfSSL_ERR_clear_error();
}

/* Seals a new ticket: a resumed connection's keeps its chain's origin. */
static int ticket_seal(WOLFSSL *ssl, const struct tls_resume *rs, struct tls_conn *conn,
                       unsigned char *name, unsigned char *iv, unsigned char *mac,
                       unsigned char *ticket, int len, int *outlen)
{
    bool chained = conn->ticket_origin > 0 && wolfSSL_session_reused(ssl);
    struct trailer t = { .origin = chained ? conn->ticket_origin : clock_real_ms() };
    ticket_peer(ssl, rs, conn, chained, &t);
    put_trailer(ticket + len, &t);
    if (ticketkeys_encrypt(rs->conf.keys, conn->binding, name, iv, mac, ticket,
                           (size_t)len + TRAILER_LEN) < 0)
        return WOLFSSL_TICKET_RET_FATAL;
    *outlen = len + TRAILER_LEN;
    return WOLFSSL_TICKET_RET_OK;
}

/* Whether a ticket that decrypted may resume: within the chain's age,
 * and with its client certificate known and not revoked (else a full
 * handshake shows it again); its identity goes to conn. */
static bool ticket_admit(WOLFSSL *ssl, const struct tls_resume *rs, struct tls_conn *conn,
                         const struct trailer *t, int64_t now)
{
    struct tls_identity id;
    if (t->origin < 0 || now - t->origin > max_age_ms(rs))
        return false;           /* too old, or from before the trailer */
    if (has_peer(t)) {
        if (!tls_identity_find(rs->conf.cache, ssl, conn, t->peer, rs->check_crl, &id))
            return false;
        conn->ticket_peer = id;
        memcpy(conn->ticket_peer_digest, t->peer, TLS_PEER_DIGEST_LEN);
    }
    conn->has_ticket_peer = has_peer(t);
    conn->ticket_origin = t->origin;
    return true;
}

/* Opens a ticket into a copy, so that one refused stays as it came for
 * TLS 1.3's next call; a WOLFSSL_TICKET_RET_. */
static int ticket_open(WOLFSSL *ssl, const struct tls_resume *rs, struct tls_conn *conn,
                       unsigned char *name, unsigned char *iv, unsigned char *mac,
                       unsigned char *ticket, int len, int *outlen)
{
    unsigned char plain[TICKET_MAX_PLAIN];
    struct trailer t;
    enum ticket_dec d = TICKET_DEC_BAD;
    int64_t now = clock_real_ms();
    if (len > TRAILER_LEN && (size_t)len <= sizeof plain) {
        memcpy(plain, ticket, (size_t)len);
        d = ticketkeys_decrypt(rs->conf.keys, conn->binding, name, iv, mac, plain, (size_t)len,
                               now);
    }
    if (d != TICKET_DEC_CURRENT && d != TICKET_DEC_OLDER) {
        conn->ticket_failed = true;
        return WOLFSSL_TICKET_RET_REJECT;
    }
    get_trailer(plain + len - TRAILER_LEN, &t);
    if (!ticket_admit(ssl, rs, conn, &t, now)) {
        memset(plain, 0, sizeof plain);
        return WOLFSSL_TICKET_RET_REJECT;
    }
    memcpy(ticket, plain, (size_t)len);
    memset(plain, 0, sizeof plain);
    conn->ticket_ok = true;
    *outlen = len - TRAILER_LEN;
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
    struct tls_conn *conn = bound_conn(ssl);
    (void)ctx;
    if (len <= 0 || !conn)      /* an unbound connection: no resumption */
        return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    if (enc)
        return ticket_seal(ssl, rs, conn, name, iv, mac, ticket, len, outlen);
    return ticket_open(ssl, rs, conn, name, iv, mac, ticket, len, outlen);
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
