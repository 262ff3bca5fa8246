/*
 * tls_park — an idle frontend connection's TLS state written to a blob
 * (wolfSSL_tls_export) and a connection made again from it
 * (wolfSSL_tls_import), so that another process can hold the idle
 * connection meanwhile (tls.h).
 *
 * wolfSSL 5.5.4's export carries the options, sequence numbers, traffic
 * keys and IVs, and cipher specs. It leaves out what a connection still
 * needs after its handshake: the TLS 1.3 traffic secrets, from which a
 * KeyUpdate derives the next keys, and which handshake messages came
 * (ssl->msgsReceived), by which wolfSSL judges one after the handshake
 * (without them a KeyUpdate is refused as "out of order"). Nor does
 * anything public say whether wolfSSL holds part of a record or bytes not
 * yet sent. All that is read from wolfSSL's internal.h, which describes
 * exactly the build it comes with (contrib/wolfssl-fast/build installs
 * it); without one, this file offers nothing.
 *
 * The blob, big-endian:
 *   0  "tlsP"             4  format (1)     5  flags (FLAG_*)
 *   6  certificate index (16)               8  LIBWOLFSSL_VERSION_HEX (32)
 *  12  sizeof (WOLFSSL) (32): another build's layout is refused
 *  16  SNI length         17 ALPN length    18 secret length (0: TLS 1.2)
 *  19  TLS minor version (3, 4)             20 msgsReceived length   21 0
 *  22  wolfSSL blob length (16)
 *  24  SNI, ALPN, msgsReceived, client secret, server secret, wolfSSL's blob
 *  end the first 16 bytes of the SHA-256 of all before
 */
#include "tls_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#if defined(WOLFSSL_SESSION_EXPORT) && defined(__has_include)
#if __has_include(<wolfssl/internal.h>)
#define TLS_PARK 1
#endif
#endif

#ifdef TLS_PARK
#include <wolfssl/internal.h>
#include <wolfssl/wolfcrypt/sha256.h>

#define PARK_MAGIC          "tlsP"
#define PARK_FORMAT         1
#define PARK_HDR            24
#define PARK_TAG            16
#define FLAG_TICKET         0x01    /* conn->ticket_ok */
#define PROCESS_INIT        0       /* doProcessInit: between records (internal.c) */
#define IMPORT_SLACK        64      /* zeroes after a blob: see unpark_import() */

/* The longest blob: names of 255 bytes, SHA-384 secrets, and the room
 * wolfSSL_tls_export() asks for (it adds the AES state to its own sum). */
_Static_assert(PARK_HDR + 2 * 255 + sizeof(MsgsReceived) + 2 * SECRET_LEN +
               6 * WOLFSSL_EXPORT_LEN + TLS_EXPORT_OPT_SZ + DTLS_EXPORT_KEY_SZ +
               WOLFSSL_EXPORT_SPC_SZ + 2 * AES_BLOCK_SIZE + PARK_TAG <= TLS_PARK_MAX,
               "TLS_PARK_MAX is too small for this wolfSSL");

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* The first PARK_TAG bytes of the SHA-256 of buf; 0 or -1. */
static int park_tag(const uint8_t *buf, size_t len, uint8_t *tag)
{
    uint8_t h[WC_SHA256_DIGEST_SIZE];
    if (wc_Sha256Hash(buf, (word32)len, h) != 0)
        return -1;
    memcpy(tag, h, PARK_TAG);
    return 0;
}

/* Do the fields this file reads sit where internal.h says? A mismatched
 * internal.h (another build's) would read other fields than it names. */
static bool layout_ok(WOLFSSL *ssl)
{
    return ssl->ctx == wolfSSL_get_SSL_CTX(ssl) &&
           ssl->buffers.clearOutputBuffer.length == (word32)wolfSSL_pending(ssl) &&
           (ssl->version.major << 8 | ssl->version.minor) == wolfSSL_version(ssl) &&
           ssl->options.side == WOLFSSL_SERVER_END;
}

/* Why conn cannot be parked now; NULL: it can. */
static const char *park_refusal(struct tls_conn *conn)
{
    WOLFSSL *ssl = conn->ssl;
    if (!conn->fe)
        return "not supported: not a frontend's connection (a backend's, or a bare context's)";
    if (!ssl || !wolfSSL_is_init_finished(ssl))
        return "handshake not done";
    if (!layout_ok(ssl))
        return "not supported: wolfssl/internal.h does not match the wolfSSL loaded";
    if (!ssl->options.handShakeDone)
        return "handshake not done";
    if (conn->closed || conn->peer_closed || ssl->options.isClosed ||
        ssl->options.closeNotify || ssl->options.sentNotify || ssl->options.connReset)
        return "closed";
    if (conn->roff < conn->rlen)
        return "data pending: read ahead, not yet given to wolfSSL";
    if (wolfSSL_pending(ssl) > 0)
        return "data pending: decrypted, not yet read";
    if (ssl->buffers.inputBuffer.length > ssl->buffers.inputBuffer.idx ||
        ssl->options.processReply != PROCESS_INIT)
        return "data pending: part of a record";
    if (ssl->buffers.outputBuffer.length > 0)
        return "output pending: not yet sent";
    if (conn->sys_errno || (ssl->error != 0 && ssl->error != WANT_READ &&
                            ssl->error != WOLFSSL_ERROR_WANT_READ))
        return "failed";
    if (ssl->keys.keyUpdateRespond || ssl->keys.updateResponseReq)
        return "a TLS 1.3 KeyUpdate is under way";
    if (wolfSSL_version(ssl) != TLS1_2_VERSION && wolfSSL_version(ssl) != TLS1_3_VERSION)
        return "not supported: neither TLS 1.2 nor TLS 1.3";
    return NULL;
}

