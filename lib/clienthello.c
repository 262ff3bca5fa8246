#include "clienthello.h"

#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* A bounds-checked reader. */
struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static unsigned get(struct rd *r, size_t n)
{
    unsigned v = 0;
    if (r->bad || r->left < n) {
        r->bad = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    r->left -= n;
    return v;
}

/* A sub-reader over the next n bytes (n given by a length field). */
static struct rd sub(struct rd *r, size_t n)
{
    struct rd s = { r->p, n, false };
    if (r->bad || r->left < n) {
        r->bad = true;
        s.bad = true;
        s.left = 0;
        return s;
    }
    r->p += n;
    r->left -= n;
    return s;
}

/* RFC 6066: a host_name, no trailing dot; LDH labels (and '_', seen in
 * the wild). Stored lower-cased. */
static void take_sni(struct client_hello *ch, struct rd e)
{
    if (ch->sni[0] || ch->sni_invalid)      /* a second server_name extension */
        return;
    struct rd list = sub(&e, get(&e, 2));
    while (!list.bad && list.left > 0) {
        unsigned type = get(&list, 1);
        struct rd name = sub(&list, get(&list, 2));
        if (list.bad || type != 0)
            continue;
        if (name.left == 0 || name.left > 253) {     /* a DNS name has at most 253 */
            ch->sni_invalid = true;
            return;
        }
        for (size_t i = 0; i < name.left; i++) {
            char c = (char)name.p[i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                  c == '_')) {
                ch->sni_invalid = true;
                ch->sni[0] = '\0';
                return;
            }
            ch->sni[i] = c;
        }
        ch->sni[name.left] = '\0';
        if (ch->sni[name.left - 1] == '.') {
            ch->sni_invalid = true;
            ch->sni[0] = '\0';
        }
        return;
    }
}

static void take_sigalgs(struct client_hello *ch, struct rd e)
{
    struct rd list = sub(&e, get(&e, 2));
    ch->sigalgs = true;
    while (!list.bad && list.left >= 2) {
        unsigned a = get(&list, 2);
        if (a == 0x0403 || a == 0x0503 || a == 0x0603)
            ch->ecdsa_sig13 = true;
        if ((a & 0xff) == 3 && (a >> 8) >= 2 && (a >> 8) <= 6)
            ch->ecdsa_sig12 = true;
    }
}

static void take_groups(struct client_hello *ch, struct rd e)
{
    struct rd list = sub(&e, get(&e, 2));
    ch->groups_sent = true;
    if (list.bad || e.left != 0 || list.left % 2 != 0)
        ch->ext_bad = true;
    while (!list.bad && list.left >= 2) {
        unsigned g = get(&list, 2);
        if (g < 32)
            ch->groups |= 1u << g;
    }
}

/* Of the key shares, P-256's point (RFC 8446 section 4.2.8.2), kept for
 * tls_hello.c to check that it is on the curve. */
static void take_key_shares(struct client_hello *ch, struct rd e)
{
    struct rd list = sub(&e, get(&e, 2));
    if (list.bad || e.left != 0)
        ch->ext_bad = true;
    while (!list.bad && list.left > 0) {
        unsigned g = get(&list, 2);
        struct rd share = sub(&list, get(&list, 2));
        if (list.bad)
            ch->ext_bad = true;
        if (list.bad || g != 23 || ch->p256_share)
            continue;
        ch->p256_share = true;
        if (share.left == sizeof ch->p256_point)
            memcpy(ch->p256_point, share.p, sizeof ch->p256_point);
    }
}

/* RFC 7301 section 3.1: no empty names, no truncated list. */
static void take_alpn(struct client_hello *ch, struct rd e)
{
    struct rd list = sub(&e, get(&e, 2));
    if (list.left == 0 || e.left != 0)
        ch->alpn_bad = true;
    while (!list.bad && list.left > 0) {
        struct rd name = sub(&list, get(&list, 1));
        if (name.left == 0)
            ch->alpn_bad = true;
    }
    if (list.bad)
        ch->alpn_bad = true;
}

/* RFC 5746 section 3.6: an initial hello's renegotiated_connection is empty. */
static void take_reneg(struct client_hello *ch, struct rd e)
{
    struct rd info = sub(&e, get(&e, 1));
    if (info.bad || e.left != 0)
        ch->ext_bad = true;
    else if (info.left != 0)
        ch->reneg_nonempty = true;
}

static void take_versions(struct client_hello *ch, struct rd e)
{
    struct rd list = sub(&e, get(&e, 1));
    while (!list.bad && list.left >= 2)
        if (get(&list, 2) == 0x0304)
            ch->tls13 = true;
}

/* The extensions block; a malformed one leaves ch incomplete. */
static void take_extensions(struct client_hello *ch, struct rd exts)
{
    while (!exts.bad && exts.left >= 4) {
        unsigned type = get(&exts, 2);
        struct rd e = sub(&exts, get(&exts, 2));
        if (exts.bad)
            break;
        switch (type) {
        case 0:  take_sni(ch, e); break;
        case 10: take_groups(ch, e); break;
        case 13: take_sigalgs(ch, e); break;
        case 16: take_alpn(ch, e); break;
        case 43: take_versions(ch, e); break;
        case 51: take_key_shares(ch, e); break;
        case 0xff01: take_reneg(ch, e); break;
        default: break;
        }
    }
    if (exts.bad)
        ch->complete = false;
}

