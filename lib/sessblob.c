#include "sessblob.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

/* wolfSSL's sizes (internal.h): the same in every build (the first three
 * are TLS's), but MAX_CHAIN_DEPTH, which a build may lower (Debian's
 * does not: the unit test checks against internal.h where it is
 * installed), and MAX_X509_SIZE, 2048 at least. */
#define SB_ID_LEN           32
#define SB_SECRET_LEN       48
#define SB_SERVER_ID_LEN    20
#define SB_MAX_CHAIN_DEPTH  9
#define SB_MAX_X509_SIZE    2048

struct sb {
    const uint8_t *p;
    size_t left;
};

/* Takes n bytes; false if there are fewer. */
static bool take(struct sb *b, size_t n)
{
    if (b->left < n)
        return false;
    b->p += n;
    b->left -= n;
    return true;
}

/* A length of width bytes (big-endian) at most max, and that many bytes
 * after it. */
static bool field(struct sb *b, size_t width, size_t max)
{
    if (b->left < width)
        return false;
    size_t n = width == 1 ? b->p[0] : (size_t)b->p[0] << 8 | b->p[1];
    return n <= max && take(b, width) && take(b, n);
}

/* The peer's certificate chain: a count, then each with a 2-byte length. */
static bool chain(struct sb *b)
{
#ifdef SESSION_CERTS
    if (b->left < 1 || b->p[0] > SB_MAX_CHAIN_DEPTH)
        return false;
    unsigned count = b->p[0];
    take(b, 1);
    for (unsigned i = 0; i < count; i++)
        if (!field(b, 2, SB_MAX_X509_SIZE))
            return false;
#else
    (void)b;
#endif
    return true;
}

/* What follows the session context, to the blob's end: wolfSSL reads the
 * TLS 1.3 ticket's times as 12 bytes after checking for 8, 4 bytes past
 * a blob cut there (the session fuzzer found it at a page's end). */
static bool tail(struct sb *b)
{
#if defined(OPENSSL_EXTRA) || defined(OPENSSL_EXTRA_X509_SMALL)
    if (!take(b, 1))                            /* peerVerifyRet */
        return false;
#endif
#ifdef WOLFSSL_TLS13
    if (!take(b, 2))                            /* namedGroup */
        return false;
#endif
#if (defined(HAVE_SESSION_TICKET) || !defined(NO_PSK)) && defined(WOLFSSL_TLS13)
#ifdef WOLFSSL_32BIT_MILLI_TIME
    if (!take(b, 4 + 4))                        /* ticketSeen, ticketAdd */
        return false;
#else
    if (!take(b, 8 + 4))
        return false;
#endif
    if (!field(b, 1, 255))                      /* the ticket nonce */
        return false;
#ifdef WOLFSSL_EARLY_DATA
    if (!take(b, 4))                            /* maxEarlyDataSz */
        return false;
#endif
#endif
#ifdef HAVE_SESSION_TICKET
    if (!field(b, 2, 0xffff))                   /* the ticket */
        return false;
#endif
    return true;
}

bool sessblob_ok(const uint8_t *blob, size_t len)
{
    struct sb b = { blob, len };
    /* side, bornOn, timeout; the session ID; the master secret, haveEMS */
    if (!take(&b, 1 + 4 + 4) || !field(&b, 1, SB_ID_LEN) || !take(&b, SB_SECRET_LEN + 1))
        return false;
    /* the alternative session ID: its length is 0 or ID_LEN */
    if (b.left < 1 || (b.p[0] != 0 && b.p[0] != SB_ID_LEN) || !field(&b, 1, SB_ID_LEN))
        return false;
    if (!chain(&b))
        return false;
#if defined(SESSION_CERTS) || (defined(WOLFSSL_TLS13) && defined(HAVE_SESSION_TICKET))
    if (!take(&b, 2))                           /* the protocol version */
        return false;
#endif
#if defined(SESSION_CERTS) || !defined(NO_RESUME_SUITE_CHECK) || \
    (defined(WOLFSSL_TLS13) && defined(HAVE_SESSION_TICKET))
    if (!take(&b, 2))                           /* the cipher suite */
        return false;
#endif
#ifndef NO_CLIENT_CACHE
    if (!field(&b, 2, SB_SERVER_ID_LEN))
        return false;
#endif
#ifdef OPENSSL_EXTRA
    if (!field(&b, 1, SB_ID_LEN))               /* the session context */
        return false;
#endif
    return tail(&b);
}