/* Our header, the strings and wolfSSL's state that its export leaves
 * out; the offset of wolfSSL's blob. */
static size_t park_header(struct tls_conn *conn, uint8_t *buf, size_t secret)
{
    WOLFSSL *ssl = conn->ssl;
    size_t sni = strlen(conn->sni), alpn = strlen(conn->alpn), msgs = sizeof ssl->msgsReceived;
    memcpy(buf, PARK_MAGIC, 4);
    buf[4] = PARK_FORMAT;
    buf[5] = conn->ticket_ok ? FLAG_TICKET : 0;
    put16(buf + 6, (unsigned)tls_frontend_cert_index(conn));
    put32(buf + 8, LIBWOLFSSL_VERSION_HEX);
    put32(buf + 12, sizeof *ssl);
    buf[16] = (uint8_t)sni;
    buf[17] = (uint8_t)alpn;
    buf[18] = (uint8_t)secret;
    buf[19] = (uint8_t)(wolfSSL_version(ssl) & 0xff);
    buf[20] = (uint8_t)msgs;
    buf[21] = 0;
    uint8_t *p = buf + PARK_HDR;
    memcpy(p, conn->sni, sni);
    memcpy(p += sni, conn->alpn, alpn);
    memcpy(p += alpn, &ssl->msgsReceived, msgs);
    memcpy(p += msgs, ssl->clientSecret, secret);
    memcpy(p += secret, ssl->serverSecret, secret);
    return (size_t)(p + secret - buf);
}

ssize_t tls_conn_park(struct tls_conn *conn, uint8_t *buf, size_t len, char *err,
                      size_t errlen)
{
    const char *why = park_refusal(conn);
    if (why) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    WOLFSSL *ssl = conn->ssl;
    size_t secret = wolfSSL_version(ssl) == TLS1_3_VERSION ? ssl->specs.hash_size : 0;
    size_t fixed = PARK_HDR + strlen(conn->sni) + strlen(conn->alpn) +
                   sizeof ssl->msgsReceived + 2 * secret + PARK_TAG;
    if (secret > SECRET_LEN || len < fixed) {
        snprintf(err, errlen, "buffer too small");
        return -1;
    }
    size_t off = park_header(conn, buf, secret);
    unsigned int n = (unsigned int)(len - off - PARK_TAG);
    int r = wolfSSL_tls_export(ssl, buf + off, &n);
    if (r > 0 && n <= 0xffff)
        put16(buf + 22, n);
    if (r <= 0 || n > 0xffff || park_tag(buf, off + n, buf + off + n) < 0) {
        explicit_bzero(buf, len);
        snprintf(err, errlen, "wolfSSL_tls_export failed (%d)%s", r,
                 r == LENGTH_ONLY_E ? ": buffer too small" : "");
        return -1;
    }
    return (ssize_t)(off + n + PARK_TAG);
}

/* What a blob says of itself, checked. */
struct park_blob {
    unsigned cert, flags, minor;
    const uint8_t *sni, *alpn, *msgs, *secrets, *wolf;
    size_t sni_len, alpn_len, msgs_len, secret_len, wolf_len;
};

static const char *park_parse(const uint8_t *buf, size_t len, struct park_blob *b)
{
    uint8_t tag[PARK_TAG];
    if (len < PARK_HDR + PARK_TAG || memcmp(buf, PARK_MAGIC, 4) != 0)
        return "not a parked connection";
    if (buf[4] != PARK_FORMAT || get32(buf + 8) != LIBWOLFSSL_VERSION_HEX ||
        get32(buf + 12) != sizeof(WOLFSSL))
        return "made by another tlsoffd, or another wolfSSL version or build";
    *b = (struct park_blob){
        .cert = get16(buf + 6), .flags = buf[5], .minor = buf[19],
        .sni_len = buf[16], .alpn_len = buf[17], .secret_len = buf[18], .msgs_len = buf[20],
        .wolf_len = get16(buf + 22),
    };
    size_t want = PARK_HDR + b->sni_len + b->alpn_len + b->msgs_len + 2 * b->secret_len +
                  b->wolf_len;
    if (len != want + PARK_TAG)
        return "truncated or damaged (length)";
    if (park_tag(buf, want, tag) < 0 || memcmp(tag, buf + want, PARK_TAG) != 0)
        return "damaged (hash)";
    if (b->secret_len > SECRET_LEN || (b->minor == 4) != (b->secret_len > 0) ||
        (b->minor != 3 && b->minor != 4) || b->msgs_len != sizeof(MsgsReceived))
        return "damaged (version, secrets or messages)";
    b->sni = buf + PARK_HDR;
    b->alpn = b->sni + b->sni_len;
    b->msgs = b->alpn + b->alpn_len;
    b->secrets = b->msgs + b->msgs_len;
    b->wolf = b->secrets + 2 * b->secret_len;
    return NULL;
}