/* Refuses the hello: the alert to send and why. */
static long refuse(struct client_hello *ch, uint8_t alert, const char *why)
{
    ch->alert = alert;
    ch->refused = why;
    return -2;
}

/* The next record at buf + off: its handshake bytes appended to msg (at
 * most CLIENT_HELLO_MSG_MAX in all). Returns 0 when done with it, or what
 * client_hello_parse returns. */
static long take_record(const uint8_t *buf, size_t len, size_t off, uint8_t *msg, size_t *got,
                        struct client_hello *ch)
{
    if (off + 5 > CLIENT_HELLO_MAX)
        return refuse(ch, 47, "ClientHello records over " STR(CLIENT_HELLO_MAX) " bytes");
    if (len - off < 5)
        return (long)(off + 5);
    const uint8_t *h = buf + off;
    size_t reclen = (size_t)h[3] << 8 | h[4];
    if (off == 0 && h[1] != 3)
        return -1;                              /* not TLS: wolfSSL says what it is */
    if (off == 0 && h[0] == 21)
        return -1;                              /* an alert: wolfSSL reads it */
    if (off == 0 && h[0] != 22)
        return refuse(ch, 10, "a record other than handshake before the ClientHello");
    if (off == 0 && reclen == 0)
        return refuse(ch, 10, "an empty handshake record");
    if (h[0] != 22)
        return refuse(ch, 10, "a record other than handshake inside the ClientHello");
    if (h[1] != 3 || reclen == 0)
        return refuse(ch, 50, "a malformed record inside the ClientHello");
    if (reclen > 16384)
        return refuse(ch, 22, "a record over 2^14 bytes");
    if (off + 5 + reclen > CLIENT_HELLO_MAX)
        return refuse(ch, 47, "ClientHello records over " STR(CLIENT_HELLO_MAX) " bytes");
    if (len < off + 5 + reclen)
        return (long)(off + 5 + reclen);
    size_t n = reclen < CLIENT_HELLO_MSG_MAX - *got ? reclen : CLIENT_HELLO_MSG_MAX - *got;
    memcpy(msg + *got, h + 5, n);
    *got += n;
    return 0;
}

/* Gathers the ClientHello from the handshake records at the start of buf
 * into msg. Returns its length (with its 4-byte header), or what
 * client_hello_parse returns. */
static long reassemble(const uint8_t *buf, size_t len, uint8_t *msg, struct client_hello *ch)
{
    size_t off = 0, got = 0;
    for (;;) {
        long r = take_record(buf, len, off, msg, &got, ch);
        if (r != 0)
            return r;
        off += 5 + ((size_t)buf[off + 3] << 8 | buf[off + 4]);
        if (msg[0] != 1)                        /* not client_hello */
            return -1;
        if (got < 4)
            continue;
        size_t want = 4 + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]);
        if (want > CLIENT_HELLO_MSG_MAX)
            return refuse(ch, 47, "a ClientHello over " STR(CLIENT_HELLO_MSG_MAX) " bytes");
        if (got >= want)
            return (long)want;
    }
}

long client_hello_parse(const uint8_t *buf, size_t len, struct client_hello *ch)
{
    uint8_t msg[CLIENT_HELLO_MSG_MAX];
    memset(ch, 0, sizeof *ch);
    if (len < 5)
        return 5;
    long mlen = reassemble(buf, len, msg, ch);
    if (mlen < 0 || (size_t)mlen > len)     /* refused, or more bytes needed: a */
        return mlen;                        /* whole message is never over len */
    ch->complete = true;
    struct rd m = { msg + 4, (size_t)mlen - 4, false };
    get(&m, 2);                                 /* legacy_version */
    sub(&m, 32);                                /* random */
    sub(&m, get(&m, 1));                        /* legacy_session_id */
    struct rd suites = sub(&m, get(&m, 2));
    while (!suites.bad && suites.left >= 2) {
        unsigned s = get(&suites, 2);
        if (s == 0xc02b || s == 0xc02c || s == 0xcca9 || s == 0xc023 || s == 0xc024 ||
            s == 0xc009 || s == 0xc00a || s == 0xc0ac || s == 0xc0ad)
            ch->ecdsa_suite12 = true;
        if (s == 0x009e || s == 0x009f || s == 0xccaa || s == 0xc09e || s == 0xc09f)
            ch->dhe_suite12 = true;
    }
    sub(&m, get(&m, 1));                        /* legacy_compression_methods */
    if (m.bad || m.left == 0) {
        ch->complete = !m.bad;
        return 0;
    }
    take_extensions(ch, sub(&m, get(&m, 2)));
    if (m.bad)
        ch->complete = false;
    return 0;
}

bool client_hello_ecdsa(const struct client_hello *ch, bool allow12, bool allow13)
{
    if (allow13 && ch->tls13)           /* TLS 1.3 will be negotiated */
        return ch->ecdsa_sig13;
    /* TLS 1.2 without signature_algorithms means SHA-1 pairs, ECDSA included. */
    return allow12 && ch->ecdsa_suite12 && (!ch->sigalgs || ch->ecdsa_sig12);
}