/*
 * wolfSSL_tls_import() on a copy followed by zeroes: 5.5.4's import reads
 * some fields (the AES-GCM state after the cipher specs, the explicit IV)
 * without checking them against the length it was given.
 */
static int unpark_import(WOLFSSL *ssl, const struct park_blob *b)
{
    uint8_t copy[TLS_PARK_MAX + IMPORT_SLACK];
    if (b->wolf_len > TLS_PARK_MAX)
        return BUFFER_E;
    memset(copy, 0, sizeof copy);
    memcpy(copy, b->wolf, b->wolf_len);
    int r = wolfSSL_tls_import(ssl, copy, (unsigned int)b->wolf_len);
    explicit_bzero(copy, sizeof copy);
    return r;
}

/* conn's WOLFSSL with b's state; NULL, or why not. */
static const char *unpark_state(struct tls_conn *conn, const struct park_blob *b)
{
    WOLFSSL *ssl = conn->ssl;
    int version = b->minor == 4 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2;
    if (wolfSSL_SetVersion(ssl, version) != WOLFSSL_SUCCESS)
        return "cannot set the TLS version";
    int r = unpark_import(ssl, b);
    if (r <= 0)
        return "wolfSSL_tls_import refused it";
    /* An import that carried a peer would have set wolfSSL's own fd. */
    wolfSSL_SetIOReadCtx(ssl, conn);
    wolfSSL_SetIOWriteCtx(ssl, conn);
    if (!layout_ok(ssl) || !ssl->options.handShakeDone ||
        (b->minor == 4) != (wolfSSL_version(ssl) == TLS1_3_VERSION) ||
        b->secret_len != (b->minor == 4 ? ssl->specs.hash_size : 0))
        return "damaged (state)";
    memcpy(&ssl->msgsReceived, b->msgs, b->msgs_len);
    memcpy(ssl->clientSecret, b->secrets, b->secret_len);
    memcpy(ssl->serverSecret, b->secrets + b->secret_len, b->secret_len);
    /* What wolfSSL_accept() frees when it is done (the new WOLFSSL's
     * handshake hashes, arrays, peer keys). */
    wolfSSL_FreeHandshakeResources(ssl);
    return NULL;
}

static struct tls_conn *unpark_fail(struct tls_conn *conn, const char *why, char *err,
                                    size_t errlen)
{
    snprintf(err, errlen, "%s", why);
    tls_conn_free(conn);
    return NULL;
}

struct tls_conn *tls_conn_unpark(struct tls_frontend *f, int fd, const uint8_t *buf,
                                 size_t len, char *err, size_t errlen)
{
    struct park_blob b;
    const char *why = park_parse(buf, len, &b);
    if (why)
        return unpark_fail(NULL, why, err, errlen);
    struct tls_cert *cert = tls_frontend_cert(f, b.cert);
    if (!cert)
        return unpark_fail(NULL, "made for a certificate this frontend does not have",
                           err, errlen);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return unpark_fail(NULL, "not a socket", err, errlen);
    struct tls_conn *conn = tls_io_conn(fd);
    conn->fe = f;
    conn->cert = cert;
    conn->ticket_ok = b.flags & FLAG_TICKET;
    memcpy(conn->sni, b.sni, b.sni_len);
    memcpy(conn->alpn, b.alpn, b.alpn_len);
    if (tls_io_attach(conn, cert->ctx) < 0)
        return unpark_fail(conn, "out of memory", err, errlen);
    if ((why = unpark_state(conn, &b)))
        return unpark_fail(conn, why, err, errlen);
    return conn;
}

bool tls_park_supported(void)
{
    return true;
}

#else   /* no session export in this wolfSSL */

#ifdef WOLFSSL_SESSION_EXPORT
#define NO_PARK "not supported: this wolfSSL's wolfssl/internal.h is not installed"
#else
#define NO_PARK "not supported: this wolfSSL has no session export (WOLFSSL=fast has)"
#endif

bool tls_park_supported(void)
{
    return false;
}

ssize_t tls_conn_park(struct tls_conn *conn, uint8_t *buf, size_t len, char *err,
                      size_t errlen)
{
    (void)conn, (void)buf, (void)len;
    snprintf(err, errlen, "%s", NO_PARK);
    return -1;
}

struct tls_conn *tls_conn_unpark(struct tls_frontend *f, int fd, const uint8_t *buf,
                                 size_t len, char *err, size_t errlen)
{
    (void)f, (void)fd, (void)buf, (void)len;
    snprintf(err, errlen, "%s", NO_PARK);
    return NULL;
}

#endif
